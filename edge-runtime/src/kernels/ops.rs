//! Kernels of the coupling networks' operations, on channel-major (C, H, W) slices.
//!
//! Loops run over contiguous rows with the weight hoisted, the shape compilers autovectorise;
//! the unit-stride convolution, where the time goes, also has explicit SIMD paths
//! ([`super::lanes`]).
//! Slices come from the gate's scratch, sized by the validated plan; every access still goes
//! through `get` or iterators, so a mismatch yields `Error::Inconsistent`, never a panic.

use flowgate_shared::Dims;

use super::KernelPath;
use super::lanes::{self, Lanes};
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

/// Range of positions `p < count` whose `p * stride + tap - pad` lies in `0..size`: for a
/// convolution, the outputs whose source is inside the input; for a transposed one, the
/// inputs whose target is inside the output.
fn valid_range(count: usize, size: usize, tap: usize, pad: usize, stride: usize) -> (usize, usize) {
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

/// 2-D convolution, zero padding; weight `[out, in, kh, kw]`. Unit-stride rows run on
/// `path`'s inner loop, strided ones on a scalar gather.
pub fn conv2d(
    input: &[f32],
    in_dims: Dims,
    output: &mut [f32],
    out_dims: Dims,
    conv: &Conv<'_>,
    path: KernelPath,
) -> Result<()> {
    match path {
        #[cfg(target_arch = "x86_64")]
        KernelPath::Avx2Fma if path.available() => {
            // SAFETY: this CPU runs AVX2 and FMA (checked just above).
            unsafe { conv2d_avx2_fma(input, in_dims, output, out_dims, conv) }
        }
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        KernelPath::Neon => conv2d_with::<lanes::Neon>(input, in_dims, output, out_dims, conv),
        _ => conv2d_with::<lanes::Scalar>(input, in_dims, output, out_dims, conv),
    }
}

/// [`conv2d_with`] compiled for AVX2 and FMA.
///
/// # Safety
/// The CPU must run AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn conv2d_avx2_fma(
    input: &[f32],
    in_dims: Dims,
    output: &mut [f32],
    out_dims: Dims,
    conv: &Conv<'_>,
) -> Result<()> {
    conv2d_with::<lanes::Avx2Fma>(input, in_dims, output, out_dims, conv)
}

/// Output channels updated per pass over an input row.
const OUT_BLOCK: usize = 4;

/// Elements of the stack rows that strided kernels gather into (and scatter from), so their
/// inner loops run contiguously on the lanes; wider rows take the plain strided loop.
const ROW_BUFFER: usize = 64;

/// Calls `run` with the output planes in blocks of [`OUT_BLOCK`] channels (the last block
/// one channel at a time), each plane filled with its bias first.
#[inline(always)]
fn for_each_block(
    output: &mut [f32],
    out_dims: Dims,
    bias: Weights<'_>,
    mut run: impl FnMut(Block<'_, '_>) -> Result<()>,
) -> Result<()> {
    let out_plane = (out_dims.pixels() as usize).max(1);
    let out_channels = out_dims.channels as usize;
    let output = output
        .get_mut(..out_channels * out_plane)
        .ok_or(Error::Inconsistent)?;
    for (block, planes) in output.chunks_mut(OUT_BLOCK * out_plane).enumerate() {
        let first = block * OUT_BLOCK;
        for (k, plane) in planes.chunks_exact_mut(out_plane).enumerate() {
            plane.fill(bias.get(first + k));
        }
        let mut four = planes.chunks_exact_mut(out_plane);
        if let (Some(a), Some(b), Some(c), Some(d)) =
            (four.next(), four.next(), four.next(), four.next())
        {
            run(Block::Four(first, [a, b, c, d]))?;
            continue;
        }
        for (k, plane) in planes.chunks_exact_mut(out_plane).enumerate() {
            run(Block::One(first + k, [plane]))?;
        }
    }
    Ok(())
}

