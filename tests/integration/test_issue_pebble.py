"""`edgecert issue/renew/revoke` against Debian's real Pebble with real validation
(no PEBBLE_VA_ALWAYS_VALID): Pebble connects to edgecert's built-in responders."""
import json
import os
import stat

import pytest

from edgecert_helpers import cert_field, openssl, run, split_pem, tree, verify_chain
from pebble_fixture import EAB_KEYS, Pebble, free_port


@pytest.fixture
def pebble(tmp_path):
    p = Pebble(str(tmp_path / "pebble"))
    yield p
    p.stop()


def issue_args(p, out, domains, *extra, challenge="http-01"):
    return ["issue", "--server", p.dir_url, "--ca-bundle", p.ca_file, "--out", str(out),
            "--domains", domains, "--email", "ops@example.test", "--challenge", challenge,
            "--http-port", f"127.0.0.1:{p.http_port}", "--tls-port", f"127.0.0.1:{p.tls_port}",
            *extra]


def test_http01_issue_verifies_and_account_is_reused(pebble, tmp_path):
    out = tmp_path / "out"
    r = run(*issue_args(pebble, out, "a.example.test,b.example.test"), check=True)
    crt, key = out / "a.example.test" / "tls.crt", out / "a.example.test" / "tls.key"
    assert str(crt) in r.stdout and "openssl x509" in r.stdout
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    v = verify_chain(str(crt), pebble.root_pem(), str(tmp_path))
    assert v.returncode == 0, v.stdout + v.stderr
    san = openssl("x509", "-in", str(crt), "-noout", "-ext", "subjectAltName").stdout
    assert "DNS:a.example.test" in san and "DNS:b.example.test" in san
    # the key matches the certificate and is an ECDSA P-256 PKCS#8 key
    k = open(key).read()
    assert k.startswith("-----BEGIN PRIVATE KEY-----")
    pub_c = openssl("x509", "-in", str(crt), "-noout", "-pubkey").stdout
    pub_k = openssl("pkey", "-in", str(key), "-pubout").stdout
    assert pub_c == pub_k
    assert "prime256v1" in openssl("x509", "-in", str(crt), "-noout", "-text").stdout
    meta = json.load(open(out / "a.example.test" / "certificate.json"))
    assert meta["serial"] and meta["domains"] == ["a.example.test", "b.example.test"]
    # the account is kept and reused: same URL, no new registration
    accts = [f for f in tree(out / "accounts") if f.endswith("account.json")]
    assert len(accts) == 1
    acct_key = out / "accounts" / accts[0].replace("account.json", "account.key")
    assert stat.S_IMODE(os.stat(acct_key).st_mode) == 0o600
    url1 = json.load(open(out / "accounts" / accts[0]))["url"]
    serial1 = cert_field(str(crt), "serial")
    run(*issue_args(pebble, out, "a.example.test,b.example.test"), check=True)
    assert json.load(open(out / "accounts" / accts[0]))["url"] == url1
    assert cert_field(str(crt), "serial") != serial1
    assert not [f for f in tree(out) if ".tmp-" in f or ".pending" in f]


def test_tls_alpn01_issue(pebble, tmp_path):
    out = tmp_path / "out"
    r = run(*issue_args(pebble, out, "alpn.example.test", "--key-type", "rsa2048",
                        challenge="tls-alpn-01"), check=True, env={"EDGECERT_LOG_LEVEL": "debug"})
    crt = out / "alpn.example.test" / "tls.crt"
    v = verify_chain(str(crt), pebble.root_pem(), str(tmp_path))
    assert v.returncode == 0, v.stdout + v.stderr
    assert "rsaEncryption" in openssl("x509", "-in", str(crt), "-noout", "-text").stdout
    # Pebble really connected to the tls-alpn-01 responder and got the challenge certificate
    assert "tls-alpn-01 responder: served challenge certificate" in r.stderr


