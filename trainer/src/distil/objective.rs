//! What the student minimises: its own likelihood plus, after the warm-up, LAMBDA times the
//! distillation term, on clean training batches and perturbed copies of them; and the
//! held-out objective early stopping compares.

use burn::module::{Flag, ModuleMapper, Param};
use burn::prelude::*;

use super::DistilOptions;
use super::perturb::clean_and_perturbed;
use super::teacher::TeacherStats;
use crate::data::ImageSet;
use crate::driver::batches::Batch;
use crate::driver::{Objective, StepLoss};
use crate::error::{Error, Result};
use crate::flows::FlowModel;
use crate::seeds::{self, Stream};

const LN_2: f64 = std::f64::consts::LN_2;

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
    if !(batch == teacher_z.len() && batch >= 4 && batch.is_multiple_of(2)) {
        return Err(Error::Distillation(
            "a distillation batch needs as many teacher scores as images, clean then perturbed \
             (at least 2 of each)"
                .into(),
        ));
    }
    let device = levels.device();
    let score = student.log_likelihood(levels, false).neg();
    let values = crate::export::values(score.clone())?;
    if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
        return Err(Error::Distillation(format!(
            "the student scored an image {bad} nats: lower train.lr or LAMBDA"
        )));
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
    let seed = seeds::seed_of(seed, Stream::HeldOutPerturbation, 0);
    let pair = clean_and_perturbed(held_out, &indices, seed, options.perturbations)?;
    let all: Vec<usize> = (0..pair.count).collect();
    let lls = crate::export::values(teacher.log_likelihood(pair.batch(&all, device), false))?;
    Ok((pair, targets(&lls, stats, options)))
}

/// The z-score targets of a clean-then-perturbed batch whose teacher log-likelihoods are
/// `lls`: the teacher's z-scores, or with [`DistilOptions::fixed_targets`] 0 for the clean
/// half and the clamp's top for the perturbed half.
pub(super) fn targets(lls: &[f32], stats: &TeacherStats, options: &DistilOptions) -> Vec<f64> {
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

/// The distillation objective of one run.
pub(super) struct Distillation<'a> {
    /// The training images (perturbed copies of each batch are made from them).
    pub train_set: &'a ImageSet,
    /// The held-out images early stopping scores.
    pub held_out: &'a ImageSet,
    /// The teacher, on `eval_device`.
    pub teacher: FlowModel,
    /// Its standardisation.
    pub stats: TeacherStats,
    /// LAMBDA and the rest.
    pub options: &'a DistilOptions,
    /// Steps of plain training first.
    pub warmup: usize,
    /// Dimensions bits/dim divide by.
    pub dims: f64,
    /// The run's seed.
    pub seed: u64,
    /// The (non-autodiff) device the teacher and validation run on.
    pub eval_device: Device,
    /// Held-out pairs and their teacher z-scores, when early stopping judges the term.
    pub held_out_pair: Option<(ImageSet, Vec<f64>)>,
    /// Every step's numbers.
    pub history: Vec<StepRecord>,
}

impl<'a> Distillation<'a> {
    /// Measures what the objective needs up front (the held-out pairs' teacher scores, when
    /// early stopping judges LAMBDA's term).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        train_set: &'a ImageSet,
        held_out: &'a ImageSet,
        teacher: FlowModel,
        stats: TeacherStats,
        options: &'a DistilOptions,
        warmup: usize,
        (dims, seed, validate): (usize, u64, bool),
        eval_device: Device,
    ) -> Result<Self> {
        let held_out_pair = if validate && options.weight > 0.0 {
            Some(held_out_pair(
                held_out,
                &teacher,
                &stats,
                &eval_device,
                seed,
                options,
            )?)
        } else {
            None
        };
        Ok(Distillation {
            train_set,
            held_out,
            teacher,
            stats,
            options,
            warmup,
            dims: dims as f64,
            seed,
            eval_device,
            held_out_pair,
            history: Vec::new(),
        })
    }
}

