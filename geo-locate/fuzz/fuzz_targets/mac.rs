//! `MacAddr::from_str` and `MacAddr::parse_station`: any text is an address or a typed error,
//! and an address prints back to itself.
#![no_main]

use geo_locate::MacAddr;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(mac) = text.parse::<MacAddr>() {
        assert_eq!(mac.to_string().parse::<MacAddr>().ok(), Some(mac));
        assert_eq!(MacAddr::from_u64(mac.as_u64()), Some(mac));
    }
    let _ = MacAddr::parse_station(text).map_err(|e| e.to_string());
});
