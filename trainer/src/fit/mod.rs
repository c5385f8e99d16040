//! `flowgate fit`: a camera gate from a video or a folder of frames in one command.
//!
//! The steps are `scripts/run.sh`'s, with every choice that depended on vtest.avi made from
//! the input: the frames ([`source`]) at a size that follows the camera's aspect ratio
//! ([`size`]), the held-out blocks spread over the footage ([`split`]), the two trainings from the built-in
//! recipes ([`recipe`]), int8 quantisation, calibration on the held-out frames, the board's
//! budget ([`budget`]), and the report ([`report`], [`plot`]). Everything but the gate and
//! its report lives in a work folder, so that running the same command again continues where
//! the last run stopped.

mod budget;
mod deadlines;
mod error;
mod plot;
mod recipe;
mod report;
mod size;
mod source;
pub mod split;

use std::path::{Path, PathBuf};
use std::time::Instant;

pub use budget::{Board, Cost};
pub use deadlines::Deadlines;
pub use error::{FitError, FitResult};
pub use recipe::Recipes;
pub use report::{LEAST_NORMAL, Outlier, Report, report_paths};
pub use size::{EXTRACTION_SCALE, GATE_WIDTH, GateSize};
pub use source::{FRAMES_DIR, Input, MANIFEST, Manifest};
pub use split::{HELD_OUT_SHARE, MAX_BLOCKS, MIN_BLOCK, MIN_HELD_OUT, Split, SplitKind};

use crate::atomic_write;
use crate::calibration::{self, CalibratedScore};
use crate::config::TrainConfig;
use crate::distil::{DistilOptions, PerturbationKinds, Teacher};
use crate::run_folder::{RunFolder, files};
use crate::training::{self, Compute, RunOptions};

/// The teacher's run folder inside the work folder.
pub const TEACHER_RUN: &str = "teacher";
/// The gate's (student's) run folder inside the work folder.
pub const GATE_RUN: &str = "gate";
/// LAMBDA of the distillation, as run.sh uses it.
pub const DISTIL_WEIGHT: f64 = 1.0;

/// What `flowgate fit` was asked.
#[derive(Debug, Clone)]
pub struct FitOptions {
    /// A video file or a folder of images.
    pub input: PathBuf,
    /// The gate to write (`.fgm`).
    pub out: PathBuf,
    /// The work folder [default: `<stem>.fit` beside `out`].
    pub work: Option<PathBuf>,
    /// Target false-reject rate on the held-out frames.
    pub rate: f64,
    /// A board config the gate must fit.
    pub board: Option<PathBuf>,
    /// Both trainings' step count (and the cap of the extractor's pretraining).
    pub steps: Option<usize>,
    /// Replaces the built-in teacher recipe.
    pub teacher_config: Option<PathBuf>,
    /// Replaces the built-in gate recipe.
    pub student_config: Option<PathBuf>,
    /// Show progress bars.
    pub progress: bool,
    /// Add the native-resolution detail branch ([`crate::detail`]).
    pub detail: bool,
    /// Training-time budget in minutes for the whole fit ([`Deadlines`]); `None`: every
    /// recipe runs all its steps.
    pub minutes: Option<f64>,
    /// Only these frames of the input (frame numbers of a video, places in a folder's
    /// file-name order); `None`: all.
    pub frames: Option<std::ops::Range<usize>>,
    /// The perturbation kinds the distillation draws (all but those a leave-one-kind-out
    /// evaluation holds out).
    pub perturbations: PerturbationKinds,
    /// Where the held-out frames lie ([`SplitKind`]).
    pub split: SplitKind,
    /// Both recipes' `data.paste_objects` (synthetic frames with moving objects pasted at
    /// random places); `None`: the recipes' own.
    pub paste_objects: Option<f64>,
    /// Both recipes' `data.exposure_jitter`; `None`: the recipes' own.
    pub exposure_jitter: Option<f64>,
}

impl FitOptions {
    /// `--input PATH`, with `--frames` when given: where the frames came from, for the
    /// models' provenance.
    pub fn described_input(&self) -> String {
        match &self.frames {
            Some(range) => format!(
                "--input {} --frames {}..{}",
                self.input.display(),
                range.start,
                range.end
            ),
            None => format!("--input {}", self.input.display()),
        }
    }

    /// The work folder: `--work`, or `<stem>.fit` beside the gate.
    pub fn work_dir(&self) -> PathBuf {
        if let Some(work) = &self.work {
            return work.clone();
        }
        let stem = self
            .out
            .file_stem()
            .map_or_else(|| "gate".into(), |s| s.to_string_lossy().into_owned());
        self.out
            .parent()
            .unwrap_or(Path::new(""))
            .join(format!("{stem}.fit"))
    }
}

