#!/usr/bin/env bash
# bench/tls/run-peers.sh: edgecert, hitch, HAProxy (mode http) and nginx measured in ONE run with
# ../shared/bench-peers/run-tls.sh (the method of its BASELINE.md: terminator with one worker pinned
# to CPU $TERM_CPU, backend nginx and load generators on $LOAD_CPU, work per terminator CPU-second
# from /proc/PID/stat), then one table with edgecert's ratio to each peer and the goals of issue 14.
#   EDGECERT_BIN=build/edgecert bench/tls/run-peers.sh
# Knobs: REPEAT (default 1), DUR (s per run, default 10), IDLE_NS (default 10000), TARGETS_PEERS,
#   METRICS (default below), PEERS_SRC (the bench-peers folder), H2_CONNS/H2_STREAMS (h2load,
#   10/10), H2C_BACKEND_PORT (24081), RESUME_TLS12=1 (measure TLS 1.2 resumption as well).
# bench-peers is shared and must not be written to: peers-setup.sh copies it to a private folder in
# /tmp, adds our adapter (ours-target.sh) there as target "edgecert", and state/results stay in the
# copy. The copy is extended, not rewritten: peer-metrics.sh (the libssl floor beside the handshake
# metrics, resumed handshakes, HTTP/2, edgecert's workers) is sourced by the copy's run-tls.sh, and
# the copy's backend nginx gets a second, HTTP/2-only server block for the h2 metric.
# Runs are interleaved metric by metric (every target does hs_ecdsa, then every target hs_rsa, ...),
# with the target order reversed on every other metric, so slow drift of this shared box hits all
# terminators alike. Needs: hitch haproxy nginx wrk openssl python3 (Debian packages).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
EDGECERT_BIN=$(realpath "${EDGECERT_BIN:-$HERE/../../build/edgecert}")
export REPEAT=${REPEAT:-1} DUR=${DUR:-10} IDLE_NS=${IDLE_NS:-10000}
METRICS=${METRICS:-hs_ecdsa hs_rsa hs_resume_ecdsa keepalive h2 bulk idle hs_workers}
TARGETS=(edgecert ${TARGETS_PEERS:-hitch haproxy nginx})
for tool in hitch haproxy nginx wrk h2load openssl taskset cc curl; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y hitch haproxy nginx wrk nghttp2-client gcc libssl-dev curl)" >&2; exit 2; }
done
[ -x "$EDGECERT_BIN" ] || { echo "no edgecert binary at $EDGECERT_BIN (set EDGECERT_BIN)" >&2; exit 2; }

W=${WORKDIR:-$(mktemp -d /tmp/edgecert-peers.XXXXXX)}
. "$HERE/peers-setup.sh"
peers_copy "$W"
peers_certs
# The libssl floor (peer-metrics.sh runs it beside every handshake metric).
export SSL_FLOOR_BIN=$W/ssl_floor
cc -O2 -o "$SSL_FLOOR_BIN" "$HERE/ssl_floor.c" -lssl -lcrypto

{
  echo "# $(date -u +%FT%TZ) $(uname -r) cpus=$(nproc) load_before=[$(cut -d' ' -f1-3 /proc/loadavg)]"
  echo "# REPEAT=$REPEAT DUR=$DUR IDLE_NS=$IDLE_NS metrics=[$METRICS] targets=[${TARGETS[*]}] edgecert=$EDGECERT_BIN"
  echo "# $(peers_versions); $(h2load --version | head -1)"
  echo "# $(peers_build_line)"
} | tee "$W/header.txt"

i=0; failed=()
for m in $METRICS; do
  order=("${TARGETS[@]}")
  if [ $((i % 2)) = 1 ]; then order=(); for ((j=${#TARGETS[@]}-1; j>=0; j--)); do order+=("${TARGETS[j]}"); done; fi
  i=$((i+1))
  [ "$m" = hs_workers ] && order=(edgecert)   # the --workers knob is edgecert's
  for t in "${order[@]}"; do
    echo "== $m $t (load $(cut -d' ' -f1 /proc/loadavg))"
    if ! "$PEERS/run-tls.sh" "$t" "$m" >"$W/log.$t.$m" 2>&1; then failed+=("$t/$m"); tail -5 "$W/log.$t.$m"; fi
    grep -E '^tls\.' "$W/log.$t.$m" | cut -c1-200 || true
  done
done
echo "# load_after=[$(cut -d' ' -f1-3 /proc/loadavg)]" | tee -a "$W/header.txt"

python3 "$HERE/peers_table.py" "$RESULTS/tls" "${TARGETS[@]}" | tee "$W/table.md"
[ ${#failed[@]} = 0 ] || echo "FAILED runs: ${failed[*]} (see $RESULTS/tls/*/ and $STATE/run-*/)"
echo "raw summaries: $RESULTS/tls/*/summary.txt"
