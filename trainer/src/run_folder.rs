//! A run folder, the one place that knows its layout: what `flowgate train` and `flowgate
//! distil` write and `score`, `export`, `eval`, `calibrate` and a teacher load.
//!
//! Every file is written atomically (see [`crate::atomic_write`]): a run killed at any moment
//! leaves each file either as it was or complete. A checkpoint is three files, so its files
//! carry their step in their names and `checkpoint-step.txt`, written last, says which step
//! is complete; the previous step's files are removed only after that.

use std::path::{Path, PathBuf};

use burn::optim::{ModuleOptimizer, OptimizerRecord};
use burn::prelude::*;

use crate::atomic_write;
use crate::config::TrainConfig;
use crate::error::{Error, Result};
use crate::export::{ExportInfo, to_file_bytes};
use crate::flows::FlowModel;

/// The files of a run folder.
pub mod files {
    /// The config the run used.
    pub const CONFIG: &str = "config.toml";
    /// Final weights (burnpack).
    pub const MODEL: &str = "model.bpk";
    /// The final weights as the edge gate's model file.
    pub const EXPORTED_MODEL: &str = "model.fgm";
    /// With `train.validate_every`: the weights with the lowest held-out objective so far.
    pub const BEST_MODEL: &str = "best-model.bpk";
    /// Their step and held-out objective, `"<step> <objective>"`.
    pub const BEST: &str = "best.txt";
    /// The step of the latest complete checkpoint, a number alone (scripts read it).
    pub const CHECKPOINT_STEP: &str = "checkpoint-step.txt";
    /// `flowgate distil`'s record: the teacher, LAMBDA, its standardisation, the final terms.
    pub const DISTIL_RECORD: &str = "distil.toml";
    /// Locked (an OS advisory lock) while a training writes into the folder.
    pub const LOCK: &str = ".lock";

    /// The checkpoint's model weights at `step`.
    pub fn checkpoint_model(step: usize) -> String {
        format!("checkpoint-{step}-model.bpk")
    }

    /// The checkpoint's optimiser state at `step`.
    pub fn checkpoint_optim(step: usize) -> String {
        format!("checkpoint-{step}-optim.bpk")
    }

    /// The step of a checkpoint file's name, if it is one.
    pub(crate) fn checkpoint_file_step(name: &str) -> Option<usize> {
        let rest = name.strip_prefix("checkpoint-")?;
        let step = rest
            .strip_suffix("-model.bpk")
            .or_else(|| rest.strip_suffix("-optim.bpk"))?;
        step.parse().ok()
    }
}

/// A training's hold on its run folder: two trainings into one folder would interleave
/// their checkpoints and overwrite each other's weights, so the second one is refused while
/// this lives. The OS releases the lock when the process ends, a killed one included, so a
/// resume after a kill is never locked out.
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
}

/// A run folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFolder {
    root: PathBuf,
}

impl RunFolder {
    /// An existing run folder (its files are checked as they are read).
    pub fn open(root: &Path) -> Self {
        RunFolder {
            root: root.to_path_buf(),
        }
    }

    /// Creates the folder (and its parents) for a run and locks it for this training (see
    /// [`RunLock`]), then removes the temporary files a killed run may have left in it: only
    /// under the lock, as they may be another live training's writes in progress.
    pub fn create(root: &Path) -> Result<(Self, RunLock)> {
        std::fs::create_dir_all(root).map_err(Error::io(root))?;
        let folder = RunFolder::open(root);
        let lock = folder.lock()?;
        folder.remove_stale_temporaries()?;
        Ok((folder, lock))
    }

