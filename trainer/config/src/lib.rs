//! flowgate's training configs (`configs/*.toml`): the model, the data, the optimiser and the
//! schedule, parsed and validated. The trainer (`flowgate-trainer`) re-exports these types
//! under `flowgate_trainer::config`, `flowgate_trainer::flows` and `flowgate_trainer::data`;
//! they live apart from it so that a fuzzer can exercise the parser without building burn.

mod dataset;
mod error;
mod flow;
mod train;

pub use dataset::DatasetName;
pub use error::ConfigError;
pub use flow::{
    Architecture, ConvInit, ExtractorConfig, FLIPS, FlowConfig, LABEL_CLASSES, Objective,
    StNetConfig, StNetKind,
};
pub use train::{DataConfig, DatasetSource, OptimConfig, OptimizerKind, TrainConfig};
