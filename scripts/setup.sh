#!/usr/bin/env bash
# Installs everything edgecert needs to build and test on Debian 12 (idempotent), then configures
# and builds. Usage: scripts/setup.sh [BUILD_DIR] [extra cmake args...]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}; shift || true

PKGS=(
  # toolchain and libraries
  cmake ninja-build g++ pkg-config libssl-dev libcurl4-openssl-dev libcpprest-dev
  nlohmann-json3-dev libspdlog-dev libfmt-dev libgtest-dev libgmock-dev libyaml-cpp-dev libldns-dev
  # test and benchmark components (real ones, not mocks: see DESIGN.md)
  openssl curl iproute2 procps python3-pytest python3-cryptography python3-yaml python3-kubernetes
  python3-pyflakes  # lint_python (tests/CMakeLists.txt)
  pebble lego
  bind9  # dns-01: named for test_dns01.py; libldns-dev above is the RFC 2136 + TSIG wire format
  nghttp2-client testssl.sh  # h2load, TLS scanner: terminator integration tests and bench/tls
  nghttp2-server python3-requests  # an h2c upstream (nghttpd) and Python's requests: test_terminator_defaults.py
  chromium  # headless browser through the terminator (test_terminator_chromium.py)
  prometheus  # promtool check metrics (admin server exposition)
  clang libclang-rt-14-dev  # libFuzzer + ASan/UBSan: the fuzz smoke run of scripts/test.sh (scripts/fuzz.sh)
  qemu-system-x86 busybox-static  # the kTLS guest of scripts/vm.sh (Debian's kernel: vm.sh setup fetches it)
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -f "$BUILD/build.ninja" ]; then
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
fi
cmake --build "$BUILD" -j "$(nproc)"
