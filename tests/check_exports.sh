#!/usr/bin/env bash
# libloom.so exports the public API of include/loom.h and nothing else:
# every dynamic symbol it defines is a loom_* name that loom.h declares, or
# a constructor loom.h generates from a line X(name, ...) of loom_ops.h.
set -euo pipefail
lib=$1 header=$2
ops=$(dirname "$header")/loom_ops.h
syms=$(nm -D --defined-only "$lib" | awk '$2 ~ /[TDBRVW]/ {print $3}')
[ -n "$syms" ] || { echo "no symbols exported by $lib"; exit 1; }
bad=0
for s in $syms; do
  case "$s" in
    loom_*) grep -qw "$s" "$header" || grep -q "X(${s#loom_}," "$ops" ||
              { echo "exported but not in loom.h: $s"; bad=1; } ;;
    *) echo "exported non-loom symbol: $s"; bad=1 ;;
  esac
done
echo "$(echo "$syms" | wc -l) symbols exported, all loom_* of loom.h: $([ $bad = 0 ] && echo yes || echo no)"
exit $bad
