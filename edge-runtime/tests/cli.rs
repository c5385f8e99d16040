//! `flowgate-edge` as a user runs it.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use image::{DynamicImage, GrayImage, ImageFormat, RgbImage};

fn temp_model(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flowgate-edge-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn edge(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_flowgate-edge"))
        .args(args)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn inspect_describes_layers_costs_and_threshold() {
    let bytes = flowgate_shared::encode(&flowgate_shared::example::tiny_model()).unwrap();
    let summary = flowgate_shared::decode(&bytes).unwrap().summary;
    let gate = flowgate_edge::Gate::new(&bytes).unwrap();
    let path = temp_model("tiny.fgm", &bytes);
    let (ok, stdout, stderr) = edge(&["inspect", path.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("model        tiny"), "{stdout}");
    assert!(stdout.contains("input        1x4x4"), "{stdout}");
    assert!(stdout.contains("quadrant 0 -> 1"), "{stdout}");
    assert!(stdout.contains(&format!("MACs/frame   {}", summary.macs_per_frame)));
    assert!(stdout.contains(&format!("parameters   {}", summary.parameters)));
    assert!(stdout.contains(&format!("scratch      {} bytes", gate.scratch_len() * 4)));
    assert!(stdout.contains(&format!(
        "plan         {} bytes",
        gate.plan_memory().bytes()
    )));
    assert!(stdout.contains("reject when score > 2.5"), "{stdout}");
}

/// The committed models' `inspect` files (models/*.inspect.txt, which the README, the model
/// notes and the Python tests quote) are what today's runtime prints: a change to the plan or
/// scratch sizes must regenerate them.
#[test]
fn committed_inspect_files_are_current() {
    let models = concat!(env!("CARGO_MANIFEST_DIR"), "/../models");
    let mut checked = 0;
    for entry in std::fs::read_dir(models).unwrap() {
        let path = entry.unwrap().path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(stem) = name.strip_suffix(".inspect.txt") else {
            continue;
        };
        let model = path.with_file_name(format!("{stem}.fgm"));
        let (ok, stdout, stderr) = edge(&["inspect", model.to_str().unwrap()]);
        assert!(ok, "{stderr}");
        assert_eq!(
            stdout,
            std::fs::read_to_string(&path).unwrap(),
            "{name} is stale: regenerate it with `flowgate-edge inspect models/{stem}.fgm`"
        );
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} inspect files in {models}");
}

#[test]
fn inspect_names_the_file_and_the_corruption() {
    let mut bytes = flowgate_shared::encode(&flowgate_shared::example::tiny_model()).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let path = temp_model("corrupt.fgm", &bytes);
    let (ok, _, stderr) = edge(&["inspect", path.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("corrupt.fgm"), "{stderr}");
    assert!(stderr.contains("checksum mismatch"), "{stderr}");

    let mut future = flowgate_shared::encode(&flowgate_shared::example::tiny_model()).unwrap();
    future[8] = 9;
    let path = temp_model("future.fgm", &future);
    let (ok, _, stderr) = edge(&["inspect", path.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("version 9 is not supported"), "{stderr}");

    let (ok, _, stderr) = edge(&["inspect", "/nonexistent/model.fgm"]);
    assert!(!ok);
    assert!(
        stderr.contains("cannot read /nonexistent/model.fgm"),
        "{stderr}"
    );
}

// ---- score and gate ----

#[test]
fn score_a_folder_reports_a_corrupt_image_and_scores_the_rest() {
    let dir = temp_dir("folder");
    let model = tiny_model(&dir);
    let images = dir.join("images");
    std::fs::create_dir_all(images.join("subfolder")).unwrap();
    let gradient = |w: u32, h: u32| (0..w * h).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(images.join("a-4x4.png"), gray_png(4, 4, gradient(4, 4))).unwrap();
    std::fs::write(images.join("b-13x9.png"), gray_png(13, 9, gradient(13, 9))).unwrap();
    let colour = RgbImage::from_fn(5, 7, |x, y| image::Rgb([x as u8 * 40, y as u8 * 30, 90]));
    std::fs::write(
        images.join("c-colour.png"),
        png_bytes(DynamicImage::ImageRgb8(colour)),
    )
    .unwrap();
    let mut pgm = Vec::new();
    DynamicImage::ImageLuma8(GrayImage::from_raw(3, 2, vec![1, 2, 3, 4, 5, 6]).unwrap())
        .write_to(&mut std::io::Cursor::new(&mut pgm), ImageFormat::Pnm)
        .unwrap();
    std::fs::write(images.join("d-3x2.pgm"), pgm).unwrap();
    // A PNG cut short, as a copy interrupted halfway leaves it.
    let whole = gray_png(16, 16, gradient(16, 16));
    std::fs::write(images.join("broken.png"), &whole[..whole.len() / 2]).unwrap();
    // Neither images nor in this folder: ignored.
    std::fs::write(images.join("notes.txt"), "not an image").unwrap();
    std::fs::write(
        images.join("subfolder/e.png"),
        gray_png(4, 4, gradient(4, 4)),
    )
    .unwrap();

    let folder = images.to_str().unwrap();
    let run = run_edge(&["score", "--model", &model, "--input", folder], b"");
    assert_eq!(run.code, Some(1), "{run:?}");
    let rows = run.rows();
    let sources: Vec<&str> = rows.iter().map(|row| row[0].as_str()).collect();
    let expected: Vec<String> = ["a-4x4.png", "b-13x9.png", "c-colour.png", "d-3x2.pgm"]
        .iter()
        .map(|name| images.join(name).display().to_string())
        .collect();
    assert_eq!(sources, expected, "sorted by name, broken.png left out");
    for row in &rows {
        assert_eq!(row[1], "0", "{row:?}");
        let bits_per_dim: f64 = row[3].parse().unwrap();
        assert!(bits_per_dim.is_finite() && bits_per_dim > 0.0, "{row:?}");
        assert_eq!(row[3], row[4], "the score is bits/dim");
        // The tiny model's threshold is 2.5 bits/dim.
        let decision = if bits_per_dim > 2.5 {
            "reject"
        } else {
            "accept"
        };
        assert_eq!(row[5], decision, "{row:?}");
    }
    let broken = images.join("broken.png").display().to_string();
    let error_lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(error_lines.len(), 1, "{}", run.stderr);
    assert!(error_lines[0].contains(&broken), "{}", run.stderr);
    assert!(error_lines[0].contains("cannot decode"), "{}", run.stderr);

    // JSON lines into a file: the same rows, nothing on stdout.
    let out = dir.join("scores.jsonl");
    let out_arg = out.to_str().unwrap();
    let args = [
        "score", "--model", &model, "--input", folder, "--format", "jsonl", "--out", out_arg,
    ];
    let run = run_edge(&args, b"");
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stdout.is_empty());
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    let first = format!(
        "{{\"source\":\"{}\",\"frame\":0,\"log_likelihood\":{},\"bits_per_dim\":{},\"ood_score\":{},\"decision\":\"{}\",\"fault\":null,\"detail_bits_per_dim\":null}}",
        rows[0][0], rows[0][2], rows[0][3], rows[0][4], rows[0][5]
    );
    assert_eq!(lines[0], first);
}

#[test]
fn score_a_single_image() {
    let dir = temp_dir("single");
    let model = tiny_model(&dir);
    let path = dir.join("one.png");
    std::fs::write(&path, gray_png(WIDTH, HEIGHT, frames()[2].clone())).unwrap();
    let image = path.to_str().unwrap();
    let run = run_edge(&["score", "-m", &model, "-i", image], b"");
    assert_eq!(run.code, Some(0), "{run:?}");
    let rows = run.rows();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0][0].as_str(), rows[0][1].as_str()), (image, "0"));

    // An uncalibrated model: scores, no decision.
    let uncalibrated = tiny_model_file(&dir, None);
    let run = run_edge(&["score", "-m", &uncalibrated, "-i", image], b"");
    assert_eq!(run.code, Some(0), "{run:?}");
    let rows_without = run.rows();
    assert_eq!(rows_without[0][..5], rows[0][..5]);
    assert_eq!(rows_without[0][5], "");

    let bad = dir.join("bad.jpg");
    std::fs::write(&bad, b"\xff\xd8\xff\xe0 this is no jpeg").unwrap();
    let run = run_edge(&["score", "-m", &model, "-i", bad.to_str().unwrap()], b"");
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.rows().is_empty());
    assert!(run.stderr.contains("bad.jpg"), "{}", run.stderr);

    let run = run_edge(&["score", "-m", &model, "-i", "/nonexistent/x.png"], b"");
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("/nonexistent/x.png"), "{}", run.stderr);
}

