//! `flowgate-edge calibrate`: a new threshold from frames known to be normal, on the board,
//! with no trainer (after the camera is remounted, or the scene changes with the season).

use std::format;
use std::string::{String, ToString};
use std::vec::Vec;

use flowgate_shared::calibration::{self, CalibrationError};
use flowgate_shared::{Model, ScoreKind};

/// Which OOD score the recalibrated model uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScoreChoice {
    /// The model's own: bits/dim, or the typicality score around its stored center.
    Keep,
    /// Bits per dimension (one-sided: frames more likely than normal pass).
    Bpd,
    /// `|bits/dim - median|`, the median of these frames (two-sided: also rejects frames far
    /// more likely than normal, e.g. a covered lens on some models).
    Typical,
}

/// What calibration decided, for the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibrated {
    /// The new model file.
    pub file: Vec<u8>,
    /// Its threshold on the OOD score.
    pub threshold: f32,
    /// Its score.
    pub score: ScoreKind,
    /// Frames it was set on.
    pub frames: usize,
    /// Of those, how many score above the threshold (about `rate` of them).
    pub above: usize,
}

/// Why recalibration failed.
#[derive(Debug, thiserror::Error)]
pub enum RecalibrateError {
    /// The scores cannot set a threshold.
    #[error("{0}")]
    Scores(#[from] CalibrationError),
    /// The new model does not encode (a bug: it differs from a valid one only in its
    /// threshold).
    #[error("the recalibrated model does not encode: {0}")]
    Encode(flowgate_shared::Error),
}

/// `model` with a threshold set at `rate` on `bits_per_dim` (of frames known to be normal,
/// scored by that model), its score per `choice`, and `note` appended to its provenance.
pub fn recalibrate(
    model: &Model<'_>,
    bits_per_dim: &[f64],
    choice: ScoreChoice,
    rate: f64,
    note: &str,
) -> Result<Calibrated, RecalibrateError> {
    let mut sorted = bits_per_dim.to_vec();
    calibration::sort_finite(&mut sorted)?;
    let score = match choice {
        ScoreChoice::Keep => model.score,
        ScoreChoice::Bpd => ScoreKind::BitsPerDim,
        ScoreChoice::Typical => ScoreKind::TypicalBitsPerDim {
            center: calibration::quantile_sorted(&sorted, 0.5) as f32,
        },
    };
    let mut scores: Vec<f64> = bits_per_dim.iter().map(|&b| score.ood_score(b)).collect();
    let threshold = calibration::calibrate(&mut scores, rate)?;
    let above = scores
        .iter()
        .filter(|&&s| s > f64::from(threshold.ood_score))
        .count();
    let provenance = if model.provenance.is_empty() {
        note.to_string()
    } else {
        format!("{}; {note}", model.provenance)
    };
    let recalibrated = Model {
        provenance: &provenance,
        score,
        threshold: Some(threshold.clone()),
        ..model.clone()
    };
    let file = flowgate_shared::encode(&recalibrated).map_err(RecalibrateError::Encode)?;
    Ok(Calibrated {
        file,
        threshold: threshold.ood_score,
        score,
        frames: scores.len(),
        above,
    })
}

/// The provenance note of a recalibration.
pub fn note(input: &str, rate: f64, frames: usize) -> String {
    format!("flowgate-edge calibrate --rate {rate} on {frames} frames of {input}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sets_the_threshold_and_keeps_everything_else() {
        let original = flowgate_shared::example::tiny_model();
        let bpd: Vec<f64> = (0..200).map(|i| 5.0 + f64::from(i) * 0.01).collect();
        let done = recalibrate(&original, &bpd, ScoreChoice::Keep, 0.05, "test").unwrap();
        let decoded = flowgate_shared::decode(&done.file).unwrap().model;
        let threshold = decoded.threshold.unwrap();
        assert_eq!(threshold.ood_score, done.threshold);
        assert_eq!(threshold.calibration_frames, 200);
        assert_eq!(done.above, 10);
        assert!(decoded.provenance.ends_with("; test"));
        assert_eq!(decoded.score, original.score);
        assert_eq!(decoded.input, original.input);
        assert_eq!(decoded.flow.len(), original.flow.len());

        let typical = recalibrate(&original, &bpd, ScoreChoice::Typical, 0.05, "t").unwrap();
        let ScoreKind::TypicalBitsPerDim { center } = typical.score else {
            panic!("{:?}", typical.score);
        };
        assert!((f64::from(center) - 5.995).abs() < 1e-5);
        assert_eq!(typical.above, 10);
    }

    #[test]
    fn refuses_frames_the_model_cannot_score() {
        let model = flowgate_shared::example::tiny_model();
        let error = recalibrate(&model, &[1.0, f64::NAN], ScoreChoice::Keep, 0.01, "x");
        assert!(matches!(
            error,
            Err(RecalibrateError::Scores(CalibrationError::NonFinite {
                index: 1
            }))
        ));
        assert!(recalibrate(&model, &[], ScoreChoice::Keep, 0.01, "x").is_err());
    }
}
