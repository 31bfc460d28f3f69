#!/usr/bin/env bash
# bench/tls/ktls-bulk.sh: issue 14's bulk goal ("≥ 1.5× HAProxy's MB per CPU-second, using kernel
# TLS with splice between sockets"), measured where kernel TLS runs. In ONE run, 1 MiB HTTPS GETs
# over keep-alive (TLS 1.3 AES-128-GCM and AES-256-GCM) through: edgecert --ktls on
# (edgecert-ktls), edgecert --ktls off (edgecert), HAProxy 2.6 (mode http; it has no kTLS), hitch
# (L4) and nginx 1.22 with `ssl_conf_command Options KTLS` (nginx-ktls). Per target: MB per
# terminator CPU-second (utime+stime of its process tree), and from a separate pass under
# `strace -f` the system calls by kind and the bytes copied between kernel and user space per MiB
# delivered; kTLS use is verified (/proc/net/tls_stat, `ss -ti`, edgecert's /metrics). The
# method is run-peers.sh's (same peers' configurations, backend and pinning: terminator on CPU 0,
# backend nginx and clients on CPU 1); the metric is ktls-metrics.sh's x_ktls_bulk.
#
#   EDGECERT_BIN=build-rel/edgecert bench/tls/ktls-bulk.sh
#
# On a kernel without kTLS (CONFIG_TLS off, as on this machine) it boots scripts/vm.sh's guest on
# Debian's kernel and runs itself there (`scripts/vm.sh run --cpus 2 -- bench/tls/ktls-bulk.sh`;
# EDGECERT_VM_ACCEL defaults to auto: TCG emulation where /dev/kvm cannot boot that kernel). Under
# TCG the guest's CPU figures are emulated (AES in the guest kernel and in OpenSSL included): their
# ratios are indicative only. The system-call and copy counts are exact either way.
# Knobs: DUR (s per wrk run, default 6), BULK_CONNS (wrk connections, 4), KTLS_SUITES ("aes128
#   aes256"), KTLS_ROUNDS (3: every target is measured that often; the table shows the median),
#   KTLS_STRACE_SUITES ("aes128": the record sizes, hence the system calls, do not depend on the
#   AES key size), KTLS_STRACE_N (downloads under strace, 16), KTLS_TARGETS (the first is the one
#   the ratio columns divide), KTLS_OUT (host folder for the results; default a new one in /tmp),
#   EDGECERT_ADMIN_PORT (24402), WORKDIR. Needs: hitch haproxy nginx wrk curl strace openssl.
set -euo pipefail
# Debian's tools first: a python3 shim earlier on PATH (pyenv) costs ~20 s per start in the
# emulated guest, where run-tls.sh starts Python several times per target.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
EDGECERT_BIN=$(realpath "${EDGECERT_BIN:-$ROOT/build/edgecert}")
export EDGECERT_BIN DUR=${DUR:-6} BULK_CONNS=${BULK_CONNS:-4} KTLS_SUITES=${KTLS_SUITES:-aes128 aes256} KTLS_ROUNDS=${KTLS_ROUNDS:-3}
export KTLS_STRACE_SUITES=${KTLS_STRACE_SUITES-aes128} KTLS_STRACE_N=${KTLS_STRACE_N:-16}
export KTLS_TARGETS=${KTLS_TARGETS:-edgecert-ktls edgecert haproxy hitch nginx-ktls}
export EDGECERT_ADMIN_PORT=${EDGECERT_ADMIN_PORT:-24402}
for tool in hitch haproxy nginx wrk curl strace openssl taskset ss python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y hitch haproxy nginx wrk curl strace)" >&2; exit 2; }
done
[ -x "$EDGECERT_BIN" ] || { echo "no edgecert binary at $EDGECERT_BIN (set EDGECERT_BIN)" >&2; exit 2; }

kernel_has_ktls() { grep -qw tls /proc/sys/net/ipv4/tcp_available_ulp 2>/dev/null || { modprobe tls 2>/dev/null && grep -qw tls /proc/sys/net/ipv4/tcp_available_ulp; }; }

