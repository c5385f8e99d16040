//! The inner loops: a convolution's output tile and a fully connected layer's, each once for
//! every instruction set ([`super::lanes`]), dispatched once per call.
//!
//! The convolution's micro-kernel computes [`BLOCK`] output channels over [`TILE`] consecutive
//! outputs of a flat plane in registers (4 x 2 AVX2 vectors, 4 x 4 NEON vectors), summing over
//! every input channel and tap before it stores anything: per tap it loads the input tile once
//! and broadcasts each of the block's weights once, so the loop is multiply-adds and loads
//! with no bookkeeping. Input planes are prepared ([`super::conv`]) so that every tap of every
//! output is a fixed offset: `input[ic * plane_stride + rows[r] + cols[c] + q]`.
//!
//! Bounds are checked once per call, against the largest offset the loops can reach; the loops
//! then read and write through raw pointers.

use super::KernelPath;
use super::lanes::{Lanes, Scalar};
use crate::error::{Error, Result};

/// Output channels computed per pass.
pub(crate) const BLOCK: usize = 4;

/// Consecutive outputs computed per pass: two 8-lane vectors, four 4-lane ones.
///
/// Why not more: with 24 (three AVX2 vectors), the 12 accumulators, 3 input vectors and the
/// broadcast weight took all 16 AVX2 registers; LLVM then kept one accumulator on the stack
/// (a store and a reload on its dependency chain every tap) and shuffled the others through
/// 13 register moves per 12 multiply-adds. 16 needs 11 registers and compiles to loads,
/// broadcasts and multiply-adds only; whole frames scored 1.2 to 1.3 times faster.
pub(crate) const TILE: usize = 16;

/// One block's work: `out[b][q] = bias[b] + sum over (ic, r, c) of
/// weights[((ic * rows + r) * cols + c) * BLOCK + b] * input[ic * plane_stride + rows[r] +
/// cols[c] + q]` for `q < len`, the terms summed in that order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConvBlock<'a> {
    pub input: &'a [f32],
    pub plane_stride: usize,
    pub in_channels: usize,
    pub rows: &'a [usize],
    pub cols: &'a [usize],
    pub weights: &'a [f32],
    pub bias: [f32; BLOCK],
    /// A multiple of [`TILE`].
    pub len: usize,
}

impl ConvBlock<'_> {
    /// Whether every read and write of the loops stays inside the slices.
    fn in_bounds(&self, outputs: &[&mut [f32]; BLOCK]) -> bool {
        let taps = self.rows.len() * self.cols.len();
        let reach = self.rows.iter().max().copied().unwrap_or(0)
            + self.cols.iter().max().copied().unwrap_or(0);
        let input_ok = self.in_channels == 0
            || taps == 0
            || (self.in_channels - 1) * self.plane_stride + reach + self.len <= self.input.len();
        self.len.is_multiple_of(TILE)
            && input_ok
            && self.weights.len() >= self.in_channels * taps * BLOCK
            && outputs.iter().all(|out| out.len() >= self.len)
    }
}

/// Runs one block on `path`'s lanes.
pub(crate) fn conv_block(
    block: &ConvBlock<'_>,
    mut outputs: [&mut [f32]; BLOCK],
    path: KernelPath,
) -> Result<()> {
    if !block.in_bounds(&outputs) {
        return Err(Error::Inconsistent);
    }
    let outputs = outputs.each_mut().map(|out| out.as_mut_ptr());
    match path {
        #[cfg(target_arch = "x86_64")]
        KernelPath::Avx2Fma if path.available() => {
            // SAFETY: this CPU runs AVX2 and FMA (checked just above); bounds checked above.
            unsafe { conv_block_avx2_fma(block, outputs) }
        }
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        KernelPath::Neon => {
            // SAFETY: NEON is a feature of this build; bounds checked above.
            unsafe { conv_block_lanes::<super::lanes::Neon, { TILE / 4 }>(block, outputs) }
        }
        // SAFETY: bounds checked above.
        _ => unsafe { conv_block_lanes::<Scalar, { TILE / 8 }>(block, outputs) },
    }
    Ok(())
}

/// [`conv_block_lanes`] compiled for AVX2 and FMA.
///
/// # Safety
/// AVX2 and FMA; [`ConvBlock::in_bounds`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn conv_block_avx2_fma(block: &ConvBlock<'_>, outputs: [*mut f32; BLOCK]) {
    // SAFETY: the caller's.
    unsafe { conv_block_lanes::<super::lanes::Avx2Fma, { TILE / 8 }>(block, outputs) }
}

