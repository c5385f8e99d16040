//! Raw frame streams of any geometry: the first 9 bytes pick the width, height (any u32)
//! and pixel format, the rest is the stream. Every geometry is accepted or refused without
//! a panic; streams of frames up to 64 KiB are read, whole frames scored by the tiny model
//! (resized by area averaging from whatever size), a partial frame is an error.
#![no_main]

use std::sync::OnceLock;

use flowgate_edge::io::raw::{RawFrames, RawGeometry};
use flowgate_edge::{Gate, PixelFormat};
use libfuzzer_sys::fuzz_target;

fn tiny_model() -> &'static [u8] {
    static MODEL: OnceLock<Vec<u8>> = OnceLock::new();
    MODEL.get_or_init(|| {
        flowgate_shared::encode(&flowgate_shared::example::tiny_model()).expect("valid")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((head, stream)) = data.split_first_chunk::<9>() else {
        return;
    };
    let width = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let height = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    let format = match head[8] % 5 {
        0 => PixelFormat::Gray8,
        1 => PixelFormat::Rgb8,
        2 => PixelFormat::Bgr8,
        3 => PixelFormat::Yuyv,
        _ => PixelFormat::Nv12,
    };
    let Ok(geometry) = RawGeometry::new(width, height, format) else {
        return;
    };
    // Reading allocates a frame; larger frames cost time, not coverage.
    if geometry.frame_len() > 1 << 16 {
        return;
    }
    let gate = Gate::new(tiny_model()).expect("the tiny model loads");
    let mut scratch = vec![0f32; gate.scratch_len()];
    let mut frames = RawFrames::new(stream, geometry);
    let mut buffer = Vec::new();
    while let Ok(Some((_, bytes))) = frames.next_frame(&mut buffer) {
        let frame = geometry.frame(bytes).expect("a whole frame is a valid frame");
        let verdict = gate.score(&frame, &mut scratch).expect("the tiny model scores it");
        assert!(verdict.decision.is_some());
    }
});
