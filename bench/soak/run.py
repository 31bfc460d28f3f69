#!/usr/bin/python3
"""Soak: `edgecert run` renewing many short-lived certificates from a real Pebble while clients
hold traffic, for a bounded time. Not part of the test command.

  bench/soak/run.py [--minutes 20] [--certs 20] [--validity 120] [--threads 4] [--bin build/edgecert]

Pebble issues certificates valid for --validity seconds, so edgecert renews each at half its life
(the rule for certificates of 10 days or less): 20 certificates of 120 s are ~20 renewals a minute.
Clients make HTTPS requests on new connections (full handshake, chain and name verified against
Pebble's root, so an expired or mismatched certificate fails) round-robin over every name, and
record each name's served notAfter, which must never move backwards. Every 30 s one line gives
requests, failures, renewals so far, the process's RSS and open fds. Exit status 1 on any failed
request, a certificate served that is older than one served before, or RSS/fds that kept growing
(the last quarter's mean more than 20 % above the second quarter's).
Everything listens on 127.0.0.1; every process is stopped by PID at the end.
"""
import argparse
import datetime
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "bench", "attacks"))
from attacks import Upstream, proc_sample, raise_nofile  # noqa: E402
from cryptography import x509  # noqa: E402
from edgecert_helpers import https_request  # noqa: E402
from pebble_fixture import Pebble, free_port  # noqa: E402


def https_get(port, name, ctx):
    """GET / on a new connection; the served certificate's notAfter (seconds since the epoch)."""
    data, der = https_request(port, name, ctx, timeout=10)
    if not data.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"status line {data[:40]!r}")
    not_after = x509.load_der_x509_certificate(der).not_valid_after.replace(tzinfo=datetime.timezone.utc)
    return not_after.timestamp()


