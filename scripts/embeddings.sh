#!/usr/bin/env bash
# Flows on embeddings and distillation, measured against the best pixel flows (the README's
# table for issue 6). For Fashion-MNIST -> MNIST and for the camera gate's OOD sets:
#   pixel      the best pixel flow so far: models/fmnist-cycle-mask-l16.int8.fgm as
#              committed, and for the camera configs/camera-realnvp.toml trained alone (the
#              gate before distillation; models/camera-vtest.fgm is now the distilled one)
#   embedding  configs/{fmnist,camera}-embedding.toml: a CNN pretrained on the data (labels,
#              or telling flips apart), frozen, and a flow on its embedding
#   distilled  a pixel student trained by `flowgate distil --weight 1` to follow the
#              embedding flow's score: configs/{fmnist,camera}-realnvp.toml, and for
#              Fashion-MNIST also configs/fmnist-cycle-mask-l16.toml
#   student    the same student with --weight 0: trained identically, without the teacher
#   fixed      (camera) the ablation: --fixed-targets, perturbed frames pushed out without
#              the teacher's scores
# Each one is exported as int8, calibrated at 1% false rejects on its own held-out scores and
# scored by the edge runtime. Prints AUROC per set, the share rejected, params, MACs per
# frame and the int8 file size. Expects the camera frames and OOD sets of scripts/run.sh.
#
# Environment: STEPS (default 1000) and L16_STEPS (default 600): the Fashion-MNIST realnvp
# and cycle-mask-l16 students' steps (the camera student trains its config's 1500); RUNS
# (default runs/). Outputs land in $RUNS/embeddings/. Takes about two hours on 2 cores (the
# distillation runs dominate: 25-45 minutes each).
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${RUNS:-runs}"
steps="${STEPS:-1000}"
l16_steps="${L16_STEPS:-600}"
out="$runs/embeddings"
frames=data/camera
flowgate=target/release/flowgate
edge=target/release/flowgate-edge
fmnist=data/fashion-mnist/t10k-images-idx3-ubyte.gz
mnist=data/mnist/t10k-images-idx3-ubyte
[[ -d "$frames/ood" ]] || { echo "run scripts/run.sh first (it makes $frames)" >&2; exit 2; }
bash scripts/fetch-data.sh
cargo build --release -p flowgate-trainer -p flowgate-edge
mkdir -p "$out"

camera_sets=(--ood "$frames/tree" --ood "$frames/megamind" --ood data/opencv)
for kind in black white grey blur noise occlusion shift rotate upside-down jpeg; do
  camera_sets+=(--ood "$frames/ood/$kind")
done

# ship RUN NAME: int8, calibrated on its own scores, evaluated by the runtime.
ship() {
  local run="$1" name="$2" task="$3"
  "$flowgate" export --run "$run" --out "$out/$name.f32.fgm"
  "$flowgate" quantize --model "$out/$name.f32.fgm" --out "$out/$name.uncalibrated.fgm"
  "$flowgate" calibrate --run "$run" --model "$out/$name.uncalibrated.fgm" --rate 0.01 \
    --out "$out/$name.int8.fgm"
  evaluate "$out/$name.int8.fgm" "$name" "$task"
}

evaluate() {
  local model="$1" name="$2" task="$3"
  if [[ "$task" == fmnist ]]; then
    "$flowgate" eval --model "$model" --in-dist "$fmnist" --ood "$mnist" --json "$out/$name.json"
  else
    "$flowgate" eval --model "$model" --in-dist "$frames/vtest-test" "${camera_sets[@]}" \
      --json "$out/$name.json"
  fi
  "$edge" inspect "$model" > "$out/$name.inspect.txt"
  stat -c %s "$model" > "$out/$name.bytes"
}

