//! Every exported model, run by tract (an independent ONNX runtime) on real images, scores
//! each image as the runtime's gate does: |delta bits/dim| <= 1e-4.
//!
//! The Fashion-MNIST models (f32 and int8) see the first Fashion-MNIST test images; the
//! camera model sees held-out frames of its video, and (far out of its distribution)
//! Fashion-MNIST images and OpenCV's sample photographs resized to its 24x32 input by the
//! runtime's area averaging. shared's tiny fixtures, which use every layer kind, mask and
//! network operation, see the Fashion-MNIST images resized to 4x4. Run with `--nocapture`
//! for the figures. Needs scripts/fetch-data.sh (the data, and ffmpeg).

mod common;

use common::{
    Agreement, DetailScores, MAX_DELTA_BITS_PER_DIM, agreement, committed_model, compare,
    fashion_mnist_levels, native_video_frames, photo_levels, pseudo_random_bytes,
    runtime_detail_scores, runtime_scores, tiny_detail_model_file, tract_detail_scores, tract_plan,
    tract_scores, video_levels,
};
use flowgate_onnx::{ExportOptions, Int8Weights, export};
use flowgate_shared::example::{tiny_embedding_model, tiny_model};
use flowgate_shared::{
    FlowLayer, InvertibleConv1x1, Mask, Model, Quadrant, Seq, Tensor, decode, encode,
};

const IMAGES: usize = 64;

/// Photographs for the camera model (data/opencv), scenes rather than garments.
const PHOTOS: [&str; 16] = [
    "aero1.jpg",
    "baboon.jpg",
    "board.jpg",
    "building.jpg",
    "fruits.jpg",
    "home.jpg",
    "messi5.jpg",
    "orange.jpg",
    "pic1.png",
    "starry_night.jpg",
    "stuff.jpg",
    "sudoku.png",
    "left01.jpg",
    "right01.jpg",
    "box.png",
    "graf1.png",
];

fn dequantize_linear() -> ExportOptions {
    ExportOptions::default().with_int8_weights(Int8Weights::DequantizeLinear)
}

/// Fashion-MNIST images at the model's input size.
fn images_for(model_file: &[u8]) -> Vec<Vec<f32>> {
    let spec = decode(model_file).expect("a valid model").model.input;
    fashion_mnist_levels(&spec, IMAGES)
}

fn assert_agrees(name: &str, agreement: Agreement) {
    println!(
        "{name}: max |delta bits/dim| {:.2e} (image {}), max |delta log-likelihood| {:.2e} nats, \
         mean bits/dim {:.3}",
        agreement.max_bits_per_dim,
        agreement.worst_image,
        agreement.max_log_likelihood,
        agreement.mean_bits_per_dim,
    );
    assert!(
        agreement.max_bits_per_dim <= MAX_DELTA_BITS_PER_DIM,
        "{name}: tract and the runtime differ by {:e} bits/dim on image {}",
        agreement.max_bits_per_dim,
        agreement.worst_image
    );
}

fn check_committed(name: &str, options: &ExportOptions) {
    let model_file = committed_model(name);
    let images = images_for(&model_file);
    let label = match options.int8_weights {
        Int8Weights::Dequantized => name.to_owned(),
        Int8Weights::DequantizeLinear => format!("{name} (DequantizeLinear)"),
    };
    assert_agrees(&label, agreement(&model_file, options, &images));
}

#[test]
fn fmnist_realnvp_f32() {
    check_committed("fmnist-realnvp.f32", &ExportOptions::default());
}

#[test]
fn fmnist_realnvp_int8() {
    check_committed("fmnist-realnvp.int8", &ExportOptions::default());
}

#[test]
fn fmnist_realnvp_int8_dequantize_linear() {
    check_committed("fmnist-realnvp.int8", &dequantize_linear());
}

#[test]
fn fmnist_cycle_mask_f32() {
    check_committed("fmnist-cycle-mask-l16.f32", &ExportOptions::default());
}

#[test]
fn fmnist_cycle_mask_int8() {
    check_committed("fmnist-cycle-mask-l16.int8", &ExportOptions::default());
}

#[test]
fn fmnist_cycle_mask_int8_dequantize_linear() {
    check_committed("fmnist-cycle-mask-l16.int8", &dequantize_linear());
}

