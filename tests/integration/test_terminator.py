"""`edgecert terminator` end to end with real clients (openssl s_client, curl, h2load, Python ssl):
SNI selection, ECDSA/RSA, ALPN, PROXY v2 checked by the upstream, hot reload (file replace and
kubelet's ..data symlink swap), bad input, limits, ACME challenges, drain."""
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest

from edgecert_helpers import ClientPool, https_request
from terminator_fixture import (BIN, Terminator, Upstream, make_cert, swaps_during_bulk_transfers,
                                tls_probe, wait_for)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("term")
    certs = str(d / "certs")
    ch = str(d / "challenges")
    os.makedirs(ch + "/tls-alpn-01")
    serials = {
        "a-ec": make_cert(certs + "/a-ec", ["a.test", "*.w.test"], "ec"),
        "a-rsa": make_cert(certs + "/a-rsa", ["a.test"], "rsa"),
        "default": make_cert(certs + "/default", ["default.test"], "ec"),
        "reload": make_cert(certs + "/reload", ["r.test"], "ec"),
    }
    up = Upstream("v2")
    t = Terminator(certs, up.port, "--default-cert", "default", "--challenge-dir", ch, "--handshake-timeout", "1s",
                   "--rescan-interval", "2s", workdir=str(d))
    yield {"dir": d, "certs": certs, "ch": ch, "serials": serials, "up": up, "t": t}
    rc = t.stop()
    up.close()
    assert rc == 0, t.logs()
    assert not up.errors, up.errors


def s_client(port, sni=None, *extra, data=b""):
    args = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *extra]
    if sni:
        args += ["-servername", sni]
    p = subprocess.run(args, input=data, capture_output=True, timeout=20)
    return p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")


def curl(port, host, path="/", *extra):
    p = subprocess.run(["curl", "-sk", "--max-time", "10", "--resolve", f"{host}:{port}:127.0.0.1", *extra,
                        f"https://{host}:{port}{path}", "-w", "\n%{http_code} %{http_version}"],
                       capture_output=True, text=True, timeout=20)
    return p.stdout


def test_sni_exact_wildcard_default_with_curl_and_proxy_v2(env):
    t, s = env["t"], env["serials"]
    assert tls_probe(t.tls_port, "a.test")[0] == s["a-ec"]
    assert tls_probe(t.tls_port, "x.w.test")[0] == s["a-ec"]          # one-label wildcard
    assert tls_probe(t.tls_port, "a.b.w.test")[0] == s["default"]     # two labels: no match
    assert tls_probe(t.tls_port, "unknown.test")[0] == s["default"]
    # curl through to the upstream, which checks the PROXY v2 header.
    out = curl(t.tls_port, "x.w.test", "/hello", "--http1.1")
    body, status = out.rsplit("\n", 1)
    assert status == "200 1.1", out
    import json
    got = json.loads(body)
    pp = got["proxy"]
    assert got["request"] == "GET /hello HTTP/1.1"
    assert pp["version"] == 2 and pp["command"] == 1 and pp["family"] == 0x11
    assert pp["src"] == "127.0.0.1" and pp["dst"] == "127.0.0.1" and pp["dst_port"] == t.tls_port
    assert pp["tlv"]["authority"] == "x.w.test"
    assert pp["tlv"]["alpn"] == "http/1.1"
    assert pp["tlv"]["ssl"]["version"] in ("TLSv1.3", "TLSv1.2") and pp["tlv"]["ssl"]["client"] == 1
    assert pp["tlv"]["ssl"]["cipher"]


def test_s_client_sni_and_key_types(env):
    t, s = env["t"], env["serials"]
    out = s_client(t.tls_port, "a.test", "-showcerts")
    assert "Server public key is 256 bit" in out and "TLSv1.3" in out
    # An RSA-only client gets the RSA certificate for the same name, in TLS 1.3 and 1.2.
    out = s_client(t.tls_port, "a.test", "-sigalgs", "rsa_pss_rsae_sha256")
    assert "Server public key is 2048 bit" in out, out
    serial, kt, _, ver = tls_probe(t.tls_port, "a.test", ciphers="ECDHE-RSA-AES128-GCM-SHA256",
                                   max_version=ssl.TLSVersion.TLSv1_2)
    assert (serial, kt, ver) == (s["a-rsa"], "RSA", "TLSv1.2")
    # No SNI at all: the default certificate.
    out = s_client(t.tls_port, None, "-noservername")
    assert "CN = default.test" in out, out


