//! Kernels of the networks' other operations (the convolutions are in [`super::conv`], the
//! fully connected layers in [`super::linear`]), on channel-major (C, H, W) slices.
//!
//! Loops run over contiguous rows with the weight hoisted, the shape compilers autovectorise.
//! Slices come from the gate's scratch, sized by the plan; every access still goes through
//! `get` or iterators, so a mismatch yields `Error::Inconsistent`, never a panic.

use flowgate_shared::Dims;

use super::KernelPath;
use crate::error::{Error, Result};

pub(super) fn plane_mut(data: &mut [f32], index: usize, len: usize) -> Result<&mut [f32]> {
    data.get_mut(index * len..(index + 1) * len)
        .ok_or(Error::Inconsistent)
}

pub(super) fn plane(data: &[f32], index: usize, len: usize) -> Result<&[f32]> {
    data.get(index * len..(index + 1) * len)
        .ok_or(Error::Inconsistent)
}

/// Per-channel `x * scale[c] + shift[c]`, in place.
pub fn channel_affine(data: &mut [f32], dims: Dims, scale: &[f32], shift: &[f32]) {
    let plane_len = dims.pixels() as usize;
    for ((plane, &a), &b) in data
        .chunks_exact_mut(plane_len.max(1))
        .zip(scale)
        .zip(shift)
    {
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

/// `tanh(x)` in place on `path`'s lanes (the scalar path: libm's `tanhf`; the SIMD paths:
/// [`super::vmath::tanh`]).
pub fn tanh(data: &mut [f32], path: KernelPath) {
    super::vmath::tanh_in_place(data, path);
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
