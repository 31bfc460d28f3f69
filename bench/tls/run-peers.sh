#!/usr/bin/env bash
# bench/tls/run-peers.sh: edgecert, hitch, HAProxy (mode http) and nginx measured in ONE run with
# ../shared/bench-peers/run-tls.sh (the method of its BASELINE.md: terminator with one worker pinned
# to CPU $TERM_CPU, backend nginx and load generators on $LOAD_CPU, work per terminator CPU-second
# from /proc/PID/stat), then one table with edgecert's ratio to each peer and the goals of issue 14.
#   EDGECERT_BIN=build/edgecert bench/tls/run-peers.sh
# Knobs: REPEAT (default 1), DUR (s per run, default 10), IDLE_NS (default 10000), TARGETS_PEERS,
#   METRICS (default below), PEERS_SRC (the bench-peers folder), H2_CONNS/H2_STREAMS (h2load,
#   10/10), H2C_BACKEND_PORT (24081), RESUME_TLS12=1 (measure TLS 1.2 resumption as well).
# bench-peers is shared and must not be written to: it is copied to a private folder in /tmp, our
# adapter (ours-target.sh) is added there as target "edgecert", and state/results stay in the copy.
# The copy is extended, not rewritten: peer-metrics.sh (the libssl floor beside the handshake
# metrics, resumed handshakes, HTTP/2, edgecert's workers) is sourced by the copy's run-tls.sh, and
# the copy's backend nginx gets a second, HTTP/2-only server block for the h2 metric.
# Runs are interleaved metric by metric (every target does hs_ecdsa, then every target hs_rsa, ...),
# with the target order reversed on every other metric, so slow drift of this shared box hits all
# terminators alike. Needs: hitch haproxy nginx wrk openssl python3 (Debian packages).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
EDGECERT_BIN=$(realpath "${EDGECERT_BIN:-$HERE/../../build/edgecert}")
PEERS_SRC=${PEERS_SRC:-$HERE/../../../shared/bench-peers}
# From a linked worktree (/work/wt/NAME), shared/ sits beside the main worktree.
[ -d "$PEERS_SRC" ] || PEERS_SRC=$(dirname "$(git -C "$HERE" worktree list --porcelain | awk '/^worktree /{print $2; exit}')")/shared/bench-peers
export REPEAT=${REPEAT:-1} DUR=${DUR:-10} IDLE_NS=${IDLE_NS:-10000}
METRICS=${METRICS:-hs_ecdsa hs_rsa hs_resume_ecdsa keepalive h2 bulk idle hs_workers}
TARGETS=(edgecert ${TARGETS_PEERS:-hitch haproxy nginx})
for tool in hitch haproxy nginx wrk h2load openssl taskset cc curl; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y hitch haproxy nginx wrk nghttp2-client gcc libssl-dev curl)" >&2; exit 2; }
done
[ -x "$EDGECERT_BIN" ] || { echo "no edgecert binary at $EDGECERT_BIN (set EDGECERT_BIN)" >&2; exit 2; }

W=${WORKDIR:-$(mktemp -d /tmp/edgecert-peers.XXXXXX)}; mkdir -p "$W"
cp -r "$PEERS_SRC/." "$W/peers"; chmod -R u+w "$W/peers"
# The adapter offers only http/1.1: the bench backend is plain HTTP/1.1 nginx and edgecert is L4,
# so h2 (its default ALPN) would make curl's readiness probe in run-tls.sh speak h2 to nginx.
cp "$HERE/ours-target.sh" "$W/peers/conf/tls/targets/edgecert.sh"
cp "$HERE/peer-metrics.sh" "$W/peers/conf/tls/peer-metrics.sh"
# The copy's run-tls.sh sources peer-metrics.sh before its metric loop and runs x_M for a metric M
# it does not know; its backend gets an HTTP/2-only (prior knowledge) server on H2C_BACKEND_PORT.
python3 - "$W/peers" <<'EOF'
import sys
root = sys.argv[1]
def patch(path, old, new):
    s = open(path).read()
    if s.count(old) != 1:
        sys.exit(f"run-peers.sh: {path} changed upstream, cannot add our metrics (looked for {old!r})")
    open(path, "w").write(s.replace(old, new))
rt = f"{root}/run-tls.sh"
patch(rt, "\nfor m in $METRICS; do\n", '\n. "$CONF/tls/peer-metrics.sh"\nfor m in $METRICS; do\n')
patch(rt, '    *) echo "unknown metric $m" >&2; exit 2 ;;',
      '    *) if declare -F "x_$m" >/dev/null; then "x_$m"; else echo "unknown metric $m" >&2; exit 2; fi ;;')
be = f"{root}/conf/tls/backend-nginx.conf.tmpl"
patch(be, "    root @WWW@;\n  }\n}",
      "    root @WWW@;\n  }\n"
      "  server {  # HTTP/2 with prior knowledge only (nginx < 1.25.1), for the h2 metric\n"
      "    listen 127.0.0.1:@H2C_BACKEND_PORT@ http2 backlog=8192;\n"
      "    root @WWW@;\n  }\n}")
EOF
export PEERS=$W/peers CONF=$W/peers/conf STATE=$W/state RESULTS=$W/results CERTS=$W/certs WWW=$W/state/www
export EDGECERT_BIN H2C_BACKEND_PORT=${H2C_BACKEND_PORT:-24081}
# The libssl floor (peer-metrics.sh runs it beside every handshake metric).
export SSL_FLOOR_BIN=$W/ssl_floor
cc -O2 -o "$SSL_FLOOR_BIN" "$HERE/ssl_floor.c" -lssl -lcrypto
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
  echo "# $(openssl version); $(haproxy -v | head -1); $(hitch --version 2>&1); $(nginx -v 2>&1); $(h2load --version | head -1)"
  echo "# $("$EDGECERT_BIN" version 2>&1 | head -1) ($EDGECERT_BIN, built $(date -u -r "$EDGECERT_BIN" +%FT%TZ)); bench/tls at $(git -C "$HERE" rev-parse --short HEAD 2>/dev/null)$(git -C "$HERE" diff --quiet HEAD -- . 2>/dev/null || echo +changes)"
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
