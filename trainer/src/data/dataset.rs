//! Named datasets and splits laid out by `scripts/fetch-data.sh` under the data dir:
//! `<data dir>/<dataset>/<split prefix>-{images-idx3,labels-idx1}-ubyte[.gz]`.

use std::env;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::idx::{self, IdxError, IdxImages};

/// Environment variable that overrides [`default_data_dir`].
pub const DATA_DIR_ENV: &str = "FLOWGATE_DATA_DIR";

const FETCH_HINT: &str =
    "run scripts/fetch-data.sh (or set FLOWGATE_DATA_DIR to a filled data dir)";

/// The idx datasets (the type lives in `flowgate-config`, which configs name them in).
pub use flowgate_config::DatasetName;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Split {
    Train,
    Test,
}

impl Split {
    pub const ALL: [Self; 2] = [Self::Train, Self::Test];

    /// Prefix of the split's file names (upstream calls the test split `t10k`).
    pub const fn file_prefix(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Test => "t10k",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Train => "train",
            Self::Test => "test",
        })
    }
}

/// The image and label files of one split, as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitFiles {
    pub images: PathBuf,
    pub labels: PathBuf,
}

/// One split of a dataset: `labels[i]` is the class of `images.image(i)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledImages {
    pub dataset: DatasetName,
    pub split: Split,
    pub images: IdxImages,
    pub labels: Vec<u8>,
}

impl LabelledImages {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of images per class, indexed by label.
    pub fn label_histogram(&self) -> Vec<usize> {
        let mut histogram = vec![0; self.dataset.class_count()];
        for &label in &self.labels {
            // `load` has checked the range; a hand-built value may not have been.
            if let Some(bin) = histogram.get_mut(usize::from(label)) {
                *bin += 1;
            }
        }
        histogram
    }

    /// Mean pixel value over all images, in 0..=255.
    pub fn mean_pixel(&self) -> f64 {
        let pixels = &self.images.pixels;
        if pixels.is_empty() {
            return 0.0;
        }
        let sum: u64 = pixels.iter().map(|&p| u64::from(p)).sum();
        sum as f64 / pixels.len() as f64
    }
}

/// Why a dataset split could not be found or loaded.
#[derive(Debug, Error)]
pub enum DatasetError {
    #[error("data directory {dir} does not exist; {FETCH_HINT}", dir = dir.display())]
    DataDirMissing { dir: PathBuf },

    #[error(
        "{dataset} {split}: no {kind} file, looked for {candidates}; {FETCH_HINT}",
        candidates = display_paths(candidates)
    )]
    MissingFile {
        dataset: DatasetName,
        split: Split,
        kind: &'static str,
        candidates: Vec<PathBuf>,
    },

    #[error(transparent)]
    Idx(#[from] IdxError),

    #[error(
        "{dataset} {split}: {images} images in {images_path} but {labels} labels in {labels_path}",
        images_path = images_path.display(),
        labels_path = labels_path.display()
    )]
    CountMismatch {
        dataset: DatasetName,
        split: Split,
        images_path: PathBuf,
        images: usize,
        labels_path: PathBuf,
        labels: usize,
    },

    #[error(
        "{path}: images are {rows}x{cols}, but {dataset} images are {expected_rows}x{expected_cols}",
        path = path.display()
    )]
    UnexpectedShape {
        dataset: DatasetName,
        path: PathBuf,
        rows: usize,
        cols: usize,
        expected_rows: usize,
        expected_cols: usize,
    },

    #[error(
        "{path}: label {label} at index {index} is not one of the {class_count} {dataset} classes",
        path = path.display()
    )]
    LabelOutOfRange {
        dataset: DatasetName,
        path: PathBuf,
        index: usize,
        label: u8,
        class_count: usize,
    },

    #[error("{path}: {source}", path = path.display())]
    Io { path: PathBuf, source: io::Error },
}

fn display_paths(paths: &[PathBuf]) -> String {
    let names: Vec<_> = paths.iter().map(|p| p.display().to_string()).collect();
    names.join(" or ")
}

/// The data dir: `$FLOWGATE_DATA_DIR` if set and non-empty, else `data/` in
/// the workspace this crate was built from (where `scripts/fetch-data.sh`
/// puts it by default).
pub fn default_data_dir() -> PathBuf {
    match env::var_os(DATA_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
            manifest_dir.parent().unwrap_or(manifest_dir).join("data")
        }
    }
}

/// Finds the image and label files of a split, accepting both the gzipped
/// upstream names and decompressed ones (a plain file wins when both exist,
/// as it loads faster).
pub fn split_files(
    data_dir: &Path,
    dataset: DatasetName,
    split: Split,
) -> Result<SplitFiles, DatasetError> {
    if !data_dir.is_dir() {
        return Err(DatasetError::DataDirMissing {
            dir: data_dir.to_path_buf(),
        });
    }
    let dataset_dir = data_dir.join(dataset.dir_name());
    let find = |kind: &'static str, stem: &str| {
        let plain = dataset_dir.join(format!("{}-{stem}", split.file_prefix()));
        let gzipped = dataset_dir.join(format!("{}-{stem}.gz", split.file_prefix()));
        let candidates = vec![plain, gzipped];
        match candidates.iter().find(|path| path.is_file()) {
            Some(found) => Ok(found.clone()),
            None => Err(DatasetError::MissingFile {
                dataset,
                split,
                kind,
                candidates,
            }),
        }
    };
    Ok(SplitFiles {
        images: find("images", "images-idx3-ubyte")?,
        labels: find("labels", "labels-idx1-ubyte")?,
    })
}

