//! Errors of decoding, validating and encoding models.

use core::fmt;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Why a byte string is not a usable model.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// Shorter than the fixed header.
    TooShort {
        /// Bytes present.
        len: usize,
    },
    /// The first bytes are not [`crate::MAGIC`]: not a flowgate model.
    BadMagic,
    /// Written by another version of the format.
    UnsupportedVersion {
        /// Version in the file.
        found: u16,
        /// The version this build reads.
        supported: u16,
    },
    /// Header bits reserved for future use are set.
    ReservedBits,
    /// The payload length in the header disagrees with the bytes present.
    LengthMismatch {
        /// Length the header declares.
        declared: u32,
        /// Bytes actually following the header.
        actual: usize,
    },
    /// The payload's CRC32 differs from the header's: the file is corrupted.
    ChecksumMismatch {
        /// CRC32 stored in the header.
        stored: u32,
        /// CRC32 of the payload as read.
        computed: u32,
    },
    /// The payload is not a well-formed postcard encoding of a model.
    Payload(postcard::Error),
    /// Bytes remain after the model in the payload.
    TrailingPayload {
        /// Unread bytes.
        unread: usize,
    },
    /// The model decodes but breaks a rule the runtime relies on.
    Invalid {
        /// Where.
        at: Location,
        /// What.
        reason: Invalid,
    },
    /// Encoding failed (writer side).
    Encode(postcard::Error),
}

/// Where in a model a validation rule was broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Location {
    /// The input spec.
    Input,
    /// Flow layer `layer` (0-based).
    Flow {
        /// Layer index.
        layer: u32,
    },
    /// Node `node` of the coupling network of flow layer `layer`.
    Net {
        /// Layer index.
        layer: u32,
        /// Node index.
        node: u32,
    },
    /// The calibrated threshold.
    Threshold,
    /// The OOD score's definition.
    Score,
    /// The native-resolution detail branch (its geometry, standardisation or patch model).
    Detail,
}

