//! The commands behind the CLI's subcommands: arguments in, the library's algorithms, what
//! happened out (stderr), files written atomically.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

use super::{
    BaselineArgs, CalibrateArgs, CorruptArgs, DetailArgs, DistilArgs, EvalArgs, ExportArgs,
    FitArgs, FramesArgs, Int8Choice, OnnxArgs, QuantizeArgs, ScoreArgs, ScoreChoice, TrainArgs,
};
use crate::atomic_write;
use crate::calibration::{self, CalibratedScore};
use crate::config::TrainConfig;
use crate::data;
use crate::eval::compare::{self, EvalRequest, Ranking};
use crate::eval::scores::{bits_per_dim, is_score_csv, load_scored_input, set_name};
use crate::export::{ExportInfo, to_file_bytes};
use crate::run_folder::{RunFolder, files};
use crate::scoring;
use crate::training::{self, RunOptions};

/// The exported model inside a run folder.
pub const EXPORTED_MODEL: &str = files::EXPORTED_MODEL;

/// A config with `--steps` applied.
fn config_with_steps(path: &Path, steps: Option<usize>) -> Result<TrainConfig> {
    let mut config = TrainConfig::load(path)?;
    if let Some(steps) = steps {
        config.train.steps = steps;
        // A step count from the command line is checked like one from the file.
        config.validate(&format!("{} with --steps {steps}", path.display()))?;
    }
    Ok(config)
}

pub fn fit(args: FitArgs) -> Result<()> {
    let options = crate::fit::FitOptions {
        input: args.input,
        out: args.out,
        work: args.work,
        rate: args.rate,
        board: args.board,
        steps: args.steps.map(|steps| steps as usize),
        teacher_config: args.teacher_config,
        student_config: args.student_config,
        progress: true,
        detail: !args.no_detail,
        minutes: (args.minutes > 0.0).then_some(args.minutes),
        frames: args.frames,
        perturbations: crate::distil::PerturbationKinds::ALL.without_all(&args.without),
        split: args.split,
        paste_objects: args.paste_objects,
        exposure_jitter: args.exposure_jitter,
    };
    let report = crate::fit::fit(&options)
        .with_context(|| format!("fitting a gate to {}", options.input.display()))?;
    println!("{}", report.summary());
    Ok(())
}

pub fn detail(args: DetailArgs) -> Result<()> {
    let options = crate::detail::DetailOptions {
        work: args
            .work
            .unwrap_or_else(|| crate::detail::default_work(&args.out)),
        input: args.input,
        frames: args.frames,
        held_out: args.held_out,
        split: args.split,
        rate: args.rate,
        grid: args.grid,
        steps: args.steps.map(|steps| steps as usize),
        config: args.config,
        progress: true,
        compute: args.device,
        resume: false,
        deadline: None,
    };
    let gate_file = std::fs::read(&args.gate)
        .with_context(|| format!("cannot read {}", args.gate.display()))?;
    let (bytes, report) = crate::detail::add_detail(&gate_file, &options).with_context(|| {
        format!(
            "adding a detail branch to {} from {}",
            args.gate.display(),
            options.input.display()
        )
    })?;
    atomic_write::write_bytes(&args.out, &bytes)?;
    let (frame, patches) = report.standardise;
    let held = report.split.held_out();
    let frame_names = |position: usize| Some((report.frames.start + position).to_string());
    println!(
        "detail branch: {}x{} frames, {}x{} grid, patch model trained on {} patches of frames {} ({} steps{})",
        report.frame_size.0,
        report.frame_size.1,
        options.grid.0,
        options.grid.1,
        report.train_patches,
        crate::fit::split::describe_by(frame_names, &report.split.layout.train),
        report.training.steps_run,
        report
            .training
            .best
            .map_or(String::new(), |(step, bpd)| format!(
                ", kept step {step}: held-out {bpd:.3} bits/dim"
            )),
    );
    println!(
        "cost: {} MACs per patch, {} MACs per frame with the thumbnail",
        report.macs.0, report.macs.1
    );
    println!(
        "standardised on held-out frames {} ({}): frame score {:.4} +- {:.4}, patch bits/dim {:.4} +- {:.4}",
        crate::fit::split::describe_by(frame_names, &report.split.layout.held_out),
        report.split.held_out_how(),
        frame.center,
        frame.spread,
        patches.center,
        patches.spread
    );
    println!(
        "threshold {:.4} at rate {}: rejects {}/{held} held-out frames (thumbnail alone {}/{held}, patches alone {}/{held})",
        report.threshold.0,
        report.threshold.1,
        report.rejected.2,
        report.rejected.0,
        report.rejected.1
    );
    println!("wrote {}", args.out.display());
    Ok(())
}

