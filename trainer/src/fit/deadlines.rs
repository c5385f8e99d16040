//! `--minutes`: the training-time budget, turned into a deadline per training.
//!
//! The trainings share what is left of the budget when they start, in fixed proportions
//! measured on vtest.avi with the full recipes (the teacher's pretraining and training about a
//! third, the distillation most of the rest, the detail branch's patch model a few percent),
//! with a reserve for calibration, scoring and the report. The deadlines are cumulative, so a
//! training that finishes early leaves its time to the next. A training stopped by its
//! deadline keeps its best weights so far and a checkpoint: running fit again continues it.

use std::time::{Duration, Instant};

/// Share of the remaining budget kept for what follows the trainings.
const RESERVE: f64 = 0.05;
/// Cumulative shares of the rest at which each training must stop.
const PRETRAIN_END: f64 = 0.12;
const TEACHER_END: f64 = 0.35;
const GATE_END_WITH_DETAIL: f64 = 0.92;

/// The instants by which each training stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// The teacher's extractor pretraining.
    pub pretrain: Instant,
    /// The teacher.
    pub teacher: Instant,
    /// The distilled gate.
    pub gate: Instant,
    /// The detail branch's patch model.
    pub detail: Instant,
}

impl Deadlines {
    /// Deadlines for a fit that started at `started` with `budget` in all, planned at `now`
    /// (after the frames were extracted), with or without a detail branch.
    pub fn plan(started: Instant, budget: Duration, now: Instant, detail: bool) -> Self {
        let end = started + budget;
        let left = end.saturating_duration_since(now).mul_f64(1.0 - RESERVE);
        let at = |share: f64| now + left.mul_f64(share);
        Deadlines {
            pretrain: at(PRETRAIN_END),
            teacher: at(TEACHER_END),
            gate: at(if detail { GATE_END_WITH_DETAIL } else { 1.0 }),
            detail: at(1.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_share_what_is_left_in_order() {
        let started = Instant::now();
        let now = started + Duration::from_secs(100);
        let plan = Deadlines::plan(started, Duration::from_secs(1100), now, true);
        // 1000 s left, 950 s after the reserve.
        assert_eq!(plan.pretrain, now + Duration::from_secs_f64(114.0));
        assert_eq!(plan.teacher, now + Duration::from_secs_f64(332.5));
        assert_eq!(plan.gate, now + Duration::from_secs_f64(874.0));
        assert_eq!(plan.detail, now + Duration::from_secs(950));
        let without = Deadlines::plan(started, Duration::from_secs(1100), now, false);
        assert_eq!(without.gate, now + Duration::from_secs(950));
        // Extraction took the whole budget: every training stops after its first step.
        let late = Deadlines::plan(started, Duration::from_secs(50), now, true);
        assert_eq!(late.detail, now);
    }
}
