//! Pieces of the `flowgate-edge` command line that are worth testing on their own (`std`
//! only).

pub mod alarm;
pub mod calibrate;
pub mod parallel;
pub mod patient;
pub mod report;
