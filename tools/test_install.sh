#!/usr/bin/env bash
# Follows the README's "Using loom from C" steps to a temporary non-system
# prefix: configure with --prefix, build, install, then build the README's
# C example against the installed pkg-config files, shared and static, and
# run both (they must print the example's three probabilities). Exits
# non-zero on any failure.
#
#   tools/test_install.sh
#
# The install build has its own folder (default build-install, kept so a
# later run is incremental); the prefix is new each run and removed after.
# LOOM_DEVICE=cpu keeps the run short (the example opens "auto").
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

build=${LOOM_INSTALL_BUILD_DIR:-build-install}
work=$(mktemp -d /tmp/loom-install-XXXXXX)
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"

fail() {
  echo "tools/test_install.sh: FAILED: $*" >&2
  exit 1
}

# The example, taken from the README so that what is tested is what a
# reader copies.
python3 - "$here/README.md" "$work/app.c" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
blocks = re.findall(r"```c\n(.*?)```", text, re.S)
if not blocks:
    sys.exit("README.md has no ```c block")
open(sys.argv[2], "w").write(blocks[0])
EOF

# The README's steps, with the temporary prefix.
if [ -f "$build/build.ninja" ]; then
  meson configure "$build" -Dprefix="$prefix" -Dlibdir=lib -Dtests=false >/dev/null
else
  # the suites are not part of an install (tools/test.sh has built and run them)
  meson setup "$build" --buildtype=debugoptimized --prefix="$prefix" --libdir=lib -Dtests=false >/dev/null
fi
ninja -C "$build" >/dev/null
meson install -C "$build" >/dev/null
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
[ -f "$PKG_CONFIG_PATH/loom.pc" ] || fail "no $PKG_CONFIG_PATH/loom.pc"
[ -f "$PKG_CONFIG_PATH/loom-static.pc" ] || fail "no $PKG_CONFIG_PATH/loom-static.pc"
libdir=$(pkg-config --variable=libdir loom)
[ "$libdir" = "$prefix/lib" ] || fail "loom.pc's libdir $libdir is not $prefix/lib, where it was installed"
echo "installed to $prefix"

expect="0.114 0.042 0.844"   # softmax(relu(x)) of the first row, {1, -2, 3}
check_run() {
  local what=$1 exe=$2 out
  out=$(env -u LD_LIBRARY_PATH LOOM_DEVICE=cpu "$exe" 2>&1) || fail "$what: $exe exited $?: $out"
  [ "$out" = "$expect" ] || fail "$what: printed '$out', expected '$expect'"
  echo "$what: runs and prints $out"
}

# Shared: the README's command, run without LD_LIBRARY_PATH (loom.pc's
# rpath finds libloom.so.0 in the prefix).
cc -std=c11 -Wall -Werror "$work/app.c" $(pkg-config --cflags --libs loom) -o "$work/app-shared" ||
  fail "shared: the README's command does not link"
readelf -d "$work/app-shared" | grep -q 'NEEDED.*libloom\.so\.0' || fail "shared: app does not need libloom.so.0"
check_run shared "$work/app-shared"

# Static: loom-static.pc links libloom.a; nothing of loom's is needed at
# run time, so it runs with the prefix gone.
cc -std=c11 -Wall -Werror "$work/app.c" $(pkg-config --cflags --libs loom-static) -o "$work/app-static" ||
  fail "static: the README's command does not link"
! readelf -d "$work/app-static" | grep -q 'libloom' || fail "static: app still needs libloom.so"
# the order of `pkg-config --static --libs loom` (what a static-only
# install, -Ddefault_library=static, links with): the C++ runtime after the
# static archives that need it
cc -std=c11 "$work/app.c" $(pkg-config --cflags loom) \
  $(pkg-config --static --libs loom | sed 's/-lloom\b/-l:libloom.a/') -o "$work/app-static2" ||
  fail "static: pkg-config --static --libs loom does not link libloom.a"
mv "$prefix" "$prefix.gone"
check_run static "$work/app-static"
check_run "static (pkg-config --static --libs loom)" "$work/app-static2"
mv "$prefix.gone" "$prefix"

# The installed tools run from the prefix (they link libloom statically).
env -u LD_LIBRARY_PATH "$prefix/bin/loom" --version >/dev/null || fail "$prefix/bin/loom --version"
echo "tools/test_install.sh: install to a non-system prefix works, shared and static"
