//! The model payload: input spec, flow, score definition and calibrated threshold.

use serde::{Deserialize, Serialize};

use crate::bytes::Seq;
use crate::detail::Detail;
use crate::layers::FlowLayer;

/// Most quantiles a threshold record keeps.
pub const MAX_QUANTILES: usize = 16;

/// A complete model: everything the runtime needs to turn a frame into a verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Model<'a> {
    /// Short identifier, e.g. `fmnist-cycle-l16`.
    pub name: &'a str,
    /// How the model was made (config, data, commit), for `inspect`.
    pub provenance: &'a str,
    /// What the flow expects and how raw pixels get there.
    pub input: InputSpec,
    /// The flow, applied in order.
    #[serde(borrow)]
    pub flow: Seq<'a, FlowLayer<'a>>,
    /// How the log-likelihood becomes an OOD score.
    pub score: ScoreKind,
    /// The calibrated decision threshold, if the model has been calibrated. With a detail
    /// branch it applies to the combined score ([`Detail::combined_score`]).
    pub threshold: Option<Threshold>,
    /// The native-resolution detail branch, if the model has one (format version 2).
    #[serde(borrow)]
    pub detail: Option<Detail<'a>>,
}

/// A model as format version 1 wrote it: [`Model`] before the detail branch. Read so that
/// files written before version 2 keep working.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ModelV1<'a> {
    name: &'a str,
    provenance: &'a str,
    input: InputSpec,
    #[serde(borrow)]
    flow: Seq<'a, FlowLayer<'a>>,
    score: ScoreKind,
    threshold: Option<Threshold>,
}

impl<'a> From<ModelV1<'a>> for Model<'a> {
    fn from(v1: ModelV1<'a>) -> Self {
        Model {
            name: v1.name,
            provenance: v1.provenance,
            input: v1.input,
            flow: v1.flow,
            score: v1.score,
            threshold: v1.threshold,
            detail: None,
        }
    }
}

/// The flow's input and the map from raw 8-bit pixels to it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    /// 1 (gray) or 3 (RGB, channel order R, G, B).
    pub channels: u32,
    /// Rows.
    pub height: u32,
    /// Columns.
    pub width: u32,
    /// Pixel map into the flow's domain.
    pub preprocess: Preprocess,
    /// What to do with frames of another size.
    pub resize: Resize,
}

impl InputSpec {
    /// Dimensions of the flow's input, `C * H * W` (saturating).
    pub fn dims(&self) -> u64 {
        (u64::from(self.height) * u64::from(self.width)).saturating_mul(u64::from(self.channels))
    }
}

/// Maps a pixel `x` in `0..=255` to the flow's input.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Preprocess {
    /// The paper's map: `z = (x + u) / 256` (u = 1/2 at evaluation), `p = alpha + (1 - 2 alpha) z`,
    /// `y = ln p - ln(1 - p)`. The log-likelihood is of the discrete image: it adds
    /// `sum ln |dy/dz| = sum [ln(1 - 2 alpha) - ln p - ln(1 - p)]` and `-D ln 256` for the bin
    /// width. The paper uses alpha = 0.05.
    Logit {
        /// In (0, 0.5).
        alpha: f32,
    },
}

/// What the runtime does with frames whose size differs from the model's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Resize {
    /// Reject them.
    Exact,
    /// Resize by area averaging (each output pixel is the mean of the source area it covers,
    /// weighted by overlap), then round to the nearest integer level.
    AreaAverage,
}

/// How a frame's OOD score derives from its log-likelihood. Higher score = more anomalous.
/// New kinds are appended: postcard stores the variant's index.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum ScoreKind {
    /// The score is the frame's bits per dimension, `-log_likelihood / (D ln 2)`: one-sided,
    /// so frames the flow finds *too* likely (constant, blurred) pass.
    BitsPerDim,
    /// The score is `|bits_per_dim - center|`, with `center` the median bits/dim of held-out
    /// normal frames: a two-sided typicality test (Nalisnick et al. 2019), which also rejects
    /// frames far *more* likely than normal ones.
    TypicalBitsPerDim {
        /// The bits/dim of a typical normal frame.
        center: f32,
    },
}

impl ScoreKind {
    /// The OOD score of a frame with `bits_per_dim`.
    pub fn ood_score(self, bits_per_dim: f64) -> f64 {
        match self {
            ScoreKind::BitsPerDim => bits_per_dim,
            ScoreKind::TypicalBitsPerDim { center } => (bits_per_dim - f64::from(center)).abs(),
        }
    }
}

/// A calibrated decision threshold: frames scoring above `ood_score` are rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    /// Reject when the OOD score is above this.
    pub ood_score: f32,
    /// The false-reject rate on held-out normal data the threshold was set for.
    pub target_false_reject_rate: f32,
    /// How many held-out normal frames it was calibrated on.
    pub calibration_frames: u32,
    /// OOD-score quantiles of those frames, ascending by level.
    pub quantiles: heapless::Vec<Quantile, MAX_QUANTILES>,
}

/// One quantile of the calibration scores.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Quantile {
    /// Level in [0, 1].
    pub level: f32,
    /// OOD score at that level.
    pub ood_score: f32,
}
