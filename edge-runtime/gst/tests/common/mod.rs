//! What the element's tests share: real pipelines run to the end, what came out of them, the
//! committed camera gate and the models the tests write, and `flowgate-edge score` on the
//! same frames.
#![allow(dead_code)]

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, Once, OnceLock};
use std::time::Duration;

use gst::prelude::*;
use gst_video::{VideoFrameExt, VideoFrameRef};
use gstflowgate::verdict::{self, BufferVerdict, Rejection};

/// Initialises GStreamer and registers the element from this build (not from any
/// GST_PLUGIN_PATH), once per test binary.
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().expect("GStreamer initialises");
        gstflowgate::plugin_register_static().expect("the plugin registers");
    });
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The committed camera gate.
pub fn camera_model() -> PathBuf {
    repo_root().join("models/camera-vtest.fgm")
}

/// The real camera: `vtest.avi`, 795 frames of 768x576 (`bash scripts/fetch-data.sh`).
pub fn vtest() -> PathBuf {
    let data = std::env::var_os("FLOWGATE_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("data"));
    let path = data.join("opencv/vtest.avi");
    assert!(
        path.is_file(),
        "{} is missing: run `bash scripts/fetch-data.sh`",
        path.display()
    );
    path
}

/// A folder for this test's files.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("flowgate-gst")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    dir
}

/// What a pipeline did, from start to EOS or its first error.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The verdict on every buffer that reached the `appsink` named `out`, in order.
    pub passed: Vec<Option<BufferVerdict>>,
    /// The element's rejection messages, in order.
    pub rejections: Vec<Rejection>,
    /// Warning messages' texts.
    pub warnings: Vec<String>,
    /// The first error's text (and its debug details), if the pipeline failed.
    pub error: Option<String>,
}

impl Outcome {
    pub fn ok(self) -> Self {
        assert_eq!(self.error, None, "the pipeline failed");
        self
    }

    /// The verdicts that came out, every buffer carrying one.
    pub fn verdicts(&self) -> Vec<BufferVerdict> {
        self.passed
            .iter()
            .map(|verdict| verdict.expect("every buffer the element passes carries a verdict"))
            .collect()
    }
}

/// Runs `description` (a gst-launch line ending in `appsink name=out`) to the end. With
/// `frames_to`, every buffer that comes out is also written there, its planes packed row by
/// row as `flowgate-edge --raw` reads them ([`Packing`]).
pub fn run(description: &str, frames_to: Option<(&Path, Packing)>) -> Outcome {
    init();
    let pipeline = gst::parse::launch(description)
        .unwrap_or_else(|error| panic!("cannot build `{description}`: {error}"))
        .downcast::<gst::Pipeline>()
        .expect("a pipeline");
    let sink = pipeline
        .by_name("out")
        .expect("an appsink named out")
        .downcast::<gst_app::AppSink>()
        .expect("out is an appsink");
    let passed = Arc::new(Mutex::new(Vec::new()));
    let mut writer = frames_to.map(|(path, packing)| {
        let file = File::create(path).expect("the frames file");
        (BufWriter::new(file), packing)
    });
    let collected = Arc::clone(&passed);
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
                collected
                    .lock()
                    .expect("not poisoned")
                    .push(verdict::read(buffer));
                if let Some((writer, packing)) = writer.as_mut() {
                    let caps = sample.caps().ok_or(gst::FlowError::NotNegotiated)?;
                    let info = gst_video::VideoInfo::from_caps(caps)
                        .map_err(|_| gst::FlowError::NotNegotiated)?;
                    let frame = VideoFrameRef::from_buffer_ref_readable(buffer, &info)
                        .map_err(|_| gst::FlowError::Error)?;
                    packing.write(&frame, writer);
                    writer.flush().expect("the frames file is written");
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );

    let bus = pipeline.bus().expect("a pipeline has a bus");
    let mut outcome = Outcome::default();
    match pipeline.set_state(gst::State::Playing) {
        Ok(_) => {}
        // The error message on the bus says why.
        Err(_) => outcome.error = Some(String::from("(no error message)")),
    }
    let deadline = Duration::from_secs(300);
    let mut finished = false;
    while !finished {
        let Some(message) = bus.timed_pop(gst::ClockTime::from_seconds(deadline.as_secs())) else {
            panic!("`{description}` neither finished nor failed within {deadline:?}");
        };
        match message.view() {
            gst::MessageView::Eos(_) => finished = true,
            gst::MessageView::Error(error) => {
                outcome.error = Some(format!("{} ({:?})", error.error(), error.debug()));
                finished = true;
            }
            gst::MessageView::Warning(warning) => {
                outcome
                    .warnings
                    .push(format!("{} ({:?})", warning.error(), warning.debug()))
            }
            _ => {
                if let Some(rejection) = Rejection::from_message(&message) {
                    outcome.rejections.push(rejection);
                }
            }
        }
    }
    pipeline
        .set_state(gst::State::Null)
        .expect("the pipeline stops");
    outcome.passed = std::mem::take(&mut *passed.lock().expect("not poisoned"));
    outcome
}

