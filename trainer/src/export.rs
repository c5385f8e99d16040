//! From a trained flow to the model format: batch-norm folded into per-channel affine maps,
//! burn's layouts turned into the format's, the coupling networks laid out over slots.

use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::nn::{BatchNorm, Linear};
use burn::prelude::*;
use flowgate_shared::{
    ActNorm as ActNormSpec, ChannelAffine, Conv2d as Conv2dSpec,
    ConvTranspose2d as ConvTranspose2dSpec, Coupling, Embed, FlowLayer, InputSpec,
    InvertibleConv1x1 as InvConvSpec, Linear as LinearSpec, Mask, Model, NetNode, NetOp,
    Preprocess, Resize, ScoreKind, Seq, Tensor as TensorSpec, Threshold,
};

use crate::flows::embedding::{Extractor, Mlp};
use crate::flows::st_net::StNet;
use crate::flows::{FlowModel, Step};

/// Export failures (all mean a bug or a model the format cannot hold).
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A tensor could not be read back from the backend.
    #[error("cannot read a tensor from the backend: {0}")]
    Read(String),
    /// A tensor's values do not fit its declared shape.
    #[error("tensor of shape {0:?} does not match its values")]
    Shape(Vec<usize>),
    /// The format refused the model.
    #[error("the model format refused the model: {0}")]
    Format(#[from] flowgate_shared::Error),
}

/// The model's values as f32, in burn's row-major order.
pub fn values<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>, ExportError> {
    tensor
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|error| ExportError::Read(format!("{error:?}")))
}

fn spec_tensor<const D: usize>(tensor: Tensor<D>) -> Result<TensorSpec<'static>, ExportError> {
    let dims: Vec<usize> = tensor.dims().to_vec();
    let data = values(tensor)?;
    spec_from_values(&dims, &data)
}

fn spec_from_values(dims: &[usize], data: &[f32]) -> Result<TensorSpec<'static>, ExportError> {
    let shape: Vec<u32> = dims.iter().map(|&d| d as u32).collect();
    TensorSpec::from_f32(&shape, data).ok_or_else(|| ExportError::Shape(dims.to_vec()))
}

/// Batch-norm in evaluation mode as `x * scale + shift`, times `factor`.
fn fold_batch_norm(norm: &BatchNorm, factor: f32) -> Result<NetOp<'static>, ExportError> {
    let gamma = values(norm.gamma.val())?;
    let beta = values(norm.beta.val())?;
    let mean = values(norm.running_mean.value())?;
    let var = values(norm.running_var.value())?;
    let epsilon = norm.epsilon as f32;
    let scale: Vec<f32> = gamma
        .iter()
        .zip(&var)
        .map(|(g, v)| factor * g / (v + epsilon).sqrt())
        .collect();
    let shift: Vec<f32> = beta
        .iter()
        .zip(&mean)
        .zip(&scale)
        .map(|((b, m), s)| factor * b - m * s)
        .collect();
    Ok(NetOp::ChannelAffine(ChannelAffine {
        scale: spec_from_values(&[scale.len()], &scale)?,
        shift: spec_from_values(&[shift.len()], &shift)?,
    }))
}

fn conv(conv: &Conv2d) -> Result<NetOp<'static>, ExportError> {
    let weight = conv.weight.val();
    let [out, _, kh, _] = weight.dims();
    let bias = bias_or_zeros(conv.bias.as_ref(), out)?;
    let padding = kh / 2;
    Ok(NetOp::Conv2d(Conv2dSpec {
        weight: spec_tensor(weight)?,
        bias,
        stride: conv.stride[0] as u8,
        padding: padding as u8,
    }))
}

fn conv_transpose(conv: &ConvTranspose2d) -> Result<NetOp<'static>, ExportError> {
    let weight = conv.weight.val();
    let [_, out, _, _] = weight.dims();
    let bias = bias_or_zeros(conv.bias.as_ref(), out)?;
    Ok(NetOp::ConvTranspose2d(ConvTranspose2dSpec {
        weight: spec_tensor(weight)?,
        bias,
        stride: conv.stride[0] as u8,
        padding: conv.padding[0] as u8,
        output_padding: conv.padding_out[0] as u8,
    }))
}

/// A layer's bias, or zeros where it has none (the format always stores one).
fn bias_or_zeros(
    bias: Option<&burn::module::Param<Tensor<1>>>,
    len: usize,
) -> Result<TensorSpec<'static>, ExportError> {
    match bias {
        Some(bias) => spec_tensor(bias.val()),
        None => spec_from_values(&[len], &vec![0.0; len]),
    }
}

/// burn stores linear weights as `[in, out]`; the format as `[out, in]`.
fn linear(linear: &Linear) -> Result<NetOp<'static>, ExportError> {
    let weight = linear.weight.val().transpose();
    let [out, _] = weight.dims();
    let bias = bias_or_zeros(linear.bias.as_ref(), out)?;
    Ok(NetOp::Linear(LinearSpec {
        weight: spec_tensor(weight)?,
        bias,
    }))
}

