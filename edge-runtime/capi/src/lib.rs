//! C ABI of the flowgate gate.
