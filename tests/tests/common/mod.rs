//! Helpers the end-to-end tests share (each test file that needs them says `mod common;`).

#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};

use flowgate_edge::io::idx::{IdxImages, read_images};
use flowgate_edge::{Frame, Gate, PixelFormat, Verdict};

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

/// The first `n` test images of `data/<folder>`.
pub fn first_test_images(folder: &str, n: usize) -> IdxImages {
    let mut images = test_images(folder);
    assert!(images.count >= n, "{folder} holds {} images", images.count);
    images.count = n;
    images.pixels.truncate(n * images.pixels_per_image());
    images
}

/// The gate's verdict on every image, in order.
pub fn verdicts(gate: &Gate<'_>, images: &IdxImages) -> Vec<Verdict> {
    let mut scratch = vec![0f32; gate.scratch_len()];
    images
        .pixels
        .chunks_exact(images.pixels_per_image())
        .take(images.count)
        .map(|pixels| {
            let frame = Frame::packed(
                pixels,
                images.cols as u32,
                images.rows as u32,
                PixelFormat::Gray8,
            )
            .expect("a valid frame");
            gate.score(&frame, &mut scratch)
                .expect("the runtime scores")
        })
        .collect()
}