fn node(op: NetOp<'static>, input: u8, output: u8) -> NetNode<'static> {
    NetNode { op, input, output }
}

/// Slots of the exported ResNet: the input, its normalised copy, the concatenation, the
/// running activation, the skip sum and two temporaries.
mod slot {
    pub const INPUT: u8 = 0;
    pub const NORMED: u8 = 1;
    pub const CONCAT: u8 = 2;
    pub const X: u8 = 3;
    pub const SKIP: u8 = 4;
    pub const TEMP_A: u8 = 5;
    pub const TEMP_B: u8 = 6;
}

/// The s/t network as format nodes (see [`slot`]).
pub fn export_st_net(net: &StNet) -> Result<Vec<NetNode<'static>>, ExportError> {
    use slot::*;
    let double = if net.spec.double_after_norm { 2.0 } else { 1.0 };
    let mut nodes = vec![
        node(fold_batch_norm(&net.in_norm, double)?, INPUT, NORMED),
        node(NetOp::ConcatNegated, NORMED, CONCAT),
        node(NetOp::Relu, CONCAT, CONCAT),
        node(conv(&net.in_conv)?, CONCAT, X),
    ];
    if let (Some(autoencoder), Some(bottleneck)) = (&net.autoencoder, &net.bottleneck) {
        // X and TEMP_A alternate as the activation shrinks and grows back.
        let mut at = X;
        let mut other = TEMP_A;
        let (mut height, mut width) = (net.spec.height as u32, net.spec.width as u32);
        for down in &autoencoder.down {
            nodes.push(node(NetOp::Relu, at, at));
            nodes.push(node(conv(down)?, at, other));
            std::mem::swap(&mut at, &mut other);
            (height, width) = (height.div_ceil(2), width.div_ceil(2));
        }
        nodes.push(node(NetOp::Relu, at, at));
        nodes.push(node(linear(&bottleneck.encode)?, at, TEMP_B));
        nodes.push(node(linear(&bottleneck.decode)?, TEMP_B, SKIP));
        let reshape = NetOp::Reshape {
            channels: net.spec.mid_channels as u32,
            height,
            width,
        };
        nodes.push(node(reshape, SKIP, at));
        for up in &autoencoder.up {
            nodes.push(node(NetOp::Relu, at, at));
            nodes.push(node(conv_transpose(up)?, at, other));
            std::mem::swap(&mut at, &mut other);
        }
        nodes.extend([
            node(fold_batch_norm(&net.out_norm, 1.0)?, at, other),
            node(NetOp::Relu, other, other),
            node(conv(&net.out_conv)?, other, TEMP_B),
        ]);
        return Ok(nodes);
    }
    if let Some(in_skip) = net.skips.first() {
        nodes.push(node(conv(in_skip)?, X, SKIP));
    }
    let spatial = NetOp::Reshape {
        channels: net.spec.mid_channels as u32,
        height: net.spec.height as u32,
        width: net.spec.width as u32,
    };
    for (index, block) in net.blocks.iter().enumerate() {
        nodes.extend([
            node(fold_batch_norm(&block.in_norm, 1.0)?, X, TEMP_A),
            node(NetOp::Relu, TEMP_A, TEMP_A),
            node(conv(&block.in_conv)?, TEMP_A, TEMP_B),
            node(fold_batch_norm(&block.out_norm, 1.0)?, TEMP_B, TEMP_B),
            node(NetOp::Relu, TEMP_B, TEMP_B),
            node(conv(&block.out_conv)?, TEMP_B, TEMP_A),
            node(NetOp::Add { other: X }, TEMP_A, X),
        ]);
        if let Some(skip) = net.skips.get(index + 1) {
            nodes.push(node(conv(skip)?, X, TEMP_A));
            nodes.push(node(NetOp::Add { other: TEMP_A }, SKIP, SKIP));
        }
        if let Some(bottleneck) = &net.bottleneck
            && index == net.bottleneck_after()
        {
            nodes.push(node(linear(&bottleneck.encode)?, X, TEMP_A));
            nodes.push(node(linear(&bottleneck.decode)?, TEMP_A, TEMP_B));
            nodes.push(node(spatial.clone(), TEMP_B, X));
        }
    }
    let last = if net.skips.is_empty() { X } else { SKIP };
    nodes.extend([
        node(fold_batch_norm(&net.out_norm, 1.0)?, last, TEMP_A),
        node(NetOp::Relu, TEMP_A, TEMP_A),
        node(conv(&net.out_conv)?, TEMP_A, TEMP_B),
    ]);
    Ok(nodes)
}

