"""Starts Debian's Pebble (+ pebble-challtestsrv as its DNS) on 127.0.0.1 for integration tests.

Every name resolves to 127.0.0.1 through challtestsrv, so Pebble validates http-01 and tls-alpn-01
by connecting to the ports the test picked, where edgecert's responder (or the terminator) answers.
No PEBBLE_VA_ALWAYS_VALID: validation is real. Pebble's roots change at every start: fetch them
from the management port. Everything is stopped by PID.
"""
import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.request

EAB_KEYS = {
    # The MAC keys of Debian's example EAB config (public test values, base64url).
    "kid-1": "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W",
    "kid-2": "b10lLJs8l1GPIzsLP0s6pMt8O0XVGnfTaCeROxQM0BIt2XrJMDHJZBM5NuQmQJQH",
}


def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def free_tcp_udp_port():
    """A port free for both TCP and UDP (DNS)."""
    for _ in range(50):
        p = free_port()
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", p))
            return p
        except OSError:
            continue
        finally:
            u.close()
    raise RuntimeError("no free tcp+udp port")


def wait_tcp(port, proc, timeout=20.0, what="server"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited early with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} not listening on {port} after {timeout}s")


def stop(proc):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def make_serving_cert(dirpath):
    cert = os.path.join(dirpath, "pebble-localhost.pem")
    key = os.path.join(dirpath, "pebble-localhost.key")
    if not os.path.exists(cert):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            check=True, capture_output=True)
        os.chmod(key, 0o600)
    return cert, key


class Pebble:
    """A running Pebble. Attributes: dir_url, ca_file (trust for the ACME endpoint), http_port,
    tls_port (where Pebble validates), mgmt_port, workdir."""

    def __init__(self, workdir, http_port=None, tls_port=None, validity=3600, eab=False,
                 env=None, nonce_reject=0, dns_server=None):
        # dns_server "127.0.0.1:PORT": resolve through that server (a test BIND for dns-01)
        # instead of starting pebble-challtestsrv.
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.http_port = http_port or free_port()
        self.tls_port = tls_port or free_port()
        self.port = free_port()
        self.mgmt_port = free_port()
        self.dns_port = free_tcp_udp_port()
        self.challtest_mgmt_port = free_port()
        self.ca_file, key = make_serving_cert(workdir)
        cfg = {"pebble": {
            "listenAddress": f"127.0.0.1:{self.port}",
            "managementListenAddress": f"127.0.0.1:{self.mgmt_port}",
            "certificate": self.ca_file, "privateKey": key,
            "httpPort": self.http_port, "tlsPort": self.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": bool(eab),
            "certificateValidityPeriod": int(validity),
        }}
        if eab:
            cfg["pebble"]["externalAccountMACKeys"] = EAB_KEYS
        self.config_path = os.path.join(workdir, "pebble-config.json")
        with open(self.config_path, "w") as f:
            json.dump(cfg, f)
        self.log_path = os.path.join(workdir, "pebble.log")
        e = dict(os.environ)
        e.update({"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": str(nonce_reject),
                  "PEBBLE_AUTHZREUSE": "0"})
        e.pop("PEBBLE_VA_ALWAYS_VALID", None)
        if env:
            e.update(env)
        self.challtest = None if dns_server else subprocess.Popen(
            ["pebble-challtestsrv", "-management", f"127.0.0.1:{self.challtest_mgmt_port}",
             "-dns01", f"127.0.0.1:{self.dns_port}", "-http01", "", "-https01", "",
             "-tlsalpn01", "", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""],
            stdout=open(os.path.join(workdir, "challtestsrv.log"), "w"), stderr=subprocess.STDOUT)
        self.proc = None
        try:
            if self.challtest:
                wait_tcp(self.challtest_mgmt_port, self.challtest, what="pebble-challtestsrv")
            self.proc = subprocess.Popen(
                ["pebble", "-config", self.config_path, "-dnsserver",
                 dns_server or f"127.0.0.1:{self.dns_port}"],
                stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT, env=e, cwd=workdir)
            wait_tcp(self.port, self.proc, what="pebble")
            wait_tcp(self.mgmt_port, self.proc, what="pebble management")
        except Exception:
            self.stop()
            raise
        self.dir_url = f"https://127.0.0.1:{self.port}/dir"

    def _mgmt(self, path):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # management port uses the same self-signed serving cert
        with urllib.request.urlopen(f"https://127.0.0.1:{self.mgmt_port}{path}", context=ctx,
                                    timeout=10) as r:
            return r.read().decode()

    def root_pem(self, n=0):
        return self._mgmt(f"/roots/{n}")

    def intermediate_pem(self, n=0):
        return self._mgmt(f"/intermediates/{n}")

    def cert_status(self, serial_hex):
        """Pebble's view of a certificate: {"Status": "Valid"|"Revoked", ...}."""
        return json.loads(self._mgmt(f"/cert-status-by-serial/{serial_hex}"))

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def stop(self):
        stop(self.proc)
        stop(self.challtest)