def test_old_protocols_and_weak_ciphers_refused(env):
    t = env["t"]
    for flag in ("-tls1", "-tls1_1"):
        out = s_client(t.tls_port, "a.test", flag, "-cipher", "DEFAULT@SECLEVEL=0")
        assert "Cipher is (NONE)" in out or "no protocols available" in out or "alert" in out, out
    out = s_client(t.tls_port, "a.test", "-tls1_2", "-cipher", "AES128-SHA:ECDHE-RSA-AES128-SHA")
    assert "Cipher is (NONE)" in out or "handshake failure" in out, out


def test_alpn_h2_preferred_and_passed_upstream(env):
    t, up = env["t"], env["up"]
    out = s_client(t.tls_port, "a.test", "-alpn", "http/1.1,h2")
    assert "ALPN protocol: h2" in out, out
    assert tls_probe(t.tls_port, "a.test", alpn=["http/1.1"])[2] == "http/1.1"
    # curl over h2 end to end: the upstream speaks enough h2 and sees ALPN h2 in the PROXY header.
    n = len(up.headers)
    out = curl(t.tls_port, "a.test", "/h2", "--http2")
    assert out.endswith("200 2"), out
    assert any(h.get("tlv", {}).get("alpn") == "h2" for h in up.headers[n:])


def test_strict_sni(env, tmp_path):
    up = Upstream("v2")
    t = Terminator(env["certs"], up.port, "--strict-sni", workdir=str(tmp_path))
    try:
        assert tls_probe(t.tls_port, "a.test")[0] == env["serials"]["a-ec"]
        with pytest.raises((ssl.SSLError, ConnectionError)):
            tls_probe(t.tls_port, "unknown.test")
        out = s_client(t.tls_port, "unknown.test")
        assert "unrecognized name" in out or "alert" in out, out
        out = curl(t.tls_port, "unknown.test", "/", "--http1.1")
        assert out.strip().startswith("000"), out
    finally:
        assert t.stop() == 0
        up.close()


