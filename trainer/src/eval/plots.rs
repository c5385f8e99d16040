//! PNG plots for OOD evaluation: bits/dim histograms, ROC curves, and grids of small grayscale
//! images (the paper's diagnostic pictures: inputs next to latent `z` or coupling `-t` maps).
//!
//! Rendering is pure Rust: plotters' bitmap backend, with text drawn by `ab_glyph` from the
//! DejaVu Sans font that the `dejavu` crate embeds (registered once as plotters' `sans-serif`
//! family), so no system fonts, fontconfig or freetype are needed and every machine renders
//! the same pixels.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontStyle, register_font};

use super::ScoreSet;
use super::metrics::{self, MetricsError};

/// What a plot could not be drawn from or written to.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// Invalid scores (empty, NaN, −∞).
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// Invalid plot input (shapes, sizes, titles, path).
    #[error("invalid plot input: {0}")]
    Input(String),
    /// plotters failed to draw or to write the file.
    #[error("drawing {path}: {message}")]
    Draw {
        /// The PNG being written.
        path: PathBuf,
        /// plotters' error.
        message: String,
    },
}

/// The font family every plot uses; registered from embedded bytes on first use.
pub(crate) const FONT: &str = "sans-serif";

/// Registers DejaVu Sans (regular and bold) as plotters' `sans-serif` family, once.
pub(crate) fn ensure_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Both are valid TrueType files shipped by the `dejavu` crate; a failure here would be
        // a broken dependency, not bad input.
        register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
            .unwrap_or_else(|_| panic!("embedded DejaVu Sans is not a valid font"));
        register_font(FONT, FontStyle::Bold, dejavu::sans::bold())
            .unwrap_or_else(|_| panic!("embedded DejaVu Sans Bold is not a valid font"));
    });
}

/// Series colours (matplotlib's "tab10"); the in-distribution set always takes the first.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Checks the output path and size, registers the fonts, and opens a white canvas.
fn canvas(
    path: &Path,
    width: u32,
    height: u32,
) -> Result<DrawingArea<BitMapBackend<'_>, Shift>, PlotError> {
    let is_png = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if !is_png {
        return Err(PlotError::Input(format!(
            "{} must end in .png",
            path.display()
        )));
    }
    if !(64..=16384).contains(&width) || !(64..=16384).contains(&height) {
        return Err(PlotError::Input(format!(
            "image size {width}x{height} must be 64..=16384 on each side"
        )));
    }
    ensure_fonts();
    let root = BitMapBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err(path))?;
    Ok(root)
}

