//! What the graph does not compute but a caller needs to decide: the score and threshold,
//! as the model's `metadata_props`.
//!
//! Numbers are written with Rust's shortest round-trip formatting, so parsing one back as
//! f32 gives the model's value exactly.

use flowgate_shared::{Model, ModelSummary, Resize, ScoreKind};

use crate::Int8Weights;
use crate::proto::StringStringEntryProto;

/// `metadata_props` keys.
pub mod keys {
    /// The flowgate model's name.
    pub const MODEL: &str = "flowgate.model";
    /// How the model was made.
    pub const PROVENANCE: &str = "flowgate.provenance";
    /// `bits_per_dim` (the score is the `bits_per_dim` output), `typical_bits_per_dim`
    /// (the score is `|bits_per_dim - score_center|`) or `detail_combined` (a model with a
    /// detail branch: the score is the `ood_score` output).
    pub const SCORE_KIND: &str = "flowgate.score_kind";
    /// The typical score's center, in bits/dim (only with `typical_bits_per_dim`).
    pub const SCORE_CENTER: &str = "flowgate.score_center";
    /// Reject a frame whose score is above this (absent for an uncalibrated model). A
    /// non-finite score is rejected too: the gate fails closed.
    pub const THRESHOLD: &str = "flowgate.threshold";
    /// The false-reject rate on held-out normal frames the threshold was set for.
    pub const TARGET_FALSE_REJECT_RATE: &str = "flowgate.target_false_reject_rate";
    /// How many held-out normal frames the threshold was calibrated on.
    pub const CALIBRATION_FRAMES: &str = "flowgate.calibration_frames";
    /// The dimensions bits/dim count: the input's, or the embedding's.
    pub const DENSITY_DIMS: &str = "flowgate.density_dims";
    /// `area_average` (the caller may resize frames to the input size by area averaging and
    /// rounding, as the runtime does) or `exact` (frames of another size are refused).
    pub const RESIZE: &str = "flowgate.resize";
    /// `float32`, `int8_dequantized` (int8 weights stored as their f32 values) or
    /// `int8_dequantize_linear` (int8 weights behind DequantizeLinear).
    pub const WEIGHTS: &str = "flowgate.weights";
    /// With a detail branch: the frame size the graph's `frame` input has, `WIDTHxHEIGHT`
    /// (the camera's own).
    pub const DETAIL_FRAME: &str = "flowgate.detail.frame";
    /// With a detail branch: its patch grid, `COLUMNSxROWS`.
    pub const DETAIL_GRID: &str = "flowgate.detail.grid";
    /// With a detail branch: the patch size, `WIDTHxHEIGHT`.
    pub const DETAIL_PATCH: &str = "flowgate.detail.patch";
}

/// Score kind names, the values of [`keys::SCORE_KIND`].
pub mod score_kinds {
    /// The score is bits/dim.
    pub const BITS_PER_DIM: &str = "bits_per_dim";
    /// The score is `|bits/dim - center|`.
    pub const TYPICAL_BITS_PER_DIM: &str = "typical_bits_per_dim";
    /// The score is the graph's `ood_score` output (the thumbnail's and the patches'
    /// standardised scores combined, as the runtime combines them).
    pub const DETAIL_COMBINED: &str = "detail_combined";
}

/// The metadata entries of `model`.
pub(crate) fn entries(
    model: &Model<'_>,
    summary: &ModelSummary,
    int8: Int8Weights,
) -> Vec<StringStringEntryProto> {
    let mut entries = vec![
        (keys::MODEL, model.name.to_owned()),
        (keys::PROVENANCE, model.provenance.to_owned()),
    ];
    match model.score {
        _ if model.detail.is_some() => {
            entries.push((keys::SCORE_KIND, score_kinds::DETAIL_COMBINED.to_owned()));
        }
        ScoreKind::BitsPerDim => {
            entries.push((keys::SCORE_KIND, score_kinds::BITS_PER_DIM.to_owned()));
        }
        ScoreKind::TypicalBitsPerDim { center } => {
            entries.push((
                keys::SCORE_KIND,
                score_kinds::TYPICAL_BITS_PER_DIM.to_owned(),
            ));
            entries.push((keys::SCORE_CENTER, center.to_string()));
        }
    }
    if let Some(threshold) = &model.threshold {
        entries.push((keys::THRESHOLD, threshold.ood_score.to_string()));
        entries.push((
            keys::TARGET_FALSE_REJECT_RATE,
            threshold.target_false_reject_rate.to_string(),
        ));
        entries.push((
            keys::CALIBRATION_FRAMES,
            threshold.calibration_frames.to_string(),
        ));
    }
    entries.push((keys::DENSITY_DIMS, summary.density_dims.to_string()));
    let resize = match model.input.resize {
        Resize::Exact => "exact",
        Resize::AreaAverage => "area_average",
    };
    entries.push((keys::RESIZE, resize.to_owned()));
    let weights = match (summary.int8_tensors, int8) {
        (0, _) => "float32",
        (_, Int8Weights::Dequantized) => "int8_dequantized",
        (_, Int8Weights::DequantizeLinear) => "int8_dequantize_linear",
    };
    entries.push((keys::WEIGHTS, weights.to_owned()));
    if let Some(detail) = &model.detail {
        let size = |(w, h): (u32, u32)| format!("{w}x{h}");
        entries.push((
            keys::DETAIL_FRAME,
            size((detail.frame_width, detail.frame_height)),
        ));
        entries.push((keys::DETAIL_GRID, size((detail.columns, detail.rows))));
        if let Some(patch) = summary.detail.as_ref().map(|d| d.patch) {
            entries.push((keys::DETAIL_PATCH, size(patch)));
        }
    }
    entries
        .into_iter()
        .map(|(key, value)| StringStringEntryProto {
            key: Some(key.to_owned()),
            value: Some(value),
        })
        .collect()
}
