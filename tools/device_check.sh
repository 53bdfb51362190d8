#!/usr/bin/env bash
# The prepared GPU check: loom's op matrix, its training test and `loom bench`
# on a machine with an NVIDIA, AMD or Intel GPU and no build tools, from
# binaries and libraries built beforehand here.
#
#   tools/device_check.sh --pack DIR [--build BUILD] [--data FASHION_MNIST_DIR] [--no-compress]
#       gathers into DIR the loom CLI, the op-matrix and training test
#       binaries (stripped), the shared libraries a bare machine may lack
#       (OpenBLAS, CLBlast, the OpenCL ICD loader, the Vulkan loader and the
#       validation layer, cJSON, ...; never libc or the GPU driver), a slice
#       of Fashion-MNIST, and this script as DIR/run.sh. Compressed with xz
#       into DIR/payload.tar.xz unless --no-compress.
#
#   bash DIR/run.sh OUTDIR          (or: tools/device_check.sh DIR OUTDIR)
#       on the GPU machine: finds the GPU's Vulkan and OpenCL drivers, lists
#       the devices, runs the op matrix and the training test on each GPU
#       device (Vulkan, and OpenCL where an ICD is found), then
#       `loom bench --device all`, each step under a time budget so that the
#       whole ends within DEVICE_CHECK_BUDGET seconds (default 450). Writes
#       OUTDIR/summary.json (always: each step's status, seconds, devices),
#       devices.json, bench.json, bench.txt and log.txt (every step's output).
#       Exit status 0 when every step that ran passed.
#
# Environment (run): DEVICE_CHECK_QUICK=1 (a subset of the op matrix and
# `loom bench --quick`: the dry run the test suite makes against lavapipe
# and PoCL), DEVICE_CHECK_DEVICES=vulkan:0,opencl:0 (the devices to check;
# default: every GPU, else every device but the CPU), DEVICE_CHECK_BUDGET.
set -uo pipefail

die() {
    echo "device_check: $*" >&2
    exit 2
}

# ---- packing -----------------------------------------------------------------

# The C library's own parts, and drivers, stay on the machine.
is_system_lib() {
    case "$1" in
    linux-vdso.so* | ld-linux* | libc.so* | libm.so* | libdl.so* | libpthread.so* | librt.so* | libutil.so* | \
        libresolv.so* | libnvidia* | libcuda* | libGLX_nvidia* | libEGL_nvidia* | libamdocl* | libigdrcl* | \
        libvulkan_*) return 0 ;;
    esac
    return 1
}

