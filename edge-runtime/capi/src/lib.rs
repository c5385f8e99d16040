//! C ABI of the flowgate gate: load a model, score camera frames, read the verdict.
//!
//! ```c
//! #include "flowgate.h"
//!
//! fg_gate *gate;
//! fg_status status = fg_gate_new(model_bytes, model_len, &gate); /* borrows model_bytes */
//! if (status != FG_STATUS_OK) { fprintf(stderr, "%s\n", fg_status_message(status)); ... }
//! float *scratch = malloc(fg_gate_scratch_len(gate) * sizeof(float));
//! fg_verdict verdict;
//! status = fg_gate_score(gate, pixels, 640, 480, 640, FG_PIXEL_FORMAT_GRAY8,
//!                        scratch, fg_gate_scratch_len(gate), &verdict);
//! if (status == FG_STATUS_OK && verdict.decision == 1) { /* hold the frame back */ }
//! free(scratch);
//! fg_gate_free(gate);
//! free(model_bytes); /* only now: the gate borrowed them */
//! ```
//!
//! The header `include/flowgate.h` is generated from this file by cbindgen; the test
//! `tests/header.rs` fails when it is out of date and rewrites it when run with
//! `FLOWGATE_BLESS=1`.
//!
//! Every function checks its pointers for NULL, returns a status instead of failing, and
//! never lets a panic cross the boundary (each body runs under `catch_unwind`; a panic, which
//! would be a bug, becomes [`fg_status::Internal`]). Scoring allocates nothing: it works in
//! the caller's scratch. One gate may score from several threads at once, each thread with
//! its own scratch.

use core::ffi::CStr;
use core::ffi::c_char;
use core::panic::AssertUnwindSafe;
use core::ptr;
use std::panic::catch_unwind;

use flowgate_edge::{
    Decision, Error, Fault, Frame, FrameError, Gate, LumaRange, PixelFormat, Verdict,
};

/// What a call did: `FG_STATUS_OK`, or why it failed.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum fg_status {
    /// Success.
    Ok = 0,
    /// A pointer argument is NULL.
    NullPointer = 1,
    /// Not a flowgate model: too short, bad magic bytes, a length mismatch (truncated or
    /// padded file), or a malformed payload.
    BadModel = 2,
    /// The model's checksum does not match its payload: the file is corrupted.
    ModelChecksum = 3,
    /// The model was written in a format version this build does not read.
    ModelVersion = 4,
    /// The model decodes but breaks a rule the gate relies on (shapes, values, sizes).
    ModelInvalid = 5,
    /// The scratch buffer holds fewer than `fg_gate_scratch_len` floats.
    ScratchTooSmall = 6,
    /// The frame's width, height, stride or format is unusable (zero size, stride shorter
    /// than a row, odd YUYV width, a size that overflows).
    BadFrame = 7,
    /// The frame's size differs from the model's input and the model does not resize, or
    /// the model has a native-resolution detail branch and the frame is not at the camera's
    /// size it was made for.
    SizeMismatch = 8,
    /// An argument is out of range: a length above `PTRDIFF_MAX` bytes or a misaligned
    /// pointer.
    InvalidArgument = 9,
    /// A bug in flowgate (the model disagreed with itself, or a panic was caught).
    Internal = 10,
    /// The model needs more memory (model bytes, its plan and scratch) or more
    /// multiply-accumulates per frame than the gate's limits allow (`fg_gate_new` uses the largest board config
    /// in firmware-configs/: 4 MiB and 50 million; `fg_gate_new_with_limits` takes others).
    LimitExceeded = 11,
}

/// How pixels are laid out in a frame buffer. Functions take these values as `int32_t`, so
/// a value outside the list is `FG_STATUS_INVALID_ARGUMENT`, not undefined behaviour.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum fg_pixel_format {
    /// One byte of luma per pixel.
    Gray8 = 0,
    /// Three bytes per pixel: red, green, blue.
    Rgb8 = 1,
    /// Three bytes per pixel: blue, green, red (OpenCV's order).
    Bgr8 = 2,
    /// Packed 4:2:2, `Y0 U Y1 V` per two pixels (even width); the gate reads the luma.
    Yuyv = 3,
    /// Planar 4:2:0 with the luma plane first; the gate reads only the luma plane, so the
    /// buffer need not hold the chroma plane.
    Nv12 = 4,
}

