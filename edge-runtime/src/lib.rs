//! flowgate's gatekeeper: scores camera frames under an exported normalizing flow and
//! decides whether they may pass to the downstream model.
//!
//! The core is `no_std` and needs no allocator: [`Gate::new_in`] borrows the model file and
//! plans it once into buffers the caller provides ([`Gate::plan_sizes`]), [`Gate::score`]
//! works in scratch the caller provides ([`Gate::scratch_len`] f32 elements: a stack array, a
//! `static`, or a heap buffer). The `alloc` feature adds [`Gate::new`], which allocates the
//! plan itself; `std` adds the readers the trainer shares ([`io`]: idx files, images, raw
//! frame streams) and the `flowgate-edge` command line.
#![no_std]
#![deny(missing_docs)]
#![warn(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod error;
pub mod flow;
pub mod frame;
pub mod gate;
pub mod kernels;
pub mod limits;
pub mod plan;
pub mod preprocess;

pub use error::{Error, FrameError, Result};
pub use frame::{Frame, LumaRange, PixelFormat};
pub use gate::{Decision, Fault, Gate, Verdict};
pub use limits::{Limit, Limits};
pub use plan::{PlanSizes, Step};

#[cfg(feature = "std")]
pub mod cli;
#[cfg(feature = "std")]
pub mod io;
