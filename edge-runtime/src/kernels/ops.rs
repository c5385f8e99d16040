//! Scalar kernels of the coupling networks' operations, on channel-major (C, H, W) slices.
//!
//! Loops run over contiguous rows with the weight hoisted, the shape compilers autovectorise.
//! Slices come from the gate's scratch, sized by the validated plan; every access still goes
//! through `get` or iterators, so a mismatch yields `Error::Inconsistent`, never a panic.

use flowgate_shared::Dims;

use super::weights::Weights;
use crate::error::{Error, Result};

fn plane_mut(data: &mut [f32], index: usize, len: usize) -> Result<&mut [f32]> {
    data.get_mut(index * len..(index + 1) * len)
        .ok_or(Error::Inconsistent)
}

fn plane(data: &[f32], index: usize, len: usize) -> Result<&[f32]> {
    data.get(index * len..(index + 1) * len)
        .ok_or(Error::Inconsistent)
}

/// Range of output positions `o` whose source `o * stride + tap - pad` lies in `0..size`.
fn valid_outputs(
    out_size: usize,
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
        ((limit - tap - 1) / stride + 1).min(out_size)
    } else {
        0
    };
    (first, end.max(first))
}

/// A convolution's weights and geometry, for [`conv2d`] (weight `[out, in, kh, kw]`) and
/// [`conv_transpose2d`] (weight `[in, out, kh, kw]`).
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

