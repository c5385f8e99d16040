//! One contender of `bench/inference.sh`, in a process of its own: the per-frame latency of
//! a model in flowgate's gate or in tract, batch 1, one thread, on the frames of a levels
//! file (raw f32 `[N, C, H, W]`, what the ONNX graph's `levels` input takes).
//!
//! ```text
//! latency levels MODEL.fgm OUT.f32 COUNT     # Fashion-MNIST test images at the model's size
//! latency frames MODEL.fgm FOLDER OUT.f32 COUNT
//!                                            # a detail gate's frames: gray images at the
//!                                            # camera's own size, from FOLDER
//! latency time ENGINE MODEL.fgm MODEL.onnx LEVELS.f32 SECONDS
//!                                            # ENGINE: flowgate, flowgate-scalar or tract
//! latency peak SECONDS                       # one core's f32 multiply-accumulates per second
//! ```
//!
//! `time` scores the frames in turn for about SECONDS and prints one JSON line: the median
//! and quartiles of the per-frame latency in microseconds, the frames timed, and the bits/dim
//! of the first frames (the driver checks every engine computes the same network). A model
//! with a native-resolution detail branch scores whole frames (the graph's `frame` input; the
//! gate's `score`, which makes the thumbnail and the patches itself), and the value checked
//! is the combined `ood_score`.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use flowgate_edge::io::idx::read_images;
use flowgate_edge::kernels::KernelPath;
use flowgate_edge::preprocess::frame_levels;
use flowgate_edge::{Frame, Gate, Limits, PixelFormat};
use tract_onnx::prelude::*;

type Outcome = Result<(), String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let outcome = match args.as_slice() {
        ["levels", model, out, count] => write_levels(model, out, count),
        ["frames", model, folder, out, count] => write_frames(model, folder, out, count),
        ["time", engine, model, onnx, levels, seconds] => {
            time(engine, model, onnx, levels, seconds)
        }
        ["peak", seconds] => peak(seconds),
        _ => Err("usage: latency levels MODEL.fgm OUT.f32 COUNT | frames MODEL.fgm FOLDER OUT.f32 COUNT | time ENGINE MODEL.fgm MODEL.onnx LEVELS.f32 SECONDS | peak SECONDS".into()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("latency: {message}");
            ExitCode::FAILURE
        }
    }
}

fn number<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    text.parse().map_err(|_| format!("not a number: {text}"))
}

fn write_levels(model: &str, out: &str, count: &str) -> Outcome {
    let count: usize = number(count)?;
    let bytes = std::fs::read(model).map_err(|e| format!("{model}: {e}"))?;
    let spec = flowgate_shared::decode(&bytes)
        .map_err(|e| e.to_string())?
        .model
        .input;
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/fashion-mnist");
    let plain = data.join("t10k-images-idx3-ubyte");
    let path = if plain.exists() {
        plain
    } else {
        data.join("t10k-images-idx3-ubyte.gz")
    };
    let images = read_images(&path).map_err(|e| e.to_string())?;
    let mut levels = vec![0f32; spec.dims() as usize];
    let mut raw = Vec::new();
    for pixels in images.iter().take(count) {
        let frame = Frame::packed(pixels, 28, 28, PixelFormat::Gray8).map_err(|e| e.to_string())?;
        frame_levels(&frame, &spec, &mut levels).map_err(|e| e.to_string())?;
        raw.extend(levels.iter().flat_map(|v| v.to_le_bytes()));
    }
    std::fs::write(out, raw).map_err(|e| format!("{out}: {e}"))
}

/// The detail gate's frame size, if `model` has a detail branch (gray models only).
fn detail_frame(model: &flowgate_shared::Model<'_>) -> Result<Option<(usize, usize)>, String> {
    match &model.detail {
        None => Ok(None),
        Some(_) if model.input.channels != 1 => Err("only gray detail gates are timed".to_string()),
        Some(detail) => Ok(Some((
            detail.frame_width as usize,
            detail.frame_height as usize,
        ))),
    }
}

