//! Vector registers, once per instruction set: the few operations the kernels' inner loops
//! are written in ([`super::tiles`]).
//!
//! [`Scalar`] is the portable reference: eight plain `f32`s per "vector", multiplied and added
//! separately, which compilers turn into whatever SIMD the target has by default (SSE2 on
//! x86_64). `Avx2Fma` (x86_64, 8 lanes) and `Neon` (aarch64, 4 lanes) use explicit fused
//! multiply-adds, which round once where the reference rounds twice: the paths agree to
//! rounding, not bit for bit.

/// One instruction set's vector operations.
///
/// # Safety
/// Every method may only run on a CPU with the implementation's instructions
/// ([`super::KernelPath::available`]); pointers must be valid for `WIDTH` floats.
pub(crate) trait Lanes: Copy {
    /// A vector of `WIDTH` floats.
    type V: Copy;
    /// Floats per vector.
    const WIDTH: usize;
    /// Every lane `x`.
    unsafe fn splat(x: f32) -> Self::V;
    /// `WIDTH` floats from `at` (unaligned).
    unsafe fn load(at: *const f32) -> Self::V;
    /// `WIDTH` floats to `at` (unaligned).
    unsafe fn store(at: *mut f32, v: Self::V);
    /// `a * b + c`.
    unsafe fn mul_add(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
}

/// Portable lanes: the reference.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scalar;

impl Lanes for Scalar {
    type V = [f32; 8];
    const WIDTH: usize = 8;

    #[inline(always)]
    unsafe fn splat(x: f32) -> Self::V {
        [x; 8]
    }

    #[inline(always)]
    unsafe fn load(at: *const f32) -> Self::V {
        // SAFETY: the caller's: 8 readable floats at `at`.
        unsafe { at.cast::<[f32; 8]>().read_unaligned() }
    }

    #[inline(always)]
    unsafe fn store(at: *mut f32, v: Self::V) {
        // SAFETY: the caller's: 8 writable floats at `at`.
        unsafe { at.cast::<[f32; 8]>().write_unaligned(v) }
    }

    #[inline(always)]
    unsafe fn mul_add(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        let mut out = c;
        for ((out, a), b) in out.iter_mut().zip(a).zip(b) {
            *out += a * b;
        }
        out
    }
}

/// x86_64 AVX2 with FMA: 8 lanes.
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx2Fma;

#[cfg(target_arch = "x86_64")]
impl Lanes for Avx2Fma {
    type V = core::arch::x86_64::__m256;
    const WIDTH: usize = 8;

    #[inline(always)]
    unsafe fn splat(x: f32) -> Self::V {
        // SAFETY: the caller's: AVX is on.
        unsafe { core::arch::x86_64::_mm256_set1_ps(x) }
    }

    #[inline(always)]
    unsafe fn load(at: *const f32) -> Self::V {
        // SAFETY: the caller's.
        unsafe { core::arch::x86_64::_mm256_loadu_ps(at) }
    }

    #[inline(always)]
    unsafe fn store(at: *mut f32, v: Self::V) {
        // SAFETY: the caller's.
        unsafe { core::arch::x86_64::_mm256_storeu_ps(at, v) }
    }

    #[inline(always)]
    unsafe fn mul_add(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        // SAFETY: the caller's: FMA is on.
        unsafe { core::arch::x86_64::_mm256_fmadd_ps(a, b, c) }
    }
}

/// aarch64 NEON: 4 lanes.
#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Neon;

#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
impl Lanes for Neon {
    type V = core::arch::aarch64::float32x4_t;
    const WIDTH: usize = 4;

    #[inline(always)]
    unsafe fn splat(x: f32) -> Self::V {
        // SAFETY: NEON is on (a target feature of this build).
        unsafe { core::arch::aarch64::vdupq_n_f32(x) }
    }

    #[inline(always)]
    unsafe fn load(at: *const f32) -> Self::V {
        // SAFETY: the caller's.
        unsafe { core::arch::aarch64::vld1q_f32(at) }
    }

    #[inline(always)]
    unsafe fn store(at: *mut f32, v: Self::V) {
        // SAFETY: the caller's.
        unsafe { core::arch::aarch64::vst1q_f32(at, v) }
    }

    #[inline(always)]
    unsafe fn mul_add(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        // SAFETY: NEON is on. vfmaq_f32(c, a, b) = c + a * b, fused.
        unsafe { core::arch::aarch64::vfmaq_f32(c, a, b) }
    }
}