/// How a frame's planes are written for `flowgate-edge --raw`: packed rows (no stride
/// padding) of the planes listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packing {
    /// Plane 0 only, `bytes_per_pixel` bytes a pixel (gray8, rgb8, bgr8, yuyv; I420's luma).
    Plane0 { bytes_per_pixel: usize },
    /// NV12's luma and interleaved chroma planes.
    Nv12,
}

impl Packing {
    fn write(&self, frame: &VideoFrameRef<&gst::BufferRef>, out: &mut impl Write) {
        let (width, height) = (frame.width() as usize, frame.height() as usize);
        let mut plane = |index: u32, row_bytes: usize, rows: usize| {
            let data = frame.plane_data(index).expect("a mapped plane");
            let stride = frame.plane_stride()[index as usize] as usize;
            for row in 0..rows {
                out.write_all(&data[row * stride..row * stride + row_bytes])
                    .expect("the frames file is written");
            }
        };
        match *self {
            Packing::Plane0 { bytes_per_pixel } => plane(0, width * bytes_per_pixel, height),
            Packing::Nv12 => {
                plane(0, width, height);
                plane(1, width.div_ceil(2) * 2, height.div_ceil(2));
            }
        }
    }
}

/// One row of `flowgate-edge score`'s CSV.
#[derive(Debug, Clone, PartialEq)]
pub struct CliRow {
    pub frame: u64,
    pub bits_per_dim: String,
    pub decision: String,
    pub fault: String,
}

/// The `flowgate-edge` binary: `$FLOWGATE_EDGE`, else the main workspace's release build.
pub fn flowgate_edge() -> PathBuf {
    let path = std::env::var_os("FLOWGATE_EDGE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/release/flowgate-edge"));
    assert!(
        path.is_file(),
        "{} is missing: `cargo build --release -p flowgate-edge` at the repository root, or set FLOWGATE_EDGE",
        path.display()
    );
    path
}

/// `flowgate-edge score` of raw frames in `file`.
pub fn cli_score(
    model: &Path,
    file: &Path,
    size: (u32, u32),
    pixel: &str,
    extra: &[&str],
) -> Vec<CliRow> {
    let output = Command::new(flowgate_edge())
        .arg("score")
        .arg("--model")
        .arg(model)
        .arg("--input")
        .arg(file)
        .args(["--raw", &format!("{}x{}", size.0, size.1), "--pixel", pixel])
        .args(extra)
        .output()
        .expect("flowgate-edge runs");
    assert!(
        output.status.success(),
        "flowgate-edge score failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("UTF-8")
        .lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            CliRow {
                frame: fields[1].parse().expect("a frame number"),
                bits_per_dim: fields[3].to_owned(),
                decision: fields[5].to_owned(),
                fault: fields[6].to_owned(),
            }
        })
        .collect()
}

/// Checks the element's verdicts against `flowgate-edge`'s rows, frame by frame: the same
/// decision and fault, and the same bits/dim to the CLI's six decimals. Returns (accepted,
/// rejected).
pub fn assert_same_as_cli(element: &[BufferVerdict], cli: &[CliRow]) -> (usize, usize) {
    assert_eq!(element.len(), cli.len(), "frames scored");
    for (index, (ours, theirs)) in element.iter().zip(cli).enumerate() {
        let decision = verdict::decision_name(ours.verdict.decision);
        let fault = ours.verdict.fault.map_or("", |fault| fault.name());
        assert_eq!(
            (
                ours.frame_number,
                format!("{:.6}", ours.verdict.bits_per_dim),
                decision,
                fault
            ),
            (
                theirs.frame,
                theirs.bits_per_dim.clone(),
                theirs.decision.as_str(),
                theirs.fault.as_str()
            ),
            "frame {index}"
        );
    }
    let accepted = cli.iter().filter(|row| row.decision == "accept").count();
    (accepted, cli.len() - accepted)
}

