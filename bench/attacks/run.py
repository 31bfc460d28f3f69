#!/usr/bin/python3
"""Floods and slow clients against `edgecert terminator`, on loopback, bounded in count and time.

  bench/attacks/run.py [--bin build/edgecert] [--only idle,flood,...] [--scale 0.1] [--json out.json]

Each scenario starts its attack from 127.0.0.2 (a separate process) while well-behaved clients on
127.0.0.1 send one HTTPS request every 50 ms per thread on a new connection (full handshake),
and samples the terminator's RSS and open fds every 250 ms. It prints one table row per scenario:
the load held, the good clients' success rate and p50/p99 latency during the attack, the
terminator's peak RSS and fds, and what the attacker saw. --scale shrinks every count and
duration (0.1 for a quick look). Nothing leaves 127.0.0.0/8; every process stops by itself.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from attacks import Attacker, GoodClients, Sampler, Upstream, proc_sample, raise_nofile  # noqa: E402
import terminator_fixture  # noqa: E402
from terminator_fixture import Terminator, free_port, make_cert  # noqa: E402


# scenario name -> (attack kind, count, seconds, port "tls"|"http", terminator flags, upstream mode, ok statuses)
SCENARIOS = [
    ("baseline", None, 0, 10, "tls", [], "ok", (200,)),
    ("idle-10k", "idle", 10000, 20, "tls", [], "ok", (200,)),
    ("slowloris-tls", "slowloris-tls", 1000, 30, "tls", [], "ok", (200,)),
    ("slowloris-http", "slowloris-http", 1000, 30, "http", [], "ok", (200,)),
    ("silent-tcp", "silent", 1000, 20, "tls", [], "ok", (200,)),
    ("flood-past-max", "flood", 3000, 20, "tls", ["--max-connections", "1000"], "ok", (200,)),
    ("garbage-hello", "garbage", 50, 20, "tls", [], "ok", (200,)),
    ("vanish-rst", "vanish-rst", 50, 20, "tls", [], "ok", (200,)),
    ("vanish-fin", "vanish-fin", 50, 20, "tls", [], "ok", (200,)),
    ("stall-hello", "stall-hello", 500, 20, "tls", [], "ok", (200,)),
    ("upstream-down", None, 0, 10, "tls", [], "down", (502,)),
    ("upstream-slow", None, 0, 10, "tls", [], "slow", (200,)),
    ("upstream-reset", None, 0, 10, "tls", [], "reset", (502,)),
]


def run_scenario(sc, args, work, cert_dir):
    name, kind, count, secs, port_kind, flags, up_mode, ok = sc
    count, secs = max(1, int(count * args.scale)), max(3.0, secs * args.scale)
    up = Upstream(free_port())
    if up_mode != "down":
        up.start(up_mode, delay=3.0)
    t = Terminator(cert_dir, up.port, *flags, workdir=work, defaults=True)
    row = {"scenario": name, "attack": kind, "count": count, "seconds": secs, "flags": " ".join(flags)}
    try:
        base_rss, base_fds = proc_sample(t.proc.pid)
        m0 = t.metrics()
        sampler = Sampler(t.proc.pid)
        att = None
        if kind:
            att = Attacker(kind, t.http_port if port_kind == "http" else t.tls_port, count, secs).wait_ready()
        # Slow-upstream requests take DELAY seconds: allow for them.
        good = GoodClients(t.tls_port, ok=ok, timeout=10.0 if up_mode == "slow" else 5.0)
        t_end = time.monotonic() + secs
        while time.monotonic() < t_end and t.proc.poll() is None:
            time.sleep(0.2)
        row["good"] = good.stop()
        if att:
            row["attacker"] = att.wait()
            row["held"] = att.ready
        peak_rss, peak_fds = sampler.stop().peak()
        row["alive"] = t.proc.poll() is None
        # Recovery: with the attack gone (and the upstream healthy again), good clients succeed.
        if up_mode != "ok":
            up.start("ok")
        after = GoodClients(t.tls_port, threads=2, ok=(200,))
        time.sleep(min(3.0, secs))
        row["after"] = after.stop()
        m1 = t.metrics()
        row["rss_kib"] = {"base": base_rss, "peak": peak_rss,
                          "after": proc_sample(t.proc.pid)[0] if t.proc.poll() is None else None}
        row["fds"] = {"base": base_fds, "peak": peak_fds}
        row["metrics"] = {k: m1[k] - m0.get(k, 0) for k in m1
                          if m1[k] != m0.get(k, 0) and ("_total" in k) and "bytes" not in k}
    finally:
        t.stop()
        up.stop()
    return row


def fmt_row(r):
    g, a = r["good"], r["after"]
    held = r.get("held")
    load = f"{r['attack']} x{r['count']}" + (f" ({held} held)" if held and held != r["count"] else "") \
        if r["attack"] else r["scenario"]
    rss = r["rss_kib"]
    return (f"| {r['scenario']} | {load} | {g['good']}/{g['total']} ({g['rate']}%) | {g['p50_ms']} | {g['p99_ms']} | "
            f"{rss['base'] / 1024:.1f} → {rss['peak'] / 1024:.1f} ({(rss['after'] or 0) / 1024:.1f}) | "
            f"{r['fds']['peak']} | {'yes' if r['alive'] else 'NO'} | {a['rate']}% |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.environ.get("EDGECERT_BIN", os.path.join(ROOT, "build", "edgecert")))
    ap.add_argument("--only", default="", help="comma-separated scenario names")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every count and duration")
    ap.add_argument("--json", default="", help="also write the rows as JSON here")
    args = ap.parse_args()
    terminator_fixture.BIN = args.bin
    raise_nofile()
    only = set(filter(None, args.only.split(",")))
    work = tempfile.mkdtemp(prefix="edgecert-attacks.")
    cert_dir = os.path.join(work, "certs")
    make_cert(os.path.join(cert_dir, "attack"), ["attack.test"], days=2)
    print(f"# edgecert terminator under attack; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print("| scenario | attack (held) | good clients OK | p50 ms | p99 ms | RSS MiB base → peak (after) | peak fds "
          "| up | OK after |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = []
    for sc in SCENARIOS:
        if only and sc[0] not in only:
            continue
        r = run_scenario(sc, args, work, cert_dir)
        rows.append(r)
        print(fmt_row(r), flush=True)
        print("    attacker:", json.dumps(r.get("attacker", {})), " statuses:", json.dumps(r["good"]["statuses"]),
              " metrics:", json.dumps(r["metrics"]), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"loadavg": os.getloadavg(), "rows": rows}, f, indent=1)
    subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