/// One step of fit, on stderr.
fn step(text: &str) {
    eprintln!("==> {text}");
}

/// Fits a gate: see the module's documentation. Writes the report, then the gate (so a gate
/// on disk always has its report), each atomically; returns what the report shows.
pub fn fit(options: &FitOptions) -> FitResult<Report> {
    let started = Instant::now();
    if let Some(minutes) = options.minutes
        && !(minutes.is_finite() && minutes > 0.0)
    {
        return Err(FitError::Trainer(crate::Error::Evaluation(format!(
            "--minutes must be a positive number of minutes, got {minutes}"
        ))));
    }
    if !(options.rate > 0.0 && options.rate < 0.5) {
        return Err(FitError::Trainer(crate::Error::Evaluation(format!(
            "--rate must be in (0, 0.5), got {}",
            options.rate
        ))));
    }
    // Everything that can be refused without writing anything is checked first.
    let input = Input::open(&options.input)?;
    if options.out.is_dir() {
        return Err(FitError::OutIsFolder(options.out.clone()));
    }
    let board = options.board.as_deref().map(Board::load).transpose()?;
    let recipes = Recipes::load(
        options.teacher_config.as_deref(),
        options.student_config.as_deref(),
    )?
    .with_pasted_objects(options.paste_objects)
    .with_exposure_jitter(options.exposure_jitter);
    let camera = input.frame_size()?;
    let size = size::choose(camera, &recipes)?;
    step(&format!("gate input {size}"));
    if let Some(board) = &board {
        let planned = recipes.for_camera(
            (size.width, size.height),
            Path::new("."),
            // The split does not change the model's cost; any will do before the frames are read.
            &Split::with_held_out(Split::MIN_FRAMES, MIN_HELD_OUT, options.split),
            options.steps,
        )?;
        let detail_recipe = crate::detail::recipe(None, options.steps)?;
        let cost = budget::planned_cost(
            &planned.student,
            options.detail.then_some(budget::PlannedDetail {
                recipe: &detail_recipe,
                grid: crate::detail::DEFAULT_GRID,
                frame: camera,
            }),
        )?;
        board.check(&cost, "the recipe's student, checked before training")?;
        step(&format!("before training: {}", board.describe(&cost)));
    }

    let work = options.work_dir();
    let work_is_new = !work.exists();
    std::fs::create_dir_all(&work).map_err(FitError::io(&work))?;
    let prepared = prepare_frames(&input, options.frames.as_ref(), &work, &size, options.split);
    let (frames, split) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => {
            // A refused input leaves nothing behind that this run created.
            if work_is_new {
                let _ = std::fs::remove_dir_all(&work);
            }
            return Err(error);
        }
    };
    let frames_dir = std::path::absolute(&frames.dir).map_err(FitError::io(&frames.dir))?;
    let configs = recipes.for_camera(
        (size.width, size.height),
        &frames_dir,
        &split,
        options.steps,
    )?;
    let origins = &frames.manifest.origins;
    step(&format!(
        "{} frames{}: training on {}; held out for early stopping and calibration: {} ({})",
        split.frames(),
        if frames.reused {
            " (reused from the work folder)"
        } else {
            ""
        },
        split::describe(origins, &split.layout.train),
        split::describe(origins, &split.layout.held_out),
        split.held_out_how()
    ));

    let deadlines = options.minutes.map(|minutes| {
        Deadlines::plan(
            started,
            std::time::Duration::from_secs_f64(minutes * 60.0),
            Instant::now(),
            options.detail,
        )
    });
    if let Some(minutes) = options.minutes {
        step(&format!(
            "time budget {minutes} min: trainings stop at their share of the {:.1} min left",
            deadlines.map_or(0.0, |d| d
                .detail
                .saturating_duration_since(Instant::now())
                .as_secs_f64()
                / 60.0)
        ));
    }
    let mut trainings = Vec::new();
    let teacher_dir = work.join(TEACHER_RUN);
    let teacher_resume = frames.reused && resumable(&teacher_dir, &configs.teacher)?;
    step(&format!(
        "teacher {} ({} steps{})",
        configs.teacher.name,
        configs.teacher.train.steps,
        if teacher_resume { ", resuming" } else { "" }
    ));
    let (teacher_report, _) = training::train_run(
        &configs.teacher,
        &RunOptions {
            data_dir: work.clone(),
            out_dir: teacher_dir.clone(),
            resume: teacher_resume,
            progress: options.progress,
            compute: Compute::Cpu,
            provenance: format!("flowgate fit {}", options.described_input()),
            deadline: deadlines.map(|d| d.teacher),
            pretrain_deadline: deadlines.map(|d| d.pretrain),
            devices: Vec::new(),
        },
    )?;
    trainings.push(describe_training(
        &configs.teacher.name,
        teacher_report.steps_run,
        teacher_report.best,
        teacher_report.stopped_at,
    ));
    let teacher = Teacher::load(&teacher_dir)?;

    let gate_dir = work.join(GATE_RUN);
    // A student distilled from an earlier teacher must not continue against a new one.
    // Nor one that drew other perturbation kinds.
    let student_resume = frames.reused
        && teacher_report.steps_run == 0
        && resumable(&gate_dir, &configs.student)?
        && crate::distil::recorded_perturbations(&gate_dir) == Some(options.perturbations);
    step(&format!(
        "gate {} distilled from the teacher, LAMBDA {DISTIL_WEIGHT} ({} steps{})",
        configs.student.name,
        configs.student.train.steps,
        if student_resume { ", resuming" } else { "" }
    ));
    let (student_report, _) = crate::distil::distil(
        &configs.student,
        &teacher,
        &DistilOptions {
            weight: DISTIL_WEIGHT,
            perturbations: options.perturbations,
            ..DistilOptions::default()
        },
        &RunOptions {
            data_dir: work.clone(),
            out_dir: gate_dir.clone(),
            resume: student_resume,
            progress: options.progress,
            compute: Compute::Cpu,
            provenance: format!(
                "flowgate fit {} (distilled from {}, LAMBDA {DISTIL_WEIGHT}{})",
                options.described_input(),
                configs.teacher.name,
                if options.perturbations == PerturbationKinds::ALL {
                    String::new()
                } else {
                    format!(", perturbations {:?}", options.perturbations.list())
                }
            ),
            deadline: deadlines.map(|d| d.gate),
            pretrain_deadline: None,
            devices: Vec::new(),
        },
    )?;
    trainings.push(describe_training(
        &configs.student.name,
        student_report.steps_run,
        student_report.best,
        student_report.stopped_at,
    ));

    step(&format!(
        "int8, calibrated at {:.1}% false rejects (bits/dim) on the held-out frames",
        100.0 * options.rate
    ));
    let int8 = quantized(&gate_dir.join(files::EXPORTED_MODEL))?;
    let (train_set, held_out) = training::training_data(&configs.student, &work)?;
    if (train_set.count, held_out.count) != (split.train(), split.held_out()) {
        return Err(FitError::WorkFolder {
            path: frames.dir.clone(),
            reason: format!(
                "read {} training and {} held-out frames, the manifest says {} and {}; delete \
                 the work folder and run again",
                train_set.count,
                held_out.count,
                split.train(),
                split.held_out()
            ),
        });
    }
    let how = format!(
        "flowgate calibrate --score bpd --rate {} (flowgate fit, held-out {})",
        options.rate,
        split::describe(origins, &split.layout.held_out)
    );
    let calibrated = calibration::calibrate(
        &int8,
        &held_out,
        CalibratedScore::BitsPerDim,
        options.rate,
        &how,
    )?;
    let (gate_bytes, detail) = if options.detail {
        let deadline = deadlines.map(|d| d.detail);
        let (bytes, line) = with_detail(
            options,
            &work,
            &calibrated.bytes,
            &split,
            (frames.reused, deadline),
        )?;
        (bytes, Some(line))
    } else {
        (calibrated.bytes.clone(), None)
    };
    let cost = budget::cost(&gate_bytes)?;
    if let Some(board) = &board {
        board.check(&cost, "the calibrated int8 gate")?;
    }

    let gate =
        flowgate_edge::Gate::with_limits(&calibrated.bytes, flowgate_edge::Limits::UNLIMITED)
            .map_err(crate::Error::from)?;
    let train_scores = crate::scoring::gate_scores(&gate, &train_set)?.bits_per_dim;
    let held_out_scores = crate::scoring::gate_scores(&gate, &held_out)?.bits_per_dim;
    let train_positions = split.layout.train_positions();
    let gather = |all: &[String]| -> Vec<String> {
        train_positions
            .iter()
            .map(|&i| all.get(i).cloned().unwrap_or_default())
            .collect()
    };
    let least_normal = report::least_normal(
        &train_scores,
        &gather(origins),
        &gather(&frames.manifest.frames),
        LEAST_NORMAL,
    );
    let report = Report {
        input: options.input.clone(),
        gate: options.out.clone(),
        work: work.clone(),
        size,
        split,
        origins: origins.clone(),
        train_scores,
        held_out_scores,
        threshold: calibrated.threshold,
        rate: options.rate,
        held_out_rejected: calibrated.rejected,
        least_normal,
        cost,
        board: report::board_line(board.as_ref(), &cost),
        trainings,
        detail,
        frames_reused: frames.reused,
        seconds: started.elapsed().as_secs_f64(),
    };
    let (html_path, png_path) = report_paths(&options.out);
    if let Some(parent) = options.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(FitError::io(parent))?;
    }
    let png = plot::score_histogram(
        &png_path,
        &report.held_out_scores,
        &report.train_scores,
        report.threshold,
    )
    .map_err(crate::Error::from)?;
    let png_name = png_path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let write = |path: &Path, bytes: &[u8]| {
        atomic_write::write_bytes(path, bytes).map_err(|e| FitError::Trainer(e.into()))
    };
    write(&png_path, &png)?;
    write(&html_path, report.html(&png_name).as_bytes())?;
    write(&options.out, &gate_bytes)?;
    Ok(report)
}

