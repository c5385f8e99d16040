//! flowgate's trainer: data loading, flows, training, calibration, quantisation and export.
//!
//! [`fit`] is the one-command path from a camera's footage to a calibrated gate.
//!
//! Training runs through one loop ([`driver`]) with an objective per caller ([`training`],
//! [`distil`], [`pretrain`]) into a run folder ([`run_folder`]) whose files are written
//! atomically ([`atomic_write`]); every random draw comes from the trainer's own seeded
//! generators ([`seeds`]). The command line ([`cli`]) is a thin layer over the library, whose
//! errors are [`error::Error`].

pub mod atomic_write;
pub mod baseline;
pub mod calibration;
pub mod cli;
pub mod config;
pub mod corrupt;
pub mod data;
pub mod detail;
pub mod device;
pub mod distil;
pub mod driver;
pub mod error;
pub mod eval;
pub mod export;
pub mod fit;
pub mod flows;
pub mod frames;
pub mod pretrain;
pub mod quantize;
pub mod run_folder;
pub mod scoring;
pub mod seeds;
pub mod training;

pub use error::{Error, Result};
