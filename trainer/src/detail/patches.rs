//! Patches of full-size frames as the detail branch's patch model sees them: the runtime's
//! own [`patch_levels`] and [`patch_origin`], so training and scoring take the same pixels.

use flowgate_edge::Frame;
use flowgate_edge::preprocess::patch_levels;
use flowgate_shared::patch_origin;
use rand::RngExt;

use crate::error::{Error, Result};
use crate::seeds::{self, Stream};

/// Appends `count` patches of `side x side` pixels at uniformly random positions of `frame`
/// (from the seed's generator for frame `index`) to `out`, as levels.
pub fn random_patches(
    frame: &Frame<'_>,
    side: u32,
    count: usize,
    (seed, index): (u64, u64),
    out: &mut Vec<u8>,
) -> Result<()> {
    let (width, height) = (frame.width(), frame.height());
    if side > width || side > height {
        return Err(Error::Detail(format!(
            "{side}x{side} patches do not fit {width}x{height} frames"
        )));
    }
    let mut rng = seeds::generator(seed, Stream::DetailPatches, index);
    let mut levels = vec![0f32; (side * side) as usize];
    for _ in 0..count {
        let x = rng.random_range(0..=width - side);
        let y = rng.random_range(0..=height - side);
        patch_levels(frame, (x, y), (side, side), &mut levels)?;
        out.extend(levels.iter().map(|&level| level as u8));
    }
    Ok(())
}

/// Appends the patches the runtime scores (`columns x rows`, row-major) to `out`.
pub fn grid_patches(
    frame: &Frame<'_>,
    side: u32,
    (columns, rows): (u32, u32),
    out: &mut Vec<u8>,
) -> Result<()> {
    let mut levels = vec![0f32; (side * side) as usize];
    let size = (frame.width(), frame.height());
    for index in 0..u64::from(columns) * u64::from(rows) {
        let origin = patch_origin(size, (columns, rows), (side, side), index).ok_or_else(|| {
            Error::Detail(format!(
                "{side}x{side} patches on a {columns}x{rows} grid do not fit {}x{} frames",
                size.0, size.1
            ))
        })?;
        patch_levels(frame, origin, (side, side), &mut levels)?;
        out.extend(levels.iter().map(|&level| level as u8));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowgate_edge::PixelFormat;

    #[test]
    fn patches_copy_the_frame_and_random_ones_follow_the_seed() {
        let data: Vec<u8> = (0..12 * 10).map(|i| i as u8).collect();
        let frame = Frame::packed(&data, 12, 10, PixelFormat::Gray8).unwrap();
        let mut grid = Vec::new();
        grid_patches(&frame, 2, (2, 1), &mut grid).unwrap();
        // Cells centred on x = 3 and 9, y = 5: patches from (2, 4) and (8, 4).
        assert_eq!(grid, vec![50, 51, 62, 63, 56, 57, 68, 69]);
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        random_patches(&frame, 3, 5, (7, 1), &mut a).unwrap();
        random_patches(&frame, 3, 5, (7, 1), &mut b).unwrap();
        random_patches(&frame, 3, 5, (7, 2), &mut c).unwrap();
        assert_eq!(a.len(), 45);
        assert_eq!(a, b);
        assert_ne!(a, c);
        // Every patch is a block of the frame: rows of consecutive values 12 apart.
        for patch in a.chunks(9) {
            assert_eq!(patch[1], patch[0] + 1);
            assert_eq!(patch[3], patch[0] + 12);
        }
        assert!(random_patches(&frame, 11, 1, (0, 0), &mut a).is_err());
        assert!(grid_patches(&frame, 11, (1, 1), &mut a).is_err());
    }
}
