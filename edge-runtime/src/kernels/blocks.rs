//! The convolutions' driver: output channels in blocks, on the lanes of a kernel path.

use flowgate_shared::Dims;

use super::KernelPath;
use super::lanes::{self, Lanes};
use super::weights::Weights;
use crate::error::{Error, Result};

/// Output channels updated per pass over an input row.
pub(super) const OUT_BLOCK: usize = 4;

/// Elements of the stack rows that strided kernels gather into (and scatter from), so their
/// inner loops run contiguously on the lanes; wider rows take the plain strided loop.
pub(super) const ROW_BUFFER: usize = 64;

/// A convolution's work on the planes of `B` consecutive output channels, whose bias is
/// already in place.
pub(super) trait BlockKernel {
    /// Adds the terms of output channels `first..first + B`. Instantiated only with lanes
    /// the CPU runs ([`run_blocks`] dispatches); implementations mark it `#[inline(always)]`
    /// so it compiles with the lanes' instructions.
    fn block<L: Lanes, const B: usize>(
        &self,
        planes: &mut [&mut [f32]; B],
        first: usize,
    ) -> Result<()>;
}

/// Fills every output plane with its bias, then runs `kernel` over blocks of
/// [`OUT_BLOCK`] channels (the last block one channel at a time) on `path`'s lanes.
pub(super) fn run_blocks<K: BlockKernel>(
    kernel: &K,
    output: &mut [f32],
    out_dims: Dims,
    bias: Weights<'_>,
    path: KernelPath,
) -> Result<()> {
    match path {
        #[cfg(target_arch = "x86_64")]
        KernelPath::Avx2Fma if path.available() => {
            // SAFETY: this CPU runs AVX2 and FMA (checked just above).
            unsafe { run_blocks_avx2_fma(kernel, output, out_dims, bias) }
        }
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        KernelPath::Neon => for_each_block::<lanes::Neon, K>(kernel, output, out_dims, bias),
        _ => for_each_block::<lanes::Scalar, K>(kernel, output, out_dims, bias),
    }
}

/// [`for_each_block`] compiled for AVX2 and FMA.
///
/// # Safety
/// The CPU must run AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_blocks_avx2_fma<K: BlockKernel>(
    kernel: &K,
    output: &mut [f32],
    out_dims: Dims,
    bias: Weights<'_>,
) -> Result<()> {
    for_each_block::<lanes::Avx2Fma, K>(kernel, output, out_dims, bias)
}

#[inline(always)]
fn for_each_block<L: Lanes, K: BlockKernel>(
    kernel: &K,
    output: &mut [f32],
    out_dims: Dims,
    bias: Weights<'_>,
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
            kernel.block::<L, OUT_BLOCK>(&mut [a, b, c, d], first)?;
            continue;
        }
        for (k, plane) in planes.chunks_exact_mut(out_plane).enumerate() {
            kernel.block::<L, 1>(&mut [plane], first + k)?;
        }
    }
    Ok(())
}