/// Maps any plotters error to [`PlotError::Draw`] for `path`.
fn draw_err<E: std::fmt::Display>(path: &Path) -> impl Fn(E) -> PlotError + '_ {
    move |e| PlotError::Draw {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// Compact number for labels: about 4 significant digits, scientific when very large or
/// small.
fn fmt_num(x: f64) -> String {
    let a = x.abs();
    if x == 0.0 {
        "0".to_owned()
    } else if !x.is_finite() {
        format!("{x}")
    } else if !(1e-3..1e5).contains(&a) {
        format!("{x:.2e}")
    } else if a >= 100.0 {
        format!("{x:.1}")
    } else if a >= 10.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

/// Options of [`bpd_histograms`].
#[derive(Debug, Clone)]
pub struct HistogramOptions {
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// Number of shared bins.
    pub bins: usize,
    /// Bin range; `None` spans the finite scores of all sets. Scores outside it (and +∞) are
    /// not drawn but still count in each set's normalisation, and the legend says how many.
    pub range: Option<(f64, f64)>,
    /// Bin log10 of the scores and label the axis with the scores themselves, so that sets
    /// orders of magnitude apart (a normal frame at 5 bits/dim, a covered lens at 500) all
    /// show; `range` is then in log10 units. Scores <= 0 count as off-range.
    pub log_x: bool,
    /// Plot title.
    pub title: String,
    /// X axis label.
    pub x_label: String,
}

impl Default for HistogramOptions {
    fn default() -> Self {
        Self {
            width: 900,
            height: 560,
            bins: 60,
            range: None,
            log_x: false,
            title: "Bits per dimension".to_owned(),
            x_label: "bits per dimension (higher = more anomalous)".to_owned(),
        }
    }
}

/// Overlaid, density-normalised histograms of the in-distribution set and each OOD set, on
/// shared bins, with a legend (name, count, mean). Each set's bar heights are
/// `count in bin / (set size * bin width)`, so every set integrates to 1 over the bins when
/// none of its scores fall outside them. Writes a `width` x `height` PNG to `path`.
pub fn bpd_histograms(
    path: &Path,
    in_dist: ScoreSet<'_>,
    ood: &[ScoreSet<'_>],
    opts: &HistogramOptions,
) -> Result<(), PlotError> {
    let sets: Vec<ScoreSet<'_>> = std::iter::once(in_dist)
        .chain(ood.iter().copied())
        .collect();
    let mut means = Vec::with_capacity(sets.len());
    for (i, s) in sets.iter().enumerate() {
        let role = if i == 0 { "in-distribution" } else { "OOD" };
        means.push(metrics::mean(s.scores, role)?);
    }
    if opts.bins == 0 {
        return Err(PlotError::Input("bins must be at least 1".to_owned()));
    }
    let binned: Vec<Vec<f64>> = sets
        .iter()
        .map(|s| binned_values(s.scores, opts.log_x))
        .collect();
    let (lo, hi) = match opts.range {
        Some((lo, hi)) if lo.is_finite() && hi.is_finite() && lo < hi => (lo, hi),
        Some((lo, hi)) => {
            return Err(PlotError::Input(format!(
                "histogram range {lo}..{hi} must be finite and increasing"
            )));
        }
        None => {
            let finite = binned.iter().flatten().copied().filter(|x| x.is_finite());
            let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| {
                (l.min(x), h.max(x))
            });
            if !lo.is_finite() {
                // Every score is +inf: nothing to bin, draw an empty unit range.
                (0.0, 1.0)
            } else if lo == hi {
                (lo - 0.5, hi + 0.5)
            } else {
                (lo, hi)
            }
        }
    };
    let bin_w = (hi - lo) / opts.bins as f64;

    // Densities per set, and how many scores fell outside the bins.
    let mut densities = Vec::with_capacity(sets.len());
    let mut outside = Vec::with_capacity(sets.len());
    for scores in &binned {
        let (dens, out) = bin_densities(scores, lo, hi, opts.bins);
        densities.push(dens);
        outside.push(out);
    }
    let y_max = densities
        .iter()
        .flatten()
        .copied()
        .fold(0.0f64, f64::max)
        .max(f64::MIN_POSITIVE)
        * 1.12;

    let root = canvas(path, opts.width, opts.height)?;
    let err = draw_err(path);
    let mut chart = ChartBuilder::on(&root)
        .caption(&opts.title, (FONT, 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(lo..hi, 0.0..y_max)
        .map_err(&err)?;
    let log_x = opts.log_x;
    let x_label = move |v: &f64| fmt_num(if log_x { 10f64.powf(*v) } else { *v });
    chart
        .configure_mesh()
        .x_desc(opts.x_label.as_str())
        .x_label_formatter(&x_label)
        .y_desc(if log_x {
            "density (per decade)"
        } else {
            "density"
        })
        .axis_desc_style((FONT, 16))
        .label_style((FONT, 13))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(&err)?;

    for (i, (s, dens)) in sets.iter().zip(&densities).enumerate() {
        let c = color(i);
        chart
            .draw_series(
                dens.iter()
                    .enumerate()
                    .filter(|(_, d)| **d > 0.0)
                    .map(|(b, &d)| {
                        let x0 = lo + b as f64 * bin_w;
                        Rectangle::new([(x0, 0.0), (x0 + bin_w, d)], c.mix(0.25).filled())
                    }),
            )
            .map_err(&err)?;
        // Step outline over the bars: one path per run of non-empty bins, so that empty
        // stretches do not draw a coloured baseline over the other sets.
        let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
        let mut run: Vec<(f64, f64)> = Vec::new();
        for (b, &d) in dens.iter().enumerate() {
            let x0 = lo + b as f64 * bin_w;
            if d > 0.0 {
                if run.is_empty() {
                    run.push((x0, 0.0));
                }
                run.push((x0, d));
                run.push((x0 + bin_w, d));
            } else if !run.is_empty() {
                run.push((x0, 0.0));
                runs.push(std::mem::take(&mut run));
            }
        }
        if !run.is_empty() {
            run.push((hi, 0.0));
            runs.push(run);
        }
        let role = if i == 0 { "in-dist" } else { "OOD" };
        let mut label = format!(
            "{} ({role}, n={}, mean {})",
            s.name,
            s.scores.len(),
            fmt_num(means[i])
        );
        if outside[i] > 0 {
            label.push_str(&format!(", {} off-range", outside[i]));
        }
        chart
            .draw_series(
                runs.into_iter()
                    .map(|r| PathElement::new(r, c.stroke_width(2))),
            )
            .map_err(&err)?
            .label(label)
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 6), (x + 18, y + 6)], c.mix(0.5).filled())
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.5))
        .draw()
        .map_err(&err)?;
    root.present().map_err(&err)?;
    Ok(())
}

