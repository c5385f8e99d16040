//! Distillation of a big "teacher" flow's OOD score into a small "student" flow.
//!
//! A big flow (or an embedding flow) can rank OOD frames better than one small enough for the
//! edge board. The student keeps its own likelihood objective and in addition learns to make
//! its standardised OOD score follow the teacher's, on clean training images and on perturbed
//! copies of them (noise, blur, mutations, shifts, flips, inversion, occlusion, ...): the
//! perturbations show it what kinds of frames the teacher calls anomalous, and how strongly.
//!
//! Scores are compared as z-scores against clean data, never as raw bits/dim: the teacher may
//! have another input size or score an embedding, so only "how many standard deviations above
//! normal" transfers between the two.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use burn::module::{Flag, ModuleMapper, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use image::{GrayImage, imageops};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Normal};
use serde::Serialize;

use crate::config::TrainConfig;
use crate::corrupt::{self, Corruption};
use crate::flows::FlowModel;
use crate::training::{self, Compute, ImageSet, files};

/// The record of a distillation run, beside the files `flowgate train` writes.
pub const DISTIL_RECORD: &str = "distil.toml";

const LN_2: f64 = std::f64::consts::LN_2;

/// A trained run folder used as the teacher.
#[derive(Debug)]
pub struct Teacher {
    /// The run folder.
    pub run: PathBuf,
    /// Its config.
    pub config: TrainConfig,
    /// Its final weights, for evaluation.
    pub model: FlowModel,
}

impl Teacher {
    /// Loads `run/config.toml` and `run/model.bpk`, as `flowgate train` writes them.
    pub fn load(run: &Path) -> Result<Self> {
        let config_path = run.join(files::CONFIG);
        let config = TrainConfig::load(&config_path).with_context(|| {
            format!(
                "teacher {} is not a run folder written by `flowgate train`",
                run.display()
            )
        })?;
        let model = training::load_for_eval(&config, &run.join(files::MODEL))
            .with_context(|| format!("teacher {}", run.display()))?;
        Ok(Teacher {
            run: run.to_path_buf(),
            config,
            model,
        })
    }

    /// The images it takes, `[channels, height, width]`.
    pub fn shape(&self) -> [usize; 3] {
        let model = &self.config.model;
        [model.channels, model.height, model.width]
    }
}

/// How strongly and how the student follows the teacher.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DistilOptions {
    /// LAMBDA: the distillation term's weight against the NLL in bits/dim; 0 trains the
    /// student exactly as `flowgate train` would.
    pub weight: f64,
    /// The teacher's z-scores are clamped to this range. Beyond the top the teacher only says
    /// "far out", so the student is not penalised for scoring higher still.
    pub z_range: (f64, f64),
    /// The squared error turns linear beyond this residual (Huber), so that early on, or on
    /// the odd wild image, one score does not dominate the batch.
    pub huber: f64,
    /// Clean training images the teacher's mean and standard deviation are measured on.
    pub calibration_images: usize,
    /// Steps of plain training before the distillation phase [default: half the steps]. In
    /// that phase the batch-norms' statistics are frozen, whatever LAMBDA, so that LAMBDA = 0
    /// stays the baseline trained identically otherwise; with `warmup >= steps` the run is
    /// `training::train`'s.
    pub warmup: Option<usize>,
    /// The ablation: ignore the teacher's scores and target z 0 on clean images and the
    /// clamp's top on perturbed ones (so perturbed images only have to score at least that
    /// far out): what showing the student perturbed images does without a teacher.
    pub fixed_targets: bool,
}

impl Default for DistilOptions {
    fn default() -> Self {
        DistilOptions {
            weight: 1.0,
            z_range: (-5.0, 20.0),
            huber: 5.0,
            calibration_images: 2048,
            warmup: None,
            fixed_targets: false,
        }
    }
}

