//! The one training loop. `flowgate train`, `flowgate distil` and the extractor's pretraining
//! differ only in their [`Objective`]; the loop owns everything else: the batch order and the
//! step's random draws ([`batches`]), the optimiser step with global gradient clipping,
//! validation with the best weights kept, checkpoints, resuming, and the progress bar.

pub mod batches;
pub mod optim;
pub mod progress;

use std::time::Instant;

use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::prelude::*;

use crate::error::{Error, Result};
use crate::flows::FlowModel;
use crate::run_folder::RunFolder;
use batches::{Batch, BatchSource};

/// What a run minimises.
pub trait Objective {
    /// Names the loss in errors ("training", "extractor's").
    fn loss_name(&self) -> &'static str;

    /// What to change when the loss stops being finite.
    fn divergence_hint(&self) -> &'static str;

    /// The loss of one batch (a one-element tensor, differentiable through `model`) and the
    /// progress bar's note on it.
    fn loss(&mut self, model: &FlowModel, batch: &mut Batch) -> Result<StepLoss>;

    /// The held-out objective early stopping minimises (`model` is the one training).
    fn held_out(&mut self, model: &FlowModel) -> Result<f64>;
}

/// One step's loss.
#[derive(Debug)]
pub struct StepLoss {
    /// What the optimiser minimises.
    pub loss: Tensor<1>,
    /// The progress bar's note ("loss 812.3 nats  1.49 bpd").
    pub note: String,
}

/// How the loop runs.
#[derive(Debug, Clone)]
pub struct Schedule<'a> {
    /// The progress bar's label.
    pub label: String,
    /// Steps in all (a resumed run runs the rest).
    pub steps: usize,
    /// Learning rate.
    pub lr: f64,
    /// Clip the gradient's global L2 norm to this.
    pub grad_clip: Option<f32>,
    /// Validate every this many steps (and after the last) and keep the best weights; needs
    /// `run`.
    pub validate_every: Option<usize>,
    /// Checkpoint every this many steps (and after the last); needs `run`.
    pub checkpoint_every: Option<usize>,
    /// Show the progress bar.
    pub progress: bool,
    /// Where checkpoints and the best weights go; `None` keeps everything in memory.
    pub run: Option<&'a RunFolder>,
    /// Stop after the step during which this instant passes (validating and checkpointing
    /// as after the last step): a training-time budget (`flowgate fit --minutes`).
    pub deadline: Option<Instant>,
    /// Data parallelism: each step's batch is split across these (autodiff) devices, the
    /// first of them the main one (`--devices`). Empty or one: the whole batch on the run's
    /// device.
    pub devices: Vec<Device>,
}

/// Where a run starts: its model and optimiser, at a step, with the best held-out objective
/// so far.
pub struct Start {
    /// The model.
    pub model: FlowModel,
    /// The optimiser.
    pub optim: ModuleOptimizer,
    /// Steps already done.
    pub step: usize,
    /// The best weights' step and held-out objective so far.
    pub best: Option<(usize, f64)>,
}

impl std::fmt::Debug for Start {
    // burn's optimiser has no `Debug`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Start")
            .field("model", &self.model)
            .field("step", &self.step)
            .field("best", &self.best)
            .finish_non_exhaustive()
    }
}

impl Start {
    /// Step 0 with a fresh model and optimiser.
    pub fn fresh(model: FlowModel, optim: ModuleOptimizer) -> Self {
        Start {
            model,
            optim,
            step: 0,
            best: None,
        }
    }

    /// From `run`'s latest checkpoint when `resume` and it has one; otherwise step 0, and the
    /// folder's checkpoints and best weights of an earlier run are removed (a resume after a
    /// kill before the first checkpoint must not continue that earlier run).
    pub fn resume_or_fresh(
        run: &RunFolder,
        model: FlowModel,
        optim: ModuleOptimizer,
        resume: bool,
        steps: usize,
    ) -> Result<Self> {
        let checkpoint = if resume { run.checkpoint_step()? } else { None };
        let Some(step) = checkpoint else {
            run.clear_progress()?;
            return Ok(Start::fresh(model, optim));
        };
        if step > steps {
            return Err(Error::CheckpointPastEnd {
                path: run.root().to_path_buf(),
                step,
                steps,
            });
        }
        let (model, optim) = run.load_checkpoint(step, model, optim)?;
        Ok(Start {
            model,
            optim,
            step,
            best: run.read_best()?,
        })
    }
}

/// What a run did.
#[derive(Debug)]
pub struct Outcome {
    /// The final weights: the best ones when validating.
    pub model: FlowModel,
    /// Steps run in this invocation.
    pub steps_run: usize,
    /// Training images per second.
    pub images_per_second: f64,
    /// With validation: the kept weights' step and held-out objective.
    pub best: Option<(usize, f64)>,
    /// The step after which the schedule's deadline stopped the run, if it did.
    pub stopped_at: Option<usize>,
}

