//! The gate: a model borrowed from its file and planned once, scoring frames in
//! caller-provided scratch.

use flowgate_shared::{
    Bytes, Detail, Dims, Model, ModelSummary, ValidatedModel, decode, decode_payload, patch_origin,
};

use crate::error::{Error, Result};
use crate::flow::{Scratch, log_density};
use crate::frame::Frame;
use crate::kernels::KernelPath;
use crate::limits::Limits;
use crate::plan::{self, Builder, PlanSizes, Step};
use crate::preprocess::{LogitTable, frame_levels, patch_levels};

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
    /// With a native-resolution detail branch: the mean bits/dim of the frame's patches (the
    /// OOD score is then the combined one, [`flowgate_shared::Detail::combined_score`]).
    pub detail_bits_per_dim: Option<f64>,
}

/// A loaded model, ready to score frames: the model's header fields, borrowed from its file,
/// and its execution plan ([`crate::plan`]); with a native-resolution detail branch, the
/// patch model's plan too. Scoring allocates nothing.
#[derive(Debug, Clone)]
pub struct Gate<'a> {
    main: Branch<'a>,
    /// The detail branch's patch model (the branch's geometry is in `main.model.detail`).
    patch: Option<Branch<'a>>,
    kernels: KernelPath,
    file_len: usize,
}

/// One planned flow: the main model, or a detail branch's patch model.
#[derive(Debug, Clone)]
struct Branch<'a> {
    model: Model<'a>,
    summary: ModelSummary,
    input: Dims,
    plan: Plan<'a>,
    sizes: PlanSizes,
    logit: LogitTable,
}

/// Where a plan lives: the caller's buffers, or the gate's own.
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

/// A validated model and its patch model, if it has a detail branch, with their plans'
/// sizes.
struct Checked<'a> {
    main: (ValidatedModel<'a>, PlanSizes),
    patch: Option<(ValidatedModel<'a>, PlanSizes)>,
}

impl Checked<'_> {
    /// Both plans together.
    fn plan_sizes(&self) -> PlanSizes {
        self.patch
            .as_ref()
            .map_or(self.main.1, |(_, patch)| self.main.1.beside(*patch))
    }

    fn scratch_len(&self) -> usize {
        let main = scratch_len(&self.main.0.summary, &self.main.1);
        self.patch.as_ref().map_or(main, |(patch, sizes)| {
            main.max(scratch_len(&patch.summary, sizes))
        })
    }
}

impl<'a> Gate<'a> {
    /// What [`Gate::new_in`] needs for this model file: decodes and validates it, and sizes
    /// its plan (with a detail branch, both plans together).
    pub fn plan_sizes(model_bytes: &[u8]) -> Result<PlanSizes> {
        Ok(check(model_bytes)?.plan_sizes())
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
        let checked = checked(model_bytes, limits)?;
        let needed = checked.plan_sizes();
        if steps.len() < needed.steps || floats.len() < needed.floats {
            return Err(Error::PlanMemoryTooSmall {
                needed,
                steps: steps.len(),
                floats: floats.len(),
            });
        }
        let Checked { main, patch } = checked;
        let (main_steps, steps) = steps.split_at_mut(main.1.steps);
        let (main_floats, floats) = floats.split_at_mut(main.1.floats);
        let main = Branch::planned_in(main, main_steps, main_floats)?;
        let patch = match patch {
            None => None,
            Some(patch) => {
                let (patch_steps, _) = steps.split_at_mut(patch.1.steps);
                let (patch_floats, _) = floats.split_at_mut(patch.1.floats);
                Some(Branch::planned_in(patch, patch_steps, patch_floats)?)
            }
        };
        Ok(Self::assemble(main, patch, model_bytes.len()))
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
        let Checked { main, patch } = checked(model_bytes, limits)?;
        let main = Branch::planned_owned(main)?;
        let patch = patch.map(Branch::planned_owned).transpose()?;
        Ok(Self::assemble(main, patch, model_bytes.len()))
    }

    fn assemble(main: Branch<'a>, patch: Option<Branch<'a>>, file_len: usize) -> Self {
        Gate {
            main,
            patch,
            kernels: KernelPath::detect(),
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

    /// The f32 elements of scratch [`Gate::score`] needs (the larger of the main flow's and
    /// the patch model's: they run one after the other).
    pub fn scratch_len(&self) -> usize {
        let main = self.main.scratch_len();
        self.patch
            .as_ref()
            .map_or(main, |patch| main.max(patch.scratch_len()))
    }

    /// The model.
    pub fn model(&self) -> &Model<'a> {
        &self.main.model
    }

    /// The model's sizes and costs (with a detail branch, its costs included).
    pub fn summary(&self) -> &ModelSummary {
        &self.main.summary
    }

    /// The detail branch's patch model, if the model has a detail branch.
    pub fn patch_model(&self) -> Option<&Model<'a>> {
        self.patch.as_ref().map(|patch| &patch.model)
    }

