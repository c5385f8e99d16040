//! The fixed header that frames a model's payload.
//!
//! ```text
//! offset  size  field
//!      0     8  magic "FLOWGATE"
//!      8     2  format version, little-endian
//!     10     2  reserved, zero
//!     12     4  payload length in bytes, little-endian
//!     16     4  CRC32 (IEEE) of the payload, little-endian
//!     20     n  payload: the postcard encoding of a `Model`
//! ```

use crate::error::{Error, Result};

/// First bytes of every model file.
pub const MAGIC: [u8; 8] = *b"FLOWGATE";
/// The format version this build writes. Bump on any change to the payload types other than
/// appending enum variants. Version 2 appended the model's detail branch; version 1 files
/// are still read ([`OLDEST_READABLE_VERSION`]).
pub const FORMAT_VERSION: u16 = 2;
/// The oldest format version this build reads.
pub const OLDEST_READABLE_VERSION: u16 = 1;
/// Bytes before the payload.
pub const HEADER_LEN: usize = 20;

/// Checks the header and checksum and returns the payload (of format version
/// [`FORMAT_VERSION`] or older: see [`unframe_versioned`]).
pub fn unframe(file: &[u8]) -> Result<&[u8]> {
    unframe_versioned(file).map(|(_, payload)| payload)
}

/// Checks the header and checksum and returns the format version and the payload.
pub fn unframe_versioned(file: &[u8]) -> Result<(u16, &[u8])> {
    let (header, payload) = file
        .split_first_chunk::<HEADER_LEN>()
        .ok_or(Error::TooShort { len: file.len() })?;
    if header[0..8] != MAGIC {
        return Err(Error::BadMagic);
    }
    let version = u16::from_le_bytes([header[8], header[9]]);
    if !(OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(Error::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    if header[10] != 0 || header[11] != 0 {
        return Err(Error::ReservedBits);
    }
    let declared = u32::from_le_bytes([header[12], header[13], header[14], header[15]]);
    if usize::try_from(declared).ok() != Some(payload.len()) {
        return Err(Error::LengthMismatch {
            declared,
            actual: payload.len(),
        });
    }
    let stored = u32::from_le_bytes([header[16], header[17], header[18], header[19]]);
    let computed = crc32fast::hash(payload);
    if stored != computed {
        return Err(Error::ChecksumMismatch { stored, computed });
    }
    Ok((version, payload))
}

/// The header for `payload`.
pub fn header_for(payload: &[u8]) -> Result<[u8; HEADER_LEN]> {
    let length = u32::try_from(payload.len())
        .map_err(|_| Error::Encode(postcard::Error::SerializeBufferFull))?;
    let mut header = [0u8; HEADER_LEN];
    header[0..8].copy_from_slice(&MAGIC);
    header[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header[12..16].copy_from_slice(&length.to_le_bytes());
    header[16..20].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    Ok(header)
}
