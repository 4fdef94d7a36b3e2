//! `CellKey::from_str` (`RADIO:MCC:MNC:LAC:CID`) and `Radio::from_str`: any text is a valid
//! key or a typed error; a key validates and prints back to itself.
#![no_main]

use geo_locate::{CellKey, Radio};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = text.parse::<Radio>().map_err(|e| e.to_string());
    if let Ok(key) = text.parse::<CellKey>() {
        assert!(key.validate().is_ok(), "{key:?}");
        let _ = key.area();
    }
});
