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
    /// The fastest path this CPU runs. x86_64 detects AVX2 and FMA at run time, with or
    /// without `std` (CPUID); NEON is part of every aarch64 target that has it enabled by
    /// default.
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

#[cfg(target_arch = "x86_64")]
fn avx2_fma_available() -> bool {
    if cfg!(all(target_feature = "avx2", target_feature = "fma")) {
        return true;
    }
    x86::avx2_fma_detected()
}

#[cfg(not(target_arch = "x86_64"))]
fn avx2_fma_available() -> bool {
    false
}

/// Run-time detection of AVX2 and FMA without `std` (whose `is_x86_feature_detected!` a
/// no-std build, such as the C library, lacks): CPUID says what the CPU has, XGETBV whether
/// the operating system saves the 256-bit registers across context switches. The answer is
/// cached, so asking per kernel call costs an atomic load.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::sync::atomic::{AtomicU8, Ordering};

    const UNKNOWN: u8 = 0;
    const ABSENT: u8 = 1;
    const PRESENT: u8 = 2;
    static DETECTED: AtomicU8 = AtomicU8::new(UNKNOWN);

    pub(super) fn avx2_fma_detected() -> bool {
        match DETECTED.load(Ordering::Relaxed) {
            PRESENT => true,
            ABSENT => false,
            _ => {
                let present = detect();
                DETECTED.store(if present { PRESENT } else { ABSENT }, Ordering::Relaxed);
                present
            }
        }
    }

    fn detect() -> bool {
        use core::arch::x86_64::{__cpuid, __cpuid_count};
        // Leaf 1: ECX bit 12 FMA, bit 27 OSXSAVE, bit 28 AVX.
        #[allow(unused_unsafe)] // `__cpuid` is safe in newer Rust, unsafe in older
        // SAFETY: CPUID exists on every x86_64 CPU.
        let leaf1 = unsafe { __cpuid(1) };
        let (fma, osxsave, avx) = (
            leaf1.ecx & (1 << 12) != 0,
            leaf1.ecx & (1 << 27) != 0,
            leaf1.ecx & (1 << 28) != 0,
        );
        if !(fma && osxsave && avx) {
            return false;
        }
        // The OS saves XMM (bit 1) and YMM (bit 2) state.
        // SAFETY: OSXSAVE is set, so XGETBV is available.
        let xcr0 = unsafe { xgetbv0() };
        if xcr0 & 0b110 != 0b110 {
            return false;
        }
        #[allow(unused_unsafe)]
        // SAFETY: as above; leaf 7 exists wherever AVX does.
        let leaf7 = unsafe { __cpuid_count(7, 0) };
        leaf7.ebx & (1 << 5) != 0 // AVX2
    }

    /// # Safety
    /// The CPU must report OSXSAVE.
    #[target_feature(enable = "xsave")]
    unsafe fn xgetbv0() -> u64 {
        // SAFETY: the caller's.
        unsafe { core::arch::x86_64::_xgetbv(0) }
    }

    #[cfg(all(test, feature = "std"))]
    mod tests {
        #[test]
        fn agrees_with_std() {
            let expected =
                std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
            assert_eq!(super::detect(), expected);
        }
    }
}
