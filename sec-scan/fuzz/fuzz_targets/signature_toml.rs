//! `SignatureSet::from_toml`, the loader behind `--signatures FILE`: any text is a set or a
//! typed error with a line number, and a set matches findings without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sec_scan::SignatureSet;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match SignatureSet::from_toml(text, "fuzz.toml") {
        Ok(set) => {
            let _ = set.len();
            let _ = SignatureSet::builtin().merged(set);
        }
        Err(err) => {
            let _ = err.to_string();
        }
    }
});
