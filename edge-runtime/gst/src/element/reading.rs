//! How the gate reads each video format the element accepts: which plane, as which of the
//! runtime's pixel formats. The gate reads the frame where it lies (no copy, no conversion).

use flowgate_edge::{Frame, LumaRange, PixelFormat};
use gst_video::{VideoFormat, VideoFrameExt, VideoFrameRef};

/// The caps' formats, in the order of preference the pad templates list them.
pub(super) const FORMATS: [VideoFormat; 6] = [
    VideoFormat::Gray8,
    VideoFormat::Rgb,
    VideoFormat::Bgr,
    VideoFormat::Yuy2,
    VideoFormat::Nv12,
    VideoFormat::I420,
];

/// The plane the gate scores (always plane 0) and how it reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Reading {
    /// The runtime's view of plane 0.
    pub format: PixelFormat,
    /// The pixels of each row the gate reads.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// The range of the luma the gate reads (see [`super::luma::LumaChoice`]).
    pub luma_range: LumaRange,
}

/// Why a negotiated format cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Unreadable {
    /// Not one of [`FORMATS`] (the pad templates rule this out).
    Format(VideoFormat),
    /// YUY2 one pixel wide holds no complete `Y0 U Y1 V` group.
    TooNarrow,
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unreadable::Format(format) => write!(f, "the gate does not read {format:?}"),
            Unreadable::TooNarrow => f.write_str("YUY2 frames must be at least 2 pixels wide"),
        }
    }
}

impl Reading {
    /// How to read frames of `format`, `width` x `height`.
    ///
    /// GRAY8, RGB and BGR are read as they are; YUY2, NV12 and I420 by their luma: YUY2's
    /// interleaved Y, NV12's and I420's first plane (I420's as gray8 with the plane's
    /// stride). An odd-width YUY2 frame's last column shares its chroma group with padding:
    /// the gate reads the even part (one column less).
    pub(super) fn new(
        format: VideoFormat,
        width: u32,
        height: u32,
        luma_range: LumaRange,
    ) -> Result<Self, Unreadable> {
        let (format, width) = match format {
            VideoFormat::Gray8 | VideoFormat::I420 => (PixelFormat::Gray8, width),
            VideoFormat::Rgb => (PixelFormat::Rgb8, width),
            VideoFormat::Bgr => (PixelFormat::Bgr8, width),
            VideoFormat::Nv12 => (PixelFormat::Nv12, width),
            VideoFormat::Yuy2 if width < 2 => return Err(Unreadable::TooNarrow),
            VideoFormat::Yuy2 => (PixelFormat::Yuyv, width & !1),
            other => return Err(Unreadable::Format(other)),
        };
        Ok(Reading {
            format,
            width,
            height,
            luma_range,
        })
    }

    /// The gate's view of a mapped frame's plane 0.
    pub(super) fn frame<'f>(
        &self,
        frame: &'f VideoFrameRef<&gst::BufferRef>,
    ) -> Result<Frame<'f>, String> {
        let plane = frame
            .plane_data(0)
            .map_err(|error| format!("cannot read plane 0: {error}"))?;
        let stride = frame.plane_stride().first().copied().unwrap_or(0);
        let stride = usize::try_from(stride)
            .map_err(|_| format!("plane 0 has a negative stride ({stride})"))?;
        Frame::new(plane, self.width, self.height, stride, self.format)
            .map(|frame| frame.with_luma_range(self.luma_range))
            .map_err(|error| format!("bad frame: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luma_formats_read_their_first_plane_and_odd_yuy2_drops_a_column() {
        let read =
            |format| Reading::new(format, 321, 241, LumaRange::Full).map(|r| (r.format, r.width));
        assert_eq!(read(VideoFormat::Gray8), Ok((PixelFormat::Gray8, 321)));
        assert_eq!(read(VideoFormat::I420), Ok((PixelFormat::Gray8, 321)));
        assert_eq!(read(VideoFormat::Nv12), Ok((PixelFormat::Nv12, 321)));
        assert_eq!(read(VideoFormat::Rgb), Ok((PixelFormat::Rgb8, 321)));
        assert_eq!(read(VideoFormat::Bgr), Ok((PixelFormat::Bgr8, 321)));
        assert_eq!(read(VideoFormat::Yuy2), Ok((PixelFormat::Yuyv, 320)));
        assert_eq!(
            Reading::new(VideoFormat::Yuy2, 1, 8, LumaRange::Full),
            Err(Unreadable::TooNarrow)
        );
        assert_eq!(
            Reading::new(VideoFormat::Rgba, 8, 8, LumaRange::Full),
            Err(Unreadable::Format(VideoFormat::Rgba))
        );
    }
}
