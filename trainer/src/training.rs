//! `flowgate train`: a flow trained on its own likelihood, through the one training loop
//! ([`crate::driver`]), into a run folder ([`crate::run_folder`]).
//!
//! The other paths re-exported here are where the training helpers used to live.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use burn::prelude::*;

use crate::config::TrainConfig;
use crate::driver::batches::{Batch, BatchOrder, BatchSource};
use crate::driver::{self, Objective, Schedule, Start, StepLoss};
use crate::error::{Error, Result};
use crate::flows::FlowModel;
use crate::run_folder::RunFolder;
use crate::seeds::{self, Stream};

pub use crate::data::{ImageSet, load_idx_split, training_data};
pub use crate::device::{Compute, device};
pub use crate::driver::optim::{clip_global_norm, optimizer};
pub use crate::driver::progress::step_bar;
pub use crate::run_folder::{files, save_weights};
pub use crate::scoring::{load_for_eval, log_likelihoods, log_likelihoods_on};

/// How and where a run goes.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The data dir.
    pub data_dir: PathBuf,
    /// The run folder.
    pub out_dir: PathBuf,
    /// Continue from the run folder's latest checkpoint, if it has one.
    pub resume: bool,
    /// Show progress bars.
    pub progress: bool,
    /// Where to train.
    pub compute: Compute,
    /// How the model was made, recorded in the exported model file.
    pub provenance: String,
    /// Stop training after the step during which this instant passes (keeping the best
    /// weights so far, with a checkpoint to resume from): a time budget.
    pub deadline: Option<std::time::Instant>,
    /// The same for a flow on embeddings' extractor pretraining.
    pub pretrain_deadline: Option<std::time::Instant>,
    /// Data-parallel devices each batch is split across
    /// ([`crate::device::data_parallel_devices`]); empty: the whole batch on `compute`'s
    /// device. The flow's training uses them; the extractor's pretraining does not.
    pub devices: Vec<Device>,
}

impl RunOptions {
    /// A fresh run of `out_dir` on the CPU, on the images of `data_dir`: no resume, no
    /// progress bars, no deadlines, one device.
    pub fn cpu(data_dir: &Path, out_dir: &Path, provenance: &str) -> Self {
        RunOptions {
            data_dir: data_dir.to_path_buf(),
            out_dir: out_dir.to_path_buf(),
            resume: false,
            progress: false,
            compute: Compute::Cpu,
            provenance: provenance.to_owned(),
            deadline: None,
            pretrain_deadline: None,
            devices: Vec::new(),
        }
    }
}

/// Outcome of a run.
#[derive(Debug, Clone)]
pub struct TrainReport {
    /// Steps done in this invocation.
    pub steps_run: usize,
    /// Mean training bits/dim over the last up to 100 steps of this invocation.
    pub final_bits_per_dim: f64,
    /// Training throughput.
    pub images_per_second: f64,
    /// With `train.validate_every`: the step whose weights were kept and their held-out
    /// mean bits/dim.
    pub best: Option<(usize, f64)>,
    /// The final weights.
    pub model_path: PathBuf,
    /// The final weights as the edge gate's model file.
    pub exported_path: PathBuf,
    /// The step after which [`RunOptions::deadline`] stopped the run, if it did.
    pub stopped_at: Option<usize>,
}

/// A fresh model with parameters drawn from the config's seed (its own generator).
pub fn seeded_model(config: &TrainConfig, device: &Device) -> Result<FlowModel> {
    let seed = seeds::seed_of(config.train.seed, Stream::Init, 0);
    Ok(FlowModel::new(&config.model, seed, device)?)
}

/// Trains `config` into `out_dir`, resuming from its checkpoint when `resume` and one exists;
/// writes the run folder (weights, checkpoints, `model.fgm`, provenance "flowgate train").
pub fn train(
    config: &TrainConfig,
    data_dir: &Path,
    out_dir: &Path,
    resume: bool,
    progress: bool,
    compute: Compute,
) -> Result<(TrainReport, FlowModel)> {
    let options = RunOptions {
        resume,
        progress,
        compute,
        ..RunOptions::cpu(data_dir, out_dir, "flowgate train")
    };
    train_run(config, &options)
}

/// [`train`] with every option.
pub fn train_run(config: &TrainConfig, options: &RunOptions) -> Result<(TrainReport, FlowModel)> {
    let (train_set, held_out) = checked_training_data(config, &options.data_dir)?;
    train_on_images(config, options, &train_set, &held_out)
}

/// [`train_run`] on images already in memory (the config's dataset is not read): for
/// training sets a caller builds, such as the detail branch's patches.
pub fn train_on_images(
    config: &TrainConfig,
    options: &RunOptions,
    train_set: &ImageSet,
    held_out: &ImageSet,
) -> Result<(TrainReport, FlowModel)> {
    check_sets(config, train_set, held_out)?;
    let (run, _lock) = RunFolder::create(&options.out_dir)?;
    run.write_config(config)?;
    let eval_device = device(options.compute)?;
    let device = eval_device.clone().autodiff();
    let start = prepared_start(config, &run, options, (train_set, held_out), &device)?;
    let mut objective = Likelihood {
        held_out,
        dims: config.model.density_dims(),
        eval_device,
        recent: VecDeque::new(),
    };
    let outcome = driver::run(
        &flow_schedule(config, &run, options, config.name.clone()),
        &flow_batches(config, train_set),
        start,
        &mut objective,
        &device,
    )?;
    let model_path = run.save_model(&outcome.model)?;
    let exported_path = run.export(&outcome.model, &config.name, &options.provenance)?;
    let report = TrainReport {
        steps_run: outcome.steps_run,
        final_bits_per_dim: objective.recent.iter().sum::<f64>()
            / objective.recent.len().max(1) as f64,
        images_per_second: outcome.images_per_second,
        best: outcome.best,
        model_path,
        exported_path,
        stopped_at: outcome.stopped_at,
    };
    Ok((report, outcome.model))
}

