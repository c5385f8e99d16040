//! 2-D convolution: the s/t networks' and extractors' main cost.

use flowgate_shared::Dims;

use super::KernelPath;
use super::blocks::{BlockKernel, ROW_BUFFER, run_blocks};
use super::lanes::Lanes;
use super::ops::plane;
use super::weights::Weights;
use crate::error::{Error, Result};

/// Range of positions `p < count` whose `p * stride + tap - pad` lies in `0..size`: for a
/// convolution, the outputs whose source is inside the input; for a transposed one, the
/// inputs whose target is inside the output.
pub(super) fn valid_range(
    count: usize,
    size: usize,
    tap: usize,
    pad: usize,
    stride: usize,
) -> (usize, usize) {
    let first = if pad > tap {
        (pad - tap).div_ceil(stride)
    } else {
        0
    };
    // Largest o with o * stride + tap - pad <= size - 1.
    let limit = size + pad;
    let end = if limit > tap {
        ((limit - tap - 1) / stride + 1).min(count)
    } else {
        0
    };
    (first, end.max(first))
}

/// A convolution's weights and geometry, for [`conv2d`] (weight `[out, in, kh, kw]`) and
/// [`super::transposed::conv_transpose2d`] (weight `[in, out, kh, kw]`).
#[derive(Debug, Clone, Copy)]
pub struct Conv<'a> {
    /// The kernel.
    pub weight: Weights<'a>,
    /// One value per output channel.
    pub bias: Weights<'a>,
    /// (height, width) of the kernel.
    pub kernel: (usize, usize),
    /// Step in both directions.
    pub stride: usize,
    /// Padding on every side (for transposed convs: removed from every side of the output).
    pub pad: usize,
}

impl<'a> Conv<'a> {
    /// Reads the kernel size from a rank-4 weight tensor.
    pub fn new(
        weight: &'a flowgate_shared::Tensor<'a>,
        bias: &'a flowgate_shared::Tensor<'a>,
        stride: u8,
        pad: u8,
    ) -> Result<Self> {
        let kernel = match weight.shape.as_slice() {
            [_, _, kh, kw] => (*kh as usize, *kw as usize),
            _ => return Err(Error::Inconsistent),
        };
        Ok(Conv {
            weight: Weights::new(weight),
            bias: Weights::new(bias),
            kernel,
            stride: usize::from(stride),
            pad: usize::from(pad),
        })
    }
}

/// A convolution's sizes, as its kernels index them.
#[derive(Debug, Clone, Copy)]
pub(super) struct Geometry {
    pub in_channels: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad: usize,
}

impl Geometry {
    pub(super) fn new(conv: &Conv<'_>, in_dims: Dims, out_dims: Dims) -> Self {
        Geometry {
            in_channels: in_dims.channels as usize,
            in_h: in_dims.height as usize,
            in_w: in_dims.width as usize,
            out_h: out_dims.height as usize,
            out_w: out_dims.width as usize,
            kh: conv.kernel.0,
            kw: conv.kernel.1,
            stride: conv.stride,
            pad: conv.pad,
        }
    }
}

/// 2-D convolution, zero padding; weight `[out, in, kh, kw]`. Each output element sums its
/// terms in (input channel, ky, kx) order, as a plain loop would, so the scalar path's
/// results do not depend on the blocking.
pub fn conv2d(
    input: &[f32],
    in_dims: Dims,
    output: &mut [f32],
    out_dims: Dims,
    conv: &Conv<'_>,
    path: KernelPath,
) -> Result<()> {
    let kernel = Conv2d {
        input,
        weight: conv.weight,
        geometry: Geometry::new(conv, in_dims, out_dims),
        fuses: fuses(conv, in_dims),
    };
    run_blocks(&kernel, output, out_dims, conv.bias, path)
}

struct Conv2d<'k, 'w> {
    input: &'k [f32],
    weight: Weights<'w>,
    geometry: Geometry,
    fuses: bool,
}

impl BlockKernel for Conv2d<'_, '_> {
    #[inline(always)]
    fn block<L: Lanes, const B: usize>(
        &self,
        planes: &mut [&mut [f32]; B],
        first: usize,
    ) -> Result<()> {
        if L::FUSES_TAPS && self.fuses {
            self.fused_block::<L, B>(planes, first)
        } else {
            self.plain_block::<L, B>(planes, first)
        }
    }
}

/// Kernels up to 3 x 3 fuse their taps in [`Conv2d::fused_block`].
const MAX_KERNEL: usize = 3;
const MAX_TAPS: usize = MAX_KERNEL * MAX_KERNEL;

/// Elements of a zero-padded input row in [`Conv2d::fused_block`]: rows up to 64 wide with a
/// padding of 1.
const PADDED_ROW: usize = ROW_BUFFER + 2;

/// Whether [`Conv2d::fused_block`] runs this convolution.
fn fuses(conv: &Conv<'_>, in_dims: Dims) -> bool {
    let (kh, kw) = conv.kernel;
    conv.stride == 1
        && kh <= MAX_KERNEL
        && kw <= MAX_KERNEL
        && kh * kw >= 2
        && in_dims.width as usize + 2 * conv.pad <= PADDED_ROW
}

