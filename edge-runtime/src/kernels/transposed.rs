//! 2-D transposed convolution: the autoencoder s/t networks' upsampling.

use flowgate_shared::Dims;

use super::KernelPath;
use super::blocks::{BlockKernel, ROW_BUFFER, run_blocks};
use super::conv::{Conv, Geometry, valid_range};
use super::lanes::Lanes;
use super::ops::plane;
use super::weights::Weights;
use crate::error::{Error, Result};

/// 2-D transposed convolution; weight `[in, out, kh, kw]`; `out_dims` already includes
/// padding and output padding. Each output element sums its terms in (input channel, ky,
/// kx) order, on every path.
pub fn conv_transpose2d(
    input: &[f32],
    in_dims: Dims,
    output: &mut [f32],
    out_dims: Dims,
    conv: &Conv<'_>,
    path: KernelPath,
) -> Result<()> {
    let phase_len = (out_dims.width as usize).div_ceil(conv.stride.max(1));
    let kernel = Transposed {
        input,
        weight: conv.weight,
        geometry: Geometry::new(conv, in_dims, out_dims),
        phases_fit: phase_len <= ROW_BUFFER,
    };
    run_blocks(&kernel, output, out_dims, conv.bias, path)
}

struct Transposed<'k, 'w> {
    input: &'k [f32],
    weight: Weights<'w>,
    geometry: Geometry,
    phases_fit: bool,
}

impl BlockKernel for Transposed<'_, '_> {
    #[inline(always)]
    fn block<L: Lanes, const B: usize>(
        &self,
        planes: &mut [&mut [f32]; B],
        first: usize,
    ) -> Result<()> {
        if self.phases_fit {
            self.by_phase::<L, B>(planes, first)
        } else {
            self.scatter::<B>(planes, first)
        }
    }
}

impl Transposed<'_, '_> {
    /// The transposed convolution as a gather: output columns `px, px + stride, ...` of a row
    /// (one phase) read consecutive input columns for each tap, so each (input row, tap) is one
    /// contiguous pass of the lanes over a stack copy of the phase, scattered back at the end.
    #[inline(always)]
    fn by_phase<L: Lanes, const B: usize>(
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
        let stride = stride.max(1);
        let mut buffers = [[0f32; ROW_BUFFER]; B];
        for oy in 0..out_h {
            for px in 0..stride.min(out_w) {
                // Output column px + q * stride, q < phase_len.
                let phase_len = (out_w - px).div_ceil(stride);
                let mut phase = buffers.each_mut().map(|buffer| buffer.as_mut_slice());
                for (buffer, plane) in phase.iter_mut().zip(planes.iter()) {
                    let row = plane.get(oy * out_w + px..(oy + 1) * out_w);
                    let row = row.ok_or(Error::Inconsistent)?;
                    for (b, x) in buffer.iter_mut().zip(row.iter().step_by(stride)) {
                        *b = *x;
                    }
                }
                // Kernel row ky reaches this output row from input row (oy + pad - ky) / stride
                // when stride divides oy + pad - ky; column kx reaches phase px likewise, with
                // output column px + q * stride reading input column q + shift.
                let first_ky = (oy + pad) % stride;
                let first_kx = (px + pad) % stride;
                let first_shift = ((px + pad - first_kx) / stride) as isize;
                for i in 0..in_channels {
                    let src = plane(input, i, in_h * in_w)?;
                    for ky in (first_ky..kh.min(oy + pad + 1)).step_by(stride) {
                        let iy = (oy + pad - ky) / stride;
                        let Some(src_row) = src.get(iy * in_w..(iy + 1) * in_w) else {
                            continue; // past the input's last row
                        };
                        for (kx, shift) in (first_kx..kw)
                            .step_by(stride)
                            .zip((0..).map(|k| first_shift - k))
                        {
                            let q0 = (-shift).max(0) as usize;
                            let q1 = (in_w as isize - shift).clamp(0, phase_len as isize) as usize;
                            if q0 >= q1 {
                                continue;
                            }
                            let x0 = (q0 as isize + shift) as usize;
                            let x = src_row.get(x0..x0 + (q1 - q0)).ok_or(Error::Inconsistent)?;
                            let w: [f32; B] = core::array::from_fn(|b| {
                                weight.at(i, ((first + b) * kh + ky) * kw + kx)
                            });
                            // SAFETY: the caller instantiates L only where the CPU runs it.
                            unsafe { L::axpy(&mut phase, q0, w, x) };
                        }
                    }
                }
                for (buffer, plane) in phase.iter().zip(planes.iter_mut()) {
                    let row = plane.get_mut(oy * out_w + px..(oy + 1) * out_w);
                    let row = row.ok_or(Error::Inconsistent)?;
                    for (y, b) in row.iter_mut().step_by(stride).zip(buffer.iter()) {
                        *y = *b;
                    }
                }
            }
        }
        Ok(())
    }

    /// The transposed convolution as a scatter of each input row into every `stride`-th
    /// element of the output rows, for rows too wide for [`Transposed::by_phase`]'s buffers.
    fn scatter<const B: usize>(&self, planes: &mut [&mut [f32]; B], first: usize) -> Result<()> {
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
                // Input row iy lands on output row iy * stride + ky - pad.
                let (iy0, iy1) = valid_range(in_h, out_h, ky, pad, stride);
                for kx in 0..kw {
                    let (ix0, ix1) = valid_range(in_w, out_w, kx, pad, stride);
                    if iy0 == iy1 || ix0 == ix1 {
                        continue;
                    }
                    let w: [f32; B] =
                        core::array::from_fn(|b| weight.at(i, ((first + b) * kh + ky) * kw + kx));
                    let ox0 = ix0 * stride + kx - pad;
                    for iy in iy0..iy1 {
                        let oy = iy * stride + ky - pad;
                        let sources = src.get(iy * in_w + ix0..iy * in_w + ix1);
                        let sources = sources.ok_or(Error::Inconsistent)?;
                        for (plane, w) in planes.iter_mut().zip(w) {
                            let out = plane.get_mut(oy * out_w + ox0..(oy + 1) * out_w);
                            let out = out.ok_or(Error::Inconsistent)?;
                            for (acc, x) in out.iter_mut().step_by(stride).zip(sources) {
                                *acc += w * x;
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