/// The gate's judgement of one frame.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct fg_verdict {
    /// Log-likelihood of the (resized, discrete) frame, in nats.
    pub log_likelihood: f64,
    /// `-log_likelihood / (D ln 2)`, D the model's input dimensions.
    pub bits_per_dim: f64,
    /// Higher = more anomalous (today: bits per dimension).
    pub ood_score: f64,
    /// -1: no decision (the model has no calibrated threshold); 0: accept (pass the frame
    /// on); 1: reject (out of distribution, or not judgeable: hold it back). Always 1 when
    /// `fault` is not `FG_FAULT_NONE`.
    pub decision: i32,
    /// An `fg_fault`: `FG_FAULT_NONE`, or why the frame was rejected whatever its score
    /// (the gate fails closed).
    pub fault: i32,
}

/// The range of a luma frame's values (gray8, YUYV, NV12), for `fg_gate_score_range`.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum fg_luma_range {
    /// 0..255: what image files and `ffmpeg -pix_fmt gray` hold; `fg_gate_score` assumes it.
    Full = 0,
    /// 16..235, the "TV" range most YUV video carries (V4L2 cameras, GStreamer's I420, NV12,
    /// YUY2): the gate expands it to full range before scoring.
    Limited = 1,
}

/// Why a frame was rejected whatever its score said (`fg_verdict.fault`).
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum fg_fault {
    /// The score was compared with the threshold as usual.
    None = 0,
    /// The log-likelihood or score came out NaN or infinite (an overflow inside the flow:
    /// a broken or hostile model); the frame is rejected.
    NonFiniteScore = 1,
}

/// Resource limits a model must fit, checked when the gate loads it.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct fg_limits {
    /// Most bytes the model, the plan the gate makes of it at load (weights packed for the
    /// kernels) and its scratch (`fg_gate_scratch_len * sizeof(float)`) may take together;
    /// a board config's `[memory] budget_kib * 1024`.
    pub max_memory_bytes: u64,
    /// Most multiply-accumulates per frame; a board config's `[model] max_macs_per_frame`.
    pub max_macs_per_frame: u64,
}

/// A loaded model, ready to score frames. Opaque to C: create it with `fg_gate_new`, release
/// it with `fg_gate_free`.
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct fg_gate {
    gate: Gate<'static>,
}

/// Loads a model: checks its framing and checksum, decodes and validates it, and checks it
/// against the default limits (`fg_default_limits`).
///
/// The gate borrows `model` (zero copy): the caller must keep those `len` bytes alive and
/// unchanged until `fg_gate_free`. On success `*out` is the new gate; on failure `*out` is
/// NULL (when `out` itself is not NULL) and the status says why.
///
/// # Safety
///
/// `model` must point to `len` readable bytes that stay valid and unmodified until the gate
/// is freed; `out` must be NULL or point to writable storage for one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fg_gate_new(
    model: *const u8,
    len: usize,
    out: *mut *mut fg_gate,
) -> fg_status {
    // SAFETY: the caller's guarantees are this function's.
    unsafe { fg_gate_new_with_limits(model, len, fg_default_limits(), out) }
}

/// The limits `fg_gate_new` applies: the largest board config in firmware-configs/.
#[unsafe(no_mangle)]
pub extern "C" fn fg_default_limits() -> fg_limits {
    let limits = flowgate_edge::Limits::DEFAULT;
    fg_limits {
        max_memory_bytes: limits.max_memory_bytes,
        max_macs_per_frame: limits.max_macs_per_frame,
    }
}

