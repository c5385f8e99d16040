//! Evaluation of OOD detection on score vectors: metrics ([`metrics`]), a per-OOD-set report
//! ([`OodReport`], printable as a text table and serializable to JSON), and PNG plots
//! ([`plots`]).
//!
//! Everything here works on plain `f64` OOD scores (bits per dimension today, higher = more
//! anomalous; in-distribution is the positive class), so it is independent of how the scores
//! were computed.

pub mod compare;
pub mod diagnostics;
pub mod metrics;
pub mod plots;
pub mod scores;

use std::fmt;

use serde::Serialize;

pub use metrics::MetricsError;

/// A named set of OOD scores (e.g. the bits/dim of every Fashion-MNIST test image).
#[derive(Debug, Clone, Copy)]
pub struct ScoreSet<'a> {
    /// Display name ("fashion-mnist test").
    pub name: &'a str,
    /// One OOD score per example.
    pub scores: &'a [f64],
    /// Bits/dim per example, where the OOD score is something else (e.g. typicality).
    pub bits_per_dim: Option<&'a [f64]>,
}

impl<'a> ScoreSet<'a> {
    /// A named score set whose OOD score is bits/dim.
    pub fn new(name: &'a str, scores: &'a [f64]) -> Self {
        Self {
            name,
            scores,
            bits_per_dim: None,
        }
    }

    /// The same set, with bits/dim given apart from the OOD scores.
    pub fn with_bits_per_dim(self, bits_per_dim: &'a [f64]) -> Self {
        Self {
            bits_per_dim: Some(bits_per_dim),
            ..self
        }
    }

    fn bpd(&self) -> &'a [f64] {
        self.bits_per_dim.unwrap_or(self.scores)
    }

    /// Share of the set scoring above `threshold` (rejected by the gate, which rejects a NaN
    /// too; the metrics refuse a set with one).
    fn share_above(&self, threshold: f64) -> f64 {
        crate::calibration::share_above(self.scores, threshold)
    }
}

/// Summary of the in-distribution set a report is relative to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InDistSummary {
    /// Set name.
    pub name: String,
    /// Number of scores.
    pub count: usize,
    /// Mean bits per dimension; `null` in JSON if infinite.
    pub mean_bpd: f64,
    /// Share rejected at the model's threshold (the false-reject rate), if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected: Option<f64>,
}

/// Detection metrics of one OOD set against the in-distribution set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OodSetReport {
    /// Set name.
    pub name: String,
    /// Number of scores.
    pub count: usize,
    /// Mean bits per dimension; `null` in JSON if infinite.
    pub mean_bpd: f64,
    /// Share rejected at the model's threshold, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected: Option<f64>,
    /// [`metrics::auroc`].
    pub auroc: f64,
    /// [`metrics::aupr`] (average precision, in-distribution positive).
    pub aupr: f64,
    /// [`metrics::fpr_at_95_tpr`].
    pub fpr_at_95_tpr: f64,
}

/// An OOD evaluation: the in-distribution set and, for each OOD set, its metrics.
///
/// `Display` prints an aligned text table; `serde::Serialize` gives JSON (see
/// [`OodReport::to_json`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OodReport {
    /// The in-distribution (positive) set.
    pub in_dist: InDistSummary,
    /// One entry per OOD set, in the order given.
    pub ood: Vec<OodSetReport>,
}

impl OodReport {
    /// Computes every metric of each OOD set against `in_dist`. Fails on an empty set, a NaN or
    /// a −∞ score (see [`metrics`]).
    pub fn new(in_dist: ScoreSet<'_>, ood: &[ScoreSet<'_>]) -> Result<Self, MetricsError> {
        Self::with_threshold(in_dist, ood, None)
    }

    /// [`OodReport::new`], plus the share of each set rejected above `threshold`.
    pub fn with_threshold(
        in_dist: ScoreSet<'_>,
        ood: &[ScoreSet<'_>],
        threshold: Option<f64>,
    ) -> Result<Self, MetricsError> {
        let in_summary = InDistSummary {
            name: in_dist.name.to_owned(),
            count: in_dist.scores.len(),
            mean_bpd: metrics::mean(in_dist.bpd(), "in-distribution")?,
            rejected: threshold.map(|t| in_dist.share_above(t)),
        };
        let ood = ood
            .iter()
            .map(|set| {
                Ok(OodSetReport {
                    name: set.name.to_owned(),
                    count: set.scores.len(),
                    mean_bpd: metrics::mean(set.bpd(), "OOD")?,
                    rejected: threshold.map(|t| set.share_above(t)),
                    auroc: metrics::auroc(in_dist.scores, set.scores)?,
                    aupr: metrics::aupr(in_dist.scores, set.scores)?,
                    fpr_at_95_tpr: metrics::fpr_at_95_tpr(in_dist.scores, set.scores)?,
                })
            })
            .collect::<Result<Vec<_>, MetricsError>>()?;
        Ok(Self {
            in_dist: in_summary,
            ood,
        })
    }

    /// Pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("an OodReport always serializes")
    }
}

