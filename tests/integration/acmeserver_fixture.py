"""Start/stop helper for the in-repo ACME test server (tests/acmeserver) plus a small pure-python
ACME client (RFC 8555) that tests can use to drive it or to build negative requests.

    from acmeserver_fixture import AcmeServer
    with AcmeServer(tmp_path, profiles="shortlived=518400", alternate_roots=1) as srv:
        srv.dir_url, srv.ca_bundle          # https://127.0.0.1:<port>/dir, serving cert PEM to trust
        srv.fail("/new-order", status=429, type="rateLimited", retry_after=3)
        srv.stats()["newOrder"], srv.orders(), srv.root_pem(0)

Options map to the server flags (validation="http", http_port=..., eab_keys={"kid": "b64url"}, ...).
"""
import datetime
import hashlib
import hmac
import http.client
import ipaddress
import json
import os
import pathlib
import select
import signal
import socket
import ssl
import subprocess
import time
import urllib.parse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

import base64

SRC = pathlib.Path(os.environ.get("EDGECERT_SRC") or pathlib.Path(__file__).resolve().parents[2])
RUN = SRC / "tests" / "acmeserver" / "run"


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_serving_cert(directory):
    """Self-signed P-256 cert for the server's HTTPS listener (SAN DNS:localhost, IP:127.0.0.1)."""
    directory = pathlib.Path(directory)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "acmeserver-cert.pem", directory / "acmeserver-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return str(cert_path), str(key_path)


class AcmeServer:
    """Runs tests/acmeserver/run on a free port over HTTPS; stop() sends SIGTERM to its PID."""

    def __init__(self, workdir, tls=True, **opts):
        self.workdir = pathlib.Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.tls, self.opts = tls, opts
        self.proc = self.port = None
        self.ca_bundle = None

    def start(self, timeout=10):
        args = [str(RUN), "--port", "0"]
        if self.tls:
            self.ca_bundle, key = make_serving_cert(self.workdir)
            args += ["--tls-cert", self.ca_bundle, "--tls-key", key]
        for k, v in self.opts.items():
            flag = "--" + k.replace("_", "-")
            if k == "eab_keys":
                for kid, hk in v.items():
                    args += ["--eab-key", f"{kid}={hk}"]
            elif v is True:
                args.append(flag)
            elif v is not False and v is not None:
                args += [flag, str(v)]
        self.log_path = self.workdir / "acmeserver.log"
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self._log)
        deadline = time.monotonic() + timeout
        line = b""
        while time.monotonic() < deadline and not line.endswith(b"\n"):
            r, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 256)
                if not chunk:
                    break
                line += chunk
        if not line.startswith(b"ready port="):
            self.stop()
            raise RuntimeError(f"acmeserver did not start: {line!r}; log: {self.log_path.read_text()[-2000:]}")
        self.port = int(line.split(b"=")[1])
        self.base_url = f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"
        self.dir_url = self.base_url + "/dir"
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def ssl_context(self):
        return ssl.create_default_context(cafile=self.ca_bundle) if self.tls else None

    # --- management API ----------------------------------------------------------------------------
    def mgmt(self, method, path, body=None):
        status, _, data = http_request(self.base_url, method, "/_mgmt/" + path.lstrip("/"),
                                       json.dumps(body).encode() if body is not None else None,
                                       {"Content-Type": "application/json"}, self.ssl_context())
        if status >= 300:
            raise RuntimeError(f"mgmt {path}: HTTP {status} {data[:200]!r}")
        return data

    def fail(self, path_prefix="*", count=1, status=None, type="serverInternal", retry_after=None,
             malformed=False, delay=None, detail=None):
        """Injects a fault; status defaults to 503 (200 with malformed=True)."""
        body = {"path_prefix": path_prefix, "count": count, "type": type, "malformed": malformed}
        for k, v in (("status", status), ("retry_after", retry_after), ("delay", delay), ("detail", detail)):
            if v is not None:
                body[k] = v
        self.mgmt("POST", "fail", body)

    def set_renewal_info(self, cert_id, start=None, end=None, explanation_url=None, raw=None, retry_after=None):
        body = {"cert_id": cert_id}
        for k, v in (("start", start), ("end", end), ("explanation_url", explanation_url), ("raw", raw),
                     ("retry_after", retry_after)):
            if v is not None:
                body[k] = v
        self.mgmt("POST", "renewal-info", body)

    def set_dns_txt(self, name, value):
        self.mgmt("POST", "dns-txt", {"name": name, "value": value})

    def configure(self, **kw):
        self.mgmt("POST", "config", kw)

    def stats(self):
        return json.loads(self.mgmt("GET", "stats"))

    def orders(self):
        return json.loads(self.mgmt("GET", "orders"))

    def certs(self):
        return json.loads(self.mgmt("GET", "certs"))

    def root_pem(self, n=0):
        return self.mgmt("GET", f"roots/{n}").decode()

    def intermediate_pem(self, n=0):
        return self.mgmt("GET", f"intermediates/{n}").decode()


