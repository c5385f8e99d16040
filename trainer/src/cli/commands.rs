//! The commands behind the CLI's subcommands.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{
    CalibrateArgs, CorruptArgs, DistilArgs, EvalArgs, ExportArgs, FramesArgs, QuantizeArgs,
    ScoreArgs, ScoreChoice, TrainArgs,
};
use crate::config::TrainConfig;
use crate::data;
use crate::export::{ExportInfo, to_file_bytes};
use crate::flows::FlowModel;
use crate::training::{self, files};

use super::scores::{
    SetScores, bits_per_dim, gate_scores, is_score_csv, load_scored_input, set_name, set_scores,
};

/// The exported model inside a run folder.
pub const EXPORTED_MODEL: &str = "model.fgm";

pub fn train(args: TrainArgs) -> Result<()> {
    let mut config = TrainConfig::load(&args.config)?;
    if let Some(steps) = args.steps {
        config.train.steps = steps;
    }
    let data_dir = args.data_dir.unwrap_or_else(data::default_data_dir);
    let (report, model) = training::train(
        &config,
        &data_dir,
        &args.out,
        args.resume,
        true,
        args.device,
    )?;
    eprintln!(
        "trained {} steps: {:.3} bits/dim (mean of the last steps), {:.0} images/s",
        report.steps_run, report.final_bits_per_dim, report.images_per_second
    );
    if let Some((step, bpd)) = report.best {
        eprintln!("kept the weights of step {step}: held-out {bpd:.3} bits/dim");
    }
    let provenance = format!("flowgate train --config {}", args.config.display());
    let exported = export_run(&model, &config.name, &provenance, &args.out)?;
    eprintln!(
        "wrote {} and {}",
        report.model_path.display(),
        exported.display()
    );
    Ok(())
}

/// Writes the trained model as the run folder's edge model file; returns its path.
fn export_run(model: &FlowModel, name: &str, provenance: &str, out: &Path) -> Result<PathBuf> {
    let bytes = to_file_bytes(
        &model.for_inference(),
        &ExportInfo {
            name,
            provenance,
            ..ExportInfo::default()
        },
    )?;
    let exported = out.join(EXPORTED_MODEL);
    std::fs::write(&exported, bytes)
        .with_context(|| format!("cannot write {}", exported.display()))?;
    Ok(exported)
}

pub fn distil(args: DistilArgs) -> Result<()> {
    use crate::distil::{DISTIL_RECORD, DistilOptions, Teacher};
    let mut config = TrainConfig::load(&args.student_config)?;
    if let Some(steps) = args.steps {
        config.train.steps = steps;
    }
    let teacher = Teacher::load(&args.teacher)?;
    let data_dir = args.data_dir.unwrap_or_else(data::default_data_dir);
    let options = DistilOptions {
        weight: args.weight,
        warmup: args.warmup,
        fixed_targets: args.fixed_targets,
        ..DistilOptions::default()
    };
    let (report, model) = crate::distil::distil(
        &config,
        &teacher,
        &options,
        &data_dir,
        &args.out,
        true,
        args.device,
    )?;
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
    let provenance = format!(
        "flowgate distil --teacher {} --student-config {} --weight {}",
        args.teacher.display(),
        args.student_config.display(),
        args.weight
    );
    let exported = export_run(&model, &config.name, &provenance, &args.out)?;
    eprintln!(
        "wrote {}, {} and {}",
        report.model_path.display(),
        exported.display(),
        args.out.join(DISTIL_RECORD).display()
    );
    Ok(())
}

pub(super) fn load_run(run: &Path) -> Result<(TrainConfig, crate::flows::FlowModel)> {
    let config = TrainConfig::load(&run.join(files::CONFIG)).with_context(|| {
        format!(
            "{} is not a run folder written by `flowgate train`",
            run.display()
        )
    })?;
    let model = training::load_for_eval(&config, &run.join(files::MODEL))?;
    Ok((config, model))
}

pub fn score(args: ScoreArgs) -> Result<()> {
    let (config, model) = load_run(&args.run)?;
    let shape = [
        config.model.channels,
        config.model.height,
        config.model.width,
    ];
    let input = load_scored_input(&args.input, shape, args.limit)?;
    let log_likelihoods = training::log_likelihoods(&model, &input.set, 256)?;
    let dims = config.model.density_dims() as f64;
    let mut out: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    writeln!(
        out,
        "source,frame,log_likelihood,bits_per_dim,ood_score,decision"
    )?;
    for ((source, frame), ll) in input.origins.iter().zip(&log_likelihoods) {
        let bits_per_dim = -ll / (dims * std::f64::consts::LN_2);
        writeln!(
            out,
            "{source},{frame},{ll:.6},{bits_per_dim:.6},{bits_per_dim:.6},"
        )?;
    }
    out.flush()?;
    Ok(())
}

