//! `Target::from_str` and `Rule::parse`, then the scope checks on what they parse: sizes, the
//! first and last address, the embedded-IPv4 decoding and a scope built from the target. No
//! resolution and no packet: only the pure checks run.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sec_scan::{AddressCount, Rule, Scope, Target, embedded_ipv4};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Rule::parse(text).map(|rule| rule.to_string());
    let Ok(target) = text.parse::<Target>() else {
        return;
    };
    // Display round-trips to the same target.
    assert_eq!(target.to_string().parse::<Target>().ok(), Some(target.clone()));
    let Ok(scope) = Scope::from_targets(std::slice::from_ref(&target)) else {
        return;
    };
    match target.address_count() {
        Some(count) => {
            let (first, last) = target.span().expect("an address target has a span");
            assert_eq!(target.nth(0), Some(first));
            if let AddressCount::Count(n) = count {
                assert_eq!(target.nth(n - 1), Some(last));
                assert_eq!(target.nth(n), None);
            }
            for ip in [first, last] {
                let _ = embedded_ipv4(ip);
                let _ = scope.check_ip(ip, None).map_err(|v| v.to_string());
            }
        }
        None => {
            if let Target::Host(name) = &target {
                assert_eq!(scope.check_name(name), Ok(()));
            }
        }
    }
});
