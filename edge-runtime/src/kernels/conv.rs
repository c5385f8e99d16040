//! Convolutions and transposed convolutions, as the micro-kernel of [`super::tiles`] runs them.
//!
//! Every convolution becomes one or more *phases*, each a stride-1 correlation over flat,
//! zero-padded input planes where every tap is a fixed offset:
//!
//! - **Stride 1**: the input is zero-padded into planes of `(H + 2p) x (W + 2p)`. Output
//!   `(y, x)` is flat position `q = y * Wp + x`, and tap `(ky, kx)` reads `q + ky * Wp + kx`.
//!   The columns `x >= W_out` of each flat row are computed and dropped (`k - 1` of `Wp`),
//!   which buys tiles that run across rows: small planes (7 to 32 wide) fill the vectors.
//! - **Stride s**: the padded input is split into its `s x s` phases (space to depth), so
//!   output `(y, x)` reads phase `(ky % s, kx % s)` at `(y + ky / s, x + kx / s)`: stride 1
//!   again, each tap's phase plane folded into its offset.
//! - **Transposed, stride s**: each of the `s x s` output phases `((y + p) % s, (x + p) % s)`
//!   is a stride-1 correlation of the zero-padded input with the taps `ky = (y + p) % s + s a`,
//!   read at row `(y + p) / s - a`: dense sub-convolutions, no scatter.
//!
//! A convolution prepares its input (padding, or the phase split) into the kernels' scratch,
//! computes each phase's outputs for blocks of [`BLOCK`] channels into tiled planes, and
//! copies the valid outputs into the activation (interleaving the phases of a transposed one).
//! The weights were packed at load ([`pack_conv`]) in the order the micro-kernel reads them.

use flowgate_shared::{Dims, Tensor};

use super::KernelPath;
use super::tiles::{BLOCK, ConvBlock, TILE, conv_block};
use crate::error::{Error, Result};

/// Largest kernel side the kernels take (the format's `MAX_KERNEL` is 31).
const MAX_SIDE: usize = 32;

/// A convolution's shapes and the layout of its prepared input and tiled output, fixed at
/// load.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConvGeometry {
    pub transposed: bool,
    pub in_dims: Dims,
    pub out_dims: Dims,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad: usize,
    /// Rows and columns of a prepared plane.
    prepared_h: usize,
    prepared_w: usize,
    /// Zero rows (columns) above (left of) the input in a transposed convolution's planes.
    lead_y: usize,
    lead_x: usize,
    /// Prepared planes: the input's channels, times `s * s` phases for a strided convolution.
    planes: usize,
    /// Elements from one prepared plane to the next.
    plane_stride: usize,
    /// Elements of the prepared input, slack for the last tile's reads included.
    prepared_len: usize,
    /// Elements from one tiled output plane to the next.
    tiled_stride: usize,
}

/// One phase: where its taps read and where its outputs go.
#[derive(Debug)]
struct Phase {
    rows: [usize; MAX_SIDE],
    row_taps: usize,
    cols: [usize; MAX_SIDE],
    col_taps: usize,
    /// Output rows and columns of the phase, and the flat row length of its tiled output.
    out_rows: usize,
    out_cols: usize,
    flat_row: usize,
    /// The first output row and column, and the step between them (1, or the stride of a
    /// transposed convolution).
    first_y: usize,
    first_x: usize,
    step: usize,
}

impl Phase {
    fn rows(&self) -> &[usize] {
        self.rows.get(..self.row_taps).unwrap_or(&[])
    }

    fn cols(&self) -> &[usize] {
        self.cols.get(..self.col_taps).unwrap_or(&[])
    }

    fn taps(&self) -> usize {
        self.row_taps * self.col_taps
    }

    /// Flat outputs computed, rounded up to whole tiles.
    fn tiled_len(&self) -> usize {
        (self.out_rows * self.flat_row).next_multiple_of(TILE)
    }

    /// The largest offset a tap adds.
    fn reach(&self) -> usize {
        self.rows().iter().max().copied().unwrap_or(0)
            + self.cols().iter().max().copied().unwrap_or(0)
    }
}

fn kernel_side(weight: &Tensor<'_>) -> Result<(usize, usize, usize, usize)> {
    match weight.shape.as_slice() {
        [a, b, kh, kw] if (*kh as usize) <= MAX_SIDE && (*kw as usize) <= MAX_SIDE => {
            Ok((*a as usize, *b as usize, *kh as usize, *kw as usize))
        }
        _ => Err(Error::Inconsistent),
    }
}

