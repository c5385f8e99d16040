//! Datasets: idx files (MNIST, Fashion-MNIST), image folders, and the images in memory.
//!
//! `scripts/fetch-data.sh` fills the data dir; [`load`] reads a named split
//! from it and [`summary`] describes everything in it.

pub mod augment;
mod dataset;
mod held_out;
mod image_set;
pub mod inputs;
mod summary;
mod training_split;

// The idx reader lives in the runtime (`flowgate_edge::io::idx`), so the trainer and the
// edge command line share one definition; `data::idx` stays a path within this module.
use flowgate_edge::io::idx;

pub use dataset::{
    DATA_DIR_ENV, DatasetError, DatasetName, LabelledImages, Split, SplitFiles, default_data_dir,
    load, load_files, split_files,
};
pub use flowgate_edge::io::idx::{
    IMAGES_MAGIC, IdxError, IdxImages, LABELS_MAGIC, parse_images, parse_labels, read_images,
    read_labels,
};
pub use held_out::HeldOutLayout;
pub use image_set::ImageSet;
pub use summary::{
    DataSummary, FileEntry, OPENCV_DIR, SplitStats, SplitSummary, format_bytes, summary,
};
pub use training_split::{layout_of, load_idx_split, training_data};
