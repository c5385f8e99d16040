//! Reader for the idx format used by MNIST and Fashion-MNIST.
//!
//! An idx file is a big-endian header followed by a dense body:
//! `00 00 <type> <ndims>`, then `ndims` u32 dimension sizes, then the
//! elements in row-major order. Only the unsigned-byte type (0x08) is used by
//! these datasets, so only `ubyte` images (3 dims) and labels (1 dim) are
//! accepted. Files may be gzip-compressed; compression is detected from the
//! content so that a decompressed file keeping its `.gz` name (or the reverse)
//! still loads.
//!
//! The trainer reads its datasets with this module and the `flowgate-edge` command line
//! scores idx files with it, so both sides share one definition of the format.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::vec::Vec;

use flate2::read::MultiGzDecoder;
use thiserror::Error;

/// Magic number of an idx file holding unsigned bytes in 3 dimensions (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an idx file holding unsigned bytes in 1 dimension (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const MAGIC_LEN: usize = 4;
const DIM_LEN: usize = 4;

/// Images from an idx3-ubyte file, stored contiguously: image `i` is
/// `pixels[i * rows * cols..(i + 1) * rows * cols]`, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// Rows (height) of every image.
    pub rows: usize,
    /// Columns (width) of every image.
    pub cols: usize,
    /// All pixels, image after image, each row-major.
    pub pixels: Vec<u8>,
}

impl IdxImages {
    /// Number of pixels in one image.
    pub fn pixels_per_image(&self) -> usize {
        self.rows * self.cols
    }

    /// The pixels of image `index`, row-major.
    ///
    /// # Panics
    /// If `index >= self.count`, like slice indexing.
    pub fn image(&self, index: usize) -> &[u8] {
        self.iter()
            .nth(index)
            .unwrap_or_else(|| panic!("image index {index} out of range for {} images", self.count))
    }

    /// Iterates over the images in file order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        // `max(1)` keeps `chunks_exact` from panicking on a hand-built
        // zero-sized image; the parser never produces one.
        self.pixels
            .chunks_exact(self.pixels_per_image().max(1))
            .take(self.count)
    }
}

/// Why an idx file could not be read. Every variant names the file.
#[derive(Debug, Error)]
pub enum IdxError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}", path = path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },

    /// The file starts like gzip but does not decompress.
    #[error("{path}: corrupt or truncated gzip stream: {source}", path = path.display())]
    Gzip {
        /// The file.
        path: PathBuf,
        /// The decompressor's complaint.
        source: io::Error,
    },

    /// The file is not the idx kind asked for (or not idx at all).

    #[error(
        "{path}: bad magic 0x{found:08x}, expected 0x{expected:08x} ({expected_kind})",
        path = path.display()
    )]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The magic number found.
        found: u32,
        /// The magic number expected.
        expected: u32,
        /// What the expected magic stands for.
        expected_kind: &'static str,
    },

    /// The file ends before its magic, header or body does.

    #[error(
        "{path}: truncated {part}: need {expected} bytes, file has {actual}",
        path = path.display()
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Which part is cut short: `magic`, `header` or `body`.
        part: &'static str,
        /// Bytes the part needs.
        expected: usize,
        /// Bytes there are.
        actual: usize,
    },

    /// The file goes on after the body its dims declare.

    #[error(
        "{path}: {extra} unexpected bytes after the {expected}-byte body",
        path = path.display()
    )]
    TrailingBytes {
        /// The file.
        path: PathBuf,
        /// Bytes of the declared body.
        expected: usize,
        /// Bytes after it.
        extra: usize,
    },

    /// The dims are unusable.

    #[error("{path}: wrong dims {dims:?}: {reason}", path = path.display())]
    WrongDims {
        /// The file.
        path: PathBuf,
        /// The dims found.
        dims: Vec<u32>,
        /// What is wrong with them.
        reason: &'static str,
    },
}

