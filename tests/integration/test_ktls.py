"""Kernel TLS (`--ktls`): after the handshake the kernel encrypts what the terminator sends and
upstream bytes are spliced to the client, never copied through user space. Real clients (Python
ssl, curl, openssl s_client) get byte-identical responses from a terminator with `--ktls on` and
one with `--ktls off` for every cipher suite kTLS takes, over TLS 1.2 and 1.3, with HTTP/1.1
keep-alive and h2; close_notify, session tickets and certificate swaps during bulk transfers work
through the kernel's record layer.

The kernel must offer the `tls` upper-layer protocol. This machine's does not (CONFIG_TLS off), so
ctest runs this file inside scripts/vm.sh's guest, which boots Debian's kernel on this machine's
root filesystem (docs/vm.md); where the kernel has no kTLS, every test is skipped."""
import hashlib
import os
import random
import socket
import ssl
import subprocess
import threading

import pytest

from terminator_fixture import BIN, Terminator, Upstream, make_cert, swaps_during_bulk_transfers

TCP_ULP = 31


def _kernel_offers_ktls():
    lis = socket.socket()
    lis.bind(("127.0.0.1", 0))
    lis.listen(1)
    cli = socket.create_connection(lis.getsockname())
    srv, _ = lis.accept()
    try:
        srv.setsockopt(socket.IPPROTO_TCP, TCP_ULP, b"tls")
        return True
    except OSError:
        return False
    finally:
        for s in (srv, cli, lis):
            s.close()


KTLS = _kernel_offers_ktls()
needs_ktls = pytest.mark.skipif(not KTLS, reason="the kernel does not offer kTLS (ctest runs this file in scripts/vm.sh)")

# Response sizes around the record size (16 KiB), the pipe size (64 KiB) and beyond.
SIZES = [0, 1, 1000, 16383, 16384, 16385, 65536 + 7, 300_001, 2_000_003]


def body_of(n):
    return random.Random(n).randbytes(n)