/// Loads one split, checking that images and labels agree in count, that the
/// images have the dataset's shape and that every label is a valid class.
pub fn load(
    data_dir: &Path,
    dataset: DatasetName,
    split: Split,
) -> Result<LabelledImages, DatasetError> {
    let files = split_files(data_dir, dataset, split)?;
    load_files(&files, dataset, split)
}

/// [`load`] for files already located with [`split_files`].
pub fn load_files(
    files: &SplitFiles,
    dataset: DatasetName,
    split: Split,
) -> Result<LabelledImages, DatasetError> {
    let images = idx::read_images(&files.images)?;
    let labels = idx::read_labels(&files.labels)?;

    if images.count != labels.len() {
        return Err(DatasetError::CountMismatch {
            dataset,
            split,
            images_path: files.images.clone(),
            images: images.count,
            labels_path: files.labels.clone(),
            labels: labels.len(),
        });
    }
    let (expected_rows, expected_cols) = dataset.image_shape();
    if (images.rows, images.cols) != (expected_rows, expected_cols) {
        return Err(DatasetError::UnexpectedShape {
            dataset,
            path: files.images.clone(),
            rows: images.rows,
            cols: images.cols,
            expected_rows,
            expected_cols,
        });
    }
    let class_count = dataset.class_count();
    if let Some((index, &label)) = labels
        .iter()
        .enumerate()
        .find(|&(_, &label)| usize::from(label) >= class_count)
    {
        return Err(DatasetError::LabelOutOfRange {
            dataset,
            path: files.labels.clone(),
            index,
            label,
            class_count,
        });
    }

    Ok(LabelledImages {
        dataset,
        split,
        images,
        labels,
    })
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::data::idx::{IMAGES_MAGIC, LABELS_MAGIC};

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let dir = env::temp_dir().join(format!("flowgate-{name}-{}", std::process::id()));
            // A leftover from an aborted run would make the test see stale files.
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).expect("create temp dir");
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn write_split(dir: &Path, count: u32, rows: u32, labels: &[u8]) {
        let mnist = dir.join("mnist");
        fs::create_dir_all(&mnist).expect("create dataset dir");
        let mut images = IMAGES_MAGIC.to_be_bytes().to_vec();
        for dim in [count, rows, 28] {
            images.extend(dim.to_be_bytes());
        }
        images.resize(16 + (count * rows * 28) as usize, 100);
        fs::write(mnist.join("t10k-images-idx3-ubyte"), images).expect("write images");

        let mut label_file = LABELS_MAGIC.to_be_bytes().to_vec();
        label_file.extend((labels.len() as u32).to_be_bytes());
        label_file.extend(labels);
        fs::write(mnist.join("t10k-labels-idx1-ubyte"), label_file).expect("write labels");
    }

    #[test]
    fn loads_a_split_and_computes_statistics() {
        let dir = TempDir::new("dataset-ok");
        write_split(&dir.0, 3, 28, &[1, 1, 9]);
        let split = load(&dir.0, DatasetName::Mnist, Split::Test).expect("valid split");
        assert_eq!(split.len(), 3);
        assert_eq!(split.label_histogram(), [0, 2, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(split.mean_pixel(), 100.0);
    }

    #[test]
    fn reports_missing_data_dir_and_files_with_the_fetch_hint() {
        let dir = TempDir::new("dataset-missing");
        let error = load(&dir.0.join("absent"), DatasetName::Mnist, Split::Test).unwrap_err();
        assert!(
            matches!(error, DatasetError::DataDirMissing { .. }),
            "{error}"
        );
        assert!(
            error.to_string().contains("scripts/fetch-data.sh"),
            "{error}"
        );

        let error = load(&dir.0, DatasetName::FashionMnist, Split::Train).unwrap_err();
        assert!(matches!(error, DatasetError::MissingFile { .. }), "{error}");
        let message = error.to_string();
        assert!(message.contains("train-images-idx3-ubyte.gz"), "{message}");
        assert!(message.contains("scripts/fetch-data.sh"), "{message}");
    }

    #[test]
    fn rejects_inconsistent_splits() {
        let dir = TempDir::new("dataset-bad");
        write_split(&dir.0, 2, 28, &[1]);
        let error = load(&dir.0, DatasetName::Mnist, Split::Test).unwrap_err();
        assert!(
            matches!(error, DatasetError::CountMismatch { .. }),
            "{error}"
        );

        write_split(&dir.0, 1, 27, &[1]);
        let error = load(&dir.0, DatasetName::Mnist, Split::Test).unwrap_err();
        assert!(
            matches!(error, DatasetError::UnexpectedShape { .. }),
            "{error}"
        );

        write_split(&dir.0, 2, 28, &[1, 10]);
        let error = load(&dir.0, DatasetName::Mnist, Split::Test).unwrap_err();
        assert!(
            matches!(
                error,
                DatasetError::LabelOutOfRange {
                    index: 1,
                    label: 10,
                    ..
                }
            ),
            "{error}"
        );
    }
}