impl ConvGeometry {
    /// A convolution (weight `[out, in, kh, kw]`) from `in_dims` to `out_dims`.
    pub fn direct(
        weight: &Tensor<'_>,
        stride: u8,
        pad: u8,
        in_dims: Dims,
        out_dims: Dims,
    ) -> Result<Self> {
        let (_, _, kh, kw) = kernel_side(weight)?;
        let (stride, pad) = (usize::from(stride).max(1), usize::from(pad));
        let (h, w) = (in_dims.height as usize, in_dims.width as usize);
        let prepared_h = (h + 2 * pad).div_ceil(stride);
        let prepared_w = (w + 2 * pad).div_ceil(stride);
        let planes = in_dims.channels as usize * stride * stride;
        Self::finish(ConvGeometry {
            transposed: false,
            in_dims,
            out_dims,
            kh,
            kw,
            stride,
            pad,
            prepared_h,
            prepared_w,
            lead_y: 0,
            lead_x: 0,
            planes,
            plane_stride: prepared_h * prepared_w,
            prepared_len: 0,
            tiled_stride: 0,
        })
    }

    /// A transposed convolution (weight `[in, out, kh, kw]`) from `in_dims` to `out_dims`
    /// (padding and output padding already in `out_dims`).
    pub fn transposed(
        weight: &Tensor<'_>,
        stride: u8,
        pad: u8,
        in_dims: Dims,
        out_dims: Dims,
    ) -> Result<Self> {
        let (_, _, kh, kw) = kernel_side(weight)?;
        let (stride, pad) = (usize::from(stride).max(1), usize::from(pad));
        let lead_y = kh.div_ceil(stride).saturating_sub(1);
        let lead_x = kw.div_ceil(stride).saturating_sub(1);
        // Every phase's outputs read input rows up to its last output's (y + p) / s.
        let last_q = |out: usize| (out + pad).saturating_sub(1) / stride + 1;
        let prepared_h = lead_y + (in_dims.height as usize).max(last_q(out_dims.height as usize));
        let prepared_w = lead_x + (in_dims.width as usize).max(last_q(out_dims.width as usize));
        Self::finish(ConvGeometry {
            transposed: true,
            in_dims,
            out_dims,
            kh,
            kw,
            stride,
            pad,
            prepared_h,
            prepared_w,
            lead_y,
            lead_x,
            planes: in_dims.channels as usize,
            plane_stride: prepared_h * prepared_w,
            prepared_len: 0,
            tiled_stride: 0,
        })
    }

    /// Sizes the prepared input and the tiled output from the phases.
    fn finish(mut self) -> Result<Self> {
        let in_channels = self.in_dims.channels as usize;
        let mut prepared_len = self.planes * self.plane_stride;
        let mut tiled_stride = TILE;
        for index in 0..self.phases() {
            let phase = self.phase(index)?;
            tiled_stride = tiled_stride.max(phase.tiled_len());
            let reads = in_channels.saturating_sub(1) * self.plane_stride
                + phase.reach()
                + phase.tiled_len();
            prepared_len = prepared_len.max(reads);
        }
        self.prepared_len = prepared_len;
        self.tiled_stride = tiled_stride;
        Ok(self)
    }

    fn out_blocks(&self) -> usize {
        (self.out_dims.channels as usize).div_ceil(BLOCK)
    }

    /// Kernel scratch one run needs: the prepared input, then the tiled output.
    pub fn scratch_len(&self) -> usize {
        self.prepared_len + self.out_blocks() * BLOCK * self.tiled_stride
    }

    fn phases(&self) -> usize {
        if self.transposed {
            self.stride * self.stride
        } else {
            1
        }
    }

    fn phase(&self, index: usize) -> Result<Phase> {
        let mut phase = Phase {
            rows: [0; MAX_SIDE],
            row_taps: 0,
            cols: [0; MAX_SIDE],
            col_taps: 0,
            out_rows: self.out_dims.height as usize,
            out_cols: self.out_dims.width as usize,
            flat_row: self.prepared_w,
            first_y: 0,
            first_x: 0,
            step: 1,
        };
        let s = self.stride;
        if !self.transposed {
            // Tap (ky, kx) reads phase plane (ky % s, kx % s) at (ky / s, kx / s).
            let phase_plane = self.in_dims.channels as usize * self.plane_stride;
            for (ky, row) in phase.rows.iter_mut().enumerate().take(self.kh) {
                *row = (ky % s) * s * phase_plane + (ky / s) * self.prepared_w;
            }
            for (kx, col) in phase.cols.iter_mut().enumerate().take(self.kw) {
                *col = (kx % s) * phase_plane + kx / s;
            }
            phase.row_taps = self.kh;
            phase.col_taps = self.kw;
            return Ok(phase);
        }
        let (ry, rx) = (index / s, index % s);
        let (rows, first_y, taps_y) =
            self.transposed_axis(ry, self.kh, self.out_dims.height as usize, self.lead_y);
        let (cols, first_x, taps_x) =
            self.transposed_axis(rx, self.kw, self.out_dims.width as usize, self.lead_x);
        for (a, row) in phase.rows.iter_mut().enumerate().take(taps_y) {
            *row = (first_y.0 + self.lead_y - a) * self.prepared_w;
        }
        for (b, col) in phase.cols.iter_mut().enumerate().take(taps_x) {
            *col = first_x.0 + self.lead_x - b;
        }
        phase.row_taps = taps_y;
        phase.col_taps = taps_x;
        phase.out_rows = rows;
        phase.out_cols = cols;
        phase.first_y = first_y.1;
        phase.first_x = first_x.1;
        phase.step = s;
        Ok(phase)
    }

