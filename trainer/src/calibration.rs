//! `flowgate calibrate`'s algorithm: the decision threshold at a target false-reject rate on
//! a run's held-out normal images, scored by the edge gate on the model being shipped.

use flowgate_shared::calibration;

use crate::data::ImageSet;
use crate::error::{Error, Result};
use crate::scoring;

/// The share of `scores` above `threshold`: the frames a gate with that threshold rejects (a
/// NaN counts as above, as the gate rejects it); 0 for no scores.
pub fn share_above(scores: &[f64], threshold: f64) -> f64 {
    if scores.is_empty() {
        return 0.0;
    }
    let above = scores
        .iter()
        .filter(|&&score| score.is_nan() || score > threshold)
        .count();
    above as f64 / scores.len() as f64
}

fn calibration_error(error: calibration::CalibrationError) -> Error {
    Error::Evaluation(error.to_string())
}

/// The OOD score a calibrated model carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalibratedScore {
    /// Bits/dim: rejects frames less likely than normal ones.
    BitsPerDim,
    /// |bits/dim - median of the held-out frames|: also rejects frames far *more* likely
    /// than normal ones (constant, blurred), which flows favour.
    Typical,
}

/// A calibrated model.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    /// The model file with its score and threshold.
    pub bytes: Vec<u8>,
    /// The score it carries.
    pub score: flowgate_shared::ScoreKind,
    /// The threshold.
    pub threshold: f64,
    /// The share of the held-out images it rejects.
    pub rejected: f64,
    /// Held-out images it was set on.
    pub frames: usize,
}

/// The provenance marker of a calibration; a recalibration replaces what follows it.
const CALIBRATE_MARKER: &str = "; flowgate calibrate ";

/// Calibrates the model file `model` (f32 or int8) at false-reject rate `rate` on `held_out`
/// (the run's held-out normal images at the model's input size). `how` ("flowgate calibrate
/// --run ..."), starting with "flowgate calibrate ", is appended to the provenance in place of
/// an earlier calibration's.
pub fn calibrate(
    model: &[u8],
    held_out: &ImageSet,
    score: CalibratedScore,
    rate: f64,
    how: &str,
) -> Result<Calibration> {
    if !(rate > 0.0 && rate < 0.5) {
        return Err(Error::Evaluation(format!(
            "the target false-reject rate must be in (0, 0.5), got {rate}"
        )));
    }
    if held_out.count == 0 {
        return Err(Error::Evaluation(
            "no held-out images to calibrate on (the config's data.validation is 0, or its \
             dataset too small)"
                .into(),
        ));
    }
    let uncalibrated = flowgate_shared::decode(model)?.model;
    let plain = flowgate_shared::Model {
        score: flowgate_shared::ScoreKind::BitsPerDim,
        threshold: None,
        ..uncalibrated.clone()
    };
    let plain_bytes = flowgate_shared::encode(&plain)?;
    // A workstation tool: a model too large for any board still calibrates (`flowgate-edge`
    // checks the board's limits where it runs).
    let gate = flowgate_edge::Gate::with_limits(&plain_bytes, flowgate_edge::Limits::UNLIMITED)?;
    let bits_per_dim = scoring::gate_scores(&gate, held_out)?.bits_per_dim;
    let mut sorted = bits_per_dim.clone();
    calibration::sort_finite(&mut sorted).map_err(calibration_error)?;
    let score = match score {
        CalibratedScore::BitsPerDim => flowgate_shared::ScoreKind::BitsPerDim,
        CalibratedScore::Typical => flowgate_shared::ScoreKind::TypicalBitsPerDim {
            center: calibration::quantile_sorted(&sorted, 0.5) as f32,
        },
    };
    let scores: Vec<f64> = bits_per_dim.iter().map(|&b| score.ood_score(b)).collect();
    // The one definition of the threshold and its quantile record, shared with the board's
    // `flowgate-edge calibrate`.
    let record = calibration::calibrate(&mut scores.clone(), rate).map_err(calibration_error)?;
    let threshold = f64::from(record.ood_score);
    let history = uncalibrated
        .provenance
        .split_once(CALIBRATE_MARKER)
        .map_or(uncalibrated.provenance, |(before, _)| before);
    let how = how.strip_prefix("flowgate calibrate ").unwrap_or(how);
    let provenance = format!("{history}{CALIBRATE_MARKER}{how}");
    let calibrated = flowgate_shared::Model {
        provenance: &provenance,
        score,
        threshold: Some(record),
        ..uncalibrated
    };
    Ok(Calibration {
        bytes: flowgate_shared::encode(&calibrated)?,
        score,
        threshold,
        rejected: share_above(&scores, threshold),
        frames: scores.len(),
    })
}
