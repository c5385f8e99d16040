#!/usr/bin/env bash
# Faults made at the camera's native resolution, fed to the gate at full size.
#
# The OOD sets of scripts/run.sh are corruptions of 128x96 frames. A real fault happens on the
# sensor's pixels: sensor noise or compression damage at 768x576 is averaged over 24x24 pixels
# when the gate reduces the frame to its 32x24 input, and may vanish. This script makes the
# same kinds of corruption from the held-out frames 600..=794 of vtest.avi at their native
# 768x576 (`flowgate corrupt`: the sizes of blur, shift and patches scale with the frame; noise
# sigma and JPEG quality do not), gates them at full size with `flowgate-edge score`, and
# prints the evaluation against the same frames, clean, at full size.
#
#   bash scripts/native-faults.sh [MODEL.fgm]      # default: models/camera-vtest.fgm
#
# Outputs in $RUNS/native-faults/ (RUNS defaults to runs/): frames, scores/, eval.json.
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

step "gate every set at full size"
mkdir -p "$out/scores"
"$edge" score --model "$model" --input "$out/normal" --out "$out/scores/normal.csv"
ood_flags=()
for kind in "${kinds[@]}"; do
    "$edge" score --model "$model" --input "$out/ood/$kind" --out "$out/scores/$kind.csv"
    ood_flags+=(--ood "$out/scores/$kind.csv")
done

step "native-resolution faults against the clean held-out frames ($model)"
"$flowgate" eval --model "$model" --in-dist "$out/scores/normal.csv" "${ood_flags[@]}" \
    --json "$out/eval.json"
