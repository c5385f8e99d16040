#!/usr/bin/env bash
# The main job, end to end: a gate for one fixed camera (vtest.avi from Debian's opencv-doc).
#
#  1. fetch the data (scripts/fetch-data.sh; installs ffmpeg where missing);
#  2. extract frames 600..=794 (held-out normal frames) at 128x96 gray, and 0..=599 for the
#     statistics baseline;
#  3. build the OOD sets: 10 corruptions of the held-out frames (`flowgate corrupt`), frames of
#     two other videos, and the opencv sample photos;
#  4. fit the gate with `flowgate fit` on frames 0..=599 of vtest.avi, as a user fits their
#     camera: the teacher (a flow on embeddings, configs/camera-embedding.toml), the gate
#     distilled from it (configs/$CAMERA_CONFIG.toml on 32x24 thumbnails), int8, calibrated at
#     1% false rejects on frames 540..=599 (the last tenth, held out) -> $RUNS/camera/camera-vtest.fgm;
#     `--minutes 0` lets every recipe run all its steps. Then the same fit again with the
#     native-resolution detail branch: it continues the finished trainings (none runs again)
#     and adds the branch -> $RUNS/camera/camera-vtest-detail.fgm (evaluated at 768x576 by
#     scripts/native-faults.sh);
#  5. gate every set with the edge binary (`flowgate-edge score`) and summarise its scores:
#     per set AUROC and share rejected, plus score histograms and ROC curves; then the
#     statistics baseline (`flowgate baseline`) on the same sets.
#
# Environment: SPLIT (fit's --split: end, the default, or spread), CAMERA_CONFIG (the gate's
# recipe, default camera-realnvp), FLOWGATE_STEPS
# (override the recipes' steps, e.g. 200 for a quick look), CAMERA_WITHOUT (perturbation kinds
# the distillation leaves out, e.g. "occlusion": a leave-one-kind-out run; see `flowgate fit
# --help`), RUNS (default runs/). Outputs land in $RUNS/camera/: the gates, fit's work folder
# and reports, score CSVs, eval.json, baseline.json, plots/.
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${RUNS:-runs}"
config="${CAMERA_CONFIG:-camera-realnvp}"
out="$runs/camera"
frames=data/camera
fit_flags=(--input data/opencv/vtest.avi --frames 0..600 --work "$out/fit" --minutes 0
  --student-config "configs/$config.toml" --board firmware-configs/raspberry-pi-4.toml
  --split "${SPLIT:-end}")
for kind in ${CAMERA_WITHOUT:-}; do
  fit_flags+=(--without "$kind")
done
if [[ -n "${FLOWGATE_STEPS:-}" ]]; then
  fit_flags+=(--steps "$FLOWGATE_STEPS")
fi
step() { printf '\n==> %s\n' "$*"; }

step "data"
bash scripts/fetch-data.sh
step "build (release)"
cargo build --release -p flowgate-trainer -p flowgate-edge
flowgate=${CARGO_TARGET_DIR:-target}/release/flowgate
edge=${CARGO_TARGET_DIR:-target}/release/flowgate-edge

step "frames: 128x96 gray"
"$flowgate" frames data/opencv/vtest.avi --out "$frames/vtest-train" --size 128x96 --gray --last 599 --overwrite
"$flowgate" frames data/opencv/vtest.avi --out "$frames/vtest-test" --size 128x96 --gray --first 600 --overwrite
"$flowgate" frames data/opencv/tree.avi --out "$frames/tree" --size 128x96 --gray --overwrite
"$flowgate" frames data/opencv/Megamind.avi --out "$frames/megamind" --size 128x96 --gray --overwrite

step "OOD sets from the held-out frames"
kinds=(black white grey blur noise occlusion shift rotate upside-down jpeg)
for kind in "${kinds[@]}"; do
  "$flowgate" corrupt --input "$frames/vtest-test" --out "$frames/ood/$kind" --kind "$kind"
done

step "the gate: flowgate fit on frames 0..=599 of vtest.avi (540..=599 held out)"
"$flowgate" fit "${fit_flags[@]}" --no-detail --out "$out/camera-vtest.fgm"
"$edge" inspect "$out/camera-vtest.fgm"
step "the same gate with the native-resolution detail branch (the trainings continue: none runs again)"
"$flowgate" fit "${fit_flags[@]}" --out "$out/camera-vtest-detail.fgm"

step "gate every set with flowgate-edge"
mkdir -p "$out/scores"
sets=("vtest-test:$frames/vtest-test" "tree:$frames/tree" "megamind:$frames/megamind" "photos:data/opencv")
for kind in "${kinds[@]}"; do
  sets+=("$kind:$frames/ood/$kind")
done
for entry in "${sets[@]}"; do
  name="${entry%%:*}"
  # Exit code 1 means some inputs were unreadable and skipped (reported); still a result.
  "$edge" score --model "$out/camera-vtest.fgm" --input "${entry#*:}" --out "$out/scores/$name.csv" || [[ $? -eq 1 ]]
done

step "summary: held-out normal frames (vtest-test) against each OOD set"
ood_flags=()
for entry in "${sets[@]:1}"; do
  ood_flags+=(--ood "$out/scores/${entry%%:*}.csv")
done
"$flowgate" eval --model "$out/camera-vtest.fgm" --in-dist "$out/scores/vtest-test.csv" \
  "${ood_flags[@]}" --json "$out/eval.json" --plots "$out/plots"

step "the statistics baseline on the same sets (flowgate baseline: what a few lines of OpenCV do)"
baseline_flags=()
for entry in "${sets[@]:1}"; do
  baseline_flags+=(--ood "${entry#*:}")
done
"$flowgate" baseline --train "$frames/vtest-train" --held-out 60 --in-dist "$frames/vtest-test" \
  "${baseline_flags[@]}" --json "$out/baseline.json"
echo "model: $out/camera-vtest.fgm; scores: $out/scores/; plots: $out/plots/"