    /// The plan's sizes: its memory besides the model file and the scratch (both plans, with
    /// a detail branch).
    pub fn plan_memory(&self) -> PlanSizes {
        self.patch
            .as_ref()
            .map_or(self.main.sizes, |patch| self.main.sizes.beside(patch.sizes))
    }

    /// Bytes the gate needs in all, as [`Limits`] count them: the model file, the plan and
    /// the scratch.
    pub fn memory_bytes(&self) -> u64 {
        memory_bytes(self.file_len, self.plan_memory(), self.scratch_len())
    }

    /// Scores a frame: resizes and converts it to the model's input, runs the flow, and
    /// compares the OOD score with the threshold (failing closed: see [`judge`]). With a
    /// detail branch the frame must have the camera's own size; the patches are scored too
    /// and the OOD score is the combined one ([`flowgate_shared::Detail`]). `scratch` needs
    /// [`Gate::scratch_len`] elements; its contents on entry do not matter.
    pub fn score(&self, frame: &Frame<'_>, scratch: &mut [f32]) -> Result<Verdict> {
        if let Some(detail) = &self.main.model.detail {
            let expected = (detail.frame_width, detail.frame_height);
            let found = (frame.width(), frame.height());
            if expected != found {
                return Err(Error::DetailFrameSize { expected, found });
            }
        }
        self.check_scratch(scratch)?;
        let parts = self.main.split_scratch(scratch)?;
        let input = parts
            .state
            .get_mut(..self.main.input.elements() as usize)
            .ok_or(Error::Inconsistent)?;
        frame_levels(frame, &self.main.model.input, input)?;
        let (log_likelihood, bits_per_dim) = self.main.log_likelihood(parts, self.kernels)?;
        let frame_score = self.main.model.score.ood_score(bits_per_dim);
        let threshold = self.main.model.threshold.as_ref().map(|t| t.ood_score);
        let (Some(detail), Some(patch)) = (&self.main.model.detail, &self.patch) else {
            return Ok(judge(log_likelihood, bits_per_dim, frame_score, threshold));
        };
        let detail_bits_per_dim =
            patch.mean_patch_bits_per_dim(detail, frame, scratch, self.kernels)?;
        let ood_score = detail.combined_score(frame_score, detail_bits_per_dim);
        let mut verdict = judge(log_likelihood, bits_per_dim, ood_score, threshold);
        verdict.detail_bits_per_dim = Some(detail_bits_per_dim);
        Ok(verdict)
    }

    /// Scores pixel levels already at the model's input size (channel-major, 0..=255), held
    /// in the first `C * H * W` elements of `scratch`. Refused for a model with a detail
    /// branch ([`Error::DetailNeedsFrame`]): its patches come from the whole frame.
    pub fn score_levels_in_scratch(&self, scratch: &mut [f32]) -> Result<Verdict> {
        if self.patch.is_some() {
            return Err(Error::DetailNeedsFrame);
        }
        self.check_scratch(scratch)?;
        let parts = self.main.split_scratch(scratch)?;
        let (log_likelihood, bits_per_dim) = self.main.log_likelihood(parts, self.kernels)?;
        let ood_score = self.main.model.score.ood_score(bits_per_dim);
        Ok(judge(
            log_likelihood,
            bits_per_dim,
            ood_score,
            self.main.model.threshold.as_ref().map(|t| t.ood_score),
        ))
    }

    fn check_scratch(&self, scratch: &[f32]) -> Result<()> {
        let needed = self.scratch_len();
        if scratch.len() < needed {
            return Err(Error::ScratchTooSmall {
                needed,
                provided: scratch.len(),
            });
        }
        Ok(())
    }
}

impl<'a> Branch<'a> {
    fn planned_in(
        (validated, sizes): (ValidatedModel<'a>, PlanSizes),
        steps: &'a mut [Step],
        floats: &'a mut [f32],
    ) -> Result<Self> {
        plan::build(&validated.model, &mut Builder::writing(steps, floats))?;
        Ok(Self::assemble(
            validated,
            sizes,
            Plan::Borrowed { steps, floats },
        ))
    }

    #[cfg(feature = "alloc")]
    fn planned_owned((validated, sizes): (ValidatedModel<'a>, PlanSizes)) -> Result<Self> {
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
        ))
    }

