//! `PortList::from_str`: `22,80,1000-2000`, `all`, `top:20`, ... Every input is a list or a
//! typed error; a list is sorted, without duplicates and without port 0.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sec_scan::PortList;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ports) = text.parse::<PortList>() {
        let list = ports.as_slice();
        assert!(!list.is_empty());
        assert!(list[0] > 0);
        assert!(list.windows(2).all(|w| w[0] < w[1]));
    }
});
