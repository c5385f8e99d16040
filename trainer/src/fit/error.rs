//! What can stop `flowgate fit`, each with what the user can do about it.

use std::path::PathBuf;

use crate::frames::FramesError;

/// Why a gate could not be fitted.
#[derive(Debug, thiserror::Error)]
pub enum FitError {
    /// `--input` names nothing.
    #[error("{}: no such file or folder (give a video file or a folder of images)", .0.display())]
    InputMissing(PathBuf),
    /// `--out` names a folder.
    #[error("--out {}: is a folder; give the gate's file name, e.g. camera.fgm", .0.display())]
    OutIsFolder(PathBuf),
    /// A folder without image files.
    #[error(
        "{}: the folder holds no image files (png, jpg, pgm, ppm, bmp); give a folder of frames \
         or a video file",
        .0.display()
    )]
    EmptyFolder(PathBuf),
    /// A folder whose image files none could be decoded.
    #[error("{}: none of its {count} image files could be read; first error: {first}", path.display())]
    UnreadableImages {
        /// The folder.
        path: PathBuf,
        /// Image files tried.
        count: usize,
        /// Why the first one failed.
        first: String,
    },
    /// A file ffmpeg cannot decode (or no ffmpeg).
    #[error("{}: cannot read it as a video: {source}", path.display())]
    UnreadableVideo {
        /// The file.
        path: PathBuf,
        /// What ffmpeg (or starting it) said.
        source: FramesError,
    },
    /// `--frames` asks for frames the input does not have.
    #[error(
        "--frames {}..{}: the input has {available} frames (frame numbers of a video, places in \
         a folder's file-name order, from 0)",
        range.start,
        range.end
    )]
    FrameRange {
        /// The range asked for.
        range: std::ops::Range<usize>,
        /// How many frames the input has (as far as extraction got).
        available: usize,
    },
    /// Not enough frames for a training set and a held-out set.
    #[error(
        "{}: {found} usable frames, but fit needs at least {needed} ({held_out} held out for \
         early stopping and calibration plus as many to train on); give a longer video or more \
         images",
        input.display()
    )]
    TooFewFrames {
        /// The input.
        input: PathBuf,
        /// Frames found.
        found: usize,
        /// Frames needed.
        needed: usize,
        /// The smallest held-out set.
        held_out: usize,
    },
    /// A board config that does not load.
    #[error("--board {}: {message}", path.display())]
    BoardConfig {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The gate does not fit the board.
    #[error(
        "the gate ({what}) does not fit board {board}: {limit} needs {needed}, the board allows \
         {allowed}{hint}"
    )]
    ExceedsBoard {
        /// The board's name.
        board: String,
        /// "the recipe's student, checked before training" or "the calibrated int8 gate".
        what: &'static str,
        /// The budget exceeded.
        limit: flowgate_edge::Limit,
        /// What the gate needs.
        needed: u64,
        /// What the board allows.
        allowed: u64,
        /// What to change.
        hint: &'static str,
    },
    /// No input size near the camera's aspect ratio that both recipes' flows can take.
    #[error(
        "no gate input of width {width} near the camera's aspect ratio ({camera_width}x\
         {camera_height}) suits both recipes: {reason}"
    )]
    NoInputSize {
        /// The gate's width.
        width: usize,
        /// The camera's frame width.
        camera_width: u32,
        /// The camera's frame height.
        camera_height: u32,
        /// The last shape problem met.
        reason: String,
    },
    /// A recipe (built in or from --teacher-config / --student-config) that does not load.
    #[error("recipe {origin}: {message}")]
    Recipe {
        /// Where it came from.
        origin: String,
        /// Why it does not load.
        message: String,
    },
    /// The work folder holds frames that do not match the input any more.
    #[error("{}: {reason}", path.display())]
    WorkFolder {
        /// The folder or file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file or folder operation.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The trainer library (training, calibration, quantisation, export, plots).
    #[error(transparent)]
    Trainer(#[from] crate::Error),
}

impl FitError {
    /// A closure turning an I/O error on `path` into a [`FitError::Io`].
    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> FitError + '_ {
        move |source| FitError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Results of `flowgate fit`.
pub type FitResult<T> = std::result::Result<T, FitError>;
