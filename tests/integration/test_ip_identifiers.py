"""RFC 8738 IP address identifiers end to end with Debian's Pebble and real validation: for an
"ip" identifier Pebble connects to the address itself (http-01 with the address as Host,
tls-alpn-01 with the reverse-DNS name in SNI), so 127.0.0.1 (and ::1 where the machine has IPv6
loopback) reaches edgecert's responders on the ports the test picked.

- `edgecert issue` for 127.0.0.1 over http-01 and tls-alpn-01 (--domains and --ip-address), ::1;
- bad input (an address with only dns-01, a name in --ip-address, an IPv4-mapped address) is
  refused before any order;
- `edgecert run` with a certificate that has dnsNames and ipAddresses serves it to clients that
  send no SNI: curl https://127.0.0.1:PORT/ and openssl s_client without -servername.
"""
import json
import os
import socket
import ssl
import subprocess

import pytest
from cryptography import x509

from edgecert_helpers import openssl, run, split_pem
from pebble_fixture import Pebble, free_port


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def pebble(tmp_path_factory):
    p = Pebble(str(tmp_path_factory.mktemp("pebble-ip")))
    yield p
    p.stop()


def issue(p, out, *ids, challenge, http=None, tls=None):
    return run("issue", "--server", p.dir_url, "--ca-bundle", p.ca_file, "--out", str(out),
               "--email", "ops@example.test", "--challenge", challenge,
               "--http-port", http or f"127.0.0.1:{p.http_port}", "--tls-port", tls or f"127.0.0.1:{p.tls_port}",
               *ids, env={"EDGECERT_LOG_LEVEL": "debug"})


def sans(pem_path):
    leaf = x509.load_pem_x509_certificate(open(pem_path, "rb").read())
    ext = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return (sorted(ext.get_values_for_type(x509.DNSName)),
            sorted(str(ip) for ip in ext.get_values_for_type(x509.IPAddress)))


def verify_for_ip(chain_path, root_pem, ip, workdir):
    """openssl verify of the leaf against Pebble's root, checking that it is valid for `ip`."""
    certs = split_pem(open(chain_path).read())
    paths = {}
    for name, text in (("leaf", certs[0]), ("inter", "".join(certs[1:])), ("root", root_pem)):
        paths[name] = os.path.join(str(workdir), name + ".pem")
        with open(paths[name], "w") as f:
            f.write(text)
    return openssl("verify", "-CAfile", paths["root"], "-untrusted", paths["inter"], "-verify_ip", ip, paths["leaf"])


def test_issue_127_0_0_1_over_http01_and_tls_alpn01(pebble, tmp_path):
    out = tmp_path / "out"
    r = issue(pebble, out, "--domains", "127.0.0.1", challenge="http-01")
    assert r.returncode == 0, r.stdout + r.stderr
    crt = out / "127.0.0.1" / "tls.crt"
    assert str(crt) in r.stdout
    assert sans(crt) == ([], ["127.0.0.1"])
    v = verify_for_ip(crt, pebble.root_pem(), "127.0.0.1", tmp_path)
    assert v.returncode == 0, v.stdout + v.stderr
    assert json.load(open(out / "127.0.0.1" / "certificate.json"))["domains"] == ["127.0.0.1"]
    # Pebble fetched the token from the address itself (RFC 8738 §5).
    assert "http-01 responder: GET /.well-known/acme-challenge/" in r.stderr and "-> 200" in r.stderr, r.stderr

    # tls-alpn-01: Pebble asks with SNI 1.0.0.127.in-addr.arpa (RFC 8738 §6) and checks that the
    # challenge certificate has exactly the iPAddress SAN; --ip-address (certbot's flag) adds the
    # address to the certificate named by --domains.
    r = issue(pebble, out, "--domains", "ip.example.test", "--ip-address", "127.0.0.1", challenge="tls-alpn-01")
    assert r.returncode == 0, r.stdout + r.stderr
    crt = out / "ip.example.test" / "tls.crt"
    assert sans(crt) == (["ip.example.test"], ["127.0.0.1"])
    assert r.stderr.count("tls-alpn-01 responder: served challenge certificate") >= 2, r.stderr
    v = verify_for_ip(crt, pebble.root_pem(), "127.0.0.1", tmp_path)
    assert v.returncode == 0, v.stdout + v.stderr


