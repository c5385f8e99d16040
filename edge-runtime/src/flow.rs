//! Runs the flow over the preprocessed input and accumulates its log-density.

use flowgate_shared::validate::{Dims, coupling_net_input, plan_net};
use flowgate_shared::{Coupling, Embed, FlowLayer, Mask, Model};

use crate::error::{Error, Result};
use crate::kernels::{self, KernelPath, weights::Weights};

/// `ln(2 pi) / 2`.
const HALF_LN_TWO_PI: f64 = 0.918_938_533_204_672_8;

/// Log-density of the standard normal summed over `values`.
pub fn standard_normal_log_density(values: &[f32]) -> f64 {
    values
        .iter()
        .map(|&x| -0.5 * f64::from(x) * f64::from(x) - HALF_LN_TWO_PI)
        .sum()
}

/// Applies every layer of `model.flow` to `state` (the flow's input, shape `input`) and
/// returns `ln p(y)` in nats: the prior's log-density of everything that leaves the flow plus
/// the layers' log-determinants. `work` is the scratch work area; `path` picks the kernels.
pub fn log_density(
    model: &Model<'_>,
    input: Dims,
    state: &mut [f32],
    work: &mut [f32],
    path: KernelPath,
) -> Result<f64> {
    let mut dims = input;
    let mut total = 0.0f64;
    for layer in model.flow.iter() {
        let layer = layer.map_err(|_| Error::Inconsistent)?;
        let len = dims.elements() as usize;
        let active = state.get_mut(..len).ok_or(Error::Inconsistent)?;
        match &layer {
            FlowLayer::Coupling(coupling) => {
                total += run_coupling(coupling, dims, active, work, path)?;
            }
            FlowLayer::Squeeze => {
                let copy = copy_to_work(active, work)?;
                dims = Dims::new(dims.channels * 4, dims.height / 2, dims.width / 2);
                squeeze(copy, active, dims);
            }
            FlowLayer::Unsqueeze => {
                let copy = copy_to_work(active, work)?;
                unsqueeze(copy, active, dims);
                dims = Dims::new(dims.channels / 4, dims.height * 2, dims.width * 2);
            }
            FlowLayer::ActNorm(actnorm) => {
                let (bias, log_scale) = (
                    Weights::new(&actnorm.bias),
                    Weights::new(&actnorm.log_scale),
                );
                let plane = dims.pixels() as usize;
                let mut sum_log_scale = 0.0f64;
                for (c, channel) in active.chunks_exact_mut(plane.max(1)).enumerate() {
                    let (b, ls) = (bias.get(c), log_scale.get(c));
                    let scale = libm::expf(ls);
                    for x in channel {
                        *x = (*x + b) * scale;
                    }
                    sum_log_scale += f64::from(ls);
                }
                total += sum_log_scale * plane as f64;
            }
            FlowLayer::InvertibleConv1x1(conv) => {
                let copy = copy_to_work(active, work)?;
                let weight = Weights::new(&conv.weight);
                let channels = dims.channels as usize;
                let plane = dims.pixels() as usize;
                for (o, out) in active.chunks_exact_mut(plane.max(1)).enumerate() {
                    out.fill(0.0);
                    for (c, src) in copy.chunks_exact(plane.max(1)).enumerate() {
                        let w = weight.get(o * channels + c);
                        for (y, x) in out.iter_mut().zip(src) {
                            *y += w * x;
                        }
                    }
                }
                total += f64::from(conv.log_abs_det) * plane as f64;
            }
            FlowLayer::FactorOut { keep_channels } => {
                let kept = Dims::new(*keep_channels, dims.height, dims.width);
                let leaving = active
                    .get(kept.elements() as usize..)
                    .ok_or(Error::Inconsistent)?;
                total += standard_normal_log_density(leaving);
                dims = kept;
            }
            FlowLayer::Embed(embed) => {
                dims = run_extractor(embed, dims, active, work, path)?;
                let embedding = work.get(..dims.elements() as usize);
                let embedding = embedding.ok_or(Error::Inconsistent)?;
                state
                    .get_mut(..embedding.len())
                    .ok_or(Error::Inconsistent)?
                    .copy_from_slice(embedding); // same length: sliced to it above
            }
        }
    }
    let remaining = state
        .get(..dims.elements() as usize)
        .ok_or(Error::Inconsistent)?;
    Ok(total + standard_normal_log_density(remaining))
}

/// Runs a feature extractor on `input` (shape `dims`) and leaves the embedding at the start
/// of `work`; returns its shape.
fn run_extractor(
    embed: &Embed<'_>,
    dims: Dims,
    input: &[f32],
    work: &mut [f32],
    path: KernelPath,
) -> Result<Dims> {
    let plan = plan_net(&embed.net, dims, |_| Ok(())).map_err(|_| Error::Inconsistent)?;
    // Slot 0 sits at the start of the work area.
    copy_to_work(input, work)?;
    let (out_slot, out_dims) = kernels::run_net(&embed.net, dims, &plan, work, path)?;
    let len = out_dims.elements() as usize;
    let offset = plan.offset(out_slot);
    let end = offset.checked_add(len).ok_or(Error::Inconsistent)?;
    if end > work.len() {
        return Err(Error::Inconsistent);
    }
    work.copy_within(offset..end, 0); // in bounds: checked above
    Ok(out_dims)
}

fn copy_to_work<'w>(active: &[f32], work: &'w mut [f32]) -> Result<&'w mut [f32]> {
    let copy = work.get_mut(..active.len()).ok_or(Error::Inconsistent)?;
    copy.copy_from_slice(active); // same length: sliced to it above
    Ok(copy)
}

