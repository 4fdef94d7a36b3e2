//! The WiGLE CSV export importer, fed through a reader exactly as `vigil geodb import` feeds a file
//! (plain or gzip, which the importer detects), into a fresh database directory. Malformed
//! lines are counted, never a panic; the database it writes opens again.
#![no_main]

use geo_locate::store::InputFormat;
use geo_locate::{GeoDb, ImportOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = geo_fuzz::scratch("wigle");
    let _ = std::fs::remove_dir_all(&dir);
    let options = ImportOptions {
        // Small chunks, so that sorted runs spill and merge on small inputs too.
        chunk_records: 1024,
        max_bad_lines: 8,
        ..ImportOptions::default()
    };
    let report = GeoDb::import_reader(
        &dir,
        std::io::Cursor::new(data),
        Some(InputFormat::Wigle),
        &options,
        &mut |_| {},
    );
    if let Ok(report) = report {
        assert!(report.imported <= report.rows_read, "{report:?}");
        let db = GeoDb::open(&dir).expect("an imported database opens");
        let _ = db.stats().expect("and has stats");
    }
    let _ = std::fs::remove_dir_all(&dir);
});
