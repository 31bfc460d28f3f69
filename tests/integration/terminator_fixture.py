"""Fixtures for the terminator integration tests: certificates made with the openssl CLI, an
upstream that parses and checks the PROXY header (and answers HTTP/1.1 and a minimal h2), and a
running `edgecert terminator` stopped by PID."""
import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time
import urllib.request

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from edgecert_helpers import ClientPool

CHROMIUM = "/usr/bin/chromium"
BIN = os.environ.get("EDGECERT_BIN") or os.path.join(os.path.dirname(__file__), "..", "..", "build", "edgecert")
PP2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def make_cert(folder, sans, key="ec", serial=None, days=30, atomic=True, expired=False):
    """Writes folder/tls.crt and folder/tls.key (self-signed) and returns the serial as lowercase hex."""
    os.makedirs(folder, exist_ok=True)
    serial = serial if serial is not None else int.from_bytes(os.urandom(8), "big") | 1
    tmp = folder + "/.gen"
    os.makedirs(tmp, exist_ok=True)
    newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if key == "ec" else ["-newkey", "rsa:2048"]
    args = ["openssl", "req", "-x509", *newkey, "-nodes", "-keyout", tmp + "/tls.key", "-out", tmp + "/tls.crt",
            "-subj", "/CN=" + sans[0], "-addext", "subjectAltName=" + ",".join("DNS:" + s for s in sans),
            "-set_serial", hex(serial)]
    if expired:  # openssl req in 3.0 cannot backdate: build it with cryptography
        import datetime
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        k = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, sans[0])])
        now = datetime.datetime.now(datetime.timezone.utc)
        c = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(k.public_key())
             .serial_number(serial).not_valid_before(now - datetime.timedelta(days=10))
             .not_valid_after(now - datetime.timedelta(days=1))
             .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), False)
             .sign(k, hashes.SHA256()))
        open(tmp + "/tls.crt", "wb").write(c.public_bytes(serialization.Encoding.PEM))
        open(tmp + "/tls.key", "wb").write(k.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    else:
        args += ["-days", str(days)]
        subprocess.run(args, check=True, capture_output=True)
    for f in ("tls.key", "tls.crt"):  # key first: the pair is consistent once tls.crt lands
        if atomic:
            os.rename(f"{tmp}/{f}", f"{folder}/{f}")
        else:
            data = open(f"{tmp}/{f}", "rb").read()
            with open(f"{folder}/{f}", "wb") as out:
                out.write(data)
    subprocess.run(["rm", "-rf", tmp])
    return format(serial, "x")


def tls_probe(port, sni, alpn=None, timeout=5, ciphers=None, max_version=None):
    """One TLS handshake; returns (serial hex, key type, negotiated ALPN, version)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if max_version:
        ctx.maximum_version = max_version
    if ciphers:
        ctx.set_ciphers(ciphers)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni) as s:
            der = s.getpeercert(binary_form=True)
            c = x509.load_der_x509_certificate(der)
            kt = type(c.public_key()).__name__
            return format(c.serial_number, "x"), ("RSA" if "RSA" in kt else "EC"), s.selected_alpn_protocol(), s.version()


def parse_proxy_v2(data):
    """Parses a PROXY v2 header (haproxy proxy-protocol.txt §2.2). Returns (dict, consumed)."""
    assert data[:12] == PP2_SIG, "missing PROXY v2 signature"
    ver_cmd, fam = data[12], data[13]
    (length,) = struct.unpack("!H", data[14:16])
    body = data[16:16 + length]
    assert len(body) == length, "truncated PROXY v2 header"
    out = {"version": ver_cmd >> 4, "command": ver_cmd & 0xF, "family": fam, "tlv": {}}
    if fam == 0x11:
        out["src"] = socket.inet_ntop(socket.AF_INET, body[0:4])
        out["dst"] = socket.inet_ntop(socket.AF_INET, body[4:8])
        out["src_port"], out["dst_port"] = struct.unpack("!HH", body[8:12])
        rest = body[12:]
    elif fam == 0x21:
        out["src"] = socket.inet_ntop(socket.AF_INET6, body[0:16])
        out["dst"] = socket.inet_ntop(socket.AF_INET6, body[16:32])
        out["src_port"], out["dst_port"] = struct.unpack("!HH", body[32:36])
        rest = body[36:]
    else:
        rest = body
    while rest:
        t, l = rest[0], struct.unpack("!H", rest[1:3])[0]
        v = rest[3:3 + l]
        assert len(v) == l, "truncated TLV"
        if t == 0x20:  # PP2_TYPE_SSL: client(1) verify(4) sub-TLVs
            ssl_info = {"client": v[0], "verify": struct.unpack("!I", v[1:5])[0]}
            sub = v[5:]
            while sub:
                st, sl = sub[0], struct.unpack("!H", sub[1:3])[0]
                ssl_info[{0x21: "version", 0x23: "cipher"}.get(st, hex(st))] = sub[3:3 + sl].decode()
                sub = sub[3 + sl:]
            out["tlv"]["ssl"] = ssl_info
        else:
            out["tlv"][{1: "alpn", 2: "authority"}.get(t, hex(t))] = v.decode()
        rest = rest[3 + l:]
    return out, 16 + length


class Upstream:
    """Threaded upstream: checks the PROXY header, answers HTTP/1.1 (keep-alive) and h2 (enough for
    h2load: every request gets a 200 with a small body). Records every PROXY header it saw."""

    def __init__(self, proxy="v2"):
        self.proxy = proxy
        self.headers = []
        self.errors = []
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.stopped = True
        self.sock.close()

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._conn, args=(c,), daemon=True).start()

    def _recv_until(self, c, buf, pred):
        while not pred(buf):
            d = c.recv(65536)
            if not d:
                return None
            buf += d
        return buf

    def _conn(self, c):
        try:
            buf = b""
            info = {}
            if self.proxy == "v2":
                buf = self._recv_until(c, buf, lambda b: len(b) >= 16 and len(b) >= 16 + struct.unpack("!H", b[14:16])[0])
                if buf is None:
                    return
                info, n = parse_proxy_v2(buf)
                buf = buf[n:]
                if info["command"] == 0:  # LOCAL: the terminator's own h2c check, not a client
                    if buf.startswith(b"PRI"):
                        return self._h2(c, buf, info)
                    return
            elif self.proxy == "v1":
                buf = self._recv_until(c, buf, lambda b: b"\r\n" in b)
                if buf is None:
                    return
                line, buf = buf.split(b"\r\n", 1)
                info = {"v1": line.decode()}
            with self.lock:
                self.headers.append(info)
            buf = self._recv_until(c, buf, lambda b: len(b) >= 3)
            if buf is None:
                return
            if buf.startswith(b"PRI"):
                return self._h2(c, buf, info)
            while True:
                buf = self._recv_until(c, buf, lambda b: b"\r\n\r\n" in b)
                if buf is None:
                    return
                head, buf = buf.split(b"\r\n\r\n", 1)
                line = head.split(b"\r\n")[0].decode()
                if line.startswith("GET /big/"):  # bulk: N bytes of a repeating pattern
                    n = int(line.split()[1].split("/")[2])
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % n)
                    chunk = bytes(range(256)) * 256
                    sent = 0
                    while sent < n:
                        part = chunk[: min(len(chunk), n - sent)]
                        c.sendall(part)
                        sent += len(part)
                    return
                body = json.dumps({"proxy": info, "request": line}).encode()
                # HTTP/1.0 closes unless it asks for keep-alive (RFC 9112 §9.3).
                close = b"connection: close" in head.lower() or (
                    line.endswith("HTTP/1.0") and b"connection: keep-alive" not in head.lower())
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n" %
                          (len(body), b"Connection: close\r\n" if close else b"") + body)
                if close:
                    return
        except (AssertionError, ValueError) as e:
            with self.lock:
                self.errors.append(str(e))
        except OSError:
            pass
        finally:
            c.close()

    def _h2(self, c, buf, info):
        # RFC 9113 §3.4 preface, then frames: 9-byte header (len24, type, flags, stream31).
        buf = self._recv_until(c, buf, lambda b: len(b) >= 24)
        buf = buf[24:]
        c.sendall(struct.pack("!I", 0)[1:] + bytes([4, 0]) + struct.pack("!I", 0))  # our SETTINGS
        body = b"ok"
        while True:
            buf = self._recv_until(c, buf, lambda b: len(b) >= 9 and len(b) >= 9 + int.from_bytes(b[0:3], "big"))
            if buf is None:
                return
            ln, typ, flags = int.from_bytes(buf[0:3], "big"), buf[3], buf[4]
            sid = struct.unpack("!I", buf[5:9])[0] & 0x7FFFFFFF
            buf = buf[9 + ln:]
            if typ == 4 and not flags & 1:  # SETTINGS → ACK
                c.sendall(b"\x00\x00\x00\x04\x01\x00\x00\x00\x00")
            elif typ == 6 and not flags & 1:  # PING → ACK
                c.sendall(b"\x00\x00\x08\x06\x01\x00\x00\x00\x00" + b"\x00" * 8)
            elif typ == 1 and flags & 1:  # HEADERS with END_STREAM: a GET
                # HPACK: 0x88 = static table index 8, ":status: 200".
                c.sendall(b"\x00\x00\x01\x01\x04" + struct.pack("!I", sid) + b"\x88")
                c.sendall(struct.pack("!I", len(body))[1:] + b"\x00\x01" + struct.pack("!I", sid) + body)
            elif typ == 7:  # GOAWAY
                return


class Terminator:
    """`edgecert terminator` on loopback ports. The fixture's Upstream checks a PROXY v2 header and
    speaks h2c, so by default the terminator is told so (--proxy-protocol v2 --upstream-protocol
    h2c) and the constructor waits until h2 is offered; `defaults=True` passes no such flag (what a
    new user runs: test_terminator_defaults.py)."""

    def __init__(self, cert_dir, upstream_port, *extra, workdir, defaults=False):
        self.tls_port, self.http_port, self.admin_port = free_port(), free_port(), free_port()
        self.log_path = os.path.join(workdir, f"terminator-{self.tls_port}.log")
        fixture_flags = []
        if not defaults:
            if not any(a.startswith("--proxy-protocol") for a in extra):
                fixture_flags += ["--proxy-protocol", "v2"]
            if not any(a.startswith("--upstream-protocol") for a in extra):
                fixture_flags += ["--upstream-protocol", "h2c"]
        args = [BIN, "terminator", "--listen", f"127.0.0.1:{self.tls_port}", "--http-listen",
                f"127.0.0.1:{self.http_port}", "--upstream", f"127.0.0.1:{upstream_port}", "--cert-dir", cert_dir,
                "--admin", f"127.0.0.1:{self.admin_port}", "--workers", "2", *fixture_flags, *extra]
        self.h2c = "h2c" in args[args.index("--upstream-protocol") + 1] if "--upstream-protocol" in args else False
        env = dict(os.environ, EDGECERT_LOG_LEVEL=os.environ.get("TERM_LOG", "info"))
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"terminator exited {self.proc.returncode}:\n{self.logs()}")
            try:
                if self.get_admin("/readyz")[0] == 200 and (
                        not self.h2c or self.metrics().get("edgecert_upstream_h2_checks_total{result=\"ok\"}", 0) > 0
                        or self.metrics().get("edgecert_upstream_h2_checks_total{result=\"not_h2\"}", 0) > 0):
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("terminator not ready:\n" + self.logs())

    def logs(self):
        self.log.flush()
        return open(self.log_path).read()

    def get_admin(self, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metrics(self):
        out = {}
        for line in self.get_admin("/metrics")[1].splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        logs = open(self.log_path).read()
        assert "PRIVATE KEY" not in logs, "a private key was logged"
        return self.proc.returncode


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca_and_leaf(folder, cert_dir, name):
    """CA (self-signed, CA:TRUE) and a leaf for name signed by it; the terminator gets leaf + CA chain.
    Returns the leaf's SPKI pin: base64(sha256(DER SubjectPublicKeyInfo))."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", f"{folder}/ca.key", "-out", f"{folder}/ca.crt", "-days", "2",
            "-subj", "/CN=edgecert chromium test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", "-new", *ec, "-keyout", f"{folder}/leaf.key", "-out", f"{folder}/leaf.csr", "-subj", "/CN=" + name)
    with open(f"{folder}/leaf.ext", "w") as f:
        f.write(f"subjectAltName=DNS:{name}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
                "keyUsage=critical,digitalSignature\n")
    openssl("x509", "-req", "-in", f"{folder}/leaf.csr", "-CA", f"{folder}/ca.crt", "-CAkey", f"{folder}/ca.key",
            "-set_serial", "0x5eed", "-days", "1", "-extfile", f"{folder}/leaf.ext", "-out", f"{folder}/leaf.crt")
    os.makedirs(f"{cert_dir}/browser", exist_ok=True)
    with open(f"{cert_dir}/browser/tls.crt", "w") as out:
        out.write(open(f"{folder}/leaf.crt").read() + open(f"{folder}/ca.crt").read())
    shutil.copy(f"{folder}/leaf.key", f"{cert_dir}/browser/tls.key")
    leaf = x509.load_pem_x509_certificate(open(f"{folder}/leaf.crt", "rb").read())
    spki = leaf.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def chromium(port, spki, profile, *mode, name, path="/", timeout=40):
    """Headless Chromium with its own defaults (h2 when offered), `name` mapped to 127.0.0.1:port and
    the leaf trusted by its SPKI pin."""
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={profile}",
            f"--host-resolver-rules=MAP {name} 127.0.0.1:{port}",
            f"--ignore-certificate-errors-spki-list={spki}", *mode, f"https://{name}{path}"]
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


