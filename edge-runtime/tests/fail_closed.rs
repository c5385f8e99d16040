//! `flowgate-edge` fails closed: whatever goes wrong (a hostile model, an input bomb, a
//! downstream model that stops reading, a closed stderr), no frame is passed on by mistake,
//! memory stays bounded, and the exit status says so.

mod common;

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The tiny model with its threshold at `threshold` and every f32 weight that is not a
/// log-scale (those are bounded at load) pushed to 1e30 with its sign kept: valid, loads,
/// and its activations overflow to infinities whose sums of mixed signs are NaN.
fn hostile_model_file(dir: &Path, threshold: f32) -> String {
    let mut model = flowgate_shared::example::tiny_model();
    model.threshold.as_mut().unwrap().ood_score = threshold;
    let mut file = flowgate_shared::encode(&model).unwrap();
    // The coupling scales and the actnorm hold one or two values; the weights more.
    flowgate_shared::tamper::inflate_weights(&mut file, 1e30, 2).unwrap();
    let path = dir.join("hostile.fgm");
    std::fs::write(&path, file).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Frames that make the hostile model's score both finite and not.
fn many_frames() -> Vec<Vec<u8>> {
    let len = (WIDTH * HEIGHT) as usize;
    (0..64u32)
        .map(|seed| {
            (0..len as u32)
                .map(|i| (i.wrapping_mul(37).wrapping_add(seed * 101) ^ (i / 7)) as u8)
                .collect()
        })
        .collect()
}

#[test]
fn a_non_finite_score_is_rejected_and_marked() {
    let dir = temp_dir("fail-closed-hostile");
    // A threshold no finite score of this model reaches: before failing closed, every
    // frame with a NaN score was accepted (NaN > threshold is false).
    let model = hostile_model_file(&dir, f32::MAX);
    let frames = many_frames();
    let stream = frames.concat();
    let run = run_edge(&raw_args(&model, "6x4", "gray8"), &stream);
    assert_eq!(run.code, Some(0), "{run:?}");
    let rows = run.rows();
    assert_eq!(rows.len(), frames.len());
    let faulted: Vec<usize> = (0..rows.len())
        .filter(|&index| rows[index][6] == "non-finite-score")
        .collect();
    assert!(
        !faulted.is_empty(),
        "the hostile model should overflow: {rows:?}"
    );
    for row in &rows {
        let finite = [&row[2], &row[4]]
            .iter()
            .all(|field| field.parse::<f64>().is_ok_and(f64::is_finite));
        if finite {
            assert_eq!(
                (row[5].as_str(), row[6].as_str()),
                ("accept", ""),
                "{row:?}"
            );
        } else {
            assert_eq!(
                (row[5].as_str(), row[6].as_str()),
                ("reject", "non-finite-score"),
                "{row:?}"
            );
        }
    }

    // `gate` passes on exactly the frames with finite scores, and says why it held back
    // the others.
    let args = [
        "gate",
        "--model",
        &model,
        "--input",
        "-",
        "--raw",
        "6x4",
        "--pixel",
        "gray8",
        "--summary",
    ];
    let run = run_edge(&args, &stream);
    assert_eq!(run.code, Some(0), "{run:?}");
    let passed: Vec<u8> = (0..frames.len())
        .filter(|index| !faulted.contains(index))
        .flat_map(|index| frames[index].clone())
        .collect();
    assert_eq!(run.stdout, passed);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), faulted.len() + 1, "{}", run.stderr);
    for (line, index) in lines.iter().zip(&faulted) {
        assert!(
            line.starts_with(&format!("reject frame {index}: non-finite score")),
            "{line}"
        );
    }
    assert_eq!(
        lines.last().copied(),
        Some(
            format!(
                "flowgate-edge gate: {} frames scored: {} passed on, {} held back; 0 inputs unreadable",
                frames.len(),
                frames.len() - faulted.len(),
                faulted.len()
            )
            .as_str()
        )
    );
}

/// Runs `flowgate-edge` with `stdin` fed from a thread; `stdout_limit` bytes of stdout are
/// read before the pipe is closed, like a downstream model that dies; `close_stderr` closes
/// stderr's reading end at once. Returns the exit status's code and signal, and stderr.
fn run_with_closed_pipes(
    args: &[&str],
    stdin: Vec<u8>,
    stdout_limit: usize,
    close_stderr: bool,
) -> (Option<i32>, Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowgate-edge"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        // The child stops reading when its output is gone.
        let _ = pipe.write_all(&stdin);
    });
    let mut stderr_pipe = child.stderr.take().unwrap();
    let stderr_reader = (!close_stderr).then(|| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr_pipe.read_to_string(&mut text);
            text
        })
    });
    let mut stdout = child.stdout.take().unwrap();
    let mut head = vec![0u8; stdout_limit];
    stdout.read_exact(&mut head).unwrap();
    drop(stdout);
    let status = child.wait().unwrap();
    writer.join().unwrap();
    let stderr = stderr_reader.map_or_else(String::new, |reader| reader.join().unwrap());
    (status.code(), status.signal(), stderr)
}

