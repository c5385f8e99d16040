#!/usr/bin/env python3
"""Milder native-resolution faults than `flowgate corrupt` makes: Gaussian sensor noise of
sigma 1, 2, 4 and 8 levels, and JPEG re-encoding at quality 30, 50 and 75, of every frame of
a folder, each into its own folder (`sigma1`, ..., `jpeg75`). The results in
docs/results.md ("With the native-resolution detail branch") were made with

    python3 scripts/mild-faults.py runs/native-faults/normal runs/noise-sweep

from the held-out frames that scripts/native-faults.sh extracts, then scored with
`flowgate-edge score` and `flowgate eval` as that script scores its sets. Needs numpy and
Pillow (e.g. `python3 -m venv .venv && .venv/bin/pip install numpy pillow`); not part of CI.
"""

import os
import sys

import numpy as np
from PIL import Image


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: mild-faults.py NORMAL_FRAMES_DIR OUT_DIR")
    source, out = sys.argv[1], sys.argv[2]
    files = sorted(f for f in os.listdir(source) if f.endswith(".png"))
    if not files:
        sys.exit(f"{source}: no .png frames")
    rng = np.random.default_rng(0)
    for sigma in (1, 2, 4, 8):
        target = os.path.join(out, f"sigma{sigma}")
        os.makedirs(target, exist_ok=True)
        for name in files:
            frame = np.asarray(Image.open(os.path.join(source, name)).convert("L"), np.float64)
            noisy = np.clip(np.round(frame + rng.normal(0.0, sigma, frame.shape)), 0, 255)
            Image.fromarray(noisy.astype(np.uint8)).save(os.path.join(target, name))
    for quality in (30, 50, 75):
        target = os.path.join(out, f"jpeg{quality}")
        os.makedirs(target, exist_ok=True)
        for name in files:
            frame = Image.open(os.path.join(source, name)).convert("L")
            frame.save(os.path.join(target, name[: -len(".png")] + ".jpg"), quality=quality)
    print(f"wrote {len(files)} frames x 7 faults into {out}")


if __name__ == "__main__":
    main()
