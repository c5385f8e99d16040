//! End-to-end tests across the flowgate crates live in `tests/`; this library is empty.