/// The teacher's OOD score on clean training images: `-ln p` in nats, mean and standard
/// deviation, so that `z_t = (-ln p - mu) / sigma`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TeacherStats {
    /// Mean negative log-likelihood (nats).
    pub mu: f64,
    /// Its standard deviation (nats).
    pub sigma: f64,
    /// Images measured.
    pub images: usize,
}

impl TeacherStats {
    /// The standardised score of a log-likelihood.
    pub fn z(&self, log_likelihood: f64) -> f64 {
        (-log_likelihood - self.mu) / self.sigma
    }
}

/// Measures [`TeacherStats`] on up to `count` images spread evenly over `images`.
pub fn teacher_stats(teacher: &Teacher, images: &ImageSet, count: usize) -> Result<TeacherStats> {
    ensure!(
        images.count > 1,
        "too few training images to standardise the teacher"
    );
    let count = count.clamp(2, images.count);
    let picked: Vec<usize> = (0..count).map(|i| i * images.count / count).collect();
    let sample = subset(images, &picked);
    let lls = training::log_likelihoods(&teacher.model, &sample, 256)?;
    let mean = lls.iter().sum::<f64>() / lls.len() as f64;
    let variance = lls.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / lls.len() as f64;
    let sigma = variance.sqrt();
    ensure!(
        mean.is_finite() && sigma.is_finite() && sigma > 0.0,
        "teacher {}: its log-likelihoods of clean training images have mean {mean} and \
         standard deviation {sigma}; cannot standardise them",
        teacher.run.display()
    );
    Ok(TeacherStats {
        mu: -mean,
        sigma,
        images: count,
    })
}

fn subset(images: &ImageSet, indices: &[usize]) -> ImageSet {
    let mut pixels = Vec::with_capacity(indices.len() * images.shape.iter().product::<usize>());
    for &index in indices {
        pixels.extend_from_slice(images.image(index));
    }
    ImageSet {
        pixels,
        count: indices.len(),
        shape: images.shape,
    }
}

/// The perturbations the student sees, each standing for a kind of OOD frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Perturbation {
    /// Additive Gaussian noise, sigma 5 to 50 levels.
    Noise,
    /// Gaussian blur, sigma 0.5 to 2.5 pixels.
    Blur,
    /// 2% to 30% of the levels replaced by uniform random ones.
    Mutation,
    /// The camera moved (cropped and zoomed back).
    Shift,
    /// The camera knocked (rotated 10-25 degrees).
    Rotate,
    /// Mirrored left-right or top-bottom.
    Flip,
    /// Rotated by 180 degrees.
    UpsideDown,
    /// `255 - level`.
    Invert,
    /// One level everywhere (a covered lens, glare, a dead sensor).
    Constant,
    /// A flat patch near the lens.
    Occlusion,
    /// Neighbouring tiles swapped: local statistics kept, structure broken.
    PatchShuffle,
    /// JPEG at quality 3.
    Jpeg,
}

impl Perturbation {
    /// Every kind; each perturbed image draws one uniformly.
    pub const ALL: [Self; 12] = [
        Self::Noise,
        Self::Blur,
        Self::Mutation,
        Self::Shift,
        Self::Rotate,
        Self::Flip,
        Self::UpsideDown,
        Self::Invert,
        Self::Constant,
        Self::Occlusion,
        Self::PatchShuffle,
        Self::Jpeg,
    ];
}

