//! The baseline a user could build instead of a flow, in a few lines of OpenCV (issue 13):
//! per-frame statistics at the frame's own resolution, each standardised on the training
//! frames, the OOD score their largest |z|. The evaluation tables carry it as a row so that
//! the flow gate is compared with the obvious alternative, not only with itself.
//!
//! The statistics, on the frame's gray levels `I` (0..=255):
//! - brightness: the mean of `I`;
//! - contrast: the standard deviation of `I`;
//! - sharpness: the variance of the 4-neighbour Laplacian `4 I(x, y) - I(x±1, y) - I(x, y±1)`;
//! - noise: Immerkaer's (1996) estimate of the noise's sigma,
//!   `sqrt(pi / 2) / (6 (W - 2) (H - 2)) * sum |I * [1 -2 1; -2 4 -2; 1 -2 1]|`;
//! - edge density: the share of pixels whose Sobel gradient magnitude exceeds
//!   [`EDGE_MAGNITUDE`];
//! - histogram distance: the chi-square distance of the frame's 32-bin histogram to the
//!   training frames' mean histogram.
//!
//! The threshold is the combined score's quantile at `1 - rate` on held-out normal frames,
//! as the gate's is set.

use std::path::Path;

use flowgate_edge::io::image::{list_folder, read_image};
use flowgate_shared::calibration;

use crate::error::{Error, Result};

/// Sobel gradient magnitude (on 0..=255 levels) above which a pixel counts as an edge.
pub const EDGE_MAGNITUDE: f64 = 100.0;
/// Histogram bins.
const BINS: usize = 32;
/// The statistics, in [`FrameStatistics::values`] order.
pub const NAMES: [&str; 6] = [
    "brightness",
    "contrast",
    "sharpness",
    "noise",
    "edge density",
    "histogram distance",
];

/// A gray frame's levels.
#[derive(Debug, Clone)]
pub struct GrayFrame {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Row-major levels.
    pub levels: Vec<f64>,
}

impl GrayFrame {
    fn at(&self, x: usize, y: usize) -> f64 {
        self.levels[y * self.width + x]
    }

    /// The frame's histogram over [`BINS`] bins, normalised to sum 1.
    fn histogram(&self) -> [f64; BINS] {
        let mut histogram = [0.0; BINS];
        for &level in &self.levels {
            let bin = ((level / 256.0 * BINS as f64) as usize).min(BINS - 1);
            histogram[bin] += 1.0;
        }
        let total = self.levels.len().max(1) as f64;
        histogram.map(|count| count / total)
    }
}

/// The statistics of one frame, the histogram distance still to come.
#[derive(Debug, Clone)]
struct FrameStatistics {
    values: [f64; 5],
    histogram: [f64; BINS],
}

fn statistics(frame: &GrayFrame) -> FrameStatistics {
    let n = frame.levels.len().max(1) as f64;
    let mean = frame.levels.iter().sum::<f64>() / n;
    let contrast = (frame.levels.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
    let (mut laplacians, mut noise_sum, mut edges) = (Vec::new(), 0.0, 0usize);
    for y in 1..frame.height.saturating_sub(1) {
        for x in 1..frame.width.saturating_sub(1) {
            let p = |dx: isize, dy: isize| {
                frame.at((x as isize + dx) as usize, (y as isize + dy) as usize)
            };
            laplacians.push(4.0 * p(0, 0) - p(-1, 0) - p(1, 0) - p(0, -1) - p(0, 1));
            let mask = p(-1, -1) - 2.0 * p(0, -1) + p(1, -1) - 2.0 * p(-1, 0) + 4.0 * p(0, 0)
                - 2.0 * p(1, 0)
                + p(-1, 1)
                - 2.0 * p(0, 1)
                + p(1, 1);
            noise_sum += mask.abs();
            let gx = p(1, -1) + 2.0 * p(1, 0) + p(1, 1) - p(-1, -1) - 2.0 * p(-1, 0) - p(-1, 1);
            let gy = p(-1, 1) + 2.0 * p(0, 1) + p(1, 1) - p(-1, -1) - 2.0 * p(0, -1) - p(1, -1);
            if (gx * gx + gy * gy).sqrt() > EDGE_MAGNITUDE {
                edges += 1;
            }
        }
    }
    let interior = laplacians.len().max(1) as f64;
    let laplacian_mean = laplacians.iter().sum::<f64>() / interior;
    let sharpness = laplacians
        .iter()
        .map(|v| (v - laplacian_mean).powi(2))
        .sum::<f64>()
        / interior;
    let noise = (std::f64::consts::PI / 2.0).sqrt() / (6.0 * interior) * noise_sum;
    FrameStatistics {
        values: [mean, contrast, sharpness, noise, edges as f64 / interior],
        histogram: frame.histogram(),
    }
}

fn chi_square(a: &[f64; BINS], b: &[f64; BINS]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            if x + y > 0.0 {
                (x - y).powi(2) / (x + y)
            } else {
                0.0
            }
        })
        .sum::<f64>()
        / 2.0
}

/// The baseline fitted on training frames: each statistic's mean and standard deviation,
/// and the mean histogram.
#[derive(Debug, Clone)]
pub struct Baseline {
    mean: [f64; 6],
    std: [f64; 6],
    histogram: [f64; BINS],
}