pub fn baseline(args: BaselineArgs) -> Result<()> {
    use crate::baseline::{Baseline, read_folder, threshold};
    use crate::eval::{OodReport, ScoreSet};
    let frames = read_folder(&args.train)?;
    anyhow::ensure!(
        args.held_out > 0 && args.held_out <= frames.len() / 2,
        "--held-out {}: hold out at least one and at most half of the {} training frames",
        args.held_out,
        frames.len()
    );
    // The frames fit would hold out of as many: the gate and the baseline are calibrated alike.
    let split = crate::fit::Split::with_held_out(frames.len(), args.held_out, args.split);
    let (mut fit_frames, mut held_out) = (Vec::new(), Vec::new());
    for (position, frame) in frames.into_iter().enumerate() {
        if split.layout.is_held_out(position) {
            held_out.push(frame);
        } else if split.layout.is_train(position) {
            fit_frames.push(frame);
        }
    }
    let baseline = Baseline::fit(&fit_frames)?;
    let held_scores: Vec<f64> = held_out.iter().map(|f| baseline.score(f)).collect();
    let cut = threshold(&held_scores, args.rate)?;
    let name = |path: &std::path::Path| {
        path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    };
    let score_folder = |dir: &std::path::Path| -> Result<Vec<f64>> {
        Ok(read_folder(dir)?
            .iter()
            .map(|f| baseline.score(f))
            .collect())
    };
    let in_scores = score_folder(&args.in_dist)?;
    let mut ood = Vec::new();
    for dir in &args.ood {
        ood.push((name(dir), score_folder(dir)?));
    }
    let in_name = name(&args.in_dist);
    let sets: Vec<ScoreSet<'_>> = ood.iter().map(|(n, s)| ScoreSet::new(n, s)).collect();
    let report = OodReport::with_threshold(ScoreSet::new(&in_name, &in_scores), &sets, Some(cut))?;
    eprintln!(
        "OOD score: the largest |z| of the baseline's six statistics; threshold {cut:.3} at {:.1}% \
         false rejects on {} of the training frames (the \"mean bpd\" column holds the mean score)",
        100.0 * args.rate,
        split.held_out_how()
    );
    print!("{report}");
    if let Some(path) = &args.json {
        atomic_write::write_bytes(path, report.to_json().as_bytes())?;
    }
    Ok(())
}

pub fn train(args: TrainArgs) -> Result<()> {
    let config = config_with_steps(&args.config, args.steps)?;
    let options = RunOptions {
        data_dir: args.data_dir.unwrap_or_else(data::default_data_dir),
        out_dir: args.out.clone(),
        resume: args.resume,
        progress: true,
        compute: args.device,
        provenance: format!("flowgate train --config {}", args.config.display()),
        deadline: None,
        pretrain_deadline: None,
        devices: crate::device::data_parallel_devices(args.device, usize::from(args.devices))?,
    };
    let (report, _) = training::train_run(&config, &options)
        .with_context(|| format!("training {} into {}", config.name, args.out.display()))?;
    eprintln!(
        "trained {} steps: {:.3} bits/dim (mean of the last steps), {:.0} images/s",
        report.steps_run, report.final_bits_per_dim, report.images_per_second
    );
    if let Some((step, bpd)) = report.best {
        eprintln!("kept the weights of step {step}: held-out {bpd:.3} bits/dim");
    }
    eprintln!(
        "wrote {} and {}",
        report.model_path.display(),
        report.exported_path.display()
    );
    Ok(())
}