impl fmt::Display for OodReport {
    /// ```text
    /// set                      role      count  mean bpd   AUROC    AUPR  FPR@95TPR
    /// fashion-mnist test       in-dist   10000     2.901       -       -          -
    /// mnist test               OOD       10000     1.602   0.071   0.312      0.998
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name_w = std::iter::once(self.in_dist.name.len())
            .chain(self.ood.iter().map(|r| r.name.len()))
            .chain(std::iter::once(3))
            .max()
            .unwrap_or(3);
        let count_w = std::iter::once(self.in_dist.count)
            .chain(self.ood.iter().map(|r| r.count))
            .map(|c| c.to_string().len())
            .chain(std::iter::once(5))
            .max()
            .unwrap_or(5);
        let thresholded = self.in_dist.rejected.is_some();
        let rejected = |share: Option<f64>| {
            share.map_or_else(String::new, |s| format!("  {:>8.1}%", 100.0 * s))
        };
        writeln!(
            f,
            "{:<name_w$}  {:<7}  {:>count_w$}  {:>8}  {:>6}  {:>6}  {:>9}{}",
            "set",
            "role",
            "count",
            "mean bpd",
            "AUROC",
            "AUPR",
            "FPR@95TPR",
            if thresholded { "   rejected" } else { "" }
        )?;
        writeln!(
            f,
            "{:<name_w$}  {:<7}  {:>count_w$}  {:>8.3}  {:>6}  {:>6}  {:>9}{}",
            self.in_dist.name,
            "in-dist",
            self.in_dist.count,
            self.in_dist.mean_bpd,
            "-",
            "-",
            "-",
            rejected(self.in_dist.rejected)
        )?;
        for r in &self.ood {
            writeln!(
                f,
                "{:<name_w$}  {:<7}  {:>count_w$}  {:>8.3}  {:>6.4}  {:>6.4}  {:>9.4}{}",
                r.name,
                "OOD",
                r.count,
                r.mean_bpd,
                r.auroc,
                r.aupr,
                r.fpr_at_95_tpr,
                rejected(r.rejected)
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> OodReport {
        let in_dist = [2.0, 3.0, 4.0, 3.0];
        let mnist = [1.0, 1.5, 2.5];
        let noise = [8.0, 9.0];
        OodReport::new(
            ScoreSet::new("fashion-mnist test", &in_dist),
            &[
                ScoreSet::new("mnist test", &mnist),
                ScoreSet::new("noise", &noise),
            ],
        )
        .unwrap()
    }

    #[test]
    fn eval_report_values() {
        let r = report();
        assert_eq!(r.in_dist.count, 4);
        assert_eq!(r.in_dist.mean_bpd, 3.0);
        assert_eq!(r.ood.len(), 2);
        let mnist = &r.ood[0];
        assert_eq!(mnist.count, 3);
        assert_eq!(mnist.mean_bpd, 5.0 / 3.0);
        // Only the in-dist 2.0 is below the OOD 2.5: 1 of 12 pairs.
        assert_eq!(mnist.auroc, 1.0 / 12.0);
        let noise = &r.ood[1];
        assert_eq!(
            (noise.auroc, noise.aupr, noise.fpr_at_95_tpr),
            (1.0, 1.0, 0.0)
        );
    }

    #[test]
    fn eval_report_table_is_aligned() {
        let text = report().to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines.iter().all(|l| l.len() == lines[0].len()), "{text}");
        assert!(lines[0].starts_with("set "));
        assert!(lines[1].starts_with("fashion-mnist test  in-dist"));
        assert!(lines[2].starts_with("mnist test          OOD"));
        assert!(lines[2].contains("0.0833"), "{text}");
        assert!(lines[3].ends_with("1.0000  1.0000     0.0000"), "{text}");
    }

    #[test]
    fn typicality_scores_with_bpd_and_a_threshold() {
        let in_scores = [0.1, 0.2, 0.3, 0.4];
        let in_bpd = [3.9, 4.2, 4.3, 3.6];
        let ood_scores = [0.25, 2.0];
        let ood_bpd = [3.75, 2.0];
        let r = OodReport::with_threshold(
            ScoreSet::new("normal", &in_scores).with_bits_per_dim(&in_bpd),
            &[ScoreSet::new("black", &ood_scores).with_bits_per_dim(&ood_bpd)],
            Some(0.35),
        )
        .unwrap();
        assert!((r.in_dist.mean_bpd - 4.0).abs() < 1e-12);
        assert_eq!(r.in_dist.rejected, Some(0.25));
        assert!((r.ood[0].mean_bpd - 2.875).abs() < 1e-12);
        assert_eq!(r.ood[0].rejected, Some(0.5));
        // 0.25 beats 2 of the 4 normal scores, 2.0 beats all: (2 + 4) / 8.
        assert_eq!(r.ood[0].auroc, 0.75);
        let text = r.to_string();
        assert!(text.lines().next().unwrap().ends_with("rejected"), "{text}");
        assert!(text.contains("25.0%") && text.contains("50.0%"), "{text}");
    }

    #[test]
    fn eval_report_json() {
        let json: serde_json::Value = serde_json::from_str(&report().to_json()).unwrap();
        assert_eq!(json["in_dist"]["name"], "fashion-mnist test");
        assert_eq!(json["in_dist"]["count"], 4);
        assert_eq!(json["in_dist"]["mean_bpd"], 3.0);
        assert_eq!(json["ood"][1]["name"], "noise");
        assert_eq!(json["ood"][1]["auroc"], 1.0);
        assert_eq!(json["ood"][1]["fpr_at_95_tpr"], 0.0);
        assert_eq!(json["ood"][0]["count"], 3);
        assert!(json["ood"][0]["aupr"].is_f64());
    }

    #[test]
    fn eval_report_errors() {
        let err = OodReport::new(
            ScoreSet::new("in", &[1.0]),
            &[ScoreSet::new("bad", &[f64::NAN])],
        )
        .unwrap_err();
        assert!(matches!(err, MetricsError::NaN { set: "OOD", .. }));
        assert!(OodReport::new(ScoreSet::new("in", &[]), &[]).is_err());
    }
}