/// A config's training and held-out images, refused when there is nothing to train on or,
/// with early stopping, nothing to stop on; with `data.paste_objects` or
/// `data.exposure_jitter`, their synthetic images ([`crate::data::augment`]) follow the
/// training ones.
pub(crate) fn checked_training_data(
    config: &TrainConfig,
    data_dir: &Path,
) -> Result<(ImageSet, ImageSet)> {
    let (mut train_set, held_out) = training_data(config, data_dir)?;
    check_sets(config, &train_set, &held_out)?;
    if let Some(share) = config.data.paste_objects.filter(|&share| share > 0.0) {
        let mut rng = seeds::generator(config.train.seed, Stream::PastedObjects, 0);
        let pasted = crate::data::augment::paste_objects(&train_set, share, &mut rng);
        eprintln!("{}", pasted.describe());
        train_set = pasted.set;
    }
    if let Some(levels) = config.data.exposure_jitter.filter(|&levels| levels > 0.0) {
        let mut rng = seeds::generator(config.train.seed, Stream::ExposureJitter, 0);
        let original = train_set.count;
        train_set = crate::data::augment::with_exposure_jitter(&train_set, levels, &mut rng);
        eprintln!(
            "exposure jitter: {} copies of the training images shifted by up to {levels} levels",
            train_set.count - original
        );
    }
    Ok((train_set, held_out))
}

/// Refuses an empty training set, and an empty held-out set when the config stops early.
fn check_sets(config: &TrainConfig, train_set: &ImageSet, held_out: &ImageSet) -> Result<()> {
    if train_set.count == 0 {
        return Err(Error::NoTrainingImages {
            name: config.name.clone(),
        });
    }
    if config.train.validate_every.is_some() && held_out.count == 0 {
        return Err(Error::NoHeldOutImages {
            name: config.name.clone(),
        });
    }
    Ok(())
}

/// Where a flow's training starts: the run's checkpoint when resuming, else a seeded model
/// whose extractor (if any) is pretrained first; the extractor frozen either way.
pub(crate) fn prepared_start(
    config: &TrainConfig,
    run: &RunFolder,
    options: &RunOptions,
    (train_set, held_out): (&ImageSet, &ImageSet),
    device: &Device,
) -> Result<Start> {
    let model = seeded_model(config, device)?;
    let optim = optimizer(config);
    let mut start = Start::resume_or_fresh(run, model, optim, options.resume, config.train.steps)?;
    if start.step == 0 {
        start.model = crate::pretrain::pretrain_extractor(
            start.model,
            config,
            &options.data_dir,
            (train_set, held_out),
            device,
            options.progress,
            options.pretrain_deadline,
        )?;
    }
    start.model = crate::pretrain::freeze_extractor(start.model);
    Ok(start)
}

/// A flow's schedule: the config's steps, rate, clipping, validation and checkpoints, into
/// `run`.
pub(crate) fn flow_schedule<'a>(
    config: &TrainConfig,
    run: &'a RunFolder,
    options: &RunOptions,
    label: String,
) -> Schedule<'a> {
    let train = &config.train;
    Schedule {
        label,
        steps: train.steps,
        lr: train.lr,
        grad_clip: train.grad_clip,
        validate_every: train.validate_every,
        checkpoint_every: Some(train.checkpoint_every),
        progress: options.progress,
        run: Some(run),
        deadline: options.deadline,
        devices: options.devices.clone(),
    }
}

/// A flow's batches: the config's batch size, seed and mutations.
pub(crate) fn flow_batches<'a>(config: &TrainConfig, train_set: &'a ImageSet) -> BatchSource<'a> {
    BatchSource {
        images: train_set,
        order: BatchOrder {
            seed: config.train.seed,
            stream: Stream::BatchOrder,
            count: train_set.count,
            batch: config.train.batch,
        },
        noise: Stream::Dequantization,
        mutation_rate: config.data.mutation_rate,
    }
}

/// The flow's negative log-likelihood of dequantised training images; held out, their mean
/// bits/dim at the bin centres.
struct Likelihood<'a> {
    held_out: &'a ImageSet,
    dims: usize,
    eval_device: Device,
    /// Training bits/dim of the last up to 100 steps.
    recent: VecDeque<f64>,
}

impl Objective for Likelihood<'_> {
    fn loss_name(&self) -> &'static str {
        "training"
    }

    fn divergence_hint(&self) -> &'static str {
        "lower train.lr or set train.grad_clip"
    }

    fn loss(&mut self, model: &FlowModel, batch: &mut Batch) -> Result<StepLoss> {
        let noise = batch.dequantization_noise();
        let loss = model
            .log_likelihood_dequantized(batch.levels.clone(), noise)
            .mean()
            .neg();
        let nats = f64::from(loss.clone().into_scalar::<f32>());
        let bits_per_dim = nats / (self.dims as f64 * std::f64::consts::LN_2);
        self.recent.push_back(bits_per_dim);
        if self.recent.len() > 100 {
            self.recent.pop_front();
        }
        Ok(StepLoss {
            loss,
            note: format!("loss {nats:.1} nats  {bits_per_dim:.3} bpd"),
        })
    }

    fn held_out(&mut self, model: &FlowModel) -> Result<f64> {
        crate::scoring::mean_bits_per_dim(
            &model.valid(),
            self.held_out,
            self.dims,
            &self.eval_device,
        )
    }
}
