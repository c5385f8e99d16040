#!/usr/bin/env bash
# Makes the committed Fashion-MNIST edge models in models/ from scratch, reproducibly:
#
#   for NAME in realnvp cycle-mask-l16 embedding:
#     train configs/fmnist-NAME.toml for $STEPS steps (seeded: the same weights every time),
#     calibrate the threshold at a 1% false-reject rate on the held-out training images,
#     models/fmnist-NAME.f32.fgm         the calibrated f32 model
#     models/fmnist-NAME.int8.fgm        its int8 quantisation, calibrated again (int8 moves
#                                        bits/dim)
#     models/fmnist-NAME.quantize.txt    `flowgate quantize`'s f32 vs int8 comparison
#     models/fmnist-NAME.{f32,int8}.eval.json
#                                        `flowgate eval` on the full Fashion-MNIST / MNIST
#                                        test sets (10k each): the README's table
#     models/fmnist-NAME.int8.eval-limit$LIMIT.json
#                                        `flowgate eval --limit $LIMIT` of the int8 model: the
#                                        row tests/tests/committed_models.rs recomputes
#     models/fmnist-NAME.int8.inspect.txt `flowgate-edge inspect` of the int8 model
#
# Environment:
#   STEPS       training steps (default 1000, what the configs say; 1000 is what CI-size CPUs
#               afford: about 15-20 minutes per model on 2 cores)
#   SKIP_TRAIN  1: never train, use runs/fmnist-NAME as it is. Otherwise a run whose
#               model.bpk exists and whose checkpoint-step.txt says $STEPS is not retrained
#               (training is seeded, so retraining it would give the same weights).
#   RUNS        where the run folders go (default runs/)
#   NAMES       which models (default "realnvp cycle-mask-l16 embedding")
#   LIMIT       images per set of the test's reference eval (default 1000; the test's N)
set -euo pipefail
cd "$(dirname "$0")/.."

STEPS="${STEPS:-1000}"
SKIP_TRAIN="${SKIP_TRAIN:-0}"
RUNS="${RUNS:-runs}"
LIMIT="${LIMIT:-1000}"
read -r -a NAMES <<<"${NAMES:-realnvp cycle-mask-l16 embedding}"
# The flow on embeddings trains its config's steps (about 5 minutes); STEPS is for the pixel
# flows.
steps_of() {
  if [[ "$1" == embedding ]]; then echo 3000; else echo "$STEPS"; fi
}

in_dist=data/fashion-mnist/t10k-images-idx3-ubyte.gz
ood=data/mnist/t10k-images-idx3-ubyte

if [[ ! -f "$in_dist" || ! -f "$ood" ]]; then
  bash scripts/fetch-data.sh
fi
cargo build --release -p flowgate-trainer -p flowgate-edge
flowgate=target/release/flowgate
edge=target/release/flowgate-edge
mkdir -p models

for name in "${NAMES[@]}"; do
  config="fmnist-$name"
  run="$RUNS/$config"
  out="models/fmnist-$name"

  trained_steps=""
  if [[ -f "$run/model.bpk" && -f "$run/checkpoint-step.txt" ]]; then
    trained_steps="$(tr -d '[:space:]' <"$run/checkpoint-step.txt")"
  fi
  if [[ "$SKIP_TRAIN" == 1 ]]; then
    echo "==> $config: SKIP_TRAIN=1, using $run as it is (trained ${trained_steps:-?} steps)"
    [[ -f "$run/model.bpk" ]] || { echo "$run/model.bpk is missing" >&2; exit 1; }
  elif [[ "$trained_steps" == "$(steps_of "$name")" ]]; then
    echo "==> $config: $run is already trained for $trained_steps steps, not retraining"
  else
    echo "==> $config: train $(steps_of "$name") steps"
    "$flowgate" train --config "configs/$config.toml" --out "$run" --steps "$(steps_of "$name")"
  fi

  echo "==> $config: calibrate, quantize"
  "$flowgate" calibrate --run "$run" --rate 0.01
  cp "$run/model.fgm" "$out.f32.fgm"
  "$flowgate" quantize --model "$out.f32.fgm" --out "$out.int8-uncalibrated.fgm" \
    --in-dist "$in_dist" --ood "$ood" --limit "$LIMIT" | tee "$out.quantize.txt"
  # Calibrate what ships: int8 moves bits/dim (a flow on embeddings by up to 1.6), so the
  # f32 threshold would not hold its false-reject rate.
  "$flowgate" calibrate --run "$run" --model "$out.int8-uncalibrated.fgm" --rate 0.01 \
    --out "$out.int8.fgm"
  rm "$out.int8-uncalibrated.fgm"

  echo "==> $config: evaluate (full test sets)"
  for precision in f32 int8; do
    "$flowgate" eval --model "$out.$precision.fgm" --in-dist "$in_dist" --ood "$ood" \
      --json "$out.$precision.eval.json"
  done
  echo "==> $config: the test's reference row (--limit $LIMIT)"
  "$flowgate" eval --model "$out.int8.fgm" --in-dist "$in_dist" --ood "$ood" \
    --limit "$LIMIT" --json "$out.int8.eval-limit$LIMIT.json"
  "$edge" inspect "$out.int8.fgm" | tee "$out.int8.inspect.txt"
done
