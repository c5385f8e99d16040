//! Checks the real datasets fetched by `scripts/fetch-data.sh` against their
//! published sizes and label counts. Missing data fails the test on purpose:
//! a silently skipped test would let CI pass without ever reading the data.

use std::path::PathBuf;

use flowgate_trainer::data::{self, DatasetName, LabelledImages, Split};

const FASHION_TRAIN_HISTOGRAM: [usize; 10] = [6_000; 10];
const FASHION_TEST_HISTOGRAM: [usize; 10] = [1_000; 10];
const MNIST_TRAIN_HISTOGRAM: [usize; 10] =
    [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949];
const MNIST_TEST_HISTOGRAM: [usize; 10] = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009];

fn data_dir() -> PathBuf {
    let dir = data::default_data_dir();
    assert!(
        dir.is_dir(),
        "data dir {} is missing: run scripts/fetch-data.sh (or set {} to a filled data dir)",
        dir.display(),
        data::DATA_DIR_ENV
    );
    dir
}

fn load(dataset: DatasetName, split: Split) -> LabelledImages {
    data::load(&data_dir(), dataset, split)
        .unwrap_or_else(|error| panic!("loading {dataset} {split}: {error}"))
}

fn check(dataset: DatasetName, split: Split, count: usize, histogram: [usize; 10]) {
    let loaded = load(dataset, split);
    assert_eq!(loaded.len(), count, "{dataset} {split} label count");
    assert_eq!(loaded.images.count, count, "{dataset} {split} image count");
    assert_eq!(
        (loaded.images.rows, loaded.images.cols),
        (28, 28),
        "{dataset} {split} image shape"
    );
    assert_eq!(loaded.images.pixels.len(), count * 28 * 28);
    assert_eq!(
        loaded.label_histogram(),
        histogram,
        "{dataset} {split} label histogram"
    );
}

#[test]
fn fashion_mnist_train() {
    check(
        DatasetName::FashionMnist,
        Split::Train,
        60_000,
        FASHION_TRAIN_HISTOGRAM,
    );
}

#[test]
fn fashion_mnist_test() {
    check(
        DatasetName::FashionMnist,
        Split::Test,
        10_000,
        FASHION_TEST_HISTOGRAM,
    );
}

#[test]
fn mnist_train() {
    check(
        DatasetName::Mnist,
        Split::Train,
        60_000,
        MNIST_TRAIN_HISTOGRAM,
    );
}

#[test]
fn mnist_test() {
    check(
        DatasetName::Mnist,
        Split::Test,
        10_000,
        MNIST_TEST_HISTOGRAM,
    );
}

#[test]
fn opencv_test_video_is_present() {
    let video = data_dir().join(data::OPENCV_DIR).join("vtest.avi");
    let metadata = std::fs::metadata(&video)
        .unwrap_or_else(|error| panic!("{}: {error}; run scripts/fetch-data.sh", video.display()));
    // The real file is ~8 MB; anything under 1 MB is a stub or a failed extract.
    assert!(
        metadata.len() > 1_000_000,
        "{} is only {} bytes",
        video.display(),
        metadata.len()
    );
    let mut header = [0u8; 12];
    let mut file = std::fs::File::open(&video).expect("opened for metadata above");
    std::io::Read::read_exact(&mut file, &mut header).expect("file is larger than 12 bytes");
    assert_eq!(
        &header[..4],
        b"RIFF",
        "{} is not a RIFF file",
        video.display()
    );
    assert_eq!(
        &header[8..],
        b"AVI ",
        "{} is not an AVI file",
        video.display()
    );
}

#[test]
fn summary_covers_every_split_and_the_videos() {
    let summary = data::summary(&data_dir()).expect("data dir is readable");
    for split in &summary.splits {
        if let Err(error) = &split.stats {
            panic!("{} {}: {error}", split.dataset, split.split);
        }
    }
    let report = summary.to_string();
    // Visible with --nocapture, as a preview of `flowgate data summary`.
    println!("{report}");
    assert!(report.contains("vtest.avi"), "{report}");
    assert!(report.contains("fashion-mnist train"), "{report}");
}
