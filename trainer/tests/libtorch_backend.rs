//! burn's LibTorch backend (`--device libtorch`, feature `libtorch`) trains the model the
//! default flex backend trains: with one seed both see the same batches and the same
//! dequantisation noise (the trainer draws them from its own generator, not the backend's), so
//! after a few Adam steps the two runs' weights give Fashion-MNIST test images the same
//! log-likelihoods, up to the rounding of different kernels. A run with another seed must
//! differ by far more, or the comparison would prove nothing.
//!
//! Tolerance: |delta bits/dim| <= 1e-3 between the backends after 6 steps. Measured
//! (2026-12-01): 2.0e-5 between the backends, 0.22 between seeds 3 and 4 (printed). Built only
//! with the feature, which needs PyTorch 2.9.0 (scripts/build-libtorch.sh runs it); CI has no
//! PyTorch.
//!
//! The build patches burn-tch (trainer/patches/burn-tch.patch) so that batch norm, the ReLU
//! gradient and the conv bias gradient run on PyTorch's own kernels; `patched_ops_match_flex`
//! checks those ops, forward and backward, against flex's (burn's default composite rules)
//! on one input whose channels sit far from zero. Tolerance: 1e-4 of each tensor's largest
//! magnitude. Measured (2026-12-02): printed by the test.
#![cfg(feature = "libtorch")]

mod common;

use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::module::{batch_norm_train, conv2d};
use burn::tensor::ops::ConvOptions;
use flowgate_trainer::config::TrainConfig;
use flowgate_trainer::data::{self, DatasetName, Split};
use flowgate_trainer::training::{self, Compute, files};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const TOLERANCE_BPD: f64 = 1e-3;
const IMAGES: usize = 64;

fn config(seed: u64) -> TrainConfig {
    let train = format!("steps = 6\nseed = {seed}\ncheckpoint_every = 6\nvalidate_every = 3");
    let text = common::small_realnvp_toml("libtorch", "", &train);
    TrainConfig::from_toml(&text, "libtorch").expect("valid config")
}

/// Trains with `seed` on `compute` and returns the run's bits/dim on the test images, scored
/// by the flex backend from the run's `model.bpk`.
fn bits_per_dim(name: &str, seed: u64, compute: Compute) -> Vec<f64> {
    let out = std::env::temp_dir().join(format!("flowgate-libtorch-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let config = config(seed);
    let data_dir = data::default_data_dir();
    training::train(&config, &data_dir, &out, false, false, compute).expect("trains");
    let model =
        training::load_for_eval(&config, &out.join(files::MODEL)).expect("the run's weights");
    let images = training::load_idx_split(&data_dir, DatasetName::FashionMnist, Split::Test)
        .expect("run scripts/fetch-data.sh first")
        .slice(0..IMAGES);
    let nats = training::log_likelihoods(&model, &images, IMAGES).expect("scores");
    let _ = std::fs::remove_dir_all(&out);
    let nats_per_bit = config.model.density_dims() as f64 * std::f64::consts::LN_2;
    nats.iter().map(|ll| -ll / nats_per_bit).collect()
}

fn worst_delta(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f64, f64::max)
}

#[test]
fn libtorch_trains_the_flex_model() {
    let flex = bits_per_dim("flex", 3, Compute::Cpu);
    let libtorch = bits_per_dim("libtorch", 3, Compute::Libtorch);
    let other_seed = bits_per_dim("other-seed", 4, Compute::Libtorch);
    let between_backends = worst_delta(&flex, &libtorch);
    let between_seeds = worst_delta(&libtorch, &other_seed);
    eprintln!(
        "worst |delta bits/dim| over {IMAGES} test images: flex vs libtorch {between_backends:.2e}, \
         seed 3 vs 4 {between_seeds:.2e}"
    );
    assert!(
        between_backends <= TOLERANCE_BPD,
        "flex and libtorch trained different models: {between_backends:.2e} bits/dim apart"
    );
    assert!(
        between_seeds > 10.0 * TOLERANCE_BPD,
        "another seed gave nearly the same model ({between_seeds:.2e} bits/dim): the test cannot tell"
    );
}

const OP_TOLERANCE: f32 = 1e-4;

/// `len` values in [-1, 1), the same for the same seed.
fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// A tensor of `shape` holding `data`, tracked for gradients on autodiff devices.
fn leaf<const D: usize>(data: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(data, shape), device).require_grad()
}

