//! The trainer library's errors. The command line (`cli`) adds context with `anyhow`; the
//! library says what went wrong in these types.

use std::io;
use std::path::PathBuf;

use crate::atomic_write::AtomicWriteError;
use crate::config::ConfigError;
use crate::data::{DatasetError, IdxError};
use crate::eval::MetricsError;
use crate::eval::plots::PlotError;
use crate::export::ExportError;
use crate::flows::FlowConfigError;
use crate::quantize::QuantizeError;

/// Results of the trainer library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in the trainer library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // Inputs: configs, datasets, image files.
    /// A config.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An idx dataset in the data dir.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// An idx file.
    #[error(transparent)]
    Idx(#[from] IdxError),
    /// An image file.
    #[error(transparent)]
    Image(#[from] flowgate_edge::io::image::ImageError),
    /// A file or folder that could not be read or created.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A folder of images without any.
    #[error("{}: no image files (png, jpg, pgm, ppm, bmp)", path.display())]
    NoImageFiles {
        /// The folder.
        path: PathBuf,
    },
    /// Image files none of which could be read.
    #[error("none of {count} image files could be read; first error: {first}")]
    UnreadableImages {
        /// Files tried.
        count: usize,
        /// Why the first failed.
        first: String,
    },
    /// An image decoded but not usable as a frame.
    #[error("{}: {reason}", path.display())]
    UnusableImage {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Images of another shape than the model takes.
    #[error(
        "{source_name} holds {}x{}x{} images, the model takes {}x{}x{}",
        found[0], found[1], found[2], expected[0], expected[1], expected[2]
    )]
    ImageShape {
        /// Where the images came from.
        source_name: String,
        /// Their `[channels, height, width]`.
        found: [usize; 3],
        /// The model's.
        expected: [usize; 3],
    },

    // Run folders and the files in them.
    /// A file of the run folder could not be written (the previous one is intact).
    #[error(transparent)]
    Write(#[from] AtomicWriteError),
    /// A folder without a readable `config.toml`.
    #[error(
        "{} is not a run folder written by `flowgate train` or `flowgate distil`: {source}",
        path.display()
    )]
    NotARunFolder {
        /// The folder.
        path: PathBuf,
        /// Why its config did not load.
        source: ConfigError,
    },
    /// burn could not save or load weights or optimiser state.
    #[error("cannot {action} {what} ({}): {message}", path.display())]
    Record {
        /// `save` or `load`.
        action: &'static str,
        /// What the file holds.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// burn's error.
        message: String,
    },
    /// A small text file of the run folder (checkpoint step, best weights) that does not say
    /// what it should.
    #[error("{}: expected {expected}, found {found:?}", path.display())]
    BadRunFile {
        /// The file.
        path: PathBuf,
        /// What it should hold.
        expected: &'static str,
        /// What it holds.
        found: String,
    },

    // Models.
    /// A flow that cannot be built from its config.
    #[error(transparent)]
    Flow(#[from] FlowConfigError),
    /// A batch too small for the data-parallel devices (`--devices`).
    #[error(
        "a batch of {batch} images cannot be split across {devices} devices (--devices); use \
         fewer devices or a larger train.batch"
    )]
    BatchTooSmallForDevices {
        /// Images per batch.
        batch: usize,
        /// Devices asked for.
        devices: usize,
    },
    /// A model that cannot be exported.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// A model file the format refuses.
    #[error("the model format: {0}")]
    Format(#[from] flowgate_shared::Error),
    /// A model the edge gate refuses, or a frame it cannot score.
    #[error("the edge gate: {0}")]
    Gate(#[from] flowgate_edge::Error),
    /// Quantisation.
    #[error(transparent)]
    Quantize(#[from] QuantizeError),
    /// A compute device that this build or machine lacks.
    #[error("{0}")]
    DeviceUnavailable(&'static str),

    // Training.
    /// No images to train on.
    #[error("{name}: no training images (data.limit, or a dataset of fewer than 2 images)")]
    NoTrainingImages {
        /// The config.
        name: String,
    },
    /// Early stopping without held-out images.
    #[error(
        "{name}: train.validate_every needs held-out images, and the dataset leaves none \
         (data.validation takes at most half of the images)"
    )]
    NoHeldOutImages {
        /// The config.
        name: String,
    },
    /// The loss became NaN or infinite.
    #[error("the {what} loss became {value} at step {step}: {hint}")]
    NonFiniteLoss {
        /// Which loss.
        what: &'static str,
        /// The step (0-based).
        step: usize,
        /// Its value.
        value: f64,
        /// What to change.
        hint: &'static str,
    },
    /// Extractor pretraining that cannot run (labels the dataset lacks, a model without an
    /// extractor).
    #[error("{0}")]
    Pretraining(&'static str),
    /// A checkpoint of another model or run.
    #[error(
        "{}: the checkpoint is at step {step}, past the run's {steps} steps: it is not this \
         config's run (use another --out, or the config it was made with)",
        path.display()
    )]
    CheckpointPastEnd {
        /// The run folder.
        path: PathBuf,
        /// The checkpoint's step.
        step: usize,
        /// The config's steps.
        steps: usize,
    },

    // Distillation.
    /// A distillation setting out of range, or a distillation batch that cannot be scored.
    #[error("{0}")]
    Distillation(String),
    /// A teacher of another input size.
    #[error(
        "teacher {} takes {teacher:?} images (channels, height, width), the student {student_name} \
         takes {student:?}; distillation needs the same input",
        run.display()
    )]
    TeacherShape {
        /// The teacher's run folder.
        run: PathBuf,
        /// Its input.
        teacher: [usize; 3],
        /// The student's config name.
        student_name: String,
        /// Its input.
        student: [usize; 3],
    },
    /// A teacher whose scores cannot be standardised.
    #[error("teacher {}: {reason}", run.display())]
    TeacherScores {
        /// The teacher's run folder.
        run: PathBuf,
        /// Why.
        reason: String,
    },
    /// An image that cannot be perturbed.
    #[error("{0}")]
    Perturbation(String),

    // Evaluation and calibration.
    /// Scores (empty, NaN, -inf).
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// A plot.
    #[error(transparent)]
    Plot(#[from] PlotError),
    /// A score CSV that is not one.
    #[error("{}: {reason}", path.display())]
    ScoreCsv {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A request the evaluation or calibration cannot carry out.
    #[error("{0}")]
    Evaluation(String),
    /// The detail branch cannot be made from this input or gate.
    #[error("detail branch: {0}")]
    Detail(String),
    /// Another training holds the run folder.
    #[error(
        "{}: another flowgate train or distil is writing into this run folder; wait for it to finish or choose another --out",
        path.display()
    )]
    RunInUse {
        /// The run folder.
        path: PathBuf,
    },
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}
