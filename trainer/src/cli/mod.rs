//! The `flowgate` command line: arguments and the commands they run.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::data;

mod commands;

/// flowgate's trainer: trains normalizing flows on normal images, scores and exports them
/// for the edge gate (`flowgate-edge`).
///
/// Typical run: `flowgate train --config configs/fmnist-realnvp.toml --out runs/realnvp`,
/// then `flowgate score --run runs/realnvp --input data/mnist/t10k-images-idx3-ubyte
/// --out mnist.csv`. Calibration, quantisation and evaluation tables land with their issues.
#[derive(Debug, Parser)]
#[command(name = "flowgate", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The trainer's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Datasets: what is in the data dir (fill it with scripts/fetch-data.sh).
    #[command(subcommand)]
    Data(DataCommand),
    /// A calibrated int8 gate for one camera from its footage, in one command: frames,
    /// teacher, distilled gate, int8, threshold, report. No config file needed.
    ///
    /// INPUT is a video file (anything ffmpeg reads) or a folder of images (png, jpg, pgm,
    /// ppm, bmp; any resolution, gray or colour, read in file-name order).
    ///
    /// What it does, as scripts/run.sh does it for vtest.avi:
    ///  1. frames: gray PNGs at 4x the gate's input in the work folder (WORK/frames, with
    ///     WORK/frames.toml naming each one's source). The gate's input is 32 wide and as
    ///     tall as the camera's aspect ratio asks (32x24 for 4:3, 32x18 for 16:9), rounded to
    ///     a height the flows' squeezes take; fit prints what it chose.
    ///  2. split: 10% of the frames (at least 16; at most half) are held out: the last ones
    ///     (--split end, the default), or, with --split spread, up to 16 blocks (of at least
    ///     8) spread over the footage with half a block on each side of each dropped
    ///     (neighbouring frames are near copies). They stop both trainings early and set the
    ///     threshold; the rest train. fit prints which frames. It needs at least 32 frames.
    ///  3. teacher: a flow on a CNN's embeddings (configs/camera-embedding.toml, built in)
    ///     in WORK/teacher.
    ///  4. gate: a small RealNVP (configs/camera-realnvp.toml, built in) distilled from the
    ///     teacher with LAMBDA 1 in WORK/gate.
    ///  5. int8 weights, threshold at --rate false rejects of the held-out frames (bits/dim
    ///     score), checked against --board, written to GATE.fgm.
    ///
    /// Outputs: GATE.fgm (for flowgate-edge), GATE.report.html with GATE.report.png beside
    /// it (the held-out and training frames' scores with the threshold, the 10 training
    /// frames that look least normal, the model's parameters, file size, MACs per frame and
    /// memory), and a summary on stdout. The report is written before the gate, each
    /// atomically: a gate on disk always has its report.
    ///
    /// Resumable: running the same command again reuses the frames (same input, same size)
    /// and continues both trainings from their checkpoints; a finished fit redoes only the
    /// int8 and calibration steps and writes the same gate. New footage restarts the
    /// trainings.
    #[command(verbatim_doc_comment)]
    Fit(FitArgs),
    /// Add a native-resolution detail branch to a camera gate: a small flow over 8x8 patches
    /// taken from the camera's frames at their own size, so that faults the gate's thumbnail
    /// averages away (sensor noise, compression damage, defocus) count too.
    ///
    /// The frames are streamed at their own size (never written to disk). Each gives 48
    /// patches at random positions; the patch model (configs/camera-detail.toml) trains on
    /// the training frames' patches and stops early on the held-out frames' (those fit holds
    /// out, or --held-out of --frames, placed as --split says). The held-out frames then
    /// set how the gate's two scores combine: each is centred on its median and scaled so
    /// that its own 1 - rate quantile is 1, the gate's score is the larger (the patch part two-sided: noise makes
    /// patches unlikely, blur or a flat picture too likely), and its quantile at 1 - rate is
    /// the new threshold. The gate then scores frames only at the camera's size.
    #[command(verbatim_doc_comment)]
    Detail(DetailArgs),
    /// The statistics baseline a user could build with OpenCV instead of a flow, evaluated
    /// like a gate: six per-frame statistics at the frame's own size (brightness, contrast,
    /// Laplacian variance, Immerkaer's noise estimate, Sobel edge density, chi-square
    /// histogram distance), each standardised on the training frames; the score is their
    /// largest |z|, the threshold its quantile at 1 - rate on the held-out frames. Prints
    /// the same table as `eval` (its "mean bpd" column holds the mean score).
    Baseline(BaselineArgs),
    /// Train a flow from a TOML config (see configs/); writes weights, checkpoints and the
    /// exported model into --out.
    Train(TrainArgs),
    /// Train a small "student" flow whose OOD score follows a big "teacher" flow's; writes
    /// the same files as `train` (plus distil.toml) into --out.
    ///
    /// The student is trained as `train` would train --student-config (same data, batches,
    /// seeds, optimiser, clipping, early stopping, checkpoints, --resume) with one more term in
    /// its loss. Every step
    /// takes a clean training batch B and a perturbed copy P of it (Gaussian noise, blur,
    /// pixel mutations, shifts, rotations, flips, upside down, inversion, constant frames,
    /// occlusion, local patch shuffles, JPEG damage; seeded, in memory), and asks that on
    /// B and P the student's standardised OOD score z_s (its -ln p minus the mean over B,
    /// over the standard deviation over B, as the gate computes it: bin centres, batch-norm
    /// running statistics) match the teacher's, z_t = (-ln p_t - mu_t) / sigma_t, with mu_t
    /// and sigma_t measured once on up to 2048 clean training images:
    ///
    ///   loss = NLL(B) [bits/dim] + LAMBDA * mean over B and P of huber(z_s - clamp(z_t, -5, 20))
    ///
    /// where huber(r) = r^2 for |r| <= 5 and linear beyond, and a teacher score clamped at 20
    /// (or -5) only bounds the student's from one side. Scores are compared as z-scores, so the
    /// teacher may be much bigger or a flow on embeddings; it must take the same input
    /// (channels, height, width). The first --warmup steps (default half) are plain training;
    /// from then on the batch-norm statistics are frozen (for every LAMBDA, so --weight 0 is
    /// the baseline trained identically otherwise; with --warmup >= --steps it is exactly
    /// `train`), and the distillation term is reported at every step even with --weight 0.
    ///
    /// The output folder works with `eval --model`, `calibrate --run`, `export --run` and
    /// `quantize` like one from `train`; distil.toml records the teacher, LAMBDA, mu_t,
    /// sigma_t and the final terms.
    #[command(verbatim_doc_comment)]
    Distil(DistilArgs),
    /// Per-image scores of an idx file under a trained run (burn's forward pass), as CSV
    /// with flowgate-edge score's columns:
    /// source,frame,log_likelihood,bits_per_dim,ood_score,decision,fault,detail_bits_per_dim
    /// (decision and detail_bits_per_dim empty).
    Score(ScoreArgs),
    /// Export a trained run as a model file (*.fgm) for the edge gate.
    Export(ExportArgs),
    /// Export a model file (*.fgm, f32 or int8) as ONNX, opset 13 (TensorRT 8.x parses it):
    /// input `levels`, float32 [N, C, H, W] at the model's size holding pixel levels 0..255
    /// (resize first); outputs `log_likelihood` (nats) and `bits_per_dim`, float32 [N]; the
    /// score kind, its center and the threshold in metadata_props. A frame is rejected when
    /// its OOD score (bits/dim, or |bits/dim - center| for the typical score) is above the
    /// threshold; a non-finite score must be rejected too.
    ///
    /// A gate with a native-resolution detail branch (flowgate detail, fit) exports as one
    /// graph over the whole frame: input `frame`, float32 [N, C, H, W] at the camera's size
    /// (metadata flowgate.detail.frame) holding levels 0..255 (the gray/Y plane for a gray
    /// gate); the graph makes the thumbnail and the patches as the runtime does. Two more
    /// outputs: `detail_bits_per_dim` and `ood_score`; reject when ood_score is above the
    /// threshold or any output is not finite.
    ///
    /// On a Jetson: trtexec --onnx=GATE.onnx --saveEngine=GATE.plan
    ///   --minShapes=levels:1xCxHxW --optShapes=levels:1xCxHxW --maxShapes=levels:8xCxHxW
    ///   (with a detail branch: frame:1xCxHxW at the camera's size)
    #[command(verbatim_doc_comment)]
    Onnx(OnnxArgs),
    /// OOD evaluation: mean bits/dim, AUROC, AUPR and FPR at 95% TPR of each OOD set
    /// against the in-distribution set (in-distribution = positive class), as a table and
    /// JSON, with optional plots.
    Eval(EvalArgs),
    /// Set the decision threshold at a target false-reject rate on the run's held-out
    /// in-distribution images, and re-export the model with it.
    Calibrate(CalibrateArgs),
    /// int8 per-output-channel weights for a model file; with --in-dist and --ood, prints the
    /// change in bits/dim and AUROC against the f32 model.
    Quantize(QuantizeArgs),
    /// Extract a video's frames as numbered PNGs (frame-NNNNNN.png) with ffmpeg, optionally
    /// scaled and gray, for training from an image folder.
    Frames(FramesArgs),
    /// Make an out-of-distribution set from normal frames: covered lens, overexposure, blur,
    /// noise, occlusion, a moved or rotated camera, JPEG damage.
    Corrupt(CorruptArgs),
}

