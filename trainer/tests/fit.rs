//! `flowgate fit` end to end on real footage (frames of data/opencv/vtest.avi): the gate
//! loads in the edge runtime with its threshold and scores the held-out frames, the report
//! names the least normal training frames, a second run resumes without training and writes
//! the same bytes, and bad inputs are refused with their own errors before anything is
//! written.

#![allow(clippy::single_range_in_vec_init)] // a held-out layout of one block

use std::path::{Path, PathBuf};
use std::time::Instant;

use flowgate_trainer::distil::{Perturbation, PerturbationKinds};
use flowgate_trainer::fit::{self, FitError, FitOptions, Split, SplitKind};
use flowgate_trainer::frames::{FrameRequest, extract_frames};

/// Steps of each training: enough to run every stage, few enough for a test.
const STEPS: usize = 6;

fn vtest() -> PathBuf {
    let path = flowgate_trainer::data::default_data_dir().join("opencv/vtest.avi");
    assert!(
        path.is_file(),
        "{} is missing: run bash scripts/fetch-data.sh",
        path.display()
    );
    path
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flowgate-fit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creates the scratch folder");
    dir
}

/// Frames `0..count` of vtest.avi at their native 768x576, colour, as the user's folder.
fn native_frames(dir: &Path, count: u64) -> PathBuf {
    let out = dir.join("footage");
    extract_frames(&FrameRequest {
        video: vtest(),
        out: out.clone(),
        size: None,
        gray: false,
        first: 0,
        last: Some(count - 1),
        overwrite: true,
    })
    .expect("ffmpeg extracts vtest.avi's frames");
    out
}

fn options(input: &Path, out: &Path) -> FitOptions {
    FitOptions {
        input: input.to_path_buf(),
        out: out.to_path_buf(),
        work: None,
        rate: 0.01,
        board: None,
        steps: Some(STEPS),
        teacher_config: None,
        student_config: None,
        progress: false,
        detail: true,
        minutes: None,
        frames: None,
        perturbations: PerturbationKinds::ALL,
        split: SplitKind::End,
        paste_objects: None,
        exposure_jitter: None,
    }
}

#[test]
fn fit_makes_a_calibrated_gate_with_its_report_and_a_rerun_resumes() {
    let dir = scratch("folder");
    let footage = native_frames(&dir, 48);
    let gate_path = dir.join("out/camera.fgm");
    let options = options(&footage, &gate_path);

    let started = Instant::now();
    let report = fit::fit(&options).expect("fit succeeds");
    let first_run = started.elapsed();
    assert_eq!((report.size.width, report.size.height), (32, 24), "4:3");
    assert_eq!(
        (report.split.train(), report.split.held_out()),
        (32, 16),
        "48 frames: the last 16 held out"
    );
    assert_eq!(report.split.layout.held_out, vec![32..48]);

    // The gate loads in the runtime, with a threshold, and judges the held-out frames as
    // calibration judged them.
    let bytes = std::fs::read(&gate_path).expect("the gate is written");
    let gate = flowgate_edge::Gate::new(&bytes).expect("the gate loads with the default limits");
    let threshold = gate
        .model()
        .threshold
        .as_ref()
        .expect("the gate is calibrated")
        .ood_score;
    // The gate decides on the combined score of its thumbnail and its native-resolution
    // detail branch; the report's threshold is the thumbnail's, its detail line the gate's.
    let detail = report
        .detail
        .as_deref()
        .expect("fit adds the detail branch");
    assert!(
        detail.contains(&format!("combined threshold {threshold:.4}")),
        "{detail}"
    );
    assert!(gate.patch_model().is_some());
    assert!(report.summary().contains("detail"));
    let input = gate.model().input;
    assert_eq!((input.width, input.height, input.channels), (32, 24, 1));
    let mut scratch = vec![0f32; gate.scratch_len()];
    let mut rejected = 0;
    // The held-out frames are the footage's last 16 files: score them as the camera delivers
    // them, at 768x576 in colour.
    let held_out: Vec<PathBuf> = report
        .split
        .layout
        .held_out_positions()
        .iter()
        .map(|i| footage.join(format!("frame-{i:06}.png")))
        .collect();
    assert_eq!(held_out.len(), report.held_out_scores.len());
    for (file, expected) in held_out.iter().zip(&report.held_out_scores) {
        let decoded = flowgate_edge::io::image::read_image(file, 1).expect("reads the frame");
        let frame = decoded.frame().expect("a frame");
        let verdict = gate.score(&frame, &mut scratch).expect("scores");
        assert!(verdict.bits_per_dim.is_finite());
        assert!(verdict.detail_bits_per_dim.is_some_and(f64::is_finite));
        // The report's scores come from the 4x frames in the work folder: the same area
        // averages up to rounding of the intermediate levels.
        assert!(
            (verdict.bits_per_dim - expected).abs() < 0.05,
            "{}: {} against {expected}",
            file.display(),
            verdict.bits_per_dim
        );
        if verdict.ood_score > f64::from(threshold) {
            rejected += 1;
        }
    }
    // 1% of 16 frames: calibration rejects at most the worst one or two.
    assert!(rejected <= 2, "{rejected} of 16 held-out frames rejected");

    // The report: beside the gate, with the histogram, naming the least normal frames.
    let html_path = dir.join("out/camera.report.html");
    let html = std::fs::read_to_string(&html_path).expect("the report is written");
    let png = image::open(dir.join("out/camera.report.png")).expect("the histogram is a PNG");
    assert!(png.width() > 100 && png.height() > 100);
    assert!(html.contains("camera.report.png"));
    assert_eq!(report.least_normal.len(), 10);
    for outlier in &report.least_normal {
        assert!(
            html.contains(&outlier.file),
            "{} not in the report",
            outlier.file
        );
        assert!(outlier.bits_per_dim >= report.least_normal[9].bits_per_dim);
    }
    let worst = report.train_scores.iter().copied().fold(f64::MIN, f64::max);
    assert_eq!(report.least_normal[0].bits_per_dim, worst);
    assert!(
        html.contains("MACs per frame") && html.contains(&report.cost.macs_per_frame.to_string())
    );
    assert_eq!(report.cost.file_bytes, bytes.len() as u64);
    assert_eq!(report.cost.memory_bytes, gate.memory_bytes());
    assert!(report.summary().contains("held out"));

    // Again: the frames are reused, no step is trained, and the gate is the same file.
    let started = Instant::now();
    let again = fit::fit(&options).expect("the rerun succeeds");
    let second_run = started.elapsed();
    assert!(again.frames_reused);
    for training in &again.trainings {
        assert!(training.contains(": 0 steps run now"), "{training}");
    }
    assert_eq!(std::fs::read(&gate_path).expect("still there"), bytes);
    assert!(
        second_run < first_run / 2,
        "the rerun took {second_run:?}, the first run {first_run:?}"
    );
    std::fs::remove_dir_all(&dir).expect("cleans up");
}

