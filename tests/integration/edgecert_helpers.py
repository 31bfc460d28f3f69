"""Helpers shared by the integration tests: run the edgecert binary, inspect certificates."""
import os
import re
import socket
import subprocess
import threading

BIN = os.environ.get("EDGECERT_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "edgecert")


def run(*args, check=False, timeout=120, env=None):
    e = dict(os.environ)
    e.setdefault("EDGECERT_LOG_LEVEL", "info")
    if env:
        e.update(env)
    p = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout, env=e)
    # House rule: no private key ever appears in any output.
    for stream in (p.stdout, p.stderr):
        assert "PRIVATE KEY" not in stream, "a private key was printed"
    if check and p.returncode != 0:
        raise AssertionError(f"edgecert {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def openssl(*args, input=None):
    return subprocess.run(["openssl", *args], capture_output=True, text=True, input=input)


def cert_field(path, field):
    """serial / enddate / issuer / subject of the first certificate in path."""
    out = openssl("x509", "-in", path, "-noout", f"-{field}").stdout.strip()
    return out.split("=", 1)[1] if "=" in out else out


def split_pem(text):
    return re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n?", text, re.S)


def verify_chain(chain_path, root_pem, workdir):
    """openssl verify of the leaf in chain_path against root_pem with the rest as untrusted."""
    certs = split_pem(open(chain_path).read())
    assert len(certs) >= 2, "tls.crt must hold the leaf and its chain"
    leaf = os.path.join(workdir, "leaf.pem")
    inter = os.path.join(workdir, "intermediates.pem")
    root = os.path.join(workdir, "root.pem")
    open(leaf, "w").write(certs[0])
    open(inter, "w").write("".join(certs[1:]))
    open(root, "w").write(root_pem)
    return openssl("verify", "-CAfile", root, "-untrusted", inter, leaf)


def tree(path):
    out = []
    for d, _, files in os.walk(path):
        for f in files:
            out.append(os.path.relpath(os.path.join(d, f), path))
    return sorted(out)


def https_request(port, name, ctx, path="/", timeout=5):
    """GET `path` through the terminator with SNI `name` on a new connection (a full handshake: no
    session is offered); (the whole response, the peer's leaf certificate DER)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        with ctx.wrap_socket(s, server_hostname=name) as t:
            t.sendall(f"GET {path} HTTP/1.0\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while True:
                chunk = t.recv(65536)
                if not chunk:
                    break
                data += chunk
            return data, t.getpeercert(binary_form=True)


class ClientPool:
    """`n` threads that each call `request()` in a loop until stop(): a return counts as a
    success, any exception as a failure (its repr kept). Used as a context manager."""

    def __init__(self, request, n):
        self.ok = self.fail = 0
        self.errors = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._request = request
        self._threads = [threading.Thread(target=self._loop) for _ in range(n)]

    def _loop(self):
        while not self._stop.is_set():
            try:
                self._request()
                with self._lock:
                    self.ok += 1
            except Exception as e:  # noqa: BLE001 — every failure counts
                with self._lock:
                    self.fail += 1
                    self.errors.append(repr(e))

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join()

    def __exit__(self, *exc):
        self.stop()