/// `fg_gate_new` with the caller's limits, e.g. a board's budget; a model beyond them is
/// `FG_STATUS_LIMIT_EXCEEDED`.
///
/// # Safety
///
/// As for `fg_gate_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fg_gate_new_with_limits(
    model: *const u8,
    len: usize,
    limits: fg_limits,
    out: *mut *mut fg_gate,
) -> fg_status {
    guard(|| {
        if out.is_null() {
            return fg_status::NullPointer;
        }
        if !out.is_aligned() {
            return fg_status::InvalidArgument;
        }
        // SAFETY: `out` is non-null and aligned, and the caller guarantees it is writable.
        unsafe { out.write(ptr::null_mut()) };
        if model.is_null() {
            return fg_status::NullPointer;
        }
        if len > isize::MAX as usize {
            return fg_status::InvalidArgument;
        }
        // SAFETY: the caller guarantees `len` readable bytes at `model` that outlive the gate
        // (until `fg_gate_free`, which drops the gate and so every borrow of them).
        let bytes: &'static [u8] = unsafe { core::slice::from_raw_parts(model, len) };
        let limits = flowgate_edge::Limits {
            max_memory_bytes: limits.max_memory_bytes,
            max_macs_per_frame: limits.max_macs_per_frame,
        };
        match Gate::with_limits(bytes, limits) {
            Ok(gate) => {
                let handle = Box::into_raw(Box::new(fg_gate { gate }));
                // SAFETY: as above.
                unsafe { out.write(handle) };
                fg_status::Ok
            }
            Err(error) => status_of(&error),
        }
    })
}

/// Releases a gate from `fg_gate_new`; NULL is ignored. The model bytes may be freed after.
///
/// # Safety
///
/// `gate` must be NULL or a gate from `fg_gate_new` not yet freed, not in use by another
/// thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fg_gate_free(gate: *mut fg_gate) {
    if gate.is_null() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the caller guarantees `gate` came from `Box::into_raw` in `fg_gate_new`
        // and is freed once.
        drop(unsafe { Box::from_raw(gate) });
    }));
}

/// The number of floats of scratch `fg_gate_score` needs (0 for a NULL gate).
///
/// # Safety
///
/// `gate` must be NULL or a live gate from `fg_gate_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fg_gate_scratch_len(gate: *const fg_gate) -> usize {
    // SAFETY: the caller guarantees `gate` is NULL or a live gate.
    let Some(gate) = (unsafe { gate.as_ref() }) else {
        return 0;
    };
    catch_unwind(AssertUnwindSafe(|| gate.gate.scratch_len())).unwrap_or(0)
}

/// Scores one frame: resizes it to the model's input (area averaging, unless the model
/// forbids resizing), converts it (luma, or RGB for a colour model), runs the flow and
/// compares the OOD score with the model's threshold. Allocates nothing. Luma formats are
/// read as full range (`fg_gate_score_range` takes limited-range video).
///
/// The frame is `height` rows of `width` pixels in `format`, row `y` starting at
/// `pixels + y * stride` (for YUYV a row holds `2 * width` bytes, for RGB8/BGR8
/// `3 * width`, otherwise `width`; the buffer must hold `stride * (height - 1)` bytes plus
/// one row). `scratch` holds `scratch_len` floats, at least `fg_gate_scratch_len(gate)`; its
/// contents on entry do not matter. On success `*out` is the verdict; on failure `*out` is
/// left unchanged.
///
/// # Safety
///
/// `gate` must be a live gate; `pixels` must be readable for the frame as described above;
/// `scratch` must be writable for `scratch_len` floats and overlap neither `pixels` nor
/// `out`; `out` must point to a writable `fg_verdict`. `format` is an `fg_pixel_format`
/// value; any other is `FG_STATUS_INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn fg_gate_score(
    gate: *const fg_gate,
    pixels: *const u8,
    width: u32,
    height: u32,
    stride: usize,
    format: i32,
    scratch: *mut f32,
    scratch_len: usize,
    out: *mut fg_verdict,
) -> fg_status {
    // SAFETY: the caller's guarantees are this function's.
    unsafe {
        fg_gate_score_range(
            gate,
            pixels,
            width,
            height,
            stride,
            format,
            fg_luma_range::Full as i32,
            scratch,
            scratch_len,
            out,
        )
    }
}

