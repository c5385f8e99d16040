//! Reads weights in place from the model file, f32 or int8, with no copy.

use flowgate_shared::Tensor;
use flowgate_shared::tensor::F32View;

/// A weight tensor ready for kernels: `get(i)` is the dequantised element at flat index `i`;
/// `at(row, col)` the same by row (the first dimension), which saves int8 weights a division.
#[derive(Debug, Clone, Copy)]
pub enum Weights<'a> {
    /// f32 values.
    F32 {
        /// The values.
        values: F32View<'a>,
        /// Elements per row.
        row_len: usize,
    },
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
        let rows = tensor.shape.first().copied().unwrap_or(1).max(1) as usize;
        if let Some(values) = tensor.f32_values() {
            return Weights::F32 {
                values,
                row_len: (values.len() / rows).max(1),
            };
        }
        let (values, scales) = tensor.i8_values().unwrap_or((&[], F32View::empty()));
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
            Weights::F32 { values, .. } => values.get(index).unwrap_or(0.0),
            Weights::I8 { row_len, .. } => self.at(index / row_len, index % row_len),
        }
    }

    /// Element `col` of row `row` (0 past the end, which validation rules out).
    #[inline]
    pub fn at(&self, row: usize, col: usize) -> f32 {
        match self {
            Weights::F32 { values, row_len } => values.get(row * row_len + col).unwrap_or(0.0),
            Weights::I8 {
                values,
                scales,
                row_len,
            } => {
                let q = values.get(row * row_len + col).copied().unwrap_or(0) as i8;
                f32::from(q) * scales.get(row).unwrap_or(0.0)
            }
        }
    }

    /// `init + sum_j at(row, j) * x[j]`, summed in order (as `get` in a loop would).
    pub fn dot_row(&self, row: usize, x: &[f32], init: f32) -> f32 {
        match self {
            Weights::F32 { values, row_len } => {
                let bytes = values.as_bytes();
                let row = bytes.get(row * row_len * 4..).unwrap_or(&[]);
                let row = row.get(..row_len * 4).unwrap_or(row);
                row.as_chunks::<4>()
                    .0
                    .iter()
                    .zip(x)
                    .fold(init, |acc, (w, x)| acc + f32::from_le_bytes(*w) * x)
            }
            Weights::I8 {
                values,
                scales,
                row_len,
            } => {
                let scale = scales.get(row).unwrap_or(0.0);
                let row = values.get(row * row_len..).unwrap_or(&[]);
                let row = row.get(..*row_len).unwrap_or(row);
                row.iter()
                    .zip(x)
                    .fold(init, |acc, (&q, x)| acc + f32::from(q as i8) * scale * x)
            }
        }
    }
}
