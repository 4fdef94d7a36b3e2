//! The Locator end to end: offline database, cache and mocked providers.

mod common;

use std::sync::Arc;

use geo_locate::cache::{Cache, CacheConfig};
use geo_locate::opencellid::{OpenCellIdClient, OpenCellIdConfig};
use geo_locate::wigle::{WigleClient, WigleConfig};
use geo_locate::{Error, FallbackKind, GeoDb, GeolocateRequest, ImportOptions, LatLon, Locator};
use serde_json::json;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn request(v: serde_json::Value) -> GeolocateRequest {
    serde_json::from_value(v).unwrap()
}

fn offline_db(dir: &std::path::Path) -> Arc<GeoDb> {
    for f in ["cell_towers.csv", "wigle-1.6.csv"] {
        GeoDb::import_file(
            dir,
            common::fixture(f),
            &ImportOptions::default(),
            &mut |_| {},
        )
        .unwrap();
    }
    Arc::new(GeoDb::open(dir).unwrap())
}

#[tokio::test]
async fn offline_wifi_cells_and_lac_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let locator = Locator::builder()
        .database(offline_db(dir.path()))
        .build()
        .unwrap();

    let wifi = locator
        .locate(&request(json!({"wifiAccessPoints": [
            {"macAddress": "aa:bb:cc:00:00:01", "signalStrength": -50},
            {"macAddress": "aa:bb:cc:00:00:02", "signalStrength": -75},
            {"macAddress": "de:ad:be:ef:00:01", "signalStrength": -60}
        ]})))
        .await
        .unwrap()
        .expect("two known APs locate");
    let at = LatLon::new(wifi.location.lat, wifi.location.lng).unwrap();
    assert!(
        at.distance_m(LatLon::new(52.52005, 13.40505).unwrap()) < 40.0,
        "{wifi:?}"
    );
    assert!((10.0..=500.0).contains(&wifi.accuracy));
    assert_eq!(wifi.fallback, None);

    let cell = locator
        .locate(&request(
            json!({"cellTowers": [{"radioType": "gsm", "mobileCountryCode": 262,
            "mobileNetworkCode": 1, "locationAreaCode": 1001, "cellId": 11, "timingAdvance": 1}]}),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cell.fallback, None);
    assert_eq!(cell.accuracy, 1_107.0);

    let area = locator
        .locate(&request(
            json!({"cellTowers": [{"radioType": "gsm", "mobileCountryCode": 262,
            "mobileNetworkCode": 1, "locationAreaCode": 1001, "cellId": 999}]}),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(area.fallback, Some(FallbackKind::Lacf));
    assert_eq!(area.accuracy, 50_000.0);
    let no_lacf = locator
        .locate(&request(json!({"fallbacks": {"lacf": false}, "cellTowers": [{"radioType": "gsm",
            "mobileCountryCode": 262, "mobileNetworkCode": 1, "locationAreaCode": 1001, "cellId": 999}]})))
        .await
        .unwrap();
    assert_eq!(no_lacf, None);

    // Empty, or only invalid entries: not found, not an error.
    assert_eq!(
        locator.locate(&GeolocateRequest::default()).await.unwrap(),
        None
    );
    let invalid = request(
        json!({"wifiAccessPoints": [{"macAddress": "00:00:00:00:00:00"}, {"macAddress": "zz"}]}),
    );
    assert_eq!(locator.locate(&invalid).await.unwrap(), None);
}

#[tokio::test]
async fn online_answers_are_cached_hits_and_misses() {
    let server = MockServer::start().await;
    for mac in ["aa:bb:cc:00:00:01", "aa:bb:cc:00:00:02"] {
        Mock::given(method("GET"))
            .and(path("/api/v2/network/search"))
            .and(query_param("netid", mac))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(common::json("wigle/search_page1.json")),
            )
            .expect(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/cell/get"))
        .and(query_param("cellid", "77"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(common::json("opencellid/not_found.json")),
        )
        .expect(1)
        .mount(&server)
        .await;
    let cache = Arc::new(Cache::in_memory(CacheConfig::default()).unwrap());
    let wigle = WigleClient::new(WigleConfig::new("AIDtest", "secret").with_base_url(server.uri()))
        .unwrap();
    let ocid = OpenCellIdClient::new(OpenCellIdConfig::new("pk.test").with_base_url(server.uri()))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let locator = Locator::builder()
        .database(Arc::new(GeoDb::open(dir.path()).unwrap()))
        .opencellid(ocid, Some(Arc::clone(&cache)))
        .wigle(wigle, Some(Arc::clone(&cache)))
        .build()
        .unwrap();
    let req = request(json!({
        "wifiAccessPoints": [
            {"macAddress": "aa:bb:cc:00:00:01", "signalStrength": -50},
            {"macAddress": "aa:bb:cc:00:00:02", "signalStrength": -70}
        ],
        "cellTowers": [{"radioType": "lte", "mobileCountryCode": 262, "mobileNetworkCode": 1,
                        "locationAreaCode": 7, "cellId": 77}]
    }));
    let first = locator.locate(&req).await.unwrap().unwrap();
    // The same request again costs no quota: every answer, the miss included, is cached.
    let second = locator.locate(&req).await.unwrap().unwrap();
    assert_eq!(first, second);
    let at = LatLon::new(first.location.lat, first.location.lng).unwrap();
    assert!(
        at.distance_m(LatLon::new(52.5202, 13.4049).unwrap()) < 40.0,
        "{first:?}"
    );
    // The mock server checks on drop that each endpoint was called exactly once.
}

#[tokio::test]
async fn provider_error_is_returned_only_when_nothing_was_found() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v2/network/search"))
        .respond_with(
            ResponseTemplate::new(429).set_body_json(common::json("wigle/too_many_queries.json")),
        )
        .mount(&server)
        .await;
    let wigle = WigleClient::new(WigleConfig::new("AIDtest", "secret").with_base_url(server.uri()))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let locator = Locator::builder()
        .database(offline_db(dir.path()))
        .wigle(wigle, None)
        .build()
        .unwrap();
    let unknown = request(json!({"wifiAccessPoints": [
        {"macAddress": "de:ad:be:ef:00:01"}, {"macAddress": "de:ad:be:ef:00:02"}]}));
    assert!(matches!(
        locator.locate(&unknown).await,
        Err(Error::QuotaExhausted { .. })
    ));
    // One AP known offline and one cell known: the cell answers, the quota error is only logged.
    let mixed = request(json!({
        "wifiAccessPoints": [{"macAddress": "aa:bb:cc:00:00:01"}, {"macAddress": "de:ad:be:ef:00:02"}],
        "cellTowers": [{"radioType": "gsm", "mobileCountryCode": 262, "mobileNetworkCode": 1,
                        "locationAreaCode": 1001, "cellId": 11}]
    }));
    assert!(locator.locate(&mixed).await.unwrap().is_some());
}

#[test]
fn a_locator_needs_a_source() {
    assert!(matches!(Locator::builder().build(), Err(Error::Config(_))));
}

#[tokio::test]
async fn no_quota_is_spent_once_the_answer_is_precise() {
    let server = MockServer::start().await;
    for (mac, calls) in [
        ("aa:bb:cc:00:00:01", 1),
        ("aa:bb:cc:00:00:02", 1),
        ("aa:bb:cc:00:00:09", 0),
    ] {
        Mock::given(method("GET"))
            .and(path("/api/v2/network/search"))
            .and(query_param("netid", mac))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(common::json("wigle/search_page1.json")),
            )
            .expect(calls)
            .mount(&server)
            .await;
    }
    let wigle = WigleClient::new(WigleConfig::new("AIDtest", "secret").with_base_url(server.uri()))
        .unwrap();
    let locator = Locator::builder().wigle(wigle, None).build().unwrap();
    // Strongest first: the two known APs are asked, then the answer is precise and the weakest
    // AP is never looked up.
    let req = request(json!({"wifiAccessPoints": [
        {"macAddress": "aa:bb:cc:00:00:09", "signalStrength": -90},
        {"macAddress": "aa:bb:cc:00:00:01", "signalStrength": -50},
        {"macAddress": "aa:bb:cc:00:00:02", "signalStrength": -60}
    ]}));
    let r = locator.locate(&req).await.unwrap().unwrap();
    assert!(r.accuracy <= 500.0);
}

#[test]
fn locator_is_shareable_across_tasks() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: T) {}
    let dir = tempfile::tempdir().unwrap();
    let locator = Locator::builder()
        .database(Arc::new(GeoDb::open(dir.path()).unwrap()))
        .build()
        .unwrap();
    send_sync(&locator);
    let req = GeolocateRequest::default();
    // The future can be spawned on a multi-threaded runtime (the server does).
    send(locator.locate(&req));
}