/// The micro-kernel, `NV` vectors of `L` per output channel.
///
/// # Safety
/// `L` runs on this CPU; [`ConvBlock::in_bounds`] holds for `outputs`' slices.
#[inline(always)]
unsafe fn conv_block_lanes<L: Lanes, const NV: usize>(
    block: &ConvBlock<'_>,
    outputs: [*mut f32; BLOCK],
) {
    const { assert!(NV * L::WIDTH == TILE) };
    let input = block.input.as_ptr();
    let mut q = 0;
    while q < block.len {
        // SAFETY (every block below): the caller's lanes; the offsets stay within the bounds
        // `in_bounds` checked: q + v * WIDTH < len, and every input offset is at most
        // (in_channels - 1) * plane_stride + max(rows) + max(cols) + q + TILE - 1.
        let mut acc: [[L::V; NV]; BLOCK] = core::array::from_fn(|b| {
            [unsafe { L::splat(block.bias.get(b).copied().unwrap_or(0.0)) }; NV]
        });
        let mut weights = block.weights.as_ptr();
        for ic in 0..block.in_channels {
            let plane = unsafe { input.add(ic * block.plane_stride + q) };
            for &r in block.rows {
                let row = unsafe { plane.add(r) };
                for &c in block.cols {
                    let at = unsafe { row.add(c) };
                    let x: [L::V; NV] =
                        core::array::from_fn(|v| unsafe { L::load(at.add(v * L::WIDTH)) });
                    for (b, acc) in acc.iter_mut().enumerate() {
                        let w = unsafe { L::splat(*weights.add(b)) };
                        for (acc, x) in acc.iter_mut().zip(x) {
                            *acc = unsafe { L::mul_add(w, x, *acc) };
                        }
                    }
                    weights = unsafe { weights.add(BLOCK) };
                }
            }
        }
        for (acc, out) in acc.iter().zip(outputs) {
            for (v, acc) in acc.iter().enumerate() {
                unsafe { L::store(out.add(q + v * L::WIDTH), *acc) };
            }
        }
        q += TILE;
    }
}

/// A fully connected layer's work: `out[o] = packed[o] + sum_j x[j] * packed[(1 + j) * width
/// + o]` for `o < width` (the bias row, then one row per input, each `width` long, a multiple
/// of [`TILE`]), the terms summed in `j` order.
pub(crate) fn linear(
    x: &[f32],
    packed: &[f32],
    width: usize,
    out: &mut [f32],
    path: KernelPath,
) -> Result<()> {
    let fits =
        width.is_multiple_of(TILE) && packed.len() >= (x.len() + 1) * width && out.len() >= width;
    if !fits {
        return Err(Error::Inconsistent);
    }
    match path {
        #[cfg(target_arch = "x86_64")]
        KernelPath::Avx2Fma if path.available() => {
            // SAFETY: AVX2 and FMA checked just above; bounds checked above.
            unsafe { linear_avx2_fma(x, packed, width, out) }
        }
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        KernelPath::Neon => {
            // SAFETY: NEON is a feature of this build; bounds checked above.
            unsafe { linear_lanes::<super::lanes::Neon, { TILE / 4 }>(x, packed, width, out) }
        }
        // SAFETY: bounds checked above.
        _ => unsafe { linear_lanes::<Scalar, { TILE / 8 }>(x, packed, width, out) },
    }
    Ok(())
}

/// [`linear_lanes`] compiled for AVX2 and FMA.
///
/// # Safety
/// AVX2 and FMA; the bounds [`linear`] checks.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn linear_avx2_fma(x: &[f32], packed: &[f32], width: usize, out: &mut [f32]) {
    // SAFETY: the caller's.
    unsafe { linear_lanes::<super::lanes::Avx2Fma, { TILE / 8 }>(x, packed, width, out) }
}

/// # Safety
/// `L` runs on this CPU; the bounds [`linear`] checks.
#[inline(always)]
unsafe fn linear_lanes<L: Lanes, const NV: usize>(
    x: &[f32],
    packed: &[f32],
    width: usize,
    out: &mut [f32],
) {
    const { assert!(NV * L::WIDTH == TILE) };
    let (packed, out) = (packed.as_ptr(), out.as_mut_ptr());
    let mut o = 0;
    while o < width {
        // SAFETY (every block below): o + TILE <= width, and row j + 1 of `width` floats lies
        // inside `packed` for every j < x.len().
        let mut acc: [L::V; NV] =
            core::array::from_fn(|v| unsafe { L::load(packed.add(o + v * L::WIDTH)) });
        for (j, &x) in x.iter().enumerate() {
            let row = unsafe { packed.add((1 + j) * width + o) };
            let x = unsafe { L::splat(x) };
            for (v, acc) in acc.iter_mut().enumerate() {
                *acc = unsafe { L::mul_add(x, L::load(row.add(v * L::WIDTH)), *acc) };
            }
        }
        for (v, acc) in acc.iter().enumerate() {
            unsafe { L::store(out.add(o + v * L::WIDTH), *acc) };
        }
        o += TILE;
    }
}
