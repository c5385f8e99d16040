//! Flows on embeddings, the paper's strongest OOD detector (its `RealNVPTabular` on CNN
//! features): a small convolutional extractor, trained first on the in-distribution data and
//! then frozen, maps an image to an embedding; a RealNVP with channel-wise couplings and MLP
//! s/t networks models the embedding's density.
//!
//! The paper used a big pretrained EfficientNet; flowgate trains its own extractor on the
//! camera's (or dataset's) normal images, so that it fits the edge budget: on the labels where
//! there are some, else on predicting which of four flips was applied to an image (a
//! self-supervised task that needs the scene's layout, in the spirit of Golan and El-Yaniv's
//! geometric-transformation anomaly detection).

use super::coupling::channel_wise_affine;
use super::init::ParamInit;
use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;

/// The extractor's config types (in `flowgate-config`, which has no burn).
pub use flowgate_config::{ExtractorConfig, FLIPS, LABEL_CLASSES, Objective};

/// Conv stages, global average pool, a linear map to the embedding, and the pretext task's
/// classifier head (trained, never exported).
#[derive(Module, Debug)]
pub struct Extractor {
    pub convs: Vec<Conv2d>,
    pub pool: MaxPool2d,
    pub embed: Linear,
    pub head: Linear,
}

impl Extractor {
    /// An extractor for `in_channels`-channel images, with the pretext task's head.
    pub fn new(
        config: &ExtractorConfig,
        in_channels: usize,
        init: &mut ParamInit,
        device: &Device,
    ) -> Self {
        let mut previous = in_channels;
        let convs = config
            .channels
            .iter()
            .map(|&channels| {
                let conv = Conv2dConfig::new([previous, channels], [3, 3])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1));
                previous = channels;
                init.conv2d(conv, device)
            })
            .collect();
        Extractor {
            convs,
            // The format's `MaxPool2d { kernel: 2, stride: 2 }`: unpadded, rounding down.
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            embed: init.linear(LinearConfig::new(previous, config.embedding), device),
            head: init.linear(
                LinearConfig::new(config.embedding, config.objective.classes()),
                device,
            ),
        }
    }

    /// The embedding of the flow's input `y` (`[B, C, H, W]` -> `[B, E]`).
    pub fn features(&self, y: Tensor<4>) -> Tensor<2> {
        let mut x = y;
        let stages = self.convs.len();
        for (index, conv) in self.convs.iter().enumerate() {
            x = relu(conv.forward(x));
            if index + 1 < stages {
                x = self.pool.forward(x);
            }
        }
        let [batch, channels, _, _] = x.dims();
        let pooled = x.mean_dim(3).mean_dim(2).reshape([batch, channels]);
        self.embed.forward(pooled)
    }

    /// The pretext task's class scores.
    pub fn logits(&self, y: Tensor<4>) -> Tensor<2> {
        self.head.forward(relu(self.features(y)))
    }
}

/// Every image of `images` (`[B, C, H, W]`) in its four flips, as one `[4B, C, H, W]` batch,
/// and each one's flip class (0 none, 1 left-right, 2 up-down, 3 both), for
/// [`Objective::Flips`].
pub fn all_flips(images: Tensor<4>) -> (Tensor<4>, Vec<i64>) {
    let batch = images.dims()[0];
    let flipped = vec![
        images.clone(),
        images.clone().flip([3]),
        images.clone().flip([2]),
        images.flip([2, 3]),
    ];
    let labels = (0..FLIPS as i64)
        .flat_map(|flip| std::iter::repeat_n(flip, batch))
        .collect();
    (Tensor::cat(flipped, 0), labels)
}

/// A multilayer perceptron: `Linear, ReLU` repeated, then a linear output layer that starts
/// at zero (so a coupling starts as the identity, as the paper's do).
#[derive(Module, Debug)]
pub struct Mlp {
    pub layers: Vec<Linear>,
}

impl Mlp {
    /// `inputs -> hidden (x hidden_layers) -> outputs`.
    pub fn new(
        inputs: usize,
        hidden: usize,
        hidden_layers: usize,
        outputs: usize,
        init: &mut ParamInit,
        device: &Device,
    ) -> Self {
        let mut layers = Vec::with_capacity(hidden_layers + 1);
        let mut previous = inputs;
        for _ in 0..hidden_layers.max(1) {
            layers.push(init.linear(LinearConfig::new(previous, hidden), device));
            previous = hidden;
        }
        layers.push(
            LinearConfig::new(previous, outputs)
                .with_initializer(Initializer::Zeros)
                .init(device),
        );
        Mlp { layers }
    }

    /// `[B, in] -> [B, out]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let last = self.layers.len().saturating_sub(1);
        let mut x = x;
        for (index, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if index < last {
                x = relu(x);
            }
        }
        x
    }
}

/// The paper's `CouplingLayerTabular`: a channel-wise coupling on a `[B, E, 1, 1]` embedding
/// with an MLP s/t network.
#[derive(Module, Debug)]
pub struct TabularCoupling {
    pub net: Mlp,
    /// The per-dimension `w` of `s = w * tanh(s_raw)`, shape `[E/2]`.
    pub scale: Param<Tensor<1>>,
    #[module(skip)]
    pub reverse: bool,
}

impl TabularCoupling {
    /// A coupling on `dims`-dimensional embeddings, starting as the identity.
    pub fn new(
        dims: usize,
        hidden: usize,
        hidden_layers: usize,
        reverse: bool,
        init: &mut ParamInit,
        device: &Device,
    ) -> Self {
        let half = dims / 2;
        TabularCoupling {
            net: Mlp::new(half, hidden, hidden_layers, dims, init, device),
            scale: Param::from_tensor(Tensor::ones([half], device)),
            reverse,
        }
    }

    /// `[B, E, 1, 1] -> (y, log-det [B])`.
    pub fn forward(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<1>) {
        let (y, log_det, _) = channel_wise_affine(x, self.reverse, self.scale.val(), |x_id| {
            let [batch, half, _, _] = x_id.dims();
            self.net
                .forward(x_id.reshape([batch, half]))
                .reshape([batch, 2 * half, 1, 1])
        });
        (y, log_det)
    }
}
