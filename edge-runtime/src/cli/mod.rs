//! Pieces of the `flowgate-edge` command line that are worth testing on their own (`std`
//! only).

pub mod patient;
pub mod report;
