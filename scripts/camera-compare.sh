#!/usr/bin/env bash
# The camera gate's design choices, measured (the README's comparison table): for each
# architecture (configs/camera-*.toml), each OOD score --
#   bpd         bits/dim, one-sided (the plain flow likelihood)
#   typical     |bits/dim - median of held-out frames| (two-sided typicality)
#   complexity  bits/dim - deflate bits/dim of the frame (Serra et al. 2020)
#   ratio       bits/dim - bits/dim under a background flow trained on mutated frames
#               (Ren et al. 2019; configs/camera-realnvp-background.toml)
# -- AUROC per OOD set and, for the scores the gate computes, the share rejected at the
# threshold calibrated at 1% false rejects (f32 weights). Expects the frames and OOD sets
# of scripts/run.sh (run it first). Outputs: $RUNS/camera-compare/*.json and a table.
#
# Usage: scripts/camera-compare.sh [CONFIG ...]   (default: all camera configs)
# Environment: FLOWGATE_STEPS overrides the configs' steps; RUNS (default runs/).
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${RUNS:-runs}"
out="$runs/camera-compare"
frames=data/camera
flowgate=target/release/flowgate
steps_flag=()
if [[ -n "${FLOWGATE_STEPS:-}" ]]; then
  steps_flag=(--steps "$FLOWGATE_STEPS")
fi
configs=("$@")
if [[ ${#configs[@]} -eq 0 ]]; then
  configs=(camera-realnvp camera-cycle-mask camera-cycle-mask-l16 camera-cycle-mask-l4)
fi
[[ -d "$frames/ood" ]] || { echo "run scripts/run.sh first (it makes $frames)" >&2; exit 2; }
cargo build --release -p flowgate-trainer
mkdir -p "$out"

sets=(--ood "$frames/tree" --ood "$frames/megamind" --ood data/opencv)
for kind in black white grey blur noise occlusion shift rotate upside-down jpeg; do
  sets+=(--ood "$frames/ood/$kind")
done
train() {
  "$flowgate" train --config "configs/$1.toml" --out "$runs/$1" --resume "${steps_flag[@]}"
}

train camera-realnvp-background
for config in "${configs[@]}"; do
  echo "==> $config"
  train "$config"
  for score in bpd typical; do
    "$flowgate" calibrate --run "$runs/$config" --score "$score" --out "$out/$config-$score.fgm"
    "$flowgate" eval --model "$out/$config-$score.fgm" --in-dist "$frames/vtest-test" \
      "${sets[@]}" --json "$out/$config-$score.json"
  done
  "$flowgate" eval --model "$out/$config-bpd.fgm" --complexity --in-dist "$frames/vtest-test" \
    "${sets[@]}" --json "$out/$config-complexity.json"
  "$flowgate" eval --model "$out/$config-bpd.fgm" --background "$runs/camera-realnvp-background" \
    --in-dist "$frames/vtest-test" "${sets[@]}" --json "$out/$config-ratio.json"
done

python3 - "$out" "${configs[@]}" <<'EOF'
import json, sys
out, configs = sys.argv[1], sys.argv[2:]
print("\nAUROC per OOD set (rejected at 1% calibrated false rejects, where the gate computes the score)")
first = json.load(open(f"{out}/{configs[0]}-bpd.json"))
names = [row["name"] for row in first["ood"]]
print("| config | score | held-out rejected | " + " | ".join(names) + " | worst AUROC |")
print("| --- | --- | --- | " + " | ".join("---" for _ in names) + " | --- |")
for config in configs:
    for score in ["bpd", "typical", "complexity", "ratio"]:
        report = json.load(open(f"{out}/{config}-{score}.json"))
        held = report["in_dist"].get("rejected")
        cells = []
        for row in report["ood"]:
            cell = f'{row["auroc"]:.3f}'
            if row.get("rejected") is not None:
                cell += f' ({100 * row["rejected"]:.0f}%)'
            cells.append(cell)
        worst = min(row["auroc"] for row in report["ood"])
        held_cell = "-" if held is None else f"{100 * held:.1f}%"
        print(f"| {config} | {score} | {held_cell} | " + " | ".join(cells) + f" | {worst:.3f} |")
EOF
