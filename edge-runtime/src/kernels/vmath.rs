//! Vectorised `exp` and `tanh` for the SIMD paths (AVX2+FMA: 8 lanes, NEON: 4 lanes), and the
//! two loops that use them: the coupling layers' affine algebra ([`crate::flow`]) and the
//! networks' `tanh` ([`super::ops::tanh`]). The scalar path keeps libm's `expf` and `tanhf`:
//! it is the reference.
//!
//! Both functions are written once over [`MathLanes`], so the two instruction sets run the
//! same algorithm with the same constants (Cephes' `expf` and `tanhf`):
//!
//! - `exp(x)`: `x` clamped to `[-104, 89]` (below, the result rounds to 0; above, it
//!   overflows to infinity, as libm's does from 88.72284), `n = round(x / ln 2)`,
//!   `r = x - n ln 2` with ln 2 split in two constants (the first with 9 significant bits, so
//!   `n * LN2_HI` is exact), `exp(r) = 1 + r + r^2 P(r)` with Cephes' degree-5 `P`, Horner
//!   with fused multiply-adds; then `2^n` in two halves through the exponent bits, so that
//!   `n = 128` (overflow) and `n < -126` (subnormal results) come out as libm's do. NaN gives
//!   NaN, `+inf` gives `+inf`, `-inf` gives 0.
//! - `tanh(x)`: for `|x| < 0.625` Cephes' odd polynomial `|x| + |x|^3 Q(x^2)`, which is `|x|`
//!   itself for tiny `x` (subnormals included); above, `1 - 2 / (e + 1)` with
//!   `e = exp(2 |x|)`, `|x|` clamped to 10 (where `tanh` is 1 in f32); then the sign of `x`
//!   (so `tanh(-0) = -0`). NaN gives NaN, `+-inf` give `+-1`. (`(e - 1) / (e + 1)` was
//!   2.2 ulp off near `|x| = 8.4`, where `e > 2^24` makes `e - 1` and `e + 1` round.)
//!
//! Measured against the exact value (`libm::exp` / `libm::tanh` in f64) over every f32 bit
//! pattern, on AVX2+FMA (`exhaustive` below): exp at most 0.89 ulp (at x = 26.6887), never
//! more than 1 f32 from libm's `expf`; tanh at most 1.37 ulp (at x = 0.630221, just above
//! the switch to the exponential), never more than 2 f32s from libm's `tanhf` (itself up to
//! about 1 ulp off). NEON runs the same IEEE operations in the same order (fused
//! multiply-adds, division, rounding to nearest), so it should give the same bits; the dense
//! sweep below checks it against the same bounds. Every test run asserts 2 ulp on a dense
//! sweep (every 2^-8 from -104 to 104, special values, 2^16 random bit patterns); the
//! exhaustive check is `#[ignore]`d (7 minutes on one core).

use super::KernelPath;
#[cfg(target_arch = "x86_64")]
use super::lanes::Avx2Fma;
use super::lanes::Lanes;
#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
use super::lanes::Neon;

/// The vector operations `exp` and `tanh` need, beyond [`Lanes`].
///
/// # Safety
/// As [`Lanes`]: every method may only run on a CPU with the implementation's instructions.
pub(crate) trait MathLanes: Lanes {
    /// `a + b`.
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    /// `a - b`.
    unsafe fn sub(a: Self::V, b: Self::V) -> Self::V;
    /// `a * b`.
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
    /// `a / b`.
    unsafe fn div(a: Self::V, b: Self::V) -> Self::V;
    /// `min(a, b)` for non-NaN lanes (what a NaN lane gives is unspecified).
    unsafe fn min(a: Self::V, b: Self::V) -> Self::V;
    /// `max(a, b)` for non-NaN lanes (what a NaN lane gives is unspecified).
    unsafe fn max(a: Self::V, b: Self::V) -> Self::V;
    /// `|a|`.
    unsafe fn abs(a: Self::V) -> Self::V;
    /// `magnitude` with the sign bit of `sign`.
    unsafe fn copy_sign(magnitude: Self::V, sign: Self::V) -> Self::V;
    /// `a` rounded to the nearest integer, ties to even.
    unsafe fn round(a: Self::V) -> Self::V;
    /// `2^n` for lanes holding integers in `[-126, 127]`, built in the exponent bits.
    unsafe fn pow2(n: Self::V) -> Self::V;
    /// `if a < b { then } else { otherwise }`, per lane (false where `a` or `b` is NaN).
    unsafe fn select_less(a: Self::V, b: Self::V, then: Self::V, otherwise: Self::V) -> Self::V;
    /// `if x is NaN { x } else { y }`, per lane.
    unsafe fn keep_nan(x: Self::V, y: Self::V) -> Self::V;
}

