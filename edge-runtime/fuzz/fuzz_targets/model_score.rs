//! Models that validate, scored: the input is a model file (its checksum is recomputed, so
//! mutations reach the payload instead of stopping at the header) or a bare payload. Every
//! model that loads scores frames of several sizes and formats without a panic, and every
//! verdict fails closed: a non-finite score (the detail branch's included) is a rejection
//! with a fault.
#![no_main]

use flowgate_edge::{Decision, Fault, Frame, Gate, Limits, PixelFormat};
use flowgate_shared::{HEADER_LEN, MAGIC, header::header_for};
use libfuzzer_sys::fuzz_target;

/// Far tighter than the boards' limits: a fuzzed model that costs 50 M MACs would spend
/// tens of milliseconds per input under the sanitizer, and cost is not what this target
/// explores (the limits themselves are: a model over them must be refused, not run).
const LIMITS: Limits = Limits {
    max_memory_bytes: 256 << 10,
    max_macs_per_frame: 200_000,
};

fuzz_target!(|data: &[u8]| {
    let payload = if data.starts_with(&MAGIC) {
        data.get(HEADER_LEN..).unwrap_or_default()
    } else {
        data
    };
    let Ok(header) = header_for(payload) else {
        return;
    };
    let mut file = header.to_vec();
    file.extend_from_slice(payload);
    let Ok(gate) = Gate::with_limits(&file, LIMITS) else {
        return;
    };
    let mut scratch = vec![0f32; gate.scratch_len()];
    let input = gate.model().input;
    // A detail branch reads frames of its camera's size only; a small one is scored at it
    // too (a large one costs more than the limits let through anyway).
    let camera = gate
        .model()
        .detail
        .as_ref()
        .map(|detail| (detail.frame_width, detail.frame_height))
        .filter(|&(width, height)| u64::from(width) * u64::from(height) <= 64 * 48);
    let pixels: Vec<u8> = (0..64 * 48 * 3).map(|i| (i * 37 % 251) as u8).collect();
    // At the model's size, larger in colour, and smaller in YUYV (resized either way).
    let mut frames = vec![
        (input.width, input.height, PixelFormat::Gray8),
        (64, 48, PixelFormat::Bgr8),
        (4, 2, PixelFormat::Yuyv),
    ];
    if let Some((width, height)) = camera {
        frames.push((width, height, PixelFormat::Gray8));
    }
    for (width, height, format) in frames {
        let Ok(frame) = Frame::packed(&pixels, width, height, format) else {
            continue;
        };
        if let Ok(verdict) = gate.score(&frame, &mut scratch) {
            let finite = verdict.log_likelihood.is_finite()
                && verdict.bits_per_dim.is_finite()
                && verdict.ood_score.is_finite()
                && verdict.detail_bits_per_dim.is_none_or(f64::is_finite);
            if !finite {
                assert_eq!(verdict.decision, Some(Decision::Reject));
                assert_eq!(verdict.fault, Some(Fault::NonFiniteScore));
            }
        }
    }
});
