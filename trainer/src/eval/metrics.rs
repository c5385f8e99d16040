//! OOD-detection metrics on score vectors.
//!
//! Conventions (those of Kirichenko et al. 2020 and of the usual OOD benchmarks):
//!
//! - A score is an `ood_score` (today bits per dimension): **higher = more anomalous**. The gate
//!   accepts a frame when `score <= threshold` and rejects it when `score > threshold`, exactly
//!   as [`flowgate_shared::Threshold`] is read by the runtime.
//! - **In-distribution is the positive class.** A threshold's true-positive rate (TPR) is the
//!   fraction of in-distribution scores it accepts, its false-positive rate (FPR) the fraction
//!   of OOD scores it accepts. A detector that gives every in-distribution example a lower score
//!   than every OOD example has AUROC 1.0; the paper's failure case (a flow trained on
//!   Fashion-MNIST giving MNIST *lower* bits/dim) has AUROC well below 0.5.
//! - **Non-finite scores.** NaN is an error ([`MetricsError::NaN`]), and so is −∞
//!   ([`MetricsError::NegativeInfinity`]: an infinitely *normal* frame is a bug upstream, and
//!   ruling it out keeps "accept nothing" well defined). +∞ is allowed and ranks as the most
//!   anomalous score (a frame whose likelihood underflowed); +∞ scores tie with each other.
//! - Every metric counts ties exactly: no jitter, no sampling.

use std::cmp::Ordering;

/// What a metric could not be computed from.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricsError {
    /// A score set was empty.
    #[error("the {set} scores are empty")]
    Empty {
        /// Which set ("in-distribution", "OOD", "scores").
        set: &'static str,
    },
    /// A score was NaN.
    #[error("the {set} score at index {index} is NaN")]
    NaN {
        /// Which set.
        set: &'static str,
        /// Index of the first NaN.
        index: usize,
    },
    /// A score was −∞ (see the module docs).
    #[error("the {set} score at index {index} is -inf")]
    NegativeInfinity {
        /// Which set.
        set: &'static str,
        /// Index of the first −∞.
        index: usize,
    },
    /// A rate, level or target was not a number in `[0, 1]`.
    #[error("{what} must be in [0, 1], got {value}")]
    OutOfRange {
        /// What the value is ("level", "rate", "tpr").
        what: &'static str,
        /// The value given.
        value: f64,
    },
}

/// Set names used in errors.
const IN_DIST: &str = "in-distribution";
const OOD: &str = "OOD";
const SCORES: &str = "scores";

/// Checks a score set: non-empty, no NaN, no −∞.
fn validate(scores: &[f64], set: &'static str) -> Result<(), MetricsError> {
    if scores.is_empty() {
        return Err(MetricsError::Empty { set });
    }
    for (index, &s) in scores.iter().enumerate() {
        if s.is_nan() {
            return Err(MetricsError::NaN { set, index });
        }
        if s == f64::NEG_INFINITY {
            return Err(MetricsError::NegativeInfinity { set, index });
        }
    }
    Ok(())
}

fn check_unit(what: &'static str, value: f64) -> Result<(), MetricsError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(MetricsError::OutOfRange { what, value })
    }
}

/// A validated copy, sorted ascending (no NaN, so `partial_cmp` is total).
fn sorted(scores: &[f64], set: &'static str) -> Result<Vec<f64>, MetricsError> {
    validate(scores, set)?;
    let mut v = scores.to_vec();
    v.sort_unstable_by(|a, b| a.partial_cmp(b).unwrap_or(Ordering::Equal));
    Ok(v)
}

/// One group of tied scores in the merged, ascending order of both sets.
#[derive(Debug, Clone, Copy)]
struct TieGroup {
    score: f64,
    /// In-distribution scores equal to `score`.
    n_in: usize,
    /// OOD scores equal to `score`.
    n_ood: usize,
}

/// Validates both sets and walks their merged distinct scores in ascending order.
fn tie_groups(in_dist: &[f64], ood: &[f64]) -> Result<Vec<TieGroup>, MetricsError> {
    let a = sorted(in_dist, IN_DIST)?;
    let b = sorted(ood, OOD)?;
    let (mut i, mut j) = (0, 0);
    let mut groups = Vec::new();
    while i < a.len() || j < b.len() {
        let score = match (a.get(i), b.get(j)) {
            (Some(&x), Some(&y)) => x.min(y),
            (Some(&x), None) => x,
            (None, Some(&y)) => y,
            (None, None) => unreachable!(),
        };
        let i0 = i;
        while i < a.len() && a[i] == score {
            i += 1;
        }
        let j0 = j;
        while j < b.len() && b[j] == score {
            j += 1;
        }
        groups.push(TieGroup {
            score,
            n_in: i - i0,
            n_ood: j - j0,
        });
    }
    Ok(groups)
}