/// What a histogram bins: the scores, or their log10 (NaN, so off-range, for scores <= 0).
fn binned_values(scores: &[f64], log_x: bool) -> Vec<f64> {
    scores
        .iter()
        .map(|&x| match (log_x, x > 0.0) {
            (false, _) => x,
            (true, true) => x.log10(),
            (true, false) => f64::NAN,
        })
        .collect()
}

/// Density-normalised counts of `scores` in `bins` equal bins over `[lo, hi]` (the last bin
/// closed): `count / (scores.len() * bin width)`. Also returns how many scores fell outside
/// (including +∞). Needs `lo < hi`, `bins >= 1` and a non-empty `scores`.
fn bin_densities(scores: &[f64], lo: f64, hi: f64, bins: usize) -> (Vec<f64>, usize) {
    let bin_w = (hi - lo) / bins as f64;
    let mut counts = vec![0usize; bins];
    let mut out = 0usize;
    for &x in scores {
        if !(lo..=hi).contains(&x) {
            out += 1;
            continue;
        }
        let b = (((x - lo) / bin_w) as usize).min(bins - 1);
        counts[b] += 1;
    }
    let norm = scores.len() as f64 * bin_w;
    (counts.iter().map(|&c| c as f64 / norm).collect(), out)
}

/// Options of [`roc_curves`].
#[derive(Debug, Clone)]
pub struct RocOptions {
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// Plot title.
    pub title: String,
}

impl Default for RocOptions {
    fn default() -> Self {
        Self {
            width: 720,
            height: 640,
            title: "ROC (in-distribution positive)".to_owned(),
        }
    }
}

/// ROC curves of each OOD set against `in_dist` ([`metrics::roc_curve`]), with the AUROC in
/// the legend and the chance diagonal. X: fraction of OOD accepted (FPR); Y: fraction of
/// in-distribution accepted (TPR). Writes a `width` x `height` PNG to `path`.
pub fn roc_curves(
    path: &Path,
    in_dist: ScoreSet<'_>,
    ood: &[ScoreSet<'_>],
    opts: &RocOptions,
) -> Result<(), PlotError> {
    let mut curves = Vec::with_capacity(ood.len());
    for set in ood {
        let points = metrics::roc_curve(in_dist.scores, set.scores)?;
        let auc = metrics::roc_area(&points);
        curves.push((set.name, points, auc));
    }
    let root = canvas(path, opts.width, opts.height)?;
    let err = draw_err(path);
    let mut chart = ChartBuilder::on(&root)
        .caption(&opts.title, (FONT, 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..1.0f64, 0.0..1.0f64)
        .map_err(&err)?;
    chart
        .configure_mesh()
        .x_desc("false positive rate (OOD accepted)")
        .y_desc(format!("true positive rate ({} accepted)", in_dist.name))
        .axis_desc_style((FONT, 16))
        .label_style((FONT, 13))
        .light_line_style(BLACK.mix(0.04))
        .bold_line_style(BLACK.mix(0.12))
        .draw()
        .map_err(&err)?;
    let gray = RGBColor(140, 140, 140);
    chart
        .draw_series(DashedLineSeries::new(
            [(0.0, 0.0), (1.0, 1.0)],
            8,
            6,
            gray.stroke_width(1),
        ))
        .map_err(&err)?
        .label("chance (AUROC 0.5)")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], gray.stroke_width(1)));
    for (i, (name, points, auc)) in curves.iter().enumerate() {
        // The in-distribution set is colour 0 in the histograms; OOD sets keep their colours.
        let c = color(i + 1);
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|p| (p.fpr, p.tpr)),
                c.stroke_width(2),
            ))
            .map_err(&err)?
            .label(format!("{name} (AUROC {auc:.4})"))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], c.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.5))
        .draw()
        .map_err(&err)?;
    root.present().map_err(&err)?;
    Ok(())
}

