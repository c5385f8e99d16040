//! `flowgate-edge`: the gate's command-line front end.

use std::fmt::Display;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use flowgate_edge::cli::report::{Format, Report, decision_name};
use flowgate_edge::io::idx::{self, IdxImages};
use flowgate_edge::io::image::{self, EXTENSIONS};
use flowgate_edge::io::raw::{RawFrames, RawGeometry, parse_size};
use flowgate_edge::kernels::KernelPath;
use flowgate_edge::{Decision, Frame, Gate, PixelFormat, Verdict};
use flowgate_shared::{FlowLayer, Mask, Resize};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

const EXIT_STATUS: &str = "\
Exit status:
  0  every input was read and scored (rejected frames are results, not errors)
  1  some inputs failed: each is reported on stderr, naming its file or frame number (an
     unreadable, corrupt or truncated image or idx file, a partial frame at the end of a
     raw stream); every other input was scored
  2  fatal: bad arguments, an unreadable or invalid model file (checksum mismatch,
     unsupported format version), an input path that does not exist or cannot be opened,
     a folder without images, an output that cannot be written, or `gate` with a model
     that has no threshold";

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
    /// Layers, parameters, MACs per frame, scratch bytes and threshold of a model file.
    #[command(after_help = EXIT_STATUS)]
    Inspect {
        /// The model file (*.fgm).
        model: PathBuf,
    },
    /// Scores frames: one row per frame with its log-likelihood, bits per dimension, OOD
    /// score and decision.
    ///
    /// Columns: source (the file, or `-` for stdin), frame (index within the source, from 0;
    /// 0 for a single image), log_likelihood (nats), bits_per_dim, ood_score (higher = more
    /// anomalous), decision (`accept`, `reject`, or empty / null when the model has no
    /// threshold). Frames of any size are resized to the model's input by the gate.
    #[command(after_help = EXIT_STATUS)]
    Score(ScoreArgs),
    /// Passes accepted frames on and holds rejected ones back.
    ///
    /// Raw frames (`--raw`): each accepted frame is written to stdout (or --out) byte for
    /// byte, unchanged, for the downstream model. Images and idx files: the path of each
    /// accepted image, or the index of each accepted idx image, one per line. Each rejected
    /// frame is reported on stderr as one line: `reject <frame>: ood score <s> > threshold
    /// <t>`. Frames that cannot be read or scored are not passed on. Needs a model with a
    /// calibrated threshold.
    #[command(after_help = EXIT_STATUS)]
    Gate(GateArgs),
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

    /// The convolutions' inner loops: `auto` picks the fastest this CPU runs (AVX2+FMA on
    /// x86_64 where present, NEON on aarch64); `scalar` is the portable reference. All give
    /// the same decisions; bits/dim may differ in the last digits (fused multiply-adds).
    #[arg(long, value_enum, value_name = "PATH", default_value_t = KernelsArg::Auto)]
    kernels: KernelsArg,
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
struct GateArgs {
    #[command(flatten)]
    input: InputArgs,

    /// Write the accepted frames (or paths, or indices) to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    out: Option<PathBuf>,
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
        // A closed stdout (`| head`) ends the run quietly, like other Unix filters.
        Err(error) if !is_broken_pipe(&error) => {
            eprintln!("flowgate-edge: {error:#}");
            ExitCode::from(2)
        }
        _ if console.failed > 0 => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    }
}

fn run(cli: Cli, console: &mut Console) -> Result<()> {
    match cli.command {
        Command::Inspect { model } => inspect(&model),
        Command::Score(args) => score(&args, console),
        Command::Gate(args) => gate(&args, console),
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|error| error.kind() == io::ErrorKind::BrokenPipe)
    })
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
            .suspend(|| eprintln!("flowgate-edge: {error:#}"));
    }

    /// A line on stderr that is not an error.
    fn note(&self, line: impl Display) {
        self.progress.suspend(|| eprintln!("{line}"));
    }
}

/// Where frames come from.
enum Input {
    /// Image files: a folder's, or one.
    Images(Vec<PathBuf>),
    /// An idx3-ubyte file, read when scoring starts.
    Idx(PathBuf),
    /// Raw frames from stdin (`name` = `-`) or a file.
    Raw {
        name: String,
        reader: Box<dyn Read>,
        geometry: RawGeometry,
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

/// The model file's bytes, which the gate borrows.
fn read_model(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn load_gate<'a>(path: &Path, bytes: &'a [u8]) -> Result<Gate<'a>> {
    Gate::new(bytes).with_context(|| format!("{}", path.display()))
}

/// The gate for scoring, on the kernels the user picked.
fn load_scoring_gate<'a>(args: &InputArgs, bytes: &'a [u8]) -> Result<Gate<'a>> {
    Ok(load_gate(&args.model, bytes)?.with_kernels(args.kernels.path())?)
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

