//! The camera's frames: a video (through ffmpeg, with [`crate::frames`]) or a folder of
//! images (any size, gray or colour, through the edge runtime's own decoding and area-average
//! resize), written as gray PNGs at [`super::size::EXTRACTION_SCALE`] times the gate's input
//! into the work folder, with a manifest that says where each came from. A second run with
//! the same input and size reuses them.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use flowgate_edge::io::image::{list_folder, read_image};
use flowgate_shared::{InputSpec, Preprocess, Resize};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use super::error::{FitError, FitResult};
use crate::atomic_write;
use crate::frames::{FrameRequest, extract_frames, frame_file_name};

/// The folder of frames inside the work folder.
pub const FRAMES_DIR: &str = "frames";
/// Written last, when the frames are complete: what they were made from.
pub const MANIFEST: &str = "frames.toml";
/// Where frames are written before they are complete.
const PARTIAL_DIR: &str = "frames.partial";

/// What the user gave as `--input`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A video file (anything ffmpeg reads).
    Video(PathBuf),
    /// A folder of image files, in file-name order; their paths.
    Folder {
        /// The folder.
        dir: PathBuf,
        /// Its image files, sorted by name.
        files: Vec<PathBuf>,
    },
}

impl Input {
    /// Classifies `path`, refusing a missing one or a folder without images before anything
    /// is written.
    pub fn open(path: &Path) -> FitResult<Self> {
        if path.is_dir() {
            let files = list_folder(path).map_err(|e| FitError::Trainer(e.into()))?;
            if files.is_empty() {
                return Err(FitError::EmptyFolder(path.to_path_buf()));
            }
            return Ok(Input::Folder {
                dir: path.to_path_buf(),
                files,
            });
        }
        if path.is_file() {
            return Ok(Input::Video(path.to_path_buf()));
        }
        Err(FitError::InputMissing(path.to_path_buf()))
    }

    /// The path given.
    pub fn path(&self) -> &Path {
        match self {
            Input::Video(path) => path,
            Input::Folder { dir, .. } => dir,
        }
    }

    /// The camera's frame size: the video's first frame, or the folder's first readable image.
    pub fn frame_size(&self) -> FitResult<(u32, u32)> {
        match self {
            Input::Video(video) => {
                let probe = tempfile::tempdir().map_err(FitError::io(&std::env::temp_dir()))?;
                extract_frames(&FrameRequest {
                    video: video.clone(),
                    out: probe.path().to_path_buf(),
                    size: None,
                    gray: false,
                    first: 0,
                    last: Some(0),
                    overwrite: true,
                })
                .map_err(|source| FitError::UnreadableVideo {
                    path: video.clone(),
                    source,
                })?;
                let first = probe.path().join(frame_file_name(0));
                image::image_dimensions(&first).map_err(|e| FitError::WorkFolder {
                    path: first.clone(),
                    reason: format!("ffmpeg's first frame does not decode: {e}"),
                })
            }
            Input::Folder { dir, files } => {
                let mut first_error = None;
                for file in files {
                    match read_image(file, 1) {
                        Ok(decoded) => return Ok((decoded.width, decoded.height)),
                        Err(error) => {
                            first_error.get_or_insert_with(|| error.to_string());
                        }
                    }
                }
                Err(FitError::UnreadableImages {
                    path: dir.clone(),
                    count: files.len(),
                    first: first_error.unwrap_or_default(),
                })
            }
        }
    }

    /// What identifies this input's content: its files' names, sizes and modification
    /// times and the frames taken from it (FNV-1a, hex), so changed footage or another
    /// range is extracted again.
    fn fingerprint(&self, frames: Option<&Range<usize>>) -> FitResult<String> {
        let mut hash = Fnv::default();
        if let Some(range) = frames {
            hash.write(format!("frames {}..{}", range.start, range.end).as_bytes());
        }
        let files: Vec<&PathBuf> = match self {
            Input::Video(path) => vec![path],
            Input::Folder { files, .. } => files.iter().collect(),
        };
        for file in files {
            let metadata = std::fs::metadata(file).map_err(FitError::io(file))?;
            let modified = metadata
                .modified()
                .ok()
                .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |since| since.as_nanos());
            hash.write(file.file_name().map_or(&[][..], |n| n.as_encoded_bytes()));
            hash.write(&metadata.len().to_le_bytes());
            hash.write(&modified.to_le_bytes());
        }
        Ok(format!("{:016x}", hash.0))
    }
}

