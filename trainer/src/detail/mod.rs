//! `flowgate detail`: adds a native-resolution detail branch ([`flowgate_shared::Detail`]) to a
//! camera gate, trained on the same camera's frames at their own size.
//!
//! 1. Every frame of the input is streamed once at its own size ([`native`]); each gives
//!    [`PATCHES_PER_FRAME`] patches at random positions ([`patches`]).
//! 2. The patch model ([`DETAIL_RECIPE`], a small RealNVP on 8x8 patches) trains on the
//!    training frames' patches; the held-out frames' patches stop it early.
//! 3. The held-out frames are streamed again and scored by the gate with the new branch: the
//!    thumbnail's OOD score and the patches' mean bits/dim. Each is centred on its median and
//!    divided by its deviation at the `1 - rate` quantile (so each part's own threshold
//!    would be 1), and the combined score's quantile at `1 - rate` becomes the
//!    gate's threshold, as `flowgate calibrate` sets one.
//!
//! The held-out frames are those `flowgate fit` holds out ([`Split`], placed as `--split`
//! says), `--held-out` of them if given.

pub mod native;
pub mod patches;

use std::ops::Range;
use std::path::{Path, PathBuf};

use flowgate_edge::{Gate, Limits};
use flowgate_shared::calibration::{self, CalibrationError};
use flowgate_shared::{Bytes, Detail, Model, Resize, ScoreKind, Standardise};

use crate::config::TrainConfig;
use crate::data::ImageSet;
use crate::error::{Error, Result};
use crate::fit::{Input, Split, SplitKind, split};
use crate::training::{self, Compute, RunOptions, TrainReport};

/// The patch model's recipe, as committed in configs/.
pub const DETAIL_RECIPE: &str = include_str!("../../../configs/camera-detail.toml");
/// Patch positions across and down the frame the runtime scores, by default.
pub const DEFAULT_GRID: (u32, u32) = (8, 6);
/// Random training patches taken from each frame.
pub const PATCHES_PER_FRAME: usize = 48;

/// What `flowgate detail` was asked.
#[derive(Debug, Clone)]
pub struct DetailOptions {
    /// A video file or a folder of images: the camera's frames at their own size.
    pub input: PathBuf,
    /// The patch model's run folder.
    pub work: PathBuf,
    /// Only these frames of the input (positions), by default all.
    pub frames: Option<Range<usize>>,
    /// Hold out this many of them (at most half) [default: as many as `flowgate fit` holds
    /// out].
    pub held_out: Option<usize>,
    /// Where the held-out frames lie, as `flowgate fit --split` places them.
    pub split: SplitKind,
    /// The target false-reject rate [default: the gate's, else 0.01].
    pub rate: Option<f64>,
    /// Patch positions (columns, rows) scored per frame.
    pub grid: (u32, u32),
    /// Replaces the recipe's step count.
    pub steps: Option<usize>,
    /// Replaces the built-in recipe.
    pub config: Option<PathBuf>,
    /// Show progress bars.
    pub progress: bool,
    /// Where to train.
    pub compute: Compute,
    /// Continue the patch model's training from the work folder's checkpoint when it holds
    /// an earlier run of the same recipe (`flowgate fit` on footage it has seen).
    pub resume: bool,
    /// Stop the patch model's training at this instant (`flowgate fit --minutes`).
    pub deadline: Option<std::time::Instant>,
}

/// What `flowgate detail` made.
#[derive(Debug, Clone)]
pub struct DetailReport {
    /// The camera's frame size.
    pub frame_size: (u32, u32),
    /// The frames used.
    pub frames: Range<usize>,
    /// Which of them trained and which were held out (positions from `frames.start`).
    pub split: Split,
    /// Training patches.
    pub train_patches: usize,
    /// The patch model's training.
    pub training: TrainReport,
    /// Multiply-accumulates of one patch, and of a whole frame (thumbnail and patches).
    pub macs: (u64, u64),
    /// The standardisations found.
    pub standardise: (Standardise, Standardise),
    /// The combined score's threshold and its target false-reject rate.
    pub threshold: (f32, f64),
    /// Held-out frames the thumbnail alone, the patches alone and the combined score reject.
    pub rejected: (usize, usize, usize),
}

impl DetailReport {
    /// One line for fit's report: the branch, its cost, and what the combined decision
    /// rejects of the held-out frames.
    pub fn line(&self, options: &DetailOptions) -> String {
        let held = self.split.held_out();
        format!(
            "{}x{} grid of patches of the {}x{} frames ({} MACs per patch, {} per frame in all); \
             combined threshold {:.4} rejects {}/{held} held-out frames (thumbnail alone {}/{held}, \
             patches alone {}/{held})",
            options.grid.0,
            options.grid.1,
            self.frame_size.0,
            self.frame_size.1,
            self.macs.0,
            self.macs.1,
            self.threshold.0,
            self.rejected.2,
            self.rejected.0,
            self.rejected.1
        )
    }
}

