//! Video to numbered PNG frames, with ffmpeg as a subprocess (Debian's `ffmpeg`; the fetch
//! script installs it): decoding every codec a camera or a sample video may use is not the
//! product's job.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use indicatif::{ProgressBar, ProgressStyle};

/// Why frames could not be extracted.
#[derive(Debug, thiserror::Error)]
pub enum FramesError {
    /// The video file is missing.
    #[error("{}: no such video file", .0.display())]
    NoVideo(PathBuf),
    /// `--last` before `--first`.
    #[error("--last {last} is before --first {first}")]
    EmptyRange {
        /// The first frame asked for.
        first: u64,
        /// The last.
        last: u64,
    },
    /// Frames already in the output folder.
    #[error(
        "{} already holds {existing} frame-*.png files; pass --overwrite to replace them",
        out.display()
    )]
    FramesExist {
        /// The folder.
        out: PathBuf,
        /// Frames in it.
        existing: usize,
    },
    /// ffmpeg is not installed.
    #[error(
        "ffmpeg not found: install it (sudo apt-get install ffmpeg; scripts/fetch-data.sh does \
         on CI)"
    )]
    NoFfmpeg,
    /// ffmpeg failed.
    #[error("ffmpeg failed on {} ({status}): {stderr}", video.display())]
    Ffmpeg {
        /// The video.
        video: PathBuf,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it said.
        stderr: String,
    },
    /// ffmpeg wrote nothing.
    #[error("ffmpeg wrote no frames from {} (is --first {first} past the end?)", video.display())]
    NoFrames {
        /// The video.
        video: PathBuf,
        /// The first frame asked for.
        first: u64,
    },
    /// A folder or a pipe failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

type Result<T, E = FramesError> = std::result::Result<T, E>;

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> FramesError {
    let what = what.into();
    move |source| FramesError::Io { what, source }
}

/// What to extract.
#[derive(Debug, Clone)]
pub struct FrameRequest {
    /// The video file.
    pub video: PathBuf,
    /// Output folder; frames are written as `frame-NNNNNN.png`, numbered by their index in
    /// the video.
    pub out: PathBuf,
    /// Scale to this width and height (area averaging); `None` keeps the video's size.
    pub size: Option<(u32, u32)>,
    /// Convert to 8-bit gray.
    pub gray: bool,
    /// First frame index to keep (0-based).
    pub first: u64,
    /// Last frame index to keep (inclusive); `None`: to the end.
    pub last: Option<u64>,
    /// Replace frames already in `out`.
    pub overwrite: bool,
}

/// The file name of frame `index`.
pub fn frame_file_name(index: u64) -> String {
    format!("frame-{index:06}.png")
}

/// Extracts the frames and returns how many were written.
pub fn extract_frames(request: &FrameRequest) -> Result<usize> {
    if !request.video.is_file() {
        return Err(FramesError::NoVideo(request.video.clone()));
    }
    if let Some(last) = request.last
        && last < request.first
    {
        return Err(FramesError::EmptyRange {
            first: request.first,
            last,
        });
    }
    std::fs::create_dir_all(&request.out)
        .map_err(io(format!("cannot create {}", request.out.display())))?;
    let existing = count_frames(&request.out)?;
    if existing > 0 && !request.overwrite {
        return Err(FramesError::FramesExist {
            out: request.out.clone(),
            existing,
        });
    }
    let selection = match request.last {
        Some(last) => format!("select='between(n\\,{}\\,{last})'", request.first),
        None => format!("select='gte(n\\,{})'", request.first),
    };
    let mut filters = vec![selection];
    if let Some((width, height)) = request.size {
        filters.push(format!("scale={width}:{height}:flags=area"));
    }
    if request.gray {
        filters.push("format=gray".to_owned());
    }
    let pattern = request.out.join("frame-%06d.png");
    let mut child = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(&request.video)
        .args(["-vf", &filters.join(",")])
        .args(["-fps_mode", "passthrough", "-start_number"])
        .arg(request.first.to_string())
        .args(["-progress", "pipe:1", "-nostats"])
        .arg(&pattern)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::NotFound => FramesError::NoFfmpeg,
            _ => io("cannot start ffmpeg")(error),
        })?;
    let bar = match request.last {
        Some(last) => ProgressBar::new(last - request.first + 1),
        None => ProgressBar::no_length(),
    };
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} frames ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(format!("frames of {}", request.video.display()));
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            if let Some(count) = line
                .map_err(io("reading ffmpeg's progress"))?
                .strip_prefix("frame=")
                && let Ok(count) = count.trim().parse::<u64>()
            {
                bar.set_position(count);
            }
        }
    }
    let output = child.wait_with_output().map_err(io("waiting for ffmpeg"))?;
    bar.finish_and_clear();
    if !output.status.success() {
        return Err(FramesError::Ffmpeg {
            video: request.video.clone(),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    let written = count_frames(&request.out)?;
    if written == 0 {
        return Err(FramesError::NoFrames {
            video: request.video.clone(),
            first: request.first,
        });
    }
    Ok(written)
}

fn count_frames(dir: &Path) -> Result<usize> {
    let mut count = 0;
    let listing = format!("cannot list {}", dir.display());
    for entry in std::fs::read_dir(dir).map_err(io(listing.clone()))? {
        let name = entry.map_err(io(listing.clone()))?.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("frame-") && name.ends_with(".png") {
            count += 1;
        }
    }
    Ok(count)
}

/// Parses `WIDTHxHEIGHT`.
pub fn parse_size(text: &str) -> Result<(u32, u32), String> {
    let (width, height) = text
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("expected WIDTHxHEIGHT, e.g. 128x96, got '{text}'"))?;
    let parse = |part: &str| {
        part.trim()
            .parse::<u32>()
            .ok()
            .filter(|&v| (1..=16384).contains(&v))
            .ok_or_else(|| format!("'{part}' in '{text}' is not a size in 1..=16384"))
    };
    Ok((parse(width)?, parse(height)?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_bad_ones_explain() {
        assert_eq!(parse_size("128x96").unwrap(), (128, 96));
        assert_eq!(parse_size("32X24").unwrap(), (32, 24));
        for bad in ["128", "0x5", "ax3", "5x99999"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(frame_file_name(7), "frame-000007.png");
    }
}