def test_config_file_settings_and_command_line_override(env, tmp_path):
    """--config: the same settings as the flags, in YAML; the command line wins; typos fail."""
    cfg = tmp_path / "terminator.yaml"
    cfg.write_text("strictSni: true\nalpn: [http/1.1]\nhandshake-timeout: 2s\nworkers: 7\n")
    up = Upstream("v2")
    t = Terminator(env["certs"], up.port, "--config", str(cfg), workdir=str(tmp_path))
    try:
        assert tls_probe(t.tls_port, "a.test", alpn=["h2", "http/1.1"])[2] == "http/1.1"
        with pytest.raises((ssl.SSLError, ConnectionError)):
            tls_probe(t.tls_port, "unknown.test")  # strictSni from the file
    finally:
        assert t.stop() == 0
        up.close()
    cfg.write_text("strictSNI: true\n")
    p = subprocess.run([BIN, "terminator", "--config", str(cfg), "--cert-dir", env["certs"], "--upstream", "127.0.0.1:1"],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 2
    assert "unknown setting 'strictSNI'" in p.stderr + p.stdout


def test_hot_reload_replace_files(env):
    t, certs = env["t"], env["certs"]
    new = make_cert(certs + "/reload", ["r.test"], "ec")
    t0 = time.time()
    assert wait_for(lambda: tls_probe(t.tls_port, "r.test")[0] == new, timeout=1.0), "new serial not served within 1 s"
    print(f"reload visible after {time.time() - t0:.3f}s")
    # In-place (non-atomic) rewrite of both files also lands.
    new2 = make_cert(certs + "/reload", ["r.test"], "ec", atomic=False)
    assert wait_for(lambda: tls_probe(t.tls_port, "r.test")[0] == new2, timeout=1.0)
    # The metric carries what is on the wire (serial as even-length hex, like openssl prints it).
    m = t.metrics()
    served = [v for k, v in m.items() if k.startswith('edgecert_served_certificate_not_after_timestamp_seconds{name="reload",')
              and int(k.split('serial="')[1].rstrip('"}'), 16) == int(new2, 16)]
    assert len(served) == 1 and served[0] > time.time(), m


def test_hot_reload_kubernetes_data_symlink_swap(env):
    """kubelet's AtomicWriter: ..<timestamp>/ holds the files, ..data → it, tls.crt → ..data/tls.crt;
    an update writes a new timestamped dir and renames a fresh ..data_tmp symlink over ..data."""
    t, certs = env["t"], env["certs"]
    folder = certs + "/k8s"
    os.makedirs(folder)
    s1 = make_cert(folder + "/..2026_01_01_00_00_00.1", ["k.test"], "ec")
    os.symlink("..2026_01_01_00_00_00.1", folder + "/..data")
    for f in ("tls.crt", "tls.key"):
        os.symlink("..data/" + f, folder + "/" + f)
    assert wait_for(lambda: tls_probe(t.tls_port, "k.test")[0] == s1, timeout=2.0)
    s2 = make_cert(folder + "/..2026_01_02_00_00_00.2", ["k.test"], "ec")
    os.symlink("..2026_01_02_00_00_00.2", folder + "/..data_tmp")
    os.rename(folder + "/..data_tmp", folder + "/..data")
    t0 = time.time()
    shutil.rmtree(folder + "/..2026_01_01_00_00_00.1")
    assert wait_for(lambda: tls_probe(t.tls_port, "k.test")[0] == s2, timeout=1.0), t.logs()[-2000:]
    print(f"..data swap visible after {time.time() - t0:.3f}s")


def test_bad_files_keep_last_good_and_are_counted(env):
    t, certs = env["t"], env["certs"]
    folder = certs + "/bad"
    good = make_cert(folder, ["bad.test"], "ec")
    assert wait_for(lambda: tls_probe(t.tls_port, "bad.test")[0] == good, timeout=2.0)
    errors = lambda: t.metrics()['edgecert_certificate_reloads_total{result="error"}']
    e0 = errors()
    # Truncated PEM.
    pem = open(folder + "/tls.crt").read()
    with open(folder + "/tls.crt", "w") as f:
        f.write(pem[: len(pem) // 2])
    assert wait_for(lambda: errors() > e0, timeout=2.0)
    assert tls_probe(t.tls_port, "bad.test")[0] == good
    # A key that does not match (the truncated cert is restored first, so only the key is wrong).
    with open(folder + "/tls.crt", "w") as f:
        f.write(pem)
    other = make_cert(str(env["dir"]) + "/other", ["bad.test"], "ec")
    e1 = errors()
    shutil.copy(str(env["dir"]) + "/other/tls.key", folder + "/tls.key")
    assert wait_for(lambda: errors() > e1, timeout=2.0)
    assert tls_probe(t.tls_port, "bad.test")[0] == good
    # An expired certificate is refused too.
    e2 = errors()
    make_cert(folder, ["bad.test"], "ec", expired=True)
    assert wait_for(lambda: errors() > e2, timeout=2.0)
    assert tls_probe(t.tls_port, "bad.test")[0] == good
    assert other != good
    logs = t.logs()
    assert "does not match" in logs and "keeping the last good certificate" in logs
    # Fixed files are picked up again.
    fixed = make_cert(folder, ["bad.test"], "ec")
    assert wait_for(lambda: tls_probe(t.tls_port, "bad.test")[0] == fixed, timeout=1.0)


def test_garbage_and_stalled_handshakes(env):
    t = env["t"]
    m0 = t.metrics()
    # Garbage instead of a ClientHello: closed, service stays up.
    s = socket.create_connection(("127.0.0.1", t.tls_port))
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + os.urandom(200))
    s.settimeout(5)
    data = s.recv(4096)
    assert data == b"" or data[:1] == b"\x15"  # EOF or a TLS alert
    s.close()
    # A client that starts a handshake and never finishes it: closed by the 1 s handshake timeout.
    s = socket.create_connection(("127.0.0.1", t.tls_port))
    s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # first bytes of a ClientHello
    s.settimeout(5)
    t0 = time.time()
    assert s.recv(4096) == b""
    assert 0.5 < time.time() - t0 < 3.5
    s.close()
    m = t.metrics()
    assert m['edgecert_tls_handshakes_total{result="failed"}'] > m0['edgecert_tls_handshakes_total{result="failed"}']
    assert m['edgecert_tls_handshakes_total{result="timeout"}'] > m0['edgecert_tls_handshakes_total{result="timeout"}']
    assert tls_probe(t.tls_port, "a.test")[0] == env["serials"]["a-ec"]


def test_max_connections_flood(env, tmp_path):
    """At --max-connections a new client waits in the listen queue (it is not closed) until a
    connection that has sent nothing for a quarter of --handshake-timeout can be closed for it:
    the oldest stalled handshake goes, the new client is served."""
    up = Upstream("v2")
    t = Terminator(env["certs"], up.port, "--max-connections", "20", "--handshake-timeout", "4s",
                   workdir=str(tmp_path))
    try:
        held = []
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", t.tls_port))
            s.sendall(b"\x16\x03\x01")  # keeps the connection in its handshake
            held.append(s)
        assert wait_for(lambda: t.metrics()["edgecert_tls_connections"] == 20, timeout=3)
        t0 = time.monotonic()
        assert tls_probe(t.tls_port, "a.test", timeout=10)[0] == env["serials"]["a-ec"]
        assert time.monotonic() - t0 > 0.9  # it waited for the stalled ones to be 1 s old
        m = t.metrics()
        assert m["edgecert_connections_evicted_total"] >= 1
        assert m['edgecert_accept_pauses_total{reason="full"}'] >= 1
        assert m["edgecert_tls_connections"] <= 21  # one more only while workers race
        # A stalled handshake was the one closed for it (in the worker that took it).
        def closed(s):
            s.setblocking(False)
            try:
                return s.recv(10) == b""
            except BlockingIOError:
                return False
            except ConnectionResetError:
                return True
        assert wait_for(lambda: sum(map(closed, held)) >= 1, timeout=3)
        for s in held:
            s.close()
        # Capacity comes back and the service is healthy.
        assert wait_for(lambda: t.metrics()["edgecert_tls_connections"] == 0, timeout=3)
        assert tls_probe(t.tls_port, "a.test")[0] == env["serials"]["a-ec"]
    finally:
        assert t.stop() == 0
        up.close()


def test_http01_redirect_and_bad_requests(env):
    t, ch = env["t"], env["ch"]
    with open(ch + "/tok_EN-1", "w") as f:
        f.write("tok_EN-1.thumbprint\n")
    p = subprocess.run(["curl", "-s", "-i", f"http://127.0.0.1:{t.http_port}/.well-known/acme-challenge/tok_EN-1"],
                       capture_output=True)
    p.stdout = p.stdout.decode()
    assert p.stdout.startswith("HTTP/1.1 200"), p.stdout
    assert p.stdout.endswith("\r\n\r\ntok_EN-1.thumbprint")
    assert "Content-Type: text/plain" in p.stdout
    p = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                        f"http://127.0.0.1:{t.http_port}/.well-known/acme-challenge/missing"], capture_output=True, text=True)
    assert p.stdout == "404"
    p = subprocess.run(["curl", "-s", "-i", "-H", "Host: a.test", f"http://127.0.0.1:{t.http_port}/x/y?z=1"],
                       capture_output=True)
    p.stdout = p.stdout.decode()
    assert p.stdout.startswith("HTTP/1.1 301"), p.stdout
    assert f"Location: https://a.test:{t.tls_port}/x/y?z=1\r\n" in p.stdout
    for garbage in (b"\x16\x03\x01\x00\x05hello", b"GET / HTTP/1.1\r\n\r\n", b"\x00" * 50 + b"\r\n\r\n"):
        s = socket.create_connection(("127.0.0.1", t.http_port))
        s.sendall(garbage)
        s.settimeout(5)
        assert s.recv(100).startswith(b"HTTP/1.1 400"), garbage
        s.close()
    s = socket.create_connection(("127.0.0.1", t.http_port))
    s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 9000)
    s.settimeout(5)
    assert s.recv(100).startswith(b"HTTP/1.1 431")
    s.close()


