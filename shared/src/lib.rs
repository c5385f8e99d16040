//! flowgate's model format: the one contract between the trainer and the edge runtime.
//!
//! A model file (`*.fgm`) is a fixed [header] (magic, format version, payload length,
//! CRC32) followed by the [postcard] encoding of a [`Model`]. Reading needs neither `std` nor
//! `alloc`: tensors and layer lists borrow from the file ([`Bytes`], [`Seq`]). [`decode`]
//! checks the framing, decodes and [validates](validate::validate) the model; it returns an
//! [`Error`] for any byte string that is not a usable model and never panics.
//!
//! Features: `alloc` adds writing ([`encode`]); `std` adds board configs ([`board`]).
#![no_std]
#![deny(missing_docs)]
#![warn(clippy::indexing_slicing)]
#![cfg_attr(test, allow(clippy::indexing_slicing))]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "std")]
pub mod board;
pub mod bytes;
pub mod calibration;
pub mod detail;
pub mod error;
#[cfg(feature = "alloc")]
pub mod example;
pub mod header;
pub mod layers;
pub mod model;
#[cfg(feature = "alloc")]
pub mod tamper;
pub mod tensor;
pub mod validate;

pub use bytes::{Bytes, Seq};
pub use detail::{Detail, Standardise, patch_origin};
pub use error::{Error, Invalid, Location, Result};
pub use header::{FORMAT_VERSION, HEADER_LEN, MAGIC, OLDEST_READABLE_VERSION};
pub use layers::{
    ActNorm, ChannelAffine, Conv2d, ConvTranspose2d, Coupling, Embed, FlowLayer, InvertibleConv1x1,
    Linear, Mask, NetNode, NetOp, Quadrant,
};
pub use model::{InputSpec, Model, Preprocess, Quantile, Resize, ScoreKind, Threshold};
pub use tensor::{Precision, Tensor, TensorData};
pub use validate::{DetailSummary, Dims, ModelSummary, ScratchPlan};

/// A decoded model that passed validation, with its costs.
#[derive(Debug, Clone)]
pub struct ValidatedModel<'a> {
    /// The model, borrowing from the file.
    pub model: Model<'a>,
    /// Sizes and costs, including the scratch the runtime needs.
    pub summary: ModelSummary,
}

/// Checks the header and checksum, decodes the payload and validates the model.
pub fn decode(file: &[u8]) -> Result<ValidatedModel<'_>> {
    match header::unframe_versioned(file)? {
        (1, payload) => {
            let model = take_all::<model::ModelV1<'_>>(payload)?.into();
            let summary = validate::validate(&model)?;
            Ok(ValidatedModel { model, summary })
        }
        (_, payload) => decode_payload(payload),
    }
}

/// The one `T` that `payload` holds, with no bytes left over.
pub(crate) fn take_all<'a, T: serde::Deserialize<'a>>(payload: &'a [u8]) -> Result<T> {
    let (value, unread) = postcard::take_from_bytes::<T>(payload).map_err(Error::Payload)?;
    if !unread.is_empty() {
        return Err(Error::TrailingPayload {
            unread: unread.len(),
        });
    }
    Ok(value)
}

/// Decodes and validates a payload of the current format version without its header (no
/// checksum).
pub fn decode_payload(payload: &[u8]) -> Result<ValidatedModel<'_>> {
    let model = take_all::<Model<'_>>(payload)?;
    let summary = validate::validate(&model)?;
    Ok(ValidatedModel { model, summary })
}

/// Validates `model` and encodes it as a complete model file. An invalid model is refused,
/// so whatever this writes, [`decode`] reads back.
#[cfg(feature = "alloc")]
pub fn encode(model: &Model<'_>) -> Result<alloc::vec::Vec<u8>> {
    let payload = postcard::to_allocvec(model).map_err(Error::Encode)?;
    // Validate the encoded form: it is exactly what a reader will see.
    decode_payload(&payload)?;
    let mut file = alloc::vec::Vec::with_capacity(HEADER_LEN + payload.len());
    file.extend_from_slice(&header::header_for(&payload)?);
    file.extend_from_slice(&payload);
    Ok(file)
}
