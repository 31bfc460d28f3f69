#!/usr/bin/env bash
# Installs what is needed, builds, and runs every test (unit + integration) with ctest.
# Usage: scripts/test.sh [ctest args...]   e.g. scripts/test.sh -L unit
# Without arguments (the whole suite, what CI runs) it also runs the fuzz smoke run first: each
# libFuzzer target whose libraries are cheap to build with clang replays its committed corpus and
# runs a fixed number of executions from a fixed seed (~5 s each; at most
# EDGECERT_FUZZ_SMOKE_SECONDS, 20, on a slow machine) (scripts/fuzz.sh smoke, docs/fuzzing.md);
# ctest's fuzz_corpus_* tests replay every target's corpus in the normal build.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${EDGECERT_BUILD_DIR:-$ROOT/build}
"$ROOT/scripts/setup.sh" "$BUILD"
"$ROOT/scripts/check-layering.sh"
if [ $# -eq 0 ]; then
  "$ROOT/scripts/fuzz.sh" smoke "${EDGECERT_FUZZ_SMOKE_SECONDS:-20}"
fi
cd "$BUILD"
# Three jobs on two cores: most integration tests wait on timers, CAs and API servers; the few that
# keep the CPUs busy take two slots (PROCESSORS in tests/CMakeLists.txt). EDGECERT_TEST_JOBS overrides.
ctest --output-on-failure -j "${EDGECERT_TEST_JOBS:-3}" --timeout 900 "$@"
