//! `flowgate_edge` for Python: flowgate's edge gate ([`flowgate_edge::Gate`], the same code as
//! the `flowgate-edge` command line, the C ABI and the GStreamer element) on numpy frames.
//!
//! ```python
//! import flowgate_edge
//! gate = flowgate_edge.Gate("models/camera-vtest.fgm")
//! verdict = gate.score(frame)          # numpy uint8, (H, W) gray or (H, W, 3) RGB
//! if verdict.decision == "reject": ...
//! ```
//!
//! Scoring releases the GIL and reuses one scratch buffer per thread (no allocation per
//! frame); frames are read where they lie, without a copy.

mod frames;
mod python;
pub mod scoring;

use pyo3::prelude::*;

use python::{FlowgateError, FrameError, Gate, ModelError, Verdict};

/// flowgate's edge gate: scores camera frames under a normalizing flow and decides whether
/// they may pass to the downstream model.
#[pymodule(name = "flowgate_edge")]
fn flowgate_edge(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    module.add_class::<Gate>()?;
    module.add_class::<Verdict>()?;
    module.add("FlowgateError", py.get_type::<FlowgateError>())?;
    module.add("ModelError", py.get_type::<ModelError>())?;
    module.add("FrameError", py.get_type::<FrameError>())?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