if [ "${EDGECERT_IN_VM:-}" != 1 ] && ! kernel_has_ktls; then
  export KTLS_OUT=${KTLS_OUT:-$(mktemp -d /tmp/edgecert-ktls.XXXXXX)}
  mkdir -p "$KTLS_OUT"
  export EDGECERT_VM_ACCEL=${EDGECERT_VM_ACCEL:-auto}
  opts=(--cpus 2 --mem 2048 --share "$KTLS_OUT")
  # The guest sees the host's root read-only, but not its /tmp, /var/tmp, /run or /dev/shm.
  for d in "$ROOT" "$(dirname "$EDGECERT_BIN")"; do
    case $d/ in /tmp/* | /var/tmp/* | /run/* | /dev/shm/*) opts+=(--share "$d") ;; esac
  done
  for v in DUR BULK_CONNS KTLS_SUITES KTLS_ROUNDS KTLS_STRACE_SUITES KTLS_STRACE_N KTLS_TARGETS KTLS_OUT WORKDIR; do
    opts+=(--env "$v")
  done
  echo "ktls-bulk: this kernel has no kTLS; running in scripts/vm.sh's guest (EDGECERT_VM_ACCEL=$EDGECERT_VM_ACCEL), results in $KTLS_OUT" >&2
  cd "$ROOT"
  # The guest's CPU times include the time its vCPUs waited for a host CPU: record the host's load.
  echo "ktls-bulk: host $(uname -r), $(nproc) CPUs, load before [$(cut -d' ' -f1-3 /proc/loadavg)]" >&2
  rc=0
  scripts/vm.sh run "${opts[@]}" -- bench/tls/ktls-bulk.sh || rc=$?
  echo "ktls-bulk: host load after [$(cut -d' ' -f1-3 /proc/loadavg)]; results in $KTLS_OUT" >&2
  exit $rc
fi
kernel_has_ktls || { echo "this kernel has no kTLS (no tls in /proc/sys/net/ipv4/tcp_available_ulp)" >&2; exit 2; }
[ "$(nproc)" -ge 2 ] || { echo "needs 2 CPUs (terminator on CPU 0, clients and backend on CPU 1)" >&2; exit 2; }

W=${WORKDIR:-$(mktemp -d /tmp/edgecert-ktls.XXXXXX)}
. "$HERE/peers-setup.sh"
peers_copy "$W"
peers_certs
# Two more targets, adapters over the copy's own: edgecert with --ktls on, nginx with kTLS asked of
# OpenSSL (ktls-metrics.sh adds the directive to what nginx.sh renders).
cat >"$CONF/tls/targets/edgecert-ktls.sh" <<'EOF'
# written by ktls-bulk.sh: ours-target.sh with --ktls on
. "$CONF/tls/targets/edgecert.sh"
EDGECERT_KTLS=on
EOF
cat >"$CONF/tls/targets/nginx-ktls.sh" <<'EOF'
# written by ktls-bulk.sh: nginx.sh with `ssl_conf_command Options KTLS` (ktls-metrics.sh's render)
. "$CONF/tls/targets/nginx.sh"
BENCH_KTLS=1
eval "_nginx_desc() $(declare -f target_desc | tail -n +2)"
target_desc() { echo "$(_nginx_desc), ssl_conf_command Options KTLS"; }
EOF

read -r -a TARGETS <<<"$KTLS_TARGETS"
accel="native"
[ "${EDGECERT_IN_VM:-}" = 1 ] && accel="scripts/vm.sh guest, EDGECERT_VM_ACCEL=${EDGECERT_VM_ACCEL:-kvm}"
{
  echo "# $(date -u +%FT%TZ) kernel $(uname -r) ($accel; $(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)) cpus=$(nproc) load_before=[$(cut -d' ' -f1-3 /proc/loadavg)]"
  echo "# DUR=$DUR BULK_CONNS=$BULK_CONNS KTLS_SUITES=[$KTLS_SUITES] KTLS_ROUNDS=$KTLS_ROUNDS KTLS_STRACE_SUITES=[$KTLS_STRACE_SUITES] KTLS_STRACE_N=$KTLS_STRACE_N targets=[${TARGETS[*]}]"
  echo "# $(peers_versions); $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2); $(strace -V | head -1); gcm(aes) in the kernel: $(awk '/^name/ {n = $3} /^driver/ && n == "gcm(aes)" {print $3; exit}' /proc/crypto)"
  echo "# $(peers_build_line)"
} | tee "$W/header.txt"

# Rounds: every target once per round, both suites each time, the order of the targets and of
# the suites reversed on every other round, so that the host's drift (the guest's CPU times grow
# when its vCPUs wait for a host CPU) hits all targets alike; the table shows the median over the
# rounds. The strace pass runs in the first round only: its counts do not depend on timing.
failed=()
for ((r = 1; r <= KTLS_ROUNDS; r++)); do
  order=("${TARGETS[@]}")
  suites=$KTLS_SUITES
  if [ $((r % 2)) = 0 ]; then
    order=()
    for ((j = ${#TARGETS[@]} - 1; j >= 0; j--)); do order+=("${TARGETS[j]}"); done
    suites=$(tr ' ' '\n' <<<"$KTLS_SUITES" | tac | paste -sd' ')
  fi
  strace_suites=$KTLS_STRACE_SUITES
  [ "$r" = 1 ] || strace_suites=""
  for t in "${order[@]}"; do
    echo "== ktls_bulk $t, round $r of $KTLS_ROUNDS (load $(cut -d' ' -f1 /proc/loadavg))"
    if ! KTLS_ROUND=$r KTLS_SUITES=$suites KTLS_STRACE_SUITES=$strace_suites \
      "$PEERS/run-tls.sh" "$t" ktls_bulk >"$W/log.$t.r$r" 2>&1; then
      failed+=("$t/round$r")
      tail -5 "$W/log.$t.r$r"
    fi
    grep -E '^tls\.' "$W/log.$t.r$r" | cut -c1-240 || true
  done
done
echo "# load_after=[$(cut -d' ' -f1-3 /proc/loadavg)] $(date -u +%FT%TZ)" | tee -a "$W/header.txt"

echo
if [ "${EDGECERT_VM_ACCEL:-}" = tcg ] || grep -qi 'QEMU TCG' /proc/cpuinfo; then
  echo "CPU figures ([TCG]) were measured in a guest under TCG emulation: AES in the guest kernel and in OpenSSL is emulated, so CPU ratios are indicative only. System-call and copy counts are exact."
fi
python3 "$HERE/peers_table.py" "$RESULTS/tls" "${TARGETS[@]}" | tee "$W/table.md"
[ ${#failed[@]} = 0 ] || echo "FAILED: ${failed[*]} (see $W/log.* and $RESULTS/tls/*/)"
if [ -n "${KTLS_OUT:-${EDGECERT_VM_OUT:-}}" ]; then
  out=${KTLS_OUT:-$EDGECERT_VM_OUT}
  cp -r "$W/header.txt" "$W/table.md" "$W"/log.* "$RESULTS/tls" "$out/"
  echo "results: $out (header.txt, table.md, tls/*/summary.txt, strace traces)"
else
  echo "results: $W/results/tls/*/summary.txt"
fi
[ ${#failed[@]} = 0 ]
