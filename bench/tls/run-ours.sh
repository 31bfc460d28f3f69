#!/usr/bin/env bash
# bench/tls/run-ours.sh: edgecert's own figures, measured the way ../shared/bench-peers/ measures
# the peers (terminator pinned to CPU $TERM_CPU with ONE worker, load on $LOAD_CPU, work per
# terminator CPU-second from /proc/PID/stat). Peers (hitch, HAProxy, nginx) run with
# bench-peers/run-tls.sh; this script covers what it cannot: edgecert-only certificate-count figures.
#   EDGECERT_BIN=build/edgecert bench/tls/run-ours.sh [NCERTS=10000] [DUR=10] [IDLE_N=2000]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${EDGECERT_BIN:-$HERE/../../build/edgecert}
NCERTS=${NCERTS:-10000}; DUR=${DUR:-10}; IDLE_N=${IDLE_N:-2000}; HS_PROCS=${HS_PROCS:-4}
TERM_CPU=${TERM_CPU:-0}; LOAD_CPU=${LOAD_CPU:-1}
W=$(mktemp -d /tmp/edgecert-bench.XXXXXX)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(port)
python3 -c "
import socket,threading
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); s.bind(('127.0.0.1',$UP)); s.listen(4096)
while True:
    c,_=s.accept(); c.close()" & UPID=$!
trap 'kill $UPID 2>/dev/null; cleanup' EXIT

start() {  # start CERTDIR [CPU list, default $TERM_CPU]
  TLS=$(port); ADM=$(port)
  taskset -c "${2:-$TERM_CPU}" "$BIN" terminator --listen 127.0.0.1:$TLS --http-listen off --upstream 127.0.0.1:$UP \
    --cert-dir "$1" --admin 127.0.0.1:$ADM --workers 1 --rescan-interval 1h >"$W/log" 2>&1 &
  PID=$!
  for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$ADM/readyz" >/dev/null 2>&1 && return; sleep 0.05; done
  echo "terminator not ready"; cat "$W/log"; exit 1
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=; }
ticks() { awk '{print $14+$15}' /proc/$PID/stat; }
pss() { awk '/^Pss:/{print $2}' /proc/$PID/smaps_rollup; }
HZ=$(getconf CLK_TCK)

echo "== $NCERTS certificates: load time, memory, replace one"
python3 "$HERE/gen_certs.py" "$NCERTS" "$W/many"
start "$W/many"
grep -o "loaded from .* ms CPU)" "$W/log" | sed "s/.* in /load: /"
echo "pss_kib_with_${NCERTS}_certs=$(pss)"
python3 "$HERE/gen_certs.py" 1 "$W/one"
cp "$W/one/c0/tls.crt" "$W/many/c7/tls.crt.tmp"; cp "$W/one/c0/tls.key" "$W/many/c7/tls.key.tmp"
# c0's certificate carries name c0: the replacement only has to parse and validate.
mv "$W/many/c7/tls.key.tmp" "$W/many/c7/tls.key"; mv "$W/many/c7/tls.crt.tmp" "$W/many/c7/tls.crt"
for _ in $(seq 1 100); do grep -q "1 change(s) applied" "$W/log" && break; sleep 0.02; done
grep -o "[0-9]* certificate(s), 1 change(s) applied in [0-9.]* ms" "$W/log" | tail -1 | sed 's/^/replace_one: /'
stop
# The loader parses on every CPU the process may use; the figure above is one pinned core.
start "$W/many" "0-$(( $(nproc) - 1 ))"
grep -o "loaded from .* ms CPU)" "$W/log" | sed "s/.* in /load on all $(nproc) CPUs: /"
stop

for kind in ec rsa; do
  echo "== full handshakes, $kind (openssl s_time -new, $HS_PROCS procs on CPU $LOAD_CPU, $DUR s)"
  rm -rf "$W/hs"; python3 "$HERE/gen_certs.py" 1 "$W/hs" "$kind"
  start "$W/hs"
  t0=$(ticks); s0=$(date +%s.%N)
  pids=()
  for i in $(seq 1 "$HS_PROCS"); do
    taskset -c "$LOAD_CPU" openssl s_time -connect 127.0.0.1:$TLS -new -time "$DUR" >"$W/st$i" 2>&1 &
    pids+=($!)
  done
  wait "${pids[@]}" || true
  t1=$(ticks); s1=$(date +%s.%N)
  n=$(cat "$W"/st* | awk '/connections in [0-9.]+s;/{s+=$1} END{print s+0}')
  python3 -c "
n=$n; cpu=($t1-$t0)/$HZ; wall=$s1-$s0
print(f'hs_$kind: {n} handshakes, {n/wall:.0f}/s wall, terminator CPU {cpu:.2f}s ({100*cpu/wall:.0f}%), {n/cpu if cpu else 0:.0f} per CPU-second')"
  stop
done

echo "== idle TLS connections ($IDLE_N)"
rm -rf "$W/hs"; python3 "$HERE/gen_certs.py" 1 "$W/hs" ec
start "$W/hs"
ulimit -n "$(ulimit -Hn)"
python3 "$HERE/idle_conns.py" "$TLS" "$IDLE_N" "$PID"
stop
