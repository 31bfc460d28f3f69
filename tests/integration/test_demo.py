"""The README's first command ends in scripts/demo.py: a local Pebble and `edgecert issue`.
Run it as a user would (minus the package install, which scripts/test.sh already did)."""
import os
import subprocess
import sys

SRC = os.environ.get("EDGECERT_SRC") or os.path.join(os.path.dirname(__file__), "..", "..")


def test_demo_issues_a_certificate_that_verifies(tmp_path):
    env = dict(os.environ, EDGECERT_DEMO_OUT=str(tmp_path / "demo"))
    p = subprocess.run(["/usr/bin/python3", os.path.join(SRC, "scripts", "demo.py")], env=env,
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stdout + p.stderr
    crt = tmp_path / "demo" / "demo.edgecert.test" / "tls.crt"
    assert crt.exists() and (tmp_path / "demo" / "demo.edgecert.test" / "tls.key").exists()
    assert f"{crt}: OK" in p.stdout          # openssl verify against this run's Pebble root
    assert "openssl x509 -in" in p.stdout     # tells the user how to inspect it
    assert "PRIVATE KEY" not in p.stdout + p.stderr
