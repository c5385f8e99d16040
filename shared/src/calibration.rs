//! Setting a model's threshold from the OOD scores of frames known to be normal: the one
//! definition behind the trainer's `flowgate calibrate` and the board's
//! `flowgate-edge calibrate`.
//!
//! The threshold is the scores' quantile at `1 - rate`, so that about `rate` of such frames
//! score above it and are rejected. Quantiles interpolate linearly between sorted scores
//! (numpy's default, Hyndman and Fan's type 7).

use core::fmt;

use crate::model::{MAX_QUANTILES, Quantile, Threshold};

/// Levels of the quantiles a threshold record keeps, besides `1 - rate`.
pub const QUANTILE_LEVELS: [f64; 7] = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99];

/// Why scores cannot set a threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum CalibrationError {
    /// No scores at all.
    NoScores,
    /// Score `index` (in the order given) is NaN or infinite: the model cannot judge that
    /// frame, so it cannot be a normal frame to calibrate on.
    NonFinite {
        /// Its position.
        index: usize,
    },
    /// The rate is not strictly between 0 and 1.
    RateOutOfRange {
        /// The rate given.
        rate: f64,
    },
    /// More scores than a threshold record can count.
    TooMany,
}

impl fmt::Display for CalibrationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CalibrationError::NoScores => f.write_str("no scores to calibrate on"),
            CalibrationError::NonFinite { index } => write!(
                f,
                "score {index} is not finite: the model cannot judge that frame, so it is no normal frame to calibrate on"
            ),
            CalibrationError::RateOutOfRange { rate } => {
                write!(
                    f,
                    "the false-reject rate must lie strictly between 0 and 1, got {rate}"
                )
            }
            CalibrationError::TooMany => f.write_str("more than 2^32 - 1 calibration frames"),
        }
    }
}

impl core::error::Error for CalibrationError {}

/// The linear-interpolation quantile at `level` (in `[0, 1]`) of ascending, finite scores
/// (`sorted` not empty).
pub fn quantile_sorted(sorted: &[f64], level: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    let h = (n - 1) as f64 * level.clamp(0.0, 1.0);
    let lo = (libm::floor(h) as usize).min(n - 1);
    let hi = (lo + 1).min(n - 1);
    let frac = h - lo as f64;
    let (a, b) = (
        sorted.get(lo).copied().unwrap_or(f64::NAN),
        sorted.get(hi).copied().unwrap_or(f64::NAN),
    );
    if frac == 0.0 || a == b {
        a
    } else {
        a + frac * (b - a)
    }
}

/// Sorts `scores` ascending in place after checking they are all finite.
pub fn sort_finite(scores: &mut [f64]) -> Result<(), CalibrationError> {
    if scores.is_empty() {
        return Err(CalibrationError::NoScores);
    }
    if let Some(index) = scores.iter().position(|score| !score.is_finite()) {
        return Err(CalibrationError::NonFinite { index });
    }
    scores.sort_unstable_by(f64::total_cmp);
    Ok(())
}

/// The threshold that rejects about `rate` of `scores` (the OOD scores of normal frames),
/// with the record of their quantiles at [`QUANTILE_LEVELS`] and `1 - rate`. Sorts `scores`
/// in place.
pub fn calibrate(scores: &mut [f64], rate: f64) -> Result<Threshold, CalibrationError> {
    if !(rate > 0.0 && rate < 1.0) {
        return Err(CalibrationError::RateOutOfRange { rate });
    }
    sort_finite(scores)?;
    let calibration_frames = u32::try_from(scores.len()).map_err(|_| CalibrationError::TooMany)?;
    // The record's levels ascending, `1 - rate` among them once.
    let mut levels = [0f64; QUANTILE_LEVELS.len() + 1];
    for (slot, level) in levels
        .iter_mut()
        .zip(QUANTILE_LEVELS.iter().chain([&(1.0 - rate)]))
    {
        *slot = *level;
    }
    levels.sort_unstable_by(f64::total_cmp);
    let mut quantiles = heapless::Vec::<Quantile, MAX_QUANTILES>::new();
    for (index, &level) in levels.iter().enumerate() {
        if index > 0 && levels.get(index - 1) == Some(&level) {
            continue;
        }
        let _ = quantiles.push(Quantile {
            level: level as f32,
            ood_score: quantile_sorted(scores, level) as f32,
        });
    }
    Ok(Threshold {
        ood_score: quantile_sorted(scores, 1.0 - rate) as f32,
        target_false_reject_rate: rate as f32,
        calibration_frames,
        quantiles,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_leaves_about_rate_above_it() {
        // 1, 2, ..., 101 at 5%: 96, with 5 of 101 above; 1..=100: 95.05, 5 above.
        let mut scores: [f64; 101] = core::array::from_fn(|i| (i + 1) as f64);
        let threshold = calibrate(&mut scores, 0.05).unwrap();
        assert_eq!(threshold.ood_score, 96.0);
        assert_eq!(threshold.calibration_frames, 101);
        let mut scores: [f64; 100] = core::array::from_fn(|i| (100 - i) as f64);
        let threshold = calibrate(&mut scores, 0.05).unwrap();
        assert!((threshold.ood_score - 95.05).abs() < 1e-4);
        let above = scores
            .iter()
            .filter(|&&s| s > f64::from(threshold.ood_score))
            .count();
        assert_eq!(above, 5);
        // The record: the 7 levels and 0.95 once, ascending.
        let levels: heapless::Vec<f32, 16> = threshold.quantiles.iter().map(|q| q.level).collect();
        assert_eq!(levels.as_slice(), [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99]);
        let mut scores = [3.0, 1.0, 2.0];
        let record = calibrate(&mut scores, 0.1).unwrap().quantiles;
        assert_eq!(record.len(), 8);
        assert!(record.windows(2).all(|w| w[0].level < w[1].level));
    }

    #[test]
    fn bad_scores_and_rates_are_errors() {
        assert_eq!(calibrate(&mut [], 0.01), Err(CalibrationError::NoScores));
        assert_eq!(
            calibrate(&mut [1.0, f64::NAN, 2.0], 0.01),
            Err(CalibrationError::NonFinite { index: 1 })
        );
        assert_eq!(
            calibrate(&mut [1.0, f64::INFINITY], 0.01),
            Err(CalibrationError::NonFinite { index: 1 })
        );
        for rate in [0.0, 1.0, -0.5, f64::NAN] {
            assert!(matches!(
                calibrate(&mut [1.0, 2.0], rate),
                Err(CalibrationError::RateOutOfRange { .. })
            ));
        }
    }
}