/// The work folder's run of the detail branch's patch model.
pub const DETAIL_RUN: &str = "detail";

/// `calibrated` (the thumbnail gate) with the native-resolution detail branch, trained on the
/// same footage and calibrated on the same held-out frames; and the report's line on it.
fn with_detail(
    options: &FitOptions,
    work: &Path,
    calibrated: &[u8],
    split: &Split,
    (frames_reused, deadline): (bool, Option<Instant>),
) -> FitResult<(Vec<u8>, String)> {
    step("detail branch: a patch model on the frames at the camera's own size");
    let detail_options = crate::detail::DetailOptions {
        input: options.input.clone(),
        work: work.join(DETAIL_RUN),
        frames: options.frames.clone(),
        held_out: Some(split.held_out()),
        split: split.kind,
        rate: Some(options.rate),
        grid: crate::detail::DEFAULT_GRID,
        steps: options.steps,
        config: None,
        progress: options.progress,
        compute: Compute::Cpu,
        resume: frames_reused,
        deadline,
    };
    let (bytes, report) = crate::detail::add_detail(calibrated, &detail_options)?;
    Ok((bytes, report.line(&detail_options)))
}

/// The frames and their split, refusing too few.
fn prepare_frames(
    input: &Input,
    range: Option<&std::ops::Range<usize>>,
    work: &Path,
    size: &GateSize,
    kind: SplitKind,
) -> FitResult<(source::Frames, Split)> {
    let frames = source::prepare(input, range, work, size.extraction())?;
    let split = Split::of(frames.manifest.frames.len(), input.path(), kind)?;
    Ok((frames, split))
}