def wait_for(pred, timeout=5.0, interval=0.02):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    return last


def swaps_during_bulk_transfers(t, certs, name="bulkswap"):
    """Four clients download 4 MB bodies back to back while the certificate they are served under
    is replaced ten times, so transfers are in flight at every swap: every body arrives whole and
    byte-exact, no request fails, and new connections get the new certificate (a swap changes
    what new handshakes present, never what an open connection is doing)."""
    folder = certs + "/" + name
    host = name + ".test"
    first = make_cert(folder, [host], "ec")
    assert wait_for(lambda: tls_probe(t.tls_port, host)[0] == first, timeout=2.0)
    n = 4 * 1000 * 1000
    pattern = bytes(range(256)) * 256
    expected_tail = bytes(pattern[i % len(pattern)] for i in range(n - 64, n))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inflight = [0]  # transfers between request and last byte
    lock = threading.Lock()

    def read_response(s, buf):
        while b"\r\n\r\n" not in buf:
            d = s.recv(1 << 16)
            assert d, "connection closed before the response head"
            buf += d
        head, body = buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200"), head[:80]
        while len(body) < n:
            d = s.recv(1 << 20)
            assert d, f"connection closed after {len(body)} of {n} body bytes"
            body += d
        return body[:n], body[n:]

    def request():
        raw = socket.create_connection(("127.0.0.1", t.tls_port), timeout=10)
        with ctx.wrap_socket(raw, server_hostname=host) as s:
            s.sendall(b"GET /big/%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (n, host.encode()))
            with lock:
                inflight[0] += 1
            try:
                body, rest = read_response(s, b"")
            finally:
                with lock:
                    inflight[0] -= 1
            assert not rest and not s.recv(1), "bytes after the body"
            assert body[:4096] == pattern[:4096] and body[-64:] == expected_tail
            assert body[n // 2] == pattern[(n // 2) % len(pattern)]

    swaps_mid_transfer = 0
    with ClientPool(request, 4) as pool:
        assert wait_for(lambda: inflight[0] > 0, timeout=5.0, interval=0.01)
        for i in range(10):
            with lock:
                swaps_mid_transfer += inflight[0] > 0
            new = make_cert(folder, [host], "ec")
            assert wait_for(lambda: tls_probe(t.tls_port, host)[0] == new, timeout=2.0, interval=0.02), \
                f"swap {i}: the new certificate was not served within 2 s"
        # every client finishes at least one body that a swap happened during
        assert wait_for(lambda: pool.ok >= 4 or pool.fail > 0, timeout=30.0)
    print(f"4 MB bodies ok={pool.ok} failed={pool.fail}; {swaps_mid_transfer} of 10 swaps with transfers in flight")
    assert pool.fail == 0, pool.errors[:5]
    assert swaps_mid_transfer >= 8
    return pool.ok, swaps_mid_transfer
