//! Where training runs: burn's CPU backends or a CUDA GPU.

use burn::prelude::Device;

use crate::error::{Error, Result};

/// Where training runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Compute {
    /// burn's `flex` CPU backend.
    #[default]
    Cpu,
    /// burn's older `ndarray` CPU backend (feature `ndarray`).
    Ndarray,
    /// The first CUDA GPU (feature `cuda`).
    Cuda,
}

/// The (non-autodiff) device for `compute`, or why it is not available.
pub fn device(compute: Compute) -> Result<Device> {
    match compute {
        Compute::Cpu => Ok(Device::flex()),
        Compute::Ndarray => ndarray_device(),
        Compute::Cuda => cuda_device(),
    }
}

#[cfg(feature = "ndarray")]
#[allow(deprecated)] // burn 0.22 deprecates ndarray in favour of flex; it stays as a reference.
fn ndarray_device() -> Result<Device> {
    Ok(Device::ndarray())
}

#[cfg(not(feature = "ndarray"))]
fn ndarray_device() -> Result<Device> {
    Err(Error::DeviceUnavailable(
        "this flowgate was built without the `ndarray` feature (cargo build --features ndarray)",
    ))
}

#[cfg(feature = "cuda")]
fn cuda_device() -> Result<Device> {
    // Enumerating loads libcuda without panicking; a lazily created CUDA device would panic on
    // its first operation instead.
    if Device::enumerate(burn::tensor::DeviceType::Cuda).is_empty() {
        return Err(Error::DeviceUnavailable(
            "no CUDA GPU found (the CUDA driver library could not be loaded or lists no device)",
        ));
    }
    Ok(Device::cuda(0))
}

#[cfg(not(feature = "cuda"))]
fn cuda_device() -> Result<Device> {
    Err(Error::DeviceUnavailable(
        "this flowgate was built without the `cuda` feature (cargo build --features cuda)",
    ))
}
