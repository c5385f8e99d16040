//! Weight tensors: f32, or int8 with one f32 scale per output channel.
//!
//! Values are stored little-endian and read with `from_le_bytes`, so a tensor is a view into
//! the model file with no alignment requirement and no copy.

use serde::{Deserialize, Serialize};

use crate::bytes::Bytes;

#[cfg(feature = "alloc")]
use alloc::vec::Vec;

/// Most dimensions a tensor may have.
pub const MAX_RANK: usize = 4;

/// A tensor's dimensions, outermost first (row-major). For conv weights: `[out, in, kh, kw]`.
pub type Shape = heapless::Vec<u32, MAX_RANK>;

/// A weight tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tensor<'a> {
    /// Dimensions, outermost first.
    pub shape: Shape,
    /// The values.
    #[serde(borrow)]
    pub data: TensorData<'a>,
}

/// How a tensor's values are stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TensorData<'a> {
    /// Little-endian f32 values, 4 bytes each.
    F32(#[serde(borrow)] Bytes<'a>),
    /// Symmetric int8: value = `q * scale[o]`, where `o` is the index along the first
    /// dimension (the output channel) and `scales` holds one little-endian f32 per `o`.
    I8 {
        /// One signed byte per element.
        #[serde(borrow)]
        values: Bytes<'a>,
        /// One little-endian f32 per index of the first dimension.
        #[serde(borrow)]
        scales: Bytes<'a>,
    },
}

/// Storage kind of a tensor, for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// 32-bit float.
    F32,
    /// 8-bit symmetric integer with per-output-channel scales.
    I8,
}

impl<'a> Tensor<'a> {
    /// Number of elements the shape declares, or `None` if it overflows `usize`.
    pub fn element_count(&self) -> Option<usize> {
        shape_elements(&self.shape)
    }

    /// Whether the shape is exactly `dims`.
    pub fn has_shape(&self, dims: &[u32]) -> bool {
        self.shape.as_slice() == dims
    }

    /// The storage kind.
    pub fn precision(&self) -> Precision {
        match self.data {
            TensorData::F32(_) => Precision::F32,
            TensorData::I8 { .. } => Precision::I8,
        }
    }

    /// Bytes this tensor's values take in the file.
    pub fn stored_bytes(&self) -> usize {
        match &self.data {
            TensorData::F32(bytes) => bytes.len(),
            TensorData::I8 { values, scales } => values.len() + scales.len(),
        }
    }

    /// The element at flat (row-major) index `index`, dequantised; `None` when out of range.
    pub fn get(&self, index: usize) -> Option<f32> {
        match &self.data {
            TensorData::F32(bytes) => read_f32(bytes.as_slice(), index),
            TensorData::I8 { values, scales } => {
                let q = *values.as_slice().get(index)? as i8;
                let per_channel = self.element_count()? / (*self.shape.first()? as usize).max(1);
                let scale = read_f32(scales.as_slice(), index / per_channel.max(1))?;
                Some(f32::from(q) * scale)
            }
        }
    }

    /// The f32 values, when the tensor is stored as f32.
    pub fn f32_values(&self) -> Option<F32View<'_>> {
        match &self.data {
            TensorData::F32(bytes) => Some(F32View(bytes.as_slice())),
            TensorData::I8 { .. } => None,
        }
    }

    /// The int8 values and their per-output-channel scales, when stored as int8.
    pub fn i8_values(&self) -> Option<(&[u8], F32View<'_>)> {
        match &self.data {
            TensorData::F32(_) => None,
            TensorData::I8 { values, scales } => {
                Some((values.as_slice(), F32View(scales.as_slice())))
            }
        }
    }
}

#[cfg(feature = "alloc")]
impl Tensor<'_> {
    /// Symmetric int8 with one scale per index of the first dimension:
    /// `scale = max |w| / 127` over that row (1 for an all-zero row), `q = round(w / scale)`.
    /// Every dequantised value lies within half a step of the original.
    pub fn quantized_i8(&self) -> Option<Tensor<'static>> {
        let values = self.to_f32_vec();
        let rows = self.shape.first().copied().unwrap_or(1).max(1) as usize;
        let per_row = (values.len() / rows).max(1);
        let mut quantized = Vec::with_capacity(values.len());
        let mut scales = Vec::with_capacity(rows);
        for row in values.chunks(per_row) {
            let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
            let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
            scales.push(scale);
            quantized.extend(row.iter().map(|v| round_to_i8(v / scale)));
        }
        Tensor::from_i8(&self.shape, &quantized, &scales)
    }

    /// All elements, dequantised, in row-major order.
    pub fn to_f32_vec(&self) -> Vec<f32> {
        let count = self.element_count().unwrap_or(0);
        (0..count).filter_map(|i| self.get(i)).collect()
    }
}

#[cfg(feature = "alloc")]
impl Tensor<'static> {
    /// An f32 tensor; `None` when `values` does not match `dims` or the rank exceeds [`MAX_RANK`].
    pub fn from_f32(dims: &[u32], values: &[f32]) -> Option<Self> {
        let shape = Shape::from_slice(dims).ok()?;
        if shape_elements(&shape)? != values.len() {
            return None;
        }
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Some(Tensor {
            shape,
            data: TensorData::F32(Bytes::Owned(bytes)),
        })
    }

    /// An int8 tensor with one scale per index of the first dimension; `None` when the lengths
    /// do not match `dims`.
    pub fn from_i8(dims: &[u32], values: &[i8], scales: &[f32]) -> Option<Self> {
        let shape = Shape::from_slice(dims).ok()?;
        if shape_elements(&shape)? != values.len() || *shape.first()? as usize != scales.len() {
            return None;
        }
        let values: Vec<u8> = values.iter().map(|&q| q as u8).collect();
        let scales = scales.iter().flat_map(|v| v.to_le_bytes()).collect();
        Some(Tensor {
            shape,
            data: TensorData::I8 {
                values: Bytes::Owned(values),
                scales: Bytes::Owned(scales),
            },
        })
    }
}

/// `x` rounded half away from zero and clamped to -127..=127 (no `f32::round` in core).
#[cfg(feature = "alloc")]
fn round_to_i8(x: f32) -> i8 {
    let clamped = x.clamp(-127.0, 127.0);
    let rounded = if clamped >= 0.0 {
        clamped + 0.5
    } else {
        clamped - 0.5
    };
    rounded as i8
}

/// Number of elements of `shape`, or `None` on overflow.
pub fn shape_elements(shape: &[u32]) -> Option<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize))
}

/// Little-endian f32 values viewed in place.
#[derive(Debug, Clone, Copy)]
pub struct F32View<'a>(&'a [u8]);

impl<'a> F32View<'a> {
    /// A view of no values.
    pub const fn empty() -> Self {
        F32View(&[])
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.0.len() / 4
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.0.len() < 4
    }

    /// The value at `index`, or `None` past the end.
    #[inline]
    pub fn get(&self, index: usize) -> Option<f32> {
        read_f32(self.0, index)
    }

    /// The values in order.
    pub fn iter(&self) -> impl Iterator<Item = f32> + 'a {
        self.0
            .as_chunks::<4>()
            .0
            .iter()
            .map(|c| f32::from_le_bytes(*c))
    }

    /// The raw little-endian bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }
}

#[inline]
fn read_f32(bytes: &[u8], index: usize) -> Option<f32> {
    let start = index.checked_mul(4)?;
    let word = bytes.get(start..start.checked_add(4)?)?;
    Some(f32::from_le_bytes(word.try_into().ok()?))
}
