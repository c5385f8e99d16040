//! The flow's layers and the layers of its coupling networks.
//!
//! Tensors are laid out channel-major (C, H, W) for one frame, the layout of the trainer's
//! NCHW tensors with the batch removed. Every formula below is what both the trainer and the
//! runtime implement; the parity tests hold them to it.

use serde::{Deserialize, Serialize};

use crate::bytes::Seq;
use crate::tensor::Tensor;

/// One invertible step of the flow, applied in file order to the preprocessed input.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum FlowLayer<'a> {
    /// RealNVP affine coupling.
    Coupling(#[serde(borrow)] Coupling<'a>),
    /// (C, H, W) -> (4C, H/2, W/2); output channel `4c + 2dy + dx` holds input channel `c` at
    /// pixel `(2i + dy, 2j + dx)` (the paper's `squeeze`). Log-det 0.
    Squeeze,
    /// The inverse of [`FlowLayer::Squeeze`]: (4C, H, W) -> (C, 2H, 2W). Log-det 0.
    Unsqueeze,
    /// Glow's activation normalisation: `y = (x + bias[c]) * exp(log_scale[c])`;
    /// log-det = `H * W * sum(log_scale)`.
    ActNorm(#[serde(borrow)] ActNorm<'a>),
    /// Glow's invertible 1x1 convolution: `y[:, i, j] = W x[:, i, j]` with `W` of shape
    /// (C, C); log-det = `H * W * log_abs_det`.
    InvertibleConv1x1(#[serde(borrow)] InvertibleConv1x1<'a>),
    /// Multi-scale factor-out: channels `keep_channels..C` leave the flow here and are scored
    /// under the standard normal prior at once; the first `keep_channels` flow on
    /// (the paper's `keepChannels`).
    FactorOut {
        /// Channels that continue through the flow.
        keep_channels: u32,
    },
    /// A feature extractor, for flows on embeddings (the paper's strongest OOD detector):
    /// `net` maps the preprocessed input to an embedding, the shape of its result, and the
    /// layers after it model the embedding's density. The map is not invertible, so it may
    /// only be the first layer, and the log-likelihood is then the embedding's: the
    /// preprocessing's log-determinant is left out and bits/dim count the embedding's
    /// dimensions. Appended after the other variants: postcard stores the variant's index.
    Embed(#[serde(borrow)] Embed<'a>),
}

/// See [`FlowLayer::Embed`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Embed<'a> {
    /// The extractor: reads the preprocessed input in slot 0; its result is the embedding.
    #[serde(borrow)]
    pub net: Seq<'a, NetNode<'a>>,
}

/// RealNVP affine coupling: `(s_raw, t) = net(x_id)`, `s = scale[c] * tanh(s_raw)`, then on
/// the changed part `y = (x + t) * exp(s)` and elsewhere `y = x`; log-det = sum of `s` over the
/// changed part.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Coupling<'a> {
    /// Which part conditions and which part changes.
    pub mask: Mask,
    /// The s/t network: reads the conditioning part, writes `2 * Cn` channels, `s_raw`
    /// first, then `t` (see [`Mask`] for `Cn` and the shapes).
    #[serde(borrow)]
    pub net: Seq<'a, NetNode<'a>>,
    /// The learned per-channel scale `w` of `s = w * tanh(s_raw)`, shape `[Cn]`.
    #[serde(borrow)]
    pub scale: Tensor<'a>,
}

/// Coupling masks. For the spatial masks the network reads the whole (C, H, W) tensor
/// multiplied by the read mask (zeros elsewhere), writes (2C, H, W), and only the positions
/// of the write mask change (`Cn = C`). The channel-wise mask splits the channels in halves:
/// the network reads one half and writes `s`, `t` for the other (`Cn = C / 2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mask {
    /// Reads pixels with `(i + j) % 2 == 1` and changes the others; `reverse` swaps the
    /// roles (the paper's `checkerboard_mask`).
    Checkerboard {
        /// Swap read and changed pixels.
        reverse: bool,
    },
    /// Reads the channel half `C/2..C` and changes `0..C/2`; `reverse` swaps the halves
    /// (the paper's `MaskChannelwise`).
    ChannelWise {
        /// Swap read and changed halves.
        reverse: bool,
    },
    /// Reads rows `0..H/2` and changes rows `H/2..H`; `reverse` swaps them.
    Horizontal {
        /// Swap read and changed halves.
        reverse: bool,
    },
    /// The paper's cycle-mask step: reads one quadrant, changes only another.
    Quadrant {
        /// The quadrant the network sees.
        read: Quadrant,
        /// The quadrant that changes.
        write: Quadrant,
    },
}

