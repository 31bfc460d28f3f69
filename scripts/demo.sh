#!/usr/bin/env bash
# README's first command: install what is needed, build, and run the embedded default
# (`edgecert run` in front of a demo backend, certificate from a local Pebble). Ctrl-C stops it;
# `scripts/demo.sh --check` (or EDGECERT_DEMO_EXIT=1) exits once the HTTPS check passed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/scripts/setup.sh" "$ROOT/build"
exec /usr/bin/python3 "$ROOT/scripts/demo.py" "$@"
