# bench/tls/peer-metrics.sh: the metrics run-peers.sh adds to its PRIVATE copy of
# ../shared/bench-peers/run-tls.sh. run-peers.sh copies this file next to the copy's adapters and
# patches the copy to source it after its own functions, and to run x_M for a metric M that
# run-tls.sh does not know. Everything here uses run-tls.sh's helpers and conventions (start_target,
# stop_target, canary, noise_start/noise_stop, tticks, tdelta, emit, med_of, fmt, nz, loadbusy,
# sysshare; the terminator on $TERM_CPU, load generators and backend on $LOAD_CPU), so the figures
# are comparable with its own. Set by run-peers.sh: SSL_FLOOR_BIN (ssl_floor.c built) and
# H2C_BACKEND_PORT (the backend nginx's HTTP/2-only server block).
#
#   hs_ecdsa, hs_rsa  run-tls.sh's own, preceded by the libssl floor (ssl_floor hs) on $TERM_CPU
#   hs_resume_ecdsa   resumed handshakes: `openssl s_time -reuse` (TLS 1.3 PSK from a ticket),
#                     preceded by ssl_floor resume; TLS 1.2 tickets too when 1.3 does not resume
#   h2                HTTP/2 requests with h2load through the terminator (its h2 configuration)
#   hs_workers        edgecert only: --workers 1 and 2, nothing pinned, handshakes per wall second

# tally N: a run that did N units between now-stamps t0/t1 and tree ticks k0/k1 (the caller's
# locals, as in run-tls.sh's m_hs) adds to the caller's rates, cpus (terminator CPU %) and percpu;
# sets wall and cpu (seconds).
tally() {
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')
  cpu=$(awk -v k="$(tdelta "$k0" "$k1")" -v hz="$HZ" 'BEGIN{print k/hz}')
  rates+=" $(awk -v n="$1" -v w="$wall" 'BEGIN{print n/w}')"
  cpus+=" $(awk -v c="$cpu" -v w="$wall" 'BEGIN{print 100*c/w}')"
  percpu+=" $(awk -v n="$1" -v c="$cpu" 'BEGIN{print (c>0)? n/c : 0}')"
}

# ---- the libssl floor beside every handshake metric ----

# floor KIND MODE: ssl_floor (hs = full, resume = TLS 1.3 resumed) on the terminator's CPU with the
# run's own certificate, REPEAT times; the median server µs per handshake, as tls.<target>.floor_*.
floor() {
  local kind=$1 mode=$2 n us="" can out
  if [ "$kind" = rsa ]; then n=${FLOOR_N_RSA:-1000}; else n=${FLOOR_N_ECDSA:-3000}; fi
  [ "$mode" = resume ] && n=${FLOOR_N_RESUME:-3000}
  can=$(canary)
  for _ in $(seq 1 "$REPEAT"); do
    out=$(taskset -c "$TERM_CPU" "${SSL_FLOOR_BIN:?}" "$mode" "$CERTS/tls-$kind.crt" "$CERTS/tls-$kind.key" "$n") ||
      { echo "ssl_floor $mode $kind failed: $out" >&2; return 1; }
    us+=" $(awk '{for (i = 2; i <= NF; i++) if ($i == "us") print $(i-1)}' <<<"$out")"
  done
  emit "floor_${mode}_$kind" "$(fmt "$(med_of $us)" 1)" "us" "canary_rsa_sign/s=$can n=$n runs=[${us# }] (ssl_floor.c $mode, pinned to CPU $TERM_CPU)"
}

# run-tls.sh's m_hs, renamed, and a wrapper that measures the floor right before it.
eval "_m_hs_peers() $(declare -f m_hs | tail -n +2)"
m_hs() { floor "$1" hs; _m_hs_peers "$1"; }

# ---- resumed handshakes ----

