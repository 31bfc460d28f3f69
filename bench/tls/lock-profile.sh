#!/usr/bin/env bash
# bench/tls/lock-profile.sh: which locks edgecert takes per handshake and which of them several
# threads share: the evidence for the scaling model in README.md. edgecert runs with lockcount.so
# (LD_PRELOAD; counts pthread mutex/rwlock acquisitions per lock and thread) and --workers 2; four
# `openssl s_time` clients make full handshakes (-new), then resumed ones (-reuse), then wrk sends
# keep-alive requests, each window against a fresh process. Also the TCP segments per handshake
# or request (/proc/net/snmp). Counts, not timings: the machine's load does not change them.
#   EDGECERT_BIN=build/edgecert bench/tls/lock-profile.sh      knobs: WORKERS=2 DUR=4 TOP=15
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=$(realpath "${EDGECERT_BIN:-$HERE/../../build/edgecert}")
WORKERS=${WORKERS:-2}; DUR=${DUR:-4}; TOP=${TOP:-15}
W=$(mktemp -d /tmp/edgecert-locks.XXXXXX)
PID= UPID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; [ -n "$UPID" ] && kill "$UPID" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

cc -O2 -shared -fPIC -o "$W/lockcount.so" "$HERE/lockcount.c" -ldl -lpthread
python3 "$HERE/gen_certs.py" 1 "$W/certs" ec
# The upstream answers every request with a 3-byte body: HTTP/1.0 (s_time) then closes, HTTP/1.1
# (wrk) keeps the connection open. One thread per connection; it is not what is measured.
UP=$(port)
python3 -c "
import socket, threading
def serve(c):
    buf = b''
    while True:
        d = c.recv(65536)
        if not d:
            break
        buf += d
        while b'\\r\\n\\r\\n' in buf:
            head, buf = buf.split(b'\\r\\n\\r\\n', 1)
            c.sendall(b'HTTP/1.1 200 OK\\r\\nContent-Length: 3\\r\\n\\r\\nok\\n')
            if b'HTTP/1.0' in head.split(b'\\r\\n')[0]:
                c.close()
                return
    c.close()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $UP)); s.listen(4096)
while True:
    threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start()" & UPID=$!
segs() { awk '/^Tcp: [0-9]/{print $12}' /proc/net/snmp; }   # InSegs: every segment on loopback once

window() {  # NAME full|resumed|keepalive
  local name=$1 tls n=0 i pids=() s0 s1 what
  tls=$(port)
  LD_PRELOAD=$W/lockcount.so LOCKCOUNT_ARM=$W/arm LOCKCOUNT_OUT=$W/$name \
    "$BIN" terminator --listen "127.0.0.1:$tls" --http-listen off --upstream "127.0.0.1:$UP" \
    --cert-dir "$W/certs" --admin off --workers "$WORKERS" --proxy-protocol none --alpn http/1.1 >"$W/log.$name" 2>&1 &
  PID=$!
  for i in $(seq 1 100); do
    openssl s_client -connect "127.0.0.1:$tls" </dev/null >/dev/null 2>&1 && break
    sleep 0.1; [ "$i" -lt 100 ] || { echo "edgecert did not start"; cat "$W/log.$name"; exit 1; }
  done
  if [ "$name" = keepalive ]; then  # connections opened before counting: requests only
    wrk -t1 -c20 -d1s "https://127.0.0.1:$tls/ok" >/dev/null 2>&1 || true
  fi
  touch "$W/arm"; s0=$(segs)
  if [ "$name" = keepalive ]; then
    wrk -t1 -c20 -d"${DUR}s" "https://127.0.0.1:$tls/ok" >"$W/wrk" 2>&1 || true
    n=$(awk '/requests in/{print $1}' "$W/wrk"); what="keep-alive requests (wrk -c20; 20 handshakes among them)"
  else
    for i in 1 2 3 4; do
      openssl s_time -connect "127.0.0.1:$tls" "$([ "$name" = full ] && echo -new || echo -reuse)" -www /ok -time "$DUR" \
        >"$W/st.$name.$i" 2>&1 & pids+=($!)
    done
    wait "${pids[@]}" || true
    for i in 1 2 3 4; do n=$((n + $(awk '/connections in .* real seconds/{print $1; exit}' "$W/st.$name.$i"))); done
    what="handshakes ($(cat "$W"/st."$name".* | grep -E '^[r*t3]+$' | tr -cd 'r' | wc -c) resumed), each with one request"
  fi
  s1=$(segs); rm "$W/arm"
  for i in $(seq 1 100); do [ -s "$W/$name" ] && break; sleep 0.1; done
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
  echo "== $name: $n $what, edgecert --workers $WORKERS; $(awk -v a="$s0" -v b="$s1" -v n="$n" 'BEGIN{printf "%.1f", (b-a)/n}') TCP segments each (client and upstream connections on loopback; the counter is machine-wide)"
  awk -v n="$n" -v top="$TOP" '
    /^#/ {next}
    {tot += $1; if ($3 > 1) shared += $1; rows++
     if (rows <= top) printf "  %8.2f each  %s  %d thread(s)  %s  %s\n", $1/n, ($2=="m"?"mutex ":($2=="r"?"rdlock":"wrlock")), $3, $4, $5}
    END {printf "  total %.2f lock acquisitions each, %.2f of them on locks more than one thread took (%d locks seen)\n", tot/n, shared/n, rows}' "$W/$name"
}
window full
window resumed
window keepalive
