//! The gate with a native-resolution detail branch: what it refuses, and that it plans into
//! caller memory like any model. Its scores are held to the oracle in `reference.rs`.

use flowgate_edge::kernels::KernelPath;
use flowgate_edge::{Error, Frame, Gate, Limit, Limits, PixelFormat, Step};
use flowgate_shared::example::{tiny_detail_model, tiny_model};
use flowgate_shared::{Model, encode};

fn detail_file() -> Vec<u8> {
    encode(&tiny_detail_model()).expect("the fixture is valid")
}

fn frame_bytes(width: usize, height: usize) -> Vec<u8> {
    (0..width * height).map(|i| (i * 37 % 251) as u8).collect()
}

#[test]
fn frames_of_another_size_than_the_camera_are_refused() {
    let bytes = detail_file();
    let gate = Gate::new(&bytes).expect("loads");
    let mut scratch = vec![0f32; gate.scratch_len()];
    // The thumbnail alone would resize this frame; the branch needs the camera's own size.
    let data = frame_bytes(48, 36);
    let frame = Frame::packed(&data, 48, 36, PixelFormat::Gray8).unwrap();
    assert_eq!(
        gate.score(&frame, &mut scratch).unwrap_err(),
        Error::DetailFrameSize {
            expected: (24, 18),
            found: (48, 36)
        }
    );
    let message = gate.score(&frame, &mut scratch).unwrap_err().to_string();
    assert!(message.contains("24x18"), "{message}");
    assert_eq!(
        gate.score_levels_in_scratch(&mut scratch).unwrap_err(),
        Error::DetailNeedsFrame
    );
    let data = frame_bytes(24, 18);
    let frame = Frame::packed(&data, 24, 18, PixelFormat::Gray8).unwrap();
    let verdict = gate
        .score(&frame, &mut scratch)
        .expect("the camera's size scores");
    assert!(verdict.detail_bits_per_dim.is_some());
    // Too little scratch is a typed error, not a panic.
    let short = gate.scratch_len() - 1;
    assert!(matches!(
        gate.score(&frame, &mut scratch[..short]),
        Err(Error::ScratchTooSmall { .. })
    ));
}

#[test]
fn colour_frames_are_read_as_luma_and_match_gray() {
    let bytes = detail_file();
    let gate = Gate::new(&bytes).expect("loads");
    let mut scratch = vec![0f32; gate.scratch_len()];
    let gray = frame_bytes(24, 18);
    let rgb: Vec<u8> = gray.iter().flat_map(|&v| [v, v, v]).collect();
    let score = |data: &[u8], format| {
        let frame = Frame::packed(data, 24, 18, format).unwrap();
        gate.clone().score(&frame, &mut scratch.clone()).unwrap()
    };
    let from_gray = score(&gray, PixelFormat::Gray8);
    let from_rgb = score(&rgb, PixelFormat::Rgb8);
    assert_eq!(from_gray.detail_bits_per_dim, from_rgb.detail_bits_per_dim);
    assert_eq!(from_gray.ood_score, from_rgb.ood_score);
    scratch.clear();
}

#[test]
fn the_branch_plans_into_caller_memory_and_counts_against_the_limits() {
    let bytes = detail_file();
    let owned = Gate::new(&bytes).expect("loads");
    let sizes = Gate::plan_sizes(&bytes).expect("sizes");
    let plain_bytes = encode(&tiny_model()).unwrap();
    let plain_sizes = Gate::plan_sizes(&plain_bytes).unwrap();
    // The patch model is the tiny model itself: its plan doubles the steps and floats.
    assert_eq!(sizes.steps, 2 * plain_sizes.steps);
    assert_eq!(sizes.floats, 2 * plain_sizes.floats);
    assert_eq!(owned.plan_memory(), sizes);

    let mut steps = vec![Step::EMPTY; sizes.steps];
    let mut floats = vec![0f32; sizes.floats];
    let borrowed = Gate::new_in(&bytes, Limits::UNLIMITED, &mut steps, &mut floats)
        .expect("plans into exactly the sizes it reported");
    let data = frame_bytes(24, 18);
    let frame = Frame::packed(&data, 24, 18, PixelFormat::Gray8).unwrap();
    let mut scratch = vec![0f32; owned.scratch_len()];
    let a = owned
        .clone()
        .with_kernels(KernelPath::Scalar)
        .unwrap()
        .score(&frame, &mut scratch)
        .unwrap();
    let b = borrowed
        .with_kernels(KernelPath::Scalar)
        .unwrap()
        .score(&frame, &mut scratch)
        .unwrap();
    assert_eq!(a, b);

    let mut steps = vec![Step::EMPTY; sizes.steps - 1];
    let mut floats = vec![0f32; sizes.floats];
    assert!(matches!(
        Gate::new_in(&bytes, Limits::UNLIMITED, &mut steps, &mut floats),
        Err(Error::PlanMemoryTooSmall { .. })
    ));

    // The MAC limit sees the patches: the whole branch, not only the thumbnail.
    let macs = owned.summary().macs_per_frame;
    let plain_macs = Gate::new(&plain_bytes).unwrap().summary().macs_per_frame;
    assert_eq!(macs, 7 * plain_macs);
    let limits = Limits {
        max_macs_per_frame: macs - 1,
        ..Limits::UNLIMITED
    };
    assert!(matches!(
        Gate::with_limits(&bytes, limits),
        Err(Error::LimitExceeded {
            limit: Limit::MacsPerFrame,
            ..
        })
    ));
}

