#!/usr/bin/env bash
# bench/tls/profile-handshake.sh: where a proxied full handshake's CPU goes in edgecert, the
# figures behind RESULTS.md's "Where the overhead over the floor goes". Starts a plain HTTP/1.1
# nginx backend (CPU 1) and `edgecert terminator --workers 1` pinned to CPU 0, drives it with
# `openssl s_time -new -www /ok` (CPU 1), and prints, per proxied handshake:
#   - terminator CPU (utime+stime from /proc), with ssl_floor.c's libssl-only figure beside it;
#   - TCP segments on loopback (nstat; every party: client, terminator, backend);
#   - system calls made by the terminator (strace -c, a separate short run: strace slows it);
#   - perf's split of the terminator's CPU by library (libcrypto/libssl = OpenSSL, kernel, libc,
#     edgecert itself), when perf is allowed (kernel.perf_event_paranoid <= 2 for a child process).
# Usage: EDGECERT_BIN=build/edgecert bench/tls/profile-handshake.sh [ecdsa|rsa] [seconds]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=$(realpath "${EDGECERT_BIN:-$HERE/../../build/edgecert}")
KIND=${1:-ecdsa}; DUR=${2:-8}
for t in nginx openssl taskset nstat strace; do command -v $t >/dev/null || { echo "missing $t (apt-get install -y nginx openssl iproute2 strace)" >&2; exit 2; }; done
W=$(mktemp -d /tmp/edgecert-prof.XXXXXX)
trap 'kill $TPID $NPID 2>/dev/null || true; wait 2>/dev/null || true' EXIT
mkdir -p "$W/certs/default" "$W/www"; echo ok >"$W/www/ok"
if [ "$KIND" = rsa ]; then newkey=(-newkey rsa:2048); else newkey=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1); fi
openssl req -x509 "${newkey[@]}" -nodes -days 2 -subj /CN=bench.test -addext subjectAltName=DNS:bench.test \
  -keyout "$W/certs/default/tls.key" -out "$W/certs/default/tls.crt" 2>/dev/null
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
BP=$(port); TP=$(port)
cat >"$W/nginx.conf" <<NGX
worker_processes 1; daemon off; pid $W/nginx.pid; error_log $W/nginx.err;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:$BP; root $W/www; } }
NGX
taskset -c 1 nginx -c "$W/nginx.conf" & NPID=$!
taskset -c 0 "$BIN" terminator --listen "127.0.0.1:$TP" --http-listen off --upstream "127.0.0.1:$BP" \
  --cert-dir "$W/certs" --admin off --workers 1 --max-connections 10000 >"$W/term.log" 2>&1 & TPID=$!
for _ in $(seq 100); do curl -sk "https://127.0.0.1:$TP/ok" >/dev/null 2>&1 && break; sleep 0.05; done
cpu() { awk '{print $14+$15}' "/proc/$TPID/stat"; }
HZ=$(getconf CLK_TCK)
drive() { # drive SECONDS -> prints handshakes done
  local s=$1 a b
  taskset -c 1 openssl s_time -connect "127.0.0.1:$TP" -new -www /ok -time "$s" >"$W/st1" 2>&1 & a=$!
  taskset -c 1 openssl s_time -connect "127.0.0.1:$TP" -new -www /ok -time "$s" >"$W/st2" 2>&1 & b=$!
  wait $a $b
  echo $(( $(awk '/connections in .* real/{print $1}' "$W/st1") + $(awk '/connections in .* real/{print $1}' "$W/st2") ))
}
drive 2 >/dev/null  # warm up
echo "# $(date -u +%FT%TZ) $KIND load=[$(cut -d' ' -f1-3 /proc/loadavg)] $("$BIN" version 2>/dev/null | head -1)"
nstat -n >/dev/null; c0=$(cpu); n=$(drive "$DUR"); c1=$(cpu)
segs=$(nstat 2>/dev/null | awk '$1=="TcpOutSegs"{print $2}')
us=$(awk -v c=$((c1-c0)) -v hz="$HZ" -v n="$n" 'BEGIN{printf "%.0f", 1e6*c/hz/n}')
echo "handshakes=$n terminator_cpu_us_per_hs=$us segments_per_hs=$(awk -v s="$segs" -v n="$n" 'BEGIN{printf "%.1f", s/n}')"
if [ -x "$W/ssl_floor" ] || cc -O2 -o "$W/ssl_floor" "$HERE/ssl_floor.c" -lssl -lcrypto 2>/dev/null; then
  echo "ssl_floor: $(taskset -c 0 "$W/ssl_floor" hs "$W/certs/default/tls.crt" "$W/certs/default/tls.key" 3000 1 2>&1 | tail -1)"
fi
timeout $((DUR / 2 + 2)) strace -c -f -p "$TPID" -o "$W/strace" 2>/dev/null & SP=$!
sleep 0.5; n2=$(drive $((DUR / 2))); wait $SP 2>/dev/null || true
echo "system calls per handshake (strace -c, $n2 handshakes):"
awk -v n="$n2" '$NF!="syscall" && $NF!="total" && NF>=5 && $1 ~ /^[0-9.]+$/ {calls=$4; err=(NF==6)?$5:0; name=$NF;
  if (name!="rt_sigtimedwait" && name!="futex" && name!="restart_syscall" && calls/n >= 0.01) printf "  %-14s %5.2f%s\n", name, calls/n, err? sprintf(" (%.2f failed)", err/n):""}' "$W/strace"
if perf record -F 1999 -g -p "$TPID" -o "$W/perf.data" -- sleep "$DUR" >/dev/null 2>&1 & PP=$!; then
  sleep 0.2; drive "$DUR" >/dev/null; wait $PP 2>/dev/null || true
  echo "terminator CPU by library (perf, $DUR s):"
  perf report -i "$W/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null | awk '/%/ && $1 ~ /%$/ {printf "  %-8s %s\n", $1, $2}' | head -8
  echo "kernel time by system call (perf, children):"
  perf report -i "$W/perf.data" --children --sort sym --stdio -g none 2>/dev/null | awk '/__x64_sys_/ {printf "  %-8s %s\n", $1, $4}' | head -10
fi
rm -rf "$W"
