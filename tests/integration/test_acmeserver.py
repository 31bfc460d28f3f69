"""Tests of the in-repo ACME test server (tests/acmeserver): a pure-python client drives the full RFC 8555
flow, negative cases check that the server really verifies JWS/nonce/url, ARI/profiles/replaces behave
per RFC 9773, and Debian's lego (a real, independent client) obtains certificates from it."""
import base64
import datetime
import http.server
import json
import os
import pathlib
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from acmeserver_fixture import (AcmeClient, AcmeServer, Key, b64u, cert_id, free_port,  # noqa: E402
                                http_request)

ERR = "urn:ietf:params:acme:error:"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with AcmeServer(tmp_path_factory.mktemp("acme"), profiles="shortlived=518400,classic=7776000",
                    alternate_roots=1, validity=864000, quiet=True) as s:
        yield s


@pytest.fixture
def client(srv):
    c = AcmeClient(srv)
    assert c.register().status == 201
    return c


def load_chain(pem):
    # cryptography 38 (Debian 12) has no load_pem_x509_certificates
    end = "-----END CERTIFICATE-----"
    return [x509.load_pem_x509_certificate((blk + end).encode()) for blk in pem.split(end) if blk.strip()]


def openssl_verify(tmp_path, root_pem, chain_pem, name):
    certs = load_chain(chain_pem)
    (tmp_path / "root.pem").write_text(root_pem)
    (tmp_path / "leaf.pem").write_bytes(certs[0].public_bytes(serialization.Encoding.PEM))
    (tmp_path / "inter.pem").write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs[1:]))
    return subprocess.run(["openssl", "verify", "-purpose", "sslserver", "-verify_hostname", name,
                           "-CAfile", str(tmp_path / "root.pem"), "-untrusted", str(tmp_path / "inter.pem"),
                           str(tmp_path / "leaf.pem")], capture_output=True, text=True)


def problem(r, kind, status=None):
    assert r.header("Content-Type") == "application/problem+json", (r.status, r.body)
    doc = r.json
    assert doc["type"] == ERR + kind, doc
    assert doc["status"] == r.status and isinstance(doc["detail"], str)
    if status:
        assert r.status == status, doc
    assert r.header("Replay-Nonce"), "every response carries a fresh nonce"
    return doc


# --- (1) full flow -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["ec256", "ec384", "rsa", "ed25519"])
def test_full_flow_with_each_account_key_type(srv, tmp_path, kind):
    c = AcmeClient(srv, Key(kind))
    r = c.register()
    assert r.status == 201 and r.json["status"] == "valid" and c.kid.startswith(srv.base_url + "/acct/")
    names = ["a.example.test", "b.example.test"]
    chain, cert_key, order, order_url = c.issue(names)
    leaf, inter = load_chain(chain)
    assert sorted(leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                  .get_values_for_type(x509.DNSName)) == names
    res = openssl_verify(tmp_path, srv.root_pem(0), chain, "b.example.test")
    assert res.returncode == 0, res.stdout + res.stderr
    assert inter.public_bytes(serialization.Encoding.PEM).decode() == srv.intermediate_pem(0)
    # The order carries the issued validity (no profile requested: --validity 864000 s).
    assert (leaf.not_valid_after - leaf.not_valid_before).total_seconds() == 864000
    assert order["notAfter"] == leaf.not_valid_after.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_order_state_machine_and_headers(srv, client):
    r = client.new_order(["s.example.test"])
    assert r.status == 201 and r.header("Retry-After") == "1"
    order, url = r.json, r.header("Location")
    assert order["status"] == "pending" and f'<{srv.dir_url}>;rel="index"' in r.all("Link")
    # finalize before the authorizations are done: orderNotReady
    fin, _ = client.finalize(url, order, ["s.example.test"])
    problem(fin, "orderNotReady", 403)
    az = client.post(order["authorizations"][0], None).json
    assert {c["type"] for c in az["challenges"]} == {"http-01", "dns-01", "tls-alpn-01"}
    ch = az["challenges"][0]
    r = client.post(ch["url"], {})
    assert r.status == 200 and r.json["status"] in ("processing", "valid")
    assert r.header("Link") and 'rel="up"' in " ".join(r.all("Link"))
    assert client.poll(url, ("ready",)).json["status"] == "ready"
    # a CSR for other names: badCSR, and the order stays ready
    fin, _ = client.finalize(url, order, ["other.example.test"])
    problem(fin, "badCSR", 400)
    fin, _ = client.finalize(url, order, ["s.example.test"])
    assert fin.status == 200 and fin.json["status"] == "processing" and fin.header("Retry-After")
    seen = [client.post(url, None).json["status"] for _ in range(2)]
    assert seen == ["processing", "valid"]
    # finalize again: the order is no longer ready
    problem(client.finalize(url, order, ["s.example.test"])[0], "orderNotReady", 403)


