//! The commands behind the CLI's subcommands.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

use super::{ExportArgs, ScoreArgs, TrainArgs};
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
    let (report, model) = training::train(&config, &data_dir, &args.out, args.resume, true)?;
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