/// The feature extractor as format nodes, alternating between slots 1 and 2 after the input
/// in slot 0 (the pretext task's head is not exported).
pub fn export_extractor(extractor: &Extractor) -> Result<Vec<NetNode<'static>>, ExportError> {
    let (a, b) = (1, 2);
    let mut nodes = Vec::new();
    let mut input = 0;
    let stages = extractor.convs.len();
    for (index, stage) in extractor.convs.iter().enumerate() {
        nodes.push(node(conv(stage)?, input, a));
        nodes.push(node(NetOp::Relu, a, a));
        if index + 1 < stages {
            nodes.push(node(
                NetOp::MaxPool2d {
                    kernel: 2,
                    stride: 2,
                },
                a,
                b,
            ));
            input = b;
        }
    }
    nodes.push(node(NetOp::GlobalAvgPool, a, b));
    nodes.push(node(linear(&extractor.embed)?, b, a));
    Ok(nodes)
}

/// An MLP s/t network as format nodes: `Linear` on the flattened input, then `ReLU` and
/// `Linear` alternating between slots 1 and 2.
pub fn export_mlp(mlp: &Mlp) -> Result<Vec<NetNode<'static>>, ExportError> {
    let mut nodes = Vec::new();
    let mut input = 0;
    let last = mlp.layers.len().saturating_sub(1);
    for (index, layer) in mlp.layers.iter().enumerate() {
        let output = if input == 1 { 2 } else { 1 };
        nodes.push(node(linear(layer)?, input, output));
        if index < last {
            nodes.push(node(NetOp::Relu, output, output));
        }
        input = output;
    }
    Ok(nodes)
}

/// What to record in the exported model besides the flow.
#[derive(Debug, Clone, Default)]
pub struct ExportInfo<'a> {
    /// Short identifier.
    pub name: &'a str,
    /// How it was made.
    pub provenance: &'a str,
    /// Calibrated threshold, if any.
    pub threshold: Option<Threshold>,
    /// Resize policy for frames of another size.
    pub resize: Option<Resize>,
    /// The OOD score [default: bits/dim].
    pub score: Option<ScoreKind>,
}

/// The flow as a format model. Call on the evaluation-mode model (`model.valid()`), so
/// batch-norms use their running statistics.
pub fn to_model<'a>(model: &FlowModel, info: &ExportInfo<'a>) -> Result<Model<'a>, ExportError> {
    let mut layers = Vec::new();
    if let Some(extractor) = &model.extractor {
        layers.push(FlowLayer::Embed(Embed {
            net: Seq::from_vec(export_extractor(extractor)?),
        }));
    }
    for step in &model.steps {
        let layer = match *step {
            Step::Coupling(i) => {
                let coupling = &model.couplings[i];
                FlowLayer::Coupling(Coupling {
                    mask: coupling.mask,
                    net: Seq::from_vec(export_st_net(&coupling.net)?),
                    scale: spec_tensor(coupling.scale.val())?,
                })
            }
            Step::Squeeze => FlowLayer::Squeeze,
            Step::ActNorm(i) => FlowLayer::ActNorm(ActNormSpec {
                bias: spec_tensor(model.actnorms[i].bias.val())?,
                log_scale: spec_tensor(model.actnorms[i].log_scale.val())?,
            }),
            Step::InvConv(i) => {
                let conv = &model.inv_convs[i];
                let log_abs_det = values(conv.log_abs_det())?.first().copied().unwrap_or(0.0);
                FlowLayer::InvertibleConv1x1(InvConvSpec {
                    weight: spec_tensor(conv.weight())?,
                    log_abs_det,
                })
            }
            Step::FactorOut(keep) => FlowLayer::FactorOut {
                keep_channels: keep as u32,
            },
            Step::Tabular(i) => {
                let coupling = &model.tabular[i];
                FlowLayer::Coupling(Coupling {
                    mask: Mask::ChannelWise {
                        reverse: coupling.reverse,
                    },
                    net: Seq::from_vec(export_mlp(&coupling.net)?),
                    scale: spec_tensor(coupling.scale.val())?,
                })
            }
        };
        layers.push(layer);
    }
    let config = &model.config;
    Ok(Model {
        name: info.name,
        provenance: info.provenance,
        input: InputSpec {
            channels: config.channels as u32,
            height: config.height as u32,
            width: config.width as u32,
            preprocess: Preprocess::Logit {
                alpha: config.alpha as f32,
            },
            resize: info.resize.unwrap_or(Resize::AreaAverage),
        },
        flow: Seq::from_vec(layers),
        score: info.score.unwrap_or(ScoreKind::BitsPerDim),
        threshold: info.threshold.clone(),
        detail: None,
    })
}

/// [`to_model`], validated and encoded as a model file.
pub fn to_file_bytes(model: &FlowModel, info: &ExportInfo<'_>) -> Result<Vec<u8>, ExportError> {
    Ok(flowgate_shared::encode(&to_model(model, info)?)?)
}
