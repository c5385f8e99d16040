#!/usr/bin/env bash
# Builds `flowgate` with burn's CUDA backend on a machine without network access (and without
# a GPU): target/cuda/release/flowgate, for scripts/gpu-check.sh on a GPU machine.
#
# Why the detour: burn 0.22.1's CUDA stack (cubecl 0.11) always depends on an LLVM that its
# build script downloads from GitHub. DOCS_RS=1 makes that build script skip the download
# (docs/burn-0.22-notes.md, section 7), which is enough to compile but not to link: about 230
# LLVM C-API symbols stay undefined. So the binary is linked twice:
#   1. with undefined symbols ignored, to learn which ones are missing (readelf);
#   2. against a generated archive that defines each of them as a function that aborts with
#      its name.
# The feature `cuda-nvrtc` makes cubecl compile kernels with NVRTC (its C++ backend) at run
# time, so a working run never calls a stub. At run time the GPU machine needs the NVIDIA
# driver (libcuda.so) and NVRTC (libnvrtc.so); neither is needed to build.
#
# First build: ~20-30 minutes on 2 cores (every burn/cubecl crate with CUDA); a rebuild after
# a change to flowgate relinks in seconds. Usage: bash scripts/build-cuda.sh
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
export CARGO_TARGET_DIR=${FLOWGATE_CUDA_TARGET:-target/cuda}
export DOCS_RS=1
binary=$CARGO_TARGET_DIR/release/flowgate
stub=$CARGO_TARGET_DIR/llvm-stub
mkdir -p "$stub"
stub=$(cd "$stub" && pwd) # absolute: the linker runs in another folder
build=(cargo rustc --release -p flowgate-trainer --features cuda-nvrtc --bin flowgate --)

step "pass 1: link with undefined symbols ignored, to list the missing LLVM symbols"
"${build[@]}" -C link-arg=-Wl,--unresolved-symbols=ignore-all
readelf --dyn-syms -W "$binary" | awk '$7 == "UND" { print $8 }' | sed 's/@.*//' |
    grep -E '^(LLVM|cubecl_)' | sort -u >"$stub/symbols.txt" || true
count=$(wc -l <"$stub/symbols.txt")
echo "$count undefined LLVM/cubecl symbols"

step "the stub archive: one aborting function per symbol"
{
    echo '#include <stdio.h>'
    echo '#include <stdlib.h>'
    echo 'static void die(const char *name) {'
    echo '    fprintf(stderr, "flowgate: LLVM stub %s called: this build compiles CUDA kernels with NVRTC only\n", name);'
    echo '    abort();'
    echo '}'
    while read -r symbol; do
        echo "void $symbol(void) { die(\"$symbol\"); }"
    done <"$stub/symbols.txt"
} >"$stub/stub.c"
cc -O1 -fPIC -c "$stub/stub.c" -o "$stub/stub.o"
rm -f "$stub/libllvmstub.a"
ar rcs "$stub/libllvmstub.a" "$stub/stub.o"

step "pass 2: link against the stubs"
"${build[@]}" -C link-arg="$stub/libllvmstub.a"
left=$(readelf --dyn-syms -W "$binary" | awk '$7 == "UND" { print $8 }' | grep -cE '^(LLVM|cubecl_)' || true)
if [ "$left" -ne 0 ]; then
    echo "still $left undefined LLVM symbols in $binary" >&2
    exit 1
fi
# It loads and runs: no GPU is needed for --help, and `--device cuda` fails with a clear error
# where the driver is missing.
"$binary" --version
echo "built $binary ($(du -h "$binary" | cut -f1), $count symbols stubbed)"

step "a stripped, xz-compressed copy to carry to a GPU machine"
# About 19 MB instead of 156 MB: with Fashion-MNIST (31 MB) it fits a 64 MiB transfer.
packed=$CARGO_TARGET_DIR/flowgate-cuda.xz
strip -o "$CARGO_TARGET_DIR/flowgate-cuda" "$binary"
xz -T0 -6 -f "$CARGO_TARGET_DIR/flowgate-cuda"
echo "packed $packed ($(du -h "$packed" | cut -f1))"
echo "on the GPU machine: xz -dc $packed >/tmp/flowgate && chmod +x /tmp/flowgate &&"
echo "  FLOWGATE=/tmp/flowgate bash scripts/gpu-check.sh"
