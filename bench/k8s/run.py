#!/usr/bin/python3
"""k8s client benchmark: informer sync time and memory for N Secrets, and watch throughput.

Usage: /usr/bin/python3 bench/k8s/run.py [--build BUILD_DIR] [--secrets 10000] [--updates 5000]

Runs the in-repo test API server (tests/apiserver) and tests/k8s_driver (the C++ library on
libcurl). Build the driver in an optimized build first, e.g.
  cmake -S . -B build-rel -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo && ninja -C build-rel k8s_driver

Reports:
  - informer sync: wall time from process start to the handlers having seen every object, and the
    driver's RSS (VmHWM) against an idle informer on an empty namespace;
  - python3-kubernetes paginated list of the same Secrets as a same-run reference;
  - watch events/s observed by the informer while a writer thread pool updates Secrets, next to
    the server's own write rate (the Python server is the expected bottleneck);
  - in-process decode throughput (no network): framing + JSON + store + handler.
"""
import argparse
import base64
import concurrent.futures
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))
import apiserver_fixture as F  # noqa: E402


def rss_kib(pid, field="VmHWM"):
    for line in Path("/proc/%d/status" % pid).read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class Informer:
    def __init__(self, driver, kubeconfig, ns, expect):
        self.expect = expect
        self.count = 0
        self.done = threading.Event()
        self.synced = threading.Event()
        self.first_event = None
        self.t0 = time.monotonic()
        self.p = subprocess.Popen([str(driver), "--kubeconfig", str(kubeconfig), "informer",
                                   "secrets", ns], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.lines = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in self.p.stdout:
            o = json.loads(raw)
            if o.get("ev") in ("add", "update"):
                if self.first_event is None:
                    self.first_event = time.monotonic()
                self.count += 1
                self.last_event = time.monotonic()
                if self.count >= self.expect:
                    self.done.set()
            elif o.get("ev") == "synced":
                self.synced_at = time.monotonic()
                self.synced.set()

    def stop(self):
        try:
            self.p.stdin.write(b"quit\n")
            self.p.stdin.close()
            self.p.wait(10)
        except Exception:
            self.p.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=str(REPO / "build"))
    ap.add_argument("--secrets", type=int, default=10000)
    ap.add_argument("--updates", type=int, default=5000)
    ap.add_argument("--tmp", default="/tmp/edgecert-bench-k8s")
    a = ap.parse_args()
    driver = Path(a.build) / "tests" / "k8s_driver"
    if not driver.exists():
        sys.exit("no %s: build the k8s_driver target" % driver)
    Path(a.tmp).mkdir(parents=True, exist_ok=True)
    srv = F.start(a.tmp, args=["--history", str(max(1000, a.updates * 2))])
    results = {}
    try:
        st, _, _ = srv.http("POST", "/api/v1/namespaces", {"metadata": {"name": "bench"}})
        crt = base64.b64encode(os.urandom(900)).decode()   # about an ECDSA chain
        key = base64.b64encode(os.urandom(240)).decode()   # about a PKCS#8 P-256 key

        def create(i):
            st, _, body = srv.http("POST", "/api/v1/namespaces/bench/secrets", {
                "metadata": {"name": "s-%05d" % i, "labels": {"edgecert.io/managed": "true"}},
                "type": "kubernetes.io/tls", "data": {"tls.crt": crt, "tls.key": key}})
            assert st == 201, body

        t = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(create, range(a.secrets)))
        results["server_creates_per_s"] = round(a.secrets / (time.monotonic() - t))

        idle = Informer(driver, srv.kubeconfig, "empty-ns", 0)
        idle.synced.wait(30)
        time.sleep(0.5)
        results["driver_idle_hwm_kib"] = rss_kib(idle.p.pid)
        idle.stop()

        inf = Informer(driver, srv.kubeconfig, "bench", a.secrets)
        assert inf.done.wait(300), "informer did not see every Secret"
        results["informer_sync_s"] = round(inf.last_event - inf.t0, 3)
        time.sleep(0.5)
        hwm = rss_kib(inf.p.pid)
        results["informer_hwm_kib"] = hwm
        results["informer_kib_per_object"] = round(
            (hwm - results["driver_idle_hwm_kib"]) / a.secrets, 2)

        # Same-run reference: the official Python client listing the same Secrets (paginated
        # like an informer's initial list), deserialised into typed objects.
        ref = subprocess.run(
            ["/usr/bin/python3", "-c",
             "import time,sys\n"
             "from kubernetes import client, config\n"
             "config.load_kube_config(sys.argv[1])\n"
             "api=client.CoreV1Api(); t=time.monotonic(); n=0; cont=None\n"
             "while True:\n"
             "  r=api.list_namespaced_secret('bench', limit=500, _continue=cont); n+=len(r.items)\n"
             "  cont=r.metadata._continue\n"
             "  if not cont: break\n"
             "print(n, time.monotonic()-t)\n", str(srv.kubeconfig)],
            capture_output=True, text=True, timeout=600)
        if ref.returncode == 0:
            n, secs = ref.stdout.split()
            results["python_client_list_s"] = round(float(secs), 3)
        else:
            results["python_client_list_s"] = "unavailable: " + ref.stderr.strip()[-200:]

        # Watch throughput: update Secrets as fast as the server takes them.
        base = inf.count
        inf.expect = base + a.updates
        inf.done.clear()

        def update(i):
            name = "s-%05d" % (i % a.secrets)
            st, _, body = srv.http("PATCH", "/api/v1/namespaces/bench/secrets/" + name,
                                   {"metadata": {"annotations": {"bench": str(i)}}},
                                   headers={"Content-Type": "application/merge-patch+json"})
            assert st == 200, body

        t = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(update, range(a.updates)))
        writes_done = time.monotonic()
        assert inf.done.wait(120), "informer saw %d of %d updates" % (inf.count - base, a.updates)
        results["server_updates_per_s"] = round(a.updates / (writes_done - t))
        results["watch_events_per_s"] = round(a.updates / (inf.last_event - t))
        results["watch_lag_after_last_write_ms"] = round((inf.last_event - writes_done) * 1000, 1)
        inf.stop()
    finally:
        srv.stop()

    dec = subprocess.run([str(driver), "bench-decode", "20000"], capture_output=True, text=True)
    d = json.loads(dec.stdout.splitlines()[-1])
    results["inprocess_decode_events_per_s"] = round(d["events_per_second"])
    results["inprocess_decode_mib_per_s"] = round(d["mib_per_second"], 1)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
