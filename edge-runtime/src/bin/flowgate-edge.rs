//! `flowgate-edge`: the gate's command-line front end.

use std::fmt::Display;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, IsTerminal, Read, Write};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use flowgate_edge::cli::alarm::Alarm;
use flowgate_edge::cli::calibrate::{self, ScoreChoice, recalibrate};
use flowgate_edge::cli::parallel::score_in_order;
use flowgate_edge::cli::patient::Patient;
use flowgate_edge::cli::report::{Format, Report, decision_name};
use flowgate_edge::io::idx::{self, ImageStream};
use flowgate_edge::io::image::{self, EXTENSIONS};
use flowgate_edge::io::raw::{RawFrames, RawGeometry, parse_size};
use flowgate_edge::kernels::KernelPath;
use flowgate_edge::{Decision, Fault, Frame, Gate, Limits, LumaRange, PixelFormat, Verdict};
use flowgate_shared::board::BoardConfig;
use flowgate_shared::{FlowLayer, Mask, Resize};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

const EXIT_STATUS: &str = "\
Failing closed:
  A frame the gate cannot judge is never passed on: a frame whose score comes out NaN or
  infinite (an overflow inside a broken or hostile model) is rejected, whatever the
  threshold, and marked `non-finite-score` in the `fault` column; a frame that cannot be
  read or scored is reported and not passed on.

Limits:
  A model must fit the memory (model file, its plan and scratch) and multiply-accumulates
  per frame of --board's config, or by default those of the largest board in
  firmware-configs/ (4 MiB, 50 million MACs); --max-memory-kib and --max-macs override them. Image files are read up
  to 256 MiB and 16384 pixels a side, raw frames up to 128 MiB, idx images up to 64 Mi
  pixels; an idx file is read one image at a time and never past the body its header
  declares, so memory does not grow with the input.

Pipes:
  `gate` and `score` flush after every frame of a raw stream. A write error ends the run
  with status 2 and a message naming the output, a downstream reader that closed the pipe
  (EPIPE) included: the supervisor sees that frames stopped flowing. Reads interrupted by
  signals are retried; a non-blocking stdin that has no data yet is waited on.

Exit status:
  0  every input was read and scored (rejected frames are results, not errors)
  1  some inputs failed: each is reported on stderr, naming its file or frame number (an
     unreadable, corrupt or truncated image or idx file, a partial frame at the end of a
     raw stream); every other input was scored
  2  fatal: bad arguments, an unreadable or invalid model file (checksum mismatch,
     unsupported format version), a model over the limits, an input path that does not
     exist or cannot be opened, a folder without images, an output that cannot be written
     (a closed pipe included), or `gate` with a model that has no threshold";

/// flowgate's edge gate: scores camera frames under an exported normalizing flow and lets
/// frames like the training data pass while holding out-of-distribution frames back.
#[derive(Debug, Parser)]
#[command(name = "flowgate-edge", version, after_help = EXIT_STATUS)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Layers, parameters, MACs per frame, scratch bytes and threshold of a model file, and
    /// whether it fits the limits (shown even when it does not).
    #[command(after_help = EXIT_STATUS)]
    Inspect {
        /// The model file (*.fgm).
        model: PathBuf,

        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Scores frames: one row per frame with its log-likelihood, bits per dimension, OOD
    /// score and decision.
    ///
    /// Columns: source (the file, or `-` for stdin), frame (index within the source, from 0;
    /// 0 for a single image), log_likelihood (nats), bits_per_dim, ood_score (higher = more
    /// anomalous), decision (`accept`, `reject`, or empty / null when the model has no
    /// threshold), fault (empty / null, or `non-finite-score` for a frame rejected because
    /// its score is NaN or infinite). Frames of any size are resized to the model's input by
    /// the gate.
    #[command(after_help = EXIT_STATUS)]
    Score(ScoreArgs),
    /// Passes accepted frames on and holds rejected ones back.
    ///
    /// Raw frames (`--raw`): each accepted frame is written to stdout (or --out) byte for
    /// byte, unchanged, for the downstream model. Images and idx files: the path of each
    /// accepted image, or the index of each accepted idx image, one per line. Each rejected
    /// frame is reported on stderr as one line: `reject <frame>: ood score <s> > threshold
    /// <t>` (or `reject <frame>: non-finite score`). Frames that cannot be read or scored are
    /// not passed on. Needs a model with a calibrated threshold.
    #[command(after_help = EXIT_STATUS)]
    Gate(GateArgs),
    /// Sets a new threshold from frames known to be normal, with no trainer: after the camera
    /// is remounted or the scene changes, point it at a few hundred normal frames.
    ///
    /// Scores every frame with the model, sets the threshold at the quantile that rejects
    /// `--rate` of them (the trainer's definition), and writes the model with that threshold
    /// to --out (a temporary file renamed into place: a failure leaves no half-written file,
    /// and --out may be the model itself). Frames the model cannot score (a non-finite
    /// score) are an error: they are no normal frames. About 1/rate frames or more give a
    /// meaningful threshold.
    #[command(after_help = EXIT_STATUS)]
    Calibrate(CalibrateArgs),
}