/// `gate_file` (a model file) with a detail branch, as a model file; see the module's
/// documentation.
pub fn add_detail(gate_file: &[u8], options: &DetailOptions) -> Result<(Vec<u8>, DetailReport)> {
    let gate = flowgate_shared::decode(gate_file)?.model;
    let input = Input::open(&options.input).map_err(|e| Error::Detail(e.to_string()))?;
    let frame_size = input
        .frame_size()
        .map_err(|e| Error::Detail(e.to_string()))?;
    let mut config = recipe(options.config.as_deref(), options.steps)?;
    let side = config.model.width as u32;
    if config.model.height as u32 != side || config.model.channels != 1 {
        return Err(Error::Detail(format!(
            "{}: the patch model needs square gray patches (channels 1, height = width)",
            config.name
        )));
    }
    if side > frame_size.0 || side > frame_size.1 {
        return Err(Error::Detail(format!(
            "{side}x{side} patches do not fit the camera's {}x{} frames",
            frame_size.0, frame_size.1
        )));
    }

    // 1. Patches of every frame, kept by frame until the split is known.
    let (per_frame, total) = patches_by_frame(&input, frame_size, side, &config, options)?;
    let frames = match &options.frames {
        Some(range) if range.end > total || range.is_empty() => {
            return Err(Error::Detail(format!(
                "--frames {}..{}: the input has {total} frames",
                range.start, range.end
            )));
        }
        Some(range) => range.clone(),
        None => 0..total,
    };
    let split = match options.held_out {
        Some(count) if count == 0 || count > frames.len() / 2 => {
            return Err(Error::Detail(format!(
                "--held-out {count}: hold out at least one and at most half of the {} frames",
                frames.len()
            )));
        }
        Some(count) => Split::with_held_out(frames.len(), count, options.split),
        None => Split::of(frames.len(), input.path(), options.split)
            .map_err(|e| Error::Detail(e.to_string()))?,
    };
    // Recorded in the run's config, so that a patch model trained on another split is not
    // continued (`resume`); the patches themselves come from memory, not from the dataset.
    config.data.validation_blocks = split.blocks().max(1);
    config.data.validation_guard = split.guard();
    let images = |positions: Vec<usize>| ImageSet {
        count: positions.len() * PATCHES_PER_FRAME,
        pixels: positions
            .iter()
            .filter_map(|&i| per_frame.get(i))
            .flatten()
            .copied()
            .collect(),
        shape: [1, side as usize, side as usize],
    };
    let train_set = images(split.layout.train_positions());
    let held_out_set = images(split.layout.held_out_positions());
    drop(per_frame);
    let frame_names = |position: usize| Some(format!("{}", frames.start + position));
    let trained_on = split::describe_by(frame_names, &split.layout.train);
    let held_out_on = split::describe_by(frame_names, &split.layout.held_out);

    // 2. The patch model.
    std::fs::create_dir_all(&options.work).map_err(Error::io(&options.work))?;
    let run_options = RunOptions {
        data_dir: options.work.clone(),
        out_dir: options.work.clone(),
        resume: options.resume && crate::fit::resumable(&options.work, &config)?,
        progress: options.progress,
        compute: options.compute,
        provenance: format!(
            "flowgate detail --input {} (frames {}..{}, patches of frames {trained_on})",
            options.input.display(),
            frames.start,
            frames.end,
        ),
        deadline: options.deadline,
        pretrain_deadline: None,
        devices: Vec::new(),
    };
    let (training, _) =
        training::train_on_images(&config, &run_options, &train_set, &held_out_set)?;
    let patch_file =
        std::fs::read(&training.exported_path).map_err(Error::io(&training.exported_path))?;
    let patch_payload = patch_payload(&patch_file)?;

    // 3. Standardise and calibrate on the held-out frames.
    let branch = |frame: Standardise, detail: Standardise| Detail {
        frame_width: frame_size.0,
        frame_height: frame_size.1,
        columns: options.grid.0,
        rows: options.grid.1,
        patch_model: Bytes::Owned(patch_payload.clone()),
        frame,
        detail,
    };
    let identity = Standardise {
        center: 0.0,
        spread: 1.0,
    };
    let probe = flowgate_shared::encode(&Model {
        threshold: None,
        detail: Some(branch(identity, identity)),
        ..gate.clone()
    })?;
    let probe_gate = Gate::with_limits(&probe, Limits::UNLIMITED)?;
    let is_held_out = |index: usize| {
        index
            .checked_sub(frames.start)
            .is_some_and(|position| index < frames.end && split.layout.is_held_out(position))
    };
    let (frame_scores, detail_scores) = held_out_scores(
        &input,
        frame_size,
        is_held_out,
        &probe_gate,
        options.progress,
    )?;
    // The gate stores its rate as f32: rounded back to the decimal it was given as.
    let rate = options.rate.unwrap_or_else(|| {
        gate.threshold.as_ref().map_or(0.01, |t| {
            (f64::from(t.target_false_reject_rate) * 1e6).round() / 1e6
        })
    });
    let frame_standardise = tail_standardise(&frame_scores, false, rate)?;
    let detail_standardise = tail_standardise(&detail_scores, true, rate)?;
    let detail = branch(frame_standardise, detail_standardise);
    let combined: Vec<f64> = frame_scores
        .iter()
        .zip(&detail_scores)
        .map(|(&frame, &patches)| detail.combined_score(frame, patches))
        .collect();
    let record = calibration::calibrate(&mut combined.clone(), rate).map_err(calibration_error)?;
    let threshold = f64::from(record.ood_score);
    let rejected = |scores: &[f64], cut: f64| scores.iter().filter(|&&s| s > cut).count();
    let thumbnail_cut = gate
        .threshold
        .as_ref()
        .map_or(f64::INFINITY, |t| f64::from(t.ood_score));
    let patches_only: Vec<f64> = detail_scores
        .iter()
        .map(|&b| detail_standardise.apply(b).abs())
        .collect();
    let rejected = (
        rejected(&frame_scores, thumbnail_cut),
        rejected(&patches_only, threshold),
        rejected(&combined, threshold),
    );
    let provenance = format!(
        "{}; flowgate detail: {}x{} grid of {side}x{side} patches at {}x{}, trained on frames {trained_on} of {}, calibrated on frames {held_out_on} at rate {rate}",
        gate.provenance,
        options.grid.0,
        options.grid.1,
        frame_size.0,
        frame_size.1,
        options.input.display(),
    );
    let threshold_value = record.ood_score;
    let with_detail = Model {
        provenance: &provenance,
        threshold: Some(record),
        detail: Some(detail),
        ..gate.clone()
    };
    let bytes = flowgate_shared::encode(&with_detail)?;
    let summary = flowgate_shared::decode(&bytes)?.summary;
    let report = DetailReport {
        frame_size,
        frames,
        split,
        train_patches: train_set.count,
        training,
        macs: (
            summary.detail.map_or(0, |d| d.macs_per_patch),
            summary.macs_per_frame,
        ),
        standardise: (frame_standardise, detail_standardise),
        threshold: (threshold_value, rate),
        rejected,
    };
    Ok((bytes, report))
}

