//! Board deployment configs.