fn flat<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().try_to_vec::<f32>().expect("f32")
}

/// Batch norm (batch statistics), ReLU, a biased 3x3 conv and a strided 3x3 conv with
/// asymmetric padding, on `device`; returns the output, the batch mean and variance, and the
/// gradients of a weighted sum of the output with respect to the input, gamma, beta and the
/// convs' weights and bias.
fn normalise_relu_conv(device: &Device) -> Vec<(&'static str, Vec<f32>)> {
    let [batch, channels, size] = [6, 5, 7];
    // Channel c is centred at 3c - 4: batch norm's statistics must not lose the offset.
    let input: Vec<f32> = values(batch * channels * size * size, 1)
        .into_iter()
        .enumerate()
        .map(|(index, value)| value + 3.0 * ((index / (size * size)) % channels) as f32 - 4.0)
        .collect();
    let x = leaf(input, [batch, channels, size, size], device);
    let gamma = leaf(
        values(channels, 2).iter().map(|v| v + 1.5).collect(),
        [channels],
        device,
    );
    let beta = leaf(values(channels, 3), [channels], device);
    let weight = leaf(values(4 * channels * 9, 4), [4, channels, 3, 3], device);
    let bias = leaf(values(4, 5), [4], device);
    let strided_weight = leaf(values(3 * 4 * 9, 7), [3, 4, 3, 3], device);
    let normalised = batch_norm_train(x.clone(), gamma.clone(), beta.clone(), 1e-5);
    let hidden = conv2d(
        relu(normalised.output),
        weight.clone(),
        Some(bias.clone()),
        ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
    );
    let output = conv2d(
        hidden,
        strided_weight.clone(),
        None,
        ConvOptions::new_with_padding([2, 2], [(0, 1), (1, 0)], [1, 1], 1),
    );
    let output_weights = leaf(
        values(output.shape().num_elements(), 6),
        output.dims(),
        device,
    );
    let grads = (output.clone() * output_weights).sum().backward();
    vec![
        ("output", flat(output)),
        ("batch mean", flat(normalised.mean)),
        ("batch variance", flat(normalised.variance)),
        ("input grad", flat(x.grad(&grads).expect("grad"))),
        ("gamma grad", flat(gamma.grad(&grads).expect("grad"))),
        ("beta grad", flat(beta.grad(&grads).expect("grad"))),
        ("conv weight grad", flat(weight.grad(&grads).expect("grad"))),
        ("conv bias grad", flat(bias.grad(&grads).expect("grad"))),
        (
            "strided conv weight grad",
            flat(strided_weight.grad(&grads).expect("grad")),
        ),
    ]
}

#[test]
#[allow(deprecated)] // burn 0.22 deprecates burn-tch; see trainer/src/device.rs
fn patched_ops_match_flex() {
    let flex = normalise_relu_conv(&Device::flex().autodiff());
    let libtorch = normalise_relu_conv(&Device::libtorch().autodiff());
    for ((name, expected), (_, actual)) in flex.iter().zip(&libtorch) {
        let scale = expected.iter().fold(0f32, |max, v| max.max(v.abs()));
        let worst = expected
            .iter()
            .zip(actual)
            .map(|(e, a)| (e - a).abs())
            .fold(0f32, f32::max);
        eprintln!("{name}: worst |flex - libtorch| {worst:.2e} of largest {scale:.2e}");
        assert_eq!(expected.len(), actual.len(), "{name}: lengths differ");
        assert!(
            worst <= OP_TOLERANCE * scale.max(1e-6),
            "{name}: libtorch is {worst:.2e} from flex (largest magnitude {scale:.2e})"
        );
    }
}
