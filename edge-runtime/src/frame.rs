//! Camera frames as the gate receives them: a borrowed buffer, its geometry and pixel format.

use crate::error::FrameError;

/// How pixels are laid out in a frame buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    /// One byte of luma per pixel.
    Gray8,
    /// Three bytes per pixel: red, green, blue.
    Rgb8,
    /// Three bytes per pixel: blue, green, red (OpenCV's order).
    Bgr8,
    /// Packed 4:2:2, `Y0 U Y1 V` per two pixels; the gate reads the luma.
    Yuyv,
    /// Planar 4:2:0: the luma plane first (the gate reads only it; the chroma plane may be
    /// absent from the buffer).
    Nv12,
}

impl PixelFormat {
    /// Bytes of one row of `width` pixels in the plane the gate reads.
    pub fn row_bytes(self, width: usize) -> usize {
        match self {
            PixelFormat::Gray8 | PixelFormat::Nv12 => width,
            PixelFormat::Rgb8 | PixelFormat::Bgr8 => width * 3,
            PixelFormat::Yuyv => width * 2,
        }
    }

    /// Whether the format carries colour the gate can read.
    pub fn has_color(self) -> bool {
        matches!(self, PixelFormat::Rgb8 | PixelFormat::Bgr8)
    }
}

/// The range the luma of a [`PixelFormat::Gray8`], [`PixelFormat::Yuyv`] or
/// [`PixelFormat::Nv12`] frame spans. The gate's models learn from full-range levels (what
/// image files and `ffmpeg -pix_fmt gray` hold); video pipelines often carry YUV in the
/// limited ("TV", "studio") range of ITU-R BT.601/709, black at 16 and white at 235. Scored
/// as they are, such frames look washed out to the model (the committed camera gate rejects
/// 7% of normal frames given GStreamer's limited-range luma, 0% given RGB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LumaRange {
    /// 0..=255.
    #[default]
    Full,
    /// 16..=235, expanded to 0..=255 as the gate reads it (values outside are clamped).
    Limited,
}

impl LumaRange {
    /// A luma value in the full range.
    #[inline]
    fn expand(self, value: u8) -> f32 {
        match self {
            LumaRange::Full => f32::from(value),
            LumaRange::Limited => ((f32::from(value) - 16.0) * (255.0 / 219.0)).clamp(0.0, 255.0),
        }
    }
}

/// A borrowed camera frame whose buffer is known to hold its declared geometry.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    data: &'a [u8],
    width: u32,
    height: u32,
    stride: usize,
    format: PixelFormat,
    luma_range: LumaRange,
}

impl<'a> Frame<'a> {
    /// A frame of `width` x `height` pixels whose rows start every `stride` bytes of `data`.
    pub fn new(
        data: &'a [u8],
        width: u32,
        height: u32,
        stride: usize,
        format: PixelFormat,
    ) -> Result<Self, FrameError> {
        if width == 0 || height == 0 {
            return Err(FrameError::Empty);
        }
        if format == PixelFormat::Yuyv && !width.is_multiple_of(2) {
            return Err(FrameError::OddWidth);
        }
        let row_bytes = format.row_bytes(width as usize);
        if stride < row_bytes {
            return Err(FrameError::StrideTooSmall { row_bytes, stride });
        }
        let needed = stride
            .checked_mul(height as usize - 1)
            .and_then(|n| n.checked_add(row_bytes))
            .ok_or(FrameError::BufferTooShort {
                needed: usize::MAX,
                len: data.len(),
            })?;
        if data.len() < needed {
            return Err(FrameError::BufferTooShort {
                needed,
                len: data.len(),
            });
        }
        Ok(Frame {
            data,
            width,
            height,
            stride,
            format,
            luma_range: LumaRange::Full,
        })
    }

    /// The same frame with its luma in `range` (for the luma formats: gray8, YUYV, NV12;
    /// colour formats are always read as full-range RGB).
    pub fn with_luma_range(mut self, range: LumaRange) -> Self {
        self.luma_range = range;
        self
    }

    /// The range of the frame's luma.
    pub fn luma_range(&self) -> LumaRange {
        self.luma_range
    }

    /// A tightly packed frame (stride = one row).
    pub fn packed(
        data: &'a [u8],
        width: u32,
        height: u32,
        format: PixelFormat,
    ) -> Result<Self, FrameError> {
        Self::new(
            data,
            width,
            height,
            format.row_bytes(width as usize),
            format,
        )
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

    /// Row `y` of the plane the gate reads (empty past the end, which `new` rules out).
    pub fn row(&self, y: u32) -> &'a [u8] {
        let start = self.stride * y as usize;
        let len = self.format.row_bytes(self.width as usize);
        self.data.get(start..start + len).unwrap_or(&[])
    }

    /// Pixel `x` of `row` as (R, G, B); luma-only formats give gray (in the full range,
    /// rounded).
    #[inline]
    pub fn rgb(&self, row: &[u8], x: usize) -> [u8; 3] {
        let at = |i: usize| row.get(i).copied().unwrap_or(0);
        let gray = |i: usize| {
            let value = self.luma_range.expand(at(i));
            [libm::roundf(value) as u8; 3]
        };
        match self.format {
            PixelFormat::Gray8 | PixelFormat::Nv12 => gray(x),
            PixelFormat::Yuyv => gray(2 * x),
            PixelFormat::Rgb8 => [at(3 * x), at(3 * x + 1), at(3 * x + 2)],
            PixelFormat::Bgr8 => [at(3 * x + 2), at(3 * x + 1), at(3 * x)],
        }
    }

    /// Pixel `x` of `row` as full-range luma (ITU-R BT.601 weights for colour formats).
    #[inline]
    pub fn luma(&self, row: &[u8], x: usize) -> f32 {
        let at = |i: usize| self.luma_range.expand(row.get(i).copied().unwrap_or(0));
        match self.format {
            PixelFormat::Gray8 | PixelFormat::Nv12 => at(x),
            PixelFormat::Yuyv => at(2 * x),
            PixelFormat::Rgb8 | PixelFormat::Bgr8 => {
                let [r, g, b] = self.rgb(row, x);
                luma_bt601(r, g, b)
            }
        }
    }
}

/// ITU-R BT.601 luma of an RGB pixel, unrounded.
#[inline]
pub fn luma_bt601(r: u8, g: u8, b: u8) -> f32 {
    0.299 * f32::from(r) + 0.587 * f32::from(g) + 0.114 * f32::from(b)
}
