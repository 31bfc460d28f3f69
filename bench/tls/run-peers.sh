#!/usr/bin/env bash
# bench/tls/run-peers.sh: edgecert, hitch, HAProxy (mode http) and nginx measured in ONE run with
# ../shared/bench-peers/run-tls.sh (the method of its BASELINE.md: terminator with one worker pinned
# to CPU $TERM_CPU, backend nginx and load generators on $LOAD_CPU, work per terminator CPU-second
# from /proc/PID/stat), then one table with edgecert's ratio to each peer.
#   EDGECERT_BIN=build/edgecert bench/tls/run-peers.sh
# Knobs: REPEAT (default 1), DUR (s per run, default 10), IDLE_NS (default 10000), TARGETS_PEERS,
#   METRICS (default "hs_ecdsa hs_rsa keepalive bulk idle"), PEERS_SRC (the bench-peers folder).
# bench-peers is shared and must not be written to: it is copied to a private folder in /tmp, our
# adapter (ours-target.sh) is added there as target "edgecert", and state/results stay in the copy.
# Runs are interleaved metric by metric (every target does hs_ecdsa, then every target hs_rsa, ...),
# with the target order reversed on every other metric, so slow drift of this shared box hits all
# terminators alike. Needs: hitch haproxy nginx wrk openssl python3 (Debian packages).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
EDGECERT_BIN=$(realpath "${EDGECERT_BIN:-$HERE/../../build/edgecert}")
PEERS_SRC=${PEERS_SRC:-$HERE/../../../shared/bench-peers}
export REPEAT=${REPEAT:-1} DUR=${DUR:-10} IDLE_NS=${IDLE_NS:-10000}
METRICS=${METRICS:-hs_ecdsa hs_rsa keepalive bulk idle}
TARGETS=(edgecert ${TARGETS_PEERS:-hitch haproxy nginx})
for tool in hitch haproxy nginx wrk openssl taskset; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y hitch haproxy nginx wrk)" >&2; exit 2; }
done
[ -x "$EDGECERT_BIN" ] || { echo "no edgecert binary at $EDGECERT_BIN (set EDGECERT_BIN)" >&2; exit 2; }

W=${WORKDIR:-$(mktemp -d /tmp/edgecert-peers.XXXXXX)}; mkdir -p "$W"
cp -r "$PEERS_SRC/." "$W/peers"; chmod -R u+w "$W/peers"
# The adapter offers only http/1.1: the bench backend is plain HTTP/1.1 nginx and edgecert is L4,
# so h2 (its default ALPN) would make curl's readiness probe in run-tls.sh speak h2 to nginx.
cp "$HERE/ours-target.sh" "$W/peers/conf/tls/targets/edgecert.sh"
export PEERS=$W/peers CONF=$W/peers/conf STATE=$W/state RESULTS=$W/results CERTS=$W/certs WWW=$W/state/www
export EDGECERT_BIN
mkdir -p "$STATE" "$RESULTS" "$CERTS" "$WWW"
rm -rf "$PEERS/results"   # never reuse the shared copy's old figures

# Certificates and docroot exactly as bench-peers/setup.sh makes them (its apt/version part is skipped).
san='subjectAltName=DNS:localhost,DNS:bench.test,IP:127.0.0.1'
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 -subj /CN=bench.test \
  -addext "$san" -keyout "$CERTS/tls-ecdsa.key" -out "$CERTS/tls-ecdsa.crt" 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=bench.test \
  -addext "$san" -keyout "$CERTS/tls-rsa.key" -out "$CERTS/tls-rsa.crt" 2>/dev/null