/// `fg_gate_score` for luma that spans `luma_range` (an `fg_luma_range` value; any other is
/// `FG_STATUS_INVALID_ARGUMENT`). Colour formats are always read as full-range RGB.
///
/// # Safety
///
/// As for `fg_gate_score`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn fg_gate_score_range(
    gate: *const fg_gate,
    pixels: *const u8,
    width: u32,
    height: u32,
    stride: usize,
    format: i32,
    luma_range: i32,
    scratch: *mut f32,
    scratch_len: usize,
    out: *mut fg_verdict,
) -> fg_status {
    guard(|| {
        // SAFETY: the caller guarantees `gate` is NULL or a live gate.
        let Some(gate) = (unsafe { gate.as_ref() }) else {
            return fg_status::NullPointer;
        };
        if pixels.is_null() || scratch.is_null() || out.is_null() {
            return fg_status::NullPointer;
        }
        if !scratch.is_aligned() || !out.is_aligned() {
            return fg_status::InvalidArgument;
        }
        if scratch_len > isize::MAX as usize / size_of::<f32>() {
            return fg_status::InvalidArgument;
        }
        let (Some(format), Some(luma_range)) = (pixel_format(format), luma_range_of(luma_range))
        else {
            return fg_status::InvalidArgument;
        };
        let len = match frame_bytes(width, height, stride, format) {
            Ok(len) => len,
            Err(error) => return status_of(&Error::Frame(error)),
        };
        if len > isize::MAX as usize {
            return fg_status::InvalidArgument;
        }
        // SAFETY: the caller guarantees the frame's `len` bytes are readable.
        let data = unsafe { core::slice::from_raw_parts(pixels, len) };
        // SAFETY: the caller guarantees `scratch_len` writable floats that alias nothing else
        // we use; the pointer is non-null and aligned (checked above).
        let scratch = unsafe { core::slice::from_raw_parts_mut(scratch, scratch_len) };
        let frame = match Frame::new(data, width, height, stride, format) {
            Ok(frame) => frame.with_luma_range(luma_range),
            Err(error) => return status_of(&Error::Frame(error)),
        };
        match gate.gate.score(&frame, scratch) {
            Ok(verdict) => {
                // SAFETY: `out` is non-null, aligned, and the caller guarantees it writable.
                unsafe { out.write(fg_verdict::from(verdict)) };
                fg_status::Ok
            }
            Err(error) => status_of(&error),
        }
    })
}

/// A static, NUL-terminated English description of an `fg_status` value; never NULL (a
/// value that is no status gets "unknown status").
#[unsafe(no_mangle)]
pub extern "C" fn fg_status_message(status: i32) -> *const c_char {
    status_from_i32(status)
        .map_or(c"unknown status", message)
        .as_ptr()
}

/// The status with this value, if there is one.
pub fn status_from_i32(value: i32) -> Option<fg_status> {
    use fg_status::*;
    [
        Ok,
        NullPointer,
        BadModel,
        ModelChecksum,
        ModelVersion,
        ModelInvalid,
        ScratchTooSmall,
        BadFrame,
        SizeMismatch,
        InvalidArgument,
        Internal,
        LimitExceeded,
    ]
    .into_iter()
    .find(|status| *status as i32 == value)
}

/// The text behind [`fg_status_message`].
pub fn message(status: fg_status) -> &'static CStr {
    match status {
        fg_status::Ok => c"ok",
        fg_status::NullPointer => c"a pointer argument is NULL",
        fg_status::BadModel => {
            c"not a flowgate model (too short, bad magic, truncated or malformed file)"
        }
        fg_status::ModelChecksum => c"model checksum mismatch (corrupted file)",
        fg_status::ModelVersion => c"model format version not supported by this build",
        fg_status::ModelInvalid => c"invalid model (breaks a rule the gate relies on)",
        fg_status::ScratchTooSmall => c"scratch too small (see fg_gate_scratch_len)",
        fg_status::BadFrame => {
            c"bad frame (zero size, stride shorter than a row, odd YUYV width, or overflow)"
        }
        fg_status::SizeMismatch => {
            c"frame size differs from what the model takes (its input without resizing, or the camera size of its detail branch)"
        }
        fg_status::InvalidArgument => c"invalid argument (length too large or misaligned pointer)",
        fg_status::Internal => c"internal error in flowgate (a bug: please report it)",
        fg_status::LimitExceeded => {
            c"the model needs more memory or MACs per frame than the gate's limits allow"
        }
    }
}