/// One small single-channel image, row-major, `pixels.len() == width * height`.
#[derive(Debug, Clone, Copy)]
pub struct GrayImage<'a> {
    /// Row-major values (any scale: each image is auto-scaled on its own).
    pub pixels: &'a [f32],
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
}

impl<'a> GrayImage<'a> {
    /// An image; checked when drawn.
    pub fn new(pixels: &'a [f32], width: usize, height: usize) -> Self {
        Self {
            pixels,
            width,
            height,
        }
    }
}

/// Options of [`image_grid`].
#[derive(Debug, Clone)]
pub struct GridOptions {
    /// Side of each cell's square box in output pixels; images are scaled by nearest neighbour
    /// to fit it, keeping their aspect ratio (so a 28x28 input and a 14x14 latent map are
    /// drawn the same size).
    pub cell_px: u32,
    /// Optional title above the grid.
    pub title: Option<String>,
    /// Print each image's value range (`min .. max`, what black and white stand for) under it.
    pub show_range: bool,
}

impl Default for GridOptions {
    fn default() -> Self {
        Self {
            cell_px: 112,
            title: None,
            show_range: true,
        }
    }
}

/// Saves a grid of grayscale images with row and column titles, and returns the PNG's
/// `(width, height)`.
///
/// `rows[r][c]` is the image in row `r`, column `c`; a row may be shorter than the longest
/// (the rest of it stays blank). `row_titles` is empty or has one title per row, and
/// `col_titles` empty or one per column of the longest row. Each image is auto-scaled on its
/// own: its smallest finite value is black and its largest white (a constant image is mid
/// gray); non-finite pixels are drawn red.
pub fn image_grid(
    path: &Path,
    rows: &[Vec<GrayImage<'_>>],
    row_titles: &[&str],
    col_titles: &[&str],
    opts: &GridOptions,
) -> Result<(u32, u32), PlotError> {
    let n_rows = rows.len();
    let n_cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    if n_rows == 0 || n_cols == 0 {
        return Err(PlotError::Input("the image grid is empty".to_owned()));
    }
    if !row_titles.is_empty() && row_titles.len() != n_rows {
        return Err(PlotError::Input(format!(
            "{} row titles for {n_rows} rows",
            row_titles.len()
        )));
    }
    if !col_titles.is_empty() && col_titles.len() != n_cols {
        return Err(PlotError::Input(format!(
            "{} column titles for {n_cols} columns",
            col_titles.len()
        )));
    }
    if !(8..=1024).contains(&opts.cell_px) {
        return Err(PlotError::Input(format!(
            "cell_px {} must be 8..=1024",
            opts.cell_px
        )));
    }
    for (r, row) in rows.iter().enumerate() {
        for (c, img) in row.iter().enumerate() {
            if img.width == 0 || img.height == 0 || img.pixels.len() != img.width * img.height {
                return Err(PlotError::Input(format!(
                    "image at row {r}, column {c}: {} pixels for {}x{}",
                    img.pixels.len(),
                    img.width,
                    img.height
                )));
            }
        }
    }

    ensure_fonts();
    let cell = opts.cell_px as i32;
    let gap = 8i32;
    let title_style = TextStyle::from((FONT, 20).into_font().style(FontStyle::Bold));
    let head_style = TextStyle::from((FONT, 15).into_font());
    let range_style = TextStyle::from((FONT, 11).into_font()).color(&RGBColor(70, 70, 70));

    // Layout. Text sizes are estimated with the same font the backend draws with.
    let measure = |text: &str, style: &TextStyle<'_>| -> Result<(u32, u32), PlotError> {
        let (w, h) = plotters::style::FontDesc::box_size(&style.font, text).map_err(|e| {
            PlotError::Draw {
                path: path.to_owned(),
                message: format!("font: {e:?}"),
            }
        })?;
        Ok((w, h))
    };
    let mut left = gap;
    for t in row_titles {
        left = left.max(measure(t, &head_style)?.0 as i32 + 2 * gap);
    }
    let title_h = match &opts.title {
        Some(t) => measure(t, &title_style)?.1 as i32 + 2 * gap,
        None => 0,
    };
    let head_h = if col_titles.is_empty() {
        gap
    } else {
        measure("Hg", &head_style)?.1 as i32 + 2 * gap
    };
    let range_h = if opts.show_range {
        measure("0.9", &range_style)?.1 as i32 + 6
    } else {
        0
    };
    let col_w = cell.max(
        col_titles
            .iter()
            .map(|t| measure(t, &head_style).map(|(w, _)| w as i32 + gap))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .max()
            .unwrap_or(0),
    );
    let row_h = cell + range_h + gap;
    let mut width = left + n_cols as i32 * (col_w + gap);
    let height = title_h + head_h + n_rows as i32 * row_h;
    if let Some(t) = &opts.title {
        width = width.max(measure(t, &title_style)?.0 as i32 + 2 * gap);
    }
    let (width, height) = (width.max(64) as u32, height.max(64) as u32);

    let root = canvas(path, width, height)?;
    let err = draw_err(path);
    let center = Pos::new(HPos::Center, VPos::Center);
    if let Some(t) = &opts.title {
        root.draw(&Text::new(
            t.as_str(),
            (width as i32 / 2, title_h / 2),
            title_style.pos(center),
        ))
        .map_err(&err)?;
    }
    let col_x = |c: usize| left + c as i32 * (col_w + gap) + (col_w - cell) / 2;
    let row_y = |r: usize| title_h + head_h + r as i32 * row_h;
    for (c, t) in col_titles.iter().enumerate() {
        root.draw(&Text::new(
            *t,
            (col_x(c) + cell / 2, title_h + head_h / 2),
            head_style.pos(center),
        ))
        .map_err(&err)?;
    }
    for (r, t) in row_titles.iter().enumerate() {
        root.draw(&Text::new(
            *t,
            (left - gap, row_y(r) + cell / 2),
            head_style.pos(Pos::new(HPos::Right, VPos::Center)),
        ))
        .map_err(&err)?;
    }
    for (r, row) in rows.iter().enumerate() {
        for (c, img) in row.iter().enumerate() {
            let (x0, y0) = (col_x(c), row_y(r));
            let (min, max) = draw_gray(&root, img, (x0, y0), cell, path)?;
            root.draw(&Rectangle::new(
                [(x0 - 1, y0 - 1), (x0 + cell, y0 + cell)],
                RGBColor(180, 180, 180).stroke_width(1),
            ))
            .map_err(&err)?;
            if opts.show_range {
                let text = match (min, max) {
                    (Some(a), Some(b)) => format!("{} .. {}", fmt_num(a), fmt_num(b)),
                    _ => "no finite values".to_owned(),
                };
                root.draw(&Text::new(
                    text,
                    (x0 + cell / 2, y0 + cell + range_h / 2 + 1),
                    range_style.pos(center),
                ))
                .map_err(&err)?;
            }
        }
    }
    root.present().map_err(&err)?;
    Ok((width, height))
}