pub fn distil(args: DistilArgs) -> Result<()> {
    use crate::distil::{DISTIL_RECORD, DistilOptions, PerturbationKinds, Teacher};
    let config = config_with_steps(&args.student_config, args.steps)?;
    let teacher = Teacher::load(&args.teacher)
        .with_context(|| format!("teacher {}", args.teacher.display()))?;
    let distil_options = DistilOptions {
        weight: args.weight,
        warmup: args.warmup,
        fixed_targets: args.fixed_targets,
        perturbations: PerturbationKinds::ALL.without_all(&args.without),
        ..DistilOptions::default()
    };
    let options = RunOptions {
        data_dir: args.data_dir.unwrap_or_else(data::default_data_dir),
        out_dir: args.out.clone(),
        resume: args.resume,
        progress: true,
        compute: args.device,
        provenance: format!(
            "flowgate distil --teacher {} --student-config {} --weight {}",
            args.teacher.display(),
            args.student_config.display(),
            args.weight
        ),
        deadline: None,
        pretrain_deadline: None,
        devices: crate::device::data_parallel_devices(args.device, usize::from(args.devices))?,
    };
    let (report, _) = crate::distil::distil(&config, &teacher, &distil_options, &options)
        .with_context(|| format!("distilling {} into {}", config.name, args.out.display()))?;
    eprintln!(
        "teacher {}: -ln p on {} clean training images has mean {:.2} and std {:.2} nats",
        args.teacher.display(),
        report.teacher.images,
        report.teacher.mu,
        report.teacher.sigma
    );
    eprintln!(
        "distilled {} steps with LAMBDA {}: {:.3} bits/dim and distillation term {:.3} (means \
         of the last steps), {:.0} images/s",
        report.steps_run,
        args.weight,
        report.final_bits_per_dim,
        report.final_distil,
        report.images_per_second
    );
    if let Some((step, objective)) = report.best {
        let what = if args.weight > 0.0 {
            "bits/dim + LAMBDA x distillation term"
        } else {
            "bits/dim"
        };
        eprintln!("kept the weights of step {step}: held-out {objective:.3} {what}");
    }
    eprintln!(
        "wrote {}, {} and {}",
        report.model_path.display(),
        report.exported_path.display(),
        args.out.join(DISTIL_RECORD).display()
    );
    Ok(())
}

pub fn score(args: ScoreArgs) -> Result<()> {
    let device = crate::device::device(args.device)?;
    let (config, model) = RunFolder::open(&args.run).load_trained_on(&device)?;
    let input = load_scored_input(&args.input, config.model.input_shape(), args.limit)?;
    let log_likelihoods = scoring::log_likelihoods_on(&model, &input.set, 256, &device)?;
    let dims = config.model.density_dims() as f64;
    let write_rows = |out: &mut dyn Write| -> std::io::Result<()> {
        writeln!(
            out,
            "source,frame,log_likelihood,bits_per_dim,ood_score,decision,fault,detail_bits_per_dim"
        )?;
        for ((source, frame), ll) in input.origins.iter().zip(&log_likelihoods) {
            let bits_per_dim = -ll / (dims * std::f64::consts::LN_2);
            // The edge runtime's columns: no threshold here, so no decision; a score that
            // is not a number is marked as the gate marks it.
            let fault = if ll.is_finite() {
                ""
            } else {
                "non-finite-score"
            };
            writeln!(
                out,
                "{source},{frame},{ll:.6},{bits_per_dim:.6},{bits_per_dim:.6},,{fault},"
            )?;
        }
        Ok(())
    };
    match &args.out {
        Some(path) => atomic_write::write_with(path, write_rows)?,
        None => {
            let mut stdout = std::io::stdout().lock();
            write_rows(&mut stdout)?;
            stdout.flush()?;
        }
    }
    Ok(())
}

pub fn export(args: ExportArgs) -> Result<()> {
    let (config, model) = RunFolder::open(&args.run).load_trained()?;
    let provenance = format!("flowgate export --run {}", args.run.display());
    let bytes = to_file_bytes(
        &model,
        &ExportInfo {
            name: &config.name,
            provenance: &provenance,
            ..ExportInfo::default()
        },
    )?;
    atomic_write::write_bytes(&args.out, &bytes)?;
    let summary = flowgate_shared::decode(&bytes)?.summary;
    eprintln!(
        "wrote {} ({} bytes, {} parameters, {} MACs per frame)",
        args.out.display(),
        bytes.len(),
        summary.parameters,
        summary.macs_per_frame
    );
    Ok(())
}

