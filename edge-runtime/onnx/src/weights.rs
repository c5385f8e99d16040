//! Model tensors as graph constants, f32 or (on request) int8 behind DequantizeLinear.

use flowgate_shared::Tensor;

use crate::Int8Weights;
use crate::graph::{Graph, int};

/// The tensor's values as the runtime reads them: f32 as stored, int8 as `q * scale[row]`
/// computed in f32 (the same product, so the same bits).
pub(crate) fn values(tensor: &Tensor<'_>) -> Vec<f32> {
    tensor.to_f32_vec()
}

/// `values` of a per-channel parameter, shaped `[1, C, 1, 1]` to broadcast over activations.
pub(crate) fn per_channel(graph: &mut Graph, hint: &str, values: &[f32]) -> String {
    graph.f32_constant(hint, &[1, values.len() as i64, 1, 1], values)
}

/// A layer's weight matrix or kernel as a value of shape `dims` (the tensor's own elements,
/// reshaped). An int8 tensor stays int8 with [`Int8Weights::DequantizeLinear`]: one scale
/// per index of the first dimension, which is exactly DequantizeLinear's per-axis form with
/// `axis = 0` and a zero point of 0.
pub(crate) fn weight(
    graph: &mut Graph,
    hint: &str,
    tensor: &Tensor<'_>,
    dims: &[i64],
    int8: Int8Weights,
) -> String {
    match (tensor.i8_values(), int8) {
        (Some((quantized, scales)), Int8Weights::DequantizeLinear) => {
            let rows = scales.len();
            let quantized = graph.i8_constant(&format!("{hint}.quantized"), dims, quantized);
            let scales: Vec<f32> = scales.iter().collect();
            let scales = graph.f32_constant(&format!("{hint}.scale"), &[rows as i64], &scales);
            // Explicit zeros: TensorRT's parser asks for the zero point and takes only 0.
            let zero_points = vec![0u8; rows];
            let zero_points =
                graph.i8_constant(&format!("{hint}.zero_point"), &[rows as i64], &zero_points);
            graph.op(
                "DequantizeLinear",
                &[&quantized, &scales, &zero_points],
                vec![int("axis", 0)],
                hint,
            )
        }
        _ => graph.f32_constant(hint, dims, &values(tensor)),
    }
}
