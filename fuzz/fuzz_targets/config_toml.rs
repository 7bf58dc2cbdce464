//! The configuration parser on arbitrary text: a clear error or a configuration that validates.
#![no_main]

use arpwatch_core::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_toml(text) {
        Ok(config) => {
            assert!(config.engine.validate().is_ok(), "from_toml accepted an invalid configuration")
        }
        Err(err) => assert!(!err.to_string().is_empty(), "an error must say something"),
    }
});