# resume_probe VERSION_FLAG: one full handshake saving the session, one offering it; prints
# "<Reused|New>,<protocol>,<ticket|session-id>,tickets_per_full_hs=N" (how the first session can be
# resumed, and how many TLS 1.3 tickets the terminator sent after the full handshake).
resume_probe() {
  local v=$1 sess=$RUN/probe.sess first second
  rm -f "$sess"
  first=$(printf 'GET /ok HTTP/1.0\r\n\r\n' | timeout 10 openssl s_client -connect "127.0.0.1:$TLS_PORT" $v -ign_eof \
    -sess_out "$sess" 2>&1 || true)
  second=$(printf 'GET /ok HTTP/1.0\r\n\r\n' | timeout 10 openssl s_client -connect "127.0.0.1:$TLS_PORT" $v -ign_eof \
    -sess_in "$sess" 2>&1 || true)
  printf '%s,%s,tickets_per_full_hs=%s' \
    "$(awk -F', ' '/^(Reused|New), /{print $1 "," $2; exit}' <<<"$second")" \
    "$(grep -q 'TLS session ticket:' <<<"$first" && echo ticket || echo session-id)" \
    "$(grep -c 'Post-Handshake New Session Ticket arrived' <<<"$first" || true)"
}

# hs_resume KIND NAME [s_time flags...]: HS_PROCS parallel `s_time -reuse -www /ok` on $LOAD_CPU.
# s_time makes one full handshake, then reconnects with the session until the time is up and
# prints one character per connection: 'r' resumed, anything else a full handshake.
hs_resume() {
  local kind=$1 name=$2 rates="" cpus="" percpu="" notes="" lbusy="" reused_pct="" can
  shift 2
  can=$(canary)
  taskset -c "$LOAD_CPU" openssl s_time -connect "127.0.0.1:$TLS_PORT" -reuse -www /ok -time 2 "$@" >/dev/null 2>&1 || true
  for r in $(seq 1 "$REPEAT"); do
    local k0 k1 t0 t1 n=0 re=0 pids=() p c
    noise_start "$OUT/$name.noise.r$r"
    k0=$(tticks); t0=$(now)
    for p in $(seq 1 "$HS_PROCS"); do
      taskset -c "$LOAD_CPU" openssl s_time -connect "127.0.0.1:$TLS_PORT" -reuse -www /ok -time "$DUR" "$@" \
        >"$OUT/$name.r$r.p$p" 2>&1 & pids+=($!)
    done
    wait "${pids[@]}" || true
    t1=$(now); k1=$(tticks); noise_stop
    for p in $(seq 1 "$HS_PROCS"); do
      c=$(awk '/connections in .* real seconds/{print $1; exit}' "$OUT/$name.r$r.p$p")
      n=$((n + ${c:-0}))
      re=$((re + $(grep -E '^[r*t3]+$' "$OUT/$name.r$r.p$p" | tr -cd 'r' | wc -c)))
    done
    local wall cpu
    tally "$n"
    reused_pct+=" $(awk -v n=$n -v r=$re 'BEGIN{print (n>0)? 100*r/n : 0}')"
    lbusy+=" $(loadbusy "$OUT/$name.noise.r$r")"
    notes+=" r$r:n=$n,resumed=$re,wall=$(fmt "$wall" 2),sys%=$(sysshare "$k0" "$k1"),$(nz "$OUT/$name.noise.r$r")"
  done
  RESUMED_PCT=$(med_of $reused_pct)
  emit "$name" "$(fmt "$(med_of $rates)")" "hs/s" "canary_rsa_sign/s=$can term_cpu%=$(fmt "$(med_of $cpus)") load_cpu%=$(fmt "$(med_of $lbusy)") hs_per_term_cpu_s=$(fmt "$(med_of $percpu)") resumed%=$(fmt "$RESUMED_PCT" 1) runs=[$(for x in $rates; do printf '%s ' "$(fmt "$x")"; done)]$notes"
}

x_hs_resume_ecdsa() {
  local p13 p12
  floor ecdsa resume
  start_target ecdsa
  p13=$(resume_probe -tls1_3); p12=$(resume_probe -tls1_2)
  emit probe_resume "-" "" "tls1.3=$p13 tls1.2=$p12 (openssl s_client -sess_out, then -sess_in)"
  hs_resume ecdsa hs_resume_ecdsa -tls1_3
  # TLS 1.2 session tickets only where TLS 1.3 does not resume (or when asked for).
  if [ "${RESUME_TLS12:-0}" = 1 ] || awk -v p="$RESUMED_PCT" 'BEGIN{exit !(p < 90)}'; then
    hs_resume ecdsa hs_resume12_ecdsa -tls1_2
  fi
  stop_target
}

