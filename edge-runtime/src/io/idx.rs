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

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
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
        "{path}: {extra} unexpected bytes after the {expected}-byte body (counted up to {MAX_TRAILING_COUNT})",
        path = path.display()
    )]
    TrailingBytes {
        /// The file.
        path: PathBuf,
        /// Bytes of the declared body.
        expected: usize,
        /// Bytes after it, counted up to [`MAX_TRAILING_COUNT`].
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

/// Most bytes one image of an idx file may have (64 Mi pixels, e.g. 8192x8192): the reader
/// allocates an image at a time, so a header declaring gigapixel images is refused before
/// anything is allocated.
pub const MAX_IMAGE_BYTES: usize = 1 << 26;

/// Most trailing bytes counted for [`IdxError::TrailingBytes`]: past the declared body the
/// reader stops reading (a gzip bomb is not decompressed to learn its size).
pub const MAX_TRAILING_COUNT: usize = 1 << 20;

/// Reads an idx3-ubyte image file, gzip-compressed or plain.
pub fn read_images(path: impl AsRef<Path>) -> Result<IdxImages, IdxError> {
    let path = path.as_ref();
    collect_images(ImageStream::new(open_file(path)?, path)?)
}

/// Reads an idx1-ubyte label file, gzip-compressed or plain.
pub fn read_labels(path: impl AsRef<Path>) -> Result<Vec<u8>, IdxError> {
    let path = path.as_ref();
    collect_labels(open_file(path)?, path)
}

/// Parses the bytes of an idx3-ubyte file (gzip-compressed or plain).
/// `origin` only labels errors.
pub fn parse_images(raw: Vec<u8>, origin: &Path) -> Result<IdxImages, IdxError> {
    collect_images(ImageStream::new(io::Cursor::new(raw), origin)?)
}

/// Parses the bytes of an idx1-ubyte file (gzip-compressed or plain).
/// `origin` only labels errors.
pub fn parse_labels(raw: Vec<u8>, origin: &Path) -> Result<Vec<u8>, IdxError> {
    collect_labels(io::Cursor::new(raw), origin)
}

fn open_file(path: &Path) -> Result<BufReader<File>, IdxError> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|source| IdxError::Io {
            path: path.to_path_buf(),
            source,
        })
}

fn collect_images<R: Read>(mut stream: ImageStream<R>) -> Result<IdxImages, IdxError> {
    let (count, rows, cols) = (stream.count(), stream.rows(), stream.cols());
    // Grown as images arrive, not sized from the header: a header may promise more than the
    // file holds.
    let mut pixels = Vec::new();
    let mut image = Vec::new();
    while let Some(next) = stream.next_image(&mut image)? {
        pixels.extend_from_slice(next);
    }
    Ok(IdxImages {
        count,
        rows,
        cols,
        pixels,
    })
}

fn collect_labels<R: Read>(reader: R, origin: &Path) -> Result<Vec<u8>, IdxError> {
    let (dims, mut body) = Body::open(reader, origin, LABELS_MAGIC, "idx1-ubyte labels")?;
    let count = dims.first().copied().map_or(0, to_usize);
    let mut labels = Vec::new();
    let mut chunk = [0u8; 8192];
    let mut left = count;
    while left > 0 {
        let take = left.min(chunk.len());
        let part = chunk.get_mut(..take).unwrap_or_default();
        body.read_exact(part)?;
        labels.extend_from_slice(part);
        left -= take;
    }
    body.finish()?;
    Ok(labels)
}

/// The images of an idx3-ubyte file (gzip-compressed or plain), read one at a time: memory
/// stays at one image whatever the file's size, and nothing past the body the header
/// declares is decompressed, except a few bytes to tell that the file goes on.
#[derive(Debug)]
pub struct ImageStream<R> {
    body: Body<R>,
    count: usize,
    rows: usize,
    cols: usize,
    next: usize,
}

impl<R: Read> ImageStream<R> {
    /// Reads the header from `reader`; `origin` labels errors.
    pub fn new(reader: R, origin: &Path) -> Result<Self, IdxError> {
        let (dims, body) = Body::open(reader, origin, IMAGES_MAGIC, "idx3-ubyte images")?;
        let wrong = |reason| IdxError::WrongDims {
            path: origin.to_path_buf(),
            dims: dims.clone(),
            reason,
        };
        let &[count, rows, cols] = dims.as_slice() else {
            return Err(wrong("images need three dims"));
        };
        let [count, rows, cols] = [count, rows, cols].map(to_usize);
        if rows == 0 || cols == 0 {
            return Err(wrong("images need at least one row and one column"));
        }
        if rows.saturating_mul(cols) > MAX_IMAGE_BYTES {
            return Err(wrong("images larger than 64 Mi pixels"));
        }
        Ok(ImageStream {
            body,
            count,
            rows,
            cols,
            next: 0,
        })
    }