@pytest.mark.skipif(not ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
def test_issue_ipv6_loopback(pebble, tmp_path):
    out = tmp_path / "out"
    # Any textual form is accepted; the identifier and the folder use the canonical one.
    r = issue(pebble, out, "--domains", "0:0:0::1", challenge="http-01", http=f"[::1]:{pebble.http_port}")
    assert r.returncode == 0, r.stdout + r.stderr
    crt = out / "__1" / "tls.crt"
    assert sans(crt) == ([], ["::1"])
    assert json.load(open(out / "__1" / "certificate.json"))["domains"] == ["::1"]
    v = verify_for_ip(crt, pebble.root_pem(), "::1", tmp_path)
    assert v.returncode == 0, v.stdout + v.stderr
    # tls-alpn-01 over IPv6: SNI is the 32-nibble ip6.arpa name.
    r = issue(pebble, out, "--ip-address", "::1", challenge="tls-alpn-01", tls=f"[::1]:{pebble.tls_port}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "tls-alpn-01 responder: served challenge certificate" in r.stderr
    assert sans(crt) == ([], ["::1"])


def test_bad_addresses_are_refused_before_any_order(pebble, tmp_path):
    out = tmp_path / "out"
    cases = [
        (["--domains", "127.0.0.1"], "dns-01", "127.0.0.1 is an IP address: it is validated with --challenge "
                                               "http-01 or tls-alpn-01, never dns-01 (RFC 8738)"),
        (["--ip-address", "db.example.test"], "http-01", "--ip-address 'db.example.test' is not an IP address"),
        (["--domains", "::ffff:127.0.0.1"], "http-01", "IPv4-mapped IPv6 address: write it as 127.0.0.1"),
        (["--domains", "127.0.0.256"], "http-01", "'127.0.0.256' is not a valid DNS name or IP address"),
        (["--domains", "a.example.test", "--domains", "b.example.test", "--ip-address", "127.0.0.1"], "http-01",
         "--ip-address adds to one certificate"),
    ]
    for ids, challenge, message in cases:
        r = issue(pebble, out, *ids, challenge=challenge)
        assert r.returncode == 2, (ids, r.stdout, r.stderr)
        assert message in r.stderr, (ids, r.stderr)
    assert not out.exists(), "nothing is written (no account, no order) for refused input"


def no_sni_peer(port):
    """One handshake without SNI (what https://127.0.0.1/ does); the served certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=None) as s:
            return x509.load_der_x509_certificate(s.getpeercert(binary_form=True))


def test_run_serves_the_ip_certificate_to_clients_without_sni(tmp_path):
    from test_run import Backend, EdgecertRun, wait_for  # the `edgecert run` harness

    tls_port, http_port = free_port(), free_port()
    pebble = Pebble(str(tmp_path / "pebble"), http_port=http_port, tls_port=tls_port)
    backend = Backend(str(tmp_path / "www"))
    r = None
    try:
        issuers = [{"name": "pebble", "acme": {"server": pebble.dir_url, "caBundleFile": pebble.ca_file,
                                               "solvers": [{"http01": {}}]}},
                   {"name": "pebble-alpn", "acme": {"server": pebble.dir_url, "caBundleFile": pebble.ca_file,
                                                    "solvers": [{"tlsAlpn01": {}}]}}]
        certs = [{"name": "web", "dnsNames": ["web.ip.test"], "issuerRef": {"name": "pebble"}},
                 {"name": "edge", "dnsNames": ["edge.ip.test"], "ipAddresses": ["127.0.0.1"],
                  "issuerRef": {"name": "pebble-alpn"}}]
        r = EdgecertRun(tmp_path / "run", issuers, certs, backend.port, tls_port=tls_port, http_port=http_port)
        with open(r.config) as f:
            doc = json.load(f)
        doc["terminator"]["defaultCertificate"] = "web"  # so that only the address picks "edge"
        with open(r.config, "w") as f:
            json.dump(doc, f)
        r.start()
        edge_crt, web_crt = r.wait_cert("edge", timeout=40), r.wait_cert("web", timeout=40)
        assert sans(edge_crt) == (["edge.ip.test"], ["127.0.0.1"])
        assert json.load(open(os.path.join(r.cert_dir("edge"), "certificate.json")))["ipAddresses"] == ["127.0.0.1"]
        root = str(tmp_path / "pebble-root.pem")
        with open(root, "w") as f:
            f.write(pebble.root_pem())
        edge = x509.load_pem_x509_certificate(open(edge_crt, "rb").read())

        def serves_edge():
            # The files are in the store before the terminator's snapshot has them: until then a
            # client without SNI is refused (unrecognized_name, nothing to serve yet).
            try:
                return no_sni_peer(tls_port).serial_number == edge.serial_number
            except ssl.SSLError:
                return False

        wait_for(serves_edge, 10,
                 "the IP certificate served without SNI", r.proc, r.log)

        # curl sends no SNI for an address and checks the iPAddress SAN against Pebble's root.
        c = subprocess.run(["curl", "-sS", "--max-time", "5", "--cacert", root, f"https://127.0.0.1:{tls_port}/"],
                           capture_output=True, text=True)
        assert c.returncode == 0 and "hello from the backend" in c.stdout, c.stderr
        # openssl s_client without -servername (-noservername: not even the default one).
        s = openssl("s_client", "-connect", f"127.0.0.1:{tls_port}", "-noservername", "-CAfile", root,
                    "-verify_return_error", "-verify_ip", "127.0.0.1", "-brief", input="")
        assert "Verification: OK" in s.stderr + s.stdout, s.stderr
        sp = openssl("s_client", "-connect", f"127.0.0.1:{tls_port}", "-noservername", "-showcerts", input="")
        served = x509.load_pem_x509_certificate(split_pem(sp.stdout)[0].encode())
        assert served.serial_number == edge.serial_number
        # A name still decides when it is sent; an unknown name gets the default, not the address's.
        web = x509.load_pem_x509_certificate(open(web_crt, "rb").read())
        for name, want in (("web.ip.test", web), ("edge.ip.test", edge), ("other.ip.test", web)):
            got = openssl("s_client", "-connect", f"127.0.0.1:{tls_port}", "-servername", name, input="")
            assert x509.load_pem_x509_certificate(split_pem(got.stdout)[0].encode()).serial_number == \
                want.serial_number, name
        assert r.stop() == 0
    finally:
        if r:
            r.stop()
        backend.stop()
        pebble.stop()
