//! Training configs (`configs/*.toml`): the model, the data, the optimiser and the schedule.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::DatasetName;
use crate::flows::FlowConfig;

/// A whole training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Short identifier, recorded in the exported model.
    pub name: String,
    /// The flow.
    pub model: FlowConfig,
    /// What it learns from.
    pub data: DataConfig,
    /// How.
    pub train: OptimConfig,
}

/// Training data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// The in-distribution dataset (its train split).
    pub dataset: DatasetSource,
    /// Images held out for calibration (never trained on): the last ones of the train split.
    #[serde(default = "default_validation")]
    pub validation: usize,
    /// Train on perturbed images: each level replaced by a random one with this probability
    /// (a background model for likelihood-ratio scores; Ren et al. 2019 use 0.1 to 0.3).
    #[serde(default)]
    pub mutation_rate: Option<f64>,
    /// Use only the first `limit` training images (quick runs and tests).
    #[serde(default)]
    pub limit: Option<usize>,
}

fn default_validation() -> usize {
    5000
}

/// Where training images come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetSource {
    /// Fashion-MNIST's train split.
    FashionMnist,
    /// MNIST's train split.
    Mnist,
    /// A folder of image files (`dataset = { folder = "camera/vtest-train" }`), relative to
    /// the data dir unless absolute, in file-name order; resized to the model's input the way
    /// the edge runtime resizes frames.
    Folder(PathBuf),
}

impl DatasetSource {
    /// The idx dataset, or `None` for a folder.
    pub fn dataset(&self) -> Option<DatasetName> {
        match self {
            DatasetSource::FashionMnist => Some(DatasetName::FashionMnist),
            DatasetSource::Mnist => Some(DatasetName::Mnist),
            DatasetSource::Folder(_) => None,
        }
    }
}

/// Optimiser and schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimConfig {
    /// `adam` or `rmsprop`.
    #[serde(default)]
    pub optimizer: OptimizerKind,
    /// Learning rate.
    pub lr: f64,
    /// Clip the gradient's global L2 norm to this (the paper: 100).
    #[serde(default)]
    pub grad_clip: Option<f32>,
    /// L2 weight decay.
    #[serde(default)]
    pub weight_decay: Option<f32>,
    /// Images per step.
    pub batch: usize,
    /// Optimisation steps.
    pub steps: usize,
    /// Seeds initialisation, shuffling and dequantisation noise.
    #[serde(default)]
    pub seed: u64,
    /// Every this many steps (and at the end), measure the held-out images' mean bits/dim and
    /// keep the weights where it was lowest (early stopping): the final model is those
    /// weights. Off by default.
    #[serde(default)]
    pub validate_every: Option<usize>,
    /// Save a checkpoint every this many steps.
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: usize,
}

fn default_checkpoint_every() -> usize {
    500
}

/// Optimisers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Adam (RealNVP in the paper).
    #[default]
    Adam,
    /// RMSprop (Glow in the paper).
    Rmsprop,
}

/// Config errors name the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Unreadable file.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not a valid config.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl TrainConfig {
    /// Reads and checks a TOML config.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Parses and checks a TOML config; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: origin.to_string(),
            message,
        };
        let config: TrainConfig = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let train = &config.train;
        if train.batch == 0 || train.steps == 0 {
            return Err(invalid(
                "train.batch and train.steps must be positive".into(),
            ));
        }
        if !(train.lr > 0.0 && train.lr.is_finite()) {
            return Err(invalid(format!(
                "train.lr must be positive, got {}",
                train.lr
            )));
        }
        if let Some(rate) = config.data.mutation_rate
            && !(0.0..=1.0).contains(&rate)
        {
            return Err(invalid(format!(
                "data.mutation_rate must be in [0, 1], got {rate}"
            )));
        }
        if train.validate_every == Some(0) {
            return Err(invalid("train.validate_every must be positive".into()));
        }
        if !(config.model.alpha > 0.0 && config.model.alpha < 0.5) {
            return Err(invalid(format!(
                "model.alpha must be in (0, 0.5), got {}",
                config.model.alpha
            )));
        }
        Ok(config)
    }

    /// The config as TOML (saved beside checkpoints).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}