class BytesUpstream:
    """HTTP/1.1 keep-alive upstream: GET /bytes/N answers N deterministic pseudo-random bytes."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.bodies = {n: body_of(n) for n in SIZES}
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, buf = buf.split(b"\r\n\r\n", 1)
                n = int(head.split(b" ")[1].split(b"/")[2])
                close = b"connection: close" in head.lower()
                body = self.bodies.get(n) or body_of(n)
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n" %
                          (n, b"Connection: close\r\n" if close else b"") + body)
                if close:
                    return
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.sock.close()


@pytest.mark.skipif(KTLS, reason="the kernel offers kTLS")
def test_without_kernel_tls_on_refuses_to_start_and_auto_falls_back(tmp_path):
    """On a kernel without kTLS (this machine's): `--ktls on` stops at start with exit code 2 and
    says why; `--ktls auto` serves with OpenSSL's record layer and says so in the log and metrics."""
    certs = str(tmp_path / "certs")
    make_cert(certs + "/k", ["k.test"], "ec")
    up = BytesUpstream()
    try:
        p = subprocess.run([BIN, "terminator", "--cert-dir", certs, "--listen", "127.0.0.1:0", "--http-listen", "off",
                            "--admin", "off", "--upstream", f"127.0.0.1:{up.port}", "--ktls", "on"],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 2, p.stdout + p.stderr
        assert "--ktls on: kTLS is not available on this kernel (setsockopt(TCP_ULP" in p.stdout + p.stderr
        t = Terminator(certs, up.port, "--ktls", "auto", "--upstream-protocol", "http1", "--proxy-protocol", "none",
                       workdir=str(tmp_path))
        try:
            got, _, _ = raw_exchange(t.tls_port, client_ctx(ssl.TLSVersion.TLSv1_3))
            assert got == expected_stream()
            m = t.metrics()
            assert m["edgecert_ktls_tx_enabled"] == 0 and m[KERNEL] == 0 and m[SPLICED] == 0
            assert "kTLS is not available on this kernel" in t.logs()
        finally:
            assert t.stop() == 0
    finally:
        up.close()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("ktls")
    certs = str(d / "certs")
    make_cert(certs + "/k-ec", ["k.test"], "ec")
    make_cert(certs + "/k-rsa", ["k.test"], "rsa")
    up = BytesUpstream()
    h2up = Upstream("v2")  # speaks h2c behind a PROXY v2 header, and serves /big/N
    flags = ["--default-cert", "k-ec", "--rescan-interval", "1s"]
    ts = {mode: Terminator(certs, up.port, "--ktls", mode, "--upstream-protocol", "http1", "--proxy-protocol",
                           "none", *flags, workdir=str(d)) for mode in ("on", "off")}
    h2 = Terminator(certs, h2up.port, "--ktls", "on", *flags, workdir=str(d))
    yield {"dir": d, "certs": certs, "on": ts["on"], "off": ts["off"], "h2": h2}
    for t in (ts["on"], ts["off"], h2):
        assert t.stop() == 0, t.logs()
    up.close()
    h2up.close()


def raw_exchange(port, ctx):
    """Every size on one keep-alive connection, then a request with Connection: close; reads to
    the end and requires close_notify (a FIN alone raises SSLEOFError)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=30)
    s = ctx.wrap_socket(raw, server_hostname="k.test", suppress_ragged_eofs=False)
    with s:
        for i, n in enumerate(SIZES):
            last = i == len(SIZES) - 1
            s.sendall(b"GET /bytes/%d HTTP/1.1\r\nHost: k.test\r\n%s\r\n" % (n, b"Connection: close\r\n" if last else b""))
        data = bytearray()
        while True:
            d = s.recv(1 << 20)
            if not d:
                break
            data += d
        return bytes(data), s.version(), s.cipher()[0]


def expected_stream():
    out = b""
    for i, n in enumerate(SIZES):
        last = i == len(SIZES) - 1
        out += b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n" % (n, b"Connection: close\r\n" if last else b"") + body_of(n)
    return out


def client_ctx(version, ciphers=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ctx.maximum_version = version
    if ciphers:
        ctx.set_ciphers(ciphers)
    return ctx


def metric(t, name):
    return t.metrics().get(name, 0)


KERNEL = 'edgecert_ktls_tx_handshakes_total{layer="kernel"}'
USER = 'edgecert_ktls_tx_handshakes_total{layer="user_space"}'
SPLICED = "edgecert_ktls_spliced_bytes_total"


@needs_ktls
@pytest.mark.parametrize("version,ciphers", [
    (ssl.TLSVersion.TLSv1_3, None),  # Python's first choice: TLS_AES_256_GCM_SHA384
    (ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-GCM-SHA256"),
    (ssl.TLSVersion.TLSv1_2, "ECDHE-RSA-AES256-GCM-SHA384"),
    (ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-CHACHA20-POLY1305"),
])
def test_responses_are_byte_identical_with_ktls_on_and_off(env, version, ciphers):
    on, off = env["on"], env["off"]
    k0, s0 = metric(on, KERNEL), metric(on, SPLICED)
    got_on, ver, suite = raw_exchange(on.tls_port, client_ctx(version, ciphers))
    got_off, _, _ = raw_exchange(off.tls_port, client_ctx(version, ciphers))
    want = expected_stream()
    print(f"{ver} {suite}: {len(got_on)} bytes, sha256 {hashlib.sha256(got_on).hexdigest()[:16]}")
    assert got_on == got_off, f"{suite}: kTLS on and off differ"
    assert got_on == want
    # The kernel encrypted this connection and the bodies were spliced, not copied.
    assert metric(on, KERNEL) == k0 + 1
    assert metric(on, SPLICED) - s0 >= sum(SIZES)
    assert metric(off, KERNEL) == 0 and metric(off, "edgecert_ktls_tx_enabled") == 0
    assert metric(on, "edgecert_ktls_tx_enabled") == 1


@needs_ktls
@pytest.mark.parametrize("suite", ["TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256"])
def test_curl_tls13_suites_byte_identical(env, suite, tmp_path):
    """curl, keep-alive over one connection, each TLS 1.3 suite Python cannot choose."""
    out = {}
    for mode in ("on", "off"):
        t = env[mode]
        args = ["curl", "-sk", "--http1.1", "--tlsv1.3", "--tls13-ciphers", suite, "--resolve",
                f"k.test:{t.tls_port}:127.0.0.1", "-w", "%{num_connects} %{http_code}\n"]
        files = []
        for n in SIZES:
            f = tmp_path / f"{mode}-{n}"
            files.append(f)
            args += ["-o", str(f), f"https://k.test:{t.tls_port}/bytes/{n}"]
        p = subprocess.run(args, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        lines = p.stdout.split()
        assert lines[0::2].count("1") == 1, f"one connection for all requests: {p.stdout}"
        assert set(lines[1::2]) == {"200"}
        out[mode] = [f.read_bytes() for f in files]
    assert out["on"] == out["off"]
    assert out["on"] == [body_of(n) for n in SIZES]


@needs_ktls
def test_h2_through_ktls(env):
    """h2 (curl's default) through kTLS to an h2c upstream: the upstream's first bytes are checked
    in user space, the rest is spliced."""
    t = env["h2"]
    p = subprocess.run(["curl", "-sk", "--resolve", f"k.test:{t.tls_port}:127.0.0.1", "-w", "\n%{http_version}",
                        f"https://k.test:{t.tls_port}/", f"https://k.test:{t.tls_port}/again"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split("\n") == ["ok", "2ok", "2"]
    assert metric(t, KERNEL) >= 1


@needs_ktls
def test_session_tickets_resume_through_ktls(env, tmp_path):
    """The NewSessionTicket messages leave through the kernel's record layer (a control message
    with the handshake record type): the client stores one and resumes with it."""
    t = env["on"]
    sess = str(tmp_path / "sess.pem")
    base = ["openssl", "s_client", "-connect", f"127.0.0.1:{t.tls_port}", "-servername", "k.test"]
    req = b"GET /bytes/1000 HTTP/1.1\r\nHost: k.test\r\nConnection: close\r\n\r\n"
    first = subprocess.run(base + ["-sess_out", sess, "-ign_eof"], input=req, capture_output=True, timeout=30)
    assert b"Content-Length: 1000" in first.stdout, first.stderr[-400:]
    assert os.path.getsize(sess) > 0
    second = subprocess.run(base + ["-sess_in", sess, "-ign_eof"], input=req, capture_output=True, timeout=30)
    assert b"Reused, TLSv1.3" in second.stdout, second.stdout[-600:]
    assert b"Content-Length: 1000" in second.stdout


@needs_ktls
def test_certificate_swaps_during_ktls_bulk_transfers_fail_no_request(env):
    ok, swaps = swaps_during_bulk_transfers(env["h2"], env["certs"])
    assert metric(env["h2"], USER) == 0  # every connection went through the kernel
