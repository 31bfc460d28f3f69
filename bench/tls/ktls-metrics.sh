# shellcheck shell=bash
# bench/tls/ktls-metrics.sh: the kernel TLS bulk metric of ktls-bulk.sh. peers-setup.sh copies it,
# like peer-metrics.sh, next to the adapters of the PRIVATE copy of ../shared/bench-peers, whose
# run-tls.sh sources it and runs x_ktls_bulk. It uses run-tls.sh's helpers and conventions
# (start_target, stop_target, canary, tticks, tdelta, sysshare, emit, fmt; the terminator on
# $TERM_CPU, the backend nginx and the clients on $LOAD_CPU). Set by ktls-bulk.sh: DUR, BULK_CONNS,
# KTLS_SUITES, KTLS_STRACE_SUITES, KTLS_STRACE_N, KTLS_ROUND (recorded with each figure),
# EDGECERT_ADMIN_PORT.
#
#   ktls_bulk   for each suite of $KTLS_SUITES (aes128, aes256: TLS 1.3 AES-128-GCM / AES-256-GCM,
#               set in the CLIENT's OpenSSL configuration, so every terminator gets the same):
#               `wrk -t1 -c$BULK_CONNS` GET /1m (1 MiB) over keep-alive for $DUR s: MB per
#               terminator CPU-second (utime+stime of its process tree), and whether kTLS was used
#               (/proc/net/tls_stat, `ss -ti`'s ULP line per connection, edgecert's /metrics).
#               Then, for each suite of $KTLS_STRACE_SUITES, a separate pass under `strace -f` on
#               every process and thread of the terminator: curl GETs /1m $KTLS_STRACE_N times over
#               one keep-alive connection; system calls by kind, and the bytes the terminator's
#               system calls copied between the kernel and user space, per MiB delivered.
#   BENCH_KTLS=1 (set by the nginx-ktls adapter ktls-bulk.sh writes): render adds
#               `ssl_conf_command Options KTLS` to nginx.conf.

# The system calls that copy bytes between a user buffer and the kernel (their return value is the
# byte count), and the ones that move bytes inside the kernel.
KTLS_IN_CALLS="read readv pread64 preadv preadv2 recvfrom recvmsg"
KTLS_OUT_CALLS="write writev pwrite64 pwritev pwritev2 sendto sendmsg"
KTLS_KERNEL_CALLS="splice sendfile tee"

ktls_patch() {
  local f=$1
  [ "${f##*/}" = nginx.conf ] || return 0
  sed -i 's|^\( *\)ssl_protocols .*$|&\n\1ssl_conf_command Options KTLS;   # kernel TLS where OpenSSL allows it (ktls-bulk.sh)|' "$f"
  grep -q '^ *ssl_conf_command Options KTLS;' "$f" || { echo "ktls_patch: cannot enable kTLS in $f" >&2; return 1; }
}
eval "_render_no_ktls() $(declare -f render | tail -n +2)"
render() { _render_no_ktls "$@" || return; [ "${BENCH_KTLS:-0}" = 1 ] || return 0; ktls_patch "$2"; }

ktls_suite_name() {
  case $1 in
    aes128) echo TLS_AES_128_GCM_SHA256 ;;
    aes256) echo TLS_AES_256_GCM_SHA384 ;;
    chacha) echo TLS_CHACHA20_POLY1305_SHA256 ;;
    *) echo "unknown suite $1 (aes128, aes256, chacha)" >&2; return 1 ;;
  esac
}

# ktls_client_conf SUITE: an OpenSSL configuration for the clients (wrk, curl, s_client read it
# through OPENSSL_CONF when they create their SSL_CTX): TLS 1.3 with that one suite. The
# terminators never see it.
ktls_client_conf() {
  local f=$RUN/client-$1.cnf name
  name=$(ktls_suite_name "$1") || return 1
  printf '%s\n' 'openssl_conf = openssl_init' '[openssl_init]' 'ssl_conf = ssl_sect' '[ssl_sect]' \
    'system_default = system_default_sect' '[system_default_sect]' 'MinProtocol = TLSv1.3' \
    "Ciphersuites = $name" >"$f"
  echo "$f"
}

# What the client's configuration negotiates with the terminator (openssl s_client): "TLSv1.3/SUITE".
ktls_negotiated() {
  { OPENSSL_CONF=$1 taskset -c "$LOAD_CPU" openssl s_client -connect "127.0.0.1:$TLS_PORT" -brief </dev/null 2>&1 || true; } |
    awk -F': *' '/^Protocol version/{p=$2} /^Ciphersuite/{c=$2} END{printf "%s/%s", p ? p : "none", c ? c : "none"}'
}

