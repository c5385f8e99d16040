//! The convolutions' innermost loop, once per instruction set: `row_b[at + j] += w_b * x[j]`
//! for `B` output rows that read the same input row.
//!
//! Updating several output channels per pass over the input row amortises the row's setup
//! (bounds, slicing, weight reads) that dominates on the small planes of edge models (7x7 to
//! 32x32). [`Scalar`] is the reference; `Avx2Fma` (x86_64) and `Neon` (aarch64) do the same
//! sums with explicit fused multiply-adds, which round once where the scalar loop rounds
//! twice, and fuse a convolution's taps ([`Lanes::axpy_taps`]).

/// One implementation of the inner loop.
pub trait Lanes {
    /// Whether convolutions should fuse their taps ([`Lanes::axpy_taps`]): worth it where the
    /// taps' terms stay in vector registers; the scalar reference keeps one pass per tap,
    /// which its loops vectorise best.
    const FUSES_TAPS: bool;

    /// `rows[b][at + j] += w[b] * x[j]` for every `j < x.len()` that is inside every row.
    ///
    /// # Safety
    /// The CPU must support the implementation's instructions
    /// ([`super::KernelPath::available`]).
    unsafe fn axpy<const B: usize>(rows: &mut [&mut [f32]; B], at: usize, w: [f32; B], x: &[f32]);

    /// `rows[b][at + j] += w[t][b] * xs[t][j]` for each tap `t` in order, for every `j`
    /// inside every `xs[t]` and every row: a convolution's taps fused, so each output element
    /// is loaded and stored once per pass instead of once per tap. Sums in the same order as
    /// one [`Lanes::axpy`] per tap.
    ///
    /// # Safety
    /// As for [`Lanes::axpy`].
    unsafe fn axpy_taps<const B: usize>(
        rows: &mut [&mut [f32]; B],
        at: usize,
        w: &[[f32; B]],
        xs: &[&[f32]],
    );
}

/// Portable loops: the reference.
#[derive(Debug, Clone, Copy)]
pub struct Scalar;

impl Lanes for Scalar {
    const FUSES_TAPS: bool = false;

    #[inline(always)]
    unsafe fn axpy<const B: usize>(rows: &mut [&mut [f32]; B], at: usize, w: [f32; B], x: &[f32]) {
        scalar_axpy(rows, at, w, x);
    }

    #[inline(always)]
    unsafe fn axpy_taps<const B: usize>(
        rows: &mut [&mut [f32]; B],
        at: usize,
        w: &[[f32; B]],
        xs: &[&[f32]],
    ) {
        scalar_axpy_taps(rows, at, w, xs, 0);
    }
}

/// One scalar pass per tap from element `start` on: per element, the taps' terms in order.
#[inline(always)]
fn scalar_axpy_taps<const B: usize>(
    rows: &mut [&mut [f32]; B],
    at: usize,
    w: &[[f32; B]],
    xs: &[&[f32]],
    start: usize,
) {
    let n = taps_len(rows, at, xs);
    for (w, x) in w.iter().zip(xs) {
        scalar_axpy(rows, at + start, *w, x.get(start..n).unwrap_or(&[]));
    }
}

/// How many elements every tap's input and every row (from `at` on) hold.
#[inline(always)]
fn taps_len<const B: usize>(rows: &[&mut [f32]; B], at: usize, xs: &[&[f32]]) -> usize {
    let n = xs.iter().fold(usize::MAX, |n, x| n.min(x.len()));
    rows.iter()
        .fold(n, |n, row| n.min(row.len().saturating_sub(at)))
}

/// The scalar loop: the reference, and the SIMD paths' tails.
#[inline(always)]
fn scalar_axpy<const B: usize>(rows: &mut [&mut [f32]; B], at: usize, w: [f32; B], x: &[f32]) {
    let len = taps_len(rows, at, core::slice::from_ref(&x));
    let x = x.get(..len).unwrap_or(&[]);
    for (row, w) in rows.iter_mut().zip(w) {
        let row = row.get_mut(at..at + len).unwrap_or(&mut []);
        for (acc, x) in row.iter_mut().zip(x) {
            *acc += w * x;
        }
    }
}

/// x86_64 AVX2 + FMA, 8 lanes.
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy)]
pub struct Avx2Fma;