fn write_frames(model: &str, folder: &str, out: &str, count: &str) -> Outcome {
    use flowgate_edge::io::image::{list_folder, read_image};
    let count: usize = number(count)?;
    let bytes = std::fs::read(model).map_err(|e| format!("{model}: {e}"))?;
    let decoded = flowgate_shared::decode(&bytes).map_err(|e| e.to_string())?;
    let (width, height) =
        detail_frame(&decoded.model)?.ok_or_else(|| format!("{model} has no detail branch"))?;
    let files = list_folder(Path::new(folder)).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    for file in files.iter().take(count) {
        let image = read_image(file, 1).map_err(|e| e.to_string())?;
        let frame = image.frame().map_err(|e| e.to_string())?;
        if (frame.width() as usize, frame.height() as usize) != (width, height) {
            return Err(format!(
                "{}: {}x{}, the gate takes {width}x{height}",
                file.display(),
                frame.width(),
                frame.height()
            ));
        }
        raw.extend(
            image
                .pixels
                .iter()
                .flat_map(|&p| f32::from(p).to_le_bytes()),
        );
    }
    std::fs::write(out, raw).map_err(|e| format!("{out}: {e}"))
}

fn read_levels(path: &str, frame_len: usize) -> Result<Vec<Vec<f32>>, String> {
    let raw = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let values: Vec<f32> = raw
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(values
        .chunks_exact(frame_len)
        .map(<[f32]>::to_vec)
        .collect())
}

/// `score` of the first frames (what the engines must agree on), then `score` run on the
/// frames in turn for about `seconds` after a warm-up: those values, and the per-frame times
/// in microseconds, sorted.
fn checked_and_timed(
    frames: usize,
    seconds: f64,
    mut score: impl FnMut(usize) -> Result<f64, String>,
) -> Result<(Vec<f64>, Vec<f64>), String> {
    let values = (0..frames.min(8))
        .map(&mut score)
        .collect::<Result<Vec<_>, _>>()?;
    let warm_up = Instant::now();
    let mut index = 0;
    while warm_up.elapsed() < Duration::from_millis(300) {
        score(index % frames)?;
        index += 1;
    }
    let mut times = Vec::new();
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < seconds || times.len() < 20 {
        let t = Instant::now();
        score(index % frames)?;
        times.push(t.elapsed().as_secs_f64() * 1e6);
        index += 1;
    }
    times.sort_by(f64::total_cmp);
    Ok((values, times))
}

/// One JSON line: the latency quartiles, and `checked` (bits_per_dim or ood_score) of the
/// first frames.
fn report(engine: &str, macs: u64, times: &[f64], checked: &str, values: &[f64]) {
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    let values: Vec<String> = values.iter().map(|b| format!("{b:.6}")).collect();
    println!(
        "{{\"engine\":\"{engine}\",\"macs\":{macs},\"median_us\":{:.2},\"q1_us\":{:.2},\"q3_us\":{:.2},\"frames\":{},\"{checked}\":[{}]}}",
        at(0.5),
        at(0.25),
        at(0.75),
        times.len(),
        values.join(",")
    );
}

