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
    match preprocess {
        Preprocess::Logit { alpha } => {
            let alpha = f64::from(alpha);
            let ln_range = libm::log(1.0 - 2.0 * alpha);
            let mut log_det = 0.0f64;
            for value in values.iter_mut() {
                let z = (f64::from(*value) + 0.5) / 256.0;
                let p = alpha + (1.0 - 2.0 * alpha) * z;
                let (ln_p, ln_q) = (libm::log(p), libm::log(1.0 - p));
                *value = (ln_p - ln_q) as f32;
                log_det += ln_range - ln_p - ln_q;
            }
            log_det - values.len() as f64 * libm::log(256.0)
        }
    }
}