#[test]
fn score_idx_files_plain_and_gzipped() {
    let dir = temp_dir("idx");
    let model = tiny_model(&dir);
    let plain = dir.join("frames-idx3-ubyte");
    let gz = dir.join("frames-idx3-ubyte.gz");
    std::fs::write(&plain, idx_file(&frames())).unwrap();
    std::fs::write(&gz, gzip(&idx_file(&frames()))).unwrap();
    let mut tables = Vec::new();
    for path in [&plain, &gz] {
        let source = path.to_str().unwrap();
        let run = run_edge(&["score", "-m", &model, "-i", source], b"");
        assert_eq!(run.code, Some(0), "{run:?}");
        let rows = run.rows();
        assert_eq!(rows.len(), frames().len());
        for (index, row) in rows.iter().enumerate() {
            assert_eq!(
                (row[0].as_str(), row[1].as_str()),
                (source, &*index.to_string())
            );
        }
        tables.push(scores(&rows));
    }
    assert_eq!(tables[0], tables[1]);

    // A truncated idx file is a failed input. It is read one image at a time (memory does
    // not grow with the file), so the whole images before the cut are scored, as the
    // frames of a raw stream that ends inside a frame are.
    let mut cut = idx_file(&frames());
    cut.pop();
    std::fs::write(&plain, cut).unwrap();
    let run = run_edge(&["score", "-m", &model, "-i", plain.to_str().unwrap()], b"");
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(scores(&run.rows()), tables[0][..frames().len() - 1]);
    assert!(run.stderr.contains("frames-idx3-ubyte"), "{}", run.stderr);
    assert!(run.stderr.contains("truncated"), "{}", run.stderr);
}

