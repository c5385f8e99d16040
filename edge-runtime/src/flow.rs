//! Runs the planned flow over the preprocessed input and accumulates its log-density.

use flowgate_shared::{Dims, Mask};

use crate::error::{Error, Result};
use crate::kernels::{self, KernelPath};
use crate::plan::{CouplingStep, Op, Span, Step};

/// `ln(2 pi) / 2`.
const HALF_LN_TWO_PI: f64 = 0.918_938_533_204_672_8;

/// Log-density of the standard normal summed over `values`.
pub fn standard_normal_log_density(values: &[f32]) -> f64 {
    values
        .iter()
        .map(|&x| -0.5 * f64::from(x) * f64::from(x) - HALF_LN_TWO_PI)
        .sum()
}

/// The scratch's parts while the flow runs: the flow's state, the networks' activations, and
/// the kernels' temporaries.
pub(crate) struct Scratch<'s> {
    pub state: &'s mut [f32],
    pub work: &'s mut [f32],
    pub kernel: &'s mut [f32],
}

/// Runs the planned flow on `scratch.state` (the flow's input, shape `input`) and returns
/// `ln p(y)` in nats: the prior's log-density of everything that leaves the flow plus the
/// layers' log-determinants. `path` picks the kernels.
pub(crate) fn log_density(
    steps: &[Step],
    floats: &[f32],
    input: Dims,
    scratch: Scratch<'_>,
    path: KernelPath,
) -> Result<f64> {
    let Scratch {
        state,
        work,
        kernel,
    } = scratch;
    let mut dims = input;
    let mut total = 0.0f64;
    let mut next = 0;
    while let Some(step) = steps.get(next) {
        next += 1;
        let len = dims.elements() as usize;
        let active = state.get_mut(..len).ok_or(Error::Inconsistent)?;
        match &step.0 {
            Op::Coupling(coupling) => {
                let net = steps
                    .get(coupling.net.start..coupling.net.end())
                    .ok_or(Error::Inconsistent)?;
                total += run_coupling(coupling, net, floats, active, work, kernel, path)?;
                next = coupling.net.end();
            }
            Op::Squeeze { dims: before } => {
                let copy = copy_to_work(active, work)?;
                dims = Dims::new(before.channels * 4, before.height / 2, before.width / 2);
                squeeze(copy, active, dims);
            }
            Op::Unsqueeze { dims: before } => {
                let copy = copy_to_work(active, work)?;
                unsqueeze(copy, active, *before);
                dims = Dims::new(before.channels / 4, before.height * 2, before.width * 2);
            }
            Op::ActNorm {
                dims: shape,
                bias,
                log_scale,
            } => {
                let (bias, log_scale) = (floats_of(floats, *bias)?, floats_of(floats, *log_scale)?);
                let plane = shape.pixels() as usize;
                let mut sum_log_scale = 0.0f64;
                for ((channel, &b), &ls) in active
                    .chunks_exact_mut(plane.max(1))
                    .zip(bias)
                    .zip(log_scale)
                {
                    let scale = libm::expf(ls);
                    for x in channel {
                        *x = (*x + b) * scale;
                    }
                    sum_log_scale += f64::from(ls);
                }
                total += sum_log_scale * plane as f64;
            }
            Op::InvConv {
                dims: shape,
                weight,
                log_abs_det,
            } => {
                let copy = copy_to_work(active, work)?;
                let weight = floats_of(floats, *weight)?;
                let channels = shape.channels as usize;
                let plane = shape.pixels() as usize;
                for (out, row) in active
                    .chunks_exact_mut(plane.max(1))
                    .zip(weight.chunks_exact(channels.max(1)))
                {
                    out.fill(0.0);
                    for (src, &w) in copy.chunks_exact(plane.max(1)).zip(row) {
                        for (y, x) in out.iter_mut().zip(src) {
                            *y += w * x;
                        }
                    }
                }
                total += f64::from(*log_abs_det) * plane as f64;
            }
            Op::FactorOut { dims: shape, keep } => {
                let kept = Dims::new(*keep, shape.height, shape.width);
                let leaving = active
                    .get(kept.elements() as usize..)
                    .ok_or(Error::Inconsistent)?;
                total += standard_normal_log_density(leaving);
                dims = kept;
            }
            Op::Embed {
                net,
                output,
                out_dims,
                ..
            } => {
                // The extractor reads the input in slot 0, at the start of the work area.
                copy_to_work(active, work)?;
                let net_steps = steps.get(net.start..net.end()).ok_or(Error::Inconsistent)?;
                kernels::run_net(net_steps, floats, work, kernel, path)?;
                let embedding = work
                    .get(output.offset..output.end())
                    .ok_or(Error::Inconsistent)?;
                state
                    .get_mut(..embedding.len())
                    .ok_or(Error::Inconsistent)?
                    .copy_from_slice(embedding); // same length: sliced to it above
                dims = *out_dims;
                next = net.end();
            }
            // A network step outside its layer, or an unfilled one: not a plan `build` makes.
            _ => return Err(Error::Inconsistent),
        }
    }
    let remaining = state
        .get(..dims.elements() as usize)
        .ok_or(Error::Inconsistent)?;
    Ok(total + standard_normal_log_density(remaining))
}

fn floats_of(floats: &[f32], span: Span) -> Result<&[f32]> {
    floats
        .get(span.start..span.end())
        .ok_or(Error::Inconsistent)
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
    coupling: &CouplingStep,
    net: &[Step],
    floats: &[f32],
    state: &mut [f32],
    work: &mut [f32],
    kernel: &mut [f32],
    path: KernelPath,
) -> Result<f64> {
    let CouplingStep {
        mask,
        dims,
        net_input,
        scale,
        output,
        ..
    } = *coupling;
    let (h, w) = (dims.height, dims.width);
    let plane = (dims.pixels() as usize).max(1);
    let half = net_input.elements() as usize;

    // Slot 0: what the network may see.
    {
        let slot0 = work.get_mut(..half).ok_or(Error::Inconsistent)?;
        match mask {
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

    kernels::run_net(net, floats, work, kernel, path)?;
    let st = work
        .get(output.offset..output.end())
        .ok_or(Error::Inconsistent)?;
    let (s_raw, t) = st.split_at_checked(half).ok_or(Error::Inconsistent)?;
    let scale = floats_of(floats, scale)?;
    let scale_of = |c: usize| scale.get(c).copied().unwrap_or(0.0);
    let mut log_det = 0.0f64;
    match mask {
        Mask::ChannelWise { reverse } => {
            let changed = if reverse {
                state.get_mut(half..)
            } else {
                state.get_mut(..half)
            };
            let changed = changed.ok_or(Error::Inconsistent)?;
            log_det += kernels::vmath::affine_planes(changed, s_raw, t, plane, scale_of, path);
        }
        mask => {
            for (c, ((x, s_raw), t)) in state
                .chunks_exact_mut(plane)
                .zip(s_raw.chunks_exact(plane))
                .zip(t.chunks_exact(plane))
                .enumerate()
            {
                let changes = |index: usize| {
                    let (row, col) = ((index / w as usize) as u32, (index % w as usize) as u32);
                    mask.spatial_role(row, col, h, w) == Some(false)
                };
                log_det += kernels::vmath::affine(x, s_raw, t, scale_of(c), changes, path);
            }
        }
    }
    Ok(log_det)
}
