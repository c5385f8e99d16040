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
        assert!(buffer.capacity() <= per_image.max(1) * 2);
    }
    let _ = parse_labels(data.to_vec(), origin);
});