def test_http_passthrough_and_proxy_v1(env, tmp_path):
    up = Upstream("v1")
    t = Terminator(env["certs"], up.port, "--http-mode", "passthrough", "--proxy-protocol", "v1",
                   workdir=str(tmp_path))
    try:
        p = subprocess.run(["curl", "-s", "-H", "Host: p.test", f"http://127.0.0.1:{t.http_port}/plain"],
                           capture_output=True, text=True)
        import json
        got = json.loads(p.stdout)
        assert got["request"] == "GET /plain HTTP/1.1"
        assert got["proxy"]["v1"].startswith("PROXY TCP4 127.0.0.1 127.0.0.1 ")
        assert got["proxy"]["v1"].endswith(f" {t.http_port}")
        out = curl(t.tls_port, "a.test", "/tls", "--http1.1")
        assert out.endswith("200 1.1") and "PROXY TCP4 127.0.0.1 127.0.0.1" in out
    finally:
        assert t.stop() == 0
        up.close()


def test_tls_alpn01_challenge(env):
    from cryptography import x509
    import hashlib
    t, ch = env["t"], env["ch"]
    ka = "tokALPN.thumbprint"
    with open(ch + "/tls-alpn-01/alpn.test", "w") as f:
        f.write(ka)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["acme-tls/1"])
    with socket.create_connection(("127.0.0.1", t.tls_port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="alpn.test") as s:
            assert s.selected_alpn_protocol() == "acme-tls/1"
            cert = x509.load_der_x509_certificate(s.getpeercert(binary_form=True))
            # The terminator closes right after the handshake (RFC 8737 §3).
            s.settimeout(5)
            assert s.recv(10) == b""
    ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31"))
    assert ext.critical
    assert ext.value.value == b"\x04\x20" + hashlib.sha256(ka.encode()).digest()
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName) == ["alpn.test"]
    # Without a challenge for the name, acme-tls/1-only clients are refused.
    with pytest.raises((ssl.SSLError, ConnectionError)):
        with socket.create_connection(("127.0.0.1", t.tls_port), timeout=5) as raw:
            ctx.wrap_socket(raw, server_hostname="a.test")


