//! Out-of-distribution frames made from normal ones: what goes wrong with a fixed camera.
//!
//! Every corruption is seeded per frame (the seed and the frame's position in its folder), so
//! a set is reproducible. Frames keep their size and file name.

use std::path::{Path, PathBuf};

use image::{GrayImage, Luma, imageops};
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Normal};

/// The corruptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Corruption {
    /// Lens covered: every pixel black.
    Black,
    /// Overexposed: every pixel white.
    White,
    /// A uniform mid-grey frame (a dead sensor, a fogged dome).
    Grey,
    /// Defocus: Gaussian blur with sigma 4% of the width.
    Blur,
    /// Sensor noise: additive Gaussian noise, sigma 40 levels.
    Noise,
    /// Something close to the lens (a hand): a flat skin-toned patch of a quarter to a third of the
    /// width, anywhere in the frame.
    Occlusion,
    /// Camera moved: the view shifted by 15-25% of the frame and zoomed back to full size.
    Shift,
    /// Camera knocked: the view rotated by 10-25 degrees about the centre.
    Rotate,
    /// Mounted upside down: rotated by 180 degrees.
    UpsideDown,
    /// A broken encoder: JPEG at quality 3.
    Jpeg,
}

impl Corruption {
    /// Every kind, in the order of the docs.
    pub const ALL: [Self; 10] = [
        Self::Black,
        Self::White,
        Self::Grey,
        Self::Blur,
        Self::Noise,
        Self::Occlusion,
        Self::Shift,
        Self::Rotate,
        Self::UpsideDown,
        Self::Jpeg,
    ];

    /// The command-line name (`upside-down`).
    pub fn name(self) -> String {
        use clap::ValueEnum;
        self.to_possible_value()
            .map_or_else(String::new, |value| value.get_name().to_owned())
    }
}

