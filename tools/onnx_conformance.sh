#!/usr/bin/env bash
# ONNX's backend node tests on every loom device.
#
#   tools/onnx_conformance.sh [--build DIR] [--devices all|cpu,vulkan:0,...] [--out DIR]
#                             [--timeout SECONDS] [--filter SUBSTRING] [--onnx-dir DIR]
#
# Downloads the onnx wheel (pip download --no-deps onnx==$ONNX_VERSION; no
# install: the tests are data inside the wheel), unpacks its
# onnx/backend/test/data/node/*, runs every case on each device with
# BUILD/tools/onnx_conformance (a supervised worker: a case that crashes or
# runs past --timeout is counted as such, never stops the run) and writes
# OUT/<device>.json per device and OUT/summary.json, printing pass / fail /
# unsupported per device out of the total and out of the cases whose ops
# (and element types) loom's table lists. Exit status 0 when no case
# crashed or timed out.
#
# ONNX_VERSION is pinned to the newest wheel that still carries the node
# test data (1.23 dropped it from the wheel); its newest opset is the
# importer's LOOM_ONNX_MAX_OPSET.
set -euo pipefail
ONNX_VERSION=${ONNX_VERSION:-1.22.0}
here=$(cd "$(dirname "$0")/.." && pwd)
build=$here/build
devices=all
out=$here/build/onnx-conformance
timeout=300
filter=""
onnx_dir=""

while [ $# -gt 0 ]; do
    case "$1" in
    --build) build=$2; shift 2 ;;
    --devices) devices=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --filter) filter=$2; shift 2 ;;
    --onnx-dir) onnx_dir=$2; shift 2 ;;
    -h | --help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "onnx_conformance.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

runner=$build/tools/onnx_conformance
loom=$build/tools/loom
[ -x "$runner" ] || { echo "onnx_conformance.sh: $runner is not built (meson feature 'onnx')" >&2; exit 2; }

cache=${LOOM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/loom}/onnx-$ONNX_VERSION
if [ -z "$onnx_dir" ]; then
    onnx_dir=$cache/data
    if [ ! -d "$onnx_dir/onnx/backend/test/data/node" ]; then
        mkdir -p "$cache/wheel"
        if ! ls "$cache"/wheel/onnx-"$ONNX_VERSION"-*.whl >/dev/null 2>&1; then
            echo "onnx_conformance.sh: pip download --no-deps onnx==$ONNX_VERSION"
            python3 -m pip download --quiet --no-deps "onnx==$ONNX_VERSION" -d "$cache/wheel"
        fi
        wheel=$(ls "$cache"/wheel/onnx-"$ONNX_VERSION"-*.whl | head -1)
        rm -rf "$cache/data.tmp"
        mkdir -p "$cache/data.tmp"
        # only the node tests, through Python's zipfile (unzip may be absent)
        python3 - "$wheel" "$cache/data.tmp" <<'EOF'
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
names = [n for n in z.namelist() if n.startswith("onnx/backend/test/data/node/")]
if not names:
    sys.exit("the wheel carries no onnx/backend/test/data/node: pin an onnx version that does")
for n in names:
    z.extract(n, sys.argv[2])
EOF
        rm -rf "$onnx_dir"
        mv "$cache/data.tmp" "$onnx_dir"
    fi
fi
node_dir=$onnx_dir/onnx/backend/test/data/node
[ -d "$node_dir" ] || { echo "onnx_conformance.sh: no $node_dir" >&2; exit 2; }

if [ "$devices" = all ]; then
    devices=$("$loom" devices --json | python3 -c '
import json, sys
print(",".join(d["spec"] for d in json.load(sys.stdin) if d.get("can_run")))')
fi

mkdir -p "$out"
cases=()
for d in "$node_dir"/*/; do
    [ -f "$d/model.onnx" ] && cases+=("$d")
done
echo "onnx_conformance.sh: onnx $ONNX_VERSION, ${#cases[@]} node tests, devices $devices"

rc=0
IFS=, read -r -a devlist <<<"$devices"
for dev in "${devlist[@]}"; do
    json=$out/${dev//:/_}.json
    args=(--device "$dev" --timeout "$timeout" --json "$json" --quiet)
    [ -n "$filter" ] && args+=(--filter "$filter")
    set +e
    "$runner" "${args[@]}" "${cases[@]}"
    r=$?
    set -e
    [ $r -eq 0 ] || rc=$r
done

python3 - "$out" "$ONNX_VERSION" "${devlist[@]}" <<'EOF'
import json, os, sys
out, version, devs = sys.argv[1], sys.argv[2], sys.argv[3:]
summary = {"onnx_version": version, "devices": {}}
print()
print("%-10s %6s %6s %6s %12s %6s %8s | %-26s | %-26s" % ("device", "cases", "pass", "fail", "unsupported",
      "crash", "timeout", "listed ops: pass/cases", "listed ops+types: pass/cases"))
for d in devs:
    path = os.path.join(out, d.replace(":", "_") + ".json")
    if not os.path.exists(path):
        continue
    r = json.load(open(path))
    t, l, ty = r["totals"], r["listed"], r["listed_types"]
    summary["devices"][d] = {"totals": t, "listed": l, "listed_types": ty, "report": path}
    pct = lambda x: 100.0 * x["pass"] / x["cases"] if x["cases"] else 0.0
    print("%-10s %6d %6d %6d %12d %6d %8d | %5d/%-5d (%5.1f%%)       | %5d/%-5d (%5.1f%%)" % (
        d, t["cases"], t["pass"], t["fail"], t["unsupported"], t["crash"], t["timeout"],
        l["pass"], l["cases"], pct(l), ty["pass"], ty["cases"], pct(ty)))
with open(os.path.join(out, "summary.json.tmp"), "w") as f:
    json.dump(summary, f, indent=1)
os.replace(os.path.join(out, "summary.json.tmp"), os.path.join(out, "summary.json"))
print("\nreports in", out)
EOF
exit $rc
