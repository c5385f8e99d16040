//! From a camera frame to the flow's input: resize, convert, dequantise, logit.
//!
//! The trainer prepares its training images with these same functions, so a frame the gate
//! sees and an image the flow was trained on go through one definition.

use flowgate_shared::{InputSpec, Preprocess, Resize};

use crate::error::{Error, Result};
use crate::frame::Frame;

/// Writes the frame's pixel levels (0..=255, channel-major C x H x W) at the model's input
/// size into `levels`, resizing by area averaging when the model allows it.
pub fn frame_levels(frame: &Frame<'_>, input: &InputSpec, levels: &mut [f32]) -> Result<()> {
    let (out_w, out_h) = (input.width as usize, input.height as usize);
    let plane = out_w * out_h;
    let channels = input.channels as usize;
    let levels = levels
        .get_mut(..plane * channels)
        .ok_or(Error::Inconsistent)?;
    let same_size = frame.width() as usize == out_w && frame.height() as usize == out_h;
    if !same_size && input.resize == Resize::Exact {
        return Err(Error::SizeMismatch {
            expected: (input.width, input.height),
            found: (frame.width(), frame.height()),
        });
    }
    let (src_w, src_h) = (frame.width() as usize, frame.height() as usize);
    // Source span of one output pixel, in source pixels.
    let step_x = src_w as f64 / out_w as f64;
    let step_y = src_h as f64 / out_h as f64;
    for channel in 0..channels {
        let out_plane = levels
            .get_mut(channel * plane..(channel + 1) * plane)
            .ok_or(Error::Inconsistent)?;
        for (oy, out_row) in out_plane.chunks_exact_mut(out_w.max(1)).enumerate() {
            let (y0, y1) = (oy as f64 * step_y, (oy + 1) as f64 * step_y);
            for (ox, out) in out_row.iter_mut().enumerate() {
                let (x0, x1) = (ox as f64 * step_x, (ox + 1) as f64 * step_x);
                let mut sum = 0.0f64;
                for sy in (y0 as usize)..ceil_index(y1, src_h) {
                    let wy = overlap(sy, y0, y1);
                    let row = frame.row(sy as u32);
                    for sx in (x0 as usize)..ceil_index(x1, src_w) {
                        let value = sample(frame, row, sx, channel, channels);
                        sum += wy * overlap(sx, x0, x1) * f64::from(value);
                    }
                }
                let mean = sum / ((x1 - x0) * (y1 - y0));
                // A discrete image again: the flow's likelihood is of integer levels.
                *out = libm::round(mean).clamp(0.0, 255.0) as f32;
            }
        }
    }
    Ok(())
}

/// Writes the gray levels (full-range luma, rounded to integers as [`frame_levels`] rounds)
/// of the `width x height` patch whose top-left pixel is `origin` into `levels`, row by row.
/// The detail branch's patches: read at the frame's own resolution, never resized.
pub fn patch_levels(
    frame: &Frame<'_>,
    origin: (u32, u32),
    (width, height): (u32, u32),
    levels: &mut [f32],
) -> Result<()> {
    let (x0, y0) = (origin.0 as usize, origin.1 as usize);
    let (width, height) = (width as usize, height as usize);
    if x0 + width > frame.width() as usize || y0 + height > frame.height() as usize {
        return Err(Error::Inconsistent);
    }
    let levels = levels
        .get_mut(..width * height)
        .ok_or(Error::Inconsistent)?;
    for (dy, out_row) in levels.chunks_exact_mut(width.max(1)).enumerate() {
        let row = frame.row((y0 + dy) as u32);
        for (dx, out) in out_row.iter_mut().enumerate() {
            *out = libm::roundf(frame.luma(row, x0 + dx)).clamp(0.0, 255.0);
        }
    }
    Ok(())
}

fn sample(frame: &Frame<'_>, row: &[u8], x: usize, channel: usize, channels: usize) -> f32 {
    if channels == 1 {
        frame.luma(row, x)
    } else {
        let rgb = frame.rgb(row, x);
        f32::from(rgb.get(channel).copied().unwrap_or(0))
    }
}

fn ceil_index(end: f64, limit: usize) -> usize {
    (libm::ceil(end) as usize).min(limit)
}

/// Length of the overlap of source cell `[index, index + 1)` with `[start, end)`.
fn overlap(index: usize, start: f64, end: f64) -> f64 {
    let (lo, hi) = (index as f64, index as f64 + 1.0);
    (hi.min(end) - lo.max(start)).max(0.0)
}

/// Maps levels (0..=255) in place to the flow's input and returns `sum ln |dy/dx|` over the
/// map, in nats, plus the bin-width term `-D ln 256`: the log-likelihood of the discrete
/// image is the flow's continuous log-density of `y` plus this.
pub fn levels_to_flow_input(preprocess: Preprocess, values: &mut [f32]) -> f64 {
    let mut log_det = 0.0f64;
    for value in values.iter_mut() {
        let (y, term) = logit(preprocess, f64::from(*value));
        *value = y;
        log_det += term;
    }
    log_det - values.len() as f64 * libm::log(256.0)
}

/// The map of one level: `(y, ln |dy/dx|)`.
fn logit(preprocess: Preprocess, level: f64) -> (f32, f64) {
    match preprocess {
        Preprocess::Logit { alpha } => {
            let alpha = f64::from(alpha);
            let z = (level + 0.5) / 256.0;
            let p = alpha + (1.0 - 2.0 * alpha) * z;
            let (ln_p, ln_q) = (libm::log(p), libm::log(1.0 - p));
            (
                (ln_p - ln_q) as f32,
                libm::log(1.0 - 2.0 * alpha) - ln_p - ln_q,
            )
        }
    }
}

/// [`levels_to_flow_input`] for the 256 integer levels, computed once at load: a frame's
/// levels are integers, so the map is a table lookup instead of two logarithms per value. The
/// results are the same to the bit: each entry is the value the formula gives, and the
/// log-determinant is summed in the same order.
#[derive(Debug, Clone)]
pub(crate) struct LogitTable {
    y: [f32; 256],
    log_det: [f64; 256],
}

impl LogitTable {
    pub fn new(preprocess: Preprocess) -> Self {
        let mut table = LogitTable {
            y: [0.0; 256],
            log_det: [0.0; 256],
        };
        for (level, (y, log_det)) in table.y.iter_mut().zip(&mut table.log_det).enumerate() {
            (*y, *log_det) = logit(preprocess, level as f64);
        }
        table
    }

    /// [`levels_to_flow_input`], by table for integer levels in 0..=255 (by formula for any
    /// other value, which [`crate::Gate::score_levels_in_scratch`] may be given).
    pub fn apply(&self, preprocess: Preprocess, values: &mut [f32]) -> f64 {
        let mut log_det = 0.0f64;
        for value in values.iter_mut() {
            // An integer level: the cast to u8 (saturating) and back gives the value itself.
            let level = *value as u8;
            let entry = if f32::from(level) == *value {
                self.y
                    .get(usize::from(level))
                    .zip(self.log_det.get(usize::from(level)))
            } else {
                None
            };
            let (y, term) = match entry {
                Some((&y, &term)) => (y, term),
                None => logit(preprocess, f64::from(*value)),
            };
            *value = y;
            log_det += term;
        }
        log_det - values.len() as f64 * libm::log(256.0)
    }
}
