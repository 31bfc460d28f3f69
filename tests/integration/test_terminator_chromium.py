"""Headless Chromium loads a page through `edgecert terminator` (issue 3, "headless Chromium loading a
page through the terminator"). The certificate chain is the test's own (a CA made with openssl and a
leaf for a .test name); Chromium cannot be handed a custom root on the command line, so it trusts the
leaf through --ignore-certificate-errors-spki-list, the SPKI pin Chromium documents for exactly this.
The upstream parses the PROXY v2 header and must see ALPN h2 (Chromium speaks h2 when offered)."""
import base64
import hashlib
import os
import struct
import tempfile

import pytest

from terminator_fixture import CHROMIUM, Terminator, Upstream, chromium, make_ca_and_leaf

NAME = "browser.edgecert.test"

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason=f"{CHROMIUM} not installed (Debian package 'chromium', see scripts/setup.sh)")


class HtmlUpstream(Upstream):
    """The fixture's PROXY-v2-checking upstream, answering h2 GETs with an HTML page that names the
    PROXY header it received, so the browser's DOM proves the whole path."""

    def _h2(self, c, buf, info):
        # RFC 9113 §3.4 preface, our (empty) SETTINGS, then 9-byte frame headers (len24 type flags sid31).
        buf = self._recv_until(c, buf, lambda b: len(b) >= 24)
        if buf is None:
            return
        buf = buf[24:]
        c.sendall(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        tlv = info.get("tlv", {})
        page = (f"<!DOCTYPE html><html><head><title>edgecert</title></head><body>"
                f"<h1 id='marker'>served-by-upstream-7f3c</h1>"
                f"<p id='pp'>alpn={tlv.get('alpn')} authority={tlv.get('authority')} src={info.get('src')}</p>"
                f"</body></html>").encode()
        ctype = b"text/html; charset=utf-8"
        # HPACK (RFC 7541): 0x88 = indexed ":status: 200"; 0x0f 0x10 = literal without indexing, name =
        # static index 31 (content-type), then a plain (non-Huffman) string.
        block = b"\x88\x0f\x10" + bytes([len(ctype)]) + ctype
        while True:
            buf = self._recv_until(c, buf, lambda b: len(b) >= 9 and len(b) >= 9 + int.from_bytes(b[0:3], "big"))
            if buf is None:
                return
            ln, typ, flags = int.from_bytes(buf[0:3], "big"), buf[3], buf[4]
            sid = struct.unpack("!I", buf[5:9])[0] & 0x7FFFFFFF
            buf = buf[9 + ln:]
            if typ == 4 and not flags & 1:  # SETTINGS -> ACK
                c.sendall(b"\x00\x00\x00\x04\x01\x00\x00\x00\x00")
            elif typ == 6 and not flags & 1:  # PING -> ACK (echo of the payload is not checked by Chromium)
                c.sendall(b"\x00\x00\x08\x06\x01\x00\x00\x00\x00" + b"\x00" * 8)
            elif typ == 1 and flags & 4:  # HEADERS with END_HEADERS: a request (GET; no body expected)
                with self.lock:
                    self.requests = getattr(self, "requests", 0) + 1
                c.sendall(struct.pack("!I", len(block))[1:] + b"\x01\x04" + struct.pack("!I", sid) + block)
                c.sendall(struct.pack("!I", len(page))[1:] + b"\x00\x01" + struct.pack("!I", sid) + page)
            elif typ == 7:  # GOAWAY
                return


@pytest.fixture
def served(tmp_path):
    certs = tmp_path / "certs"
    spki = make_ca_and_leaf(str(tmp_path), str(certs), NAME)
    up = HtmlUpstream("v2")
    t = Terminator(str(certs), up.port, "--strict-sni", workdir=str(tmp_path))
    yield {"t": t, "up": up, "spki": spki, "dir": tmp_path}
    rc = t.stop()
    up.close()
    assert rc == 0, t.logs()
    assert not up.errors, up.errors


def test_chromium_loads_page_over_h2_through_terminator(served):
    t, up = served["t"], served["up"]
    with tempfile.TemporaryDirectory(dir=served["dir"]) as profile:
        p = chromium(t.tls_port, served["spki"], profile, "--dump-dom", name=NAME)
    dom = p.stdout
    assert "served-by-upstream-7f3c" in dom, f"rc={p.returncode}\nstdout:\n{dom}\nstderr:\n{p.stderr[-3000:]}"
    # The page echoes the PROXY v2 header the upstream parsed; check it both in the DOM and directly.
    assert f"alpn=h2 authority={NAME} src=127.0.0.1" in dom, dom
    h2 = [h for h in up.headers if h.get("tlv", {}).get("alpn") == "h2"]
    assert h2, up.headers
    pp = h2[0]
    assert pp["version"] == 2 and pp["command"] == 1 and pp["family"] == 0x11
    assert pp["dst_port"] == t.tls_port and pp["tlv"]["authority"] == NAME
    assert pp["tlv"]["ssl"]["version"] == "TLSv1.3" and pp["tlv"]["ssl"]["client"] == 1
    assert getattr(up, "requests", 0) >= 1
    m = t.metrics()
    assert sum(v for k, v in m.items() if k.startswith("edgecert_tls_handshakes_total") and 'result="ok"' in k) >= 1, m


def test_chromium_refuses_without_the_pin_and_screenshots_with_it(served):
    """Without the SPKI pin the same certificate is untrusted (so the pin, not a global 'ignore
    errors', is what made the first test pass) and the upstream gets no request; with it, a
    screenshot of the page is written."""
    t, up = served["t"], served["up"]
    wrong = base64.b64encode(hashlib.sha256(b"not the leaf").digest()).decode()
    with tempfile.TemporaryDirectory(dir=served["dir"]) as profile:
        p = chromium(t.tls_port, wrong, profile, "--dump-dom", name=NAME)
    assert "served-by-upstream-7f3c" not in p.stdout
    assert getattr(up, "requests", 0) == 0, "the upstream served a browser that rejected the certificate"
    shot = served["dir"] / "page.png"
    with tempfile.TemporaryDirectory(dir=served["dir"]) as profile:
        p = chromium(t.tls_port, served["spki"], profile, f"--screenshot={shot}", "--window-size=800,600", name=NAME)
    assert shot.exists(), f"rc={p.returncode}\n{p.stderr[-3000:]}"
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    assert getattr(up, "requests", 0) >= 1
