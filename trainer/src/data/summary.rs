//! An inventory of the data dir, for `flowgate data summary`.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use super::dataset::{self, DatasetError, DatasetName, Split, SplitFiles};

/// Directory of the OpenCV sample files under the data dir.
pub const OPENCV_DIR: &str = "opencv";

/// What is in a data dir. `Display` prints a short report; the alternate
/// form (`{:#}`) also lists every OpenCV file instead of only the videos.
#[derive(Debug)]
pub struct DataSummary {
    pub data_dir: PathBuf,
    /// Every dataset split, loaded or with the reason it could not be.
    pub splits: Vec<SplitSummary>,
    /// Files under `opencv/`, relative to it and sorted; `None` if the directory is absent.
    pub opencv_files: Option<Vec<FileEntry>>,
}

#[derive(Debug)]
pub struct SplitSummary {
    pub dataset: DatasetName,
    pub split: Split,
    pub stats: Result<SplitStats, DatasetError>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SplitStats {
    pub files: SplitFiles,
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
    /// Size of the image and label files as stored (possibly gzipped).
    pub bytes_on_disk: u64,
    /// Images per class, indexed by label.
    pub label_histogram: Vec<usize>,
    /// Mean pixel value over the whole split, in 0..=255.
    pub mean_pixel: f64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    pub path: PathBuf,
    pub bytes: u64,
}

/// Loads every dataset split under `data_dir` and lists the OpenCV files.
///
/// A split that is missing or corrupt is reported in its [`SplitSummary`]
/// rather than failing the whole summary; only an absent or unreadable data
/// dir is an error.
pub fn summary(data_dir: &Path) -> Result<DataSummary, DatasetError> {
    if !data_dir.is_dir() {
        return Err(DatasetError::DataDirMissing {
            dir: data_dir.to_path_buf(),
        });
    }
    let splits = DatasetName::ALL
        .into_iter()
        .flat_map(|dataset| Split::ALL.map(|split| (dataset, split)))
        .map(|(dataset, split)| SplitSummary {
            dataset,
            split,
            stats: split_stats(data_dir, dataset, split),
        })
        .collect();

    let opencv_dir = data_dir.join(OPENCV_DIR);
    let opencv_files = if opencv_dir.is_dir() {
        let mut files = Vec::new();
        list_files(&opencv_dir, &opencv_dir, &mut files)?;
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Some(files)
    } else {
        None
    };

    Ok(DataSummary {
        data_dir: data_dir.to_path_buf(),
        splits,
        opencv_files,
    })
}

fn split_stats(
    data_dir: &Path,
    dataset: DatasetName,
    split: Split,
) -> Result<SplitStats, DatasetError> {
    let files = dataset::split_files(data_dir, dataset, split)?;
    let loaded = dataset::load_files(&files, dataset, split)?;
    let bytes_on_disk = file_size(&files.images)? + file_size(&files.labels)?;
    Ok(SplitStats {
        files,
        count: loaded.len(),
        rows: loaded.images.rows,
        cols: loaded.images.cols,
        bytes_on_disk,
        label_histogram: loaded.label_histogram(),
        mean_pixel: loaded.mean_pixel(),
    })
}

fn file_size(path: &Path) -> Result<u64, DatasetError> {
    fs::metadata(path)
        .map(|metadata| metadata.len())
        .map_err(|source| DatasetError::Io {
            path: path.to_path_buf(),
            source,
        })
}

fn list_files(root: &Path, dir: &Path, files: &mut Vec<FileEntry>) -> Result<(), DatasetError> {
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DatasetError::Io { path, source }
    };
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let path = entry.path();
        // Follows symlinks, so a linked-in file counts with its real size.
        let metadata = fs::metadata(&path).map_err(io_error(&path))?;
        if metadata.is_dir() {
            list_files(root, &path, files)?;
        } else {
            let relative = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            files.push(FileEntry {
                path: relative,
                bytes: metadata.len(),
            });
        }
    }
    Ok(())
}

/// Formats a byte count with a binary unit, e.g. `26.4 MiB`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn is_video(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("avi"))
}

impl fmt::Display for DataSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "data dir: {}", self.data_dir.display())?;
        for entry in &self.splits {
            let name = format!("{} {}", entry.dataset, entry.split);
            match &entry.stats {
                Ok(stats) => {
                    writeln!(
                        f,
                        "{name:<20} {:>6} images {}x{}, {:>9} on disk, mean pixel {:.2}",
                        stats.count,
                        stats.rows,
                        stats.cols,
                        format_bytes(stats.bytes_on_disk),
                        stats.mean_pixel
                    )?;
                    let histogram: Vec<String> = stats
                        .label_histogram
                        .iter()
                        .enumerate()
                        .map(|(label, count)| format!("{label}:{count}"))
                        .collect();
                    writeln!(f, "{:<20} labels {}", "", histogram.join(" "))?;
                }
                Err(error) => writeln!(f, "{name:<20} unavailable: {error}")?,
            }
        }

        let Some(files) = &self.opencv_files else {
            return writeln!(f, "{OPENCV_DIR:<20} missing; run scripts/fetch-data.sh");
        };
        let total: u64 = files.iter().map(|file| file.bytes).sum();
        writeln!(
            f,
            "{OPENCV_DIR:<20} {:>6} files, {:>9}",
            files.len(),
            format_bytes(total)
        )?;
        let list_every_file = f.alternate();
        let listed = files
            .iter()
            .filter(|file| list_every_file || is_video(&file.path));
        let mut listed_count = 0;
        for file in listed {
            listed_count += 1;
            writeln!(
                f,
                "{:<20} {:<32} {:>9}",
                "",
                file.path.display(),
                format_bytes(file.bytes)
            )?;
        }
        let unlisted = files.len() - listed_count;
        if unlisted > 0 {
            writeln!(f, "{:<20} ... and {unlisted} other files", "")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_byte_counts() {
        assert_eq!(format_bytes(0), "0 B");
        assert_eq!(format_bytes(1023), "1023 B");
        assert_eq!(format_bytes(1024), "1.0 KiB");
        assert_eq!(format_bytes(8_131_690), "7.8 MiB");
    }

    #[test]
    fn summary_of_a_missing_dir_is_an_error_with_the_fetch_hint() {
        let error = summary(Path::new("/nonexistent/flowgate-data")).unwrap_err();
        assert!(
            error.to_string().contains("scripts/fetch-data.sh"),
            "{error}"
        );
    }

    #[test]
    fn summary_of_an_empty_dir_reports_every_part_missing() {
        let dir = std::env::temp_dir().join(format!("flowgate-summary-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("create temp dir");
        let report = summary(&dir).map(|summary| summary.to_string());
        fs::remove_dir_all(&dir).expect("cleanup");
        let report = report.expect("an empty dir still summarises");
        assert_eq!(report.matches("unavailable").count(), 4, "{report}");
        assert!(
            report.contains("opencv") && report.contains("missing"),
            "{report}"
        );
    }
}
