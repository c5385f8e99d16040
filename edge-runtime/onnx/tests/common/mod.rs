//! What the ONNX tests share: the committed models, real images at a model's input size,
//! the runtime's scores and tract's.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};

use flowgate_edge::io::idx::read_images;
use flowgate_edge::io::image::read_image;
use flowgate_edge::preprocess::frame_levels;
use flowgate_edge::{Frame, Gate, PixelFormat};
use flowgate_onnx::{ExportOptions, export};
use flowgate_shared::InputSpec;
use tract_onnx::prelude::*;

/// The tolerance on bits/dim, per image.
pub const MAX_DELTA_BITS_PER_DIM: f64 = 1e-4;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The data directory, as the trainer finds it (`FLOWGATE_DATA_DIR` or `<root>/data`).
pub fn data_dir() -> PathBuf {
    match std::env::var_os("FLOWGATE_DATA_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace().join("data"),
    }
}

/// A committed model file, `models/<name>.fgm`.
pub fn committed_model(name: &str) -> Vec<u8> {
    let path = workspace().join("models").join(format!("{name}.fgm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The first `count` Fashion-MNIST test images as 28x28 gray frames' bytes.
pub fn fashion_mnist(count: usize) -> Vec<Vec<u8>> {
    let dir = data_dir().join("fashion-mnist");
    let plain = dir.join("t10k-images-idx3-ubyte");
    let path = if plain.exists() {
        plain
    } else {
        dir.join("t10k-images-idx3-ubyte.gz")
    };
    let images = read_images(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/fetch-data.sh first)", path.display()));
    assert_eq!((images.rows, images.cols), (28, 28));
    assert!(
        images.count >= count,
        "{} holds {} images",
        path.display(),
        images.count
    );
    images.iter().take(count).map(<[u8]>::to_vec).collect()
}

/// Fashion-MNIST test images as levels at the model's input size (resized by the runtime's
/// own area averaging where the size differs).
pub fn fashion_mnist_levels(spec: &InputSpec, count: usize) -> Vec<Vec<f32>> {
    fashion_mnist(count)
        .iter()
        .map(|pixels| {
            let frame = Frame::packed(pixels, 28, 28, PixelFormat::Gray8).expect("28x28 gray");
            levels(&frame, spec)
        })
        .collect()
}

/// OpenCV's sample photographs (data/opencv), gray, as levels at the model's input size:
/// camera-like content for the camera model.
pub fn photo_levels(spec: &InputSpec, names: &[&str]) -> Vec<Vec<f32>> {
    names
        .iter()
        .map(|name| {
            let path = data_dir().join("opencv").join(name);
            let image = read_image(&path, 1)
                .unwrap_or_else(|e| panic!("{}: {e} (run scripts/fetch-data.sh)", path.display()));
            levels(&image.frame().expect("a frame"), spec)
        })
        .collect()
}

/// Every `step`-th frame of `first..=last` of a video under data/opencv, as the camera
/// model's frames were made (scripts/run.sh: 128x96 by area averaging, gray, by ffmpeg),
/// then at the model's input size by the runtime.
pub fn video_levels(
    spec: &InputSpec,
    name: &str,
    first: u32,
    last: u32,
    step: u32,
) -> Vec<Vec<f32>> {
    let (width, height) = (128u32, 96u32);
    let scale = format!(",scale={width}:{height}:flags=area");
    ffmpeg_gray_frames(name, first, last, step, &scale, (width, height))
        .iter()
        .map(|pixels| {
            let frame = Frame::packed(pixels, width, height, PixelFormat::Gray8).expect("gray");
            levels(&frame, spec)
        })
        .collect()
}

/// Every `step`-th frame of `first..=last` of a video under data/opencv, through ffmpeg's
/// filters `select` + `extra_filters` (empty, or starting with a comma) + `format=gray`, as
/// `size` gray frames' bytes.
fn ffmpeg_gray_frames(
    name: &str,
    first: u32,
    last: u32,
    step: u32,
    extra_filters: &str,
    (width, height): (u32, u32),
) -> Vec<Vec<u8>> {
    let path = data_dir().join("opencv").join(name);
    let filters = format!(
        "select='between(n\\,{first}\\,{last})*not(mod(n-{first}\\,{step}))'\
         {extra_filters},format=gray"
    );
    let output = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-i"])
        .arg(&path)
        .args(["-vf", &filters, "-fps_mode", "passthrough"])
        .args(["-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .unwrap_or_else(|e| panic!("ffmpeg: {e} (scripts/fetch-data.sh installs it)"));
    assert!(
        output.status.success(),
        "ffmpeg on {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let frame_len = (width * height) as usize;
    assert!(!output.stdout.is_empty() && output.stdout.len().is_multiple_of(frame_len));
    output
        .stdout
        .chunks_exact(frame_len)
        .map(<[u8]>::to_vec)
        .collect()
}

/// The frame's levels at the model's input size, as the gate computes them.
pub fn levels(frame: &Frame<'_>, spec: &InputSpec) -> Vec<f32> {
    let mut levels = vec![0f32; (spec.channels * spec.height * spec.width) as usize];
    frame_levels(frame, spec, &mut levels).expect("the runtime resizes");
    levels
}

/// The runtime's (log-likelihood, bits/dim) for each image's levels.
pub fn runtime_scores(model_file: &[u8], images: &[Vec<f32>]) -> Vec<(f64, f64)> {
    let gate = Gate::new(model_file).expect("the runtime loads the model");
    let mut scratch = vec![0f32; gate.scratch_len()];
    images
        .iter()
        .map(|levels| {
            scratch[..levels.len()].copy_from_slice(levels);
            let verdict = gate
                .score_levels_in_scratch(&mut scratch)
                .expect("the runtime scores");
            (verdict.log_likelihood, verdict.bits_per_dim)
        })
        .collect()
}

/// An exported graph loaded in tract, its batch fixed at `batch` (or left symbolic).
pub fn tract_plan(onnx: &[u8], spec: &InputSpec, batch: Option<usize>) -> Arc<TypedRunnableModel> {
    let shape = batch.map(|batch| {
        [
            batch,
            spec.channels as usize,
            spec.height as usize,
            spec.width as usize,
        ]
    });
    tract_plan_for_input(onnx, shape)
}

/// An exported graph loaded in tract, its input's shape fixed at `shape` (or left symbolic).
pub fn tract_plan_for_input(onnx: &[u8], shape: Option<[usize; 4]>) -> Arc<TypedRunnableModel> {
    let mut model = tract_onnx::onnx()
        .model_for_read(&mut &onnx[..])
        .expect("tract reads the exported graph");
    if let Some(shape) = shape {
        model = model
            .with_input_fact(0, f32::fact(shape).into())
            .expect("the input takes a fixed batch");
    }
    model
        .into_optimized()
        .expect("tract optimises the graph")
        .into_runnable()
        .expect("tract plans the graph")
}

/// tract's (log-likelihood, bits/dim) for a batch of images' levels, run as one input.
pub fn tract_scores(
    plan: &Arc<TypedRunnableModel>,
    spec: &InputSpec,
    images: &[Vec<f32>],
) -> Vec<(f32, f32)> {
    let shape = [
        images.len(),
        spec.channels as usize,
        spec.height as usize,
        spec.width as usize,
    ];
    let flat: Vec<f32> = images.concat();
    let input = Tensor::from_shape(&shape, &flat).expect("levels fit the shape");
    let outputs = plan
        .run(tvec!(input.into_tvalue()))
        .expect("tract runs the graph");
    assert_eq!(outputs.len(), 2, "log_likelihood and bits_per_dim");
    let column = |index: usize| -> Vec<f32> {
        let view = outputs[index]
            .to_plain_array_view::<f32>()
            .expect("f32 outputs");
        assert_eq!(view.shape(), &[images.len()], "one value per frame");
        view.iter().copied().collect()
    };
    column(0).into_iter().zip(column(1)).collect()
}

/// How far tract's scores of the exported graph are from the runtime's.
#[derive(Debug, Clone, Copy)]
pub struct Agreement {
    /// Largest |delta bits/dim| over the images.
    pub max_bits_per_dim: f64,
    /// Largest |delta log-likelihood| (nats) over the images.
    pub max_log_likelihood: f64,
    /// The image where bits/dim differ most.
    pub worst_image: usize,
    /// Mean runtime bits/dim, to show the scores are in a realistic range.
    pub mean_bits_per_dim: f64,
}

/// Exports `model_file` with `options`, runs it in tract on `images` as one batch and
/// compares each image with the runtime.
pub fn agreement(model_file: &[u8], options: &ExportOptions, images: &[Vec<f32>]) -> Agreement {
    let spec = flowgate_shared::decode(model_file)
        .expect("a valid model")
        .model
        .input;
    let onnx = export(model_file, options).expect("the model exports");
    let plan = tract_plan(&onnx, &spec, Some(images.len()));
    compare(
        &runtime_scores(model_file, images),
        &tract_scores(&plan, &spec, images),
    )
}

/// Per-image comparison of runtime and tract scores.
pub fn compare(runtime: &[(f64, f64)], tract: &[(f32, f32)]) -> Agreement {
    assert_eq!(runtime.len(), tract.len());
    let mut agreement = Agreement {
        max_bits_per_dim: 0.0,
        max_log_likelihood: 0.0,
        worst_image: 0,
        mean_bits_per_dim: runtime.iter().map(|s| s.1).sum::<f64>() / runtime.len() as f64,
    };
    for (image, (&(ll, bpd), &(tract_ll, tract_bpd))) in runtime.iter().zip(tract).enumerate() {
        assert!(
            ll.is_finite() && bpd.is_finite(),
            "runtime score of image {image}"
        );
        // NaN compares false with everything: make it the largest delta instead.
        let delta_bpd = (bpd - f64::from(tract_bpd)).abs();
        let delta_bpd = if delta_bpd.is_nan() {
            f64::INFINITY
        } else {
            delta_bpd
        };
        let delta_ll = (ll - f64::from(tract_ll)).abs();
        let delta_ll = if delta_ll.is_nan() {
            f64::INFINITY
        } else {
            delta_ll
        };
        if delta_bpd > agreement.max_bits_per_dim {
            agreement.max_bits_per_dim = delta_bpd;
            agreement.worst_image = image;
        }
        agreement.max_log_likelihood = agreement.max_log_likelihood.max(delta_ll);
    }
    agreement
}

/// Every `step`-th frame of `first..=last` of a video under data/opencv at its own `size`,
/// as gray bytes (ffmpeg's full-range gray): what a detail branch reads.
pub fn native_video_frames(
    name: &str,
    first: u32,
    last: u32,
    step: u32,
    size: (u32, u32),
) -> Vec<Vec<u8>> {
    ffmpeg_gray_frames(name, first, last, step, "", size)
}

/// What the gate makes of a whole frame with a detail branch.
#[derive(Debug, Clone, Copy)]
pub struct DetailScores {
    pub bits_per_dim: f64,
    pub detail_bits_per_dim: f64,
    pub ood_score: f64,
}

/// The runtime gate's scores of whole gray frames of `size` (a model with a detail branch).
pub fn runtime_detail_scores(
    model_file: &[u8],
    frames: &[Vec<u8>],
    (width, height): (u32, u32),
) -> Vec<DetailScores> {
    let gate = Gate::new(model_file).expect("the runtime loads the model");
    let mut scratch = vec![0f32; gate.scratch_len()];
    frames
        .iter()
        .map(|pixels| {
            let frame = Frame::packed(pixels, width, height, PixelFormat::Gray8).expect("gray");
            let verdict = gate.score(&frame, &mut scratch).expect("the gate scores");
            DetailScores {
                bits_per_dim: verdict.bits_per_dim,
                detail_bits_per_dim: verdict.detail_bits_per_dim.expect("a detail branch"),
                ood_score: verdict.ood_score,
            }
        })
        .collect()
}

/// tract's scores of the exported graph of a model with a detail branch on whole gray
/// frames of `size`, run as one batch.
pub fn tract_detail_scores(
    onnx: &[u8],
    frames: &[Vec<u8>],
    (width, height): (u32, u32),
) -> Vec<DetailScores> {
    let shape = [frames.len(), 1, height as usize, width as usize];
    let plan = tract_plan_for_input(onnx, Some(shape));
    let flat: Vec<f32> = frames.iter().flatten().map(|&p| f32::from(p)).collect();
    let input = Tensor::from_shape(&shape, &flat).expect("levels fit the shape");
    let outputs = plan
        .run(tvec!(input.into_tvalue()))
        .expect("tract runs the graph");
    assert_eq!(
        outputs.len(),
        4,
        "log_likelihood, bits_per_dim, detail, ood_score"
    );
    let column = |index: usize| -> Vec<f64> {
        let view = outputs[index]
            .to_plain_array_view::<f32>()
            .expect("f32 outputs");
        assert_eq!(view.shape(), &[frames.len()], "one value per frame");
        view.iter().map(|&v| f64::from(v)).collect()
    };
    let (bits, detail, score) = (column(1), column(2), column(3));
    (0..frames.len())
        .map(|i| DetailScores {
            bits_per_dim: bits[i],
            detail_bits_per_dim: detail[i],
            ood_score: score[i],
        })
        .collect()
}

/// shared's tiny detail fixture with its branch reading `width x height` frames.
pub fn tiny_detail_model_file((width, height): (u32, u32)) -> Vec<u8> {
    let mut model = flowgate_shared::example::tiny_detail_model();
    let detail = model.detail.as_mut().expect("the fixture has a branch");
    (detail.frame_width, detail.frame_height) = (width, height);
    flowgate_shared::encode(&model).expect("the fixture encodes")
}

/// Deterministic pseudo-random bytes (a 64-bit LCG's high bits): test frames without a
/// random-number crate.
pub fn pseudo_random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 56) as u8
        })
        .collect()
}
