"""Issuer fallback in `edgecert run` (the same policy as the controller, controller/fallback.h): the
in-repo ACME server as the primary answering 500, real Pebble as the fallback, both validating real
http-01 answers from the built-in terminator. Pebble issues, the certificate is served and verifies
against Pebble's root, the log, /metrics and status.json say so; the renewal goes back to the
(healthy) primary. An unknown fallback issuer stops `run` with exit code 2."""
import json
import os
import re
import subprocess

import pytest

from acmeserver_fixture import AcmeServer
from edgecert_helpers import BIN
from pebble_fixture import Pebble, free_port
from test_run import Backend, EdgecertRun, https_get, wait_for


@pytest.fixture
def backend(tmp_path):
    b = Backend(str(tmp_path / "www"))
    yield b
    b.stop()


def test_unknown_fallback_issuer_exits_2(tmp_path, backend):
    r = EdgecertRun(tmp_path, [{"name": "ca", "acme": {"server": "https://127.0.0.1:1/dir"}}],
                    [{"name": "web", "dnsNames": ["web.example.test"], "issuerRef": {"name": "ca"},
                      "fallbackIssuerRefs": [{"name": "zerossl"}]}], backend.port)
    p = subprocess.run([BIN, "run", "--config", r.config], capture_output=True, text=True, timeout=20)
    assert p.returncode == 2, p.stderr
    assert "certificates[0] (web): fallbackIssuerRefs[0].name 'zerossl' is not one of the issuers" in p.stderr


def test_primary_500_falls_back_to_pebble_and_the_renewal_returns(tmp_path, backend):
    tls_port, http_port = free_port(), free_port()
    pebble = Pebble(str(tmp_path / "pebble"), http_port=http_port, tls_port=tls_port, validity=3600)
    ca = AcmeServer(tmp_path / "ca", validation="http", http_port=http_port)
    ca.start()
    r = None
    try:
        ca.fail("/new-order", count=100000, status=500, type="serverInternal", retry_after=1, detail="database down")
        issuers = [{"name": "primary", "acme": {"server": ca.dir_url, "caBundleFile": ca.ca_bundle}},
                   {"name": "pebble", "acme": {"server": pebble.dir_url, "caBundleFile": pebble.ca_file}}]
        certs = [{"name": "fb", "dnsNames": ["fb.run.test"], "issuerRef": {"name": "primary"},
                  "fallbackIssuerRefs": [{"name": "pebble"}], "fallbackPolicy": {"afterAttempts": 1},
                  # Pebble's certificates last an hour: renewed 10 s after issuance.
                  "renewBefore": "59m50s"}]
        r = EdgecertRun(tmp_path / "run", issuers, certs, backend.port, tls_port=tls_port, http_port=http_port).start()
        r.wait_log(r"certificate fb: FallbackIssuer: issuer primary failed 1 time in a row \(serverInternal\); "
                   r"falling back to issuer pebble", timeout=30)
        r.wait_log(r"certificate fb: issued serial \S+ .* by issuer pebble \(fallback for primary\)", timeout=30)
        ca.mgmt("POST", "clear-faults", {})
        meta = json.load(open(os.path.join(r.cert_dir("fb"), "certificate.json")))
        assert meta["issuer"] == "pebble"
        root = tmp_path / "pebble-root.pem"
        root.write_text(pebble.root_pem())
        body, _ = wait_for(lambda: _get(r, "fb.run.test", str(root)), 10, "served, verified against Pebble's root")
        assert "hello from the backend" in body
        _, metrics = r.admin("/metrics")
        assert re.search(r'edgecert_certificate_issuer_fallbacks_total\{from_issuer_kind="Issuer",'
                         r'from_issuer_name="primary",name="fb",reason="serverInternal",to_issuer_kind="Issuer",'
                         r'to_issuer_name="pebble"\} 1', metrics), metrics
        assert re.search(r'edgecert_certificate_active_issuer\{fallback="true",issuer_kind="Issuer",'
                         r'issuer_name="pebble",name="fb",secret="fb"\} 1', metrics), metrics
        wait_for(lambda: _status(r, "fb", "pebble"), 10, "status.json names pebble")
        assert ca.orders() == []

        # The renewal: the primary again, healthy now.
        r.wait_log(r"(?m)certificate fb: renewed serial \S+ .*valid until \S+$", timeout=40)
        assert json.load(open(os.path.join(r.cert_dir("fb"), "certificate.json")))["issuer"] == "primary"
        (order,) = ca.orders()
        assert order.get("replaces") is None
        wait_for(lambda: _status(r, "fb", "primary"), 10, "status.json names the primary")
        _, metrics = r.admin("/metrics")
        assert re.search(r'edgecert_certificate_active_issuer\{fallback="false",issuer_kind="Issuer",'
                         r'issuer_name="primary",name="fb",secret="fb"\} 1', metrics), metrics
        assert re.search(r'edgecert_certificate_active_issuer\{fallback="true",issuer_kind="Issuer",'
                         r'issuer_name="pebble",name="fb",secret="fb"\} 0', metrics), metrics
        assert r.stop() == 0
    finally:
        if r:
            r.stop()
        ca.stop()
        pebble.stop()


def _get(r, name, cafile):
    try:
        return https_get(r.tls_port, name, cafile)
    except OSError:
        return None


def _status(r, name, issuer):
    try:
        st = json.load(open(os.path.join(r.cert_dir(name), "status.json")))
    except (OSError, ValueError):
        return None
    return st if st.get("issuer") == issuer else None