/// `exp` is clamped to `[EXP_LO, EXP_HI]`: `exp(-104)` rounds to 0 and `exp(89)` overflows.
const EXP_LO: f32 = -104.0;
const EXP_HI: f32 = 89.0;
const LOG2_E: f32 = core::f32::consts::LOG2_E;
/// ln 2 = `LN2_HI + LN2_LO`; `LN2_HI` has 9 significant bits, so `n * LN2_HI` is exact for
/// `|n| < 2^15`.
const LN2_HI: f32 = 355.0 / 512.0; // 0.693359375
const LN2_LO: f32 = -2.121_944_4e-4;
/// Cephes `expf`: `exp(r) = 1 + r + r^2 (EXP_P[0] + EXP_P[1] r + ...)` on `|r| <= ln 2 / 2`.
const EXP_P: [f32; 6] = [
    0.5,
    1.666_666_5e-1,
    4.166_579_6e-2,
    8.333_452e-3,
    1.398_2e-3,
    1.987_569_1e-4,
];
/// Cephes `tanhf`: `tanh(x) = x + x^3 (TANH_Q[0] + TANH_Q[1] x^2 + ...)` on `|x| < 0.625`.
const TANH_Q: [f32; 5] = [
    -3.333_328e-1,
    1.333_144_2e-1,
    -5.373_971_6e-2,
    2.063_909e-2,
    -5.704_988_7e-3,
];
/// Where `tanh` switches from the polynomial to the exponential.
const TANH_SMALL: f32 = 0.625;
/// `tanh(x)` rounds to 1 in f32 from about 9.01.
const TANH_SATURATED: f32 = 10.0;

/// `exp(x)` per lane.
///
/// # Safety
/// `L` runs on this CPU.
#[inline(always)]
pub(crate) unsafe fn exp<L: MathLanes>(x: L::V) -> L::V {
    // SAFETY: the caller's (every call below is a vector operation of `L`).
    unsafe {
        let clamped = L::min(L::max(x, L::splat(EXP_LO)), L::splat(EXP_HI));
        let n = L::round(L::mul(clamped, L::splat(LOG2_E)));
        let r = L::mul_add(n, L::splat(-LN2_HI), clamped);
        let r = L::mul_add(n, L::splat(-LN2_LO), r);
        let [p0, p1, p2, p3, p4, p5] = EXP_P;
        let mut p = L::splat(p5);
        for c in [p4, p3, p2, p1, p0] {
            p = L::mul_add(p, r, L::splat(c));
        }
        let one = L::splat(1.0);
        // 1 + r (1 + r P(r))
        let y = L::mul_add(L::mul_add(p, r, one), r, one);
        // 2^n = 2^half * 2^(n - half), both within the normal exponents for n in
        // [-150, 128]; the second product rounds once (to a subnormal, or to infinity).
        let half = L::round(L::mul(n, L::splat(0.5)));
        let rest = L::sub(n, half);
        let y = L::mul(L::mul(y, L::pow2(half)), L::pow2(rest));
        L::keep_nan(x, y)
    }
}

