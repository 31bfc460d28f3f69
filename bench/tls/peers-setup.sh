# shellcheck shell=bash
# bench/tls/peers-setup.sh: sourced by run-peers.sh and ktls-bulk.sh. What both need before they run
# ../shared/bench-peers/run-tls.sh for several terminators: a PRIVATE copy of bench-peers (it is
# shared and must not be written to) with edgecert's adapter and our metric files added, the same
# certificates and backend docroot as bench-peers/setup.sh makes, and the run's header lines.
# The caller sets HERE (bench/tls) and EDGECERT_BIN (absolute).
#
#   peers_copy W      copies bench-peers to W/peers; ours-target.sh becomes target "edgecert" and
#                     every bench/tls/*-metrics.sh is sourced by the copy's run-tls.sh, which runs
#                     x_M for a metric M it does not know; exports PEERS CONF STATE RESULTS CERTS WWW
#   peers_certs       ECDSA P-256 and RSA-2048 certificates, /ok (3 bytes) and /1m (1 MiB)
#   peers_versions    one line: the versions of OpenSSL and the peers
#   peers_build_line  one line: edgecert's version and build time, and bench/tls's commit

peers_src() { # the bench-peers folder: PEERS_SRC, else ../shared/bench-peers beside the main worktree
  local src=${PEERS_SRC:-$HERE/../../../shared/bench-peers}
  # From a linked worktree (/work/wt/NAME), shared/ sits beside the main worktree.
  [ -d "$src" ] || src=$(dirname "$(git -c safe.directory='*' -C "$HERE" worktree list --porcelain | awk '/^worktree /{print $2; exit}')")/shared/bench-peers
  [ -d "$src" ] || { echo "no bench-peers folder at $src (set PEERS_SRC)" >&2; return 1; }
  echo "$src"
}

peers_copy() {
  local w=$1 src f
  src=$(peers_src) || return 1
  mkdir -p "$w"
  cp -r "$src/." "$w/peers"
  chmod -R u+w "$w/peers"
  # The adapter offers only http/1.1: the bench backend is plain HTTP/1.1 nginx and edgecert is
  # L4, so h2 (its default ALPN) would make curl's readiness probe in run-tls.sh speak h2 to nginx.
  cp "$HERE/ours-target.sh" "$w/peers/conf/tls/targets/edgecert.sh"
  for f in "$HERE"/*-metrics.sh; do cp "$f" "$w/peers/conf/tls/"; done
  # The copy's run-tls.sh sources the metric files before its metric loop and runs x_M for a
  # metric M it does not know; its backend gets an HTTP/2-only (prior knowledge) server on
  # H2C_BACKEND_PORT (peer-metrics.sh's h2 metric).
  python3 - "$w/peers" <<'EOF' || return 1
import sys
root = sys.argv[1]
def patch(path, old, new):
    s = open(path).read()
    if s.count(old) != 1:
        sys.exit(f"peers-setup.sh: {path} changed upstream, cannot add our metrics (looked for {old!r})")
    open(path, "w").write(s.replace(old, new))
rt = f"{root}/run-tls.sh"
patch(rt, "\nfor m in $METRICS; do\n",
      '\nfor f in "$CONF"/tls/*-metrics.sh; do . "$f"; done\nfor m in $METRICS; do\n')
patch(rt, '    *) echo "unknown metric $m" >&2; exit 2 ;;',
      '    *) if declare -F "x_$m" >/dev/null; then "x_$m"; else echo "unknown metric $m" >&2; exit 2; fi ;;')
be = f"{root}/conf/tls/backend-nginx.conf.tmpl"
patch(be, "    root @WWW@;\n  }\n}",
      "    root @WWW@;\n  }\n"
      "  server {  # HTTP/2 with prior knowledge only (nginx < 1.25.1), for the h2 metric\n"
      "    listen 127.0.0.1:@H2C_BACKEND_PORT@ http2 backlog=8192;\n"
      "    root @WWW@;\n  }\n}")
EOF
  export PEERS=$w/peers CONF=$w/peers/conf STATE=$w/state RESULTS=$w/results CERTS=$w/certs WWW=$w/state/www
  export EDGECERT_BIN H2C_BACKEND_PORT=${H2C_BACKEND_PORT:-24081}
  mkdir -p "$STATE" "$RESULTS" "$CERTS" "$WWW"
  rm -rf "$PEERS/results" # never reuse the shared copy's old figures
}

# Certificates and docroot exactly as bench-peers/setup.sh makes them (its apt/version part is skipped).
peers_certs() {
  local san='subjectAltName=DNS:localhost,DNS:bench.test,IP:127.0.0.1' k
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 -subj /CN=bench.test \
    -addext "$san" -keyout "$CERTS/tls-ecdsa.key" -out "$CERTS/tls-ecdsa.crt" 2>/dev/null
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=bench.test \
    -addext "$san" -keyout "$CERTS/tls-rsa.key" -out "$CERTS/tls-rsa.crt" 2>/dev/null
  for k in ecdsa rsa; do cat "$CERTS/tls-$k.crt" "$CERTS/tls-$k.key" >"$CERTS/tls-$k.pem"; done
  # hitch and nginx workers drop to nobody
  chmod 755 "$(dirname "$STATE")" "$STATE"
  chmod 644 "$CERTS"/*
  chmod 755 "$CERTS"
  printf 'ok\n' >"$WWW/ok"
  head -c 1048576 /dev/urandom >"$WWW/1m"
  chmod -R a+rX "$STATE"
}

peers_versions() {
  echo "$(openssl version); $(haproxy -v | head -1); $(hitch --version 2>&1); $(nginx -v 2>&1)"
}

peers_build_line() {
  # safe.directory: in scripts/vm.sh's guest the checkout belongs to another user than root.
  local g=(git -c safe.directory='*' -C "$HERE")
  echo "$("$EDGECERT_BIN" version 2>&1 | head -1) ($EDGECERT_BIN, built $(date -u -r "$EDGECERT_BIN" +%FT%TZ)); bench/tls at $("${g[@]}" rev-parse --short HEAD 2>/dev/null)$("${g[@]}" diff --quiet HEAD -- . 2>/dev/null || echo +changes)"
}
