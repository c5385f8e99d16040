//! The C ABI, called as C calls it: the same verdicts as the Rust gate, a status (never a
//! panic) for every bad argument, model and frame.

use std::ffi::CStr;
use std::ptr;

use flowgate_edge::{Frame, Gate};
use flowgate_gate::{
    fg_default_limits, fg_fault, fg_gate, fg_gate_free, fg_gate_new, fg_gate_new_with_limits,
    fg_gate_score, fg_gate_score_range, fg_gate_scratch_len, fg_limits, fg_luma_range,
    fg_pixel_format, fg_status, fg_status_message, fg_verdict, pixel_format,
};
use flowgate_shared::example::tiny_model;
use flowgate_shared::{Model, Resize, encode};

const NO_VERDICT: fg_verdict = fg_verdict {
    log_likelihood: 0.0,
    bits_per_dim: 0.0,
    ood_score: 0.0,
    decision: 7,
    fault: 7,
};

const ALL_FORMATS: [fg_pixel_format; 5] = [
    fg_pixel_format::Gray8,
    fg_pixel_format::Rgb8,
    fg_pixel_format::Bgr8,
    fg_pixel_format::Yuyv,
    fg_pixel_format::Nv12,
];

fn tiny_file() -> Vec<u8> {
    encode(&tiny_model()).unwrap()
}

/// A model file for `model` whatever its validity (framed with a correct checksum).
fn framed(model: &Model<'_>) -> Vec<u8> {
    let payload = postcard::to_allocvec(model).unwrap();
    let mut file = flowgate_shared::header::header_for(&payload)
        .unwrap()
        .to_vec();
    file.extend_from_slice(&payload);
    file
}

/// Owns a gate and frees it on drop.
struct Handle(*mut fg_gate);

impl Handle {
    fn new(bytes: &[u8]) -> Result<Handle, fg_status> {
        let mut gate = ptr::dangling_mut::<fg_gate>();
        // SAFETY: `bytes` outlives every use of the handle in these tests (the callers keep
        // the model alive past the handle's drop).
        let status = unsafe { fg_gate_new(bytes.as_ptr(), bytes.len(), &mut gate) };
        if status == fg_status::Ok {
            assert!(!gate.is_null());
            Ok(Handle(gate))
        } else {
            assert!(gate.is_null(), "a failed fg_gate_new leaves *out NULL");
            Err(status)
        }
    }

    fn scratch_len(&self) -> usize {
        // SAFETY: a live gate.
        unsafe { fg_gate_scratch_len(self.0) }
    }

    #[allow(clippy::too_many_arguments)]
    fn score(
        &self,
        pixels: &[u8],
        width: u32,
        height: u32,
        stride: usize,
        format: fg_pixel_format,
        scratch: &mut [f32],
    ) -> Result<fg_verdict, fg_status> {
        let mut verdict = NO_VERDICT;
        // SAFETY: a live gate; every buffer is a valid slice. The frame's geometry may exceed
        // `pixels` only in tests that expect the geometry check to fail first (BAD_FRAME).
        let status = unsafe {
            fg_gate_score(
                self.0,
                pixels.as_ptr(),
                width,
                height,
                stride,
                format as i32,
                scratch.as_mut_ptr(),
                scratch.len(),
                &mut verdict,
            )
        };
        if status == fg_status::Ok {
            Ok(verdict)
        } else {
            assert_eq!(verdict, NO_VERDICT, "a failed score leaves *out unchanged");
            Err(status)
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: from fg_gate_new, freed once.
        unsafe { fg_gate_free(self.0) };
    }
}

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(37).wrapping_add(seed.wrapping_mul(101)) ^ (i / 7)) as u8)
        .collect()
}

