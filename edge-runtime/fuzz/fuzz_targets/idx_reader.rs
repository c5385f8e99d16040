//! Any byte string as an idx file (plain or gzip): the reader returns images or an error,
//! never panics, never reads past the declared body, and holds one image at a time.
#![no_main]

use std::path::Path;

use flowgate_edge::io::idx::{ImageStream, MAX_IMAGE_BYTES, parse_labels};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let origin = Path::new("fuzz-idx");
    if let Ok(mut images) = ImageStream::new(data, origin) {
        let per_image = images.rows() * images.cols();
        assert!(per_image <= MAX_IMAGE_BYTES);
        let mut buffer = Vec::new();
        while let Ok(Some(image)) = images.next_image(&mut buffer) {
            assert_eq!(image.len(), per_image);
        }
        // One image's worth, give or take Vec's growth; Vec never allocates fewer than 8
        // bytes, which a 1x1 image's buffer otherwise "exceeds".
        assert!(buffer.capacity() <= (per_image * 2).max(8));
    }
    let _ = parse_labels(data.to_vec(), origin);
});
