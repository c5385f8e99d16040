//! The training loop: seeded, checkpointed, resumable, with a progress bar.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::module::{ModuleVisitor, Param};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer, RmsPropConfig};
use burn::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::{DatasetSource, OptimizerKind, TrainConfig};
use crate::data::{self, Split};
use crate::flows::FlowModel;

/// Files a run writes into its output folder.
pub mod files {
    /// The config the run used.
    pub const CONFIG: &str = "config.toml";
    /// Latest checkpoint: model weights (burnpack).
    pub const CHECKPOINT_MODEL: &str = "checkpoint-model.bpk";
    /// Latest checkpoint: optimiser state.
    pub const CHECKPOINT_OPTIM: &str = "checkpoint-optim.bpk";
    /// With `train.validate_every`: the weights with the lowest held-out bits/dim so far.
    pub const BEST_MODEL: &str = "best-model.bpk";
    /// Their step and held-out bits/dim, `"<step> <bpd>"`.
    pub const BEST: &str = "best.txt";
    /// Latest checkpoint: the step it was taken after.
    pub const CHECKPOINT_STEP: &str = "checkpoint-step.txt";
    /// Final weights.
    pub const MODEL: &str = "model.bpk";
}

/// Where training runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Compute {
    /// burn's `flex` CPU backend.
    #[default]
    Cpu,
    /// burn's older `ndarray` CPU backend (feature `ndarray`).
    Ndarray,
    /// The first CUDA GPU (feature `cuda`).
    Cuda,
}

/// The (non-autodiff) device for `compute`, or why it is not available.
pub fn device(compute: Compute) -> Result<Device> {
    match compute {
        Compute::Cpu => Ok(Device::flex()),
        Compute::Ndarray => ndarray_device(),
        Compute::Cuda => cuda_device(),
    }
}

#[cfg(feature = "ndarray")]
#[allow(deprecated)] // burn 0.22 deprecates ndarray in favour of flex; it stays as a reference.
fn ndarray_device() -> Result<Device> {
    Ok(Device::ndarray())
}

#[cfg(not(feature = "ndarray"))]
fn ndarray_device() -> Result<Device> {
    bail!("this flowgate was built without the `ndarray` feature (cargo build --features ndarray)")
}

#[cfg(feature = "cuda")]
fn cuda_device() -> Result<Device> {
    // Enumerating loads libcuda without panicking; a lazily created CUDA device would panic on
    // its first operation instead.
    if Device::enumerate(burn::tensor::DeviceType::Cuda).is_empty() {
        bail!("no CUDA GPU found (the CUDA driver library could not be loaded or lists no device)");
    }
    Ok(Device::cuda(0))
}

#[cfg(not(feature = "cuda"))]
fn cuda_device() -> Result<Device> {
    bail!("this flowgate was built without the `cuda` feature (cargo build --features cuda)")
}

/// Images as one flat `u8` buffer plus their shape.
#[derive(Debug, Clone)]
pub struct ImageSet {
    /// `count * channels * height * width` levels, image-major, channel-major within.
    pub pixels: Vec<u8>,
    /// Images.
    pub count: usize,
    /// `[channels, height, width]`.
    pub shape: [usize; 3],
}

impl ImageSet {
    /// Levels of one image.
    pub fn image(&self, index: usize) -> &[u8] {
        let len = self.shape.iter().product::<usize>();
        &self.pixels[index * len..(index + 1) * len]
    }

    /// The images at `indices` as a `[B, C, H, W]` tensor of levels.
    pub fn batch(&self, indices: &[usize], device: &Device) -> Tensor<4> {
        let mut values = Vec::with_capacity(indices.len() * self.shape.iter().product::<usize>());
        for &index in indices {
            values.extend(self.image(index).iter().map(|&v| f32::from(v)));
        }
        let [c, h, w] = self.shape;
        Tensor::from_data(TensorData::new(values, [indices.len(), c, h, w]), device)
    }

    /// [`ImageSet::batch`] with each level replaced, with probability `rate`, by a uniform
    /// random level: the perturbed inputs a background model for likelihood ratios learns
    /// from (Ren et al. 2019). Seeded.
    pub fn mutated_batch(
        &self,
        indices: &[usize],
        device: &Device,
        rate: f64,
        seed: u64,
    ) -> Tensor<4> {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut values = Vec::with_capacity(indices.len() * self.shape.iter().product::<usize>());
        for &index in indices {
            values.extend(self.image(index).iter().map(|&v| {
                if rng.random_bool(rate) {
                    f32::from(rng.random::<u8>())
                } else {
                    f32::from(v)
                }
            }));
        }
        let [c, h, w] = self.shape;
        Tensor::from_data(TensorData::new(values, [indices.len(), c, h, w]), device)
    }

