#!/usr/bin/env bash
# Builds and runs the unit tests under ASan+UBSan, and the data-plane tests under TSan.
# Usage: scripts/sanitize.sh [address|thread|all]   (default all)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
what=${1:-all}
"$ROOT/scripts/setup.sh" "$ROOT/build" >/dev/null
run() {  # run KIND BUILD_DIR CTEST_ARGS...
  local kind=$1 dir=$2; shift 2
  [ -f "$dir/build.ninja" ] || cmake -S "$ROOT" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
      -DEDGECERT_SANITIZE="$kind" >/dev/null
  # Only the unit-test binaries: the integration tests drive the normal build.
  local targets
  targets=$(cd "$ROOT/tests/unit" && for d in */; do ls "$d"*.cpp >/dev/null 2>&1 && echo "unit_${d%/}"; done)
  # shellcheck disable=SC2086
  cmake --build "$dir" -j "$(nproc)" --target $targets
  (cd "$dir" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
     LSAN_OPTIONS=suppressions=$ROOT/tests/lsan.supp \
     TSAN_OPTIONS="halt_on_error=1 suppressions=$ROOT/tests/tsan.supp" ctest --output-on-failure -j 2 "$@")
}
case $what in
  address) run address "$ROOT/build-asan" -L unit ;;
  thread) run thread "$ROOT/build-tsan" -L 'unit_(tls|proxy|platform|k8s|controller|store)' ;;
  all) run address "$ROOT/build-asan" -L unit
       run thread "$ROOT/build-tsan" -L unit ;;
  *) echo "usage: $0 [address|thread|all]" >&2; exit 2 ;;
esac
