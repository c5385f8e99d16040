#!/usr/bin/env bash
# Faults made at the camera's native resolution, fed to the gate at full size.
#
# The OOD sets of scripts/run.sh are corruptions of 128x96 frames. A real fault happens on the
# sensor's pixels: sensor noise or compression damage at 768x576 is averaged over 24x24 pixels
# when the gate reduces the frame to its 32x24 input, and may vanish. This script makes the
# same kinds of corruption from the held-out frames 600..=794 of vtest.avi at their native
# 768x576 (`flowgate corrupt`: the sizes of blur, shift and patches scale with the frame; noise
# sigma and JPEG quality do not), gates them at full size with `flowgate-edge score`, and
# prints the evaluation against the same frames, clean, at full size; then the same for the gate
# with a native-resolution detail branch that `flowgate detail` adds to it (trained on the
# frames 0..=599 the gate was trained on, at 768x576; it never sees a fault).
#
#   bash scripts/native-faults.sh [MODEL.fgm]      # default: models/camera-vtest.fgm
#
# Outputs in $RUNS/native-faults/ (RUNS defaults to runs/): frames, the detail gate, scores/
# and NAME.eval.json per gate.
# Needs the build (target/release) and data/ (scripts/fetch-data.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

model=${1:-models/camera-vtest.fgm}
out="${RUNS:-runs}/native-faults"
target=${CARGO_TARGET_DIR:-target}
flowgate=$target/release/flowgate
edge=$target/release/flowgate-edge
kinds=(black white grey blur noise occlusion shift rotate upside-down jpeg)
step() { printf '\n==> %s\n' "$*"; }

[[ -f data/opencv/vtest.avi ]] || bash scripts/fetch-data.sh
cargo build --release -q -p flowgate-trainer -p flowgate-edge

step "held-out frames 600..=794 at 768x576, gray"
if [[ ! -f $out/normal/frame-000794.png ]]; then
    rm -rf "$out/normal"
    "$flowgate" frames data/opencv/vtest.avi --out "$out/normal" --gray --first 600
fi

step "corruptions at 768x576"
for kind in "${kinds[@]}"; do
    if [[ ! -f $out/ood/$kind/frame-000794.png ]]; then
        rm -rf "$out/ood/$kind"
        "$flowgate" corrupt --input "$out/normal" --out "$out/ood/$kind" --kind "$kind"
    fi
done

step "the gate with a native-resolution detail branch (flowgate detail: frames 0..=599, 540..=599 held out, as the gate was calibrated)"
detail_model="$out/$(basename "${model%.fgm}")-detail.fgm"
if [[ ! -f $detail_model || $model -nt $detail_model ]]; then
    "$flowgate" detail --input data/opencv/vtest.avi --gate "$model" --out "$detail_model" \
        --work "$out/detail-run" --frames 0..600 --held-out 60
fi

step "frames 0..=599 at 768x576, gray (the statistics baseline's training frames)"
if [[ ! -f $out/train/frame-000599.png ]]; then
    rm -rf "$out/train"
    "$flowgate" frames data/opencv/vtest.avi --out "$out/train" --gray --last 599
fi

for gate in "$model" "$detail_model"; do
    label=$(basename "${gate%.fgm}")
    step "gate every set at full size: $label"
    mkdir -p "$out/scores/$label"
    "$edge" score --model "$gate" --input "$out/normal" --out "$out/scores/$label/normal.csv"
    ood_flags=()
    for kind in "${kinds[@]}"; do
        "$edge" score --model "$gate" --input "$out/ood/$kind" --out "$out/scores/$label/$kind.csv"
        ood_flags+=(--ood "$out/scores/$label/$kind.csv")
    done
    step "native-resolution faults against the clean held-out frames ($gate)"
    "$flowgate" eval --model "$gate" --in-dist "$out/scores/$label/normal.csv" "${ood_flags[@]}" \
        --json "$out/$label.eval.json"
done

step "the statistics baseline (flowgate baseline) on the same sets at 768x576"
baseline_flags=()
for kind in "${kinds[@]}"; do
    baseline_flags+=(--ood "$out/ood/$kind")
done
"$flowgate" baseline --train "$out/train" --held-out 60 --in-dist "$out/normal" \
    "${baseline_flags[@]}" --json "$out/baseline.eval.json"