/// Why frames could not be corrupted.
#[derive(Debug, thiserror::Error)]
pub enum CorruptError {
    /// A frame smaller than the corruptions need.
    #[error("a {width}x{height} frame is too small to corrupt (at least 8x8)")]
    TooSmall {
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
    },
    /// The JPEG round trip of [`Corruption::Jpeg`] failed.
    #[error("JPEG at quality 3: {0}")]
    Jpeg(image::ImageError),
    /// The input folder could not be listed.
    #[error(transparent)]
    List(#[from] flowgate_edge::io::image::ImageError),
    /// The input folder holds no images.
    #[error("{}: no image files to corrupt", .0.display())]
    NoImages(PathBuf),
    /// Output and input are one folder.
    #[error("--out must differ from --input: the normal frames would be overwritten")]
    SameFolder,
    /// The output folder could not be created.
    #[error("cannot create {}: {source}", path.display())]
    CreateFolder {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A frame could not be read or encoded.
    #[error("{}: {source}", path.display())]
    Image {
        /// The frame.
        path: PathBuf,
        /// Why.
        source: image::ImageError,
    },
    /// A corrupted frame could not be written.
    #[error(transparent)]
    Write(#[from] crate::atomic_write::AtomicWriteError),
}

/// Applies `kind` to a gray frame. `rng` draws the random parts (noise, positions, angles).
pub fn corrupt(
    frame: &GrayImage,
    kind: Corruption,
    rng: &mut StdRng,
) -> Result<GrayImage, CorruptError> {
    let (width, height) = frame.dimensions();
    if width < 8 || height < 8 {
        return Err(CorruptError::TooSmall { width, height });
    }
    Ok(match kind {
        Corruption::Black => GrayImage::from_pixel(width, height, Luma([0])),
        Corruption::White => GrayImage::from_pixel(width, height, Luma([255])),
        Corruption::Grey => GrayImage::from_pixel(width, height, Luma([128])),
        Corruption::Blur => imageops::blur(frame, 0.04 * width as f32),
        Corruption::Noise => {
            let normal = fixed_normal(40.0);
            let mut noisy = frame.clone();
            for pixel in noisy.pixels_mut() {
                let value = f32::from(pixel.0[0]) + normal.sample(rng);
                pixel.0[0] = value.round().clamp(0.0, 255.0) as u8;
            }
            noisy
        }
        Corruption::Occlusion => {
            let mut occluded = frame.clone();
            let patch_w = (width as f32 * rng.random_range(0.25..0.34)) as u32;
            let patch_h = (height as f32 * rng.random_range(0.33..0.45)) as u32;
            let x0 = rng.random_range(0..=width - patch_w);
            let y0 = rng.random_range(0..=height - patch_h);
            let shade = rng.random_range(90.0..200.0f32);
            let texture = fixed_normal(6.0);
            for y in y0..y0 + patch_h {
                for x in x0..x0 + patch_w {
                    let value = shade + texture.sample(rng);
                    occluded.put_pixel(x, y, Luma([value.round().clamp(0.0, 255.0) as u8]));
                }
            }
            occluded
        }
        Corruption::Shift => {
            let fraction = rng.random_range(0.15..0.25f32);
            let crop_w = ((1.0 - fraction) * width as f32) as u32;
            let crop_h = ((1.0 - fraction) * height as f32) as u32;
            let x0 = if rng.random_bool(0.5) {
                0
            } else {
                width - crop_w
            };
            let y0 = if rng.random_bool(0.5) {
                0
            } else {
                height - crop_h
            };
            let view = imageops::crop_imm(frame, x0, y0, crop_w, crop_h).to_image();
            imageops::resize(&view, width, height, imageops::FilterType::Triangle)
        }
        Corruption::Rotate => {
            let degrees =
                rng.random_range(10.0..25.0f32) * if rng.random_bool(0.5) { 1.0 } else { -1.0 };
            rotate_filling_frame(frame, degrees.to_radians())
        }
        Corruption::UpsideDown => imageops::rotate180(frame),
        Corruption::Jpeg => {
            let mut bytes = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 3)
                .encode_image(frame)
                .map_err(CorruptError::Jpeg)?;
            image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg)
                .map_err(CorruptError::Jpeg)?
                .into_luma8()
        }
    })
}

/// Rotates about the centre and zooms in just enough that no corner falls outside the
/// source (a tilted camera sees no black borders). Bilinear sampling.
fn rotate_filling_frame(frame: &GrayImage, angle: f32) -> GrayImage {
    let (width, height) = frame.dimensions();
    let (w, h) = (width as f32, height as f32);
    let (sin, cos) = angle.sin_cos();
    // The zoom that keeps the rotated output rectangle inside the source.
    let zoom = ((w * cos.abs() + h * sin.abs()) / w).max((w * sin.abs() + h * cos.abs()) / h);
    let (cx, cy) = (w / 2.0, h / 2.0);
    GrayImage::from_fn(width, height, |x, y| {
        let (dx, dy) = ((x as f32 + 0.5 - cx) / zoom, (y as f32 + 0.5 - cy) / zoom);
        let sx = cos * dx - sin * dy + cx - 0.5;
        let sy = sin * dx + cos * dy + cy - 0.5;
        Luma([bilinear(frame, sx, sy)])
    })
}

/// A zero-mean normal of a fixed, positive `sigma` (which `Normal::new` always accepts).
fn fixed_normal(sigma: f32) -> Normal<f32> {
    Normal::new(0.0, sigma).unwrap_or_else(|_| unreachable!("sigma {sigma} is positive"))
}

fn bilinear(frame: &GrayImage, x: f32, y: f32) -> u8 {
    let (width, height) = frame.dimensions();
    let x = x.clamp(0.0, (width - 1) as f32);
    let y = y.clamp(0.0, (height - 1) as f32);
    let (x0, y0) = (x.floor() as u32, y.floor() as u32);
    let (x1, y1) = ((x0 + 1).min(width - 1), (y0 + 1).min(height - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let at = |px, py| f32::from(frame.get_pixel(px, py).0[0]);
    let top = at(x0, y0) * (1.0 - fx) + at(x1, y0) * fx;
    let bottom = at(x0, y1) * (1.0 - fx) + at(x1, y1) * fx;
    (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8
}

/// Corrupts every image of `input` (a folder) into `out`, as gray PNGs with the same file
/// stems. Returns how many were written. Existing files in `out` are kept unless replaced by
/// a frame of the same name.
pub fn corrupt_folder(
    input: &Path,
    out: &Path,
    kind: Corruption,
    seed: u64,
) -> Result<usize, CorruptError> {
    let files = flowgate_edge::io::image::list_folder(input)?;
    if files.is_empty() {
        return Err(CorruptError::NoImages(input.to_path_buf()));
    }
    if input.canonicalize().ok() == out.canonicalize().ok() {
        return Err(CorruptError::SameFolder);
    }
    std::fs::create_dir_all(out).map_err(|source| CorruptError::CreateFolder {
        path: out.to_path_buf(),
        source,
    })?;
    let bar = ProgressBar::new(files.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(format!("corrupt {}", kind.name()));
    for (index, file) in files.iter().enumerate() {
        let image_error = |source| CorruptError::Image {
            path: file.clone(),
            source,
        };
        let frame = image::open(file).map_err(image_error)?.into_luma8();
        let mut rng =
            StdRng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let corrupted = corrupt(&frame, kind, &mut rng)?;
        let stem = file
            .file_stem()
            .map_or_else(|| format!("{index}"), |s| s.to_string_lossy().into_owned());
        let target = out.join(format!("{stem}.png"));
        let mut png = std::io::Cursor::new(Vec::new());
        corrupted
            .write_to(&mut png, image::ImageFormat::Png)
            .map_err(image_error)?;
        crate::atomic_write::write_bytes(&target, png.get_ref())?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(files.len())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn gradient() -> GrayImage {
        GrayImage::from_fn(64, 48, |x, y| Luma([(x * 3 + y) as u8]))
    }

    #[test]
    fn every_kind_keeps_the_size_and_changes_the_frame() {
        let frame = gradient();
        for kind in Corruption::ALL {
            let mut rng = StdRng::seed_from_u64(1);
            let out = corrupt(&frame, kind, &mut rng).unwrap();
            assert_eq!(out.dimensions(), frame.dimensions(), "{kind:?}");
            assert_ne!(out, frame, "{kind:?} left the frame unchanged");
        }
    }

    #[test]
    fn tiny_frames_are_an_error_not_a_panic() {
        let tiny = GrayImage::from_pixel(3, 2, Luma([9]));
        for kind in Corruption::ALL {
            let error = corrupt(&tiny, kind, &mut StdRng::seed_from_u64(0)).unwrap_err();
            assert!(error.to_string().contains("too small"), "{error}");
        }
    }

    #[test]
    fn seeded_and_exact_where_it_should_be() {
        let frame = gradient();
        let run = |kind| corrupt(&frame, kind, &mut StdRng::seed_from_u64(9)).unwrap();
        assert_eq!(run(Corruption::Noise), run(Corruption::Noise));
        let flipped = run(Corruption::UpsideDown);
        assert_eq!(flipped.get_pixel(0, 0), frame.get_pixel(63, 47));
        assert!(run(Corruption::Black).pixels().all(|p| p.0[0] == 0));
        // A zero-angle rotation is the identity (no zoom, exact sampling).
        assert_eq!(rotate_filling_frame(&frame, 0.0), frame);
    }
}
