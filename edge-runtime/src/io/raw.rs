//! Raw frame streams: frames of one geometry back to back, no headers (a camera pipe, a
//! `.yuv` dump, `ffmpeg -f rawvideo`).

use std::io::{self, Read};
use std::string::String;
use std::vec::Vec;

use thiserror::Error;

use crate::error::FrameError;
use crate::frame::{Frame, PixelFormat};

/// Why a raw frame stream, or its description, is unusable.
#[derive(Debug, Error)]
pub enum RawError {
    /// A frame size that is not `WIDTHxHEIGHT`.
    #[error("bad frame size {text:?}: expected WIDTHxHEIGHT with both at least 1, e.g. 640x480")]
    BadSize {
        /// What was given.
        text: String,
    },

    /// A geometry the pixel format cannot have.
    #[error("{width}x{height} {format:?} frames: {reason}")]
    Geometry {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// The pixel format.
        format: PixelFormat,
        /// What is wrong.
        reason: &'static str,
    },

    /// The stream ended inside a frame.
    #[error(
        "frame {frame}: the stream ended after {received} of the frame's {expected} bytes (a partial frame)"
    )]
    PartialFrame {
        /// Index of the partial frame (0 = the first).
        frame: u64,
        /// Bytes of it received.
        received: usize,
        /// Bytes a frame has.
        expected: usize,
    },

    /// Reading failed.
    #[error("frame {frame}: read error: {source}")]
    Read {
        /// Index of the frame being read.
        frame: u64,
        /// Why.
        source: io::Error,
    },
}

/// Most bytes one raw frame may have: the reader holds one frame, so this bounds its memory.
pub const MAX_FRAME_BYTES: usize = 128 << 20;

/// The geometry of every frame of a raw stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawGeometry {
    width: u32,
    height: u32,
    format: PixelFormat,
    frame_len: usize,
}

impl RawGeometry {
    /// Frames of `width` x `height` pixels in `format`. YUYV needs an even width, NV12 an
    /// even width and height.
    pub fn new(width: u32, height: u32, format: PixelFormat) -> Result<Self, RawError> {
        let invalid = |reason| RawError::Geometry {
            width,
            height,
            format,
            reason,
        };
        if width == 0 || height == 0 {
            return Err(invalid("width and height must be at least 1"));
        }
        let even_width = width.is_multiple_of(2);
        match format {
            PixelFormat::Yuyv if !even_width => return Err(invalid("YUYV needs an even width")),
            PixelFormat::Nv12 if !even_width || !height.is_multiple_of(2) => {
                return Err(invalid("NV12 needs an even width and height"));
            }
            _ => {}
        }
        // (2^32 - 1)^2 * 3 overflows u64: every step is checked.
        let pixels = u64::from(width) * u64::from(height);
        let bytes = match format {
            PixelFormat::Gray8 => Some(pixels),
            PixelFormat::Rgb8 | PixelFormat::Bgr8 => pixels.checked_mul(3),
            PixelFormat::Yuyv => pixels.checked_mul(2),
            // The luma plane, then the interleaved half-resolution chroma plane.
            PixelFormat::Nv12 => pixels.checked_mul(3).map(|bytes| bytes / 2),
        };
        let frame_len = bytes
            .and_then(|bytes| usize::try_from(bytes).ok())
            .filter(|&bytes| bytes <= MAX_FRAME_BYTES)
            .ok_or_else(|| invalid("frames larger than 128 MiB (an 8K RGB frame is 100 MB)"))?;
        Ok(RawGeometry {
            width,
            height,
            format,
            frame_len,
        })
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The pixel format.
    pub fn format(&self) -> PixelFormat {
        self.format
    }

    /// Bytes of one frame (for NV12 both planes, although the gate reads only the luma).
    pub fn frame_len(&self) -> usize {
        self.frame_len
    }

    /// One frame's bytes as a [`Frame`].
    pub fn frame<'a>(&self, data: &'a [u8]) -> Result<Frame<'a>, FrameError> {
        Frame::packed(data, self.width, self.height, self.format)
    }
}