def http_request(base_url, method, path_or_url, body=None, headers=None, ctx=None):
    """One request on a fresh connection; returns (status, headers as list of pairs, body bytes)."""
    u = urllib.parse.urlsplit(path_or_url if "://" in path_or_url else base_url + path_or_url)
    conn = (http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=30) if u.scheme == "https"
            else http.client.HTTPConnection(u.hostname, u.port, timeout=30))
    try:
        conn.request(method, u.path + (("?" + u.query) if u.query else ""), body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.getheaders(), r.read()
    finally:
        conn.close()


# --- a minimal ACME client ---------------------------------------------------------------------------
class Key:
    """Account or certificate key with its JWS algorithm: ec256 (ES256), ec384 (ES384), rsa (RS256),
    ed25519 (EdDSA)."""

    def __init__(self, kind="ec256"):
        self.kind = kind
        if kind == "ec256":
            self.priv, self.alg, self.size = ec.generate_private_key(ec.SECP256R1()), "ES256", 32
        elif kind == "ec384":
            self.priv, self.alg, self.size = ec.generate_private_key(ec.SECP384R1()), "ES384", 48
        elif kind == "rsa":
            self.priv, self.alg = rsa.generate_private_key(65537, 2048), "RS256"
        elif kind == "ed25519":
            self.priv, self.alg = ed25519.Ed25519PrivateKey.generate(), "EdDSA"
        else:
            raise ValueError(kind)

    def jwk(self):
        pub = self.priv.public_key()
        if self.kind.startswith("ec"):
            n = pub.public_numbers()
            return {"kty": "EC", "crv": "P-256" if self.kind == "ec256" else "P-384",
                    "x": b64u(n.x.to_bytes(self.size, "big")), "y": b64u(n.y.to_bytes(self.size, "big"))}
        if self.kind == "rsa":
            n = pub.public_numbers()
            return {"kty": "RSA", "n": b64u(n.n.to_bytes((n.n.bit_length() + 7) // 8, "big")), "e": b64u(b"\x01\x00\x01")}
        return {"kty": "OKP", "crv": "Ed25519",
                "x": b64u(pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))}

    def thumbprint(self):
        j = self.jwk()
        keys = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}[j["kty"]]
        return b64u(hashlib.sha256(json.dumps({k: j[k] for k in keys}, separators=(",", ":"),
                                              sort_keys=True).encode()).digest())

    def sign(self, data):
        if self.kind.startswith("ec"):
            h = hashes.SHA256() if self.kind == "ec256" else hashes.SHA384()
            r, s = decode_dss_signature(self.priv.sign(data, ec.ECDSA(h)))
            return r.to_bytes(self.size, "big") + s.to_bytes(self.size, "big")
        if self.kind == "rsa":
            return self.priv.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return self.priv.sign(data)


class Resp:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def json(self):
        return json.loads(self.body)


class AcmeClient:
    def __init__(self, server, key=None):
        self.srv = server
        self.key = key or Key("ec256")
        self.kid = None
        self.nonce = None
        self._conn = None
        self.directory = self.get(server.dir_url).json

    def request(self, method, url, body=None, headers=None):
        """One request on this client's keep-alive connection (reopened once if the server closed it)."""
        u = urllib.parse.urlsplit(url if "://" in url else self.srv.base_url + url)
        for attempt in (0, 1):
            if self._conn is None:
                self._conn = (http.client.HTTPSConnection(u.hostname, u.port, context=self.srv.ssl_context(),
                                                          timeout=30) if u.scheme == "https"
                              else http.client.HTTPConnection(u.hostname, u.port, timeout=30))
            try:
                self._conn.request(method, u.path, body=body, headers=headers or {})
                resp = self._conn.getresponse()
                r = Resp(resp.status, resp.getheaders(), resp.read())
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._conn.close()
                self._conn = None
                if attempt:
                    raise
        if r.header("Connection") == "close":
            self._conn.close()
            self._conn = None
        if r.header("Replay-Nonce"):
            self.nonce = r.header("Replay-Nonce")
        return r

    def get(self, url):
        return self.request("GET", url)

    def fresh_nonce(self):
        if self.nonce is None:
            self.request("HEAD", self.directory["newNonce"])
        n, self.nonce = self.nonce, None
        return n

    def jws(self, url, payload, use_jwk=False, key=None, nonce=None, extra=None, kid=None):
        """Serializes a flattened JWS (payload None means POST-as-GET)."""
        key = key or self.key
        prot = {"alg": key.alg, "nonce": nonce if nonce is not None else self.fresh_nonce(), "url": url}
        if use_jwk:
            prot["jwk"] = key.jwk()
        else:
            prot["kid"] = kid or self.kid
        prot.update(extra or {})
        p64 = b64u(json.dumps(prot).encode())
        pl64 = "" if payload is None else b64u(json.dumps(payload).encode())
        sig = key.sign(f"{p64}.{pl64}".encode())
        return json.dumps({"protected": p64, "payload": pl64, "signature": b64u(sig)}).encode()

    def post(self, url, payload, retry_bad_nonce=True, **kw):
        for _ in range(3):
            r = self.request("POST", url, self.jws(url, payload, **kw), {"Content-Type": "application/jose+json"})
            if not (retry_bad_nonce and r.status == 400 and r.body and
                    r.json.get("type") == "urn:ietf:params:acme:error:badNonce"):
                return r
        return r

    def register(self, email="a@example.test", eab=None, **extra):
        payload = {"termsOfServiceAgreed": True, "contact": [f"mailto:{email}"], **extra}
        if eab:
            kid, hkey = eab
            url = self.directory["newAccount"]
            p64 = b64u(json.dumps({"alg": "HS256", "kid": kid, "url": url}).encode())
            pl64 = b64u(json.dumps(self.key.jwk()).encode())
            raw = base64.urlsafe_b64decode(hkey + "=" * (-len(hkey) % 4))
            mac = hmac.new(raw, f"{p64}.{pl64}".encode(), hashlib.sha256).digest()
            payload["externalAccountBinding"] = {"protected": p64, "payload": pl64, "signature": b64u(mac)}
        r = self.post(self.directory["newAccount"], payload, use_jwk=True)
        if r.status in (200, 201):
            self.kid = r.header("Location")
        return r

    def new_order(self, names, **extra):
        return self.post(self.directory["newOrder"],
                         {"identifiers": [{"type": "dns", "value": n} for n in names], **extra})

    def poll(self, url, until, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            r = self.post(url, None)
            if r.status != 200 or r.json["status"] in until or time.monotonic() > deadline:
                return r
            time.sleep(min(float(r.header("Retry-After") or 0.1), 0.2))  # capped: tests, not production

    def key_authorization(self, token):
        return f"{token}.{self.key.thumbprint()}"

    def complete_authorizations(self, order, ctype="http-01", before_respond=None):
        for az_url in order["authorizations"]:
            az = self.post(az_url, None).json
            if az["status"] == "valid":
                continue
            ch = next(c for c in az["challenges"] if c["type"] == ctype)
            if before_respond:
                before_respond(az, ch, self.key_authorization(ch["token"]))
            r = self.post(ch["url"], {})
            assert r.status == 200, r.body
            r = self.poll(az_url, ("valid", "invalid"))
            assert r.json["status"] == "valid", r.body

    def finalize(self, order_url, order, names, cert_key=None):
        cert_key = cert_key or ec.generate_private_key(ec.SECP256R1())
        csr = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
               .sign(cert_key, hashes.SHA256()))
        r = self.post(order["finalize"], {"csr": b64u(csr.public_bytes(serialization.Encoding.DER))})
        return r, cert_key

    def issue(self, names, ctype="http-01", before_respond=None, **order_extra):
        """account must be registered; returns (chain PEM, cert key, final order JSON, order URL)."""
        r = self.new_order(names, **order_extra)
        assert r.status == 201, r.body
        order, order_url = r.json, r.header("Location")
        self.complete_authorizations(order, ctype, before_respond)
        order = self.poll(order_url, ("ready", "invalid")).json
        assert order["status"] == "ready", order
        r, cert_key = self.finalize(order_url, order, names)
        assert r.status == 200, r.body
        order = self.poll(order_url, ("valid", "invalid")).json
        assert order["status"] == "valid", order
        chain = self.post(order["certificate"], None)
        assert chain.status == 200, chain.body
        return chain.body.decode(), cert_key, order, order_url


def cert_id(cert):
    """RFC 9773 §4.1 certID of a cryptography certificate."""
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    serial = cert.serial_number
    return b64u(aki) + "." + b64u(serial.to_bytes((serial.bit_length() + 8) // 8, "big"))
