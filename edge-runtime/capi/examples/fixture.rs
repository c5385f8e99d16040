//! The Rust side of the C example's check: writes the tiny model (threshold 7.5) and a file of raw gray8
//! frames, and prints the Rust gate's verdicts for the frames `examples/gate.c` scores
//! (its built-in frames, then the file's), in the lines `gate.c` prints.
//!
//! ```sh
//! cargo run --release -p flowgate-edge-capi --example fixture -- DIR > DIR/expected.txt
//! ./gate DIR/tiny.fgm DIR/frames.gray 28 28 | grep -v '^#' | diff DIR/expected.txt -
//! ```

use std::path::PathBuf;

use flowgate_edge::{Decision, Error, Frame, Gate, PixelFormat, Verdict};

/// Size of the frames in `frames.gray`.
const FILE_SIDE: u32 = 28;

/// Byte `i` of built-in frame `k`: the same formula as `gate.c`'s `pattern`.
fn pattern(k: u32, i: u32) -> u8 {
    (i.wrapping_mul(37).wrapping_add(k.wrapping_mul(101)) ^ (i / 7)) as u8
}

/// A built-in frame: label, format, width, height, stride, fill (`None`: pattern).
type FrameSpec = (&'static str, PixelFormat, u32, u32, usize, Option<u8>);

/// `gate.c`'s built-in frames.
const FRAMES: [FrameSpec; 8] = [
    ("gray8-exact", PixelFormat::Gray8, 4, 4, 4, None),
    ("gray8-stride", PixelFormat::Gray8, 10, 6, 16, None),
    ("rgb8", PixelFormat::Rgb8, 8, 8, 24, None),
    ("bgr8-stride", PixelFormat::Bgr8, 8, 6, 32, None),
    ("yuyv", PixelFormat::Yuyv, 8, 4, 16, None),
    ("nv12", PixelFormat::Nv12, 12, 8, 12, None),
    ("black", PixelFormat::Gray8, 4, 4, 4, Some(0)),
    ("white", PixelFormat::Gray8, 4, 4, 4, Some(255)),
];

fn format_name(format: PixelFormat) -> &'static str {
    match format {
        PixelFormat::Gray8 => "gray8",
        PixelFormat::Rgb8 => "rgb8",
        PixelFormat::Bgr8 => "bgr8",
        PixelFormat::Yuyv => "yuyv",
        PixelFormat::Nv12 => "nv12",
    }
}

/// One verdict line, exactly as `gate.c` prints it.
fn line(label: &str, format: PixelFormat, width: u32, height: u32, verdict: &Verdict) -> String {
    let decision = match verdict.decision {
        None => "none",
        Some(Decision::Accept) => "accept",
        Some(Decision::Reject) => "reject",
    };
    format!(
        "{label:<13} {:<5} {width:>3}x{height:<3} ll={:.9} bpd={:.9} ood={:.9} {decision:<6} \
         bits={:016x}:{:016x}:{:016x}",
        format_name(format),
        verdict.log_likelihood,
        verdict.bits_per_dim,
        verdict.ood_score,
        verdict.log_likelihood.to_bits(),
        verdict.bits_per_dim.to_bits(),
        verdict.ood_score.to_bits(),
    )
}

/// The file's frames: a diagonal gradient, two patterns, a flat gray.
fn file_frames() -> Vec<Vec<u8>> {
    let side = FILE_SIDE;
    let gradient = (0..side * side)
        .map(|i| ((i % side + i / side) * 255 / (2 * side - 2)) as u8)
        .collect();
    let patterned = |k| (0..side * side).map(|i| pattern(k, i)).collect();
    vec![
        gradient,
        patterned(100),
        patterned(101),
        vec![128; (side * side) as usize],
    ]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(std::env::args().nth(1).ok_or("usage: fixture DIR")?);
    std::fs::create_dir_all(&dir)?;
    // The tiny model with its threshold moved from 2.5 to 7.5 bits/dim, so that the frames
    // below get both decisions (they score 7.4 to 20).
    let mut model = flowgate_shared::example::tiny_model();
    if let Some(threshold) = model.threshold.as_mut() {
        threshold.ood_score = 7.5;
    }
    let model = flowgate_shared::encode(&model)?;
    std::fs::write(dir.join("tiny.fgm"), &model)?;
    let frames = file_frames();
    std::fs::write(dir.join("frames.gray"), frames.concat())?;

    let gate = Gate::new(&model)?;
    let mut scratch = vec![0f32; gate.scratch_len()];
    for (k, (label, format, width, height, stride, fill)) in FRAMES.into_iter().enumerate() {
        // The buffer holds every row in full (and NV12's chroma plane), as gate.c's does.
        let mut len = stride * height as usize;
        if format == PixelFormat::Nv12 {
            len += len / 2;
        }
        let pixels: Vec<u8> = (0..len as u32)
            .map(|i| fill.unwrap_or_else(|| pattern(k as u32, i)))
            .collect();
        let frame = Frame::new(&pixels, width, height, stride, format).map_err(Error::from)?;
        let verdict = gate.score(&frame, &mut scratch)?;
        println!("{}", line(label, format, width, height, &verdict));
    }
    for (k, pixels) in frames.iter().enumerate() {
        let frame =
            Frame::packed(pixels, FILE_SIDE, FILE_SIDE, PixelFormat::Gray8).map_err(Error::from)?;
        let verdict = gate.score(&frame, &mut scratch)?;
        let label = format!("file#{k}");
        println!(
            "{}",
            line(&label, PixelFormat::Gray8, FILE_SIDE, FILE_SIDE, &verdict)
        );
    }
    Ok(())
}