    /// Images the header declares.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Rows (height) of every image.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns (width) of every image.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Reads the next image into `buffer` and returns its pixels (row-major), or `None`
    /// after the last, once the file is known to end there. A file shorter than its header
    /// says is [`IdxError::Truncated`]; one that goes on is [`IdxError::TrailingBytes`].
    pub fn next_image<'b>(
        &mut self,
        buffer: &'b mut Vec<u8>,
    ) -> Result<Option<&'b [u8]>, IdxError> {
        if self.next == self.count {
            if !self.body.finished {
                self.body.finish()?;
            }
            return Ok(None);
        }
        buffer.resize(self.rows * self.cols, 0);
        self.body.read_exact(buffer)?;
        self.next += 1;
        Ok(Some(buffer.as_slice()))
    }
}

/// The body of an idx file after its header: reads no further than the declared length.
#[derive(Debug)]
struct Body<R> {
    reader: Decoded<R>,
    origin: PathBuf,
    /// Declared body bytes.
    len: usize,
    /// Body bytes read so far.
    read: usize,
    finished: bool,
}

/// An idx file's bytes: as stored, or decompressed.
#[derive(Debug)]
enum Decoded<R> {
    Plain(BufReader<R>),
    Gzip(MultiGzDecoder<BufReader<R>>),
}

impl<R: Read> Read for Decoded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoded::Plain(reader) => reader.read(buf),
            Decoded::Gzip(reader) => reader.read(buf),
        }
    }
}

impl<R: Read> Body<R> {
    /// Reads and checks the magic and dims; returns the dims and the body to read.
    fn open(
        reader: R,
        origin: &Path,
        expected_magic: u32,
        expected_kind: &'static str,
    ) -> Result<(Vec<u32>, Self), IdxError> {
        let mut buffered = BufReader::new(reader);
        let starts_gzip = buffered
            .fill_buf()
            .map_err(|source| IdxError::Io {
                path: origin.to_path_buf(),
                source,
            })?
            .starts_with(&GZIP_MAGIC);
        // Multi-member aware: `gzip` concatenation and some archivers write several members.
        let mut reader = if starts_gzip {
            Decoded::Gzip(MultiGzDecoder::new(buffered))
        } else {
            Decoded::Plain(buffered)
        };

        let mut magic = [0u8; MAGIC_LEN];
        let got = read_up_to(&mut reader, &mut magic, origin)?;
        if got < MAGIC_LEN {
            return Err(truncated(origin, "magic", MAGIC_LEN, got));
        }
        let magic = u32::from_be_bytes(magic);
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
        let mut dims = Vec::with_capacity(ndims);
        for index in 0..ndims {
            let mut dim = [0u8; DIM_LEN];
            let got = read_up_to(&mut reader, &mut dim, origin)?;
            if got < DIM_LEN {
                let have = MAGIC_LEN + index * DIM_LEN + got;
                return Err(truncated(origin, "header", header_len, have));
            }
            dims.push(u32::from_be_bytes(dim));
        }
        let len = dims
            .iter()
            .try_fold(1usize, |acc, &dim| acc.checked_mul(to_usize(dim)))
            .ok_or_else(|| IdxError::WrongDims {
                path: origin.to_path_buf(),
                dims: dims.clone(),
                reason: "element count overflows usize",
            })?;
        let body = Body {
            reader,
            origin: origin.to_path_buf(),
            len,
            read: 0,
            finished: false,
        };
        Ok((dims, body))
    }

    /// Fills `buf` from the body; the caller never asks past the declared length.
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), IdxError> {
        let got = read_up_to(&mut self.reader, buf, &self.origin)?;
        self.read += got;
        if got < buf.len() {
            return Err(truncated(&self.origin, "body", self.len, self.read));
        }
        Ok(())
    }

    /// Checks that the file ends with the body, counting at most [`MAX_TRAILING_COUNT`]
    /// bytes beyond it.
    fn finish(&mut self) -> Result<(), IdxError> {
        self.finished = true;
        let mut extra = 0usize;
        let mut chunk = [0u8; 8192];
        while extra < MAX_TRAILING_COUNT {
            let got = read_up_to(&mut self.reader, &mut chunk, &self.origin)?;
            if got == 0 {
                break;
            }
            extra += got;
        }
        if extra > 0 {
            return Err(IdxError::TrailingBytes {
                path: self.origin.clone(),
                expected: self.len,
                extra,
            });
        }
        Ok(())
    }
}