/// Scores every frame of `input` with one scratch buffer and hands each verdict to `visit`.
/// Inputs that cannot be read or scored go to `console` and are skipped; errors from
/// `visit` (writing the output) are fatal.
fn for_each_frame(
    gate: &Gate<'_>,
    input: Input,
    console: &mut Console,
    mut visit: impl FnMut(Scored<'_>, &mut Console) -> Result<()>,
) -> Result<()> {
    let mut scratch = vec![0f32; gate.scratch_len()];
    let channels = gate.model().input.channels;
    match input {
        Input::Images(paths) => {
            console.start(paths.len());
            for path in &paths {
                let source = path.display().to_string();
                // The image errors name the file; the gate's do not.
                let verdict = image::read_image(path, channels)
                    .map_err(|error| error.to_string())
                    .and_then(|image| {
                        image
                            .frame()
                            .map_err(flowgate_edge::Error::from)
                            .and_then(|frame| gate.score(&frame, &mut scratch))
                            .map_err(|error| format!("{source}: {error}"))
                    });
                match verdict {
                    Ok(verdict) => {
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
        Input::Idx(path) => {
            let source = path.display().to_string();
            // A corrupt or truncated file is a failed input (its error names the file).
            let images: IdxImages = match idx::read_images(&path) {
                Ok(images) => images,
                Err(error) => {
                    console.fail(error);
                    return Ok(());
                }
            };
            let size =
                |dim: usize| u32::try_from(dim).map_err(|_| anyhow!("{source}: images too large"));
            let (width, height) = (size(images.cols)?, size(images.rows)?);
            check_uniform_size(gate, &source, width, height)?;
            console.start(images.count);
            for (index, pixels) in images.iter().enumerate() {
                let frame = index as u64;
                let verdict = Frame::packed(pixels, width, height, PixelFormat::Gray8)
                    .map_err(flowgate_edge::Error::from)
                    .and_then(|frame| gate.score(&frame, &mut scratch));
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
        }
        Input::Raw {
            name,
            reader,
            geometry,
        } => {
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
                    .and_then(|view| gate.score(&view, &mut scratch));
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

/// The output: a file (`--out`) or stdout, buffered.
fn open_output(out: Option<&Path>) -> Result<Box<dyn Write>> {
    Ok(match out {
        Some(path) => Box::new(BufWriter::new(
            File::create(path).with_context(|| format!("{}: cannot create", path.display()))?,
        )),
        None => Box::new(BufWriter::new(io::stdout().lock())),
    })
}

fn score(args: &ScoreArgs, console: &mut Console) -> Result<()> {
    let model_path = &args.input.model;
    let model = read_model(model_path)?;
    let gate = load_scoring_gate(&args.input, &model)?;
    let input = open_input(&args.input)?;
    console.allow_bar(args.out.as_deref());
    let live = matches!(input, Input::Raw { .. });
    let out_name = output_name(args.out.as_deref());
    let mut report = Report::new(open_output(args.out.as_deref())?, args.format)
        .with_context(|| format!("cannot write {out_name}"))?;
    for_each_frame(&gate, input, console, |scored, _| {
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
    let model = read_model(model_path)?;
    let gate = load_scoring_gate(&args.input, &model)?;
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
    for_each_frame(&gate, input, console, |scored, console| {
        if scored.verdict.decision == Some(Decision::Reject) {
            console.note(format_args!(
                "{} {}: ood score {:.6} > threshold {threshold}",
                decision_name(Decision::Reject),
                scored.name(),
                scored.verdict.ood_score,
            ));
            return Ok(());
        }
        match scored.origin {
            Origin::Raw(bytes) => out.write_all(bytes).and_then(|()| out.flush()),
            Origin::Image(path) => writeln!(out, "{}", path.display()),
            Origin::Idx => writeln!(out, "{}", scored.frame),
        }
        .with_context(|| format!("cannot write {out_name}"))
    })?;
    out.flush()
        .with_context(|| format!("cannot write {out_name}"))?;
    Ok(())
}

fn output_name(out: Option<&Path>) -> String {
    out.map_or_else(|| "stdout".into(), |path| path.display().to_string())
}

fn inspect(path: &Path) -> Result<()> {
    let bytes = read_model(path)?;
    let gate = load_gate(path, &bytes)?;
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
    if summary.embedded {
        println!(
            "density      over a {}-dim embedding (bits/dim count its dims)",
            summary.density_dims
        );
    }
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
        FlowLayer::Embed(embed) => {
            format!("extractor    network of {} nodes", embed.net.len())
        }
    }
}

fn flag(reverse: bool) -> &'static str {
    if reverse { " (reversed)" } else { "" }
}