    /// Images `range` of this set.
    pub fn slice(&self, range: std::ops::Range<usize>) -> ImageSet {
        let len = self.shape.iter().product::<usize>();
        ImageSet {
            pixels: self.pixels[range.start * len..range.end * len].to_vec(),
            count: range.len(),
            shape: self.shape,
        }
    }
}

/// The train split of an idx dataset as images.
pub fn load_idx_split(
    data_dir: &Path,
    dataset: data::DatasetName,
    split: Split,
) -> Result<ImageSet> {
    let loaded = data::load(data_dir, dataset, split)
        .with_context(|| format!("loading {dataset} {split}"))?;
    let images = loaded.images;
    Ok(ImageSet {
        count: images.count,
        shape: [1, images.rows, images.cols],
        pixels: images.pixels,
    })
}

/// Training and held-out images of a config: the held-out ones are the last `validation`
/// images (of the train split, or of the folder in file-name order).
pub fn training_data(config: &TrainConfig, data_dir: &Path) -> Result<(ImageSet, ImageSet)> {
    let model = &config.model;
    let shape = [model.channels, model.height, model.width];
    let all = match &config.data.dataset {
        DatasetSource::Folder(folder) => {
            let dir = data_dir.join(folder);
            let loaded = data::inputs::load_input(&dir, shape, None)?;
            for skipped in &loaded.skipped {
                eprintln!("warning: skipped {skipped}");
            }
            loaded.set
        }
        source => {
            let dataset = source.dataset().context("an idx dataset")?;
            let all = load_idx_split(data_dir, dataset, Split::Train)?;
            if all.shape != shape {
                bail!(
                    "{dataset} images are {:?}, the model takes {}x{}x{}",
                    all.shape,
                    model.channels,
                    model.height,
                    model.width
                );
            }
            all
        }
    };
    let validation = config.data.validation.min(all.count / 2);
    let held_out = all.slice(all.count - validation..all.count);
    let train_end = config.data.limit.map_or(all.count - validation, |limit| {
        limit.min(all.count - validation)
    });
    Ok((all.slice(0..train_end), held_out))
}

/// Touches every parameter so lazily initialised ones draw from the RNG now, in a fixed order:
/// otherwise the same seed could give different weights.
pub fn force_init<M: Module>(module: &M) {
    struct Touch;
    impl ModuleVisitor for Touch {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let _ = param.val();
        }
    }
    module.visit(&mut Touch);
}

/// A fresh model with seeded parameters.
pub fn seeded_model(config: &TrainConfig, device: &Device) -> Result<FlowModel> {
    device.seed(config.train.seed);
    let model = FlowModel::new(&config.model, device)?;
    force_init(&model);
    Ok(model)
}

/// Scales the gradients so their global L2 norm is at most `max_norm` (as PyTorch's
/// `clip_grad_norm_`; burn's own clipping works per tensor). Returns the norm before clipping.
pub fn clip_global_norm<M: Module>(module: &M, grads: &mut GradientsParams, max_norm: f32) -> f32 {
    struct SquaredNorm<'a> {
        grads: &'a GradientsParams,
        total: f64,
    }
    impl ModuleVisitor for SquaredNorm<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(grad) = self.grads.get::<D>(param.id) {
                self.total += f64::from(grad.square().sum().into_scalar::<f32>());
            }
        }
    }
    struct Scale<'a> {
        grads: &'a mut GradientsParams,
        factor: f32,
    }
    impl ModuleVisitor for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(grad) = self.grads.remove::<D>(param.id) {
                self.grads
                    .register::<D>(param.id, grad.mul_scalar(self.factor));
            }
        }
    }
    let mut norm = SquaredNorm { grads, total: 0.0 };
    module.visit(&mut norm);
    let norm = norm.total.sqrt() as f32;
    if norm > max_norm {
        let factor = max_norm / (norm + 1e-6);
        module.visit(&mut Scale { grads, factor });
    }
    norm
}

pub fn optimizer(config: &TrainConfig) -> ModuleOptimizer {
    let decay = config.train.weight_decay.map(WeightDecayConfig::new);
    match config.train.optimizer {
        OptimizerKind::Adam => AdamConfig::new().with_weight_decay(decay).init(),
        OptimizerKind::Rmsprop => RmsPropConfig::new().with_weight_decay(decay).init(),
    }
}

