//! Synthetic normal frames for a fixed camera, added to the training frames where its
//! footage misses part of its normal: moving objects pasted at random places
//! (`data.paste_objects`) and the whole picture's exposure shifted by fractions of a level
//! (`data.exposure_jitter`). Held-out frames are never changed.
//!
//! Pasted objects: a fixed camera's footage is mostly its background, so the background of
//! each pixel is its median over the training frames and the pixel's usual spread its median
//! absolute deviation (MAD). An object is found as a Canny-style hysteresis region: pixels
//! that differ from the background by more than [`STRONG_LEVELS`] start it, and it grows over
//! 8-neighbours that differ by more than [`WEAK_LEVELS`]; both bars are at least
//! [`SPREADS`] times the pixel's spread, so a flickering pixel (a screen, leaves) starts no
//! object. Regions over [`MAX_OBJECT_SHARE`] of the picture are left out: they are light
//! changes, a door swinging, or the camera moving, not objects that could be anywhere. A
//! synthetic frame is a training frame with one object of a training frame copied, its mask
//! and not its box, to a place drawn uniformly among those where it fits.

use rand::RngExt;
use rand::rngs::StdRng;

use super::ImageSet;

/// A pixel that differs from its background by more than this many levels starts an object.
pub const STRONG_LEVELS: f32 = 10.0;
/// An object grows over neighbours that differ from their background by more than this.
pub const WEAK_LEVELS: f32 = 3.0;
/// Both bars are at least this many robust standard deviations (1.4826 MAD) of the pixel.
pub const SPREADS: f32 = 5.0;
/// The largest object, as a share of the picture's pixels.
pub const MAX_OBJECT_SHARE: f64 = 0.1;

/// An object: the pixels of one frame's region, relative to its bounding box.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Object {
    /// The frame it was found in.
    frame: usize,
    /// Its bounding box's top row and left column in that frame.
    top: usize,
    left: usize,
    /// Its bounding box's size.
    height: usize,
    width: usize,
    /// Its pixels, `(row, column)` within the box.
    pixels: Vec<(usize, usize)>,
}

/// What [`paste_objects`] made.
#[derive(Debug, Clone)]
pub struct Pasted {
    /// The training images followed by the synthetic ones.
    pub set: ImageSet,
    /// Synthetic images added.
    pub added: usize,
    /// Objects found.
    pub objects: usize,
    /// Training images holding at least one object.
    pub frames_with_objects: usize,
}

impl Pasted {
    /// One line for the log.
    pub fn describe(&self) -> String {
        if self.objects == 0 {
            return "pasted objects: no moving object found in the training frames, none \
                    pasted"
                .into();
        }
        format!(
            "pasted objects: {} synthetic training images, from {} moving objects found in {} \
             of {} training frames",
            self.added,
            self.objects,
            self.frames_with_objects,
            self.set.count - self.added
        )
    }
}

/// `set` followed by `round(share * set.count)` synthetic images, each a random image of
/// `set` with a random object of `set` pasted at a random place (see the module's
/// documentation). With no object found, `set` alone.
pub fn paste_objects(set: &ImageSet, share: f64, rng: &mut StdRng) -> Pasted {
    let objects = find_objects(set);
    let frames_with_objects = {
        let mut frames: Vec<usize> = objects.iter().map(|o| o.frame).collect();
        frames.dedup();
        frames.len()
    };
    // No object (an empty set has none): nothing to paste.
    let added = if objects.is_empty() {
        0
    } else {
        (share.max(0.0) * set.count as f64).round() as usize
    };
    let [channels, height, width] = set.shape;
    let plane = height * width;
    let mut pixels = Vec::with_capacity((set.count + added) * set.image_len());
    pixels.extend_from_slice(&set.pixels);
    for _ in 0..added {
        let target = rng.random_range(0..set.count);
        let object = &objects[rng.random_range(0..objects.len())];
        let top = rng.random_range(0..=height - object.height);
        let left = rng.random_range(0..=width - object.width);
        let mut image = set.image(target).to_vec();
        let source = set.image(object.frame);
        for &(row, column) in &object.pixels {
            let from = (object.top + row) * width + object.left + column;
            let to = (top + row) * width + left + column;
            for c in 0..channels {
                image[c * plane + to] = source[c * plane + from];
            }
        }
        pixels.extend_from_slice(&image);
    }
    Pasted {
        set: ImageSet {
            pixels,
            count: set.count + added,
            shape: set.shape,
        },
        added,
        objects: objects.len(),
        frames_with_objects,
    }
}

