#!/usr/bin/python3
"""The embedded-default demo: start a local Pebble (Let's Encrypt's test CA) on 127.0.0.1 and
obtain a real certificate for a demo name with `edgecert issue`, answering Pebble's http-01
validation with edgecert's built-in responder. Everything stops when the demo ends."""
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from pebble_fixture import Pebble  # noqa: E402

BIN = os.environ.get("EDGECERT_BIN", os.path.join(ROOT, "build", "edgecert"))
OUT = os.environ.get("EDGECERT_DEMO_OUT", os.path.join(ROOT, ".demo"))
NAME = os.environ.get("EDGECERT_DEMO_NAME", "demo.edgecert.test")


def main():
    work = tempfile.mkdtemp(prefix="edgecert-demo-")
    print(f"starting Pebble (ACME test CA) on 127.0.0.1, state in {work}")
    p = Pebble(work)
    try:
        print(f"ACME directory: {p.dir_url}")
        cmd = [BIN, "issue", "--server", p.dir_url, "--ca-bundle", p.ca_file, "--out", OUT,
               "--domains", NAME, "--email", "demo@example.test",
               "--http-port", f"127.0.0.1:{p.http_port}"]
        print("$ " + " ".join(cmd))
        r = subprocess.run(cmd)
        if r.returncode != 0:
            return r.returncode
        root = os.path.join(OUT, "pebble-root.pem")
        with open(root, "w") as f:
            f.write(p.root_pem())
        crt = os.path.join(OUT, NAME, "tls.crt")
        print(f"\nPebble's root for this run: {root}")
        print(f"verify the chain:  openssl verify -CAfile {root} -untrusted {crt} {crt}")
        v = subprocess.run(["openssl", "verify", "-CAfile", root, "-untrusted", crt, crt],
                           capture_output=True, text=True)
        print(v.stdout.strip() or v.stderr.strip())
        return v.returncode
    finally:
        p.stop()


if __name__ == "__main__":
    sys.exit(main())
