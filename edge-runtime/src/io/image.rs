//! Image files (png, jpeg, pgm/ppm/pbm/pnm, bmp) decoded into frames the gate scores.
//!
//! Decoding converts only as far as the gate needs: grayscale files stay gray8; colour files
//! become rgb8, and a one-channel model's gate converts them to luma itself (ITU-R BT.601,
//! the same definition it applies to camera frames), rather than the image library's own
//! luma weights.

use std::io;
use std::path::{Path, PathBuf};
use std::vec::Vec;

use ::image::{DynamicImage, ImageFormat, ImageReader};
use thiserror::Error;

use crate::error::FrameError;
use crate::frame::{Frame, PixelFormat};

/// Largest image file read, in bytes: files are read whole, so this bounds the read.
pub const MAX_FILE_BYTES: u64 = 256 << 20;

/// Largest width or height decoded.
pub const MAX_SIDE: u32 = 16384;

/// Most bytes the decoder may allocate for one image (a 16384 x 16384 gray image, or 8K RGBA
/// with room to spare): a small file that declares a huge image fails to decode instead of
/// exhausting memory.
pub const MAX_DECODE_BYTES: u64 = 256 << 20;

/// File name extensions (lower case) of the image formats read.
pub const EXTENSIONS: [&str; 8] = ["png", "jpg", "jpeg", "pgm", "ppm", "pbm", "pnm", "bmp"];

/// Why an image file, or a folder of them, could not be read. Every variant names the path.
#[derive(Debug, Error)]
pub enum ImageError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}", path = path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },

    /// The file is not a decodable image (corrupt, truncated, or another format).
    #[error("{path}: cannot decode image (corrupt, truncated or not an image): {source}", path = path.display())]
    Decode {
        /// The file.
        path: PathBuf,
        /// The decoder's complaint.
        source: ::image::ImageError,
    },

    /// The file declares an image without pixels (a zero width or height), which decoders
    /// accept and no gate can score.
    #[error("{path}: the image is {width}x{height}: no pixels to score", path = path.display())]
    Empty {
        /// The file.
        path: PathBuf,
        /// Its declared width.
        width: u32,
        /// Its declared height.
        height: u32,
    },

    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error("{path}: {bytes} bytes, larger than the {MAX_FILE_BYTES}-byte limit on image files", path = path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        bytes: u64,
    },

    /// The folder could not be listed.
    #[error("{path}: cannot list folder: {source}", path = path.display())]
    Folder {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// A decoded image: tightly packed gray8 or rgb8 pixels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// [`PixelFormat::Gray8`] or [`PixelFormat::Rgb8`].
    pub format: PixelFormat,
    /// Row-major pixels, `width * height * bytes per pixel` of them.
    pub pixels: Vec<u8>,
}

impl DecodedImage {
    /// The image as a frame for [`crate::Gate::score`].
    pub fn frame(&self) -> Result<Frame<'_>, FrameError> {
        Frame::packed(&self.pixels, self.width, self.height, self.format)
    }
}

/// Whether `path`'s extension (any case) is one of [`EXTENSIONS`].
pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|extension| extension.to_str())
        .is_some_and(|extension| {
            EXTENSIONS
                .iter()
                .any(|known| known.eq_ignore_ascii_case(extension))
        })
}

/// The image files directly in `dir` (not in its subfolders), by [`has_image_extension`],
/// sorted by file name. Other files are left out.
pub fn list_folder(dir: &Path) -> Result<Vec<PathBuf>, ImageError> {
    let folder_error = |source| ImageError::Folder {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(folder_error)? {
        let path = entry.map_err(folder_error)?.path();
        // `is_file` follows symbolic links.
        if has_image_extension(&path) && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(paths)
}

/// Reads and decodes an image file for a model with `channels` input channels.
pub fn read_image(path: &Path, channels: u32) -> Result<DecodedImage, ImageError> {
    use std::io::Read;
    let io_error = |source| ImageError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_error)?;
    // Reading one byte past the limit tells a file over it from one at it, whatever the
    // metadata says (a pipe, a file still growing).
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(ImageError::TooLarge {
            path: path.to_path_buf(),
            bytes: std::fs::metadata(path).map_or(bytes.len() as u64, |m| m.len()),
        });
    }
    decode_image(&bytes, path, channels)
}

/// Decodes an image file's bytes for a model with `channels` input channels: gray8 when the
/// model reads one channel and the image has no colour, rgb8 otherwise. The format comes
/// from the content, or from `origin`'s extension where the content does not tell (some
/// PNM variants); `origin` also labels errors.
pub fn decode_image(
    bytes: &[u8],
    origin: &Path,
    channels: u32,
) -> Result<DecodedImage, ImageError> {
    let decode_error = |source| ImageError::Decode {
        path: origin.to_path_buf(),
        source,
    };
    let mut reader = ImageReader::new(io::Cursor::new(bytes));
    if let Ok(format) = ImageFormat::from_path(origin) {
        reader.set_format(format);
    }
    let mut reader = reader
        .with_guessed_format()
        .map_err(|source| ImageError::Io {
            path: origin.to_path_buf(),
            source,
        })?;
    let mut limits = ::image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let image = reader.decode().map_err(decode_error)?;
    let (width, height) = (image.width(), image.height());
    if width == 0 || height == 0 {
        return Err(ImageError::Empty {
            path: origin.to_path_buf(),
            width,
            height,
        });
    }
    let (format, pixels) = if channels == 1 && !image.color().has_color() {
        (PixelFormat::Gray8, gray8(image))
    } else {
        (PixelFormat::Rgb8, image.into_rgb8().into_raw())
    };
    Ok(DecodedImage {
        width,
        height,
        format,
        pixels,
    })
}

