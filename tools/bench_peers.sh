#!/usr/bin/env bash
# loom beside its peers: the seed's Keras program (tensorflow-cpu) and the
# same model in PyTorch (CPU), on the same Fashion-MNIST files, with the
# same epochs and batch, and `loom train` on every device that can run
# graphs, all in one session. Prints samples/s and test accuracy of each and
# the ratio of loom's samples/s to each peer's. Not part of the test suite.
# --model cnn: examples/models/cnn.json in all three instead of the MLP.
#
#   tools/bench_peers.sh [--model mlp|cnn] [--epochs 5] [--batch 32[,256]] [--json FILE] [--repeat N]
#                        [--threads N] [--devices cpu,vulkan:0] [--peers keras,pytorch]
#                        [--loom PATH] [--baseline PATH] [--data DIR] [--venv DIR] [--no-install]
#
# --repeat N runs N rounds; in each round every batch size runs loom and the
# peers back to back, so a ratio compares runs that met the same load. The
# table gives each round and the median and spread of the ratios. --baseline
# PATH runs a second loom build right after the first ("loom cpu (base)"):
# before and after a change in one session.
#
# The peers are installed from PyPI into a virtual environment of their own
# (default ${XDG_CACHE_HOME:-$HOME/.cache}/loom/peers-venv). A peer that
# cannot be installed or run is reported with the reason; the others go on.
set -u

root=$(cd "$(dirname "$0")/.." && pwd)
epochs=5
model=mlp
batches=32
json_out=
threads=$(nproc 2>/dev/null || echo 1)
devices=
peers=keras,pytorch
loom_bin=${LOOM:-$root/build/tools/loom}
base_bin=
repeat=1
data=/usr/share/datasets/fashion-mnist
venv=${XDG_CACHE_HOME:-$HOME/.cache}/loom/peers-venv
install=1

usage() {
    sed -n '2,22s/^# \{0,1\}//p' "$0"
}

die() {
    echo "bench_peers: $*" >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case $1 in
    --epochs) epochs=${2:?--epochs wants N}; shift 2 ;;
    --model) model=${2:?--model wants mlp or cnn}; shift 2 ;;
    --batch) batches=${2:?--batch wants N[,N...]}; shift 2 ;;
    --json) json_out=${2:?--json wants FILE}; shift 2 ;;
    --threads) threads=${2:?--threads wants N}; shift 2 ;;
    --devices) devices=${2:?--devices wants SPEC[,SPEC...]}; shift 2 ;;
    --peers) peers=${2:?--peers wants keras,pytorch}; shift 2 ;;
    --loom) loom_bin=${2:?--loom wants PATH}; shift 2 ;;
    --baseline) base_bin=${2:?--baseline wants PATH}; shift 2 ;;
    --repeat) repeat=${2:?--repeat wants N}; shift 2 ;;
    --data) data=${2:?--data wants DIR}; shift 2 ;;
    --venv) venv=${2:?--venv wants DIR}; shift 2 ;;
    --no-install) install=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
    esac
done

case $model in mlp | cnn) ;; *) die "--model wants mlp or cnn, not \"$model\"" ;; esac
case $epochs in '' | *[!0-9]* | 0) die "--epochs wants a positive whole number, not \"$epochs\"" ;; esac
case $threads in '' | *[!0-9]* | 0) die "--threads wants a positive whole number, not \"$threads\"" ;; esac
case $repeat in '' | *[!0-9]* | 0) die "--repeat wants a positive whole number, not \"$repeat\"" ;; esac
for b in ${batches//,/ }; do
    case $b in '' | *[!0-9]* | 0) die "--batch wants positive whole numbers, not \"$b\"" ;; esac