/// A perturbed copy of one image (`shape` = `[channels, height, width]`, channel-major).
/// Geometric kinds move every channel alike.
pub fn perturb(
    image: &[u8],
    shape: [usize; 3],
    kind: Perturbation,
    rng: &mut StdRng,
) -> Result<Vec<u8>> {
    let [channels, height, width] = shape;
    let plane = height * width;
    ensure!(
        image.len() == channels * plane,
        "an image of {} levels is not {channels}x{height}x{width}",
        image.len()
    );
    ensure!(
        height >= 8 && width >= 8,
        "a {width}x{height} image is too small to perturb (at least 8x8)"
    );
    let mut out = image.to_vec();
    match kind {
        Perturbation::Noise => {
            let sigma = rng.random_range(5.0..50.0f32);
            let normal = Normal::new(0.0f32, sigma).context("noise distribution")?;
            for level in &mut out {
                *level = (f32::from(*level) + normal.sample(rng))
                    .round()
                    .clamp(0.0, 255.0) as u8;
            }
        }
        Perturbation::Mutation => {
            let rate = rng.random_range(0.02..0.3f64);
            for level in &mut out {
                if rng.random_bool(rate) {
                    *level = rng.random::<u8>();
                }
            }
        }
        Perturbation::Invert => out.iter_mut().for_each(|level| *level = 255 - *level),
        Perturbation::Constant => {
            let level = match rng.random_range(0..3u8) {
                0 => 0,
                1 => 255,
                _ => rng.random::<u8>(),
            };
            out.fill(level);
        }
        Perturbation::Flip => {
            let horizontal = rng.random_bool(0.5);
            for (c, y, x) in pixels(shape) {
                let (sy, sx) = if horizontal {
                    (y, width - 1 - x)
                } else {
                    (height - 1 - y, x)
                };
                out[c * plane + y * width + x] = image[c * plane + sy * width + sx];
            }
        }
        Perturbation::PatchShuffle => {
            // Tiles of about a seventh of the side: a 28x28 image has 7x7 tiles of 4 pixels.
            let tile = (height.min(width) / 7).max(2);
            let (rows, cols) = (height / tile, width / tile);
            let mut order: Vec<usize> = (0..rows * cols).collect();
            for cell in 0..rows * cols {
                let (row, col) = (cell / cols, cell % cols);
                if rng.random_bool(0.5) {
                    let other = if rng.random_bool(0.5) && col + 1 < cols {
                        cell + 1
                    } else if row + 1 < rows {
                        cell + cols
                    } else {
                        continue;
                    };
                    order.swap(cell, other);
                }
            }
            for (cell, &source) in order.iter().enumerate() {
                let (ty, tx) = (cell / cols * tile, cell % cols * tile);
                let (sy, sx) = (source / cols * tile, source % cols * tile);
                for c in 0..channels {
                    for dy in 0..tile {
                        let to = c * plane + (ty + dy) * width + tx;
                        let from = c * plane + (sy + dy) * width + sx;
                        out[to..to + tile].copy_from_slice(&image[from..from + tile]);
                    }
                }
            }
        }
        Perturbation::Blur => {
            let sigma = rng.random_range(0.5..2.5f32);
            per_channel(image, shape, &mut out, |gray| {
                Ok(imageops::blur(gray, sigma))
            })?;
        }
        Perturbation::Shift => per_channel_corrupt(image, shape, &mut out, Corruption::Shift, rng)?,
        Perturbation::Rotate => {
            per_channel_corrupt(image, shape, &mut out, Corruption::Rotate, rng)?
        }
        Perturbation::UpsideDown => {
            per_channel_corrupt(image, shape, &mut out, Corruption::UpsideDown, rng)?
        }
        Perturbation::Occlusion => {
            per_channel_corrupt(image, shape, &mut out, Corruption::Occlusion, rng)?
        }
        Perturbation::Jpeg => per_channel_corrupt(image, shape, &mut out, Corruption::Jpeg, rng)?,
    }
    Ok(out)
}

fn pixels(shape: [usize; 3]) -> impl Iterator<Item = (usize, usize, usize)> {
    let [channels, height, width] = shape;
    (0..channels)
        .flat_map(move |c| (0..height).flat_map(move |y| (0..width).map(move |x| (c, y, x))))
}

