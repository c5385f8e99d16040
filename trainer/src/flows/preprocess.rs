//! The paper's map from pixel levels to the flow's input, with its log-determinant.

use burn::prelude::*;
use burn::tensor::Distribution;

/// Where in its bin of width 1 each level is read: `u` of `z = (level + u) / 256`.
// One value per forward pass, moved once: its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Dequantization {
    /// `u = 1/2`: evaluation, as the runtime scores.
    BinCentre,
    /// `u` given, `[B, C, H, W]` uniform in `[0, 1)`: training, with noise the trainer drew
    /// from its own seeded generator.
    Noise(Tensor<4>),
    /// `u ~ U(0, 1)` from burn's process-wide generator: shared by every thread, so not
    /// reproducible when anything else draws from it (the trainer never uses it).
    BurnGenerator,
}

/// Maps levels `[B, C, H, W]` (0..=255) to `y = logit(alpha + (1 - 2 alpha) z)` with
/// `z = (level + u) / 256`, `u` as `offset` says. Returns `y` and, per image, the
/// log-determinant of the map plus the bin width `-D ln 256`, so that `ln p(y) + this` is the
/// log-likelihood of the discrete image (see `flowgate_shared::Preprocess`).
pub fn levels_to_flow_input(
    levels: Tensor<4>,
    alpha: f64,
    offset: Dequantization,
) -> (Tensor<4>, Tensor<1>) {
    let [_, channels, height, width] = levels.dims();
    let dims = (channels * height * width) as f64;
    let offset = match offset {
        Dequantization::BinCentre => Tensor::full(levels.shape(), 0.5, &levels.device()),
        Dequantization::Noise(noise) => noise,
        Dequantization::BurnGenerator => Tensor::random(
            levels.shape(),
            Distribution::Uniform(0.0, 1.0),
            &levels.device(),
        ),
    };
    let z = (levels + offset) / 256.0;
    let p = z * (1.0 - 2.0 * alpha) + alpha;
    let ln_p = p.clone().log();
    let ln_q = p.neg().add_scalar(1.0).log();
    let y = ln_p.clone() - ln_q.clone();
    let per_dim = (ln_p + ln_q).neg().add_scalar((1.0 - 2.0 * alpha).ln());
    let log_det = per_dim
        .sum_dims_squeeze::<1, usize>(&[1, 2, 3])
        .sub_scalar(dims * 256f64.ln());
    (y, log_det)
}

/// Log-density of the standard normal summed per image over all but the first dimension.
pub fn standard_normal_log_density(values: Tensor<4>) -> Tensor<1> {
    let [_, c, h, w] = values.dims();
    let dims = (c * h * w) as f64;
    values
        .square()
        .sum_dims_squeeze::<1, usize>(&[1, 2, 3])
        .mul_scalar(-0.5)
        .sub_scalar(0.5 * dims * (2.0 * std::f64::consts::PI).ln())
}
