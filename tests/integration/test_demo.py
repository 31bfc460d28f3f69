"""README's first command ends in scripts/demo.py: a local Pebble, a demo backend and
`edgecert run` serving demo.edgecert.test with a Pebble-issued certificate. Run it as a user would
(minus the package install, which scripts/test.sh already did), exiting right after the check."""
import os
import re
import socket
import stat
import subprocess

SRC = os.environ.get("EDGECERT_SRC") or os.path.join(os.path.dirname(__file__), "..", "..")


def test_demo_serves_the_backend_with_a_pebble_certificate(tmp_path):
    out = tmp_path / "demo"
    env = dict(os.environ, EDGECERT_DEMO_OUT=str(out), EDGECERT_DEMO_EXIT="1")
    p = subprocess.run(["/usr/bin/python3", os.path.join(SRC, "scripts", "demo.py")], env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    # The exact curl line is printed, and its output is the backend's page.
    m = re.search(r"^\$ curl --cacert (\S+) --resolve demo\.edgecert\.test:(\d+):127\.0\.0\.1 "
                  r"https://demo\.edgecert\.test:(\d+)/$", p.stdout, re.M)
    assert m, p.stdout
    assert "Hello from the demo backend, served over HTTPS by edgecert" in p.stdout
    assert "$ " in p.stdout and " run --config " in p.stdout
    crt = out / "store" / "certs" / "demo" / "tls.crt"
    key = out / "store" / "certs" / "demo" / "tls.key"
    assert crt.exists() and stat.S_IMODE(key.stat().st_mode) == 0o600
    issuer = subprocess.run(["openssl", "x509", "-in", str(crt), "-noout", "-issuer"],
                            capture_output=True, text=True).stdout
    assert "Pebble" in issuer, issuer
    assert f"openssl x509 -in {crt}" in p.stdout
    assert "certificate demo: issued serial" in p.stderr
    assert "PRIVATE KEY" not in p.stdout + p.stderr
    # Everything it started was stopped: nothing listens on the terminator's port any more
    # (SO_REUSEADDR: connections in TIME_WAIT do not count, a listener would).
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", int(m.group(2))))
