//! The CISA KEV catalog, as JSON (input starting with `{`) or CSV, through
//! `VulnDb::import_reader_as`: typed errors only, no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sec_scan::vulndb::{Format, VulnDb};

fuzz_target!(|data: &[u8]| {
    let mut db = VulnDb::open_in_memory().expect("in-memory database");
    let format = if data.first() == Some(&b'{') { Format::KevJson } else { Format::KevCsv };
    if let Ok(report) = db.import_reader_as(data, format, &mut |_| {}) {
        assert!(db.stats().expect("stats").kev <= report.records);
    }
});
