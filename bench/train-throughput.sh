#!/usr/bin/env bash
# Training throughput of flowgate (burn 0.22, flex CPU backend) side by side with a PyTorch CPU
# reference of the same architecture (bench/torch_reference.py), run back to back.
#
# Usage: bench/train-throughput.sh [CONFIG...] [--steps N] [--repeats R]
#                                  [--threads "T1 T2 ..."] [--no-build] [--libtorch BIN]
#
#   CONFIG       training configs (default: the four CPU configs below)
#   --steps N    training steps per run, for both (default 100)
#   --repeats R  runs of each per config and thread count (default 3); medians are reported
#   --threads    thread counts, one table row each (default "$(nproc) 1"): flowgate gets
#                RAYON_NUM_THREADS=T (burn flex's rayon pool), torch torch.set_num_threads(T)
#   --no-build   use the existing binaries in ${CARGO_TARGET_DIR:-target}/release
#   --libtorch BIN  also time BIN (built by scripts/build-libtorch.sh) with `--device libtorch`,
#                burn on PyTorch's C++ library, with OMP_NUM_THREADS=T; its first repeat's model
#                goes through the same PyTorch checks
#
# Per config, repeat and thread count: `flowgate train --steps N` (it prints images/s over all N steps,
# first step included, on stderr), then the PyTorch reference for the same N steps, timed
# the same way. After the first repeat it checks that both build the same model: tensor by
# tensor names and shapes against flowgate's model.bpk, the trainable parameter counts, the
# exported count from `flowgate-edge inspect`, and the log-likelihoods of 256 Fashion-MNIST
# test images with flowgate's trained weights loaded into the PyTorch model. A config with Glow's
# rotation start (conv_init = "rotation") is checked through a 2-step twin started from the
# reversal: the reference cannot rebuild the rotation's fixed permutation and signs.
#
# The PyTorch environment lives in bench/.venv (git-ignored), created on first use with
# `pip install -r bench/requirements.txt` (PyPI; set TORCH_INDEX_URL to use another index).
# Nothing here is part of CI.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

STEPS=100
REPEATS=3
BUILD=1
LIBTORCH_BIN=
THREADS="$(nproc) 1"
CONFIGS=()
while (($#)); do
    case "$1" in
    --steps) STEPS=$2; shift 2 ;;
    --repeats) REPEATS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --libtorch) LIBTORCH_BIN=$2; shift 2 ;;
    -h | --help) sed -n '2,33p' "$0"; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) CONFIGS+=("$1"); shift ;;
    esac
