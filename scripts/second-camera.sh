#!/usr/bin/env bash
# A second camera, fitted as a user would fit theirs: `flowgate fit` with its defaults (the
# 20-minute budget, the detail branch) on balle1-vp9.avi from Debian's python3-mecavideo (a
# fixed camera in a physics classroom, 320x240, 295 frames; scripts/fetch-data.sh), then the
# same evaluation as the main camera's: every fault kind made at the camera's own 320x240 from
# held-out frames, other scenes scaled to 320x240, gated at full size; and the statistics
# baseline on the same sets.
#
#   frames 0..=199   fit (the last 20 held out for early stopping and calibration)
#   frames 200..=294 held-out normal test frames, and the source of the fault sets
#
# Environment: RUNS (default runs/), MINUTES (fit's --minutes, default 20). Outputs land in
# $RUNS/second-camera/: gate.fgm with its report, the sets, score CSVs, eval.json, baseline.json.
set -euo pipefail
cd "$(dirname "$0")/.."

out="${RUNS:-runs}/second-camera"
target=${CARGO_TARGET_DIR:-target}
flowgate=$target/release/flowgate
edge=$target/release/flowgate-edge
video=data/mecavideo/balle1-vp9.avi
kinds=(black white grey blur noise occlusion shift rotate upside-down jpeg)
step() { printf '\n==> %s\n' "$*"; }

bash scripts/fetch-data.sh
cargo build --release -q -p flowgate-trainer -p flowgate-edge

step "fit the gate on frames 0..=199 (flowgate fit, --minutes ${MINUTES:-20})"
"$flowgate" fit --input "$video" --frames 0..200 --minutes "${MINUTES:-20}" \
    --board firmware-configs/raspberry-pi-4.toml --out "$out/gate.fgm" --work "$out/fit"
"$edge" inspect "$out/gate.fgm"

step "held-out frames 200..=294 at 320x240, gray, and the faults made from them"
"$flowgate" frames "$video" --out "$out/sets/normal" --gray --first 200 --overwrite
for kind in "${kinds[@]}"; do
    rm -rf "$out/sets/$kind"
    "$flowgate" corrupt --input "$out/sets/normal" --out "$out/sets/$kind" --kind "$kind"
done
step "other scenes at the camera's size: vtest.avi (first 100 frames), tree.avi, Megamind.avi"
"$flowgate" frames data/opencv/vtest.avi --out "$out/sets/vtest" --size 320x240 --gray --last 99 --overwrite
"$flowgate" frames data/opencv/tree.avi --out "$out/sets/tree" --size 320x240 --gray --overwrite
"$flowgate" frames data/opencv/Megamind.avi --out "$out/sets/megamind" --size 320x240 --gray --overwrite

step "gate every set at full size"
mkdir -p "$out/scores"
sets=(normal "${kinds[@]}" vtest tree megamind)
ood_flags=()
baseline_flags=()
for set in "${sets[@]}"; do
    "$edge" score --model "$out/gate.fgm" --input "$out/sets/$set" --out "$out/scores/$set.csv"
    if [[ $set != normal ]]; then
        ood_flags+=(--ood "$out/scores/$set.csv")
        baseline_flags+=(--ood "$out/sets/$set")
    fi
done
"$flowgate" eval --model "$out/gate.fgm" --in-dist "$out/scores/normal.csv" "${ood_flags[@]}" \
    --json "$out/eval.json" --plots "$out/plots"

step "the statistics baseline on the same sets (trained on frames 0..=199 at 320x240)"
"$flowgate" frames "$video" --out "$out/sets/train" --gray --last 199 --overwrite
"$flowgate" baseline --train "$out/sets/train" --held-out 20 --in-dist "$out/sets/normal" \
    "${baseline_flags[@]}" --json "$out/baseline.json"