#[test]
fn fmnist_embedding_f32() {
    check_committed("fmnist-embedding.f32", &ExportOptions::default());
}

#[test]
fn fmnist_embedding_int8() {
    check_committed("fmnist-embedding.int8", &ExportOptions::default());
}

#[test]
fn fmnist_embedding_int8_dequantize_linear() {
    check_committed("fmnist-embedding.int8", &dequantize_linear());
}

/// The camera model on the frames it judges: held-out frames of its own video (600..=794,
/// which training never saw), made as scripts/run.sh makes them.
#[test]
fn camera_vtest() {
    let model_file = committed_model("camera-vtest");
    let spec = decode(&model_file).expect("a valid model").model.input;
    assert_eq!((spec.channels, spec.height, spec.width), (1, 24, 32));
    let images = video_levels(&spec, "vtest.avi", 600, 794, 4);
    assert!(images.len() >= 48, "{} frames", images.len());
    assert_agrees(
        "camera-vtest",
        agreement(&model_file, &ExportOptions::default(), &images),
    );
    assert_agrees(
        "camera-vtest (DequantizeLinear)",
        agreement(&model_file, &dequantize_linear(), &images),
    );
    // The decision a user of the exported graph makes (reject when bits/dim is above the
    // threshold in its metadata) is the gate's on every frame.
    let model = decode(&model_file).expect("a valid model").model;
    let threshold = model.threshold.as_ref().expect("calibrated").ood_score;
    let onnx = export(&model_file, &ExportOptions::default()).expect("exports");
    let plan = tract_plan(&onnx, &model.input, Some(images.len()));
    let tract = tract_scores(&plan, &model.input, &images);
    let runtime = runtime_scores(&model_file, &images);
    let mut rejected = 0;
    for (frame, (&(_, bpd), &(_, tract_bpd))) in runtime.iter().zip(&tract).enumerate() {
        let gate_rejects = bpd > f64::from(threshold);
        assert_eq!(
            gate_rejects,
            tract_bpd > threshold,
            "frame {frame}: {bpd} bits/dim in the runtime, {tract_bpd} in tract, threshold {threshold}"
        );
        rejected += usize::from(gate_rejects);
    }
    println!(
        "camera-vtest: the same decision on all {} held-out frames ({rejected} rejected)",
        images.len()
    );
}

/// Far out of the camera model's distribution (garments, photographs: 14 to 1600 bits/dim,
/// against a threshold of 5.4), f32 arithmetic agrees to a relative 1e-5, not to 1e-4
/// bits/dim: tract's tanh and exp are approximations (relative ~3e-6 here; ONNX Runtime on
/// the same graph is within 4e-7), and ten couplings compound them. What matters there
/// holds: every such frame is rejected by both.
#[test]
fn camera_vtest_far_out_of_distribution() {
    let model_file = committed_model("camera-vtest");
    let model = decode(&model_file).expect("a valid model").model;
    let threshold = model.threshold.as_ref().expect("calibrated").ood_score;
    let mut images = fashion_mnist_levels(&model.input, IMAGES - PHOTOS.len());
    images.extend(photo_levels(&model.input, &PHOTOS));
    let onnx = export(&model_file, &ExportOptions::default()).expect("exports");
    let plan = tract_plan(&onnx, &model.input, Some(images.len()));
    let tract = tract_scores(&plan, &model.input, &images);
    let runtime = runtime_scores(&model_file, &images);
    let mut worst_relative = 0f64;
    for (image, (&(_, bpd), &(_, tract_bpd))) in runtime.iter().zip(&tract).enumerate() {
        let delta = (bpd - f64::from(tract_bpd)).abs();
        let relative = delta / bpd.abs();
        worst_relative = worst_relative.max(relative);
        assert!(
            delta <= MAX_DELTA_BITS_PER_DIM.max(1e-5 * bpd.abs()),
            "image {image}: {bpd} bits/dim in the runtime, {tract_bpd} in tract"
        );
        assert!(
            bpd > f64::from(threshold) && tract_bpd > threshold,
            "image {image}"
        );
    }
    println!("camera-vtest far out of distribution: worst relative delta {worst_relative:.2e}");
}

