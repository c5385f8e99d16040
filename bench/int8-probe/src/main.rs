//! Does an int8 convolution pay on this CPU? One 3x3 convolution of the camera gate's shape
//! (16 input channels, as concat(x, -x) of 8; 8 output channels; a 26x34 zero-padded plane
//! whose 24 rows of 34 flat outputs are computed, as the runtime's kernels do) timed as:
//!
//! - `f32 4x16`: the runtime's micro-kernel shape since 2026-12-02 (4 output channels x 16
//!   outputs in 8 AVX2 accumulators, FMA);
//! - `f32 4x24`: the shape before (12 accumulators: all 16 registers with the inputs);
//! - `int8 4x16`, `int8 4x24`, `int8 8x8`: u8 activations (7-bit, so that vpmaddubsw's
//!   pairwise i16 sums cannot saturate) and i8 weights, four input channels interleaved per
//!   32-bit lane, vpmaddubsw + vpmaddwd(1) + vpaddd into i32 accumulators: the AVX2 int8 dot
//!   product, as MLAS and XNNPACK use it on CPUs without VNNI.
//!
//! Each round times every kernel in turn (interleaved) for `ITERS` calls; the medians over
//! `ROUNDS` rounds are printed with the f32 4x16 kernel's time over each kernel's time, and
//! the core's FMA peak (12 independent FMA chains) for scale. Run:
//! `cargo run --release --manifest-path bench/int8-probe/Cargo.toml`.

use std::arch::x86_64::*;
use std::hint::black_box;
use std::time::Instant;

const W: usize = 34;
const PLANE: usize = W * 26 + 64;
const OUT: usize = 24 * W;
const CIN: usize = 16;
const COUT: usize = 8;
const TAPS: usize = 9;
const ROUNDS: usize = 9;
const ITERS: usize = 2000;

fn offsets() -> [usize; TAPS] {
    core::array::from_fn(|t| (t / 3) * W + t % 3)
}

/// f32: `out[c][q] = sum_(ic, tap) w[c][ic][tap] * x[ic][q + offset(tap)]`, 4 channels x NV
/// vectors per pass.
#[target_feature(enable = "avx2,fma")]
unsafe fn conv_f32<const NV: usize>(input: &[f32], w: &[f32], out: &mut [f32]) {
    let offs = offsets();
    assert!(input.len() >= CIN * PLANE && w.len() >= COUT * CIN * TAPS && out.len() >= COUT * OUT);
    for block in 0..COUT / 4 {
        let mut q = 0;
        while q + 8 * NV <= OUT {
            let mut acc = [[_mm256_setzero_ps(); NV]; 4];
            let mut wp = unsafe { w.as_ptr().add(block * CIN * TAPS * 4) };
            for ic in 0..CIN {
                let plane = unsafe { input.as_ptr().add(ic * PLANE + q) };
                for &o in &offs {
                    let at = unsafe { plane.add(o) };
                    let x: [__m256; NV] =
                        core::array::from_fn(|v| unsafe { _mm256_loadu_ps(at.add(8 * v)) });
                    for (b, acc) in acc.iter_mut().enumerate() {
                        let wv = unsafe { _mm256_broadcast_ss(&*wp.add(b)) };
                        for (acc, x) in acc.iter_mut().zip(x) {
                            *acc = _mm256_fmadd_ps(wv, x, *acc);
                        }
                    }
                    wp = unsafe { wp.add(4) };
                }
            }
            for (b, acc) in acc.iter().enumerate() {
                for (v, acc) in acc.iter().enumerate() {
                    unsafe {
                        _mm256_storeu_ps(
                            out.as_mut_ptr().add((block * 4 + b) * OUT + q + 8 * v),
                            *acc,
                        )
                    };
                }
            }
            q += 8 * NV;
        }
    }
}

/// int8: input `[group][position][4 channels]` u8, weights `[block][group][tap][b][4]` i8;
/// BO output channels x NV vectors of 8 outputs per pass.
#[target_feature(enable = "avx2,fma")]
unsafe fn conv_i8<const BO: usize, const NV: usize>(input: &[u8], w: &[i8], out: &mut [i32]) {
    let offs = offsets();
    let groups = CIN / 4;
    assert!(
        input.len() >= groups * PLANE * 4
            && w.len() >= COUT * CIN * TAPS
            && out.len() >= COUT * OUT
    );
    let ones = _mm256_set1_epi16(1);
    for block in 0..COUT / BO {
        let mut q = 0;
        while q + 8 * NV <= OUT {
            let mut acc = [[_mm256_setzero_si256(); NV]; BO];
            let mut wp = unsafe { w.as_ptr().add(block * groups * TAPS * BO * 4) } as *const i32;
            for g in 0..groups {
                let plane = unsafe { input.as_ptr().add((g * PLANE + q) * 4) };
                for &o in &offs {
                    let at = unsafe { plane.add(o * 4) } as *const __m256i;
                    let x: [__m256i; NV] =
                        core::array::from_fn(|v| unsafe { _mm256_loadu_si256(at.add(v)) });
                    for (b, acc) in acc.iter_mut().enumerate() {
                        let wv = _mm256_set1_epi32(unsafe { wp.add(b).read_unaligned() });
                        for (acc, x) in acc.iter_mut().zip(x) {
                            let pairs = _mm256_maddubs_epi16(x, wv);
                            *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(pairs, ones));
                        }
                    }
                    wp = unsafe { wp.add(BO) };
                }
            }
            for (b, acc) in acc.iter().enumerate() {
                for (v, acc) in acc.iter().enumerate() {
                    let to = unsafe { out.as_mut_ptr().add((block * BO + b) * OUT + q + 8 * v) };
                    unsafe { _mm256_storeu_si256(to as *mut __m256i, *acc) };
                }
            }
            q += 8 * NV;
        }
    }
}