/// Arguments of `fit`.
#[derive(Debug, Args)]
pub struct FitArgs {
    /// The camera's footage: a video file or a folder of images.
    #[arg(long, value_name = "PATH")]
    pub input: PathBuf,
    /// The gate to write.
    #[arg(long, value_name = "GATE.fgm")]
    pub out: PathBuf,
    /// Work folder: frames, the two run folders with their checkpoints [default: GATE.fit
    /// beside --out].
    #[arg(long, value_name = "DIR")]
    pub work: Option<PathBuf>,
    /// Target false-reject rate on the held-out normal frames.
    #[arg(long, default_value_t = 0.01)]
    pub rate: f64,
    /// A board config (firmware-configs/NAME.toml): the gate must fit its memory budget
    /// (model file, plan and scratch) and its MACs per frame, as `flowgate-edge --board`
    /// checks them. The recipe's cost is checked before training, the finished gate again
    /// before it is written.
    #[arg(long, value_name = "BOARD.toml")]
    pub board: Option<PathBuf>,
    /// Both trainings' step count, and the most steps the teacher's extractor pretrains
    /// (quick tries; the recipes train 1500 steps each).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub steps: Option<u64>,
    /// The teacher's recipe (TOML, as for `train`) in place of the built-in
    /// configs/camera-embedding.toml; its dataset, held-out count and input size are fit's.
    #[arg(long, value_name = "FILE")]
    pub teacher_config: Option<PathBuf>,
    /// The gate's recipe in place of the built-in configs/camera-realnvp.toml; its dataset,
    /// held-out count and input size are fit's.
    #[arg(long, value_name = "FILE")]
    pub student_config: Option<PathBuf>,
    /// Leave out the native-resolution detail branch (`flowgate detail`): the gate then
    /// judges only the frame's thumbnail and accepts frames of any size.
    #[arg(long)]
    pub no_detail: bool,
    /// Training-time budget in minutes for the whole fit, frame extraction included: each
    /// training stops at its share of what is left (keeping its best weights so far and a
    /// checkpoint; running fit again continues them). 0: no limit, every recipe runs all
    /// its steps.
    #[arg(long, value_name = "M", default_value_t = 20.0)]
    pub minutes: f64,
    /// Use only frames START..END of the input (END excluded): frame numbers of a video,
    /// places in a folder's file-name order [default: all]. The held-out frames are a tenth
    /// of these (see --split).
    #[arg(long, value_name = "START..END", value_parser = parse_range)]
    pub frames: Option<std::ops::Range<usize>>,
    /// Leave this perturbation kind out of the gate's distillation (repeatable), as
    /// `flowgate distil --without`: a leave-one-kind-out evaluation.
    #[arg(long, value_enum, value_name = "KIND")]
    pub without: Vec<crate::distil::Perturbation>,
    /// Where the held-out frames lie: `end`, the footage's last tenth (the frames nearest
    /// those the gate will judge next), or `spread`, blocks over the whole footage with the
    /// frames beside each block dropped, for footage whose end is calmer or busier than the
    /// rest (fit warns when its threshold suggests so).
    #[arg(long, value_enum, default_value_t = crate::fit::SplitKind::End)]
    pub split: crate::fit::SplitKind,
    /// Train both the teacher and the gate on SHARE synthetic frames per training frame as
    /// well (0.5: half as many again): a training frame with a moving object of another one
    /// pasted at a random place, for footage whose objects (a person, an animal) may later
    /// turn up where it never showed them. Sets `data.paste_objects` in both recipes.
    #[arg(long, value_name = "SHARE")]
    pub paste_objects: Option<f64>,
    /// Train both the teacher and the gate on a copy of every training frame with all its
    /// levels shifted by a random offset of up to L levels as well (fractions rounded
    /// stochastically): for very still footage whose exposure later drifts by fractions of a
    /// level. Sets `data.exposure_jitter` in both recipes.
    #[arg(long, value_name = "L")]
    pub exposure_jitter: Option<f64>,
}