for k in ecdsa rsa; do cat "$CERTS/tls-$k.crt" "$CERTS/tls-$k.key" >"$CERTS/tls-$k.pem"; done
chmod 755 "$W" "$W/state"; chmod 644 "$CERTS"/*; chmod 755 "$CERTS"   # hitch/nginx workers drop to nobody
printf 'ok\n' >"$WWW/ok"; head -c 1048576 /dev/urandom >"$WWW/1m"; chmod -R a+rX "$W/state"

{
  echo "# $(date -u +%FT%TZ) $(uname -r) cpus=$(nproc) load_before=[$(cut -d' ' -f1-3 /proc/loadavg)]"
  echo "# REPEAT=$REPEAT DUR=$DUR IDLE_NS=$IDLE_NS metrics=[$METRICS] targets=[${TARGETS[*]}] edgecert=$EDGECERT_BIN"
  echo "# $(openssl version); $(haproxy -v | head -1); $(hitch --version 2>&1); $(nginx -v 2>&1)"
} | tee "$W/header.txt"

i=0; failed=()
for m in $METRICS; do
  order=("${TARGETS[@]}")
  if [ $((i % 2)) = 1 ]; then order=(); for ((j=${#TARGETS[@]}-1; j>=0; j--)); do order+=("${TARGETS[j]}"); done; fi
  i=$((i+1))
  for t in "${order[@]}"; do
    echo "== $m $t (load $(cut -d' ' -f1 /proc/loadavg))"
    if ! "$PEERS/run-tls.sh" "$t" "$m" >"$W/log.$t.$m" 2>&1; then failed+=("$t/$m"); tail -5 "$W/log.$t.$m"; fi
    grep -E '^tls\.' "$W/log.$t.$m" | cut -c1-200 || true
  done
done
echo "# load_after=[$(cut -d' ' -f1-3 /proc/loadavg)]" | tee -a "$W/header.txt"

python3 - "$RESULTS/tls" "${TARGETS[@]}" <<'EOF'
import re, sys
root, targets = sys.argv[1], sys.argv[2:]
vals = {t: {} for t in targets}
for t in targets:
    try:
        lines = open(f"{root}/{t}/summary.txt").read().splitlines()
    except OSError:
        continue
    for ln in lines:
        m = re.match(r"tls\.(\S+?)\.(\S+)\s+(\S+)\s+(\S+)\s*(.*)", ln)
        if not m:
            continue
        metric, value, rest = m.group(2), m.group(3), m.group(5)
        kv = dict(re.findall(r"(\S+?)=(\S+)", rest))
        v = vals[t]
        f = lambda k: float(kv[k]) if k in kv and kv[k] not in ("", "NA") else None
        if metric in ("hs_ecdsa", "hs_rsa"):
            v[metric + "_wall"] = float(value); v[metric + "_cpu"] = f("hs_per_term_cpu_s")
            v[metric + "_busy"] = f("term_cpu%")
        elif metric == "keepalive_rps":
            v["ka_wall"] = float(value); v["ka_cpu"] = f("req_per_term_cpu_s"); v["ka_busy"] = f("term_cpu%")
        elif metric == "bulk_MBps":
            v["bulk_wall"] = float(value); v["bulk_cpu"] = f("MB_per_term_cpu_s"); v["bulk_busy"] = f("term_cpu%")
        elif metric.startswith("idle_"):
            n = metric.split("_")[1]
            v["idle_kib"] = f("KiB_per_conn(pss)"); v["idle_n"] = n; v["idle_held"] = kv.get("established_on_port")
            v["idle_peak"] = float(value)
rows = [
    ("ECDSA P-256 full handshakes / terminator CPU-s", "hs_ecdsa_cpu", 0, True),
    ("ECDSA P-256 full handshakes / wall s", "hs_ecdsa_wall", 0, True),
    ("  terminator CPU % during ECDSA handshakes", "hs_ecdsa_busy", 0, None),
    ("RSA-2048 full handshakes / terminator CPU-s", "hs_rsa_cpu", 0, True),
    ("RSA-2048 full handshakes / wall s", "hs_rsa_wall", 0, True),
    ("  terminator CPU % during RSA handshakes", "hs_rsa_busy", 0, None),
    ("keep-alive req / terminator CPU-s (wrk -c50, 3 B)", "ka_cpu", 0, True),
    ("keep-alive req / wall s", "ka_wall", 0, True),
    ("bulk MB / terminator CPU-s (1 MiB GETs, wrk -c4)", "bulk_cpu", 0, True),
    ("bulk MB / wall s", "bulk_wall", 0, True),
    ("KiB per idle TLS connection (PSS slope; lower is better)", "idle_kib", 1, False),
    ("  peak RSS with the idle connections, MiB", "idle_peak", 1, None),
    ("  idle connections actually established", "idle_held", None, None),
]
peers = targets[1:]
hdr = ["metric"] + targets + [f"{targets[0]}/{p}" for p in peers]
print("| " + " | ".join(hdr) + " |")
print("|" + "---|" * len(hdr))
def fmt(x, d):
    if x is None:
        return "n/a"
    if d is None:
        return str(x)
    return f"{x:,.{d}f}"
for label, key, d, ratio in rows:
    cells = [fmt(vals[t].get(key), d) for t in targets]
    for p in peers:
        a, b = vals[targets[0]].get(key), vals[p].get(key)
        cells.append(f"{a / b:.2f}x" if ratio is not None and isinstance(a, float) and isinstance(b, float) and b else "")
    print(f"| {label} | " + " | ".join(cells) + " |")
EOF
[ ${#failed[@]} = 0 ] || echo "FAILED runs: ${failed[*]} (see $RESULTS/tls/*/ and $STATE/run-*/)"
echo "raw summaries: $RESULTS/tls/*/summary.txt"