/// `tanh(x)` per lane.
///
/// # Safety
/// `L` runs on this CPU.
#[inline(always)]
pub(crate) unsafe fn tanh<L: MathLanes>(x: L::V) -> L::V {
    // SAFETY: the caller's (every call below is a vector operation of `L`).
    unsafe {
        let z = L::abs(x);
        // Small |x|: |x| + |x| x^2 Q(x^2).
        let z2 = L::mul(z, z);
        let [q0, q1, q2, q3, q4] = TANH_Q;
        let mut q = L::splat(q4);
        for c in [q3, q2, q1, q0] {
            q = L::mul_add(q, z2, L::splat(c));
        }
        let small = L::mul_add(L::mul(q, z2), z, z);
        // Otherwise 1 - 2 / (e + 1) with e = exp(2|x|).
        let clamped = L::min(z, L::splat(TANH_SATURATED));
        let e = exp::<L>(L::add(clamped, clamped));
        let one = L::splat(1.0);
        let large = L::sub(one, L::div(L::splat(2.0), L::add(e, one)));
        let y = L::copy_sign(L::select_less(z, L::splat(TANH_SMALL), small, large), x);
        L::keep_nan(x, y)
    }
}

/// `tanh` in place on `L`'s lanes: whole vectors, then the tail padded to one.
///
/// # Safety
/// `L` runs on this CPU.
#[inline(always)]
unsafe fn tanh_slice<L: MathLanes>(data: &mut [f32]) {
    const { assert!(L::WIDTH <= MAX_WIDTH) };
    let mut chunks = data.chunks_exact_mut(L::WIDTH);
    for chunk in &mut chunks {
        let at = chunk.as_mut_ptr();
        // SAFETY: the caller's lanes; `chunk` holds exactly WIDTH floats.
        unsafe { L::store(at, tanh::<L>(L::load(at))) };
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let mut buffer = padded(tail);
        let at = buffer.as_mut_ptr();
        // SAFETY: the caller's lanes; `buffer` holds MAX_WIDTH >= WIDTH floats.
        unsafe { L::store(at, tanh::<L>(L::load(at))) };
        for (x, b) in tail.iter_mut().zip(buffer) {
            *x = b;
        }
    }
}

/// The widest lanes: every tail fits a buffer of this many floats.
const MAX_WIDTH: usize = 8;

/// `tanh(x)` in place on `path`'s lanes; the scalar path is libm's `tanhf`.
pub(crate) fn tanh_in_place(data: &mut [f32], path: KernelPath) {
    match path {
        #[cfg(target_arch = "x86_64")]
        KernelPath::Avx2Fma if path.available() => {
            // SAFETY: this CPU runs AVX2 and FMA (checked just above).
            unsafe { tanh_avx2_fma(data) }
        }
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        KernelPath::Neon => {
            // SAFETY: NEON is a feature of this build.
            unsafe { tanh_slice::<Neon>(data) }
        }
        _ => {
            for x in data {
                *x = libm::tanhf(*x);
            }
        }
    }
}

/// [`tanh_slice`] compiled for AVX2 and FMA.
///
/// # Safety
/// AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tanh_avx2_fma(data: &mut [f32]) {
    // SAFETY: the caller's.
    unsafe { tanh_slice::<Avx2Fma>(data) }
}