done
abspath() { case $1 in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$PWD" "$1" ;; esac; }
loom_bin=$(abspath "$loom_bin")
data=$(abspath "$data")
venv=$(abspath "$venv")
[ -z "$json_out" ] || json_out=$(abspath "$json_out")
command -v python3 >/dev/null || die "python3 is needed (for the peers and the report)"
[ -x "$loom_bin" ] || die "no loom at $loom_bin: build it first (meson setup build && ninja -C build) or pass --loom PATH"
if [ -n "$base_bin" ]; then
    base_bin=$(abspath "$base_bin")
    [ -x "$base_bin" ] || die "no loom at $base_bin (--baseline)"
fi
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
    [ -r "$data/$f" ] || die "no $data/$f (pass --data DIR)"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/bench_peers.XXXXXX") || die "cannot make a temporary directory"
trap 'rm -rf "$work"' EXIT
results=$work/results.jsonl
notes=$work/notes.jsonl
: >"$results"
: >"$notes"

# One JSON object per line: {"peer":..., "reason":...} for a peer that is
# not in the table.
note() {
    python3 -c 'import json,sys; print(json.dumps({"peer": sys.argv[1], "reason": sys.argv[2]}))' "$1" "$2" >>"$notes"
    echo "bench_peers: $1: $2" >&2
}

# The last lines of a log that say why pip or a program failed.
why() {
    local r
    r=$(grep -E 'ERROR|Error|error:|No matching|Could not|Killed' "$1" | tail -n 3 | tr '\n' ' ')
    [ -n "$r" ] || r=$(tail -n 3 "$1" | tr '\n' ' ')
    printf '%s' "${r:0:600}"
}

# ---- the virtual environment ----

py=
make_venv() {
    if [ -x "$venv/bin/python" ] && "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
        py=$venv/bin/python
        return 0
    fi
    [ "$install" = 1 ] || { echo "no virtual environment at $venv and --no-install given"; return 1; }
    mkdir -p "$(dirname "$venv")"
    rm -rf "$venv"
    if ! python3 -m venv "$venv" >"$work/venv.log" 2>&1; then
        # Debian splits venv and ensurepip into python3-venv.
        rm -rf "$venv"
        local ver
        ver=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
        if command -v apt-get >/dev/null; then
            local sudo=
            [ "$(id -u)" = 0 ] || sudo="sudo -n"
            echo "bench_peers: python3 -m venv failed; installing python3-venv with apt-get" >&2
            $sudo apt-get install -y "python$ver-venv" >>"$work/venv.log" 2>&1 ||
                $sudo apt-get install -y python3-venv >>"$work/venv.log" 2>&1
        fi
        python3 -m venv "$venv" >>"$work/venv.log" 2>&1 || { echo "python3 -m venv failed: $(why "$work/venv.log")"; return 1; }
    fi
    py=$venv/bin/python
    "$py" -m pip install --quiet --upgrade pip >>"$work/venv.log" 2>&1 || true
    return 0
}

# install_peer NAME MODULE PACKAGE...: imports MODULE, installing the
# packages from PyPI first when it is missing.
install_peer() {
    local name=$1 module=$2
    shift 2
    if "$py" -c "import numpy, $module" >/dev/null 2>&1; then
        return 0
    fi
    if [ "$install" = 0 ]; then
        note "$name" "not installed in $venv (and --no-install given): pip install $*"
        return 1
    fi
    echo "bench_peers: installing $* into $venv (large wheels; this takes a while)" >&2
    if ! "$py" -m pip install --progress-bar off numpy "$@" >"$work/pip-$name.log" 2>&1; then
        note "$name" "pip install $* failed: $(why "$work/pip-$name.log")"
        return 1
    fi
    if ! "$py" -c "import numpy, $module" >"$work/import-$name.log" 2>&1; then
        note "$name" "installed, but import $module fails: $(why "$work/import-$name.log")"
        return 1
    fi
}

have_keras=0
have_torch=0
if make_venv >"$work/venv.err"; then
    case ,$peers, in *,keras,*) install_peer keras tensorflow tensorflow-cpu && have_keras=1 ;; esac
    case ,$peers, in *,pytorch,* | *,torch,*) install_peer pytorch torch torch && have_torch=1 ;; esac