/// Parses a frame size `WIDTHxHEIGHT` (`640x480`; `X` works too).
pub fn parse_size(text: &str) -> Result<(u32, u32), RawError> {
    let bad = || RawError::BadSize { text: text.into() };
    let (width, height) = text.trim().split_once(['x', 'X']).ok_or_else(bad)?;
    let parse = |dim: &str| dim.trim().parse::<u32>().ok().filter(|&dim| dim > 0);
    match (parse(width), parse(height)) {
        (Some(width), Some(height)) => Ok((width, height)),
        _ => Err(bad()),
    }
}

/// Reads the frames of a raw stream one at a time into a buffer the caller reuses.
#[derive(Debug)]
pub struct RawFrames<R> {
    reader: R,
    geometry: RawGeometry,
    next: u64,
    done: bool,
}

impl<R: Read> RawFrames<R> {
    /// Frames of `geometry` from `reader`.
    pub fn new(reader: R, geometry: RawGeometry) -> Self {
        RawFrames {
            reader,
            geometry,
            next: 0,
            done: false,
        }
    }

    /// The geometry of every frame.
    pub fn geometry(&self) -> RawGeometry {
        self.geometry
    }

    /// Reads the next frame into `buffer` and returns its index and bytes, or `None` at the
    /// end of the stream. A stream ending inside a frame is [`RawError::PartialFrame`]; after
    /// an error or the end, every call returns `None`.
    pub fn next_frame<'b>(
        &mut self,
        buffer: &'b mut Vec<u8>,
    ) -> Result<Option<(u64, &'b [u8])>, RawError> {
        if self.done {
            return Ok(None);
        }
        let expected = self.geometry.frame_len;
        buffer.resize(expected, 0);
        let frame = self.next;
        let mut received = 0;
        while let Some(rest) = buffer.get_mut(received..).filter(|rest| !rest.is_empty()) {
            match self.reader.read(rest) {
                Ok(0) => break,
                Ok(n) => received += n,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                // A non-blocking descriptor (a camera pipe opened O_NONBLOCK by its
                // producer) has no data yet: wait for it rather than fail.
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => wait_for_data(),
                Err(source) => {
                    self.done = true;
                    return Err(RawError::Read { frame, source });
                }
            }
        }
        if received < expected {
            self.done = true;
            return if received == 0 {
                Ok(None)
            } else {
                Err(RawError::PartialFrame {
                    frame,
                    received,
                    expected,
                })
            };
        }
        self.next += 1;
        Ok(Some((frame, buffer.as_slice())))
    }
}

