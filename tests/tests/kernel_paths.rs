//! Every kernel path gives the scalar reference's verdicts on real images.
//!
//! The runtime's convolutions run on the scalar loops (the reference) or on explicit SIMD
//! lanes (AVX2+FMA on x86_64, NEON on aarch64; `flowgate_edge::kernels::KernelPath`). For
//! every committed model (f32 and int8) and the first [`N`] Fashion-MNIST and MNIST test
//! images, the path this CPU picks must give the same decision as the scalar path on every
//! image, and bits/dim within [`TOLERANCE_BPD`], or [`TOLERANCE_RELATIVE`] of the score where
//! that is larger (the camera gate gives these far-out images 100 to 2000 bits/dim, where it
//! differs by up to 1.2e-6 relative): a fused multiply-add rounds once where the
//! scalar loop rounds twice, so the two differ in the last bits of each activation (observed
//! with AVX2: at most 4.4e-5 bits/dim, on cycle-mask-l16, and 3.1e-5 relative, on the flow on
//! embeddings, whose bits/dim count only its 32 dimensions); a wrong index or a lost tail
//! moves it by orders of magnitude more (the oracle tests in `edge-runtime/tests/reference.rs` pin both paths to
//! an f64 reference on odd plane sizes).
//!
//! Since the planned kernels (commit f9c4430) the scalar path sums in tile order, not in the
//! first kernels' order: on 500 Fashion-MNIST images its scores matched theirs to 6 decimals.

mod common;

use common::{first_test_images, verdicts, workspace};
use flowgate_edge::Gate;
use flowgate_edge::kernels::KernelPath;

/// The committed models under `models/`.
const MODELS: [&str; 7] = [
    "fmnist-realnvp.f32",
    "fmnist-realnvp.int8",
    "fmnist-cycle-mask-l16.f32",
    "fmnist-cycle-mask-l16.int8",
    "fmnist-embedding.f32",
    "fmnist-embedding.int8",
    "camera-vtest",
];
/// Images of each test set scored.
const N: usize = 500;
/// |bits/dim of the detected path - bits/dim of the scalar path|, per image.
const TOLERANCE_BPD: f64 = 1e-4;
/// The same, relative to the scalar path's bits/dim, for scores far above 1.
const TOLERANCE_RELATIVE: f64 = 1e-5;

#[test]
fn the_detected_path_gives_the_scalar_paths_verdicts() {
    let detected = KernelPath::detect();
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        assert_eq!(detected, KernelPath::Avx2Fma, "this CPU runs AVX2 and FMA");
    }
    #[cfg(target_arch = "aarch64")]
    assert_eq!(detected, KernelPath::Neon);
    if detected == KernelPath::Scalar {
        eprintln!("this CPU has no SIMD path: only the scalar one runs");
    }

    let sets = [
        ("fashion-mnist", first_test_images("fashion-mnist", N)),
        ("mnist", first_test_images("mnist", N)),
    ];
    let mut failures = Vec::new();
    for name in MODELS {
        let path = workspace().join("models").join(format!("{name}.fgm"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let fast = Gate::new(&bytes).expect("loads");
        assert_eq!(fast.kernels(), detected);
        let scalar = fast
            .clone()
            .with_kernels(KernelPath::Scalar)
            .expect("always runs");
        let (mut worst, mut worst_relative, mut rejected) = (0.0f64, 0.0f64, 0);
        for (set, images) in &sets {
            let expected = verdicts(&scalar, images);
            let found = verdicts(&fast, images);
            for (index, (want, got)) in expected.iter().zip(&found).enumerate() {
                let delta = (want.bits_per_dim - got.bits_per_dim).abs();
                worst = worst.max(delta);
                worst_relative = worst_relative.max(delta / want.bits_per_dim.abs().max(1.0));
                let tolerance = TOLERANCE_BPD.max(TOLERANCE_RELATIVE * want.bits_per_dim.abs());
                if delta > tolerance || want.decision != got.decision {
                    failures.push(format!(
                        "{name}, {set} image {index}: scalar {:.6} bpd ({:?}), {detected} {:.6} \
                         ({:?})",
                        want.bits_per_dim, want.decision, got.bits_per_dim, got.decision
                    ));
                }
                rejected += usize::from(want.decision == Some(flowgate_edge::Decision::Reject));
            }
        }
        eprintln!(
            "{name}: {detected} vs scalar, worst |delta bpd| {worst:.2e} ({worst_relative:.2e} \
             relative) over {} images ({rejected} rejected by both)",
            2 * N
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
