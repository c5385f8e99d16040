#!/usr/bin/env bash
# The main job, end to end: a gate for one fixed camera (vtest.avi from Debian's opencv-doc).
#
#  1. fetch the data (scripts/fetch-data.sh; installs ffmpeg where missing);
#  2. extract frames 0..=599 (training) and 600..=794 (held-out normal frames) at 128x96 gray;
#  3. build the OOD sets: 10 corruptions of the held-out frames (`flowgate corrupt`), frames of
#     two other videos, and the opencv sample photos;
#  4. train the teacher, a flow on embeddings (configs/camera-embedding.toml), then distil the
#     gate from it: the pixel flow configs/$CAMERA_CONFIG.toml trained on its own likelihood
#     plus following the teacher's score on clean and perturbed training frames
#     (`flowgate distil`); quantise it to int8 and calibrate the int8 model at 1% false
#     rejects on 60 held-out training frames (CAMERA_DISTIL=0 trains the pixel flow alone);
#  5. gate every set with the edge binary (`flowgate-edge score`) and summarise its scores:
#     per set AUROC and share rejected, plus score histograms and ROC curves.
#
# Environment: CAMERA_CONFIG (default camera-realnvp), CAMERA_DISTIL (1 default, 0: no
# teacher), CAMERA_SCORE (bpd | typical,
# default bpd), FLOWGATE_STEPS (override the config's steps, e.g. 200 for a quick look),
# CAMERA_WITHOUT (perturbation kinds the distillation leaves out, e.g. "occlusion": a
# leave-one-kind-out run; see `flowgate distil --help`), RUNS (default runs/). Outputs land in $RUNS/camera/: the model, score CSVs, eval.json, plots/.
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${RUNS:-runs}"
config="${CAMERA_CONFIG:-camera-realnvp}"
score="${CAMERA_SCORE:-bpd}"
out="$runs/camera"
frames=data/camera
without_flags=()
for kind in ${CAMERA_WITHOUT:-}; do
  without_flags+=(--without "$kind")
done
steps_flag=()
if [[ -n "${FLOWGATE_STEPS:-}" ]]; then
  steps_flag=(--steps "$FLOWGATE_STEPS")
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

if [[ "${CAMERA_DISTIL:-1}" == 1 ]]; then
  step "teacher: a flow on embeddings (configs/camera-embedding.toml)"
  "$flowgate" train --config configs/camera-embedding.toml --out "$runs/camera-teacher" --resume
  step "the gate: $config distilled from the teacher"
  "$flowgate" distil --teacher "$runs/camera-teacher" --student-config "configs/$config.toml" \
    --out "$out" --weight 1 --resume "${without_flags[@]}" "${steps_flag[@]}"
else
  step "train $config"
  mkdir -p "$out"
  "$flowgate" train --config "configs/$config.toml" --out "$out" --resume "${steps_flag[@]}"
fi

step "int8, calibrated at 1% false rejects ($score score)"
"$flowgate" export --run "$out" --out "$out/f32.fgm"
"$flowgate" quantize --model "$out/f32.fgm" --out "$out/int8-uncalibrated.fgm"
"$flowgate" calibrate --run "$out" --model "$out/int8-uncalibrated.fgm" --score "$score" \
  --rate 0.01 --out "$out/camera-vtest.fgm"
"$edge" inspect "$out/camera-vtest.fgm"

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