pub fn onnx(args: OnnxArgs) -> Result<()> {
    use flowgate_onnx::{ExportOptions, Int8Weights};
    let bytes = std::fs::read(&args.model)
        .with_context(|| format!("cannot read {}", args.model.display()))?;
    let int8 = match args.int8 {
        Int8Choice::Dequantized => Int8Weights::Dequantized,
        Int8Choice::Qdq => Int8Weights::DequantizeLinear,
    };
    let onnx = flowgate_onnx::export(&bytes, &ExportOptions::default().with_int8_weights(int8))
        .with_context(|| args.model.display().to_string())?;
    atomic_write::write_bytes(&args.out, &onnx)?;
    eprintln!(
        "wrote {} ({} bytes, opset {})",
        args.out.display(),
        onnx.len(),
        flowgate_onnx::OPSET_VERSION
    );
    Ok(())
}

pub fn eval(args: EvalArgs) -> Result<()> {
    use crate::eval::plots;
    if let Some(rule) =
        compare::model_threshold(&args.model).with_context(|| args.model.display().to_string())?
    {
        let score = rule.score;
        let combined = if rule.detail {
            ", combined with the native-resolution detail branch (the ood_score column)"
        } else {
            ""
        };
        eprintln!("OOD score: {score:?}{combined}");
    }
    let ranking = match (&args.background, args.complexity) {
        (Some(background), _) => Ranking::Background(background.clone()),
        (None, true) => Ranking::Complexity,
        (None, false) => Ranking::ModelScore,
    };
    if let Some(note) = ranking.note() {
        eprintln!("OOD score for this report: {note}");
    }
    let evaluation = compare::evaluate(&EvalRequest {
        model: &args.model,
        in_dist: &args.in_dist,
        ood: &args.ood,
        limit: args.limit,
        ranking,
    })?;
    println!("{}", evaluation.report);
    if let Some(path) = &args.json {
        atomic_write::write_bytes(path, evaluation.report.to_json().as_bytes())?;
    }
    if let Some(dir) = &args.plots {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let in_set = evaluation.in_dist.score_set();
        let ood_sets = evaluation.ood_sets();
        // Positive scores orders of magnitude apart go on a log axis, where every set shows;
        // otherwise the axis focuses on the normal frames and counts the rest off-range.
        let log_x = compare::wants_log_axis(&evaluation);
        plots::bpd_histograms(
            &dir.join("bpd_histograms.png"),
            in_set,
            &ood_sets,
            &plots::HistogramOptions {
                range: if log_x {
                    None
                } else {
                    compare::focus_range(&evaluation)?
                },
                log_x,
                x_label: if log_x {
                    "OOD score, log scale (higher = more anomalous)".to_owned()
                } else {
                    "OOD score (higher = more anomalous)".to_owned()
                },
                title: "OOD scores".to_owned(),
                ..Default::default()
            },
        )?;
        plots::roc_curves(&dir.join("roc.png"), in_set, &ood_sets, &Default::default())?;
        if args.model.is_dir() {
            write_diagnostics(&args, &dir.join("diagnostics.png"))?;
        }
        eprintln!("wrote plots into {}", dir.display());
    }
    Ok(())
}

/// The diagnostic pictures of a run's flow on the first images of the in-distribution set
/// and of up to two OOD sets (image inputs only).
fn write_diagnostics(args: &EvalArgs, path: &Path) -> Result<()> {
    let (config, model) = RunFolder::open(&args.model).load_trained()?;
    if model.extractor.is_some() {
        eprintln!("no diagnostic pictures for a flow on embeddings: its latent is not an image");
        return Ok(());
    }
    let mut sets = Vec::new();
    for input in std::iter::once(&args.in_dist).chain(args.ood.iter().take(2)) {
        if is_score_csv(input) {
            continue;
        }
        let set = data::inputs::load_input(input, config.model.input_shape(), Some(3))?.set;
        sets.push((set_name(input), set));
    }
    Ok(crate::eval::diagnostics::write_diagnostics(
        path, &model, &sets, 3,
    )?)
}