impl Objective for Distillation<'_> {
    fn loss_name(&self) -> &'static str {
        "training"
    }

    fn divergence_hint(&self) -> &'static str {
        "lower train.lr or set train.grad_clip"
    }

    fn loss(&mut self, model: &FlowModel, batch: &mut Batch) -> Result<StepLoss> {
        let step = batch.step;
        let distilling = step >= self.warmup;
        let noise = batch.dequantization_noise();
        // Frozen statistics while distilling: the term's gradient goes through the running
        // statistics the gate scores with, and if training-mode passes kept moving them, the
        // student would chase them (pre-norm activations drift, the term grows).
        let log_likelihood = if distilling {
            running_statistics_view(model).log_likelihood_dequantized(batch.levels.clone(), noise)
        } else {
            model.log_likelihood_dequantized(batch.levels.clone(), noise)
        };
        let nll = log_likelihood.mean().neg();
        let nll_value = f64::from(nll.clone().into_scalar::<f32>());
        if !nll_value.is_finite() {
            return Err(Error::NonFiniteLoss {
                what: self.loss_name(),
                step,
                value: nll_value,
                hint: self.divergence_hint(),
            });
        }
        // The perturbations have their own stream and the distillation passes use bin
        // centres, so with LAMBDA = 0 the whole run draws what `flowgate train` draws.
        let perturbation_seed = seeds::seed_of(self.seed, Stream::Perturbation, step as u64);
        let pair = clean_and_perturbed(
            self.train_set,
            &batch.indices,
            perturbation_seed,
            self.options.perturbations,
        )?;
        let all: Vec<usize> = (0..pair.count).collect();
        let teacher_lls = crate::export::values(
            self.teacher
                .log_likelihood(pair.batch(&all, &self.eval_device), false),
        )?;
        let teacher_z = targets(&teacher_lls, &self.stats, self.options);
        let bits_per_dim = nll_value / (self.dims * LN_2);
        let loss = if distilling && self.options.weight > 0.0 {
            let term = distillation_term(
                &running_statistics_view(model),
                pair.batch(&all, &batch.levels.device()),
                &teacher_z,
                self.options,
            )?;
            self.history.push(StepRecord {
                bits_per_dim,
                distil: f64::from(term.clone().into_scalar::<f32>()),
            });
            // train's loss is in nats; scaling the distillation term by dims * ln 2 makes the
            // sum (dims * ln 2) * (NLL bits/dim + LAMBDA * term), so LAMBDA weighs it against
            // bits/dim while train.grad_clip keeps its meaning.
            nll + term.mul_scalar(self.options.weight * self.dims * LN_2)
        } else {
            let term = distillation_term(
                &model.valid(),
                pair.batch(&all, &self.eval_device),
                &teacher_z,
                self.options,
            )?;
            self.history.push(StepRecord {
                bits_per_dim,
                distil: f64::from(term.into_scalar::<f32>()),
            });
            nll
        };
        let latest = self.history[self.history.len() - 1];
        Ok(StepLoss {
            loss,
            note: format!(
                "nll {:.3} bpd  distil {:.3}",
                latest.bits_per_dim, latest.distil
            ),
        })
    }

    /// Early stopping judges the objective being trained: on held-out bits/dim alone it
    /// would keep the warm-up's undistilled weights, whose likelihood is best.
    fn held_out(&mut self, model: &FlowModel) -> Result<f64> {
        let valid = model.valid();
        let dims = self.dims as usize;
        let mut objective =
            crate::scoring::mean_bits_per_dim(&valid, self.held_out, dims, &self.eval_device)?;
        if let Some((pair, teacher_z)) = &self.held_out_pair {
            let all: Vec<usize> = (0..pair.count).collect();
            let term = distillation_term(
                &valid,
                pair.batch(&all, &self.eval_device),
                teacher_z,
                self.options,
            )?;
            objective += self.options.weight * f64::from(term.into_scalar::<f32>());
        }
        Ok(objective)
    }
}