#[derive(Debug, Args)]
struct InputArgs {
    /// The model file (*.fgm).
    #[arg(short, long, value_name = "MODEL.fgm")]
    model: PathBuf,

    /// What to score: a folder of images (png, jpg/jpeg, pgm/ppm/pbm/pnm, bmp, by extension;
    /// not recursive; in file-name order), a single image, an idx3-ubyte file (MNIST style,
    /// gzip-compressed or plain, recognised by its content; one frame per image), or `-` for
    /// raw frames on stdin (with --raw and --pixel).
    #[arg(short, long, value_name = "PATH")]
    input: PathBuf,

    /// Read the input as raw frames of WIDTHxHEIGHT pixels (e.g. 640x480) back to back,
    /// without headers. Bytes per frame: W*H for gray8, W*H*3 for rgb8 and bgr8, W*H*2 for
    /// yuyv, W*H*3/2 for nv12. Required for `--input -`; also reads a file of raw frames. A
    /// partial frame at the end of the stream is an error naming its frame number.
    #[arg(
        long,
        value_name = "WIDTHxHEIGHT",
        value_parser = parse_size,
        requires = "pixel"
    )]
    raw: Option<(u32, u32)>,

    /// Pixel format of the raw frames.
    #[arg(long, value_enum, value_name = "FORMAT", requires = "raw")]
    pixel: Option<PixelArg>,

    /// Range of the raw frames' luma (gray8, yuyv, nv12): `full` (0-255, as image files and
    /// ffmpeg's gray hold it) or `limited` (16-235, the "TV" range most YUV video carries:
    /// camera pipes, GStreamer's I420/NV12/YUY2), which the gate expands to full range
    /// before scoring. Models learn from full-range levels: limited-range luma read as full
    /// looks washed out to them.
    #[arg(long, value_enum, value_name = "RANGE", default_value_t = LumaArg::Full, requires = "raw")]
    luma_range: LumaArg,

    /// The convolutions' inner loops: `auto` picks the fastest this CPU runs (AVX2+FMA on
    /// x86_64 where present, NEON on aarch64); `scalar` is the portable reference. All give
    /// the same decisions; bits/dim may differ in the last digits (fused multiply-adds).
    #[arg(long, value_enum, value_name = "PATH", default_value_t = KernelsArg::Auto)]
    kernels: KernelsArg,

    #[command(flatten)]
    limits: LimitArgs,

    /// Score on N threads, one scratch each (folders and idx files; the output keeps the
    /// input's order). Raw streams are scored as they arrive, on one thread.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    threads: u16,
}

/// What a model may cost: a board's budget, or the defaults, with overrides.
#[derive(Debug, Args)]
struct LimitArgs {
    /// A board config (firmware-configs/NAME.toml): the model must fit its memory budget
    /// (model file, its plan and scratch) and its MACs per frame.
    #[arg(long, value_name = "BOARD.toml")]
    board: Option<PathBuf>,

    /// Most KiB the model file, its plan and its scratch may take together (default: --board's
    /// budget, else 4096).
    #[arg(long, value_name = "KIB")]
    max_memory_kib: Option<u64>,

    /// Most multiply-accumulates per frame (default: --board's, else 50000000).
    #[arg(long, value_name = "MACS")]
    max_macs: Option<u64>,
}

impl LimitArgs {
    /// The limits these arguments set, and the board they came from.
    fn limits(&self) -> Result<(Limits, Option<String>)> {
        let (mut limits, board) = match &self.board {
            Some(path) => {
                let board = BoardConfig::load(path)?;
                (Limits::of_board(&board), Some(board.board.name))
            }
            None => (Limits::DEFAULT, None),
        };
        if let Some(kib) = self.max_memory_kib {
            limits.max_memory_bytes = kib.saturating_mul(1024);
        }
        if let Some(macs) = self.max_macs {
            limits.max_macs_per_frame = macs;
        }
        Ok((limits, board))
    }
}

/// Choices of `--luma-range`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LumaArg {
    /// 0-255.
    Full,
    /// 16-235.
    Limited,
}

impl From<LumaArg> for LumaRange {
    fn from(range: LumaArg) -> Self {
        match range {
            LumaArg::Full => LumaRange::Full,
            LumaArg::Limited => LumaRange::Limited,
        }
    }
}

