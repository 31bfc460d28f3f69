#!/usr/bin/env bash
# README's first command: install what is needed, build, and run the embedded default.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/scripts/setup.sh" "$ROOT/build"
exec /usr/bin/python3 "$ROOT/scripts/demo.py"