/// One step's gradients of `objective` on the whole `batch`, the loss's value and its note.
fn whole_batch_gradients(
    model: &FlowModel,
    mut batch: Batch,
    objective: &mut impl Objective,
) -> Result<(GradientsParams, f64, String)> {
    let StepLoss { loss, note } = objective.loss(model, &mut batch)?;
    let value = f64::from(loss.clone().into_scalar::<f32>());
    Ok((
        GradientsParams::from_grads(loss.backward(), model),
        value,
        note,
    ))
}

/// The same, data-parallel, as burn's multi-device strategy does it: the batch is cut into one
/// shard per device; on each, a fork of `model` computes its shard's loss, weighted by the
/// shard's share of the batch, and its gradients, which move to the main device (the first)
/// and are summed there (burn's `GradientsAccumulator`). For a loss that is a mean over images
/// the sum is the whole batch's gradient (up to rounding); batch-norm layers see each shard's
/// statistics. The shards run one after another; the step's random draws pass from one to
/// the next, so they are the whole batch's.
fn sharded_gradients(
    model: &FlowModel,
    batch: Batch,
    devices: &[Device],
    objective: &mut impl Objective,
) -> Result<(GradientsParams, f64, String)> {
    let total = batch.indices.len();
    if total < devices.len() {
        return Err(Error::BatchTooSmallForDevices {
            batch: total,
            devices: devices.len(),
        });
    }
    let main = &devices[0];
    let mut shards = batch.into_shards(devices);
    let mut accumulator = GradientsAccumulator::<FlowModel>::new();
    let (mut value, mut note) = (0.0, String::new());
    for (index, device) in devices.iter().enumerate() {
        if index > 0 {
            let (done, rest) = shards.split_at_mut(index);
            rest[0].continue_noise_from(&mut done[index - 1]);
        }
        let shard = &mut shards[index];
        let share = shard.indices.len() as f64 / total as f64;
        let replica = model.clone().fork(device);
        let StepLoss {
            loss,
            note: shard_note,
        } = objective.loss(&replica, shard)?;
        let loss = loss.mul_scalar(share);
        value += f64::from(loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &replica).to_device(main, model);
        accumulator.accumulate(model, grads);
        note = shard_note;
    }
    Ok((accumulator.grads(), value, note))
}

/// Runs `schedule` from `start` on batches from `source` (on `device`), minimising
/// `objective`.
pub fn run(
    schedule: &Schedule<'_>,
    source: &BatchSource<'_>,
    start: Start,
    objective: &mut impl Objective,
    device: &Device,
) -> Result<Outcome> {
    let Start {
        mut model,
        mut optim,
        step: first,
        mut best,
    } = start;
    let steps = schedule.steps;
    let bar = progress::step_bar(steps, schedule.progress, &schedule.label);
    bar.set_position(first as u64);
    let started = Instant::now();
    let mut validation_note = String::new();
    let mut stopped_at = None;
    let mut done = first;
    for step in first..steps {
        let batch = source.batch(step, device);
        let (mut grads, value, note) = if schedule.devices.len() > 1 {
            sharded_gradients(&model, batch, &schedule.devices, objective)?
        } else {
            whole_batch_gradients(&model, batch, objective)?
        };
        if !value.is_finite() {
            return Err(Error::NonFiniteLoss {
                what: objective.loss_name(),
                step,
                value,
                hint: objective.divergence_hint(),
            });
        }
        if let Some(max_norm) = schedule.grad_clip {
            optim::clip_global_norm(&model, &mut grads, max_norm);
        }
        model = optim.step(schedule.lr, model, grads);
        done = step + 1;
        let out_of_time = done < steps && schedule.deadline.is_some_and(|d| Instant::now() >= d);
        if out_of_time {
            stopped_at = Some(done);
        }
        let last = done == steps || out_of_time;
        bar.set_position(done as u64);
        if let (Some(every), Some(run)) = (schedule.validate_every, schedule.run)
            && (done.is_multiple_of(every) || last)
        {
            let objective_value = objective.held_out(&model)?;
            if best.is_none_or(|(_, best_value)| objective_value < best_value) {
                run.save_best(&model, done, objective_value)?;
                best = Some((done, objective_value));
            }
            if let Some((best_step, best_value)) = best {
                validation_note = format!(
                    "  held-out {objective_value:.3} (best {best_value:.3} at {best_step})"
                );
            }
        }
        let rate = ((done - first) * source.order.batch) as f64
            / started.elapsed().as_secs_f64().max(1e-9);
        bar.set_message(format!("{note}  {rate:.0} img/s{validation_note}"));
        if let (Some(every), Some(run)) = (schedule.checkpoint_every, schedule.run)
            && (done.is_multiple_of(every) || last)
        {
            run.save_checkpoint(done, &model, &optim)?;
        }
        if out_of_time {
            break;
        }
    }
    bar.finish();
    if let (Some(_), Some(run)) = (best, schedule.run) {
        model = run.load_best(model)?;
    }
    let steps_run = done.saturating_sub(first);
    Ok(Outcome {
        model,
        steps_run,
        images_per_second: (steps_run * source.order.batch) as f64
            / started.elapsed().as_secs_f64().max(1e-9),
        best,
        stopped_at,
    })
}
