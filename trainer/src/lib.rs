//! flowgate's trainer: data loading, flows, calibration, quantisation and export.

pub mod cli;
pub mod config;
pub mod corrupt;
pub mod data;
pub mod distil;
pub mod eval;
pub mod export;
pub mod flows;
pub mod frames;
pub mod pretrain;
pub mod quantize;
pub mod training;