/// Applies `f` to each channel as a gray image.
fn per_channel(
    image: &[u8],
    shape: [usize; 3],
    out: &mut [u8],
    mut f: impl FnMut(&GrayImage) -> Result<GrayImage>,
) -> Result<()> {
    let [channels, height, width] = shape;
    let plane = height * width;
    for c in 0..channels {
        let gray = GrayImage::from_raw(
            width as u32,
            height as u32,
            image[c * plane..(c + 1) * plane].to_vec(),
        )
        .context("a channel as a gray image")?;
        let changed = f(&gray)?;
        out[c * plane..(c + 1) * plane].copy_from_slice(changed.as_raw());
    }
    Ok(())
}

/// `corrupt`'s frame corruptions, every channel from the same random draws (so an RGB image
/// is shifted or occluded once, not once per channel).
fn per_channel_corrupt(
    image: &[u8],
    shape: [usize; 3],
    out: &mut [u8],
    kind: Corruption,
    rng: &mut StdRng,
) -> Result<()> {
    let seed = rng.random::<u64>();
    per_channel(image, shape, out, |gray| {
        corrupt::corrupt(gray, kind, &mut StdRng::seed_from_u64(seed))
    })
}

/// The clean images at `indices` followed by one perturbed copy of each. Seeded by `seed`.
pub fn clean_and_perturbed(images: &ImageSet, indices: &[usize], seed: u64) -> Result<ImageSet> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut set = subset(images, indices);
    for &index in indices {
        let kind = Perturbation::ALL[rng.random_range(0..Perturbation::ALL.len())];
        let perturbed = perturb(images.image(index), images.shape, kind, &mut rng)
            .with_context(|| format!("perturbing training image {index} ({kind:?})"))?;
        set.pixels.extend_from_slice(&perturbed);
    }
    set.count = 2 * indices.len();
    Ok(set)
}

/// Turns off the batch-norms' training behaviour and leaves everything else, gradients
/// included, as it is.
struct RunningStatistics;

impl ModuleMapper for RunningStatistics {
    fn map_flag(&mut self, flag: Param<Flag>) -> Param<Flag> {
        flag.with_value(false)
    }
}

/// The model as it scores at evaluation (batch-norms on their running statistics, which this
/// does not update) but still differentiable. The distillation term must see the scores the
/// gate will compute: in training mode a batch of perturbed images would be normalised by its
/// own statistics (and pollute the running ones), which no deployed gate ever does.
pub fn running_statistics_view(model: &FlowModel) -> FlowModel {
    model.clone().map(&mut RunningStatistics)
}

/// The distillation term of a clean-then-perturbed batch (`levels`, `2n` images), with
/// `teacher_z` the teacher's z-scores of the same images: the Huber-smoothed squared error
/// between the student's z-score and the clamped teacher z-score, averaged over all `2n`.
/// The student's z-score is its OOD score standardised by the mean and standard deviation of
/// the clean half's, gradients through both (the same for bits/dim as for nats: the scale
/// cancels).
pub fn distillation_term(
    student: &FlowModel,
    levels: Tensor<4>,
    teacher_z: &[f64],
    options: &DistilOptions,
) -> Result<Tensor<1>> {
    let batch = levels.dims()[0];
    ensure!(
        batch == teacher_z.len() && batch >= 4 && batch.is_multiple_of(2),
        "a distillation batch needs as many teacher scores as images, clean then perturbed"
    );
    let device = levels.device();
    let score = student.log_likelihood(levels, false).neg();
    let values = crate::export::values(score.clone())?;
    if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
        bail!("the student scored an image {bad} nats: lower train.lr or LAMBDA");
    }
    // The standardisation stays in the graph. Detached, the gradient would ignore that moving
    // a perturbed image's score also moves the clean scores' spread (which divides every
    // z-score), and training chases its own tail: the term grows while LAMBDA pulls on it.
    let half = batch / 2;
    let clean = score.clone().narrow(0, 0, half);
    let mean = clean.clone().mean();
    let std = (clean - mean.clone().expand([half]))
        .square()
        .mean()
        .add_scalar(1e-6)
        .sqrt();
    let z = (score - mean.expand([batch])) / std.expand([batch]);
    let (low, high) = options.z_range;
    let column = |f: &dyn Fn(f64) -> f64| -> Tensor<1> {
        let data: Vec<f32> = teacher_z.iter().map(|&t| f(t) as f32).collect();
        Tensor::from_data(TensorData::new(data, [batch]), &device)
    };
    let target = column(&|t| t.clamp(low, high));
    let above = column(&|t| f64::from(u8::from(t >= high)));
    let below = column(&|t| f64::from(u8::from(t <= low)));
    let inside = column(&|t| f64::from(u8::from(t > low && t < high)));
    let residual = z - target;
    // At a clamped end the teacher only bounds the score: one-sided there.
    let residual = residual.clone().clamp_max(0.0) * above
        + residual.clone().clamp_min(0.0) * below
        + residual * inside;
    let size = residual.abs();
    let quadratic = size.clone().clamp_max(options.huber);
    let huber = quadratic.clone().square() + (size - quadratic).mul_scalar(2.0 * options.huber);
    Ok(huber.mean())
}