impl Conv2d<'_, '_> {
    /// A unit-stride convolution of at most 3 x 3 taps, with all taps of an output row at once:
    /// each output element is loaded and stored once per input channel, not once per tap. The
    /// input rows are copied into zero-padded stack rows, so the border needs no special case:
    /// a tap outside the input adds `w * 0`, which leaves the sum unchanged. Each output element
    /// sums its terms in (input channel, ky, kx) order, as the plain loop.
    #[inline(always)]
    fn fused_block<L: Lanes, const B: usize>(
        &self,
        planes: &mut [&mut [f32]; B],
        first: usize,
    ) -> Result<()> {
        let Geometry {
            in_channels,
            in_h,
            in_w,
            out_h,
            out_w,
            kh,
            kw,
            pad,
            ..
        } = self.geometry;
        let (input, weight) = (self.input, self.weight);
        let taps = kh * kw;
        let mut padded = [[0f32; PADDED_ROW]; MAX_KERNEL];
        for i in 0..in_channels {
            let src = plane(input, i, in_h * in_w)?;
            let mut w = [[0f32; B]; MAX_TAPS];
            for (t, w) in w.iter_mut().take(taps).enumerate() {
                for (b, w) in w.iter_mut().enumerate() {
                    *w = weight.at(first + b, i * taps + t);
                }
            }
            for oy in 0..out_h {
                // The kernel rows that read inside the input.
                let (ky0, ky1) = (
                    pad.saturating_sub(oy),
                    (in_h + pad).saturating_sub(oy).min(kh),
                );
                if ky0 >= ky1 {
                    continue;
                }
                for (ky, row) in padded.iter_mut().enumerate().take(ky1).skip(ky0) {
                    let iy = oy + ky - pad;
                    let from = src.get(iy * in_w..(iy + 1) * in_w);
                    let (to, from) = row
                        .get_mut(pad..pad + in_w)
                        .zip(from)
                        .ok_or(Error::Inconsistent)?;
                    to.copy_from_slice(from); // both in_w long
                }
                let mut xs: [&[f32]; MAX_TAPS] = [&[]; MAX_TAPS];
                for (t, x) in xs.iter_mut().enumerate().take(ky1 * kw).skip(ky0 * kw) {
                    let (ky, kx) = (t / kw, t % kw);
                    let row = padded.get(ky).ok_or(Error::Inconsistent)?;
                    *x = row.get(kx..kx + out_w).ok_or(Error::Inconsistent)?;
                }
                let xs = xs.get(ky0 * kw..ky1 * kw).ok_or(Error::Inconsistent)?;
                let w = w.get(ky0 * kw..ky1 * kw).ok_or(Error::Inconsistent)?;
                // SAFETY: the caller instantiates L only where the CPU runs it.
                unsafe { L::axpy_taps(planes, oy * out_w, w, xs) };
            }
        }
        Ok(())
    }

    /// Adds the convolution's terms to the planes of output channels `first..first + B`.
    #[inline(always)]
    fn plain_block<L: Lanes, const B: usize>(
        &self,
        planes: &mut [&mut [f32]; B],
        first: usize,
    ) -> Result<()> {
        let Geometry {
            in_channels,
            in_h,
            in_w,
            out_h,
            out_w,
            kh,
            kw,
            stride,
            pad,
        } = self.geometry;
        let (input, weight) = (self.input, self.weight);
        for i in 0..in_channels {
            let src = plane(input, i, in_h * in_w)?;
            for ky in 0..kh {
                let (oy0, oy1) = valid_range(out_h, in_h, ky, pad, stride);
                for kx in 0..kw {
                    let (ox0, ox1) = valid_range(out_w, in_w, kx, pad, stride);
                    if oy0 == oy1 || ox0 == ox1 {
                        continue;
                    }
                    let tap = (i * kh + ky) * kw + kx;
                    let w: [f32; B] = core::array::from_fn(|b| weight.at(first + b, tap));
                    // valid_range keeps every source index inside the input.
                    let (iy0, ix0) = (oy0 * stride + ky - pad, ox0 * stride + kx - pad);
                    let len = ox1 - ox0;
                    if stride == 1 && len == out_w && len == in_w {
                        // Every column reads its own column: the rows run on as one.
                        let rows_len = (oy1 - oy0) * out_w;
                        let x = src.get(iy0 * in_w..iy0 * in_w + rows_len);
                        // SAFETY: the caller instantiates L only where the CPU runs it.
                        unsafe { L::axpy(planes, oy0 * out_w, w, x.ok_or(Error::Inconsistent)?) };
                        continue;
                    }
                    for (oy, iy) in (oy0..oy1).zip((iy0..).step_by(stride)) {
                        let row = src.get(iy * in_w + ix0..(iy + 1) * in_w);
                        let row = row.ok_or(Error::Inconsistent)?;
                        let at = oy * out_w + ox0;
                        if stride == 1 {
                            let x = row.get(..len).ok_or(Error::Inconsistent)?;
                            // SAFETY: as above.
                            unsafe { L::axpy(planes, at, w, x) };
                        } else if len <= ROW_BUFFER {
                            // Gather every stride-th source into a contiguous row for the lanes.
                            let mut gathered = [0f32; ROW_BUFFER];
                            for (g, x) in gathered.iter_mut().zip(row.iter().step_by(stride)) {
                                *g = *x;
                            }
                            let x = gathered.get(..len).ok_or(Error::Inconsistent)?;
                            // SAFETY: as above.
                            unsafe { L::axpy(planes, at, w, x) };
                        } else {
                            for (plane, w) in planes.iter_mut().zip(w) {
                                let out = plane.get_mut(at..at + len).ok_or(Error::Inconsistent)?;
                                for (acc, x) in out.iter_mut().zip(row.iter().step_by(stride)) {
                                    *acc += w * x;
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
