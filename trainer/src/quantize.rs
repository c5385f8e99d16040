//! int8 quantisation of an exported model: symmetric, one scale per output channel.
//!
//! Convolution, transposed-convolution and linear weights become int8 (`q = round(w / scale)`,
//! `scale = max |w| / 127` over the output channel); biases, per-channel affine maps, coupling
//! scales, actnorm and the 1x1 convolutions (whose stored log-determinant must match their
//! weights) stay f32: they are a small share of the bytes and the likelihood is sensitive to them.
//!
//! [`simulate_int8`] is the trainer's int8 simulation: the same model with every int8 tensor
//! replaced by its dequantised f32 values (`q * scale`), so the f32 code paths (the runtime's,
//! or an analysis's) compute what the int8 weights compute, without int8 kernels.

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

/// What becomes of the weights of convolutions, transposed convolutions and linear layers (every
/// other tensor goes through [`owned`]: copied as f32, dequantised if stored as int8).
type WeightMap = fn(&Tensor<'_>) -> Result<Tensor<'static>, QuantizeError>;

fn map_op(op: &NetOp<'_>, weight: WeightMap) -> Result<NetOp<'static>, QuantizeError> {
    Ok(match op {
        NetOp::Conv2d(conv) => NetOp::Conv2d(Conv2d {
            weight: weight(&conv.weight)?,
            bias: owned(&conv.bias)?,
            stride: conv.stride,
            padding: conv.padding,
        }),
        NetOp::ConvTranspose2d(conv) => NetOp::ConvTranspose2d(ConvTranspose2d {
            weight: weight(&conv.weight)?,
            bias: owned(&conv.bias)?,
            stride: conv.stride,
            padding: conv.padding,
            output_padding: conv.output_padding,
        }),
        NetOp::Linear(linear) => NetOp::Linear(Linear {
            weight: weight(&linear.weight)?,
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

fn map_net(
    net: &Seq<'_, NetNode<'_>>,
    weight: WeightMap,
) -> Result<Seq<'static, NetNode<'static>>, QuantizeError> {
    let mut nodes = Vec::with_capacity(net.len());
    for node in net.iter() {
        let node = node?;
        nodes.push(NetNode {
            op: map_op(&node.op, weight)?,
            input: node.input,
            output: node.output,
        });
    }
    Ok(Seq::from_vec(nodes))
}

fn map_layer(
    layer: &FlowLayer<'_>,
    weight: WeightMap,
) -> Result<FlowLayer<'static>, QuantizeError> {
    Ok(match layer {
        FlowLayer::Coupling(coupling) => FlowLayer::Coupling(Coupling {
            mask: coupling.mask,
            net: map_net(&coupling.net, weight)?,
            scale: owned(&coupling.scale)?,
        }),
        FlowLayer::Embed(embed) => FlowLayer::Embed(flowgate_shared::Embed {
            net: map_net(&embed.net, weight)?,
        }),
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

fn map_model<'a>(model: &Model<'a>, weight: WeightMap) -> Result<Model<'a>, QuantizeError> {
    let mut layers = Vec::with_capacity(model.flow.len());
    for layer in model.flow.iter() {
        layers.push(map_layer(&layer?, weight)?);
    }
    Ok(Model {
        name: model.name,
        provenance: model.provenance,
        input: model.input,
        flow: Seq::from_vec(layers),
        score: model.score,
        threshold: model.threshold.clone(),
        // The patch model inside stays as its writer stored it (`fit` quantises it before
        // attaching it).
        detail: model.detail.clone(),
    })
}

/// `model` with its convolution and linear weights in int8 (everything else, the threshold
/// included, as it is: the threshold stays the f32 model's calibration).
pub fn quantize_model<'a>(model: &Model<'a>) -> Result<Model<'a>, QuantizeError> {
    map_model(model, quantize_tensor)
}

/// The trainer's int8 simulation in f32: `model` with every int8 tensor replaced by its
/// dequantised values, `q * scale` of its output channel, stored as f32 (f32 tensors are copied
/// unchanged). Scored through the f32 path, the result computes what the int8 model computes up
/// to f32 rounding order; of an all-f32 model it is an identical copy.
pub fn simulate_int8<'a>(model: &Model<'a>) -> Result<Model<'a>, QuantizeError> {
    map_model(model, owned)
}

/// [`quantize_model`] then [`simulate_int8`]: an f32 model's weights as int8 would round them
/// ("fake quantisation"), still stored as f32.
pub fn fake_quantize<'a>(model: &Model<'a>) -> Result<Model<'a>, QuantizeError> {
    simulate_int8(&quantize_model(model)?)
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

    /// Every tensor of `model` in file order: its precision and dequantised values.
    fn tensors(model: &Model<'_>) -> Vec<(flowgate_shared::Precision, Vec<f32>)> {
        fn push(out: &mut Vec<(flowgate_shared::Precision, Vec<f32>)>, tensor: &Tensor<'_>) {
            out.push((tensor.precision(), tensor.to_f32_vec()));
        }
        let mut out = Vec::new();
        for layer in model.flow.iter() {
            match layer.unwrap() {
                FlowLayer::Coupling(coupling) => {
                    for node in coupling.net.iter() {
                        match node.unwrap().op {
                            NetOp::Conv2d(conv) => {
                                push(&mut out, &conv.weight);
                                push(&mut out, &conv.bias);
                            }
                            NetOp::ConvTranspose2d(conv) => {
                                push(&mut out, &conv.weight);
                                push(&mut out, &conv.bias);
                            }
                            NetOp::Linear(linear) => {
                                push(&mut out, &linear.weight);
                                push(&mut out, &linear.bias);
                            }
                            NetOp::ChannelAffine(affine) => {
                                push(&mut out, &affine.scale);
                                push(&mut out, &affine.shift);
                            }
                            _ => {}
                        }
                    }
                    push(&mut out, &coupling.scale);
                }
                FlowLayer::ActNorm(actnorm) => {
                    push(&mut out, &actnorm.bias);
                    push(&mut out, &actnorm.log_scale);
                }
                FlowLayer::InvertibleConv1x1(conv) => push(&mut out, &conv.weight),
                _ => {}
            }
        }
        out
    }

    fn bits_per_dim(bytes: &[u8], pixels: &[u8]) -> f64 {
        let gate = flowgate_edge::Gate::new(bytes).unwrap();
        let mut scratch = vec![0f32; gate.scratch_len()];
        let frame =
            flowgate_edge::Frame::packed(pixels, 4, 4, flowgate_edge::PixelFormat::Gray8).unwrap();
        gate.score(&frame, &mut scratch).unwrap().bits_per_dim
    }

    #[test]
    fn simulate_int8_dequantises_every_int8_tensor() {
        use flowgate_shared::Precision;
        let model = flowgate_shared::example::tiny_model();
        let quantized = quantize_model(&model).unwrap();
        let simulated = simulate_int8(&quantized).unwrap();
        let (q_tensors, s_tensors) = (tensors(&quantized), tensors(&simulated));
        assert_eq!(q_tensors.len(), s_tensors.len());
        assert!(q_tensors.iter().any(|(p, _)| *p == Precision::I8));
        assert!(s_tensors.iter().all(|(p, _)| *p == Precision::F32));
        for ((_, q), (_, s)) in q_tensors.iter().zip(&s_tensors) {
            assert_eq!(q, s);
        }
        // Spelled out for one weight: q * scale of its output channel.
        let weight =
            quantize_tensor(&Tensor::from_f32(&[2, 2], &[0.3, -0.6, 1.0, 0.1]).unwrap()).unwrap();
        let (values, scales) = weight.i8_values().unwrap();
        let expected: Vec<f32> = values
            .iter()
            .enumerate()
            .map(|(i, &q)| f32::from(q as i8) * scales.get(i / 2).unwrap())
            .collect();
        assert_eq!(
            owned(&weight)
                .unwrap()
                .f32_values()
                .unwrap()
                .iter()
                .collect::<Vec<_>>(),
            expected
        );
        assert_eq!(
            flowgate_shared::encode(&fake_quantize(&model).unwrap()).unwrap(),
            flowgate_shared::encode(&simulated).unwrap()
        );

        // The simulation scores like the int8 model through the f32 path, and unlike the f32
        // model (whose weights it no longer has).
        let f32_bytes = flowgate_shared::encode(&model).unwrap();
        let int8_bytes = flowgate_shared::encode(&quantized).unwrap();
        let simulated_bytes = flowgate_shared::encode(&simulated).unwrap();
        let summary = flowgate_shared::decode(&simulated_bytes).unwrap().summary;
        assert_eq!(summary.int8_tensors, 0, "{summary:?}");
        let pixels: Vec<u8> = (0..16u8).map(|v| v * 15).collect();
        let (f, q, s) = (
            bits_per_dim(&f32_bytes, &pixels),
            bits_per_dim(&int8_bytes, &pixels),
            bits_per_dim(&simulated_bytes, &pixels),
        );
        assert!((q - s).abs() < 1e-5, "int8 {q} vs simulated {s}");
        assert!((f - s).abs() > 1e-5, "f32 {f} vs simulated {s}");
    }

    #[test]
    fn simulate_int8_of_an_f32_model_is_a_copy() {
        // The fixture holds an int8 tensor already: its simulation is the all-f32 model.
        let tiny = flowgate_shared::example::tiny_model();
        let tiny_bytes = flowgate_shared::encode(&tiny).unwrap();
        assert!(
            flowgate_shared::decode(&tiny_bytes)
                .unwrap()
                .summary
                .int8_tensors
                > 0
        );
        let model = simulate_int8(&tiny).unwrap();
        let bytes = flowgate_shared::encode(&model).unwrap();
        let summary = flowgate_shared::decode(&bytes).unwrap().summary;
        assert_eq!(summary.int8_tensors, 0, "{summary:?}");
        assert_eq!(
            flowgate_shared::encode(&simulate_int8(&model).unwrap()).unwrap(),
            bytes
        );
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
