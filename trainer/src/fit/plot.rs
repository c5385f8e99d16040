//! The report's picture: histograms of the held-out and the training frames' scores with the
//! threshold, on an axis that spans every finite score and the threshold (a score off the
//! axis would hide exactly the frames a user wants to see). Drawn with plotters as
//! [`crate::eval::plots`] draws, with the same embedded font.

use std::path::Path;

use plotters::prelude::*;

use crate::eval::plots::{FONT, PlotError, ensure_fonts};

const BINS: usize = 40;

/// The axis: every finite score and the threshold, with a margin.
pub fn axis_range(sets: &[&[f64]], threshold: f64) -> (f64, f64) {
    let (lo, hi) = sets
        .iter()
        .flat_map(|s| s.iter().copied())
        .chain(std::iter::once(threshold))
        .filter(|x| x.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| {
            (l.min(x), h.max(x))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let margin = ((hi - lo) * 0.05).max(1e-3);
    (lo - margin, hi + margin)
}

const WIDTH: u32 = 900;
const HEIGHT: u32 = 520;

/// The PNG's bytes (to be written atomically at `path`, which errors name): `held_out` and
/// `train` bits/dim as histograms of shares on shared bins, and the threshold as a vertical
/// line.
pub fn score_histogram(
    path: &Path,
    held_out: &[f64],
    train: &[f64],
    threshold: f64,
) -> Result<Vec<u8>, PlotError> {
    ensure_fonts();
    let (lo, hi) = axis_range(&[held_out, train], threshold);
    let bin_width = (hi - lo) / BINS as f64;
    let counts = |scores: &[f64]| {
        let mut counts = vec![0usize; BINS];
        for &x in scores.iter().filter(|x| x.is_finite()) {
            counts[(((x - lo) / bin_width) as usize).min(BINS - 1)] += 1;
        }
        counts
    };
    // Shares, so 16 held-out frames and 700 training frames show on one scale.
    let shares = |scores: &[f64]| -> Vec<f64> {
        let n = scores.len().max(1) as f64;
        counts(scores).iter().map(|&c| c as f64 / n).collect()
    };
    let (held_out_shares, train_shares) = (shares(held_out), shares(train));
    let y_max = held_out_shares
        .iter()
        .chain(&train_shares)
        .copied()
        .fold(0.0, f64::max)
        .max(0.01)
        * 1.15;
    let draw = |e: &dyn std::fmt::Debug| PlotError::Draw {
        path: path.to_path_buf(),
        message: format!("{e:?}"),
    };
    let mut rgb = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Gate scores (bits/dim)", (FONT, 24))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(lo..hi, 0.0..y_max)
            .map_err(|e| draw(&e))?;
        chart
            .configure_mesh()
            .x_desc("bits/dim (higher = less normal)")
            .y_desc("share of the set's frames")
            .axis_desc_style((FONT, 16))
            .label_style((FONT, 13))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|e| draw(&e))?;
        let series = [
            (
                &train_shares,
                RGBColor(127, 127, 127),
                format!("training frames (n={})", train.len()),
            ),
            (
                &held_out_shares,
                RGBColor(31, 119, 180),
                format!("held-out frames (n={})", held_out.len()),
            ),
        ];
        for (shares, colour, label) in series {
            chart
                .draw_series(shares.iter().enumerate().filter(|(_, s)| **s > 0.0).map(
                    |(bin, &share)| {
                        let x0 = lo + bin as f64 * bin_width;
                        Rectangle::new(
                            [(x0, 0.0), (x0 + bin_width, share)],
                            colour.mix(0.35).filled(),
                        )
                    },
                ))
                .map_err(|e| draw(&e))?
                .label(label)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 18, y + 6)], colour.filled())
                });
        }
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(threshold, 0.0), (threshold, y_max)],
                RED.stroke_width(3),
            )))
            .map_err(|e| draw(&e))?
            .label(format!("threshold {threshold:.4}"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RED.stroke_width(3)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font((FONT, 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.5))
            .draw()
            .map_err(|e| draw(&e))?;
        root.present().map_err(|e| draw(&e))?;
    }
    let image = image::RgbImage::from_raw(WIDTH, HEIGHT, rgb)
        .ok_or_else(|| PlotError::Input("plot buffer of the wrong size".to_owned()))?;
    let mut png = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut png, image::ImageFormat::Png)
        .map_err(|e| draw(&e))?;
    Ok(png.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_axis_holds_every_score_and_the_threshold() {
        let (lo, hi) = axis_range(&[&[1.0, 2.0], &[5.0, f64::INFINITY]], 7.0);
        assert!(lo < 1.0 && hi > 7.0, "{lo}..{hi}");
        let (lo, hi) = axis_range(&[&[3.0]], 0.5);
        assert!(lo < 0.5 && hi > 3.0, "{lo}..{hi}");
    }
}
