//! The gate: a model borrowed from its file and planned once, scoring frames in
//! caller-provided scratch.

use flowgate_shared::{Dims, Model, ModelSummary, ValidatedModel, decode};

use crate::error::{Error, Result};
use crate::flow::{Scratch, log_density};
use crate::frame::Frame;
use crate::kernels::KernelPath;
use crate::limits::Limits;
use crate::plan::{self, Builder, PlanSizes, Step};
use crate::preprocess::{LogitTable, frame_levels};

/// `ln 2`.
const LN_2: f64 = core::f64::consts::LN_2;

/// Whether a frame may pass to the downstream model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Like the training data: pass it on.
    Accept,
    /// Out of distribution: hold it back.
    Reject,
}

/// Why a frame was rejected whatever its score said: the gate fails closed, so a frame it
/// could not judge is held back rather than passed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The log-likelihood or OOD score came out NaN or infinite (an overflow inside the
    /// flow: a hostile or broken model, or a frame far outside anything the weights were
    /// made for). No comparison with a threshold means anything then.
    NonFiniteScore,
}

impl Fault {
    /// A short name for tables and logs: `non-finite-score`.
    pub fn name(self) -> &'static str {
        match self {
            Fault::NonFiniteScore => "non-finite-score",
        }
    }
}

/// The gate's judgement of one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// Log-likelihood of the (resized, discrete) frame in nats; for a flow on embeddings, of
    /// the frame's embedding.
    pub log_likelihood: f64,
    /// `-log_likelihood / (D ln 2)`, `D` the input's (or the embedding's) dimensions.
    pub bits_per_dim: f64,
    /// Higher = more anomalous (the model's [`flowgate_shared::ScoreKind`]).
    pub ood_score: f64,
    /// Against the model's calibrated threshold; `None` for an uncalibrated model. Always
    /// `Some(Reject)` when [`Verdict::fault`] is set, threshold or not.
    pub decision: Option<Decision>,
    /// Set when the frame is rejected because it could not be judged (fail closed).
    pub fault: Option<Fault>,
}

/// A loaded model, ready to score frames: the model's header fields, borrowed from its file,
/// and its execution plan ([`crate::plan`]). Scoring allocates nothing.
#[derive(Debug, Clone)]
pub struct Gate<'a> {
    model: Model<'a>,
    summary: ModelSummary,
    input: Dims,
    kernels: KernelPath,
    plan: Plan<'a>,
    sizes: PlanSizes,
    logit: LogitTable,
    file_len: usize,
}

/// Where the plan lives: the caller's buffers, or the gate's own.
#[derive(Debug, Clone)]
enum Plan<'a> {
    Borrowed {
        steps: &'a [Step],
        floats: &'a [f32],
    },
    #[cfg(feature = "alloc")]
    Owned {
        steps: alloc::vec::Vec<Step>,
        floats: alloc::vec::Vec<f32>,
    },
}

impl Plan<'_> {
    fn steps(&self) -> &[Step] {
        match self {
            Plan::Borrowed { steps, .. } => steps,
            #[cfg(feature = "alloc")]
            Plan::Owned { steps, .. } => steps,
        }
    }

    fn floats(&self) -> &[f32] {
        match self {
            Plan::Borrowed { floats, .. } => floats,
            #[cfg(feature = "alloc")]
            Plan::Owned { floats, .. } => floats,
        }
    }
}

impl<'a> Gate<'a> {
    /// What [`Gate::new_in`] needs for this model file: decodes and validates it, and sizes
    /// its plan.
    pub fn plan_sizes(model_bytes: &[u8]) -> Result<PlanSizes> {
        let validated = decode(model_bytes)?;
        sizes_of(&validated)
    }

    /// Decodes and validates a model file, checks it against `limits`, and plans it into the
    /// caller's buffers, sized by [`Gate::plan_sizes`] (`steps` filled with [`Step::EMPTY`],
    /// any `floats`): no allocation, for `no_std` builds without an allocator. The gate
    /// runs the fastest kernels this CPU has ([`KernelPath::detect`]).
    pub fn new_in(
        model_bytes: &'a [u8],
        limits: Limits,
        steps: &'a mut [Step],
        floats: &'a mut [f32],
    ) -> Result<Self> {
        let (validated, sizes) = checked(model_bytes, limits)?;
        if steps.len() < sizes.steps || floats.len() < sizes.floats {
            return Err(Error::PlanMemoryTooSmall {
                needed: sizes,
                steps: steps.len(),
                floats: floats.len(),
            });
        }
        let (steps, _) = steps.split_at_mut(sizes.steps);
        let (floats, _) = floats.split_at_mut(sizes.floats);
        plan::build(&validated.model, &mut Builder::writing(steps, floats))?;
        Ok(Self::assemble(
            validated,
            sizes,
            Plan::Borrowed { steps, floats },
            model_bytes.len(),
        ))
    }

