#!/usr/bin/env bash
# Per-frame latency of every committed model in flowgate's gate and in ONNX Runtime, tract and
# PyTorch, on the same network (the model exported with `flowgate onnx`), batch 1, one thread.
#
#   bash bench/inference.sh [--rounds R] [--seconds S] [--models "a b"] [--no-build]
#
# Each round runs every contender for every model in a fresh process (the order of the
# contenders shuffled per round), each timing about S seconds of frames after a warm-up;
# the table gives each contender's median over the rounds of its per-process medians, the
# ratio to flowgate's, and the share of one core's measured multiply-accumulate peak
# (`latency peak`: twelve independent FMA chains). Every contender must compute the same
# bits/dim (checked to 1e-3 relative on the first frames). A gate with a native-resolution
# detail branch (camera-vtest-detail) scores whole 768x576 gray frames of vtest.avi (frames
# 600..663, extracted with `flowgate frames`): flowgate gets the bytes as a camera hands them
# over, the ONNX engines the same frame as float32 levels; every engine makes the thumbnail and
# the patches itself, and must compute the same combined ood_score. Not part of CI: it needs
# bench/.venv (onnxruntime, torch, onnx2torch; see bench/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=5
seconds=2
models="camera-vtest camera-vtest-detail fmnist-realnvp.f32 fmnist-realnvp.int8 fmnist-cycle-mask-l16.f32 fmnist-cycle-mask-l16.int8 fmnist-embedding.f32 fmnist-embedding.int8"
build=true
while (($#)); do
    case $1 in
        --rounds) rounds=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --models) models=$2; shift 2 ;;
        --no-build) build=false; shift ;;
        *) echo "inference.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

target=${CARGO_TARGET_DIR:-target}
work=$target/bench-inference
mkdir -p "$work"
venv=bench/.venv
if [[ ! -x $venv/bin/python ]]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q -r bench/requirements.txt
fi
if $build; then
    cargo build --release -q -p flowgate-trainer --bin flowgate
    # tract fully optimised, as its users build it (the release profile builds it at
    # opt-level 1 for the tests; see the workspace Cargo.toml).
    cargo build --profile bench-tract -q -p flowgate-onnx --example latency
fi
[[ -d data/fashion-mnist ]] || bash scripts/fetch-data.sh
latency=$target/bench-tract/examples/latency

for model in $models; do
    [[ -f models/$model.fgm ]] || { echo "inference.sh: no models/$model.fgm (--models takes names from models/)" >&2; exit 2; }
    "$target/release/flowgate" onnx --model "models/$model.fgm" --out "$work/$model.onnx" 2>/dev/null
    if [[ $model == *-detail ]]; then
        [[ -f $work/vtest-native/frame-000663.png ]] ||
            "$target/release/flowgate" frames data/opencv/vtest.avi --out "$work/vtest-native" \
                --gray --first 600 --last 663 --overwrite >/dev/null
        "$latency" frames "models/$model.fgm" "$work/vtest-native" "$work/$model.levels" 64
    else
        "$latency" levels "models/$model.fgm" "$work/$model.levels" 64
    fi
done

results=$work/results.jsonl
: >"$results"
for round in $(seq "$rounds"); do
    for model in $models; do
        for engine in $(printf '%s\n' flowgate flowgate-scalar tract onnxruntime pytorch | shuf); do
            case $engine in
                onnxruntime | pytorch)
                    line=$(OMP_NUM_THREADS=1 "$venv/bin/python" bench/inference.py "$engine" \
                        "$work/$model.onnx" "$work/$model.levels" "$seconds") ;;
                *)
                    line=$("$latency" time "$engine" "models/$model.fgm" "$work/$model.onnx" \
                        "$work/$model.levels" "$seconds") ;;
            esac
            echo "{\"round\":$round,\"model\":\"$model\",\"result\":$line}" >>"$results"
        done
    done
    printf 'round %s of %s done\n' "$round" "$rounds" >&2
done
peak=$("$latency" peak 3)

"$venv/bin/python" - "$results" "$peak" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
peak = json.loads(sys.argv[2])["peak_macs_per_s"]
engines = ["flowgate", "flowgate-scalar", "onnxruntime", "tract", "pytorch"]
models = list(dict.fromkeys(r["model"] for r in rows))
print(f"one core's measured f32 peak: {peak / 1e9:.1f} GMAC/s; medians over {max(r['round'] for r in rows)} rounds, microseconds per frame (ratio to flowgate; % of peak)")
print("| model (MACs/frame) | " + " | ".join(engines) + " |")
print("|---" * (len(engines) + 1) + "|")
for model in models:
    macs = next(r["result"]["macs"] for r in rows if r["model"] == model and "macs" in r["result"])
    med = {}
    bpd = {}
    for e in engines:
        times = [r["result"]["median_us"] for r in rows if r["model"] == model and r["result"]["engine"] == e]
        if times:
            med[e] = statistics.median(times)
            bpd[e] = [r["result"].get("ood_score", r["result"].get("bits_per_dim")) for r in rows if r["model"] == model and r["result"]["engine"] == e][0]
    base = med.get("flowgate")
    ref = bpd.get("flowgate")
    cells = []
    for e in engines:
        if e not in med:
            cells.append("-")
            continue
        agree = all(abs(a - b) <= 1e-3 * max(1.0, abs(b)) for a, b in zip(bpd[e], ref))
        share = macs / (med[e] * 1e-6) / peak
        ratio = "" if e == "flowgate" else f" ({med[e] / base:.2f}x)"
        cell = f"{med[e]:,.0f}{ratio}; {100 * share:.0f}%" + ("" if agree else " DIFFERENT")
        cells.append(cell)
    print(f"| {model} ({macs / 1e6:.2f} M) | " + " | ".join(cells) + " |")
PY
