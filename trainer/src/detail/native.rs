//! The camera's frames at their own size, gray, one at a time: streamed from ffmpeg for a
//! video, decoded file by file for a folder. Nothing is written to disk: a 768x576 frame is
//! 442 KB, and the branch needs only patches of most of them.

use std::io::Read;
use std::process::{Command, Stdio};

use flowgate_edge::io::image::read_image;
use flowgate_edge::{Frame, PixelFormat};
use indicatif::{ProgressBar, ProgressStyle};

use crate::error::{Error, Result};
use crate::fit::Input;

/// Calls `each` with every frame of `input` in order (a folder's unreadable images are
/// skipped, as `flowgate fit` skips them, so frame numbers agree with fit's) and returns
/// how many there were. Every frame must be `size` (width, height): the detail branch reads
/// one camera's frames at one size.
pub fn for_each_frame(
    input: &Input,
    size: (u32, u32),
    progress: bool,
    mut each: impl FnMut(usize, &Frame<'_>) -> Result<()>,
) -> Result<usize> {
    let bar = if progress {
        ProgressBar::no_length()
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{msg} {pos} frames ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(format!(
        "{}x{} frames of {}",
        size.0,
        size.1,
        input.path().display()
    ));
    let count = match input {
        Input::Video(video) => video_frames(video, size, |index, frame| {
            bar.inc(1);
            each(index, frame)
        })?,
        Input::Folder { files, .. } => {
            let mut index = 0;
            for file in files {
                let Ok(decoded) = read_image(file, 1) else {
                    continue;
                };
                if (decoded.width, decoded.height) != size {
                    return Err(Error::Detail(format!(
                        "{} is {}x{}, the first frame {}x{}: the detail branch needs every frame \
                         at the camera's one size",
                        file.display(),
                        decoded.width,
                        decoded.height,
                        size.0,
                        size.1
                    )));
                }
                let frame = decoded.frame().map_err(flowgate_edge::Error::from)?;
                each(index, &frame)?;
                bar.inc(1);
                index += 1;
            }
            index
        }
    };
    bar.finish_and_clear();
    Ok(count)
}

/// The video's frames as ffmpeg decodes them to full-range gray (as `flowgate fit` extracts
/// its thumbnails' frames), read from its stdout.
fn video_frames(
    video: &std::path::Path,
    (width, height): (u32, u32),
    mut each: impl FnMut(usize, &Frame<'_>) -> Result<()>,
) -> Result<usize> {
    let mut child = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-i"])
        .arg(video)
        .args([
            "-fps_mode",
            "passthrough",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
        ])
        .arg("pipe:1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Detail(format!("cannot start ffmpeg: {e}")))?;
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| Error::Detail("ffmpeg has no stdout".into()))?;
    let mut buffer = vec![0u8; width as usize * height as usize];
    let mut index = 0;
    let result = loop {
        match read_frame(&mut stdout, &mut buffer) {
            Ok(false) => break Ok(index),
            Ok(true) => {}
            Err(e) => break Err(Error::io(video)(e)),
        }
        let frame = Frame::packed(&buffer, width, height, PixelFormat::Gray8)
            .map_err(flowgate_edge::Error::from)?;
        if let Err(e) = each(index, &frame) {
            break Err(e);
        }
        index += 1;
    };
    drop(stdout);
    if result.is_err() {
        let _ = child.kill();
    }
    let output = child.wait_with_output().map_err(Error::io(video))?;
    let count = result?;
    if !output.status.success() {
        return Err(Error::Detail(format!(
            "ffmpeg failed on {} ({}): {}",
            video.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    if count == 0 {
        return Err(Error::Detail(format!(
            "ffmpeg decoded no frames of {}",
            video.display()
        )));
    }
    Ok(count)
}

/// Fills `buffer` with the next frame; `false` at a clean end of the stream (a partial last
/// frame is an error).
fn read_frame(reader: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<bool> {
    let mut filled = 0;
    while filled < buffer.len() {
        let Some(rest) = buffer.get_mut(filled..) else {
            break;
        };
        match reader.read(rest)? {
            0 if filled == 0 => return Ok(false),
            0 => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!(
                        "the stream ended inside a frame ({filled} of {} bytes)",
                        buffer.len()
                    ),
                ));
            }
            read => filled += read,
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_read_whole_and_a_partial_one_is_an_error() {
        let mut buffer = [0u8; 4];
        let mut stream: &[u8] = &[1, 2, 3, 4, 5, 6, 7, 8];
        assert!(read_frame(&mut stream, &mut buffer).unwrap());
        assert_eq!(buffer, [1, 2, 3, 4]);
        assert!(read_frame(&mut stream, &mut buffer).unwrap());
        assert!(!read_frame(&mut stream, &mut buffer).unwrap());
        let mut partial: &[u8] = &[1, 2];
        assert!(read_frame(&mut partial, &mut buffer).is_err());
    }
}