#[test]
fn tiny_model_with_every_layer_kind() {
    let model_file = encode(&tiny_model()).expect("the fixture encodes");
    let images = images_for(&model_file);
    assert_agrees(
        "tiny",
        agreement(&model_file, &ExportOptions::default(), &images),
    );
    assert_agrees(
        "tiny (DequantizeLinear)",
        agreement(&model_file, &dequantize_linear(), &images),
    );
}

#[test]
fn tiny_flow_on_embeddings() {
    let model_file = encode(&tiny_embedding_model()).expect("the fixture encodes");
    let images = images_for(&model_file);
    assert_agrees(
        "tiny-embedding",
        agreement(&model_file, &ExportOptions::default(), &images),
    );
}

/// The fixture's flow layers, each in a model of its own prefix: the first prefix that
/// disagrees names the layer exported wrong.
#[test]
fn each_prefix_of_the_tiny_flow_agrees() {
    let full = tiny_model();
    let layers: Vec<FlowLayer<'static>> = full
        .flow
        .iter()
        .map(|layer| layer.expect("an in-memory flow"))
        .collect();
    let images = images_for(&encode(&full).expect("the fixture encodes"));
    for end in 1..=layers.len() {
        let model = Model {
            flow: Seq::from_vec(layers[..end].to_vec()),
            ..full.clone()
        };
        let model_file = encode(&model).expect("a prefix is a valid model");
        let name = format!("tiny[..{end}] ending in {}", layer_kind(&layers[end - 1]));
        assert_agrees(
            &name,
            agreement(&model_file, &ExportOptions::default(), &images),
        );
    }
}

fn layer_kind(layer: &FlowLayer<'_>) -> String {
    match layer {
        FlowLayer::Coupling(coupling) => format!("coupling {:?}", coupling.mask),
        FlowLayer::Squeeze => "squeeze".into(),
        FlowLayer::Unsqueeze => "unsqueeze".into(),
        FlowLayer::ActNorm(_) => "actnorm".into(),
        FlowLayer::InvertibleConv1x1(_) => "1x1 conv".into(),
        FlowLayer::FactorOut { .. } => "factor-out".into(),
        FlowLayer::Embed(_) => "embed".into(),
    }
}

/// The comparison is sharp enough to catch a wrong export: scoring the tiny model's graph
/// against a runtime model whose mask differs in one coupling (each mask kind in turn), or
/// whose channels are permuted after a squeeze or before the factor-out, fails the
/// tolerance by orders of magnitude.
#[test]
fn a_layer_exported_wrong_fails_the_comparison() {
    let full = tiny_model();
    let layers: Vec<FlowLayer<'static>> = full
        .flow
        .iter()
        .map(|layer| layer.expect("an in-memory flow"))
        .collect();
    let original = encode(&full).expect("the fixture encodes");
    let images = images_for(&original);
    let spec = full.input;
    let onnx = export(&original, &ExportOptions::default()).expect("exports");
    let tract = tract_scores(
        &tract_plan(&onnx, &spec, Some(images.len())),
        &spec,
        &images,
    );

    let mut mutants = Vec::new();
    for (index, layer) in layers.iter().enumerate() {
        let FlowLayer::Coupling(coupling) = layer else {
            continue;
        };
        let wrong_mask = match coupling.mask {
            Mask::Checkerboard { reverse } => Mask::Checkerboard { reverse: !reverse },
            Mask::ChannelWise { reverse } => Mask::ChannelWise { reverse: !reverse },
            Mask::Horizontal { reverse } => Mask::Horizontal { reverse: !reverse },
            Mask::Quadrant { read, write } => {
                // The next quadrant clockwise that the network does not read.
                let mut next = Quadrant::from_index(write.index() + 1);
                if next == read {
                    next = Quadrant::from_index(next.index() + 1);
                }
                Mask::Quadrant { read, write: next }
            }
        };
        let mut changed = layers.clone();
        let mut coupling = coupling.clone();
        coupling.mask = wrong_mask;
        changed[index] = FlowLayer::Coupling(coupling);
        mutants.push((format!("layer {index}: {wrong_mask:?}"), changed));
    }
    // A channel permutation (a 1x1 convolution with log|det| 0) right after the first
    // squeeze is a squeeze with dy and dx swapped; one right before the factor-out keeps
    // the wrong channels.
    let first_squeeze = layers
        .iter()
        .position(|layer| matches!(layer, FlowLayer::Squeeze))
        .expect("the fixture squeezes");
    let factor_out = layers
        .iter()
        .position(|layer| matches!(layer, FlowLayer::FactorOut { .. }))
        .expect("the fixture factors out");
    for (what, at, order) in [
        (
            "squeeze with dy and dx swapped",
            first_squeeze + 1,
            [0, 2, 1, 3],
        ),
        ("factor-out of the first channels", factor_out, [3, 2, 1, 0]),
    ] {
        let mut changed = layers.clone();
        changed.insert(at, permutation(order));
        mutants.push((what.to_owned(), changed));
    }

    for (what, flow) in mutants {
        let model = Model {
            flow: Seq::from_vec(flow),
            ..full.clone()
        };
        let Ok(mutant) = encode(&model) else {
            panic!("{what}: the mutant must be a valid model to prove anything");
        };
        let agreement = compare(&runtime_scores(&mutant, &images), &tract);
        println!(
            "{what}: max |delta bits/dim| {:.2e}",
            agreement.max_bits_per_dim
        );
        assert!(
            agreement.max_bits_per_dim > 100.0 * MAX_DELTA_BITS_PER_DIM,
            "{what}: the comparison does not notice the change"
        );
    }
}

