//! The committed models turned hostile, as issue 14 found them: runs of weights overwritten
//! with huge finite floats and the checksum fixed, so the files are well-formed and pass
//! validation. Every such file must either be refused with a typed error or give verdicts
//! that fail closed: a frame whose score is not finite is rejected, never accepted.

mod common;

use flowgate_edge::{Decision, Error, Fault, Gate};
use flowgate_shared::{Invalid, tamper};

/// Values written over the weights: the 3e38 (near f32's largest), and smaller
/// ones that overflow only after a few layers.
const HOSTILE_VALUES: [f32; 3] = [3e38, 1e20, -1e12];
/// Weights overwritten per run.
const RUN: usize = 16;

#[test]
fn hostile_weights_give_typed_errors_or_rejections_never_acceptance() {
    let images = common::first_test_images("fashion-mnist", 4);
    for name in ["fmnist-realnvp.f32.fgm", "camera-vtest.fgm"] {
        let original = std::fs::read(common::workspace().join("models").join(name)).unwrap();
        let ranges = tamper::f32_value_ranges(&original).unwrap();
        let (mut variants, mut refused, mut non_finite, mut finite) = (0, 0, 0, 0);
        for range in &ranges {
            for value in HOSTILE_VALUES {
                let mut file = original.clone();
                let run = &mut file[range.start..range.end.min(range.start + 4 * RUN)];
                for weight in run.chunks_exact_mut(4) {
                    weight.copy_from_slice(&value.to_le_bytes());
                }
                tamper::reseal(&mut file).unwrap();
                variants += 1;
                let gate = match Gate::new(&file) {
                    Ok(gate) => gate,
                    Err(Error::Model(flowgate_shared::Error::Invalid {
                        reason: Invalid::LogScaleOutOfRange,
                        ..
                    })) => {
                        refused += 1;
                        continue;
                    }
                    Err(error) => panic!("{name}: an unexpected error: {error}"),
                };
                for verdict in common::verdicts(&gate, &images) {
                    let score_finite = verdict.log_likelihood.is_finite()
                        && verdict.bits_per_dim.is_finite()
                        && verdict.ood_score.is_finite();
                    if score_finite {
                        finite += 1;
                        assert_eq!(verdict.fault, None);
                    } else {
                        non_finite += 1;
                        assert_eq!(verdict.decision, Some(Decision::Reject), "{verdict:?}");
                        assert_eq!(verdict.fault, Some(Fault::NonFiniteScore));
                    }
                }
            }
        }
        println!(
            "{name}: {variants} hostile files: {refused} refused at load (log-scale bound); \
             {non_finite} frames with non-finite scores, all rejected; {finite} finite"
        );
        assert!(
            non_finite > 0,
            "{name}: no variant overflowed; the test proves nothing"
        );
        assert!(refused > 0, "{name}: no variant hit a log-scale");
    }
}