impl Baseline {
    /// Fits the baseline to `frames` (at least two).
    pub fn fit(frames: &[GrayFrame]) -> Result<Self> {
        if frames.len() < 2 {
            return Err(Error::Evaluation(
                "the baseline needs at least two training frames".into(),
            ));
        }
        let stats: Vec<FrameStatistics> = frames.iter().map(statistics).collect();
        let n = stats.len() as f64;
        let mut histogram = [0.0; BINS];
        for s in &stats {
            for (sum, value) in histogram.iter_mut().zip(&s.histogram) {
                *sum += value / n;
            }
        }
        let rows: Vec<[f64; 6]> = stats.iter().map(|s| row(s, &histogram)).collect();
        let mut mean = [0.0; 6];
        let mut std = [0.0; 6];
        for k in 0..6 {
            mean[k] = rows.iter().map(|r| r[k]).sum::<f64>() / n;
            let variance = rows.iter().map(|r| (r[k] - mean[k]).powi(2)).sum::<f64>() / (n - 1.0);
            // A statistic that never varied in training: any change is far out.
            std[k] = variance.sqrt().max(1e-9 * mean[k].abs().max(1.0));
        }
        Ok(Baseline {
            mean,
            std,
            histogram,
        })
    }

    /// Each statistic's |z| for `frame`.
    pub fn z_scores(&self, frame: &GrayFrame) -> [f64; 6] {
        let values = row(&statistics(frame), &self.histogram);
        core::array::from_fn(|k| ((values[k] - self.mean[k]) / self.std[k]).abs())
    }

    /// The OOD score: the largest |z|.
    pub fn score(&self, frame: &GrayFrame) -> f64 {
        self.z_scores(frame).into_iter().fold(0.0, f64::max)
    }
}

fn row(stats: &FrameStatistics, reference: &[f64; BINS]) -> [f64; 6] {
    let [a, b, c, d, e] = stats.values;
    [a, b, c, d, e, chi_square(&stats.histogram, reference)]
}

/// Every image of `dir` (file-name order) as gray levels at its own size; unreadable files
/// are an error (the sets are made by flowgate itself).
pub fn read_folder(dir: &Path) -> Result<Vec<GrayFrame>> {
    let files = list_folder(dir)?;
    if files.is_empty() {
        return Err(Error::NoImageFiles {
            path: dir.to_path_buf(),
        });
    }
    files
        .iter()
        .map(|file| {
            let image = read_image(file, 1)?;
            let frame = image.frame().map_err(flowgate_edge::Error::from)?;
            let mut levels = Vec::with_capacity(image.width as usize * image.height as usize);
            for y in 0..image.height {
                let row = frame.row(y);
                levels.extend(
                    (0..image.width as usize).map(|x| f64::from(frame.luma(row, x)).round()),
                );
            }
            Ok(GrayFrame {
                width: image.width as usize,
                height: image.height as usize,
                levels,
            })
        })
        .collect()
}

/// The threshold at `rate` false rejects on `held_out` frames' scores.
pub fn threshold(scores: &[f64], rate: f64) -> Result<f64> {
    let record = calibration::calibrate(&mut scores.to_vec(), rate)
        .map_err(|e| Error::Evaluation(format!("baseline threshold: {e}")))?;
    Ok(f64::from(record.ood_score))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(width: usize, height: usize, f: impl Fn(usize, usize) -> f64) -> GrayFrame {
        let levels = (0..width * height)
            .map(|i| f(i % width, i / width))
            .collect();
        GrayFrame {
            width,
            height,
            levels,
        }
    }

    #[test]
    fn statistics_measure_what_they_say() {
        let flat = statistics(&frame(16, 16, |_, _| 100.0));
        assert_eq!(flat.values, [100.0, 0.0, 0.0, 0.0, 0.0]);
        // A vertical step edge: Sobel magnitude 4 * 100 on the two columns beside it.
        let step = statistics(&frame(16, 16, |x, _| if x < 8 { 0.0 } else { 100.0 }));
        assert!(
            (step.values[4] - 2.0 / 14.0).abs() < 1e-12,
            "{:?}",
            step.values
        );
        // A checkerboard of +-10 is all "noise" to Immerkaer's mask: 16 * 10 per pixel.
        let checker = statistics(&frame(
            16,
            16,
            |x, y| if (x + y) % 2 == 0 { 110.0 } else { 90.0 },
        ));
        let expected = (std::f64::consts::PI / 2.0).sqrt() / 6.0 * 160.0;
        assert!(
            (checker.values[3] - expected).abs() < 1e-9,
            "{:?}",
            checker.values
        );
    }

    #[test]
    fn the_score_is_the_largest_standardised_deviation() {
        let train: Vec<GrayFrame> = (0..8)
            .map(|k| frame(8, 8, move |x, y| 100.0 + ((x * 7 + y * 3 + k) % 5) as f64))
            .collect();
        let baseline = Baseline::fit(&train).unwrap();
        let normal = baseline.score(&train[0]);
        let dark = baseline.score(&frame(8, 8, |x, y| 20.0 + ((x * 7 + y * 3) % 5) as f64));
        assert!(dark > 10.0 * normal.max(1.0), "{dark} vs {normal}");
        assert!(Baseline::fit(&train[..1]).is_err());
    }
}
