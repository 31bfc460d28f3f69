#!/usr/bin/env bash
# libFuzzer targets (tests/fuzz, docs/fuzzing.md): clang + ASan + UBSan build in build-fuzz/.
#
#   scripts/fuzz.sh build [TARGET...]           build the targets (default: all)
#   scripts/fuzz.sh smoke [SECONDS]             each smoke target: replay its whole corpus, then
#                                               a fixed number of executions from a fixed seed
#                                               (~5 s each here), stopped after SECONDS (default
#                                               20) on a slow machine; new inputs are dropped
#   scripts/fuzz.sh run [SECONDS] [TARGET...]   fuzz each target SECONDS (default 600), ONE at a
#                                               time under nice; the corpus is then minimised:
#                                               seeds + the inputs needed for every edge reached;
#                                               figures go to build-fuzz/fuzz-runs.tsv
#   scripts/fuzz.sh minimise [TARGET...]        shrink a corpus to its seeds + one input per edge
#   scripts/fuzz.sh repro TARGET FILE...        run a target on saved inputs (a crash reproduces)
#
# Crashes are written to build-fuzz/artifacts/<target>-crash-*; exit status is non-zero.
# EDGECERT_FUZZ_BUILD_DIR overrides build-fuzz; EDGECERT_FUZZ_JOBS the build parallelism.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${EDGECERT_FUZZ_BUILD_DIR:-$ROOT/build-fuzz}
CORPUS=$ROOT/tests/data/fuzz-corpus
ARTIFACTS=$BUILD/artifacts
BIN=$BUILD/tests/fuzz

ALL=(http_head proxy_protocol tls_ext tls_client_hello cert_entry acme_json k8s_watch k8s_object kubeconfig
     dns_response dns_propagation yaml_config)
# The smoke run in scripts/test.sh: the targets whose libraries are cheap to build with clang.
# yaml_config links the whole application (controller, store, admin server): its corpus is
# replayed in the g++ build (ctest fuzz_corpus_yaml_config) and it is fuzzed by `run`.
SMOKE=(http_head proxy_protocol tls_ext tls_client_hello cert_entry acme_json k8s_watch k8s_object kubeconfig
       dns_response dns_propagation)

# Executions per smoke target: about five seconds each on the 2-CPU machine (docs/fuzzing.md).
smoke_runs() {
  case $1 in
    http_head) echo 200000 ;; proxy_protocol) echo 100000 ;; tls_ext) echo 300000 ;;
    tls_client_hello) echo 20000 ;; cert_entry) echo 15000 ;; acme_json) echo 20000 ;;
    k8s_watch) echo 3000 ;; k8s_object) echo 30000 ;; kubeconfig) echo 10000 ;;
    dns_response) echo 50000 ;; dns_propagation) echo 20000 ;; *) echo 10000 ;;
  esac
}

configure() {
  [ -f "$BUILD/build.ninja" ] && return
  for p in clang libclang-rt-14-dev; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || {
      echo "fuzz: installing $p"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p" >/dev/null
    }
  done
  CC=clang CXX=clang++ cmake -S "$ROOT" -B "$BUILD" -G Ninja -DEDGECERT_FUZZ=ON -DEDGECERT_TESTS=OFF \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE=-O1 -DCMAKE_C_FLAGS_RELEASE=-O1 >/dev/null
}

build() {  # build TARGET...
  configure
  local t=() x
  for x in "$@"; do t+=("fuzz_$x"); done
  cmake --build "$BUILD" -j "${EDGECERT_FUZZ_JOBS:-$(nproc)}" --target "${t[@]}"
}

flags() {  # flags TARGET: the per-target libFuzzer options
  local f=(-timeout=20 -rss_limit_mb=2048 -print_final_stats=1 "-artifact_prefix=$ARTIFACTS/$1-")
  [ -f "$ROOT/tests/fuzz/dict/$1.dict" ] && f+=("-dict=$ROOT/tests/fuzz/dict/$1.dict")
  printf '%s\n' "${f[@]}"
}