/// Area under the ROC curve, in-distribution positive.
///
/// Exactly the Mann–Whitney statistic: the probability that a random in-distribution score is
/// *lower* (less anomalous) than a random OOD score, ties counting one half:
///
/// `AUROC = (#{(i, o): s_i < s_o} + 0.5 #{(i, o): s_i = s_o}) / (n_in n_ood)`.
///
/// It equals the trapezoidal area under [`roc_curve`]'s points and sklearn's
/// `roc_auc_score(y, -score)` with `y = 1` for in-distribution. Counting is done in integers,
/// so the result is exact up to the final division.
pub fn auroc(in_dist: &[f64], ood: &[f64]) -> Result<f64, MetricsError> {
    let groups = tie_groups(in_dist, ood)?;
    let n_ood = ood.len() as u128;
    // Twice the U statistic, so that half-counted ties stay integers.
    let mut twice_u: u128 = 0;
    let mut ood_seen: u128 = 0;
    for g in &groups {
        let (a, b) = (g.n_in as u128, g.n_ood as u128);
        let ood_above = n_ood - ood_seen - b;
        twice_u += 2 * a * ood_above + a * b;
        ood_seen += b;
    }
    Ok(twice_u as f64 / (2.0 * in_dist.len() as f64 * ood.len() as f64))
}

/// Area under the precision–recall curve as average precision, in-distribution positive:
/// sklearn's `average_precision_score(y, -score)` with `y = 1` for in-distribution.
///
/// Thresholds run over the distinct scores in ascending order (a threshold `t` accepts every
/// score `<= t`, so tied scores enter together). With `R_k`, `P_k` the recall
/// (`accepted in-dist / n_in`) and precision (`accepted in-dist / all accepted`) at the k-th
/// threshold and `R_0 = 0`:
///
/// `AP = sum_k (R_k - R_{k-1}) P_k`
///
/// (a step function: no trapezoidal interpolation). Its chance level is the in-distribution
/// fraction `n_in / (n_in + n_ood)`, not 0.5.
pub fn aupr(in_dist: &[f64], ood: &[f64]) -> Result<f64, MetricsError> {
    let groups = tie_groups(in_dist, ood)?;
    let n_in = in_dist.len() as f64;
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut ap = 0.0;
    for g in &groups {
        tp += g.n_in;
        fp += g.n_ood;
        if g.n_in > 0 {
            let precision = tp as f64 / (tp + fp) as f64;
            ap += (g.n_in as f64 / n_in) * precision;
        }
    }
    Ok(ap)
}

/// One point of a ROC curve: the threshold accepting every score `<= threshold`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct RocPoint {
    /// Accept scores `<= threshold`. The first point of a curve has `-inf` (accepts nothing,
    /// since −∞ scores are rejected as input).
    pub threshold: f64,
    /// Fraction of OOD scores accepted.
    pub fpr: f64,
    /// Fraction of in-distribution scores accepted.
    pub tpr: f64,
}

/// The ROC curve, in-distribution positive: `(0, 0)` at threshold −∞, then one point per
/// distinct score (ascending), ending at `(1, 1)`. Both rates are non-decreasing.
pub fn roc_curve(in_dist: &[f64], ood: &[f64]) -> Result<Vec<RocPoint>, MetricsError> {
    let groups = tie_groups(in_dist, ood)?;
    let (n_in, n_ood) = (in_dist.len() as f64, ood.len() as f64);
    let mut points = Vec::with_capacity(groups.len() + 1);
    points.push(RocPoint {
        threshold: f64::NEG_INFINITY,
        fpr: 0.0,
        tpr: 0.0,
    });
    let (mut tp, mut fp) = (0usize, 0usize);
    for g in &groups {
        tp += g.n_in;
        fp += g.n_ood;
        points.push(RocPoint {
            threshold: g.score,
            fpr: fp as f64 / n_ood,
            tpr: tp as f64 / n_in,
        });
    }
    Ok(points)
}

