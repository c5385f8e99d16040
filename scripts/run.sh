#!/usr/bin/env bash
# The main job, end to end. For now: fetch the real data and summarise it.
# It grows as the trainer, runtime and camera gate land.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/fetch-data.sh
cargo run --release -p flowgate-trainer -- data summary