fn gray8(image: DynamicImage) -> Vec<u8> {
    match image {
        DynamicImage::ImageLuma8(gray) => gray.into_raw(),
        // Gray with alpha, or 16-bit gray: no colour, so this is only a depth conversion.
        other => other.into_luma8().into_raw(),
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use std::string::ToString;
    use std::vec;

    use ::image::{GrayImage, RgbImage};

    use super::*;

    fn png(image: DynamicImage) -> Vec<u8> {
        let mut bytes = Vec::new();
        image
            .write_to(&mut io::Cursor::new(&mut bytes), ImageFormat::Png)
            .expect("encoding to memory");
        bytes
    }

    #[test]
    fn gray_stays_gray_and_colour_becomes_rgb() {
        let gray = GrayImage::from_raw(3, 2, vec![0, 10, 20, 30, 40, 50]).unwrap();
        let bytes = png(DynamicImage::ImageLuma8(gray));
        let decoded = decode_image(&bytes, Path::new("g.png"), 1).unwrap();
        assert_eq!((decoded.width, decoded.height), (3, 2));
        assert_eq!(decoded.format, PixelFormat::Gray8);
        assert_eq!(decoded.pixels, [0, 10, 20, 30, 40, 50]);
        // A three-channel model gets gray replicated.
        let decoded = decode_image(&bytes, Path::new("g.png"), 3).unwrap();
        assert_eq!(decoded.format, PixelFormat::Rgb8);
        assert_eq!(&decoded.pixels[..6], &[0, 0, 0, 10, 10, 10]);

        let rgb = RgbImage::from_raw(1, 1, vec![200, 100, 50]).unwrap();
        let decoded = decode_image(&png(DynamicImage::ImageRgb8(rgb)), Path::new("c"), 1).unwrap();
        assert_eq!(decoded.format, PixelFormat::Rgb8);
        assert_eq!(decoded.pixels, [200, 100, 50]);
        assert!(decoded.frame().is_ok());
    }

    #[test]
    fn corrupt_and_truncated_files_name_the_path() {
        let gray = GrayImage::from_raw(8, 8, vec![7; 64]).unwrap();
        let bytes = png(DynamicImage::ImageLuma8(gray));
        for broken in [&bytes[..bytes.len() / 2], b"not an image at all"] {
            let error = decode_image(broken, Path::new("dir/broken.png"), 1).expect_err("broken");
            assert!(matches!(error, ImageError::Decode { .. }), "{error}");
            assert!(error.to_string().contains("dir/broken.png"), "{error}");
        }
        let error = read_image(Path::new("/nonexistent/x.png"), 1).expect_err("missing");
        assert!(matches!(error, ImageError::Io { .. }), "{error}");
    }

    #[test]
    fn extensions_in_any_case() {
        for name in ["a.png", "b.JPG", "c.jpeg", "d.pgm", "e.Ppm", "f.bmp"] {
            assert!(has_image_extension(Path::new(name)), "{name}");
        }
        for name in ["a.txt", "png", "b.gif", "c.idx"] {
            assert!(!has_image_extension(Path::new(name)), "{name}");
        }
    }

    #[test]
    fn a_small_file_declaring_a_huge_image_is_refused_before_allocating() {
        // 40 bytes that declare a 20000 x 20000 gray image (400 MB decoded).
        let mut bomb = b"P5\n20000 20000\n255\n".to_vec();
        bomb.extend([0u8; 20]);
        let started = std::time::Instant::now();
        let error = decode_image(&bomb, Path::new("bomb.pgm"), 1).expect_err("over the limits");
        assert!(matches!(error, ImageError::Decode { .. }), "{error}");
        assert!(started.elapsed() < std::time::Duration::from_millis(500));
    }

    /// Found by the image_decode fuzz target: a plain PGM header read as 0 pixels wide
    /// ("P2" then width "0") decodes to an empty image, which is now an error naming it.
    #[test]
    fn an_image_without_pixels_is_an_error() {
        for channels in [1, 3] {
            let error = decode_image(b"P20\n895 8", Path::new("empty.pgm"), channels)
                .expect_err("no pixels");
            assert!(
                matches!(
                    error,
                    ImageError::Empty {
                        width: 0,
                        height: 895,
                        ..
                    }
                ),
                "{error}"
            );
            assert!(
                error
                    .to_string()
                    .starts_with("empty.pgm: the image is 0x895")
            );
        }
    }
}
