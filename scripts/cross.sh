#!/usr/bin/env bash
# ARM cross builds of the edge runtime, checked under qemu against the x86 build.
#
# Installs what it lacks (cross gcc and libc for aarch64 and armhf, qemu-user-static, the
# Rust targets), then for aarch64-unknown-linux-gnu and armv7-unknown-linux-gnueabihf:
#   - builds the `flowgate-edge` binary and libflowgate_gate in release;
#   - runs the runtime's `reference` test (gate vs an f64 oracle) under qemu;
#   - `flowgate-edge inspect` of the tiny model: output identical to the x86 binary's (on
#     32-bit armv7 but for the plan's size: its step list holds pointer-sized offsets);
#   - the C example (gate.c, cross-compiled against the ARM staticlib) under qemu: the same
#     frames as the x86 Rust gate, verdicts within |delta bits/dim| <= 1e-5 and the same
#     decisions (x86_64 runs the AVX2+FMA kernels where the CPU has them, aarch64 the NEON
#     ones, armv7 the scalar reference: fused multiply-adds round differently, so scores may
#     differ in the last bits; the count of bit-identical ones is reported);
# and builds the no_std core for thumbv7em-none-eabihf (Cortex-M4F/M7).
# .cargo/config.toml names the linkers and the qemu runners.
set -euo pipefail
cd "$(dirname "$0")/.."

targets=(aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf)
declare -A cc=([aarch64-unknown-linux-gnu]=aarch64-linux-gnu-gcc
               [armv7-unknown-linux-gnueabihf]=arm-linux-gnueabihf-gcc)
declare -A qemu=([aarch64-unknown-linux-gnu]="qemu-aarch64-static -L /usr/aarch64-linux-gnu"
                 [armv7-unknown-linux-gnueabihf]="qemu-arm-static -L /usr/arm-linux-gnueabihf")
tolerance=1e-5 # |delta bits/dim|, ARM vs x86
target_dir=${CARGO_TARGET_DIR:-target}
work="$target_dir/cross-check"
capi=edge-runtime/capi
start=$SECONDS

step() { printf '\n==> %s (%ds)\n' "$*" $((SECONDS - start)); }

step "Cross toolchains and qemu"
packages=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross gcc-arm-linux-gnueabihf
          libc6-dev-armhf-cross qemu-user-static)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done
if ((${#missing[@]})); then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi
rust_targets=("${targets[@]}" thumbv7em-none-eabihf)
installed=$(rustup target list --installed)
missing=()
for target in "${rust_targets[@]}"; do
    grep -qx "$target" <<<"$installed" || missing+=("$target")
done
if ((${#missing[@]})); then rustup target add "${missing[@]}"; fi

step "x86 reference: flowgate-edge, the tiny model, frames and the Rust gate's verdicts"
rm -rf "$work" && mkdir -p "$work"
cargo build --release -p flowgate-edge --bin flowgate-edge
cargo run --release -q -p flowgate-edge-capi --example fixture -- "$work" >"$work/expected.txt"
"$target_dir/release/flowgate-edge" inspect "$work/tiny.fgm" >"$work/inspect-x86_64.txt"

# Compares gate.c's verdict lines with the x86 Rust gate's: same frames and decisions,
# |delta bpd| and |delta ood| <= tolerance. Prints the largest delta and the identical count.
compare() {
    awk -v tol="$tolerance" -v name="$3" '
        function num(field) { sub(/^[a-z]+=/, "", field); return field + 0 }
        function abs(x) { return x < 0 ? -x : x }
        NR == FNR { want[FNR] = $0; n = FNR; next }
        /^#/ { next }
        {
            m++; split(want[m], w, " ")
            if ($1 != w[1] || $2 != w[2] || $3 != w[3] || $7 != w[7]) {
                printf "%s: frame %d differs:\n  x86: %s\n  arm: %s\n", name, m, want[m], $0
                bad = 1; next
            }
            d = abs(num($5) - num(w[5])); o = abs(num($6) - num(w[6]))
            if (d > worst) worst = d
            if (d > tol || o > tol) {
                printf "%s: %s: bpd %.9f vs %.9f, ood %.9f vs %.9f: beyond %g\n", name, $1,
                       num($5), num(w[5]), num($6), num(w[6]), tol; bad = 1
            }
            if ($0 == want[m]) same++
        }
        END {
            if (m != n) { printf "%s: %d verdicts, x86 has %d\n", name, m, n; bad = 1 }
            printf "%s: %d frames, max |delta bpd| %g (tolerance %g), %d bit-identical\n",
                   name, m, worst, tol, same
            exit bad
        }' "$1" "$2"
}

# Both targets in one cargo call, so the two cores stay busy.
target_args=()
for target in "${targets[@]}"; do target_args+=(--target "$target"); done
step "ARM: build flowgate-edge and libflowgate_gate"
cargo build --release "${target_args[@]}" -p flowgate-edge --bin flowgate-edge \
    -p flowgate-edge-capi --lib

step "ARM: the reference test under qemu (runners in .cargo/config.toml)"
cargo test --release "${target_args[@]}" -p flowgate-edge --test reference

for target in "${targets[@]}"; do
    out="$target_dir/$target/release"
    step "$target: inspect, same output as x86"
    ${qemu[$target]} "$out/flowgate-edge" inspect "$work/tiny.fgm" >"$work/inspect-$target.txt"
    if [[ $target == armv7-* ]]; then
        diff -u <(grep -v '^plan ' "$work/inspect-x86_64.txt") \
            <(grep -v '^plan ' "$work/inspect-$target.txt")
        grep '^plan ' "$work/inspect-$target.txt"
    else
        diff -u "$work/inspect-x86_64.txt" "$work/inspect-$target.txt"
    fi

    step "$target: gate.c against the ARM staticlib under qemu, scores vs x86"
    ${cc[$target]} -std=c11 -O2 -Wall -Wextra -Werror -I "$capi/include" \
        "$capi/examples/gate.c" "$out/libflowgate_gate.a" \
        -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc -o "$work/gate-$target"
    ${qemu[$target]} "$work/gate-$target" "$work/tiny.fgm" "$work/frames.gray" 28 28 \
        >"$work/gate-$target.txt"
    compare "$work/expected.txt" "$work/gate-$target.txt" "$target"
done

step "thumbv7em-none-eabihf: the no_std core"
cargo build --release -p flowgate-edge --no-default-features --target thumbv7em-none-eabihf

step "cross: done"
