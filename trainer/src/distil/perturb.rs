//! The perturbed copies of training images the student learns the teacher's scores on: each
//! kind stands for a kind of OOD frame.

use image::{GrayImage, imageops};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Normal};

use crate::corrupt::{self, Corruption};
use crate::data::ImageSet;
use crate::error::{Error, Result};

/// The perturbations the student sees, each standing for a kind of OOD frame.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Perturbation {
    /// Additive Gaussian noise, sigma 5 to 50 levels.
    Noise,
    /// Gaussian blur, sigma 0.5 to 2.5 pixels.
    Blur,
    /// 2% to 30% of the levels replaced by uniform random ones.
    Mutation,
    /// The camera moved (cropped and zoomed back).
    Shift,
    /// The camera knocked (rotated 10-25 degrees).
    Rotate,
    /// Mirrored left-right or top-bottom.
    Flip,
    /// Rotated by 180 degrees.
    UpsideDown,
    /// `255 - level`.
    Invert,
    /// One level everywhere (a covered lens, glare, a dead sensor).
    Constant,
    /// A flat patch near the lens.
    Occlusion,
    /// Neighbouring tiles swapped: local statistics kept, structure broken.
    PatchShuffle,
    /// JPEG at quality 3.
    Jpeg,
}

impl Perturbation {
    /// Every kind; each perturbed image draws one uniformly.
    pub const ALL: [Self; 12] = [
        Self::Noise,
        Self::Blur,
        Self::Mutation,
        Self::Shift,
        Self::Rotate,
        Self::Flip,
        Self::UpsideDown,
        Self::Invert,
        Self::Constant,
        Self::Occlusion,
        Self::PatchShuffle,
        Self::Jpeg,
    ];
}

/// The kinds a distillation draws from: all of them, or all but some (a leave-one-kind-out
/// evaluation holds a kind out of training to see whether the gate catches it unseen).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerturbationKinds {
    /// Bit `i` set: [`Perturbation::ALL`]`[i]` is drawn.
    mask: u16,
}

impl PerturbationKinds {
    /// Every kind.
    pub const ALL: Self = PerturbationKinds {
        mask: (1 << Perturbation::ALL.len()) - 1,
    };

    /// All of `self` but `kind`.
    pub fn without(self, kind: Perturbation) -> Self {
        PerturbationKinds {
            mask: self.mask & !(1 << kind as u16),
        }
    }

    /// All of `self` but `kinds`.
    pub fn without_all(self, kinds: &[Perturbation]) -> Self {
        kinds.iter().fold(self, |all, &kind| all.without(kind))
    }

    /// Exactly the kinds of `kinds`.
    pub fn of(kinds: &[Perturbation]) -> Self {
        Perturbation::ALL
            .into_iter()
            .filter(|kind| !kinds.contains(kind))
            .fold(Self::ALL, Self::without)
    }

    /// The kinds, in [`Perturbation::ALL`]'s order.
    pub fn list(self) -> Vec<Perturbation> {
        Perturbation::ALL
            .into_iter()
            .filter(|&kind| self.mask & (1 << kind as u16) != 0)
            .collect()
    }
}

impl Default for PerturbationKinds {
    fn default() -> Self {
        Self::ALL
    }
}