/// Arguments of `detail`.
#[derive(Debug, Args)]
pub struct DetailArgs {
    /// The camera's footage at its own size: a video file or a folder of images (the same
    /// footage the gate was fitted on).
    #[arg(long, value_name = "PATH")]
    pub input: PathBuf,
    /// The gate to add the branch to (from fit, or train/distil + quantize + calibrate).
    #[arg(long, value_name = "GATE.fgm")]
    pub gate: PathBuf,
    /// The gate with the branch, to write (may be --gate itself).
    #[arg(long, value_name = "OUT.fgm")]
    pub out: PathBuf,
    /// The patch model's run folder [default: OUT.detail beside --out].
    #[arg(long, value_name = "DIR")]
    pub work: Option<PathBuf>,
    /// Use only frames START..END of the input (0-based, END excluded) [default: all].
    #[arg(long, value_name = "START..END", value_parser = parse_range)]
    pub frames: Option<std::ops::Range<usize>>,
    /// Hold out N of those frames (at most half) [default: as many as fit: a tenth, at least
    /// 16].
    #[arg(long, value_name = "N")]
    pub held_out: Option<usize>,
    /// Where the held-out frames lie, as `flowgate fit --split` (the gate's own).
    #[arg(long, value_enum, default_value_t = crate::fit::SplitKind::End)]
    pub split: crate::fit::SplitKind,
    /// Target false-reject rate of the combined score [default: the gate's, else 0.01].
    #[arg(long)]
    pub rate: Option<f64>,
    /// Patch positions scored per frame, COLUMNSxROWS.
    #[arg(long, value_name = "CxR", default_value = "8x6", value_parser = crate::frames::parse_size)]
    pub grid: (u32, u32),
    /// The patch model's step count [default: the recipe's 1500].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub steps: Option<u64>,
    /// The patch model's recipe in place of the built-in configs/camera-detail.toml.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where to train.
    #[arg(long, value_enum, default_value_t = crate::training::Compute::Cpu)]
    pub device: crate::training::Compute,
}