    /// For output phase `r` along an axis of `out` outputs with kernel side `k`: how many
    /// outputs it has, its first `q = (y + p) / s` with the output `y` that is, and how many
    /// taps (`k = r + s a`) reach it.
    fn transposed_axis(
        &self,
        r: usize,
        k: usize,
        out: usize,
        lead: usize,
    ) -> (usize, (usize, usize), usize) {
        let (s, p) = (self.stride, self.pad);
        let taps = if r < k { (k - r).div_ceil(s) } else { 0 };
        debug_assert!(taps <= lead + 1);
        // Outputs y = q s + r - p with 0 <= y < out.
        let first_q = if p > r { (p - r).div_ceil(s) } else { 0 };
        let end_q = if out + p > r {
            (out + p - r - 1) / s + 1
        } else {
            0
        };
        let count = end_q.saturating_sub(first_q);
        let first_y = (first_q * s + r).saturating_sub(p);
        (count, (first_q, first_y), taps)
    }

    /// Packed weights: per phase, per block of output channels, per input channel, per tap
    /// (row-major), the block's `BLOCK` weights (zeros past the last channel).
    pub fn packed_len(&self) -> usize {
        let in_channels = self.in_dims.channels as usize;
        (0..self.phases())
            .map(|index| self.phase(index).map_or(0, |phase| phase.taps()))
            .sum::<usize>()
            * self.out_blocks()
            * in_channels
            * BLOCK
    }
}

