//! `/v2/geosubmit` request bodies: plain JSON or gzip, decoded into `GeosubmitRequest`, then
//! submitted to an overlay (SQLite, on tmpfs when there is one) that lives for the whole run:
//! every entry is validated and invalid ones are counted, never a panic.
#![no_main]

use std::sync::OnceLock;

use geo_locate::GeoDb;
use geo_locate::api::GeosubmitRequest;
use libfuzzer_sys::fuzz_target;

fn db() -> &'static GeoDb {
    static DB: OnceLock<GeoDb> = OnceLock::new();
    DB.get_or_init(|| {
        let dir = geo_fuzz::scratch("geosubmit");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch directory");
        GeoDb::open(&dir).expect("an empty database opens")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some(body) = geo_fuzz::body(data) else {
        return;
    };
    let Ok(request) = serde_json::from_slice::<GeosubmitRequest>(&body) else {
        return;
    };
    let report = db().submit(&request).expect("the overlay accepts or counts every entry");
    assert_eq!(
        report.accepted_reports + report.rejected_reports,
        request.items.len()
    );
});