/// Arguments of `baseline`.
#[derive(Debug, Args)]
pub struct BaselineArgs {
    /// Normal frames (a folder of images, in file-name order): all but --held-out of them fit
    /// the statistics.
    #[arg(long, value_name = "DIR")]
    pub train: PathBuf,
    /// N of the training frames (at most half) set the threshold instead: the frames fit
    /// holds out of as many, placed as --split says.
    #[arg(long, value_name = "N")]
    pub held_out: usize,
    /// Where the held-out frames lie, as `flowgate fit --split`.
    #[arg(long, value_enum, default_value_t = crate::fit::SplitKind::End)]
    pub split: crate::fit::SplitKind,
    /// Target false-reject rate on the held-out frames.
    #[arg(long, default_value_t = 0.01)]
    pub rate: f64,
    /// Normal test frames (a folder of images).
    #[arg(long, value_name = "DIR")]
    pub in_dist: PathBuf,
    /// OOD test frames (a folder of images); repeat for several sets.
    #[arg(long, value_name = "DIR", required = true)]
    pub ood: Vec<PathBuf>,
    /// Write the report as JSON here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// `START..END` as a range.
fn parse_range(text: &str) -> std::result::Result<std::ops::Range<usize>, String> {
    let (start, end) = text
        .split_once("..")
        .ok_or_else(|| format!("expected START..END, got {text:?}"))?;
    let number = |part: &str| {
        part.trim()
            .parse::<usize>()
            .map_err(|e| format!("{part:?} in {text:?}: {e}"))
    };
    let range = number(start)?..number(end)?;
    if range.is_empty() {
        return Err(format!("{text:?} holds no frames"));
    }
    Ok(range)
}

/// Arguments of `frames`.
#[derive(Debug, Args)]
pub struct FramesArgs {
    /// The video file (anything ffmpeg reads).
    #[arg(value_name = "VIDEO")]
    pub video: PathBuf,
    /// Output folder for frame-NNNNNN.png (NNNNNN = the frame's index in the video).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Scale every frame to WIDTHxHEIGHT (area averaging), e.g. 128x96.
    #[arg(long, value_name = "WxH", value_parser = crate::frames::parse_size)]
    pub size: Option<(u32, u32)>,
    /// Convert to 8-bit gray.
    #[arg(long)]
    pub gray: bool,
    /// First frame to keep (0-based).
    #[arg(long, default_value_t = 0)]
    pub first: u64,
    /// Last frame to keep (inclusive) [default: the last one].
    #[arg(long)]
    pub last: Option<u64>,
    /// Replace frames already in --out.
    #[arg(long)]
    pub overwrite: bool,
}

/// Arguments of `corrupt`.
#[derive(Debug, Args)]
pub struct CorruptArgs {
    /// Folder of normal frames (e.g. held-out frames from `flowgate frames`).
    #[arg(long, value_name = "DIR")]
    pub input: PathBuf,
    /// Folder for the corrupted frames (gray PNG, same file names).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// What goes wrong.
    #[arg(long, value_enum)]
    pub kind: crate::corrupt::Corruption,
    /// Seeds the random parts (noise, patch positions, angles).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Arguments of `quantize`.
#[derive(Debug, Args)]
pub struct QuantizeArgs {
    /// The f32 model file.
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,
    /// The int8 model file to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// In-distribution test images (idx) for the comparison.
    #[arg(long, value_name = "PATH", requires = "ood")]
    pub in_dist: Option<PathBuf>,
    /// OOD test images (idx) for the comparison.
    #[arg(long, value_name = "PATH", requires = "in_dist")]
    pub ood: Option<PathBuf>,
    /// Compare on the first N images of each set.
    #[arg(long)]
    pub limit: Option<usize>,
}

/// Arguments of `eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A run folder written by `train` (scored by burn) or a model file *.fgm (scored by the
    /// edge runtime; the parity test holds the two within 1e-4 bits/dim).
    #[arg(long, value_name = "RUN|FILE")]
    pub model: PathBuf,
    /// In-distribution test images: an idx file (gz or plain), a folder of images, or a score
    /// CSV already written by `flowgate score` / `flowgate-edge score` (then --model only
    /// supplies the threshold).
    #[arg(long, value_name = "PATH")]
    pub in_dist: PathBuf,
    /// OOD test images (idx file, folder or score CSV); repeat for several sets.
    #[arg(long, value_name = "PATH", required = true)]
    pub ood: Vec<PathBuf>,
    /// Score only the first N images of each set.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Rank by bits/dim minus the image's complexity (its deflate-compressed size in bits
    /// per dimension, at the model's input size; Serra et al. 2020) instead of the model's
    /// own OOD score: a comparison the trainer measures, not a score the gate computes.
    /// Needs image inputs (not score CSVs); no threshold applies.
    #[arg(long)]
    pub complexity: bool,
    /// Rank by the likelihood ratio against this background model (a run folder or *.fgm,
    /// e.g. the same flow trained with `data.mutation_rate`): bits/dim minus the
    /// background's bits/dim (Ren et al. 2019). A comparison the trainer measures, not a
    /// score the gate computes; needs image inputs; no threshold applies.
    #[arg(long, value_name = "RUN|FILE", conflicts_with = "complexity")]
    pub background: Option<PathBuf>,
    /// Write the report as JSON here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write bits/dim histograms and ROC curves (PNG) into this folder; with a run folder as
    /// --model, also diagnostics.png: the latent z and the first coupling's -t of a few images
    /// of each set (the paper's pictures).
    #[arg(long, value_name = "DIR")]
    pub plots: Option<PathBuf>,
}

/// Arguments of `calibrate`.
#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// A run folder written by `train`: its config names the held-out normal images.
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// The model file to calibrate, e.g. an int8 one from `quantize` (calibrate what you
    /// ship) [default: the run's trained weights, exported as f32].
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// The OOD score the gate computes.
    #[arg(long, value_enum, default_value_t = ScoreChoice::Bpd)]
    pub score: ScoreChoice,
    /// Target false-reject rate on normal data.
    #[arg(long, default_value_t = 0.01)]
    pub rate: f64,
    /// Where to write the calibrated model [default: model.fgm in the run folder].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The data dir [default: $FLOWGATE_DATA_DIR, else data/ in the workspace].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// OOD scores a calibrated model can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScoreChoice {
    /// Bits/dim: rejects frames less likely than normal ones.
    Bpd,
    /// |bits/dim - median of the held-out frames|: also rejects frames far *more* likely
    /// than normal ones (constant, blurred), which flows favour.
    Typical,
}