/// A perturbed copy of one image (`shape` = `[channels, height, width]`, channel-major).
/// Geometric kinds move every channel alike.
pub fn perturb(
    image: &[u8],
    shape: [usize; 3],
    kind: Perturbation,
    rng: &mut StdRng,
) -> Result<Vec<u8>> {
    let [channels, height, width] = shape;
    let plane = height * width;
    if image.len() != channels * plane {
        return Err(Error::Perturbation(format!(
            "an image of {} levels is not {channels}x{height}x{width}",
            image.len()
        )));
    }
    if height < 8 || width < 8 {
        return Err(Error::Perturbation(format!(
            "a {width}x{height} image is too small to perturb (at least 8x8)"
        )));
    }
    let mut out = image.to_vec();
    match kind {
        Perturbation::Noise => {
            let sigma = rng.random_range(5.0..50.0f32);
            let normal = Normal::new(0.0f32, sigma)
                .map_err(|e| Error::Perturbation(format!("noise of sigma {sigma}: {e}")))?;
            for level in &mut out {
                *level = (f32::from(*level) + normal.sample(rng))
                    .round()
                    .clamp(0.0, 255.0) as u8;
            }
        }
        Perturbation::Mutation => {
            let rate = rng.random_range(0.02..0.3f64);
            for level in &mut out {
                if rng.random_bool(rate) {
                    *level = rng.random::<u8>();
                }
            }
        }
        Perturbation::Invert => out.iter_mut().for_each(|level| *level = 255 - *level),
        Perturbation::Constant => {
            let level = match rng.random_range(0..3u8) {
                0 => 0,
                1 => 255,
                _ => rng.random::<u8>(),
            };
            out.fill(level);
        }
        Perturbation::Flip => {
            let horizontal = rng.random_bool(0.5);
            for (c, y, x) in pixels(shape) {
                let (sy, sx) = if horizontal {
                    (y, width - 1 - x)
                } else {
                    (height - 1 - y, x)
                };
                out[c * plane + y * width + x] = image[c * plane + sy * width + sx];
            }
        }
        Perturbation::PatchShuffle => {
            // Tiles of about a seventh of the side: a 28x28 image has 7x7 tiles of 4 pixels.
            let tile = (height.min(width) / 7).max(2);
            let (rows, cols) = (height / tile, width / tile);
            let mut order: Vec<usize> = (0..rows * cols).collect();
            for cell in 0..rows * cols {
                let (row, col) = (cell / cols, cell % cols);
                if rng.random_bool(0.5) {
                    let other = if rng.random_bool(0.5) && col + 1 < cols {
                        cell + 1
                    } else if row + 1 < rows {
                        cell + cols
                    } else {
                        continue;
                    };
                    order.swap(cell, other);
                }
            }
            for (cell, &source) in order.iter().enumerate() {
                let (ty, tx) = (cell / cols * tile, cell % cols * tile);
                let (sy, sx) = (source / cols * tile, source % cols * tile);
                for c in 0..channels {
                    for dy in 0..tile {
                        let to = c * plane + (ty + dy) * width + tx;
                        let from = c * plane + (sy + dy) * width + sx;
                        out[to..to + tile].copy_from_slice(&image[from..from + tile]);
                    }
                }
            }
        }
        Perturbation::Blur => {
            let sigma = rng.random_range(0.5..2.5f32);
            per_channel(image, shape, &mut out, |gray| {
                Ok(imageops::blur(gray, sigma))
            })?;
        }
        Perturbation::Shift => per_channel_corrupt(image, shape, &mut out, Corruption::Shift, rng)?,
        Perturbation::Rotate => {
            per_channel_corrupt(image, shape, &mut out, Corruption::Rotate, rng)?
        }
        Perturbation::UpsideDown => {
            per_channel_corrupt(image, shape, &mut out, Corruption::UpsideDown, rng)?
        }
        Perturbation::Occlusion => {
            per_channel_corrupt(image, shape, &mut out, Corruption::Occlusion, rng)?
        }
        Perturbation::Jpeg => per_channel_corrupt(image, shape, &mut out, Corruption::Jpeg, rng)?,
    }
    Ok(out)
}

fn pixels(shape: [usize; 3]) -> impl Iterator<Item = (usize, usize, usize)> {
    let [channels, height, width] = shape;
    (0..channels)
        .flat_map(move |c| (0..height).flat_map(move |y| (0..width).map(move |x| (c, y, x))))
}

