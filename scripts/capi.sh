#!/usr/bin/env bash
# The C ABI end to end: builds libflowgate_gate (static and shared), compiles the C example
# edge-runtime/capi/examples/gate.c against each with gcc, runs it on the tiny model and a
# file of frames, and requires its verdict lines to equal the Rust gate's, bit for bit
# (the `fixture` example prints those). Also checks the header compiles as C++.
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir=${CARGO_TARGET_DIR:-target}
work="$target_dir/capi-check"
capi=edge-runtime/capi
cflags=(-std=c11 -O2 -Wall -Wextra -Wpedantic -Werror -I "$capi/include")
# What rustc reports for a linux-gnu staticlib (`--print native-static-libs`).
static_libs=(-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc)

step() { printf '\n==> %s\n' "$*"; }

step "C ABI: libflowgate_gate and the Rust gate's verdicts"
rm -rf "$work" && mkdir -p "$work"
cargo build --release -p flowgate-edge-capi --lib
cargo run --release -q -p flowgate-edge-capi --example fixture -- "$work" >"$work/expected.txt"

step "C ABI: gate.c with gcc (static and shared library)"
gcc "${cflags[@]}" "$capi/examples/gate.c" "$target_dir/release/libflowgate_gate.a" \
    "${static_libs[@]}" -o "$work/gate-static"
gcc "${cflags[@]}" "$capi/examples/gate.c" -L "$target_dir/release" -lflowgate_gate \
    -Wl,-rpath,"$(cd "$target_dir/release" && pwd)" -o "$work/gate-shared"
if command -v g++ >/dev/null; then
    printf '#include "flowgate.h"\nint main() { return fg_gate_scratch_len(nullptr) != 0; }\n' \
        | g++ -std=c++17 -Wall -Wextra -Werror -I "$capi/include" -x c++ -fsyntax-only -
fi

for variant in static shared; do
    "$work/gate-$variant" "$work/tiny.fgm" "$work/frames.gray" 28 28 >"$work/$variant.txt"
    if ! diff -u "$work/expected.txt" <(grep -v '^#' "$work/$variant.txt"); then
        echo "capi: gate.c ($variant) and the Rust gate disagree" >&2
        exit 1
    fi
done
cat "$work/static.txt"
echo "capi: gate.c (static and shared) = Rust gate on $(wc -l <"$work/expected.txt") frames, bit for bit"