#[test]
fn score_raw_frames_from_stdin() {
    let dir = temp_dir("stdin");
    let model = tiny_model(&dir);
    let stream = frames().concat();
    let run = run_edge(&raw_args(&model, "6x4", "gray8"), &stream);
    assert_eq!(run.code, Some(0), "{run:?}");
    let rows = run.rows();
    assert_eq!(rows.len(), frames().len());
    for (index, row) in rows.iter().enumerate() {
        assert_eq!(
            (row[0].as_str(), row[1].as_str()),
            ("-", &*index.to_string())
        );
    }

    // A trailing partial frame: every whole frame is scored, then the error names the
    // partial frame and the bytes received.
    let partial = &stream[..stream.len() - 5];
    let run = run_edge(&raw_args(&model, "6x4", "gray8"), partial);
    assert_eq!(run.code, Some(1), "{run:?}");
    let last = frames().len() - 1;
    assert_eq!(run.rows().len(), last);
    assert!(
        run.stderr.contains(&format!("frame {last}")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("19 of the frame's 24 bytes"),
        "{}",
        run.stderr
    );

    // Nothing on stdin: an empty table.
    let run = run_edge(&raw_args(&model, "6x4", "gray8"), b"");
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.rows().is_empty());

    // Raw frames from a file work the same way; the source is the file.
    let file = dir.join("frames.gray");
    std::fs::write(&file, &stream).unwrap();
    let path = file.to_str().unwrap();
    let args = [
        "score", "-m", &model, "-i", path, "--raw", "6x4", "--pixel", "gray8",
    ];
    let from_file = run_edge(&args, b"").rows();
    assert_eq!(scores(&from_file), scores(&rows));
    assert!(from_file.iter().all(|row| row[0] == path));
}