/// The random training patches of every frame of `options.frames` (all by default), one
/// buffer per frame, and how many frames the input has.
fn patches_by_frame(
    input: &Input,
    frame_size: (u32, u32),
    side: u32,
    config: &TrainConfig,
    options: &DetailOptions,
) -> Result<(Vec<Vec<u8>>, usize)> {
    let seed = config.train.seed;
    let mut per_frame: Vec<Vec<u8>> = Vec::new();
    let total = native::for_each_frame(input, frame_size, options.progress, |index, frame| {
        if options
            .frames
            .as_ref()
            .is_none_or(|range| range.contains(&index))
        {
            let mut patches = Vec::new();
            patches::random_patches(
                frame,
                side,
                PATCHES_PER_FRAME,
                (seed, index as u64),
                &mut patches,
            )?;
            per_frame.push(patches);
        }
        Ok(())
    })?;
    Ok((per_frame, total))
}

/// The held-out frames' thumbnail OOD scores and patch bits/dim, as `probe` (the gate with
/// the new branch, unstandardised) scores them.
fn held_out_scores(
    input: &Input,
    frame_size: (u32, u32),
    is_held_out: impl Fn(usize) -> bool,
    probe: &Gate<'_>,
    progress: bool,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let mut scratch = vec![0f32; probe.scratch_len()];
    let score_kind = probe.model().score;
    let (mut frame_scores, mut detail_scores) = (Vec::new(), Vec::new());
    native::for_each_frame(input, frame_size, progress, |index, frame| {
        if is_held_out(index) {
            let verdict = probe.score(frame, &mut scratch)?;
            frame_scores.push(score_kind.ood_score(verdict.bits_per_dim));
            detail_scores.push(verdict.detail_bits_per_dim.unwrap_or(f64::NAN));
        }
        Ok(())
    })?;
    Ok((frame_scores, detail_scores))
}