/// The images of step `step`: epochs are seeded permutations, so a resumed run draws exactly
/// the batches the uninterrupted run would have.
pub fn batch_indices(seed: u64, count: usize, batch: usize, step: usize) -> Vec<usize> {
    let per_epoch = (count / batch).max(1);
    let (epoch, position) = (step / per_epoch, step % per_epoch);
    let order = permutation(
        count,
        seed ^ (epoch as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
    );
    order
        .into_iter()
        .cycle()
        .skip(position * batch)
        .take(batch)
        .collect()
}

/// A Fisher-Yates permutation of `0..count` from a SplitMix64 stream.
fn permutation(count: usize, seed: u64) -> Vec<usize> {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut order: Vec<usize> = (0..count).collect();
    for i in (1..count).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

/// The progress bar of a `steps`-step loop (hidden without `progress`), labelled `prefix`.
pub fn step_bar(steps: usize, progress: bool, prefix: &str) -> ProgressBar {
    let bar = if progress {
        ProgressBar::new(steps as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} steps  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix(prefix.to_owned());
    bar
}

/// Outcome of a run.
#[derive(Debug, Clone)]
pub struct TrainReport {
    /// Steps done in this invocation.
    pub steps_run: usize,
    /// Mean training bits/dim over the last up to 100 steps.
    pub final_bits_per_dim: f64,
    /// Training throughput.
    pub images_per_second: f64,
    /// With `train.validate_every`: the step whose weights were kept and their held-out
    /// mean bits/dim.
    pub best: Option<(usize, f64)>,
    /// The final weights.
    pub model_path: PathBuf,
}

/// Trains `config` into `out_dir`, resuming from its checkpoint when `resume` and one exists.
pub fn train(
    config: &TrainConfig,
    data_dir: &Path,
    out_dir: &Path,
    resume: bool,
    progress: bool,
    compute: Compute,
) -> Result<(TrainReport, FlowModel)> {
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    std::fs::write(out_dir.join(files::CONFIG), config.to_toml())?;
    let (train_set, held_out) = training_data(config, data_dir)?;
    let inner_device = self::device(compute)?;
    let device = inner_device.clone().autodiff();
    let mut model = seeded_model(config, &device)?;
    let mut optim = optimizer(config);
    let mut start = 0;
    let checkpoint_step = out_dir.join(files::CHECKPOINT_STEP);
    if resume && checkpoint_step.exists() {
        let step_text = std::fs::read_to_string(&checkpoint_step)?;
        start = step_text
            .trim()
            .parse()
            .context("bad checkpoint step file")?;
        model = model
            .try_load_file(out_dir.join(files::CHECKPOINT_MODEL))
            .map_err(|e| anyhow::anyhow!("cannot load the checkpoint's model: {e:?}"))?;
        let record = burn::optim::OptimizerRecord::load(out_dir.join(files::CHECKPOINT_OPTIM))
            .map_err(|e| anyhow::anyhow!("cannot load the checkpoint's optimiser: {e:?}"))?;
        optim = optim.load_record(record);
    }
    if start == 0 {
        model = crate::pretrain::pretrain_extractor(
            model,
            config,
            data_dir,
            (&train_set, &held_out),
            &device,
            progress,
        )?;
    }
    model = crate::pretrain::freeze_extractor(model);
    let steps = config.train.steps;
    let dims = config.model.density_dims() as f64;
    let bar = step_bar(steps, progress, &config.name);
    bar.set_position(start as u64);
    let started = Instant::now();
    let mut recent = std::collections::VecDeque::new();
    let best_file = out_dir.join(files::BEST);
    // Only the step and score stay in memory: a clone of the model would share batch-norm
    // running statistics with the model still training.
    let mut best: Option<(usize, f64)> = None;
    if resume && start > 0 && best_file.exists() {
        let text = std::fs::read_to_string(&best_file)?;
        let parsed = text
            .split_once(' ')
            .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)))
            .context("bad best-weights file")?;
        best = Some(parsed);
    }
    let mut validation_note = String::new();
    for step in start..steps {
        let indices = batch_indices(config.train.seed, train_set.count, config.train.batch, step);
        let levels = match config.data.mutation_rate {
            Some(rate) => train_set.mutated_batch(
                &indices,
                &device,
                rate,
                config.train.seed ^ (step as u64).wrapping_mul(0xd1b5_4a32_d192_ed03),
            ),
            None => train_set.batch(&indices, &device),
        };
        // Per-step seed: the dequantisation noise is the same whether or not the run resumed.
        device.seed(config.train.seed.wrapping_add(1 + step as u64));
        let log_likelihood = model.log_likelihood(levels, true);
        let loss = log_likelihood.mean().neg();
        let loss_value = f64::from(loss.clone().into_scalar::<f32>());
        if !loss_value.is_finite() {
            bail!(
                "the loss became {loss_value} at step {step}: lower train.lr or set train.grad_clip"
            );
        }
        let mut grads = GradientsParams::from_grads(loss.backward(), &model);
        if let Some(max_norm) = config.train.grad_clip {
            clip_global_norm(&model, &mut grads, max_norm);
        }
        model = optim.step(config.train.lr, model, grads);
        let bits_per_dim = loss_value / (dims * std::f64::consts::LN_2);
        recent.push_back(bits_per_dim);
        if recent.len() > 100 {
            recent.pop_front();
        }
        let done = step + 1 - start;
        let rate = (done * config.train.batch) as f64 / started.elapsed().as_secs_f64();
        bar.set_position(step as u64 + 1);
        if let Some(every) = config.train.validate_every
            && ((step + 1) % every == 0 || step + 1 == steps)
        {
            let lls = log_likelihoods_on(&model.valid(), &held_out, 256, &inner_device)?;
            let bpd = -lls.iter().sum::<f64>()
                / (lls.len().max(1) as f64 * dims * std::f64::consts::LN_2);
            if best.is_none_or(|(_, best_bpd)| bpd < best_bpd) {
                save_record(&model, &out_dir.join(files::BEST_MODEL), "the best weights")?;
                std::fs::write(&best_file, format!("{} {bpd}\n", step + 1))?;
                best = Some((step + 1, bpd));
            }
            if let Some((best_step, best_bpd)) = &best {
                validation_note =
                    format!("  held-out {bpd:.3} bpd (best {best_bpd:.3} at {best_step})");
            }
        }
        bar.set_message(format!(
            "loss {loss_value:.1} nats  {bits_per_dim:.3} bpd  {rate:.0} img/s{validation_note}"
        ));
        let checkpoint = (step + 1) % config.train.checkpoint_every == 0 || step + 1 == steps;
        if checkpoint {
            save_record(
                &model,
                &out_dir.join(files::CHECKPOINT_MODEL),
                "the checkpoint",
            )?;
            optim
                .to_record()
                .save(out_dir.join(files::CHECKPOINT_OPTIM))
                .map_err(|e| anyhow::anyhow!("cannot save the optimiser: {e:?}"))?;
            std::fs::write(&checkpoint_step, format!("{}\n", step + 1))?;
        }
    }
    bar.finish();
    if best.is_some() {
        model = model
            .try_load_file(out_dir.join(files::BEST_MODEL))
            .map_err(|e| anyhow::anyhow!("cannot load the best weights: {e:?}"))?;
    }
    let model_path = out_dir.join(files::MODEL);
    save_record(&model, &model_path, "the model")?;
    let steps_run = steps.saturating_sub(start);
    let report = TrainReport {
        steps_run,
        final_bits_per_dim: recent.iter().sum::<f64>() / recent.len().max(1) as f64,
        images_per_second: (steps_run * config.train.batch) as f64
            / started.elapsed().as_secs_f64().max(1e-9),
        model_path,
        best,
    };
    Ok((report, model))
}

