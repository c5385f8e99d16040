//! Editing model files in place, the way an attacker, a bad flash write or a bit flip would:
//! for the robustness tests, the fuzzers' seeds and the fail-closed checks.
//!
//! A model file's checksum catches accidental damage, but anyone who can write the file can
//! also recompute it; the runtime must stay safe on a file that is well-formed, passes
//! validation, and carries weights chosen to break it. These helpers find the weights and
//! re-seal the file after editing them.

use alloc::vec::Vec;
use core::ops::Range;

use crate::error::{Error, Result};
use crate::header::{HEADER_LEN, header_for};
use crate::layers::{FlowLayer, NetNode, NetOp};
use crate::tensor::{Tensor, TensorData};

/// The byte ranges of every f32 tensor's values within `file`, a model file that decodes,
/// in file order. Overwriting whole 4-byte values inside these ranges keeps the file
/// well-formed (after [`reseal`]).
pub fn f32_value_ranges(file: &[u8]) -> Result<Vec<Range<usize>>> {
    let model = crate::decode(file)?.model;
    let base = file.as_ptr() as usize;
    let mut ranges = Vec::new();
    let mut add = |tensor: &Tensor<'_>| {
        if let TensorData::F32(bytes) = &tensor.data {
            let start = bytes.as_slice().as_ptr() as usize - base;
            ranges.push(start..start + bytes.len());
        }
    };
    visit_flow(&model, &mut add)?;
    // The detail branch's patch model lies inside the file too (its tensors borrow from it).
    if let Some(detail) = &model.detail {
        let patch = crate::decode_payload(detail.patch_model.as_slice())?.model;
        visit_flow(&patch, &mut add)?;
    }
    ranges.sort_by_key(|range| range.start);
    Ok(ranges)
}

fn visit_flow(model: &crate::Model<'_>, add: &mut impl FnMut(&Tensor<'_>)) -> Result<()> {
    for layer in model.flow.iter() {
        match layer.map_err(Error::Payload)? {
            FlowLayer::Coupling(coupling) => {
                add(&coupling.scale);
                visit_net(coupling.net.iter(), add)?;
            }
            FlowLayer::ActNorm(actnorm) => {
                add(&actnorm.bias);
                add(&actnorm.log_scale);
            }
            FlowLayer::InvertibleConv1x1(conv) => add(&conv.weight),
            FlowLayer::Embed(embed) => visit_net(embed.net.iter(), add)?,
            FlowLayer::Squeeze | FlowLayer::Unsqueeze | FlowLayer::FactorOut { .. } => {}
        }
    }
    Ok(())
}

fn visit_net<'a>(
    nodes: impl Iterator<Item = core::result::Result<NetNode<'a>, postcard::Error>>,
    add: &mut impl FnMut(&Tensor<'_>),
) -> Result<()> {
    for node in nodes {
        match node.map_err(Error::Payload)?.op {
            NetOp::Conv2d(conv) => {
                add(&conv.weight);
                add(&conv.bias);
            }
            NetOp::ConvTranspose2d(conv) => {
                add(&conv.weight);
                add(&conv.bias);
            }
            NetOp::Linear(linear) => {
                add(&linear.weight);
                add(&linear.bias);
            }
            NetOp::ChannelAffine(affine) => {
                add(&affine.scale);
                add(&affine.shift);
            }
            _ => {}
        }
    }
    Ok(())
}

/// Pushes every value of every f32 tensor holding more than `min_values` values to
/// `magnitude`, its sign kept, and reseals the file: a hostile model that still validates
/// (log-scales, which validation bounds, are the tensors of one value per channel; skip
/// them with `min_values` of 2 or more). With weights of 1e30 its activations overflow to
/// infinities whose sums of mixed signs are NaN.
pub fn inflate_weights(file: &mut [u8], magnitude: f32, min_values: usize) -> Result<()> {
    for range in f32_value_ranges(file)? {
        if range.len() <= 4 * min_values {
            continue;
        }
        let Some(values) = file.get_mut(range) else {
            continue;
        };
        for value in values.chunks_exact_mut(4) {
            let old = <[u8; 4]>::try_from(&*value).map_or(0.0, f32::from_le_bytes);
            value.copy_from_slice(&(old.signum() * magnitude).to_le_bytes());
        }
    }
    reseal(file)
}

/// Recomputes the header's length and checksum for the (edited) payload after it, keeping
/// the file's format version (a version-1 payload stays a version-1 file).
pub fn reseal(file: &mut [u8]) -> Result<()> {
    let (header, payload) = file
        .split_first_chunk_mut::<HEADER_LEN>()
        .ok_or(Error::TooShort { len: 0 })?;
    let version = [header[8], header[9]];
    *header = header_for(payload)?;
    header[8..10].copy_from_slice(&version);
    Ok(())
}