ktls_tls_tx_sw() { awk '$1 == "TlsTxSw" {print $2; f=1} END{if (!f) print 0}' /proc/net/tls_stat 2>/dev/null || echo 0; }

# edgecert's kTLS counters: "enabled kernel_handshakes user_space_handshakes spliced_bytes", or
# nothing for another terminator.
ktls_edgecert_metrics() {
  [[ $TARGET == edgecert* ]] && [ -n "${EDGECERT_ADMIN_PORT:-}" ] || return 0
  { curl -s --max-time 10 "http://127.0.0.1:$EDGECERT_ADMIN_PORT/metrics" || true; } | awk '
    $1 == "edgecert_ktls_tx_enabled" {e = $2}
    $1 == "edgecert_ktls_tx_handshakes_total{layer=\"kernel\"}" {k = $2}
    $1 == "edgecert_ktls_tx_handshakes_total{layer=\"user_space\"}" {u = $2}
    $1 == "edgecert_ktls_spliced_bytes_total" {s = $2}
    END {printf "%d %d %d %.0f\n", e, k, u, s}'
}

ktls_cpu_jiffies() { awk -v c="cpu$1" '$1 == c {print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
ktls_busy_pct() { # ktls_busy_pct "BUSY0 TOTAL0" "BUSY1 TOTAL1"
  awk -v a="$1" -v b="$2" 'BEGIN{split(a,x," "); split(b,y," "); d=y[2]-x[2]; printf "%.0f", (d > 0 ? 100*(y[1]-x[1])/d : 0)}'
}

# The kernel TLS state of the client connections while wrk ($1) runs: `ss -ti`'s ULP line of each
# ("tcp-ulp-tls version: 1.3 cipher: aes-gcm-128 rxconf: none txconf: sw": the kernel encrypts
# what is sent), summarised as COUNTxDESCRIPTION;..., or "none" when no connection has the tls
# ULP. Polls until BULK_CONNS connections have their send keys in the kernel (the ULP is attached
# at the end of each handshake, which takes seconds when emulated) or wrk has ended.
ktls_ulp_sample() {
  local wpid=$1 filter="( sport = :$TLS_PORT )" lines="" seen=""
  while kill -0 "$wpid" 2>/dev/null; do
    lines=$(ss -tinH state established "$filter" | grep -o 'tcp-ulp-tls.*txconf: [a-z]*' || true)
    [ -z "$lines" ] || seen=$lines
    [ "$(grep -c 'txconf: sw' <<<"$lines" || true)" -ge "$BULK_CONNS" ] && break
    sleep 0.5
  done
  [ -n "$seen" ] || { echo none; return 0; }
  sed 's/tcp-ulp-tls //; s/: /:/g; s/ /,/g' <<<"$seen" | sort | uniq -c |
    awk '{printf "%s%sx%s", (NR > 1 ? ";" : ""), $1, $2}'
}

ktls_tree_pids() { # PID and its descendants
  local c
  echo "$1"
  for c in $(pgrep -P "$1"); do ktls_tree_pids "$c"; done
}

# ktls_wrk SUITE: the timed pass. Sets KTLS_FAIL when kTLS was not used as the target says.
ktls_wrk() {
  local s=$1 conf neg f=$OUT/ktls_bulk_$1.r${KTLS_ROUND:-1}.wrk can k0 k1 t0 t1 c0 c1 l0 l1 x0 x1 m0 m1 ulp wpid
  conf=$(ktls_client_conf "$s")
  neg=$(ktls_negotiated "$conf")
  # warm-up: one download on the connection wrk does not use
  OPENSSL_CONF=$conf taskset -c "$LOAD_CPU" curl -sk --http1.1 -o /dev/null "https://127.0.0.1:$TLS_PORT/1m"
  can=$(canary)
  x0=$(ktls_tls_tx_sw)
  m0=$(ktls_edgecert_metrics)
  k0=$(tticks)
  c0=$(ktls_cpu_jiffies "$TERM_CPU")
  l0=$(ktls_cpu_jiffies "$LOAD_CPU")
  t0=$(now)
  # --timeout: a 1 MiB response takes seconds when the guest is emulated (wrk's default is 2 s)
  OPENSSL_CONF=$conf taskset -c "$LOAD_CPU" wrk -t1 -c"$BULK_CONNS" -d"${DUR}s" --timeout 60s "https://127.0.0.1:$TLS_PORT/1m" >"$f" 2>&1 &
  wpid=$!
  ulp=$(ktls_ulp_sample "$wpid")
  wait "$wpid" || true
  t1=$(now)
  c1=$(ktls_cpu_jiffies "$TERM_CPU")
  l1=$(ktls_cpu_jiffies "$LOAD_CPU")
  k1=$(tticks)
  m1=$(ktls_edgecert_metrics)
  x1=$(ktls_tls_tx_sw)
  local n wall cpu mb err tx check=ok ec=""
  n=$(awk '/ requests in /{print $1; exit}' "$f")
  n=${n:-0}
  err=$(awk '/Socket errors|Non-2xx/{gsub(/ /, ""); printf "%s;", $0}' "$f")
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')
  cpu=$(awk -v k="$(tdelta "$k0" "$k1")" -v hz="$HZ" 'BEGIN{print k/hz}')
  mb=$(awk -v n="$n" 'BEGIN{print n*1048576/1e6}')
  tx=$((x1 - x0))
  if [ -n "$m1" ]; then
    local k_0 u0 s0 e1 k_1 u1 s1
    read -r _ k_0 u0 s0 <<<"${m0:-0 0 0 0}" || true
    read -r e1 k_1 u1 s1 <<<"$m1" || true
    ec=" edgecert_ktls_tx_enabled=$e1 kernel_hs_delta=$((k_1 - k_0)) user_space_hs_delta=$((u1 - u0)) spliced_MiB_per_MiB=$(awk -v s="$((s1 - s0))" -v n="$n" 'BEGIN{printf "%.3f", n ? s/1048576/n : 0}')"
  fi
  # kTLS must have carried every wrk connection where the target asks for it, and none elsewhere;
  # edgecert must also have spliced every body (requests completed x 1 MiB, at least).
  if [ "${BENCH_KTLS:-0}" = 1 ] || [ "${EDGECERT_KTLS:-off}" != off ]; then
    [ "$tx" -ge "$BULK_CONNS" ] || check="FAIL:tls_tx_sw_delta<$BULK_CONNS"
    [[ $ulp == *txconf:sw* ]] || check="FAIL:no-ulp-tls-on-wrk-connections"
    if [ -n "$m1" ]; then
      [ "$e1" = 1 ] && [ $((k_1 - k_0)) -ge "$BULK_CONNS" ] || check="FAIL:edgecert-kernel-handshakes"
      [ $((s1 - s0)) -ge $((n * 1048576)) ] || check="FAIL:edgecert-spliced-less-than-delivered"
    fi
  else
    [ "$tx" = 0 ] || check="FAIL:kTLS-used-unexpectedly"
  fi
  [ "$n" -gt 0 ] || check="FAIL:no-requests"
  [ -z "$err" ] || check="FAIL:wrk-errors"
  [ "$check" = ok ] || KTLS_FAIL+=" $s:$check"
  local per_cpu ms_per_mib busy cpu_kind
  per_cpu=$(awk -v m="$mb" -v c="$cpu" 'BEGIN{print (c > 0 ? m/c : 0)}')
  ms_per_mib=$(awk -v c="$cpu" -v n="$n" 'BEGIN{print (n > 0 ? 1000*c/n : 0)}')
  busy=$(awk -v c="$cpu" -v w="$wall" 'BEGIN{print 100*c/w}')
  cpu_kind=$(grep -q 'QEMU TCG' /proc/cpuinfo && echo tcg || echo native)
  emit "ktls_bulk_$s" "$(fmt "$(awk -v m="$mb" -v w="$wall" 'BEGIN{print m/w}')" 1)" "MB/s" \
    "suite=$(ktls_suite_name "$s") negotiated(s_client)=$neg MB_per_term_cpu_s=$(fmt "$per_cpu" 1) term_cpu_ms_per_MiB=$(fmt "$ms_per_mib" 2) term_cpu%=$(fmt "$busy") term_sys%=$(sysshare "$k0" "$k1") term_core_busy%=$(ktls_busy_pct "$c0" "$c1") load_core_busy%=$(ktls_busy_pct "$l0" "$l1") requests=$n wall=$(fmt "$wall" 2) term_cpu_s=$(fmt "$cpu" 2) canary_rsa_sign/s=$can tls_tx_sw_delta=$tx ulp=$ulp$ec ktls_check=$check${err:+ errors=$err} cpu=$cpu_kind round=${KTLS_ROUND:-1} (wrk -t1 -c$BULK_CONNS /1m)"
}

# ktls_strace SUITE: the strace pass; fixed work (KTLS_STRACE_N downloads on one connection).
ktls_strace() {
  local s=$1 conf f=$OUT/ktls_strace_$1 n=$KTLS_STRACE_N args=() urls=() p i spid got conns neg
  conf=$(ktls_client_conf "$s")
  for p in $(ktls_tree_pids "$TARGET_PID"); do args+=(-p "$p"); done
  taskset -c "$LOAD_CPU" strace -f -qq -s 0 -o "$f.trace" "${args[@]}" 2>"$f.err" &
  spid=$!
  # Bounded wait until every thread of the terminator is traced (strace attaches asynchronously).
  i=0
  while :; do
    local all=1 t
    for p in $(ktls_tree_pids "$TARGET_PID"); do
      for t in /proc/"$p"/task/*; do
        [ "$(awk '/^TracerPid:/{print $2}' "$t/status" 2>/dev/null)" != 0 ] || all=0
      done
    done
    [ $all = 1 ] && break
    i=$((i + 1))
    [ $i -lt 200 ] || { echo "strace did not attach to $TARGET ($(cat "$f.err"))" >&2; kill -INT "$spid"; wait "$spid" || true; return 1; }
    sleep 0.05
  done
  for ((i = 0; i < n; i++)); do urls+=(-o /dev/null "https://127.0.0.1:$TLS_PORT/1m"); done
  OPENSSL_CONF=$conf taskset -c "$LOAD_CPU" curl -sk -v --http1.1 -w '%{size_download} %{num_connects}\n' "${urls[@]}" \
    >"$f.curl" 2>"$f.curl.err" || true
  kill -INT "$spid"
  wait "$spid" || true
  got=$(awk '{s += $1} END{print s+0}' "$f.curl")
  conns=$(awk '{s += $2} END{print s+0}' "$f.curl")
  neg=$(awk '/SSL connection using/{print $(NF-2) "/" $NF; exit}' "$f.curl.err")
  local mib summary
  mib=$(awk -v b="$got" 'BEGIN{print b/1048576}')
  # Per system call name: calls, and errors by errno; the byte counts of the copying and the
  # in-kernel calls. strace -f prints a call that another thread interrupts as "<unfinished ...>"
  # and later "<... NAME resumed>": counted once, at its resumption (which has the result).
  summary=$(awk -v mib="$mib" -v incalls="$KTLS_IN_CALLS" -v outcalls="$KTLS_OUT_CALLS" -v kcalls="$KTLS_KERNEL_CALLS" '
    BEGIN { split(incalls, a); for (i in a) kind[a[i]] = "in"; split(outcalls, a); for (i in a) kind[a[i]] = "out"
            split(kcalls, a); for (i in a) kind[a[i]] = a[i] }
    / <unfinished \.\.\.>$/ { next }
    {
      line = $0; sub(/^[0-9]+ +/, "", line)
      if (line ~ /^<\.\.\. [a-z0-9_]+ resumed>/) { name = line; sub(/^<\.\.\. /, "", name); sub(/ resumed>.*/, "", name) }
      else if (line ~ /^[a-z0-9_]+\(/) { name = line; sub(/\(.*/, "", name) }
      else next
      k = split(line, parts, " = "); if (k < 2) next
      ret = parts[k]; calls[name]++; total++
      if (ret ~ /^-1 E/) { split(ret, en, " "); errs[en[2]]++; next }
      if (name in kind) bytes[kind[name]] += ret + 0
    }
    END {
      printf "calls_per_MiB=%.1f", total / mib
      for (c in calls) printf " sys.%s=%.2f", c, calls[c] / mib
      for (e in errs) printf " err.%s=%.2f", e, errs[e] / mib
      printf " user_in_KiB=%.1f user_out_KiB=%.1f", bytes["in"] / 1024 / mib, bytes["out"] / 1024 / mib
      # each spliced byte is moved twice (socket -> pipe -> socket)
      printf " spliced_KiB=%.1f sendfile_KiB=%.1f", bytes["splice"] / 2 / 1024 / mib, bytes["sendfile"] / 1024 / mib
    }' "$f.trace")
  local check=ok
  [ "$got" = $((n * 1048576)) ] || check="FAIL:got-$got-bytes"
  [ "$conns" = 1 ] || check="FAIL:$conns-connections"
  [ "$check" = ok ] || KTLS_FAIL+=" strace_$s:$check"
  emit "ktls_sys_$s" "$(awk '{sub(/^calls_per_MiB=/, ""); print $1}' <<<"$summary")" "calls/MiB" \
    "MiB=$(fmt "$mib" 2) connections=$conns negotiated(curl)=$neg $summary check=$check (strace -f -p every process of the terminator; curl fetches /1m $n times on one keep-alive connection; one handshake included)"
}

x_ktls_bulk() {
  local s
  KTLS_FAIL=""
  start_target ecdsa
  for s in $KTLS_SUITES; do ktls_wrk "$s"; done
  for s in $KTLS_STRACE_SUITES; do ktls_strace "$s"; done
  stop_target
  [ -z "$KTLS_FAIL" ] || { echo "ktls_bulk $TARGET: checks failed:$KTLS_FAIL" >&2; return 1; }
}