#[test]
fn a_video_is_read_through_ffmpeg_and_split_in_blocks() {
    let dir = scratch("video");
    // A 40-frame clip of which fit takes frames 8..40, with --split spread: 16 are held out in
    // two blocks, each ending one half; too few frames for a guard.
    let clip = dir.join("clip.avi");
    let status = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y", "-i"])
        .arg(vtest())
        .args(["-frames:v", "40", "-c:v", "mjpeg", "-q:v", "3"])
        .arg(&clip)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success());
    let gate_path = dir.join("clip.fgm");
    let mut options = options(&clip, &gate_path);
    options.work = Some(dir.join("work"));
    options.frames = Some(8..40);
    options.perturbations = PerturbationKinds::ALL.without(Perturbation::Occlusion);
    options.split = SplitKind::Spread;
    let report = fit::fit(&options).expect("fit succeeds on a video");
    assert_eq!((report.split.train(), report.split.held_out()), (16, 16));
    let (train, held_out) = report.split_lines();
    assert_eq!(
        train,
        "frame 8 .. frame 15, frame 24 .. frame 31 (16 frames)"
    );
    assert_eq!(
        held_out,
        "frame 16 .. frame 23, frame 32 .. frame 39 (16 frames)"
    );
    assert!(dir.join("work/frames/frame-000039.png").is_file());
    assert!(!dir.join("work/frames/frame-000007.png").exists());
    assert_eq!(
        flowgate_trainer::distil::recorded_perturbations(&dir.join("work/gate")),
        Some(PerturbationKinds::ALL.without(Perturbation::Occlusion)),
        "--without reaches the distillation"
    );
    // Past the clip's end: a typed error naming what the clip has.
    let error = fit::fit(&FitOptions {
        frames: Some(30..41),
        work: Some(dir.join("work-past-end")),
        ..options.clone()
    })
    .unwrap_err();
    match &error {
        FitError::FrameRange { range, available } => {
            assert_eq!((range.clone(), *available), (30..41, 40));
        }
        other => panic!("expected the frame range, got {other}"),
    }
    let frame = image::open(dir.join("work/frames/frame-000008.png")).expect("a frame");
    assert_eq!(
        (frame.width(), frame.height()),
        (128, 96),
        "4x the gate's 32x24"
    );
    assert!(gate_path.is_file() && dir.join("clip.report.html").is_file());
    std::fs::remove_dir_all(&dir).expect("cleans up");
}

