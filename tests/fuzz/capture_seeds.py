#!/usr/bin/python3
"""Records the seed inputs of tests/data/fuzz-corpus from real programs on loopback (docs/fuzzing.md):

  tls_client_hello  ClientHellos of openssl s_client, curl, Chromium and Python's ssl
  http_head         request heads of curl, wget, Chromium and Python's urllib
  proxy_protocol    PROXY v1 and v2 headers HAProxy sends to a server (send-proxy, -v2, -v2-ssl)
  dns_response      answers of BIND 9 (tests/integration/bind_fixture.py) to the queries dns-01
                    makes, TSIG-signed ones included, recorded through a UDP relay
  dns_propagation   those answers in the order the zone walk / UPDATE / propagation check ask

Everything listens on 127.0.0.1 on ports picked here and is stopped by PID. Run it with the
Debian python from the repository root; it only adds files (named after what sent them).
Usage: tests/fuzz/capture_seeds.py [OUT_DIR]   (default tests/data/fuzz-corpus)
"""
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from bind_fixture import Bind  # noqa: E402
from pebble_fixture import stop  # noqa: E402

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "data", "fuzz-corpus")


def save(target, name, data, prefix=b""):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(prefix + data)
    print(f"{target}/{name}: {len(data)} bytes")


class Recorder:
    """Accepts one TCP connection and keeps what the client sends until it pauses."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.data = b""
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.sock.settimeout(30)
        try:
            c, _ = self.sock.accept()
        except OSError:
            return
        c.settimeout(1.0)
        try:
            while len(self.data) < 65536:
                b = c.recv(65536)
                if not b:
                    break
                self.data += b
        except OSError:
            pass
        c.close()

    def wait(self, proc=None):
        self.thread.join(35)
        if proc is not None:
            stop(proc)
        self.sock.close()
        return self.data


def record(argv, **kw):
    r = Recorder()
    p = subprocess.Popen([a.replace("PORT", str(r.port)) for a in argv], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    return r.wait(p)


def client_hellos():
    chromium = ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--user-data-dir=" +
                tempfile.mkdtemp(), "--host-resolver-rules=MAP a.test 127.0.0.1"]
    cases = {
        "openssl-s_client-tls13": ["openssl", "s_client", "-connect", "127.0.0.1:PORT", "-servername", "a.test"],
        "openssl-s_client-tls12": ["openssl", "s_client", "-connect", "127.0.0.1:PORT", "-servername", "a.test",
                                   "-tls1_2"],
        "openssl-s_client-acme-tls1": ["openssl", "s_client", "-connect", "127.0.0.1:PORT", "-servername",
                                       "acme.test", "-alpn", "acme-tls/1"],
        "openssl-s_client-rsa-only": ["openssl", "s_client", "-connect", "127.0.0.1:PORT", "-servername", "a.test",
                                      "-sigalgs", "rsa_pss_rsae_sha256:RSA+SHA256"],
        "openssl-s_client-no-sni": ["openssl", "s_client", "-connect", "127.0.0.1:PORT", "-noservername"],
        # RFC 8738 §6: the validation server asks for 127.0.0.1 with its reverse-DNS name in SNI.
        "openssl-s_client-acme-tls1-ip": ["openssl", "s_client", "-connect", "127.0.0.1:PORT", "-servername",
                                          "1.0.0.127.in-addr.arpa", "-alpn", "acme-tls/1"],
        # An address in the URL: no SNI (mode bit 2 makes 127.0.0.1 the local address).
        "curl-ip-no-sni": ["curl", "-sk", "--max-time", "5", "https://127.0.0.1:PORT/"],
        "curl": ["curl", "-sk", "--max-time", "5", "--resolve", "x.w.test:PORT:127.0.0.1", "https://x.w.test:PORT/"],
        "curl-http1.1": ["curl", "-sk", "--http1.1", "--max-time", "5", "--resolve", "a.test:PORT:127.0.0.1",
                         "https://a.test:PORT/"],
        "chromium": chromium + ["https://a.test:PORT/"],
        "python-ssl": ["/usr/bin/python3", "-c", "import socket,ssl;c=ssl.create_default_context();"
                       "c.set_alpn_protocols(['h2','http/1.1']);"
                       "s=c.wrap_socket(socket.create_connection(('127.0.0.1',PORT)),server_hostname='a.test')"],
    }
    for name, argv in cases.items():
        data = record(argv)
        if data[:1] == b"\x16":
            save("tls_client_hello", name, data, prefix=b"\x04" if name.endswith("-ip-no-sni") else b"\x00")


def request_heads():
    cases = {
        "curl-acme-challenge": ["curl", "-s", "--max-time", "3", "--resolve", "a.test:PORT:127.0.0.1",
                                "http://a.test:PORT/.well-known/acme-challenge/LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"],
        "curl-http1.0": ["curl", "-s", "-0", "--max-time", "3", "http://127.0.0.1:PORT/index.html?q=1"],
        "wget": ["wget", "-q", "-O", "/dev/null", "--tries=1", "--timeout=3", "http://127.0.0.1:PORT/"],
        "chromium": ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu",
                     "--user-data-dir=" + tempfile.mkdtemp(), "http://127.0.0.1:PORT/path"],
        "python-urllib": ["/usr/bin/python3", "-c", "import urllib.request as u;"
                          "u.urlopen('http://127.0.0.1:PORT/.well-known/acme-challenge/tok', timeout=3)"],
    }
    for name, argv in cases.items():
        data = record(argv)
        if data:
            save("http_head", name, data)


def proxy_headers():
    """HAProxy in front of the recorder: one frontend per header kind; curl connects through."""
    work = tempfile.mkdtemp()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", f"{work}/k.pem", "-out", f"{work}/c.pem", "-days", "2", "-subj", "/CN=a.test"],
                   check=True, capture_output=True)
    with open(f"{work}/both.pem", "w") as f:
        f.write(open(f"{work}/c.pem").read() + open(f"{work}/k.pem").read())
    for name, opt, url in [("haproxy-send-proxy-v1", "send-proxy", "http"),
                           ("haproxy-send-proxy-v2", "send-proxy-v2", "http"),
                           ("haproxy-send-proxy-v2-ssl", "send-proxy-v2-ssl send-proxy-v2-ssl-cn", "https")]:
        r = Recorder()
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        front = s.getsockname()[1]
        s.close()
        bind = f"bind 127.0.0.1:{front}" + (f" ssl crt {work}/both.pem alpn h2,http/1.1" if url == "https" else "")
        cfg = f"{work}/{name}.cfg"
        with open(cfg, "w") as f:
            f.write(f"defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 5s\n  timeout server 5s\n"
                    f"frontend fe\n  {bind}\n  default_backend be\n"
                    f"backend be\n  server s1 127.0.0.1:{r.port} {opt}\n")
        h = subprocess.Popen(["haproxy", "-db", "-f", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(50):
            if subprocess.run(["curl", "-sk", "--max-time", "2", "--resolve", f"a.test:{front}:127.0.0.1",
                               f"{url}://a.test:{front}/"], capture_output=True).returncode != 7:
                break
            time.sleep(0.1)
        data = r.wait()
        stop(h)
        if data:
            save("proxy_protocol", name, data)


class UdpRelay:
    """Forwards each datagram to `upstream` and records every answer in order."""

    def __init__(self, upstream_port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.up = upstream_port
        self.answers = []
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            q, client = self.sock.recvfrom(65535)
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.settimeout(3)
            u.sendto(q, ("127.0.0.1", self.up))
            try:
                a, _ = u.recvfrom(65535)
            except OSError:
                continue
            self.answers.append(a)
            self.sock.sendto(a, client)


def dns_answers():
    work = tempfile.mkdtemp()
    bind = Bind(work, extra_records='_acme-challenge.www IN TXT "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"\n'
                                   'other IN TXT "a" "b" "c"\nv6 IN AAAA ::1\n')
    try:
        relay = UdpRelay(bind.port)
        key = f"hmac-sha256:{bind.key_name}:{open(bind.secret_file).read().strip()}"

        def dig(*args):
            n = len(relay.answers)
            subprocess.run(["dig", "+norecurse", "+time=2", "+tries=1", "-p", str(relay.port), "@127.0.0.1", *args],
                           capture_output=True, check=True)
            return relay.answers[n] if len(relay.answers) > n else b""

        walk = dig("SOA", "_acme-challenge.www.example.test")     # NXDOMAIN/NODATA + SOA in authority
        soa = dig("SOA", "example.test")
        ns = dig("NS", "example.test")                            # with glue
        a = dig("A", "ns1.example.test")
        txt = dig("TXT", "_acme-challenge.www.example.test")
        many = dig("TXT", "other.example.test")
        aaaa = dig("AAAA", "v6.example.test")
        signed = dig("-y", key, "TXT", "_acme-challenge.www.example.test")
        badkey = dig("-y", "hmac-sha256:nokey:c2VjcmV0", "SOA", "example.test")
        n = len(relay.answers)
        subprocess.run(["nsupdate", "-k", bind.key_file], input=f"server 127.0.0.1 {relay.port}\nzone example.test\n"
                       "update add _acme-challenge.www.example.test 60 TXT second\nsend\n", text=True,
                       capture_output=True, timeout=20)
        update = relay.answers[n] if len(relay.answers) > n else b""
        for name, data in [("bind-soa-walk-nxdomain", walk), ("bind-soa", soa), ("bind-ns-glue", ns), ("bind-a", a),
                           ("bind-txt", txt), ("bind-txt-multi-string", many), ("bind-aaaa", aaaa),
                           ("bind-txt-tsig-signed", signed), ("bind-tsig-badkey", badkey),
                           ("bind-update-tsig-signed", update)]:
            if data:
                save("dns_response", name, data)

        def seq(*msgs):
            return b"".join(struct.pack(">H", len(m)) + m for m in msgs)
        # Zone walk (2 SOA questions), the UPDATE, then NS + TXT for authoritative_servers and
        # the propagation check (its own NS query, then TXT until it sees the value).
        walk2 = dig("SOA", "www.example.test")
        save("dns_propagation", "bind-walk-update-ns-txt", seq(walk, walk2, soa, update, ns, ns, txt, txt))
        save("dns_propagation", "bind-ns-then-txt", seq(ns, ns, txt))
    finally:
        bind.stop()


if __name__ == "__main__":
    client_hellos()
    request_heads()
    proxy_headers()
    dns_answers()
