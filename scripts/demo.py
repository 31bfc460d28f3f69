#!/usr/bin/python3
"""The embedded-default demo (README's first command): `edgecert run` with a config file.

Starts, all on 127.0.0.1 and stopped by PID at the end:
  - Pebble, Let's Encrypt's test CA (+ pebble-challtestsrv as its DNS, so every name resolves to
    127.0.0.1), validating http-01 and tls-alpn-01 against edgecert's own ports;
  - a tiny backend (python http.server) answering a page;
  - `edgecert run`, which obtains a certificate for demo.edgecert.test, stores it under
    .demo/store and serves HTTPS in front of the backend, answering Pebble's challenges itself.
Then it prints the exact curl line that fetches the page through edgecert and its output, and
keeps running until Ctrl-C (EDGECERT_DEMO_EXIT=1 or --check: exit right after the check).
"""
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from pebble_fixture import Pebble, free_port  # noqa: E402

BIN = os.environ.get("EDGECERT_BIN", os.path.join(ROOT, "build", "edgecert"))
OUT = os.path.abspath(os.environ.get("EDGECERT_DEMO_OUT", os.path.join(ROOT, ".demo")))
NAME = os.environ.get("EDGECERT_DEMO_NAME", "demo.edgecert.test")
CHECK_ONLY = os.environ.get("EDGECERT_DEMO_EXIT") == "1" or "--check" in sys.argv[1:]


def port_or_free(preferred):
    """The preferred port when it is free (a stable curl line), else any free one."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            return free_port()


def wait_listening(port, proc, what, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} is not listening on {port}")


def served_by(port, cafile):
    """True once the terminator serves NAME with a certificate that verifies against cafile."""
    ctx = ssl.create_default_context(cafile=cafile)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            with ctx.wrap_socket(s, server_hostname=NAME):
                return True
    except (OSError, ssl.SSLError):
        return False


def stop(proc):
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main():
    # Each run starts a new Pebble with a new root: certificates of an earlier run would not
    # verify, so the demo's store starts empty.
    shutil.rmtree(os.path.join(OUT, "store"), ignore_errors=True)
    os.makedirs(OUT, exist_ok=True)
    https_port, http_port = port_or_free(8443), port_or_free(8080)
    print(f"starting Pebble (ACME test CA) on 127.0.0.1; it validates on ports {http_port} (http-01) "
          f"and {https_port} (tls-alpn-01), where edgecert listens")
    pebble = Pebble(os.path.join(OUT, "pebble"), http_port=http_port, tls_port=https_port)
    backend = edgecert = None
    try:
        www = os.path.join(OUT, "www")
        os.makedirs(www, exist_ok=True)
        with open(os.path.join(www, "index.html"), "w") as f:
            f.write("Hello from the demo backend, served over HTTPS by edgecert\n")
        backend_port = free_port()
        backend = subprocess.Popen(["/usr/bin/python3", "-m", "http.server", str(backend_port), "--bind", "127.0.0.1"],
                                   cwd=www, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_listening(backend_port, backend, "the demo backend")
        root = os.path.join(OUT, "pebble-root.pem")
        with open(root, "w") as f:
            f.write(pebble.root_pem())
        config = os.path.join(OUT, "edgecert.yaml")
        with open(config, "w") as f:
            f.write(f"""# edgecert run --config {config}
store: store
issuers:
  - name: pebble
    acme:
      server: {pebble.dir_url}
      caBundleFile: {pebble.ca_file}
      email: demo@example.test
      solvers:
        - http01: {{}}
        - tlsAlpn01: {{}}
certificates:
  - name: demo
    dnsNames: [{NAME}]
    issuerRef: {{name: pebble}}
terminator:
  listen: "127.0.0.1:{https_port}"
  httpListen: "127.0.0.1:{http_port}"
  upstream: "127.0.0.1:{backend_port}"
  admin: "127.0.0.1:{free_port()}"
""")
        print(f"config: {config}")
        cmd = [BIN, "run", "--config", config]
        print("$ " + " ".join(cmd), flush=True)
        edgecert = subprocess.Popen(cmd)
        deadline = time.monotonic() + 60
        while not served_by(https_port, root):
            if edgecert.poll() is not None:
                print(f"edgecert run exited with {edgecert.returncode}", file=sys.stderr)
                return 1
            if time.monotonic() > deadline:
                print("no certificate was served within 60 s", file=sys.stderr)
                return 1
            time.sleep(0.2)
        crt = os.path.join(OUT, "store", "certs", "demo", "tls.crt")
        curl = ["curl", "--cacert", root, "--resolve", f"{NAME}:{https_port}:127.0.0.1", f"https://{NAME}:{https_port}/"]
        print(f"\n{NAME} is served with a certificate from Pebble (stored in {crt}, key beside it, mode 0600).")
        print("$ " + " ".join(curl), flush=True)
        r = subprocess.run(curl, capture_output=True, text=True)
        print(r.stdout.rstrip() or r.stderr.rstrip(), flush=True)
        if r.returncode != 0:
            return r.returncode
        print(f"inspect it:  openssl x509 -in {crt} -noout -subject -issuer -dates")
        if CHECK_ONLY:
            return 0
        print("\nedgecert keeps running (renewing and serving); Ctrl-C stops everything.", flush=True)
        try:
            while edgecert.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        return 0
    finally:
        stop(edgecert)
        stop(backend)
        pebble.stop()


if __name__ == "__main__":
    sys.exit(main())
