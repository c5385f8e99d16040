#!/usr/bin/env bash
# Soak: gates a long raw stream with the committed camera gate and shows that resident memory
# stays flat and that no frame is lost or duplicated (frames in = passed on + held back).
#
#   scripts/soak.sh [FRAMES]     default 1000000
#
# The stream cycles through the 795 frames of data/opencv/vtest.avi at the gate's 32x24
# (normal frames) and three synthetic faults per cycle (black, white, noise), generated on
# the fly by a small Python program, so the gate both passes and holds back frames. Prints
# the counts, the resident memory sampled once a second, and the frames per second.
# Needs: cargo, python3, ffmpeg and the data (scripts/fetch-data.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

frames=${1:-1000000}
work=target/soak
mkdir -p "$work"
cargo build --release -q -p flowgate-edge --bin flowgate-edge
edge=target/release/flowgate-edge

ffmpeg -loglevel error -y -i data/opencv/vtest.avi -vf scale=32:24:flags=area,format=gray \
    -f rawvideo "$work/vtest-32x24.gray"

cat >"$work/generate.py" <<'PY'
import random, sys
normal = open(sys.argv[1], "rb").read()
size = 32 * 24
clips = [normal[i:i + size] for i in range(0, len(normal), size)]
rng = random.Random(7)
faults = [bytes(size), bytes([255]) * size, bytes(rng.randrange(256) for _ in range(size))]
cycle = b"".join(clips + faults)
per_cycle = len(clips) + len(faults)
total = int(sys.argv[2])
out = sys.stdout.buffer
for _ in range(total // per_cycle):
    out.write(cycle)
out.write(b"".join((clips + faults)[: total % per_cycle]))
PY

: >"$work/rss.txt"
start=$(date +%s)
python3 "$work/generate.py" "$work/vtest-32x24.gray" "$frames" \
    | "$edge" gate --model models/camera-vtest.fgm --input - --raw 32x24 --pixel gray8 --summary \
        2>"$work/stderr.txt" | wc -c >"$work/passed-bytes.txt" &
pipeline=$!
sleep 1
gate_pid=$(pgrep -n -f "$edge gate --model models/camera-vtest.fgm" || true)
while kill -0 "$pipeline" 2>/dev/null; do
    [[ -n $gate_pid ]] && awk '/^VmRSS:/ {print $2}' "/proc/$gate_pid/status" 2>/dev/null >>"$work/rss.txt" || true
    sleep 1
done
wait "$pipeline"
seconds=$(( $(date +%s) - start ))

passed=$(( $(cat "$work/passed-bytes.txt") / (32 * 24) ))
rejected=$(grep -c '^reject ' "$work/stderr.txt" || true)
echo "soak: $frames frames in, $passed passed on, $rejected held back ($(( passed + rejected )) accounted for) in ${seconds}s ($(( frames / (seconds > 0 ? seconds : 1) )) frames/s)"
tail -1 "$work/stderr.txt"
sort -n "$work/rss.txt" | awk 'NR == 1 {min = $1} {max = $1; n++} END {printf "resident memory over %d samples: %d to %d KiB\n", n, min, max}'
awk 'NR % 600 == 1 {printf "t=%ds %d KiB\n", NR - 1, $1}' "$work/rss.txt"
if (( passed + rejected != frames )); then
    echo "soak: FAILED: frames lost or duplicated" >&2
    exit 1
fi
