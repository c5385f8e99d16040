//! numpy arrays as the gate's frames, read where they lie.
//!
//! An (H, W) array is gray8, an (H, W, 3) array RGB. Rows may lie anywhere in memory with a
//! positive step (a crop such as `frame[100:400, 50:600]` is read in place); within a row
//! the pixels, and their three channels, must be packed. Other layouts (a column step, a
//! flipped view, channels reversed) would need a copy, which this module never makes: they
//! are refused with a hint to `numpy.ascontiguousarray`.

use flowgate_edge::{Frame, PixelFormat};
use numpy::{
    PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::prelude::*;

/// A borrowed numpy frame: the array stays borrowed (numpy's borrow flags refuse writers
/// from Rust) while the gate reads `bytes`.
pub struct ArrayFrame<'py> {
    _array: PyReadonlyArrayDyn<'py, u8>,
    bytes: *const u8,
    len: usize,
    width: u32,
    height: u32,
    stride: usize,
    format: PixelFormat,
}

impl<'py> ArrayFrame<'py> {
    /// The frame an array holds, or why the gate cannot read it in place.
    pub fn new(object: &Bound<'py, PyAny>) -> Result<Self, String> {
        let Ok(array) = object.cast::<PyArrayDyn<u8>>() else {
            return Err(match object.cast::<PyUntypedArray>() {
                Ok(array) => format!(
                    "frames are uint8 arrays; this one is {}",
                    array
                        .dtype()
                        .str()
                        .map_or_else(|_| "another type".into(), |s| s.to_string())
                ),
                Err(_) => format!(
                    "frames are numpy uint8 arrays, not {}",
                    object
                        .get_type()
                        .name()
                        .map_or_else(|_| "this type".into(), |s| s.to_string())
                ),
            });
        };
        let array = array
            .try_readonly()
            .map_err(|error| format!("the array is being written to: {error}"))?;
        let (format, channels) = match array.shape() {
            [_, _] => (PixelFormat::Gray8, 1),
            [_, _, 3] => (PixelFormat::Rgb8, 3),
            shape => {
                return Err(format!(
                    "frames have shape (H, W) for gray or (H, W, 3) for RGB, not {shape:?}"
                ));
            }
        };
        let (height, width) = (array.shape()[0], array.shape()[1]);
        let dimension = |value: usize, name: &str| {
            u32::try_from(value).map_err(|_| format!("the frame's {name} ({value}) is too large"))
        };
        let (height, width) = (dimension(height, "height")?, dimension(width, "width")?);
        let strides = array.strides();
        let packed_pixels = match strides {
            [_, pixel] => width <= 1 || *pixel == 1,
            [_, pixel, channel] => (width <= 1 || *pixel == 3) && *channel == 1,
            _ => false,
        };
        let row_bytes = width as usize * channels;
        // One row has no step to speak of (numpy may report any).
        let stride = if height <= 1 {
            Ok(row_bytes)
        } else {
            usize::try_from(strides[0])
        };
        let stride = match stride {
            Ok(stride) if packed_pixels && stride >= row_bytes => stride,
            _ => {
                return Err(format!(
                    "the gate reads rows of packed pixels going down (strides (>= {row_bytes}, {}{}) bytes); \
                     these strides are {strides:?}: pass numpy.ascontiguousarray(frame)",
                    channels,
                    if channels == 3 { ", 1" } else { "" }
                ));
            }
        };
        let len = if width == 0 || height == 0 {
            0
        } else {
            stride * (height as usize - 1) + row_bytes
        };
        Ok(ArrayFrame {
            bytes: array.data(),
            _array: array,
            len,
            width,
            height,
            stride,
            format,
        })
    }

    /// The gate's view of the frame; fails on an empty array.
    pub fn frame(&self) -> Result<Frame<'_>, flowgate_edge::FrameError> {
        // SAFETY: `bytes` is the array's first element, and the array (kept alive and
        // borrowed read-only by `_array`) spans `len` bytes from it: `new` checked that its
        // strides are positive and its rows packed, so the last row ends `len` bytes in.
        let bytes = if self.len == 0 {
            &[][..]
        } else {
            unsafe { std::slice::from_raw_parts(self.bytes, self.len) }
        };
        Frame::new(bytes, self.width, self.height, self.stride, self.format)
    }
}
