//! `flowgate eval`'s algorithm: score an in-distribution set and OOD sets under a run or a
//! model file, optionally re-rank them (complexity, likelihood ratio), and report.

use std::path::{Path, PathBuf};

use super::scores::{SetScores, bits_per_dim, is_score_csv, set_name, set_scores};
use super::{OodReport, ScoreSet, metrics};
use crate::error::{Error, Result};

/// What the report ranks by.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Ranking {
    /// The model's own OOD score (the threshold of a calibrated model file applies).
    #[default]
    ModelScore,
    /// Bits/dim minus the image's deflate-compressed bits/dim (Serra et al. 2020).
    Complexity,
    /// Bits/dim minus a background model's bits/dim (Ren et al. 2019).
    Background(PathBuf),
}

impl Ranking {
    /// What the report's OOD score is, when it is not the model's.
    pub fn note(&self) -> Option<&'static str> {
        match self {
            Ranking::ModelScore => None,
            Ranking::Complexity => Some("bits/dim - deflate bits/dim (not the model's)"),
            Ranking::Background(_) => Some("bits/dim - background bits/dim (not the model's)"),
        }
    }
}

/// One evaluation.
#[derive(Debug, Clone)]
pub struct EvalRequest<'a> {
    /// A run folder (scored by burn) or a model file (scored by the edge runtime).
    pub model: &'a Path,
    /// In-distribution images or score CSV.
    pub in_dist: &'a Path,
    /// OOD sets.
    pub ood: &'a [PathBuf],
    /// Score only the first images of each set.
    pub limit: Option<usize>,
    /// What to rank by.
    pub ranking: Ranking,
}

/// A named set's scores.
#[derive(Debug, Clone)]
pub struct NamedScores {
    /// The set's name.
    pub name: String,
    /// Its scores.
    pub scores: SetScores,
}

/// What an evaluation found.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The metrics per OOD set.
    pub report: OodReport,
    /// The in-distribution scores.
    pub in_dist: NamedScores,
    /// The OOD sets' scores.
    pub ood: Vec<NamedScores>,
    /// The calibrated threshold the report applied, if any.
    pub threshold: Option<f64>,
}

impl NamedScores {
    /// The set as the report and the plots take it.
    pub fn score_set(&self) -> ScoreSet<'_> {
        ScoreSet::new(&self.name, &self.scores.ood_scores)
            .with_bits_per_dim(&self.scores.bits_per_dim)
    }
}

impl Evaluation {
    /// The OOD sets as the report and the plots take them.
    pub fn ood_sets(&self) -> Vec<ScoreSet<'_>> {
        self.ood.iter().map(NamedScores::score_set).collect()
    }
}

/// A calibrated model file's decision rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelThreshold {
    /// Frames scoring above it are rejected.
    pub threshold: f64,
    /// The OOD score it applies to.
    pub score: flowgate_shared::ScoreKind,
    /// Whether the score is combined with a native-resolution detail branch.
    pub detail: bool,
}

/// The decision rule of a calibrated model file (`None` for a run folder or an uncalibrated
/// model).
pub fn model_threshold(model: &Path) -> Result<Option<ModelThreshold>> {
    if model.is_dir() {
        return Ok(None);
    }
    let bytes = std::fs::read(model).map_err(Error::io(model))?;
    let decoded = flowgate_shared::decode(&bytes)?.model;
    Ok(decoded.threshold.map(|t| ModelThreshold {
        threshold: f64::from(t.ood_score),
        score: decoded.score,
        detail: decoded.detail.is_some(),
    }))
}

/// Scores every set and computes the report.
pub fn evaluate(request: &EvalRequest<'_>) -> Result<Evaluation> {
    let complexity = request.ranking == Ranking::Complexity;
    let mut threshold = model_threshold(request.model)?.map(|t| t.threshold);
    let score = |path: &Path| -> Result<NamedScores> {
        Ok(NamedScores {
            name: set_name(path),
            scores: set_scores(request.model, path, request.limit, complexity)?,
        })
    };
    let mut in_dist = score(request.in_dist)?;
    let mut ood = request
        .ood
        .iter()
        .map(|path| score(path))
        .collect::<Result<Vec<_>>>()?;
    match &request.ranking {
        Ranking::ModelScore => {}
        Ranking::Complexity => {
            for set in std::iter::once(&mut in_dist).chain(ood.iter_mut()) {
                let scores = &mut set.scores;
                let complexity = scores.complexity.as_ref().ok_or_else(|| {
                    Error::Evaluation(
                        "ranking by complexity needs image inputs, not score CSVs".into(),
                    )
                })?;
                scores.ood_scores = (scores.bits_per_dim.iter().zip(complexity))
                    .map(|(bpd, complexity)| bpd - complexity)
                    .collect();
            }
            threshold = None;
        }
        Ranking::Background(background) => {
            let inputs = std::iter::once(request.in_dist).chain(request.ood.iter().map(|p| &**p));
            let sets = std::iter::once(&mut in_dist).chain(ood.iter_mut());
            for (path, set) in inputs.zip(sets) {
                if is_score_csv(path) {
                    return Err(Error::Evaluation(
                        "a background model needs image inputs, not score CSVs".into(),
                    ));
                }
                let background_bpd = bits_per_dim(background, path, request.limit)?;
                let scores = &mut set.scores;
                if background_bpd.len() != scores.bits_per_dim.len() {
                    return Err(Error::Evaluation(format!(
                        "{}: the background scored another number of images",
                        path.display()
                    )));
                }
                scores.ood_scores = (scores.bits_per_dim.iter().zip(&background_bpd))
                    .map(|(bpd, background)| bpd - background)
                    .collect();
            }
            threshold = None;
        }
    }
    let ood_sets: Vec<ScoreSet<'_>> = ood.iter().map(NamedScores::score_set).collect();
    let report = OodReport::with_threshold(in_dist.score_set(), &ood_sets, threshold)?;
    Ok(Evaluation {
        report,
        in_dist,
        ood,
        threshold,
    })
}

/// Whether the scores are all positive and span more than a factor of 20: a log axis then
/// shows every set, where a linear one squeezes the normal frames into one bin.
pub fn wants_log_axis(evaluation: &Evaluation) -> bool {
    let (low, high) = finite_score_range(evaluation);
    low > 0.0 && high / low > 20.0
}

/// The lowest and highest finite OOD score of every set.
fn finite_score_range(evaluation: &Evaluation) -> (f64, f64) {
    evaluation
        .in_dist
        .scores
        .ood_scores
        .iter()
        .chain(evaluation.ood.iter().flat_map(|set| &set.scores.ood_scores))
        .copied()
        .filter(|s| s.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), s| {
            (lo.min(s), hi.max(s))
        })
}

/// A histogram range around the in-distribution scores when some OOD scores lie far beyond
/// them (a covered lens scores 40 times a normal frame): from the lowest score to the
/// in-distribution 99th percentile plus five times its distance from the median. Sets beyond
/// it are still counted in the legend. `None` (everything) when all scores fit.
pub fn focus_range(evaluation: &Evaluation) -> Result<Option<(f64, f64)>> {
    let in_scores = &evaluation.in_dist.scores.ood_scores;
    let [median, p99] = metrics::quantiles(in_scores, &[0.5, 0.99])?[..] else {
        return Ok(None);
    };
    let (low, high) = finite_score_range(evaluation);
    let focus = p99 + 5.0 * (p99 - median).max(1e-3);
    Ok((high > focus && low < focus).then_some((low, focus)))
}