/// A raw stream of `count` copies of the fixture frames, long enough to fill any pipe.
fn long_stream(count: usize) -> Vec<u8> {
    frames().concat().repeat(count)
}

#[test]
fn a_downstream_reader_that_stops_is_an_error_not_success() {
    let dir = temp_dir("fail-closed-epipe");
    // Every frame passes: the gate writes as fast as it reads.
    let model = tiny_model_file(&dir, Some(1000.0));
    let gate = [
        "gate", "--model", &model, "--input", "-", "--raw", "6x4", "--pixel", "gray8",
    ];
    let (code, signal, stderr) = run_with_closed_pipes(&gate, long_stream(20_000), 10, false);
    assert_eq!((code, signal), (Some(2), None), "{stderr}");
    assert!(stderr.contains("cannot write stdout"), "{stderr}");
    assert!(stderr.contains("closed the pipe"), "{stderr}");

    let score = raw_args(&model, "6x4", "gray8");
    let (code, signal, stderr) = run_with_closed_pipes(&score, long_stream(20_000), 10, false);
    assert_eq!((code, signal), (Some(2), None), "{stderr}");
    assert!(stderr.contains("closed the pipe"), "{stderr}");
}

#[test]
fn a_closed_stderr_does_not_crash_the_gate() {
    let dir = temp_dir("fail-closed-stderr");
    // Half the frames are rejected, each with a line on the closed stderr.
    let model = tiny_model_file(&dir, Some(SPLITTING_THRESHOLD));
    let frames = frames();
    let passed_per_round: usize = {
        let run = run_edge(&raw_args(&model, "6x4", "gray8"), &frames.concat());
        run.rows().iter().filter(|row| row[5] == "accept").count()
    };
    let rounds = 2_000;
    let gate = [
        "gate", "--model", &model, "--input", "-", "--raw", "6x4", "--pixel", "gray8",
    ];
    let expected = passed_per_round * rounds * (WIDTH * HEIGHT) as usize;
    let (code, signal, _) = run_with_closed_pipes(&gate, long_stream(rounds), expected, true);
    // No panic (101) from a failed write to stderr: the run ends normally.
    assert_eq!((code, signal), (Some(0), None));

    // A fatal error with nobody to tell still exits 2.
    let missing = [
        "score",
        "-m",
        "/nonexistent.fgm",
        "-i",
        "-",
        "--raw",
        "6x4",
        "--pixel",
        "gray8",
    ];
    let (code, signal, _) = run_with_closed_pipes(&missing, Vec::new(), 0, true);
    assert_eq!((code, signal), (Some(2), None));
}

#[test]
fn models_over_the_limits_are_refused_naming_the_limit() {
    let dir = temp_dir("fail-closed-limits");
    let model = tiny_model(&dir);
    let image = dir.join("one.png");
    std::fs::write(&image, gray_png(WIDTH, HEIGHT, frames()[1].clone())).unwrap();
    let image = image.to_str().unwrap();

    let run = run_edge(
        &["score", "-m", &model, "-i", image, "--max-macs", "10"],
        b"",
    );
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains("multiply-accumulates per frame"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("the limit is 10"), "{}", run.stderr);

    let run = run_edge(
        &["gate", "-m", &model, "-i", image, "--max-memory-kib", "1"],
        b"",
    );
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains("larger than the memory limit"),
        "{}",
        run.stderr
    );

    // A board config sets both; the real boards take the tiny model.
    let boards = Path::new(env!("CARGO_MANIFEST_DIR")).join("../firmware-configs");
    let pi = boards.join("raspberry-pi-4.toml");
    let run = run_edge(
        &[
            "score",
            "-m",
            &model,
            "-i",
            image,
            "--board",
            pi.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let tight = dir.join("tight-board.toml");
    let config = std::fs::read_to_string(&pi)
        .unwrap()
        .replace("name = \"raspberry-pi-4\"", "name = \"tight-board\"")
        .replace("height = 24", "height = 4")
        .replace("width = 32", "width = 4")
        .replace("max_macs_per_frame = 20_000_000", "max_macs_per_frame = 16");
    std::fs::write(&tight, config).unwrap();
    let run = run_edge(
        &[
            "score",
            "-m",
            &model,
            "-i",
            image,
            "--board",
            tight.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("tight-board.toml"), "{}", run.stderr);
    assert!(run.stderr.contains("the limit is 16"), "{}", run.stderr);

    // `inspect` shows a model over the limits, and says so.
    let run = run_edge(&["inspect", &model, "--max-macs", "10"], b"");
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout().contains("EXCEEDS"), "{}", run.stdout());
    let run = run_edge(&["inspect", &model], b"");
    assert!(
        run.stdout().contains("limits       default"),
        "{}",
        run.stdout()
    );
    assert!(run.stdout().contains(": fits"), "{}", run.stdout());
}

/// Runs `flowgate-edge` to the end and returns its exit code and peak resident memory in
/// KiB (`wait4`'s rusage: std does not report it).
#[allow(clippy::zombie_processes)] // reaped by wait4 below, which std's Child cannot see
fn run_measuring_memory(args: &[&str]) -> (Option<i32>, i64, Duration) {
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_flowgate-edge"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 writes both out-parameters.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, not yet waited for.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid);
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    (code, usage.ru_maxrss, started.elapsed())
}

#[test]
fn an_idx_bomb_costs_neither_memory_nor_time() {
    let dir = temp_dir("fail-closed-bomb");
    let model = tiny_model(&dir);
    // The bomb: a gzip idx file declaring 8 images of 6x4, then 1 GiB of zeros
    // (about 1 MB compressed). It used to be decompressed whole before any check.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(&idx_file(&frames())).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..1024 {
        encoder.write_all(&zeros).unwrap();
    }
    let bomb = dir.join("bomb-idx3-ubyte.gz");
    std::fs::write(&bomb, encoder.finish().unwrap()).unwrap();
    let plain = dir.join("plain-idx3-ubyte");
    std::fs::write(&plain, idx_file(&frames())).unwrap();

    let (code, baseline, _) =
        run_measuring_memory(&["score", "-m", &model, "-i", plain.to_str().unwrap()]);
    assert_eq!(code, Some(0));
    let (code, peak, took) =
        run_measuring_memory(&["score", "-m", &model, "-i", bomb.to_str().unwrap()]);
    // The frames before the trailing garbage are scored; the garbage is a failed input.
    assert_eq!(code, Some(1));
    assert!(
        peak < baseline + 8 * 1024,
        "peak {peak} KiB against {baseline} KiB for the plain file"
    );
    // Decompressing 1 GiB takes seconds; stopping after the body, milliseconds.
    assert!(took < Duration::from_secs(2), "{took:?}");
}