/// Arguments of `train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The training config (TOML).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Output folder: config copy, checkpoints, model.bpk, model.fgm.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Continue from the checkpoint in --out, if there is one.
    #[arg(long)]
    pub resume: bool,
    /// The data dir [default: $FLOWGATE_DATA_DIR, else data/ in the workspace].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Override the config's step count (quick runs).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Where to train: cpu (burn's flex backend), ndarray, cuda (first GPU) or libtorch (PyTorch's C++ library on the CPU).
    #[arg(long, value_enum, default_value_t = crate::training::Compute::Cpu)]
    pub device: crate::training::Compute,
    /// Data-parallel training: each batch is split across N devices (cuda: GPUs 0..N; cpu:
    /// N workers on the one CPU device, one after another), their gradients summed on the
    /// first (burn's gradient accumulation, as its multi-device strategy does). The global
    /// batch stays train.batch.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub devices: u16,
}

/// Arguments of `distil`.
#[derive(Debug, Args)]
pub struct DistilArgs {
    /// The teacher: a run folder written by `train` (config.toml and model.bpk).
    #[arg(long, value_name = "RUN_DIR")]
    pub teacher: PathBuf,
    /// The student's training config (TOML, as for `train`; see configs/).
    #[arg(long, value_name = "FILE")]
    pub student_config: PathBuf,
    /// Output folder: config copy, checkpoints, model.bpk, model.fgm, distil.toml.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Continue from the checkpoint in --out, if there is one (same teacher and options).
    #[arg(long)]
    pub resume: bool,
    /// LAMBDA, the distillation term's weight against the NLL in bits/dim (0: no teacher).
    #[arg(long, value_name = "LAMBDA", default_value_t = 1.0)]
    pub weight: f64,
    /// Steps of plain training before the distillation phase [default: half the steps].
    #[arg(long, value_name = "STEPS")]
    pub warmup: Option<usize>,
    /// Ablation: ignore the teacher's scores; the targets are z 0 for clean images and the
    /// clamp's top (20) for perturbed ones, which then only have to score at least that far
    /// out. Shows what the perturbed images do for the student without a teacher.
    #[arg(long)]
    pub fixed_targets: bool,
    /// Leave this perturbation kind out of training (repeatable): a leave-one-kind-out
    /// evaluation trains without a kind and measures whether the gate still rejects OOD
    /// frames of that kind. The held-out comparison that keeps the best weights leaves it out
    /// too. distil.toml lists the kinds drawn.
    #[arg(long, value_enum, value_name = "KIND")]
    pub without: Vec<crate::distil::Perturbation>,
    /// The data dir [default: $FLOWGATE_DATA_DIR, else data/ in the workspace].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Override the student config's step count (quick runs).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Where to train: cpu (burn's flex backend), ndarray, cuda (first GPU) or libtorch (PyTorch's C++ library on the CPU).
    #[arg(long, value_enum, default_value_t = crate::training::Compute::Cpu)]
    pub device: crate::training::Compute,
    /// Data-parallel training: each batch is split across N devices (cuda: GPUs 0..N; cpu:
    /// N workers on the one CPU device, one after another), their gradients summed on the
    /// first (burn's gradient accumulation, as its multi-device strategy does). The global
    /// batch stays train.batch.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub devices: u16,
}

