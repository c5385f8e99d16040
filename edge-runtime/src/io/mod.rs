//! Readers of what the gate scores off the board: idx files, image files and raw frame
//! streams (`std` only).

pub mod idx;
pub mod image;
pub mod raw;