# ---- HTTP/2 requests ----

# Each terminator's h2 configuration, applied to the config its adapter renders (BENCH_H2=1):
#   edgecert  ours-target.sh reads BENCH_H2: ALPN h2,http/1.1, h2 connections forwarded as they
#             are to the backend's HTTP/2-only port (--upstream-h2), HTTP/1.1 to the usual one
#   hitch     L4: alpn-protos "h2, http/1.1", every connection to the HTTP/2-only port
#   haproxy   `alpn h2,http/1.1` on the bind; HTTP/1.1 to the backend (it translates)
#   nginx     `http2` on the TLS listen; HTTP/1.1 upstream keep-alive (it translates)
h2_patch() {
  local f=$1
  case ${f##*/} in
    hitch.conf)
      sed -i "s|^backend = .*|backend = \"[127.0.0.1]:$H2C_BACKEND_PORT\"|" "$f"
      echo 'alpn-protos = "h2, http/1.1"' >>"$f"
      grep -q "^backend = \"\[127.0.0.1\]:$H2C_BACKEND_PORT\"" "$f" ;;
    haproxy.cfg)
      sed -i "/^ *bind .* ssl crt /s|\$| alpn h2,http/1.1|" "$f"
      grep -q 'alpn h2,http/1.1' "$f" ;;
    nginx.conf)
      sed -i "s|\(listen 127.0.0.1:$TLS_PORT ssl\)|\1 http2|" "$f"
      grep -q "listen 127.0.0.1:$TLS_PORT ssl http2" "$f" ;;
    *) return 0 ;;
  esac || { echo "h2_patch: no h2 setting could be added to $f" >&2; return 1; }
}
eval "_render_plain() $(declare -f render | tail -n +2)"
render() { _render_plain "$@" || return; [ "${BENCH_H2:-0}" = 1 ] || return 0; h2_patch "$2"; }