    /// Decodes and validates a model file, checks it against [`Limits::DEFAULT`], and plans
    /// it into memory the gate allocates (once, here). The gate runs the fastest kernels this
    /// CPU has ([`KernelPath::detect`]).
    #[cfg(feature = "alloc")]
    pub fn new(model_bytes: &'a [u8]) -> Result<Self> {
        Self::with_limits(model_bytes, Limits::DEFAULT)
    }

    /// Like [`Gate::new`], with the caller's limits (a board's budget, or
    /// [`Limits::UNLIMITED`] on a workstation).
    #[cfg(feature = "alloc")]
    pub fn with_limits(model_bytes: &'a [u8], limits: Limits) -> Result<Self> {
        let (validated, sizes) = checked(model_bytes, limits)?;
        let mut steps = alloc::vec![Step::EMPTY; sizes.steps];
        let mut floats = alloc::vec![0f32; sizes.floats];
        plan::build(
            &validated.model,
            &mut Builder::writing(&mut steps, &mut floats),
        )?;
        Ok(Self::assemble(
            validated,
            sizes,
            Plan::Owned { steps, floats },
            model_bytes.len(),
        ))
    }

    fn assemble(
        validated: ValidatedModel<'a>,
        sizes: PlanSizes,
        plan: Plan<'a>,
        file_len: usize,
    ) -> Self {
        let spec = validated.model.input;
        Gate {
            logit: LogitTable::new(spec.preprocess),
            model: validated.model,
            summary: validated.summary,
            input: Dims::new(spec.channels, spec.height, spec.width),
            kernels: KernelPath::detect(),
            plan,
            sizes,
            file_len,
        }
    }

    /// The same gate on other kernels, e.g. [`KernelPath::Scalar`], the reference; refuses a
    /// path this CPU (or this build) cannot run.
    pub fn with_kernels(mut self, kernels: KernelPath) -> Result<Self> {
        if !kernels.available() {
            return Err(Error::KernelsUnavailable(kernels));
        }
        self.kernels = kernels;
        Ok(self)
    }

    /// The kernels the gate runs.
    pub fn kernels(&self) -> KernelPath {
        self.kernels
    }

    /// The f32 elements of scratch [`Gate::score`] needs.
    pub fn scratch_len(&self) -> usize {
        scratch_len(&self.summary, &self.sizes)
    }

    /// The model.
    pub fn model(&self) -> &Model<'a> {
        &self.model
    }

    /// The model's sizes and costs.
    pub fn summary(&self) -> &ModelSummary {
        &self.summary
    }

    /// The plan's sizes: its memory besides the model file and the scratch.
    pub fn plan_memory(&self) -> PlanSizes {
        self.sizes
    }

    /// Bytes the gate needs in all, as [`Limits`] count them: the model file, the plan and
    /// the scratch.
    pub fn memory_bytes(&self) -> u64 {
        memory_bytes(self.file_len, &self.summary, &self.sizes)
    }

    /// Scores a frame: resizes and converts it to the model's input, runs the flow, and
    /// compares the OOD score with the threshold (failing closed: see [`judge`]). `scratch`
    /// needs [`Gate::scratch_len`] elements; its contents on entry do not matter.
    pub fn score(&self, frame: &Frame<'_>, scratch: &mut [f32]) -> Result<Verdict> {
        let parts = self.split_scratch(scratch)?;
        let input = parts
            .state
            .get_mut(..self.input.elements() as usize)
            .ok_or(Error::Inconsistent)?;
        frame_levels(frame, &self.model.input, input)?;
        self.score_levels(parts)
    }

    /// Scores pixel levels already at the model's input size (channel-major, 0..=255), held
    /// in the first `C * H * W` elements of `scratch`.
    pub fn score_levels_in_scratch(&self, scratch: &mut [f32]) -> Result<Verdict> {
        let parts = self.split_scratch(scratch)?;
        self.score_levels(parts)
    }

    /// The flow's state, the work area and the kernels' scratch, after checking the scratch
    /// is large enough.
    fn split_scratch<'s>(&self, scratch: &'s mut [f32]) -> Result<Scratch<'s>> {
        let needed = self.scratch_len();
        if scratch.len() < needed {
            return Err(Error::ScratchTooSmall {
                needed,
                provided: scratch.len(),
            });
        }
        let (state, rest) = scratch
            .split_at_mut_checked(self.summary.scratch.state)
            .ok_or(Error::Inconsistent)?;
        let (work, kernel) = rest
            .split_at_mut_checked(self.summary.scratch.work)
            .ok_or(Error::Inconsistent)?;
        Ok(Scratch {
            state,
            work,
            kernel,
        })
    }

    fn score_levels(&self, scratch: Scratch<'_>) -> Result<Verdict> {
        let dims = self.input.elements() as usize;
        let input = scratch.state.get_mut(..dims).ok_or(Error::Inconsistent)?;
        let preprocess_log_det = self.logit.apply(self.model.input.preprocess, input);
        let mut log_likelihood = log_density(
            self.plan.steps(),
            self.plan.floats(),
            self.input,
            scratch,
            self.kernels,
        )?;
        // A flow on embeddings models the embedding, not the pixels the preprocessing maps.
        if !self.summary.embedded {
            log_likelihood += preprocess_log_det;
        }
        let bits_per_dim = -log_likelihood / (self.summary.density_dims as f64 * LN_2);
        let ood_score = self.model.score.ood_score(bits_per_dim);
        Ok(judge(
            log_likelihood,
            bits_per_dim,
            ood_score,
            self.model.threshold.as_ref().map(|t| t.ood_score),
        ))
    }
}

