//! Coupling networks and feature extractors: each network operation as ONNX nodes.
//!
//! The runtime's slots become SSA values: a slot maps to the value its last writer made.

use flowgate_shared::layers::MAX_SLOTS;
use flowgate_shared::validate::infer_op;
use flowgate_shared::{Dims, Error, Invalid, Location, NetNode, NetOp, Seq};

use crate::graph::{Graph, int, ints};
use crate::weights::{per_channel, values, weight};
use crate::{ExportError, Int8Weights};

/// A value of shape `[N, dims.channels, dims.height, dims.width]`.
#[derive(Debug, Clone)]
pub(crate) struct Activation {
    /// The value's name in the graph.
    pub name: String,
    /// Its shape per frame.
    pub dims: Dims,
}

/// Where a network sits in the model, for names and errors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NetPlace<'s> {
    /// The flow layer holding the network.
    pub layer: u32,
    /// Prefix of the names of the network's values.
    pub scope: &'s str,
}

/// Emits `net` reading `input` in slot 0; returns its result (the last node's output).
pub(crate) fn emit_net(
    graph: &mut Graph,
    net: &Seq<'_, NetNode<'_>>,
    input: Activation,
    place: NetPlace<'_>,
    int8: Int8Weights,
) -> Result<Activation, ExportError> {
    let mut slots: [Option<Activation>; MAX_SLOTS] = Default::default();
    slots[0] = Some(input);
    let mut last = None;
    for (index, node) in net.iter().enumerate() {
        let node = node.map_err(|error| ExportError::Model(Error::Payload(error)))?;
        let invalid = |reason| {
            ExportError::Model(Error::Invalid {
                at: Location::Net {
                    layer: place.layer,
                    node: index as u32,
                },
                reason,
            })
        };
        let slot = |slot: u8| {
            slots
                .get(usize::from(slot))
                .cloned()
                .flatten()
                .ok_or(invalid(Invalid::SlotUnset))
        };
        let input = slot(node.input)?;
        let other = match node.op {
            NetOp::Add { other } => Some(slot(other)?),
            _ => None,
        };
        let (dims, _) =
            infer_op(&node.op, input.dims, other.as_ref().map(|o| o.dims)).map_err(invalid)?;
        let hint = format!("{}.{index}.{}", place.scope, op_name(&node.op));
        let name =
            emit_op(graph, &node.op, &input, other.as_ref(), dims, &hint, int8).map_err(invalid)?;
        let output = Activation { name, dims };
        *slots
            .get_mut(usize::from(node.output))
            .ok_or(invalid(Invalid::SlotOutOfRange))? = Some(output.clone());
        last = Some(output);
    }
    last.ok_or(ExportError::Model(Error::Invalid {
        at: Location::Flow { layer: place.layer },
        reason: Invalid::EmptyNet,
    }))
}

