//! A gate that owns its model file: `flowgate_edge::Gate` borrows the bytes it was loaded
//! from, and the element keeps both for as long as it runs.

use std::path::Path;

use flowgate_edge::Gate;
use flowgate_edge::kernels::KernelPath;

self_cell::self_cell!(
    /// A model file's bytes and the gate that borrows them.
    pub(super) struct LoadedGate {
        owner: Box<[u8]>,
        #[covariant]
        dependent: Gate,
    }
);

/// Why a model could not be loaded.
#[derive(Debug)]
pub(super) enum LoadError {
    /// The file could not be read.
    Read(std::io::Error),
    /// The gate refused the model or the kernels.
    Gate(flowgate_edge::Error),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Read(error) => write!(f, "cannot read the model: {error}"),
            LoadError::Gate(error) => write!(f, "{error}"),
        }
    }
}

impl LoadedGate {
    /// Reads and validates the model at `path` (within the runtime's default limits, those
    /// of the largest board in firmware-configs/) and selects `kernels`.
    pub(super) fn load(path: &Path, kernels: KernelPath) -> Result<Self, LoadError> {
        let bytes = std::fs::read(path).map_err(LoadError::Read)?;
        LoadedGate::try_new(bytes.into_boxed_slice(), |bytes| {
            Gate::new(bytes).and_then(|gate| gate.with_kernels(kernels))
        })
        .map_err(LoadError::Gate)
    }

    /// The gate.
    pub(super) fn gate(&self) -> &Gate<'_> {
        self.borrow_dependent()
    }
}

impl std::fmt::Debug for LoadedGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedGate")
            .field("model_bytes", &self.borrow_owner().len())
            .field("kernels", &self.gate().kernels())
            .finish()
    }
}