/// `set` followed by a copy of each of its images with every level shifted by one offset
/// drawn uniformly from [-`levels`, `levels`], rounded stochastically per level (`v + o`
/// becomes `floor(v + o)` or the level above, with the probability of the fraction), so a
/// shift of a fraction of a level moves that fraction of the levels by one, as an exposure
/// drift does to a still picture.
pub fn with_exposure_jitter(set: &ImageSet, levels: f64, rng: &mut StdRng) -> ImageSet {
    let mut pixels = Vec::with_capacity(2 * set.pixels.len());
    pixels.extend_from_slice(&set.pixels);
    for index in 0..set.count {
        let offset = if levels > 0.0 {
            rng.random_range(-levels..=levels)
        } else {
            0.0
        };
        for &level in set.image(index) {
            let shifted = f64::from(level) + offset;
            let below = shifted.floor();
            let rounded = below + f64::from(u8::from(rng.random_bool(shifted - below)));
            pixels.push(rounded.clamp(0.0, 255.0) as u8);
        }
    }
    ImageSet {
        pixels,
        count: 2 * set.count,
        shape: set.shape,
    }
}

/// Every object of every image of `set`, in image order.
fn find_objects(set: &ImageSet) -> Vec<Object> {
    let [channels, height, width] = set.shape;
    let plane = height * width;
    if set.count == 0 || plane == 0 {
        return Vec::new();
    }
    let (background, spread) = background_and_spread(set);
    let max_pixels = ((MAX_OBJECT_SHARE * plane as f64) as usize).max(1);
    let mut objects = Vec::new();
    let mut strong = vec![false; plane];
    let mut weak = vec![false; plane];
    let mut seen = vec![false; plane];
    for frame in 0..set.count {
        let image = set.image(frame);
        for pixel in 0..plane {
            // A pixel counts where any channel differs enough.
            let (mut is_strong, mut is_weak) = (false, false);
            for c in 0..channels {
                let at = c * plane + pixel;
                let difference = (f32::from(image[at]) - background[at]).abs();
                let floor = SPREADS * spread[at];
                is_strong |= difference > STRONG_LEVELS.max(floor);
                is_weak |= difference > WEAK_LEVELS.max(floor);
            }
            strong[pixel] = is_strong;
            weak[pixel] = is_weak;
        }
        seen.fill(false);
        for start in 0..plane {
            if !strong[start] || seen[start] {
                continue;
            }
            let region = grow(start, &weak, &mut seen, height, width);
            if region.len() <= max_pixels {
                objects.push(boxed(frame, &region, width));
            }
        }
    }
    objects
}

/// The region of `weak` pixels 8-connected to `start`, marking them in `seen`.
fn grow(start: usize, weak: &[bool], seen: &mut [bool], height: usize, width: usize) -> Vec<usize> {
    let mut region = vec![start];
    seen[start] = true;
    let mut next = 0;
    while next < region.len() {
        let pixel = region[next];
        next += 1;
        let (row, column) = (pixel / width, pixel % width);
        for neighbour_row in row.saturating_sub(1)..=(row + 1).min(height - 1) {
            for neighbour_column in column.saturating_sub(1)..=(column + 1).min(width - 1) {
                let neighbour = neighbour_row * width + neighbour_column;
                if weak[neighbour] && !seen[neighbour] {
                    seen[neighbour] = true;
                    region.push(neighbour);
                }
            }
        }
    }
    region
}

/// `region` (pixel indices of a `width`-wide frame) as an object of `frame`.
fn boxed(frame: usize, region: &[usize], width: usize) -> Object {
    let rows = region.iter().map(|&p| p / width);
    let columns = region.iter().map(|&p| p % width);
    let (top, bottom) = (rows.clone().min().unwrap_or(0), rows.max().unwrap_or(0));
    let (left, right) = (
        columns.clone().min().unwrap_or(0),
        columns.max().unwrap_or(0),
    );
    Object {
        frame,
        top,
        left,
        height: bottom - top + 1,
        width: right - left + 1,
        pixels: region
            .iter()
            .map(|&p| (p / width - top, p % width - left))
            .collect(),
    }
}

/// Each level's median over the images, and its robust standard deviation (1.4826 times the
/// median absolute deviation).
fn background_and_spread(set: &ImageSet) -> (Vec<f32>, Vec<f32>) {
    let len = set.image_len();
    let mut background = Vec::with_capacity(len);
    let mut spread = Vec::with_capacity(len);
    let mut column = vec![0f32; set.count];
    for at in 0..len {
        for (frame, value) in column.iter_mut().enumerate() {
            *value = f32::from(set.image(frame)[at]);
        }
        let level = median(&mut column);
        for value in &mut column {
            *value = (*value - level).abs();
        }
        background.push(level);
        spread.push(1.4826 * median(&mut column));
    }
    (background, spread)
}

