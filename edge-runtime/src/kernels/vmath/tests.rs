//! vmath's tests: the vector exp and tanh within 2 ulp of the f64 reference and of libm on a
//! dense sweep (every f32 in an ignored test), special values as libm's, and the affine and
//! tanh loops against their scalar formulas, tails included.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Function {
    Exp,
    Tanh,
}

impl Function {
    /// The f64 reference.
    fn exact(self, x: f32) -> f64 {
        match self {
            Function::Exp => libm::exp(f64::from(x)),
            Function::Tanh => libm::tanh(f64::from(x)),
        }
    }

    /// libm's f32 function (the scalar path's).
    fn libm(self, x: f32) -> f32 {
        match self {
            Function::Exp => libm::expf(x),
            Function::Tanh => libm::tanhf(x),
        }
    }
}

/// The SIMD paths this CPU and build run.
fn simd_paths() -> impl Iterator<Item = KernelPath> {
    KernelPath::ALL
        .into_iter()
        .filter(|&path| path != KernelPath::Scalar && path.available())
}

/// `function` of 8 inputs on `path`'s lanes.
fn vector(path: KernelPath, function: Function, xs: [f32; 8]) -> [f32; 8] {
    match path {
        #[cfg(target_arch = "x86_64")]
        KernelPath::Avx2Fma if path.available() => {
            // SAFETY: AVX2 and FMA checked just above.
            unsafe { lanes_avx2_fma(function, xs) }
        }
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        // SAFETY: NEON is a feature of this build.
        KernelPath::Neon => unsafe { lanes::<Neon>(function, xs) },
        _ => panic!("{path} does not run here"),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn lanes_avx2_fma(function: Function, xs: [f32; 8]) -> [f32; 8] {
    // SAFETY: the caller's.
    unsafe { lanes::<Avx2Fma>(function, xs) }
}

#[inline(always)]
unsafe fn lanes<L: MathLanes>(function: Function, xs: [f32; 8]) -> [f32; 8] {
    let mut out = xs;
    for chunk in out.chunks_exact_mut(L::WIDTH) {
        let at = chunk.as_mut_ptr();
        // SAFETY: the caller's lanes; `chunk` holds WIDTH floats.
        unsafe {
            let v = L::load(at);
            let y = match function {
                Function::Exp => exp::<L>(v),
                Function::Tanh => tanh::<L>(v),
            };
            L::store(at, y);
        }
    }
    out
}

/// |y - exact| in units of the last place of f32 at `exact` (subnormal spacing below
/// 2^-126); 0 where both are the same infinity or NaN, infinite where only one is.
fn ulp_error(y: f32, exact: f64) -> f64 {
    let rounded = exact as f32;
    if exact.is_nan() || y.is_nan() {
        return if exact.is_nan() && y.is_nan() {
            0.0
        } else {
            f64::INFINITY
        };
    }
    if rounded.is_infinite() || y.is_infinite() {
        return if y == rounded { 0.0 } else { f64::INFINITY };
    }
    let (_, e) = libm::frexp(exact);
    let ulp = libm::ldexp(1.0, (e - 24).max(-149));
    (f64::from(y) - exact).abs() / ulp
}

/// How many f32s lie between `a` and `b` (0 if equal, both NaN, or both zero).
fn ulps_apart(a: f32, b: f32) -> u64 {
    if a.is_nan() || b.is_nan() {
        return if a.is_nan() && b.is_nan() {
            0
        } else {
            u64::MAX
        };
    }
    let ordered = |x: f32| {
        let bits = i64::from(x.to_bits() as i32);
        if bits < 0 {
            i64::from(i32::MIN) - bits
        } else {
            bits
        }
    };
    ordered(a).abs_diff(ordered(b))
}

/// The worst errors over some inputs: against the f64 reference (ulps) and against libm's
/// f32 (f32s apart), with the inputs where they occur.
#[derive(Debug, Default, Clone, Copy)]
struct Worst {
    exact: f64,
    exact_at: f32,
    libm: u64,
    libm_at: f32,
}

fn measure(path: KernelPath, function: Function, inputs: impl Iterator<Item = f32>) -> Worst {
    let mut worst = Worst::default();
    let mut batch = [0.0f32; 8];
    let mut filled = 0;
    let flush = |batch: &[f32; 8], filled: usize, worst: &mut Worst| {
        let ys = vector(path, function, *batch);
        for (&x, &y) in batch.iter().zip(&ys).take(filled) {
            let error = ulp_error(y, function.exact(x));
            if error > worst.exact {
                (worst.exact, worst.exact_at) = (error, x);
            }
            let apart = ulps_apart(y, function.libm(x));
            if apart > worst.libm {
                (worst.libm, worst.libm_at) = (apart, x);
            }
        }
    };
    for x in inputs {
        if let Some(slot) = batch.get_mut(filled) {
            *slot = x;
        }
        filled += 1;
        if filled == 8 {
            flush(&batch, filled, &mut worst);
            filled = 0;
        }
    }
    flush(&batch, filled, &mut worst);
    worst
}

const SPECIAL: [f32; 24] = [
    0.0,
    -0.0,
    1e-30,
    -1e-30,
    f32::MIN_POSITIVE,
    -f32::MIN_POSITIVE,
    1e-45,
    -1e-45,
    88.7,
    -88.7,
    88.722_83,
    88.722_84,
    -87.336_55,
    -103.972_08,
    104.0,
    -104.0,
    0.625,
    -0.625,
    9.01,
    -9.01,
    f32::MAX,
    f32::MIN,
    f32::INFINITY,
    f32::NEG_INFINITY,
];

/// Every 2^-8 from -104 to 104, the special values, and 2^16 pseudo-random bit patterns
/// (every exponent, both signs, NaNs included).
fn sweep() -> impl Iterator<Item = f32> {
    let dense = (-104 * 256..=104 * 256).map(|i| i as f32 / 256.0);
    let mut state = 0x9e37_79b9u32;
    let random = (0..1 << 16).map(move |_| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        f32::from_bits(state)
    });
    dense
        .chain(SPECIAL)
        .chain([f32::NAN, -f32::NAN])
        .chain(random)
}

/// The bounds the tests assert: at most 2 ulp from the exact value, and at most 2 f32s
/// from libm's (itself within 1 ulp of exact).
const MAX_ULP: f64 = 2.0;
const MAX_APART_FROM_LIBM: u64 = 2;

#[test]
fn exp_and_tanh_are_within_two_ulp_of_the_f64_reference_and_of_libm() {
    for path in simd_paths() {
        for function in [Function::Exp, Function::Tanh] {
            let worst = measure(path, function, sweep());
            #[cfg(feature = "std")]
            std::eprintln!("{path} {function:?}: sweep: {worst:?}");
            assert!(
                worst.exact <= MAX_ULP && worst.libm <= MAX_APART_FROM_LIBM,
                "{path} {function:?}: {worst:?}"
            );
        }
    }
}

#[test]
fn special_values_behave_as_libms() {
    for path in simd_paths() {
        let inputs = [
            0.0,
            -0.0,
            1e-45,
            -1e-45,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -104.0,
        ];
        let exps = vector(path, Function::Exp, inputs);
        let tanhs = vector(path, Function::Tanh, inputs);
        for ((&x, &e), &t) in inputs.iter().zip(&exps).zip(&tanhs) {
            let (want_e, want_t) = (libm::expf(x), libm::tanhf(x));
            assert!(
                e.to_bits() == want_e.to_bits() || (e.is_nan() && want_e.is_nan()),
                "{path} exp({x}) = {e}, libm {want_e}"
            );
            assert!(
                t.to_bits() == want_t.to_bits() || (t.is_nan() && want_t.is_nan()),
                "{path} tanh({x}) = {t}, libm {want_t}"
            );
        }
        // Finite wherever libm is finite, infinite where it overflows.
        let edges = [
            88.722_83, 88.722_84, 89.0, 1e30, -87.0, -103.0, -1e30, 100.0,
        ];
        let exps = vector(path, Function::Exp, edges);
        for (&x, &e) in edges.iter().zip(&exps) {
            assert_eq!(
                e.is_finite(),
                libm::expf(x).is_finite(),
                "{path} exp({x}) = {e}"
            );
        }
    }
}

/// The scalar formula with the vector functions, one element at a time.
fn affine_expected(
    path: KernelPath,
    x: &mut [f32],
    s_raw: &[f32],
    t: &[f32],
    scale: f32,
    changes: impl Fn(usize) -> bool,
) -> f64 {
    let one = |function, v| vector(path, function, [v; 8])[0];
    let mut log_det = 0.0f64;
    for (index, ((x, &s_raw), &t)) in x.iter_mut().zip(s_raw).zip(t).enumerate() {
        if changes(index) {
            let s = scale * one(Function::Tanh, s_raw);
            *x = (*x + t) * one(Function::Exp, s);
            log_det += f64::from(s);
        }
    }
    log_det
}

#[test]
fn affine_is_the_scalar_formula_with_the_vector_functions() {
    const LEN: usize = 37; // 4 whole AVX2 vectors and a tail of 5; 9 NEON ones and 1
    let value = |i: usize, k: f32| ((i as f32 * 0.37 + k) % 3.0 - 1.5) * 2.5;
    let (s_raw, t): ([f32; LEN], [f32; LEN]) = (
        core::array::from_fn(|i| value(i, 0.1)),
        core::array::from_fn(|i| value(i, 0.7)),
    );
    let start: [f32; LEN] = core::array::from_fn(|i| value(i, 1.3));
    for path in simd_paths() {
        for (mask, every) in [(0, 1), (1, 2), (0, 3)] {
            let changes = |index: usize| index % every == mask;
            let (mut got, mut want, mut reference) = (start, start, start);
            let log_det = affine(&mut got, &s_raw, &t, 1.7, changes, path);
            let want_log_det = affine_expected(path, &mut want, &s_raw, &t, 1.7, changes);
            assert_eq!(
                (got, log_det),
                (want, want_log_det),
                "{path}, every {every}"
            );
            // And close to the scalar path's (libm).
            let reference_log_det =
                affine(&mut reference, &s_raw, &t, 1.7, changes, KernelPath::Scalar);
            assert!((log_det - reference_log_det).abs() < 1e-5, "{path}");
            for (a, b) in got.iter().zip(&reference) {
                assert!(ulps_apart(*a, *b) <= 8, "{path}: {a} vs {b}");
            }
        }
    }
}

#[test]
fn affine_planes_is_affine_per_channel() {
    const LEN: usize = 40;
    let value = |i: usize, k: f32| ((i as f32 * 0.37 + k) % 3.0 - 1.5) * 2.5;
    let (s_raw, t): ([f32; LEN], [f32; LEN]) = (
        core::array::from_fn(|i| value(i, 0.1)),
        core::array::from_fn(|i| value(i, 0.7)),
    );
    let start: [f32; LEN] = core::array::from_fn(|i| value(i, 1.3));
    let scale_of = |c: usize| 0.5 + c as f32 * 0.1;
    for path in KernelPath::ALL.into_iter().filter(|path| path.available()) {
        for plane in [1, 3, 5, 8, 13, 40] {
            let (mut got, mut want) = (start, start);
            let log_det = affine_planes(&mut got, &s_raw, &t, plane, scale_of, path);
            let mut want_log_det = 0.0f64;
            for (c, ((x, s_raw), t)) in want
                .chunks_exact_mut(plane)
                .zip(s_raw.chunks_exact(plane))
                .zip(t.chunks_exact(plane))
                .enumerate()
            {
                want_log_det += affine(x, s_raw, t, scale_of(c), |_| true, path);
            }
            assert_eq!(
                (got, log_det.to_bits()),
                (want, want_log_det.to_bits()),
                "{path}, plane {plane}"
            );
        }
    }
}

#[test]
fn tanh_in_place_covers_the_tail() {
    const LEN: usize = 13;
    let start: [f32; LEN] = core::array::from_fn(|i| i as f32 * 0.4 - 2.6);
    for path in simd_paths() {
        let mut got = start;
        tanh_in_place(&mut got, path);
        for (x, y) in start.iter().zip(&got) {
            assert_eq!(
                y.to_bits(),
                vector(path, Function::Tanh, [*x; 8])[0].to_bits()
            );
        }
    }
    let mut scalar = start;
    tanh_in_place(&mut scalar, KernelPath::Scalar);
    for (x, y) in start.iter().zip(&scalar) {
        assert_eq!(y.to_bits(), libm::tanhf(*x).to_bits());
    }
}

/// Every f32 bit pattern (2^32 inputs; minutes): the figures quoted in the module's
/// documentation. `cargo test --release -p flowgate-edge --lib vmath -- --ignored
/// --nocapture`.
#[cfg(feature = "std")]
#[test]
#[ignore = "exhaustive: minutes"]
fn exhaustive() {
    for path in simd_paths() {
        for function in [Function::Exp, Function::Tanh] {
            let worst = measure(path, function, (0..=u32::MAX).map(f32::from_bits));
            std::eprintln!("{path} {function:?}: every f32: {worst:?}");
            assert!(worst.exact <= MAX_ULP && worst.libm <= MAX_APART_FROM_LIBM);
        }
    }
}