def test_revoke_by_account_and_by_cert_key(pebble, tmp_path):
    out = tmp_path / "out"
    run(*issue_args(pebble, out, "r1.example.test"), check=True)
    run(*issue_args(pebble, out, "r2.example.test"), check=True)
    common = ["--server", pebble.dir_url, "--ca-bundle", pebble.ca_file, "--out", str(out),
              "--email", "ops@example.test"]
    r = run("revoke", *common, "--domains", "r1.example.test", "--reason", "keyCompromise", check=True)
    assert "revoked" in r.stdout
    s1 = cert_field(str(out / "r1.example.test" / "tls.crt"), "serial").lower().lstrip("0")
    assert pebble.cert_status(s1)["Status"] == "Revoked"
    run("revoke", "--server", pebble.dir_url, "--ca-bundle", pebble.ca_file,
        "--cert", str(out / "r2.example.test" / "tls.crt"), "--with-cert-key", check=True)
    s2 = cert_field(str(out / "r2.example.test" / "tls.crt"), "serial").lower().lstrip("0")
    assert pebble.cert_status(s2)["Status"] == "Revoked"
    # revoking twice is the CA's alreadyRevoked: a clear one-line error, non-zero exit
    r = run("revoke", *common, "--domains", "r1.example.test")
    assert r.returncode != 0 and "alreadyRevoked" in r.stderr


def test_renew_lifetime_rule_and_force(pebble, tmp_path):
    out = tmp_path / "out"
    run(*issue_args(pebble, out, "renew.example.test"), check=True)
    crt = out / "renew.example.test" / "tls.crt"
    s1 = cert_field(str(crt), "serial")
    args = issue_args(pebble, out, "renew.example.test")
    args[0] = "renew"
    r = run(*args, check=True)  # 1-hour certificate just issued: Pebble 2.4 has no ARI
    assert "not due" in r.stdout and "lifetime rule" in r.stdout
    assert cert_field(str(crt), "serial") == s1
    r = run(*args, "--force", check=True)
    assert "renewed" in r.stdout
    assert cert_field(str(crt), "serial") != s1
    r = run(*args, "--days", "1")  # less than a day left on a 1-hour certificate: due
    assert r.returncode == 0 and "renewed" in r.stdout, r.stdout + r.stderr


def test_nonce_rejection_50_percent_still_succeeds(tmp_path):
    p = Pebble(str(tmp_path / "pebble"), nonce_reject=50)
    try:
        out = tmp_path / "out"
        run(*issue_args(p, out, "nonce.example.test"), check=True)
        v = verify_chain(str(out / "nonce.example.test" / "tls.crt"), p.root_pem(), str(tmp_path))
        assert v.returncode == 0
        # ~10 signed requests, each rejected with probability 1/2: success means badNonce was
        # retried (all-accepted has probability ~1/1000).
    finally:
        p.stop()


def test_eab_required(tmp_path):
    p = Pebble(str(tmp_path / "pebble"), eab=True)
    try:
        out = tmp_path / "out"
        r = run(*issue_args(p, out, "eab.example.test"))
        assert r.returncode != 0
        assert "external account binding" in r.stderr
        assert len(r.stderr.strip().splitlines()) <= 2
        assert not (out / "eab.example.test").exists()
        run(*issue_args(p, out, "eab.example.test", "--eab-kid", "kid-1",
                        "--eab-hmac", EAB_KEYS["kid-1"]), check=True)
        assert (out / "eab.example.test" / "tls.crt").exists()
        # a wrong HMAC is refused by the CA with its problem detail
        out2 = tmp_path / "out2"
        r = run(*issue_args(p, out2, "eab2.example.test", "--eab-kid", "kid-1",
                            "--eab-hmac", EAB_KEYS["kid-2"]))
        assert r.returncode != 0 and "edgecert issue:" in r.stderr
        assert EAB_KEYS["kid-2"] not in r.stderr + r.stdout
        assert not (out2 / "eab2.example.test").exists()
    finally:
        p.stop()