/// A short pause before retrying a non-blocking read: the frames arrive at camera rate, so a
/// millisecond adds no visible latency and keeps the loop off the CPU.
fn wait_for_data() {
    std::thread::sleep(std::time::Duration::from_millis(1));
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use std::string::ToString;
    use std::vec;

    use super::*;

    #[test]
    fn frame_sizes_per_format() {
        let len = |format| RawGeometry::new(4, 2, format).unwrap().frame_len();
        assert_eq!(len(PixelFormat::Gray8), 8);
        assert_eq!(len(PixelFormat::Rgb8), 24);
        assert_eq!(len(PixelFormat::Bgr8), 24);
        assert_eq!(len(PixelFormat::Yuyv), 16);
        assert_eq!(len(PixelFormat::Nv12), 12);
        assert!(RawGeometry::new(3, 2, PixelFormat::Yuyv).is_err());
        assert!(RawGeometry::new(4, 3, PixelFormat::Nv12).is_err());
        assert!(RawGeometry::new(0, 3, PixelFormat::Gray8).is_err());
    }

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_size("640x480").unwrap(), (640, 480));
        assert_eq!(parse_size("28X28").unwrap(), (28, 28));
        for bad in ["640", "640x", "x480", "0x4", "4x0", "-1x4", "axb", "4x4x4"] {
            let error = parse_size(bad).expect_err(bad);
            assert!(error.to_string().contains("WIDTHxHEIGHT"), "{error}");
        }
    }

    #[test]
    fn reads_whole_frames_then_reports_a_partial_one() {
        let geometry = RawGeometry::new(2, 2, PixelFormat::Gray8).unwrap();
        let stream: Vec<u8> = (0..11).collect();
        // A reader whose reads split a frame still yields whole frames.
        let reader = io::Read::chain(&stream[..5], &stream[5..]);
        let mut frames = RawFrames::new(reader, geometry);
        let mut buffer = Vec::new();
        assert_eq!(
            frames.next_frame(&mut buffer).unwrap(),
            Some((0, &[0, 1, 2, 3][..]))
        );
        assert_eq!(
            frames.next_frame(&mut buffer).unwrap(),
            Some((1, &[4, 5, 6, 7][..]))
        );
        let error = frames.next_frame(&mut buffer).expect_err("3 of 4 bytes");
        assert!(
            matches!(
                error,
                RawError::PartialFrame {
                    frame: 2,
                    received: 3,
                    expected: 4
                }
            ),
            "{error}"
        );
        assert!(error.to_string().contains("frame 2"), "{error}");
        assert_eq!(frames.next_frame(&mut buffer).unwrap(), None);

        let mut frames = RawFrames::new(&stream[..8], geometry);
        assert!(frames.next_frame(&mut buffer).unwrap().is_some());
        assert!(frames.next_frame(&mut buffer).unwrap().is_some());
        assert_eq!(frames.next_frame(&mut buffer).unwrap(), None);
        assert_eq!(
            RawFrames::new(io::empty(), geometry)
                .next_frame(&mut vec![])
                .unwrap(),
            None
        );
    }

    #[test]
    fn huge_sizes_are_errors_not_panics_or_allocations() {
        for (width, height) in [
            (u32::MAX - 1, u32::MAX - 1),
            (1 << 16, 1 << 16),
            (16384, 16384),
        ] {
            for format in [PixelFormat::Gray8, PixelFormat::Rgb8, PixelFormat::Nv12] {
                let error = RawGeometry::new(width, height, format).expect_err("too large");
                assert!(error.to_string().contains("128 MiB"), "{error}");
            }
        }
        // 8K RGB fits.
        let geometry = RawGeometry::new(7680, 4320, PixelFormat::Rgb8).unwrap();
        assert_eq!(geometry.frame_len(), 7680 * 4320 * 3);
    }

    /// A reader that has no data every other call, like a non-blocking pipe, and is
    /// interrupted by signals in between.
    struct Hesitant<'a> {
        data: &'a [u8],
        calls: usize,
    }

    impl io::Read for Hesitant<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.calls += 1;
            match self.calls % 3 {
                0 => Err(io::ErrorKind::WouldBlock.into()),
                1 => Err(io::ErrorKind::Interrupted.into()),
                _ => {
                    let n = buf.len().min(self.data.len()).min(3);
                    let (head, rest) = self.data.split_at(n);
                    buf[..n].copy_from_slice(head);
                    self.data = rest;
                    Ok(n)
                }
            }
        }
    }

    #[test]
    fn non_blocking_and_interrupted_reads_are_waited_out() {
        let geometry = RawGeometry::new(2, 2, PixelFormat::Gray8).unwrap();
        let stream: Vec<u8> = (0..8).collect();
        let mut frames = RawFrames::new(
            Hesitant {
                data: &stream,
                calls: 0,
            },
            geometry,
        );
        let mut buffer = Vec::new();
        assert_eq!(
            frames.next_frame(&mut buffer).unwrap(),
            Some((0, &[0, 1, 2, 3][..]))
        );
        assert_eq!(
            frames.next_frame(&mut buffer).unwrap(),
            Some((1, &[4, 5, 6, 7][..]))
        );
        assert_eq!(frames.next_frame(&mut buffer).unwrap(), None);
    }
}
