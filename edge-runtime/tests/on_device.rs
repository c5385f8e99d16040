//! What `flowgate-edge` does on the board besides scoring: recalibrating a gate from normal
//! frames, raising a stream-level alarm, and scoring on several threads.

mod common;

use std::path::Path;

use common::*;
use flowgate_shared::calibration;

/// Frames for calibration: the fixture frames and their variations (160 frames, 6x4).
fn normal_frames() -> Vec<Vec<u8>> {
    (0..160u32)
        .map(|k| {
            frames()[(k % 8) as usize]
                .iter()
                .enumerate()
                .map(|(i, &v)| v.wrapping_add(((k * 7 + i as u32 * 3) % 5) as u8))
                .collect()
        })
        .collect()
}

#[test]
fn calibrate_sets_the_trainers_threshold_and_writes_a_whole_file() {
    let dir = temp_dir("calibrate");
    let model = tiny_model_file(&dir, None);
    let frames = normal_frames();
    let idx = dir.join("normal-idx3-ubyte");
    std::fs::write(&idx, idx_file(&frames)).unwrap();
    let idx = idx.to_str().unwrap();
    let out = dir.join("recalibrated.fgm");
    let out_arg = out.to_str().unwrap();

    let run = run_edge(
        &[
            "calibrate",
            "-m",
            &model,
            "-i",
            idx,
            "--rate",
            "0.05",
            "-o",
            out_arg,
        ],
        b"",
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stderr.contains("160 frames"), "{}", run.stderr);

    // The threshold is the shared definition's on the same scores.
    let table = run_edge(&["score", "-m", &model, "-i", idx], b"").rows();
    let mut bpd: Vec<f64> = table.iter().map(|row| row[3].parse().unwrap()).collect();
    let bytes = std::fs::read(&out).unwrap();
    let recalibrated = flowgate_shared::decode(&bytes).unwrap().model;
    let threshold = recalibrated.threshold.clone().unwrap();
    let expected = calibration::calibrate(&mut bpd, 0.05).unwrap();
    // The CSV rounds to 6 decimals; the runtime's own scores set the file's threshold.
    assert!((threshold.ood_score - expected.ood_score).abs() < 1e-5);
    assert_eq!(threshold.calibration_frames, 160);
    assert!(
        recalibrated
            .provenance
            .contains("flowgate-edge calibrate --rate 0.05")
    );

    // Gated with the new model, about 5% of these frames are rejected (8 of 160).
    let run = run_edge(&["gate", "-m", out_arg, "-i", idx], b"");
    assert_eq!(run.code, Some(0), "{run:?}");
    let rejected = run.stderr.lines().count();
    assert_eq!(rejected, 8, "{}", run.stderr);

    // Recalibrating in place replaces the file whole; a failure leaves it untouched.
    let run = run_edge(
        &[
            "calibrate",
            "-m",
            out_arg,
            "-i",
            idx,
            "--rate",
            "0.2",
            "-o",
            out_arg,
        ],
        b"",
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let before = std::fs::read(&out).unwrap();
    assert_ne!(before, bytes);
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let run = run_edge(
        &[
            "calibrate",
            "-m",
            out_arg,
            "-i",
            empty.to_str().unwrap(),
            "-o",
            out_arg,
        ],
        b"",
    );
    assert_eq!(run.code, Some(2), "{run:?}");
    assert_eq!(std::fs::read(&out).unwrap(), before);
    let run = run_edge(
        &[
            "calibrate",
            "-m",
            out_arg,
            "-i",
            idx,
            "--rate",
            "1.5",
            "-o",
            out_arg,
        ],
        b"",
    );
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains("strictly between 0 and 1"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read(&out).unwrap(), before);
    // No temporary file is left behind.
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .filter(|name| name.to_string_lossy().starts_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn calibrating_on_frames_the_model_cannot_score_is_refused() {
    let dir = temp_dir("calibrate-hostile");
    let hostile = {
        let mut file = flowgate_shared::encode(&flowgate_shared::example::tiny_model()).unwrap();
        flowgate_shared::tamper::inflate_weights(&mut file, 1e30, 2).unwrap();
        let path = dir.join("hostile.fgm");
        std::fs::write(&path, file).unwrap();
        path
    };
    let idx = dir.join("frames-idx3-ubyte");
    std::fs::write(&idx, idx_file(&normal_frames())).unwrap();
    let out = dir.join("out.fgm");
    let run = run_edge(
        &[
            "calibrate",
            "-m",
            hostile.to_str().unwrap(),
            "-i",
            idx.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("not finite"), "{}", run.stderr);
    assert!(!Path::new(&out).exists());
}

#[test]
fn the_alarm_is_raised_after_k_rejections_and_cleared_after_k_acceptances() {
    let dir = temp_dir("alarm");
    let model = tiny_model_file(&dir, Some(SPLITTING_THRESHOLD));
    let frames = frames();
    let decisions: Vec<bool> = run_edge(&raw_args(&model, "6x4", "gray8"), &frames.concat())
        .rows()
        .iter()
        .map(|row| row[5] == "reject")
        .collect();
    let accepted = decisions.iter().position(|r| !r).unwrap();
    let rejected = decisions.iter().position(|r| *r).unwrap();
    // A stream of 3 accepted frames (0-2), 4 rejected (3-6: the alarm at frame 5, the 3rd in
    // a row) and 4 accepted (7-10: cleared at frame 9).
    let pattern = [
        accepted, accepted, accepted, rejected, rejected, rejected, rejected,
    ]
    .into_iter()
    .chain([accepted; 4]);
    let stream: Vec<u8> = pattern.flat_map(|i| frames[i].clone()).collect();
    let events = dir.join("events.jsonl");
    let args = [
        "gate",
        "-m",
        &model,
        "-i",
        "-",
        "--raw",
        "6x4",
        "--pixel",
        "gray8",
        "--confirm",
        "3",
        "--events",
        events.to_str().unwrap(),
    ];
    let run = run_edge(&args, &stream);
    assert_eq!(run.code, Some(0), "{run:?}");
    let written = std::fs::read_to_string(&events).unwrap();
    assert_eq!(
        written,
        "{\"event\":\"alarm\",\"source\":\"-\",\"frame\":5,\"since\":3}\n\
         {\"event\":\"clear\",\"source\":\"-\",\"frame\":9,\"since\":7}\n"
    );
    for line in written.lines() {
        assert!(run.stderr.contains(line), "{}", run.stderr);
    }
}

#[test]
fn several_threads_give_the_same_table_in_the_same_order() {
    let dir = temp_dir("threads");
    let model = tiny_model_file(&dir, Some(SPLITTING_THRESHOLD));
    // 1000 idx frames (several batches per thread) and a folder of PNGs.
    let frames: Vec<Vec<u8>> = normal_frames().into_iter().cycle().take(1000).collect();
    let idx = dir.join("many-idx3-ubyte");
    std::fs::write(&idx, idx_file(&frames)).unwrap();
    let folder = png_folder(&dir);
    for input in [idx.to_str().unwrap(), folder.to_str().unwrap()] {
        let one = run_edge(&["score", "-m", &model, "-i", input], b"");
        assert_eq!(one.code, Some(0), "{one:?}");
        for threads in ["2", "3"] {
            let many = run_edge(
                &["score", "-m", &model, "-i", input, "--threads", threads],
                b"",
            );
            assert_eq!(many.code, Some(0), "{many:?}");
            assert_eq!(many.stdout(), one.stdout(), "{input} on {threads} threads");
        }
    }
    let run = run_edge(
        &[
            "score",
            "-m",
            &model,
            "-i",
            idx.to_str().unwrap(),
            "--threads",
            "0",
        ],
        b"",
    );
    assert_eq!(run.code, Some(2), "{run:?}");
}
