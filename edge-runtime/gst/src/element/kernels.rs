//! The `kernels` property: which inner loops the gate's convolutions run.

use flowgate_edge::kernels::KernelPath;
use gst::glib;

/// The convolution kernels the element's gate runs; every path gives the same decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, glib::Enum)]
#[enum_type(name = "GstFlowgateKernels")]
pub enum Kernels {
    /// The fastest path this CPU runs (AVX2+FMA on x86_64 where present, NEON on aarch64).
    #[default]
    #[enum_value(name = "Auto: the fastest path this CPU runs", nick = "auto")]
    Auto,
    /// Portable loops, the reference.
    #[enum_value(name = "Scalar: portable loops, the reference", nick = "scalar")]
    Scalar,
    /// x86_64 AVX2 with FMA.
    #[enum_value(name = "AVX2 with FMA (x86_64)", nick = "avx2-fma")]
    Avx2Fma,
    /// aarch64 NEON.
    #[enum_value(name = "NEON (aarch64)", nick = "neon")]
    Neon,
}

impl Kernels {
    /// The runtime's kernel path for this choice.
    pub fn path(self) -> KernelPath {
        match self {
            Kernels::Auto => KernelPath::detect(),
            Kernels::Scalar => KernelPath::Scalar,
            Kernels::Avx2Fma => KernelPath::Avx2Fma,
            Kernels::Neon => KernelPath::Neon,
        }
    }
}
