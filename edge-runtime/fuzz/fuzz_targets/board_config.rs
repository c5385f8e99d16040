//! Any text as a board config (firmware-configs/*.toml): a config or an error with a message,
//! never a panic; a config that loads re-validates.
#![no_main]

use flowgate_shared::board::BoardConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match BoardConfig::from_toml_str(text, "fuzz.toml") {
        Ok(config) => assert!(config.validate("fuzz.toml").is_ok()),
        Err(error) => assert!(!error.to_string().is_empty()),
    }
});