/// Applies `f` to each channel as a gray image.
fn per_channel(
    image: &[u8],
    shape: [usize; 3],
    out: &mut [u8],
    mut f: impl FnMut(&GrayImage) -> Result<GrayImage>,
) -> Result<()> {
    let [channels, height, width] = shape;
    let plane = height * width;
    for c in 0..channels {
        let gray = GrayImage::from_raw(
            width as u32,
            height as u32,
            image[c * plane..(c + 1) * plane].to_vec(),
        )
        .ok_or_else(|| Error::Perturbation("a channel is not a gray image".into()))?;
        let changed = f(&gray)?;
        out[c * plane..(c + 1) * plane].copy_from_slice(changed.as_raw());
    }
    Ok(())
}

/// `corrupt`'s frame corruptions, every channel from the same random draws (so an RGB image
/// is shifted or occluded once, not once per channel).
fn per_channel_corrupt(
    image: &[u8],
    shape: [usize; 3],
    out: &mut [u8],
    kind: Corruption,
    rng: &mut StdRng,
) -> Result<()> {
    let seed = rng.random::<u64>();
    per_channel(image, shape, out, |gray| {
        corrupt::corrupt(gray, kind, &mut StdRng::seed_from_u64(seed))
            .map_err(|e| Error::Perturbation(e.to_string()))
    })
}

/// The clean images at `indices` followed by one perturbed copy of each, its kind drawn
/// uniformly from `kinds`. Seeded by `seed`.
pub fn clean_and_perturbed(
    images: &ImageSet,
    indices: &[usize],
    seed: u64,
    kinds: PerturbationKinds,
) -> Result<ImageSet> {
    let kinds = kinds.list();
    if kinds.is_empty() {
        return Err(Error::Perturbation(
            "every perturbation kind is excluded: nothing to perturb with".into(),
        ));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut set = images.subset(indices);
    for &index in indices {
        let kind = kinds[rng.random_range(0..kinds.len())];
        let perturbed =
            perturb(images.image(index), images.shape, kind, &mut rng).map_err(|error| {
                Error::Perturbation(format!("perturbing image {index} ({kind:?}): {error}"))
            })?;
        set.pixels.extend_from_slice(&perturbed);
    }
    set.count = 2 * indices.len();
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The discriminants index ALL (the mask relies on it), and excluding a kind removes
    /// exactly that one.
    #[test]
    fn kinds_without_one_keep_the_others_in_order() {
        for (index, kind) in Perturbation::ALL.into_iter().enumerate() {
            assert_eq!(kind as usize, index);
        }
        assert_eq!(PerturbationKinds::ALL.list(), Perturbation::ALL.to_vec());
        let kinds = PerturbationKinds::ALL
            .without(Perturbation::Occlusion)
            .without(Perturbation::Jpeg);
        let list = kinds.list();
        assert_eq!(list.len(), Perturbation::ALL.len() - 2);
        assert!(!list.contains(&Perturbation::Occlusion) && !list.contains(&Perturbation::Jpeg));
    }

    #[test]
    fn excluded_kinds_are_never_drawn_and_excluding_all_is_an_error() {
        let images = ImageSet {
            pixels: (0..16 * 16 * 4).map(|v| (v % 251) as u8).collect(),
            count: 4,
            shape: [1, 16, 16],
        };
        let indices = [0, 1, 2, 3];
        // Only inversion left: every perturbed copy is the inverted image.
        let only_invert = Perturbation::ALL
            .into_iter()
            .filter(|&kind| kind != Perturbation::Invert)
            .fold(PerturbationKinds::ALL, PerturbationKinds::without);
        let pair = clean_and_perturbed(&images, &indices, 7, only_invert).expect("perturbs");
        for index in indices {
            let inverted: Vec<u8> = images.image(index).iter().map(|v| 255 - v).collect();
            assert_eq!(pair.image(4 + index), &inverted[..]);
        }
        let none = only_invert.without(Perturbation::Invert);
        assert!(clean_and_perturbed(&images, &indices, 7, none).is_err());
    }
}
