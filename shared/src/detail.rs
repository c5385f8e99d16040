//! The native-resolution detail branch: a second, small flow over gray patches taken from
//! the frame at the size the camera delivers, combined with the thumbnail's score into one
//! decision.
//!
//! Why: the main flow judges the frame's thumbnail (an area average, e.g. 32x24), where
//! fine detail averages away. Sensor noise, compression damage or defocus at the camera's
//! own resolution leave the thumbnail nearly unchanged, but they change how neighbouring
//! pixels relate, which is what a small flow on patches learns (the local pixel
//! correlations that make plain flows poor semantic detectors are exactly what this branch
//! wants).
//!
//! How a frame is judged with a detail branch:
//! 1. the main flow scores the thumbnail as without one (its OOD score `s_frame`);
//! 2. the patch model scores `rows x columns` patches at fixed positions of the full-size
//!    frame ([`patch_origin`]), read as full-range luma rounded to integer levels; their
//!    bits/dim are averaged into `b_detail`;
//! 3. the gate's OOD score is the larger of the two standardised scores,
//!    `max((s_frame - frame.center) / frame.spread, |b_detail - detail.center| / detail.spread)`
//!    ([`Detail::combined_score`]), and the model's threshold applies to it. The detail
//!    part is two-sided: noise makes patches less likely, blur and a flat (covered, dead)
//!    picture make them more likely than normal.

use serde::{Deserialize, Serialize};

use crate::bytes::Bytes;

/// See the module's documentation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Detail<'a> {
    /// Width of the frames the branch reads, in pixels: the camera's own.
    pub frame_width: u32,
    /// Height of the frames the branch reads, in pixels.
    pub frame_height: u32,
    /// Patch positions across the frame.
    pub columns: u32,
    /// Patch positions down the frame.
    pub rows: u32,
    /// The patch model: the postcard payload of a complete [`crate::Model`] (no header: the
    /// outer file's checksum covers it) whose input is one gray patch, with
    /// [`crate::Resize::Exact`], no threshold and no detail branch of its own.
    #[serde(borrow)]
    pub patch_model: Bytes<'a>,
    /// Standardises the main flow's OOD score.
    pub frame: Standardise,
    /// Standardises the patches' mean bits/dim (two-sided).
    pub detail: Standardise,
}

/// `(value - center) / spread`, set from held-out normal frames.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Standardise {
    /// A typical normal frame's value (the writer uses the median).
    pub center: f32,
    /// How far normal frames spread around it (the writer uses the deviation from the
    /// median at the calibration rate's quantile, so that each part's own threshold lands at
    /// 1); positive.
    pub spread: f32,
}

impl Standardise {
    /// `(value - center) / spread`.
    pub fn apply(self, value: f64) -> f64 {
        (value - f64::from(self.center)) / f64::from(self.spread)
    }
}

impl Detail<'_> {
    /// Patches per frame.
    pub fn patches(&self) -> u64 {
        u64::from(self.columns) * u64::from(self.rows)
    }

    /// The gate's OOD score from the main flow's OOD score and the patches' mean bits/dim
    /// (NaN in, NaN out: the gate rejects non-finite scores).
    pub fn combined_score(&self, frame_ood_score: f64, detail_bits_per_dim: f64) -> f64 {
        let frame = self.frame.apply(frame_ood_score);
        let detail = self.detail.apply(detail_bits_per_dim).abs();
        if frame.is_nan() || detail.is_nan() {
            return f64::NAN;
        }
        frame.max(detail)
    }
}

/// The top-left corner `(x, y)` of patch `index` (row-major over `rows x columns`) of a
/// `patch_width x patch_height` patch in a `frame_width x frame_height` frame: the patch is
/// centred on its grid cell's centre, moved inside the frame where it would cross an edge.
/// Integer arithmetic, so the trainer and the runtime take the same pixels. `None` when the
/// index is past the grid, the grid is empty or the patch is larger than the frame.
pub fn patch_origin(
    (frame_width, frame_height): (u32, u32),
    (columns, rows): (u32, u32),
    (patch_width, patch_height): (u32, u32),
    index: u64,
) -> Option<(u32, u32)> {
    if columns == 0 || rows == 0 || patch_width > frame_width || patch_height > frame_height {
        return None;
    }
    let (row, column) = (index / u64::from(columns), index % u64::from(columns));
    if row >= u64::from(rows) {
        return None;
    }
    let place = |cell: u64, cells: u32, extent: u32, patch: u32| -> u32 {
        let centre = (2 * cell + 1) * u64::from(extent) / (2 * u64::from(cells));
        let start = centre.saturating_sub(u64::from(patch / 2));
        start.min(u64::from(extent - patch)) as u32
    };
    Some((
        place(column, columns, frame_width, patch_width),
        place(row, rows, frame_height, patch_height),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_are_centred_on_their_cells_and_stay_inside() {
        // 4 columns of a 64-wide frame: cell centres 8, 24, 40, 56; 8-wide patches from 4.
        let origins: [Option<(u32, u32)>; 4] =
            core::array::from_fn(|i| patch_origin((64, 16), (4, 1), (8, 8), i as u64));
        assert_eq!(
            origins,
            [Some((4, 4)), Some((20, 4)), Some((36, 4)), Some((52, 4))]
        );
        // A patch wider than its cell moves inside the frame at the edges.
        assert_eq!(patch_origin((10, 10), (2, 2), (8, 8), 3), Some((2, 2)));
        assert_eq!(patch_origin((10, 10), (2, 2), (8, 8), 0), Some((0, 0)));
        assert_eq!(patch_origin((10, 10), (2, 2), (8, 8), 4), None);
        assert_eq!(patch_origin((4, 4), (1, 1), (8, 8), 0), None);
        assert_eq!(patch_origin((4, 4), (0, 1), (2, 2), 0), None);
    }

    #[test]
    fn the_combined_score_is_the_larger_standardised_one_and_detail_is_two_sided() {
        let detail = Detail {
            frame_width: 8,
            frame_height: 8,
            columns: 1,
            rows: 1,
            patch_model: Bytes::Borrowed(&[]),
            frame: Standardise {
                center: 1.0,
                spread: 0.5,
            },
            detail: Standardise {
                center: 3.0,
                spread: 0.25,
            },
        };
        assert_eq!(detail.combined_score(2.0, 3.0), 2.0);
        assert_eq!(detail.combined_score(1.0, 2.0), 4.0);
        assert_eq!(detail.combined_score(1.0, 4.0), 4.0);
        assert!(detail.combined_score(f64::NAN, 3.0).is_nan());
        assert!(detail.combined_score(1.0, f64::NAN).is_nan());
        assert_eq!(detail.combined_score(f64::INFINITY, 3.0), f64::INFINITY);
    }
}