/// The coupling algebra on one channel plane: where `changes(index)`,
/// `s = scale * tanh(s_raw)`, `x = (x + t) * exp(s)`; returns the sum of `s` (in f64, in index
/// order). The scalar path uses libm's `tanhf` and `expf`; the SIMD paths compute every lane
/// with [`tanh`] and [`exp`] (the same products and sums, in the same order, as the scalar
/// formula with those functions) and keep the lanes where `changes` holds.
pub(crate) fn affine(
    x: &mut [f32],
    s_raw: &[f32],
    t: &[f32],
    scale: f32,
    changes: impl Fn(usize) -> bool,
    path: KernelPath,
) -> f64 {
    match path {
        #[cfg(target_arch = "x86_64")]
        KernelPath::Avx2Fma if path.available() => {
            // SAFETY: this CPU runs AVX2 and FMA (checked just above).
            unsafe { affine_avx2_fma(x, s_raw, t, scale, changes) }
        }
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        KernelPath::Neon => {
            // SAFETY: NEON is a feature of this build.
            unsafe { affine_lanes::<Neon>(x, s_raw, t, scale, changes) }
        }
        _ => {
            let mut log_det = 0.0f64;
            for (index, ((x, &s_raw), &t)) in x.iter_mut().zip(s_raw).zip(t).enumerate() {
                if changes(index) {
                    let s = scale * libm::tanhf(s_raw);
                    *x = (*x + t) * libm::expf(s);
                    log_det += f64::from(s);
                }
            }
            log_det
        }
    }
}

/// [`affine_lanes`] compiled for AVX2 and FMA.
///
/// # Safety
/// AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn affine_avx2_fma(
    x: &mut [f32],
    s_raw: &[f32],
    t: &[f32],
    scale: f32,
    changes: impl Fn(usize) -> bool,
) -> f64 {
    // SAFETY: the caller's.
    unsafe { affine_lanes::<Avx2Fma>(x, s_raw, t, scale, changes) }
}

/// [`affine`] on `L`'s lanes, `WIDTH` elements at a time (the last group padded).
///
/// # Safety
/// `L` runs on this CPU.
#[inline(always)]
unsafe fn affine_lanes<L: MathLanes>(
    x: &mut [f32],
    s_raw: &[f32],
    t: &[f32],
    scale: f32,
    changes: impl Fn(usize) -> bool,
) -> f64 {
    const { assert!(L::WIDTH <= MAX_WIDTH) };
    let mut log_det = 0.0f64;
    let groups = x
        .chunks_mut(L::WIDTH)
        .zip(s_raw.chunks(L::WIDTH))
        .zip(t.chunks(L::WIDTH));
    for (group, ((x, s_raw), t)) in groups.enumerate() {
        let lanes = x.len().min(s_raw.len()).min(t.len());
        let base = group * L::WIDTH;
        let mut keep = [false; MAX_WIDTH];
        for (lane, keep) in keep.iter_mut().take(lanes).enumerate() {
            *keep = changes(base + lane);
        }
        if !keep.contains(&true) {
            continue; // no lane changes (a quadrant mask changes a quarter of the plane)
        }
        let (mut xs, mut ss) = (padded(x), padded(s_raw));
        // SAFETY: the caller's lanes.
        unsafe { affine_vector::<L>(&mut xs, &mut ss, &padded(t), L::splat(scale)) };
        for (x, (&y, (&s, &keep))) in x
            .iter_mut()
            .zip(xs.iter().zip(ss.iter().zip(&keep)))
            .take(lanes)
        {
            if keep {
                *x = y;
                log_det += f64::from(s);
            }
        }
    }
    log_det
}

/// `values` (at most [`MAX_WIDTH`]) in a zero-padded vector-sized buffer.
#[inline(always)]
fn padded(values: &[f32]) -> [f32; MAX_WIDTH] {
    let mut buffer = [0.0f32; MAX_WIDTH];
    for (b, v) in buffer.iter_mut().zip(values) {
        *b = *v;
    }
    buffer
}

/// One vector of the coupling algebra on padded buffers, the lanes scaled by `scale`:
/// `s = scale * tanh(s_raw)` into `ss` (which holds `s_raw`), `(x + t) * exp(s)` into `xs`
/// (which holds `x`).
///
/// # Safety
/// `L` runs on this CPU.
#[inline(always)]
unsafe fn affine_vector<L: MathLanes>(
    xs: &mut [f32; MAX_WIDTH],
    ss: &mut [f32; MAX_WIDTH],
    ts: &[f32; MAX_WIDTH],
    scale: L::V,
) {
    const { assert!(L::WIDTH <= MAX_WIDTH) };
    // SAFETY: the caller's lanes; the buffers hold MAX_WIDTH >= WIDTH floats.
    unsafe {
        let s = L::mul(scale, tanh::<L>(L::load(ss.as_ptr())));
        let y = L::mul(
            L::add(L::load(xs.as_ptr()), L::load(ts.as_ptr())),
            exp::<L>(s),
        );
        L::store(ss.as_mut_ptr(), s);
        L::store(xs.as_mut_ptr(), y);
    }
}