#[test]
fn the_same_frames_score_the_same_through_every_front_end() {
    let dir = temp_dir("consistency");
    let model = tiny_model(&dir);
    let frames = frames();

    let folder = png_folder(&dir);
    let via_png = run_edge(
        &["score", "-m", &model, "-i", folder.to_str().unwrap()],
        b"",
    );
    assert_eq!(via_png.code, Some(0), "{via_png:?}");
    let expected = scores(&via_png.rows());
    assert_eq!(expected.len(), frames.len());

    let idx = dir.join("frames.idx");
    std::fs::write(&idx, idx_file(&frames)).unwrap();
    let via_idx = run_edge(&["score", "-m", &model, "-i", idx.to_str().unwrap()], b"");
    assert_eq!(scores(&via_idx.rows()), expected, "idx");

    let gray = frames.concat();
    let via_stdin = run_edge(&raw_args(&model, "6x4", "gray8"), &gray);
    assert_eq!(scores(&via_stdin.rows()), expected, "stdin gray8");

    // Luma-carrying formats: the gate reads only the luma, so the chroma does not matter.
    let nv12: Vec<u8> = frames
        .iter()
        .flat_map(|frame| {
            let chroma = (0..frame.len() / 2).map(|i| (i * 37 % 256) as u8);
            frame.iter().copied().chain(chroma)
        })
        .collect();
    let via_nv12 = run_edge(&raw_args(&model, "6x4", "nv12"), &nv12);
    assert_eq!(scores(&via_nv12.rows()), expected, "stdin nv12");

    let yuyv: Vec<u8> = frames
        .iter()
        .flat_map(|frame| {
            frame
                .chunks(2)
                .flat_map(|pair| [pair[0], 99, pair[1], 200])
                .collect::<Vec<_>>()
        })
        .collect();
    let via_yuyv = run_edge(&raw_args(&model, "6x4", "yuyv"), &yuyv);
    assert_eq!(scores(&via_yuyv.rows()), expected, "stdin yuyv");
}

#[test]
fn colour_frames_score_the_same_as_png_rgb8_and_bgr8() {
    let dir = temp_dir("colour");
    let model = tiny_model(&dir);
    let rgb: Vec<u8> = (0..WIDTH * HEIGHT * 3)
        .map(|i| (i * 29 % 256) as u8)
        .collect();
    let path = dir.join("colour.png");
    let image = RgbImage::from_raw(WIDTH, HEIGHT, rgb.clone()).unwrap();
    std::fs::write(&path, png_bytes(DynamicImage::ImageRgb8(image))).unwrap();
    let via_png = run_edge(&["score", "-m", &model, "-i", path.to_str().unwrap()], b"");
    let expected = scores(&via_png.rows());
    assert_eq!(expected.len(), 1);

    let via_rgb = run_edge(&raw_args(&model, "6x4", "rgb8"), &rgb);
    assert_eq!(scores(&via_rgb.rows()), expected, "rgb8");
    let bgr: Vec<u8> = rgb.chunks(3).flat_map(|p| [p[2], p[1], p[0]]).collect();
    let via_bgr = run_edge(&raw_args(&model, "6x4", "bgr8"), &bgr);
    assert_eq!(scores(&via_bgr.rows()), expected, "bgr8");
}

#[test]
fn gate_passes_exactly_the_accepted_frames_byte_for_byte() {
    let dir = temp_dir("gate-raw");
    let model = tiny_model_file(&dir, Some(SPLITTING_THRESHOLD));
    let frames = frames();
    let stream = frames.concat();
    let table = run_edge(&raw_args(&model, "6x4", "gray8"), &stream).rows();
    let accepted: Vec<usize> = (0..frames.len())
        .filter(|&index| table[index][5] == "accept")
        .collect();
    let rejected: Vec<usize> = (0..frames.len())
        .filter(|&index| table[index][5] == "reject")
        .collect();
    assert!(
        !accepted.is_empty() && !rejected.is_empty(),
        "the fixture should have both: {table:?}"
    );

    let args = [
        "gate", "--model", &model, "--input", "-", "--raw", "6x4", "--pixel", "gray8",
    ];
    let run = run_edge(&args, &stream);
    assert_eq!(run.code, Some(0), "{run:?}");
    let expected: Vec<u8> = accepted
        .iter()
        .flat_map(|&index| frames[index].clone())
        .collect();
    assert_eq!(run.stdout, expected);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), rejected.len(), "{}", run.stderr);
    for (line, &index) in lines.iter().zip(&rejected) {
        assert_eq!(
            *line,
            format!(
                "reject frame {index}: ood score {} > threshold {SPLITTING_THRESHOLD}",
                table[index][4]
            )
        );
    }

    // A partial frame at the end is not passed on, and is an error.
    let run = run_edge(&args, &stream[..stream.len() - 1]);
    assert_eq!(run.code, Some(1), "{run:?}");
    let last = frames.len() - 1;
    let expected: Vec<u8> = accepted
        .iter()
        .filter(|&&index| index != last)
        .flat_map(|&index| frames[index].clone())
        .collect();
    assert_eq!(run.stdout, expected);
    assert!(
        run.stderr.contains(&format!("frame {last}")),
        "{}",
        run.stderr
    );
}