/// Arguments of `score`.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// A run folder written by `train`.
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// An idx image file (gz or plain), an image file, or a folder of images (resized to the
    /// model's input as the edge runtime resizes frames).
    #[arg(long, value_name = "PATH")]
    pub input: PathBuf,
    /// Where to write the CSV [default: stdout].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Score only the first N images.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Where to compute (cuda: to compare a GPU's log-likelihoods with the CPU's).
    #[arg(long, value_enum, default_value_t = crate::training::Compute::Cpu)]
    pub device: crate::training::Compute,
}

/// Arguments of `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A run folder written by `train`.
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// The model file to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// Arguments of `onnx`.
#[derive(Debug, Args)]
pub struct OnnxArgs {
    /// The model file to export.
    #[arg(long, value_name = "GATE.fgm")]
    pub model: PathBuf,
    /// The ONNX file to write.
    #[arg(long, value_name = "GATE.onnx")]
    pub out: PathBuf,
    /// How int8 weights are written: `dequantized` (f32 values, the product the runtime
    /// computes; what TensorRT 8 on a Jetson Nano runs) or `qdq` (int8 initializers with
    /// per-channel DequantizeLinear: smaller files).
    #[arg(long, value_enum, value_name = "HOW", default_value_t = Int8Choice::Dequantized)]
    pub int8: Int8Choice,
}

