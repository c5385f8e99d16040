//! The paper's map from pixel levels to the flow's input, with its log-determinant.

use burn::prelude::*;
use burn::tensor::Distribution;

/// Maps levels `[B, C, H, W]` (0..=255) to `y = logit(alpha + (1 - 2 alpha) z)` with
/// `z = (level + u) / 256`: `u ~ U(0, 1)` when `dequantize` (training), `u = 1/2` otherwise
/// (evaluation, as the runtime does). Returns `y` and, per image, the log-determinant of the
/// map plus the bin width `-D ln 256`, so that `ln p(y) + this` is the log-likelihood of the
/// discrete image (see `flowgate_shared::Preprocess`).
pub fn levels_to_flow_input(
    levels: Tensor<4>,
    alpha: f64,
    dequantize: bool,
) -> (Tensor<4>, Tensor<1>) {
    let [_, channels, height, width] = levels.dims();
    let dims = (channels * height * width) as f64;
    let offset = if dequantize {
        Tensor::random(
            levels.shape(),
            Distribution::Uniform(0.0, 1.0),
            &levels.device(),
        )
    } else {
        Tensor::full(levels.shape(), 0.5, &levels.device())
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