/// A quadrant of the (H, W) grid, split at `H/2` and `W/2` (rounded down), numbered
/// clockwise as in the paper's `MaskQuadrant`: 0 top-left, 1 top-right, 2 bottom-right,
/// 3 bottom-left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Quadrant {
    /// Rows `0..H/2`, columns `0..W/2`.
    TopLeft,
    /// Rows `0..H/2`, columns `W/2..W`.
    TopRight,
    /// Rows `H/2..H`, columns `W/2..W`.
    BottomRight,
    /// Rows `H/2..H`, columns `0..W/2`.
    BottomLeft,
}

impl Quadrant {
    /// The paper's index: 0 top-left, 1 top-right, 2 bottom-right, 3 bottom-left.
    pub fn index(self) -> u8 {
        match self {
            Quadrant::TopLeft => 0,
            Quadrant::TopRight => 1,
            Quadrant::BottomRight => 2,
            Quadrant::BottomLeft => 3,
        }
    }

    /// The quadrant of index `index % 4`.
    pub fn from_index(index: u8) -> Quadrant {
        match index % 4 {
            0 => Quadrant::TopLeft,
            1 => Quadrant::TopRight,
            2 => Quadrant::BottomRight,
            _ => Quadrant::BottomLeft,
        }
    }

    /// Whether pixel `(row, col)` of an `height` x `width` grid lies in this quadrant.
    pub fn contains(self, row: u32, col: u32, height: u32, width: u32) -> bool {
        let top = row < height / 2;
        let left = col < width / 2;
        match self {
            Quadrant::TopLeft => top && left,
            Quadrant::TopRight => top && !left,
            Quadrant::BottomRight => !top && !left,
            Quadrant::BottomLeft => !top && left,
        }
    }
}

impl Mask {
    /// For a spatial mask, whether pixel `(row, col)` is read by the network (`Some(true)`),
    /// changed (`Some(false)`), or, for quadrant masks, neither (`None`: passed through).
    /// Always `None` for the channel-wise mask.
    pub fn spatial_role(self, row: u32, col: u32, height: u32, width: u32) -> Option<bool> {
        match self {
            Mask::Checkerboard { reverse } => Some(((row + col) % 2 == 1) != reverse),
            Mask::Horizontal { reverse } => Some((row < height / 2) != reverse),
            Mask::Quadrant { read, write } => {
                if read.contains(row, col, height, width) {
                    Some(true)
                } else if write.contains(row, col, height, width) {
                    Some(false)
                } else {
                    None
                }
            }
            Mask::ChannelWise { .. } => None,
        }
    }
}

/// Glow's activation normalisation parameters, each of shape `[C]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActNorm<'a> {
    /// Added before scaling.
    #[serde(borrow)]
    pub bias: Tensor<'a>,
    /// Log of the per-channel scale.
    #[serde(borrow)]
    pub log_scale: Tensor<'a>,
}

/// Glow's invertible 1x1 convolution.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InvertibleConv1x1<'a> {
    /// The (C, C) mixing matrix, output channel first.
    #[serde(borrow)]
    pub weight: Tensor<'a>,
    /// `ln |det W|` of the stored (for int8: dequantised) weights, computed by the writer so
    /// the runtime needs no factorisation.
    pub log_abs_det: f32,
}

