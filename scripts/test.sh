#!/usr/bin/env bash
# Installs what is needed, builds, and runs every test (unit + integration) with ctest.
# Usage: scripts/test.sh [ctest args...]   e.g. scripts/test.sh -L unit
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${EDGECERT_BUILD_DIR:-$ROOT/build}
"$ROOT/scripts/setup.sh" "$BUILD"
"$ROOT/scripts/check-layering.sh"
cd "$BUILD"
ctest --output-on-failure -j 2 --timeout 900 "$@"
