//! FIRST EPSS CSV through `VulnDb::import_reader_as`: typed errors only, no panic; every
//! stored score is a probability.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sec_scan::vulndb::{Format, VulnDb};

fuzz_target!(|data: &[u8]| {
    let mut db = VulnDb::open_in_memory().expect("in-memory database");
    if let Ok(report) = db.import_reader_as(data, Format::Epss, &mut |_| {}) {
        assert!(report.imported + report.skipped_bad <= report.records);
    }
});
