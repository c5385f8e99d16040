#!/usr/bin/env bash
# The integrations, end to end: the GStreamer element `flowgate` (edge-runtime/gst) and the
# Python package `flowgate_edge` (edge-runtime/python). Installs what they need (Debian's
# GStreamer development files, tools and plugins, gst-libav for vtest.avi, ffmpeg, a Python
# venv with maturin, numpy and pytest), checks formatting and lints, builds the plugin and
# the wheel, and runs their tests against real frames of vtest.avi and the committed camera
# gate, comparing every decision with `flowgate-edge score` on the same frames.
#
# Idempotent; root on a fresh Debian 12 (or sudo). Both crates are workspaces of their own
# (the main workspace needs neither GStreamer nor Python), built into target/integrations.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
absolute() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
started=$SECONDS
root_target=$(absolute "${CARGO_TARGET_DIR:-target}")
integrations_target="$root_target/integrations"
venv=$PWD/target/py-venv
data_dir=$(absolute "${FLOWGATE_DATA_DIR:-data}")
model=$PWD/models/camera-vtest.fgm

step "System packages: GStreamer (dev files, tools, plugins, gst-libav), Python, ffmpeg"
packages=(
    pkg-config libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-libav
    python3-dev python3-venv ffmpeg
)
if ! dpkg -s "${packages[@]}" >/dev/null 2>&1; then
    sudo=$([ "$(id -u)" -eq 0 ] || echo sudo)
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${packages[@]}"
fi
# sed reads all of it: `head -1` would close the pipe early and fail the script under pipefail.
gst-launch-1.0 --version | sed -n 1p

step "Data: vtest.avi"
if [ ! -f "$data_dir/opencv/vtest.avi" ]; then
    bash scripts/fetch-data.sh
fi

step "flowgate-edge, the reference the integrations are compared with"
cargo build --release -p flowgate-edge --bin flowgate-edge
export FLOWGATE_EDGE="$root_target/release/flowgate-edge"
export FLOWGATE_DATA_DIR="$data_dir"
export CARGO_TARGET_DIR="$integrations_target"

step "Python: venv with maturin, numpy, pytest (target/py-venv)"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q "maturin>=1.9.4,<2" "numpy>=1.21" "pytest>=7"
# One interpreter for every build of the extension crate (clippy, tests, maturin), and the
# venv's maturin for pip's build.
export PYO3_PYTHON="$venv/bin/python" PATH="$venv/bin:$PATH"

gst_manifest=edge-runtime/gst/Cargo.toml
py_manifest=edge-runtime/python/Cargo.toml
step "Formatting and lints (flowgate-gst, flowgate-edge-python)"
cargo fmt --manifest-path "$gst_manifest" -- --check
cargo fmt --manifest-path "$py_manifest" -- --check
cargo clippy --release --manifest-path "$gst_manifest" --all-targets -- -D warnings
cargo clippy --release --manifest-path "$py_manifest" --all-targets -- -D warnings

step "GStreamer: build libgstflowgate.so"
cargo build --release --manifest-path "$gst_manifest" --lib
plugin_dir="$integrations_target/release"
ls -l "$plugin_dir/libgstflowgate.so"

step "GStreamer: the element through the Rust API (real pipelines, flowgate-edge's decisions)"
cargo test --release --manifest-path "$gst_manifest" -- --nocapture --test-threads 2

step "GStreamer: gst-inspect-1.0 and gst-launch-1.0 with GST_PLUGIN_PATH"
bash edge-runtime/gst/tests/launch.sh "$plugin_dir" "$FLOWGATE_EDGE" "$model" \
    "$FLOWGATE_DATA_DIR/opencv/vtest.avi" "$integrations_target/launch"

step "Python: the scoring core's Rust tests (no allocation per frame, threads)"
cargo test --release --manifest-path "$py_manifest"
fixtures="$integrations_target/fixture-models"
cargo run --release -q --manifest-path "$py_manifest" --example fixture-models -- "$fixtures"

step "Python: pip install edge-runtime/python (maturin builds the wheel)"
"$venv/bin/python" -m pip install -q --no-build-isolation --force-reinstall --no-deps edge-runtime/python
"$venv/bin/python" -c "import flowgate_edge; print('flowgate_edge', flowgate_edge.__version__, flowgate_edge.Gate('$model'))"

step "Python: pytest (real frames via ffmpeg, flowgate-edge's decisions)"
# Run from the tests' folder: the installed package, not the source tree, is imported.
(cd edge-runtime/python && FLOWGATE_FIXTURE_MODELS="$fixtures" \
    "$venv/bin/python" -m pytest -p no:cacheprovider -q -s tests)

step "Integrations passed in $((SECONDS - started)) s"
