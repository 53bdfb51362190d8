#!/usr/bin/env bash
# Builds loom's libFuzzer harnesses (tests/fuzz) with clang, ASan and UBSan
# in their own build folder and runs each for a bounded time.
#
#   tools/fuzz.sh [SECONDS] [HARNESS...]  each harness for SECONDS (default
#                                         60); all of them unless named
#   tools/fuzz.sh --make-corpus           rewrites the seed corpora in
#                                         tests/fuzz/corpus/ (committed)
#   tools/fuzz.sh --check-compiler        exit 0 if clang can link libFuzzer
#
# Harnesses: safetensors idx model_config architecture checkpoint, and onnx
# where the build has the ONNX importer.
# The seeds (tests/fuzz/corpus/<harness>/: valid files, and regress-* inputs
# of defects found and fixed) are read, never written: what a
# run finds goes to $LOOM_FUZZ_BUILD_DIR/corpus/<harness>/ (kept between
# runs, so later runs start further on). A crash, leak, timeout or
# out-of-memory leaves its input in $LOOM_FUZZ_BUILD_DIR/crashes/<harness>/
# and makes the script exit non-zero; reproduce it with
#   build-fuzz/tests/fuzz/fuzz_<harness> build-fuzz/crashes/<harness>/crash-...
# Each run's figures (executions, coverage, corpus) are printed at the end
# and kept in $LOOM_FUZZ_BUILD_DIR/fuzz-summary.txt.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

build=${LOOM_FUZZ_BUILD_DIR:-build-fuzz}
clang=${LOOM_FUZZ_CC:-clang}
all=(safetensors idx model_config architecture checkpoint)

check_compiler() {
  command -v "$clang" >/dev/null 2>&1 || return 1
  local d
  d=$(mktemp -d)
  printf '#include <stdint.h>\n#include <stddef.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' >"$d/t.c"
  local ok=0
  "$clang" -fsanitize=fuzzer,address,undefined "$d/t.c" -o "$d/t" >/dev/null 2>&1 || ok=1
  rm -rf "$d"
  return $ok
}

if [ "${1:-}" = "--check-compiler" ]; then
  check_compiler
  exit $?
fi
if ! check_compiler; then
  echo "tools/fuzz.sh: $clang cannot link libFuzzer binaries (Debian: apt-get install clang-14 libclang-rt-14-dev)" >&2
  exit 2
fi

# Only the CPU backend: the harnesses run there, and the build stays short.
if [ ! -f "$build/build.ninja" ]; then
  CC="$clang" meson setup "$build" --buildtype=debugoptimized -Dfuzz=true \
    -Db_sanitize=address,undefined -Db_lundef=false \
    -Dvulkan=disabled -Dopencl=disabled -Ddashboard=disabled >/dev/null
fi
# the ONNX importer's harness where the build has the importer (the
# build file first regenerated if meson's files changed)
ninja -C "$build" build.ninja >/dev/null
grep -q 'tests/fuzz/fuzz_onnx:' "$build/build.ninja" && all+=(onnx)
targets=()
for h in "${all[@]}"; do targets+=("tests/fuzz/fuzz_$h"); done
ninja -C "$build" "${targets[@]}" tests/fuzz/fuzz_make_corpus >/dev/null

export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"

if [ "${1:-}" = "--make-corpus" ]; then
  # the seeds only: regress-* inputs (a defect's input, kept once fixed)
  # stay, and so do the ONNX seeds (models loom export wrote)
  mkdir -p tests/fuzz/corpus
  find tests/fuzz/corpus -type f ! -name 'regress-*' ! -path 'tests/fuzz/corpus/onnx/*' -delete
  "$build/tests/fuzz/fuzz_make_corpus" tests/fuzz/corpus
  exit 0
fi

seconds=60
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then
  seconds=$1
  shift
fi
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=("${all[@]}")

summary="$build/fuzz-summary.txt"
: >"$summary"
failed=()
for h in "${harnesses[@]}"; do
  exe="$build/tests/fuzz/fuzz_$h"
  if [ ! -x "$exe" ]; then
    echo "tools/fuzz.sh: no harness '$h' (have: ${all[*]})" >&2
    exit 2
  fi
  work="$build/corpus/$h"
  crashes="$build/crashes/$h"
  mkdir -p "$work" "$crashes"
  log="$build/fuzz-$h.log"
  args=(-max_total_time="$seconds" -timeout=60 -rss_limit_mb=3072 -print_final_stats=1
        -artifact_prefix="$crashes/")
  case $h in
    safetensors | checkpoint | onnx) args+=(-max_len=16384) ;;
    *) args+=(-max_len=4096) ;;
  esac
  [ -f "tests/fuzz/$h.dict" ] && args+=(-dict="tests/fuzz/$h.dict")
  echo "== fuzz_$h: $seconds s =="
  set +e
  "$exe" "${args[@]}" "$work" "tests/fuzz/corpus/$h" >"$log" 2>&1
  rc=$?
  set -e
  # the last status line: "#N DONE cov: C ft: F corp: K/B ..." (or the last
  # "#N ..." line before a crash)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  execs=$(grep -E '^stat::number_of_executed_units:' "$log" | awk '{print $2}' || true)
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
  corp=$(sed -nE 's/.* corp: ([0-9]+\/[0-9]+[a-zA-Z]*).*/\1/p' <<<"$last")
  line="fuzz_$h: ${seconds}s execs=${execs:-?} cov=${cov:-?} ft=${ft:-?} corpus=${corp:-?} rc=$rc"
  echo "$line" | tee -a "$summary"
  if [ $rc -ne 0 ]; then
    failed+=("$h")
    grep -E 'ERROR|runtime error|SUMMARY|Test unit written|allocator' "$log" | head -20 || true
    echo "   log: $log; inputs: $crashes/"
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "tools/fuzz.sh: FAILED: ${failed[*]} (inputs kept under $build/crashes/)"
  exit 1
fi
echo "tools/fuzz.sh: no crash in ${#harnesses[@]} harness(es), $seconds s each"