#[test]
fn gate_lists_accepted_paths_and_idx_indices() {
    let dir = temp_dir("gate-files");
    let model = tiny_model_file(&dir, Some(SPLITTING_THRESHOLD));
    let folder = png_folder(&dir);
    let folder_arg = folder.to_str().unwrap();
    let table = run_edge(&["score", "-m", &model, "-i", folder_arg], b"").rows();
    let accepted: Vec<usize> = (0..table.len())
        .filter(|&index| table[index][5] == "accept")
        .collect();
    let rejected = table.len() - accepted.len();
    assert!(!accepted.is_empty() && rejected > 0, "{table:?}");

    let run = run_edge(&["gate", "-m", &model, "-i", folder_arg], b"");
    assert_eq!(run.code, Some(0), "{run:?}");
    let paths: Vec<&str> = accepted.iter().map(|&i| table[i][0].as_str()).collect();
    assert_eq!(run.stdout(), format!("{}\n", paths.join("\n")));
    assert_eq!(run.stderr.lines().count(), rejected, "{}", run.stderr);
    assert!(
        run.stderr
            .lines()
            .all(|line| line.starts_with("reject ") && line.contains("> threshold 9")),
        "{}",
        run.stderr
    );

    let idx = dir.join("frames.idx.gz");
    std::fs::write(&idx, gzip(&idx_file(&frames()))).unwrap();
    let run = run_edge(&["gate", "-m", &model, "-i", idx.to_str().unwrap()], b"");
    assert_eq!(run.code, Some(0), "{run:?}");
    let indices: Vec<String> = accepted.iter().map(usize::to_string).collect();
    assert_eq!(run.stdout(), format!("{}\n", indices.join("\n")));
    assert!(
        run.stderr.contains("frames.idx.gz frame "),
        "{}",
        run.stderr
    );
}

#[test]
fn gate_needs_a_threshold() {
    let dir = temp_dir("gate-uncalibrated");
    let model = tiny_model_file(&dir, None);
    let args = [
        "gate", "-m", &model, "-i", "-", "--raw", "6x4", "--pixel", "gray8",
    ];
    let run = run_edge(&args, &frames().concat());
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stdout.is_empty());
    assert!(run.stderr.contains("tiny-None.fgm"), "{}", run.stderr);
    assert!(
        run.stderr.contains("no calibrated threshold"),
        "{}",
        run.stderr
    );
}