/// 2-D convolution, zero padding; weight `[out, in, kh, kw]`.
pub fn conv2d(
    input: &[f32],
    in_dims: Dims,
    output: &mut [f32],
    out_dims: Dims,
    conv: &Conv<'_>,
) -> Result<()> {
    let Conv {
        weight,
        bias,
        kernel: (kh, kw),
        stride,
        pad,
    } = *conv;
    let (in_h, in_w) = (in_dims.height as usize, in_dims.width as usize);
    let (out_h, out_w) = (out_dims.height as usize, out_dims.width as usize);
    let (in_plane, out_plane) = (in_h * in_w, out_h * out_w);
    let in_channels = in_dims.channels as usize;
    for o in 0..out_dims.channels as usize {
        let out = plane_mut(output, o, out_plane)?;
        out.fill(bias.get(o));
        for i in 0..in_channels {
            let src = plane(input, i, in_plane)?;
            for ky in 0..kh {
                let (oy0, oy1) = valid_outputs(out_h, in_h, ky, pad, stride);
                for kx in 0..kw {
                    let w = weight.get(((o * in_channels + i) * kh + ky) * kw + kx);
                    let (ox0, ox1) = valid_outputs(out_w, in_w, kx, pad, stride);
                    for oy in oy0..oy1 {
                        let iy = oy * stride + ky - pad;
                        let out_row = out
                            .get_mut(oy * out_w + ox0..oy * out_w + ox1)
                            .ok_or(Error::Inconsistent)?;
                        let ix0 = ox0 * stride + kx - pad;
                        let src_row = src
                            .get(iy * in_w..(iy + 1) * in_w)
                            .ok_or(Error::Inconsistent)?;
                        let src_row = src_row.get(ix0..).ok_or(Error::Inconsistent)?;
                        if stride == 1 {
                            for (acc, x) in out_row.iter_mut().zip(src_row) {
                                *acc += w * x;
                            }
                        } else {
                            for (acc, x) in out_row.iter_mut().zip(src_row.iter().step_by(stride)) {
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

/// 2-D transposed convolution; weight `[in, out, kh, kw]`; `out_dims` already includes
/// padding and output padding.
pub fn conv_transpose2d(
    input: &[f32],
    in_dims: Dims,
    output: &mut [f32],
    out_dims: Dims,
    conv: &Conv<'_>,
) -> Result<()> {
    let Conv {
        weight,
        bias,
        kernel: (kh, kw),
        stride,
        pad,
    } = *conv;
    let (in_h, in_w) = (in_dims.height as usize, in_dims.width as usize);
    let (out_h, out_w) = (out_dims.height as usize, out_dims.width as usize);
    let (in_plane, out_plane) = (in_h * in_w, out_h * out_w);
    let out_channels = out_dims.channels as usize;
    for o in 0..out_channels {
        plane_mut(output, o, out_plane)?.fill(bias.get(o));
    }
    for i in 0..in_dims.channels as usize {
        let src = plane(input, i, in_plane)?;
        for o in 0..out_channels {
            let out = plane_mut(output, o, out_plane)?;
            for ky in 0..kh {
                for kx in 0..kw {
                    let w = weight.get(((i * out_channels + o) * kh + ky) * kw + kx);
                    for iy in 0..in_h {
                        let Some(oy) = (iy * stride + ky).checked_sub(pad).filter(|&y| y < out_h)
                        else {
                            continue;
                        };
                        for ix in 0..in_w {
                            let Some(ox) =
                                (ix * stride + kx).checked_sub(pad).filter(|&x| x < out_w)
                            else {
                                continue;
                            };
                            let x = src.get(iy * in_w + ix).copied().unwrap_or(0.0);
                            if let Some(acc) = out.get_mut(oy * out_w + ox) {
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

/// Fully connected: `output[o] = bias[o] + sum_j weight[o, j] * input[j]`.
pub fn linear(input: &[f32], output: &mut [f32], weight: Weights<'_>, bias: Weights<'_>) {
    let in_len = input.len();
    for (o, out) in output.iter_mut().enumerate() {
        let mut acc = bias.get(o);
        let row = o * in_len;
        for (j, x) in input.iter().enumerate() {
            acc += weight.get(row + j) * x;
        }
        *out = acc;
    }
}

/// Per-channel `x * scale[c] + shift[c]`, in place.
pub fn channel_affine(data: &mut [f32], dims: Dims, scale: Weights<'_>, shift: Weights<'_>) {
    let plane_len = dims.pixels() as usize;
    for (c, plane) in data.chunks_exact_mut(plane_len.max(1)).enumerate() {
        let (a, b) = (scale.get(c), shift.get(c));
        for x in plane {
            *x = *x * a + b;
        }
    }
}

/// `max(x, 0)` in place.
pub fn relu(data: &mut [f32]) {
    for x in data {
        *x = x.max(0.0);
    }
}

/// `tanh(x)` in place.
pub fn tanh(data: &mut [f32]) {
    for x in data {
        *x = libm::tanhf(*x);
    }
}

/// `concat(x, -x)` along channels.
pub fn concat_negated(input: &[f32], output: &mut [f32]) -> Result<()> {
    let (positive, negative) = output.split_at_mut(input.len().min(output.len()));
    if positive.len() != input.len() || negative.len() != input.len() {
        return Err(Error::Inconsistent);
    }
    positive.copy_from_slice(input);
    for (y, x) in negative.iter_mut().zip(input) {
        *y = -x;
    }
    Ok(())
}

/// `output += other`.
pub fn add_assign(output: &mut [f32], other: &[f32]) {
    for (y, x) in output.iter_mut().zip(other) {
        *y += x;
    }
}

/// Max or mean over `kernel` x `kernel` windows, stride `stride`, no padding.
pub fn pool2d(
    input: &[f32],
    in_dims: Dims,
    output: &mut [f32],
    out_dims: Dims,
    kernel: usize,
    stride: usize,
    max: bool,
) -> Result<()> {
    let (in_h, in_w) = (in_dims.height as usize, in_dims.width as usize);
    let (out_h, out_w) = (out_dims.height as usize, out_dims.width as usize);
    for c in 0..in_dims.channels as usize {
        let src = plane(input, c, in_h * in_w)?;
        let out = plane_mut(output, c, out_h * out_w)?;
        for oy in 0..out_h {
            for ox in 0..out_w {
                let mut acc = if max { f32::NEG_INFINITY } else { 0.0 };
                for ky in 0..kernel {
                    let row = (oy * stride + ky) * in_w + ox * stride;
                    let window = src.get(row..row + kernel).ok_or(Error::Inconsistent)?;
                    for &x in window {
                        acc = if max { acc.max(x) } else { acc + x };
                    }
                }
                let value = if max {
                    acc
                } else {
                    acc / (kernel * kernel) as f32
                };
                if let Some(slot) = out.get_mut(oy * out_w + ox) {
                    *slot = value;
                }
            }
        }
    }
    Ok(())
}

/// Mean of each channel.
pub fn global_avg_pool(input: &[f32], dims: Dims, output: &mut [f32]) {
    let plane_len = (dims.pixels() as usize).max(1);
    for (out, plane) in output.iter_mut().zip(input.chunks_exact(plane_len)) {
        *out = plane.iter().sum::<f32>() / plane_len as f32;
    }
}
