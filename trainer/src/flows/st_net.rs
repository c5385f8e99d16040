//! The coupling layers' s/t networks: the paper's ResNet (`resnet`), optionally with a
//! low-dimensional bottleneck halfway through the blocks (`resnet_ae`), and the convolutional
//! autoencoder (`autoencoder`): strided convs down to a quarter of the size, a linear map
//! through the bottleneck, transposed convs back up.

use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;

use super::init::ParamInit;

/// Shape and size of an s/t network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StNetSpec {
    /// Channels the network reads.
    pub in_channels: usize,
    /// Width of the hidden layers.
    pub mid_channels: usize,
    /// Residual blocks.
    pub blocks: usize,
    /// Spatial size of the activations (needed by the bottleneck's linear maps).
    pub height: usize,
    /// Spatial size of the activations.
    pub width: usize,
    /// Bottleneck latent size (the paper's `resnet_ae`), or `None` for the plain ResNet with
    /// skip sums.
    pub bottleneck: Option<usize>,
    /// Doubles the input after its batch-norm (the paper does so for checkerboard masks,
    /// whose input is half zeros).
    pub double_after_norm: bool,
    /// The convolutional autoencoder instead of the ResNet (needs `bottleneck`, and height and
    /// width divisible by 4).
    pub autoencoder: bool,
}

/// A conv with padding `kernel / 2` (same size for odd kernels), random unless `zero`.
fn conv(
    channels: [usize; 2],
    kernel: usize,
    zero: bool,
    init: &mut ParamInit,
    device: &Device,
) -> Conv2d {
    let pad = kernel / 2;
    let config = Conv2dConfig::new(channels, [kernel, kernel])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad));
    if zero {
        config.with_initializer(Initializer::Zeros).init(device)
    } else {
        init.conv2d(config, device)
    }
}

/// BN, ReLU, conv3x3, BN, ReLU, conv3x3, plus the input.
#[derive(Module, Debug)]
pub struct ResidualBlock {
    pub in_norm: BatchNorm,
    pub in_conv: Conv2d,
    pub out_norm: BatchNorm,
    pub out_conv: Conv2d,
}