/// 64-bit FNV-1a: a stable hash (std's `DefaultHasher` may change between Rust releases).
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The work folder's frames and where each came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The input, as given.
    pub input: String,
    /// [`Input::fingerprint`] of it.
    pub fingerprint: String,
    /// Width of the extracted frames.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// File names in the frames folder, in the order training reads them (file-name order).
    pub frames: Vec<String>,
    /// Per frame, where it came from: "frame 123" of a video, or the image file's name.
    pub origins: Vec<String>,
    /// Image files of a folder that could not be read, with why (not used).
    #[serde(default)]
    pub skipped: Vec<String>,
}

/// The frames of a work folder, extracted or reused.
#[derive(Debug, Clone)]
pub struct Frames {
    /// The folder of frame PNGs.
    pub dir: PathBuf,
    /// What they are.
    pub manifest: Manifest,
    /// Whether an earlier run's frames were reused (then its trainings may resume).
    pub reused: bool,
}

/// The frames of `input` (only positions `frames` of it when given: frame numbers of a video,
/// places in a folder's file-name order) at `size` in `work/frames`, reused when an earlier
/// run made them from the same input and range at the same size.
pub fn prepare(
    input: &Input,
    frames: Option<&Range<usize>>,
    work: &Path,
    size: (u32, u32),
) -> FitResult<Frames> {
    let dir = work.join(FRAMES_DIR);
    let manifest_path = work.join(MANIFEST);
    let fingerprint = input.fingerprint(frames)?;
    if let Some(manifest) = read_manifest(&manifest_path)?
        && manifest.fingerprint == fingerprint
        && (manifest.width, manifest.height) == size
        && frames_present(&dir, &manifest.frames)
    {
        return Ok(Frames {
            dir,
            manifest,
            reused: true,
        });
    }
    // The manifest goes first: until the new one is written, no run may take the frames
    // folder for finished.
    remove_file_if_present(&manifest_path)?;
    let partial = work.join(PARTIAL_DIR);
    remove_dir_if_present(&partial)?;
    std::fs::create_dir_all(&partial).map_err(FitError::io(&partial))?;
    let (frames, origins, skipped) = match input {
        Input::Video(video) => extract_video(video, frames, &partial, size)?,
        Input::Folder { dir, files } => {
            let files = match frames {
                Some(range) => files
                    .get(range.clone())
                    .ok_or_else(|| FitError::FrameRange {
                        range: range.clone(),
                        available: files.len(),
                    })?,
                None => files,
            };
            convert_folder(dir, files, &partial, size)?
        }
    };
    remove_dir_if_present(&dir)?;
    std::fs::rename(&partial, &dir).map_err(FitError::io(&dir))?;
    let manifest = Manifest {
        input: input.path().display().to_string(),
        fingerprint,
        width: size.0,
        height: size.1,
        frames,
        origins,
        skipped,
    };
    let text = toml::to_string_pretty(&manifest).map_err(|e| FitError::WorkFolder {
        path: manifest_path.clone(),
        reason: e.to_string(),
    })?;
    atomic_write::write_bytes(&manifest_path, text.as_bytes())
        .map_err(|e| FitError::Trainer(e.into()))?;
    Ok(Frames {
        dir,
        manifest,
        reused: false,
    })
}

type Extracted = (Vec<String>, Vec<String>, Vec<String>);