/// A 1x1 convolution whose output channel `o` is input channel `order[o]`.
fn permutation(order: [usize; 4]) -> FlowLayer<'static> {
    let mut weight = [0f32; 16];
    for (output, input) in order.into_iter().enumerate() {
        weight[output * 4 + input] = 1.0;
    }
    FlowLayer::InvertibleConv1x1(InvertibleConv1x1 {
        weight: Tensor::from_f32(&[4, 4], &weight).expect("16 values"),
        log_abs_det: 0.0,
    })
}

/// The declared batch dimension is really free: the graph as exported (N symbolic) scores
/// 1 frame and 5 frames, each as the runtime does.
#[test]
fn symbolic_batch_runs_any_batch_size() {
    let model_file = committed_model("fmnist-realnvp.f32");
    let spec = decode(&model_file).expect("valid").model.input;
    let onnx = export(&model_file, &ExportOptions::default()).expect("exports");
    let plan = tract_plan(&onnx, &spec, None);
    let images = fashion_mnist_levels(&spec, 6);
    let runtime = runtime_scores(&model_file, &images);
    for frames in [0..1, 1..images.len()] {
        let scores = tract_scores(&plan, &spec, &images[frames.clone()]);
        assert_agrees(
            &format!("fmnist-realnvp.f32, symbolic N = {}", frames.len()),
            compare(&runtime[frames], &scores),
        );
    }
}

/// How far tract's detail scores are from the runtime's; asserts the tolerances: 1e-4 on
/// each bits/dim, and on the combined score 1e-4 over the smaller spread it divides by.
fn assert_detail_agrees(
    name: &str,
    model_file: &[u8],
    runtime: &[DetailScores],
    tract: &[DetailScores],
) {
    let detail = decode(model_file)
        .expect("valid")
        .model
        .detail
        .expect("a branch");
    let score_tolerance =
        MAX_DELTA_BITS_PER_DIM / f64::from(detail.frame.spread.min(detail.detail.spread));
    let (mut worst_bpd, mut worst_detail, mut worst_score) = (0f64, 0f64, 0f64);
    for (frame, (ours, theirs)) in runtime.iter().zip(tract).enumerate() {
        let deltas = [
            (ours.bits_per_dim - theirs.bits_per_dim).abs(),
            (ours.detail_bits_per_dim - theirs.detail_bits_per_dim).abs(),
            (ours.ood_score - theirs.ood_score).abs(),
        ];
        assert!(
            deltas[0] <= MAX_DELTA_BITS_PER_DIM
                && deltas[1] <= MAX_DELTA_BITS_PER_DIM
                && deltas[2] <= score_tolerance,
            "{name}, frame {frame}: runtime {ours:?}, tract {theirs:?}"
        );
        worst_bpd = worst_bpd.max(deltas[0]);
        worst_detail = worst_detail.max(deltas[1]);
        worst_score = worst_score.max(deltas[2]);
    }
    println!(
        "{name}: {} frames, max |delta| bits/dim {worst_bpd:.2e}, patches' bits/dim \
         {worst_detail:.2e}, combined score {worst_score:.2e}",
        runtime.len()
    );
}