/// [`affine`] with every element changing, on each whole `plane` of the slices in turn
/// (channel `c` scaled by `scale_of(c)`); returns the sum over channels of their sums of `s`,
/// as calling [`affine`] per channel would. The SIMD paths run their vectors across channel
/// boundaries, so planes smaller than a vector (the flow on embeddings: 1 element) do not
/// pay for a whole vector each.
pub(crate) fn affine_planes(
    x: &mut [f32],
    s_raw: &[f32],
    t: &[f32],
    plane: usize,
    scale_of: impl Fn(usize) -> f32,
    path: KernelPath,
) -> f64 {
    let plane = plane.max(1);
    match path {
        #[cfg(target_arch = "x86_64")]
        KernelPath::Avx2Fma if path.available() => {
            // SAFETY: this CPU runs AVX2 and FMA (checked just above).
            unsafe { affine_planes_avx2_fma(x, s_raw, t, plane, scale_of) }
        }
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        KernelPath::Neon => {
            // SAFETY: NEON is a feature of this build.
            unsafe { affine_planes_lanes::<Neon>(x, s_raw, t, plane, scale_of) }
        }
        _ => {
            let mut log_det = 0.0f64;
            for (c, ((x, s_raw), t)) in x
                .chunks_exact_mut(plane)
                .zip(s_raw.chunks_exact(plane))
                .zip(t.chunks_exact(plane))
                .enumerate()
            {
                log_det += affine(x, s_raw, t, scale_of(c), |_| true, path);
            }
            log_det
        }
    }
}

/// [`affine_planes_lanes`] compiled for AVX2 and FMA.
///
/// # Safety
/// AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn affine_planes_avx2_fma(
    x: &mut [f32],
    s_raw: &[f32],
    t: &[f32],
    plane: usize,
    scale_of: impl Fn(usize) -> f32,
) -> f64 {
    // SAFETY: the caller's.
    unsafe { affine_planes_lanes::<Avx2Fma>(x, s_raw, t, plane, scale_of) }
}

/// [`affine_planes`] on `L`'s lanes; `plane >= 1`.
///
/// # Safety
/// `L` runs on this CPU.
#[inline(always)]
unsafe fn affine_planes_lanes<L: MathLanes>(
    x: &mut [f32],
    s_raw: &[f32],
    t: &[f32],
    plane: usize,
    scale_of: impl Fn(usize) -> f32,
) -> f64 {
    const { assert!(L::WIDTH <= MAX_WIDTH) };
    // Whole planes only, as `chunks_exact` per channel would take them.
    let len = x.len().min(s_raw.len()).min(t.len());
    let len = len - len % plane;
    let (Some(x), Some(s_raw), Some(t)) = (x.get_mut(..len), s_raw.get(..len), t.get(..len)) else {
        return 0.0;
    };
    let (mut total, mut partial) = (0.0f64, 0.0f64);
    // The next element's channel and position in its plane.
    let (mut channel, mut at) = (0usize, 0usize);
    let groups = x
        .chunks_mut(L::WIDTH)
        .zip(s_raw.chunks(L::WIDTH))
        .zip(t.chunks(L::WIDTH));
    for ((x, s_raw), t) in groups {
        let (mut xs, mut ss) = (padded(x), padded(s_raw));
        let mut scales = [0.0f32; MAX_WIDTH];
        let (mut c, mut a) = (channel, at);
        for scale in scales.iter_mut().take(x.len()) {
            *scale = scale_of(c);
            a += 1;
            if a == plane {
                (c, a) = (c + 1, 0);
            }
        }
        // SAFETY: the caller's lanes; `scales` holds MAX_WIDTH >= WIDTH floats.
        unsafe {
            let scales = L::load(scales.as_ptr());
            affine_vector::<L>(&mut xs, &mut ss, &padded(t), scales);
        }
        for (x, (&y, &s)) in x.iter_mut().zip(xs.iter().zip(ss.iter())) {
            *x = y;
            partial += f64::from(s);
            at += 1;
            if at == plane {
                total += partial;
                (partial, at, channel) = (0.0, 0, channel + 1);
            }
        }
    }
    total
}

