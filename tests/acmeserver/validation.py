"""Real challenge validation against loopback responders.

Every identifier is treated as resolving to 127.0.0.1 (no DNS here), so http-01 (RFC 8555 §8.3)
fetches http://127.0.0.1:<http-port>/.well-known/acme-challenge/<token> with Host: <domain>, and
tls-alpn-01 (RFC 8737) connects to 127.0.0.1:<tls-port> with SNI=<domain> and ALPN acme-tls/1.
dns-01 (RFC 8555 §8.4) looks the TXT record up in the table set via the management API.
Each validator returns None on success or (error type, detail) on failure.
"""
import hashlib
import http.client
import socket
import ssl

from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

from jws import b64u_encode

ACME_IDENTIFIER_OID = ObjectIdentifier("1.3.6.1.5.5.7.1.31")  # RFC 8737 §3 id-pe-acmeIdentifier
TIMEOUT = 5.0


def http01(domain, token, key_authz, port):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
        try:
            conn.request("GET", f"/.well-known/acme-challenge/{token}", headers={"Host": domain,
                                                                                 "User-Agent": "acmeserver-va"})
            resp = conn.getresponse()
            body = resp.read(4096)
        finally:
            conn.close()
    except (OSError, http.client.HTTPException) as e:
        return "connection", f"http-01: fetching 127.0.0.1:{port} for {domain}: {e}"
    if resp.status != 200:
        return "unauthorized", f"http-01: {domain} answered HTTP {resp.status} for token {token}"
    # RFC 8555 §8.3: the server SHOULD ignore whitespace characters at the end of the body.
    got = body.decode("ascii", "replace").rstrip(" \t\r\n")
    if got != key_authz:
        return "incorrectResponse", f"http-01: {domain} served {got[:100]!r}, expected the key authorization"
    return None


def tls_alpn01(domain, key_authz, port):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["acme-tls/1"])
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
            with ctx.wrap_socket(raw, server_hostname=domain) as tls:
                alpn = tls.selected_alpn_protocol()
                der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as e:
        return "connection" if not isinstance(e, ssl.SSLError) else "tls", \
            f"tls-alpn-01: handshake with 127.0.0.1:{port} (SNI {domain}): {e}"
    if alpn != "acme-tls/1":
        return "tls", f"tls-alpn-01: server negotiated ALPN {alpn!r}, not acme-tls/1"
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns_names = san.get_values_for_type(x509.DNSName)
        if len(list(san)) != 1 or [n.lower() for n in dns_names] != [domain]:
            return "unauthorized", f"tls-alpn-01: certificate SANs {dns_names} must be exactly [{domain!r}]"
    except x509.ExtensionNotFound:
        return "unauthorized", "tls-alpn-01: certificate has no subjectAltName"
    try:
        ext = cert.extensions.get_extension_for_oid(ACME_IDENTIFIER_OID)
    except x509.ExtensionNotFound:
        return "unauthorized", "tls-alpn-01: certificate lacks the acmeIdentifier extension"
    if not ext.critical:
        return "unauthorized", "tls-alpn-01: acmeIdentifier extension must be critical"
    # extnValue is the DER of an OCTET STRING holding SHA-256(key authorization).
    expected = b"\x04\x20" + hashlib.sha256(key_authz.encode()).digest()
    if ext.value.value != expected:
        return "unauthorized", "tls-alpn-01: acmeIdentifier does not match the key authorization"
    return None


def dns01(domain, key_authz, txt_records):
    name = "_acme-challenge." + domain
    want = b64u_encode(hashlib.sha256(key_authz.encode()).digest())
    values = txt_records.get(name, [])
    if want in values:
        return None
    if not values:
        return "dns", f"dns-01: no TXT record for {name} (set it with POST /_mgmt/dns-txt)"
    return "unauthorized", f"dns-01: TXT records for {name} do not contain the expected digest"
