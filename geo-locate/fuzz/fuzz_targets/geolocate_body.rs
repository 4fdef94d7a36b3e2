//! `/v1/geolocate` request bodies: plain JSON or gzip, decoded into `GeolocateRequest` as the
//! server does, then validated entry by entry into a `Query`.
#![no_main]

use geo_locate::{GeolocateRequest, Query};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(body) = geo_fuzz::body(data) else {
        return;
    };
    let Ok(request) = serde_json::from_slice::<GeolocateRequest>(&body) else {
        return;
    };
    let query = Query::from_request(&request);
    let _ = serde_json::to_vec(&request).expect("a request serializes");
    let _ = query;
});
