//! OSV records (one record, or a zip of records when the input starts with `PK`) through
//! `VulnDb::import_reader_as`, then a Debian-evidence match: typed errors only, no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sec_scan::vulndb::{Format, MatchOptions, ServiceQuery, VulnDb};

fuzz_target!(|data: &[u8]| {
    let mut db = VulnDb::open_in_memory().expect("in-memory database");
    let format = if data.starts_with(b"PK") { Format::OsvZip } else { Format::Osv };
    let _ = db.import_reader_as(data, format, &mut |_| {});
    db.stats().expect("stats after any import");
    let q = ServiceQuery {
        cpe: Some("cpe:/a:openbsd:openssh:9.2p1".into()),
        ecosystem: Some("Debian:12".into()),
        source_package: Some("openssh".into()),
        package_version: Some("1:9.2p1-2+deb12u2".into()),
        ..Default::default()
    };
    db.match_service(&q, &MatchOptions::default()).expect("match");
});