/// Packs `weight` ([`ConvGeometry::packed_len`] floats) in the micro-kernel's order.
pub(crate) fn pack_conv(weight: &Tensor<'_>, geometry: &ConvGeometry, out: &mut [f32]) {
    let (in_channels, out_channels) = (
        geometry.in_dims.channels as usize,
        geometry.out_dims.channels as usize,
    );
    let (kh, kw, s) = (geometry.kh, geometry.kw, geometry.stride);
    let mut packed = out.iter_mut();
    for index in 0..geometry.phases() {
        let Ok(phase) = geometry.phase(index) else {
            return;
        };
        let (ry, rx) = (index / s, index % s);
        for block in 0..geometry.out_blocks() {
            for ic in 0..in_channels {
                for a in 0..phase.row_taps {
                    for b in 0..phase.col_taps {
                        for lane in 0..BLOCK {
                            let oc = block * BLOCK + lane;
                            let value = if oc >= out_channels {
                                0.0
                            } else if geometry.transposed {
                                let (ky, kx) = (ry + s * a, rx + s * b);
                                weight
                                    .get(((ic * out_channels + oc) * kh + ky) * kw + kx)
                                    .unwrap_or(0.0)
                            } else {
                                weight
                                    .get(((oc * in_channels + ic) * kh + a) * kw + b)
                                    .unwrap_or(0.0)
                            };
                            if let Some(slot) = packed.next() {
                                *slot = value;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Runs a planned convolution: `input` (the activation, channel-major) to `output`, with
/// `scratch` ([`ConvGeometry::scratch_len`] elements) for the prepared input and the tiles.
pub(crate) fn conv(
    geometry: &ConvGeometry,
    input: &[f32],
    output: &mut [f32],
    weights: &[f32],
    bias: &[f32],
    scratch: &mut [f32],
    path: KernelPath,
) -> Result<()> {
    let (prepared, tiled) = scratch
        .split_at_mut_checked(geometry.prepared_len)
        .ok_or(Error::Inconsistent)?;
    prepare(geometry, input, prepared)?;
    let in_channels = geometry.in_dims.channels as usize;
    let out_channels = geometry.out_dims.channels as usize;
    let stride = geometry.tiled_stride;
    let mut weights = weights;
    for index in 0..geometry.phases() {
        let phase = geometry.phase(index)?;
        let per_block = in_channels * phase.taps() * BLOCK;
        for block in 0..geometry.out_blocks() {
            let (block_weights, rest) = weights
                .split_at_checked(per_block)
                .ok_or(Error::Inconsistent)?;
            weights = rest;
            let first = block * BLOCK;
            let planes = tiled
                .get_mut(first * stride..(first + BLOCK) * stride)
                .ok_or(Error::Inconsistent)?;
            let mut planes = planes.chunks_exact_mut(stride);
            let outputs: [&mut [f32]; BLOCK] =
                core::array::from_fn(|_| planes.next().unwrap_or_default());
            let work = ConvBlock {
                input: prepared,
                plane_stride: geometry.plane_stride,
                in_channels,
                rows: phase.rows(),
                cols: phase.cols(),
                weights: block_weights,
                bias: core::array::from_fn(|lane| bias.get(first + lane).copied().unwrap_or(0.0)),
                len: phase.tiled_len(),
            };
            conv_block(&work, outputs, path)?;
        }
        scatter(geometry, &phase, tiled, out_channels, output)?;
    }
    Ok(())
}

/// Writes the input into the prepared planes: zero-padded, split into phases for a strided
/// convolution, with leading zero rows and columns for a transposed one; zeros elsewhere
/// (the slack the last tile reads included, whatever the scratch held).
fn prepare(geometry: &ConvGeometry, input: &[f32], prepared: &mut [f32]) -> Result<()> {
    prepared.fill(0.0);
    let (h, w) = (
        geometry.in_dims.height as usize,
        geometry.in_dims.width as usize,
    );
    let channels = geometry.in_dims.channels as usize;
    let (pw, stride) = (geometry.prepared_w, geometry.plane_stride);
    if geometry.transposed {
        for c in 0..channels {
            for y in 0..h {
                let from = input
                    .get((c * h + y) * w..(c * h + y + 1) * w)
                    .ok_or(Error::Inconsistent)?;
                let at = c * stride + (y + geometry.lead_y) * pw + geometry.lead_x;
                prepared
                    .get_mut(at..at + w)
                    .ok_or(Error::Inconsistent)?
                    .copy_from_slice(from);
            }
        }
        return Ok(());
    }
    let (s, p) = (geometry.stride, geometry.pad);
    if s == 1 {
        for c in 0..channels {
            for y in 0..h {
                let from = input
                    .get((c * h + y) * w..(c * h + y + 1) * w)
                    .ok_or(Error::Inconsistent)?;
                let at = c * stride + (y + p) * pw + p;
                prepared
                    .get_mut(at..at + w)
                    .ok_or(Error::Inconsistent)?
                    .copy_from_slice(from);
            }
        }
        return Ok(());
    }
    // Phase (ry, rx), channel c holds padded pixel (i s + ry, j s + rx) at (i, j).
    for ry in 0..s {
        for rx in 0..s {
            for c in 0..channels {
                let plane_at = ((ry * s + rx) * channels + c) * stride;
                for i in 0..geometry.prepared_h {
                    let Some(y) = (i * s + ry).checked_sub(p).filter(|&y| y < h) else {
                        continue;
                    };
                    let from = input
                        .get((c * h + y) * w..(c * h + y + 1) * w)
                        .ok_or(Error::Inconsistent)?;
                    let row = prepared
                        .get_mut(plane_at + i * pw..plane_at + (i + 1) * pw)
                        .ok_or(Error::Inconsistent)?;
                    // Columns j with 0 <= j s + rx - p < w: one strided copy, the range
                    // worked out once per row rather than tested per element.
                    let first_j = p.saturating_sub(rx).div_ceil(s);
                    let first_x = first_j * s + rx - p;
                    let to = row.get_mut(first_j..).unwrap_or(&mut []);
                    let from = from.get(first_x..).unwrap_or(&[]);
                    for (to, &x) in to.iter_mut().zip(from.iter().step_by(s)) {
                        *to = x;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Copies a phase's valid outputs from the tiled planes into the activation.
fn scatter(
    geometry: &ConvGeometry,
    phase: &Phase,
    tiled: &[f32],
    channels: usize,
    output: &mut [f32],
) -> Result<()> {
    let (out_h, out_w) = (
        geometry.out_dims.height as usize,
        geometry.out_dims.width as usize,
    );
    for c in 0..channels {
        for r in 0..phase.out_rows {
            let at = c * geometry.tiled_stride + r * phase.flat_row;
            let from = tiled
                .get(at..at + phase.out_cols)
                .ok_or(Error::Inconsistent)?;
            let y = phase.first_y + r * phase.step;
            let row = output
                .get_mut((c * out_h + y) * out_w..(c * out_h + y + 1) * out_w)
                .ok_or(Error::Inconsistent)?;
            if phase.step == 1 {
                row.get_mut(phase.first_x..phase.first_x + phase.out_cols)
                    .ok_or(Error::Inconsistent)?
                    .copy_from_slice(from);
            } else {
                let row = row.get_mut(phase.first_x..).ok_or(Error::Inconsistent)?;
                for (to, from) in row.iter_mut().step_by(phase.step).zip(from) {
                    *to = *from;
                }
            }
        }
    }
    Ok(())
}
