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

mod objective;
mod perturb;
mod teacher;

use std::path::PathBuf;

use burn::module::Module;
use serde::Serialize;

use crate::config::TrainConfig;
use crate::driver;
use crate::error::{Error, Result};
use crate::flows::FlowModel;
use crate::run_folder::{RunFolder, files};
use crate::training::{self, RunOptions};
use objective::Distillation;

pub use objective::{StepRecord, distillation_term, running_statistics_view};
pub use perturb::{Perturbation, PerturbationKinds, clean_and_perturbed, perturb};
pub use teacher::{Teacher, TeacherStats, teacher_stats};

/// The record of a distillation run, beside the files `flowgate train` writes.
pub const DISTIL_RECORD: &str = files::DISTIL_RECORD;

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
    /// The perturbation kinds drawn (all by default; a leave-one-kind-out run drops one, in
    /// training and in the held-out comparison that picks the kept weights alike).
    pub perturbations: PerturbationKinds,
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
            perturbations: PerturbationKinds::ALL,
        }
    }
}

/// Outcome of a distillation run.
#[derive(Debug, Clone)]
pub struct DistilReport {
    /// Steps run in this invocation.
    pub steps_run: usize,
    /// Mean training NLL over the last up to 100 steps of this invocation (bits/dim).
    pub final_bits_per_dim: f64,
    /// Mean distillation term over the last up to 100 steps of this invocation.
    pub final_distil: f64,
    /// Clean training images per second.
    pub images_per_second: f64,
    /// With `train.validate_every`: the step whose weights were kept and their held-out bits/dim
    /// (plus LAMBDA times the held-out distillation term when LAMBDA > 0).
    pub best: Option<(usize, f64)>,
    /// The teacher's standardisation.
    pub teacher: TeacherStats,
    /// The numbers of every step of this invocation.
    pub history: Vec<StepRecord>,
    /// The final weights.
    pub model_path: PathBuf,
    /// The final weights as the edge gate's model file.
    pub exported_path: PathBuf,
    /// The step after which the run's deadline stopped it, if it did.
    pub stopped_at: Option<usize>,
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
    perturbations: Vec<Perturbation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    final_bits_per_dim: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    final_distil: Option<f64>,
}

fn write_record(run: &RunFolder, record: &Record<'_>) -> Result<()> {
    let text = toml::to_string_pretty(record)
        .map_err(|e| Error::Distillation(format!("the distillation record as TOML: {e}")))?;
    run.write(DISTIL_RECORD, text.as_bytes())?;
    Ok(())
}

/// The perturbation kinds the distillation in `run_dir` drew, from its record; `None` when
/// there is no readable record (no distillation ran there yet).
pub fn recorded_perturbations(run_dir: &std::path::Path) -> Option<PerturbationKinds> {
    #[derive(serde::Deserialize)]
    struct Kinds {
        perturbations: Vec<Perturbation>,
    }
    let text = std::fs::read_to_string(run_dir.join(DISTIL_RECORD)).ok()?;
    let kinds: Kinds = toml::from_str(&text).ok()?;
    Some(PerturbationKinds::of(&kinds.perturbations))
}

fn mean_of_last(history: &[StepRecord], f: impl Fn(&StepRecord) -> f64) -> f64 {
    let last = &history[history.len().saturating_sub(100)..];
    last.iter().map(f).sum::<f64>() / last.len().max(1) as f64
}

/// Trains the student `config` into `options.out_dir` with `teacher`'s scores as a second
/// target. Everything but the objective (data, batches, seeds, optimiser, clipping, early
/// stopping, checkpoints, resuming, files) is `flowgate train`'s driver, so LAMBDA = 0 with no
/// distillation phase gives its model.
pub fn distil(
    config: &TrainConfig,
    teacher: &Teacher,
    distil_options: &DistilOptions,
    options: &RunOptions,
) -> Result<(DistilReport, FlowModel)> {
    if !(distil_options.weight.is_finite() && distil_options.weight >= 0.0) {
        return Err(Error::Distillation(format!(
            "LAMBDA (--weight) must be a finite number >= 0, got {}",
            distil_options.weight
        )));
    }
    let student = config.model.input_shape();
    if teacher.shape() != student {
        return Err(Error::TeacherShape {
            run: teacher.run.clone(),
            teacher: teacher.shape(),
            student_name: config.name.clone(),
            student,
        });
    }
    let (run, _lock) = RunFolder::create(&options.out_dir)?;
    run.write_config(config)?;
    let (train_set, held_out) = training::checked_training_data(config, &options.data_dir)?;
    let eval_device = training::device(options.compute)?;
    let device = eval_device.clone().autodiff();
    let stats = teacher_stats(teacher, &train_set, distil_options.calibration_images)?;
    let steps = config.train.steps;
    let warmup = distil_options.warmup.unwrap_or(steps / 2).min(steps);
    let mut record = Record {
        teacher: teacher.run.display().to_string(),
        teacher_name: &teacher.config.name,
        student_name: &config.name,
        weight: distil_options.weight,
        mu_t: stats.mu,
        sigma_t: stats.sigma,
        calibration_images: stats.images,
        z_min: distil_options.z_range.0,
        z_max: distil_options.z_range.1,
        huber: distil_options.huber,
        steps,
        warmup,
        fixed_targets: distil_options.fixed_targets,
        perturbations: distil_options.perturbations.list(),
        final_bits_per_dim: None,
        final_distil: None,
    };
    write_record(&run, &record)?;
    let start = training::prepared_start(config, &run, options, (&train_set, &held_out), &device)?;
    let mut objective = Distillation::new(
        &train_set,
        &held_out,
        teacher.model.clone().to_device(&eval_device),
        stats,
        distil_options,
        warmup,
        (
            config.model.density_dims(),
            config.train.seed,
            config.train.validate_every.is_some(),
        ),
        eval_device,
    )?;
    let label = format!("{} <- {}", config.name, teacher.config.name);
    let outcome = driver::run(
        &training::flow_schedule(config, &run, options, label),
        &training::flow_batches(config, &train_set),
        start,
        &mut objective,
        &device,
    )?;
    let model_path = run.save_model(&outcome.model)?;
    let exported_path = run.export(&outcome.model, &config.name, &options.provenance)?;
    let history = std::mem::take(&mut objective.history);
    let final_bits_per_dim = mean_of_last(&history, |r| r.bits_per_dim);
    let final_distil = mean_of_last(&history, |r| r.distil);
    record.final_bits_per_dim = Some(final_bits_per_dim);
    record.final_distil = Some(final_distil);
    write_record(&run, &record)?;
    let report = DistilReport {
        steps_run: outcome.steps_run,
        final_bits_per_dim,
        final_distil,
        images_per_second: outcome.images_per_second,
        best: outcome.best,
        teacher: stats,
        history,
        model_path,
        exported_path,
        stopped_at: outcome.stopped_at,
    };
    Ok((report, outcome.model))
}

#[cfg(test)]
mod tests {
    use super::objective::targets;
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
