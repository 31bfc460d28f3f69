# bench-peers target adapter for edgecert (contract: ../shared/bench-peers/BASELINE.md, "Adding ours").
# Install: cp bench/tls/ours-target.sh "$PEERS/conf/tls/targets/ours.sh"; then
#   EDGECERT_BIN=/abs/path/to/edgecert ./run-tls.sh ours && python3 lib/report.py results
# One worker (the per-core figures must be comparable), no PROXY header (the backend is plain nginx).
target_start() {
  local dir="$RUN/ours-certs/default"
  mkdir -p "$dir"
  ln -sf "$CERT_CRT" "$dir/tls.crt"
  ln -sf "$CERT_KEY" "$dir/tls.key"
  taskset -c "$TERM_CPU" "${EDGECERT_BIN:?set EDGECERT_BIN}" terminator \
    --listen "127.0.0.1:$TLS_PORT" --http-listen off --upstream "127.0.0.1:$BACKEND_PORT" \
    --cert-dir "$RUN/ours-certs" --admin off --workers 1 --proxy-protocol none \
    --alpn http/1.1 --max-connections 100000 --idle-timeout 10m &
  TARGET_PID=$!
}
target_desc() { echo "edgecert $("${EDGECERT_BIN}" version | awk '{print $2}'): workers 1, L4 + PROXY none, ALPN http/1.1 (the bench backend is plain HTTP/1.1)"; }