#[test]
fn a_model_without_a_branch_scores_as_before() {
    let plain = Model {
        detail: None,
        ..tiny_detail_model()
    };
    let bytes = encode(&plain).unwrap();
    let gate = Gate::new(&bytes).unwrap();
    assert!(gate.patch_model().is_none());
    let data = frame_bytes(48, 36);
    let frame = Frame::packed(&data, 48, 36, PixelFormat::Gray8).unwrap();
    let verdict = gate
        .score(&frame, &mut vec![0f32; gate.scratch_len()])
        .unwrap();
    assert_eq!(verdict.detail_bits_per_dim, None);
    assert_eq!(verdict.ood_score, verdict.bits_per_dim);
}

/// The model_score fuzz target starts from this seed so that mutations explore the detail
/// branch's decoding and scoring; it must stay a valid gate with a branch.
/// `FLOWGATE_WRITE_SEEDS=1 cargo test -p flowgate-edge --test detail` rewrites it.
#[test]
fn the_fuzz_seed_with_a_detail_branch_is_the_current_fixture() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds/model_score/tiny-detail.fgm");
    let expected = detail_file();
    if std::env::var_os("FLOWGATE_WRITE_SEEDS").is_some() {
        std::fs::write(&path, &expected).expect("writes the seed");
    }
    let seed = std::fs::read(&path).expect("the committed seed");
    assert_eq!(
        seed,
        expected,
        "{} is stale: rerun with FLOWGATE_WRITE_SEEDS=1",
        path.display()
    );
    assert!(Gate::new(&seed).unwrap().patch_model().is_some());
}

/// A hostile patch model (its weights pushed to 1e30, the file resealed, so it validates)
/// must give rejections, never acceptance: its patches' bits/dim overflow, and so does the
/// combined score.
#[test]
fn hostile_patch_weights_fail_closed() {
    let mut bytes = detail_file();
    let ranges = flowgate_shared::tamper::f32_value_ranges(&bytes).unwrap();
    let plain_ranges = flowgate_shared::tamper::f32_value_ranges(&encode(&tiny_model()).unwrap())
        .unwrap()
        .len();
    assert_eq!(
        ranges.len(),
        2 * plain_ranges,
        "the patch model's tensors are found too"
    );
    // Only the patch model's tensors: the last half of the file's ranges.
    for range in &ranges[plain_ranges..] {
        if range.len() <= 8 {
            continue;
        }
        for value in bytes[range.clone()].chunks_exact_mut(4) {
            value.copy_from_slice(&1e30f32.to_le_bytes());
        }
    }
    flowgate_shared::tamper::reseal(&mut bytes).unwrap();
    let gate = Gate::new(&bytes).expect("still a valid model");
    let mut scratch = vec![0f32; gate.scratch_len()];
    for seed in 0..4usize {
        let data: Vec<u8> = (0..24 * 18)
            .map(|i| ((i * 31 + seed * 7) % 256) as u8)
            .collect();
        let frame = Frame::packed(&data, 24, 18, PixelFormat::Gray8).unwrap();
        let verdict = gate.score(&frame, &mut scratch).unwrap();
        if !verdict.ood_score.is_finite() {
            assert_eq!(verdict.decision, Some(flowgate_edge::Decision::Reject));
            assert_eq!(verdict.fault, Some(flowgate_edge::Fault::NonFiniteScore));
        } else {
            panic!("a patch model of 1e30 weights gave a finite score: {verdict:?}");
        }
    }
}