/// Choices of `--kernels`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum KernelsArg {
    /// The fastest path this CPU runs.
    Auto,
    /// Portable loops, the reference.
    Scalar,
    /// x86_64 AVX2 with FMA.
    Avx2Fma,
    /// aarch64 NEON.
    Neon,
}

impl KernelsArg {
    fn path(self) -> KernelPath {
        match self {
            KernelsArg::Auto => KernelPath::detect(),
            KernelsArg::Scalar => KernelPath::Scalar,
            KernelsArg::Avx2Fma => KernelPath::Avx2Fma,
            KernelsArg::Neon => KernelPath::Neon,
        }
    }
}

#[derive(Debug, Args)]
struct ScoreArgs {
    #[command(flatten)]
    input: InputArgs,

    /// Table format.
    #[arg(short, long, value_enum, default_value_t = Format::Csv)]
    format: Format,

    /// Write the table to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct CalibrateArgs {
    #[command(flatten)]
    input: InputArgs,

    /// The share of normal frames like these to reject (false rejects), in (0, 1).
    #[arg(long, value_name = "RATE", default_value_t = 0.01)]
    rate: f64,

    /// The OOD score of the new model.
    #[arg(long, value_enum, value_name = "SCORE", default_value_t = ScoreChoice::Keep)]
    score: ScoreChoice,

    /// The recalibrated model file.
    #[arg(short, long, value_name = "NEW.fgm")]
    out: PathBuf,
}

#[derive(Debug, Args)]
struct GateArgs {
    #[command(flatten)]
    input: InputArgs,

    /// Write the accepted frames (or paths, or indices) to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    out: Option<PathBuf>,

    /// Raise a stream-level alarm after K consecutive rejected frames and clear it after K
    /// consecutive accepted ones (a covered or moved camera is a state, not a frame): one
    /// JSON line per change on stderr (`{"event":"alarm"|"clear","source":..,"frame":N,
    /// "since":M}`) and in --events.
    #[arg(long, value_name = "K")]
    confirm: Option<NonZeroU32>,

    /// Append the alarm's events (see --confirm) to FILE as JSON lines, flushed at once.
    #[arg(long, value_name = "FILE", requires = "confirm")]
    events: Option<PathBuf>,

    /// At the end, one line on stderr with the counts: frames scored, passed on, held back,
    /// and inputs that could not be read (also printed when the run ends on an error).
    #[arg(long)]
    summary: bool,
}

/// Pixel formats of raw frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PixelArg {
    /// One byte of luma per pixel.
    Gray8,
    /// Three bytes per pixel: red, green, blue.
    Rgb8,
    /// Three bytes per pixel: blue, green, red (OpenCV's order).
    Bgr8,
    /// Packed 4:2:2, `Y0 U Y1 V` per two pixels (even width); the luma is scored.
    Yuyv,
    /// Planar 4:2:0, luma plane then interleaved chroma (even width and height); the luma
    /// plane is scored.
    Nv12,
}

