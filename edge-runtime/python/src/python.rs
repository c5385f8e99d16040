//! The Python classes: `Gate`, `Verdict` and the exceptions.

use std::path::PathBuf;

use flowgate_edge::kernels::KernelPath;
use flowgate_edge::{Decision, Error, Frame, LumaRange};
use pyo3::create_exception;
use pyo3::exceptions::{PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes};

use crate::frames::ArrayFrame;
use crate::scoring::OwnedGate;

create_exception!(
    flowgate_edge,
    FlowgateError,
    PyValueError,
    "Base class of flowgate's errors (a ValueError)."
);
create_exception!(
    flowgate_edge,
    ModelError,
    FlowgateError,
    "Not a valid flowgate model (bad file, checksum, version or contents), or one over the gate's limits."
);
create_exception!(
    flowgate_edge,
    FrameError,
    FlowgateError,
    "A frame the gate cannot score: not a uint8 array, a shape other than (H, W) or (H, W, 3), strides it cannot read in place, empty, or a size an exact-size model refuses."
);

/// The gate's judgement of one frame.
#[pyclass(module = "flowgate_edge", frozen, get_all, eq)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// Log-likelihood of the (resized) frame in nats.
    log_likelihood: f64,
    /// Bits per dimension, `-log_likelihood / (D ln 2)`.
    bits_per_dim: f64,
    /// Higher = more anomalous; compared with the model's threshold.
    ood_score: f64,
    /// "accept", "reject", or None for a model without a calibrated threshold.
    decision: Option<&'static str>,
    /// None, or "non-finite-score" for a frame rejected because its score overflowed.
    fault: Option<&'static str>,
    /// With a native-resolution detail branch, the mean bits/dim of the frame's patches
    /// (the OOD score then combines both); None without one.
    detail_bits_per_dim: Option<f64>,
}

#[pymethods]
impl Verdict {
    fn __repr__(&self) -> String {
        let text = |value: Option<&str>| value.map_or("None".into(), |v| format!("'{v}'"));
        format!(
            "Verdict(log_likelihood={}, bits_per_dim={}, ood_score={}, decision={}, fault={})",
            self.log_likelihood,
            self.bits_per_dim,
            self.ood_score,
            text(self.decision),
            text(self.fault)
        )
    }
}

impl From<flowgate_edge::Verdict> for Verdict {
    fn from(verdict: flowgate_edge::Verdict) -> Self {
        Verdict {
            log_likelihood: verdict.log_likelihood,
            bits_per_dim: verdict.bits_per_dim,
            ood_score: verdict.ood_score,
            decision: verdict.decision.map(|decision| match decision {
                Decision::Accept => "accept",
                Decision::Reject => "reject",
            }),
            fault: verdict.fault.map(|fault| fault.name()),
            detail_bits_per_dim: verdict.detail_bits_per_dim,
        }
    }
}

/// A flowgate model, ready to score frames.
///
/// `Gate(model, *, kernels="auto")`: `model` is a path (str or os.PathLike) or the file's
/// bytes; `kernels` is "auto" (the fastest this CPU runs), "scalar" (the reference),
/// "avx2-fma" or "neon". One gate may score from several threads at once.
#[pyclass(module = "flowgate_edge", frozen)]
#[derive(Debug)]
pub struct Gate {
    inner: OwnedGate,
}

#[pymethods]
impl Gate {
    #[new]
    #[pyo3(signature = (model, *, kernels = "auto"))]
    fn new(model: &Bound<'_, PyAny>, kernels: &str) -> PyResult<Self> {
        let kernels = kernel_path(kernels)?;
        let bytes: Box<[u8]> = if let Ok(bytes) = model.cast::<PyBytes>() {
            bytes.as_bytes().into()
        } else if let Ok(bytes) = model.cast::<PyByteArray>() {
            bytes.to_vec().into_boxed_slice()
        } else if let Ok(path) = model.extract::<PathBuf>() {
            std::fs::read(&path)
                .map_err(|error| read_error(&path, error))?
                .into_boxed_slice()
        } else {
            return Err(PyTypeError::new_err(
                "a model is a path (str or os.PathLike) or the model file's bytes",
            ));
        };
        let inner = OwnedGate::load(bytes, kernels)
            .map_err(|error| gate_error(&error, error.to_string()))?;
        Ok(Gate { inner })
    }

    /// Scores one frame: a numpy uint8 array, (H, W) gray or (H, W, 3) RGB, of any size,
    /// read where it lies (rows may be strided). Releases the GIL while scoring.
    /// `luma_range="limited"` says a gray frame holds video luma (16-235, a YUV camera's or
    /// decoder's Y plane), which the gate expands to the full range its models learn from.
    #[pyo3(signature = (frame, *, luma_range = "full"))]
    fn score(
        &self,
        py: Python<'_>,
        frame: &Bound<'_, PyAny>,
        luma_range: &str,
    ) -> PyResult<Verdict> {
        let range = luma_range_of(luma_range)?;
        let array = ArrayFrame::new(frame).map_err(FrameError::new_err)?;
        let frame = array
            .frame()
            .map(|frame| frame.with_luma_range(range))
            .map_err(|error| FrameError::new_err(format!("bad frame: {error}")))?;
        let verdict = py
            .detach(|| self.inner.score(&frame))
            .map_err(|error| gate_error(&error, error.to_string()))?;
        Ok(verdict.into())
    }