/// The patch model's recipe: built in or `config`, with `steps`.
pub fn recipe(config: Option<&Path>, steps: Option<usize>) -> Result<TrainConfig> {
    let mut config = match config {
        Some(path) => TrainConfig::load(path)?,
        None => TrainConfig::from_toml(DETAIL_RECIPE, "built-in camera-detail")?,
    };
    if let Some(steps) = steps {
        config.train.steps = steps;
    }
    // The dataset is never read: the patches of the held-out frames are the held-out set.
    config.data.validation = PATCHES_PER_FRAME;
    config.validate(&config.name.clone())?;
    Ok(config)
}

/// The exported patch model as the branch stores it: its payload, exact size (patches are
/// never resized), plain bits/dim, no threshold.
pub fn patch_payload(file: &[u8]) -> Result<Vec<u8>> {
    let exported = flowgate_shared::decode(file)?.model;
    let mut patch = Model {
        score: ScoreKind::BitsPerDim,
        threshold: None,
        detail: None,
        ..exported
    };
    patch.input.resize = Resize::Exact;
    postcard::to_allocvec(&patch).map_err(|e| Error::Format(flowgate_shared::Error::Encode(e)))
}

/// How a part's held-out scores are put on the common scale: centred on their median and
/// divided by their deviation at the `1 - rate` quantile (of `s - median` for the one-sided
/// thumbnail score, of `|s - median|` for the two-sided patch score). Each part's own
/// calibrated threshold then lands at 1, so the combined threshold weighs the parts by their
/// own tails: a thumbnail whose held-out scores have one far frame does not make the patch
/// part insensitive, as a spread from the bulk (MAD) would. The spread is kept above a
/// floor so that identical scores do not divide by zero.
fn tail_standardise(scores: &[f64], two_sided: bool, rate: f64) -> Result<Standardise> {
    let mut sorted = scores.to_vec();
    calibration::sort_finite(&mut sorted).map_err(calibration_error)?;
    let center = calibration::quantile_sorted(&sorted, 0.5);
    let mut deviations: Vec<f64> = sorted
        .iter()
        .map(|s| {
            if two_sided {
                (s - center).abs()
            } else {
                s - center
            }
        })
        .collect();
    deviations.sort_by(f64::total_cmp);
    let tail = calibration::quantile_sorted(&deviations, 1.0 - rate);
    let floor = 1e-3 * center.abs().max(1e-3);
    Ok(Standardise {
        center: center as f32,
        spread: tail.max(floor) as f32,
    })
}

fn calibration_error(error: CalibrationError) -> Error {
    Error::Detail(format!("cannot calibrate on the held-out frames: {error}"))
}

/// `<out stem>.detail` beside the gate: the patch model's run folder by default.
pub fn default_work(out: &Path) -> PathBuf {
    let stem = out
        .file_stem()
        .map_or_else(|| "gate".into(), |s| s.to_string_lossy().into_owned());
    out.parent()
        .unwrap_or(Path::new(""))
        .join(format!("{stem}.detail"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_part_is_scaled_to_its_own_tail_and_never_divided_by_zero() {
        let scores: Vec<f64> = (0..=100).map(f64::from).collect();
        // Median 50; the 99% quantile of s - 50 (-50..=50) is 49; |s - 50| is 0 once and
        // 1..=50 twice each, its 99% quantile (index 99 of 101) 50.
        let one_sided = tail_standardise(&scores, false, 0.01).unwrap();
        assert_eq!(one_sided.center, 50.0);
        assert!((f64::from(one_sided.spread) - 49.0).abs() < 1e-9);
        let two_sided = tail_standardise(&scores, true, 0.01).unwrap();
        assert!((f64::from(two_sided.spread) - 50.0).abs() < 1e-9);
        // At its own 99% quantile a part's standardised score is 1.
        assert!((one_sided.apply(99.0) - 1.0).abs() < 1e-9);
        let flat = tail_standardise(&[5.0; 4], true, 0.01).unwrap();
        assert!(flat.spread > 0.0);
        assert!(tail_standardise(&[1.0, f64::NAN], false, 0.01).is_err());
    }

    #[test]
    fn the_built_in_recipe_is_a_small_square_gray_flow() {
        let config = TrainConfig::from_toml(DETAIL_RECIPE, "built-in").unwrap();
        assert_eq!(
            (
                config.model.channels,
                config.model.height,
                config.model.width
            ),
            (1, 8, 8)
        );
    }
}