/// Held-out images compared with the teacher for early stopping: up to
/// [`HELD_OUT_PAIRS`] held-out images and a perturbed copy of each (seeded), with the
/// teacher's z-scores of all of them.
fn held_out_pair(
    held_out: &ImageSet,
    teacher: &FlowModel,
    stats: &TeacherStats,
    device: &Device,
    seed: u64,
    options: &DistilOptions,
) -> Result<(ImageSet, Vec<f64>)> {
    let indices: Vec<usize> = (0..held_out.count.min(HELD_OUT_PAIRS)).collect();
    let pair = clean_and_perturbed(held_out, &indices, seed ^ 0x4e1d_0a7e)?;
    let all: Vec<usize> = (0..pair.count).collect();
    let lls = crate::export::values(teacher.log_likelihood(pair.batch(&all, device), false))?;
    Ok((pair, targets(&lls, stats, options)))
}

/// The z-score targets of a clean-then-perturbed batch whose teacher log-likelihoods are
/// `lls`: the teacher's z-scores, or with [`DistilOptions::fixed_targets`] 0 for the clean
/// half and the clamp's top for the perturbed half.
fn targets(lls: &[f32], stats: &TeacherStats, options: &DistilOptions) -> Vec<f64> {
    if options.fixed_targets {
        let half = lls.len() / 2;
        (0..lls.len())
            .map(|i| if i < half { 0.0 } else { options.z_range.1 })
            .collect()
    } else {
        lls.iter().map(|&ll| stats.z(f64::from(ll))).collect()
    }
}

/// Most held-out images early stopping compares with the teacher.
const HELD_OUT_PAIRS: usize = 512;

/// Bits/dim and distillation term of one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepRecord {
    /// The student's training NLL on the clean batch (bits/dim, dequantised).
    pub bits_per_dim: f64,
    /// The distillation term (computed, and reported, also when LAMBDA = 0).
    pub distil: f64,
}

/// Outcome of a distillation run.
#[derive(Debug, Clone)]
pub struct DistilReport {
    /// Steps run.
    pub steps_run: usize,
    /// Mean training NLL over the last up to 100 steps (bits/dim).
    pub final_bits_per_dim: f64,
    /// Mean distillation term over the last up to 100 steps.
    pub final_distil: f64,
    /// Clean training images per second.
    pub images_per_second: f64,
    /// With `train.validate_every`: the step whose weights were kept and their held-out bits/dim
    /// (plus LAMBDA times the held-out distillation term when LAMBDA > 0).
    pub best: Option<(usize, f64)>,
    /// The teacher's standardisation.
    pub teacher: TeacherStats,
    /// Every step's numbers.
    pub history: Vec<StepRecord>,
    /// The final weights.
    pub model_path: PathBuf,
}