/// Reads until `buf` is full or the stream ends; returns the bytes read. Retries
/// interrupted reads; a corrupt gzip stream is [`IdxError::Gzip`].
fn read_up_to(reader: &mut impl Read, buf: &mut [u8], origin: &Path) -> Result<usize, IdxError> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..).filter(|rest| !rest.is_empty()) {
        match reader.read(rest) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => {
                let path = origin.to_path_buf();
                // flate2 reports a damaged stream as InvalidInput / InvalidData / an
                // unexpected end; a failing disk is anything else.
                return Err(match source.kind() {
                    io::ErrorKind::InvalidInput
                    | io::ErrorKind::InvalidData
                    | io::ErrorKind::UnexpectedEof => IdxError::Gzip { path, source },
                    _ => IdxError::Io { path, source },
                });
            }
        }
    }
    Ok(filled)
}

fn truncated(origin: &Path, part: &'static str, expected: usize, actual: usize) -> IdxError {
    IdxError::Truncated {
        path: origin.to_path_buf(),
        part,
        expected,
        actual,
    }
}

fn to_usize(dim: u32) -> usize {
    // Lossless on every target this crate builds for (>= 32-bit pointers).
    dim as usize
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use std::format;
    use std::fs;
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

    /// A gzip bomb: a valid header and body, then `extra` zero bytes that compress to
    /// almost nothing.
    fn bomb(count: u32, rows: u32, cols: u32, extra: usize) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(&images_file(count, rows, cols)).unwrap();
        let zeros = std::vec![0u8; 1 << 20];
        for _ in 0..extra / zeros.len() {
            encoder.write_all(&zeros).unwrap();
        }
        encoder.finish().unwrap()
    }

    #[test]
    fn a_gzip_bomb_is_not_decompressed_past_its_body() {
        // 256 MiB of zeros after the body, in about 250 KB of gzip.
        let file = bomb(10, 28, 28, 256 << 20);
        assert!(file.len() < 1 << 20, "{}", file.len());
        let started = std::time::Instant::now();
        let error = parse_images(file.clone(), origin()).expect_err("trailing bytes");
        assert!(
            matches!(error, IdxError::TrailingBytes { expected: 7840, extra, .. } if extra == MAX_TRAILING_COUNT),
            "{error}"
        );
        // Streaming, every image is read before the end is checked.
        let mut stream = ImageStream::new(io::Cursor::new(file), origin()).unwrap();
        let mut buffer = Vec::new();
        for _ in 0..10 {
            assert_eq!(
                stream.next_image(&mut buffer).unwrap().map(<[u8]>::len),
                Some(784)
            );
        }
        assert!(matches!(
            stream.next_image(&mut buffer),
            Err(IdxError::TrailingBytes { .. })
        ));
        assert_eq!(buffer.capacity(), 784, "one image of memory");
        // Decompressing 256 MiB takes about a second; stopping at the body, milliseconds.
        assert!(started.elapsed() < std::time::Duration::from_millis(500));
    }

    #[test]
    fn a_header_promising_more_than_the_file_holds_allocates_nothing_for_it() {
        // 2^31 images of 1x1: the header promises 2 GiB, the file holds 3 bytes.
        let mut file = IMAGES_MAGIC.to_be_bytes().to_vec();
        for dim in [1u32 << 31, 1, 1] {
            file.extend(dim.to_be_bytes());
        }
        file.extend([1, 2, 3]);
        let error = parse_images(file, origin()).expect_err("truncated");
        assert!(
            matches!(
                error,
                IdxError::Truncated {
                    part: "body",
                    actual: 3,
                    ..
                }
            ),
            "{error}"
        );
        // One image of 65536 x 65536 pixels is refused before any allocation.
        let mut file = IMAGES_MAGIC.to_be_bytes().to_vec();
        for dim in [1u32, 1 << 16, 1 << 16] {
            file.extend(dim.to_be_bytes());
        }
        let error = parse_images(file, origin()).expect_err("too large");
        assert!(matches!(error, IdxError::WrongDims { .. }), "{error}");
    }
}