/// The median of `values` (reordered), the lower middle one of an even count.
fn median(values: &mut [f32]) -> f32 {
    if values.is_empty() {
        return 0.0;
    }
    let middle = (values.len() - 1) / 2;
    *values.select_nth_unstable_by(middle, f32::total_cmp).1
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// `count` 12x16 frames of a fixed gradient background with faint noise; frame `i` has a
    /// 2x3 dark object at column `i % 10`.
    fn footage(count: usize) -> ImageSet {
        let (height, width) = (12, 16);
        let mut pixels = Vec::new();
        for i in 0..count {
            for row in 0..height {
                for column in 0..width {
                    let background = 100 + (row * 4 + column) as u8 + (i % 2) as u8;
                    let dark = (4..6).contains(&row) && (i % 10..i % 10 + 3).contains(&column);
                    pixels.push(if dark { 20 } else { background });
                }
            }
        }
        ImageSet {
            pixels,
            count,
            shape: [1, height, width],
        }
    }

    #[test]
    fn finds_each_frames_object_and_nothing_else() {
        let set = footage(30);
        let objects = find_objects(&set);
        assert_eq!(objects.len(), 30, "one object per frame: {objects:?}");
        for (i, object) in objects.iter().enumerate() {
            assert_eq!(object.frame, i);
            assert_eq!((object.top, object.left), (4, i % 10));
            assert_eq!(
                (object.height, object.width, object.pixels.len()),
                (2, 3, 6)
            );
        }
    }

    #[test]
    fn pasted_images_hold_an_object_somewhere_and_keep_the_rest() {
        let set = footage(30);
        let mut rng = StdRng::seed_from_u64(7);
        let pasted = paste_objects(&set, 0.5, &mut rng);
        assert_eq!((pasted.added, pasted.set.count), (15, 45));
        assert_eq!(&pasted.set.pixels[..set.pixels.len()], &set.pixels[..]);
        let mut moved_rows = 0;
        for synthetic in 30..45 {
            let image = pasted.set.image(synthetic);
            // Exactly the frame's own dark pixels plus the pasted object's (which may overlap
            // them), and every other pixel a background level.
            let dark = image.iter().filter(|&&v| v == 20).count();
            assert!((6..=12).contains(&dark), "{dark} dark pixels");
            assert!(image.iter().all(|&v| v == 20 || v >= 100));
            let rows_with_dark = (0..12)
                .filter(|row| image[row * 16..(row + 1) * 16].contains(&20))
                .count();
            moved_rows += usize::from(rows_with_dark > 2);
        }
        assert!(moved_rows > 0, "some objects land on other rows");
        assert!(pasted.describe().contains("15 synthetic"));
    }

    #[test]
    fn exposure_jitter_shifts_each_copy_by_one_offset_in_the_mean() {
        let set = ImageSet {
            pixels: (0..4 * 400).map(|i| (100 + i % 7) as u8).collect(),
            count: 4,
            shape: [1, 20, 20],
        };
        let mut rng = StdRng::seed_from_u64(3);
        let jittered = with_exposure_jitter(&set, 2.0, &mut rng);
        assert_eq!(jittered.count, 8);
        assert_eq!(&jittered.pixels[..set.pixels.len()], &set.pixels[..]);
        let mut offsets = Vec::new();
        for index in 0..4 {
            let difference: Vec<i32> = set
                .image(index)
                .iter()
                .zip(jittered.image(4 + index))
                .map(|(&a, &b)| i32::from(b) - i32::from(a))
                .collect();
            // One offset per copy: every level moves by its floor or ceiling.
            let (low, high) = (
                difference.iter().min().unwrap(),
                difference.iter().max().unwrap(),
            );
            assert!(high - low <= 1 && *low >= -2 && *high <= 2, "{low}..{high}");
            offsets.push(difference.iter().sum::<i32>() as f64 / 400.0);
        }
        assert!(offsets.iter().all(|o| o.abs() <= 2.0));
        assert!(
            offsets.iter().any(|o| o.fract().abs() > 0.05),
            "fractional shifts: {offsets:?}"
        );
    }

    #[test]
    fn a_static_scene_or_a_whole_frame_change_pastes_nothing() {
        let still = ImageSet {
            pixels: vec![90; 5 * 64],
            count: 5,
            shape: [1, 8, 8],
        };
        let mut rng = StdRng::seed_from_u64(1);
        let pasted = paste_objects(&still, 1.0, &mut rng);
        assert_eq!((pasted.added, pasted.set.count), (0, 5));
        assert!(pasted.describe().contains("none pasted"));
        // One frame lit up entirely: a light change, larger than any object.
        let mut flash = still.clone();
        flash.pixels[..64].fill(250);
        assert!(find_objects(&flash).is_empty());
    }
}