#[derive(Debug, Serialize)]
struct Record<'a> {
    teacher: String,
    teacher_name: &'a str,
    student_name: &'a str,
    weight: f64,
    mu_t: f64,
    sigma_t: f64,
    calibration_images: usize,
    z_min: f64,
    z_max: f64,
    huber: f64,
    steps: usize,
    warmup: usize,
    fixed_targets: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    final_bits_per_dim: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    final_distil: Option<f64>,
}

fn write_record(out_dir: &Path, record: &Record<'_>) -> Result<()> {
    let path = out_dir.join(DISTIL_RECORD);
    let text = toml::to_string_pretty(record).context("the distillation record as TOML")?;
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
}

fn mean_of_last(history: &[StepRecord], f: impl Fn(&StepRecord) -> f64) -> f64 {
    let last = &history[history.len().saturating_sub(100)..];
    last.iter().map(f).sum::<f64>() / last.len().max(1) as f64
}

/// Trains the student `config` into `out_dir` with `teacher`'s scores as a second target.
/// Everything but the distillation term (data, batches, seeds, optimiser, clipping, early
/// stopping, checkpoints, files) is `training::train`'s, so LAMBDA = 0 gives its model.
pub fn distil(
    config: &TrainConfig,
    teacher: &Teacher,
    options: &DistilOptions,
    data_dir: &Path,
    out_dir: &Path,
    progress: bool,
    compute: Compute,
) -> Result<(DistilReport, FlowModel)> {
    ensure!(
        options.weight.is_finite() && options.weight >= 0.0,
        "LAMBDA (--weight) must be a finite number >= 0, got {}",
        options.weight
    );
    let shape = [
        config.model.channels,
        config.model.height,
        config.model.width,
    ];
    if teacher.shape() != shape {
        bail!(
            "teacher {} takes {:?} images (channels, height, width), the student {} takes \
             {shape:?}; distillation needs the same input",
            teacher.run.display(),
            teacher.shape(),
            config.name
        );
    }
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let config_path = out_dir.join(files::CONFIG);
    std::fs::write(&config_path, config.to_toml())
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    let (train_set, held_out) = training::training_data(config, data_dir)?;
    let inner_device = training::device(compute)?;
    let device = inner_device.clone().autodiff();
    let teacher_model = teacher.model.clone().to_device(&inner_device);
    let stats = teacher_stats(teacher, &train_set, options.calibration_images)?;
    let mut record = Record {
        teacher: teacher.run.display().to_string(),
        teacher_name: &teacher.config.name,
        student_name: &config.name,
        weight: options.weight,
        mu_t: stats.mu,
        sigma_t: stats.sigma,
        calibration_images: stats.images,
        z_min: options.z_range.0,
        z_max: options.z_range.1,
        huber: options.huber,
        steps: config.train.steps,
        warmup: options
            .warmup
            .unwrap_or(config.train.steps / 2)
            .min(config.train.steps),
        fixed_targets: options.fixed_targets,
        final_bits_per_dim: None,
        final_distil: None,
    };
    write_record(out_dir, &record)?;

    let mut model = training::seeded_model(config, &device)?;
    let mut optim = training::optimizer(config);
    // A student on embeddings first pretrains its extractor, as in `training::train`.
    model = crate::pretrain::pretrain_extractor(
        model,
        config,
        data_dir,
        (&train_set, &held_out),
        &device,
        progress,
    )?;
    model = crate::pretrain::freeze_extractor(model);
    let steps = config.train.steps;
    let warmup = options.warmup.unwrap_or(steps / 2).min(steps);
    let dims = config.model.density_dims() as f64;
    let bar = training::step_bar(
        steps,
        progress,
        &format!("{} <- {}", config.name, teacher.config.name),
    );
    let started = Instant::now();
    let best_file = out_dir.join(files::BEST);
    let checkpoint_step = out_dir.join(files::CHECKPOINT_STEP);
    let mut best: Option<(usize, f64)> = None;
    let mut history = Vec::with_capacity(steps);
    let mut validation_note = String::new();
    let held_out_pair = match config.train.validate_every {
        Some(_) if options.weight > 0.0 => Some(held_out_pair(
            &held_out,
            &teacher_model,
            &stats,
            &inner_device,
            config.train.seed,
            options,
        )?),
        _ => None,
    };
    for step in 0..steps {
        // As `training::train`, draw for draw: the batch, then the dequantisation noise.
        let indices =
            training::batch_indices(config.train.seed, train_set.count, config.train.batch, step);
        let levels = match config.data.mutation_rate {
            Some(rate) => train_set.mutated_batch(
                &indices,
                &device,
                rate,
                config.train.seed ^ (step as u64).wrapping_mul(0xd1b5_4a32_d192_ed03),
            ),
            None => train_set.batch(&indices, &device),
        };
        device.seed(config.train.seed.wrapping_add(1 + step as u64));
        let distilling = step >= warmup;
        // Frozen statistics while distilling: the term's gradient goes through the running
        // statistics the gate scores with, and if training-mode passes kept moving them, the
        // student would chase them (pre-norm activations drift, the term grows).
        let log_likelihood = if distilling {
            running_statistics_view(&model).log_likelihood(levels, true)
        } else {
            model.log_likelihood(levels, true)
        };
        let nll = log_likelihood.mean().neg();
        let nll_value = f64::from(nll.clone().into_scalar::<f32>());
        if !nll_value.is_finite() {
            bail!(
                "the loss became {nll_value} at step {step}: lower train.lr or set train.grad_clip"
            );
        }

        // The perturbations have their own seed stream and the distillation forward passes
        // use bin centres, so the device RNG, and with LAMBDA = 0 the whole run, is train's.
        let pair = clean_and_perturbed(
            &train_set,
            &indices,
            config.train.seed
                ^ 0x5eed_d157_1a7e
                ^ (step as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        )?;
        let all: Vec<usize> = (0..pair.count).collect();
        let teacher_lls = crate::export::values(
            teacher_model.log_likelihood(pair.batch(&all, &inner_device), false),
        )?;
        let teacher_z = targets(&teacher_lls, &stats, options);
        let loss = if distilling && options.weight > 0.0 {
            let term = distillation_term(
                &running_statistics_view(&model),
                pair.batch(&all, &device),
                &teacher_z,
                options,
            )?;
            let distil_value = f64::from(term.clone().into_scalar::<f32>());
            history.push(StepRecord {
                bits_per_dim: nll_value / (dims * LN_2),
                distil: distil_value,
            });
            // train's loss is in nats; scaling the distillation term by dims * ln 2 makes the
            // sum (dims * ln 2) * (NLL bits/dim + LAMBDA * term), so LAMBDA weighs it against
            // bits/dim while train.grad_clip keeps its meaning.
            nll + term.mul_scalar(options.weight * dims * LN_2)
        } else {
            let term = distillation_term(
                &model.valid(),
                pair.batch(&all, &inner_device),
                &teacher_z,
                options,
            )?;
            history.push(StepRecord {
                bits_per_dim: nll_value / (dims * LN_2),
                distil: f64::from(term.into_scalar::<f32>()),
            });
            nll
        };
        let mut grads = GradientsParams::from_grads(loss.backward(), &model);
        if let Some(max_norm) = config.train.grad_clip {
            training::clip_global_norm(&model, &mut grads, max_norm);
        }
        model = optim.step(config.train.lr, model, grads);
        let latest = history[history.len() - 1];
        let done = step + 1;
        let rate = (done * config.train.batch) as f64 / started.elapsed().as_secs_f64();
        bar.set_position(step as u64 + 1);
        if let Some(every) = config.train.validate_every
            && ((step + 1) % every == 0 || step + 1 == steps)
        {
            let lls = training::log_likelihoods_on(&model.valid(), &held_out, 256, &inner_device)?;
            let mut bpd = -lls.iter().sum::<f64>() / (lls.len().max(1) as f64 * dims * LN_2);
            // Early stopping judges the objective being trained: on held-out bits/dim alone it
            // would keep the warm-up's undistilled weights, whose likelihood is best.
            if let Some((pair, teacher_z)) = &held_out_pair {
                let all: Vec<usize> = (0..pair.count).collect();
                let term = distillation_term(
                    &model.valid(),
                    pair.batch(&all, &inner_device),
                    teacher_z,
                    options,
                )?;
                bpd += options.weight * f64::from(term.into_scalar::<f32>());
            }
            if best.is_none_or(|(_, best_bpd)| bpd < best_bpd) {
                training::save_record(
                    &model,
                    &out_dir.join(files::BEST_MODEL),
                    "the best weights",
                )?;
                std::fs::write(&best_file, format!("{} {bpd}\n", step + 1))
                    .with_context(|| format!("cannot write {}", best_file.display()))?;
                best = Some((step + 1, bpd));
            }
            if let Some((best_step, best_bpd)) = &best {
                validation_note =
                    format!("  held-out {bpd:.3} bpd (best {best_bpd:.3} at {best_step})");
            }
        }
        bar.set_message(format!(
            "nll {:.3} bpd  distil {:.3}  {rate:.0} img/s{validation_note}",
            latest.bits_per_dim, latest.distil
        ));
        if (step + 1) % config.train.checkpoint_every == 0 || step + 1 == steps {
            training::save_record(
                &model,
                &out_dir.join(files::CHECKPOINT_MODEL),
                "the checkpoint",
            )?;
            optim
                .to_record()
                .save(out_dir.join(files::CHECKPOINT_OPTIM))
                .map_err(|e| anyhow::anyhow!("cannot save the optimiser: {e:?}"))?;
            std::fs::write(&checkpoint_step, format!("{}\n", step + 1))
                .with_context(|| format!("cannot write {}", checkpoint_step.display()))?;
        }
    }
    bar.finish();
    if best.is_some() {
        model = model
            .try_load_file(out_dir.join(files::BEST_MODEL))
            .map_err(|e| anyhow::anyhow!("cannot load the best weights: {e:?}"))?;
    }
    let model_path = out_dir.join(files::MODEL);
    training::save_record(&model, &model_path, "the model")?;
    let final_bits_per_dim = mean_of_last(&history, |r| r.bits_per_dim);
    let final_distil = mean_of_last(&history, |r| r.distil);
    record.final_bits_per_dim = Some(final_bits_per_dim);
    record.final_distil = Some(final_distil);
    write_record(out_dir, &record)?;
    let report = DistilReport {
        steps_run: steps,
        final_bits_per_dim,
        final_distil,
        images_per_second: (steps * config.train.batch) as f64
            / started.elapsed().as_secs_f64().max(1e-9),
        best,
        teacher: stats,
        history,
        model_path,
    };
    Ok((report, model))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_follow_the_teacher_or_the_fixed_ablation() {
        let stats = TeacherStats {
            mu: 10.0,
            sigma: 2.0,
            images: 4,
        };
        // -ln p of 10, 12, 30, 6 nats: z 0, 1, 10, -2.
        let lls = [-10.0f32, -12.0, -30.0, -6.0];
        let options = DistilOptions::default();
        assert_eq!(targets(&lls, &stats, &options), vec![0.0, 1.0, 10.0, -2.0]);
        let fixed = DistilOptions {
            fixed_targets: true,
            ..options
        };
        assert_eq!(
            targets(&lls, &stats, &fixed),
            vec![0.0, 0.0, fixed.z_range.1, fixed.z_range.1]
        );
    }
}
