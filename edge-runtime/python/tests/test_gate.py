"""flowgate_edge.Gate on real frames: the decisions of `flowgate-edge score`, frames read in
place, typed errors, and scoring with the GIL released."""

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import flowgate_edge
from conftest import assert_same_as_cli, load

SIZE = "768x576"


@pytest.fixture(scope="module")
def gate(camera_model):
    return flowgate_edge.Gate(camera_model)


def test_gray_frames_get_the_decisions_of_flowgate_edge(gate, camera_model, raw_frames, cli_score):
    frames = load(raw_frames["gray"])
    verdicts = [gate.score(frame) for frame in frames]
    rows = cli_score(camera_model, raw_frames["gray"], SIZE, "gray8")
    accepted, rejected = assert_same_as_cli(verdicts, rows)
    print(f"vtest.avi every 20th frame, gray: {accepted} accepted, {rejected} rejected, as flowgate-edge")
    assert accepted >= len(frames) - 2
    assert gate.score_many(frames) == verdicts


def test_frames_upside_down_are_rejected_as_flowgate_edge_rejects_them(gate, camera_model, raw_frames, cli_score):
    frames = load(raw_frames["gray-rotated"])
    verdicts = gate.score_many(frames)
    rows = cli_score(camera_model, raw_frames["gray-rotated"], SIZE, "gray8")
    accepted, rejected = assert_same_as_cli(verdicts, rows)
    print(f"the same frames upside down: {accepted} accepted, {rejected} rejected")
    assert rejected == len(frames)
    assert all(v.decision == "reject" and v.fault is None for v in verdicts)
    assert all(v.ood_score > gate.threshold for v in verdicts)


def test_limited_range_luma_gets_the_decisions_of_flowgate_edge_luma_range_limited(
    gate, camera_model, raw_frames, cli_score
):
    frames = load(raw_frames["luma-limited"])
    verdicts = [gate.score(frame, luma_range="limited") for frame in frames]
    rows = cli_score(camera_model, raw_frames["luma-limited"], SIZE, "gray8", "--luma-range", "limited")
    accepted, rejected = assert_same_as_cli(verdicts, rows)
    print(f"vtest.avi every 20th frame, Y plane as limited range: {accepted} accepted, {rejected} rejected")
    assert accepted >= len(frames) - 2
    assert gate.score_many(frames, luma_range="limited") == verdicts
    # Read as full range, the same frames are darker and flatter than what the gate learnt:
    # their scores move (the GStreamer element lost 14 of 195 held-out frames that way).
    as_full = gate.score_many(frames)
    assert [v.bits_per_dim for v in as_full] != [v.bits_per_dim for v in verdicts]
    with pytest.raises(ValueError, match="luma_range"):
        gate.score(frames[0], luma_range="tv")


def test_rgb_frames_get_the_decisions_of_flowgate_edge(gate, camera_model, raw_frames, cli_score):
    frames = load(raw_frames["rgb"], channels=3)
    verdicts = gate.score_many(list(frames))
    rows = cli_score(camera_model, raw_frames["rgb"], SIZE, "rgb8")
    accepted, rejected = assert_same_as_cli(verdicts, rows)
    print(f"vtest.avi every 20th frame, RGB: {accepted} accepted, {rejected} rejected, as flowgate-edge")


def test_the_scalar_kernels_give_the_scalar_cli_its_scores(camera_model, raw_frames, cli_score):
    gate = flowgate_edge.Gate(camera_model, kernels="scalar")
    assert gate.kernels == "scalar"
    frames = load(raw_frames["gray"])[:10]
    rows = cli_score(camera_model, raw_frames["gray"], SIZE, "gray8", "--kernels", "scalar")[:10]
    assert_same_as_cli(gate.score_many(frames), rows)


def test_strided_and_read_only_views_are_read_in_place(gate, raw_frames):
    gray = load(raw_frames["gray"])[3]
    rgb = load(raw_frames["rgb"], channels=3)[3]
    for frame in (gray, rgb):
        crop = frame[100:500, 50:700]
        assert not crop.flags.c_contiguous
        assert gate.score(crop) == gate.score(np.ascontiguousarray(crop))
        # A single row and a single column have no row step to speak of.
        assert gate.score(frame[7:8]) == gate.score(np.ascontiguousarray(frame[7:8]))
        assert gate.score(frame[:, 9:10]) == gate.score(np.ascontiguousarray(frame[:, 9:10]))
    read_only = np.frombuffer(gray.tobytes(), dtype=np.uint8).reshape(gray.shape)
    assert not read_only.flags.writeable
    assert gate.score(read_only) == gate.score(gray)
    # A frame's size is the gate's business: it area-averages any size to its input.
    assert gate.score(gray[:97, :131]).decision in ("accept", "reject")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda f: f[:, ::2], "strides"),
        (lambda f: f[::-1], "strides"),
        (lambda f: np.stack([f] * 3, axis=-1)[..., ::-1], "strides"),
        (lambda f: np.asfortranarray(f), "strides"),
        (lambda f: f.astype(np.float32), "uint8"),
        (lambda f: f.astype(np.uint16), "uint8"),
        (lambda f: np.stack([f] * 4, axis=-1), "shape"),
        (lambda f: f.reshape(-1), "shape"),
        (lambda f: f[:0], "zero"),
        (lambda f: f.tolist(), "numpy"),
    ],
    ids=["column step", "flipped", "channels reversed", "fortran order", "float32",
         "uint16", "4 channels", "1-D", "empty", "a list"],
)
def test_frames_the_gate_cannot_read_in_place_raise_frame_error(gate, make, message):
    frame = np.arange(48 * 64, dtype=np.uint32).astype(np.uint8).reshape(48, 64)
    with pytest.raises(flowgate_edge.FrameError, match=message):
        gate.score(make(frame))


