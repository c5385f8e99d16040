//! Fully connected layers: the bottlenecked networks' encoder and decoder, and the MLPs of
//! flows on embeddings.
//!
//! The weights are packed at load transposed, one row per input, padded to whole tiles, after
//! a row holding the bias: the kernel then broadcasts each input and multiply-adds a
//! contiguous row into the outputs' registers ([`super::tiles::linear`]).

use flowgate_shared::Tensor;

use super::KernelPath;
use super::tiles::{self, TILE};
use crate::error::{Error, Result};

/// A fully connected layer's sizes, fixed at load.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LinearGeometry {
    inputs: usize,
    outputs: usize,
    /// Outputs rounded up to whole tiles: the packed rows' length.
    width: usize,
}

impl LinearGeometry {
    pub fn new(inputs: usize, outputs: usize) -> Self {
        LinearGeometry {
            inputs,
            outputs,
            width: outputs.next_multiple_of(TILE).max(TILE),
        }
    }

    /// Packed floats: the bias row, then one row per input.
    pub fn packed_len(&self) -> usize {
        (self.inputs + 1) * self.width
    }

    /// Kernel scratch one run needs: the padded outputs.
    pub fn scratch_len(&self) -> usize {
        self.width
    }
}

/// Packs weight `[outputs, inputs]` and `bias` (`[outputs]`) transposed
/// ([`LinearGeometry::packed_len`] floats).
pub(crate) fn pack_linear(
    weight: &Tensor<'_>,
    bias: &Tensor<'_>,
    geometry: &LinearGeometry,
    out: &mut [f32],
) {
    let mut rows = out.chunks_exact_mut(geometry.width);
    if let Some(row) = rows.next() {
        for (o, slot) in row.iter_mut().enumerate().take(geometry.outputs) {
            *slot = bias.get(o).unwrap_or(0.0);
        }
    }
    for (j, row) in rows.enumerate() {
        for (o, slot) in row.iter_mut().enumerate().take(geometry.outputs) {
            *slot = weight.get(o * geometry.inputs + j).unwrap_or(0.0);
        }
    }
}

/// Runs a planned layer: `output = bias + weight * input`, with `scratch`
/// ([`LinearGeometry::scratch_len`] elements) for the padded outputs.
pub(crate) fn linear(
    geometry: &LinearGeometry,
    input: &[f32],
    output: &mut [f32],
    packed: &[f32],
    scratch: &mut [f32],
    path: KernelPath,
) -> Result<()> {
    let input = input.get(..geometry.inputs).ok_or(Error::Inconsistent)?;
    let padded = scratch
        .get_mut(..geometry.width)
        .ok_or(Error::Inconsistent)?;
    tiles::linear(input, packed, geometry.width, padded, path)?;
    let output = output
        .get_mut(..geometry.outputs)
        .ok_or(Error::Inconsistent)?;
    output.copy_from_slice(padded.get(..geometry.outputs).ok_or(Error::Inconsistent)?);
    Ok(())
}
