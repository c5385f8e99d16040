//! int8 quantisation of an exported model: symmetric, one scale per output channel.
//!
//! Convolution, transposed-convolution and linear weights become int8 (`q = round(w / scale)`,
//! `scale = max |w| / 127` over the output channel); biases, per-channel affine maps, coupling
//! scales, actnorm and the 1x1 convolutions (whose stored log-determinant must match their
//! weights) stay f32: they are a small share of the bytes and the likelihood is sensitive to them.

use flowgate_shared::{
    Conv2d, ConvTranspose2d, Coupling, FlowLayer, Linear, Model, NetNode, NetOp, Seq, Tensor,
};

/// Quantisation failures.
#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    /// A layer or node could not be decoded.
    #[error("cannot decode the model: {0}")]
    Decode(#[from] postcard::Error),
    /// A tensor could not be rebuilt.
    #[error("tensor of shape {0:?} could not be quantised")]
    Tensor(Vec<u32>),
}

/// Symmetric per-output-channel int8 of `tensor` ([`Tensor::quantized_i8`]; for transposed
/// convolutions, stored `[in, out, kh, kw]`, the scale is per input channel, still one per
/// row of the first dimension as the format defines).
pub fn quantize_tensor(tensor: &Tensor<'_>) -> Result<Tensor<'static>, QuantizeError> {
    tensor
        .quantized_i8()
        .ok_or_else(|| QuantizeError::Tensor(tensor.shape.to_vec()))
}

fn owned(tensor: &Tensor<'_>) -> Result<Tensor<'static>, QuantizeError> {
    let shape: Vec<u32> = tensor.shape.to_vec();
    Tensor::from_f32(&shape, &tensor.to_f32_vec()).ok_or(QuantizeError::Tensor(shape))
}

fn quantize_op(op: &NetOp<'_>) -> Result<NetOp<'static>, QuantizeError> {
    Ok(match op {
        NetOp::Conv2d(conv) => NetOp::Conv2d(Conv2d {
            weight: quantize_tensor(&conv.weight)?,
            bias: owned(&conv.bias)?,
            stride: conv.stride,
            padding: conv.padding,
        }),
        NetOp::ConvTranspose2d(conv) => NetOp::ConvTranspose2d(ConvTranspose2d {
            weight: quantize_tensor(&conv.weight)?,
            bias: owned(&conv.bias)?,
            stride: conv.stride,
            padding: conv.padding,
            output_padding: conv.output_padding,
        }),
        NetOp::Linear(linear) => NetOp::Linear(Linear {
            weight: quantize_tensor(&linear.weight)?,
            bias: owned(&linear.bias)?,
        }),
        NetOp::ChannelAffine(affine) => NetOp::ChannelAffine(flowgate_shared::ChannelAffine {
            scale: owned(&affine.scale)?,
            shift: owned(&affine.shift)?,
        }),
        NetOp::Relu => NetOp::Relu,
        NetOp::Tanh => NetOp::Tanh,
        NetOp::ConcatNegated => NetOp::ConcatNegated,
        NetOp::Reshape {
            channels,
            height,
            width,
        } => NetOp::Reshape {
            channels: *channels,
            height: *height,
            width: *width,
        },
        NetOp::Add { other } => NetOp::Add { other: *other },
        NetOp::MaxPool2d { kernel, stride } => NetOp::MaxPool2d {
            kernel: *kernel,
            stride: *stride,
        },
        NetOp::AvgPool2d { kernel, stride } => NetOp::AvgPool2d {
            kernel: *kernel,
            stride: *stride,
        },
        NetOp::GlobalAvgPool => NetOp::GlobalAvgPool,
    })
}

fn quantize_layer(layer: &FlowLayer<'_>) -> Result<FlowLayer<'static>, QuantizeError> {
    Ok(match layer {
        FlowLayer::Coupling(coupling) => {
            let mut nodes = Vec::with_capacity(coupling.net.len());
            for node in coupling.net.iter() {
                let node = node?;
                nodes.push(NetNode {
                    op: quantize_op(&node.op)?,
                    input: node.input,
                    output: node.output,
                });
            }
            FlowLayer::Coupling(Coupling {
                mask: coupling.mask,
                net: Seq::from_vec(nodes),
                scale: owned(&coupling.scale)?,
            })
        }
        FlowLayer::Squeeze => FlowLayer::Squeeze,
        FlowLayer::Unsqueeze => FlowLayer::Unsqueeze,
        FlowLayer::ActNorm(actnorm) => FlowLayer::ActNorm(flowgate_shared::ActNorm {
            bias: owned(&actnorm.bias)?,
            log_scale: owned(&actnorm.log_scale)?,
        }),
        FlowLayer::InvertibleConv1x1(conv) => {
            FlowLayer::InvertibleConv1x1(flowgate_shared::InvertibleConv1x1 {
                weight: owned(&conv.weight)?,
                log_abs_det: conv.log_abs_det,
            })
        }
        FlowLayer::FactorOut { keep_channels } => FlowLayer::FactorOut {
            keep_channels: *keep_channels,
        },
    })
}

/// `model` with its convolution and linear weights in int8.
pub fn quantize_model<'a>(model: &Model<'a>) -> Result<Model<'a>, QuantizeError> {
    let mut layers = Vec::with_capacity(model.flow.len());
    for layer in model.flow.iter() {
        layers.push(quantize_layer(&layer?)?);
    }
    Ok(Model {
        name: model.name,
        provenance: model.provenance,
        input: model.input,
        flow: Seq::from_vec(layers),
        score: model.score,
        threshold: model.threshold.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_channel_scales_follow_each_rows_largest_weight() {
        let tensor = Tensor::from_f32(&[2, 3], &[0.5, -1.0, 0.25, 2.0, 1.0, -0.5]).unwrap();
        let quantized = quantize_tensor(&tensor).unwrap();
        let (values, scales) = quantized.i8_values().unwrap();
        let scales: Vec<f32> = scales.iter().collect();
        assert_eq!(scales, vec![1.0 / 127.0, 2.0 / 127.0]);
        let values: Vec<i8> = values.iter().map(|&v| v as i8).collect();
        assert_eq!(values, vec![64, -127, 32, 127, 64, -32]);
        // Dequantised within half a step of the original.
        for (index, original) in [0.5f32, -1.0, 0.25, 2.0, 1.0, -0.5].iter().enumerate() {
            let step = scales[index / 3];
            assert!((quantized.get(index).unwrap() - original).abs() <= step / 2.0 + 1e-7);
        }
    }

    #[test]
    fn quantised_tiny_model_validates_and_scores_close_to_f32() {
        let model = flowgate_shared::example::tiny_model();
        let quantized = quantize_model(&model).unwrap();
        let f32_bytes = flowgate_shared::encode(&model).unwrap();
        let int8_bytes = flowgate_shared::encode(&quantized).unwrap();
        let summary = flowgate_shared::decode(&int8_bytes).unwrap().summary;
        assert!(summary.int8_tensors > 5, "{summary:?}");
        assert!(int8_bytes.len() < f32_bytes.len());
        let f32_gate = flowgate_edge::Gate::new(&f32_bytes).unwrap();
        let int8_gate = flowgate_edge::Gate::new(&int8_bytes).unwrap();
        let mut scratch = vec![0f32; f32_gate.scratch_len().max(int8_gate.scratch_len())];
        let pixels: Vec<u8> = (0..16u8).map(|v| v * 15).collect();
        let frame =
            flowgate_edge::Frame::packed(&pixels, 4, 4, flowgate_edge::PixelFormat::Gray8).unwrap();
        let a = f32_gate.score(&frame, &mut scratch).unwrap().bits_per_dim;
        let b = int8_gate.score(&frame, &mut scratch).unwrap().bits_per_dim;
        assert!((a - b).abs() < 0.05, "f32 {a} vs int8 {b}");
        assert_ne!(a, b, "int8 weights should change the score a little");
    }
}