/// Choices of `onnx --int8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Int8Choice {
    /// f32 weights.
    Dequantized,
    /// int8 weights and DequantizeLinear nodes.
    Qdq,
}

/// Dataset commands.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Counts, image sizes, label histograms and mean pixel value of every split, and the
    /// sample videos.
    Summary(SummaryArgs),
}

/// Arguments of `data summary`.
#[derive(Debug, Args)]
pub struct SummaryArgs {
    /// The data dir [default: $FLOWGATE_DATA_DIR, else data/ in the workspace].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// List every file of the opencv samples, not only the videos.
    #[arg(long)]
    pub all_files: bool,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Fit(args) => commands::fit(args),
        Command::Detail(args) => commands::detail(args),
        Command::Baseline(args) => commands::baseline(args),
        Command::Train(args) => commands::train(args),
        Command::Distil(args) => commands::distil(args),
        Command::Score(args) => commands::score(args),
        Command::Export(args) => commands::export(args),
        Command::Onnx(args) => commands::onnx(args),
        Command::Eval(args) => commands::eval(args),
        Command::Calibrate(args) => commands::calibrate(args),
        Command::Quantize(args) => commands::quantize(args),
        Command::Frames(args) => commands::frames(args),
        Command::Corrupt(args) => commands::corrupt(args),
        Command::Data(DataCommand::Summary(args)) => {
            let dir = args.data_dir.unwrap_or_else(data::default_data_dir);
            let summary = data::summary(&dir)
                .with_context(|| format!("cannot summarise the data in {}", dir.display()))?;
            if args.all_files {
                print!("{summary:#}");
            } else {
                print!("{summary}");
            }
            Ok(())
        }
    }
}