    fn assemble(validated: ValidatedModel<'a>, sizes: PlanSizes, plan: Plan<'a>) -> Self {
        let spec = validated.model.input;
        Branch {
            logit: LogitTable::new(spec.preprocess),
            model: validated.model,
            summary: validated.summary,
            input: Dims::new(spec.channels, spec.height, spec.width),
            plan,
            sizes,
        }
    }

    fn scratch_len(&self) -> usize {
        scratch_len(&self.summary, &self.sizes)
    }

    /// The flow's state, the work area and the kernels' scratch (the caller checked the
    /// scratch's length against the gate's).
    fn split_scratch<'s>(&self, scratch: &'s mut [f32]) -> Result<Scratch<'s>> {
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

    /// The log-likelihood (nats) and bits/dim of the levels in the state's first `C * H * W`
    /// elements.
    fn log_likelihood(&self, scratch: Scratch<'_>, kernels: KernelPath) -> Result<(f64, f64)> {
        let dims = self.input.elements() as usize;
        let input = scratch.state.get_mut(..dims).ok_or(Error::Inconsistent)?;
        let preprocess_log_det = self.logit.apply(self.model.input.preprocess, input);
        let mut log_likelihood = log_density(
            self.plan.steps(),
            self.plan.floats(),
            self.input,
            scratch,
            kernels,
        )?;
        // A flow on embeddings models the embedding, not the pixels the preprocessing maps.
        if !self.summary.embedded {
            log_likelihood += preprocess_log_det;
        }
        let bits_per_dim = -log_likelihood / (self.summary.density_dims as f64 * LN_2);
        Ok((log_likelihood, bits_per_dim))
    }

    /// The mean bits/dim of the detail branch's patches of `frame` (this branch being the
    /// patch model).
    fn mean_patch_bits_per_dim(
        &self,
        detail: &Detail<'_>,
        frame: &Frame<'_>,
        scratch: &mut [f32],
        kernels: KernelPath,
    ) -> Result<f64> {
        let patch = (self.input.width, self.input.height);
        let frame_size = (frame.width(), frame.height());
        let patches = detail.patches();
        let mut sum = 0.0f64;
        for index in 0..patches {
            let origin = patch_origin(frame_size, (detail.columns, detail.rows), patch, index)
                .ok_or(Error::Inconsistent)?;
            let parts = self.split_scratch(scratch)?;
            patch_levels(frame, origin, patch, parts.state)?;
            sum += self.log_likelihood(parts, kernels)?.1;
        }
        Ok(sum / patches as f64)
    }
}

/// Decodes and validates a model and, if it has a detail branch, its patch model; sizes
/// their plans.
fn check(model_bytes: &[u8]) -> Result<Checked<'_>> {
    let validated = decode(model_bytes)?;
    let patch = match &validated.model.detail {
        None => None,
        Some(detail) => Some(patch_model(detail)?),
    };
    let main_sizes = sizes_of(&validated)?;
    let patch = match patch {
        None => None,
        Some(patch) => {
            let sizes = sizes_of(&patch)?;
            Some((patch, sizes))
        }
    };
    Ok(Checked {
        main: (validated, main_sizes),
        patch,
    })
}

/// The detail branch's patch model, decoded from the bytes it borrows from the file.
fn patch_model<'a>(detail: &Detail<'a>) -> Result<ValidatedModel<'a>> {
    match &detail.patch_model {
        Bytes::Borrowed(payload) => Ok(decode_payload(payload)?),
        // A gate borrows a decoded file, whose byte strings are always borrowed; the owned
        // variant exists only where flowgate-shared's `alloc` feature is on.
        #[allow(unreachable_patterns)]
        _ => Err(Error::Inconsistent),
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

/// Decodes, validates and sizes a model, and checks the whole of its memory (file, plans and
/// scratch) and its cost against `limits`, before anything is allocated.
fn checked(model_bytes: &[u8], limits: Limits) -> Result<Checked<'_>> {
    let checked = check(model_bytes)?;
    limits.check_macs(checked.main.0.summary.macs_per_frame)?;
    limits.check_memory(memory_bytes(
        model_bytes.len(),
        checked.plan_sizes(),
        checked.scratch_len(),
    ))?;
    Ok(checked)
}

fn memory_bytes(file_len: usize, plan: PlanSizes, scratch_len: usize) -> u64 {
    let scratch_bytes = (scratch_len as u64).saturating_mul(4);
    (file_len as u64)
        .saturating_add(plan.bytes())
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
        detail_bits_per_dim: None,
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
