//! From a camera frame to the flow's input: resize, convert, dequantise, logit.
//!
//! The trainer prepares its training images with these same functions, so a frame the gate
//! sees and an image the flow was trained on go through one definition.

use flowgate_shared::{InputSpec, Preprocess, Resize};

use crate::error::{Error, Result};
use crate::frame::{Frame, LumaRange, PixelFormat};

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
    let whole_blocks = out_w > 0 && out_h > 0 && src_w % out_w == 0 && src_h % out_h == 0;
    for channel in 0..channels {
        let out_plane = levels
            .get_mut(channel * plane..(channel + 1) * plane)
            .ok_or(Error::Inconsistent)?;
        if whole_blocks {
            block_average(frame, (channel, channels), (out_w, out_h), out_plane);
        } else {
            area_average(frame, (channel, channels), (out_w, out_h), out_plane);
        }
    }
    Ok(())
}

/// One channel of `frame` resized to `out_w x out_h` by area averaging, for any sizes: each
/// output pixel is the mean of the source pixels under it, each weighted by the share of it
/// the output pixel covers, rounded to an integer level.
fn area_average(
    frame: &Frame<'_>,
    (channel, channels): (usize, usize),
    (out_w, out_h): (usize, usize),
    out_plane: &mut [f32],
) {
    let (src_w, src_h) = (frame.width() as usize, frame.height() as usize);
    // Source span of one output pixel, in source pixels.
    let step_x = src_w as f64 / out_w as f64;
    let step_y = src_h as f64 / out_h as f64;
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

/// [`area_average`] where the output divides the source into whole blocks (768x576 to
/// 32x24, 1920x1080 to 32x18): every weight is exactly 1, so the same sum in the same order
/// (block rows top to bottom, each left to right) needs no weights, and full-range gray
/// bytes sum exactly as integers. Bit for bit the same levels as [`area_average`] (an f64
/// sum of integer levels is exact), at a fraction of the cost: the camera gate resizes every
/// frame it scores.
fn block_average(
    frame: &Frame<'_>,
    (channel, channels): (usize, usize),
    (out_w, out_h): (usize, usize),
    out_plane: &mut [f32],
) {
    let (block_w, block_h) = (
        frame.width() as usize / out_w,
        frame.height() as usize / out_h,
    );
    // As area_average computes it: (x1 - x0) * (y1 - y0) with whole-number ends.
    let area = block_w as f64 * block_h as f64;
    let integer_bytes = frame.format() == PixelFormat::Gray8
        && frame.luma_range() == LumaRange::Full
        && channels == 1;
    for (oy, out_row) in out_plane.chunks_exact_mut(out_w).enumerate() {
        let rows = oy * block_h..(oy + 1) * block_h;
        for (ox, out) in out_row.iter_mut().enumerate() {
            let columns = ox * block_w..(ox + 1) * block_w;
            let sum = if integer_bytes {
                // Wrapping adds that cannot wrap (a u32 holds 2^16 bytes of 255 many times
                // over, a u64 every row): the release profile's overflow checks would
                // otherwise branch on every byte and keep the loop from vectorising.
                let mut sum = 0u64;
                for sy in rows.clone() {
                    let bytes = frame.row(sy as u32).get(columns.clone()).unwrap_or(&[]);
                    for piece in bytes.chunks(1 << 16) {
                        let piece_sum = piece
                            .iter()
                            .map(|&b| u32::from(b))
                            .fold(0u32, u32::wrapping_add);
                        sum = sum.wrapping_add(u64::from(piece_sum));
                    }
                }
                sum as f64
            } else {
                let mut sum = 0.0f64;
                for sy in rows.clone() {
                    let row = frame.row(sy as u32);
                    for sx in columns.clone() {
                        sum += f64::from(sample(frame, row, sx, channel, channels));
                    }
                }
                sum
            };
            *out = libm::round(sum / area).clamp(0.0, 255.0) as f32;
        }
    }
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// Pseudo-random bytes (xorshift), every value in use.
    fn fill(data: &mut [u8], seed: u32) {
        let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(12345);
        for byte in data {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            *byte = (state >> 24) as u8;
        }
    }

    #[test]
    fn whole_blocks_give_the_same_levels_as_the_weighted_average() {
        let cases = [
            (PixelFormat::Gray8, LumaRange::Full, 1, 1),
            (PixelFormat::Gray8, LumaRange::Limited, 1, 1),
            (PixelFormat::Yuyv, LumaRange::Full, 2, 1),
            (PixelFormat::Rgb8, LumaRange::Full, 3, 1),
            (PixelFormat::Rgb8, LumaRange::Full, 3, 3),
            (PixelFormat::Bgr8, LumaRange::Full, 3, 3),
        ];
        for (seed, &(format, range, per_pixel, channels)) in cases.iter().enumerate() {
            for (src, out) in [
                ((96, 72), (32, 24)),
                ((64, 36), (32, 18)),
                ((30, 20), (30, 20)),
            ] {
                let mut buffer = [0u8; 96 * 72 * 3];
                let data = &mut buffer[..src.0 * src.1 * per_pixel];
                fill(data, seed as u32);
                let frame = Frame::packed(data, src.0 as u32, src.1 as u32, format)
                    .unwrap()
                    .with_luma_range(range);
                let plane = out.0 * out.1;
                let (mut fast, mut weighted) = ([0f32; 3 * 32 * 24], [0f32; 3 * 32 * 24]);
                for channel in 0..channels {
                    let span = channel * plane..(channel + 1) * plane;
                    block_average(&frame, (channel, channels), out, &mut fast[span.clone()]);
                    area_average(&frame, (channel, channels), out, &mut weighted[span]);
                }
                assert_eq!(fast, weighted, "{format:?} {range:?} {src:?} -> {out:?}");
                // frame_levels takes the block path and agrees too.
                let spec = InputSpec {
                    channels: channels as u32,
                    width: out.0 as u32,
                    height: out.1 as u32,
                    preprocess: flowgate_shared::Preprocess::Logit { alpha: 0.05 },
                    resize: Resize::AreaAverage,
                };
                let mut levels = [0f32; 3 * 32 * 24];
                frame_levels(&frame, &spec, &mut levels).unwrap();
                assert_eq!(levels, weighted);
            }
        }
    }
}