#[cfg(target_arch = "x86_64")]
impl Lanes for Avx2Fma {
    const FUSES_TAPS: bool = true;

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn axpy<const B: usize>(rows: &mut [&mut [f32]; B], at: usize, w: [f32; B], x: &[f32]) {
        // SAFETY: the caller's; one tap is the same arithmetic.
        unsafe { Self::axpy_taps(rows, at, &[w], &[x]) }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn axpy_taps<const B: usize>(
        rows: &mut [&mut [f32]; B],
        at: usize,
        w: &[[f32; B]],
        xs: &[&[f32]],
    ) {
        use core::arch::x86_64::_mm256_loadu_si256;
        let n = taps_len(rows, at, xs);
        let mut j = 0;
        while j + 8 <= n {
            // SAFETY: j + 8 <= n, inside every tap's input and every row from `at` on.
            unsafe { Self::taps_step(rows, at, j, w, xs, None) };
            j += 8;
        }
        if let Some(mask) = MASKS.get(8 - (n - j).min(8)..16 - (n - j).min(8))
            && j < n
        {
            // SAFETY: the mask's n - j lanes stay below n.
            unsafe {
                let mask = _mm256_loadu_si256(mask.as_ptr().cast());
                Self::taps_step(rows, at, j, w, xs, Some(mask));
            }
        }
    }
}

/// x86_64 AVX2 + FMA: the fused taps.
#[cfg(target_arch = "x86_64")]
impl Avx2Fma {
    /// [`Lanes::axpy_taps`] on 8 lanes (the `mask`ed ones, when given).
    ///
    /// # Safety
    /// AVX2 and FMA; `at + j + 8` inside every row and `j + 8` inside every `xs[t]`, or the
    /// mask's lanes inside them.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn taps_step<const B: usize>(
        rows: &mut [&mut [f32]; B],
        at: usize,
        j: usize,
        w: &[[f32; B]],
        xs: &[&[f32]],
        mask: Option<core::arch::x86_64::__m256i>,
    ) {
        use core::arch::x86_64::{
            _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_maskload_ps, _mm256_maskstore_ps,
            _mm256_set1_ps, _mm256_setzero_ps, _mm256_storeu_ps,
        };
        let mut acc = [_mm256_setzero_ps(); B];
        // SAFETY (all blocks below): the caller's bounds.
        for (acc, row) in acc.iter_mut().zip(rows.iter_mut()) {
            let at = unsafe { row.as_mut_ptr().add(at + j) };
            *acc = match mask {
                Some(mask) => unsafe { _mm256_maskload_ps(at, mask) },
                None => unsafe { _mm256_loadu_ps(at) },
            };
        }
        for (w, x) in w.iter().zip(xs) {
            let x = unsafe { x.as_ptr().add(j) };
            let xs = match mask {
                Some(mask) => unsafe { _mm256_maskload_ps(x, mask) },
                None => unsafe { _mm256_loadu_ps(x) },
            };
            for (acc, &w) in acc.iter_mut().zip(w) {
                *acc = _mm256_fmadd_ps(_mm256_set1_ps(w), xs, *acc);
            }
        }
        for (acc, row) in acc.iter().zip(rows.iter_mut()) {
            let at = unsafe { row.as_mut_ptr().add(at + j) };
            match mask {
                Some(mask) => unsafe { _mm256_maskstore_ps(at, mask, *acc) },
                None => unsafe { _mm256_storeu_ps(at, *acc) },
            }
        }
    }
}

/// Eight lanes on, then eight off: `MASKS[8 - k..16 - k]` enables the first `k` lanes.
#[cfg(target_arch = "x86_64")]
const MASKS: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];

/// aarch64 NEON, 4 lanes.
#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
#[derive(Debug, Clone, Copy)]
pub struct Neon;

#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
impl Lanes for Neon {
    const FUSES_TAPS: bool = true;

    #[inline(always)]
    unsafe fn axpy<const B: usize>(rows: &mut [&mut [f32]; B], at: usize, w: [f32; B], x: &[f32]) {
        // SAFETY: the caller's; one tap is the same arithmetic.
        unsafe { Self::axpy_taps(rows, at, &[w], &[x]) }
    }

    #[inline(always)]
    unsafe fn axpy_taps<const B: usize>(
        rows: &mut [&mut [f32]; B],
        at: usize,
        w: &[[f32; B]],
        xs: &[&[f32]],
    ) {
        use core::arch::aarch64::{vdupq_n_f32, vfmaq_f32, vld1q_f32, vst1q_f32};
        let n = taps_len(rows, at, xs);
        let mut j = 0;
        while j + 4 <= n {
            // SAFETY (all blocks below): NEON is on; j + 4 <= n, inside every tap's input and
            // every row from `at` on.
            let mut acc = [unsafe { vdupq_n_f32(0.0) }; B];
            for (acc, row) in acc.iter_mut().zip(rows.iter_mut()) {
                *acc = unsafe { vld1q_f32(row.as_ptr().add(at + j)) };
            }
            for (w, x) in w.iter().zip(xs) {
                let xs = unsafe { vld1q_f32(x.as_ptr().add(j)) };
                for (acc, &w) in acc.iter_mut().zip(w) {
                    *acc = unsafe { vfmaq_f32(*acc, xs, vdupq_n_f32(w)) };
                }
            }
            for (acc, row) in acc.iter().zip(rows.iter_mut()) {
                unsafe { vst1q_f32(row.as_mut_ptr().add(at + j), *acc) };
            }
            j += 4;
        }
        if j < n {
            scalar_axpy_taps(rows, at, w, xs, j);
        }
    }
}