/// shared's tiny detail fixture (every layer kind) on pseudo-random frames and on
/// checkerboards of two neighbouring levels, whose thumbnail means are exact half levels
/// (the rounding's ties). Frame sizes: whole multiples of the 4x4 input (a grouped
/// convolution makes the thumbnail), one with 8,000 pixels per thumbnail pixel, and one that
/// is not a whole multiple (banded matrix products).
#[test]
fn tiny_detail_model_on_whole_frames() {
    for size in [(24, 20), (400, 320), (25, 17)] {
        let model_file = tiny_detail_model_file(size);
        let pixels = (size.0 * size.1) as usize;
        let mut frames: Vec<Vec<u8>> = (0..12)
            .map(|seed| pseudo_random_bytes(seed, pixels))
            .collect();
        for low in [0u8, 77, 128, 254] {
            let board = (0..pixels)
                .map(|i| low + ((i % size.0 as usize + i / size.0 as usize) % 2) as u8)
                .collect();
            frames.push(board);
        }
        let onnx = export(&model_file, &ExportOptions::default()).expect("exports");
        assert_detail_agrees(
            &format!("tiny detail at {}x{}", size.0, size.1),
            &model_file,
            &runtime_detail_scores(&model_file, &frames, size),
            &tract_detail_scores(&onnx, &frames, size),
        );
    }
}

/// The committed detail gate on whole 768x576 frames: held-out frames of its video as they
/// are, and the same frames with sensor-like noise (uniform, +-48 levels) that the thumbnail
/// barely sees and the patches do. The graph's decision (ood_score above the threshold) is
/// the gate's on every frame.
#[test]
fn camera_vtest_detail_on_native_frames() {
    let model_file = committed_model("camera-vtest-detail");
    let model = decode(&model_file).expect("valid").model;
    let detail = model.detail.as_ref().expect("a detail branch");
    let size = (detail.frame_width, detail.frame_height);
    assert_eq!(size, (768, 576));
    let threshold = f64::from(model.threshold.as_ref().expect("calibrated").ood_score);
    let clean = native_video_frames("vtest.avi", 600, 794, 16, size);
    assert!(clean.len() >= 12, "{} frames", clean.len());
    let noisy: Vec<Vec<u8>> = clean
        .iter()
        .enumerate()
        .map(|(i, frame)| {
            let noise = pseudo_random_bytes(i as u64, frame.len());
            frame
                .iter()
                .zip(noise)
                .map(|(&p, n)| (i32::from(p) + i32::from(n) * 96 / 255 - 48).clamp(0, 255) as u8)
                .collect()
        })
        .collect();
    let frames: Vec<Vec<u8>> = clean.iter().chain(&noisy).cloned().collect();
    let onnx = export(&model_file, &ExportOptions::default()).expect("exports");
    let runtime = runtime_detail_scores(&model_file, &frames, size);
    let tract = tract_detail_scores(&onnx, &frames, size);
    assert_detail_agrees("camera-vtest-detail", &model_file, &runtime, &tract);
    let rejects = |scores: &[DetailScores]| -> Vec<bool> {
        scores.iter().map(|s| s.ood_score > threshold).collect()
    };
    assert_eq!(
        rejects(&runtime),
        rejects(&tract),
        "the same decision on every frame"
    );
    let rejected =
        |from: usize, to: usize| rejects(&runtime)[from..to].iter().filter(|&&r| r).count();
    let (clean_rejected, noisy_rejected) = (
        rejected(0, clean.len()),
        rejected(clean.len(), frames.len()),
    );
    println!(
        "camera-vtest-detail: the same decision on all {} frames: {clean_rejected} of {} clean \
         and {noisy_rejected} of {} noisy frames rejected",
        frames.len(),
        clean.len(),
        noisy.len()
    );
    // Both sides of the threshold are exercised: the noise is what the branch is for.
    assert!(clean_rejected < clean.len() / 4 && noisy_rejected == noisy.len());
}
