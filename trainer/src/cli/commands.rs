//! The commands behind the CLI's subcommands.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

use super::{CalibrateArgs, EvalArgs, ExportArgs, QuantizeArgs, ScoreArgs, TrainArgs};
use crate::config::TrainConfig;
use crate::data;
use crate::export::{ExportInfo, to_file_bytes};
use crate::training::{self, ImageSet, files};

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
    let provenance = format!("flowgate train --config {}", args.config.display());
    let bytes = to_file_bytes(
        &model.for_inference(),
        &ExportInfo {
            name: &config.name,
            provenance: &provenance,
            ..ExportInfo::default()
        },
    )?;
    let exported = args.out.join(EXPORTED_MODEL);
    std::fs::write(&exported, bytes)?;
    eprintln!(
        "wrote {} and {}",
        report.model_path.display(),
        exported.display()
    );
    Ok(())
}

fn load_run(run: &Path) -> Result<(TrainConfig, crate::flows::FlowModel)> {
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
    let images = data::read_images(&args.input)?;
    let count = args
        .limit
        .map_or(images.count, |limit| limit.min(images.count));
    let set = ImageSet {
        count,
        shape: [1, images.rows, images.cols],
        pixels: images.pixels[..count * images.rows * images.cols].to_vec(),
    };
    let model_shape = [
        config.model.channels,
        config.model.height,
        config.model.width,
    ];
    anyhow::ensure!(
        set.shape == model_shape,
        "{} holds {:?} images, the model takes {:?}",
        args.input.display(),
        set.shape,
        model_shape
    );
    let log_likelihoods = training::log_likelihoods(&model, &set, 256)?;
    let dims = set.shape.iter().product::<usize>() as f64;
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
    let source = args.input.display().to_string();
    for (frame, ll) in log_likelihoods.iter().enumerate() {
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

/// Bits/dim of every image of an idx file under a run (burn) or a model file (runtime).
fn bits_per_dim(model: &Path, input: &Path, limit: Option<usize>) -> Result<Vec<f64>> {
    let images = data::read_images(input)?;
    let count = limit.map_or(images.count, |limit| limit.min(images.count));
    let pixels_per_image = images.rows * images.cols;
    let dims = pixels_per_image as f64 * std::f64::consts::LN_2;
    if model.is_dir() {
        let (_, flow) = load_run(model)?;
        let set = ImageSet {
            count,
            shape: [1, images.rows, images.cols],
            pixels: images.pixels[..count * pixels_per_image].to_vec(),
        };
        let lls = training::log_likelihoods(&flow, &set, 256)?;
        return Ok(lls.iter().map(|ll| -ll / dims).collect());
    }
    let bytes = std::fs::read(model).with_context(|| format!("cannot read {}", model.display()))?;
    let gate = flowgate_edge::Gate::new(&bytes).with_context(|| model.display().to_string())?;
    let mut scratch = vec![0f32; gate.scratch_len()];
    let mut scores = Vec::with_capacity(count);
    for index in 0..count {
        let frame = flowgate_edge::Frame::packed(
            images.image(index),
            images.cols as u32,
            images.rows as u32,
            flowgate_edge::PixelFormat::Gray8,
        )?;
        scores.push(gate.score(&frame, &mut scratch)?.bits_per_dim);
    }
    Ok(scores)
}

/// A set's name: its folder (`fashion-mnist`, `mnist`) and file stem.
fn set_name(path: &Path) -> String {
    let folder = path
        .parent()
        .and_then(|p| p.file_name())
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = path
        .file_name()
        .map(|f| {
            f.to_string_lossy()
                .replace("-images-idx3-ubyte", "")
                .replace(".gz", "")
        })
        .unwrap_or_default();
    if folder.is_empty() {
        stem
    } else {
        format!("{folder}/{stem}")
    }
}

pub fn eval(args: EvalArgs) -> Result<()> {
    use crate::eval::{OodReport, ScoreSet, plots};
    let in_scores = bits_per_dim(&args.model, &args.in_dist, args.limit)?;
    let in_name = set_name(&args.in_dist);
    let mut ood = Vec::new();
    for path in &args.ood {
        ood.push((set_name(path), bits_per_dim(&args.model, path, args.limit)?));
    }
    let ood_sets: Vec<ScoreSet<'_>> = ood.iter().map(|(n, s)| ScoreSet::new(n, s)).collect();
    let in_set = ScoreSet::new(&in_name, &in_scores);
    let report = OodReport::new(in_set, &ood_sets)?;
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
            &Default::default(),
        )?;
        plots::roc_curves(&dir.join("roc.png"), in_set, &ood_sets, &Default::default())?;
        eprintln!("wrote plots into {}", dir.display());
    }
    Ok(())
}

pub fn calibrate(args: CalibrateArgs) -> Result<()> {
    use crate::eval::metrics;
    anyhow::ensure!(
        args.rate > 0.0 && args.rate < 0.5,
        "--rate must be in (0, 0.5), got {}",
        args.rate
    );
    let (config, model) = load_run(&args.run)?;
    let data_dir = args.data_dir.unwrap_or_else(data::default_data_dir);
    let (_, held_out) = training::training_data(&config, &data_dir)?;
    let dims = (config.model.channels * config.model.height * config.model.width) as f64
        * std::f64::consts::LN_2;
    let scores: Vec<f64> = training::log_likelihoods(&model, &held_out, 256)?
        .iter()
        .map(|ll| -ll / dims)
        .collect();
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
    let record = flowgate_shared::Threshold {
        ood_score: threshold as f32,
        target_false_reject_rate: args.rate as f32,
        calibration_frames: scores.len() as u32,
        quantiles,
    };
    let provenance = format!(
        "flowgate train --config (see config.toml); flowgate calibrate --run {} --rate {}",
        args.run.display(),
        args.rate
    );
    let bytes = to_file_bytes(
        &model,
        &ExportInfo {
            name: &config.name,
            provenance: &provenance,
            threshold: Some(record),
            ..ExportInfo::default()
        },
    )?;
    let exported = args.run.join(EXPORTED_MODEL);
    std::fs::write(&exported, bytes)?;
    eprintln!(
        "threshold {threshold:.4} bits/dim rejects {:.2}% of {} held-out images; wrote {}",
        100.0 * scores.iter().filter(|&&s| s > threshold).count() as f64 / scores.len() as f64,
        scores.len(),
        exported.display()
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
