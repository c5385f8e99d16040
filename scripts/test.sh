#!/usr/bin/env bash
# The test suite, as CI runs it: installs what the tests need (Rust targets, data), then
# checks formatting, lints, the no_std build, and runs every test in one (release) profile.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step says when it started (seconds into the run), so a CI log shows where the time goes.
step() { printf '\n==> [%ds] %s\n' "$SECONDS" "$*"; }

step "Rust components and targets"
rustup component add rustfmt clippy >/dev/null 2>&1 || true
rustup target add thumbv7em-none-eabihf

step "Data (Fashion-MNIST, MNIST, opencv sample videos)"
bash scripts/fetch-data.sh

step "Formatting"
cargo fmt --all -- --check

step "Lints"
# Without the trainer's `cuda` feature: type-checking burn's CUDA stack (DOCS_RS=1 skips its
# LLVM download) added 3 of the lint step's 6.5 minutes on 2 cores, for the two functions of
# trainer/src/device.rs compiled only with the feature. After changing those or burn's
# version, run `DOCS_RS=1 cargo clippy -p flowgate-trainer --release --features cuda`, or
# scripts/build-cuda.sh, which builds and links the CUDA binary.
cargo clippy --workspace --all-targets --release -- -D warnings

step "no_std builds (no alloc) for a Cortex-M target"
cargo build --release -p flowgate-shared --no-default-features --target thumbv7em-none-eabihf
cargo build --release -p flowgate-edge --no-default-features --target thumbv7em-none-eabihf

step "Tests"
cargo test --workspace --release

step "C ABI: gate.c against libflowgate_gate, verdicts = the Rust gate's"
bash scripts/capi.sh

step "ARM cross builds under qemu (aarch64, armv7) vs x86; no_std core for thumbv7em"
bash scripts/cross.sh

step "GStreamer element and Python package on real frames (scripts/integrations.sh)"
bash scripts/integrations.sh

step "Fuzz smoke: every cargo-fuzz target from its seeds (scripts/fuzz.sh, nightly)"
# A fixed libFuzzer seed: from the committed seeds, every CI run explores the same inputs (a
# finding is then a reproducible failure, not a flaky one); campaigns use random seeds.
FUZZ_SECONDS=${FUZZ_SECONDS:-15} FUZZ_SEED=${FUZZ_SEED:-1} bash scripts/fuzz.sh

step "Done"