/// The status for a gate error.
pub fn status_of(error: &Error) -> fg_status {
    use flowgate_shared::Error as ModelError;
    match error {
        Error::Model(ModelError::ChecksumMismatch { .. }) => fg_status::ModelChecksum,
        Error::Model(ModelError::UnsupportedVersion { .. }) => fg_status::ModelVersion,
        Error::Model(ModelError::Invalid { .. }) => fg_status::ModelInvalid,
        Error::Model(_) => fg_status::BadModel,
        Error::ScratchTooSmall { .. } => fg_status::ScratchTooSmall,
        Error::Frame(_) => fg_status::BadFrame,
        Error::SizeMismatch { .. } | Error::DetailFrameSize { .. } | Error::DetailNeedsFrame => {
            fg_status::SizeMismatch
        }
        Error::LimitExceeded { .. } => fg_status::LimitExceeded,
        _ => fg_status::Internal,
    }
}

/// The runtime's pixel format for an `fg_pixel_format` value; `None` for any other value.
/// C passes the value as an integer: a C enum may hold values outside its list, which a
/// Rust enum parameter must never receive.
pub fn pixel_format(format: i32) -> Option<PixelFormat> {
    const GRAY8: i32 = fg_pixel_format::Gray8 as i32;
    const RGB8: i32 = fg_pixel_format::Rgb8 as i32;
    const BGR8: i32 = fg_pixel_format::Bgr8 as i32;
    const YUYV: i32 = fg_pixel_format::Yuyv as i32;
    const NV12: i32 = fg_pixel_format::Nv12 as i32;
    Some(match format {
        GRAY8 => PixelFormat::Gray8,
        RGB8 => PixelFormat::Rgb8,
        BGR8 => PixelFormat::Bgr8,
        YUYV => PixelFormat::Yuyv,
        NV12 => PixelFormat::Nv12,
        _ => return None,
    })
}

impl From<Verdict> for fg_verdict {
    fn from(verdict: Verdict) -> Self {
        fg_verdict {
            log_likelihood: verdict.log_likelihood,
            bits_per_dim: verdict.bits_per_dim,
            ood_score: verdict.ood_score,
            decision: match verdict.decision {
                None => -1,
                Some(Decision::Accept) => 0,
                Some(Decision::Reject) => 1,
            },
            fault: match verdict.fault {
                None => fg_fault::None as i32,
                Some(Fault::NonFiniteScore) => fg_fault::NonFiniteScore as i32,
                // A fault this ABI has no code for yet is still a rejection.
                Some(_) => fg_fault::NonFiniteScore as i32,
            },
        }
    }
}

/// The runtime's luma range for an `fg_luma_range` value; `None` for any other value.
pub fn luma_range_of(range: i32) -> Option<LumaRange> {
    const FULL: i32 = fg_luma_range::Full as i32;
    const LIMITED: i32 = fg_luma_range::Limited as i32;
    match range {
        FULL => Some(LumaRange::Full),
        LIMITED => Some(LumaRange::Limited),
        _ => None,
    }
}

/// The bytes a frame of this geometry spans, with [`Frame::new`]'s own checks: validating an
/// empty buffer fails on the geometry first, or else reports the length it needs.
fn frame_bytes(
    width: u32,
    height: u32,
    stride: usize,
    format: PixelFormat,
) -> Result<usize, FrameError> {
    match Frame::new(&[], width, height, stride, format) {
        Err(FrameError::BufferTooShort { needed, .. }) if needed != usize::MAX => Ok(needed),
        Err(error) => Err(error),
        // Unreachable (a frame spans at least one byte); an empty span is still sound.
        Ok(_) => Ok(0),
    }
}

/// Runs an FFI body, turning a panic (a bug) into [`fg_status::Internal`].
fn guard(body: impl FnOnce() -> fg_status) -> fg_status {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fg_status::Internal)
}

// One gate scores from several threads at once (each with its own scratch).
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<fg_gate>();
};