#[test]
fn bad_models_and_arguments_are_fatal() {
    let dir = temp_dir("fatal");
    let good = tiny_model(&dir);
    let mut bytes = std::fs::read(&good).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let corrupt = dir.join("corrupt.fgm");
    std::fs::write(&corrupt, &bytes).unwrap();
    let mut future = std::fs::read(&good).unwrap();
    future[8] = 9;
    let future_path = dir.join("future.fgm");
    std::fs::write(&future_path, &future).unwrap();
    let stream = frames().concat();
    for (model, message) in [
        (corrupt.to_str().unwrap(), "checksum mismatch"),
        (future_path.to_str().unwrap(), "version 9 is not supported"),
        (
            "/nonexistent/model.fgm",
            "cannot read /nonexistent/model.fgm",
        ),
    ] {
        for command in ["score", "gate"] {
            let args = [
                command, "-m", model, "-i", "-", "--raw", "6x4", "--pixel", "gray8",
            ];
            let run = run_edge(&args, &stream);
            assert_eq!(run.code, Some(2), "{command} {model}: {run:?}");
            assert!(run.stdout.is_empty(), "{command} {model}");
            assert!(run.stderr.contains(model), "{}", run.stderr);
            assert!(run.stderr.contains(message), "{}", run.stderr);
        }
    }

    // stdin without a geometry, half a geometry, a bad size, a folder without images.
    let run = run_edge(&["score", "-m", &good, "-i", "-"], &stream);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("--raw WIDTHxHEIGHT"), "{}", run.stderr);
    let run = run_edge(&["score", "-m", &good, "-i", "-", "--raw", "6x4"], &stream);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("--pixel"), "{}", run.stderr);
    let args = [
        "score", "-m", &good, "-i", "-", "--raw", "6by4", "--pixel", "gray8",
    ];
    let run = run_edge(&args, &stream);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("WIDTHxHEIGHT"), "{}", run.stderr);
    let args = [
        "score", "-m", &good, "-i", "-", "--raw", "5x4", "--pixel", "nv12",
    ];
    let run = run_edge(&args, &stream);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("even width"), "{}", run.stderr);
    let empty = temp_dir("fatal-empty");
    let run = run_edge(&["score", "-m", &good, "-i", empty.to_str().unwrap()], b"");
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("no images"), "{}", run.stderr);
}

#[test]
fn help_explains_the_options_and_exit_status() {
    for command in ["score", "gate"] {
        let run = run_edge(&[command, "--help"], b"");
        assert_eq!(run.code, Some(0), "{run:?}");
        let help = run.stdout();
        for text in [
            "--model",
            "--input",
            "--raw",
            "--pixel",
            "nv12",
            "W*H*3/2",
            "--out",
            "Exit status",
            "0  every input",
            "1  some inputs failed",
            "2  fatal",
        ] {
            assert!(
                help.contains(text),
                "{command} --help lacks {text:?}:\n{help}"
            );
        }
    }
    let help = run_edge(&["score", "--help"], b"").stdout();
    assert!(help.contains("source") && help.contains("jsonl"), "{help}");
}

/// `--kernels scalar` gives the same decisions as the default (detected) path, with bits/dim
/// within rounding; a path this CPU cannot run is a clear fatal error.
#[test]
fn kernels_option_picks_the_path() {
    let dir = temp_dir("kernels");
    let model = tiny_model_file(&dir, Some(SPLITTING_THRESHOLD));
    let idx = dir.join("frames-idx3-ubyte");
    std::fs::write(&idx, idx_file(&frames())).unwrap();
    let idx = idx.to_str().unwrap();
    let auto = run_edge(&["score", "-m", &model, "-i", idx], b"");
    let scalar = run_edge(
        &["score", "-m", &model, "-i", idx, "--kernels", "scalar"],
        b"",
    );
    assert_eq!(
        (auto.code, scalar.code),
        (Some(0), Some(0)),
        "{auto:?} {scalar:?}"
    );
    let (auto, scalar) = (auto.rows(), scalar.rows());
    assert_eq!(auto.len(), frames().len());
    let decisions = |rows: &[Vec<String>]| rows.iter().map(|r| r[5].clone()).collect::<Vec<_>>();
    assert_eq!(decisions(&auto), decisions(&scalar));
    assert!(decisions(&auto).iter().any(|d| d == "accept"));
    assert!(decisions(&auto).iter().any(|d| d == "reject"));
    for (a, s) in auto.iter().zip(&scalar) {
        let (a, s): (f64, f64) = (a[3].parse().unwrap(), s[3].parse().unwrap());
        assert!((a - s).abs() <= 1e-5, "bits/dim {a} vs {s}");
    }

    let missing = if cfg!(target_arch = "aarch64") {
        "avx2-fma"
    } else {
        "neon"
    };
    let run = run_edge(
        &["score", "-m", &model, "-i", idx, "--kernels", missing],
        b"",
    );
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains(missing), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{run:?}");
}