/// Output planes of consecutive channels, from the first one's index.
enum Block<'b, 'p> {
    Four(usize, [&'b mut [f32]; OUT_BLOCK]),
    One(usize, [&'p mut [f32]; 1]),
}

/// Each output element sums its terms in (input channel, ky, kx) order, as a plain loop
/// would, so the scalar path's results do not depend on the blocking.
///
/// Instantiate only with a [`Lanes`] the CPU runs: [`conv2d`] dispatches.
#[inline(always)]
fn conv2d_with<L: Lanes>(
    input: &[f32],
    in_dims: Dims,
    output: &mut [f32],
    out_dims: Dims,
    conv: &Conv<'_>,
) -> Result<()> {
    let fused = L::FUSES_TAPS && fuses(conv, in_dims);
    for_each_block(output, out_dims, conv.bias, |block| match block {
        Block::Four(first, mut planes) if fused => {
            conv2d_block_fused::<L, OUT_BLOCK>(&mut planes, first, input, in_dims, out_dims, conv)
        }
        Block::One(first, mut planes) if fused => {
            conv2d_block_fused::<L, 1>(&mut planes, first, input, in_dims, out_dims, conv)
        }
        Block::Four(first, mut planes) => {
            conv2d_block::<L, OUT_BLOCK>(&mut planes, first, input, in_dims, out_dims, conv)
        }
        Block::One(first, mut planes) => {
            conv2d_block::<L, 1>(&mut planes, first, input, in_dims, out_dims, conv)
        }
    })
}

/// Kernels up to 3 x 3 fuse their taps in [`conv2d_block_fused`].
const MAX_KERNEL: usize = 3;
const MAX_TAPS: usize = MAX_KERNEL * MAX_KERNEL;

/// Elements of a zero-padded input row in [`conv2d_block_fused`]: rows up to 64 wide with a
/// padding of 1.
const PADDED_ROW: usize = ROW_BUFFER + 2;

/// Whether [`conv2d_block_fused`] runs this convolution.
fn fuses(conv: &Conv<'_>, in_dims: Dims) -> bool {
    let (kh, kw) = conv.kernel;
    conv.stride == 1
        && kh <= MAX_KERNEL
        && kw <= MAX_KERNEL
        && kh * kw >= 2
        && in_dims.width as usize + 2 * conv.pad <= PADDED_ROW
}

/// A unit-stride convolution of at most 3 x 3 taps, with all taps of an output row at once:
/// each output element is loaded and stored once per input channel, not once per tap. The
/// input rows are copied into zero-padded stack rows, so the border needs no special case:
/// a tap outside the input adds `w * 0`, which leaves the sum unchanged. Each output element
/// sums its terms in (input channel, ky, kx) order, as the plain loop.
#[inline(always)]
fn conv2d_block_fused<L: Lanes, const B: usize>(
    planes: &mut [&mut [f32]; B],
    first: usize,
    input: &[f32],
    in_dims: Dims,
    out_dims: Dims,
    conv: &Conv<'_>,
) -> Result<()> {
    let Conv {
        weight,
        kernel: (kh, kw),
        pad,
        ..
    } = *conv;
    let taps = kh * kw;
    let (in_h, in_w) = (in_dims.height as usize, in_dims.width as usize);
    let (out_h, out_w) = (out_dims.height as usize, out_dims.width as usize);
    let mut padded = [[0f32; PADDED_ROW]; MAX_KERNEL];
    for i in 0..in_dims.channels as usize {
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
fn conv2d_block<L: Lanes, const B: usize>(
    planes: &mut [&mut [f32]; B],
    first: usize,
    input: &[f32],
    in_dims: Dims,
    out_dims: Dims,
    conv: &Conv<'_>,
) -> Result<()> {
    let Conv {
        weight,
        kernel: (kh, kw),
        stride,
        pad,
        ..
    } = *conv;
    let (in_h, in_w) = (in_dims.height as usize, in_dims.width as usize);
    let (out_h, out_w) = (out_dims.height as usize, out_dims.width as usize);
    for i in 0..in_dims.channels as usize {
        let src = plane(input, i, in_h * in_w)?;
        for ky in 0..kh {
            let (oy0, oy1) = valid_range(out_h, in_h, ky, pad, stride);
            for kx in 0..kw {
                let (ox0, ox1) = valid_range(out_w, in_w, kx, pad, stride);
                if oy0 == oy1 || ox0 == ox1 {
                    continue;
                }
                let tap = (i * kh + ky) * kw + kx;
                let mut w = [0f32; B];
                for (b, w) in w.iter_mut().enumerate() {
                    *w = weight.at(first + b, tap);
                }
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
    match path {
        #[cfg(target_arch = "x86_64")]
        KernelPath::Avx2Fma if path.available() => {
            // SAFETY: this CPU runs AVX2 and FMA (checked just above).
            unsafe { conv_transpose2d_avx2_fma(input, in_dims, output, out_dims, conv) }
        }
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        KernelPath::Neon => {
            conv_transpose2d_with::<lanes::Neon>(input, in_dims, output, out_dims, conv)
        }
        _ => conv_transpose2d_with::<lanes::Scalar>(input, in_dims, output, out_dims, conv),
    }
}

/// [`conv_transpose2d_with`] compiled for AVX2 and FMA.
///
/// # Safety
/// The CPU must run AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn conv_transpose2d_avx2_fma(
    input: &[f32],
    in_dims: Dims,
    output: &mut [f32],
    out_dims: Dims,
    conv: &Conv<'_>,
) -> Result<()> {
    conv_transpose2d_with::<lanes::Avx2Fma>(input, in_dims, output, out_dims, conv)
}

/// Instantiate only with a [`Lanes`] the CPU runs: [`conv_transpose2d`] dispatches.
#[inline(always)]
fn conv_transpose2d_with<L: Lanes>(
    input: &[f32],
    in_dims: Dims,
    output: &mut [f32],
    out_dims: Dims,
    conv: &Conv<'_>,
) -> Result<()> {
    let phase_len = (out_dims.width as usize).div_ceil(conv.stride.max(1));
    for_each_block(output, out_dims, conv.bias, |block| match block {
        Block::Four(first, mut planes) if phase_len <= ROW_BUFFER => {
            transposed_by_phase::<L, OUT_BLOCK>(&mut planes, first, input, in_dims, out_dims, conv)
        }
        Block::One(first, mut planes) if phase_len <= ROW_BUFFER => {
            transposed_by_phase::<L, 1>(&mut planes, first, input, in_dims, out_dims, conv)
        }
        Block::Four(first, mut planes) => {
            transposed_scatter(&mut planes, first, input, in_dims, out_dims, conv)
        }
        Block::One(first, mut planes) => {
            transposed_scatter(&mut planes, first, input, in_dims, out_dims, conv)
        }
    })
}

/// The transposed convolution as a gather: output columns `px, px + stride, ...` of a row
/// (one phase) read consecutive input columns for each tap, so each (input row, tap) is one
/// contiguous pass of the lanes over a stack copy of the phase, scattered back at the end.
#[inline(always)]
fn transposed_by_phase<L: Lanes, const B: usize>(
    planes: &mut [&mut [f32]; B],
    first: usize,
    input: &[f32],
    in_dims: Dims,
    out_dims: Dims,
    conv: &Conv<'_>,
) -> Result<()> {
    let Conv {
        weight,
        kernel: (kh, kw),
        stride,
        pad,
        ..
    } = *conv;
    let stride = stride.max(1);
    let (in_h, in_w) = (in_dims.height as usize, in_dims.width as usize);
    let (out_h, out_w) = (out_dims.height as usize, out_dims.width as usize);
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
            for i in 0..in_dims.channels as usize {
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
                        let mut w = [0f32; B];
                        for (b, w) in w.iter_mut().enumerate() {
                            *w = weight.at(i, ((first + b) * kh + ky) * kw + kx);
                        }
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
/// element of the output rows, for rows too wide for [`transposed_by_phase`]'s buffers.
fn transposed_scatter<const B: usize>(
    planes: &mut [&mut [f32]; B],
    first: usize,
    input: &[f32],
    in_dims: Dims,
    out_dims: Dims,
    conv: &Conv<'_>,
) -> Result<()> {
    let Conv {
        weight,
        kernel: (kh, kw),
        stride,
        pad,
        ..
    } = *conv;
    let (in_h, in_w) = (in_dims.height as usize, in_dims.width as usize);
    let (out_h, out_w) = (out_dims.height as usize, out_dims.width as usize);
    for i in 0..in_dims.channels as usize {
        let src = plane(input, i, in_h * in_w)?;
        for ky in 0..kh {
            // Input row iy lands on output row iy * stride + ky - pad.
            let (iy0, iy1) = valid_range(in_h, out_h, ky, pad, stride);
            for kx in 0..kw {
                let (ix0, ix1) = valid_range(in_w, out_w, kx, pad, stride);
                if iy0 == iy1 || ix0 == ix1 {
                    continue;
                }
                let mut w = [0f32; B];
                for (b, w) in w.iter_mut().enumerate() {
                    *w = weight.at(i, ((first + b) * kh + ky) * kw + kx);
                }
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

/// Fully connected: `output[o] = bias[o] + sum_j weight[o, j] * input[j]`.
pub fn linear(input: &[f32], output: &mut [f32], weight: Weights<'_>, bias: Weights<'_>) {
    for (o, out) in output.iter_mut().enumerate() {
        *out = weight.dot_row(o, input, bias.get(o));
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
