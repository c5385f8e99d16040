//! Helpers the end-to-end tests share (each test file that needs them says `mod common;`).

#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};

use flowgate_edge::io::idx::{IdxImages, read_images};

/// The workspace root.
pub fn workspace() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The test images of `data/<folder>`, from the file the documented `flowgate eval` reads
/// (plain or gzipped).
pub fn test_images(folder: &str) -> IdxImages {
    let dir = flowgate_trainer::data::default_data_dir().join(folder);
    let plain = dir.join("t10k-images-idx3-ubyte");
    let path = if plain.exists() {
        plain
    } else {
        dir.join("t10k-images-idx3-ubyte.gz")
    };
    read_images(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/fetch-data.sh first)", path.display()))
}