for task in fmnist camera; do
  echo "==> $task: flow on embeddings"
  "$flowgate" train --config "configs/$task-embedding.toml" --out "$runs/$task-embedding" --resume
  ship "$runs/$task-embedding" "$task-embedding" "$task"
  # Students: config:steps (empty steps: the config's own).
  students=("realnvp:")
  [[ "$task" == fmnist ]] && students=("realnvp:$steps" "cycle-mask-l16:$l16_steps")
  for entry in "${students[@]}"; do
    student="${entry%%:*}" student_steps=()
    [[ -n "${entry#*:}" ]] && student_steps=(--steps "${entry#*:}")
    for weight in 0 1; do
      echo "==> $task: $student student, distillation weight $weight"
      run="$runs/distil-$task-$student-w$weight"
      if [[ ! -f "$run/model.bpk" ]]; then
        "$flowgate" distil --teacher "$runs/$task-embedding" \
          --student-config "configs/$task-$student.toml" --out "$run" --weight "$weight" \
          "${student_steps[@]}"
      fi
      ship "$run" "$task-$student-w$weight" "$task"
    done
  done
  if [[ "$task" == camera ]]; then
    echo "==> camera: the ablation: perturbed frames with fixed targets, no teacher scores"
    run="$runs/distil-camera-realnvp-fixed"
    if [[ ! -f "$run/model.bpk" ]]; then
      "$flowgate" distil --teacher "$runs/camera-embedding" \
        --student-config configs/camera-realnvp.toml --out "$run" --weight 1 --fixed-targets
    fi
    ship "$run" camera-realnvp-fixed camera
  fi
done
evaluate models/fmnist-cycle-mask-l16.int8.fgm fmnist-pixel fmnist
# The camera gate before distillation: the same RealNVP trained on its likelihood alone.
"$flowgate" train --config configs/camera-realnvp.toml --out "$runs/camera-realnvp" --resume
ship "$runs/camera-realnvp" camera-pixel camera

python3 - "$out" <<'EOF'
import json, re, sys
out = sys.argv[1]
rows = {
    "fmnist": [("pixel", "best pixel flow: cycle-mask-l16 (committed)"),
               ("embedding", "flow on embeddings"),
               ("realnvp-w1", "realnvp student, distilled"),
               ("realnvp-w0", "realnvp student, no teacher"),
               ("cycle-mask-l16-w1", "cycle-mask-l16 student, distilled"),
               ("cycle-mask-l16-w0", "cycle-mask-l16 student, no teacher")],
    "camera": [("pixel", "pixel flow alone: camera-realnvp (the gate before distillation)"),
               ("embedding", "flow on embeddings"),
               ("realnvp-w1", "realnvp student, distilled"),
               ("realnvp-w0", "realnvp student, no teacher"),
               ("realnvp-fixed", "realnvp student, fixed targets (ablation)")],
}
for task in ("fmnist", "camera"):
    print(f"\n{task}: AUROC (share rejected at the model's 1% threshold)")
    header = None
    for key, label in rows[task]:
        name = f"{task}-{key}"
        ev = json.load(open(f"{out}/{name}.json"))
        inspect = open(f"{out}/{name}.inspect.txt").read()
        params = re.search(r"parameters\s+(\d+)", inspect).group(1)
        macs = int(re.search(r"MACs/frame\s+(\d+)", inspect).group(1)) / 1e6
        size = int(open(f"{out}/{name}.bytes").read())
        sets = [o["name"] for o in ev["ood"]]
        if header is None:
            header = sets
            print("| model | params | MMAC | int8 bytes | normal test frames rejected | " + " | ".join(sets) + " |")
            print("|" + " --- |" * (5 + len(sets)))
        cells = [f"{o['auroc']:.3f} ({100 * o['rejected']:.0f}%)" for o in ev["ood"]]
        print(f"| {label} | {params} | {macs:.2f} | {size} | "
              f"{100 * ev['in_dist']['rejected']:.1f}% | " + " | ".join(cells) + " |")
EOF
