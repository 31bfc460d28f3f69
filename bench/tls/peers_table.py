#!/usr/bin/env python3
"""peers_table.py RESULTS_TLS_DIR TARGET... : the table run-peers.sh prints, from the
tls.<target>.<metric> lines of RESULTS_TLS_DIR/<target>/summary.txt (the first target is edgecert;
every other column pair is its ratio to a peer), then issue 14's goals against this run.
Rerun it on a finished run's folder to print the table again."""
import re
import sys

root, targets = sys.argv[1], sys.argv[2:]
vals = {t: {} for t in targets}
LINE = re.compile(r"tls\.(\S+?)\.(\S+)\s+(\S+)\s+(\S+)\s*(.*)")


def num(kv, k):
    try:
        return float(kv[k])
    except (KeyError, ValueError):
        return None


for t in targets:
    try:
        lines = open(f"{root}/{t}/summary.txt").read().splitlines()
    except OSError:
        continue
    v = vals[t]
    for ln in lines:
        m = LINE.match(ln)
        if not m:
            continue
        metric, value, rest = m.group(2), m.group(3), ln[m.end(3):]
        kv = dict(re.findall(r"(\S+?)=(\S+)", rest))
        try:
            x = float(value)
        except ValueError:
            x = None
        if metric in ("hs_ecdsa", "hs_rsa"):
            v[metric + "_wall"], v[metric + "_cpu"], v[metric + "_busy"] = x, num(kv, "hs_per_term_cpu_s"), num(kv, "term_cpu%")
        elif metric in ("hs_resume_ecdsa", "hs_resume12_ecdsa"):
            v[metric + "_wall"], v[metric + "_cpu"] = x, num(kv, "hs_per_term_cpu_s")
            v[metric + "_busy"], v[metric + "_pct"] = num(kv, "term_cpu%"), num(kv, "resumed%")
        elif metric.startswith("floor_"):
            v[metric] = x
        elif metric == "probe_resume":
            v["probe13"], v["probe12"] = kv.get("tls1.3"), kv.get("tls1.2")
        elif metric == "keepalive_rps":
            v["ka_wall"], v["ka_cpu"], v["ka_busy"] = x, num(kv, "req_per_term_cpu_s"), num(kv, "term_cpu%")
        elif metric == "h2_rps":
            v["h2_wall"], v["h2_cpu"], v["h2_busy"] = x, num(kv, "req_per_term_cpu_s"), num(kv, "term_cpu%")
        elif metric == "bulk_MBps":
            v["bulk_wall"], v["bulk_cpu"], v["bulk_busy"] = x, num(kv, "MB_per_term_cpu_s"), num(kv, "term_cpu%")
        elif metric.startswith("idle_"):
            v["idle_kib"], v["idle_held"], v["idle_peak"] = num(kv, "KiB_per_conn(pss)"), kv.get("established_on_port"), x
        elif re.match(r"hs_(ecdsa|rsa)_workers\d+$", metric):
            v[metric], v[metric + "_cpu"] = x, num(kv, "hs_per_term_cpu_s")
            split = re.findall(r"busiest_threads_cpu%=(\S+?),", rest)
            v[metric + "_split"] = " ".join(split) if split else None
    # µs of terminator CPU per handshake, and what it adds to libssl's own cost
    for hs, fl in (("hs_ecdsa", "floor_hs_ecdsa"), ("hs_rsa", "floor_hs_rsa"),
                   ("hs_resume_ecdsa", "floor_resume_ecdsa")):
        if v.get(hs + "_cpu"):
            v[hs + "_us"] = 1e6 / v[hs + "_cpu"]
            if v.get(fl) is not None:
                v[hs + "_over"] = v[hs + "_us"] - v[fl]

