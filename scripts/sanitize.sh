#!/usr/bin/env bash
# Builds and runs the unit tests under ASan+UBSan, and the data-plane tests under TSan.
# Usage: scripts/sanitize.sh [address|thread|terminator-thread|ktls-thread|all]   (default all)
#   terminator-thread: the edgecert binary under TSan behind the terminator's integration tests
#   (real clients: curl, openssl, h2load, Chromium's defaults, Python ssl; hot swaps under load,
#   bulk transfers, the h2 check, floods of bad handshakes), so the
#   data plane's threads are checked under real traffic, not only in unit tests.
#   ktls-thread: the same TSan binary behind test_ktls.py inside scripts/vm.sh's guest (Debian's
#   kernel has kTLS, this machine's may not): the kernel record layer, splice and swaps during
#   kTLS bulk transfers. Skipped (status 0, one line) when no guest can run here.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
what=${1:-all}
"$ROOT/scripts/setup.sh" "$ROOT/build" >/dev/null
configure() {  # configure KIND BUILD_DIR: a Debug build with the sanitizer, once
  [ -f "$2/build.ninja" ] || cmake -S "$ROOT" -B "$2" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
      -DEDGECERT_SANITIZE="$1" >/dev/null
}
run() {  # run KIND BUILD_DIR CTEST_ARGS...
  local kind=$1 dir=$2; shift 2
  configure "$kind" "$dir"
  # Only the unit-test binaries: the integration tests drive the normal build.
  local targets
  targets=$(cd "$ROOT/tests/unit" && for d in */; do ls "$d"*.cpp >/dev/null 2>&1 && echo "unit_${d%/}"; done)
  # shellcheck disable=SC2086
  cmake --build "$dir" -j "$(nproc)" --target $targets
  (cd "$dir" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
     LSAN_OPTIONS=suppressions=$ROOT/tests/lsan.supp \
     TSAN_OPTIONS="halt_on_error=1 suppressions=$ROOT/tests/tsan.supp" ctest --output-on-failure -j 2 "$@")
}
terminator_tsan() {
  local dir=$ROOT/build-tsan
  configure thread "$dir"
  cmake --build "$dir" -j "$(nproc)" --target edgecert
  # halt_on_error: a report ends the terminator with exit code 66, which the tests' fixture
  # checks at stop (rc == 0), so a race fails the test that provoked it. testssl.sh is left out:
  # hundreds of handshakes under TSan's 5-15x slowdown, and no threading it does not also do; the flood tests assert RSS bounds that TSan's shadow memory breaks.
  (cd "$ROOT/tests/integration" && EDGECERT_BIN=$dir/edgecert EDGECERT_BUILD=$dir EDGECERT_SRC=$ROOT \
     TSAN_OPTIONS="halt_on_error=1 exitcode=66 suppressions=$ROOT/tests/tsan.supp" \
     /usr/bin/python3 -m pytest -q -p no:cacheprovider test_terminator.py test_terminator_defaults.py \
     -k "not testssl" "$@")
}
terminator_ktls_tsan() {
  local dir=$ROOT/build-tsan rc=0
  configure thread "$dir"
  cmake --build "$dir" -j "$(nproc)" --target edgecert
  # Emulated (TCG) where KVM cannot boot Debian's kernel: TSan's slowdown on top, still minutes.
  (cd "$ROOT" && EDGECERT_BIN=$dir/edgecert EDGECERT_BUILD=$dir EDGECERT_SRC=$ROOT \
     EDGECERT_VM_ACCEL=${EDGECERT_VM_ACCEL:-auto} \
     TSAN_OPTIONS="halt_on_error=1 exitcode=66 suppressions=$ROOT/tests/tsan.supp" \
     scripts/vm.sh run --env TSAN_OPTIONS -- /usr/bin/python3 -m pytest -q -p no:cacheprovider \
     tests/integration/test_ktls.py "$@") || rc=$?
  if [ "$rc" -eq 77 ]; then
    echo "sanitize: ktls-thread skipped: scripts/vm.sh cannot run a guest here"
    return 0
  fi
  return "$rc"
}
case $what in
  address) run address "$ROOT/build-asan" -L unit ;;
  thread) run thread "$ROOT/build-tsan" -L 'unit_(tls|proxy|platform|k8s|controller|store)' ;;
  terminator-thread) terminator_tsan ;;
  ktls-thread) terminator_ktls_tsan ;;
  all) run address "$ROOT/build-asan" -L unit
       run thread "$ROOT/build-tsan" -L unit
       terminator_tsan
       terminator_ktls_tsan ;;
  *) echo "usage: $0 [address|thread|terminator-thread|ktls-thread|all]" >&2; exit 2 ;;
esac
