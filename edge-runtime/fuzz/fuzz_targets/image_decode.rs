//! Any byte string as an image file (png, jpeg, pnm, bmp by content; the first byte picks the
//! extension for formats the content does not tell): decoded within the size limits or an
//! error, never a panic; a decoded image is a valid frame.
#![no_main]

use std::path::Path;

use flowgate_edge::io::image::{EXTENSIONS, MAX_SIDE, decode_image};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let extension = EXTENSIONS[usize::from(pick) % EXTENSIONS.len()];
    let name = format!("fuzz.{extension}");
    let channels = if pick & 0x80 == 0 { 1 } else { 3 };
    if let Ok(image) = decode_image(bytes, Path::new(&name), channels) {
        assert!(image.width <= MAX_SIDE && image.height <= MAX_SIDE);
        assert!(image.frame().is_ok());
    }
});