/// Whether a file starting with `prefix` (its first four bytes suffice) is an idx file
/// holding unsigned bytes, or gzip-compressed (idx is the only compressed input flowgate
/// reads). Image formats never start like this.
pub fn looks_like_idx(prefix: &[u8]) -> bool {
    prefix.starts_with(&GZIP_MAGIC) || prefix.starts_with(&[0, 0, 0x08])
}

/// Reads an idx3-ubyte image file, gzip-compressed or plain.
pub fn read_images(path: impl AsRef<Path>) -> Result<IdxImages, IdxError> {
    let path = path.as_ref();
    parse_images(read_file(path)?, path)
}

/// Reads an idx1-ubyte label file, gzip-compressed or plain.
pub fn read_labels(path: impl AsRef<Path>) -> Result<Vec<u8>, IdxError> {
    let path = path.as_ref();
    parse_labels(read_file(path)?, path)
}

/// Parses the bytes of an idx3-ubyte file (gzip-compressed or plain).
/// `origin` only labels errors.
pub fn parse_images(raw: Vec<u8>, origin: &Path) -> Result<IdxImages, IdxError> {
    let (dims, body) = parse(raw, origin, IMAGES_MAGIC, "idx3-ubyte images")?;
    let &[count, rows, cols] = dims.as_slice() else {
        return Err(IdxError::WrongDims {
            path: origin.to_path_buf(),
            dims,
            reason: "images need three dims",
        });
    };
    let [count, rows, cols] = [count, rows, cols].map(to_usize);
    if rows == 0 || cols == 0 {
        return Err(IdxError::WrongDims {
            path: origin.to_path_buf(),
            dims,
            reason: "images need at least one row and one column",
        });
    }
    Ok(IdxImages {
        count,
        rows,
        cols,
        pixels: body,
    })
}

/// Parses the bytes of an idx1-ubyte file (gzip-compressed or plain).
/// `origin` only labels errors.
pub fn parse_labels(raw: Vec<u8>, origin: &Path) -> Result<Vec<u8>, IdxError> {
    parse(raw, origin, LABELS_MAGIC, "idx1-ubyte labels").map(|(_, body)| body)
}