#[test]
fn verdicts_equal_the_rust_gate_bit_for_bit() {
    // The tiny model rejects every frame here (its threshold is 2.5 bits/dim, the frames score
    // 7.4 to 10); with the threshold at 7.6 some frames pass.
    let mut lenient = tiny_model();
    lenient.threshold.as_mut().unwrap().ood_score = 7.6;
    let mut seen = [false; 2];
    for bytes in [tiny_file(), encode(&lenient).unwrap()] {
        let handle = Handle::new(&bytes).unwrap();
        let gate = Gate::new(&bytes).unwrap();
        assert_eq!(handle.scratch_len(), gate.scratch_len());
        let mut scratch = vec![0f32; handle.scratch_len()];
        let mut rust_scratch = vec![0f32; gate.scratch_len()];
        let mut check = |pixels: &[u8], width, height, stride, format| {
            let verdict = handle
                .score(pixels, width, height, stride, format, &mut scratch)
                .unwrap();
            let frame = Frame::new(
                pixels,
                width,
                height,
                stride,
                pixel_format(format as i32).unwrap(),
            )
            .unwrap();
            let expected = gate.score(&frame, &mut rust_scratch).unwrap();
            assert_eq!(
                verdict,
                fg_verdict::from(expected),
                "{format:?} {width}x{height}"
            );
            assert_eq!(
                verdict.bits_per_dim.to_bits(),
                expected.bits_per_dim.to_bits()
            );
            let threshold = f64::from(gate.model().threshold.as_ref().unwrap().ood_score);
            assert_eq!(verdict.decision, i32::from(verdict.ood_score > threshold));
            seen[verdict.decision as usize] = true;
        };
        for (seed, format) in ALL_FORMATS.into_iter().enumerate() {
            for (width, height, pad) in [(4, 4, 0), (10, 6, 5), (16, 12, 0), (6, 1, 3)] {
                let stride = pixel_format(format as i32)
                    .unwrap()
                    .row_bytes(width as usize)
                    + pad;
                let pixels = pattern(stride * height as usize, seed as u32 + width);
                check(&pixels, width, height, stride, format);
            }
        }
        // Flat frames: all black and all white.
        for level in [0u8, 255] {
            check(&[level; 16], 4, 4, 4, fg_pixel_format::Gray8);
        }
    }
    assert_eq!(seen, [true, true], "the frames get both decisions");
}

#[test]
fn an_uncalibrated_model_gives_no_decision() {
    let mut model = tiny_model();
    model.threshold = None;
    let bytes = encode(&model).unwrap();
    let handle = Handle::new(&bytes).unwrap();
    let mut scratch = vec![0f32; handle.scratch_len()];
    let verdict = handle
        .score(&[9; 16], 4, 4, 4, fg_pixel_format::Gray8, &mut scratch)
        .unwrap();
    assert_eq!(verdict.decision, -1);
    assert!(verdict.bits_per_dim.is_finite());
    assert_eq!(verdict.ood_score, verdict.bits_per_dim);
}

#[test]
fn model_errors_have_their_own_codes() {
    let good = tiny_file();
    assert_eq!(Handle::new(&good[..10]).err(), Some(fg_status::BadModel));
    assert_eq!(
        Handle::new(&good[..good.len() - 1]).err(),
        Some(fg_status::BadModel)
    );
    assert_eq!(Handle::new(&[]).err(), Some(fg_status::BadModel));

    let mut magic = good.clone();
    magic[0] ^= 1;
    assert_eq!(Handle::new(&magic).err(), Some(fg_status::BadModel));

    let mut version = good.clone();
    version[8] = version[8].wrapping_add(1);
    assert_eq!(Handle::new(&version).err(), Some(fg_status::ModelVersion));

    let mut corrupted = good.clone();
    let last = corrupted.len() - 1;
    corrupted[last] ^= 0x40;
    assert_eq!(
        Handle::new(&corrupted).err(),
        Some(fg_status::ModelChecksum)
    );

    let mut model = tiny_model();
    model.input.channels = 2;
    assert_eq!(
        Handle::new(&framed(&model)).err(),
        Some(fg_status::ModelInvalid)
    );
}

