#!/usr/bin/env bash
# The paper's experiment, end to end: fetch the real data, train the paper's baseline flow (a
# checkerboard RealNVP) and the cycle-mask flow on Fashion-MNIST, calibrate their thresholds,
# evaluate them against MNIST (the paper's failure case: the baseline prefers MNIST), and
# score images with the edge runtime. (The main job, the camera gate, is scripts/run.sh.)
#
# Environment: FLOWGATE_STEPS overrides every config's step count (e.g. 200 for a quick look);
# RUNS (default runs/) is where the runs go.
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${RUNS:-runs}"
steps_flag=()
if [[ -n "${FLOWGATE_STEPS:-}" ]]; then
  steps_flag=(--steps "$FLOWGATE_STEPS")
fi

bash scripts/fetch-data.sh
cargo build --release -p flowgate-trainer -p flowgate-edge
flowgate=target/release/flowgate
edge=target/release/flowgate-edge

"$flowgate" data summary
for config in fmnist-realnvp fmnist-cycle-mask; do
  run="$runs/$config"
  echo "==> train $config"
  "$flowgate" train --config "configs/$config.toml" --out "$run" --resume "${steps_flag[@]}"
  "$flowgate" calibrate --run "$run" --rate 0.01
  echo "==> evaluate $config: Fashion-MNIST test (in-distribution) vs MNIST test (OOD)"
  "$flowgate" eval --model "$run/model.fgm" \
    --in-dist data/fashion-mnist/t10k-images-idx3-ubyte.gz \
    --ood data/mnist/t10k-images-idx3-ubyte \
    --json "$run/eval.json" --plots "$run/plots"
  "$edge" inspect "$run/model.fgm"
  "$edge" score --model "$run/model.fgm" --input data/mnist/t10k-images-idx3-ubyte --out "$run/mnist-scores.csv"
  echo "edge scores of MNIST test: $run/mnist-scores.csv"
done