# Waits (bounded) until the terminator negotiates h2 (edgecert offers it once its probe of the
# upstream saw HTTP/2 SETTINGS).
await_h2() {
  local i=0
  until [ "$(curl -sk --http2 --max-time 2 -o /dev/null -w '%{http_version}' "https://127.0.0.1:$TLS_PORT/ok" 2>/dev/null)" = 2 ]; do
    sleep 0.2; i=$((i+1)); [ $i -lt 50 ] || { echo "$TARGET does not negotiate h2" >&2; return 1; }
  done
}

# h2load -t1 -c$H2_CONNS -m$H2_STREAMS on $LOAD_CPU for DUR s; requests per terminator CPU-second.
x_h2() {
  local conns=${H2_CONNS:-10} streams=${H2_STREAMS:-10} rates="" cpus="" percpu="" notes="" lbusy="" can
  can=$(canary)
  export BENCH_H2=1
  start_target ecdsa
  await_h2
  taskset -c "$LOAD_CPU" h2load -t1 -c"$conns" -m"$streams" -D 2 "https://127.0.0.1:$TLS_PORT/ok" >"$OUT/h2.warmup" 2>&1 || true
  for r in $(seq 1 "$REPEAT"); do
    local k0 k1 t0 t1 ok proto wall cpu f=$OUT/h2.r$r
    noise_start "$f.noise"
    k0=$(tticks); t0=$(now)
    taskset -c "$LOAD_CPU" h2load -t1 -c"$conns" -m"$streams" -D "$DUR" "https://127.0.0.1:$TLS_PORT/ok" >"$f" 2>&1 || true
    t1=$(now); k1=$(tticks); noise_stop
    ok=$(awk '/^requests:/{for (i = 1; i < NF; i++) if ($(i+1) ~ /^succeeded/) print $i}' "$f"); ok=${ok:-0}
    proto=$(awk -F': ' '/^Application protocol/{print $2}' "$f")
    tally "$ok"
    lbusy+=" $(loadbusy "$f.noise")"
    notes+=" r$r:ok=$ok,proto=${proto:-none},$(awk '/^requests:/{gsub(/ /,""); print}' "$f"),sys%=$(sysshare "$k0" "$k1"),$(nz "$f.noise")"
  done
  stop_target
  unset BENCH_H2
  emit h2_rps "$(fmt "$(med_of $rates)")" "req/s" "canary_rsa_sign/s=$can term_cpu%=$(fmt "$(med_of $cpus)") load_cpu%=$(fmt "$(med_of $lbusy)") req_per_term_cpu_s=$(fmt "$(med_of $percpu)") h2load -t1 -c$conns -m$streams runs=[$(for x in $rates; do printf '%s ' "$(fmt "$x")"; done)]$notes"
}

# ---- edgecert's workers ----

# thread_ticks PID: "tid:ticks" for every thread of PID
thread_ticks() { for t in /proc/"$1"/task/*; do awk -v t="${t##*/}" '{print t ":" $14+$15}' "$t/stat" 2>/dev/null; done; }

# Full handshakes per wall second with --workers 1 and 2, edgecert NOT pinned to one CPU and the
# s_time processes not pinned either: terminator and load generators share every CPU (the backend
# nginx stays on $LOAD_CPU). Also the CPU of the two busiest threads (the workers: SO_REUSEPORT
# spreads the connections between their listeners).
x_hs_workers() {
  [ "$TARGET" = edgecert ] || { echo "hs_workers: only measured for edgecert" >&2; return 0; }
  local kind w all="0-$(( $(nproc) - 1 ))"
  for kind in ${WORKER_KINDS:-ecdsa rsa}; do
    for w in ${WORKER_COUNTS:-1 2}; do
      local rates="" cpus="" percpu="" notes="" split="" can
      can=$(canary)
      export EDGECERT_WORKERS=$w EDGECERT_CPUS=$all
      start_target "$kind"
      openssl s_time -connect "127.0.0.1:$TLS_PORT" -new -www /ok -time 2 >/dev/null 2>&1 || true
      for r in $(seq 1 "$REPEAT"); do
        local k0 k1 t0 t1 n=0 pids=() p c th0 th1 wall cpu f=$OUT/hs_${kind}_workers$w.r$r
        noise_start "$f.noise"
        th0=$(thread_ticks "$TARGET_PID"); k0=$(tticks); t0=$(now)
        for p in $(seq 1 "$HS_PROCS"); do
          openssl s_time -connect "127.0.0.1:$TLS_PORT" -new -www /ok -time "$DUR" >"$f.p$p" 2>&1 & pids+=($!)
        done
        wait "${pids[@]}" || true
        t1=$(now); k1=$(tticks); th1=$(thread_ticks "$TARGET_PID"); noise_stop
        for p in $(seq 1 "$HS_PROCS"); do
          c=$(awk '/connections in .* real seconds/{print $1; exit}' "$f.p$p")
          n=$((n + ${c:-0}))
        done
        tally "$n"
        # % of one CPU used by each of the two busiest threads over the run
        split=$(printf '%s\n%s\n' "$th0" "$th1" | awk -F: -v w="$wall" -v hz="$HZ" '
            seen[$1]++ {printf "%.0f\n", 100 * ($2 - b[$1]) / hz / w; next} {b[$1] = $2}' | sort -rn | head -2 | paste -sd/)
        notes+=" r$r:n=$n,wall=$(fmt "$wall" 2),busiest_threads_cpu%=$split,sys%=$(sysshare "$k0" "$k1"),$(nz "$f.noise")"
      done
      stop_target
      unset EDGECERT_WORKERS EDGECERT_CPUS
      emit "hs_${kind}_workers$w" "$(fmt "$(med_of $rates)")" "hs/s" "canary_rsa_sign/s=$can workers=$w cpus=$all term_cpu%=$(fmt "$(med_of $cpus)") hs_per_term_cpu_s=$(fmt "$(med_of $percpu)") runs=[$(for x in $rates; do printf '%s ' "$(fmt "$x")"; done)]$notes"
    done
  done
}