#[test]
fn frame_and_scratch_errors() {
    let bytes = tiny_file();
    let handle = Handle::new(&bytes).unwrap();
    let needed = handle.scratch_len();
    let mut scratch = vec![0f32; needed];
    let pixels = pattern(64, 1);
    let gray = fg_pixel_format::Gray8;

    assert_eq!(
        handle.score(&pixels, 4, 4, 4, gray, &mut scratch[..needed - 1]),
        Err(fg_status::ScratchTooSmall)
    );
    // A larger scratch is fine.
    let mut big = vec![0f32; needed + 100];
    assert!(handle.score(&pixels, 4, 4, 4, gray, &mut big).is_ok());

    // Geometry the gate refuses before touching the buffer.
    assert_eq!(
        handle.score(&pixels, 0, 4, 4, gray, &mut scratch),
        Err(fg_status::BadFrame)
    );
    assert_eq!(
        handle.score(&pixels, 4, 0, 4, gray, &mut scratch),
        Err(fg_status::BadFrame)
    );
    assert_eq!(
        handle.score(&pixels, 4, 4, 3, gray, &mut scratch),
        Err(fg_status::BadFrame)
    );
    assert_eq!(
        handle.score(&pixels, 4, 4, 8, fg_pixel_format::Rgb8, &mut scratch),
        Err(fg_status::BadFrame)
    );
    assert_eq!(
        handle.score(&pixels, 3, 2, 6, fg_pixel_format::Yuyv, &mut scratch),
        Err(fg_status::BadFrame)
    );
    assert_eq!(
        handle.score(&pixels, 4, u32::MAX, usize::MAX / 2, gray, &mut scratch),
        Err(fg_status::BadFrame),
        "a size that overflows"
    );
    assert_eq!(
        handle.score(&pixels, 4, 2, usize::MAX / 2, gray, &mut scratch),
        Err(fg_status::InvalidArgument),
        "a span above PTRDIFF_MAX"
    );

    // A model that does not resize takes only its own size.
    let mut model = tiny_model();
    model.input.resize = Resize::Exact;
    let exact_bytes = encode(&model).unwrap();
    let exact = Handle::new(&exact_bytes).unwrap();
    let mut scratch = vec![0f32; exact.scratch_len()];
    assert_eq!(
        exact.score(&pixels, 5, 4, 5, gray, &mut scratch),
        Err(fg_status::SizeMismatch)
    );
    assert!(exact.score(&pixels, 4, 4, 4, gray, &mut scratch).is_ok());
}

#[test]
fn null_and_misaligned_pointers_are_statuses() {
    let bytes = tiny_file();
    let mut gate = ptr::dangling_mut::<fg_gate>();
    // SAFETY (all calls below): NULL where a pointer is refused; otherwise valid buffers.
    unsafe {
        assert_eq!(
            fg_gate_new(ptr::null(), 10, &mut gate),
            fg_status::NullPointer
        );
        assert!(gate.is_null());
        assert_eq!(
            fg_gate_new(bytes.as_ptr(), bytes.len(), ptr::null_mut()),
            fg_status::NullPointer
        );
        assert_eq!(fg_gate_scratch_len(ptr::null()), 0);
        fg_gate_free(ptr::null_mut());
    }

    let handle = Handle::new(&bytes).unwrap();
    let mut scratch = vec![0f32; handle.scratch_len() + 1];
    let pixels = [0u8; 16];
    let mut verdict = NO_VERDICT;
    let gray = fg_pixel_format::Gray8;
    let len = scratch.len();
    let s = scratch.as_mut_ptr();
    // SAFETY: as above.
    unsafe {
        let call = |gate: *const fg_gate, px: *const u8, s: *mut f32, out: *mut fg_verdict| {
            fg_gate_score(gate, px, 4, 4, 4, gray as i32, s, len - 1, out)
        };
        assert_eq!(
            call(ptr::null(), pixels.as_ptr(), s, &mut verdict),
            fg_status::NullPointer
        );
        assert_eq!(
            call(handle.0, ptr::null(), s, &mut verdict),
            fg_status::NullPointer
        );
        assert_eq!(
            call(handle.0, pixels.as_ptr(), ptr::null_mut(), &mut verdict),
            fg_status::NullPointer
        );
        assert_eq!(
            call(handle.0, pixels.as_ptr(), s, ptr::null_mut()),
            fg_status::NullPointer
        );
        let misaligned = s.cast::<u8>().add(1).cast::<f32>();
        assert_eq!(
            call(handle.0, pixels.as_ptr(), misaligned, &mut verdict),
            fg_status::InvalidArgument
        );
        assert_eq!(verdict, NO_VERDICT);
        assert_eq!(
            call(handle.0, pixels.as_ptr(), s, &mut verdict),
            fg_status::Ok
        );
        assert_ne!(verdict, NO_VERDICT);
    }
}

#[test]
fn one_gate_scores_from_several_threads() {
    let bytes = tiny_file();
    let handle = Handle::new(&bytes).unwrap();
    let expected = {
        let mut scratch = vec![0f32; handle.scratch_len()];
        handle
            .score(
                &pattern(16, 3),
                4,
                4,
                4,
                fg_pixel_format::Gray8,
                &mut scratch,
            )
            .unwrap()
    };
    let gate = handle.0 as usize;
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(move || {
                let gate = gate as *const fg_gate;
                // SAFETY: a live gate (freed after the scope); per-thread buffers.
                let scratch_len = unsafe { fg_gate_scratch_len(gate) };
                let mut scratch = vec![0f32; scratch_len];
                let pixels = pattern(16, 3);
                for _ in 0..50 {
                    let mut verdict = NO_VERDICT;
                    let status = unsafe {
                        fg_gate_score(
                            gate,
                            pixels.as_ptr(),
                            4,
                            4,
                            4,
                            fg_pixel_format::Gray8 as i32,
                            scratch.as_mut_ptr(),
                            scratch.len(),
                            &mut verdict,
                        )
                    };
                    assert_eq!(status, fg_status::Ok);
                    assert_eq!(verdict, expected);
                }
            });
        }
    });
}