def test_reload_under_load_50_replacements(env):
    """A pool of HTTPS clients keeps requests going while the certificate is replaced 50 times:
    zero failed requests, and each new serial is served within one second of the file change."""
    t, certs = env["t"], env["certs"]
    folder = certs + "/load"
    first = make_cert(folder, ["load.test"], "ec")
    assert wait_for(lambda: tls_probe(t.tls_port, "load.test")[0] == first, timeout=2.0)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE

    def request():
        data, _ = https_request(t.tls_port, "load.test", ctx, path="/load")
        assert data.startswith(b"HTTP/1.1 200"), data[:100]

    latencies = []
    with ClientPool(request, 6) as pool:
        for i in range(50):
            new = make_cert(folder, ["load.test"], "ec")
            t0 = time.time()
            assert wait_for(lambda: tls_probe(t.tls_port, "load.test")[0] == new, timeout=1.0, interval=0.01), \
                f"replacement {i}: new serial not served within 1 s"
            latencies.append(time.time() - t0)
    print(f"requests ok={pool.ok} failed={pool.fail}; reload latency max={max(latencies):.3f}s "
          f"median={sorted(latencies)[len(latencies) // 2]:.3f}s")
    assert pool.fail == 0, pool.errors[:5]
    assert pool.ok > 100


@pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load (nghttp2-client) not installed")
def test_h2load_h2_and_http11(env):
    t = env["t"]
    for proto in (["--npn-list=h2"], ["--h1"]):
        p = subprocess.run(["h2load", "-n", "3000", "-c", "10", "-m", "4" if proto[0] != "--h1" else "1", *proto,
                            f"https://a.test:{t.tls_port}/bench", "--connect-to", f"127.0.0.1:{t.tls_port}"],
                           capture_output=True, text=True, timeout=120)
        out = p.stdout
        assert "3000 succeeded, 0 failed, 0 errored" in out, out
        assert "status codes: 3000 2xx" in out, out