/// Frames of `vtest.avi` as PNG files `0000.png`, ...: 40 normal frames (every 20th, from
/// frame 0), then the same 40 turned upside down (a knocked camera), made once per test
/// binary with GStreamer itself.
pub fn png_frames() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        init();
        let dir = temp_dir("png-frames");
        // `video-direction`, not `method`: GStreamer 1.22's videoflip ignores the deprecated
        // `method` set from a launch line.
        for (direction, first_index) in [("identity", 0), ("180", 40)] {
            let description = format!(
                "filesrc location={} ! decodebin ! videoconvert ! videorate \
                 ! video/x-raw,framerate=1/2 ! videoflip video-direction={direction} ! pngenc \
                 ! multifilesink index={first_index} location={}/%04d.png",
                vtest().display(),
                dir.display()
            );
            let pipeline = gst::parse::launch(&description).expect("the PNG pipeline");
            pipeline.set_state(gst::State::Playing).expect("it plays");
            let bus = pipeline.bus().expect("a bus");
            let message = bus
                .timed_pop_filtered(
                    gst::ClockTime::from_seconds(300),
                    &[gst::MessageType::Eos, gst::MessageType::Error],
                )
                .expect("the PNG pipeline ends");
            assert!(
                matches!(message.view(), gst::MessageView::Eos(_)),
                "{message:?}"
            );
            pipeline.set_state(gst::State::Null).expect("it stops");
        }
        dir
    })
}

/// `multifilesrc` over all 80 [`png_frames`], decoded.
pub fn png_source() -> String {
    png_source_of(0, 79)
}

/// `multifilesrc` over [`png_frames`] `first..=last`, decoded.
pub fn png_source_of(first: u32, last: u32) -> String {
    format!(
        "multifilesrc location={}/%04d.png index={first} stop-index={last} \
         caps=image/png,framerate=10/1 ! pngdec",
        png_frames().display()
    )
}

/// Writes a model file and returns its path.
pub fn write_model(dir: &Path, name: &str, model: &flowgate_shared::Model<'_>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, flowgate_shared::encode(model).expect("encodes")).expect("written");
    path
}

/// The camera gate without its threshold: scores, but no decisions.
pub fn uncalibrated_camera_model(dir: &Path) -> PathBuf {
    let bytes = std::fs::read(camera_model()).expect("the camera gate");
    let mut model = flowgate_shared::decode(&bytes).expect("valid").model;
    model.threshold = None;
    write_model(dir, "uncalibrated.fgm", &model)
}

/// The 1x4x4 example model that takes only 4x4 frames.
pub fn exact_size_model(dir: &Path) -> PathBuf {
    let mut model = flowgate_shared::example::tiny_model();
    model.input.resize = flowgate_shared::Resize::Exact;
    write_model(dir, "exact-4x4.fgm", &model)
}

/// The example model with every weight that is not a log-scale pushed to 1e30 (its sign
/// kept) and a threshold no finite score reaches: valid, loads, and its activations
/// overflow to NaN on some frames (as in edge-runtime/tests/fail_closed.rs).
pub fn hostile_model(dir: &Path) -> PathBuf {
    let mut model = flowgate_shared::example::tiny_model();
    model.threshold.as_mut().expect("a threshold").ood_score = f32::MAX;
    let mut file = flowgate_shared::encode(&model).expect("encodes");
    let ranges = flowgate_shared::tamper::f32_value_ranges(&file).expect("ranges");
    for range in ranges.into_iter().filter(|range| range.len() > 8) {
        for value in file[range].chunks_exact_mut(4) {
            let old = f32::from_le_bytes(value.try_into().expect("4 bytes"));
            value.copy_from_slice(&(old.signum() * 1e30).to_le_bytes());
        }
    }
    flowgate_shared::tamper::reseal(&mut file).expect("resealed");
    let path = dir.join("hostile.fgm");
    std::fs::write(&path, file).expect("written");
    path
}