    /// Takes the folder's lock, or fails at once if another process holds it.
    fn lock(&self) -> Result<RunLock> {
        let path = self.path(files::LOCK);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(Error::io(&path))?;
        match file.try_lock() {
            Ok(()) => Ok(RunLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::RunInUse {
                path: self.root.clone(),
            }),
            Err(std::fs::TryLockError::Error(source)) => Err(Error::Io { path, source }),
        }
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of one of its files (see [`files`]).
    pub fn path(&self, file: &str) -> PathBuf {
        self.root.join(file)
    }

    /// Writes `bytes` as `file`, atomically.
    pub fn write(&self, file: &str, bytes: &[u8]) -> Result<PathBuf> {
        let path = self.path(file);
        atomic_write::write_bytes(&path, bytes)?;
        Ok(path)
    }

    /// Writes the run's config.
    pub fn write_config(&self, config: &TrainConfig) -> Result<()> {
        self.write(files::CONFIG, config.to_toml()?.as_bytes())?;
        Ok(())
    }

    /// The run's config.
    pub fn read_config(&self) -> Result<TrainConfig> {
        TrainConfig::load(&self.path(files::CONFIG)).map_err(|source| Error::NotARunFolder {
            path: self.root.clone(),
            source,
        })
    }

    /// The run's config and final weights, for evaluation on the CPU.
    pub fn load_trained(&self) -> Result<(TrainConfig, FlowModel)> {
        self.load_trained_on(&burn::prelude::Device::flex())
    }

    /// [`RunFolder::load_trained`] on `device` (non-autodiff).
    pub fn load_trained_on(
        &self,
        device: &burn::prelude::Device,
    ) -> Result<(TrainConfig, FlowModel)> {
        let config = self.read_config()?;
        let model = crate::scoring::load_for_eval_on(&config, &self.path(files::MODEL), device)?;
        Ok((config, model))
    }

    /// Saves the final weights; returns their path.
    pub fn save_model(&self, model: &FlowModel) -> Result<PathBuf> {
        let path = self.path(files::MODEL);
        save_weights(model, &path, "the model")?;
        Ok(path)
    }

    /// Writes `model` as the edge gate's model file; returns its path.
    pub fn export(&self, model: &FlowModel, name: &str, provenance: &str) -> Result<PathBuf> {
        let bytes = to_file_bytes(
            &model.for_inference(),
            &ExportInfo {
                name,
                provenance,
                ..ExportInfo::default()
            },
        )?;
        self.write(files::EXPORTED_MODEL, &bytes)
    }

    /// Saves the best weights so far and then their step and objective (a run killed between
    /// the two redoes the validation from its last checkpoint, which comes before it).
    pub fn save_best(&self, model: &FlowModel, step: usize, objective: f64) -> Result<()> {
        save_weights(model, &self.path(files::BEST_MODEL), "the best weights")?;
        self.write(files::BEST, format!("{step} {objective}\n").as_bytes())?;
        Ok(())
    }

    /// The best weights' step and objective, if the run has saved any.
    pub fn read_best(&self) -> Result<Option<(usize, f64)>> {
        let Some(text) = self.read_optional(files::BEST)? else {
            return Ok(None);
        };
        let parsed = text
            .split_once(' ')
            .and_then(|(step, objective)| {
                Some((step.trim().parse().ok()?, objective.trim().parse().ok()?))
            })
            .ok_or_else(|| Error::BadRunFile {
                path: self.path(files::BEST),
                expected: "\"<step> <held-out objective>\"",
                found: text.clone(),
            })?;
        Ok(Some(parsed))
    }

    /// `model` with the best weights loaded.
    pub fn load_best(&self, model: FlowModel) -> Result<FlowModel> {
        load_weights(model, &self.path(files::BEST_MODEL), "the best weights")
    }

    /// Saves a checkpoint after `step` steps: weights, optimiser state, then the step that
    /// makes them the latest; the previous checkpoint's files go last.
    pub fn save_checkpoint(
        &self,
        step: usize,
        model: &FlowModel,
        optim: &ModuleOptimizer,
    ) -> Result<()> {
        save_weights(
            model,
            &self.path(&files::checkpoint_model(step)),
            "the checkpoint",
        )?;
        let optim_path = self.path(&files::checkpoint_optim(step));
        let bytes = optim.into_bytes().map_err(|e| Error::Record {
            action: "save",
            what: "the optimiser state",
            path: optim_path.clone(),
            message: format!("{e:?}"),
        })?;
        atomic_write::write_bytes(&optim_path, &bytes)?;
        self.write(files::CHECKPOINT_STEP, format!("{step}\n").as_bytes())?;
        self.remove_checkpoints_other_than(step)
    }

    /// The step of the latest complete checkpoint, if any.
    pub fn checkpoint_step(&self) -> Result<Option<usize>> {
        let Some(text) = self.read_optional(files::CHECKPOINT_STEP)? else {
            return Ok(None);
        };
        text.trim()
            .parse()
            .map(Some)
            .map_err(|_| Error::BadRunFile {
                path: self.path(files::CHECKPOINT_STEP),
                expected: "a step number",
                found: text.clone(),
            })
    }

    /// `model` and `optim` as the checkpoint after `step` left them.
    pub fn load_checkpoint(
        &self,
        step: usize,
        model: FlowModel,
        optim: ModuleOptimizer,
    ) -> Result<(FlowModel, ModuleOptimizer)> {
        let model = load_weights(
            model,
            &self.path(&files::checkpoint_model(step)),
            "the checkpoint's weights",
        )?;
        let optim_path = self.path(&files::checkpoint_optim(step));
        let record = OptimizerRecord::load(&optim_path).map_err(|e| Error::Record {
            action: "load",
            what: "the checkpoint's optimiser state",
            path: optim_path,
            message: format!("{e:?}"),
        })?;
        Ok((model, optim.load_record(record)))
    }

    /// Removes an earlier run's checkpoints and best weights, so that a new run in the folder
    /// is never mistaken for their continuation.
    pub fn clear_progress(&self) -> Result<()> {
        // The files that say what is complete go first: a kill midway leaves no step file
        // naming removed weights.
        for file in [files::CHECKPOINT_STEP, files::BEST] {
            self.remove_if_present(file)?;
        }
        for name in self.file_names()? {
            if name == files::BEST_MODEL || files::checkpoint_file_step(&name).is_some() {
                self.remove_if_present(&name)?;
            }
        }
        Ok(())
    }

    fn remove_if_present(&self, file: &str) -> Result<()> {
        let path = self.path(file);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(Error::Io { path, source }),
        }
    }