#[cfg(target_arch = "x86_64")]
impl MathLanes for Avx2Fma {
    #[inline(always)]
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V {
        // SAFETY: the caller's: AVX is on.
        unsafe { core::arch::x86_64::_mm256_add_ps(a, b) }
    }

    #[inline(always)]
    unsafe fn sub(a: Self::V, b: Self::V) -> Self::V {
        // SAFETY: the caller's.
        unsafe { core::arch::x86_64::_mm256_sub_ps(a, b) }
    }

    #[inline(always)]
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V {
        // SAFETY: the caller's.
        unsafe { core::arch::x86_64::_mm256_mul_ps(a, b) }
    }

    #[inline(always)]
    unsafe fn div(a: Self::V, b: Self::V) -> Self::V {
        // SAFETY: the caller's.
        unsafe { core::arch::x86_64::_mm256_div_ps(a, b) }
    }

    #[inline(always)]
    unsafe fn min(a: Self::V, b: Self::V) -> Self::V {
        // SAFETY: the caller's.
        unsafe { core::arch::x86_64::_mm256_min_ps(a, b) }
    }

    #[inline(always)]
    unsafe fn max(a: Self::V, b: Self::V) -> Self::V {
        // SAFETY: the caller's.
        unsafe { core::arch::x86_64::_mm256_max_ps(a, b) }
    }

    #[inline(always)]
    unsafe fn abs(a: Self::V) -> Self::V {
        use core::arch::x86_64::{_mm256_andnot_ps, _mm256_set1_ps};
        // SAFETY: the caller's.
        unsafe { _mm256_andnot_ps(_mm256_set1_ps(-0.0), a) }
    }

    #[inline(always)]
    unsafe fn copy_sign(magnitude: Self::V, sign: Self::V) -> Self::V {
        use core::arch::x86_64::{_mm256_and_ps, _mm256_andnot_ps, _mm256_or_ps, _mm256_set1_ps};
        // SAFETY: the caller's.
        unsafe {
            let bit = _mm256_set1_ps(-0.0);
            _mm256_or_ps(_mm256_andnot_ps(bit, magnitude), _mm256_and_ps(bit, sign))
        }
    }

    #[inline(always)]
    unsafe fn round(a: Self::V) -> Self::V {
        use core::arch::x86_64::{_MM_FROUND_NO_EXC, _MM_FROUND_TO_NEAREST_INT, _mm256_round_ps};
        // SAFETY: the caller's.
        unsafe { _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a) }
    }

    #[inline(always)]
    unsafe fn pow2(n: Self::V) -> Self::V {
        use core::arch::x86_64::{
            _mm256_add_epi32, _mm256_castsi256_ps, _mm256_cvtps_epi32, _mm256_set1_epi32,
            _mm256_slli_epi32,
        };
        // SAFETY: the caller's: AVX2 is on. `n` holds integers, which convert exactly.
        unsafe {
            let biased = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
            _mm256_castsi256_ps(_mm256_slli_epi32::<23>(biased))
        }
    }

    #[inline(always)]
    unsafe fn select_less(a: Self::V, b: Self::V, then: Self::V, otherwise: Self::V) -> Self::V {
        use core::arch::x86_64::{_CMP_LT_OQ, _mm256_blendv_ps, _mm256_cmp_ps};
        // SAFETY: the caller's.
        unsafe { _mm256_blendv_ps(otherwise, then, _mm256_cmp_ps::<_CMP_LT_OQ>(a, b)) }
    }

    #[inline(always)]
    unsafe fn keep_nan(x: Self::V, y: Self::V) -> Self::V {
        use core::arch::x86_64::{_CMP_UNORD_Q, _mm256_blendv_ps, _mm256_cmp_ps};
        // SAFETY: the caller's.
        unsafe { _mm256_blendv_ps(y, x, _mm256_cmp_ps::<_CMP_UNORD_Q>(x, x)) }
    }
}