def test_alternate_chains_and_preferred_chain(tmp_path):
    p = Pebble(str(tmp_path / "pebble"), env={"PEBBLE_ALTERNATE_ROOTS": "2"})
    try:
        alt_root = p.root_pem(1)
        alt_cn = openssl("x509", "-noout", "-subject", "-nameopt", "multiline",
                         input=alt_root).stdout.split("commonName")[1].split("=", 1)[1].strip()
        out = tmp_path / "out"
        run(*issue_args(p, out, "chain.example.test", "--preferred-chain", alt_cn), check=True)
        crt = str(out / "chain.example.test" / "tls.crt")
        top = split_pem(open(crt).read())[-1]
        issuer = openssl("x509", "-noout", "-issuer", "-nameopt", "multiline", input=top).stdout
        assert alt_cn in issuer
        assert verify_chain(crt, alt_root, str(tmp_path)).returncode == 0
        # without a preference: the default chain, which verifies against root 0
        out2 = tmp_path / "out2"
        run(*issue_args(p, out2, "chain.example.test"), check=True)
        assert verify_chain(str(out2 / "chain.example.test" / "tls.crt"), p.root_pem(0),
                            str(tmp_path)).returncode == 0
    finally:
        p.stop()


def test_ca_down_gives_clear_error_and_no_files(tmp_path):
    out = tmp_path / "out"
    port = free_port()
    r = run("issue", "--server", f"https://127.0.0.1:{port}/dir", "--out", str(out),
            "--domains", "down.example.test", "--http-port", f"127.0.0.1:{free_port()}")
    assert r.returncode == 1
    assert r.stderr.startswith("edgecert issue:") and str(port) in r.stderr
    assert not out.exists() or tree(out) == []


def test_busy_responder_port_fails_before_ordering(pebble, tmp_path):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    busy = s.getsockname()[1]
    try:
        out = tmp_path / "out"
        r = run("issue", "--server", pebble.dir_url, "--ca-bundle", pebble.ca_file, "--out", str(out),
                "--domains", "busy.example.test", "--http-port", f"127.0.0.1:{busy}")
        assert r.returncode == 1 and "cannot listen" in r.stderr
        assert not out.exists()
    finally:
        s.close()


def test_usage_errors(tmp_path):
    assert run("issue", "--help").returncode == 0
    assert "--preferred-chain" in run("issue", "--help").stdout
    for cmd in ("renew", "revoke"):
        assert run(cmd, "--help").returncode == 0
    r = run("issue", "--server", "https://127.0.0.1:1/dir", "--domains", "bad..name")
    assert r.returncode == 2 and "not a valid DNS name" in r.stderr
    r = run("issue", "--bogus")
    assert r.returncode == 2 and "unknown flag --bogus" in r.stderr


def test_several_certificates_in_one_run_and_renew_all(pebble, tmp_path):
    out = tmp_path / "out"
    args = issue_args(pebble, out, "m1.example.test") + ["--domains", "m2.example.test,www.m2.example.test",
                                                         "--domains", "m3.example.test"]
    r = run(*args, check=True)
    for n in ("m1.example.test", "m2.example.test", "m3.example.test"):
        assert verify_chain(str(out / n / "tls.crt"), pebble.root_pem(), str(tmp_path)).returncode == 0
    assert "DNS:www.m2.example.test" in openssl("x509", "-in", str(out / "m2.example.test" / "tls.crt"),
                                                "-noout", "-ext", "subjectAltName").stdout
    serials = {n: cert_field(str(out / n / "tls.crt"), "serial") for n in ("m1.example.test", "m3.example.test")}
    common = ["--server", pebble.dir_url, "--ca-bundle", pebble.ca_file, "--out", str(out),
              "--email", "ops@example.test", "--http-port", f"127.0.0.1:{pebble.http_port}"]
    r = run("renew", *common, "--all", check=True)
    assert r.stdout.count("not due") == 3, r.stdout
    r = run("renew", *common, "--all", "--force", check=True)
    assert r.stdout.count("renewed") == 3, r.stdout
    for n, s in serials.items():
        assert cert_field(str(out / n / "tls.crt"), "serial") != s
