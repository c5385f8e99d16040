"""Fixtures: real frames of vtest.avi (decoded by ffmpeg), the committed camera gate, the
models examples/fixture-models.rs writes, and `flowgate-edge score` on the same frames."""

import csv
import io
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]
WIDTH, HEIGHT = 768, 576


def _required_file(path: Path, how: str) -> Path:
    # A missing input is a failure, not a skip: a suite that skips passes without testing.
    if not path.is_file():
        pytest.fail(f"{path} is missing: {how}", pytrace=False)
    return path


@pytest.fixture(scope="session")
def camera_model() -> Path:
    return REPO / "models" / "camera-vtest.fgm"


@pytest.fixture(scope="session")
def flowgate_edge_cli() -> Path:
    path = Path(os.environ.get("FLOWGATE_EDGE", REPO / "target" / "release" / "flowgate-edge"))
    return _required_file(path, "cargo build --release -p flowgate-edge, or set FLOWGATE_EDGE")


@pytest.fixture(scope="session")
def fixture_models() -> Path:
    folder = os.environ.get("FLOWGATE_FIXTURE_MODELS")
    if not folder:
        pytest.fail(
            "FLOWGATE_FIXTURE_MODELS is not set: run `cargo run --release --example "
            "fixture-models -- DIR` in edge-runtime/python (scripts/integrations.sh does)",
            pytrace=False,
        )
    return Path(folder)


@pytest.fixture(scope="session")
def vtest() -> Path:
    data = Path(os.environ.get("FLOWGATE_DATA_DIR", REPO / "data"))
    return _required_file(data / "opencv" / "vtest.avi", "run `bash scripts/fetch-data.sh`")


def _decode(vtest: Path, out: Path, filters: str, pix_fmt: str) -> Path:
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is missing (scripts/fetch-data.sh installs it)", pytrace=False)
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-i", str(vtest), "-vf", filters,
         "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", pix_fmt, str(out)],
        check=True,
    )
    return out


# Every 20th frame of the 795: training and held-out frames alike.
EVERY_20TH = r"select='not(mod(n\,20))'"


@pytest.fixture(scope="session")
def raw_frames(tmp_path_factory, vtest):
    """Raw files of real frames, as ffmpeg decodes them (the trainer's decoder)."""
    folder = tmp_path_factory.mktemp("frames")
    return {
        "gray": _decode(vtest, folder / "gray.raw", EVERY_20TH, "gray"),
        "rgb": _decode(vtest, folder / "rgb.raw", EVERY_20TH, "rgb24"),
        # The camera knocked upside down.
        "gray-rotated": _decode(vtest, folder / "rotated.raw", EVERY_20TH + ",hflip,vflip", "gray"),
        # The decoder's Y plane as it is: video luma, 16-235 (ffmpeg's gray expands it).
        "luma-limited": _decode(vtest, folder / "luma.raw", EVERY_20TH + ",extractplanes=y", "gray"),
    }


def load(path: Path, channels: int = 1) -> np.ndarray:
    shape = (-1, HEIGHT, WIDTH) if channels == 1 else (-1, HEIGHT, WIDTH, channels)
    return np.fromfile(path, dtype=np.uint8).reshape(shape)


@pytest.fixture(scope="session")
def cli_score(flowgate_edge_cli):
    """`flowgate-edge score` of a raw file: one dict per frame."""

    def score(model: Path, raw: Path, size: str, pixel: str, *extra: str) -> list[dict]:
        result = subprocess.run(
            [str(flowgate_edge_cli), "score", "--model", str(model), "--input", str(raw),
             "--raw", size, "--pixel", pixel, *extra],
            check=True, capture_output=True, text=True,
        )
        return list(csv.DictReader(io.StringIO(result.stdout)))

    return score


def six_decimals(value: float) -> str:
    """A float as Rust's `{:.6}` writes it (NaN, inf)."""
    return "NaN" if value != value else f"{value:.6f}"


def assert_same_as_cli(verdicts, rows) -> tuple[int, int]:
    """The same decision and fault per frame, and bits/dim to the CLI's six decimals."""
    assert len(verdicts) == len(rows)
    for index, (verdict, row) in enumerate(zip(verdicts, rows)):
        ours = (six_decimals(verdict.bits_per_dim), verdict.decision or "", verdict.fault or "")
        theirs = (row["bits_per_dim"], row["decision"], row["fault"])
        assert ours == theirs, f"frame {index}"
    accepted = sum(row["decision"] == "accept" for row in rows)
    return accepted, len(rows) - accepted
