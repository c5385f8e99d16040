//! What the gate costs on a board and whether it fits `--board`: the same limits
//! `flowgate-edge --board` loads ([`flowgate_edge::Limits`] from a board config's
//! `[memory] budget_kib` and `[model] max_macs_per_frame`), checked on the same numbers
//! `flowgate-edge inspect` reports. The recipe's cost is known before training (it depends on
//! the architecture, not on the weights), so a gate that cannot fit is refused before the
//! trainings start, and the finished gate is checked again before it is written.

use std::path::{Path, PathBuf};

use flowgate_edge::{Gate, Limits};
use flowgate_shared::board::{BoardConfig, WeightFormat};

use super::error::{FitError, FitResult};
use crate::config::TrainConfig;
use crate::export::{ExportInfo, to_file_bytes};

/// A gate's size and cost, as `flowgate-edge inspect` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// Learned scalars.
    pub parameters: u64,
    /// Bytes of the model file.
    pub file_bytes: u64,
    /// Bytes of the runtime's plan of it.
    pub plan_bytes: u64,
    /// Bytes of the scratch one frame needs.
    pub scratch_bytes: u64,
    /// File, plan and scratch: what a board's memory budget counts.
    pub memory_bytes: u64,
    /// Multiply-accumulates per frame.
    pub macs_per_frame: u64,
}

/// The cost of the model file `bytes`, measured by loading it in the edge gate.
pub fn cost(bytes: &[u8]) -> FitResult<Cost> {
    let gate = Gate::with_limits(bytes, Limits::UNLIMITED).map_err(crate::Error::from)?;
    let scratch_bytes = 4 * gate.scratch_len() as u64;
    Ok(Cost {
        parameters: gate.summary().parameters,
        file_bytes: bytes.len() as u64,
        plan_bytes: gate.plan_memory().bytes(),
        scratch_bytes,
        memory_bytes: gate.memory_bytes(),
        macs_per_frame: gate.summary().macs_per_frame,
    })
}

/// The cost of the int8 gate `student` will train into and, when given, of its detail branch
/// (`detail`'s patch model on a `grid` of patches of `frame`-sized frames): their untrained
/// weights exported and quantised as the finished gate will be (the same tensors and
/// shapes; the finished file only adds the threshold's and standardisation's few bytes).
pub fn planned_cost(student: &TrainConfig, detail: Option<PlannedDetail<'_>>) -> FitResult<Cost> {
    let student_bytes = untrained_bytes(student)?;
    let student_model = flowgate_shared::decode(&student_bytes)
        .map_err(crate::Error::from)?
        .model;
    let quantized = crate::quantize::quantize_model(&student_model).map_err(crate::Error::from)?;
    let Some(PlannedDetail {
        recipe: patch_config,
        grid,
        frame,
    }) = detail
    else {
        return cost(&flowgate_shared::encode(&quantized).map_err(crate::Error::from)?);
    };
    let payload = crate::detail::patch_payload(&untrained_bytes(patch_config)?)?;
    let unit = flowgate_shared::Standardise {
        center: 0.0,
        spread: 1.0,
    };
    let with_detail = flowgate_shared::Model {
        detail: Some(flowgate_shared::Detail {
            frame_width: frame.0,
            frame_height: frame.1,
            columns: grid.0,
            rows: grid.1,
            patch_model: flowgate_shared::Bytes::Owned(payload),
            frame: unit,
            detail: unit,
        }),
        ..quantized
    };
    cost(&flowgate_shared::encode(&with_detail).map_err(crate::Error::from)?)
}

/// A detail branch to cost before it is trained.
#[derive(Debug, Clone, Copy)]
pub struct PlannedDetail<'a> {
    /// The patch model's recipe.
    pub recipe: &'a TrainConfig,
    /// Patch positions (columns, rows).
    pub grid: (u32, u32),
    /// The camera's frame size.
    pub frame: (u32, u32),
}

/// `config`'s model with its seeded initial weights, as a model file.
fn untrained_bytes(config: &TrainConfig) -> FitResult<Vec<u8>> {
    let device = crate::training::device(crate::training::Compute::Cpu)?;
    let model = crate::training::seeded_model(config, &device)?;
    Ok(to_file_bytes(
        &model.for_inference(),
        &ExportInfo {
            name: &config.name,
            provenance: "flowgate fit (untrained, for its cost)",
            ..ExportInfo::default()
        },
    )
    .map_err(crate::Error::from)?)
}

/// A board config's budget.
#[derive(Debug, Clone)]
pub struct Board {
    /// The config file.
    pub path: PathBuf,
    /// The board's name.
    pub name: String,
    /// Its limits, as `flowgate-edge --board` sets them.
    pub limits: Limits,
    /// How it stores weights (fit's gates are int8, which every board's runtime runs).
    pub weights: WeightFormat,
}

impl Board {
    /// Loads `firmware-configs/NAME.toml`.
    pub fn load(path: &Path) -> FitResult<Self> {
        let config = BoardConfig::load(path).map_err(|e| FitError::BoardConfig {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(Board {
            path: path.to_path_buf(),
            limits: Limits::of_board(&config),
            name: config.board.name,
            weights: config.model.weights,
        })
    }

    /// Whether `cost` fits, by the gate's own load-time checks in the gate's order (MACs,
    /// then memory); `what` names the model in the error.
    pub fn check(&self, cost: &Cost, what: &'static str) -> FitResult<()> {
        self.limits
            .check_macs(cost.macs_per_frame)
            .and_then(|()| self.limits.check_memory(cost.memory_bytes))
            .map_err(|error| match error {
                flowgate_edge::Error::LimitExceeded {
                    limit,
                    needed,
                    allowed,
                } => FitError::ExceedsBoard {
                    board: self.name.clone(),
                    what,
                    limit,
                    needed,
                    allowed,
                    hint: "; give a smaller --student-config (fewer st_net channels, blocks or scales)",
                },
                other => FitError::Trainer(crate::Error::from(other)),
            })
    }

    /// One line for the report: the budget and how much of it the gate takes.
    pub fn describe(&self, cost: &Cost) -> String {
        format!(
            "board {}: {} of {} bytes of memory ({:.0}%), {} of {} MACs per frame ({:.0}%), \
             weights {} (the gate's are int8)",
            self.name,
            cost.memory_bytes,
            self.limits.max_memory_bytes,
            100.0 * cost.memory_bytes as f64 / self.limits.max_memory_bytes.max(1) as f64,
            cost.macs_per_frame,
            self.limits.max_macs_per_frame,
            100.0 * cost.macs_per_frame as f64 / self.limits.max_macs_per_frame.max(1) as f64,
            self.weights.as_str()
        )
    }
}
