#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer, nightly Rust) of everything flowgate reads
# from outside: model files (decoded; scored when they validate), idx files, raw frame
# streams, image files, board configs and training configs.
#
#   scripts/fuzz.sh [TARGET...]      all targets when none is named
#
# Environment:
#   FUZZ_SECONDS   seconds per target (default 60)
#   FUZZ_JOBS      parallel fuzzing processes per target (default 1)
#   FUZZ_SEED      libFuzzer's random seed (default 0: a new one each run); the smoke test in
#                  scripts/test.sh fixes it, so CI explores the same inputs every time
#
# Each target starts from its committed seeds (edge-runtime/fuzz/seeds/TARGET, and
# trainer/fuzz/seeds/TARGET) and grows a corpus under target/fuzz-corpus/TARGET, which later
# runs reuse. A crash, panic, leak, timeout or out-of-memory stops the run with the input
# saved under the fuzz folder's artifacts/ and a non-zero exit. The last lines print each
# target's executions and coverage, for the README's table.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-1}
fuzz_seed=${FUZZ_SEED:-0}
# Folder of each target's fuzz crate.
declare -A crate_of=(
    [model_decode]=edge-runtime/fuzz [model_score]=edge-runtime/fuzz
    [idx_reader]=edge-runtime/fuzz [raw_frames]=edge-runtime/fuzz
    [image_decode]=edge-runtime/fuzz [board_config]=edge-runtime/fuzz
)
if [[ -d trainer/fuzz ]]; then
    crate_of[train_config]=trainer/fuzz
fi
all=(model_decode model_score idx_reader raw_frames image_decode board_config)
[[ -n ${crate_of[train_config]:-} ]] && all+=(train_config)
targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=("${all[@]}")

step() { printf '\n==> %s\n' "$*"; }

step "Tools: nightly Rust and cargo-fuzz"
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

root=$(pwd)
summary=()
for target in "${targets[@]}"; do
    crate=${crate_of[$target]:-}
    [[ -n $crate ]] || { echo "fuzz: unknown target '$target' (known: ${all[*]})" >&2; exit 2; }
    corpus="$root/target/fuzz-corpus/$target"
    mkdir -p "$corpus"
    step "fuzz $target for ${seconds}s ($crate)"
    log="$root/target/fuzz-corpus/$target.log"
    # The fuzz crates are their own workspaces: their builds go to their own target folders.
    (cd "$crate" && cargo +nightly fuzz run "$target" -O --jobs "$jobs" "$corpus" "seeds/$target" -- \
        -max_total_time="$seconds" -seed="$fuzz_seed" -rss_limit_mb=2048 -timeout=10 -max_len=65536) \
        2>&1 | tee "$log" | grep -E '^(#[0-9]+[[:space:]]+(INITED|DONE)|Done|==[0-9]+==|SUMMARY|thread .* panicked)' || true
    if grep -qE 'ERROR: libFuzzer|panicked|SUMMARY: .*Sanitizer|Test unit written' "$log"; then
        echo "fuzz: $target FAILED: see $log and $crate/artifacts/$target" >&2
        exit 1
    fi
    # One stats block per job (libFuzzer prints it twice with -print_final_stats).
    execs=$(awk '/^Done [0-9]+ runs/ {s += $2} END {print s + 0}' "$log")
    cov=$(awk '$2 == "DONE" && $3 == "cov:" {c = $4} END {print c}' "$log")
    summary+=("$(printf '%-14s %12s executions in %ss, coverage %s, corpus %s inputs' \
        "$target" "$execs" "$seconds" "${cov:-?}" "$(find "$corpus" -type f | wc -l)")")
done

step "Summary: no crash, panic, leak, timeout or out-of-memory"
printf '%s\n' "${summary[@]}"
