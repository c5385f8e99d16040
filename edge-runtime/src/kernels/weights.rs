//! Reads weights in place from the model file, f32 or int8, with no copy.

use flowgate_shared::Tensor;
use flowgate_shared::tensor::F32View;

/// A weight tensor ready for kernels: `get(i)` is the dequantised element at flat index `i`.
#[derive(Debug, Clone, Copy)]
pub enum Weights<'a> {
    /// f32 values.
    F32(F32View<'a>),
    /// int8 values with per-row (first dimension) scales.
    I8 {
        /// Signed bytes.
        values: &'a [u8],
        /// One scale per row.
        scales: F32View<'a>,
        /// Elements per row.
        row_len: usize,
    },
}

impl<'a> Weights<'a> {
    /// Views a tensor; validation guarantees lengths match its shape.
    pub fn new(tensor: &'a Tensor<'a>) -> Self {
        if let Some(values) = tensor.f32_values() {
            return Weights::F32(values);
        }
        let (values, scales) = tensor.i8_values().unwrap_or((&[], F32View::empty()));
        let rows = tensor.shape.first().copied().unwrap_or(1).max(1) as usize;
        Weights::I8 {
            values,
            scales,
            row_len: (values.len() / rows).max(1),
        }
    }

    /// The element at flat index `index` (0 past the end, which validation rules out).
    #[inline]
    pub fn get(&self, index: usize) -> f32 {
        match self {
            Weights::F32(values) => values.get(index).unwrap_or(0.0),
            Weights::I8 {
                values,
                scales,
                row_len,
            } => {
                let q = values.get(index).copied().unwrap_or(0) as i8;
                f32::from(q) * scales.get(index / row_len).unwrap_or(0.0)
            }
        }
    }
}
