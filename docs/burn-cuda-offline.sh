#!/usr/bin/env bash
# Offline CUDA build of this probe with burn 0.22.1 WITHOUT the tracel LLVM bundle.
#  1. DOCS_RS=1 makes tracel-llvm-bundler's and cubecl-llvm's build scripts skip (no download,
#     no LLVM link directives). That alone is enough for `cargo check`.
#  2. Linking then lacks ~230 LLVM C-API / cubecl shim symbols: link a stub archive whose
#     functions abort(). Use cuda-nvrtc so CUDA kernels are compiled by NVRTC, never by LLVM.
# Untested on a real GPU (no GPU here). Needs libcuda.so + libnvrtc.so at RUN time.
set -euo pipefail
cd "$(dirname "$0")"
FEAT=${FEAT:-cuda-nvrtc}
STUB=$PWD/target/llvm-stub
mkdir -p "$STUB"
export DOCS_RS=1
# pass 1: link with unresolved symbols ignored, just to learn which symbols are missing
cargo rustc --release --offline --features "$FEAT" --bin burn-probe -- \
  -C link-arg=-Wl,--unresolved-symbols=ignore-all
readelf --dyn-syms -W target/release/burn-probe | awk '$7=="UND"{print $8}' | sed 's/@.*//' \
  | grep -E '^(LLVM|cubecl_)' | sort -u > "$STUB/symbols.txt"
{ echo '#include <stdio.h>'; echo '#include <stdlib.h>'
  echo 'static void die(const char*s){fprintf(stderr,"LLVM stub called: %s (built without LLVM; use NVRTC: feature cuda-nvrtc)\n",s);abort();}'
  while read -r s; do echo "void $s(void){die(\"$s\");}"; done < "$STUB/symbols.txt"; } > "$STUB/stub.c"
cc -O1 -fPIC -c "$STUB/stub.c" -o "$STUB/stub.o" && ar rcs "$STUB/libllvmstub.a" "$STUB/stub.o"
# pass 2: real link against the stub
cargo rustc --release --offline --features "$FEAT" --bin burn-probe -- -C link-arg="$STUB/libllvmstub.a"
echo "built target/release/burn-probe with $(wc -l < "$STUB/symbols.txt") stubbed symbols"