    fn read_optional(&self, file: &str) -> Result<Option<String>> {
        let path = self.path(file);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Io { path, source }),
        }
    }

    fn file_names(&self) -> Result<Vec<String>> {
        let entries = std::fs::read_dir(&self.root).map_err(Error::io(&self.root))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(Error::io(&self.root))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }

    fn remove_checkpoints_other_than(&self, step: usize) -> Result<()> {
        for name in self.file_names()? {
            if files::checkpoint_file_step(&name).is_some_and(|other| other != step) {
                self.remove_if_present(&name)?;
            }
        }
        Ok(())
    }

    /// Hidden `.NAME.*.tmp` files are atomic writes a killed run did not finish.
    fn remove_stale_temporaries(&self) -> Result<()> {
        for name in self.file_names()? {
            if name.starts_with('.') && name.ends_with(".tmp") {
                self.remove_if_present(&name)?;
            }
        }
        Ok(())
    }
}

/// Saves `model`'s record (weights and batch-norm running statistics) as a burnpack file,
/// atomically, the statistics with the latest training step's update committed (see
/// [`FlowModel::commit_running_statistics`]): the record is then the model that validation
/// scored and that the export writes. `what` names the file in errors.
pub fn save_weights(model: &FlowModel, path: &Path, what: &'static str) -> Result<()> {
    model.commit_running_statistics();
    let bytes = model
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| Error::Record {
            action: "save",
            what,
            path: path.to_path_buf(),
            message: format!("{e:?}"),
        })?;
    atomic_write::write_bytes(path, &bytes)?;
    Ok(())
}

/// `model` with the weights of `path` loaded.
pub fn load_weights(model: FlowModel, path: &Path, what: &'static str) -> Result<FlowModel> {
    model.try_load_file(path).map_err(|e| Error::Record {
        action: "load",
        what,
        path: path.to_path_buf(),
        message: format!("{e:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_file_names_carry_their_step() {
        assert_eq!(files::checkpoint_model(12), "checkpoint-12-model.bpk");
        assert_eq!(
            files::checkpoint_file_step("checkpoint-12-model.bpk"),
            Some(12)
        );
        assert_eq!(
            files::checkpoint_file_step("checkpoint-3-optim.bpk"),
            Some(3)
        );
        assert_eq!(files::checkpoint_file_step(files::CHECKPOINT_STEP), None);
        assert_eq!(files::checkpoint_file_step("checkpoint-x-model.bpk"), None);
    }

    #[test]
    fn a_folder_without_a_config_is_not_a_run_folder() {
        let dir = std::env::temp_dir().join(format!("flowgate-not-a-run-{}", std::process::id()));
        let (folder, _lock) = RunFolder::create(&dir).expect("creates");
        let error = folder.read_config().expect_err("no config").to_string();
        assert!(error.contains("is not a run folder"), "{error}");
        assert_eq!(folder.checkpoint_step().expect("reads"), None);
        folder
            .write(files::CHECKPOINT_STEP, b"twelve\n")
            .expect("writes");
        let error = folder
            .checkpoint_step()
            .expect_err("not a number")
            .to_string();
        assert!(error.contains("a step number"), "{error}");
        folder.write(files::BEST, b"4\n").expect("writes");
        assert!(folder.read_best().is_err());
        std::fs::remove_dir_all(dir).expect("cleans up");
    }
}
