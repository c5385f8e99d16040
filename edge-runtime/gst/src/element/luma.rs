//! The `luma-range` property: whether the frames' luma spans 0-255 or video's 16-235.
//!
//! The gate's models learn full-range luma (ffmpeg's `gray`, image files). GStreamer's YUV
//! formats carry limited-range luma unless their caps say otherwise, and read as they are,
//! such frames look darker and flatter than anything the model saw: the committed camera
//! gate rejected 14 of vtest.avi's 195 held-out normal frames fed I420, none fed RGB.
//! `auto` takes the range from the caps' colorimetry, with GStreamer's defaults where the
//! caps name none.

use flowgate_edge::LumaRange;
use gst::glib;
use gst_video::{VideoColorRange, VideoFormat};

/// The element's choice of luma range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, glib::Enum)]
#[enum_type(name = "GstFlowgateLumaRange")]
pub enum LumaChoice {
    /// The caps' colorimetry: its range where it names one; otherwise GStreamer's default
    /// for the format (16-235 for YUY2, NV12 and I420; 0-255 for GRAY8).
    #[default]
    #[enum_value(
        name = "Auto: the caps' colorimetry, else GStreamer's default",
        nick = "auto"
    )]
    Auto,
    /// 0-255 whatever the caps say.
    #[enum_value(name = "Full: luma spans 0-255", nick = "full")]
    Full,
    /// 16-235 whatever the caps say (for example GRAY8 that videoconvert took unchanged
    /// from a YUV decoder's luma plane, which keeps the decoder's range but gets GRAY8's
    /// full-range caps).
    #[enum_value(name = "Limited: video luma, 16-235", nick = "limited")]
    Limited,
}

impl LumaChoice {
    /// The range the gate reads `format`'s luma with, given the caps' `range` (GStreamer
    /// fills in the format's default when the caps name none, or reports `Unknown`). RGB
    /// and BGR are read as full range: their luma is computed, not carried.
    pub fn range(self, format: VideoFormat, range: VideoColorRange) -> LumaRange {
        if matches!(format, VideoFormat::Rgb | VideoFormat::Bgr) {
            return LumaRange::Full;
        }
        match self {
            LumaChoice::Full => LumaRange::Full,
            LumaChoice::Limited => LumaRange::Limited,
            LumaChoice::Auto => match range {
                VideoColorRange::Range0_255 => LumaRange::Full,
                VideoColorRange::Range16_235 => LumaRange::Limited,
                // GStreamer's own defaults: YUV is limited, gray is full.
                _ if format == VideoFormat::Gray8 => LumaRange::Full,
                _ => LumaRange::Limited,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_follows_the_caps_then_gstreamers_defaults_and_overrides_win() {
        use VideoColorRange::{Range0_255, Range16_235, Unknown};
        let auto = LumaChoice::Auto;
        for yuv in [VideoFormat::I420, VideoFormat::Nv12, VideoFormat::Yuy2] {
            assert_eq!(auto.range(yuv, Range16_235), LumaRange::Limited);
            assert_eq!(auto.range(yuv, Unknown), LumaRange::Limited);
            assert_eq!(auto.range(yuv, Range0_255), LumaRange::Full);
        }
        assert_eq!(auto.range(VideoFormat::Gray8, Unknown), LumaRange::Full);
        assert_eq!(auto.range(VideoFormat::Gray8, Range0_255), LumaRange::Full);
        assert_eq!(
            auto.range(VideoFormat::Gray8, Range16_235),
            LumaRange::Limited
        );
        for format in [VideoFormat::Gray8, VideoFormat::I420] {
            assert_eq!(
                LumaChoice::Limited.range(format, Range0_255),
                LumaRange::Limited
            );
            assert_eq!(LumaChoice::Full.range(format, Range16_235), LumaRange::Full);
        }
        assert_eq!(
            LumaChoice::Limited.range(VideoFormat::Rgb, Range16_235),
            LumaRange::Full
        );
    }
}
