#!/usr/bin/env bash
# Another camera, fitted as a user would fit theirs: `flowgate fit --input FOOTAGE --out
# GATE` with nothing else (fit's defaults: the 20-minute budget, the detail branch, the last
# tenth held out), the gate checked against the Raspberry Pi 4's budget; then the same
# evaluation as the main camera's: every fault kind made at the camera's own resolution from
# held-out normal frames, other scenes scaled to that resolution, everything gated at full
# size; and the statistics baseline on the same sets.
#
#   bash scripts/second-camera.sh [door|classroom|finches|arena]
#
# door (default): simple_movement.mp4 from PyPI's dvr-scan 1.4.1 source (public domain;
#   `scripts/fetch-data.sh dvr-scan`): a fixed camera on a bedroom door and a lamp, 1920x1080,
#   59.94 fps, 2488 frames (41.5 s). The door swings, a person opens it, walks through and
#   passes close to the camera, twice in the training part and once in the test part.
#     frames 0..=1865     fit (a tenth held out for early stopping and calibration: the last
#                         one, 1680..=1865, or with SPLIT=spread 16 blocks over 0..=1865)
#     frames 1866..=2487  normal test frames (every 4th: 156 frames), and the source of the
#                         fault sets
# classroom: balle1-vp9.avi from Debian's python3-mecavideo (a fixed camera in a physics
#   classroom, 320x240, 295 frames: a 1.6-second event).
#     frames 0..=199      fit (the last 20 held out)
#     frames 200..=294    normal test frames, and the source of the fault sets
# finches: zf20s_low.mp4 from PyPI's birdwatcher 0.5.0 wheel (BSD-3-Clause;
#   `scripts/fetch-data.sh birdwatcher`): a fixed camera on a zebra finch cage, 1280x720,
#   25 fps, 497 frames (20 s). One bird hops between perches and the floor.
#     frames 0..=349      fit (a tenth held out)
#     frames 350..=496    normal test frames (147), and the source of the fault sets
# arena: 20190128_113421.120s.mp4 from PyPI's sleap 1.3.1 wheel (BSD-3-Clause;
#   `scripts/fetch-data.sh sleap`): a fixed camera over a fly arena, 1024x1024, 25 fps,
#   3000 frames (120 s), lit from below; flies walk over the arena's grids.
#     frames 0..=1999     fit (a tenth held out)
#     frames 2000..=2999  normal test frames (every 4th: 250 frames), and the fault sets
#
# Environment: RUNS (default runs/), MINUTES (fit's --minutes; fit's default is 20), SPLIT
# (fit's and the baseline's --split: end, the default, or spread), PASTE (fit's
# --paste-objects SHARE), JITTER (fit's --exposure-jitter L). Outputs land in
# $RUNS/second-camera-CAMERA/ (with -SPLIT, -pasteSHARE and -jitterL appended when set):
# gate.fgm with its report, the sets, score CSVs, eval.json, baseline.json.
set -euo pipefail
cd "$(dirname "$0")/.."

camera=${1:-door}
case $camera in
    door)
        bash scripts/fetch-data.sh opencv dvr-scan
        video=data/dvr-scan/simple_movement.mp4
        fit_frames=0..1866 test_first=1866 test_every=4 size=1920x1080 ;;
    classroom)
        bash scripts/fetch-data.sh opencv mecavideo
        video=data/mecavideo/balle1-vp9.avi
        fit_frames=0..200 test_first=200 test_every=1 size=320x240 ;;
    finches)
        bash scripts/fetch-data.sh opencv birdwatcher
        video=data/birdwatcher/zf20s_low.mp4
        fit_frames=0..350 test_first=350 test_every=1 size=1280x720 ;;
    arena)
        bash scripts/fetch-data.sh opencv sleap
        video=data/sleap/20190128_113421.120s.mp4
        fit_frames=0..2000 test_first=2000 test_every=4 size=1024x1024 ;;
    *) echo "second-camera.sh: unknown camera '$camera' (door, classroom, finches or arena)" >&2; exit 2 ;;