/// Whether the run folder `dir` holds an earlier run of `config` that a resume can continue:
/// the same config but for the step count, and a checkpoint no later than it.
pub(crate) fn resumable(dir: &Path, config: &TrainConfig) -> crate::Result<bool> {
    let run = RunFolder::open(dir);
    let Ok(earlier) = run.read_config() else {
        return Ok(false);
    };
    let mut same_steps = earlier.clone();
    same_steps.train.steps = config.train.steps;
    if let (
        crate::flows::Architecture::Embedding { extractor: a, .. },
        crate::flows::Architecture::Embedding { extractor: b, .. },
    ) = (
        &mut same_steps.model.architecture,
        &config.model.architecture,
    ) {
        // The extractor was pretrained once, before the first step; its step count no longer
        // matters to a run that continues.
        a.steps = b.steps;
    }
    if same_steps != *config {
        return Ok(false);
    }
    Ok(run
        .checkpoint_step()?
        .is_some_and(|step| step <= config.train.steps))
}

fn describe_training(
    name: &str,
    steps_run: usize,
    best: Option<(usize, f64)>,
    stopped_at: Option<usize>,
) -> String {
    let mut text = format!("{name}: {steps_run} steps run now");
    if let Some(step) = stopped_at {
        text.push_str(&format!(
            " (the --minutes budget stopped it after step {step}; run fit again to continue)"
        ));
    }
    if let Some((step, objective)) = best {
        text.push_str(&format!(
            ", kept the weights of step {step} (held-out {objective:.3})"
        ));
    }
    text
}

/// The run's exported f32 model, quantised to int8.
fn quantized(exported: &Path) -> FitResult<Vec<u8>> {
    let bytes = std::fs::read(exported).map_err(FitError::io(exported))?;
    let model = flowgate_shared::decode(&bytes)
        .map_err(crate::Error::from)?
        .model;
    let int8 = crate::quantize::quantize_model(&model).map_err(crate::Error::from)?;
    Ok(flowgate_shared::encode(&int8).map_err(crate::Error::from)?)
}
