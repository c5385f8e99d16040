//! Zero-copy containers for the model payload: byte strings and lazily decoded sequences.
//!
//! Reading a model must work without `alloc`, so nothing in the payload is decoded into a
//! growable collection. A [`Bytes`] borrows straight from the model file; a [`Seq`] keeps its
//! elements postcard-encoded and decodes one at a time while it is iterated, so a flow of any
//! length costs no memory beyond the file itself.

use core::fmt;
use core::marker::PhantomData;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[cfg(feature = "alloc")]
use alloc::vec::Vec;

/// A byte string: borrowed from a model file when decoded, owned when a writer builds a model.
#[derive(Clone, PartialEq, Eq)]
pub enum Bytes<'a> {
    /// Borrowed from the decoded file.
    Borrowed(&'a [u8]),
    /// Built by a writer.
    #[cfg(feature = "alloc")]
    Owned(Vec<u8>),
}

impl<'a> Bytes<'a> {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Borrowed(bytes) => bytes,
            #[cfg(feature = "alloc")]
            Bytes::Owned(bytes) => bytes,
        }
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }
}

impl fmt::Debug for Bytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes({} bytes)", self.len())
    }
}

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.as_slice())
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Bytes<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <&'a [u8]>::deserialize(deserializer).map(Bytes::Borrowed)
    }
}

/// The wire form of a [`Seq`]: the element count, then the elements' postcard bytes.
#[derive(Serialize, Deserialize)]
struct SeqWire<'a> {
    count: u32,
    #[serde(borrow)]
    elements: &'a [u8],
}

/// A sequence whose elements stay postcard-encoded until iterated.
///
/// Decoding borrows the element bytes from the file; [`Seq::iter`] decodes each element on
/// demand. A writer builds one from a `Vec` with [`Seq::from_vec`] (feature `alloc`).
pub struct Seq<'a, T> {
    repr: SeqRepr<'a, T>,
}

enum SeqRepr<'a, T> {
    Encoded {
        count: u32,
        elements: &'a [u8],
        element: PhantomData<T>,
    },
    #[cfg(feature = "alloc")]
    Items(Vec<T>),
}

impl<'a, T> Seq<'a, T> {
    /// A sequence built by a writer.
    #[cfg(feature = "alloc")]
    pub fn from_vec(items: Vec<T>) -> Self {
        Seq {
            repr: SeqRepr::Items(items),
        }
    }

    /// The element count the sequence declares.
    pub fn len(&self) -> usize {
        match &self.repr {
            SeqRepr::Encoded { count, .. } => *count as usize,
            #[cfg(feature = "alloc")]
            SeqRepr::Items(items) => items.len(),
        }
    }

    /// Whether the sequence declares no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decodes the elements in order.
    ///
    /// Each item is a `Result`: a sequence read from a file is only known to be well formed
    /// once it has been validated (which [`crate::decode`] does).
    pub fn iter(&self) -> SeqIter<'_, 'a, T> {
        match &self.repr {
            SeqRepr::Encoded {
                count, elements, ..
            } => SeqIter {
                repr: SeqIterRepr::Encoded {
                    remaining: *count,
                    rest: elements,
                },
            },
            #[cfg(feature = "alloc")]
            SeqRepr::Items(items) => SeqIter {
                repr: SeqIterRepr::Items(items.iter()),
            },
        }
    }
}

impl<T: Clone> Clone for Seq<'_, T> {
    fn clone(&self) -> Self {
        let repr = match &self.repr {
            SeqRepr::Encoded {
                count, elements, ..
            } => SeqRepr::Encoded {
                count: *count,
                elements,
                element: PhantomData,
            },
            #[cfg(feature = "alloc")]
            SeqRepr::Items(items) => SeqRepr::Items(items.clone()),
        };
        Seq { repr }
    }
}

impl<T> fmt::Debug for Seq<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Seq({} elements)", self.len())
    }
}

/// Iterator over a [`Seq`]; see [`Seq::iter`].
#[allow(missing_debug_implementations)]
pub struct SeqIter<'s, 'a, T> {
    repr: SeqIterRepr<'s, 'a, T>,
}

enum SeqIterRepr<'s, 'a, T> {
    Encoded {
        remaining: u32,
        rest: &'a [u8],
    },
    #[cfg(feature = "alloc")]
    Items(core::slice::Iter<'s, T>),
    #[cfg(not(feature = "alloc"))]
    #[allow(dead_code)]
    Never(PhantomData<&'s T>),
}

impl<'a, T> SeqIter<'_, 'a, T> {
    /// The encoded bytes not yet consumed; empty once a well-formed sequence is exhausted.
    pub fn unread_bytes(&self) -> &'a [u8] {
        match &self.repr {
            SeqIterRepr::Encoded { rest, .. } => rest,
            _ => &[],
        }
    }
}

impl<'a, T: Deserialize<'a> + Clone> Iterator for SeqIter<'_, 'a, T> {
    type Item = Result<T, postcard::Error>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.repr {
            SeqIterRepr::Encoded { remaining, rest } => {
                if *remaining == 0 {
                    return None;
                }
                *remaining -= 1;
                match postcard::take_from_bytes::<T>(rest) {
                    Ok((item, unread)) => {
                        *rest = unread;
                        Some(Ok(item))
                    }
                    Err(error) => {
                        // A malformed element poisons the rest: stop after reporting it.
                        *remaining = 0;
                        Some(Err(error))
                    }
                }
            }
            #[cfg(feature = "alloc")]
            SeqIterRepr::Items(items) => items.next().cloned().map(Ok),
            #[cfg(not(feature = "alloc"))]
            SeqIterRepr::Never(_) => None,
        }
    }
}

impl<T: Serialize> Serialize for Seq<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.repr {
            SeqRepr::Encoded {
                count, elements, ..
            } => SeqWire {
                count: *count,
                elements,
            }
            .serialize(serializer),
            #[cfg(feature = "alloc")]
            SeqRepr::Items(items) => {
                let mut elements = Vec::new();
                for item in items {
                    elements = postcard::to_extend(item, elements)
                        .map_err(<S::Error as serde::ser::Error>::custom)?;
                }
                let count = u32::try_from(items.len())
                    .map_err(|_| <S::Error as serde::ser::Error>::custom("sequence too long"))?;
                SeqWire {
                    count,
                    elements: &elements,
                }
                .serialize(serializer)
            }
        }
    }
}

impl<'de: 'a, 'a, T> Deserialize<'de> for Seq<'a, T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = SeqWire::deserialize(deserializer)?;
        Ok(Seq {
            repr: SeqRepr::Encoded {
                count: wire.count,
                elements: wire.elements,
                element: PhantomData,
            },
        })
    }
}
