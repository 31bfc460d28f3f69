#!/usr/bin/python3
"""Controller benchmark: N annotated Ingresses issued against real Pebble (PEBBLE_VA_NOSLEEP=1,
real http-01 validation of the terminator), on the Kubernetes path: the in-repo test API server,
a separate `edgecert terminator` (Secrets + Challenges from the API) and `edgecert controller`.

Usage: /usr/bin/python3 bench/controller/run.py [--build build-rel] [--ingresses 1000]
                                                [--certificate-workers 16]

Reports: time from the Ingresses being created until every host is served by the terminator with
the issued certificate; issuance throughput; controller CPU seconds (user+sys, /proc/<pid>/stat)
and peak RSS (VmHWM); the same for the terminator; ACME requests per certificate (from the
controller's /metrics). The Python API server and Pebble share the two cores with edgecert, so
wall time is bounded by them; controller CPU per certificate is the figure edgecert owns.
"""
import argparse
import os
import ssl
import socket
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))
os.environ.setdefault("EDGECERT_SRC", str(REPO))

import apiserver_fixture  # noqa: E402
import pebble_fixture  # noqa: E402


def cpu_seconds(pid):
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def vm_hwm_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0


def served_serial(port, host):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname=host) as s:
                from cryptography import x509
                return x509.load_der_x509_certificate(s.getpeercert(binary_form=True)).subject
    except OSError:
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=str(REPO / "build-rel"))
    ap.add_argument("--ingresses", type=int, default=1000)
    ap.add_argument("--certificate-workers", type=int, default=16)
    ap.add_argument("--timeout", type=int, default=1800)
    a = ap.parse_args()
    os.environ["EDGECERT_BIN"] = str(Path(a.build) / "edgecert")
    from controller_fixture import CRDS, Controller, K8sTerminator, apply, issuer  # noqa: E402
    from terminator_fixture import Upstream, free_port  # noqa: E402

    d = Path(tempfile.mkdtemp(prefix="edgecert-bench-controller-"))
    tls_port, http_port = free_port(), free_port()
    pebble = pebble_fixture.Pebble(str(d / "pebble"), http_port=http_port, tls_port=tls_port, validity=86400)
    srv = apiserver_fixture.start(d / "api", tls=False, args=("--history", "200000"))
    up = Upstream()
    term = ctl = None
    try:
        srv.kubectl("apply", "-f", CRDS)
        apply(srv, issuer("pebble", pebble.dir_url, open(pebble.ca_file).read()))
        term = K8sTerminator(srv, str(d), up.port, tls_port, http_port).wait_ready()
        ctl = Controller(srv, str(d), "--leader-elect=false", "--certificate-workers", str(a.certificate_workers),
                         "--workers", "4").wait_ready()
        ctl_cpu0, term_cpu0 = cpu_seconds(ctl.proc.pid), cpu_seconds(term.proc.pid)
        items = []
        for i in range(a.ingresses):
            items.append({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                          "metadata": {"name": f"site{i}", "namespace": "default",
                                       "annotations": {"edgecert.io/issuer": "pebble"}},
                          "spec": {"tls": [{"hosts": [f"site{i}.bench.test"], "secretName": f"site{i}-tls"}]}})
        t0 = time.time()
        import concurrent.futures
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            for r in pool.map(lambda it: srv.http("POST", "/apis/networking.k8s.io/v1/namespaces/default/ingresses",
                                                   it), items):
                pass
        t_created = time.time() - t0
        print(f"created {a.ingresses} Ingresses in {t_created:.1f} s", flush=True)
        # "Served" = in the terminator's live snapshot (its edgecert_loaded_certificates gauge), polled
        # cheaply; every host is then checked once with a real handshake (outside the timing, so the
        # checks do not add to the terminator's CPU figure).
        def loaded():
            for line in term.metrics().splitlines():
                if line.startswith("edgecert_loaded_certificates "):
                    return int(float(line.split()[-1]))
            return 0
        last_report = time.time()
        n = 0
        while time.time() - t0 < a.timeout:
            n = loaded()
            if n >= a.ingresses:
                break
            if time.time() - last_report > 10:
                print(f"  {n}/{a.ingresses} served after {time.time() - t0:.0f} s", flush=True)
                last_report = time.time()
            time.sleep(0.2)
        wall = time.time() - t0
        ctl_cpu, term_cpu = cpu_seconds(ctl.proc.pid) - ctl_cpu0, cpu_seconds(term.proc.pid) - term_cpu0
        pending = set()
        for i in range(a.ingresses):
            host = f"site{i}.bench.test"
            subj = served_serial(tls_port, host)
            if subj is None or host not in subj.rfc4514_string():
                pending.add(host)
        served = a.ingresses - len(pending)
        m = ctl.metrics()
        acme_reqs = sum(float(l.split()[-1]) for l in m.splitlines() if l.startswith("edgecert_acme_requests_total{"))
        print()
        print(f"| {a.ingresses} annotated Ingresses, Pebble NOSLEEP, real http-01 | value |")
        print("|---|---|")
        print(f"| all hosts served with their issued certificate | {served}/{a.ingresses} in {wall:.1f} s |")
        print(f"| issuance throughput | {served / wall:.1f} certificates/s |")
        print(f"| controller CPU (user+sys) | {ctl_cpu:.2f} s ({1000 * ctl_cpu / max(served, 1):.1f} ms per certificate) |")
        print(f"| controller peak RSS (VmHWM) | {vm_hwm_mib(ctl.proc.pid):.1f} MiB |")
        print(f"| terminator CPU / peak RSS | {term_cpu:.2f} s / {vm_hwm_mib(term.proc.pid):.1f} MiB |")
        print(f"| ACME requests per certificate | {acme_reqs / max(served, 1):.1f} |")
        print(f"| load average at the end (2 cores; Pebble, fakekube and edgecert share them) | {os.getloadavg()[0]:.2f} |")
        return 0 if not pending else 1
    finally:
        for p in (ctl, term):
            if p:
                p.stop()
        up.close()
        srv.stop()
        pebble.stop()


if __name__ == "__main__":
    sys.exit(main())
