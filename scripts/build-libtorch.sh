#!/usr/bin/env bash
# Builds `flowgate` with burn's LibTorch backend (feature `libtorch`): target/libtorch/release/
# flowgate, whose `--device libtorch` trains on the CPU through PyTorch's own C++ kernels.
#
# Why a separate build: burn 0.22.1's LibTorch backend (burn-tch, torch-sys 0.22) compiles a C++
# wrapper against PyTorch's headers and links PyTorch's shared libraries, and it needs PyTorch
# 2.9.0 exactly (newer ones dropped functions its wrapper calls). So this script
#   1. makes a venv with torch==2.9.0 from PyPI (about 7 GB installed: PyPI's Linux wheel is
#      the CUDA build and brings NVIDIA's libraries; set TORCH_INDEX_URL to a CPU-only index
#      such as https://download.pytorch.org/whl/cpu for a smaller one), unless
#      FLOWGATE_LIBTORCH_VENV names one that already has it;
#   2. builds with torch-sys's LIBTORCH_USE_PYTORCH=1 (it asks that venv's Python where
#      PyTorch's headers and libraries are), and with burn-tch patched by
#      trainer/patches/burn-tch-0.22.1.patch: batch norm, the ReLU gradient and the 2-d
#      convolution's gradients run on PyTorch's own kernels (ATen's backward functions, which
#      tch does not wrap, reached through a small C++ file) instead of burn's composite rules;
#      1.3x faster training on the paper's ResNet (bench/README.md). The patch is applied to a
#      copy of the registry's crate in the target folder and passed to cargo as a [patch]
#      through --config; Cargo.lock is restored afterwards, so the workspace never sees it;
#   3. links the binary with an rpath to PyTorch's library folder, so it runs without
#      LD_LIBRARY_PATH (the venv must stay where it is);
#   4. runs trainer/tests/libtorch_backend.rs (flex and libtorch train the same model, and the
#      patched ops match flex's forward and backward), then, after the link, trains two steps
#      with `--device libtorch` to show the binary runs.
# Nothing here is part of CI (the download is too large). bench/train-throughput.sh --libtorch
# times the binary beside the flex backend and PyTorch.
#
# First build: about 15 minutes on 2 cores. Usage: bash scripts/build-libtorch.sh
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
export CARGO_TARGET_DIR=${FLOWGATE_LIBTORCH_TARGET:-target/libtorch}
venv=${FLOWGATE_LIBTORCH_VENV:-$CARGO_TARGET_DIR/venv}
torch_version=2.9.0 # torch-sys 0.22's TORCH_VERSION

if ! "$venv/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$torch_version')" 2>/dev/null; then
    step "a venv with torch==$torch_version in $venv"
    python3 -m venv "$venv"
    if [[ -n ${TORCH_INDEX_URL:-} ]]; then
        "$venv/bin/pip" install --index-url "$TORCH_INDEX_URL" "torch==$torch_version"
    else
        "$venv/bin/pip" install "torch==$torch_version"
    fi
fi
venv=$(cd "$venv" && pwd)
export VIRTUAL_ENV=$venv PATH=$venv/bin:$PATH LIBTORCH_USE_PYTORCH=1
torch_lib=$(python -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')

# cargo records the [patch] below in Cargo.lock; put the workspace's back afterwards.
lock_backup=$(mktemp /tmp/flowgate-cargo-lock.XXXXXX)
cp Cargo.lock "$lock_backup"
smoke=""
cleanup() {
    cp "$lock_backup" Cargo.lock && rm -f "$lock_backup"
    if [[ -n $smoke ]]; then rm -rf "$smoke"; fi
}
trap cleanup EXIT

step "burn-tch 0.22.1 with trainer/patches/burn-tch-0.22.1.patch"
cargo fetch --quiet
burn_tch_src=$(cargo metadata --format-version 1 | python -c '
import json, os, sys
packages = json.load(sys.stdin)["packages"]
print(next(os.path.dirname(p["manifest_path"]) for p in packages
           if p["name"] == "burn-tch" and p["version"] == "0.22.1"))')
mkdir -p "$CARGO_TARGET_DIR"
patched=$(cd "$CARGO_TARGET_DIR" && pwd)/burn-tch-0.22.1-flowgate
patch_sum=$(sha256sum trainer/patches/burn-tch-0.22.1.patch | cut -d' ' -f1)
# Recreated only when the patch changed: a fresh copy would make cargo rebuild burn and the
# trainer (minutes) for nothing.
if [[ $(cat "$patched/.flowgate-patch-sha256" 2>/dev/null) != "$patch_sum" ]]; then
    rm -rf "$patched"
    cp -r "$burn_tch_src" "$patched"
    chmod -R u+w "$patched"
    patch --quiet --directory "$patched" -p1 < trainer/patches/burn-tch-0.22.1.patch
    echo "$patch_sum" > "$patched/.flowgate-patch-sha256"
fi
patch_burn_tch=(--config "patch.crates-io.burn-tch.path=\"$patched\"")

# The test first: `cargo test` also builds target/.../flowgate (without the rpath), which the
# `cargo rustc` below then relinks with it.
step "test: flex and libtorch agree (the patched ops, and a trained model)"
LD_LIBRARY_PATH=$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
    cargo test "${patch_burn_tch[@]}" --release -p flowgate-trainer --features libtorch \
    --test libtorch_backend \
    -- --nocapture

step "cargo build (feature libtorch) against $torch_lib"
cargo rustc "${patch_burn_tch[@]}" --release -p flowgate-trainer --features libtorch \
    --bin flowgate -- \
    -C "link-arg=-Wl,-rpath,$torch_lib"
binary=$CARGO_TARGET_DIR/release/flowgate

step "two training steps on --device libtorch"
data=${FLOWGATE_DATA_DIR:-data}
if ! ls "$data"/fashion-mnist/train-images-idx3-ubyte* >/dev/null 2>&1; then
    bash scripts/fetch-data.sh
fi
smoke=$(mktemp -d /tmp/flowgate-libtorch.XXXXXX)
env -u VIRTUAL_ENV -u LIBTORCH_USE_PYTORCH "$binary" train --config configs/fmnist-realnvp.toml \
    --device libtorch --steps 2 --data-dir "$data" --out "$smoke/run"
echo "built $binary"