else
    for p in ${peers//,/ }; do note "$p" "no virtual environment: $(cat "$work/venv.err")"; done
fi

# ---- the loom devices ----

if [ -z "$devices" ]; then
    if ! "$loom_bin" devices --json >"$work/devices.json" 2>"$work/devices.err"; then
        die "loom devices --json failed: $(why "$work/devices.err")"
    fi
    devices=$(python3 -c '
import json, sys
print(",".join(d["spec"] for d in json.load(open(sys.argv[1])) if d.get("can_run")))' "$work/devices.json") ||
        die "cannot read loom devices --json"
    python3 -c '
import json, sys
for d in json.load(open(sys.argv[1])):
    if not d.get("can_run"):
        print(json.dumps({"peer": "loom " + d["spec"], "reason": "cannot run graphs yet (can_run false): " + d.get("name", "")}))' \
        "$work/devices.json" >>"$notes"
fi
[ -n "$devices" ] || echo "bench_peers: loom lists no device that can run graphs" >&2

# ---- the runs ----

load1() { cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo null; }

# record KIND NAME BATCH LOG LOAD_BEFORE: the JSON line the run printed,
# with the load around it and the round, into the results.
record() {
    local kind=$1 name=$2 batch=$3 log=$4 before=$5
    python3 - "$kind" "$name" "$batch" "$log" "$before" "$(load1)" "$epochs" "$threads" "$round" >>"$results" <<'EOF'
import json, sys
kind, name, batch, log, before, after, epochs, threads, rnd = sys.argv[1:]
line = None
for l in open(log, errors="replace"):
    l = l.strip()
    if l.startswith("{") and l.endswith("}"):
        line = l
r = json.loads(line)
if kind == "loom":
    # loom train --json: samples_per_s is the last epoch's
    r = {"peer": name, "device_name": r.get("device_name"),
         "samples_per_s": r.get("fit_samples_per_s"), "last_epoch_samples_per_s": r.get("samples_per_s"),
         "test_accuracy": r["test_accuracy"], "epochs": r["epochs"], "batch": r["batch"],
         "threads": int(threads), "fit_seconds": r.get("fit_seconds"), "epoch_seconds": r.get("epoch_seconds"),
         "train_images": r.get("train_images")}
def num(s):
    try:
        return float(s)
    except ValueError:
        return None
r["load_before"], r["load_after"] = num(before), num(after)
r["round"] = int(rnd)
print(json.dumps(r))
EOF
}

run_one() {
    local kind=$1 name=$2 batch=$3
    shift 3
    local log=$work/run.log before
    before=$(load1)
    echo "bench_peers: round $round/$repeat, batch $batch: $name (load $before) ..." >&2
    if "$@" >"$log" 2>&1 && record "$kind" "$name" "$batch" "$log" "$before" 2>"$work/record.err"; then
        return 0
    fi
    cat "$work/record.err" >>"$log" 2>/dev/null
    note "$name" "batch $batch: the run failed: $(why "$log")"
}

cd "$root/tools/peers" || die "no $root/tools/peers"
common=(--epochs "$epochs" --threads "$threads" --data "$data" --model "$model")
loom_model=()
[ "$model" = cnn ] && loom_model=(--model "$root/examples/models/cnn.json")
run_loom() {
    local name=$1 bin=$2 d=$3 batch=$4
    run_one loom "$name" "$batch" env OPENBLAS_NUM_THREADS="$threads" OMP_NUM_THREADS="$threads" \
        "$bin" train --json --device "$d" --epochs "$epochs" --batch "$batch" --data "$data" "${loom_model[@]}"
}
for round in $(seq 1 "$repeat"); do
    for batch in ${batches//,/ }; do
        for d in ${devices//,/ }; do
            run_loom "loom $d" "$loom_bin" "$d" "$batch"
            [ -z "$base_bin" ] || run_loom "loom $d (base)" "$base_bin" "$d" "$batch"
        done
        [ "$have_keras" = 1 ] && run_one peer keras "$batch" "$py" keras_mlp.py "${common[@]}" --batch "$batch"
        [ "$have_torch" = 1 ] && run_one peer pytorch "$batch" "$py" torch_mlp.py "${common[@]}" --batch "$batch"
    done
done

meta=$work/meta.json
python3 - "$meta" "$epochs" "$threads" "$batches" "$repeat" "$model" <<'EOF'
import json, os, platform, socket, sys, time
cpu = platform.processor()
try:
    for l in open("/proc/cpuinfo"):
        if l.startswith("model name"):
            cpu = l.split(":", 1)[1].strip()
            break
except OSError:
    pass
json.dump({"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "hostname": socket.gethostname(),
           "cpu_model": cpu, "cores": os.cpu_count(), "epochs": int(sys.argv[2]), "threads": int(sys.argv[3]),
           "batches": [int(b) for b in sys.argv[4].split(",")], "repeat": int(sys.argv[5]),
           "model": sys.argv[6]}, open(sys.argv[1], "w"))
EOF
python3 "$root/tools/peers/report.py" "$meta" "$results" "$notes" ${json_out:+"$json_out"}