# (label, key, decimals or None for text, ratio: True higher is better, False lower is better, None none)
rows = [
    ("ECDSA P-256 full handshakes / terminator CPU-s", "hs_ecdsa_cpu", 0, True),
    ("ECDSA P-256 full handshakes / wall s", "hs_ecdsa_wall", 0, True),
    ("  terminator CPU % during ECDSA handshakes", "hs_ecdsa_busy", 0, None),
    ("  µs per proxied full handshake, ECDSA (terminator CPU)", "hs_ecdsa_us", 0, False),
    ("  libssl floor µs, ECDSA (ssl_floor.c hs, beside each)", "floor_hs_ecdsa", 0, None),
    ("  overhead over the floor µs, ECDSA", "hs_ecdsa_over", 0, False),
    ("RSA-2048 full handshakes / terminator CPU-s", "hs_rsa_cpu", 0, True),
    ("RSA-2048 full handshakes / wall s", "hs_rsa_wall", 0, True),
    ("  terminator CPU % during RSA handshakes", "hs_rsa_busy", 0, None),
    ("  µs per proxied full handshake, RSA (terminator CPU)", "hs_rsa_us", 0, False),
    ("  libssl floor µs, RSA (ssl_floor.c hs, beside each)", "floor_hs_rsa", 0, None),
    ("  overhead over the floor µs, RSA", "hs_rsa_over", 0, False),
    ("ECDSA resumed handshakes (TLS 1.3 PSK, s_time -reuse) / terminator CPU-s", "hs_resume_ecdsa_cpu", 0, True),
    ("ECDSA resumed handshakes / wall s", "hs_resume_ecdsa_wall", 0, True),
    ("  share of s_time connections resumed, %", "hs_resume_ecdsa_pct", 1, None),
    ("  µs per proxied resumed handshake (terminator CPU)", "hs_resume_ecdsa_us", 0, False),
    ("  libssl floor µs, resumed (ssl_floor.c resume, beside each)", "floor_resume_ecdsa", 0, None),
    ("  overhead over the floor µs, resumed", "hs_resume_ecdsa_over", 0, False),
    ("  resumption probe, TLS 1.3 (s_client -sess_in)", "probe13", None, None),
    ("  resumption probe, TLS 1.2 (s_client -sess_in)", "probe12", None, None),
    ("ECDSA resumed, TLS 1.2 session tickets / terminator CPU-s", "hs_resume12_ecdsa_cpu", 0, True),
    ("  share of TLS 1.2 s_time connections resumed, %", "hs_resume12_ecdsa_pct", 1, None),
    ("keep-alive req / terminator CPU-s (wrk -c50, 3 B)", "ka_cpu", 0, True),
    ("keep-alive req / wall s", "ka_wall", 0, True),
    ("HTTP/2 req / terminator CPU-s (h2load -c10 -m10, 3 B)", "h2_cpu", 0, True),
    ("HTTP/2 req / wall s", "h2_wall", 0, True),
    ("  terminator CPU % during HTTP/2", "h2_busy", 0, None),
    ("bulk MB / terminator CPU-s (1 MiB GETs, wrk -c4)", "bulk_cpu", 0, True),
    ("bulk MB / wall s", "bulk_wall", 0, True),
    ("KiB per idle TLS connection (PSS slope; lower is better)", "idle_kib", 1, False),
    ("  peak RSS with the idle connections, MiB", "idle_peak", 1, None),
    ("  idle connections actually established", "idle_held", None, None),
]
for kind, name in (("ecdsa", "ECDSA"), ("rsa", "RSA")):
    for w in (1, 2):
        k = f"hs_{kind}_workers{w}"
        rows.append((f"{name} full handshakes / wall s, --workers {w}, nothing pinned", k, 0, None))
        rows.append((f"  per terminator CPU-s, --workers {w}", k + "_cpu", 0, None))
        rows.append((f"  busiest two threads, % of a CPU (per run), --workers {w}", k + "_split", None, None))
present = [r for r in rows if any(vals[t].get(r[1]) is not None for t in targets)]


def fmt(x, d):
    if x is None:
        return "n/a"
    if d is None or isinstance(x, str):
        return str(x)
    return f"{x:,.{d}f}"


peers = targets[1:]
hdr = ["metric"] + targets + [f"{targets[0]}/{p}" for p in peers]
print("| " + " | ".join(hdr) + " |")
print("|" + "---|" * len(hdr))
for label, key, d, ratio in present:
    cells = [fmt(vals[t].get(key), d) for t in targets]
    for p in peers:
        a, b = vals[targets[0]].get(key), vals[p].get(key)
        ok = ratio is not None and isinstance(a, float) and isinstance(b, float) and b
        cells.append(f"{a / b:.2f}x" if ok else "")
    print(f"| {label} | " + " | ".join(cells) + " |")

# Issue 14's goals, from this run (edgecert is the first target).
e = vals[targets[0]]
hitch = vals.get("hitch", {})
haproxy = vals.get("haproxy", {})


def goal(text, x, limit, higher, unit=""):
    if x is None:
        print(f"- {text}: not measured")
        return
    met = x >= limit if higher else x <= limit
    verdict = "met" if met else "not met"
    if x < 0:  # the floor ran slower than the terminator's own runs: the box's speed drifted
        verdict = "no verdict: negative, the floor and the handshakes ran at different speeds (compare their canaries)"
    print(f"- {text}: {x:,.2f}{unit} (goal {'≥' if higher else '≤'} {limit}{unit}): {verdict}")


def ratio(a, b):
    return a / b if a and b else None


print(f"\nissue 14 goals, {targets[0]}, this run (per terminator CPU-second):")
goal("overhead over the libssl floor per full ECDSA handshake", e.get("hs_ecdsa_over"), 120, False, " µs")
goal("overhead over the libssl floor per full RSA handshake", e.get("hs_rsa_over"), 150, False, " µs")
goal("keep-alive requests ÷ hitch", ratio(e.get("ka_cpu"), hitch.get("ka_cpu")), 1.2, True, "x")
goal("HTTP/2 requests ÷ hitch", ratio(e.get("h2_cpu"), hitch.get("h2_cpu")), 1.2, True, "x")
goal("bulk MB ÷ HAProxy", ratio(e.get("bulk_cpu"), haproxy.get("bulk_cpu")), 1.5, True, "x")
goal("KiB per idle TLS connection", e.get("idle_kib"), 10, False, " KiB")
for kind in ("ecdsa", "rsa"):
    r = ratio(e.get(f"hs_{kind}_workers2"), e.get(f"hs_{kind}_workers1"))
    if r:
        print(f"- {kind.upper()} handshakes per wall second, --workers 2 ÷ --workers 1 (2 CPUs shared with the load): {r:.2f}x")