def test_authz_reuse_and_orders_list(srv, client):
    _, _, first, first_url = client.issue(["reuse.example.test"])
    r = client.new_order(["reuse.example.test"])
    assert r.status == 201 and r.json["status"] == "pending"  # no reuse by default
    srv.configure(authz_reuse=True)
    try:
        r2 = client.new_order(["reuse.example.test"])
        assert r2.status == 201 and r2.json["status"] == "ready"
        assert r2.json["authorizations"] == first["authorizations"]  # the valid one, not r's pending one
    finally:
        srv.configure(authz_reuse=False)
    orders = client.post(client.post(client.kid, None).json["orders"], None).json["orders"]
    assert orders == [first_url, r.header("Location"), r2.header("Location")]


def test_wildcard_gets_only_dns01_and_alternate_chain(srv, client, tmp_path):
    r = client.new_order(["*.w.example.test", "w.example.test"])
    assert r.status == 201
    kinds = {}
    for u in r.json["authorizations"]:
        az = client.post(u, None).json
        kinds[(az["identifier"]["value"], az.get("wildcard", False))] = [c["type"] for c in az["challenges"]]
    assert kinds[("w.example.test", True)] == ["dns-01"]
    chain, _, order, _ = client.issue(["*.w.example.test", "w.example.test"], ctype="dns-01")
    dl = client.post(order["certificate"], None)
    assert dl.header("Content-Type") == "application/pem-certificate-chain"
    alts = [lk.split(">")[0][1:] for lk in dl.all("Link") if 'rel="alternate"' in lk]
    assert len(alts) == 1
    alt = client.post(alts[0], None)
    assert alt.status == 200 and load_chain(alt.body.decode())[0] == load_chain(chain)[0]
    assert "Fake Alt Root 1" in load_chain(alt.body.decode())[1].issuer.rfc4514_string()
    assert openssl_verify(tmp_path, srv.root_pem(1), alt.body.decode(), "x.w.example.test").returncode == 0
    assert openssl_verify(tmp_path, srv.root_pem(0), alt.body.decode(), "x.w.example.test").returncode != 0


# --- (2) negative checks: the server really verifies -------------------------------------------------
def raw_post(c, url, body, ctype="application/jose+json"):
    return c.request("POST", url, body, {"Content-Type": ctype})


