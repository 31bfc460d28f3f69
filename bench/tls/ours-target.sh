# bench-peers target adapter for edgecert (contract: ../shared/bench-peers/BASELINE.md, "Adding ours").
# Install: cp bench/tls/ours-target.sh "$PEERS/conf/tls/targets/ours.sh"; then
#   EDGECERT_BIN=/abs/path/to/edgecert ./run-tls.sh ours && python3 lib/report.py results
# One worker pinned to $TERM_CPU (the per-core figures must be comparable), no PROXY header (the
# backend is plain nginx), ALPN http/1.1 (the backend's main port speaks HTTP/1.1 only).
# Knobs, used by bench/tls/peer-metrics.sh: EDGECERT_WORKERS and EDGECERT_CPUS (hs_workers);
# BENCH_H2=1 (h2): ALPN h2,http/1.1 and the h2 connections forwarded as they are to the backend's
# HTTP/2-only port $H2C_BACKEND_PORT (--upstream-h2: nginx 1.22's `listen ... http2` on a plain
# port speaks only HTTP/2 with prior knowledge), the HTTP/1.1 ones to $BACKEND_PORT. Used by
# ktls-bulk.sh: EDGECERT_KTLS (--ktls off|auto|on; unset: the default, off) and
# EDGECERT_ADMIN_PORT (the admin server on 127.0.0.1:PORT for /metrics; unset: --admin off).
target_start() {
  local dir="$RUN/ours-certs/default" proto=(--alpn http/1.1) admin=off ktls=()
  [ "${BENCH_H2:-0}" = 1 ] && proto=(--alpn h2,http/1.1 --upstream-h2 "127.0.0.1:${H2C_BACKEND_PORT:?}")
  [ -n "${EDGECERT_ADMIN_PORT:-}" ] && admin=127.0.0.1:$EDGECERT_ADMIN_PORT
  [ -n "${EDGECERT_KTLS:-}" ] && ktls=(--ktls "$EDGECERT_KTLS")
  mkdir -p "$dir"
  ln -sf "$CERT_CRT" "$dir/tls.crt"
  ln -sf "$CERT_KEY" "$dir/tls.key"
  taskset -c "${EDGECERT_CPUS:-$TERM_CPU}" "${EDGECERT_BIN:?set EDGECERT_BIN}" terminator \
    --listen "127.0.0.1:$TLS_PORT" --http-listen off --upstream "127.0.0.1:$BACKEND_PORT" \
    --cert-dir "$RUN/ours-certs" --admin "$admin" --workers "${EDGECERT_WORKERS:-1}" --proxy-protocol none \
    "${proto[@]}" "${ktls[@]}" --max-connections 100000 --idle-timeout 10m &
  TARGET_PID=$!
}
target_desc() {
  local alpn="ALPN http/1.1 (the bench backend is plain HTTP/1.1)"
  [ "${BENCH_H2:-0}" = 1 ] && alpn="ALPN h2,http/1.1, h2 to the backend's HTTP/2-only port"
  echo "edgecert $("${EDGECERT_BIN}" version | awk '{print $2}'): workers ${EDGECERT_WORKERS:-1}, L4 + PROXY none, $alpn, --ktls ${EDGECERT_KTLS:-off}"
}
