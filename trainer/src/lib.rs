//! flowgate's trainer: data loading, flows, calibration, quantisation and export.

pub mod cli;
pub mod data;