def test_score_many_names_the_frame_it_cannot_read(gate):
    good = np.zeros((48, 64), dtype=np.uint8)
    with pytest.raises(flowgate_edge.FrameError, match="frame 2"):
        gate.score_many([good, good, good[:, ::2]])


def test_bad_models_raise_typed_errors(camera_model, tmp_path):
    assert issubclass(flowgate_edge.ModelError, flowgate_edge.FlowgateError)
    assert issubclass(flowgate_edge.FrameError, flowgate_edge.FlowgateError)
    assert issubclass(flowgate_edge.FlowgateError, ValueError)
    model = camera_model.read_bytes()
    flipped = bytearray(model)
    flipped[len(model) // 2] ^= 0x40
    for bad, message in [
        (b"not a model", None),
        (model[: len(model) // 2], None),
        (bytes(flipped), "checksum"),
    ]:
        with pytest.raises(flowgate_edge.ModelError, match=message):
            flowgate_edge.Gate(bad)
    with pytest.raises(FileNotFoundError, match="missing.fgm"):
        flowgate_edge.Gate(tmp_path / "missing.fgm")
    with pytest.raises(TypeError):
        flowgate_edge.Gate(42)
    with pytest.raises(flowgate_edge.FlowgateError, match="unknown kernels"):
        flowgate_edge.Gate(model, kernels="gpu")
    unavailable = "avx2-fma" if flowgate_edge.Gate(model).kernels == "neon" else "neon"
    with pytest.raises(flowgate_edge.FlowgateError, match=unavailable):
        flowgate_edge.Gate(model, kernels=unavailable)


def test_a_gate_from_a_path_or_bytes_describes_its_model(camera_model):
    frame = np.full((96, 128), 120, dtype=np.uint8)
    gates = [
        flowgate_edge.Gate(str(camera_model)),
        flowgate_edge.Gate(Path(camera_model)),
        flowgate_edge.Gate(camera_model.read_bytes()),
        flowgate_edge.Gate(bytearray(camera_model.read_bytes())),
    ]
    assert len({repr(g.score(frame)) for g in gates}) == 1
    gate = gates[0]
    # What `flowgate-edge inspect` wrote (models/camera-vtest.inspect.txt; the Rust tests
    # check that file against the runtime).
    inspect = (camera_model.parent / "camera-vtest.inspect.txt").read_text()
    scratch_f32 = int(re.search(r"^scratch\s+\d+ bytes \((\d+) f32\)", inspect, re.M).group(1))
    assert gate.input_shape == (1, 24, 32)
    assert gate.scratch_len == scratch_f32
    threshold = float(re.search(r"^threshold\s+reject when score > (\S+)", inspect, re.M).group(1))
    assert gate.threshold == pytest.approx(threshold, abs=1e-6)
    assert gate.kernels in ("scalar", "avx2-fma", "neon")
    assert f"threshold={gate.threshold}" in repr(gate)


def test_a_model_without_threshold_gives_scores_and_no_decision(fixture_models, raw_frames, gate):
    uncalibrated = flowgate_edge.Gate(fixture_models / "uncalibrated.fgm")
    assert uncalibrated.threshold is None
    frames = load(raw_frames["gray"])[:5]
    for frame in frames:
        verdict = uncalibrated.score(frame)
        assert verdict.decision is None and verdict.fault is None
        assert verdict.bits_per_dim == gate.score(frame).bits_per_dim


def test_a_non_finite_score_is_a_marked_rejection(fixture_models, cli_score, tmp_path):
    hostile = flowgate_edge.Gate(fixture_models / "hostile.fgm")
    index = np.arange(32, dtype=np.uint32)
    frames = np.stack(
        [((index * 37 + seed * 101) ^ (index // 7)).astype(np.uint8).reshape(4, 8) for seed in range(64)]
    )
    verdicts = hostile.score_many(frames)
    raw = tmp_path / "frames.gray"
    frames.tofile(raw)
    assert_same_as_cli(verdicts, cli_score(fixture_models / "hostile.fgm", raw, "8x4", "gray8"))
    faulted = [v for v in verdicts if v.fault is not None]
    assert faulted, "the hostile model should overflow"
    for verdict in verdicts:
        finite = np.isfinite(verdict.ood_score) and np.isfinite(verdict.log_likelihood)
        assert (verdict.fault == "non-finite-score") == (not finite)
        if not finite:
            assert verdict.decision == "reject"


def test_scoring_releases_the_gil(gate, raw_frames):
    frames = list(load(raw_frames["gray"])) * 8
    window = []

    def score_all():
        start = time.perf_counter()
        gate.score_many(frames)
        window.append((start, time.perf_counter()))

    worker = threading.Thread(target=score_all)
    ticks = []
    worker.start()
    while worker.is_alive():
        ticks.append(time.perf_counter())
    worker.join()
    (start, end), = window
    # Python ran on this thread while Rust scored on the other: with the GIL held, no tick
    # could fall inside the call.
    margin = 0.02
    inside = sum(start + margin < tick < end - margin for tick in ticks)
    print(f"{len(frames)} frames in {end - start:.2f} s; this thread ran {inside} times meanwhile")
    assert end - start > 4 * margin
    assert inside > 100


def test_threads_share_one_gate(gate, raw_frames):
    frames = list(load(raw_frames["gray"]))
    serial = [gate.score(frame) for frame in frames]
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(gate.score, frames)) == serial


def test_verdicts_print_what_they_hold(gate):
    verdict = gate.score(np.zeros((48, 64), dtype=np.uint8))
    assert verdict.decision == "reject"
    text = repr(verdict)
    assert text.startswith("Verdict(log_likelihood=") and "decision='reject'" in text and "fault=None" in text
