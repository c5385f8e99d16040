//! Which instruction set the convolutions' inner loops use.

/// An implementation of the kernels' inner loops. [`KernelPath::Scalar`] is the reference
/// that every other path must match: same verdicts, bits/dim within rounding (a fused
/// multiply-add rounds once where the scalar loop rounds twice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KernelPath {
    /// Portable loops; the compiler may autovectorise them with the target's baseline
    /// instructions (SSE2 on x86_64).
    Scalar,
    /// x86_64 AVX2 with FMA: 8 lanes, fused multiply-add.
    Avx2Fma,
    /// aarch64 NEON: 4 lanes, fused multiply-add.
    Neon,
}

impl KernelPath {
    /// The fastest path this CPU runs. x86_64 detects AVX2 and FMA at run time with the `std`
    /// feature (without it, only when the build enables them, e.g. `-C target-cpu=native`);
    /// NEON is part of every aarch64 target that has it enabled by default.
    pub fn detect() -> Self {
        if KernelPath::Neon.available() {
            KernelPath::Neon
        } else if KernelPath::Avx2Fma.available() {
            KernelPath::Avx2Fma
        } else {
            KernelPath::Scalar
        }
    }

    /// Whether this CPU (and this build) can run the path.
    pub fn available(self) -> bool {
        match self {
            KernelPath::Scalar => true,
            KernelPath::Avx2Fma => avx2_fma_available(),
            KernelPath::Neon => cfg!(all(target_arch = "aarch64", target_feature = "neon")),
        }
    }

    /// Every path, the reference first.
    pub const ALL: [KernelPath; 3] = [KernelPath::Scalar, KernelPath::Avx2Fma, KernelPath::Neon];

    /// Lower-case name, as the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            KernelPath::Scalar => "scalar",
            KernelPath::Avx2Fma => "avx2-fma",
            KernelPath::Neon => "neon",
        }
    }
}

impl core::fmt::Display for KernelPath {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
fn avx2_fma_available() -> bool {
    true
}

// The std detection caches its answer, so asking per kernel call costs an atomic load.
#[cfg(all(
    target_arch = "x86_64",
    feature = "std",
    not(all(target_feature = "avx2", target_feature = "fma"))
))]
fn avx2_fma_available() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

#[cfg(not(all(
    target_arch = "x86_64",
    any(feature = "std", all(target_feature = "avx2", target_feature = "fma"))
)))]
fn avx2_fma_available() -> bool {
    false
}