impl ResidualBlock {
    fn new(channels: usize, init: &mut ParamInit, device: &Device) -> Self {
        ResidualBlock {
            in_norm: BatchNormConfig::new(channels).init(device),
            in_conv: conv([channels, channels], 3, false, init, device),
            out_norm: BatchNormConfig::new(channels).init(device),
            out_conv: conv([channels, channels], 3, false, init, device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = self.in_conv.forward(relu(self.in_norm.forward(x.clone())));
        self.out_conv.forward(relu(self.out_norm.forward(h))) + x
    }
}

/// The two linear maps of the bottleneck: flatten -> latent -> flatten.
#[derive(Module, Debug)]
pub struct Bottleneck {
    pub encode: Linear,
    pub decode: Linear,
}

/// The autoencoder's strided convolutions (each halves the size) and transposed convolutions
/// (each doubles it back).
#[derive(Module, Debug)]
pub struct Autoencoder {
    pub down: Vec<Conv2d>,
    pub up: Vec<ConvTranspose2d>,
}

/// The paper's ResNet s/t network, or the convolutional autoencoder.
#[derive(Module, Debug)]
pub struct StNet {
    pub in_norm: BatchNorm,
    pub in_conv: Conv2d,
    pub autoencoder: Option<Autoencoder>,
    pub blocks: Vec<ResidualBlock>,
    /// Skip sums (1x1 convs): `in_skip` then one per block; empty with a bottleneck.
    pub skips: Vec<Conv2d>,
    pub bottleneck: Option<Bottleneck>,
    pub out_norm: BatchNorm,
    pub out_conv: Conv2d,
    #[module(skip)]
    pub spec: StNetSpec,
}

impl StNet {
    /// A network reading `spec.in_channels` channels and writing `2 * in_channels` (s, t),
    /// whose last layer starts at zero so the coupling starts as the identity.
    pub fn new(spec: StNetSpec, init: &mut ParamInit, device: &Device) -> Self {
        let mid = spec.mid_channels;
        let skips = if spec.bottleneck.is_none() && !spec.autoencoder {
            (0..=spec.blocks)
                .map(|_| conv([mid, mid], 1, false, init, device))
                .collect()
        } else {
            Vec::new()
        };
        let autoencoder = spec.autoencoder.then(|| Autoencoder {
            down: (0..2)
                .map(|_| {
                    let config = Conv2dConfig::new([mid, mid], [3, 3])
                        .with_stride([2, 2])
                        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1));
                    init.conv2d(config, device)
                })
                .collect(),
            up: (0..2)
                .map(|_| {
                    let config = ConvTranspose2dConfig::new([mid, mid], [4, 4])
                        .with_stride([2, 2])
                        .with_padding([1, 1]);
                    init.conv_transpose2d(config, device)
                })
                .collect(),
        });
        let scale = if spec.autoencoder { 4 } else { 1 };
        let bottleneck = spec.bottleneck.map(|latent| {
            let flat = mid * (spec.height / scale) * (spec.width / scale);
            Bottleneck {
                encode: init.linear(LinearConfig::new(flat, latent), device),
                decode: init.linear(LinearConfig::new(latent, flat), device),
            }
        });
        StNet {
            in_norm: BatchNormConfig::new(spec.in_channels).init(device),
            in_conv: conv([2 * spec.in_channels, mid], 3, false, init, device),
            autoencoder,
            blocks: if spec.autoencoder {
                Vec::new()
            } else {
                (0..spec.blocks)
                    .map(|_| ResidualBlock::new(mid, init, device))
                    .collect()
            },
            skips,
            bottleneck,
            out_norm: BatchNormConfig::new(mid).init(device),
            out_conv: conv([mid, 2 * spec.in_channels], 1, true, init, device),
            spec,
        }
    }

    /// The block after which the bottleneck sits (the paper's `num_blocks // 2 - 1`, at
    /// least the first block).
    pub fn bottleneck_after(&self) -> usize {
        (self.spec.blocks / 2).max(1) - 1
    }

    /// `[B, C, H, W] -> [B, 2C, H, W]`: `s_raw` channels first, then `t`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = self.in_norm.forward(x);
        if self.spec.double_after_norm {
            x = x * 2.0;
        }
        let x = relu(Tensor::cat(vec![x.clone(), x.neg()], 1));
        let mut x = self.in_conv.forward(x);
        if let (Some(autoencoder), Some(bottleneck)) = (&self.autoencoder, &self.bottleneck) {
            for down in &autoencoder.down {
                x = down.forward(relu(x));
            }
            let [b, c, h, w] = x.dims();
            let code = bottleneck.encode.forward(relu(x).reshape([b, c * h * w]));
            x = bottleneck.decode.forward(code).reshape([b, c, h, w]);
            for up in &autoencoder.up {
                x = up.forward(relu(x));
            }
            return self.out_conv.forward(relu(self.out_norm.forward(x)));
        }
        let mut skip = self.skips.first().map(|conv| conv.forward(x.clone()));
        for (index, block) in self.blocks.iter().enumerate() {
            x = block.forward(x);
            if let (Some(sum), Some(conv)) = (skip.as_mut(), self.skips.get(index + 1)) {
                *sum = sum.clone() + conv.forward(x.clone());
            }
            if let Some(bottleneck) = &self.bottleneck
                && index == self.bottleneck_after()
            {
                let [b, c, h, w] = x.dims();
                let flat = x.reshape([b, c * h * w]);
                let code = bottleneck.encode.forward(flat);
                x = bottleneck.decode.forward(code).reshape([b, c, h, w]);
            }
        }
        let x = skip.unwrap_or(x);
        self.out_conv.forward(relu(self.out_norm.forward(x)))
    }
}