pub fn calibrate(args: CalibrateArgs) -> Result<()> {
    anyhow::ensure!(
        args.rate > 0.0 && args.rate < 0.5,
        "--rate must be in (0, 0.5), got {}",
        args.rate
    );
    let run = RunFolder::open(&args.run);
    let config = run.read_config()?;
    let model = match &args.model {
        Some(path) => {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
        }
        None => {
            let (_, model) = run.load_trained()?;
            to_file_bytes(
                &model,
                &ExportInfo {
                    name: &config.name,
                    provenance: "flowgate train",
                    ..ExportInfo::default()
                },
            )?
        }
    };
    let model_name = args.model.as_ref().map_or_else(
        || args.run.display().to_string(),
        |p| p.display().to_string(),
    );
    let data_dir = args.data_dir.unwrap_or_else(data::default_data_dir);
    let (_, held_out) = training::training_data(&config, &data_dir)?;
    let (score, score_name) = match args.score {
        ScoreChoice::Bpd => (CalibratedScore::BitsPerDim, "bpd"),
        ScoreChoice::Typical => (CalibratedScore::Typical, "typical"),
    };
    let how = format!(
        "flowgate calibrate --run {} --score {score_name} --rate {}",
        args.run.display(),
        args.rate
    );
    let calibrated = calibration::calibrate(&model, &held_out, score, args.rate, &how)
        .with_context(|| format!("calibrating {model_name}"))?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.run.join(EXPORTED_MODEL));
    atomic_write::write_bytes(&out, &calibrated.bytes)?;
    eprintln!(
        "{:?}: threshold {:.4} rejects {:.2}% of {} held-out images; wrote {}",
        calibrated.score,
        calibrated.threshold,
        100.0 * calibrated.rejected,
        calibrated.frames,
        out.display()
    );
    Ok(())
}

pub fn quantize(args: QuantizeArgs) -> Result<()> {
    let bytes = std::fs::read(&args.model)
        .with_context(|| format!("cannot read {}", args.model.display()))?;
    let model = flowgate_shared::decode(&bytes)
        .with_context(|| args.model.display().to_string())?
        .model;
    let quantized = crate::quantize::quantize_model(&model)?;
    let int8_bytes = flowgate_shared::encode(&quantized)?;
    atomic_write::write_bytes(&args.out, &int8_bytes)?;
    println!(
        "{}: {} bytes (f32) -> {}: {} bytes (int8 weights)",
        args.model.display(),
        bytes.len(),
        args.out.display(),
        int8_bytes.len()
    );
    if let (Some(in_dist), Some(ood)) = (&args.in_dist, &args.ood) {
        use crate::eval::metrics;
        let mut rows = Vec::new();
        for path in [&args.model, &args.out] {
            let in_scores = bits_per_dim(path, in_dist, args.limit)?;
            let ood_scores = bits_per_dim(path, ood, args.limit)?;
            let auroc = metrics::auroc(&in_scores, &ood_scores)?;
            rows.push((in_scores, ood_scores, auroc));
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let worst = rows[0]
            .0
            .iter()
            .zip(&rows[1].0)
            .chain(rows[0].1.iter().zip(&rows[1].1))
            .map(|(a, b)| (a - b).abs())
            .fold(0f64, f64::max);
        println!("weights  in-dist bpd  OOD bpd   AUROC");
        for (name, (in_scores, ood_scores, auroc)) in ["f32", "int8"].iter().zip(&rows) {
            println!(
                "{name:<7} {:>11.4} {:>8.4} {:>7.4}",
                mean(in_scores),
                mean(ood_scores),
                auroc
            );
        }
        println!(
            "int8 - f32: AUROC {:+.4}, worst |delta bpd| per image {worst:.4}",
            rows[1].2 - rows[0].2
        );
    }
    Ok(())
}

pub fn frames(args: FramesArgs) -> Result<()> {
    let written = crate::frames::extract_frames(&crate::frames::FrameRequest {
        video: args.video.clone(),
        out: args.out.clone(),
        size: args.size,
        gray: args.gray,
        first: args.first,
        last: args.last,
        overwrite: args.overwrite,
    })?;
    eprintln!(
        "wrote {written} frames of {} into {}",
        args.video.display(),
        args.out.display()
    );
    Ok(())
}

pub fn corrupt(args: CorruptArgs) -> Result<()> {
    let written = crate::corrupt::corrupt_folder(&args.input, &args.out, args.kind, args.seed)?;
    eprintln!(
        "wrote {written} {} frames into {}",
        args.kind.name(),
        args.out.display()
    );
    Ok(())
}
