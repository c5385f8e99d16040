//! Parameter initialisation from a generator of the model's own.
//!
//! burn's initialisers draw from its process-wide generator (one per process, shared by every
//! thread), so two models built side by side would take each other's draws. Layers are built
//! here with burn's constant initialisers and their random tensors then drawn from a seeded
//! [`StdRng`], with the distribution burn's default (`KaimingUniform` with gain `1/sqrt(3)`)
//! has: uniform in `±1/sqrt(fan_in)`, for weights and biases alike.

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{Initializer, Linear, LinearConfig, LinearLayout};
use burn::prelude::*;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// Draws layers' initial parameters, in the order the layers are built.
#[derive(Debug)]
pub struct ParamInit {
    rng: StdRng,
}

impl ParamInit {
    /// A generator for one model's parameters.
    pub fn new(seed: u64) -> Self {
        ParamInit {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// A parameter of `shape` uniform in `[-bound, bound)`.
    fn uniform<const D: usize>(
        &mut self,
        shape: [usize; D],
        bound: f64,
        device: &Device,
    ) -> Param<Tensor<D>> {
        let count = shape.iter().product::<usize>();
        let bound = bound as f32;
        let values: Vec<f32> = (0..count)
            .map(|_| (self.rng.random::<f32>() * 2.0 - 1.0) * bound)
            .collect();
        Param::from_tensor(Tensor::from_data(TensorData::new(values, shape), device))
    }

    /// `config`'s convolution with burn's default initialisation, drawn from this generator.
    pub fn conv2d(&mut self, config: Conv2dConfig, device: &Device) -> Conv2d {
        let [inputs, outputs] = config.channels;
        let [kh, kw] = config.kernel_size;
        let fan_in = inputs / config.groups * kh * kw;
        let bound = kaiming_bound(fan_in);
        let mut conv = config.with_initializer(Initializer::Zeros).init(device);
        conv.weight = self.uniform([outputs, inputs / conv.groups, kh, kw], bound, device);
        if conv.bias.is_some() {
            conv.bias = Some(self.uniform([outputs], bound, device));
        }
        conv
    }

    /// `config`'s transposed convolution with burn's default initialisation, drawn from this
    /// generator.
    pub fn conv_transpose2d(
        &mut self,
        config: ConvTranspose2dConfig,
        device: &Device,
    ) -> ConvTranspose2d {
        let [inputs, outputs] = config.channels;
        let [kh, kw] = config.kernel_size;
        let groups = config.groups;
        let bound = kaiming_bound(outputs / groups * kh * kw);
        let mut conv = config.with_initializer(Initializer::Zeros).init(device);
        conv.weight = self.uniform([inputs, outputs / groups, kh, kw], bound, device);
        if conv.bias.is_some() {
            conv.bias = Some(self.uniform([outputs], bound, device));
        }
        conv
    }

    /// `config`'s linear map with burn's default initialisation, drawn from this generator.
    pub fn linear(&mut self, config: LinearConfig, device: &Device) -> Linear {
        // Row layout (burn's default) stores the weight as `[inputs, outputs]`; the column
        // layout would need its save mapper, which a replaced parameter would lose.
        let config = config.with_layout(LinearLayout::Row);
        let (inputs, outputs) = (config.d_input, config.d_output);
        let bound = kaiming_bound(inputs);
        let mut linear = config.with_initializer(Initializer::Zeros).init(device);
        linear.weight = self.uniform([inputs, outputs], bound, device);
        if linear.bias.is_some() {
            linear.bias = Some(self.uniform([outputs], bound, device));
        }
        linear
    }
}

/// burn's default bound: `gain * sqrt(3 / fan_in)` with gain `1/sqrt(3)`.
fn kaiming_bound(fan_in: usize) -> f64 {
    1.0 / (fan_in.max(1) as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<const D: usize>(param: &Param<Tensor<D>>) -> Vec<f32> {
        param.val().into_data().try_to_vec::<f32>().expect("f32")
    }

    #[test]
    fn the_same_seed_draws_the_same_layers_and_another_seed_others() {
        let device = Device::flex();
        let conv = |seed| ParamInit::new(seed).conv2d(Conv2dConfig::new([3, 8], [3, 3]), &device);
        let (a, b, c) = (conv(1), conv(1), conv(2));
        assert_eq!(values(&a.weight), values(&b.weight));
        assert_ne!(values(&a.weight), values(&c.weight));
        assert_eq!(a.weight.val().dims(), [8, 3, 3, 3]);
        // burn's default range, uniform in ±1/sqrt(27), and not all at one value.
        let weights = values(&a.weight);
        let bound = 1.0 / 27f32.sqrt();
        assert!(weights.iter().all(|w| w.abs() <= bound));
        assert!(weights.iter().any(|w| w.abs() > bound / 2.0));
        let bias = values(a.bias.as_ref().expect("a bias"));
        assert_eq!(bias.len(), 8);
        assert!(bias.iter().all(|w| w.abs() <= bound) && bias.iter().any(|&w| w != 0.0));
    }

    #[test]
    fn linear_and_transposed_convolutions_have_burns_shapes() {
        let device = Device::flex();
        let mut init = ParamInit::new(5);
        let linear = init.linear(LinearConfig::new(6, 4), &device);
        assert_eq!(linear.weight.val().dims(), [6, 4]);
        assert!(
            values(&linear.weight)
                .iter()
                .all(|w| w.abs() <= 1.0 / 6f32.sqrt())
        );
        let burn_made = LinearConfig::new(6, 4).init(&device);
        assert_eq!(burn_made.weight.val().dims(), linear.weight.val().dims());
        let up = init.conv_transpose2d(ConvTranspose2dConfig::new([4, 2], [4, 4]), &device);
        let burn_made = ConvTranspose2dConfig::new([4, 2], [4, 4]).init(&device);
        assert_eq!(up.weight.val().dims(), burn_made.weight.val().dims());
        assert_eq!(
            up.bias.as_ref().map(|b| b.val().dims()),
            burn_made.bias.as_ref().map(|b| b.val().dims())
        );
    }
}