class Clients:
    def __init__(self, port, names, root, threads):
        self.ctx = ssl.create_default_context(cafile=root)
        self.ctx.set_alpn_protocols(["http/1.1"])
        self.port, self.names = port, names
        self.ok, self.fail, self.regress = 0, [], []
        self.lat = []
        self.not_after = {}
        self.lock, self.stopped = threading.Lock(), threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]
        for t in self.threads:
            t.start()

    def _run(self, i):
        k = i
        while not self.stopped.is_set():
            name = self.names[k % len(self.names)]
            k += len(self.threads)
            t0 = time.monotonic()
            try:
                na = https_get(self.port, name, self.ctx)
                with self.lock:
                    self.ok += 1
                    self.lat.append(time.monotonic() - t0)
                    prev = self.not_after.get(name)
                    if prev and na < prev:
                        self.regress.append((name, prev, na))
                    self.not_after[name] = max(na, prev or 0)
            except Exception as e:  # noqa: BLE001 - every failure is counted and reported
                with self.lock:
                    self.fail.append(f"{time.strftime('%H:%M:%S')} {name}: {e!r}")
            self.stopped.wait(0.05)

    def stop(self):
        self.stopped.set()
        for t in self.threads:
            t.join(15)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.environ.get("EDGECERT_BIN", os.path.join(ROOT, "build", "edgecert")))
    ap.add_argument("--minutes", type=float, default=20)
    ap.add_argument("--certs", type=int, default=20)
    ap.add_argument("--validity", type=int, default=120, help="Pebble certificateValidityPeriod, seconds")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--json", default="", help="also write the samples and totals here")
    args = ap.parse_args()
    raise_nofile()
    work = tempfile.mkdtemp(prefix="edgecert-soak.")
    tls_port, http_port, admin_port = free_port(), free_port(), free_port()
    pebble = Pebble(os.path.join(work, "pebble"), http_port=http_port, tls_port=tls_port, validity=args.validity)
    up = Upstream(free_port()).start("ok")
    proc = None
    try:
        root = os.path.join(work, "root.pem")
        with open(root, "w") as f:
            f.write(pebble.root_pem())
        names = [f"soak{i}.edgecert.test" for i in range(args.certs)]
        doc = {"store": os.path.join(work, "store"),
               "issuers": [{"name": "pebble", "acme": {"server": pebble.dir_url, "caBundleFile": pebble.ca_file,
                                                       "solvers": [{"http01": {}}, {"tlsAlpn01": {}}]}}],
               "certificates": [{"name": f"soak{i}", "dnsNames": [n], "issuerRef": {"name": "pebble"}}
                                for i, n in enumerate(names)],
               "terminator": {"listen": f"127.0.0.1:{tls_port}", "httpListen": f"127.0.0.1:{http_port}",
                              "upstream": f"127.0.0.1:{up.port}", "admin": f"127.0.0.1:{admin_port}"}}
        cfg = os.path.join(work, "run.yaml")
        with open(cfg, "w") as f:
            json.dump(doc, f)
        log_path = os.path.join(work, "run.log")
        log = open(log_path, "w")
        proc = subprocess.Popen([args.bin, "run", "--config", cfg], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            served = len(re.findall(r"certificate soak\d+: (issued|renewed) serial", open(log_path).read()))
            if served >= args.certs or proc.poll() is not None:
                break
            time.sleep(0.5)
        if proc.poll() is not None or served < args.certs:
            print(open(log_path).read()[-4000:])
            raise SystemExit("edgecert run did not issue every certificate in 120 s")
        time.sleep(1)  # the last snapshot publishes right after the store write
        print(f"# soak: {args.certs} certificates of {args.validity} s from Pebble, {args.threads} client threads, "
              f"{args.minutes} min; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
        print("| minute | requests ok | failed | p99 ms | renewals | RSS MiB | fds |")
        print("|---|---|---|---|---|---|---|")
        clients = Clients(tls_port, names, root, args.threads)
        t0 = time.monotonic()
        samples = []
        end = t0 + args.minutes * 60
        next_print = t0
        while time.monotonic() < end and proc.poll() is None:
            rss, fds = proc_sample(proc.pid)
            samples.append((time.monotonic() - t0, rss, fds))
            if time.monotonic() >= next_print:
                next_print += 30
                text = open(log_path).read()
                with clients.lock:
                    lat = sorted(clients.lat)
                    clients.lat = []
                    ok, nfail = clients.ok, len(clients.fail)
                p99 = f"{lat[int(0.99 * (len(lat) - 1))] * 1000:.0f}" if lat else "-"
                print(f"| {(time.monotonic() - t0) / 60:.1f} | {ok} | {nfail} | {p99} | "
                      f"{len(re.findall(r'renewed serial', text))} | {rss / 1024:.1f} | {fds} |", flush=True)
            time.sleep(2)
        clients.stop()
        alive = proc.poll() is None
        text = open(log_path).read()
        renewals = len(re.findall(r"renewed serial", text))
        errors = [l for l in text.splitlines() if " error " in l][:10]
        q = max(1, len(samples) // 4)
        mean = lambda xs: sum(xs) / max(1, len(xs))  # noqa: E731
        rss2, rss4 = mean([s[1] for s in samples[q:2 * q]]), mean([s[1] for s in samples[3 * q:]])
        fd2, fd4 = mean([s[2] for s in samples[q:2 * q]]), mean([s[2] for s in samples[3 * q:]])
        grew = rss4 > 1.2 * rss2 or fd4 > 1.2 * fd2 + 4
        print(f"\nrequests ok {clients.ok}, failed {len(clients.fail)}, served certificate older than before "
              f"{len(clients.regress)}, renewals {renewals}, process alive {alive}")
        print(f"RSS MiB min/2nd-quarter mean/last-quarter mean/max: {min(s[1] for s in samples) / 1024:.1f} / "
              f"{rss2 / 1024:.1f} / {rss4 / 1024:.1f} / {max(s[1] for s in samples) / 1024:.1f}; "
              f"fds min/max {min(s[2] for s in samples)}/{max(s[2] for s in samples)}")
        for f in clients.fail[:10]:
            print("FAILED", f)
        for e in errors:
            print("LOG", e)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"ok": clients.ok, "failed": clients.fail, "regressions": clients.regress,
                           "renewals": renewals, "samples": samples}, f)
        bad = clients.fail or clients.regress or grew or not alive or renewals == 0
        sys.exit(1 if bad else 0)
    finally:
        if proc and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        up.stop()
        pebble.stop()
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