fn read_file(path: &Path) -> Result<Vec<u8>, IdxError> {
    fs::read(path).map_err(|source| IdxError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn to_usize(dim: u32) -> usize {
    // Lossless on every target this crate builds for (>= 32-bit pointers).
    dim as usize
}

fn decompress_if_gzip(raw: Vec<u8>, origin: &Path) -> Result<Vec<u8>, IdxError> {
    if !raw.starts_with(&GZIP_MAGIC) {
        return Ok(raw);
    }
    let mut plain = Vec::new();
    // Multi-member aware: `gzip` concatenation and some archivers write several members.
    MultiGzDecoder::new(raw.as_slice())
        .read_to_end(&mut plain)
        .map_err(|source| IdxError::Gzip {
            path: origin.to_path_buf(),
            source,
        })?;
    Ok(plain)
}

/// Validates magic, dims and body length; returns the dims and the body.
fn parse(
    raw: Vec<u8>,
    origin: &Path,
    expected_magic: u32,
    expected_kind: &'static str,
) -> Result<(Vec<u32>, Vec<u8>), IdxError> {
    let mut bytes = decompress_if_gzip(raw, origin)?;
    let truncated = |part, expected, actual| IdxError::Truncated {
        path: origin.to_path_buf(),
        part,
        expected,
        actual,
    };

    let magic = read_be_u32(&bytes, 0).ok_or_else(|| truncated("magic", MAGIC_LEN, bytes.len()))?;
    if magic != expected_magic {
        return Err(IdxError::BadMagic {
            path: origin.to_path_buf(),
            found: magic,
            expected: expected_magic,
            expected_kind,
        });
    }

    // The low byte of a valid magic is the number of dimensions.
    let ndims = (expected_magic & 0xff) as usize;
    let header_len = MAGIC_LEN + ndims * DIM_LEN;
    let dims: Vec<u32> = (0..ndims)
        .map(|i| read_be_u32(&bytes, MAGIC_LEN + i * DIM_LEN))
        .collect::<Option<_>>()
        .ok_or_else(|| truncated("header", header_len, bytes.len()))?;

    let body_len = dims
        .iter()
        .try_fold(1usize, |acc, &dim| acc.checked_mul(to_usize(dim)))
        .ok_or_else(|| IdxError::WrongDims {
            path: origin.to_path_buf(),
            dims: dims.clone(),
            reason: "element count overflows usize",
        })?;
    let actual_body_len = bytes.len() - header_len;
    if actual_body_len < body_len {
        return Err(truncated("body", body_len, actual_body_len));
    }
    if actual_body_len > body_len {
        return Err(IdxError::TrailingBytes {
            path: origin.to_path_buf(),
            expected: body_len,
            extra: actual_body_len - body_len,
        });
    }

    // Shifting in place avoids a second allocation of a body that can be ~50 MB.
    bytes.drain(..header_len);
    Ok((dims, bytes))
}

fn read_be_u32(bytes: &[u8], offset: usize) -> Option<u32> {
    let word = bytes.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_be_bytes(word.try_into().ok()?))
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use std::format;
    use std::io::Write;
    use std::string::ToString;
    use std::vec::Vec;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    fn origin() -> &'static Path {
        Path::new("mem/test-idx")
    }

    /// An idx3-ubyte file with `count` images of `rows`x`cols`, pixel value = index mod 256.
    fn images_file(count: u32, rows: u32, cols: u32) -> Vec<u8> {
        let mut file = IMAGES_MAGIC.to_be_bytes().to_vec();
        for dim in [count, rows, cols] {
            file.extend(dim.to_be_bytes());
        }
        let body_len = (count * rows * cols) as usize;
        file.extend((0..body_len).map(|i| (i % 256) as u8));
        file
    }

    fn labels_file(labels: &[u8]) -> Vec<u8> {
        let mut file = LABELS_MAGIC.to_be_bytes().to_vec();
        file.extend((labels.len() as u32).to_be_bytes());
        file.extend(labels);
        file
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(bytes).expect("writing to a Vec");
        encoder.finish().expect("writing to a Vec")
    }

    #[test]
    fn parses_plain_images() {
        let images = parse_images(images_file(3, 2, 4), origin()).expect("valid file");
        assert_eq!((images.count, images.rows, images.cols), (3, 2, 4));
        assert_eq!(images.pixels.len(), 24);
        assert_eq!(images.image(1), &[8, 9, 10, 11, 12, 13, 14, 15]);
        assert_eq!(images.iter().len(), 3);
        assert_eq!(images.iter().last(), Some(images.image(2)));
    }

    #[test]
    fn parses_gzipped_images_and_labels() {
        let plain = parse_images(images_file(5, 3, 3), origin()).expect("valid file");
        let gz = parse_images(gzip(&images_file(5, 3, 3)), origin()).expect("valid gz file");
        assert_eq!(plain, gz);

        let labels = parse_labels(gzip(&labels_file(&[7, 0, 9])), origin()).expect("valid gz");
        assert_eq!(labels, [7, 0, 9]);
    }

    #[test]
    fn parses_plain_labels() {
        assert_eq!(
            parse_labels(labels_file(&[1, 2, 3, 4]), origin()).expect("valid file"),
            [1, 2, 3, 4]
        );
        assert_eq!(
            parse_labels(labels_file(&[]), origin()).expect("empty is valid"),
            [0u8; 0]
        );
    }

    #[test]
    fn reads_files_from_disk_regardless_of_extension() {
        let dir = std::env::temp_dir().join(format!("flowgate-idx-test-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("temp dir");
        // gzip content under a plain name and plain content under a .gz name.
        let images_path = dir.join("images-idx3-ubyte");
        let labels_path = dir.join("labels-idx1-ubyte.gz");
        fs::write(&images_path, gzip(&images_file(2, 2, 2))).expect("write");
        fs::write(&labels_path, labels_file(&[3, 4])).expect("write");

        let images = read_images(&images_path).expect("gz images");
        let labels = read_labels(&labels_path).expect("plain labels");
        fs::remove_dir_all(&dir).expect("cleanup");
        assert_eq!(images.count, 2);
        assert_eq!(labels, [3, 4]);
    }

    #[test]
    fn missing_file_names_the_path() {
        let error = read_labels("/nonexistent/flowgate/labels").expect_err("missing file");
        assert!(matches!(error, IdxError::Io { .. }));
        assert!(error.to_string().contains("/nonexistent/flowgate/labels"));
    }

    #[test]
    fn rejects_bad_magic() {
        // A label file offered as images, and garbage.
        let error = parse_images(labels_file(&[1, 2]), origin()).expect_err("labels as images");
        assert!(
            matches!(
                error,
                IdxError::BadMagic {
                    found: LABELS_MAGIC,
                    expected: IMAGES_MAGIC,
                    ..
                }
            ),
            "{error}"
        );
        assert!(error.to_string().contains("mem/test-idx"), "{error}");

        let error = parse_labels(b"GIF89a\0\0\0\0".to_vec(), origin()).expect_err("garbage");
        assert!(matches!(error, IdxError::BadMagic { .. }), "{error}");
    }

    #[test]
    fn rejects_truncated_body_and_trailing_bytes() {
        let mut file = images_file(2, 3, 3);
        file.pop();
        let error = parse_images(file, origin()).expect_err("one byte short");
        assert!(
            matches!(
                error,
                IdxError::Truncated {
                    part: "body",
                    expected: 18,
                    actual: 17,
                    ..
                }
            ),
            "{error}"
        );

        let mut file = labels_file(&[1, 2]);
        file.push(0);
        let error = parse_labels(file, origin()).expect_err("one byte long");
        assert!(
            matches!(
                error,
                IdxError::TrailingBytes {
                    expected: 2,
                    extra: 1,
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn recognises_idx_and_gzip_but_not_images() {
        assert!(looks_like_idx(&images_file(1, 1, 1)));
        assert!(looks_like_idx(&labels_file(&[1])));
        assert!(looks_like_idx(&gzip(b"anything")));
        for image in [
            &b"\x89PNG\r\n\x1a\n"[..],
            b"\xff\xd8\xff\xe0",
            b"BM",
            b"P5\n",
            b"",
        ] {
            assert!(!looks_like_idx(image), "{image:?}");
        }
    }

    #[test]
    fn rejects_empty_image_dims() {
        let error = parse_images(images_file(0, 0, 28), origin()).expect_err("zero rows");
        assert!(matches!(error, IdxError::WrongDims { .. }), "{error}");
    }

    #[test]
    fn rejects_dims_whose_product_overflows() {
        let mut file = IMAGES_MAGIC.to_be_bytes().to_vec();
        for _ in 0..3 {
            file.extend(u32::MAX.to_be_bytes());
        }
        // (2^32 - 1)^3 exceeds even a 64-bit usize.
        let error = parse_images(file, origin()).expect_err("overflowing dims");
        assert!(matches!(error, IdxError::WrongDims { .. }), "{error}");
    }

    #[test]
    fn every_proper_prefix_of_a_valid_file_is_an_error() {
        let images = images_file(2, 2, 3);
        let labels = labels_file(&[5, 6, 7]);
        for (name, file) in [
            ("plain images", images.clone()),
            ("gz images", gzip(&images)),
        ] {
            for len in 0..file.len() {
                assert!(
                    parse_images(file[..len].to_vec(), origin()).is_err(),
                    "{name}: prefix of {len} bytes parsed"
                );
            }
        }
        for (name, file) in [
            ("plain labels", labels.clone()),
            ("gz labels", gzip(&labels)),
        ] {
            for len in 0..file.len() {
                assert!(
                    parse_labels(file[..len].to_vec(), origin()).is_err(),
                    "{name}: prefix of {len} bytes parsed"
                );
            }
        }
    }
}