/// A broken validation rule.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Invalid {
    /// A dimension is zero or above the format's limits.
    DimensionOutOfRange {
        /// The offending value.
        value: u32,
    },
    /// Channels must be 1 or 3.
    Channels {
        /// The offending value.
        channels: u32,
    },
    /// A tensor's shape is not the one the layer needs.
    TensorShape,
    /// A tensor's stored bytes do not match its shape.
    TensorLength {
        /// Bytes the shape requires.
        expected: usize,
        /// Bytes stored.
        found: usize,
    },
    /// A weight, scale or parameter is NaN or infinite.
    NonFinite,
    /// A parameter is outside its range (alpha, rate, stride, kernel, ...).
    ParameterOutOfRange,
    /// Squeeze needs even height and width; unsqueeze needs channels divisible by 4.
    NotDivisible,
    /// The mask does not fit the activation's shape (or reads and writes one quadrant).
    MaskShape,
    /// Factor-out must keep at least one channel and drop at least one.
    FactorOut,
    /// A network node names a slot beyond [`crate::layers::MAX_SLOTS`].
    SlotOutOfRange,
    /// A network node reads a slot nothing has written.
    SlotUnset,
    /// A non-elementwise node writes the slot it reads.
    SlotAliased,
    /// A node's input does not fit the operation (Linear width, Add shapes, kernel larger than
    /// the padded input, reshape count).
    OperandShape,
    /// The coupling network's result is not (2 * Cn, H, W).
    NetOutputShape,
    /// A coupling network has no nodes.
    EmptyNet,
    /// A sequence's elements do not decode, or their count or bytes disagree with its header.
    Sequence,
    /// Sizes overflow the format's limits.
    TooLarge,
    /// Quantile levels must lie in [0, 1] and ascend.
    Quantiles,
    /// A feature extractor may only be the flow's first layer.
    EmbedNotFirst,
    /// An actnorm's log-scale or a coupling's scale exceeds
    /// [`crate::validate::MAX_LOG_SCALE`] in magnitude.
    LogScaleOutOfRange,
    /// The detail branch's patch model is not a gray, exact-size, uncalibrated model without
    /// a detail branch of its own, or does not decode.
    PatchModel,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::TooShort { len } => write!(
                f,
                "file too short for a model header ({len} bytes, need {})",
                crate::HEADER_LEN
            ),
            Error::BadMagic => f.write_str("not a flowgate model (bad magic bytes)"),
            Error::UnsupportedVersion { found, supported } => write!(
                f,
                "model format version {found} is not supported (this build reads version {supported})"
            ),
            Error::ReservedBits => f.write_str("reserved header bits are set"),
            Error::LengthMismatch { declared, actual } => write!(
                f,
                "payload length mismatch: header says {declared} bytes, file has {actual} (truncated or padded file)"
            ),
            Error::ChecksumMismatch { stored, computed } => write!(
                f,
                "checksum mismatch: header CRC32 {stored:#010x}, payload CRC32 {computed:#010x} (corrupted file)"
            ),
            Error::Payload(error) => write!(f, "malformed payload: {error}"),
            Error::TrailingPayload { unread } => {
                write!(
                    f,
                    "{unread} unexpected bytes after the model in the payload"
                )
            }
            Error::Invalid { at, reason } => write!(f, "invalid model at {at}: {reason}"),
            Error::Encode(error) => write!(f, "encoding failed: {error}"),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Input => f.write_str("the input spec"),
            Location::Flow { layer } => write!(f, "flow layer {layer}"),
            Location::Net { layer, node } => write!(f, "flow layer {layer}, network node {node}"),
            Location::Threshold => f.write_str("the threshold"),
            Location::Score => f.write_str("the OOD score"),
            Location::Detail => f.write_str("the detail branch"),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::DimensionOutOfRange { value } => {
                write!(f, "dimension {value} is zero or too large")
            }
            Invalid::Channels { channels } => {
                write!(f, "input has {channels} channels, expected 1 or 3")
            }
            Invalid::TensorShape => f.write_str("a tensor has the wrong shape for its layer"),
            Invalid::TensorLength { expected, found } => write!(
                f,
                "a tensor stores {found} bytes where its shape needs {expected}"
            ),
            Invalid::NonFinite => f.write_str("a value is NaN or infinite"),
            Invalid::ParameterOutOfRange => f.write_str("a parameter is out of range"),
            Invalid::NotDivisible => {
                f.write_str("the activation's shape is not divisible as needed")
            }
            Invalid::MaskShape => f.write_str("the mask does not fit the activation's shape"),
            Invalid::FactorOut => f.write_str("factor-out must keep and drop at least one channel"),
            Invalid::SlotOutOfRange => f.write_str("a slot index is out of range"),
            Invalid::SlotUnset => f.write_str("a slot is read before it is written"),
            Invalid::SlotAliased => {
                f.write_str("a non-elementwise operation writes the slot it reads")
            }
            Invalid::OperandShape => f.write_str("an operand's shape does not fit the operation"),
            Invalid::NetOutputShape => {
                f.write_str("the coupling network's output is not (2 * changed channels, H, W)")
            }
            Invalid::EmptyNet => f.write_str("the coupling network has no nodes"),
            Invalid::Sequence => f.write_str("a sequence is malformed"),
            Invalid::TooLarge => f.write_str("sizes exceed the format's limits"),
            Invalid::Quantiles => f.write_str("quantile levels must lie in [0, 1] and ascend"),
            Invalid::EmbedNotFirst => {
                f.write_str("a feature extractor may only be the flow's first layer")
            }
            Invalid::LogScaleOutOfRange => write!(
                f,
                "a log-scale (actnorm log_scale or coupling scale) exceeds {} in magnitude",
                crate::validate::MAX_LOG_SCALE
            ),
            Invalid::PatchModel => f.write_str(
                "the patch model must decode as a gray, exact-size model with the plain bits/dim \
                 score, no threshold and no detail branch, no larger than the frame",
            ),
        }
    }
}

impl core::error::Error for Error {}