/// One operation of a coupling network, reading activation slot `input` and writing slot
/// `output`. Slot 0 holds the network's input when it starts; the last node's output slot
/// holds its result. A network has at most [`MAX_SLOTS`] slots.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetNode<'a> {
    /// What to compute.
    #[serde(borrow)]
    pub op: NetOp<'a>,
    /// Slot read.
    pub input: u8,
    /// Slot written; may equal `input` only for elementwise operations.
    pub output: u8,
}

/// Most activation slots a coupling network may use.
pub const MAX_SLOTS: usize = 8;

/// The operations of coupling networks (and of feature extractors). Batch-norm and
/// weight-norm never appear: the writer folds them into these plain weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum NetOp<'a> {
    /// 2-D convolution with zero padding.
    Conv2d(#[serde(borrow)] Conv2d<'a>),
    /// 2-D transposed convolution.
    ConvTranspose2d(#[serde(borrow)] ConvTranspose2d<'a>),
    /// Fully connected layer on the flattened (C*H*W) input; the output has shape (out, 1, 1).
    Linear(#[serde(borrow)] Linear<'a>),
    /// Per-channel `y = x * scale[c] + shift[c]`: a folded batch-norm.
    ChannelAffine(#[serde(borrow)] ChannelAffine<'a>),
    /// `max(x, 0)`.
    Relu,
    /// `tanh(x)`.
    Tanh,
    /// `concat(x, -x)` along channels: (C, H, W) -> (2C, H, W).
    ConcatNegated,
    /// Reinterprets the activation with a new shape of the same element count.
    Reshape {
        /// New channel count.
        channels: u32,
        /// New height.
        height: u32,
        /// New width.
        width: u32,
    },
    /// Elementwise sum with slot `other` (same shape); `other` must differ from the output.
    Add {
        /// The slot added to the input.
        other: u8,
    },
    /// Max over `kernel x kernel` windows with the given stride, no padding.
    MaxPool2d {
        /// Window side.
        kernel: u8,
        /// Step between windows.
        stride: u8,
    },
    /// Mean over `kernel x kernel` windows with the given stride, no padding.
    AvgPool2d {
        /// Window side.
        kernel: u8,
        /// Step between windows.
        stride: u8,
    },
    /// Mean over all pixels of each channel: (C, H, W) -> (C, 1, 1).
    GlobalAvgPool,
}

/// Convolution parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Conv2d<'a> {
    /// Shape `[out, in, kernel_h, kernel_w]`.
    #[serde(borrow)]
    pub weight: Tensor<'a>,
    /// Shape `[out]`.
    #[serde(borrow)]
    pub bias: Tensor<'a>,
    /// Step in both directions (at least 1).
    pub stride: u8,
    /// Zero padding on every side.
    pub padding: u8,
}

/// Transposed convolution parameters (PyTorch / burn semantics).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConvTranspose2d<'a> {
    /// Shape `[in, out, kernel_h, kernel_w]`.
    #[serde(borrow)]
    pub weight: Tensor<'a>,
    /// Shape `[out]`.
    #[serde(borrow)]
    pub bias: Tensor<'a>,
    /// Step in both directions (at least 1).
    pub stride: u8,
    /// Padding removed from every side of the full output.
    pub padding: u8,
    /// Extra rows and columns added at the bottom and right (less than `stride`).
    pub output_padding: u8,
}

/// Fully connected layer parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Linear<'a> {
    /// Shape `[out, in]`.
    #[serde(borrow)]
    pub weight: Tensor<'a>,
    /// Shape `[out]`.
    #[serde(borrow)]
    pub bias: Tensor<'a>,
}

/// Per-channel affine parameters, each of shape `[C]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChannelAffine<'a> {
    /// Multiplier.
    #[serde(borrow)]
    pub scale: Tensor<'a>,
    /// Added after the multiplication.
    #[serde(borrow)]
    pub shift: Tensor<'a>,
}