    /// Scores every frame of an iterable (a list of arrays, or an (N, H, W[, 3]) array) with
    /// the GIL released once for all of them; the verdicts in order. `luma_range` as for
    /// `score`.
    #[pyo3(signature = (frames, *, luma_range = "full"))]
    fn score_many(
        &self,
        py: Python<'_>,
        frames: &Bound<'_, PyAny>,
        luma_range: &str,
    ) -> PyResult<Vec<Verdict>> {
        let range = luma_range_of(luma_range)?;
        let arrays = frames
            .try_iter()?
            .enumerate()
            .map(|(index, frame)| {
                ArrayFrame::new(&frame?)
                    .map_err(|error| FrameError::new_err(format!("frame {index}: {error}")))
            })
            .collect::<PyResult<Vec<_>>>()?;
        let views = arrays
            .iter()
            .enumerate()
            .map(|(index, array)| {
                array
                    .frame()
                    .map(|frame| frame.with_luma_range(range))
                    .map_err(|error| {
                        FrameError::new_err(format!("frame {index}: bad frame: {error}"))
                    })
            })
            .collect::<PyResult<Vec<Frame<'_>>>>()?;
        let scored = py.detach(|| {
            views
                .iter()
                .enumerate()
                .map(|(index, frame)| {
                    self.inner
                        .score(frame)
                        .map(Verdict::from)
                        .map_err(|error| (index, error))
                })
                .collect::<Result<Vec<_>, _>>()
        });
        scored.map_err(|(index, error)| gate_error(&error, format!("frame {index}: {error}")))
    }

    /// The calibrated threshold on the OOD score (reject above it), or None.
    #[getter]
    fn threshold(&self) -> Option<f64> {
        let threshold = self.inner.gate().model().threshold.as_ref();
        threshold.map(|threshold| f64::from(threshold.ood_score))
    }

    /// The model's input (channels, height, width); frames of other sizes are area-averaged
    /// to it (unless the model takes only its exact size).
    #[getter]
    fn input_shape(&self) -> (u32, u32, u32) {
        let input = self.inner.gate().model().input;
        (input.channels, input.height, input.width)
    }

    /// The f32 elements of scratch one frame needs (each scoring thread keeps one buffer).
    #[getter]
    fn scratch_len(&self) -> usize {
        self.inner.gate().scratch_len()
    }

    /// The convolution kernels the gate runs: "scalar", "avx2-fma" or "neon".
    #[getter]
    fn kernels(&self) -> &'static str {
        self.inner.gate().kernels().name()
    }

    fn __repr__(&self) -> String {
        let (channels, height, width) = self.input_shape();
        let threshold = self
            .threshold()
            .map_or("None".into(), |threshold| threshold.to_string());
        format!(
            "Gate(input={channels}x{height}x{width}, threshold={threshold}, kernels='{}')",
            self.kernels()
        )
    }
}

fn kernel_path(name: &str) -> PyResult<KernelPath> {
    match name {
        "auto" => Ok(KernelPath::detect()),
        "scalar" => Ok(KernelPath::Scalar),
        "avx2-fma" => Ok(KernelPath::Avx2Fma),
        "neon" => Ok(KernelPath::Neon),
        other => Err(FlowgateError::new_err(format!(
            "unknown kernels {other:?}: auto, scalar, avx2-fma or neon"
        ))),
    }
}

fn luma_range_of(name: &str) -> PyResult<LumaRange> {
    match name {
        "full" => Ok(LumaRange::Full),
        "limited" => Ok(LumaRange::Limited),
        other => Err(PyValueError::new_err(format!(
            "unknown luma_range {other:?}: \"full\" (0-255) or \"limited\" (video luma, 16-235)"
        ))),
    }
}

/// The Python exception for a gate error, with `message`.
fn gate_error(error: &Error, message: String) -> PyErr {
    match error {
        Error::Model(_) | Error::LimitExceeded { .. } => ModelError::new_err(message),
        Error::Frame(_) | Error::SizeMismatch { .. } => FrameError::new_err(message),
        _ => FlowgateError::new_err(message),
    }
}

/// OSError's subclass for the error (FileNotFoundError, PermissionError, ...), naming the file.
fn read_error(path: &std::path::Path, error: std::io::Error) -> PyErr {
    match error.raw_os_error() {
        // OSError(errno, strerror, filename) picks the subclass from errno.
        Some(errno) => PyOSError::new_err((errno, error.to_string(), path.display().to_string())),
        None => PyErr::from(error),
    }
}