def test_bad_signature_rejected(srv, client):
    url = client.directory["newOrder"]
    body = json.loads(client.jws(url, {"identifiers": [{"type": "dns", "value": "x.example.test"}]}))
    sig = bytearray(base64.urlsafe_b64decode(body["signature"] + "=="))
    sig[5] ^= 0x01
    body["signature"] = b64u(bytes(sig))
    problem(raw_post(client, url, json.dumps(body).encode()), "malformed", 400)
    # signed by another key but claiming this account's kid
    other = Key("ec256")
    problem(raw_post(client, url, client.jws(url, {"identifiers": []}, key=other)), "malformed", 400)
    # payload swapped after signing
    body = json.loads(client.jws(url, {"identifiers": [{"type": "dns", "value": "x.example.test"}]}))
    body["payload"] = b64u(b'{"identifiers":[{"type":"dns","value":"evil.example.test"}]}')
    problem(raw_post(client, url, json.dumps(body).encode()), "malformed", 400)
    assert all(o["identifiers"] != ["evil.example.test"] for o in srv.orders())
    # ES256 with a DER (ASN.1) signature instead of raw r||s (RFC 7518 §3.4) is a classic client bug
    body = json.loads(client.jws(url, {"identifiers": [{"type": "dns", "value": "x.example.test"}]}))
    raw = base64.urlsafe_b64decode(body["signature"] + "==")
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
    body["signature"] = b64u(encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")))
    problem(raw_post(client, url, json.dumps(body).encode()), "malformed", 400)
    # padded base64url is not base64url (RFC 7515 §2)
    body = json.loads(client.jws(url, {"identifiers": [{"type": "dns", "value": "x.example.test"}]}))
    body["protected"] += "=" * (-len(body["protected"]) % 4 or 4)
    problem(raw_post(client, url, json.dumps(body).encode()), "malformed", 400)
    # a JWS in general serialization, and an unprotected header, are refused (RFC 8555 §6.2)
    body = json.loads(client.jws(url, {"identifiers": [{"type": "dns", "value": "x.example.test"}]}))
    problem(raw_post(client, url, json.dumps(dict(body, header={"kid": "x"})).encode()), "malformed", 400)


def test_nonce_is_single_use(srv, client):
    url = client.directory["newOrder"]
    nonce = client.fresh_nonce()
    payload = {"identifiers": [{"type": "dns", "value": "n.example.test"}]}
    assert raw_post(client, url, client.jws(url, payload, nonce=nonce)).status == 201
    r = raw_post(client, url, client.jws(url, payload, nonce=nonce))
    problem(r, "badNonce", 400)
    problem(raw_post(client, url, client.jws(url, payload, nonce="bm90LWEtbm9uY2U")), "badNonce", 400)
    # the fresh Replay-Nonce of the error response works
    assert raw_post(client, url, client.jws(url, payload, nonce=r.header("Replay-Nonce"))).status == 201


def test_url_content_type_and_auth_mode_checks(srv, client):
    url = client.directory["newOrder"]
    payload = {"identifiers": [{"type": "dns", "value": "u.example.test"}]}
    problem(raw_post(client, url, client.jws(srv.base_url + "/new-account", payload)), "unauthorized", 403)
    problem(raw_post(client, url, client.jws(url, payload), ctype="application/json"), "malformed", 415)
    problem(raw_post(client, url, client.jws(url, payload, use_jwk=True)), "malformed", 400)
    problem(raw_post(client, url, client.jws(url, payload, kid=srv.base_url + "/acct/00")), "accountDoesNotExist")
    problem(client.request("GET", url), "malformed", 405)
    problem(raw_post(client, url, client.jws(url, payload, extra={"alg": "HS256"})), "badSignatureAlgorithm")
    # POST-as-GET is required to read an order: a {} payload is refused
    o = client.new_order(["pag.example.test"])
    problem(client.post(o.header("Location"), {}), "malformed", 400)


def test_jwk_encoding_is_strict(srv):
    c = AcmeClient(srv)
    good = c.key.jwk()
    # an EC coordinate without its leading zero octet (RFC 7518 §6.2.1.2 wants the full 32 octets)
    short = dict(good, x=b64u(base64.urlsafe_b64decode(good["x"] + "==")[1:]))
    r = c.post(c.directory["newAccount"], {"termsOfServiceAgreed": True}, use_jwk=True, extra={"jwk": short})
    assert "32 octets" in problem(r, "malformed", 400)["detail"]
    assert c.register().status == 201  # the same key, correctly encoded


def test_accounts(srv):
    c = AcmeClient(srv)
    problem(c.register(onlyReturnExisting=True), "accountDoesNotExist", 400)
    r = c.post(c.directory["newAccount"], {"contact": ["mailto:x@example.test"]}, use_jwk=True)
    problem(r, "malformed")  # terms of service not agreed
    problem(c.register(email="not an email"), "invalidContact")
    assert c.register().status == 201
    again = c.register(onlyReturnExisting=True)
    assert again.status == 200 and again.header("Location") == c.kid
    r = c.post(c.kid, {"contact": ["mailto:new@example.test"]})
    assert r.status == 200 and r.json["contact"] == ["mailto:new@example.test"]
    assert c.post(c.kid, None).json["contact"] == ["mailto:new@example.test"]
    # key change (RFC 8555 §7.3.5), then the old key no longer works
    new = Key("ec256")  # same type as the old key, so the old key's signature is checked and fails
    url = c.directory["keyChange"]

    def inner_jws(payload, inner_url=url, signer=new):
        prot = {"alg": "ES256", "jwk": new.jwk(), "url": inner_url}
        p64, pl64 = b64u(json.dumps(prot).encode()), b64u(json.dumps(payload).encode())
        return {"protected": p64, "payload": pl64, "signature": b64u(signer.sign(f"{p64}.{pl64}".encode()))}

    good = {"account": c.kid, "oldKey": c.key.jwk()}
    problem(c.post(url, inner_jws(good, inner_url=c.kid)), "malformed")  # inner url != outer url
    problem(c.post(url, inner_jws(dict(good, oldKey=new.jwk()))), "malformed")  # wrong oldKey
    problem(c.post(url, inner_jws(good, signer=Key("ec256"))), "malformed")  # not signed by the new key
    r = c.post(url, inner_jws(good))
    assert r.status == 200, r.body
    old = c.key
    c.key = new
    assert c.post(c.kid, None).status == 200
    c.key = old
    problem(c.post(c.kid, None), "malformed")
    c.key = new
    r = c.post(c.kid, {"status": "deactivated"})
    assert r.status == 200 and r.json["status"] == "deactivated"
    problem(c.post(c.kid, None), "unauthorized", 403)


def test_profiles(srv, client):
    problem(client.new_order(["p.example.test"], profile="nope"), "invalidProfile", 400)
    assert client.get(srv.dir_url).json["meta"]["profiles"].keys() == {"shortlived", "classic"}
    chain, _, order, _ = client.issue(["p.example.test"], profile="shortlived")
    leaf = load_chain(chain)[0]
    assert order["profile"] == "shortlived"
    assert (leaf.not_valid_after - leaf.not_valid_before).total_seconds() == 518400


def test_identifier_validation(client):
    doc = problem(client.new_order(["bad_name.example.test", "also..bad"]), "rejectedIdentifier", 400)
    assert len(doc["subproblems"]) == 2 and doc["subproblems"][0]["identifier"]["value"] == "bad_name.example.test"
    problem(client.post(client.directory["newOrder"], {"identifiers": [{"type": "ip", "value": "10.0.0.1"}]}),
            "unsupportedIdentifier")


def test_replaces_and_ari(srv, client):
    chain, cert_key, _, _ = client.issue(["r.example.test"])
    leaf = load_chain(chain)[0]
    cid = cert_id(leaf)
    r = client.get(client.directory["renewalInfo"] + "/" + cid)
    assert r.status == 200 and r.header("Retry-After") == "60"
    w = r.json["suggestedWindow"]
    start = datetime.datetime.fromisoformat(w["start"].replace("Z", "+00:00")).replace(tzinfo=None)
    end = datetime.datetime.fromisoformat(w["end"].replace("Z", "+00:00")).replace(tzinfo=None)
    life = leaf.not_valid_after - leaf.not_valid_before
    assert abs((start - leaf.not_valid_before) - life * 2 / 3) < datetime.timedelta(seconds=2)
    assert start < end <= leaf.not_valid_after
    # unknown and malformed certIDs
    problem(client.get(client.directory["renewalInfo"] + "/" + b64u(b"nokey") + "." + b64u(b"\x01")),
            "malformed", 404)
    problem(client.get(client.directory["renewalInfo"] + "/not-a-cert-id"), "malformed", 400)
    # replaces: unknown cert → malformed; a real one → order records it; again → alreadyReplaced (409)
    problem(client.new_order(["r.example.test"], replaces=b64u(b"nokey") + "." + b64u(b"\x01")), "malformed")
    other = AcmeClient(srv)
    other.register(email="b@example.test")
    problem(other.new_order(["r.example.test"], replaces=cid), "unauthorized", 403)
    r = client.new_order(["r.example.test"], replaces=cid)
    assert r.status == 201 and r.json["replaces"] == cid
    problem(client.new_order(["r.example.test"], replaces=cid), "alreadyReplaced", 409)
    assert [o["replaces"] for o in srv.orders() if o["replaces"] == cid] == [cid]
    # management override of the window, then revocation moves it into the past
    srv.set_renewal_info(cid, start="2030-01-01T00:00:00Z", end="2030-01-02T00:00:00Z",
                         explanation_url="https://acme.example.test/why")
    r = client.get(client.directory["renewalInfo"] + "/" + cid).json
    assert r == {"suggestedWindow": {"start": "2030-01-01T00:00:00Z", "end": "2030-01-02T00:00:00Z"},
                 "explanationURL": "https://acme.example.test/why"}
    srv.mgmt("POST", "renewal-info", {"cert_id": cid, "clear": True})
    der = b64u(leaf.public_bytes(serialization.Encoding.DER))
    problem(client.post(client.directory["revokeCert"], {"certificate": der, "reason": 7}), "badRevocationReason")
    assert client.post(client.directory["revokeCert"], {"certificate": der, "reason": 4}).status == 200
    problem(client.post(client.directory["revokeCert"], {"certificate": der}), "alreadyRevoked")
    w = client.get(client.directory["renewalInfo"] + "/" + cid).json["suggestedWindow"]
    assert datetime.datetime.fromisoformat(w["end"].replace("Z", "+00:00")) < datetime.datetime.now(datetime.timezone.utc)


def test_revoke_with_certificate_key(srv, client):
    chain, cert_key, _, _ = client.issue(["k.example.test"])
    der = b64u(load_chain(chain)[0].public_bytes(serialization.Encoding.DER))
    stranger = AcmeClient(srv)
    stranger.register(email="c@example.test")
    problem(stranger.post(stranger.directory["revokeCert"], {"certificate": der}), "unauthorized", 403)
    holder = AcmeClient(srv, Key("ec256"))
    holder.key.priv = cert_key  # sign with the certificate's own key, jwk in the header
    r = holder.post(holder.directory["revokeCert"], {"certificate": der, "reason": 1}, use_jwk=True)
    assert r.status == 200, r.body
    assert [c["revocation_reason"] for c in srv.certs() if c["names"] == ["k.example.test"]] == [1]


def test_fault_injection(srv, client):
    before = srv.stats().get("newOrder", 0)
    srv.fail("/new-order", count=1, status=429, type="rateLimited", retry_after=7)
    r = client.new_order(["f.example.test"])
    doc = problem(r, "rateLimited", 429)
    assert r.header("Retry-After") == "7" and "injected" in doc["detail"]
    assert srv.stats().get("newOrder", 0) == before  # the fault answered before the handler ran
    assert client.new_order(["f.example.test"]).status == 201
    srv.fail("/new-order", status=200, malformed=True)
    r = client.new_order(["f.example.test"])
    with pytest.raises(ValueError):
        json.loads(r.body)
    srv.fail("*", status=503, type="serverInternal", retry_after=1)
    problem(client.get(srv.dir_url), "serverInternal", 503)


def test_concurrent_clients(srv):
    errors = []

    def run(i):
        try:
            c = AcmeClient(srv, Key("ec256"))
            assert c.register(email=f"p{i}@example.test").status == 201
            c.issue([f"c{i}.example.test"])
        except Exception as e:  # collected and asserted below
            errors.append(repr(e))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []


# --- real validation -----------------------------------------------------------------------------------
class _Responder(http.server.BaseHTTPRequestHandler):
    tokens = {}

    def do_GET(self):
        body = self.tokens.get((self.headers.get("Host"), self.path))
        self.send_response(200 if body else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *a):
        pass


def test_real_http01_and_dns01_validation(tmp_path):
    hport = free_port()
    web = http.server.ThreadingHTTPServer(("127.0.0.1", hport), _Responder)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        with AcmeServer(tmp_path, validation="http", http_port=hport, retry_after=0, quiet=True) as s:
            c = AcmeClient(s)
            c.register()

            def serve(az, ch, ka):
                _Responder.tokens[(az["identifier"]["value"], "/.well-known/acme-challenge/" + ch["token"])] = \
                    ka.encode() + b"\n"

            c.issue(["h.example.test"], before_respond=serve)
            # dns-01: the record set through the management API is checked
            import hashlib
            c.issue(["*.h.example.test"], ctype="dns-01", before_respond=lambda az, ch, ka: s.set_dns_txt(
                "_acme-challenge." + az["identifier"]["value"], b64u(hashlib.sha256(ka.encode()).digest())))
            # a wrong answer makes the challenge, authorization and order invalid
            r = c.new_order(["bad.example.test"])
            order_url = r.header("Location")
            az = c.post(r.json["authorizations"][0], None).json
            ch = next(x for x in az["challenges"] if x["type"] == "http-01")
            _Responder.tokens[("bad.example.test", "/.well-known/acme-challenge/" + ch["token"])] = b"wrong"
            c.post(ch["url"], {})
            az = c.poll(r.json["authorizations"][0], ("valid", "invalid")).json
            assert az["status"] == "invalid"
            assert az["challenges"][0]["error"]["type"] == ERR + "incorrectResponse"
            assert c.post(order_url, None).json["status"] == "invalid"
    finally:
        web.shutdown()
        web.server_close()


def test_real_tls_alpn01_validation(tmp_path):
    tport = free_port()
    key = ec.generate_private_key(ec.SECP256R1())
    answers = {}
    stop = threading.Event()

    def make_ctx(domain, ka):
        import hashlib
        now = datetime.datetime.now(datetime.timezone.utc)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(hours=1))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
                .add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31"),
                                                          b"\x04\x20" + hashlib.sha256(ka.encode()).digest()),
                               critical=True)
                .sign(key, hashes.SHA256()))
        d = tmp_path / domain
        d.mkdir(exist_ok=True)
        (d / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (d / "k.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(d / "c.pem", d / "k.pem")
        ctx.set_alpn_protocols(["acme-tls/1"])
        return ctx

    base = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    base.set_alpn_protocols(["acme-tls/1"])
    base.sni_callback = lambda sock, name, _: setattr(sock, "context", answers[name]) if name in answers else None
    lsock = socket.create_server(("127.0.0.1", tport))
    lsock.settimeout(0.2)

    def serve():
        while not stop.is_set():
            try:
                conn, _ = lsock.accept()
            except socket.timeout:
                continue
            try:
                conn.settimeout(5)
                base.wrap_socket(conn, server_side=True).close()
            except (ssl.SSLError, OSError):
                conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        with AcmeServer(tmp_path, validation="tls-alpn", tls_port=tport, retry_after=0, quiet=True) as s:
            c = AcmeClient(s)
            c.register()
            c.issue(["t.example.test"], ctype="tls-alpn-01",
                    before_respond=lambda az, ch, ka: answers.__setitem__(az["identifier"]["value"],
                                                                          make_ctx(az["identifier"]["value"], ka)))
            assert s.stats()["validationsOk"] == 1
            # a responder answering with another key authorization fails the challenge
            r = c.new_order(["t2.example.test"])
            az = c.post(r.json["authorizations"][0], None).json
            ch = next(x for x in az["challenges"] if x["type"] == "tls-alpn-01")
            answers["t2.example.test"] = make_ctx("t2.example.test", ch["token"] + ".not-the-thumbprint")
            c.post(ch["url"], {})
            az = c.poll(r.json["authorizations"][0], ("valid", "invalid")).json
            assert az["status"] == "invalid"
            assert "acmeIdentifier" in az["challenges"][0]["error"]["detail"]
    finally:
        stop.set()
        t.join(2)
        lsock.close()


def test_eab_required(tmp_path):
    hkey = b64u(os.urandom(32))
    with AcmeServer(tmp_path, eab_required=True, eab_keys={"kid-1": hkey}, quiet=True) as s:
        c = AcmeClient(s)
        assert c.directory["meta"]["externalAccountRequired"] is True
        problem(c.register(), "externalAccountRequired")
        problem(c.register(eab=("kid-1", b64u(os.urandom(32)))), "unauthorized", 403)
        problem(c.register(eab=("kid-2", hkey)), "unauthorized", 403)
        r = c.register(eab=("kid-1", hkey))
        assert r.status == 201 and r.json["externalAccountBinding"] == {"kid": "kid-1"}


def test_starts_fast_and_stops_on_sigterm(tmp_path):
    t0 = time.monotonic()
    s = AcmeServer(tmp_path, tls=False).start()
    started = time.monotonic() - t0
    assert started < 1.5, started
    assert AcmeClient(s).get(s.dir_url).status == 200
    s.proc.send_signal(signal.SIGTERM)
    assert s.proc.wait(5) == 0
    s.stop()
    # a fixed --port prints plain "ready"
    port = free_port()
    p = subprocess.Popen([str(pathlib.Path(__file__).resolve().parents[1] / "acmeserver" / "run"), "--port",
                          str(port), "--quiet"], stdout=subprocess.PIPE)
    try:
        assert p.stdout.readline() == b"ready\n"
        assert http_request(f"http://127.0.0.1:{port}", "GET", "/dir")[0] == 200
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(5) == 0
        p.stdout.close()


def test_ari_overrides_and_faults(srv, client):
    chain, _, _, _ = client.issue(["o.example.test"])
    cid = cert_id(load_chain(chain)[0])
    url = client.directory["renewalInfo"] + "/" + cid
    srv.set_renewal_info(cid, raw='{"suggestedWindow": {"start": "yesterday"', retry_after=5)
    r = client.get(url)
    assert r.status == 200 and r.header("Retry-After") == "5"
    with pytest.raises(ValueError):
        json.loads(r.body)
    srv.mgmt("POST", "renewal-info", {"cert_id": cid, "clear": True})
    assert client.get(url).json["suggestedWindow"]["start"] > "2000"
    srv.fail("/renewal-info/", status=503, type="serverInternal", retry_after=2)
    r = client.get(url)
    problem(r, "serverInternal", 503)
    assert r.header("Retry-After") == "2"
    # a server-side badNonce (like Pebble's PEBBLE_WFE_NONCEREJECT): the client retries with the fresh nonce
    srv.fail("/new-order", status=400, type="badNonce")
    before = srv.stats().get("faultsInjected", 0)
    assert client.new_order(["o.example.test"]).status == 201
    assert srv.stats()["faultsInjected"] == before + 1


# --- (3) faithfulness vs a real client: Debian's lego ------------------------------------------------------
LEGO_CASES = {
    # name: (server options, lego key type, extra lego global flags, lego run flags)
    "http01-real": ({"validation": "http", "alternate_roots": 1}, "ec256", ["--http"],
                    ["--preferred-chain", "Fake Alt Root 1"]),
    "tlsalpn01-real": ({"validation": "tls-alpn"}, "ec384", ["--tls"], []),
    "auto-rsa": ({"validation": "auto"}, "rsa2048", ["--http"], []),
    "auto-eab": ({"validation": "auto", "eab_required": True}, "ec256", ["--http", "--eab", "--kid", "kid-7"], []),
}


@pytest.mark.parametrize("case", sorted(LEGO_CASES))
def test_lego_obtains_certificate(tmp_path, case):
    lego = shutil.which("lego")
    if lego is None:
        if os.environ.get("CI"):
            pytest.fail("lego is missing: scripts/setup.sh installs it")
        pytest.skip("lego is not installed (scripts/setup.sh installs it)")
    opts, key_type, flags, run_flags = LEGO_CASES[case]
    hport, tport, hkey = free_port(), free_port(), b64u(os.urandom(32))
    flags = [*flags, "--http.port", f"127.0.0.1:{hport}"] if "--http" in flags else \
        [*flags, "--tls.port", f"127.0.0.1:{tport}"]
    if "--eab" in flags:
        flags += ["--hmac", hkey]
        opts = dict(opts, eab_keys={"kid-7": hkey})
    with AcmeServer(tmp_path, http_port=hport, tls_port=tport, quiet=True, **opts) as s:
        env = dict(os.environ, LEGO_CA_CERTIFICATES=s.ca_bundle)
        common = [lego, "--server", s.dir_url, "--accept-tos", "--email", "a@example.test", "--domains",
                  "d.example.test", "--key-type", key_type, "--path", str(tmp_path / "lego")]
        r = subprocess.run([*common, *flags, "run", *run_flags], env=env, capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        crt = (tmp_path / "lego" / "certificates" / "d.example.test.crt").read_text()
        leaf = load_chain(crt)[0]
        assert leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value \
            .get_values_for_type(x509.DNSName) == ["d.example.test"]
        root = s.root_pem(1 if "--preferred-chain" in run_flags else 0)
        assert openssl_verify(tmp_path, root, crt, "d.example.test").returncode == 0
        st = s.stats()
        assert st["newOrder"] == 1 and st["finalize"] == 1 and st["newAccount"] == 1
        if opts["validation"] != "auto":
            assert st["validationsOk"] == 1  # the server checked lego's challenge answer for real
        if "--eab" in flags:
            assert [a["eab_kid"] for a in json.loads(s.mgmt("GET", "accounts"))] == ["kid-7"]
        # lego revokes through the account (kid) path
        rv = subprocess.run([*common, *flags, "revoke"], env=env, capture_output=True, text=True, timeout=30)
        assert rv.returncode == 0, rv.stdout + rv.stderr
        assert [c["revoked"] for c in s.certs()] == [True]
