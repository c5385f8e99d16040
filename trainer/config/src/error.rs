//! Config errors.

/// Why a config could not be read, parsed or accepted. Every variant names the file (or
/// whatever `origin` the text came from).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Unreadable file.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not a valid config: bad TOML, an unknown field, or a value out of range.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The config could not be written as TOML (a value TOML cannot hold).
    #[error("cannot write config {name} as TOML: {source}")]
    Serialize {
        /// The config's name.
        name: String,
        /// Why.
        source: toml::ser::Error,
    },
}
