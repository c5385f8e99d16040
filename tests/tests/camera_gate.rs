//! The committed camera gate (`models/camera-vtest.fgm`) on real frames, end to end: frames
//! are extracted from vtest.avi with `flowgate frames`' code, corrupted with `flowgate
//! corrupt`'s, and scored by the no_std gate as a camera would hand them over (any size; the
//! gate resizes).
//!
//! Checked: the model fits the Raspberry Pi 4 config it claims; its scores reproduce the
//! committed evaluation (`models/camera-vtest.eval.json`, written by `scripts/run.sh` from
//! `flowgate-edge score` CSVs); and full-size 768x576 frames get the same decisions as the
//! 128x96 ones. Needs scripts/fetch-data.sh (the video, and ffmpeg).

mod common;

use std::path::{Path, PathBuf};

use common::workspace;
use flowgate_edge::io::image::{list_folder, read_image};
use flowgate_edge::{Decision, Gate};
use flowgate_shared::board::BoardConfig;
use flowgate_trainer::corrupt::{Corruption, corrupt_folder};
use flowgate_trainer::eval::metrics;
use flowgate_trainer::frames::{FrameRequest, extract_frames};

fn model_bytes() -> Vec<u8> {
    std::fs::read(workspace().join("models/camera-vtest.fgm")).expect("models/camera-vtest.fgm")
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flowgate-camera-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn frames(out: &Path, size: Option<(u32, u32)>, first: u64, last: u64) {
    let video = flowgate_trainer::data::default_data_dir().join("opencv/vtest.avi");
    assert!(video.is_file(), "run scripts/fetch-data.sh first");
    extract_frames(&FrameRequest {
        video,
        out: out.to_path_buf(),
        size,
        gray: true,
        first,
        last: Some(last),
        overwrite: true,
    })
    .expect("ffmpeg extracts the frames (scripts/fetch-data.sh installs it)");
}

/// The gate's OOD scores and decisions for every image of a folder, read at its own size.
fn gate_folder(gate: &Gate<'_>, dir: &Path) -> (Vec<f64>, Vec<Decision>) {
    let mut scratch = vec![0f32; gate.scratch_len()];
    let mut scores = Vec::new();
    let mut decisions = Vec::new();
    for file in list_folder(dir).expect("lists") {
        let image = read_image(&file, 1).expect("reads");
        let verdict = gate
            .score(&image.frame().expect("frame"), &mut scratch)
            .expect("scores");
        scores.push(verdict.ood_score);
        decisions.push(verdict.decision.expect("a calibrated model decides"));
    }
    (scores, decisions)
}

fn rejected_share(decisions: &[Decision]) -> f64 {
    decisions.iter().filter(|&&d| d == Decision::Reject).count() as f64 / decisions.len() as f64
}

#[test]
fn committed_camera_gate_fits_its_board() {
    let bytes = model_bytes();
    let gate = Gate::new(&bytes).expect("valid model");
    let board = BoardConfig::load(workspace().join("firmware-configs/raspberry-pi-4.toml"))
        .expect("valid board config");
    let input = gate.model().input;
    let summary = gate.summary();
    assert_eq!(
        (input.channels, input.height, input.width),
        (board.model.channels, board.model.height, board.model.width),
        "the board config names another input size"
    );
    assert!(summary.macs_per_frame <= board.model.max_macs_per_frame);
    assert!(
        summary.int8_tensors > 0 && summary.int8_tensors >= summary.f32_tensors / 4,
        "expected int8 weights: {summary:?}"
    );
    board
        .fits(bytes.len(), gate.scratch_len() * 4)
        .expect("model and scratch fit the memory budget");
    assert!(
        gate.model().threshold.is_some(),
        "the shipped gate is calibrated"
    );
}

#[test]
fn committed_camera_gate_reproduces_its_evaluation() {
    let bytes = model_bytes();
    let gate = Gate::new(&bytes).expect("valid model");
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(workspace().join("models/camera-vtest.eval.json"))
            .expect("models/camera-vtest.eval.json"),
    )
    .expect("JSON");

    let root = scratch_dir("eval");
    let held_out = root.join("vtest-test");
    frames(&held_out, Some((128, 96)), 600, 794);
    let (normal_scores, normal_decisions) = gate_folder(&gate, &held_out);
    assert_eq!(normal_scores.len(), 195);
    let false_rejects = rejected_share(&normal_decisions);
    let recorded = expected["in_dist"]["rejected"].as_f64().expect("rejected");
    assert!(
        (false_rejects - recorded).abs() < 1e-9,
        "held-out false rejects {false_rejects} vs recorded {recorded}"
    );

    // The corruptions the raw likelihood of a flow gets wrong (constant and blurred frames
    // are *more* likely), and the subtle ones.
    for kind in [
        Corruption::Black,
        Corruption::Blur,
        Corruption::Noise,
        Corruption::Occlusion,
        Corruption::Shift,
        Corruption::Jpeg,
    ] {
        let dir = root.join(kind.name());
        corrupt_folder(&held_out, &dir, kind, 0).expect("corrupts");
        let (scores, decisions) = gate_folder(&gate, &dir);
        let auroc = metrics::auroc(&normal_scores, &scores).expect("AUROC");
        let rejected = rejected_share(&decisions);
        let row = expected["ood"]
            .as_array()
            .expect("ood rows")
            .iter()
            .find(|row| row["name"] == kind.name().as_str())
            .unwrap_or_else(|| panic!("no {} row in the committed evaluation", kind.name()));
        let (recorded_auroc, recorded_rejected) = (
            row["auroc"].as_f64().expect("auroc"),
            row["rejected"].as_f64().expect("rejected"),
        );
        // The committed numbers come from CSVs with 6 decimals: ties may break differently.
        assert!(
            (auroc - recorded_auroc).abs() <= 1e-3,
            "{}: AUROC {auroc:.4} vs recorded {recorded_auroc:.4}",
            kind.name()
        );
        assert!(
            (rejected - recorded_rejected).abs() <= 1.0 / 195.0 + 1e-9,
            "{}: rejected {rejected:.4} vs recorded {recorded_rejected:.4}",
            kind.name()
        );
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn full_size_frames_are_resized_by_the_gate() {
    let bytes = model_bytes();
    let gate = Gate::new(&bytes).expect("valid model");
    let root = scratch_dir("sizes");
    let (small, full) = (root.join("small"), root.join("full"));
    frames(&small, Some((128, 96)), 700, 719);
    frames(&full, None, 700, 719);
    let first = list_folder(&full).expect("lists")[0].clone();
    let image = read_image(&first, 1).expect("reads");
    assert_eq!((image.width, image.height), (768, 576));
    let (small_scores, small_decisions) = gate_folder(&gate, &small);
    let (full_scores, full_decisions) = gate_folder(&gate, &full);
    // ffmpeg's 6x6 area average, rounded, then the gate's 4x4, against the gate's 24x24 at
    // once: the levels differ by rounding only, so the scores stay close.
    let threshold = f64::from(
        gate.model()
            .threshold
            .as_ref()
            .expect("calibrated")
            .ood_score,
    );
    for (index, (a, b)) in small_scores.iter().zip(&full_scores).enumerate() {
        assert!(
            (a - b).abs() <= 0.1 * threshold.abs().max(1.0),
            "frame {}: {a:.4} at 128x96, {b:.4} at 768x576",
            700 + index
        );
    }
    let agree = small_decisions
        .iter()
        .zip(&full_decisions)
        .filter(|(a, b)| a == b)
        .count();
    assert!(agree >= 19, "decisions agree on only {agree} of 20 frames");
    let _ = std::fs::remove_dir_all(&root);
}