#[test]
fn every_status_has_a_message() {
    let statuses = [
        fg_status::Ok,
        fg_status::NullPointer,
        fg_status::BadModel,
        fg_status::ModelChecksum,
        fg_status::ModelVersion,
        fg_status::ModelInvalid,
        fg_status::ScratchTooSmall,
        fg_status::BadFrame,
        fg_status::SizeMismatch,
        fg_status::InvalidArgument,
        fg_status::Internal,
        fg_status::LimitExceeded,
    ];
    let mut messages = Vec::new();
    for (code, status) in statuses.into_iter().enumerate() {
        assert_eq!(status as i32, code as i32, "codes are stable and dense");
        let message = fg_status_message(status as i32);
        assert!(!message.is_null());
        // SAFETY: a static NUL-terminated string.
        let message = unsafe { CStr::from_ptr(message) }.to_str().unwrap();
        assert!(!message.is_empty());
        messages.push(message);
    }
    messages.sort_unstable();
    messages.dedup();
    assert_eq!(messages.len(), statuses.len(), "messages are distinct");
}

#[test]
fn out_of_range_enum_values_are_invalid_arguments_not_undefined_behaviour() {
    let bytes = tiny_file();
    let handle = Handle::new(&bytes).unwrap();
    let mut scratch = vec![0f32; handle.scratch_len()];
    let pixels = [0u8; 64];
    for format in [-1, 5, 7, i32::MAX, i32::MIN] {
        let mut verdict = NO_VERDICT;
        // SAFETY: a live gate and valid buffers; only the format is out of range.
        let status = unsafe {
            fg_gate_score(
                handle.0,
                pixels.as_ptr(),
                4,
                4,
                4,
                format,
                scratch.as_mut_ptr(),
                scratch.len(),
                &mut verdict,
            )
        };
        assert_eq!(status, fg_status::InvalidArgument, "format {format}");
        assert_eq!(verdict, NO_VERDICT);
    }
    for status in [-1, 12, 1000] {
        // SAFETY: a static NUL-terminated string.
        let message = unsafe { CStr::from_ptr(fg_status_message(status)) };
        assert_eq!(message.to_str().unwrap(), "unknown status");
    }
}

#[test]
fn a_model_over_the_limits_is_refused_at_load() {
    let bytes = tiny_file();
    let defaults = fg_default_limits();
    assert_eq!(defaults.max_memory_bytes, 4096 * 1024);
    assert_eq!(defaults.max_macs_per_frame, 50_000_000);
    let gate = Gate::new(&bytes).unwrap();
    let macs = gate.summary().macs_per_frame;
    let memory = gate.memory_bytes();
    let load = |limits: fg_limits| {
        let mut out = ptr::dangling_mut::<fg_gate>();
        // SAFETY: valid model bytes and out pointer; the gate is freed at once.
        unsafe {
            let status = fg_gate_new_with_limits(bytes.as_ptr(), bytes.len(), limits, &mut out);
            fg_gate_free(out);
            status
        }
    };
    let exact = fg_limits {
        max_memory_bytes: memory,
        max_macs_per_frame: macs,
    };
    assert_eq!(load(exact), fg_status::Ok);
    let tight_memory = fg_limits {
        max_memory_bytes: memory - 1,
        ..exact
    };
    assert_eq!(load(tight_memory), fg_status::LimitExceeded);
    let tight_macs = fg_limits {
        max_macs_per_frame: macs - 1,
        ..exact
    };
    assert_eq!(load(tight_macs), fg_status::LimitExceeded);
}

