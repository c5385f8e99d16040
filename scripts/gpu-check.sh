#!/usr/bin/env bash
# One prepared GPU check: everything a GPU machine's time is for, in one run.
#
# For each paper-size config (configs/gpu/, or the configs given), it:
#   1. trains STEPS steps on the GPU (`flowgate train --device cuda`) and takes the images/s
#      flowgate prints;
#   2. scores the first 256 Fashion-MNIST test images with the trained weights on the GPU and
#      on the CPU (`flowgate score --device cuda|cpu`) and compares their bits/dim: the same
#      model must give the same log-likelihoods (tolerance 1e-3 bits/dim, about 3e-4 relative);
#   3. trains the same STEPS with bench/torch_reference.py on the same GPU for images/s,
#      where Python has PyTorch with CUDA (skipped, and said so, where it has not).
# With two or more GPUs it also runs a short `--devices 2` training. A summary table goes to
# stdout and to $OUT/summary.md.
#
# Needs: a flowgate built with CUDA (scripts/build-cuda.sh builds one offline:
# target/cuda/release/flowgate), the NVIDIA driver and NVRTC libraries, and Fashion-MNIST in
# data/fashion-mnist (scripts/fetch-data.sh; the machine itself needs no network).
#
# Usage: FLOWGATE=target/cuda/release/flowgate bash scripts/gpu-check.sh [CONFIG.toml ...]
# Environment: STEPS (default 300), OUT (default runs/gpu-check), FLOWGATE_DATA_DIR, DEVICE
# (default cuda; DEVICE=cpu walks the same steps on the CPU, to try the script without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."

flowgate=${FLOWGATE:-target/cuda/release/flowgate}
steps=${STEPS:-300}
device=${DEVICE:-cuda}
out=${OUT:-runs/gpu-check}
data_dir=${FLOWGATE_DATA_DIR:-data}
test_images=$data_dir/fashion-mnist/t10k-images-idx3-ubyte.gz
configs=("$@")
if [ ${#configs[@]} -eq 0 ]; then
    configs=(configs/gpu/*.toml)
fi
step() { printf '\n==> %s (%ds)\n' "$*" "$SECONDS"; }

for needed in "$flowgate" "$test_images" "$data_dir/fashion-mnist/train-images-idx3-ubyte.gz"; do
    if [ ! -e "$needed" ]; then
        echo "missing $needed (build: bash scripts/build-cuda.sh; data: bash scripts/fetch-data.sh)" >&2
        exit 1
    fi
done
mkdir -p "$out"

step "the machine"
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv
    gpus=$(nvidia-smi -L | wc -l)
else
    echo "no nvidia-smi: the driver's tools are missing (flowgate finds GPUs itself)"
    gpus=1
fi
"$flowgate" --version
torch_python=""
for python in "${PYTHON:-}" bench/.venv/bin/python python3; do
    if [ -n "$python" ] && command -v "$python" >/dev/null &&
        "$python" -c "import sys, numpy, torch; sys.exit(0 if '$device' == 'cpu' or torch.cuda.is_available() else 1)" 2>/dev/null; then
        torch_python=$python
        break
    fi
done
echo "PyTorch ($device): ${torch_python:-not available here (the PyTorch column is skipped)}"

# The largest |delta bits/dim| between two `flowgate score` CSVs of the same images.
max_delta() {
    paste -d, "$1" "$2" | awk -F, 'NR > 1 {
        d = $4 - $12; if (d < 0) d = -d; if (d > m) m = d; n++
    } END { if (n == 0) print "none"; else printf "%.2e\n", m }'
}

summary=$out/summary.md
{
    echo "| config | steps | flowgate $device img/s | final bits/dim | max $device-CPU delta bits/dim (256 images) | PyTorch $device img/s |"
    echo "|---|---|---|---|---|---|"
} >"$summary"
failed=0
for config in "${configs[@]}"; do
    name=$(basename "$config" .toml)
    run=$out/$name
    step "$name: $steps steps on $device"
    rm -rf "$run"
    # A pipe, not a process substitution: tee has finished writing the log when grep reads it.
    "$flowgate" train --config "$config" --device "$device" --steps "$steps" --out "$run" 2>&1 |
        tee "$run.train.log"
    trained=$(grep -E '^trained ' "$run.train.log" | tail -1)
    images_per_s=$(sed -E 's/.* ([0-9]+) images\/s.*/\1/' <<<"$trained")
    final_bpd=$(sed -E 's/.*: ([0-9.]+) bits\/dim.*/\1/' <<<"$trained")

    step "$name: the same weights on the GPU and on the CPU"
    "$flowgate" score --run "$run" --input "$test_images" --limit 256 --device "$device" \
        --out "$run.gpu.csv"
    "$flowgate" score --run "$run" --input "$test_images" --limit 256 --device cpu --out "$run.cpu.csv"
    delta=$(max_delta "$run.gpu.csv" "$run.cpu.csv")
    echo "max |delta bits/dim| GPU vs CPU: $delta"
    if [ "$delta" = none ] || awk -v d="$delta" 'BEGIN { exit !(d > 1e-3 || d != d) }'; then
        echo "FAILED: the GPU's log-likelihoods are not the CPU's" >&2
        failed=1
    fi

    torch_rate="skipped"
    if [ -n "$torch_python" ]; then
        step "$name: PyTorch on the same GPU"
        if "$torch_python" bench/torch_reference.py "$config" --steps "$steps" --device "$device" \
            --data-dir "$data_dir" >"$run.torch.log" 2>&1; then
            torch_rate=$(awk '/^images_per_s_all/ { print $2 }' "$run.torch.log")
        else
            torch_rate="failed (see $run.torch.log)"
        fi
    fi
    echo "| $name | $steps | $images_per_s | $final_bpd | $delta | $torch_rate |" >>"$summary"
done

if [ "$gpus" -ge 2 ]; then
    step "data parallel: --devices 2 (GPUs 0 and 1)"
    first=${configs[0]}
    "$flowgate" train --config "$first" --device "$device" --devices 2 --steps 50 \
        --out "$out/devices-2" 2>&1 | tee "$out/devices-2.log"
    echo "--devices 2 on $(basename "$first" .toml): $(grep -E '^trained ' "$out/devices-2.log" | tail -1)" >>"$summary"
fi

step "summary ($summary)"
cat "$summary"
exit "$failed"
