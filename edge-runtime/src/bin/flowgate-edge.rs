//! `flowgate-edge`: the gate's command-line front end.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use flowgate_edge::Gate;
use flowgate_shared::{FlowLayer, Mask};

/// flowgate's edge gate: scores camera frames under an exported flow and passes or holds
/// them back. Scoring front ends (image folders, idx files, raw frame streams) land with the
/// runtime issue; `inspect` describes a model file.
#[derive(Debug, Parser)]
#[command(name = "flowgate-edge", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Layers, parameters, MACs per frame, scratch bytes and threshold of a model file.
    Inspect {
        /// The model file (*.fgm).
        model: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("flowgate-edge: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Inspect { model } => inspect(&model),
    }
}

fn inspect(path: &PathBuf) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let gate = Gate::new(&bytes).with_context(|| format!("{}", path.display()))?;
    let model = gate.model();
    let summary = gate.summary();
    let input = model.input;
    println!("model        {}", model.name);
    if !model.provenance.is_empty() {
        println!("provenance   {}", model.provenance);
    }
    println!(
        "input        {}x{}x{} ({:?}, resize {:?})",
        input.channels, input.height, input.width, input.preprocess, input.resize
    );
    println!(
        "layers       {} ({} couplings)",
        summary.flow_layers, summary.couplings
    );
    for (index, layer) in model.flow.iter().enumerate() {
        let layer = layer.context("flow layer")?;
        println!("  {index:>3}  {}", describe(&layer));
    }
    println!("parameters   {}", summary.parameters);
    println!(
        "weights      {} bytes ({} f32 tensors, {} int8 tensors); file {} bytes",
        summary.weight_bytes,
        summary.f32_tensors,
        summary.int8_tensors,
        bytes.len()
    );
    println!("MACs/frame   {}", summary.macs_per_frame);
    println!(
        "scratch      {} bytes ({} f32)",
        gate.scratch_len() * 4,
        gate.scratch_len()
    );
    println!("score        {:?}", model.score);
    match &model.threshold {
        Some(threshold) => println!(
            "threshold    reject when score > {} (target false-reject rate {}, {} calibration frames)",
            threshold.ood_score, threshold.target_false_reject_rate, threshold.calibration_frames
        ),
        None => println!("threshold    none (uncalibrated: scores only, no decisions)"),
    }
    Ok(())
}

fn describe(layer: &FlowLayer<'_>) -> String {
    match layer {
        FlowLayer::Coupling(coupling) => {
            let mask = match coupling.mask {
                Mask::Checkerboard { reverse } => format!("checkerboard{}", flag(reverse)),
                Mask::ChannelWise { reverse } => format!("channel-wise{}", flag(reverse)),
                Mask::Horizontal { reverse } => format!("horizontal{}", flag(reverse)),
                Mask::Quadrant { read, write } => {
                    format!("quadrant {} -> {}", read.index(), write.index())
                }
            };
            format!(
                "coupling     {mask}, network of {} nodes",
                coupling.net.len()
            )
        }
        FlowLayer::Squeeze => "squeeze".into(),
        FlowLayer::Unsqueeze => "unsqueeze".into(),
        FlowLayer::ActNorm(_) => "actnorm".into(),
        FlowLayer::InvertibleConv1x1(conv) => {
            format!("1x1 conv     ln|det| {:.4}", conv.log_abs_det)
        }
        FlowLayer::FactorOut { keep_channels } => {
            format!("factor out   keep {keep_channels} channels")
        }
    }
}

fn flag(reverse: bool) -> &'static str {
    if reverse { " (reversed)" } else { "" }
}