fn extract_video(
    video: &Path,
    range: Option<&Range<usize>>,
    out: &Path,
    (width, height): (u32, u32),
) -> FitResult<Extracted> {
    let written = extract_frames(&FrameRequest {
        video: video.to_path_buf(),
        out: out.to_path_buf(),
        size: Some((width, height)),
        gray: true,
        first: range.map_or(0, |r| r.start as u64),
        last: range.map(|r| r.end as u64 - 1),
        overwrite: true,
    })
    .map_err(|source| FitError::UnreadableVideo {
        path: video.to_path_buf(),
        source,
    })?;
    if let Some(range) = range
        && written != range.len()
    {
        return Err(FitError::FrameRange {
            range: range.clone(),
            available: range.start + written,
        });
    }
    let mut frames: Vec<String> = std::fs::read_dir(out)
        .map_err(FitError::io(out))?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("frame-") && name.ends_with(".png"))
        .collect();
    frames.sort();
    let origins = frames
        .iter()
        .map(|name| {
            let index = name
                .trim_start_matches("frame-")
                .trim_end_matches(".png")
                .trim_start_matches('0');
            format!("frame {}", if index.is_empty() { "0" } else { index })
        })
        .collect();
    Ok((frames, origins, Vec::new()))
}

fn convert_folder(
    dir: &Path,
    files: &[PathBuf],
    out: &Path,
    (width, height): (u32, u32),
) -> FitResult<Extracted> {
    let spec = InputSpec {
        channels: 1,
        height,
        width,
        // Only the size and channels matter for `frame_levels`.
        preprocess: Preprocess::Logit { alpha: 0.05 },
        resize: Resize::AreaAverage,
    };
    let bar = ProgressBar::new(files.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} images ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(format!("frames of {}", dir.display()));
    let mut levels = vec![0f32; (width * height) as usize];
    let (mut frames, mut origins, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
    for file in files {
        bar.inc(1);
        let converted = read_image(file, 1)
            .map_err(|e| e.to_string())
            .and_then(|decoded| {
                let frame = decoded.frame().map_err(|e| e.to_string())?;
                flowgate_edge::preprocess::frame_levels(&frame, &spec, &mut levels)
                    .map_err(|e| format!("{}: {e}", file.display()))
            });
        if let Err(reason) = converted {
            skipped.push(reason);
            continue;
        }
        let name = frame_file_name(frames.len() as u64);
        let pixels = levels.iter().map(|&v| v as u8).collect();
        let path = out.join(&name);
        image::GrayImage::from_raw(width, height, pixels)
            .ok_or_else(|| FitError::WorkFolder {
                path: path.clone(),
                reason: "frame buffer of the wrong size".into(),
            })?
            .save(&path)
            .map_err(|e| FitError::WorkFolder {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        frames.push(name);
        origins.push(file.file_name().map_or_else(
            || file.display().to_string(),
            |n| n.to_string_lossy().into(),
        ));
    }
    bar.finish_and_clear();
    for reason in &skipped {
        eprintln!("warning: skipped {reason}");
    }
    if frames.is_empty() {
        return Err(FitError::UnreadableImages {
            path: dir.to_path_buf(),
            count: files.len(),
            first: skipped.first().cloned().unwrap_or_default(),
        });
    }
    Ok((frames, origins, skipped))
}

fn read_manifest(path: &Path) -> FitResult<Option<Manifest>> {
    match std::fs::read_to_string(path) {
        // A manifest that does not parse is an older or damaged one: extract again.
        Ok(text) => Ok(toml::from_str(&text).ok()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(FitError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn frames_present(dir: &Path, frames: &[String]) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let count = entries
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".png"))
        .count();
    count == frames.len() && frames.iter().all(|name| dir.join(name).is_file())
}

fn remove_file_if_present(path: &Path) -> FitResult<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(FitError::Io {
            path: path.to_path_buf(),
            source: error,
        }),
        _ => Ok(()),
    }
}

/// Removes a folder of fit's own making (frames), if it is there.
pub(crate) fn remove_dir_if_present(path: &Path) -> FitResult<()> {
    match std::fs::remove_dir_all(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(FitError::Io {
            path: path.to_path_buf(),
            source: error,
        }),
        _ => Ok(()),
    }
}
