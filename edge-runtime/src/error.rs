//! The gate's errors.

use core::fmt;

/// Why a model could not be loaded or a frame could not be scored.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// The model file is not a valid flowgate model.
    Model(flowgate_shared::Error),
    /// The caller's scratch is smaller than [`crate::Gate::scratch_len`].
    ScratchTooSmall {
        /// f32 elements needed.
        needed: usize,
        /// f32 elements provided.
        provided: usize,
    },
    /// The frame's buffer does not hold what its width, height, stride and format declare.
    Frame(FrameError),
    /// The frame's size differs from the model's input and the model forbids resizing.
    SizeMismatch {
        /// The model's input (width, height).
        expected: (u32, u32),
        /// The frame's (width, height).
        found: (u32, u32),
    },
    /// The model has a native-resolution detail branch, which reads frames of exactly the
    /// camera's size; this frame has another.
    DetailFrameSize {
        /// The (width, height) the detail branch was made for.
        expected: (u32, u32),
        /// The frame's (width, height).
        found: (u32, u32),
    },
    /// The model has a native-resolution detail branch, so it scores whole frames only, not
    /// pixel levels already reduced to the thumbnail.
    DetailNeedsFrame,
    /// The model disagreed with itself while running: unreachable for a validated model.
    Inconsistent,
    /// The requested kernels need instructions this CPU (or this build) lacks.
    KernelsUnavailable(crate::kernels::KernelPath),
    /// The caller's plan buffers are smaller than [`crate::Gate::plan_sizes`] says.
    PlanMemoryTooSmall {
        /// What the plan needs.
        needed: crate::plan::PlanSizes,
        /// Steps provided.
        steps: usize,
        /// Floats provided.
        floats: usize,
    },
    /// The model needs more than the gate's [`crate::Limits`] allow.
    LimitExceeded {
        /// The limit.
        limit: crate::limits::Limit,
        /// What the model needs.
        needed: u64,
        /// What the limit allows.
        allowed: u64,
    },
}

/// What is wrong with a frame buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// Width or height is zero.
    Empty,
    /// The stride is shorter than a row of pixels.
    StrideTooSmall {
        /// Bytes a row of pixels needs.
        row_bytes: usize,
        /// The stride given.
        stride: usize,
    },
    /// The buffer is shorter than the frame it should hold.
    BufferTooShort {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        len: usize,
    },
    /// YUYV frames need an even width.
    OddWidth,
}

/// Result with the gate's [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Model(error) => write!(f, "{error}"),
            Error::ScratchTooSmall { needed, provided } => write!(
                f,
                "scratch too small: the model needs {needed} f32 elements, got {provided}"
            ),
            Error::Frame(error) => write!(f, "bad frame: {error}"),
            Error::SizeMismatch { expected, found } => write!(
                f,
                "frame is {}x{}, the model takes exactly {}x{} and does not resize",
                found.0, found.1, expected.0, expected.1
            ),
            Error::DetailFrameSize { expected, found } => write!(
                f,
                "frame is {}x{}, but the model's detail branch reads the camera's own {}x{} frames \
                 (give the frames at the size the camera delivers)",
                found.0, found.1, expected.0, expected.1
            ),
            Error::DetailNeedsFrame => f.write_str(
                "the model has a native-resolution detail branch: it scores whole camera frames, \
                 not thumbnails",
            ),
            Error::Inconsistent => f.write_str("the model is internally inconsistent"),
            Error::KernelsUnavailable(path) => {
                write!(
                    f,
                    "the {path} kernels need instructions this CPU or build lacks"
                )
            }
            Error::PlanMemoryTooSmall {
                needed,
                steps,
                floats,
            } => write!(
                f,
                "plan memory too small: the model needs {} steps and {} floats, got {steps} and {floats}",
                needed.steps, needed.floats
            ),
            Error::LimitExceeded {
                limit,
                needed,
                allowed,
            } => write!(
                f,
                "the model exceeds the limit on {limit}: it needs {needed}, the limit is {allowed}"
            ),
        }
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Empty => f.write_str("width or height is zero"),
            FrameError::StrideTooSmall { row_bytes, stride } => {
                write!(
                    f,
                    "stride {stride} is shorter than a row ({row_bytes} bytes)"
                )
            }
            FrameError::BufferTooShort { needed, len } => {
                write!(f, "buffer holds {len} bytes, the frame needs {needed}")
            }
            FrameError::OddWidth => f.write_str("YUYV frames need an even width"),
        }
    }
}

impl core::error::Error for Error {}

impl core::error::Error for FrameError {}

impl From<flowgate_shared::Error> for Error {
    fn from(error: flowgate_shared::Error) -> Self {
        Error::Model(error)
    }
}

impl From<FrameError> for Error {
    fn from(error: FrameError) -> Self {
        Error::Frame(error)
    }
}