fn time(engine: &str, model: &str, onnx: &str, levels: &str, seconds: &str) -> Outcome {
    let seconds: f64 = number(seconds)?;
    let bytes = std::fs::read(model).map_err(|e| format!("{model}: {e}"))?;
    let validated = flowgate_shared::decode(&bytes).map_err(|e| e.to_string())?;
    let (spec, macs) = (validated.model.input, validated.summary.macs_per_frame);
    let detail = detail_frame(&validated.model)?;
    let shape = match detail {
        Some((width, height)) => [1, 1, height, width],
        None => [
            1,
            spec.channels as usize,
            spec.height as usize,
            spec.width as usize,
        ],
    };
    let frames = read_levels(levels, shape.iter().product())?;
    // What the engines must agree on: the thumbnail's bits/dim, or a detail gate's combined
    // OOD score (the graph's fourth output).
    let (checked, output) = match detail {
        Some(_) => ("ood_score", 3),
        None => ("bits_per_dim", 1),
    };
    match engine {
        "flowgate" | "flowgate-scalar" => {
            let mut gate =
                Gate::with_limits(&bytes, Limits::UNLIMITED).map_err(|e| e.to_string())?;
            if engine == "flowgate-scalar" {
                gate = gate
                    .with_kernels(KernelPath::Scalar)
                    .map_err(|e| e.to_string())?;
            }
            let mut scratch = vec![0f32; gate.scratch_len()];
            let (values, times) = if let Some((width, height)) = detail {
                // Whole frames as the camera hands them over: gray bytes.
                let pixels: Vec<Vec<u8>> = frames
                    .iter()
                    .map(|f| f.iter().map(|&v| v as u8).collect())
                    .collect();
                let score = |index: usize| {
                    let frame = Frame::packed(
                        &pixels[index],
                        width as u32,
                        height as u32,
                        PixelFormat::Gray8,
                    )
                    .map_err(|e| e.to_string())?;
                    gate.score(&frame, &mut scratch)
                        .map(|verdict| verdict.ood_score)
                        .map_err(|e| e.to_string())
                };
                checked_and_timed(frames.len(), seconds, score)?
            } else {
                let score = |index: usize| {
                    let input = &frames[index];
                    scratch[..input.len()].copy_from_slice(input);
                    gate.score_levels_in_scratch(&mut scratch)
                        .map(|verdict| verdict.bits_per_dim)
                        .map_err(|e| e.to_string())
                };
                checked_and_timed(frames.len(), seconds, score)?
            };
            report(engine, macs, &times, checked, &values);
        }
        "tract" => {
            let plan = tract_onnx::onnx()
                .model_for_path(onnx)
                .and_then(|m| m.with_input_fact(0, f32::fact(shape).into()))
                .and_then(|m| m.into_optimized())
                .and_then(|m| m.into_runnable())
                .map_err(|e| format!("{onnx}: {e}"))?;
            let inputs: Vec<Tensor> = frames
                .iter()
                .map(|f| tract_ndarray::Array4::from_shape_vec(shape, f.clone()).map(Tensor::from))
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?;
            let score = |index: usize| {
                let outputs = plan
                    .run(tvec!(inputs[index].clone().into()))
                    .map_err(|e| e.to_string())?;
                let value = outputs
                    .get(output)
                    .ok_or_else(|| format!("no {checked} output"))?
                    .to_plain_array_view::<f32>()
                    .map_err(|e| e.to_string())?;
                value
                    .iter()
                    .next()
                    .map(|&b| f64::from(b))
                    .ok_or_else(|| format!("an empty {checked} output"))
            };
            let (values, times) = checked_and_timed(frames.len(), seconds, score)?;
            report(engine, macs, &times, checked, &values);
        }
        other => {
            return Err(format!(
                "unknown engine {other}: flowgate, flowgate-scalar or tract"
            ));
        }
    }
    Ok(())
}

/// One core's f32 multiply-accumulates per second on the widest FMA this CPU has: twelve
/// independent chains of fused multiply-adds (enough to cover the FMA units' latency).
fn peak(seconds: &str) -> Outcome {
    let seconds: f64 = number(seconds)?;
    #[cfg(target_arch = "x86_64")]
    if KernelPath::Avx2Fma.available() {
        let mut best = 0f64;
        let start = Instant::now();
        while start.elapsed().as_secs_f64() < seconds {
            let iterations = 10_000_000u64;
            let t = Instant::now();
            // SAFETY: AVX2 and FMA checked above.
            let sink = unsafe { fma_chains(iterations) };
            let elapsed = t.elapsed().as_secs_f64();
            std::hint::black_box(sink);
            best = best.max((iterations * 12 * 8) as f64 / elapsed);
        }
        println!("{{\"peak_macs_per_s\":{best:.0},\"lanes\":8,\"isa\":\"avx2-fma\"}}");
        return Ok(());
    }
    Err("peak: only measured on x86_64 with AVX2+FMA".into())
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_chains(iterations: u64) -> f32 {
    use std::arch::x86_64::*;
    let a = _mm256_set1_ps(0.999_999);
    let b = _mm256_set1_ps(1e-7);
    let mut acc = [_mm256_set1_ps(1.0); 12];
    for _ in 0..iterations {
        for acc in acc.iter_mut() {
            *acc = _mm256_fmadd_ps(*acc, a, b);
        }
    }
    let mut out = [0f32; 8];
    let sum = acc
        .iter()
        .fold(_mm256_setzero_ps(), |s, a| _mm256_add_ps(s, *a));
    // SAFETY: 8 floats.
    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), sum) };
    out.iter().sum()
}
