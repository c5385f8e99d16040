//! Glow's layers: activation normalisation and the invertible 1x1 convolution.

use burn::module::Param;
use burn::prelude::*;

/// `y = (x + bias[c]) * exp(log_scale[c])`; log-det = `H * W * sum(log_scale)`.
///
/// Starts as the identity (Glow initialises from the first batch's statistics; the
/// identity start trains as well at these sizes and keeps runs reproducible).
#[derive(Module, Debug)]
pub struct ActNorm {
    pub bias: Param<Tensor<1>>,
    pub log_scale: Param<Tensor<1>>,
}

impl ActNorm {
    /// The identity on `channels` channels.
    pub fn new(channels: usize, device: &Device) -> Self {
        ActNorm {
            bias: Param::from_tensor(Tensor::zeros([channels], device)),
            log_scale: Param::from_tensor(Tensor::zeros([channels], device)),
        }
    }

    /// `[B, C, H, W] -> (y, log-det [B])`.
    pub fn forward(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<1>) {
        let [batch, channels, height, width] = x.dims();
        let bias = self.bias.val().reshape([1, channels, 1, 1]);
        let log_scale = self.log_scale.val();
        let y = (x + bias) * log_scale.clone().reshape([1, channels, 1, 1]).exp();
        let log_det = log_scale
            .sum()
            .mul_scalar((height * width) as f64)
            .expand([batch]);
        (y, log_det)
    }
}

/// Glow's invertible 1x1 convolution in its LU form: `W = P L (U + diag(sign * exp(log_s)))`
/// with `P` a fixed permutation, `L` unit lower-triangular and `U` strictly upper-triangular,
/// so `ln |det W| = sum(log_s)` costs nothing.
#[derive(Module, Debug)]
pub struct InvertibleConv1x1 {
    pub lower: Param<Tensor<2>>,
    pub upper: Param<Tensor<2>>,
    pub log_s: Param<Tensor<1>>,
    /// Row-major `P`.
    #[module(skip)]
    pub permutation: Vec<f32>,
    #[module(skip)]
    pub sign: Vec<f32>,
}

impl InvertibleConv1x1 {
    /// Starts as the permutation that reverses the channels (`L = I`, `U = 0`, `s = 1`).
    pub fn new(channels: usize, device: &Device) -> Self {
        let mut permutation = vec![0.0; channels * channels];
        for row in 0..channels {
            permutation[row * channels + (channels - 1 - row)] = 1.0;
        }
        InvertibleConv1x1 {
            lower: Param::from_tensor(Tensor::zeros([channels, channels], device)),
            upper: Param::from_tensor(Tensor::zeros([channels, channels], device)),
            log_s: Param::from_tensor(Tensor::zeros([channels], device)),
            permutation,
            sign: vec![1.0; channels],
        }
    }

    /// The (C, C) matrix `W`.
    pub fn weight(&self) -> Tensor<2> {
        let device = self.log_s.val().device();
        let channels = self.sign.len();
        let mask = |keep: fn(usize, usize) -> bool| -> Tensor<2> {
            let values: Vec<f32> = (0..channels * channels)
                .map(|i| {
                    if keep(i / channels, i % channels) {
                        1.0
                    } else {
                        0.0
                    }
                })
                .collect();
            Tensor::from_data(TensorData::new(values, [channels, channels]), &device)
        };
        let identity = mask(|r, c| r == c);
        let lower = self.lower.val() * mask(|r, c| r > c) + identity.clone();
        let sign = Tensor::from_data(TensorData::new(self.sign.clone(), [1, channels]), &device);
        let diagonal = identity * (self.log_s.val().exp().reshape([1, channels]) * sign);
        let upper = self.upper.val() * mask(|r, c| r < c) + diagonal;
        let permutation = Tensor::from_data(
            TensorData::new(self.permutation.clone(), [channels, channels]),
            &device,
        );
        permutation.matmul(lower).matmul(upper)
    }

    /// `ln |det W|`.
    pub fn log_abs_det(&self) -> Tensor<1> {
        self.log_s.val().sum()
    }

    /// `[B, C, H, W] -> (y, log-det [B])`.
    pub fn forward(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<1>) {
        let [batch, channels, height, width] = x.dims();
        let weight = self.weight().unsqueeze::<3>().repeat_dim(0, batch);
        let y = weight
            .matmul(x.reshape([batch, channels, height * width]))
            .reshape([batch, channels, height, width]);
        let log_det = self
            .log_abs_det()
            .mul_scalar((height * width) as f64)
            .expand([batch]);
        (y, log_det)
    }
}