# A gzipped IDX file cut to its first N records, its count field rewritten.
idx_slice() { # src dst n
    local -
    set +o pipefail # zcat stops early when head has what it needs
    local src=$1 dst=$2 n=$3 magic dims rec=1 k
    magic=$(zcat "$src" | head -c 4 | od -An -tx1 | tr -d ' \n')
    dims=$((16#${magic:6:2}))
    local hdr=$((4 + 4 * dims))
    # record size: the product of the dimensions after the first
    for ((k = 1; k < dims; k++)); do
        rec=$((rec * $(zcat "$src" | head -c $((8 + 4 * k)) | tail -c 4 | od -An -tu1 |
            awk '{print $1 * 16777216 + $2 * 65536 + $3 * 256 + $4}')))
    done
    {
        zcat "$src" | head -c 4
        printf '%b' "\\x$(printf %02x $((n >> 24 & 255)))\\x$(printf %02x $((n >> 16 & 255)))"
        printf '%b' "\\x$(printf %02x $((n >> 8 & 255)))\\x$(printf %02x $((n & 255)))"
        zcat "$src" | head -c "$hdr" | tail -c $((hdr - 8))
        zcat "$src" | tail -c +$((hdr + 1)) | head -c $((n * rec))
    } | gzip -6 >"$dst"
}

pack() {
    local dir=$1 build=$2 data=$3 compress=$4 here
    here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    local bins=("$build/tools/loom" "$build/tests/test_op_matrix" "$build/tests/test_train")
    for b in "${bins[@]}"; do
        [ -x "$b" ] || die "$b is missing: build first (ninja -C $build)"
    done
    [ -e "$dir" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ] && die "$dir exists and is not empty"
    mkdir -p "$dir" || die "cannot create $dir"
    local stage
    stage=$(mktemp -d "${TMPDIR:-/tmp}/loom-devpack.XXXXXX") || die "no temporary folder"
    # shellcheck disable=SC2064
    trap "rm -rf '$stage'" EXIT
    mkdir -p "$stage"/{bin,lib,lib-fallback,layers,data}
    local strip_cmd=(strip --strip-unneeded)
    command -v strip >/dev/null || strip_cmd=(true)
    for b in "${bins[@]}"; do
        cp "$b" "$stage/bin/" && "${strip_cmd[@]}" "$stage/bin/$(basename "$b")"
    done
    # the libraries the binaries load, by the soname they ask for
    local extra=() f
    for f in libGLdispatch.so.0 libGLX.so.0; do # the NVIDIA Vulkan driver loads these (glvnd)
        local p
        p=$(ldconfig -p 2>/dev/null | awk -v n="$f" '$1 == n && /x86-64/ {print $NF; exit}')
        [ -n "$p" ] && extra+=("$p")
    done
    local layer_json=/usr/share/vulkan/explicit_layer.d/VkLayer_khronos_validation.json layer_so=""
    if [ -f "$layer_json" ]; then
        layer_so=$(ldconfig -p 2>/dev/null | awk '$1 == "libVkLayer_khronos_validation.so" {print $NF; exit}')
        [ -z "$layer_so" ] && [ -f /usr/lib/x86_64-linux-gnu/libVkLayer_khronos_validation.so ] &&
            layer_so=/usr/lib/x86_64-linux-gnu/libVkLayer_khronos_validation.so
    fi
    local objs=("${bins[@]}" "${extra[@]}")
    [ -n "$layer_so" ] && objs+=("$layer_so")
    local name path
    while read -r name path; do
        is_system_lib "$name" && continue
        [ -f "$path" ] || continue
        case "$name" in
        libstdc++.so* | libgcc_s.so*) cp -L "$path" "$stage/lib-fallback/$name" ;; # only if the machine's are too old
        *) cp -L "$path" "$stage/lib/$name" ;;
        esac
    done < <(for o in "${objs[@]}"; do ldd "$o"; done | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | sort -u)
    for p in "${extra[@]}"; do
        cp -L "$p" "$stage/lib/$(basename "$p")"
    done
    if [ -n "$layer_so" ]; then
        cp -L "$layer_so" "$stage/lib/libVkLayer_khronos_validation.so"
        cp "$layer_json" "$stage/layers/"
    fi
    for f in "$stage"/lib/* "$stage"/lib-fallback/*; do
        [ -f "$f" ] && "${strip_cmd[@]}" "$f" 2>/dev/null
    done
    chmod 644 "$stage"/lib/* "$stage"/lib-fallback/* 2>/dev/null
    # Fashion-MNIST: a training slice (the training test takes 6,000) and
    # the whole test set
    if [ -f "$data/train-images-idx3-ubyte.gz" ] && [ -f "$data/t10k-images-idx3-ubyte.gz" ]; then
        local n=${DEVICE_CHECK_TRAIN_IMAGES:-6000}
        idx_slice "$data/train-images-idx3-ubyte.gz" "$stage/data/train-images-idx3-ubyte.gz" "$n" || die "slicing $data"
        idx_slice "$data/train-labels-idx1-ubyte.gz" "$stage/data/train-labels-idx1-ubyte.gz" "$n" || die "slicing $data"
        cp "$data"/t10k-*-idx*-ubyte.gz "$stage/data/"
    else
        echo "device_check: no Fashion-MNIST in $data: the training steps will be skipped" >&2
    fi
    {
        echo "loom device check pack"
        echo "commit: $(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$here" diff --quiet HEAD 2>/dev/null || echo ' (with changes)')"
        echo "packed: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n) ($(uname -m))"
        if command -v objdump >/dev/null; then
            echo "needs: $(for f in "$stage"/bin/* "$stage"/lib/*; do objdump -T "$f" 2>/dev/null; done |
                grep -o 'GLIBC_2\.[0-9]*' | sort -t. -k2 -n -u | tail -1) or newer"
        fi
        echo "files:"
        (cd "$stage" && find . -type f -printf '  %p %s\n' | sort)
    } >"$stage/manifest.txt"
    cp "$here/tools/device_check.sh" "$dir/run.sh" && chmod +x "$dir/run.sh"
    cp "$stage/manifest.txt" "$dir/manifest.txt"
    if [ "$compress" = 1 ]; then
        command -v xz >/dev/null || die "xz is missing (apt-get install xz-utils), or pack with --no-compress"
        tar -C "$stage" -cf - . | xz -9 -T0 >"$dir/payload.tar.xz" || die "cannot write $dir/payload.tar.xz"
    else
        cp -a "$stage"/. "$dir/" || die "cannot copy into $dir"
    fi
    echo "device_check: packed $(du -sh "$dir" | cut -f1) into $dir ($(du -sh --apparent-size "$stage" | cut -f1) unpacked)"
    echo "device_check: on the GPU machine: bash $dir/run.sh \$OUT"
}

# ---- running -------------------------------------------------------------------

# A JSON string of any text.
js() {
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\t'/\\t}
    s=${s//$'\n'/\\n}
    s=${s//$'\r'/\\r}
    s=$(printf '%s' "$s" | tr -d '\000-\010\013\014\016-\037')
    printf '"%s"' "$s"
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.2f", b - a}'; }

STEPS=()        # JSON objects, one per step
DEV_LINES=()    # spec \t type \t backend \t can_run \t name (JSON-escaped, from loom)
TARGETS=()
ALL_OK=1
NOTES=()

add_step() { # name device status rc seconds detail
    STEPS+=("{\"name\": $(js "$1"), \"device\": $(js "$2"), \"status\": $(js "$3"), \"rc\": $4, \"seconds\": $5, \"detail\": $(js "$6")}")
    case "$3" in pass | skipped) ;; *) ALL_OK=0 ;; esac # skipped: not applicable here (no data)
}

# Seconds left for a step that may take at most max, keeping `reserve` for
# what must still run.
budget_for() { # max reserve
    awk -v d="$DEADLINE" -v t="$(date +%s)" -v m="$1" -v r="$2" 'BEGIN {a = d - t - r; print int(a < m ? a : m)}'
}

run_step() { # name device max reserve -- cmd...
    local name=$1 dev=$2 max=$3 reserve=$4
    shift 5
    local t
    t=$(budget_for "$max" "$reserve")
    if [ "$t" -lt 10 ]; then
        add_step "$name" "$dev" no_time 0 0 "not run: no time left in the ${BUDGET} s budget"
        echo "==== $name ${dev:+on $dev}: not run, no time left" >>"$LOG"
        return 1
    fi
    echo "==== $name ${dev:+on $dev} (at most $t s): $*" >>"$LOG"
    local t0 rc
    t0=$(now)
    if [ -n "$TIMEOUT" ]; then
        timeout -k 5 "$t" "$@" >>"$LOG" 2>&1
    else
        "$@" >>"$LOG" 2>&1
    fi
    rc=$?
    local secs status detail=""
    secs=$(elapsed "$t0")
    case $rc in
    0) status=pass ;;
    124 | 137) status=timeout detail="stopped after $t s" ;;
    *) status=fail detail="exit status $rc" ;;
    esac
    echo "==== $name ${dev:+on $dev}: $status in $secs s" >>"$LOG"
    add_step "$name" "$dev" "$status" "$rc" "$secs" "$detail"
    [ $rc = 0 ]
}

write_summary() {
    local ok=$ALL_OK
    [ ${#TARGETS[@]} -eq 0 ] && ok=0
    [ -s "$OUT/bench.json" ] || ok=0
    local devs="" steps="" targets="" notes="" l i
    for l in "${DEV_LINES[@]}"; do
        IFS=$'\t' read -r spec type backend can name <<<"$l"
        devs+="${devs:+, }{\"spec\": $(js "$spec"), \"name\": \"$name\", \"type\": $(js "$type"), \"backend\": $(js "$backend"), \"can_run\": $can}"
    done
    for i in "${STEPS[@]}"; do steps+="${steps:+,
    }$i"; done
    for i in "${TARGETS[@]}"; do targets+="${targets:+, }$(js "$i")"; done
    for i in "${NOTES[@]}"; do notes+="${notes:+, }$(js "$i")"; done
    cat >"$OUT/summary.json.tmp" <<EOF
{
  "schema": 1,
  "ok": $([ $ok = 1 ] && echo true || echo false),
  "quick": $([ "$QUICK" = 1 ] && echo true || echo false),
  "started": $(js "$STARTED"),
  "seconds": $(elapsed "$T0"),
  "budget_seconds": $BUDGET,
  "host": $(js "$(uname -n)"),
  "kernel": $(js "$(uname -r)"),
  "pack": $(js "$(sed -n 2p "$PACK/manifest.txt" 2>/dev/null)"),
  "gpu_found": $GPU_FOUND,
  "gpu": $(js "$GPU_INFO"),
  "vulkan_drivers": $(js "${VK_DRIVER_FILES:-${VK_ICD_FILENAMES:-loader default search}}"),
  "opencl_vendors": $(js "${OCL_ICD_VENDORS:-/etc/OpenCL/vendors}"),
  "targets": [$targets],
  "devices": [$devs],
  "steps": [
    $steps
  ],
  "notes": [$notes],
  "files": ["summary.json", "devices.json", "bench.json", "bench.txt", "log.txt"]
}
EOF
    mv "$OUT/summary.json.tmp" "$OUT/summary.json"
}

# The first of the files found under the folders, by name pattern.
find_lib() { # name dirs...
    local n=$1 d
    shift
    for d in "$@"; do
        [ -e "$d/$n" ] && { echo "$d/$n"; return 0; }
    done
    ldconfig -p 2>/dev/null | awk -v n="$n" '$1 == n && /x86-64/ {print $NF; exit}'
}

setup_drivers() {
    local nv
    for nv in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/wsl/lib; do
        [ -d "$nv" ] && LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$nv"
    done
    export LD_LIBRARY_PATH
    # Vulkan: the loader searches its own folders; a driver's file elsewhere
    # (the NVIDIA container mount) is named with VK_DRIVER_FILES, beside
    # those, and an NVIDIA library without any file gets one written
    if [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ]; then
        local f icd_std="" icd_extra=""
        for f in /usr/local/etc/vulkan/icd.d/*.json /usr/local/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json \
            /usr/share/vulkan/icd.d/*.json; do
            [ -f "$f" ] && icd_std+="${icd_std:+:}$f"
        done
        for f in /usr/local/nvidia/share/vulkan/icd.d/*.json /usr/local/nvidia/etc/vulkan/icd.d/*.json \
            /etc/glvnd/vulkan/icd.d/*.json; do
            [ -f "$f" ] && icd_extra+="${icd_extra:+:}$f"
        done
        if ! printf '%s' "$icd_std$icd_extra" | grep -qi nvidia; then
            local glx
            glx=$(find_lib libGLX_nvidia.so.0 /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu)
            if [ -n "$glx" ]; then
                mkdir -p "$WORK/icd"
                printf '{"file_format_version": "1.0.0", "ICD": {"library_path": "%s", "api_version": "1.3.0"}}\n' \
                    "$glx" >"$WORK/icd/nvidia_icd.json"
                icd_extra+="${icd_extra:+:}$WORK/icd/nvidia_icd.json"
                NOTES+=("no NVIDIA Vulkan ICD file: wrote one for $glx")
            fi
        fi
        if [ -n "$icd_extra" ]; then
            export VK_DRIVER_FILES="$icd_extra${icd_std:+:$icd_std}"
            export VK_ICD_FILENAMES=$VK_DRIVER_FILES
        elif [ -z "$icd_std" ]; then
            NOTES+=("no Vulkan driver found (no ICD file, no libGLX_nvidia)")
        fi
    fi
    # OpenCL: /etc/OpenCL/vendors, else an ICD file written for a vendor
    # library found on the machine
    if [ -z "${OCL_ICD_VENDORS:-}" ] && ! ls /etc/OpenCL/vendors/*.icd >/dev/null 2>&1; then
        local lib found=0
        for lib in libnvidia-opencl.so.1 libamdocl64.so libigdrcl.so libintelocl.so; do
            local p
            p=$(find_lib "$lib" /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64 \
                /opt/rocm/lib /opt/rocm/opencl/lib)
            if [ -n "$p" ]; then
                mkdir -p "$WORK/ocl"
                echo "$p" >"$WORK/ocl/${lib%%.so*}.icd"
                found=1
            fi
        done
        if [ $found = 1 ]; then
            export OCL_ICD_VENDORS="$WORK/ocl"
        else
            NOTES+=("no OpenCL driver found: the OpenCL steps check only what the loader lists")
        fi
    fi
    export VK_LAYER_PATH="$PACK/layers"
}

# spec, type, backend, can_run and name of each device in loom's JSON list.
parse_devices() {
    awk 'BEGIN { RS = "}" }
    function field(k,   m) {
        if (!match($0, "\"" k "\"[ \t\r\n]*:[ \t\r\n]*\"([^\"\\\\]|\\\\.)*\"")) return ""
        m = substr($0, RSTART, RLENGTH)
        sub("^\"" k "\"[ \t\r\n]*:[ \t\r\n]*\"", "", m)
        sub("\"$", "", m)
        return m
    }
    { s = field("spec"); if (s == "") next
      can = match($0, "\"can_run\"[ \t\r\n]*:[ \t\r\n]*true") ? "true" : "false"
      printf "%s\t%s\t%s\t%s\t%s\n", s, field("type"), field("backend"), can, field("name") }' "$1"
}

run_check() {
    PACK=$1
    OUT=$2
    QUICK=${DEVICE_CHECK_QUICK:-0}
    BUDGET=${DEVICE_CHECK_BUDGET:-450}
    T0=$(now)
    STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    DEADLINE=$(($(date +%s) + BUDGET))
    GPU_FOUND=false
    GPU_INFO=""
    mkdir -p "$OUT" || die "cannot create $OUT"
    OUT=$(cd "$OUT" && pwd)
    LOG="$OUT/log.txt"
    : >"$LOG"
    rm -f "$OUT/bench.json" "$OUT/summary.json"
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/loom-devcheck.XXXXXX") || die "no temporary folder"
    trap 'write_summary; rm -rf "$WORK"' EXIT
    TIMEOUT=timeout
    command -v timeout >/dev/null || { TIMEOUT=""; NOTES+=("no timeout(1): steps ran without a time limit"); }
    echo "loom device check on $(uname -n), $(date -u), budget ${BUDGET} s$([ "$QUICK" = 1 ] && echo ', quick')" >>"$LOG"
    # the pack: unpacked into the work folder when compressed
    if [ -f "$PACK/payload.tar.xz" ]; then
        local t0
        t0=$(now)
        if command -v xz >/dev/null; then
            xz -dc "$PACK/payload.tar.xz" | tar -C "$WORK" -xf -
        else
            python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$PACK/payload.tar.xz" "$WORK"
        fi
        local rc=$?
        add_step unpack "" "$([ $rc = 0 ] && echo pass || echo fail)" $rc "$(elapsed "$t0")" ""
        [ $rc = 0 ] || exit 1
        PACK_FILES=$WORK
    else
        PACK_FILES=$PACK
    fi
    local bin=$PACK_FILES/bin
    export LD_LIBRARY_PATH="$PACK_FILES/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    # the machine's C++ runtime unless it is older than the one we built with
    if ! "$bin/loom" --version >>"$LOG" 2>&1; then
        LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$PACK_FILES/lib-fallback"
        NOTES+=("the machine's libstdc++/libgcc_s did not load loom: the packed ones are used")
        "$bin/loom" --version >>"$LOG" 2>&1 || { add_step start "" fail 1 0 "loom does not start here (see log.txt)"; exit 1; }
    fi
    PACK=$PACK_FILES
    setup_drivers
    export LOOM_CACHE_DIR="$WORK/cache" CK_DEFAULT_TIMEOUT=600 CK_VERBOSITY=normal
    unset LOOM_DEVICE LOOM_VK_VALIDATION
    if command -v nvidia-smi >/dev/null; then
        GPU_INFO=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -3 | tr '\n' ';')
        nvidia-smi >>"$LOG" 2>&1
    fi
    {
        echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
        echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-} OCL_ICD_VENDORS=${OCL_ICD_VENDORS:-}"
    } >>"$LOG"

    # the devices, and which to check: GPUs; else every one but the CPU
    # (the Vulkan loader says in the log why a driver did not load)
    run_step devices "" 60 0 -- env VK_LOADER_DEBUG=error,warn sh -c '"$1" devices --json >"$2" && "$1" devices' \
        sh "$bin/loom" "$OUT/devices.json"
    local l spec type backend can name
    while IFS= read -r l; do
        DEV_LINES+=("$l")
        IFS=$'\t' read -r spec type backend can name <<<"$l"
        [ "$can" = true ] && [ "$backend" != cpu ] && case "$type" in discrete | integrated) GPU_FOUND=true ;; esac
    done < <(parse_devices "$OUT/devices.json" 2>/dev/null)
    if [ -n "${DEVICE_CHECK_DEVICES:-}" ]; then
        IFS=, read -r -a TARGETS <<<"$DEVICE_CHECK_DEVICES"
    else
        for l in "${DEV_LINES[@]}"; do
            IFS=$'\t' read -r spec type backend can name <<<"$l"
            [ "$can" = true ] && [ "$backend" != cpu ] || continue
            if [ $GPU_FOUND = false ] || [ "$type" = discrete ] || [ "$type" = integrated ]; then
                TARGETS+=("$spec")
            fi
        done
    fi
    [ $GPU_FOUND = false ] && NOTES+=("no GPU among the devices: checked every device but the CPU")
    [ ${#TARGETS[@]} -eq 0 ] && NOTES+=("no device to check besides the CPU")

    local cases="" bench_reserve=150 d
    [ "$QUICK" = 1 ] && cases="matmul_nn_7x33x127,matmul_mlp,add_row_bias,relu,softmax_7x10,sum_axis0,sparse_xent_32x10" bench_reserve=60
    for d in "${TARGETS[@]}"; do
        run_step op_matrix "$d" 120 $bench_reserve -- env LOOM_TEST_DEVICES="$d" LOOM_TEST_CASES="$cases" "$bin/test_op_matrix"
    done
    for d in "${TARGETS[@]}"; do
        if [ -f "$PACK/data/train-images-idx3-ubyte.gz" ]; then
            run_step train "$d" 120 $bench_reserve -- env LOOM_TEST_DEVICES="$d" LOOM_TEST_MNIST="$PACK/data" CK_RUN_CASE=learn \
                "$bin/test_train"
        else
            add_step train "$d" skipped 0 0 "the pack holds no Fashion-MNIST"
        fi
    done
    # every device beside OpenBLAS and memcpy; a quick run when time is short
    local bargs=(bench --device all --data "$PACK/data" --json "$OUT/bench.json")
    if [ "$QUICK" = 1 ] || [ "$(budget_for 9999 0)" -lt 200 ]; then
        run_step bench_quick "" 120 0 -- sh -c '"$@" >"$0"' "$OUT/bench.txt" "$bin/loom" "${bargs[@]}" --quick
    elif ! run_step bench "" 240 30 -- sh -c '"$@" >"$0"' "$OUT/bench.txt" "$bin/loom" "${bargs[@]}"; then
        run_step bench_quick "" 120 0 -- sh -c '"$@" >"$0"' "$OUT/bench.txt" "$bin/loom" "${bargs[@]}" --quick
    fi
    # the Khronos validation layer over the Vulkan devices' op matrix (the
    # layer must load: a pass without it would say nothing)
    if [ -f "$PACK/layers/VkLayer_khronos_validation.json" ]; then
        for d in "${TARGETS[@]}"; do
            case "$d" in vulkan:*)
                run_step op_matrix_validation "$d" 150 0 -- env LOOM_VK_VALIDATION=1 sh -c \
                    'LOOM_LOG=info "$1" devices 2>&1 | grep "vulkan: validation on" ||
                     { echo "device_check: the Khronos validation layer did not load"; exit 3; }
                     shift; exec "$@"' sh "$bin/loom" env LOOM_TEST_DEVICES="$d" LOOM_TEST_CASES="$cases" "$bin/test_op_matrix" ;;
            esac
        done
    fi
    write_summary
    grep -q '"ok": true' "$OUT/summary.json"
}

# ---- the command -----------------------------------------------------------------

usage() {
    sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

main() {
    case "${1:-}" in
    --pack)
        shift
        local dir="" build="" data=${LOOM_DATA:-/usr/share/datasets/fashion-mnist} compress=1
        while [ $# -gt 0 ]; do
            case "$1" in
            --build) build=${2:?--build needs a folder}; shift 2 ;;
            --data) data=${2:?--data needs a folder}; shift 2 ;;
            --no-compress) compress=0; shift ;;
            -*) die "unknown option $1 (see --help)" ;;
            *) [ -z "$dir" ] || die "one pack folder, not $dir and $1"; dir=$1; shift ;;
            esac
        done
        [ -n "$dir" ] || die "--pack needs a folder"
        local root
        root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
        build=${build:-${LOOM_BUILD_DIR:-$root/build}}
        pack "$dir" "$build" "$data" "$compress"
        ;;
    -h | --help) usage ;;
    "")
        # inside a pack, as DIR/run.sh OUTDIR
        usage >&2
        exit 2
        ;;
    *)
        local self
        self=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
        if [ -f "$self/manifest.txt" ] && [ $# -eq 1 ]; then
            run_check "$self" "$1"
        else
            [ -f "$1/manifest.txt" ] || die "$1 is not a pack (no manifest.txt): make one with --pack"
            run_check "$(cd "$1" && pwd)" "${2:-$1/out}"
        fi
        ;;
    esac
}

main "$@"
