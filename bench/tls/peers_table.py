#!/usr/bin/env python3
"""peers_table.py RESULTS_TLS_DIR TARGET... : the table run-peers.sh and ktls-bulk.sh print, from the
tls.<target>.<metric> lines of RESULTS_TLS_DIR/<target>/summary.txt (the first target is edgecert;
every other column pair is its ratio to a peer), then issue 14's goals against this run.
Rerun it on a finished run's folder to print the table again."""
import re
import sys

root, targets = sys.argv[1], sys.argv[2:]
vals = {t: {} for t in targets}
suites = {}  # ktls-bulk.sh: suite key -> IANA name
strace_suites = []
sys_kinds = {}  # suite -> the sys.NAME / err.ERRNO keys any target has
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
        elif metric.startswith("ktls_bulk_"):  # ktls-bulk.sh: one line per round, medians below
            s = metric[len("ktls_bulk_"):]
            suites.setdefault(s, kv.get("suite", s))
            for k, key in (("wall", None), ("cpu", "MB_per_term_cpu_s"), ("ms", "term_cpu_ms_per_MiB"),
                           ("busy", "term_cpu%"), ("sys", "term_sys%"), ("tx", "tls_tx_sw_delta")):
                v.setdefault(f"kb_{s}_{k}_runs", []).append(x if key is None else num(kv, key))
            for k, key in (("neg", "negotiated(s_client)"), ("ulp", "ulp"), ("check", "ktls_check")):
                v.setdefault(f"kb_{s}_{k}_runs", []).append(kv.get(key))
            if "kernel_hs_delta" in kv:
                v.setdefault(f"kb_{s}_ec_runs", []).append(
                    f"enabled={kv.get('edgecert_ktls_tx_enabled')},kernel_hs={kv['kernel_hs_delta']},"
                    f"user_space_hs={kv.get('user_space_hs_delta')},spliced_MiB/MiB={kv.get('spliced_MiB_per_MiB')}")
            v["tcg"] = v.get("tcg") or kv.get("cpu") == "tcg"
        elif metric.startswith("ktls_sys_"):
            s = metric[len("ktls_sys_"):]
            if s not in strace_suites:
                strace_suites.append(s)
            v[f"ks_{s}_calls"] = x
            for k in kv:
                if k.startswith(("sys.", "err.")):
                    v[f"ks_{s}_{k}"] = num(kv, k)
                    sys_kinds.setdefault(s, set()).add(k)
            for k in ("user_in_KiB", "user_out_KiB", "spliced_KiB", "sendfile_KiB"):
                v[f"ks_{s}_{k}"] = num(kv, k)
            if v[f"ks_{s}_user_in_KiB"] is not None and v[f"ks_{s}_user_out_KiB"] is not None:
                v[f"ks_{s}_user_KiB"] = v[f"ks_{s}_user_in_KiB"] + v[f"ks_{s}_user_out_KiB"]
        elif re.match(r"hs_(ecdsa|rsa)_workers\d+$", metric):
            v[metric], v[metric + "_cpu"] = x, num(kv, "hs_per_term_cpu_s")
            split = re.findall(r"busiest_threads_cpu%=(\S+?),", rest)
            v[metric + "_split"] = " ".join(split) if split else None
    # ktls-bulk.sh's rounds: the median of each figure, every round's value beside it, and the
    # text figures (negotiated suite, ULP, checks) once when all rounds agree
    for k in [k for k in v if k.startswith("kb_") and k.endswith("_runs")]:
        runs, base = v[k], k[:-len("_runs")]
        nums = sorted(r for r in runs if isinstance(r, float))
        if nums:
            mid = len(nums) // 2
            v[base] = nums[mid] if len(nums) % 2 else (nums[mid - 1] + nums[mid]) / 2
            v[base + "_each"] = " / ".join(f"{r:,.1f}" for r in runs if isinstance(r, float))
        elif runs:
            v[base] = runs[0] if len(set(runs)) == 1 else " / ".join(str(r) for r in runs)
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
# ktls-bulk.sh's rows. CPU was measured in a guest emulated by TCG when it ran under scripts/vm.sh
# without KVM ("[TCG]" where the run says so); system calls and bytes are exact counts.
TCG = " [TCG]" if any(vals[t].get("tcg") for t in targets) else ""
for s, name in suites.items():
    rows += [
        (f"1 MiB GETs, {name}: MB / terminator CPU-s{TCG} (median)", f"kb_{s}_cpu", 1, True),
        (f"  … each round{TCG}", f"kb_{s}_cpu_each", None, None),
        (f"  terminator CPU ms per MiB{TCG}", f"kb_{s}_ms", 2, False),
        (f"  MB / wall s{TCG}", f"kb_{s}_wall", 1, True),
        (f"  terminator CPU %{TCG}", f"kb_{s}_busy", 0, None),
        ("  share of it in the kernel (stime), %", f"kb_{s}_sys", 0, None),
        ("  negotiated (s_client with the clients' configuration)", f"kb_{s}_neg", None, None),
        ("  kTLS TX sockets opened during the wrk run (tls_stat TlsTxSw delta)", f"kb_{s}_tx", 0, None),
        ("  wrk's connections by `ss -ti` ULP (count x tls version, cipher, rx/tx)", f"kb_{s}_ulp", None, None),
        ("  edgecert /metrics during the run", f"kb_{s}_ec", None, None),
        ("  kTLS check", f"kb_{s}_check", None, None),
    ]
for s in strace_suites:
    name = suites.get(s, s)
    rows.append((f"system calls per MiB delivered (strace pass, {name})", f"ks_{s}_calls", 1, False))
    kinds = sorted(sys_kinds.get(s, ()), key=lambda k: (k.startswith("err."), -max(vals[t].get(f"ks_{s}_{k}") or 0 for t in targets)))
    for k in kinds:
        label = f"  {k[4:]}" if k.startswith("sys.") else f"  failed with {k[4:]} (any call)"
        rows.append((label, f"ks_{s}_{k}", 2, False))
    rows += [
        ("KiB copied between kernel and user space per MiB (read/recv* + write/send* bytes)", f"ks_{s}_user_KiB", 1, False),
        ("  into the terminator (read, readv, recvfrom, recvmsg)", f"ks_{s}_user_in_KiB", 1, False),
        ("  out of the terminator (write, writev, sendto, sendmsg)", f"ks_{s}_user_out_KiB", 1, False),
        ("KiB moved inside the kernel per MiB (splice)", f"ks_{s}_spliced_KiB", 1, None),
        ("KiB moved inside the kernel per MiB (sendfile)", f"ks_{s}_sendfile_KiB", 1, None),
    ]
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


unmeasured = []


def goal(text, x, limit, higher, unit=""):
    if x is None:
        unmeasured.append(text)
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
for s, name in suites.items():  # ktls-bulk.sh: the first target is edgecert --ktls on
    goal(f"bulk MB with kTLS and splice ÷ HAProxy, {name}{TCG}",
         ratio(e.get(f"kb_{s}_cpu"), haproxy.get(f"kb_{s}_cpu")), 1.5, True, "x")
goal("KiB per idle TLS connection", e.get("idle_kib"), 10, False, " KiB")
for kind in ("ecdsa", "rsa"):
    r = ratio(e.get(f"hs_{kind}_workers2"), e.get(f"hs_{kind}_workers1"))
    if r:
        print(f"- {kind.upper()} handshakes per wall second, --workers 2 ÷ --workers 1 (2 CPUs shared with the load): {r:.2f}x")
if unmeasured:
    print(f"- not measured in this run: {'; '.join(unmeasured)}")
