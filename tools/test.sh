#!/usr/bin/env bash
# Installs what loom needs, configures, builds and runs every test suite.
# Exits non-zero on any failure.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

bash tools/bootstrap.sh

build=${LOOM_BUILD_DIR:-build}
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" --buildtype=debugoptimized
else
  meson setup --reconfigure "$build" >/dev/null
fi
ninja -C "$build"

# Check forks each test; the summaries below are Check's own lines.
set +e
meson test -C "$build" --print-errorlogs --num-processes 1 "$@"
rc=$?
set -e
echo
echo "== Check summaries =="
for log in "$build"/meson-logs/testlog.txt; do
  grep -E '^[0-9]+%: Checks: ' "$log" || true
done
if [ $rc -ne 0 ]; then
  echo "tools/test.sh: FAILED (meson test exit $rc)"
  exit $rc
fi
echo "tools/test.sh: all suites passed"
