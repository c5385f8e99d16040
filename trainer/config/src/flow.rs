//! The flow's shape: architecture, coupling networks, and the extractor of a flow on
//! embeddings.

use serde::{Deserialize, Serialize};

/// The flow architectures the trainer builds (the paper's, section by section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Architecture {
    /// Multi-scale RealNVP: per scale 3 checkerboard couplings, squeeze, 3 channel-wise
    /// couplings, factor out half; the last scale has 4 checkerboard couplings.
    RealNvp {
        /// Scales.
        scales: usize,
    },
    /// The paper's cycle-mask flow: `couplings` full-resolution couplings, coupling k reads
    /// quadrant k mod 4 and changes quadrant k + 1 mod 4.
    CycleMask {
        /// Couplings (the paper uses 8).
        couplings: usize,
    },
    /// Full-resolution couplings alternating top/bottom halves.
    Horizontal {
        /// Couplings.
        couplings: usize,
    },
    /// Glow: per scale squeeze, `steps` x (actnorm, 1x1 conv, channel-wise coupling), then
    /// factor out half (except after the last scale).
    Glow {
        /// Scales.
        scales: usize,
        /// Steps per scale.
        steps: usize,
        /// How the invertible 1x1 convolutions start [default: `reverse`].
        #[serde(default)]
        conv_init: ConvInit,
    },
    /// A flow on embeddings (the paper's `RealNVPTabular`): a convolutional extractor, then
    /// an actnorm that standardises the embedding and `couplings` channel-wise couplings
    /// with MLP s/t networks (`st_net.kind = "mlp"`: `channels` hidden units, `blocks`
    /// hidden layers).
    Embedding {
        /// Couplings (the paper uses 8).
        couplings: usize,
        /// The feature extractor.
        extractor: ExtractorConfig,
    },
}

/// How Glow's invertible 1x1 convolutions start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConvInit {
    /// The permutation that reverses the channels (RealNVP's fixed alternation). The default,
    /// so that a config written before this option, and its run folder's weights, keep their
    /// meaning.
    #[default]
    Reverse,
    /// A random rotation (the Q of a Gaussian matrix's QR decomposition) in its LU form, as
    /// Glow's and the paper's code start. Each layer's rotation is drawn from a generator
    /// seeded by the layer's position alone, so its fixed permutation and signs (which are
    /// not trained, and so not in the weights' record) are the same whenever the flow is
    /// built.
    Rotation,
}

/// The s/t networks' size, shared by every coupling of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StNetConfig {
    /// Hidden channels at the first scale (doubled per scale for RealNVP without a
    /// bottleneck, as in the paper).
    pub channels: usize,
    /// Residual blocks.
    pub blocks: usize,
    /// Bottleneck latent size (the paper's `resnet_ae`); omit for the plain ResNet.
    #[serde(default)]
    pub bottleneck: Option<usize>,
    /// `resnet` (default) or `autoencoder` (a compact version of the paper's: two stride-2
    /// convs to a quarter of the size, the bottleneck, two transposed convs back; needs
    /// `bottleneck`).
    #[serde(default)]
    pub kind: StNetKind,
}

/// The s/t network family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StNetKind {
    /// The paper's ResNet (`resnet`, or `resnet_ae` with a bottleneck).
    #[default]
    Resnet,
    /// A compact convolutional autoencoder (the paper's has wider 4x4 convs and LeakyReLU).
    Autoencoder,
    /// A multilayer perceptron, for flows on embeddings.
    Mlp,
}

/// The whole model's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowConfig {
    /// Input channels (1 gray, 3 RGB).
    pub channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// The logit preprocessing's alpha (the paper: 0.05).
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// The layers.
    pub architecture: Architecture,
    /// The coupling networks.
    pub st_net: StNetConfig,
}

impl FlowConfig {
    /// Dimensions the density is over, which bits/dim divide by: the input's, or the
    /// embedding's for a flow on embeddings.
    pub fn density_dims(&self) -> usize {
        match &self.architecture {
            Architecture::Embedding { extractor, .. } => extractor.embedding,
            _ => self.channels * self.height * self.width,
        }
    }

    /// The input's `[channels, height, width]`.
    pub fn input_shape(&self) -> [usize; 3] {
        [self.channels, self.height, self.width]
    }

    /// What is wrong with the values on their own (the layer-by-layer shape checks, such as
    /// a squeeze of an odd size, happen when the trainer builds the flow).
    pub(crate) fn problem(&self) -> Option<String> {
        if !(self.alpha > 0.0 && self.alpha < 0.5) {
            return Some(format!(
                "model.alpha must be in (0, 0.5), got {}",
                self.alpha
            ));
        }
        if self.channels == 0 || self.height == 0 || self.width == 0 {
            return Some(format!(
                "model.channels, model.height and model.width must be positive, got {}x{}x{}",
                self.channels, self.height, self.width
            ));
        }
        // Images are read into memory whole: a size no camera has is a typo, not a request.
        if self
            .channels
            .checked_mul(self.height)
            .and_then(|n| n.checked_mul(self.width))
            .is_none_or(|n| n > MAX_INPUT_DIMS)
        {
            return Some(format!(
                "model input {}x{}x{} is larger than {MAX_INPUT_DIMS} values",
                self.channels, self.height, self.width
            ));
        }
        if self.st_net.channels == 0 {
            return Some("model.st_net.channels must be positive".into());
        }
        None
    }
}

/// The largest input a config may ask for, in values per image (4096 x 4096 RGB).
const MAX_INPUT_DIMS: usize = 3 * 4096 * 4096;

fn default_alpha() -> f64 {
    0.05
}

/// What the extractor learns from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// Classify the dataset's labels (idx datasets only).
    Labels,
    /// Tell apart an image, its left-right flip, its up-down flip and its 180-degree turn:
    /// four classes that need no labels.
    Flips,
}

impl Objective {
    /// Classes of the pretext task.
    pub fn classes(self) -> usize {
        match self {
            Objective::Labels => LABEL_CLASSES,
            Objective::Flips => FLIPS,
        }
    }
}

/// Classes of the labelled datasets flowgate reads (Fashion-MNIST and MNIST).
pub const LABEL_CLASSES: usize = 10;

/// The flips of [`Objective::Flips`]: identity, left-right, up-down, both.
pub const FLIPS: usize = 4;

/// The feature extractor's shape and its pretraining.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtractorConfig {
    /// Channels of each 3x3 conv stage; a 2x2 max-pool follows every stage but the last,
    /// then a global average pool.
    pub channels: Vec<usize>,
    /// Embedding size (even: the couplings split it in halves).
    pub embedding: usize,
    /// The pretext task.
    pub objective: Objective,
    /// Pretraining steps (Adam, the config's batch size).
    pub steps: usize,
    /// Pretraining learning rate.
    #[serde(default = "default_extractor_lr")]
    pub lr: f64,
    /// Full-covariance whitening of the embedding before its flow: an invertible 1x1 linear
    /// map after the standardising actnorm, set after pretraining to the inverse square root
    /// (ZCA) of the standardised training embeddings' correlation matrix and then trained
    /// with the flow [default: false, the actnorm's per-dimension standardisation alone].
    #[serde(default)]
    pub whiten: bool,
}

fn default_extractor_lr() -> f64 {
    1e-3
}

impl ExtractorConfig {
    /// What is wrong with the values on their own.
    pub(crate) fn problem(&self) -> Option<String> {
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Some(format!(
                "model.architecture.extractor.lr must be positive, got {}",
                self.lr
            ));
        }
        None
    }
}