/// Saves `model`'s record (weights and batch-norm running statistics) as a burnpack file, the
/// statistics with the latest training step's update committed (see
/// [`FlowModel::commit_running_statistics`]): the record is then the model that validation
/// scored and that the export writes. `what` names the file in errors.
pub fn save_record(model: &FlowModel, path: &Path, what: &str) -> Result<()> {
    model.commit_running_statistics();
    model
        .clone()
        .save_file(path)
        .map_err(|e| anyhow::anyhow!("cannot save {what} ({}): {e:?}", path.display()))
}

/// Loads a trained model for evaluation on the (non-autodiff) CPU device.
pub fn load_for_eval(config: &TrainConfig, weights: &Path) -> Result<FlowModel> {
    let device = Device::flex();
    let model = FlowModel::new(&config.model, &device)?;
    model
        .try_load_file(weights)
        .map_err(|e| anyhow::anyhow!("cannot load {}: {e:?}", weights.display()))
}

/// Log-likelihood (nats) of every image, in batches, without gradients.
pub fn log_likelihoods(model: &FlowModel, images: &ImageSet, batch: usize) -> Result<Vec<f64>> {
    log_likelihoods_on(model, images, batch, &Device::flex())
}

/// [`log_likelihoods`] of a model on `device`.
pub fn log_likelihoods_on(
    model: &FlowModel,
    images: &ImageSet,
    batch: usize,
    device: &Device,
) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(images.count);
    let indices: Vec<usize> = (0..images.count).collect();
    for chunk in indices.chunks(batch.max(1)) {
        let levels = images.batch(chunk, device);
        let values = crate::export::values(model.log_likelihood(levels, false))?;
        out.extend(values.into_iter().map(f64::from));
    }
    Ok(out)
}
