//! A tiny model that uses every layer and network operation of the format, with small
//! deterministic pseudo-random weights: a fixture for round-trip, robustness and runtime tests.

use alloc::vec;
use alloc::vec::Vec;

use crate::bytes::{Bytes, Seq};
use crate::detail::{Detail, Standardise};
use crate::layers::{
    ActNorm, ChannelAffine, Conv2d, ConvTranspose2d, Coupling, Embed, FlowLayer, InvertibleConv1x1,
    Linear, Mask, NetNode, NetOp, Quadrant,
};
use crate::model::{InputSpec, Model, Preprocess, Quantile, Resize, ScoreKind, Threshold};
use crate::tensor::Tensor;

/// Deterministic values in [-amplitude, amplitude] (a linear congruential generator: the
/// fixture must be identical on every platform and need no dependency).
struct Values(u64);

impl Values {
    fn take(&mut self, count: usize, amplitude: f32) -> Vec<f32> {
        (0..count)
            .map(|_| {
                self.0 = self
                    .0
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let unit = (self.0 >> 40) as f32 / (1u64 << 24) as f32;
                (unit * 2.0 - 1.0) * amplitude
            })
            .collect()
    }

    fn tensor(&mut self, dims: &[u32], amplitude: f32) -> Tensor<'static> {
        let count = dims.iter().map(|&d| d as usize).product();
        let values = self.take(count, amplitude);
        Tensor::from_f32(dims, &values).unwrap_or_else(|| unreachable!("count matches dims"))
    }

    fn conv(&mut self, out: u32, inp: u32, kernel: u32, padding: u8) -> NetOp<'static> {
        NetOp::Conv2d(Conv2d {
            weight: self.tensor(&[out, inp, kernel, kernel], 0.2),
            bias: self.tensor(&[out], 0.05),
            stride: 1,
            padding,
        })
    }

    fn linear(&mut self, out: u32, inp: u32) -> NetOp<'static> {
        NetOp::Linear(Linear {
            weight: self.tensor(&[out, inp], 0.2),
            bias: self.tensor(&[out], 0.05),
        })
    }
}

fn node(op: NetOp<'static>, input: u8, output: u8) -> NetNode<'static> {
    NetNode { op, input, output }
}

fn coupling(mask: Mask, scale: Tensor<'static>, net: Vec<NetNode<'static>>) -> FlowLayer<'static> {
    FlowLayer::Coupling(Coupling {
        mask,
        net: Seq::from_vec(net),
        scale,
    })
}

/// A 1x4x4 model exercising every flow layer, mask kind and network operation.
pub fn tiny_model() -> Model<'static> {
    let mut values = Values(0x5eed);
    let residual_net = vec![
        node(NetOp::ConcatNegated, 0, 1),
        node(values.conv(4, 2, 3, 1), 1, 2),
        node(
            NetOp::ChannelAffine(ChannelAffine {
                scale: values.tensor(&[4], 1.0),
                shift: values.tensor(&[4], 0.1),
            }),
            2,
            2,
        ),
        node(NetOp::Relu, 2, 2),
        node(values.conv(4, 4, 1, 0), 2, 3),
        node(NetOp::Add { other: 2 }, 3, 3),
        node(values.conv(2, 4, 1, 0), 3, 4),
    ];
    let bottleneck_net = vec![
        node(values.linear(8, 16), 0, 1),
        node(NetOp::Tanh, 1, 1),
        node(values.linear(4, 8), 1, 2),
        node(
            NetOp::Reshape {
                channels: 1,
                height: 2,
                width: 2,
            },
            2,
            2,
        ),
        node(
            NetOp::ConvTranspose2d(ConvTranspose2d {
                weight: values.tensor(&[1, 2, 2, 2], 0.2),
                bias: values.tensor(&[2], 0.05),
                stride: 2,
                padding: 0,
                output_padding: 0,
            }),
            2,
            3,
        ),
    ];
    let pooling_net = vec![
        node(
            NetOp::MaxPool2d {
                kernel: 2,
                stride: 2,
            },
            0,
            1,
        ),
        node(
            NetOp::AvgPool2d {
                kernel: 2,
                stride: 1,
            },
            1,
            2,
        ),
        node(NetOp::GlobalAvgPool, 0, 3),
        node(NetOp::Add { other: 2 }, 3, 3),
        node(values.linear(32, 1), 3, 4),
        node(
            NetOp::Reshape {
                channels: 2,
                height: 4,
                width: 4,
            },
            4,
            4,
        ),
    ];
    let int8_conv = values.tensor(&[4, 2, 3, 3], 0.2);
    let channel_net = vec![
        node(
            NetOp::Conv2d(Conv2d {
                weight: int8_conv
                    .quantized_i8()
                    .unwrap_or_else(|| unreachable!("lengths follow the shape")),
                bias: values.tensor(&[4], 0.05),
                stride: 1,
                padding: 1,
            }),
            0,
            1,
        ),
        node(NetOp::Relu, 1, 1),
        node(values.conv(4, 4, 1, 0), 1, 2),
    ];
    let last_net = vec![node(values.conv(4, 2, 3, 1), 0, 1)];
    // Lower-triangular, so ln|det| is the sum of ln|diagonal|.
    let diagonal = [1.0f32, 2.0, 0.5, 1.5];
    let mut mixing = values.take(16, 0.3);
    for (row, (weights, diagonal)) in mixing.chunks_mut(4).zip(diagonal).enumerate() {
        for (col, weight) in weights.iter_mut().enumerate().skip(row) {
            *weight = if col == row { diagonal } else { 0.0 };
        }
    }
    let log_abs_det = diagonal.iter().map(|d| ln(*d)).sum();

    let flow = vec![
        coupling(
            Mask::Checkerboard { reverse: false },
            values.tensor(&[1], 1.0),
            residual_net,
        ),
        coupling(
            Mask::Quadrant {
                read: Quadrant::TopLeft,
                write: Quadrant::TopRight,
            },
            values.tensor(&[1], 1.0),
            bottleneck_net,
        ),
        coupling(
            Mask::Horizontal { reverse: true },
            values.tensor(&[1], 1.0),
            pooling_net,
        ),
        FlowLayer::ActNorm(ActNorm {
            bias: values.tensor(&[1], 0.1),
            log_scale: values.tensor(&[1], 0.1),
        }),
        FlowLayer::Squeeze,
        FlowLayer::InvertibleConv1x1(InvertibleConv1x1 {
            weight: Tensor::from_f32(&[4, 4], &mixing).unwrap_or_else(|| unreachable!("16 values")),
            log_abs_det,
        }),
        coupling(
            Mask::ChannelWise { reverse: false },
            values.tensor(&[2], 1.0),
            channel_net,
        ),
        FlowLayer::Unsqueeze,
        FlowLayer::Squeeze,
        FlowLayer::FactorOut { keep_channels: 2 },
        coupling(
            Mask::Checkerboard { reverse: true },
            values.tensor(&[2], 1.0),
            last_net,
        ),
    ];
    let mut quantiles = heapless::Vec::new();
    for (level, ood_score) in [(0.5, 2.0), (0.99, 2.5)] {
        let _ = quantiles.push(Quantile { level, ood_score });
    }
    Model {
        name: "tiny",
        provenance: "flowgate_shared::example::tiny_model",
        input: InputSpec {
            channels: 1,
            height: 4,
            width: 4,
            preprocess: Preprocess::Logit { alpha: 0.05 },
            resize: Resize::AreaAverage,
        },
        flow: Seq::from_vec(flow),
        score: ScoreKind::BitsPerDim,
        threshold: Some(Threshold {
            ood_score: 2.5,
            target_false_reject_rate: 0.01,
            calibration_frames: 100,
            quantiles,
        }),
        detail: None,
    }
}

