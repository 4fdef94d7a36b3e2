//! NVD CVE JSON 2.0 through `VulnDb::import_reader_as` into an in-memory database, then a
//! match: every input is imported or a typed error; nothing panics, and the database stays
//! readable whatever was committed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sec_scan::vulndb::{Format, MatchOptions, ServiceQuery, VulnDb};

fuzz_target!(|data: &[u8]| {
    let mut db = VulnDb::open_in_memory().expect("in-memory database");
    let _ = db.import_reader_as(data, Format::Nvd, &mut |_| {});
    let stats = db.stats().expect("stats after any import");
    assert!(stats.cpe_matches == 0 || stats.cves > 0);
    for cpe in ["cpe:/a:openbsd:openssh:9.2p1", "cpe:2.3:a:a:a:1:*:*:*:*:*:*:*"] {
        let q = ServiceQuery {
            cpe: Some(cpe.into()),
            ..Default::default()
        };
        db.match_service(&q, &MatchOptions::default()).expect("match");
    }
});
