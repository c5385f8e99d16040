//! Images named by a path, as the command line takes them: an idx file (gz or plain), one
//! image file, or a folder of image files.
//!
//! Image files of any size and colour go through the edge runtime's own preprocessing
//! (BT.601 luma, area-average resize, rounding to levels), so the trainer learns from and
//! scores exactly the pixels the gate computes from the same file.

use std::path::{Path, PathBuf};

use flowgate_edge::io::image::{list_folder, read_image};
use flowgate_shared::{InputSpec, Preprocess, Resize};

use super::{ImageSet, read_images};
use crate::error::{Error, Result};

/// Images at the model's input size, with where each came from.
#[derive(Debug, Clone)]
pub struct InputImages {
    /// The images, at the requested `[C, H, W]`.
    pub set: ImageSet,
    /// Per image: the file it came from and its index within that file (0 for image files).
    pub origins: Vec<(String, u64)>,
    /// Image files that could not be read, with the reason (reported, not fatal).
    pub skipped: Vec<String>,
}

/// Reads `path` (idx file, image file or folder) at `shape` = `[C, H, W]`, keeping the first
/// `limit` images. idx images must already have that shape (they are 28x28 datasets); image
/// files are resized.
pub fn load_input(path: &Path, shape: [usize; 3], limit: Option<usize>) -> Result<InputImages> {
    if path.is_dir() {
        let files = list_folder(path)?;
        if files.is_empty() {
            return Err(Error::NoImageFiles {
                path: path.to_path_buf(),
            });
        }
        let files = &files[..limit.map_or(files.len(), |l| l.min(files.len()))];
        return load_image_files(files, shape);
    }
    if flowgate_edge::io::image::has_image_extension(path) {
        return load_image_files(&[path.to_path_buf()], shape);
    }
    let images = read_images(path)?;
    let found = [1, images.rows, images.cols];
    if found != shape {
        return Err(Error::ImageShape {
            source_name: path.display().to_string(),
            found,
            expected: shape,
        });
    }
    let count = limit.map_or(images.count, |l| l.min(images.count));
    let len = images.rows * images.cols;
    let source = path.display().to_string();
    Ok(InputImages {
        set: ImageSet {
            pixels: images.pixels[..count * len].to_vec(),
            count,
            shape,
        },
        origins: (0..count as u64).map(|i| (source.clone(), i)).collect(),
        skipped: Vec::new(),
    })
}

/// Decodes and resizes image files; unreadable ones are skipped and listed.
pub fn load_image_files(files: &[PathBuf], shape: [usize; 3]) -> Result<InputImages> {
    let [channels, height, width] = shape;
    let spec = InputSpec {
        channels: channels as u32,
        height: height as u32,
        width: width as u32,
        // Only the size and channels matter for `frame_levels`.
        preprocess: Preprocess::Logit { alpha: 0.05 },
        resize: Resize::AreaAverage,
    };
    let len = channels * height * width;
    let mut pixels = Vec::with_capacity(files.len() * len);
    let mut levels = vec![0f32; len];
    let mut origins = Vec::with_capacity(files.len());
    let mut skipped = Vec::new();
    for file in files {
        match image_levels(file, &spec, &mut levels) {
            Ok(()) => {
                pixels.extend(levels.iter().map(|&v| v as u8));
                origins.push((file.display().to_string(), 0));
            }
            Err(error) => skipped.push(error.to_string()),
        }
    }
    if origins.is_empty() {
        return Err(Error::UnreadableImages {
            count: files.len(),
            first: skipped.first().cloned().unwrap_or_default(),
        });
    }
    Ok(InputImages {
        set: ImageSet {
            count: origins.len(),
            pixels,
            shape,
        },
        origins,
        skipped,
    })
}

fn image_levels(file: &Path, spec: &InputSpec, levels: &mut [f32]) -> Result<()> {
    let decoded = read_image(file, spec.channels)?;
    let unusable = |reason: String| Error::UnusableImage {
        path: file.to_path_buf(),
        reason,
    };
    let frame = decoded
        .frame()
        .map_err(|e| unusable(format!("not a usable frame: {e}")))?;
    flowgate_edge::preprocess::frame_levels(&frame, spec, levels)
        .map_err(|e| unusable(e.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn folder_images_are_resized_by_area_average_and_bad_files_skipped() {
        let dir = std::env::temp_dir().join(format!("flowgate-inputs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // 4x2 gray: left half 0, right half 200 -> 2x1 levels [0, 200].
        let image = image::GrayImage::from_raw(4, 2, vec![0, 0, 200, 200, 0, 0, 200, 200]).unwrap();
        image.save(dir.join("a.png")).unwrap();
        std::fs::write(dir.join("b.png"), b"not a png").unwrap();
        std::fs::write(dir.join("notes.txt"), b"ignored").unwrap();
        let loaded = load_input(&dir, [1, 1, 2], None).unwrap();
        assert_eq!(loaded.set.count, 1);
        assert_eq!(loaded.set.pixels, [0, 200]);
        assert_eq!(loaded.skipped.len(), 1);
        assert!(loaded.skipped[0].contains("b.png"), "{:?}", loaded.skipped);
        assert!(loaded.origins[0].0.ends_with("a.png"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