def test_sighup_full_reload_and_sigterm_drain(env, tmp_path):
    up = Upstream("v2")
    certs = str(tmp_path / "certs")
    s1 = make_cert(certs + "/only", ["d.test"], "ec")
    t = Terminator(certs, up.port, "--drain-timeout", "10s", workdir=str(tmp_path))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        assert tls_probe(t.tls_port, "d.test")[0] == s1
        t.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "SIGHUP" in t.logs(), timeout=3)
        assert tls_probe(t.tls_port, "d.test")[0] == s1
        # A long-lived keep-alive connection survives the start of a drain.
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", t.tls_port), timeout=5), server_hostname="d.test")
        s.sendall(b"GET /1 HTTP/1.1\r\nHost: d.test\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
        idle = ctx.wrap_socket(socket.create_connection(("127.0.0.1", t.tls_port), timeout=5), server_hostname="d.test")
        t.proc.send_signal(signal.SIGTERM)
        assert wait_for(lambda: t.get_admin("/readyz")[0] != 200, timeout=3)
        # A connection that never sent a request has nothing in flight: closed at once.
        assert idle.recv(100) == b""
        idle.close()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", t.tls_port), timeout=2).close()
        s.sendall(b"GET /2 HTTP/1.1\r\nHost: d.test\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
        assert t.proc.poll() is None  # still draining
        s.close()
        t.proc.wait(timeout=5)
        assert t.proc.returncode == 0
    finally:
        t.stop()
        up.close()


def test_upstream_connected_only_when_the_client_sends(env):
    """An idle (or preconnected) TLS client costs one socket: the upstream connection and its
    PROXY header wait for the first application bytes."""
    t, up = env["t"], env["up"]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    n = len(up.headers)
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", t.tls_port), timeout=5), server_hostname="a.test")
    time.sleep(0.3)
    assert len(up.headers) == n
    s.sendall(b"GET /late HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
    assert s.recv(65536).startswith(b"HTTP/1.1 200")
    assert len(up.headers) == n + 1 and up.headers[-1]["tlv"]["authority"] == "a.test"
    s.close()


def test_request_in_the_same_segment_as_the_finished_message(env):
    """A client that sends its Finished and the request in one write: the terminator reads both
    at once (read-ahead), and must serve the request OpenSSL already holds even though the
    socket has nothing more (regression: the connection used to wait for an edge that never
    came)."""
    t = env["t"]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    for _ in range(3):
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(incoming, outgoing, server_hostname="a.test")
        sock = socket.create_connection(("127.0.0.1", t.tls_port), timeout=5)
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                if outgoing.pending:
                    sock.sendall(outgoing.read())
                data = sock.recv(65536)
                assert data, "closed during the handshake"
                incoming.write(data)
        obj.write(b"GET /same-segment HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        sock.sendall(outgoing.read())  # Finished + request: one write
        reply = b""
        while b"\r\n\r\n" not in reply:
            try:
                reply += obj.read(65536)
                continue
            except ssl.SSLWantReadError:
                pass
            data = sock.recv(65536)  # times out (5 s) if the request is stranded
            assert data, reply
            incoming.write(data)
        assert reply.startswith(b"HTTP/1.1 200"), reply
        sock.close()
    # The bench client does exactly this on every connection.
    p = subprocess.run(["openssl", "s_time", "-connect", f"127.0.0.1:{t.tls_port}", "-new", "-www", "/s_time",
                        "-time", "1"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and " connections in " in p.stdout, p.stdout + p.stderr


def _rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_bulk_download_with_backpressure(env):
    """A 40 MB response to a client that stops reading: the terminator stops reading the upstream
    (bounded buffers, no growth), and every byte arrives intact once the client reads again."""
    t = env["t"]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    n = 40 * 1000 * 1000
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", t.tls_port), timeout=10), server_hostname="a.test")
    rss0 = _rss_kib(t.proc.pid)
    s.sendall(b"GET /big/%d HTTP/1.1\r\nHost: a.test\r\n\r\n" % n)
    time.sleep(1.5)  # client not reading: socket buffers fill, then the terminator must stop
    grown = _rss_kib(t.proc.pid) - rss0
    assert grown < 8 * 1024, f"terminator RSS grew {grown} KiB while the client was not reading"
    data = bytearray()
    while True:
        d = s.recv(1 << 20)
        if not d:
            break
        data += d
    s.close()
    head, body = bytes(data).split(b"\r\n\r\n", 1)
    assert b"Content-Length: %d" % n in head
    assert len(body) == n
    pattern = bytes(range(256)) * 256
    for off in range(0, n, 997_003):  # spot checks across the stream
        assert body[off] == pattern[off % len(pattern)]
    assert body[-1] == pattern[(n - 1) % len(pattern)]


def test_certificate_swaps_during_bulk_transfers_fail_no_request(env):
    """Four clients download 4 MB bodies back to back while the certificate they are served under
    is replaced ten times, so transfers are in flight at every swap (terminator_fixture)."""
    swaps_during_bulk_transfers(env["t"], env["certs"])


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (prometheus) not installed")
def test_metrics_exposition_is_valid(env):
    t = env["t"]
    status, body = t.get_admin("/metrics")
    assert status == 200
    p = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    for family in ("edgecert_tls_handshakes_total", "edgecert_tls_connections", "edgecert_bytes_total",
                   "edgecert_certificate_reloads_total", "edgecert_served_certificate_not_after_timestamp_seconds",
                   "edgecert_loaded_certificates"):
        assert f"# TYPE {family} " in body


def _testssl():
    return shutil.which("testssl") or shutil.which("testssl.sh")


# Mozilla's server-side TLS guidelines v5.7, "intermediate" (IANA names). docs/tls-policy.md says
# why edgecert offers exactly this minus the finite-field DHE suites.
MOZILLA_INTERMEDIATE = {
    "protocols": {"TLS1_2", "TLS1_3"},
    "tls13": {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"},
    "tls12": {"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
              "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
              "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
              "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
              "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256"},
    "groups": {"X25519", "prime256v1", "secp384r1"},
}


@pytest.mark.skipif(_testssl() is None, reason="testssl.sh not installed")
def test_testssl_finds_no_old_protocol_weak_cipher_or_vulnerability(env, tmp_path):
    import json
    t = env["t"]
    out = tmp_path / "testssl.json"
    # SNI a.test: the name with both an ECDSA and an RSA certificate, so every suite can show.
    p = subprocess.run([_testssl(), "--quiet", "--color", "0", "--warnings", "off", "--jsonfile-pretty", str(out),
                        "--ip", "127.0.0.1", "-p", "-s", "-f", "-E", "-U", f"a.test:{t.tls_port}"],
                       capture_output=True, text=True, timeout=420)
    findings = []

    def walk(x):
        if isinstance(x, dict):
            if "id" in x and "severity" in x:
                findings.append(x)
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(json.load(open(out)))
    by_id = {f["id"]: f for f in findings}
    assert len(findings) > 20, p.stdout[-3000:]
    for proto in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
        assert by_id[proto]["finding"] == "not offered", by_id[proto]
    assert by_id["TLS1_2"]["finding"].startswith("offered") and by_id["TLS1_3"]["finding"].startswith("offered")
    # Any LOW..CRITICAL finding (weak cipher category, a vulnerability) fails; the scanner's own
    # environment notes (id engine_problem, WARN) are not about the server.
    bad = [f for f in findings if f["severity"] in ("LOW", "MEDIUM", "HIGH", "CRITICAL")]
    assert not bad, bad

    # Mozilla intermediate: what each protocol offers (-E lists every suite per protocol, the
    # IANA name last) is inside the profile, with all of its ECDHE suites; the curves are its.
    offered = {"tls12": set(), "tls13": set()}
    for f in findings:
        for proto, key in (("cipher-tls1_2_", "tls12"), ("cipher-tls1_3_", "tls13")):
            if f["id"].startswith(proto):
                offered[key].add(f["finding"].split()[-1])
    assert offered["tls13"] == MOZILLA_INTERMEDIATE["tls13"], offered
    assert offered["tls12"] <= MOZILLA_INTERMEDIATE["tls12"], offered["tls12"] - MOZILLA_INTERMEDIATE["tls12"]
    assert {c for c in MOZILLA_INTERMEDIATE["tls12"] if "ECDHE" in c} <= offered["tls12"], offered
    curves = next(f["finding"] for f in findings if f["id"] in ("PFS_ECDHE_curves", "FS_ECDHE_curves"))
    assert set(curves.split()) == MOZILLA_INTERMEDIATE["groups"], curves
