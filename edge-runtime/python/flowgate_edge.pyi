"""flowgate's edge gate: scores camera frames under a normalizing flow and decides whether
they may pass to the downstream model."""

import os
from typing import Iterable, Literal, Optional, Union

import numpy as np
import numpy.typing as npt

__version__: str

class FlowgateError(ValueError):
    """Base class of flowgate's errors (a ValueError)."""

class ModelError(FlowgateError):
    """Not a valid flowgate model, or one over the gate's limits."""

class FrameError(FlowgateError):
    """A frame the gate cannot score (dtype, shape, strides, size)."""

class Verdict:
    """The gate's judgement of one frame."""

    log_likelihood: float
    bits_per_dim: float
    ood_score: float
    decision: Optional[Literal["accept", "reject"]]
    fault: Optional[Literal["non-finite-score"]]

class Gate:
    """A flowgate model, ready to score frames; one gate may score from several threads."""

    def __init__(
        self,
        model: Union[str, os.PathLike[str], bytes, bytearray],
        *,
        kernels: Literal["auto", "scalar", "avx2-fma", "neon"] = "auto",
    ) -> None: ...
    def score(
        self, frame: npt.NDArray[np.uint8], *, luma_range: Literal["full", "limited"] = "full"
    ) -> Verdict:
        """Scores an (H, W) gray or (H, W, 3) RGB uint8 frame, read in place (GIL released).

        luma_range="limited": a gray frame holds video luma (16-235, a YUV Y plane), which
        the gate expands to the full range its models learn from."""
    def score_many(
        self,
        frames: Iterable[npt.NDArray[np.uint8]],
        *,
        luma_range: Literal["full", "limited"] = "full",
    ) -> list[Verdict]:
        """Scores every frame in order, with the GIL released once for all of them."""
    @property
    def threshold(self) -> Optional[float]: ...
    @property
    def input_shape(self) -> tuple[int, int, int]: ...
    @property
    def scratch_len(self) -> int: ...
    @property
    def kernels(self) -> str: ...