pub fn export(args: ExportArgs) -> Result<()> {
    let (config, model) = load_run(&args.run)?;
    let provenance = format!("flowgate export --run {}", args.run.display());
    let bytes = to_file_bytes(
        &model,
        &ExportInfo {
            name: &config.name,
            provenance: &provenance,
            ..ExportInfo::default()
        },
    )?;
    std::fs::write(&args.out, &bytes)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
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

pub fn eval(args: EvalArgs) -> Result<()> {
    use crate::eval::{OodReport, ScoreSet, plots};
    let mut threshold = if args.model.is_dir() {
        None
    } else {
        let bytes = std::fs::read(&args.model)
            .with_context(|| format!("cannot read {}", args.model.display()))?;
        let model = flowgate_shared::decode(&bytes)
            .with_context(|| args.model.display().to_string())?
            .model;
        eprintln!("OOD score: {:?}", model.score);
        model.threshold.map(|t| f64::from(t.ood_score))
    };
    let mut in_scores = set_scores(&args.model, &args.in_dist, args.limit, args.complexity)?;
    let in_name = set_name(&args.in_dist);
    let mut ood = Vec::new();
    for path in &args.ood {
        let scores = set_scores(&args.model, path, args.limit, args.complexity)?;
        ood.push((set_name(path), scores));
    }
    if args.complexity {
        for scores in std::iter::once(&mut in_scores).chain(ood.iter_mut().map(|(_, s)| s)) {
            let complexity = scores
                .complexity
                .as_ref()
                .context("--complexity needs image inputs, not score CSVs")?;
            scores.ood_scores = (scores.bits_per_dim.iter().zip(complexity))
                .map(|(bpd, complexity)| bpd - complexity)
                .collect();
        }
        threshold = None;
        eprintln!("OOD score for this report: bits/dim - deflate bits/dim (not the model's)");
    }
    if let Some(background) = &args.background {
        let inputs = std::iter::once(&args.in_dist).chain(&args.ood);
        let sets = std::iter::once(&mut in_scores).chain(ood.iter_mut().map(|(_, s)| s));
        for (path, scores) in inputs.zip(sets) {
            anyhow::ensure!(
                !is_score_csv(path),
                "--background needs image inputs, not score CSVs"
            );
            let background_bpd = bits_per_dim(background, path, args.limit)?;
            anyhow::ensure!(
                background_bpd.len() == scores.bits_per_dim.len(),
                "{}: the background scored another number of images",
                path.display()
            );
            scores.ood_scores = (scores.bits_per_dim.iter().zip(&background_bpd))
                .map(|(bpd, background)| bpd - background)
                .collect();
        }
        threshold = None;
        eprintln!("OOD score for this report: bits/dim - background bits/dim (not the model's)");
    }
    let ood_sets: Vec<ScoreSet<'_>> = ood
        .iter()
        .map(|(n, s)| ScoreSet::new(n, &s.ood_scores).with_bits_per_dim(&s.bits_per_dim))
        .collect();
    let in_set =
        ScoreSet::new(&in_name, &in_scores.ood_scores).with_bits_per_dim(&in_scores.bits_per_dim);
    let report = OodReport::with_threshold(in_set, &ood_sets, threshold)?;
    println!("{report}");
    if let Some(path) = &args.json {
        std::fs::write(path, report.to_json())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(dir) = &args.plots {
        std::fs::create_dir_all(dir)?;
        plots::bpd_histograms(
            &dir.join("bpd_histograms.png"),
            in_set,
            &ood_sets,
            &plots::HistogramOptions {
                range: focus_range(&in_scores.ood_scores, &ood)?,
                x_label: "OOD score (higher = more anomalous)".to_owned(),
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

/// A histogram range around the in-distribution scores when some OOD scores lie far beyond
/// them (a covered lens scores 40 times a normal frame): from the lowest score to the
/// in-distribution 99th percentile plus five times its distance from the median. Sets beyond
/// it are still counted in the legend. `None` (everything) when all scores fit.
fn focus_range(in_scores: &[f64], ood: &[(String, SetScores)]) -> Result<Option<(f64, f64)>> {
    use crate::eval::metrics;
    let [median, p99] = metrics::quantiles(in_scores, &[0.5, 0.99])?[..] else {
        return Ok(None);
    };
    let all = in_scores
        .iter()
        .chain(ood.iter().flat_map(|(_, s)| &s.ood_scores))
        .copied()
        .filter(|s| s.is_finite());
    let (low, high) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), s| {
        (lo.min(s), hi.max(s))
    });
    let focus = p99 + 5.0 * (p99 - median).max(1e-3);
    Ok((high > focus && low < focus).then_some((low, focus)))
}

/// The diagnostic pictures of a run's flow on the first images of the in-distribution set
/// and of up to two OOD sets (image inputs only).
fn write_diagnostics(args: &EvalArgs, path: &Path) -> Result<()> {
    let (config, model) = load_run(&args.model)?;
    if model.extractor.is_some() {
        eprintln!("no diagnostic pictures for a flow on embeddings: its latent is not an image");
        return Ok(());
    }
    let shape = [
        config.model.channels,
        config.model.height,
        config.model.width,
    ];
    let mut sets = Vec::new();
    for input in std::iter::once(&args.in_dist).chain(args.ood.iter().take(2)) {
        if is_score_csv(input) {
            continue;
        }
        let set = data::inputs::load_input(input, shape, Some(3))?.set;
        sets.push((set_name(input), set));
    }
    crate::eval::diagnostics::write_diagnostics(path, &model, &sets, 3)
}

pub fn calibrate(args: CalibrateArgs) -> Result<()> {
    use crate::eval::metrics;
    anyhow::ensure!(
        args.rate > 0.0 && args.rate < 0.5,
        "--rate must be in (0, 0.5), got {}",
        args.rate
    );
    let config = TrainConfig::load(&args.run.join(files::CONFIG)).with_context(|| {
        format!(
            "{} is not a run folder written by `flowgate train`",
            args.run.display()
        )
    })?;
    let bytes = match &args.model {
        Some(path) => {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
        }
        None => {
            let (_, model) = load_run(&args.run)?;
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
    let uncalibrated = flowgate_shared::decode(&bytes)
        .with_context(|| model_name.clone())?
        .model;
    let data_dir = args.data_dir.unwrap_or_else(data::default_data_dir);
    let (_, held_out) = training::training_data(&config, &data_dir)?;
    let plain = flowgate_shared::Model {
        score: flowgate_shared::ScoreKind::BitsPerDim,
        threshold: None,
        ..uncalibrated.clone()
    };
    let plain_bytes = flowgate_shared::encode(&plain)?;
    let gate = flowgate_edge::Gate::new(&plain_bytes)?;
    let bits_per_dim = gate_scores(&gate, &held_out)?.bits_per_dim;
    let score = match args.score {
        ScoreChoice::Bpd => flowgate_shared::ScoreKind::BitsPerDim,
        ScoreChoice::Typical => flowgate_shared::ScoreKind::TypicalBitsPerDim {
            center: metrics::quantiles(&bits_per_dim, &[0.5])?[0] as f32,
        },
    };
    let scores: Vec<f64> = bits_per_dim.iter().map(|&b| score.ood_score(b)).collect();
    let threshold = metrics::threshold_at_false_reject_rate(&scores, args.rate)?;
    let levels = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0 - args.rate];
    let mut levels: Vec<f64> = levels.to_vec();
    levels.sort_by(f64::total_cmp);
    levels.dedup();
    let values = metrics::quantiles(&scores, &levels)?;
    let mut quantiles = heapless::Vec::new();
    for (level, value) in levels.iter().zip(&values) {
        let _ = quantiles.push(flowgate_shared::Quantile {
            level: *level as f32,
            ood_score: *value as f32,
        });
    }
    // A new threshold replaces the old one, and so does its line in the provenance.
    let history = uncalibrated
        .provenance
        .split_once("; flowgate calibrate ")
        .map_or(uncalibrated.provenance, |(before, _)| before);
    let provenance = format!(
        "{history}; flowgate calibrate --run {} --score {} --rate {}",
        args.run.display(),
        match args.score {
            ScoreChoice::Bpd => "bpd",
            ScoreChoice::Typical => "typical",
        },
        args.rate
    );
    let calibrated = flowgate_shared::Model {
        provenance: &provenance,
        score,
        threshold: Some(flowgate_shared::Threshold {
            ood_score: threshold as f32,
            target_false_reject_rate: args.rate as f32,
            calibration_frames: scores.len() as u32,
            quantiles,
        }),
        ..uncalibrated
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.run.join(EXPORTED_MODEL));
    std::fs::write(&out, flowgate_shared::encode(&calibrated)?)
        .with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!(
        "{score:?}: threshold {threshold:.4} rejects {:.2}% of {} held-out images; wrote {}",
        100.0 * scores.iter().filter(|&&s| s > threshold).count() as f64 / scores.len() as f64,
        scores.len(),
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
    std::fs::write(&args.out, &int8_bytes)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
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