/// A 1x4x4 flow on embeddings: an extractor (conv, ReLU, max-pool, global average pool,
/// linear) to a 4-dim embedding, an actnorm and two channel-wise couplings with MLP networks.
pub fn tiny_embedding_model() -> Model<'static> {
    let mut values = Values(0xe4bed);
    let extractor = vec![
        node(values.conv(2, 1, 3, 1), 0, 1),
        node(NetOp::Relu, 1, 1),
        node(
            NetOp::MaxPool2d {
                kernel: 2,
                stride: 2,
            },
            1,
            2,
        ),
        node(NetOp::GlobalAvgPool, 2, 1),
        node(values.linear(4, 2), 1, 2),
    ];
    let mut flow = vec![
        FlowLayer::Embed(Embed {
            net: Seq::from_vec(extractor),
        }),
        FlowLayer::ActNorm(ActNorm {
            bias: values.tensor(&[4], 0.1),
            log_scale: values.tensor(&[4], 0.1),
        }),
    ];
    for reverse in [false, true] {
        let mlp = vec![
            node(values.linear(6, 2), 0, 1),
            node(NetOp::Relu, 1, 1),
            node(values.linear(4, 6), 1, 2),
        ];
        flow.push(coupling(
            Mask::ChannelWise { reverse },
            values.tensor(&[2], 1.0),
            mlp,
        ));
    }
    Model {
        name: "tiny-embedding",
        provenance: "flowgate_shared::example::tiny_embedding_model",
        flow: Seq::from_vec(flow),
        threshold: None,
        ..tiny_model()
    }
}

/// [`tiny_model`] with a native-resolution detail branch over 24x18 frames: a 3x2 grid of
/// 4x4 patches scored by the tiny model itself (exact size, no threshold).
pub fn tiny_detail_model() -> Model<'static> {
    let patch = Model {
        name: "tiny-patch",
        threshold: None,
        input: InputSpec {
            resize: Resize::Exact,
            ..tiny_model().input
        },
        ..tiny_model()
    };
    let payload = postcard::to_allocvec(&patch)
        .unwrap_or_else(|_| unreachable!("a model in memory always encodes"));
    Model {
        name: "tiny-detail",
        detail: Some(Detail {
            frame_width: 24,
            frame_height: 18,
            columns: 3,
            rows: 2,
            patch_model: Bytes::Owned(payload),
            frame: Standardise {
                center: 2.0,
                spread: 0.25,
            },
            detail: Standardise {
                center: 1.5,
                spread: 0.5,
            },
        }),
        ..tiny_model()
    }
}

/// `ln` without std (core has none): `2 atanh((v - 1) / (v + 1))` by its series, accurate to
/// f32 precision for the fixture's values in [0.5, 2].
fn ln(value: f32) -> f32 {
    let ratio = f64::from((value - 1.0) / (value + 1.0));
    let squared = ratio * ratio;
    let mut term = ratio;
    let mut sum = 0.0;
    for k in 0..30 {
        sum += term / f64::from(2 * k + 1);
        term *= squared;
    }
    (2.0 * sum) as f32
}