done
if ((${#CONFIGS[@]} == 0)); then
    CONFIGS=(configs/fmnist-realnvp.toml configs/fmnist-cycle-mask.toml
        configs/fmnist-cycle-mask-l16.toml configs/fmnist-glow.toml)
fi

# --- the PyTorch environment ------------------------------------------------------------------
VENV=bench/.venv
PY=$VENV/bin/python
if ! [[ -x $PY ]] || ! "$PY" -c 'import torch, numpy, tomllib' 2>/dev/null; then
    echo "== creating $VENV (PyTorch from ${TORCH_INDEX_URL:-PyPI}; ~3 GB from PyPI, a few minutes)" >&2
    python3 -c 'import tomllib' 2>/dev/null || { echo "need Python >= 3.11 (tomllib)" >&2; exit 1; }
    python3 -m venv "$VENV"
    if [[ -n ${TORCH_INDEX_URL:-} ]]; then
        "$VENV/bin/pip" install --index-url "$TORCH_INDEX_URL" torch
    fi
    "$VENV/bin/pip" install -r bench/requirements.txt
fi

# --- data and binaries ----------------------------------------------------------------------------
if ! ls data/fashion-mnist/train-images-idx3-ubyte* >/dev/null 2>&1 && [[ -z ${FLOWGATE_DATA_DIR:-} ]]; then
    bash scripts/fetch-data.sh
fi
if ((BUILD)); then
    echo "== cargo build --release -p flowgate-trainer -p flowgate-edge" >&2
    cargo build --release -p flowgate-trainer -p flowgate-edge >&2
fi
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
FLOWGATE=$TARGET/release/flowgate
EDGE=$TARGET/release/flowgate-edge
TEST_IMAGES=${FLOWGATE_DATA_DIR:-data}/fashion-mnist/t10k-images-idx3-ubyte.gz
[[ -f $TEST_IMAGES ]] || TEST_IMAGES=${TEST_IMAGES%.gz}

WORK=$(mktemp -d /tmp/flowgate-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
RESULTS=$WORK/results.tsv # config, impl, threads, images/s (all steps), images/s (after warm-up)
CHECKS=$WORK/checks.tsv   # config, key, value
: >"$RESULTS"
: >"$CHECKS"

# `key value` lines of torch_reference.py output -> value of key
kv() { awk -v k="$1" '$1 == k { print $2; exit }' "$2"; }
# run_logged LOG CMD...: runs CMD with its stderr in LOG; on failure prints LOG and stops.
run_logged() {
    local log=$1
    shift
    "$@" 2>"$log" || { cat "$log" >&2; exit 1; }
}
# The images/s that `flowgate train` printed into LOG.
images_per_s() { tr '\r' '\n' <"$1" | sed -n 's/^trained .*, \([0-9.]*\) images\/s$/\1/p' | tail -1; }
# check_model CONFIG RUN LOG WHAT: scores RUN's weights with flowgate (flex) and has the PyTorch
# reference load them and compare layout, counts and log-likelihoods; its report goes to LOG.
check_model() {
    local config=$1 run=$2 log=$3 what=$4
    "$FLOWGATE" score --run "$run" --input "$TEST_IMAGES" --limit 256 --out "$run/score.csv"
    "$PY" bench/torch_reference.py "$config" --check-only --bpk "$run/model.bpk" \
        --parity-csv "$run/score.csv" --parity-input "$TEST_IMAGES" >"$log" || {
        cat "$log" >&2
        echo "$name: the PyTorch reference does not match $what" >&2
        exit 1
    }
}

START_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== $START_DATE, $(nproc) cores, load average $LOAD_START; steps $STEPS, repeats $REPEATS, threads: $THREADS" >&2

for config in "${CONFIGS[@]}"; do
    name=$(basename "$config" .toml)
    for ((rep = 1; rep <= REPEATS; rep++)); do
        run=$WORK/$name-$rep
        line="$name #$rep:"
        for threads in $THREADS; do
            run_logged "$run.flowgate.log" env RAYON_NUM_THREADS="$threads" \
                "$FLOWGATE" train --config "$config" --out "$run" --steps "$STEPS"
            fg=$(images_per_s "$run.flowgate.log")
            printf '%s\tflowgate\t%s\t%s\t-\n' "$name" "$threads" "$fg" >>"$RESULTS"
            # Passive OpenMP waiting: with spinning workers, 2 threads on 2 busy cores ran ~10x
            # slower than 1 thread here. flowgate's rayon pool sleeps when idle.
            OMP_WAIT_POLICY=PASSIVE "$PY" bench/torch_reference.py "$config" --steps "$STEPS" \
                --threads "$threads" >"$run.torch$threads.log"
            all=$(kv images_per_s_all "$run.torch$threads.log")
            warm=$(kv images_per_s_after_warmup "$run.torch$threads.log")
            printf '%s\ttorch\t%s\t%s\t%s\n' "$name" "$threads" "$all" "$warm" >>"$RESULTS"
            line+=" [$threads thr] flowgate $fg, torch $all ($warm after warm-up)"
            if [[ -n $LIBTORCH_BIN ]]; then
                run_logged "$run.libtorch.log" env OMP_NUM_THREADS="$threads" OMP_WAIT_POLICY=PASSIVE \
                    "$LIBTORCH_BIN" train --config "$config" --out "$run-libtorch" --steps "$STEPS" \
                    --device libtorch
                lt=$(images_per_s "$run.libtorch.log")
                printf '%s\tlibtorch\t%s\t%s\t-\n' "$name" "$threads" "$lt" >>"$RESULTS"
                line+=", flowgate on libtorch $lt"
            fi
            line+=" img/s;"
        done
        echo "$line" >&2
        if ((rep == 1)); then
            # Same model? Layout and counts, then log-likelihoods with flowgate's trained weights.
            check_config=$config check_run=$run check_lt_run=$run-libtorch
            if grep -Eq '^conv_init *= *"rotation"' "$config"; then
                # Glow's rotation start: its fixed permutation and signs are not in the .bpk, so
                # the reference cannot load those weights. Check the same architecture started
                # from the reversal instead, trained for 2 steps (a step costs the same).
                check_config=$WORK/$name-reverse.toml check_run=$WORK/$name-reverse
                check_lt_run=$WORK/$name-reverse-libtorch
                sed -E 's/^conv_init *= *"rotation"/conv_init = "reverse"/' "$config" >"$check_config"
                echo "$name: conv_init = \"rotation\"; checking a 2-step conv_init = \"reverse\" twin" >&2
                run_logged "$check_run.log" "$FLOWGATE" train --config "$check_config" \
                    --out "$check_run" --steps 2
                if [[ -n $LIBTORCH_BIN ]]; then
                    run_logged "$check_lt_run.log" "$LIBTORCH_BIN" train --config "$check_config" \
                        --out "$check_lt_run" --steps 2 --device libtorch
                fi
            fi
            check_model "$check_config" "$check_run" "$run.check.log" "flowgate's model"
            exported=$("$EDGE" inspect "$check_run/model.fgm" | awk '$1 == "parameters" { print $2 }')
            {
                printf '%s\tflowgate_params\t%s\n' "$name" "$(kv flowgate_params "$run.check.log")"
                printf '%s\ttorch_params\t%s\n' "$name" "$(kv torch_params "$run.check.log")"
                printf '%s\texported_params\t%s\n' "$name" "$exported"
                printf '%s\ttorch_expected_exported\t%s\n' "$name" "$(kv torch_expected_exported_params "$run.check.log")"
                printf '%s\tparity_rel\t%s\n' "$name" "$(kv parity_max_rel_diff "$run.check.log")"
                printf '%s\tlayout\t%s\n' "$name" "$(kv tensor_layout_match "$run.check.log")"
            } >>"$CHECKS"
            if [[ -n $LIBTORCH_BIN ]]; then
                # The libtorch-trained weights, scored by the flex build and by PyTorch.
                check_model "$check_config" "$check_lt_run" "$run.libtorch-check.log" \
                    "the libtorch-trained model"
                printf '%s\tlibtorch_parity_rel\t%s\n' "$name" \
                    "$(kv parity_max_rel_diff "$run.libtorch-check.log")" >>"$CHECKS"
            fi
        fi
        rm -rf "$run" "$run-libtorch" "$WORK/$name-reverse" "$WORK/$name-reverse-libtorch"
    done
done

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
"$PY" - "$RESULTS" "$CHECKS" "$STEPS" "$REPEATS" "$THREADS" "$START_DATE" "$LOAD_START" "$LOAD_END" <<'EOF'
import statistics, sys
from collections import defaultdict

results, checks, steps, repeats, threads, date, load0, load1 = sys.argv[1:]
threads = threads.split()
runs = defaultdict(list)
order = []
for line in open(results):
    name, impl, thr, rate, warm = line.rstrip("\n").split("\t")
    if name not in order:
        order.append(name)
    runs[(name, impl, thr)].append(float(rate))
    if warm != "-":
        runs[(name, impl + "-warm", thr)].append(float(warm))
check = defaultdict(dict)
for line in open(checks):
    name, key, value = line.rstrip("\n").split("\t")
    check[name][key] = value

med = lambda xs: statistics.median(xs) if xs else float("nan")
libtorch = any(impl == "libtorch" for (_, impl, _) in runs)
cols = ["config", "params (flowgate = torch)", "threads", "flowgate img/s", "torch img/s", "flowgate / torch"]
if libtorch:
    cols += ["flowgate on libtorch img/s", "libtorch / torch"]
print()
print(f"Training throughput, {date}: median of {repeats} runs of {steps} steps each, batch 64,")
print(f"images/s over all steps (first step included, as `flowgate train` reports it).")
print(f"SHARED, NOISY MACHINE: load average {load0} at the start, {load1} at the end;")
print(f"the two implementations ran back to back, so both saw similar (not equal) load.")
print()
print("| " + " | ".join(cols) + " |")
print("|" + "|".join("---" for _ in cols) + "|")
for name in order:
    c = check[name]
    fp, tp = c.get("flowgate_params", "?"), c.get("torch_params", "?")
    params = fp if fp == tp else f"{fp} != {tp}"
    for t in threads:
        fg = med(runs[(name, "flowgate", t)])
        tr = med(runs[(name, "torch", t)])
        row = f"| {name} | {params} | {t} | {fg:.0f} | {tr:.0f} | {fg / tr:.2f} |"
        if libtorch:
            lt = med(runs[(name, "libtorch", t)])
            row += f" {lt:.0f} | {lt / tr:.2f} |"
        print(row)
print()
print("All runs (images/s):")
for name in order:
    parts = []
    for t in threads:
        parts.append(f"{t} thr: flowgate {[round(x) for x in runs[(name, 'flowgate', t)]]}, "
                     f"torch {[round(x) for x in runs[(name, 'torch', t)]]}"
                     f" (after warm-up {[round(x) for x in runs[(name, 'torch-warm', t)]]})"
                     + (f", flowgate on libtorch {[round(x) for x in runs[(name, 'libtorch', t)]]}"
                        if libtorch else ""))
    print(f"  {name}: " + "; ".join(parts))
print()
print("Same model checks (first repeat's flowgate run):")
for name in order:
    c = check[name]
    print(f"  {name}: tensors match by name and shape: {c.get('layout')}; trainable params "
          f"flowgate {c.get('flowgate_params')} = torch {c.get('torch_params')}; exported .fgm "
          f"{c.get('exported_params')} (expected {c.get('torch_expected_exported')}); "
          f"log-likelihood max rel. diff on 256 test images {c.get('parity_rel')}"
          + (f"; libtorch-trained model: {c.get('libtorch_parity_rel')}" if libtorch else ""))
EOF