/// The paper's squeeze: `squeezed[4c + 2dy + dx, i, j] = full[c, 2i + dy, 2j + dx]`, with
/// `squeezed_dims` the squeezed shape.
fn squeeze(full: &[f32], squeezed: &mut [f32], squeezed_dims: Dims) {
    for (full_index, squeezed_index) in squeeze_pairs(squeezed_dims) {
        if let (Some(y), Some(x)) = (squeezed.get_mut(squeezed_index), full.get(full_index)) {
            *y = *x;
        }
    }
}

/// The inverse of [`squeeze`].
fn unsqueeze(squeezed: &[f32], full: &mut [f32], squeezed_dims: Dims) {
    for (full_index, squeezed_index) in squeeze_pairs(squeezed_dims) {
        if let (Some(y), Some(x)) = (full.get_mut(full_index), squeezed.get(squeezed_index)) {
            *y = *x;
        }
    }
}

/// (index in the full tensor, index in the squeezed tensor) for every element.
fn squeeze_pairs(squeezed_dims: Dims) -> impl Iterator<Item = (usize, usize)> {
    let (h, w) = (squeezed_dims.height as usize, squeezed_dims.width as usize);
    let full_channels = (squeezed_dims.channels / 4) as usize;
    (0..full_channels * 4 * h * w).map(move |squeezed_index| {
        let (channel, pixel) = (squeezed_index / (h * w), squeezed_index % (h * w));
        let (i, j) = (pixel / w, pixel % w);
        let (c, dy, dx) = (channel / 4, (channel % 4) / 2, channel % 2);
        let full_index = (c * 2 * h + 2 * i + dy) * 2 * w + 2 * j + dx;
        (full_index, squeezed_index)
    })
}

fn run_coupling(
    coupling: &Coupling<'_>,
    dims: Dims,
    state: &mut [f32],
    work: &mut [f32],
    path: KernelPath,
) -> Result<f64> {
    let net_input = coupling_net_input(coupling.mask, dims).map_err(|_| Error::Inconsistent)?;
    let plan = plan_net(&coupling.net, net_input, |_| Ok(())).map_err(|_| Error::Inconsistent)?;
    let (h, w) = (dims.height, dims.width);
    let plane = (dims.pixels() as usize).max(1);
    let half = net_input.elements() as usize;

    // Slot 0: what the network may see.
    {
        let slot0 = work
            .get_mut(..net_input.elements() as usize)
            .ok_or(Error::Inconsistent)?;
        match coupling.mask {
            Mask::ChannelWise { reverse } => {
                let read = if reverse {
                    state.get(..half)
                } else {
                    state.get(half..)
                };
                let read = read.ok_or(Error::Inconsistent)?;
                if read.len() != slot0.len() {
                    return Err(Error::Inconsistent);
                }
                slot0.copy_from_slice(read);
            }
            mask => {
                for (channel_in, channel_out) in
                    state.chunks_exact(plane).zip(slot0.chunks_exact_mut(plane))
                {
                    for (index, (x, y)) in channel_in.iter().zip(channel_out.iter_mut()).enumerate()
                    {
                        let (row, col) = ((index / w as usize) as u32, (index % w as usize) as u32);
                        *y = if mask.spatial_role(row, col, h, w) == Some(true) {
                            *x
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
    }

    let (out_slot, out_dims) = kernels::run_net(&coupling.net, net_input, &plan, work, path)?;
    let st = kernels::slot(&plan, work, out_slot, out_dims.elements() as usize)?;
    let (s_raw, t) = st.split_at_checked(half).ok_or(Error::Inconsistent)?;
    let scale = Weights::new(&coupling.scale);
    let mut log_det = 0.0f64;
    match coupling.mask {
        Mask::ChannelWise { reverse } => {
            let changed = if reverse {
                state.get_mut(half..)
            } else {
                state.get_mut(..half)
            };
            let changed = changed.ok_or(Error::Inconsistent)?;
            for (c, ((x, s_raw), t)) in changed
                .chunks_exact_mut(plane)
                .zip(s_raw.chunks_exact(plane))
                .zip(t.chunks_exact(plane))
                .enumerate()
            {
                log_det += affine(x, s_raw, t, scale.get(c), |_| true);
            }
        }
        mask => {
            for (c, ((x, s_raw), t)) in state
                .chunks_exact_mut(plane)
                .zip(s_raw.chunks_exact(plane))
                .zip(t.chunks_exact(plane))
                .enumerate()
            {
                log_det += affine(x, s_raw, t, scale.get(c), |index| {
                    let (row, col) = ((index / w as usize) as u32, (index % w as usize) as u32);
                    mask.spatial_role(row, col, h, w) == Some(false)
                });
            }
        }
    }
    Ok(log_det)
}

/// The coupling algebra on one channel plane: where `changes(index)`,
/// `s = scale * tanh(s_raw)`, `x = (x + t) * exp(s)`; returns the sum of `s`.
fn affine(
    x: &mut [f32],
    s_raw: &[f32],
    t: &[f32],
    scale: f32,
    changes: impl Fn(usize) -> bool,
) -> f64 {
    let mut log_det = 0.0f64;
    for (index, ((x, &s_raw), &t)) in x.iter_mut().zip(s_raw).zip(t).enumerate() {
        if changes(index) {
            let s = scale * libm::tanhf(s_raw);
            *x = (*x + t) * libm::expf(s);
            log_det += f64::from(s);
        }
    }
    log_det
}
