//! A whole training run: the model, the data, the optimiser and the schedule.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Architecture, ConfigError, DatasetName, FlowConfig};

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
    /// Images held out for early stopping and calibration (never trained on): the last ones of
    /// the train split, at most half of it. 0 holds none out, which `train.validate_every`
    /// does not accept.
    #[serde(default = "default_validation")]
    pub validation: usize,
    /// The held-out images in this many blocks spread over the dataset instead of at its end:
    /// block k ends the k-th of as many equal segments, so the last block still ends the
    /// dataset and 1 (the default) holds out the last images. For a camera's frames, whose
    /// last stretch may miss what happens elsewhere in the footage.
    #[serde(default = "default_validation_blocks")]
    pub validation_blocks: usize,
    /// Images dropped (neither trained on nor held out) on each side of each held-out block,
    /// so that no held-out frame has a neighbour, a near copy, in training [default: 0].
    #[serde(default)]
    pub validation_guard: usize,
    /// Train on perturbed images: each level replaced by a random one with this probability
    /// (a background model for likelihood-ratio scores; Ren et al. 2019 use 0.1 to 0.3).
    #[serde(default)]
    pub mutation_rate: Option<f64>,
    /// Add this many synthetic images per training image (0.5: half as many again), each a
    /// training image with a moving object of another one (pixels that differ from the
    /// footage's median background) pasted at a random place. For cameras whose moving
    /// objects (people, animals) may turn up where the training footage never showed them;
    /// held-out images are never pasted on. `None` or 0: none.
    #[serde(default)]
    pub paste_objects: Option<f64>,
    /// Add a copy of every training image with all its levels shifted by one random offset
    /// in [-L, L] levels, rounded stochastically per level (an offset of 0.3 moves 30% of
    /// the levels by one). A camera's exposure drifts by fractions of a level, which a flow
    /// fitted to very still footage charges heavily. `None` or 0: none.
    #[serde(default)]
    pub exposure_jitter: Option<f64>,
    /// Use only the first `limit` training images (quick runs and tests).
    #[serde(default)]
    pub limit: Option<usize>,
}

fn default_validation() -> usize {
    5000
}

