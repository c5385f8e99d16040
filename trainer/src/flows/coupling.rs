//! RealNVP affine coupling, with the masks of `flowgate_shared::Mask`.

use burn::module::Param;
use burn::prelude::*;
use flowgate_shared::Mask;

use super::st_net::StNet;

/// `(s_raw, t) = net(x_id)`, `s = scale * tanh(s_raw)`, changed part `y = (x + t) * exp(s)`,
/// log-det = sum of `s` (the paper's `CouplingLayer`).
#[derive(Module, Debug)]
pub struct CouplingLayer {
    pub net: StNet,
    /// The per-channel `w` of `s = w * tanh(s_raw)`, shape `[Cn]`.
    pub scale: Param<Tensor<1>>,
    #[module(skip)]
    pub mask: Mask,
}

/// What a coupling computed, for diagnostics (the paper's `-t` pictures).
#[derive(Debug, Clone)]
pub struct CouplingTrace {
    /// The masked input the network saw.
    pub net_input: Tensor<4>,
    /// The shift `t` where it applies (zero elsewhere).
    pub shift: Tensor<4>,
}

impl CouplingLayer {
    /// A coupling with mask `mask` whose network `net` starts at zero (identity).
    pub fn new(mask: Mask, net: StNet, changed_channels: usize, device: &Device) -> Self {
        CouplingLayer {
            net,
            scale: Param::from_tensor(Tensor::ones([changed_channels], device)),
            mask,
        }
    }

    /// `[B, C, H, W] -> (y, log-det [B])`.
    pub fn forward(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<1>) {
        let (y, log_det, _) = self.forward_traced(x);
        (y, log_det)
    }

    /// As [`CouplingLayer::forward`], also returning the network's input and the shift.
    pub fn forward_traced(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<1>, CouplingTrace) {
        let [_, channels, height, width] = x.dims();
        let device = x.device();
        match self.mask {
            Mask::ChannelWise { reverse } => {
                channel_wise_affine(x, reverse, self.scale.val(), |x_id| self.net.forward(x_id))
            }
            mask => {
                let read = spatial_mask(mask, height, width, Some(true), &device);
                let write = spatial_mask(mask, height, width, Some(false), &device);
                let x_id = x.clone() * read;
                let st = self.net.forward(x_id.clone());
                let s_raw = st.clone().narrow(1, 0, channels);
                let t = st.narrow(1, channels, channels) * write.clone();
                let s = self.scale.val().reshape([1, channels, 1, 1]) * s_raw.tanh() * write;
                let y = (x + t.clone()) * s.clone().exp();
                let log_det = s.sum_dims_squeeze::<1, usize>(&[1, 2, 3]);
                let trace = CouplingTrace {
                    net_input: x_id,
                    shift: t,
                };
                (y, log_det, trace)
            }
        }
    }
}

/// The channel-wise coupling: `net` reads one channel half and returns `(s_raw, t)` for the
/// other, which changes as `(x + t) * exp(scale * tanh(s_raw))`; `reverse` swaps the halves.
/// Returns `y`, the log-det per image, and the trace.
pub fn channel_wise_affine(
    x: Tensor<4>,
    reverse: bool,
    scale: Tensor<1>,
    net: impl FnOnce(Tensor<4>) -> Tensor<4>,
) -> (Tensor<4>, Tensor<1>, CouplingTrace) {
    let half = x.dims()[1] / 2;
    let first = x.clone().narrow(1, 0, half);
    let second = x.narrow(1, half, half);
    let (x_id, x_change) = if reverse {
        (first, second)
    } else {
        (second, first)
    };
    let st = net(x_id.clone());
    let s_raw = st.clone().narrow(1, 0, half);
    let t = st.narrow(1, half, half);
    let s = scale.reshape([1, half, 1, 1]) * s_raw.tanh();
    let y_change = (x_change + t.clone()) * s.clone().exp();
    let y = if reverse {
        Tensor::cat(vec![x_id.clone(), y_change], 1)
    } else {
        Tensor::cat(vec![y_change, x_id.clone()], 1)
    };
    let log_det = s.sum_dims_squeeze::<1, usize>(&[1, 2, 3]);
    let trace = CouplingTrace {
        net_input: x_id,
        shift: t,
    };
    (y, log_det, trace)
}

/// `[1, 1, H, W]` with 1 where the pixel's role under `mask` is `role`.
fn spatial_mask(
    mask: Mask,
    height: usize,
    width: usize,
    role: Option<bool>,
    device: &Device,
) -> Tensor<4> {
    let (h, w) = (height as u32, width as u32);
    let values: Vec<f32> = (0..height * width)
        .map(|index| {
            let (row, col) = ((index / width) as u32, (index % width) as u32);
            if mask.spatial_role(row, col, h, w) == role {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    Tensor::from_data(TensorData::new(values, [1, 1, height, width]), device)
}