/// Resident memory of a running process in KiB (`VmRSS` in /proc), if it still runs.
fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn a_long_stream_keeps_memory_flat_and_every_frame_is_accounted_for() {
    // A short soak (scripts/soak.sh runs a million camera frames): 200,000 frames through
    // `gate`, half of them rejected. Every frame read is either passed on whole or reported
    // rejected, and resident memory does not grow with the stream.
    let dir = temp_dir("fail-closed-soak");
    let model = tiny_model_file(&dir, Some(SPLITTING_THRESHOLD));
    let frames = frames();
    let frame_len = frames[0].len();
    let decisions: Vec<bool> = run_edge(&raw_args(&model, "6x4", "gray8"), &frames.concat())
        .rows()
        .iter()
        .map(|row| row[5] == "accept")
        .collect();
    let rounds = 25_000;
    let total = rounds * frames.len();
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowgate-edge"))
        .args([
            "gate",
            "--model",
            &model,
            "--input",
            "-",
            "--raw",
            "6x4",
            "--pixel",
            "gray8",
            "--summary",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let round = frames.concat();
    let writer = std::thread::spawn(move || {
        for _ in 0..rounds {
            stdin.write_all(&round).unwrap();
        }
    });
    let mut stderr = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).unwrap();
        text
    });
    // Read the passed frames while sampling the gate's memory.
    let mut stdout = child.stdout.take().unwrap();
    let mut passed = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    let mut samples = Vec::new();
    loop {
        let n = stdout.read(&mut chunk).unwrap();
        if n == 0 {
            break;
        }
        passed.extend_from_slice(&chunk[..n]);
        if samples.len() < passed.len() / (1 << 16) {
            samples.extend(resident_kib(pid));
        }
    }
    writer.join().unwrap();
    let status = child.wait().unwrap();
    let stderr = errors.join().unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");

    // Every frame accounted for: passed on byte for byte in order, or reported rejected.
    let per_round: Vec<u8> = frames
        .iter()
        .zip(&decisions)
        .filter(|(_, accepted)| **accepted)
        .flat_map(|(frame, _)| frame.clone())
        .collect();
    assert_eq!(passed.len(), per_round.len() * rounds);
    assert!(
        passed
            .chunks_exact(per_round.len())
            .all(|round| round == per_round)
    );
    let rejected_per_round = decisions.iter().filter(|accepted| !**accepted).count();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), rejected_per_round * rounds + 1);
    let accepted = passed.len() / frame_len;
    assert_eq!(
        lines.last().copied(),
        Some(
            format!(
                "flowgate-edge gate: {total} frames scored: {accepted} passed on, {} held back; 0 inputs unreadable",
                total - accepted
            )
            .as_str()
        )
    );

    // Memory: the first samples are taken once the stream runs; none later is more than
    // 256 KiB above them.
    assert!(samples.len() >= 10, "{samples:?}");
    let early = samples[..3].iter().max().copied().unwrap();
    let peak = samples.iter().max().copied().unwrap();
    assert!(
        peak <= early + 256,
        "resident memory grew from {early} to {peak} KiB: {samples:?}"
    );
}
