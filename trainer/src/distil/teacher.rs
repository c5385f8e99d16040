//! The teacher: a trained run folder, and the standardisation of its OOD score.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::TrainConfig;
use crate::data::ImageSet;
use crate::error::{Error, Result};
use crate::flows::FlowModel;
use crate::run_folder::RunFolder;

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
        let (config, model) = RunFolder::open(run).load_trained()?;
        Ok(Teacher {
            run: run.to_path_buf(),
            config,
            model,
        })
    }

    /// The images it takes, `[channels, height, width]`.
    pub fn shape(&self) -> [usize; 3] {
        self.config.model.input_shape()
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
    let refuse = |reason: String| Error::TeacherScores {
        run: teacher.run.clone(),
        reason,
    };
    if images.count < 2 {
        return Err(refuse(
            "too few training images to standardise the teacher".into(),
        ));
    }
    let count = count.clamp(2, images.count);
    let picked: Vec<usize> = (0..count).map(|i| i * images.count / count).collect();
    let lls = crate::scoring::log_likelihoods(&teacher.model, &images.subset(&picked), 256)?;
    let mean = lls.iter().sum::<f64>() / lls.len() as f64;
    let variance = lls.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / lls.len() as f64;
    let sigma = variance.sqrt();
    if !(mean.is_finite() && sigma.is_finite() && sigma > 0.0) {
        return Err(refuse(format!(
            "its log-likelihoods of clean training images have mean {mean} and standard \
             deviation {sigma}; cannot standardise them"
        )));
    }
    Ok(TeacherStats {
        mu: -mean,
        sigma,
        images: count,
    })
}
