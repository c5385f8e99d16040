//! Training configs (`configs/*.toml`): the model, the data, the optimiser and the schedule.
//! The types live in `flowgate-config` (no burn, so `trainer/fuzz` can fuzz the parser);
//! these are their paths in the trainer.

pub use flowgate_config::{
    ConfigError, DataConfig, DatasetSource, OptimConfig, OptimizerKind, TrainConfig,
};