esac
fit_last=$((${fit_frames#*..} - 1))
# fit's held-out count (fit/split.rs: a tenth, rounded up; every camera here has enough
# frames for its floor of 16 not to matter: the fewest, classroom's 200, hold out 20), for
# the baseline's threshold: `flowgate baseline` holds out as many of its (thinned) training
# frames, placed as fit places them (--split).
held_out=$(( (${fit_frames#*..} + 9) / 10 ))

out="${RUNS:-runs}/second-camera-$camera${SPLIT:+-$SPLIT}${PASTE:+-paste$PASTE}${JITTER:+-jitter$JITTER}"
target=${CARGO_TARGET_DIR:-target}
flowgate=$target/release/flowgate
edge=$target/release/flowgate-edge
kinds=(black white grey blur noise occlusion shift rotate upside-down jpeg)
step() { printf '\n==> %s\n' "$*"; }

# Keeps every N-th frame of a folder of frame-NNNNNN.png (NNNNNN the frame's index).
thin() {
    local dir=$1 every=$2 file name
    ((every > 1)) || return 0
    for file in "$dir"/frame-*.png; do
        name=${file##*/frame-}
        ((10#${name%.png} % every == 0)) || rm -f -- "$file"
    done
}

cargo build --release -q -p flowgate-trainer -p flowgate-edge

# The footage a user would hand fit: a folder of the camera's frames (gray, as the test
# sets are made), nothing else. fit holds out a tenth of it, works in gate.fit/ beside the
# gate, and needs no other argument; MINUTES, SPLIT, PASTE and JITTER pass --minutes,
# --split, --paste-objects and --exposure-jitter when set.
step "the footage: frames $fit_frames at $size into $out/footage"
"$flowgate" frames "$video" --out "$out/footage" --gray --last "$fit_last" --overwrite
step "flowgate fit --input $out/footage --out $out/gate.fgm${MINUTES:+ --minutes $MINUTES}${SPLIT:+ --split $SPLIT}${PASTE:+ --paste-objects $PASTE}${JITTER:+ --exposure-jitter $JITTER}"
"$flowgate" fit --input "$out/footage" --out "$out/gate.fgm" \
    ${MINUTES:+--minutes "$MINUTES"} ${SPLIT:+--split "$SPLIT"} ${PASTE:+--paste-objects "$PASTE"} ${JITTER:+--exposure-jitter "$JITTER"}
"$edge" inspect "$out/gate.fgm" --board firmware-configs/raspberry-pi-4.toml

step "held-out frames $test_first.. at $size (every ${test_every}th), gray, and the faults made from them"
"$flowgate" frames "$video" --out "$out/sets/normal" --gray --first "$test_first" --overwrite
thin "$out/sets/normal" "$test_every"
for kind in "${kinds[@]}"; do
    rm -rf "$out/sets/$kind"
    "$flowgate" corrupt --input "$out/sets/normal" --out "$out/sets/$kind" --kind "$kind"
done
step "other scenes at the camera's size: vtest.avi (first 100 frames), tree.avi, Megamind.avi"
"$flowgate" frames data/opencv/vtest.avi --out "$out/sets/vtest" --size "$size" --gray --last 99 --overwrite
"$flowgate" frames data/opencv/tree.avi --out "$out/sets/tree" --size "$size" --gray --overwrite
"$flowgate" frames data/opencv/Megamind.avi --out "$out/sets/megamind" --size "$size" --gray --overwrite

step "gate every set at full size"
mkdir -p "$out/scores"
sets=(normal "${kinds[@]}" vtest tree megamind)
ood_flags=()
baseline_flags=()
for set in "${sets[@]}"; do
    "$edge" score --model "$out/gate.fgm" --input "$out/sets/$set" --out "$out/scores/$set.csv"
    if [[ $set != normal ]]; then
        ood_flags+=(--ood "$out/scores/$set.csv")
        baseline_flags+=(--ood "$out/sets/$set")
    fi
done
"$flowgate" eval --model "$out/gate.fgm" --in-dist "$out/scores/normal.csv" "${ood_flags[@]}" \
    --json "$out/eval.json" --plots "$out/plots"

step "the statistics baseline on the same sets (trained on frames 0..=$fit_last at $size, every ${test_every}th)"
rm -rf "$out/sets/train"
cp -r "$out/footage" "$out/sets/train"
thin "$out/sets/train" "$test_every"
"$flowgate" baseline --train "$out/sets/train" --held-out $(( (held_out + test_every - 1) / test_every )) \
    --split "${SPLIT:-end}" --in-dist "$out/sets/normal" "${baseline_flags[@]}" \
    --json "$out/baseline.json"