#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
impl MathLanes for Neon {
    #[inline(always)]
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V {
        // SAFETY: NEON is on (a target feature of this build).
        unsafe { core::arch::aarch64::vaddq_f32(a, b) }
    }

    #[inline(always)]
    unsafe fn sub(a: Self::V, b: Self::V) -> Self::V {
        // SAFETY: as above.
        unsafe { core::arch::aarch64::vsubq_f32(a, b) }
    }

    #[inline(always)]
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V {
        // SAFETY: as above.
        unsafe { core::arch::aarch64::vmulq_f32(a, b) }
    }

    #[inline(always)]
    unsafe fn div(a: Self::V, b: Self::V) -> Self::V {
        // SAFETY: as above.
        unsafe { core::arch::aarch64::vdivq_f32(a, b) }
    }

    #[inline(always)]
    unsafe fn min(a: Self::V, b: Self::V) -> Self::V {
        // SAFETY: as above.
        unsafe { core::arch::aarch64::vminq_f32(a, b) }
    }

    #[inline(always)]
    unsafe fn max(a: Self::V, b: Self::V) -> Self::V {
        // SAFETY: as above.
        unsafe { core::arch::aarch64::vmaxq_f32(a, b) }
    }

    #[inline(always)]
    unsafe fn abs(a: Self::V) -> Self::V {
        // SAFETY: as above.
        unsafe { core::arch::aarch64::vabsq_f32(a) }
    }

    #[inline(always)]
    unsafe fn copy_sign(magnitude: Self::V, sign: Self::V) -> Self::V {
        use core::arch::aarch64::{vbslq_f32, vdupq_n_u32};
        // SAFETY: as above. The select takes the sign bit from `sign`, the rest from
        // `magnitude`.
        unsafe { vbslq_f32(vdupq_n_u32(0x8000_0000), sign, magnitude) }
    }

    #[inline(always)]
    unsafe fn round(a: Self::V) -> Self::V {
        // SAFETY: as above.
        unsafe { core::arch::aarch64::vrndnq_f32(a) }
    }

    #[inline(always)]
    unsafe fn pow2(n: Self::V) -> Self::V {
        use core::arch::aarch64::{
            vaddq_s32, vcvtnq_s32_f32, vdupq_n_s32, vreinterpretq_f32_s32, vshlq_n_s32,
        };
        // SAFETY: as above. `n` holds integers, which convert exactly.
        unsafe {
            let biased = vaddq_s32(vcvtnq_s32_f32(n), vdupq_n_s32(127));
            vreinterpretq_f32_s32(vshlq_n_s32::<23>(biased))
        }
    }

    #[inline(always)]
    unsafe fn select_less(a: Self::V, b: Self::V, then: Self::V, otherwise: Self::V) -> Self::V {
        use core::arch::aarch64::{vbslq_f32, vcltq_f32};
        // SAFETY: as above.
        unsafe { vbslq_f32(vcltq_f32(a, b), then, otherwise) }
    }

    #[inline(always)]
    unsafe fn keep_nan(x: Self::V, y: Self::V) -> Self::V {
        use core::arch::aarch64::{vbslq_f32, vceqq_f32};
        // SAFETY: as above. x == x is false exactly where x is NaN.
        unsafe { vbslq_f32(vceqq_f32(x, x), y, x) }
    }
}

#[cfg(test)]
mod tests;