fn default_validation_blocks() -> usize {
    1
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
    /// Seeds initialisation, batch order, dequantisation noise, mutations and perturbations:
    /// each from its own generator, so the same seed gives the same model.
    #[serde(default)]
    pub seed: u64,
    /// Every this many steps (and at the end), measure the held-out images' mean bits/dim and
    /// keep the weights where it was lowest (early stopping): the final model is those
    /// weights. Off by default; needs held-out images (`data.validation` > 0): without them
    /// there is nothing to stop on, and a run that asks for it is refused rather than silently
    /// keeping its first weights.
    #[serde(default)]
    pub validate_every: Option<usize>,
    /// Save a checkpoint every this many steps (and at the end).
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
        let config: TrainConfig = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        config.validate(origin)?;
        Ok(config)
    }

    /// Checks the values (what TOML's types cannot say); `origin` names the config in errors.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        match self.problem() {
            Some(message) => Err(ConfigError::Invalid {
                path: origin.to_string(),
                message,
            }),
            None => Ok(()),
        }
    }

    fn problem(&self) -> Option<String> {
        let train = &self.train;
        let data = &self.data;
        if train.batch == 0 || train.steps == 0 {
            return Some("train.batch and train.steps must be positive".into());
        }
        if !(train.lr > 0.0 && train.lr.is_finite()) {
            return Some(format!("train.lr must be positive, got {}", train.lr));
        }
        if let Some(clip) = train.grad_clip
            && !(clip > 0.0 && clip.is_finite())
        {
            return Some(format!("train.grad_clip must be positive, got {clip}"));
        }
        if let Some(decay) = train.weight_decay
            && !(decay >= 0.0 && decay.is_finite())
        {
            return Some(format!(
                "train.weight_decay must be finite and >= 0, got {decay}"
            ));
        }
        if train.checkpoint_every == 0 {
            return Some("train.checkpoint_every must be positive".into());
        }
        if train.validate_every == Some(0) {
            return Some("train.validate_every must be positive".into());
        }
        if train.validate_every.is_some() && data.validation == 0 {
            return Some(
                "train.validate_every needs held-out images to stop on, but data.validation is \
                 0: hold some out or drop validate_every"
                    .into(),
            );
        }
        if data.validation_blocks == 0 {
            return Some(
                "data.validation_blocks must be positive (1 holds out the last images)".into(),
            );
        }
        if let Some(rate) = data.mutation_rate
            && !(0.0..=1.0).contains(&rate)
        {
            return Some(format!("data.mutation_rate must be in [0, 1], got {rate}"));
        }
        if let Some(share) = data.paste_objects
            && !(0.0..=4.0).contains(&share)
        {
            return Some(format!("data.paste_objects must be in [0, 4], got {share}"));
        }
        if let Some(levels) = data.exposure_jitter
            && !(0.0..=16.0).contains(&levels)
        {
            return Some(format!(
                "data.exposure_jitter must be in [0, 16] levels, got {levels}"
            ));
        }
        if data.paste_objects.is_some_and(|share| share > 0.0)
            && !matches!(data.dataset, DatasetSource::Folder(_))
        {
            return Some(
                "data.paste_objects is for a fixed camera's frames (a folder dataset), not an \
                 idx dataset"
                    .into(),
            );
        }
        if data.limit == Some(0) {
            return Some("data.limit must be positive (omit it to train on every image)".into());
        }
        if let Some(problem) = self.model.problem() {
            return Some(problem);
        }
        if let Architecture::Embedding { extractor, .. } = &self.model.architecture {
            return extractor.problem();
        }
        None
    }

    /// The config as TOML (saved beside checkpoints); [`TrainConfig::from_toml`] reads it back
    /// as the same config.
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        toml::to_string_pretty(self).map_err(|source| ConfigError::Serialize {
            name: self.name.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "t"
[model]
channels = 1
height = 28
width = 28
[model.architecture]
kind = "real_nvp"
scales = 2
[model.st_net]
channels = 4
blocks = 1
[data]
dataset = "fashion-mnist"
[train]
lr = 1e-3
batch = 16
steps = 10
"#;

    fn with(extra_train: &str) -> Result<TrainConfig, ConfigError> {
        TrainConfig::from_toml(&format!("{MINIMAL}{extra_train}\n"), "test.toml")
    }

    fn message(extra_train: &str) -> String {
        with(extra_train).expect_err("refused").to_string()
    }

    #[test]
    fn a_minimal_config_loads_with_defaults_and_round_trips() {
        let config = with("").expect("valid");
        assert_eq!(config.train.checkpoint_every, 500);
        assert_eq!(config.data.validation, 5000);
        let text = config.to_toml().expect("serialises");
        assert_eq!(
            TrainConfig::from_toml(&text, "again").expect("valid"),
            config
        );
    }

    #[test]
    fn checkpoint_every_zero_is_a_config_error() {
        assert!(message("checkpoint_every = 0").contains("train.checkpoint_every"));
    }

    #[test]
    fn early_stopping_without_held_out_images_is_a_config_error() {
        let text = format!("{MINIMAL}validate_every = 5\n").replace(
            "dataset = \"fashion-mnist\"",
            "dataset = \"fashion-mnist\"\nvalidation = 0",
        );
        let error = TrainConfig::from_toml(&text, "test.toml").unwrap_err();
        assert!(
            error.to_string().contains("data.validation is 0"),
            "{error}"
        );
        // Without early stopping, holding nothing out is allowed.
        let text = MINIMAL.replace(
            "dataset = \"fashion-mnist\"",
            "dataset = \"fashion-mnist\"\nvalidation = 0",
        );
        assert!(TrainConfig::from_toml(&text, "test.toml").is_ok());
    }

    #[test]
    fn values_toml_cannot_rule_out_are_refused_with_the_field_named() {
        for (extra, field) in [
            ("grad_clip = nan", "train.grad_clip"),
            ("grad_clip = -1.0", "train.grad_clip"),
            ("weight_decay = inf", "train.weight_decay"),
            ("validate_every = 0", "train.validate_every"),
        ] {
            let error = message(extra);
            assert!(error.contains(field), "{extra}: {error}");
            assert!(error.starts_with("test.toml: "), "{error}");
        }
        let zero_lr = MINIMAL.replace("lr = 1e-3", "lr = 0.0");
        let error = TrainConfig::from_toml(&zero_lr, "t").unwrap_err();
        assert!(error.to_string().contains("train.lr"), "{error}");
        let zero_limit = MINIMAL.replace(
            "dataset = \"fashion-mnist\"",
            "dataset = \"fashion-mnist\"\nlimit = 0",
        );
        let error = TrainConfig::from_toml(&zero_limit, "t").unwrap_err();
        assert!(error.to_string().contains("data.limit"), "{error}");
        let empty_image = MINIMAL.replace("height = 28", "height = 0");
        let error = TrainConfig::from_toml(&empty_image, "t").unwrap_err();
        assert!(error.to_string().contains("model.height"), "{error}");
    }

    #[test]
    fn pasted_objects_are_for_a_folder_of_frames_and_a_sane_share() {
        let with_data = |dataset: &str, share: &str| {
            let text = MINIMAL.replace(
                "dataset = \"fashion-mnist\"",
                &format!("dataset = {dataset}\npaste_objects = {share}"),
            );
            TrainConfig::from_toml(&text, "t")
        };
        let folder = "{ folder = \"frames\" }";
        let config = with_data(folder, "0.5").expect("a camera's frames may be pasted on");
        assert_eq!(config.data.paste_objects, Some(0.5));
        for (dataset, share) in [(folder, "-1.0"), (folder, "nan"), (folder, "5.0")] {
            let error = with_data(dataset, share).unwrap_err().to_string();
            assert!(
                error.contains("data.paste_objects must be in"),
                "{share}: {error}"
            );
        }
        let error = with_data("\"fashion-mnist\"", "0.5")
            .unwrap_err()
            .to_string();
        assert!(error.contains("a folder dataset"), "{error}");
        // 0 pastes nothing, so any dataset takes it.
        assert!(with_data("\"fashion-mnist\"", "0.0").is_ok());
    }

    #[test]
    fn exposure_jitter_is_a_sane_number_of_levels() {
        let jitter = |levels: &str| {
            let text = MINIMAL.replace(
                "dataset = \"fashion-mnist\"",
                &format!("dataset = \"fashion-mnist\"\nexposure_jitter = {levels}"),
            );
            TrainConfig::from_toml(&text, "t")
        };
        assert_eq!(jitter("1.5").unwrap().data.exposure_jitter, Some(1.5));
        for levels in ["-0.5", "nan", "17.0"] {
            let error = jitter(levels).unwrap_err().to_string();
            assert!(error.contains("data.exposure_jitter"), "{levels}: {error}");
        }
    }
}
