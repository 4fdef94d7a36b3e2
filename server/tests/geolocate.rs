//! The geolocation endpoints in process, against an offline database imported at test time from
//! small CSV files: the Ichnaea request examples of reference/geo.md §1 (full request, WiFi,
//! cells, the `lacf` fallback, NR, gzip, empty body, malformed JSON, per-entry validation,
//! `?key=`), geosubmit feeding later answers, the seed's `/api/locate/*` shapes, the
//! `location_resolved` event without MACs, and WiGLE/OpenCellID through mocks on 127.0.0.1.

mod common;

use std::io::Write as _;
use std::path::Path;

use axum::body::{Body, to_bytes};
use axum::http::Request;
use event_bus::{Filter, Position, Role};
use geo_locate::{GeoDb, ImportOptions, LatLon};
use serde_json::{Value, json};
use tower::ServiceExt;
use vigil_server::{AppState, GeoConfig, ServerConfig, app};
use wiremock::matchers::{basic_auth, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Two APs near Paris' Hôtel de Ville, seen twice each, one Bluetooth beacon.
const WIGLE_CSV: &str = "\
WigleWifi-1.6,appRelease=2.70,model=Pixel 7,release=14,device=panther,display=UQ1A,board=panther,brand=google,star=Sol,body=3,subBody=0
MAC,SSID,AuthMode,FirstSeen,Channel,Frequency,RSSI,CurrentLatitude,CurrentLongitude,AltitudeMeters,AccuracyMeters,RCOIs,MfgrId,Type
01:23:45:67:89:ab,mairie,[WPA2-PSK-CCMP][ESS],2024-05-01 10:00:00,11,2462,-55,48.85660,2.35220,40,5,,,WIFI
01:23:45:67:89:ab,mairie,[WPA2-PSK-CCMP][ESS],2024-05-01 10:00:05,11,2462,-50,48.85662,2.35222,40,5,,,WIFI
01:23:45:67:89:cd,cafe,[WPA2-PSK-CCMP][ESS],2024-05-01 10:00:00,6,2437,-60,48.85700,2.35280,40,5,,,WIFI
01:23:45:67:89:cd,cafe,[WPA2-PSK-CCMP][ESS],2024-05-01 10:00:05,6,2437,-62,48.85702,2.35282,40,5,,,WIFI
aa:bb:cc:00:00:09,hidden_nomap,[WPA2-PSK-CCMP][ESS],2024-05-01 10:00:05,6,2437,-62,48.85702,2.35282,40,5,,,WIFI
";

/// A WCDMA cell (the Ichnaea example's key), an LTE area with two cells, an NR cell.
const CELLS_CSV: &str = "\
radio,mcc,net,area,cell,unit,lon,lat,range,samples,changeable,created,updated,averageSignal
UMTS,208,1,2,1234567,3,2.35300,48.85700,2000,40,1,1459692000,1700000000,0
LTE,208,1,3,100,,2.30000,48.80000,3000,12,1,1459692000,1700000000,0
LTE,208,1,3,101,,2.40000,48.90000,3000,12,1,1459692000,1700000000,0
NR,208,1,70000,68719476734,,2.29450,48.85840,800,9,1,1459692000,1700000000,0
";

/// Where the two APs are (their midpoint, roughly).
fn ap_midpoint() -> LatLon {
    LatLon::new(48.85681, 2.35251).unwrap()
}

struct Fixture {
    _dir: tempfile::TempDir,
    state: AppState,
    viewer: String,
    operator: String,
    agent: String,
}

fn import(dir: &Path) {
    for (name, text) in [("wigle.csv", WIGLE_CSV), ("cell_towers.csv", CELLS_CSV)] {
        let file = dir.join(name);
        std::fs::write(&file, text).unwrap();
        let report = GeoDb::import_file(
            dir.join("geodb"),
            &file,
            &ImportOptions::default(),
            &mut |_| {},
        )
        .unwrap();
        assert!(report.imported > 0, "{name}: {report:?}");
    }
}

async fn fixture_with(geo: GeoConfig, with_data: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    if with_data {
        import(dir.path());
    }
    let (state, _) = AppState::in_memory(ServerConfig {
        data_dir: dir.path().to_owned(),
        geo,
        ..common::config()
    })
    .await
    .unwrap();
    let auth = state.auth();
    let viewer = auth.create_token(Role::Viewer, "geo test").await.unwrap().1;
    let operator = auth
        .create_token(Role::Operator, "geo test")
        .await
        .unwrap()
        .1;
    let agent = auth.create_token(Role::Agent, "geo test").await.unwrap().1;
    Fixture {
        viewer,
        operator,
        agent,
        state,
        _dir: dir,
    }
}

async fn fixture() -> Fixture {
    fixture_with(GeoConfig::default(), true).await
}

/// POSTs raw bytes with the given headers; the status and the body as JSON (or a string).
async fn post_raw(
    state: &AppState,
    uri: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, Value, String) {
    let mut request = Request::post(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app(state.clone())
        .oneshot(request.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = to_bytes(response.into_body(), 1 << 22).await.unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        text,
    )
}

async fn post(state: &AppState, uri: &str, token: &str, body: &Value) -> (u16, Value) {
    let auth = format!("Bearer {token}");
    let (status, json, _) = post_raw(
        state,
        uri,
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        body.to_string().into_bytes(),
    )
    .await;
    (status, json)
}

fn at(answer: &Value) -> LatLon {
    LatLon::new(
        answer["location"]["lat"].as_f64().expect("lat"),
        answer["location"]["lng"].as_f64().expect("lng"),
    )
    .unwrap()
}

fn assert_envelope(body: &Value, code: u16, domain: &str, reason: &str) {
    assert_eq!(body["error"]["code"], code, "{body}");
    assert_eq!(body["error"]["errors"][0]["domain"], domain, "{body}");
    assert_eq!(body["error"]["errors"][0]["reason"], reason, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
}

/// The full example request of Ichnaea's geolocate docs (geo.md §1.1).
fn ichnaea_example() -> Value {
    json!({
        "carrier": "Telecom",
        "considerIp": true,
        "homeMobileCountryCode": 208,
        "homeMobileNetworkCode": 1,
        "bluetoothBeacons": [{"macAddress": "ff:74:27:89:5a:77", "age": 2000, "name": "beacon", "signalStrength": -110}],
        "cellTowers": [{"radioType": "wcdma", "mobileCountryCode": 208, "mobileNetworkCode": 1, "locationAreaCode": 2,
                        "cellId": 1234567, "age": 1, "psc": 3, "signalStrength": -60, "timingAdvance": 1}],
        "wifiAccessPoints": [
            {"macAddress": "01:23:45:67:89:ab", "age": 3, "channel": 11, "frequency": 2412, "signalStrength": -51,
             "signalToNoiseRatio": 13},
            {"macAddress": "01:23:45:67:89:cd"}
        ],
        "fallbacks": {"lacf": true, "ipf": true}
    })
}

#[tokio::test]
async fn the_full_ichnaea_example_answers_from_wifi() {
    let f = fixture().await;
    let (status, body) = post(&f.state, "/v1/geolocate", &f.viewer, &ichnaea_example()).await;
    assert_eq!(status, 200, "{body}");
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["accuracy", "location"], "no fallback key: {body}");
    let acc = body["accuracy"].as_f64().unwrap();
    assert!((10.0..=500.0).contains(&acc), "WiFi-class accuracy: {body}");
    let d = at(&body).distance_m(ap_midpoint());
    assert!(d < 60.0 && d < acc, "{d} m from the APs: {body}");
}

#[tokio::test]
async fn google_shaped_wifi_with_any_mac_form() {
    let f = fixture().await;
    let (status, body) = post(
        &f.state,
        "/v1/geolocate",
        &f.viewer,
        &json!({"considerIp": false, "wifiAccessPoints": [
            {"macAddress": "01-23-45-67-89-AB", "signalStrength": -50},
            {"macAddress": "0123.4567.89cd", "signalStrength": -65}
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(at(&body).distance_m(ap_midpoint()) < 60.0, "{body}");
    // One AP alone never locates anyone (privacy): not found.
    let (status, body) = post(
        &f.state,
        "/v1/geolocate",
        &f.viewer,
        &json!({"wifiAccessPoints": [{"macAddress": "01:23:45:67:89:ab"}]}),
    )
    .await;
    assert_eq!(status, 404);
    assert_envelope(&body, 404, "geolocation", "notFound");
}

#[tokio::test]
async fn cells_exact_area_fallback_and_nr() {
    let f = fixture().await;
    let cell = |radio: &str, lac: i64, cid: i64| {
        json!({"radioType": radio, "mobileCountryCode": 208, "mobileNetworkCode": 1,
               "locationAreaCode": lac, "cellId": cid, "signalStrength": -80})
    };
    // The exact cell.
    let (status, body) = post(
        &f.state,
        "/v1/geolocate",
        &f.viewer,
        &json!({"cellTowers": [cell("wcdma", 2, 1_234_567)]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("fallback").is_none(), "{body}");
    assert!(
        at(&body).distance_m(LatLon::new(48.857, 2.353).unwrap()) < 5.0,
        "{body}"
    );
    let acc = body["accuracy"].as_f64().unwrap();
    assert!((1_000.0..=50_000.0).contains(&acc), "{body}");

    // An unknown cell of a known area: the area answers, marked lacf.
    let unknown = json!({"cellTowers": [cell("lte", 3, 999)]});
    let (status, body) = post(&f.state, "/v1/geolocate", &f.viewer, &unknown).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["fallback"], "lacf", "{body}");
    let acc = body["accuracy"].as_f64().unwrap();
    assert!((50_000.0..=500_000.0).contains(&acc), "{body}");
    assert!(
        at(&body).distance_m(LatLon::new(48.85, 2.35).unwrap()) < 1_000.0,
        "{body}"
    );

    // The same with the area fallback turned off: not found.
    let mut no_lacf = unknown.clone();
    no_lacf["fallbacks"] = json!({"lacf": false});
    let (status, body) = post(&f.state, "/v1/geolocate", &f.viewer, &no_lacf).await;
    assert_eq!(status, 404, "{body}");
    assert_envelope(&body, 404, "geolocation", "notFound");

    // Google's NR shape: radioType nr and a 36-bit newRadioCellId.
    let (status, body) = post(
        &f.state,
        "/v1/geolocate",
        &f.viewer,
        &json!({"radioType": "nr", "cellTowers": [{"mobileCountryCode": 208, "mobileNetworkCode": 1,
                "locationAreaCode": 70000, "newRadioCellId": 68_719_476_734_i64}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        at(&body).distance_m(LatLon::new(48.8584, 2.2945).unwrap()) < 5.0,
        "{body}"
    );
}

#[tokio::test]
async fn one_bad_cell_is_dropped_and_the_rest_answers() {
    let f = fixture().await;
    let (status, body) = post(
        &f.state,
        "/v1/geolocate",
        &f.viewer,
        &json!({"cellTowers": [
            {"radioType": "wcdma", "mobileCountryCode": 208, "mobileNetworkCode": 1, "cellId": 1234567},
            {"radioType": "6g", "mobileCountryCode": 208, "mobileNetworkCode": 1, "locationAreaCode": 2, "cellId": 5},
            {"radioType": "wcdma", "mobileCountryCode": 208, "mobileNetworkCode": 1, "locationAreaCode": 2,
             "cellId": 1234567, "signalStrength": 40, "timingAdvance": 99}
        ], "wifiAccessPoints": [{"macAddress": "zz:zz"}, {"macAddress": "00:00:00:00:00:00"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        at(&body).distance_m(LatLon::new(48.857, 2.353).unwrap()) < 5.0,
        "{body}"
    );
}

#[tokio::test]
async fn gzip_bodies_are_inflated() {
    let f = fixture().await;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(ichnaea_example().to_string().as_bytes())
        .unwrap();
    let compressed = gz.finish().unwrap();
    let auth = format!("Bearer {}", f.viewer);
    let (status, body, _) = post_raw(
        &f.state,
        "/v1/geolocate",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ],
        compressed,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(at(&body).distance_m(ap_midpoint()) < 60.0, "{body}");

    // Not gzip after all: a parse error saying so, not a panic or a 500.
    let (status, body, _) = post_raw(
        &f.state,
        "/v1/geolocate",
        &[("authorization", &auth), ("content-encoding", "gzip")],
        b"{\"not\": \"gzip\"}".to_vec(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_envelope(&body, 400, "global", "parseError");
    assert!(
        body["error"]["details"]["decode"]
            .as_str()
            .unwrap()
            .contains("gzip"),
        "{body}"
    );
    let (status, body, _) = post_raw(
        &f.state,
        "/v1/geolocate",
        &[("authorization", &auth), ("content-encoding", "br")],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_envelope(&body, 400, "global", "parseError");
}

#[tokio::test]
async fn empty_bodies_are_not_found_and_bad_json_is_a_parse_error() {
    let f = fixture().await;
    let auth = format!("Bearer {}", f.viewer);
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    for empty in [&b""[..], b"  \n", b"{}"] {
        let (status, body, _) = post_raw(&f.state, "/v1/geolocate", &headers, empty.to_vec()).await;
        assert_eq!(status, 404, "{empty:?}: {body}");
        assert_envelope(&body, 404, "geolocation", "notFound");
        assert_eq!(body["error"]["message"], "Not found");
    }
    let (status, body, _) = post_raw(
        &f.state,
        "/v1/geolocate",
        &headers,
        b"{\"wifiAccessPoints\": [".to_vec(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_envelope(&body, 400, "global", "parseError");
    assert!(body["error"]["details"]["decode"].is_string(), "{body}");
    let (status, body, _) = post_raw(
        &f.state,
        "/v1/geolocate",
        &headers,
        b"{\"wifiAccessPoints\": 5}".to_vec(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_envelope(&body, 400, "global", "parseError");
    assert!(body["error"]["details"]["validation"].is_string(), "{body}");
    // Larger than the body cap: the envelope too.
    let huge = vec![b' '; 2 * 1024 * 1024];
    let (status, body, _) = post_raw(&f.state, "/v1/geolocate", &headers, huge).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], 413, "{body}");
}

#[tokio::test]
async fn key_in_the_query_for_ichnaea_clients() {
    let f = fixture().await;
    let body = ichnaea_example().to_string().into_bytes();
    let json_type = [("content-type", "application/json")];
    let uri = format!("/v1/geolocate?key={}", f.viewer);
    let (status, answer, _) = post_raw(&f.state, &uri, &json_type, body.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert!(at(&answer).distance_m(ap_midpoint()) < 60.0);

    for uri in [
        "/v1/geolocate?key=vgl_0000000000000000000000000000000000000000000000000000000000000000",
        "/v1/geolocate?key=",
        "/v1/geolocate",
    ] {
        let (status, answer, _) = post_raw(&f.state, uri, &json_type, body.clone()).await;
        assert_eq!(status, 400, "{uri}: {answer}");
        assert_envelope(&answer, 400, "usageLimits", "keyInvalid");
    }
    // A wrong bearer token is keyInvalid as well.
    let (status, answer, _) = post_raw(
        &f.state,
        "/v1/geolocate",
        &[
            ("authorization", "Bearer vgl_nope"),
            ("content-type", "application/json"),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(status, 400);
    assert_envelope(&answer, 400, "usageLimits", "keyInvalid");
    // `?key=` is only for the Ichnaea endpoints: the seed routes still want a header.
    let (status, _, _) = post_raw(
        &f.state,
        &format!("/api/locate/wifi?key={}", f.viewer),
        &json_type,
        br#"{"bssids": ["01:23:45:67:89:ab", "01:23:45:67:89:cd"]}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn geosubmit_teaches_later_answers() {
    let f = fixture().await;
    let spot = LatLon::new(45.764, 4.8357).unwrap();
    let macs = ["02:aa:00:00:00:01", "02:aa:00:00:00:02"];
    let locate = json!({"wifiAccessPoints": [
        {"macAddress": macs[0], "signalStrength": -55},
        {"macAddress": macs[1], "signalStrength": -70}
    ]});
    let (status, _) = post(&f.state, "/v1/geolocate", &f.viewer, &locate).await;
    assert_eq!(status, 404, "unknown before the submission");

    let report = |at: LatLon| {
        json!({"items": [{
            "timestamp": 1_700_000_000_000_i64,
            "position": {"latitude": at.lat, "longitude": at.lon, "accuracy": 8.0, "age": 500, "source": "gps"},
            "wifiAccessPoints": [
                {"macAddress": macs[0], "signalStrength": -55, "age": 700},
                {"macAddress": macs[1], "signalStrength": -70, "age": 300, "radioType": "802.11n"},
                {"macAddress": "02:aa:00:00:00:03", "ssid": "car_nomap"}
            ]
        }]})
    };
    // A viewer may not submit.
    let (status, body) = post(&f.state, "/v2/geosubmit", &f.viewer, &report(spot)).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], 403);
    assert_eq!(body["error"]["errors"][0]["reason"], "forbidden");
    // An operator may; an agent may, with the key in the URL as NeoStumbler sends it.
    let (status, body) = post(&f.state, "/v2/geosubmit", &f.operator, &report(spot)).await;
    assert_eq!((status, &body), (200, &json!({})));
    let (status, body, _) = post_raw(
        &f.state,
        &format!("/v2/geosubmit?key={}", f.agent),
        &[("content-type", "application/json")],
        report(spot.offset(20.0, 0.0)).to_string().into_bytes(),
    )
    .await;
    assert_eq!((status, &body), (200, &json!({})));

    let (status, body) = post(&f.state, "/v1/geolocate", &f.viewer, &locate).await;
    assert_eq!(status, 200, "{body}");
    let d = at(&body).distance_m(spot.offset(10.0, 0.0));
    assert!(d < 15.0, "{d} m: {body}");
    // The opted-out network was never stored.
    let (status, _) = post(
        &f.state,
        "/v1/geolocate",
        &f.viewer,
        &json!({"wifiAccessPoints": [{"macAddress": "02:aa:00:00:00:03"}, {"macAddress": "02:aa:00:00:00:04"}]}),
    )
    .await;
    assert_eq!(status, 404);

    // Bad submissions: empty body and broken JSON are parse errors.
    let (status, body, _) = post_raw(
        &f.state,
        "/v2/geosubmit",
        &[("authorization", &format!("Bearer {}", f.operator))],
        Vec::new(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_envelope(&body, 400, "global", "parseError");
}

#[tokio::test]
async fn the_seed_routes_keep_the_seed_shapes() {
    let f = fixture().await;
    let (status, body) = post(
        &f.state,
        "/api/locate/wifi",
        &f.viewer,
        &json!({"bssids": ["01:23:45:67:89:AB", "01:23:45:67:89:CD"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    let here = LatLon::new(
        body["latitude"].as_f64().unwrap(),
        body["longitude"].as_f64().unwrap(),
    )
    .unwrap();
    assert!(here.distance_m(ap_midpoint()) < 60.0, "{body}");
    assert!(
        body["accuracy_m"]
            .as_u64()
            .is_some_and(|a| (10..=500).contains(&a)),
        "{body}"
    );
    assert_eq!(body["confidence"], 0.95);

    let (status, body) = post(
        &f.state,
        "/api/locate/wifi",
        &f.agent,
        &json!({"bssids": ["AA:BB:CC:DD:EE:FF", "11:22:33:44:55:66"]}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"success": false, "error": "Could not locate"}));

    // The seed's hybrid example: cells in its shape (`signal`), no radio type.
    let (status, body) = post(
        &f.state,
        "/api/locate/hybrid",
        &f.viewer,
        &json!({"cell_towers": [{"mcc": 208, "mnc": 1, "lac": 2, "cid": 1234567, "signal": -95}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["sources"], json!(["cell"]));
    let acc = body["accuracy_m"].as_u64().unwrap();
    assert!((1_000..=50_000).contains(&acc), "{body}");

    let (status, body) = post(
        &f.state,
        "/api/locate/hybrid",
        &f.viewer,
        &json!({"bssids": ["01:23:45:67:89:ab", "01:23:45:67:89:cd"],
                "cell_towers": [{"mcc": 208, "mnc": 1, "lac": 2, "cid": 1234567, "signal_strength": -95}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["sources"],
        json!(["wifi"]),
        "the most precise agreeing fix: {body}"
    );

    let (status, body) = post(
        &f.state,
        "/api/locate/hybrid",
        &f.viewer,
        &json!({"cell_towers": 3}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "bad_json");
}

#[tokio::test]
async fn answers_are_published_without_macs() {
    let f = fixture().await;
    let (status, _) = post(&f.state, "/v1/geolocate", &f.viewer, &ichnaea_example()).await;
    assert_eq!(status, 200);
    let bus = f.state.bus();
    let replay = bus
        .since(
            &Filter::all(),
            Position {
                epoch: bus.epoch(),
                seq: 0,
            },
        )
        .unwrap();
    let events: Vec<Value> = replay
        .events
        .iter()
        .map(|e| serde_json::from_slice(e.json()).unwrap())
        .filter(|e: &Value| e["kind"] == "location_resolved")
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e["room"], "monitoring");
    assert_eq!(e["data"]["endpoint"], "/v1/geolocate");
    assert_eq!(e["data"]["source"], "wifi");
    assert_eq!(e["data"]["counts"]["wifi"], 2);
    assert_eq!(e["data"]["counts"]["cells"], 1);
    assert!(e["data"]["accuracy_m"].as_f64().is_some());
    let text = e.to_string().to_ascii_lowercase();
    for secret in ["01:23:45:67:89", "0123456789", "ff:74:27", "1234567"] {
        assert!(!text.contains(secret), "{secret} leaked into {text}");
    }
}

#[tokio::test]
async fn the_server_starts_without_a_database() {
    let f = fixture_with(GeoConfig::default(), false).await;
    let (status, body) = post(&f.state, "/v1/geolocate", &f.viewer, &ichnaea_example()).await;
    assert_eq!(status, 404, "{body}");
    assert_envelope(&body, 404, "geolocation", "notFound");
    // Half a WiGLE credential is a clear configuration error, not a silent offline server.
    let err = AppState::in_memory(ServerConfig {
        geo: GeoConfig {
            wigle_api_name: Some("AIDonly".into()),
            ..GeoConfig::default()
        },
        ..common::config()
    })
    .await
    .unwrap_err();
    assert!(err.to_string().contains("WiGLE"), "{err}");
}

const WIGLE_NAME: &str = "AIDgeo-test-name";
const WIGLE_TOKEN: &str = "wigle-token-never-leaves";
const OCID_KEY: &str = "pk.ocid-key-never-leaves";

fn wigle_result(mac: &str, lat: f64, lon: f64) -> Value {
    json!({"success": true, "totalResults": 1, "first": 1, "last": 1, "resultCount": 1,
           "searchAfter": null, "search_after": null,
           "results": [{"trilat": lat, "trilong": lon, "ssid": "shop", "qos": 2, "netid": mac.to_uppercase(),
                        "type": "infra", "channel": 6, "encryption": "wpa2", "country": "FR", "city": "Lyon",
                        "firsttime": "2024-05-01T10:00:00.000Z", "lasttime": "2024-05-03T10:00:00.000Z",
                        "lastupdt": "2024-05-03T10:05:00.000Z"}]})
}

#[tokio::test]
async fn wigle_and_opencellid_answer_when_configured() {
    let mock = MockServer::start().await;
    let lyon = LatLon::new(45.7640, 4.8357).unwrap();
    let second = lyon.offset(40.0, 10.0);
    for (mac, p) in [("66:77:88:00:00:01", lyon), ("66:77:88:00:00:02", second)] {
        Mock::given(method("GET"))
            .and(path("/api/v2/network/search"))
            .and(query_param("netid", mac))
            .and(basic_auth(WIGLE_NAME, WIGLE_TOKEN))
            .respond_with(ResponseTemplate::new(200).set_body_json(wigle_result(mac, p.lat, p.lon)))
            .expect(1)
            .mount(&mock)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/cell/get"))
        .and(query_param("key", OCID_KEY))
        .and(query_param("cellid", "4242"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "lon": 4.85, "lat": 45.75, "mcc": 208, "mnc": 20, "lac": 9, "cellid": 4242,
            "averageSignalStrength": -90, "range": 1500, "samples": 12, "changeable": 1, "radio": "LTE"})))
        .expect(1)
        .mount(&mock)
        .await;
    let f = fixture_with(
        GeoConfig {
            wigle_api_name: Some(WIGLE_NAME.into()),
            wigle_api_token: Some(WIGLE_TOKEN.into()),
            opencellid_api_key: Some(OCID_KEY.into()),
            wigle_base_url: Some(mock.uri()),
            opencellid_base_url: Some(mock.uri()),
            ..GeoConfig::default()
        },
        true,
    )
    .await;
    assert_eq!(f.state.geo().online_sources(), ["opencellid", "wigle"]);
    let wifi = json!({"wifiAccessPoints": [
        {"macAddress": "66:77:88:00:00:01", "signalStrength": -50},
        {"macAddress": "66:77:88:00:00:02", "signalStrength": -60}
    ]});
    let auth = format!("Bearer {}", f.viewer);
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let (status, body, text) = post_raw(
        &f.state,
        "/v1/geolocate",
        &headers,
        wifi.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        at(&body).distance_m(lyon.offset(20.0, 5.0)) < 60.0,
        "{body}"
    );
    // Asked again: answered from the cache, the mocks' `expect(1)` hold.
    let (status, _, text2) = post_raw(
        &f.state,
        "/v1/geolocate",
        &headers,
        wifi.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, 200);

    let cell = json!({"cellTowers": [{"radioType": "lte", "mobileCountryCode": 208, "mobileNetworkCode": 20,
                                       "locationAreaCode": 9, "cellId": 4242}]});
    let (status, body, text3) = post_raw(
        &f.state,
        "/v1/geolocate",
        &headers,
        cell.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        at(&body).distance_m(LatLon::new(45.75, 4.85).unwrap()) < 5.0,
        "{body}"
    );

    let events = {
        let bus = f.state.bus();
        let replay = bus
            .since(
                &Filter::all(),
                Position {
                    epoch: bus.epoch(),
                    seq: 0,
                },
            )
            .unwrap();
        replay
            .events
            .iter()
            .map(|e| String::from_utf8_lossy(e.json()).into_owned())
            .collect::<Vec<_>>()
            .join("\n")
    };
    for secret in [WIGLE_NAME, WIGLE_TOKEN, OCID_KEY] {
        for text in [&text, &text2, &text3, &events] {
            assert!(!text.contains(secret), "{secret} leaked");
        }
    }
    assert!(!format!("{:?}", f.state.config()).contains(WIGLE_TOKEN));
    mock.verify().await;
}

#[tokio::test]
async fn an_exhausted_quota_is_daily_limit_exceeded() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/cell/get"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"error": "Too many requests", "code": 6})),
        )
        .mount(&mock)
        .await;
    let f = fixture_with(
        GeoConfig {
            opencellid_api_key: Some(OCID_KEY.into()),
            opencellid_base_url: Some(mock.uri()),
            ..GeoConfig::default()
        },
        false,
    )
    .await;
    let (status, body) = post(
        &f.state,
        "/v1/geolocate",
        &f.viewer,
        &json!({"cellTowers": [{"radioType": "lte", "mobileCountryCode": 208, "mobileNetworkCode": 20,
                                 "locationAreaCode": 9, "cellId": 77}]}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_envelope(&body, 403, "usageLimits", "dailyLimitExceeded");
    assert!(!body.to_string().contains(OCID_KEY));

    // Unreachable provider: serviceUnavailable.
    let f = fixture_with(
        GeoConfig {
            opencellid_api_key: Some(OCID_KEY.into()),
            opencellid_base_url: Some("http://127.0.0.1:9".into()),
            ..GeoConfig::default()
        },
        false,
    )
    .await;
    let (status, body) = post(
        &f.state,
        "/v1/geolocate",
        &f.viewer,
        &json!({"cellTowers": [{"radioType": "lte", "mobileCountryCode": 208, "mobileNetworkCode": 20,
                                 "locationAreaCode": 9, "cellId": 78}]}),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_envelope(&body, 503, "global", "serviceUnavailable");
}

#[tokio::test]
async fn the_openapi_document_lists_the_geolocation_routes() {
    let f = fixture_with(GeoConfig::default(), false).await;
    let response = app(f.state.clone())
        .oneshot(
            Request::get("/api/openapi.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let doc: Value =
        serde_json::from_slice(&to_bytes(response.into_body(), 1 << 22).await.unwrap()).unwrap();
    for path in [
        "/v1/geolocate",
        "/v2/geosubmit",
        "/api/locate/wifi",
        "/api/locate/hybrid",
    ] {
        assert!(
            doc["paths"][path]["post"].is_object(),
            "{path} is not documented"
        );
    }
    assert_eq!(doc["components"]["securitySchemes"]["key"]["in"], "query");
}

// ---- The IP fallback (`considerIp`, `fallback: "ipf"`).

/// A GeoIP city database: an IPv4 /24 and an IPv6 /48 with accuracy radii, and an IPv4 /24
/// without one (as DB-IP City Lite writes them).
fn city_mmdb() -> Vec<u8> {
    use geo_locate::ip::writer::MmdbWriter;
    let mut w = MmdbWriter::new("GeoLite2-City");
    w.insert(
        "203.0.113.0".parse().unwrap(),
        24,
        52.52,
        13.405,
        Some(20),
        Some("DE"),
    )
    .unwrap();
    w.insert(
        "2001:db8:1::".parse().unwrap(),
        48,
        -33.87,
        151.21,
        Some(50),
        Some("AU"),
    )
    .unwrap();
    w.insert(
        "198.51.100.0".parse().unwrap(),
        24,
        40.4,
        -3.7,
        None,
        Some("ES"),
    )
    .unwrap();
    w.to_bytes()
}

/// A data directory with the CSV fixtures and the GeoIP database imported.
fn data_with_ip() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    import(dir.path());
    let file = dir.path().join("city.mmdb");
    std::fs::write(&file, city_mmdb()).unwrap();
    let report = GeoDb::import_ip_database(dir.path().join("geodb"), &file).unwrap();
    assert_eq!(report.database_type, "GeoLite2-City");
    dir
}

async fn fixture_ip(trusted_proxies: &[&str]) -> Fixture {
    let dir = data_with_ip();
    let (state, _) = AppState::in_memory(ServerConfig {
        data_dir: dir.path().to_owned(),
        geo: GeoConfig {
            trusted_proxies: trusted_proxies.iter().map(|s| s.to_string()).collect(),
            ..common::config().geo
        },
        ..common::config()
    })
    .await
    .unwrap();
    let viewer = state
        .auth()
        .create_token(Role::Viewer, "geo test")
        .await
        .unwrap()
        .1;
    Fixture {
        operator: viewer.clone(),
        agent: viewer.clone(),
        viewer,
        state,
        _dir: dir,
    }
}

/// POSTs `/v1/geolocate` as if from `peer` (the extension `serve` adds), with extra headers.
async fn locate_from(
    f: &Fixture,
    peer: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> (u16, Value) {
    let peer: std::net::IpAddr = peer.parse().unwrap();
    let mut request = Request::post("/v1/geolocate")
        .header("authorization", format!("Bearer {}", f.viewer))
        .header("content-type", "application/json")
        .extension(axum::extract::ConnectInfo(std::net::SocketAddr::new(
            peer, 40_000,
        )));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app(f.state.clone())
        .oneshot(request.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Two WiFi APs nobody knows.
fn unknown_wifi() -> Value {
    json!({"wifiAccessPoints": [
        {"macAddress": "02:00:00:00:aa:01", "signalStrength": -60},
        {"macAddress": "02:00:00:00:aa:02", "signalStrength": -70}
    ]})
}

#[tokio::test]
async fn ip_fallback_answers_ipv4_and_ipv6_callers() {
    let f = fixture_ip(&[]).await;
    let (status, body) = locate_from(&f, "203.0.113.7", &[], &unknown_wifi()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["fallback"], "ipf");
    assert_eq!(body["accuracy"], 20_000.0);
    assert!(at(&body).distance_m(LatLon::new(52.52, 13.405).unwrap()) < 1.0);
    // An empty request asks for the address alone (Firefox sends `{}`).
    let (status, body) = locate_from(&f, "2001:db8:1::5", &[], &json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["fallback"].as_str(), body["accuracy"].as_f64()),
        (Some("ipf"), Some(50_000.0))
    );
    // A database without an accuracy radius answers with 25 km.
    let (status, body) = locate_from(&f, "198.51.100.9", &[], &json!({})).await;
    assert_eq!(
        (status, body["accuracy"].as_f64()),
        (200, Some(25_000.0)),
        "{body}"
    );
    // Known APs answer themselves: no fallback.
    let known = json!({"considerIp": true, "wifiAccessPoints": [
        {"macAddress": "01:23:45:67:89:ab", "signalStrength": -50},
        {"macAddress": "01:23:45:67:89:cd", "signalStrength": -60}
    ]});
    let (status, body) = locate_from(&f, "203.0.113.7", &[], &known).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("fallback").is_none(), "{body}");
}

#[tokio::test]
async fn ip_fallback_misses_private_addresses_and_considerip_false() {
    let f = fixture_ip(&[]).await;
    for peer in [
        "8.8.8.8",
        "192.168.1.10",
        "127.0.0.1",
        "::1",
        "fd00::7",
        "100.64.0.9",
    ] {
        let (status, body) = locate_from(&f, peer, &[], &unknown_wifi()).await;
        assert_eq!(status, 404, "{peer}: {body}");
        assert_eq!(body["error"]["errors"][0]["reason"], "notFound");
    }
    let mut off = unknown_wifi();
    off["considerIp"] = json!(false);
    let (status, _) = locate_from(&f, "203.0.113.7", &[], &off).await;
    assert_eq!(status, 404);
    // `fallbacks.ipf` overrides `considerIp`.
    let off = json!({"considerIp": true, "fallbacks": {"ipf": false}});
    let (status, _) = locate_from(&f, "203.0.113.7", &[], &off).await;
    assert_eq!(status, 404);
    let on = json!({"considerIp": false, "fallbacks": {"ipf": true}});
    let (status, _) = locate_from(&f, "203.0.113.7", &[], &on).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn forwarded_for_counts_only_from_a_trusted_proxy() {
    let f = fixture_ip(&["10.0.0.0/8", "2001:db8:ffff::1"]).await;
    let xff = |v: &'static str| [("x-forwarded-for", v)];
    // A trusted proxy says who called.
    let (status, body) = locate_from(
        &f,
        "10.1.2.3",
        &xff("192.168.0.4, 203.0.113.7"),
        &unknown_wifi(),
    )
    .await;
    assert_eq!(
        (status, body["fallback"].as_str()),
        (200, Some("ipf")),
        "{body}"
    );
    // Through two trusted proxies: the rightmost untrusted entry is the caller.
    let (status, _) = locate_from(
        &f,
        "2001:db8:ffff::1",
        &xff("203.0.113.7, 10.9.9.9"),
        &unknown_wifi(),
    )
    .await;
    assert_eq!(status, 200);
    // What a client wrote to the left of the last untrusted hop is not believed.
    let (status, _) = locate_from(
        &f,
        "10.1.2.3",
        &xff("203.0.113.7, 8.8.8.8"),
        &unknown_wifi(),
    )
    .await;
    assert_eq!(status, 404);
    // An untrusted peer's header is ignored: its own (unknown) address is looked up.
    let (status, _) = locate_from(&f, "8.8.4.4", &xff("203.0.113.7"), &unknown_wifi()).await;
    assert_eq!(status, 404);
    // A trusted proxy with no (or a garbled) header: the proxy's own private address.
    let (status, _) = locate_from(&f, "10.1.2.3", &xff("not-an-address"), &unknown_wifi()).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn served_requests_carry_the_peer_address() {
    // Through `serve` on 127.0.0.1: the peer is loopback (no IP answer) unless loopback is a
    // trusted proxy, whose X-Forwarded-For then names the caller.
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    for (trusted, expected) in [(vec![], 404), (vec!["127.0.0.1".to_owned()], 200)] {
        let dir = data_with_ip();
        let mut config = ServerConfig {
            data_dir: dir.path().to_owned(),
            ..common::config()
        };
        config.geo.trusted_proxies = trusted;
        let server = common::TestServer::start(config).await;
        let token = server.token(Role::Viewer).await;
        let response = client
            .post(format!("http://{}/v1/geolocate", server.addr))
            .bearer_auth(&token)
            .header("x-forwarded-for", "203.0.113.7")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), expected);
        server.stop().await;
    }
}

#[tokio::test]
async fn a_bad_trusted_proxy_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let Err(err) = AppState::in_memory(ServerConfig {
        data_dir: dir.path().to_owned(),
        geo: GeoConfig {
            trusted_proxies: vec!["10.0.0.0/33".into()],
            ..GeoConfig::default()
        },
        ..common::config()
    })
    .await
    else {
        panic!("a /33 IPv4 block was accepted");
    };
    assert!(err.to_string().contains("10.0.0.0/33"), "{err}");
}