/// Trapezoidal area under ROC points (assumed sorted by `fpr`, as [`roc_curve`] returns them).
pub fn roc_area(points: &[RocPoint]) -> f64 {
    points
        .windows(2)
        .map(|w| (w[1].fpr - w[0].fpr) * (w[1].tpr + w[0].tpr) / 2.0)
        .sum()
}

/// The fraction of OOD scores accepted by the lowest threshold that accepts at least `tpr` of
/// the in-distribution scores.
///
/// The threshold is the smallest score `t` (of either set) with
/// `#{in-dist <= t} >= tpr * n_in`; the result is `#{OOD <= t} / n_ood`, i.e. the FPR of the
/// first [`roc_curve`] point whose TPR reaches `tpr` (as in the ODIN / outlier-exposure
/// evaluation code). The comparison allows a relative slack of 1e-9 so that, e.g., 19 of 20
/// counts as 95%. `tpr = 0` gives 0.
pub fn fpr_at_tpr(in_dist: &[f64], ood: &[f64], tpr: f64) -> Result<f64, MetricsError> {
    check_unit("tpr", tpr)?;
    let groups = tie_groups(in_dist, ood)?;
    let n_in = in_dist.len();
    let needed = needed_count(tpr, n_in);
    if needed == 0 {
        return Ok(0.0);
    }
    let (mut tp, mut fp) = (0usize, 0usize);
    for g in &groups {
        tp += g.n_in;
        fp += g.n_ood;
        if tp >= needed {
            return Ok(fp as f64 / ood.len() as f64);
        }
    }
    unreachable!("the last group accepts every in-distribution score")
}

/// The smallest count `c` with `c >= rate * n` (up to a 1e-9 relative slack), in `0..=n`.
fn needed_count(rate: f64, n: usize) -> usize {
    let exact = rate * n as f64;
    let c = (exact - 1e-9 * n as f64).ceil().max(0.0) as usize;
    c.min(n)
}

/// [`fpr_at_tpr`] at 95% TPR: the fraction of OOD examples accepted when the threshold accepts
/// 95% of the in-distribution examples.
pub fn fpr_at_95_tpr(in_dist: &[f64], ood: &[f64]) -> Result<f64, MetricsError> {
    fpr_at_tpr(in_dist, ood, 0.95)
}

/// Linear-interpolation quantile of ascending, validated scores (see [`quantiles`]).
fn quantile_sorted(sorted: &[f64], level: f64) -> f64 {
    let n = sorted.len();
    let h = (n - 1) as f64 * level;
    let lo = (h.floor() as usize).min(n - 1);
    let hi = (lo + 1).min(n - 1);
    let frac = h - lo as f64;
    let (a, b) = (sorted[lo], sorted[hi]);
    if frac == 0.0 || a == b {
        a
    } else if b == f64::INFINITY {
        // The limit of a + frac (b - a) for any frac > 0; avoids inf - inf when a = +inf too.
        f64::INFINITY
    } else {
        a + frac * (b - a)
    }
}

/// Quantiles of `scores` at each of `levels` (each in `[0, 1]`), in the order given.
///
/// Interpolation is numpy's default (`np.quantile(x, q, method="linear")`, Hyndman & Fan
/// type 7): with the scores sorted ascending as `x[0] <= ... <= x[n-1]`,
/// `h = (n - 1) q`, `i = floor(h)`, the quantile is `x[i] + (h - i) (x[i+1] - x[i])`
/// (just `x[i]` when `h` is an integer). Level 0 is the minimum, level 1 the maximum, and a
/// single score is every quantile. Interpolating towards a +∞ score gives +∞.
pub fn quantiles(scores: &[f64], levels: &[f64]) -> Result<Vec<f64>, MetricsError> {
    for &l in levels {
        check_unit("level", l)?;
    }
    let s = sorted(scores, SCORES)?;
    Ok(levels.iter().map(|&l| quantile_sorted(&s, l)).collect())
}

/// The threshold that rejects (approximately) `rate` of the in-distribution scores: the
/// [`quantiles`] value at level `1 - rate`, so that about `rate` of them lie above it.
///
/// With the linear interpolation above, for `n` distinct scores the number strictly above the
/// threshold is `n - 1 - floor((n - 1)(1 - rate))`; e.g. for the scores `1, 2, ..., 101` and
/// `rate = 0.05` the threshold is 96 and 5 of 101 lie above it, and for `1, 2, ..., 100` it is
/// `95.05` (between 95 and 96) with 5 of 100 above. `rate = 0` gives the maximum score (nothing
/// rejected), `rate = 1` the minimum (everything but the minimum's ties rejected).
pub fn threshold_at_false_reject_rate(in_dist: &[f64], rate: f64) -> Result<f64, MetricsError> {
    check_unit("rate", rate)?;
    let s = sorted(in_dist, IN_DIST)?;
    Ok(quantile_sorted(&s, 1.0 - rate))
}