/// Multiply-adds per second of 12 independent FMA chains: the core's f32 peak.
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_peak() -> f64 {
    let n = 20_000_000;
    let (a, b) = (_mm256_set1_ps(0.999), _mm256_set1_ps(0.001));
    let mut acc = [_mm256_setzero_ps(); 12];
    let start = Instant::now();
    for _ in 0..n {
        for acc in acc.iter_mut() {
            *acc = _mm256_fmadd_ps(*acc, a, b);
        }
    }
    black_box(acc);
    (n * 12 * 8) as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
        eprintln!("int8-probe: this CPU lacks AVX2 or FMA");
        std::process::exit(2);
    }
    let f_in: Vec<f32> = (0..CIN * PLANE)
        .map(|i| ((i * 37) % 101) as f32 / 101.0)
        .collect();
    let f_w: Vec<f32> = (0..COUT * CIN * TAPS)
        .map(|i| ((i * 13) % 7) as f32 - 3.0)
        .collect();
    let i_in: Vec<u8> = (0..CIN * PLANE).map(|i| ((i * 37) % 128) as u8).collect();
    let i_w: Vec<i8> = (0..COUT * CIN * TAPS)
        .map(|i| (((i * 13) % 255) as i32 - 127) as i8)
        .collect();
    let macs = (COUT * CIN * TAPS * OUT) as f64;

    // Each kernel writes its own output buffer.
    type Kernel<'a> = (&'static str, Box<dyn FnMut() + 'a>);
    let (f_in, f_w, i_in, i_w) = (&f_in, &f_w, &i_in, &i_w);
    let f32_kernel = |name, run: unsafe fn(&[f32], &[f32], &mut [f32])| -> Kernel {
        let mut out = vec![0f32; COUT * OUT];
        // SAFETY: AVX2 and FMA checked above; the kernels assert their bounds.
        (name, Box::new(move || unsafe { run(f_in, f_w, &mut out) }))
    };
    let i8_kernel = |name, run: unsafe fn(&[u8], &[i8], &mut [i32])| -> Kernel {
        let mut out = vec![0i32; COUT * OUT];
        // SAFETY: as above.
        (name, Box::new(move || unsafe { run(i_in, i_w, &mut out) }))
    };
    let mut kernels: Vec<Kernel> = vec![
        f32_kernel("f32 4x16", conv_f32::<2>),
        f32_kernel("f32 4x24", conv_f32::<3>),
        i8_kernel("int8 4x16", conv_i8::<4, 2>),
        i8_kernel("int8 4x24", conv_i8::<4, 3>),
        i8_kernel("int8 8x8", conv_i8::<8, 1>),
    ];
    let mut times = vec![Vec::new(); kernels.len()];
    let mut peaks = Vec::new();
    for _ in 0..ROUNDS {
        // SAFETY: AVX2 and FMA checked above.
        peaks.push(unsafe { fma_peak() });
        for (k, (_, run)) in kernels.iter_mut().enumerate() {
            run();
            let start = Instant::now();
            for _ in 0..ITERS {
                run();
            }
            times[k].push(start.elapsed().as_secs_f64() / ITERS as f64);
        }
    }
    let peak = median(peaks);
    let reference = median(times[0].clone());
    println!(
        "one core's f32 FMA peak: {:.1} GMAC/s; medians of {ROUNDS} interleaved rounds",
        peak / 1e9
    );
    println!(
        "{:<10} {:>9} {:>8} {:>8} {:>22}",
        "kernel", "us/call", "GMAC/s", "% peak", "f32 4x16 time / this"
    );
    for ((name, _), times) in kernels.iter().zip(times) {
        let t = median(times);
        println!(
            "{name:<10} {:>9.1} {:>8.1} {:>7.0}% {:>22.2}",
            t * 1e6,
            macs / t / 1e9,
            100.0 * macs / t / peak,
            reference / t
        );
    }
}