/// The plan's sizes for a validated model.
fn sizes_of(validated: &ValidatedModel<'_>) -> Result<PlanSizes> {
    let mut builder = Builder::counting();
    plan::build(&validated.model, &mut builder)?;
    Ok(builder.sizes())
}

/// Scratch elements: the flow's state, the networks' work area, the kernels' temporaries.
fn scratch_len(summary: &ModelSummary, sizes: &PlanSizes) -> usize {
    summary.scratch.total().saturating_add(sizes.kernel_scratch)
}

/// Decodes, validates and sizes a model, and checks the whole of its memory (file, plan and
/// scratch) and its cost against `limits`, before anything is allocated.
fn checked(model_bytes: &[u8], limits: Limits) -> Result<(ValidatedModel<'_>, PlanSizes)> {
    let validated = decode(model_bytes)?;
    limits.check_macs(validated.summary.macs_per_frame)?;
    let sizes = sizes_of(&validated)?;
    limits.check_memory(memory_bytes(model_bytes.len(), &validated.summary, &sizes))?;
    Ok((validated, sizes))
}

fn memory_bytes(file_len: usize, summary: &ModelSummary, sizes: &PlanSizes) -> u64 {
    let scratch_bytes = (scratch_len(summary, sizes) as u64).saturating_mul(4);
    (file_len as u64)
        .saturating_add(sizes.bytes())
        .saturating_add(scratch_bytes)
}

/// The verdict on a frame's scores against an optional threshold. Fails closed: a NaN or
/// infinite score compares false with everything, so `score > threshold` alone would accept
/// it; such a frame is rejected and marked with [`Fault::NonFiniteScore`], with or without a
/// threshold.
pub fn judge(
    log_likelihood: f64,
    bits_per_dim: f64,
    ood_score: f64,
    threshold: Option<f32>,
) -> Verdict {
    let finite = log_likelihood.is_finite() && bits_per_dim.is_finite() && ood_score.is_finite();
    let fault = (!finite).then_some(Fault::NonFiniteScore);
    let decision = if fault.is_some() {
        Some(Decision::Reject)
    } else {
        threshold.map(|threshold| {
            if ood_score > f64::from(threshold) {
                Decision::Reject
            } else {
                Decision::Accept
            }
        })
    };
    Verdict {
        log_likelihood,
        bits_per_dim,
        ood_score,
        decision,
        fault,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finite_scores_compare_with_the_threshold() {
        let verdict = judge(-10.0, 1.0, 1.0, Some(2.0));
        assert_eq!(verdict.decision, Some(Decision::Accept));
        assert_eq!(verdict.fault, None);
        assert_eq!(
            judge(-10.0, 3.0, 3.0, Some(2.0)).decision,
            Some(Decision::Reject)
        );
        assert_eq!(judge(-10.0, 3.0, 3.0, None).decision, None);
    }

    #[test]
    fn non_finite_scores_are_rejected_with_or_without_a_threshold() {
        let cases = [
            (f64::NAN, f64::NAN, f64::NAN),
            (f64::NEG_INFINITY, f64::INFINITY, f64::INFINITY),
            // A finite log-likelihood with a broken score, and the reverse.
            (-10.0, 1.0, f64::NAN),
            (f64::NAN, 1.0, 1.0),
            (f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY),
        ];
        for (log_likelihood, bits_per_dim, ood_score) in cases {
            for threshold in [Some(2.0), Some(f32::MAX), None] {
                let verdict = judge(log_likelihood, bits_per_dim, ood_score, threshold);
                assert_eq!(verdict.decision, Some(Decision::Reject), "{verdict:?}");
                assert_eq!(verdict.fault, Some(Fault::NonFiniteScore));
            }
        }
    }
}
