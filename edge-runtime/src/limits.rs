//! What a model may ask of the board: checked once, when the gate loads it.
//!
//! The model format bounds every size it can express, but within those bounds a file of a
//! hundred bytes can still declare activations that need hundreds of megabytes of scratch
//! or billions of multiply-accumulates per frame. A gate on a board with a gigabyte of memory,
//! shared with the downstream model, refuses such a model at load with an error naming the
//! limit, instead of finding out from the out-of-memory killer or a missed frame deadline.

use crate::error::{Error, Result};

/// Resource limits a model must fit. The fields mirror a board config's `[memory]
/// budget_kib` and `[model] max_macs_per_frame` (`firmware-configs/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes the model file, its plan ([`crate::PlanSizes::bytes`]) and the scratch
    /// (`4 * scratch_len`) may take together.
    pub max_memory_bytes: u64,
    /// Most multiply-accumulates one frame may cost.
    pub max_macs_per_frame: u64,
}

/// Which limit a model exceeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// [`Limits::max_memory_bytes`]: the model file plus its scratch, in bytes.
    Memory,
    /// [`Limits::max_macs_per_frame`].
    MacsPerFrame,
}

impl Limits {
    /// The defaults of [`crate::Gate::new`]: the largest board config in
    /// `firmware-configs/` (4 MiB of memory, 50 million MACs per frame; the Raspberry Pi 5
    /// and Jetson Orin Nano). Every committed model fits them with room to spare.
    pub const DEFAULT: Limits = Limits {
        max_memory_bytes: 4096 * 1024,
        max_macs_per_frame: 50_000_000,
    };

    /// Only the format's own bounds: for tools on a workstation that score models too large
    /// for any board (the trainer's evaluation of paper-size flows).
    pub const UNLIMITED: Limits = Limits {
        max_memory_bytes: u64::MAX,
        max_macs_per_frame: u64::MAX,
    };

    /// Whether a model needing `bytes` of memory (file, plan and scratch) fits.
    pub fn check_memory(&self, bytes: u64) -> Result<()> {
        if bytes > self.max_memory_bytes {
            return Err(Error::LimitExceeded {
                limit: Limit::Memory,
                needed: bytes,
                allowed: self.max_memory_bytes,
            });
        }
        Ok(())
    }

    /// Whether a model costing `macs` multiply-accumulates per frame fits.
    pub fn check_macs(&self, macs: u64) -> Result<()> {
        if macs > self.max_macs_per_frame {
            return Err(Error::LimitExceeded {
                limit: Limit::MacsPerFrame,
                needed: macs,
                allowed: self.max_macs_per_frame,
            });
        }
        Ok(())
    }
}

#[cfg(feature = "std")]
impl Limits {
    /// A board config's budget (`[memory] budget_kib`, `[model] max_macs_per_frame`), as
    /// `flowgate-edge --board` and `flowgate fit --board` apply it.
    pub fn of_board(board: &flowgate_shared::board::BoardConfig) -> Self {
        Limits {
            max_memory_bytes: board.memory.bytes(),
            max_macs_per_frame: board.model.max_macs_per_frame,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

impl core::fmt::Display for Limit {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Limit::Memory => "memory (model file + plan + scratch, bytes)",
            Limit::MacsPerFrame => "multiply-accumulates per frame",
        })
    }
}