/// Draws `img` auto-scaled into the `cell` x `cell` box at `(x0, y0)`, centred, nearest
/// neighbour, keeping the aspect ratio. Returns the finite value range used for scaling.
fn draw_gray(
    root: &DrawingArea<BitMapBackend<'_>, Shift>,
    img: &GrayImage<'_>,
    (x0, y0): (i32, i32),
    cell: i32,
    path: &Path,
) -> Result<(Option<f64>, Option<f64>), PlotError> {
    let err = draw_err(path);
    let finite = img.pixels.iter().copied().filter(|v| v.is_finite());
    let (min, max) = finite.fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), v| {
        (l.min(v), h.max(v))
    });
    let has_finite = min.is_finite();
    let scale = img.width.max(img.height) as f64 / cell as f64;
    let w_px = ((img.width as f64 / scale).round() as i32).clamp(1, cell);
    let h_px = ((img.height as f64 / scale).round() as i32).clamp(1, cell);
    let (ox, oy) = (x0 + (cell - w_px) / 2, y0 + (cell - h_px) / 2);
    // A neutral background where the image does not fill the square cell.
    if w_px < cell || h_px < cell {
        root.draw(&Rectangle::new(
            [(x0, y0), (x0 + cell - 1, y0 + cell - 1)],
            RGBColor(235, 235, 235).filled(),
        ))
        .map_err(&err)?;
    }
    for py in 0..h_px {
        let sy = ((py as f64 + 0.5) * scale) as usize;
        let sy = sy.min(img.height - 1);
        for px in 0..w_px {
            let sx = ((px as f64 + 0.5) * scale) as usize;
            let v = img.pixels[sy * img.width + sx.min(img.width - 1)];
            let color = if !v.is_finite() {
                RGBColor(220, 30, 30)
            } else if max > min {
                let g = (((v - min) / (max - min)) * 255.0)
                    .round()
                    .clamp(0.0, 255.0) as u8;
                RGBColor(g, g, g)
            } else {
                RGBColor(128, 128, 128)
            };
            root.draw_pixel((ox + px, oy + py), &color).map_err(&err)?;
        }
    }
    Ok(if has_finite {
        (Some(f64::from(min)), Some(f64::from(max)))
    } else {
        (None, None)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A per-test output folder under the system temp dir; kept when `FLOWGATE_KEEP_PLOTS` is
    /// set (to look at the pictures), removed otherwise.
    struct OutDir(PathBuf);

    impl OutDir {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir()
                .join(format!("flowgate-eval-plots-{}-{name}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for OutDir {
        fn drop(&mut self) {
            if std::env::var_os("FLOWGATE_KEEP_PLOTS").is_some() {
                eprintln!("plots kept in {}", self.0.display());
            } else {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    /// Checks the PNG signature and IHDR, and returns `(width, height)`.
    fn png_size(path: &Path) -> (u32, u32) {
        let bytes = std::fs::read(path).unwrap();
        assert!(
            bytes.len() > 1000,
            "{} is only {} bytes",
            path.display(),
            bytes.len()
        );
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
        assert_eq!(&bytes[12..16], b"IHDR");
        let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
        assert_eq!(&bytes[bytes.len() - 8..bytes.len() - 4], b"IEND");
        (w, h)
    }

    /// Deterministic normal samples (splitmix64 + Box–Muller).
    fn normal(seed: u64, n: usize, mean: f64, sd: f64) -> Vec<f64> {
        let mut s = seed;
        let mut next = move || {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        (0..n)
            .map(|_| {
                let (u1, u2) = (next(), next());
                mean + sd * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
            })
            .collect()
    }

    /// Scores shaped like the paper's Fashion-MNIST flow: MNIST gets *lower* bits/dim.
    fn paper_like() -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
        (
            normal(1, 2000, 2.9, 0.25),
            normal(2, 2000, 2.45, 0.3),
            normal(3, 500, 6.5, 0.4),
            normal(4, 1000, 3.3, 0.4),
        )
    }

    #[test]
    fn eval_bin_densities() {
        // Bins [0, 1), [1, 2), [2, 3]: 0.5 -> 0; 1.0 -> 1; 2.5, 3.0 -> 2 (last bin closed);
        // 3.5 and +inf outside.
        let (d, out) = bin_densities(&[0.5, 1.0, 2.5, 3.0, 3.5, f64::INFINITY], 0.0, 3.0, 3);
        assert_eq!(out, 2);
        assert_eq!(d, vec![1.0 / 6.0, 1.0 / 6.0, 2.0 / 6.0]);
        // Without outliers a set integrates to 1.
        let xs = normal(5, 1000, 0.0, 1.0);
        let (lo, hi) = (-10.0, 10.0);
        let (d, out) = bin_densities(&xs, lo, hi, 40);
        assert_eq!(out, 0);
        let integral: f64 = d.iter().map(|v| v * (hi - lo) / 40.0).sum();
        assert!((integral - 1.0).abs() < 1e-12, "{integral}");
    }

    #[test]
    fn eval_fmt_num() {
        assert_eq!(fmt_num(0.0), "0");
        assert_eq!(fmt_num(2.91), "2.910");
        assert_eq!(fmt_num(-12.345), "-12.35");
        assert_eq!(fmt_num(255.0), "255.0");
        assert_eq!(fmt_num(1.5e-5), "1.50e-5");
        assert_eq!(fmt_num(f64::INFINITY), "inf");
    }

    #[test]
    fn eval_histogram_png() {
        let dir = OutDir::new("hist");
        let (fm, mnist, noise, other) = paper_like();
        let path = dir.0.join("bpd_histograms.png");
        let opts = HistogramOptions {
            width: 900,
            height: 560,
            ..HistogramOptions::default()
        };
        bpd_histograms(
            &path,
            ScoreSet::new("fashion-mnist test", &fm),
            &[
                ScoreSet::new("mnist test", &mnist),
                ScoreSet::new("uniform noise", &noise),
                ScoreSet::new("other camera", &other),
            ],
            &opts,
        )
        .unwrap();
        assert_eq!(png_size(&path), (900, 560));

        // A fixed range that cuts the noise set off, and a +inf score.
        let mut with_inf = mnist.clone();
        with_inf.push(f64::INFINITY);
        let path = dir.0.join("bpd_histograms_range.png");
        let opts = HistogramOptions {
            width: 640,
            height: 400,
            bins: 30,
            range: Some((0.0, 4.0)),
            ..HistogramOptions::default()
        };
        bpd_histograms(
            &path,
            ScoreSet::new("fashion-mnist", &fm),
            &[
                ScoreSet::new("mnist", &with_inf),
                ScoreSet::new("noise", &noise),
            ],
            &opts,
        )
        .unwrap();
        assert_eq!(png_size(&path), (640, 400));
    }

    #[test]
    fn a_log_axis_shows_sets_orders_of_magnitude_apart() {
        // A normal frame near 5 bits/dim, a covered lens near 500 and a white frame at 3000:
        // on a log axis over all of them, no score is off-range.
        let sets = [
            vec![4.8, 5.0, 5.2, 5.3],
            vec![480.0, 509.0, 530.0],
            vec![3000.0, 3280.0],
        ];
        let binned: Vec<Vec<f64>> = sets.iter().map(|s| binned_values(s, true)).collect();
        let (lo, hi) = binned
            .iter()
            .flatten()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &x| {
                (l.min(x), h.max(x))
            });
        for values in &binned {
            let (densities, outside) = bin_densities(values, lo, hi, 60);
            assert_eq!(outside, 0);
            assert!(densities.iter().any(|&d| d > 0.0));
        }
        assert!(binned_values(&[0.0, -1.0], true).iter().all(|x| x.is_nan()));
        let dir = OutDir::new("hist-log");
        let path = dir.0.join("log.png");
        bpd_histograms(
            &path,
            ScoreSet::new("normal", &sets[0]),
            &[
                ScoreSet::new("black", &sets[1]),
                ScoreSet::new("white", &sets[2]),
            ],
            &HistogramOptions {
                log_x: true,
                ..HistogramOptions::default()
            },
        )
        .unwrap();
        assert_eq!(png_size(&path), (900, 560));
    }

    #[test]
    fn eval_roc_png() {
        let dir = OutDir::new("roc");
        let (fm, mnist, noise, other) = paper_like();
        let path = dir.0.join("roc.png");
        roc_curves(
            &path,
            ScoreSet::new("fashion-mnist", &fm),
            &[
                ScoreSet::new("mnist", &mnist),
                ScoreSet::new("uniform noise", &noise),
                ScoreSet::new("other camera", &other),
            ],
            &RocOptions::default(),
        )
        .unwrap();
        assert_eq!(png_size(&path), (720, 640));
    }

    #[test]
    fn eval_image_grid_png() {
        let dir = OutDir::new("grid");
        // 28x28 "inputs" (a ring and a bar) and 14x14 "latent maps" (a gradient, noise).
        let ring: Vec<f32> = (0..28 * 28)
            .map(|i| {
                let (x, y) = ((i % 28) as f32 - 13.5, (i / 28) as f32 - 13.5);
                let r = (x * x + y * y).sqrt();
                if (7.0..11.0).contains(&r) { 255.0 } else { 0.0 }
            })
            .collect();
        let bar: Vec<f32> = (0..28 * 28)
            .map(|i| {
                if (12..16).contains(&(i % 28)) {
                    200.0
                } else {
                    10.0
                }
            })
            .collect();
        let grad: Vec<f32> = (0..14 * 14).map(|i| (i % 14) as f32 * 0.3 - 2.0).collect();
        let mut noisy: Vec<f32> = normal(9, 14 * 14, 0.0, 1.0)
            .into_iter()
            .map(|v| v as f32)
            .collect();
        noisy[5] = f32::NAN;
        let flat = vec![0.5f32; 7 * 14];
        let rows = vec![
            vec![
                GrayImage::new(&ring, 28, 28),
                GrayImage::new(&grad, 14, 14),
                GrayImage::new(&noisy, 14, 14),
            ],
            vec![GrayImage::new(&bar, 28, 28), GrayImage::new(&flat, 14, 7)],
        ];
        let path = dir.0.join("grid.png");
        let opts = GridOptions {
            title: Some("Latent representations (coupling layer 3)".to_owned()),
            ..GridOptions::default()
        };
        let size = image_grid(
            &path,
            &rows,
            &["fashion-mnist", "mnist"],
            &["input x", "z", "-t (layer 3)"],
            &opts,
        )
        .unwrap();
        assert_eq!(png_size(&path), size);
        assert!(size.0 >= 3 * 112 && size.1 >= 2 * 112, "{size:?}");

        // Without titles or ranges.
        let path = dir.0.join("grid_bare.png");
        let opts = GridOptions {
            cell_px: 56,
            title: None,
            show_range: false,
        };
        let size = image_grid(&path, &rows, &[], &[], &opts).unwrap();
        assert_eq!(png_size(&path), size);
    }

    #[test]
    fn eval_plot_input_errors() {
        let dir = OutDir::new("errors");
        let img = [0.0f32; 4];
        let rows = vec![vec![GrayImage::new(&img, 2, 3)]];
        let path = dir.0.join("bad.png");
        assert!(matches!(
            image_grid(&path, &rows, &[], &[], &GridOptions::default()),
            Err(PlotError::Input(_))
        ));
        let rows = vec![vec![GrayImage::new(&img, 2, 2)]];
        assert!(image_grid(&path, &rows, &["a", "b"], &[], &GridOptions::default()).is_err());
        assert!(image_grid(&path, &[], &[], &[], &GridOptions::default()).is_err());
        assert!(matches!(
            roc_curves(
                &dir.0.join("roc.jpg"),
                ScoreSet::new("a", &[1.0]),
                &[ScoreSet::new("b", &[2.0])],
                &RocOptions::default()
            ),
            Err(PlotError::Input(_))
        ));
        assert!(matches!(
            bpd_histograms(
                &path,
                ScoreSet::new("a", &[1.0, f64::NAN]),
                &[],
                &HistogramOptions::default()
            ),
            Err(PlotError::Metrics(MetricsError::NaN { .. }))
        ));
        let opts = HistogramOptions {
            range: Some((2.0, 1.0)),
            ..HistogramOptions::default()
        };
        assert!(bpd_histograms(&path, ScoreSet::new("a", &[1.0]), &[], &opts).is_err());
        // A folder that does not exist: the error names the file.
        let missing = dir.0.join("no/such/dir/roc.png");
        let e = roc_curves(
            &missing,
            ScoreSet::new("a", &[1.0]),
            &[ScoreSet::new("b", &[2.0])],
            &RocOptions::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("roc.png"), "{e}");
        assert!(!path.exists());
    }
}