/// Mean of scores (validated like every metric; +∞ in gives +∞).
pub fn mean(scores: &[f64], set: &'static str) -> Result<f64, MetricsError> {
    validate(scores, set)?;
    Ok(scores.iter().sum::<f64>() / scores.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INF: f64 = f64::INFINITY;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    /// Brute-force Mann–Whitney over all pairs.
    fn auroc_pairs(in_dist: &[f64], ood: &[f64]) -> f64 {
        let mut u = 0.0;
        for &i in in_dist {
            for &o in ood {
                u += match i.partial_cmp(&o).unwrap() {
                    Ordering::Less => 1.0,
                    Ordering::Equal => 0.5,
                    Ordering::Greater => 0.0,
                };
            }
        }
        u / (in_dist.len() * ood.len()) as f64
    }

    /// Deterministic pseudo-random scores with many ties (values on a coarse grid).
    fn tied_scores(seed: u64, n: usize, offset: f64) -> Vec<f64> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((x >> 33) % 13) as f64 * 0.5 + offset
            })
            .collect()
    }

    #[test]
    fn eval_perfect_separation() {
        let in_dist = [1.0, 2.0, 3.0];
        let ood = [4.0, 5.0];
        assert_eq!(auroc(&in_dist, &ood).unwrap(), 1.0);
        assert_eq!(aupr(&in_dist, &ood).unwrap(), 1.0);
        assert_eq!(fpr_at_95_tpr(&in_dist, &ood).unwrap(), 0.0);
    }

    #[test]
    fn eval_reversed_separation() {
        // The paper's failure mode: OOD gets *lower* bits/dim than the training data.
        let in_dist = [4.0, 5.0];
        let ood = [1.0, 2.0, 3.0];
        assert_eq!(auroc(&in_dist, &ood).unwrap(), 0.0);
        assert_eq!(fpr_at_95_tpr(&in_dist, &ood).unwrap(), 1.0);
        // Every threshold that accepts in-dist has accepted all 3 OOD first:
        // thresholds 4 (P = 1/4, R = 1/2) and 5 (P = 2/5, R = 1): AP = 0.5/4 + 0.5*2/5 = 0.325.
        assert!(close(aupr(&in_dist, &ood).unwrap(), 0.325));
    }

    #[test]
    fn eval_all_ties() {
        let in_dist = [2.5; 4];
        let ood = [2.5; 6];
        assert_eq!(auroc(&in_dist, &ood).unwrap(), 0.5);
        // A single threshold accepts everything: AP = 1 * precision = 4/10.
        assert!(close(aupr(&in_dist, &ood).unwrap(), 0.4));
        assert_eq!(fpr_at_95_tpr(&in_dist, &ood).unwrap(), 1.0);
        let roc = roc_curve(&in_dist, &ood).unwrap();
        assert_eq!(roc.len(), 2);
        assert_eq!(roc_area(&roc), 0.5);
    }

    /// A small mixed example, worked by hand.
    ///
    /// in-dist: 0.1, 0.4, 0.35, 0.8   OOD: 0.35, 0.9, 0.2
    ///
    /// AUROC: pairs (in < ood) + 0.5 (in = ood) over 12 pairs:
    ///   0.1  < 0.35, 0.9, 0.2            -> 3
    ///   0.4  < 0.9                       -> 1
    ///   0.35 < 0.9, = 0.35 (half)        -> 1.5
    ///   0.8  < 0.9                       -> 1
    ///   U = 6.5, AUROC = 6.5 / 12.
    ///
    /// AP, sklearn's `average_precision_score(y, -score)` with y = [1,1,1,1,0,0,0]: sorted by
    /// ascending score, distinct thresholds and cumulative (TP, FP):
    ///   0.1  (1, 0)  R = 1/4  P = 1
    ///   0.2  (1, 1)  R = 1/4  P = 1/2   (recall unchanged: adds nothing)
    ///   0.35 (2, 2)  R = 2/4  P = 2/4   (one in-dist, one OOD tie: enter together)
    ///   0.4  (3, 2)  R = 3/4  P = 3/5
    ///   0.8  (4, 2)  R = 1    P = 4/6
    ///   0.9  (4, 3)  R = 1    P = 4/7
    ///   AP = 1/4 * 1 + 1/4 * 1/2 + 1/4 * 3/5 + 1/4 * 2/3 = 0.25 + 0.125 + 0.15 + 0.1666.. = 0.691666..
    ///
    /// FPR at 95% TPR: 95% of 4 is 3.8, so all 4 in-dist must be accepted: threshold 0.8,
    /// which accepts OOD 0.35 and 0.2: FPR = 2/3.
    #[test]
    fn eval_hand_checked_example() {
        let in_dist = [0.1, 0.4, 0.35, 0.8];
        let ood = [0.35, 0.9, 0.2];
        assert!(close(auroc(&in_dist, &ood).unwrap(), 6.5 / 12.0));
        assert!(close(
            aupr(&in_dist, &ood).unwrap(),
            0.25 + 0.125 + 0.15 + 1.0 / 6.0
        ));
        assert!(close(fpr_at_95_tpr(&in_dist, &ood).unwrap(), 2.0 / 3.0));
        // At 50% TPR the threshold is 0.35 (2 of 4 in-dist), accepting OOD 0.2 and 0.35.
        assert!(close(fpr_at_tpr(&in_dist, &ood, 0.5).unwrap(), 2.0 / 3.0));
        // At 25%: threshold 0.1, no OOD accepted.
        assert_eq!(fpr_at_tpr(&in_dist, &ood, 0.25).unwrap(), 0.0);
        assert_eq!(fpr_at_tpr(&in_dist, &ood, 0.0).unwrap(), 0.0);
        assert_eq!(fpr_at_tpr(&in_dist, &ood, 1.0).unwrap(), 2.0 / 3.0);

        let roc = roc_curve(&in_dist, &ood).unwrap();
        let pts: Vec<(f64, f64)> = roc.iter().map(|p| (p.fpr, p.tpr)).collect();
        let expected = [
            (0.0, 0.0),
            (0.0, 0.25),
            (1.0 / 3.0, 0.25),
            (2.0 / 3.0, 0.5),
            (2.0 / 3.0, 0.75),
            (2.0 / 3.0, 1.0),
            (1.0, 1.0),
        ];
        assert_eq!(pts.len(), expected.len());
        for (p, e) in pts.iter().zip(expected) {
            assert!(close(p.0, e.0) && close(p.1, e.1), "{p:?} vs {e:?}");
        }
        assert!(close(roc_area(&roc), 6.5 / 12.0));
        assert_eq!(roc[3].threshold, 0.35);
    }

    #[test]
    fn eval_fpr_at_95_tpr_exact_boundary() {
        // 20 in-dist at 1..=20: 95% = 19 of them, so the threshold is 19 (not 20).
        let in_dist: Vec<f64> = (1..=20).map(f64::from).collect();
        let ood = [18.5, 19.0, 19.5, 30.0];
        // Accepts OOD 18.5 and the tie 19.0: 2 of 4.
        assert_eq!(fpr_at_95_tpr(&in_dist, &ood).unwrap(), 0.5);
    }

    #[test]
    fn eval_auroc_matches_pairwise_and_trapezoid_on_ties() {
        for seed in 1..20u64 {
            let in_dist = tied_scores(seed, 37, 0.0);
            let ood = tied_scores(seed * 7919, 23, 1.0);
            let exact = auroc_pairs(&in_dist, &ood);
            let fast = auroc(&in_dist, &ood).unwrap();
            assert!(close(exact, fast), "seed {seed}: {exact} vs {fast}");
            let roc = roc_curve(&in_dist, &ood).unwrap();
            assert!(close(roc_area(&roc), fast));
            // Swapping the roles mirrors the AUROC.
            assert!(close(auroc(&ood, &in_dist).unwrap(), 1.0 - fast));
            let ap = aupr(&in_dist, &ood).unwrap();
            assert!((0.0..=1.0).contains(&ap));
            // Rates are monotone and end at (1, 1).
            assert!(
                roc.windows(2)
                    .all(|w| w[0].fpr <= w[1].fpr && w[0].tpr <= w[1].tpr)
            );
            let last = roc.last().unwrap();
            assert_eq!((last.fpr, last.tpr), (1.0, 1.0));
        }
    }

    #[test]
    fn eval_infinity_is_most_anomalous() {
        let in_dist = [1.0, 2.0];
        let ood = [INF, 1.5];
        // 1 < inf, 1 < 1.5, 2 < inf: 3 of 4.
        assert_eq!(auroc(&in_dist, &ood).unwrap(), 0.75);
        // +inf ties with +inf.
        assert_eq!(auroc(&[INF], &[INF]).unwrap(), 0.5);
        assert_eq!(
            threshold_at_false_reject_rate(&[1.0, INF], 0.5).unwrap(),
            INF
        );
        assert_eq!(quantiles(&[INF, INF], &[0.3]).unwrap(), vec![INF]);
        assert_eq!(mean(&[1.0, INF], "x").unwrap(), INF);
    }

    #[test]
    fn eval_rejects_nan_neg_inf_and_empty() {
        assert_eq!(
            auroc(&[1.0, f64::NAN], &[2.0]),
            Err(MetricsError::NaN {
                set: IN_DIST,
                index: 1
            })
        );
        assert_eq!(
            aupr(&[1.0], &[f64::NEG_INFINITY]),
            Err(MetricsError::NegativeInfinity { set: OOD, index: 0 })
        );
        assert_eq!(
            fpr_at_95_tpr(&[], &[1.0]),
            Err(MetricsError::Empty { set: IN_DIST })
        );
        assert!(matches!(
            roc_curve(&[1.0], &[]),
            Err(MetricsError::Empty { set: OOD })
        ));
        assert!(quantiles(&[f64::NAN], &[0.5]).is_err());
        assert!(matches!(
            quantiles(&[1.0], &[1.5]),
            Err(MetricsError::OutOfRange { what: "level", .. })
        ));
        assert!(quantiles(&[1.0], &[f64::NAN]).is_err());
        assert!(threshold_at_false_reject_rate(&[1.0], -0.1).is_err());
        assert!(fpr_at_tpr(&[1.0], &[1.0], 1.01).is_err());
        assert!(mean(&[f64::NAN], "x").is_err());
        let msg = auroc(&[f64::NAN], &[1.0]).unwrap_err().to_string();
        assert_eq!(msg, "the in-distribution score at index 0 is NaN");
    }

    #[test]
    fn eval_quantile_interpolation() {
        // numpy: np.quantile([3, 1, 4, 1, 5], [0, .1, .25, .5, .9, 1])
        //   sorted [1, 1, 3, 4, 5], h = 4q:
        //   q=0    -> 1
        //   q=0.1  -> h=0.4, 1 + 0.4*(1-1) = 1
        //   q=0.25 -> h=1,   x[1] = 1
        //   q=0.5  -> h=2,   x[2] = 3
        //   q=0.6  -> h=2.4, 3 + 0.4*(4-3) = 3.4
        //   q=0.9  -> h=3.6, 4 + 0.6*(5-4) = 4.6
        //   q=1    -> 5
        let q = quantiles(
            &[3.0, 1.0, 4.0, 1.0, 5.0],
            &[0.0, 0.1, 0.25, 0.5, 0.6, 0.9, 1.0],
        )
        .unwrap();
        let expected = [1.0, 1.0, 1.0, 3.0, 3.4, 4.6, 5.0];
        for (a, e) in q.iter().zip(expected) {
            assert!(close(*a, e), "{q:?}");
        }
        // A single score is every quantile.
        assert_eq!(quantiles(&[7.0], &[0.0, 0.5, 1.0]).unwrap(), vec![7.0; 3]);
    }

    #[test]
    fn eval_threshold_at_false_reject_rate() {
        let s101: Vec<f64> = (1..=101).map(f64::from).collect();
        let t = threshold_at_false_reject_rate(&s101, 0.05).unwrap();
        assert_eq!(t, 96.0);
        assert_eq!(s101.iter().filter(|&&s| s > t).count(), 5);

        let s100: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let t = threshold_at_false_reject_rate(&s100, 0.05).unwrap();
        // h = 99 * 0.95 = 94.05 -> x[94] + 0.05 (x[95] - x[94]) = 95 + 0.05.
        assert!(close(t, 95.05), "{t}");
        assert_eq!(s100.iter().filter(|&&s| s > t).count(), 5);

        assert_eq!(threshold_at_false_reject_rate(&s100, 0.0).unwrap(), 100.0);
        assert_eq!(threshold_at_false_reject_rate(&s100, 1.0).unwrap(), 1.0);
        assert!(close(
            threshold_at_false_reject_rate(&s100, 0.5).unwrap(),
            50.5
        ));
    }
}