impl From<PixelArg> for PixelFormat {
    fn from(pixel: PixelArg) -> Self {
        match pixel {
            PixelArg::Gray8 => PixelFormat::Gray8,
            PixelArg::Rgb8 => PixelFormat::Rgb8,
            PixelArg::Bgr8 => PixelFormat::Bgr8,
            PixelArg::Yuyv => PixelFormat::Yuyv,
            PixelArg::Nv12 => PixelFormat::Nv12,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut console = Console::default();
    let result = run(cli, &mut console);
    console.progress.finish_and_clear();
    match result {
        // A closed stdout (`| head`) is an error too: a downstream model that stopped
        // reading must not look like a gate that finished its work.
        Err(error) => {
            let hint = if is_broken_pipe(&error) {
                " (the downstream reader closed the pipe)"
            } else {
                ""
            };
            stderr_line(format_args!("flowgate-edge: {error:#}{hint}"));
            ExitCode::from(2)
        }
        Ok(()) if console.failed > 0 => ExitCode::from(1),
        Ok(()) => ExitCode::SUCCESS,
    }
}

fn run(cli: Cli, console: &mut Console) -> Result<()> {
    match cli.command {
        Command::Inspect { model, limits } => inspect(&model, &limits),
        Command::Score(args) => score(&args, console),
        Command::Gate(args) => gate(&args, console),
        Command::Calibrate(args) => calibrate(&args, console),
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|error| error.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// One line on stderr. Unlike `eprintln!`, never panics: with stderr closed or a broken
/// pipe there is nobody to tell, and the exit status still says what happened.
fn stderr_line(line: impl Display) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

/// Stderr: per-input errors (counted for the exit status), rejections, and a progress bar
/// when stderr is a terminal.
struct Console {
    progress: ProgressBar,
    failed: u64,
    /// Whether a progress bar may be drawn: not while the results go to the same terminal.
    bar_allowed: bool,
}

impl Default for Console {
    fn default() -> Self {
        Console {
            progress: ProgressBar::hidden(),
            failed: 0,
            bar_allowed: false,
        }
    }
}

impl Console {
    /// Allows a progress bar when the results do not go to a terminal.
    fn allow_bar(&mut self, out: Option<&Path>) {
        self.bar_allowed = out.is_some() || !io::stdout().is_terminal();
    }

    /// Shows a progress bar over `total` frames, on stderr and only if it is a terminal.
    fn start(&mut self, total: usize) {
        if self.bar_allowed && total > 1 && io::stderr().is_terminal() {
            let style = ProgressStyle::with_template("{bar:40} {pos}/{len} frames, eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            self.progress =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr())
                    .with_style(style);
        }
    }

    fn tick(&self) {
        self.progress.inc(1);
    }

    /// An input that could not be scored: reported, counted, and skipped.
    fn fail(&mut self, error: impl Display) {
        self.failed += 1;
        self.progress
            .suspend(|| stderr_line(format_args!("flowgate-edge: {error:#}")));
    }

    /// A line on stderr that is not an error.
    fn note(&self, line: impl Display) {
        self.progress.suspend(|| stderr_line(line));
    }
}

/// Where frames come from.
enum Input {
    /// Image files: a folder's, or one.
    Images(Vec<PathBuf>),
    /// An idx3-ubyte file, read one image at a time while scoring.
    Idx(PathBuf),
    /// Raw frames from stdin (`name` = `-`) or a file.
    Raw {
        name: String,
        reader: Box<dyn Read>,
        geometry: RawGeometry,
        luma_range: LumaRange,
    },
}

/// What one scored frame is, for the subcommands to act on.
enum Origin<'a> {
    Image(&'a Path),
    Idx,
    Raw(&'a [u8]),
}

struct Scored<'a> {
    source: &'a str,
    frame: u64,
    verdict: Verdict,
    origin: Origin<'a>,
}

impl Scored<'_> {
    /// The frame as a person would name it on stderr.
    fn name(&self) -> String {
        match self.origin {
            Origin::Image(path) => path.display().to_string(),
            Origin::Idx => format!("{} frame {}", self.source, self.frame),
            Origin::Raw(_) => format!("frame {}", self.frame),
        }
    }
}

/// The model file's bytes, which the gate borrows: at most `max_bytes`, so a huge file is
/// refused without being read.
fn read_model(path: &Path, max_bytes: u64) -> Result<Vec<u8>> {
    let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() as u64 > max_bytes {
        bail!(
            "{}: the model file is larger than the memory limit ({max_bytes} bytes; see --board, --max-memory-kib)",
            path.display()
        );
    }
    Ok(bytes)
}

/// The gate for scoring, within the limits and on the kernels the user picked.
fn load_scoring_gate<'a>(args: &InputArgs, bytes: &'a [u8], limits: Limits) -> Result<Gate<'a>> {
    let gate = Gate::with_limits(bytes, limits)
        .map_err(|error| limit_hint(error, &args.limits))
        .with_context(|| format!("{}", args.model.display()))?;
    Ok(gate.with_kernels(args.kernels.path())?)
}

/// A gate error, with where the limit came from when a limit was exceeded.
fn limit_hint(error: flowgate_edge::Error, args: &LimitArgs) -> anyhow::Error {
    match error {
        flowgate_edge::Error::LimitExceeded { .. } => {
            let source = match &args.board {
                Some(board) => format!("set by {}", board.display()),
                None => "the default: the largest board in firmware-configs/".into(),
            };
            anyhow!("{error} ({source}; raise it with --max-memory-kib or --max-macs)")
        }
        error => error.into(),
    }
}

fn open_input(args: &InputArgs) -> Result<Input> {
    let path = &args.input;
    let is_stdin = path.as_os_str() == "-";
    if let (Some((width, height)), Some(pixel)) = (args.raw, args.pixel) {
        let geometry = RawGeometry::new(width, height, pixel.into())?;
        let (name, reader): (String, Box<dyn Read>) = if is_stdin {
            ("-".into(), Box::new(io::stdin().lock()))
        } else {
            let file =
                File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
            (path.display().to_string(), Box::new(BufReader::new(file)))
        };
        return Ok(Input::Raw {
            name,
            reader,
            geometry,
            luma_range: args.luma_range.into(),
        });
    }
    if is_stdin {
        bail!(
            "`--input -` reads raw frames from stdin and needs --raw WIDTHxHEIGHT and --pixel FORMAT"
        );
    }
    let metadata =
        std::fs::metadata(path).with_context(|| format!("{}: cannot open", path.display()))?;
    if metadata.is_dir() {
        let paths = image::list_folder(path)?;
        if paths.is_empty() {
            bail!(
                "{}: no images in this folder (looked for the extensions {}; subfolders are not searched)",
                path.display(),
                EXTENSIONS.join(", ")
            );
        }
        return Ok(Input::Images(paths));
    }
    if idx::looks_like_idx(&read_prefix(path, 4)?) {
        return Ok(Input::Idx(path.clone()));
    }
    Ok(Input::Images(vec![path.clone()]))
}

/// The first `len` bytes of the file (fewer if it is shorter).
fn read_prefix(path: &Path, len: u64) -> Result<Vec<u8>> {
    let file = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut prefix = Vec::new();
    file.take(len)
        .read_to_end(&mut prefix)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    Ok(prefix)
}

/// Frames of one geometry (idx, raw) that a model taking exactly its input size cannot
/// score are a fatal error, reported once rather than for every frame.
fn check_uniform_size(gate: &Gate<'_>, source: &str, width: u32, height: u32) -> Result<()> {
    let input = gate.model().input;
    if input.resize == Resize::Exact && (width, height) != (input.width, input.height) {
        bail!(
            "{source}: frames are {width}x{height}; the model takes exactly {}x{} and does not resize",
            input.width,
            input.height
        );
    }
    Ok(())
}

/// Frames scored per thread per batch: enough to keep the threads busy, little memory.
const BATCH_PER_THREAD: usize = 32;

/// Scores every frame of `input` on `threads` threads (one scratch each; one for raw
/// streams) and hands each verdict, in input order, to `visit`. Inputs that cannot be read
/// or scored go to `console` and are skipped; errors from `visit` (writing the output) are
/// fatal.
fn for_each_frame(
    gate: &Gate<'_>,
    input: Input,
    threads: usize,
    console: &mut Console,
    mut visit: impl FnMut(Scored<'_>, &mut Console) -> Result<()>,
) -> Result<()> {
    let threads = threads.max(1);
    let mut scratches = vec![vec![0f32; gate.scratch_len()]; threads];
    let channels = gate.model().input.channels;
    match input {
        Input::Images(paths) => {
            console.start(paths.len());
            for batch in paths.chunks(BATCH_PER_THREAD * threads) {
                let verdicts = score_in_order(batch, &mut scratches, |path, scratch| {
                    score_image(gate, path, channels, scratch)
                });
                for (path, verdict) in batch.iter().zip(verdicts) {
                    match verdict {
                        Ok(verdict) => {
                            let source = path.display().to_string();
                            let scored = Scored {
                                source: &source,
                                frame: 0,
                                verdict,
                                origin: Origin::Image(path),
                            };
                            visit(scored, console)?;
                        }
                        Err(error) => console.fail(error),
                    }
                    console.tick();
                }
            }
        }
        Input::Idx(path) => {
            let source = path.display().to_string();
            // A corrupt or truncated file is a failed input (its error names the file); the
            // images before the damage are scored.
            let opened = File::open(&path)
                .map_err(|source| idx::IdxError::Io {
                    path: path.clone(),
                    source,
                })
                .and_then(|file| ImageStream::new(BufReader::new(file), &path));
            let mut images = match opened {
                Ok(images) => images,
                Err(error) => {
                    console.fail(error);
                    return Ok(());
                }
            };
            let size =
                |dim: usize| u32::try_from(dim).map_err(|_| anyhow!("{source}: images too large"));
            let (width, height) = (size(images.cols())?, size(images.rows())?);
            check_uniform_size(gate, &source, width, height)?;
            console.start(images.count());
            let mut batch: Vec<Vec<u8>> = vec![Vec::new(); BATCH_PER_THREAD * threads];
            let mut first = 0u64;
            let mut failure = None;
            while failure.is_none() {
                // Read the next batch (a read error ends the file after what was read).
                let mut filled = 0;
                for buffer in batch.iter_mut() {
                    match images.next_image(buffer) {
                        Ok(Some(_)) => filled += 1,
                        Ok(None) => break,
                        Err(error) => {
                            failure = Some(error);
                            break;
                        }
                    }
                }
                if filled == 0 {
                    break;
                }
                let pixels = batch.get(..filled).unwrap_or_default();
                let verdicts = score_in_order(pixels, &mut scratches, |pixels, scratch| {
                    Frame::packed(pixels, width, height, PixelFormat::Gray8)
                        .map_err(flowgate_edge::Error::from)
                        .and_then(|frame| gate.score(&frame, scratch))
                });
                for (frame, verdict) in (first..).zip(verdicts) {
                    match verdict {
                        Ok(verdict) => {
                            let scored = Scored {
                                source: &source,
                                frame,
                                verdict,
                                origin: Origin::Idx,
                            };
                            visit(scored, console)?;
                        }
                        Err(error) => console.fail(format!("{source}: frame {frame}: {error}")),
                    }
                    console.tick();
                }
                first += filled as u64;
                if filled < batch.len() {
                    break;
                }
            }
            if let Some(error) = failure {
                console.fail(error);
            }
        }
        Input::Raw {
            name,
            reader,
            geometry,
            luma_range,
        } => {
            let scratch = scratches.first_mut().ok_or_else(|| anyhow!("no scratch"))?;
            let label = if name == "-" { "stdin" } else { &name };
            check_uniform_size(gate, label, geometry.width(), geometry.height())?;
            let mut frames = RawFrames::new(reader, geometry);
            let mut buffer = Vec::with_capacity(geometry.frame_len());
            loop {
                let (frame, bytes) = match frames.next_frame(&mut buffer) {
                    Ok(Some(next)) => next,
                    Ok(None) => break,
                    Err(error) => {
                        console.fail(format!("{label}: {error}"));
                        break;
                    }
                };
                let verdict = geometry
                    .frame(bytes)
                    .map_err(flowgate_edge::Error::from)
                    .and_then(|view| gate.score(&view.with_luma_range(luma_range), scratch));
                match verdict {
                    Ok(verdict) => {
                        let scored = Scored {
                            source: &name,
                            frame,
                            verdict,
                            origin: Origin::Raw(bytes),
                        };
                        visit(scored, console)?;
                    }
                    Err(error) => console.fail(format!("{label}: frame {frame}: {error}")),
                }
            }
        }
    }
    Ok(())
}

/// Reads, decodes and scores one image file; the error names the file.
fn score_image(
    gate: &Gate<'_>,
    path: &Path,
    channels: u32,
    scratch: &mut [f32],
) -> std::result::Result<Verdict, String> {
    let image = image::read_image(path, channels).map_err(|error| error.to_string())?;
    image
        .frame()
        .map_err(flowgate_edge::Error::from)
        .and_then(|frame| gate.score(&frame, scratch))
        .map_err(|error| format!("{}: {error}", path.display()))
}

/// The output: a file (`--out`) or stdout, buffered, waiting out a non-blocking stdout
/// that is full.
fn open_output(out: Option<&Path>) -> Result<Box<dyn Write>> {
    Ok(match out {
        Some(path) => Box::new(BufWriter::new(
            File::create(path).with_context(|| format!("{}: cannot create", path.display()))?,
        )),
        None => Box::new(BufWriter::new(Patient::new(io::stdout().lock()))),
    })
}

fn score(args: &ScoreArgs, console: &mut Console) -> Result<()> {
    let model_path = &args.input.model;
    let (limits, _) = args.input.limits.limits()?;
    let model = read_model(model_path, limits.max_memory_bytes)?;
    let gate = load_scoring_gate(&args.input, &model, limits)?;
    let input = open_input(&args.input)?;
    console.allow_bar(args.out.as_deref());
    let live = matches!(input, Input::Raw { .. });
    let out_name = output_name(args.out.as_deref());
    let mut report = Report::new(open_output(args.out.as_deref())?, args.format)
        .with_context(|| format!("cannot write {out_name}"))?;
    let threads = usize::from(args.input.threads);
    for_each_frame(&gate, input, threads, console, |scored, _| {
        report
            .row(scored.source, scored.frame, &scored.verdict)
            .and_then(|()| if live { report.flush() } else { Ok(()) })
            .with_context(|| format!("cannot write {out_name}"))
    })?;
    report
        .finish()
        .with_context(|| format!("cannot write {out_name}"))?;
    Ok(())
}

fn gate(args: &GateArgs, console: &mut Console) -> Result<()> {
    let model_path = &args.input.model;
    let (limits, _) = args.input.limits.limits()?;
    let model = read_model(model_path, limits.max_memory_bytes)?;
    let gate = load_scoring_gate(&args.input, &model, limits)?;
    let Some(threshold) = gate.model().threshold.as_ref().map(|t| t.ood_score) else {
        bail!(
            "{}: the model has no calibrated threshold, so `gate` cannot decide; calibrate it, or use `score` for scores alone",
            model_path.display()
        );
    };
    let input = open_input(&args.input)?;
    if matches!(input, Input::Raw { .. }) && args.out.is_none() && io::stdout().is_terminal() {
        bail!(
            "refusing to write raw frames to a terminal: pipe stdout to the downstream model or use --out FILE"
        );
    }
    console.allow_bar(args.out.as_deref());
    let out_name = output_name(args.out.as_deref());
    let mut out = open_output(args.out.as_deref())?;
    let mut counts = GateCounts::default();
    let mut alarm = args.confirm.map(Alarm::new);
    let mut events = match &args.events {
        Some(path) => Some(BufWriter::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("{}: cannot open", path.display()))?,
        )),
        None => None,
    };
    let threads = usize::from(args.input.threads);
    let result = for_each_frame(&gate, input, threads, console, |scored, console| {
        counts.scored += 1;
        let rejected = scored.verdict.decision == Some(Decision::Reject);
        if let Some(event) = alarm
            .as_mut()
            .and_then(|alarm| alarm.observe(counts.scored - 1, rejected))
        {
            let line = event.to_json(scored.source);
            console.note(&line);
            if let (Some(events), Some(path)) = (events.as_mut(), args.events.as_ref()) {
                writeln!(events, "{line}")
                    .and_then(|()| events.flush())
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
        }
        if rejected {
            counts.rejected += 1;
            match scored.verdict.fault {
                Some(fault) => console.note(format_args!(
                    "{} {}: {} ({})",
                    decision_name(Decision::Reject),
                    scored.name(),
                    fault_text(fault),
                    scored.verdict.ood_score,
                )),
                None => console.note(format_args!(
                    "{} {}: ood score {:.6} > threshold {threshold}",
                    decision_name(Decision::Reject),
                    scored.name(),
                    scored.verdict.ood_score,
                )),
            }
            return Ok(());
        }
        counts.passed += 1;
        match scored.origin {
            Origin::Raw(bytes) => out.write_all(bytes).and_then(|()| out.flush()),
            Origin::Image(path) => writeln!(out, "{}", path.display()),
            Origin::Idx => writeln!(out, "{}", scored.frame),
        }
        .with_context(|| format!("cannot write {out_name}"))
    });
    let result = result.and_then(|()| {
        out.flush()
            .with_context(|| format!("cannot write {out_name}"))
    });
    if args.summary {
        console.note(format_args!(
            "flowgate-edge gate: {} frames scored: {} passed on, {} held back; {} inputs unreadable",
            counts.scored, counts.passed, counts.rejected, console.failed
        ));
    }
    result
}

fn calibrate(args: &CalibrateArgs, console: &mut Console) -> Result<()> {
    let model_path = &args.input.model;
    let (limits, _) = args.input.limits.limits()?;
    let model = read_model(model_path, limits.max_memory_bytes)?;
    let gate = load_scoring_gate(&args.input, &model, limits)?;
    let input = open_input(&args.input)?;
    let mut bits_per_dim = Vec::new();
    let threads = usize::from(args.input.threads);
    console.allow_bar(Some(&args.out));
    for_each_frame(&gate, input, threads, console, |scored, _| {
        bits_per_dim.push(scored.verdict.bits_per_dim);
        Ok(())
    })?;
    if console.failed > 0 {
        bail!(
            "{} inputs could not be read or scored (reported above): calibrate only on frames that all score",
            console.failed
        );
    }
    let input_name = args.input.input.display().to_string();
    let note = calibrate::note(&input_name, args.rate, bits_per_dim.len());
    let done = recalibrate(gate.model(), &bits_per_dim, args.score, args.rate, &note)
        .with_context(|| format!("{input_name}: cannot calibrate"))?;
    write_atomically(&args.out, &done.file)?;
    console.note(format_args!(
        "flowgate-edge calibrate: {} frames: threshold {} on {:?}, {} of them above it ({:.2}%, target {:.2}%); wrote {}",
        done.frames,
        done.threshold,
        done.score,
        done.above,
        100.0 * done.above as f64 / done.frames as f64,
        100.0 * args.rate,
        args.out.display()
    ));
    if (done.frames as f64) * args.rate < 1.0 {
        console.note(format_args!(
            "flowgate-edge calibrate: warning: {} frames at rate {} leave less than one frame above the threshold; use {} or more for a meaningful one",
            done.frames,
            args.rate,
            (1.0 / args.rate).ceil()
        ));
    }
    Ok(())
}

/// Writes `bytes` to a temporary file in `path`'s folder and renames it over `path`: a
/// crash, a full disk or a kill leaves the old file whole.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let folder = path
        .parent()
        .filter(|folder| !folder.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(folder)
        .with_context(|| format!("{}: cannot create a temporary file", folder.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.as_file().sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// What `gate` did with the frames it scored.
#[derive(Debug, Default)]
struct GateCounts {
    scored: u64,
    passed: u64,
    rejected: u64,
}

/// How a fault reads on stderr.
fn fault_text(fault: Fault) -> &'static str {
    match fault {
        Fault::NonFiniteScore => "non-finite score, rejected whatever the threshold",
        _ => "not judgeable, rejected",
    }
}

fn output_name(out: Option<&Path>) -> String {
    out.map_or_else(|| "stdout".into(), |path| path.display().to_string())
}

fn inspect(path: &Path, limit_args: &LimitArgs) -> Result<()> {
    let (limits, board) = limit_args.limits()?;
    // Shown whatever its size: the report says which limit it exceeds.
    let bytes = read_model(path, u64::MAX)?;
    let gate = Gate::with_limits(&bytes, Limits::UNLIMITED)
        .with_context(|| format!("{}", path.display()))?;
    let mut out = BufWriter::new(io::stdout().lock());
    describe_model(&gate, bytes.len(), &mut out)?;
    let fits = match limits
        .check_memory(gate.memory_bytes())
        .and_then(|()| limits.check_macs(gate.summary().macs_per_frame))
    {
        Ok(()) => "fits".to_string(),
        Err(error) => format!("EXCEEDS: {error}"),
    };
    writeln!(
        out,
        "limits       {} ({} bytes of memory, {} MACs per frame): {fits}",
        board.map_or_else(|| "default".to_string(), |name| format!("board {name}")),
        limits.max_memory_bytes,
        limits.max_macs_per_frame
    )?;
    out.flush().context("cannot write stdout")?;
    Ok(())
}

/// The model's layers, sizes and threshold, as `inspect` prints them.
fn describe_model(gate: &Gate<'_>, file_bytes: usize, out: &mut impl Write) -> Result<()> {
    let model = gate.model();
    let summary = gate.summary();
    let input = model.input;
    writeln!(out, "model        {}", model.name)?;
    if !model.provenance.is_empty() {
        writeln!(out, "provenance   {}", model.provenance)?;
    }
    writeln!(
        out,
        "input        {}x{}x{} ({:?}, resize {:?})",
        input.channels, input.height, input.width, input.preprocess, input.resize
    )?;
    writeln!(
        out,
        "layers       {} ({} couplings)",
        summary.flow_layers, summary.couplings
    )?;
    for (index, layer) in model.flow.iter().enumerate() {
        let layer = layer.context("flow layer")?;
        writeln!(out, "  {index:>3}  {}", describe(&layer))?;
    }
    writeln!(out, "parameters   {}", summary.parameters)?;
    writeln!(
        out,
        "weights      {} bytes ({} f32 tensors, {} int8 tensors); file {} bytes",
        summary.weight_bytes, summary.f32_tensors, summary.int8_tensors, file_bytes
    )?;
    if summary.embedded {
        writeln!(
            out,
            "density      over a {}-dim embedding (bits/dim count its dims)",
            summary.density_dims
        )?;
    }
    writeln!(out, "MACs/frame   {}", summary.macs_per_frame)?;
    writeln!(
        out,
        "scratch      {} bytes ({} f32)",
        gate.scratch_len() * 4,
        gate.scratch_len()
    )?;
    writeln!(
        out,
        "plan         {} bytes (weights packed for the kernels); {} bytes in all with file and scratch",
        gate.plan_memory().bytes(),
        gate.memory_bytes()
    )?;
    writeln!(out, "score        {:?}", model.score)?;
    if let (Some(detail), Some(costs), Some(patch)) =
        (&model.detail, summary.detail, gate.patch_model())
    {
        writeln!(
            out,
            "detail       {}x{} frames at the camera's size: {}x{} grid of {}x{} patches, {} layers, {} MACs/patch",
            detail.frame_width,
            detail.frame_height,
            detail.columns,
            detail.rows,
            costs.patch.0,
            costs.patch.1,
            patch.flow.len(),
            costs.macs_per_patch
        )?;
        writeln!(
            out,
            "combined     score = max((frame score - {}) / {}, |patch bits/dim - {}| / {})",
            detail.frame.center, detail.frame.spread, detail.detail.center, detail.detail.spread
        )?;
    }
    match &model.threshold {
        Some(threshold) => writeln!(
            out,
            "threshold    reject when score > {} (target false-reject rate {}, {} calibration frames)",
            threshold.ood_score, threshold.target_false_reject_rate, threshold.calibration_frames
        )?,
        None => writeln!(
            out,
            "threshold    none (uncalibrated: scores only, no decisions)"
        )?,
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
        FlowLayer::Embed(embed) => {
            format!("extractor    network of {} nodes", embed.net.len())
        }
    }
}

fn flag(reverse: bool) -> &'static str {
    if reverse { " (reversed)" } else { "" }
}