#[test]
fn a_non_finite_score_is_a_rejection_with_a_fault() {
    // A hostile but valid model: the tiny model with every f32 weight at 1e30. Its
    // activations overflow to infinities whose sums of mixed signs are NaN.
    let mut file = tiny_file();
    flowgate_shared::tamper::inflate_weights(&mut file, 1e30, 0).unwrap();
    match Handle::new(&file) {
        Err(status) => assert_eq!(status, fg_status::ModelInvalid),
        Ok(_) => panic!("log-scales of 1e30 must be refused"),
    }
    // Leave the log-scales (the coupling scales and actnorm) alone: it loads.
    let mut file = tiny_file();
    flowgate_shared::tamper::inflate_weights(&mut file, 1e30, 2).unwrap();
    let handle = Handle::new(&file).expect("valid, if hostile");
    let mut scratch = vec![0f32; handle.scratch_len()];
    let mut faults = 0;
    for seed in 0..8 {
        let verdict = handle
            .score(
                &pattern(16, seed),
                4,
                4,
                4,
                fg_pixel_format::Gray8,
                &mut scratch,
            )
            .unwrap();
        let finite = verdict.log_likelihood.is_finite() && verdict.ood_score.is_finite();
        if finite {
            assert_eq!(verdict.fault, fg_fault::None as i32);
        } else {
            faults += 1;
            assert_eq!(verdict.decision, 1, "{verdict:?}");
            assert_eq!(
                verdict.fault,
                fg_fault::NonFiniteScore as i32,
                "{verdict:?}"
            );
        }
    }
    assert!(faults > 0, "the hostile model should overflow");
}

#[test]
fn limited_range_luma_scores_as_the_rust_gate_reads_it() {
    let bytes = tiny_file();
    let handle = Handle::new(&bytes).unwrap();
    let gate = Gate::new(&bytes).unwrap();
    let mut scratch = vec![0f32; handle.scratch_len()];
    let mut rust_scratch = vec![0f32; gate.scratch_len()];
    let pixels = pattern(16, 5);
    let score = |range: i32, scratch: &mut [f32]| {
        let mut verdict = NO_VERDICT;
        // SAFETY: a live gate and valid buffers.
        let status = unsafe {
            fg_gate_score_range(
                handle.0,
                pixels.as_ptr(),
                4,
                4,
                4,
                fg_pixel_format::Gray8 as i32,
                range,
                scratch.as_mut_ptr(),
                scratch.len(),
                &mut verdict,
            )
        };
        (status, verdict)
    };
    let frame = Frame::new(&pixels, 4, 4, 4, flowgate_edge::PixelFormat::Gray8)
        .unwrap()
        .with_luma_range(flowgate_edge::LumaRange::Limited);
    let expected = fg_verdict::from(gate.score(&frame, &mut rust_scratch).unwrap());
    assert_eq!(
        score(fg_luma_range::Limited as i32, &mut scratch),
        (fg_status::Ok, expected)
    );
    // Full range is what fg_gate_score does.
    let full = handle
        .score(&pixels, 4, 4, 4, fg_pixel_format::Gray8, &mut scratch)
        .unwrap();
    assert_eq!(
        score(fg_luma_range::Full as i32, &mut scratch),
        (fg_status::Ok, full)
    );
    assert_ne!(full, expected);
    assert_eq!(score(2, &mut scratch).0, fg_status::InvalidArgument);
    assert_eq!(score(-1, &mut scratch).0, fg_status::InvalidArgument);
}

#[test]
fn a_detail_gate_scores_camera_sized_frames_and_refuses_others_as_size_mismatch() {
    let bytes = encode(&flowgate_shared::example::tiny_detail_model()).unwrap();
    let handle = Handle::new(&bytes).unwrap();
    let mut scratch = vec![0f32; handle.scratch_len()];
    let gray = fg_pixel_format::Gray8;
    let pixels = pattern(24 * 18, 3);
    let verdict = handle
        .score(&pixels, 24, 18, 24, gray, &mut scratch)
        .expect("the camera's size scores");
    // The same verdict as the Rust gate's: the combined score, not the thumbnail's.
    let gate = flowgate_edge::Gate::new(&bytes).unwrap();
    let frame =
        flowgate_edge::Frame::packed(&pixels, 24, 18, flowgate_edge::PixelFormat::Gray8).unwrap();
    let rust = gate
        .score(&frame, &mut vec![0f32; gate.scratch_len()])
        .unwrap();
    assert_eq!(verdict.ood_score.to_bits(), rust.ood_score.to_bits());
    assert!(rust.detail_bits_per_dim.is_some());
    // The thumbnail alone would resize a 12x9 frame; the branch needs 24x18.
    assert_eq!(
        handle.score(&pixels, 12, 9, 12, gray, &mut scratch),
        Err(fg_status::SizeMismatch)
    );
}
