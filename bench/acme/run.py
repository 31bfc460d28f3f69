#!/usr/bin/python3
"""bench/acme: issue N certificates with edgecert and with Debian's lego against the same Pebble,
in one run, and print wall time and CPU per certificate for both and their ratio.

Same conditions as ../shared/bench-peers/run-acme.sh (which measured lego at ~0.09 s CPU per
certificate): ECDSA P-256 certificates, one client process per certificate, sequential, a shared
account, Pebble with PEBBLE_VA_NOSLEEP=1 PEBBLE_VA_ALWAYS_VALID=1 (validation is not what is
measured here; the integration tests do real validation). Runs are interleaved per certificate
(edgecert, lego, edgecert, lego, ...) so machine noise hits both alike. CPU is the client
process's user+sys time from rusage; Pebble's CPU is reported separately.

Usage: bench/acme/run.py [N]   (default 50; EDGECERT_BIN overrides the binary)
"""
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from pebble_fixture import Pebble, free_port  # noqa: E402

BIN = os.environ.get("EDGECERT_BIN", os.path.join(ROOT, "build", "edgecert"))


def timed(cmd, env=None):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return p.returncode, wall, cpu, p.stderr


def pebble_cpu(pid):
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
            total += int(f.read().split()[0])
    return total / 1e9


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    if not shutil.which("lego"):
        print("lego is not installed (apt-get install lego)", file=sys.stderr)
        return 2
    work = tempfile.mkdtemp(prefix="edgecert-bench-acme-")
    p = Pebble(os.path.join(work, "pebble"),
               env={"PEBBLE_VA_ALWAYS_VALID": "1", "PEBBLE_WFE_NONCEREJECT": "5"}, nonce_reject=5)
    solver_port = free_port()
    res = {"edgecert": [], "lego": []}
    fails = {"edgecert": 0, "lego": 0}
    pcpu = {"edgecert": 0.0, "lego": 0.0}
    lego_env = dict(os.environ, LEGO_CA_CERTIFICATES=p.ca_file)
    try:
        for i in range(1, n + 1):
            for client in ("edgecert", "lego"):
                d = f"{client[0]}{i}.bench.test"
                if client == "edgecert":
                    cmd = [BIN, "issue", "--server", p.dir_url, "--ca-bundle", p.ca_file,
                           "--out", os.path.join(work, "edgecert"), "--domains", d,
                           "--email", "bench@example.test", "--key-type", "ec256",
                           "--http-port", f"127.0.0.1:{solver_port}"]
                    env = dict(os.environ, EDGECERT_LOG_LEVEL="warn")
                else:
                    cmd = ["lego", "--server", p.dir_url, "--accept-tos", "--email",
                           "bench@example.test", "--key-type", "ec256", "--domains", d, "--http",
                           "--http.port", f"127.0.0.1:{solver_port}",
                           "--path", os.path.join(work, "lego"), "run"]
                    env = lego_env
                c0 = pebble_cpu(p.proc.pid)
                rc, wall, cpu, err = timed(cmd, env)
                pcpu[client] += pebble_cpu(p.proc.pid) - c0
                if rc != 0:
                    fails[client] += 1
                    print(f"# {client} {d} failed: {err.strip().splitlines()[-1] if err.strip() else rc}",
                          file=sys.stderr)
                res[client].append((wall, cpu))
        # edgecert can also issue many certificates in one process (repeated --domains), the way
        # its controller does: one account lookup, one connection, no per-certificate start-up.
        cmd = [BIN, "issue", "--server", p.dir_url, "--ca-bundle", p.ca_file,
               "--out", os.path.join(work, "edgecert"), "--email", "bench@example.test",
               "--key-type", "ec256", "--http-port", f"127.0.0.1:{solver_port}"]
        for i in range(1, n + 1):
            cmd += ["--domains", f"b{i}.bench.test"]
        c0 = pebble_cpu(p.proc.pid)
        rc, bwall, bcpu, err = timed(cmd, dict(os.environ, EDGECERT_LOG_LEVEL="warn"))
        batch = {"wall": bwall / n, "cpu": bcpu / n, "pebble": (pebble_cpu(p.proc.pid) - c0) / n,
                 "failed": rc != 0}
    finally:
        p.stop()
        shutil.rmtree(work, ignore_errors=True)

    def summary(client):
        w = [x[0] for x in res[client]]
        c = [x[1] for x in res[client]]
        steady_w = statistics.median(w[1:]) if len(w) > 1 else w[0]
        return {"total_wall": sum(w), "first_wall": w[0], "median_wall": steady_w,
                "cpu_per_cert": sum(c) / len(c), "pebble_cpu_per_cert": pcpu[client] / len(c),
                "failures": fails[client]}

    e, l = summary("edgecert"), summary("lego")
    print(f"ACME issuance against Pebble 2.4.0, {n} ECDSA P-256 certificates each, one process per certificate")
    print(f"{'':28}{'edgecert':>12}{'lego':>12}{'ratio e/l':>12}")
    for k, label in [("total_wall", "total wall (s)"), ("first_wall", "first cert wall (s)"),
                     ("median_wall", "median cert wall (s)"), ("cpu_per_cert", "client CPU/cert (s)"),
                     ("pebble_cpu_per_cert", "Pebble CPU/cert (s)"), ("failures", "failures")]:
        ratio = (e[k] / l[k]) if l[k] else float("nan")
        fmt = "{:>12.4f}" if k != "failures" else "{:>12d}"
        print(f"{label:28}" + fmt.format(e[k]) + fmt.format(l[k]) + f"{ratio:>12.3f}")
    print(f"{'batch: edgecert, 1 process':28}{batch['cpu']:>12.4f}{'':>12}{batch['cpu'] / l['cpu_per_cert']:>12.3f}"
          f"   (client CPU/cert; wall/cert {batch['wall']:.4f} s, Pebble CPU/cert {batch['pebble']:.4f} s"
          f"{', FAILED' if batch['failed'] else ''})")
    print(f"client CPU per certificate, lego / edgecert: {l['cpu_per_cert'] / e['cpu_per_cert']:.2f}x "
          f"(one process per certificate), {l['cpu_per_cert'] / batch['cpu']:.2f}x (edgecert batch)")
    return 0 if e["failures"] == 0 and not batch["failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