#[test]
fn bad_inputs_are_refused_with_their_errors_and_leave_nothing_behind() {
    let dir = scratch("refused");
    let out = dir.join("gate.fgm");
    let nothing_written = |what: &str| {
        assert!(!out.exists(), "{what}: a gate was written");
        assert!(
            !dir.join("gate.fit").exists(),
            "{what}: a work folder was left"
        );
    };

    let error = fit::fit(&options(&dir.join("missing.avi"), &out)).unwrap_err();
    assert!(matches!(error, FitError::InputMissing(_)), "{error}");
    nothing_written("missing");

    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).expect("creates");
    std::fs::write(empty.join("notes.txt"), "no images here").expect("writes");
    let error = fit::fit(&options(&empty, &out)).unwrap_err();
    assert!(matches!(error, FitError::EmptyFolder(_)), "{error}");
    nothing_written("empty folder");

    let not_a_video = dir.join("notes.avi");
    std::fs::write(&not_a_video, "this is not a video").expect("writes");
    let error = fit::fit(&options(&not_a_video, &out)).unwrap_err();
    assert!(matches!(error, FitError::UnreadableVideo { .. }), "{error}");
    assert!(
        error.to_string().contains("cannot read it as a video"),
        "{error}"
    );
    nothing_written("not a video");

    let few = native_frames(&dir.join("few"), 20);
    let error = fit::fit(&options(&few, &out)).unwrap_err();
    match &error {
        FitError::TooFewFrames { found, needed, .. } => {
            assert_eq!((*found, *needed), (20, Split::MIN_FRAMES));
        }
        other => panic!("expected too few frames, got {other}"),
    }
    assert!(error.to_string().contains("at least 32"), "{error}");
    nothing_written("too few frames");

    let error = fit::fit(&FitOptions {
        frames: Some(10..21),
        ..options(&few, &out)
    })
    .unwrap_err();
    assert!(
        matches!(&error, FitError::FrameRange { available: 20, .. }),
        "{error}"
    );
    nothing_written("frames past the folder's end");

    let error = fit::fit(&options(&few, &dir)).unwrap_err();
    assert!(matches!(error, FitError::OutIsFolder(_)), "{error}");

    // A board whose MAC budget the recipe exceeds is refused before any training.
    let board = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../firmware-configs/raspberry-pi-4.toml"),
    )
    .expect("reads the Pi 4's config")
    .replace("name = \"raspberry-pi-4\"", "name = \"tiny-board\"")
    .replace(
        "max_macs_per_frame = 20_000_000",
        "max_macs_per_frame = 1_000_000",
    );
    let board_path = dir.join("tiny-board.toml");
    std::fs::write(&board_path, board).expect("writes");
    let mut with_board = options(&few, &out);
    with_board.board = Some(board_path);
    let started = Instant::now();
    let error = fit::fit(&with_board).unwrap_err();
    match &error {
        FitError::ExceedsBoard {
            board,
            limit,
            allowed,
            ..
        } => {
            assert_eq!(board, "tiny-board");
            assert_eq!(*limit, flowgate_edge::Limit::MacsPerFrame);
            assert_eq!(*allowed, 1_000_000);
        }
        other => panic!("expected the board's budget, got {other}"),
    }
    assert!(
        error.to_string().contains("multiply-accumulates"),
        "{error}"
    );
    assert!(started.elapsed().as_secs() < 10, "refused before training");
    nothing_written("board");
    std::fs::remove_dir_all(&dir).expect("cleans up");
}

#[test]
fn a_time_budget_stops_every_training_early_and_still_writes_a_working_gate() {
    let dir = scratch("minutes");
    let footage = native_frames(&dir, 40);
    let gate_path = dir.join("camera.fgm");
    let mut options = options(&footage, &gate_path);
    // The recipes' full step counts, and a budget the frame extraction alone exceeds: every
    // training stops after its first step.
    options.steps = None;
    options.minutes = Some(0.001);
    let started = Instant::now();
    let report = fit::fit(&options).expect("fit succeeds within its budget");
    assert!(
        started.elapsed().as_secs() < 120,
        "took {:?}: the budget did not stop the trainings",
        started.elapsed()
    );
    assert_eq!(report.trainings.len(), 2);
    for training in &report.trainings {
        assert!(
            training.contains("1 steps run now") && training.contains("stopped it after step 1"),
            "{training}"
        );
    }
    let bytes = std::fs::read(&gate_path).expect("the gate is written");
    let gate = flowgate_edge::Gate::new(&bytes).expect("loads");
    assert!(gate.model().threshold.is_some() && gate.patch_model().is_some());
    let error = fit::fit(&FitOptions {
        minutes: Some(-1.0),
        ..options.clone()
    })
    .unwrap_err();
    assert!(error.to_string().contains("--minutes"), "{error}");
    std::fs::remove_dir_all(&dir).expect("cleans up");
}
