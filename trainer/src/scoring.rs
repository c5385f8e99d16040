//! Scores of images under a model: burn's log-likelihoods of a trained flow, and the edge
//! gate's verdicts on a model file.

use std::path::Path;

use burn::prelude::*;

use crate::config::TrainConfig;
use crate::data::ImageSet;
use crate::error::{Error, Result};
use crate::flows::FlowModel;

/// Loads trained weights (a `.bpk` record) for evaluation on the (non-autodiff) CPU device.
pub fn load_for_eval(config: &TrainConfig, weights: &Path) -> Result<FlowModel> {
    load_for_eval_on(config, weights, &Device::flex())
}

/// [`load_for_eval`] on `device` (non-autodiff).
pub fn load_for_eval_on(
    config: &TrainConfig,
    weights: &Path,
    device: &Device,
) -> Result<FlowModel> {
    // The seed does not matter: every parameter is replaced by the record's.
    let model = FlowModel::new(&config.model, 0, device)?;
    model.try_load_file(weights).map_err(|e| Error::Record {
        action: "load",
        what: "the weights",
        path: weights.to_path_buf(),
        message: format!("{e:?}"),
    })
}

/// Log-likelihood (nats) of every image, in batches, without gradients.
pub fn log_likelihoods(model: &FlowModel, images: &ImageSet, batch: usize) -> Result<Vec<f64>> {
    log_likelihoods_on(model, images, batch, &Device::flex())
}

/// [`log_likelihoods`] of a model on `device`.
pub fn log_likelihoods_on(
    model: &FlowModel,
    images: &ImageSet,
    batch: usize,
    device: &Device,
) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(images.count);
    let indices: Vec<usize> = (0..images.count).collect();
    for chunk in indices.chunks(batch.max(1)) {
        let levels = images.batch(chunk, device);
        let values = crate::export::values(model.log_likelihood(levels, false))?;
        out.extend(values.into_iter().map(f64::from));
    }
    Ok(out)
}

/// Mean bits/dim of `images` under `model` (`dims` dimensions per image).
pub fn mean_bits_per_dim(
    model: &FlowModel,
    images: &ImageSet,
    dims: usize,
    device: &Device,
) -> Result<f64> {
    let lls = log_likelihoods_on(model, images, 256, device)?;
    Ok(-lls.iter().sum::<f64>() / (lls.len().max(1) as f64 * dims as f64 * std::f64::consts::LN_2))
}

/// Bits/dim and OOD scores of a set of images.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GateScores {
    /// Per image, bits/dim.
    pub bits_per_dim: Vec<f64>,
    /// Per image, the model's OOD score.
    pub ood_scores: Vec<f64>,
}

/// The edge gate's verdicts on images already at its input size.
pub fn gate_scores(gate: &flowgate_edge::Gate<'_>, set: &ImageSet) -> Result<GateScores> {
    let mut scratch = vec![0f32; gate.scratch_len()];
    let mut scores = GateScores::default();
    for index in 0..set.count {
        for (slot, &level) in scratch.iter_mut().zip(set.image(index)) {
            *slot = f32::from(level);
        }
        let verdict = gate.score_levels_in_scratch(&mut scratch)?;
        scores.bits_per_dim.push(verdict.bits_per_dim);
        scores.ood_scores.push(verdict.ood_score);
    }
    Ok(scores)
}
