"""`edgecert terminator` as a new user runs it: no flag beyond the required ones (and the loopback
ports a test must pick), in front of an ordinary HTTP/1.1 server, with the clients people have at
their defaults — curl (h2-capable), headless Chromium, Python's urllib and requests. Then the
explicit h2 statement: --upstream-protocol h2c in front of a real h2c server (nghttpd) gives
HTTP/2 end to end; declared h2c in front of an HTTP/1.1 server, clients still get the page over
HTTP/1.1 and the terminator says why, in one log line and in /metrics, whether it finds out at
start or on a client's connection after the upstream changed."""
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import urllib.request

import pytest
import requests

from terminator_fixture import CHROMIUM, Terminator, chromium, free_port, make_ca_and_leaf, wait_for

NAME = "app.edgecert.test"
PAGE = "hello-from-the-http11-upstream-4b1d"
NGHTTPD = shutil.which("nghttpd")


class Server:
    """A real server process on 127.0.0.1:port, stopped by PID."""

    def __init__(self, args, workdir, name, ready):
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, cwd=workdir)
        if not wait_for(lambda: self.proc.poll() is not None or ready(), timeout=10) or self.proc.poll() is not None:
            raise AssertionError(f"{name} did not start:\n{open(self.log_path).read()}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def port_open(port):
    import socket
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def http11_server(docroot, port, workdir):
    """Python's http.server: plain HTTP/1.0/1.1, answers the HTTP/2 preface with a 400."""
    return Server(["/usr/bin/python3", "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(docroot),
                   str(port)], workdir, f"http-server-{port}", lambda: port_open(port))


def h2c_server(docroot, port, workdir):
    """nghttpd without TLS: HTTP/2 with prior knowledge only (RFC 9113 §3.3)."""
    return Server([NGHTTPD, "--no-tls", "--address=127.0.0.1", "-d", str(docroot), str(port)], workdir,
                  f"nghttpd-{port}", lambda: port_open(port))


def curl(port, *extra, path="/"):
    """curl with its defaults (it offers h2 and http/1.1 and takes h2 when the server picks it).
    Returns (exit code, body, protocol): the protocol of the response it finally got — "h2", or
    "http/1.1" (what ALPN settled; python's http.server answers in HTTP/1.0 over it)."""
    p = subprocess.run(["curl", "-sS", "-v", "--max-time", "20", "--cacert", CA, "--resolve",
                        f"{NAME}:{port}:127.0.0.1", "-o", "-", "-w", "\n%{http_version}", *extra,
                        f"https://{NAME}:{port}{path}"], capture_output=True, text=True, timeout=30)
    body, _, version = p.stdout.rpartition("\n")
    proto = "h2" if version == "2" else "http/1.1" if version in ("1", "1.0", "1.1") else version
    return p.returncode, body + p.stderr, proto


CA = None  # the test CA's certificate, set by the fixture


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    global CA
    d = tmp_path_factory.mktemp("defaults")
    certs = d / "certs"
    spki = make_ca_and_leaf(str(d), str(certs), NAME)
    CA = str(d / "ca.crt")
    docroot = d / "www"
    docroot.mkdir()
    (docroot / "index.html").write_text(f"<!DOCTYPE html><html><body><h1 id='m'>{PAGE}</h1></body></html>\n")
    return {"dir": d, "certs": str(certs), "spki": spki, "www": docroot}


def metric(t, name):
    return t.metrics().get(name, 0.0)


def h2c_terminator(site, tmp_path):
    """nghttpd (h2c only) as the upstream and a terminator declaring it, once h2 is offered."""
    port = free_port()
    up = h2c_server(site["www"], port, str(tmp_path))
    t = Terminator(site["certs"], port, "--upstream-protocol", "h2c", workdir=str(tmp_path), defaults=True)
    try:
        assert wait_for(lambda: metric(t, "edgecert_upstream_h2_offered") == 1, timeout=10), t.logs()
    except BaseException:
        t.stop()
        up.stop()
        raise
    return port, up, t


def test_defaults_serve_every_client_over_http11_in_front_of_an_http11_server(site, tmp_path):
    port = free_port()
    up = http11_server(site["www"], port, str(tmp_path))
    t = Terminator(site["certs"], port, workdir=str(tmp_path), defaults=True)
    try:
        # curl, no protocol flag: it offers h2 first; the terminator offers only http/1.1.
        rc, body, version = curl(t.tls_port)
        assert rc == 0 and PAGE in body, body
        assert version == "http/1.1", version
        # Python's urllib (ALPN http/1.1) and requests (urllib3), verifying against the test CA.
        ctx = ssl.create_default_context(cafile=CA)
        with urllib.request.urlopen(f"https://{NAME}:{t.tls_port}/", context=ctx, timeout=10) as r:
            assert r.status == 200 and PAGE in r.read().decode()
        r = requests.get(f"https://{NAME}:{t.tls_port}/", verify=CA, timeout=10)
        assert r.status_code == 200 and PAGE in r.text
        # Headless Chromium with its defaults (it would take h2 if offered).
        if os.path.exists(CHROMIUM):
            with tempfile.TemporaryDirectory(dir=tmp_path) as profile:
                p = chromium(t.tls_port, site["spki"], profile, "--dump-dom", name=NAME)
            assert PAGE in p.stdout, f"rc={p.returncode}\n{p.stdout}\n{p.stderr[-3000:]}"
        # Nothing was sent that the plain server could not read: no PROXY header, no HTTP/2.
        log = open(up.log_path).read()
        assert "PRI * HTTP/2.0" not in log and "code 400" not in log, log
        m = t.metrics()
        assert "edgecert_upstream_h2_offered" not in m  # no h2 statement, no h2 machinery
        assert "--upstream-protocol" not in t.logs()
    finally:
        assert t.stop() == 0
        up.stop()


def test_upstream_down_gives_http11_clients_a_502_not_an_empty_reply(site, tmp_path):
    port = free_port()  # nothing listens there
    t = Terminator(site["certs"], port, workdir=str(tmp_path), defaults=True)
    try:
        rc, body, version = curl(t.tls_port, "-i")
        assert rc == 0, body
        assert body.startswith("HTTP/1.1 502"), body
        assert "edgecert: the upstream is not reachable" in body
        assert metric(t, "edgecert_upstream_http_502_total") >= 1
    finally:
        assert t.stop() == 0


def test_alpn_h2_without_an_h2c_upstream_is_refused_at_start(site, tmp_path):
    p = subprocess.run([os.environ.get("EDGECERT_BIN", "edgecert"), "terminator", "--cert-dir", site["certs"],
                        "--upstream", "127.0.0.1:1", "--listen", f"127.0.0.1:{free_port()}", "--http-listen", "off",
                        "--admin", "off", "--alpn", "h2,http/1.1"], capture_output=True, text=True, timeout=20)
    assert p.returncode == 2, p.stderr
    assert "ALPN h2 is offered but the upstream protocol is http1" in p.stderr, p.stderr
    assert "--upstream-protocol h2c" in p.stderr


@pytest.mark.skipif(NGHTTPD is None, reason="nghttpd (Debian package nghttp2-server) not installed")
def test_h2c_upstream_gives_http2_end_to_end(site, tmp_path):
    port, up, t = h2c_terminator(site, tmp_path)
    try:
        rc, body, version = curl(t.tls_port)
        assert rc == 0 and PAGE in body, body
        assert version == "h2", version  # and nghttpd speaks nothing else: HTTP/2 end to end
        assert "answers the HTTP/2 preface (h2c): offering h2" in t.logs()
        if os.path.exists(CHROMIUM):
            with tempfile.TemporaryDirectory(dir=tmp_path) as profile:
                p = chromium(t.tls_port, site["spki"], profile, "--dump-dom", name=NAME)
            assert PAGE in p.stdout, f"rc={p.returncode}\n{p.stdout}\n{p.stderr[-3000:]}"
        # An HTTP/1.1 client through the same terminator: forwarded as HTTP/1.1 (nghttpd refuses
        # it — an h2c upstream must accept both, as nginx `http2 on`, HAProxy, Envoy and Traefik do).
        assert metric(t, "edgecert_upstream_h2_mismatches_total") == 0
    finally:
        assert t.stop() == 0
        up.stop()


def test_h2c_declared_but_http11_upstream_at_start(site, tmp_path):
    port = free_port()
    up = http11_server(site["www"], port, str(tmp_path))
    t = Terminator(site["certs"], port, "--upstream-protocol", "h2c", workdir=str(tmp_path), defaults=True)
    try:
        assert wait_for(lambda: metric(t, 'edgecert_upstream_h2_checks_total{result="not_h2"}') >= 1, timeout=10)
        assert metric(t, "edgecert_upstream_h2_offered") == 0
        lines = [l for l in t.logs().splitlines() if "does not speak HTTP/2 with prior knowledge" in l]
        assert len(lines) == 1, t.logs()
        assert f"127.0.0.1:{port}" in lines[0] and 'with "<!DOCTYPE HTML>"' in lines[0] and "--upstream-protocol http1" in lines[0]
        rc, body, version = curl(t.tls_port)
        assert rc == 0 and PAGE in body and version == "http/1.1", (body, version)
        if os.path.exists(CHROMIUM):
            with tempfile.TemporaryDirectory(dir=tmp_path) as profile:
                p = chromium(t.tls_port, site["spki"], profile, "--dump-dom", name=NAME)
            assert PAGE in p.stdout, f"rc={p.returncode}\n{p.stderr[-3000:]}"
    finally:
        assert t.stop() == 0
        up.stop()


@pytest.mark.skipif(NGHTTPD is None, reason="nghttpd (Debian package nghttp2-server) not installed")
def test_upstream_loses_h2c_clients_are_sent_to_http11_and_h2_returns_with_it(site, tmp_path):
    """h2 was offered (the upstream answered the preface); then an HTTP/1.1 server replaced it on the
    same port. The next h2 client gets GOAWAY(HTTP_1_1_REQUIRED) instead of the upstream's 400, curl
    retries, and the terminator has stopped offering h2: the page arrives over HTTP/1.1. Once h2c is
    back, the periodic check offers h2 again."""
    port, up, t = h2c_terminator(site, tmp_path)
    try:
        up.stop()
        up = http11_server(site["www"], port, str(tmp_path))
        rc, body, version = curl(t.tls_port)
        assert rc == 0 and PAGE in body, body
        assert version == "http/1.1", version
        assert metric(t, "edgecert_upstream_h2_mismatches_total") == 1
        assert metric(t, "edgecert_upstream_h2_offered") == 0
        line = [l for l in t.logs().splitlines() if "does not speak HTTP/2 with prior knowledge" in l]
        assert line and "(seen on a client connection)" in line[0], t.logs()
        if os.path.exists(CHROMIUM):
            with tempfile.TemporaryDirectory(dir=tmp_path) as profile:
                p = chromium(t.tls_port, site["spki"], profile, "--dump-dom", name=NAME)
            assert PAGE in p.stdout, f"rc={p.returncode}\n{p.stderr[-3000:]}"
        up.stop()
        up = h2c_server(site["www"], port, str(tmp_path))
        assert wait_for(lambda: metric(t, "edgecert_upstream_h2_offered") == 1, timeout=30), t.logs()
        rc, body, version = curl(t.tls_port)
        assert rc == 0 and PAGE in body and version == "h2", (body, version)
    finally:
        assert t.stop() == 0
        up.stop()


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium not installed")
@pytest.mark.skipif(NGHTTPD is None, reason="nghttpd (Debian package nghttp2-server) not installed")
def test_chromium_is_sent_to_http11_on_a_mismatch(site, tmp_path):
    """The same change of upstream, with Chromium as the first client to meet it."""
    port, up, t = h2c_terminator(site, tmp_path)
    try:
        up.stop()
        up = http11_server(site["www"], port, str(tmp_path))
        with tempfile.TemporaryDirectory(dir=tmp_path) as profile:
            p = chromium(t.tls_port, site["spki"], profile, "--dump-dom", name=NAME)
        assert PAGE in p.stdout, f"rc={p.returncode}\n{p.stdout}\n{p.stderr[-3000:]}"
        assert metric(t, "edgecert_upstream_h2_mismatches_total") >= 1
    finally:
        assert t.stop() == 0
        up.stop()


# NAME is not in DNS: urllib and requests connect to 127.0.0.1 but keep the name for SNI and
# certificate verification (what curl --resolve and Chromium's resolver rules do).
@pytest.fixture(autouse=True)
def _resolve_name_to_loopback(monkeypatch):
    import socket
    real = socket.getaddrinfo

    def fake(host, *a, **kw):
        return real("127.0.0.1" if host == NAME else host, *a, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    yield
