#!/usr/bin/env bash
# Installs what loom needs, configures, builds and runs every test suite.
# Exits non-zero on any failure.
#
#   tools/test.sh [MESON TEST ARGS]   the suites (build/), then the install
#                                     check (tools/test_install.sh) and, when
#                                     clang with libFuzzer is present, a short
#                                     fuzz run (tools/fuzz.sh, 60 s a harness)
#   tools/test.sh --sanitize [ARGS]   the suites built with ASan + UBSan
#                                     (build-san/), leaks checked at exit
#   tools/test.sh --sanitize --quick  the same without the dashboard and
#                                     without the long suites that only
#                                     repeat what the others reach (CI's
#                                     pass: about half the time)
#
# Environment: LOOM_BUILD_DIR (build), LOOM_SAN_BUILD_DIR (build-san),
# LOOM_SANITIZE_SKIP (the suites --quick leaves out, by name),
# LOOM_FUZZ_SECONDS (60 a harness; 0 skips the fuzz step), LOOM_TEST_INSTALL
# (1; 0 skips the install check). Extra arguments go to meson test (suite
# names select suites); with any, the install and fuzz steps are skipped.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

sanitize=0
quick=0
if [ "${1:-}" = "--sanitize" ]; then
  sanitize=1
  shift
  if [ "${1:-}" = "--quick" ]; then
    quick=1
    shift
  fi
fi
# What --quick leaves out under ASan: op_matrix (every op, dtype and
# device: 112 s on 2 loaded cores, where ops, grad, conv and seq reach the
# same kernels), bench (timing loops), device_check (it packs and runs
# release binaries), and the dashboard, whose two test files take about
# 4 min of CPU each to compile with the sanitizers. A quiet 2-core run of
# the rest (fusion, cnn and seq_models included) takes about 9 minutes.
quick_skip=${LOOM_SANITIZE_SKIP-op_matrix bench device_check}

bash tools/bootstrap.sh

t_start=$(date +%s)
setup_args=(--buildtype=debugoptimized)
if [ $sanitize -eq 1 ]; then
  build=${LOOM_SAN_BUILD_DIR:-build-san}
  # b_lundef=false: libloom.so leaves the sanitizer runtime's symbols to the
  # executable, as meson requires for b_sanitize with shared libraries.
  setup_args+=(-Db_sanitize=address,undefined -Db_lundef=false)
  if [ $quick -eq 1 ]; then
    setup_args+=(-Ddashboard=disabled)
  else
    setup_args+=(-Ddashboard=auto)
  fi
else
  build=${LOOM_BUILD_DIR:-build}
fi
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" "${setup_args[@]}"
else
  meson setup --reconfigure "$build" "${setup_args[@]}" >/dev/null
fi
ninja -C "$build"

test_args=(--print-errorlogs --num-processes 1)
if [ $sanitize -eq 1 ]; then
  # The drivers are unloaded (dlclose) before LeakSanitizer looks at exit,
  # leaving their leaks with nameless stacks: keep_loaded.so, built without
  # sanitizers, makes dlclose a no-op so lsan.supp can name them by library.
  # verify_asan_link_order=0: it is preloaded ahead of the ASan runtime (it
  # intercepts nothing ASan does). The slow unwinder (fast_unwind_on_malloc=0)
  # would name more frames but deadlocks inside LLVM's JIT (libgcc's
  # unwinder lock): keep the default frame-pointer unwinder.
  cc -shared -fPIC -O2 -o "$build/keep_loaded.so" tools/sanitize/keep_loaded.c
  export LD_PRELOAD="$here/$build/keep_loaded.so${LD_PRELOAD:+:$LD_PRELOAD}"
  export ASAN_OPTIONS="detect_leaks=1:verify_asan_link_order=0:halt_on_error=1:abort_on_error=0:print_summary=1"
  export LSAN_OPTIONS="suppressions=$here/tools/sanitize/lsan.supp:print_suppressions=1"
  export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:print_summary=1"
  # about 3x slower than the plain build (the Vulkan suite, with the
  # validation layer, most: 42 s -> 190 s)
  test_args+=(--timeout-multiplier 3)
  if [ $quick -eq 1 ] && [ $# -eq 0 ]; then
    names=()
    for t in $(meson test -C "$build" --no-rebuild --list 2>/dev/null); do
      case " $quick_skip " in
        *" $t "*) echo "tools/test.sh --sanitize --quick: skipping $t" ;;
        *) names+=("$t") ;;
      esac
    done
    set -- "${names[@]}"
  fi
fi

# Check forks each test; the summaries below are Check's own lines.
set +e
meson test -C "$build" "${test_args[@]}" "$@"
rc=$?
set -e
echo
echo "== Check summaries =="
grep -E '^[0-9]+%: Checks: ' "$build/meson-logs/testlog.txt" || true
if [ $rc -ne 0 ]; then
  echo "tools/test.sh: FAILED (meson test exit $rc)"
  exit $rc
fi
t_suites=$(date +%s)
echo "tools/test.sh: the suites took $((t_suites - t_start)) s (build included)"

if [ $sanitize -eq 1 ]; then
  if [ $quick -eq 1 ]; then
    echo "tools/test.sh --sanitize --quick: the suites run passed under ASan + UBSan, no leaks"
  else
    echo "tools/test.sh --sanitize: all suites passed under ASan + UBSan, no leaks"
  fi
  exit 0
fi

if [ $# -eq 0 ] && [ "${LOOM_TEST_INSTALL:-1}" != 0 ]; then
  t0=$(date +%s)
  bash tools/test_install.sh
  echo "tools/test.sh: the install check took $(( $(date +%s) - t0 )) s"
fi

fuzz_seconds=${LOOM_FUZZ_SECONDS:-60}
if [ $# -eq 0 ] && [ "$fuzz_seconds" != 0 ]; then
  if bash tools/fuzz.sh --check-compiler; then
    t0=$(date +%s)
    bash tools/fuzz.sh "$fuzz_seconds"
    echo "tools/test.sh: the fuzz step took $(( $(date +%s) - t0 )) s"
  else
    echo "tools/test.sh: no clang with libFuzzer (Debian: clang-14 libclang-rt-14-dev); fuzz step skipped"
  fi
fi
echo "tools/test.sh: all suites passed"
