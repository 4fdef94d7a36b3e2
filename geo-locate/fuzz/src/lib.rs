//! Helpers shared by the geo-locate fuzz targets.

use std::io::Read;
use std::path::PathBuf;

use geo_locate::store::InputFormat;
use geo_locate::{GeoDb, ImportOptions};

/// The most bytes a body may inflate to, as the server caps it (1 MiB).
pub const BODY_LIMIT: usize = 1 << 20;

/// A body as the server reads it: gzip is inflated (capped) when it starts with the gzip magic,
/// anything else is taken as is. `None` when the gzip stream is broken or too large.
pub fn body(data: &[u8]) -> Option<Vec<u8>> {
    if data.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(data)
            .take(BODY_LIMIT as u64 + 1)
            .read_to_end(&mut out)
            .ok()?;
        (out.len() <= BODY_LIMIT).then_some(out)
    } else {
        Some(data.to_vec())
    }
}

/// A scratch directory for one fuzz process, on tmpfs when the machine has one (imports and
/// the overlay write files), removed and made anew by each caller as it needs.
pub fn scratch(name: &str) -> PathBuf {
    let base = std::env::var_os("FUZZ_SCRATCH")
        .map(PathBuf::from)
        .or_else(|| {
            let shm = PathBuf::from("/dev/shm");
            shm.is_dir().then_some(shm)
        })
        .unwrap_or_else(std::env::temp_dir);
    base.join(format!("vigil-fuzz-{name}-{}", std::process::id()))
}

/// Imports `data` as `format` into a fresh scratch database, as `vigil geodb import` feeds a
/// file (plain or gzip, which the importer detects). Malformed lines are counted, never a panic;
/// a database it writes opens again and has stats.
pub fn import(name: &str, format: InputFormat, data: &[u8]) {
    let dir = scratch(name);
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
        Some(format),
        &options,
        &mut |_| {},
    );
    if let Ok(report) = report {
        assert!(report.imported <= report.rows_read, "{report:?}");
        let db = GeoDb::open(&dir).expect("an imported database opens");
        let _ = db.stats().expect("and has stats");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