/// A short name of the operation, for value names.
fn op_name(op: &NetOp<'_>) -> &'static str {
    match op {
        NetOp::Conv2d(_) => "conv",
        NetOp::ConvTranspose2d(_) => "conv_transpose",
        NetOp::Linear(_) => "linear",
        NetOp::ChannelAffine(_) => "channel_affine",
        NetOp::Relu => "relu",
        NetOp::Tanh => "tanh",
        NetOp::ConcatNegated => "concat_negated",
        NetOp::Reshape { .. } => "reshape",
        NetOp::Add { .. } => "add",
        NetOp::MaxPool2d { .. } => "max_pool",
        NetOp::AvgPool2d { .. } => "avg_pool",
        NetOp::GlobalAvgPool => "global_avg_pool",
    }
}

/// Emits one operation on `input` (and `other`, for `Add`); `out` is its result's shape.
fn emit_op(
    graph: &mut Graph,
    op: &NetOp<'_>,
    input: &Activation,
    other: Option<&Activation>,
    out: Dims,
    hint: &str,
    int8: Int8Weights,
) -> Result<String, Invalid> {
    let x = input.name.as_str();
    let name = match op {
        NetOp::Conv2d(conv) => {
            let dims: Vec<i64> = conv.weight.shape.iter().map(|&d| i64::from(d)).collect();
            let w = weight(graph, &format!("{hint}.weight"), &conv.weight, &dims, int8);
            let b = graph.f32_constant(
                &format!("{hint}.bias"),
                &[i64::from(out.channels)],
                &values(&conv.bias),
            );
            let (stride, pad) = (i64::from(conv.stride), i64::from(conv.padding));
            let attributes = vec![
                ints("kernel_shape", &dims[2..]),
                ints("strides", &[stride, stride]),
                ints("pads", &[pad, pad, pad, pad]),
            ];
            graph.op("Conv", &[x, &w, &b], attributes, hint)
        }
        NetOp::ConvTranspose2d(conv) => {
            // ONNX's ConvTranspose takes the weight as [in, out, kh, kw], as the format does,
            // and sizes its output as PyTorch does: (in - 1) stride + kernel + output_padding
            // - 2 padding.
            let dims: Vec<i64> = conv.weight.shape.iter().map(|&d| i64::from(d)).collect();
            let w = weight(graph, &format!("{hint}.weight"), &conv.weight, &dims, int8);
            let b = graph.f32_constant(
                &format!("{hint}.bias"),
                &[i64::from(out.channels)],
                &values(&conv.bias),
            );
            let (stride, pad) = (i64::from(conv.stride), i64::from(conv.padding));
            let extra = i64::from(conv.output_padding);
            let attributes = vec![
                ints("kernel_shape", &dims[2..]),
                ints("strides", &[stride, stride]),
                ints("pads", &[pad, pad, pad, pad]),
                ints("output_padding", &[extra, extra]),
            ];
            graph.op("ConvTranspose", &[x, &w, &b], attributes, hint)
        }
        NetOp::Linear(linear) => {
            let dims: Vec<i64> = linear.weight.shape.iter().map(|&d| i64::from(d)).collect();
            let w = weight(
                graph,
                &format!("{hint}.weight"),
                &linear.weight,
                &dims,
                int8,
            );
            let b = graph.f32_constant(
                &format!("{hint}.bias"),
                &[i64::from(out.channels)],
                &values(&linear.bias),
            );
            // The runtime reads the (C, H, W) activation flattened in row-major order, which
            // is what Flatten(axis 1) does to each frame of [N, C, H, W].
            let flat = graph.op(
                "Flatten",
                &[x],
                vec![int("axis", 1)],
                &format!("{hint}.flat"),
            );
            let product = graph.op(
                "Gemm",
                &[&flat, &w, &b],
                vec![int("transB", 1)],
                &format!("{hint}.gemm"),
            );
            graph.reshape_per_frame(&product, &[out.channels, 1, 1], hint)
        }
        NetOp::ChannelAffine(affine) => {
            let scale = per_channel(graph, &format!("{hint}.scale"), &values(&affine.scale));
            let shift = per_channel(graph, &format!("{hint}.shift"), &values(&affine.shift));
            let scaled = graph.op("Mul", &[x, &scale], vec![], &format!("{hint}.scaled"));
            graph.op("Add", &[&scaled, &shift], vec![], hint)
        }
        NetOp::Relu => graph.op("Relu", &[x], vec![], hint),
        NetOp::Tanh => graph.op("Tanh", &[x], vec![], hint),
        NetOp::ConcatNegated => {
            let negated = graph.op("Neg", &[x], vec![], &format!("{hint}.negated"));
            graph.op("Concat", &[x, &negated], vec![int("axis", 1)], hint)
        }
        NetOp::Reshape {
            channels,
            height,
            width,
        } => graph.reshape_per_frame(x, &[*channels, *height, *width], hint),
        NetOp::Add { .. } => {
            let other = other.ok_or(Invalid::SlotUnset)?;
            graph.op("Add", &[x, &other.name], vec![], hint)
        }
        NetOp::MaxPool2d { kernel, stride } | NetOp::AvgPool2d { kernel, stride } => {
            let op_type = match op {
                NetOp::MaxPool2d { .. } => "MaxPool",
                _ => "AveragePool",
            };
            let (kernel, stride) = (i64::from(*kernel), i64::from(*stride));
            // No padding, floor of the window count: the runtime's windows exactly.
            let attributes = vec![
                ints("kernel_shape", &[kernel, kernel]),
                ints("strides", &[stride, stride]),
            ];
            graph.op(op_type, &[x], attributes, hint)
        }
        NetOp::GlobalAvgPool => graph.op("GlobalAveragePool", &[x], vec![], hint),
    };
    Ok(name)
}
