//! Where training runs: burn's CPU backends, PyTorch's C++ library or a CUDA GPU.

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
    /// PyTorch's C++ library on the CPU (feature `libtorch`).
    Libtorch,
}

/// The (non-autodiff) device for `compute`, or why it is not available.
pub fn device(compute: Compute) -> Result<Device> {
    match compute {
        Compute::Cpu => Ok(Device::flex()),
        Compute::Ndarray => ndarray_device(),
        Compute::Cuda => cuda_device(),
        Compute::Libtorch => libtorch_device(),
    }
}

/// The (autodiff) devices a data-parallel run splits each batch across: `count` CUDA GPUs
/// (`cuda:0` ..), or `count` workers on the one device of a CPU backend (burn's CPU backends
/// have a single device; the workers then run one after another, which gives the same model as
/// on several devices and shows the split is right, not a speed-up). One device is no data
/// parallelism: none (the whole batch on the run's device).
pub fn data_parallel_devices(compute: Compute, count: usize) -> Result<Vec<Device>> {
    match (count, compute) {
        (0, _) => Err(Error::DeviceUnavailable("--devices must be at least 1")),
        (1, _) => Ok(Vec::new()),
        (_, Compute::Cuda) => (0..count)
            .map(|index| cuda_device_at(index).map(|device| device.autodiff()))
            .collect(),
        (_, Compute::Cpu | Compute::Ndarray | Compute::Libtorch) => {
            Ok(vec![device(compute)?.autodiff(); count])
        }
    }
}

#[cfg(feature = "cuda")]
fn cuda_device_at(index: usize) -> Result<Device> {
    if Device::enumerate(burn::tensor::DeviceType::Cuda).len() <= index {
        return Err(Error::DeviceUnavailable(
            "--devices asks for more CUDA GPUs than the machine lists",
        ));
    }
    Ok(Device::cuda(index))
}

#[cfg(not(feature = "cuda"))]
fn cuda_device_at(_index: usize) -> Result<Device> {
    cuda_device()
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

#[cfg(feature = "libtorch")]
#[allow(deprecated)] // burn 0.22 deprecates burn-tch, to be removed in a later release.
fn libtorch_device() -> Result<Device> {
    Ok(Device::libtorch())
}

#[cfg(not(feature = "libtorch"))]
fn libtorch_device() -> Result<Device> {
    Err(Error::DeviceUnavailable(
        "this flowgate was built without the `libtorch` feature (scripts/build-libtorch.sh)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backend the binary was built without is a typed error that says how to get it, not a
    /// panic on the first tensor operation.
    #[test]
    #[cfg(not(any(feature = "libtorch", feature = "cuda")))]
    fn a_backend_left_out_of_the_build_names_its_feature() {
        for (compute, needle) in [
            (Compute::Libtorch, "build-libtorch.sh"),
            (Compute::Cuda, "`cuda` feature"),
        ] {
            match device(compute) {
                Err(Error::DeviceUnavailable(why)) => {
                    assert!(why.contains(needle), "{compute:?}: {why}")
                }
                other => panic!("{compute:?}: expected DeviceUnavailable, got {other:?}"),
            }
        }
        assert!(device(Compute::Cpu).is_ok());
    }

    #[test]
    fn zero_devices_is_refused_and_one_is_no_data_parallelism() {
        assert!(matches!(
            data_parallel_devices(Compute::Cpu, 0),
            Err(Error::DeviceUnavailable(_))
        ));
        assert!(data_parallel_devices(Compute::Cpu, 1).is_ok_and(|d| d.is_empty()));
        assert_eq!(
            data_parallel_devices(Compute::Cpu, 2).map(|d| d.len()).ok(),
            Some(2)
        );
    }
}
