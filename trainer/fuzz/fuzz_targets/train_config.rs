//! Any text as a training config (configs/*.toml): a config or an error with a message, never
//! a panic; a config that loads re-validates, and its TOML (as the trainer saves it beside
//! checkpoints) reads back as the same config.
#![no_main]

use flowgate_config::TrainConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match TrainConfig::from_toml(text, "fuzz.toml") {
        Ok(config) => {
            assert!(config.validate("fuzz.toml").is_ok());
            let saved = config.to_toml().expect("a valid config serialises");
            let reread = TrainConfig::from_toml(&saved, "saved.toml")
                .unwrap_or_else(|error| panic!("the saved config does not load: {error}\n{saved}"));
            assert_eq!(
                reread, config,
                "the saved config reads back differently:\n{saved}"
            );
        }
        Err(error) => assert!(!error.to_string().is_empty()),
    }
});
