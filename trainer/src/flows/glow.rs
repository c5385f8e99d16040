//! Glow's layers: activation normalisation and the invertible 1x1 convolution.

use burn::module::Param;
use burn::prelude::*;
use nalgebra::DMatrix;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

/// Seeds the generator of layer `i`'s initial rotation (`ROTATION_SEED + i`): fixed, so that
/// the permutation and signs, which are not trained and not in the weights' record, are the
/// same whenever the flow is built, whatever the training seed.
const ROTATION_SEED: u64 = 0x0011_c04e;

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
        Self::from_permutation(channels, |row| channels - 1 - row, device)
    }

    /// Starts as the identity (`P = I`, `L = I`, `U = 0`, `s = 1`): the whitening map of a
    /// flow on embeddings, which [`InvertibleConv1x1::set_positive_definite`] then sets.
    pub fn identity(channels: usize, device: &Device) -> Self {
        Self::from_permutation(channels, |row| row, device)
    }

    /// The permutation that sends row `row` to column `column_of(row)`.
    fn from_permutation(
        channels: usize,
        column_of: impl Fn(usize) -> usize,
        device: &Device,
    ) -> Self {
        let mut permutation = vec![0.0; channels * channels];
        for row in 0..channels {
            permutation[row * channels + column_of(row)] = 1.0;
        }
        InvertibleConv1x1 {
            lower: Param::from_tensor(Tensor::zeros([channels, channels], device)),
            upper: Param::from_tensor(Tensor::zeros([channels, channels], device)),
            log_s: Param::from_tensor(Tensor::zeros([channels], device)),
            permutation,
            sign: vec![1.0; channels],
        }
    }

    /// Sets `W` to the symmetric positive definite `matrix` without changing `P = I` or the
    /// signs (+1), which the weights' record does not hold: such a matrix factors as
    /// `L U` without pivoting, with `U`'s diagonal positive. From its Cholesky factor `C`
    /// (`W = C C^T`), `L = C D^-1` and `U = D C^T` with `D = diag(C)`.
    pub fn set_positive_definite(&mut self, matrix: &DMatrix<f64>, device: &Device) -> bool {
        let channels = self.sign.len();
        let identity_permutation = (0..channels * channels)
            .all(|i| self.permutation[i] == f32::from(i / channels == i % channels));
        if matrix.nrows() != channels
            || matrix.ncols() != channels
            || !identity_permutation
            || self.sign.iter().any(|&s| s != 1.0)
        {
            return false;
        }
        let Some(cholesky) = matrix.clone().cholesky() else {
            return false;
        };
        let c = cholesky.l();
        let mut lower = vec![0.0f32; channels * channels];
        let mut upper = vec![0.0f32; channels * channels];
        let mut log_s = vec![0.0f32; channels];
        for r in 0..channels {
            log_s[r] = (2.0 * c[(r, r)].ln()) as f32;
            for col in 0..r {
                // L[r][col] = C[r][col] / C[col][col]; U[col][r] = C[col][col] * C[r][col].
                lower[r * channels + col] = (c[(r, col)] / c[(col, col)]) as f32;
                upper[col * channels + r] = (c[(col, col)] * c[(r, col)]) as f32;
            }
        }
        let matrix_param = |values: Vec<f32>| {
            Param::from_tensor(Tensor::from_data(
                TensorData::new(values, [channels, channels]),
                device,
            ))
        };
        self.lower = matrix_param(lower);
        self.upper = matrix_param(upper);
        self.log_s = Param::from_tensor(Tensor::from_data(
            TensorData::new(log_s, [channels]),
            device,
        ));
        true
    }

    /// Starts as a random rotation, as Glow and the paper's code do: `W = Q` of the QR
    /// decomposition of a standard normal (C, C) matrix, stored in its LU form (`Q = P L U`
    /// with partial pivoting; `sign` and `log_s` from `U`'s diagonal). Layer `layer`'s
    /// rotation is drawn from a generator seeded by [`ROTATION_SEED`] and `layer` alone.
    pub fn rotation(channels: usize, layer: usize, device: &Device) -> Self {
        let (permutation, lower, upper, sign, log_s) = rotation_lu(channels, layer);
        let matrix = |values: Vec<f32>| {
            Param::from_tensor(Tensor::from_data(
                TensorData::new(values, [channels, channels]),
                device,
            ))
        };
        InvertibleConv1x1 {
            lower: matrix(lower),
            upper: matrix(upper),
            log_s: Param::from_tensor(Tensor::from_data(
                TensorData::new(log_s, [channels]),
                device,
            )),
            permutation,
            sign,
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

/// Row-major `P`, strictly lower `L`, strictly upper `U`, `sign` and `log_s` of layer
/// `layer`'s initial rotation: `Q = P (L + I) (U + diag(sign * exp(log_s)))`.
type RotationLu = (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>);

fn rotation_lu(channels: usize, layer: usize) -> RotationLu {
    let mut rng = StdRng::seed_from_u64(ROTATION_SEED.wrapping_add(layer as u64));
    let gaussian =
        DMatrix::<f64>::from_fn(channels, channels, |_, _| StandardNormal.sample(&mut rng));
    let rotation = gaussian.qr().q();
    // nalgebra's LU gives `Pn Q = L U`, so `Q = Pn^T L U`: the layer's `P` is `Pn^T`.
    let (pivots, lower, upper) = rotation.lu().unpack();
    let mut permutation = DMatrix::<f64>::identity(channels, channels);
    pivots.inv_permute_rows(&mut permutation);
    let row_major = |m: &DMatrix<f64>, keep: fn(usize, usize) -> bool| -> Vec<f32> {
        (0..channels * channels)
            .map(|i| {
                let (r, c) = (i / channels, i % channels);
                if keep(r, c) { m[(r, c)] as f32 } else { 0.0 }
            })
            .collect()
    };
    let diagonal: Vec<f64> = (0..channels).map(|i| upper[(i, i)]).collect();
    (
        row_major(&permutation, |_, _| true),
        row_major(&lower, |r, c| r > c),
        row_major(&upper, |r, c| r < c),
        diagonal.iter().map(|d| d.signum() as f32).collect(),
        diagonal.iter().map(|d| d.abs().ln() as f32).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(tensor: Tensor<2>) -> Vec<f32> {
        tensor.into_data().try_to_vec::<f32>().expect("f32")
    }

    #[test]
    fn a_positive_definite_matrix_is_set_exactly_with_its_log_det() {
        let device = Device::flex();
        let a =
            DMatrix::<f64>::from_row_slice(3, 3, &[4.0, 1.0, 0.5, 1.0, 3.0, -0.2, 0.5, -0.2, 2.0]);
        let mut conv = InvertibleConv1x1::identity(3, &device);
        assert!(conv.set_positive_definite(&a, &device));
        let w = values(conv.weight());
        for (i, v) in w.iter().enumerate() {
            assert!(
                (f64::from(*v) - a[(i / 3, i % 3)]).abs() < 1e-5,
                "W[{i}] = {v}"
            );
        }
        let log_det: f32 = values(conv.log_abs_det().unsqueeze::<2>())[0];
        assert!((f64::from(log_det) - a.determinant().ln()).abs() < 1e-5);
        // Not positive definite, or a layer with a permutation: refused, nothing changed.
        let indefinite = DMatrix::<f64>::from_row_slice(2, 2, &[1.0, 2.0, 2.0, 1.0]);
        let mut two = InvertibleConv1x1::identity(2, &device);
        assert!(!two.set_positive_definite(&indefinite, &device));
        assert!(!InvertibleConv1x1::new(3, &device).set_positive_definite(&a, &device));
    }

    #[test]
    fn the_rotation_start_is_orthogonal_with_log_det_zero_and_the_same_for_the_same_layer() {
        let device = Device::flex();
        for channels in [1, 4, 16] {
            let conv = InvertibleConv1x1::rotation(channels, 3, &device);
            let w = conv.weight();
            // W W^T = I: a rotation (or reflection), so |det W| = 1 and ln |det W| = 0.
            let gram = values(w.clone().matmul(w.clone().transpose()));
            for (i, v) in gram.iter().enumerate() {
                let expected = if i / channels == i % channels {
                    1.0
                } else {
                    0.0
                };
                assert!((v - expected).abs() < 1e-5, "W W^T [{i}] = {v}");
            }
            let log_det: f32 = values(conv.log_abs_det().unsqueeze::<2>())[0];
            assert!(log_det.abs() < 1e-5, "ln |det W| = {log_det}");
            // Not the reversal: a rotation mixes channels (for C > 1).
            if channels > 1 {
                let reversal = values(InvertibleConv1x1::new(channels, &device).weight());
                assert_ne!(values(w.clone()), reversal);
            }
            // Rebuilt, layer 3 starts the same; layer 4 differently.
            let again = InvertibleConv1x1::rotation(channels, 3, &device);
            assert_eq!(values(again.weight()), values(w.clone()));
            assert_eq!(again.permutation, conv.permutation);
            assert_eq!(again.sign, conv.sign);
            if channels > 1 {
                let other = InvertibleConv1x1::rotation(channels, 4, &device);
                assert_ne!(values(other.weight()), values(w));
            }
        }
    }
}