# Rebuilds tests/data/fuzz-corpus/TARGET from its named seeds (recorded or written by hand: any file
# whose name is not a 40-hex SHA-1) plus the fewest generated inputs, from the corpus and the
# extra directories given, that reach every coverage edge (libFuzzer's merge, edges only:
# -use_counters=0, so hit-count variations do not each keep a file).
minimise() {  # minimise TARGET [EXTRA_DIR...]
  local t=$1 min f
  shift
  min=$(mktemp -d)
  for f in "$CORPUS/$t"/*; do
    [ -f "$f" ] || continue
    [[ $(basename "$f") =~ ^[0-9a-f]{40}$ ]] || cp "$f" "$min/"
  done
  "$BIN/fuzz_$t" -merge=1 -use_counters=0 $(flags "$t" | grep -v dict) "$min" "$CORPUS/$t" "$@" || return 1
  rm -rf "${CORPUS:?}/$t"
  mv "$min" "$CORPUS/$t"
  chmod 755 "$CORPUS/$t"
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

cmd=${1:-}
shift || true
case $cmd in
  build)
    [ $# -gt 0 ] || set -- "${ALL[@]}"
    build "$@"
    ;;
  smoke)
    secs=${1:-20}
    build "${SMOKE[@]}"
    mkdir -p "$ARTIFACTS"
    for t in "${SMOKE[@]}"; do
      scratch=$(mktemp -d)
      mapfile -t f < <(flags "$t")
      start=$(date +%s%N)
      # A fixed seed and a fixed number of executions: the smoke run of the test command explores
      # the same inputs on every machine and every run, so it passes or fails the same way for a
      # given commit and a failure reproduces (a time limit alone made a slower or faster CI
      # machine reach other inputs). The time cap only cuts that same sequence short on a machine
      # far slower than this one. The long runs use random seeds.
      if ! "$BIN/fuzz_$t" "${f[@]}" -seed=1 -runs="$(smoke_runs "$t")" -max_total_time="$secs" "$scratch" "$CORPUS/$t" >"$BUILD/smoke-$t.log" 2>&1; then
        tail -40 "$BUILD/smoke-$t.log"
        echo "fuzz smoke: $t FAILED (log: $BUILD/smoke-$t.log, input: $ARTIFACTS/$t-*)"
        rm -rf "$scratch"
        exit 1
      fi
      rm -rf "$scratch"
      n=$(find "$CORPUS/$t" -type f | wc -l)
      line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$BUILD/smoke-$t.log" | tail -1 || true)
      ms=$((($(date +%s%N) - start) / 1000000))
      printf 'fuzz smoke: %-18s %3d corpus files replayed, %d.%01ds, %s\n' "$t" "$n" $((ms / 1000)) \
        $((ms % 1000 / 100)) "${line:-}"
    done
    ;;
  run)
    secs=${1:-600}
    shift || true
    [ $# -gt 0 ] || set -- "${ALL[@]}"
    build "$@"
    mkdir -p "$ARTIFACTS"
    [ -f "$BUILD/fuzz-runs.tsv" ] || printf 'date\ttarget\tseconds\texecs\texec_per_s\tcov\tft\tcorpus_change\tresult\n' >"$BUILD/fuzz-runs.tsv"
    status=0
    for t in "$@"; do
      new=$(mktemp -d)
      mkdir -p "$CORPUS/$t"
      mapfile -t f < <(flags "$t")
      log=$BUILD/run-$t.log
      echo "fuzz run: $t for ${secs}s (log: $log)"
      result=ok
      t0=$(date +%s)
      nice -n 10 "$BIN/fuzz_$t" "${f[@]}" -max_total_time="$secs" "$new" "$CORPUS/$t" >"$log" 2>&1 || result=CRASH
      took=$(($(date +%s) - t0))
      before=$(find "$CORPUS/$t" -type f | wc -l)
      minimise "$t" "$new" >>"$log" 2>&1
      after=$(find "$CORPUS/$t" -type f | wc -l)
      rm -rf "$new"
      # The fuzzing run's final line (the merge below prints its own DONE later), else its last.
      done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | head -1 || true)
      [ -n "$done_line" ] || done_line=$(grep -E '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)' "$log" | tail -1 || true)
      cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$done_line")
      ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$done_line")
      execs=$(sed -nE 's/^stat::number_of_executed_units: ([0-9]+)/\1/p' "$log" | head -1)
      eps=$(sed -nE 's/^stat::average_exec_per_sec: +([0-9]+)/\1/p' "$log" | head -1)
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$t" "$took" "${execs:-?}" "${eps:-?}" \
        "${cov:-?}" "${ft:-?}" "$((after - before))" "$result" | tee -a "$BUILD/fuzz-runs.tsv"
      if [ $result != ok ]; then
        grep -E 'ERROR|FUZZ_CHECK|runtime error|SUMMARY' "$log" | head -5
        status=1
      fi
    done
    exit $status
    ;;
  minimise)
    [ $# -gt 0 ] || set -- "${ALL[@]}"
    build "$@"
    for t in "$@"; do minimise "$t" >"$BUILD/minimise-$t.log" 2>&1; echo "$t: $(find "$CORPUS/$t" -type f | wc -l) files"; done
    ;;
  repro)
    t=${1:?target}
    shift
    build "$t"
    "$BIN/fuzz_$t" -runs=0 "$@"
    ;;
  *)
    sed -n '2,14p' "$0"
    exit 2
    ;;
esac
