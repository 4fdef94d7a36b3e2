//! `vigil geodb` and `vigil locate`, run as the real binary against temporary data directories
//! and, for the online sources, a local mock server.

use std::io::Write as _;
use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;

const CELLS: &str = "\
radio,mcc,net,area,cell,unit,lon,lat,range,samples,changeable,created,updated,averageSignal\r
GSM,262,1,1001,11,,13.4050,52.5200,1500,12,1,1459692000,1700000000,0\r
GSM,262,1,1001,12,,13.4150,52.5250,2000,4,1,1459692000,1700000000,-85\r
LTE,262,3,3001,26877953,301,13.4000,52.5300,500,50,1,1459692000,1700000000,0\r
LTE,208,1,3002,1234567,42,2.3522,48.8566,700,9,1,1459692000,1700000000,0\r
WIFI,262,1,1001,13,,13.4,52.5,100,1,1,0,0,0\r
GSM,262,1,1001,,,13.4,52.5,100,1,1,0,0,0\r
";

const WIGLE: &str = "\
WigleWifi-1.6,appRelease=2.70,model=Pixel 7,release=14,device=panther,display=UQ1A,board=panther,brand=google,star=Sol,body=3,subBody=0
MAC,SSID,AuthMode,FirstSeen,Channel,Frequency,RSSI,CurrentLatitude,CurrentLongitude,AltitudeMeters,AccuracyMeters,RCOIs,MfgrId,Type
aa:bb:cc:00:00:01,cafe,[WPA2-PSK-CCMP][ESS],2024-05-01 10:00:00,6,2437,-60,52.52000,13.40500,40,5,,,WIFI
aa:bb:cc:00:00:02,library,[WPA2-PSK-CCMP][ESS],2024-05-01 10:00:00,36,5180,-70,52.52030,13.40480,40,5,,,WIFI
aa:bb:cc:00:00:03,home_nomap,[WPA2-PSK-CCMP][ESS],2024-05-01 10:00:00,1,2412,-70,52.52030,13.40480,40,5,,,WIFI
";

fn vigil() -> Command {
    let mut cmd = Command::cargo_bin("vigil").expect("the vigil binary is built for tests");
    for var in [
        "WIGLE_API_NAME",
        "WIGLE_API_TOKEN",
        "OPENCELLID_API_KEY",
        "VIGIL_DATA_DIR",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// A data directory with the two files above imported.
fn imported(dir: &Path) {
    for (name, body) in [("cells.csv", CELLS), ("wigle.csv", WIGLE)] {
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        vigil()
            .args(["geodb", "import"])
            .arg(&path)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .assert()
            .success();
    }
}

#[test]
fn import_summarises_rows_and_skips_with_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cells.csv");
    std::fs::write(&path, CELLS).unwrap();
    vigil()
        .args(["geodb", "import", "--mcc", "262"])
        .arg(&path)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .assert()
        .success()
        .stdout(predicate::str::contains("rows read  6"))
        .stdout(predicate::str::contains("imported   3"))
        .stdout(predicate::str::contains("filtered          1"))
        .stdout(predicate::str::contains("line 6: unknown_radio"))
        .stdout(predicate::str::contains("line 7: malformed"));
    let out = vigil()
        .args(["geodb", "stats", "--json", "--data-dir"])
        .arg(dir.path().join("data"))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let stats: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(stats["cells"], 3);
    assert_eq!(stats["cells_by_radio"]["lte"], 1);
}

#[test]
fn truncated_gzip_keeps_rows_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let mut body = String::new();
    for i in 1..=20_000u32 {
        body.push_str(&format!(
            "GSM,262,1,{},{},,13.4,52.5,1000,5,1,0,0,0\n",
            1 + i / 1000,
            i
        ));
    }
    let mut enc = gzip(body.as_bytes());
    enc.truncate(enc.len() / 2);
    let path = dir.path().join("cut.csv.gz");
    std::fs::write(&path, &enc).unwrap();
    vigil()
        .args(["geodb", "import"])
        .arg(&path)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .assert()
        .failure()
        .stderr(predicate::str::contains("input ended early after line"));
    vigil()
        .args(["geodb", "stats", "--data-dir"])
        .arg(dir.path().join("data"))
        .assert()
        .success()
        .stdout(predicate::str::contains("cells     0").not());
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

#[test]
fn locate_wifi_json_and_human() {
    let dir = tempfile::tempdir().unwrap();
    imported(dir.path());
    let out = vigil()
        .args([
            "locate",
            "--wifi",
            "aa:bb:cc:00:00:01@-50",
            "--wifi",
            "AA-BB-CC-00-00-02@-75",
            "--json",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let (lat, lng) = (
        v["location"]["lat"].as_f64().unwrap(),
        v["location"]["lng"].as_f64().unwrap(),
    );
    assert!(
        (lat - 52.5201).abs() < 0.0005 && (lng - 13.4049).abs() < 0.0005,
        "{v}"
    );
    let acc = v["accuracy"].as_f64().unwrap();
    assert!((10.0..=500.0).contains(&acc), "{v}");
    assert!(v.get("fallback").is_none());

    vigil()
        .args([
            "locate",
            "--wifi",
            "aa:bb:cc:00:00:01",
            "--wifi",
            "aa:bb:cc:00:00:02",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .assert()
        .success()
        .stdout(predicate::str::contains("(95 %), from 2 WiFi"))
        .stdout(predicate::str::contains("openstreetmap.org"));
}

#[test]
fn locate_cells_request_file_and_lac_fallback() {
    let dir = tempfile::tempdir().unwrap();
    imported(dir.path());
    let data = dir.path().join("data");
    vigil()
        .args([
            "locate",
            "--cell",
            "gsm:262:1:1001:999@-80",
            "--json",
            "--data-dir",
        ])
        .arg(&data)
        .assert()
        .success()
        .stdout(predicate::str::contains("\"fallback\":\"lacf\""));
    let req = dir.path().join("req.json");
    let mut f = std::fs::File::create(&req).unwrap();
    write!(
        f,
        r#"{{"considerIp": false, "cellTowers": [{{"radioType": "lte", "mobileCountryCode": 262,
            "mobileNetworkCode": 3, "locationAreaCode": 3001, "cellId": 26877953, "psc": 301}},
            {{"radioType": "lte", "mobileCountryCode": 262}}]}}"#
    )
    .unwrap();
    vigil()
        .args(["locate", "--json", "--request"])
        .arg(&req)
        .arg("--data-dir")
        .arg(&data)
        .assert()
        .success()
        .stdout(predicate::str::contains("\"lat\":52.53"))
        .stderr(predicate::str::contains(
            "ignored 0 invalid WiFi, 1 invalid cell",
        ));
}

#[test]
fn not_found_and_bad_input_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    imported(dir.path());
    let data = dir.path().join("data");
    vigil()
        .args([
            "locate",
            "--wifi",
            "de:ad:be:ef:00:01",
            "--wifi",
            "de:ad:be:ef:00:02",
            "--json",
            "--data-dir",
        ])
        .arg(&data)
        .assert()
        .code(3)
        .stdout(predicate::str::contains("\"reason\":\"notFound\""))
        .stderr(predicate::str::contains("not found"));
    vigil()
        .args(["locate", "--wifi", "not-a-mac", "--data-dir"])
        .arg(&data)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid MAC address"));
    vigil()
        .args(["locate", "--cell", "gsm:262:1:1001", "--data-dir"])
        .arg(&data)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("RADIO:MCC:MNC:LAC:CID"));
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{not json").unwrap();
    vigil()
        .args(["locate", "--request"])
        .arg(&bad)
        .arg("--data-dir")
        .arg(&data)
        .assert()
        .failure()
        .stderr(predicate::str::contains("is not a geolocate request"));
    vigil()
        .args([
            "locate",
            "--wifi",
            "aa:bb:cc:00:00:01",
            "--source",
            "wigle",
            "--data-dir",
        ])
        .arg(&data)
        .assert()
        .failure()
        .stderr(predicate::str::contains("WIGLE_API_NAME"));
    vigil()
        .args(["locate", "--cell", "gsm:262:1:1001:11", "--data-dir"])
        .arg(dir.path().join("empty"))
        .assert()
        .failure()
        .stderr(predicate::str::contains("vigil geodb import"));
}

#[tokio::test(flavor = "multi_thread")]
async fn locate_online_with_wigle_keys_from_the_environment() {
    use wiremock::matchers::{header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    let page = serde_json::json!({"success": true, "totalResults": 2, "first": 1, "last": 2,
        "resultCount": 2, "searchAfter": null, "results": [
        {"trilat": 48.8566, "trilong": 2.3522, "ssid": "a", "netid": "02:11:22:33:44:01", "channel": 6},
        {"trilat": 48.8568, "trilong": 2.3525, "ssid": "b", "netid": "02:11:22:33:44:02", "channel": 1}]});
    for mac in ["02:11:22:33:44:01", "02:11:22:33:44:02"] {
        Mock::given(method("GET"))
            .and(path("/api/v2/network/search"))
            .and(query_param("netid", mac))
            .and(header("authorization", "Basic QUlEdGVzdDpzZWNyZXQ="))
            .respond_with(ResponseTemplate::new(200).set_body_json(&page))
            .expect(1)
            .mount(&server)
            .await;
    }
    let dir = tempfile::tempdir().unwrap();
    let uri = server.uri();
    let data = dir.path().join("data");
    for _ in 0..2 {
        // The second run is answered from the cache: the mock expects one call per MAC.
        let (uri, data) = (uri.clone(), data.clone());
        tokio::task::spawn_blocking(move || {
            vigil()
                .env("WIGLE_API_NAME", "AIDtest")
                .env("WIGLE_API_TOKEN", "secret")
                .args([
                    "locate",
                    "--wifi",
                    "02:11:22:33:44:01@-55",
                    "--wifi",
                    "02:11:22:33:44:02@-70",
                ])
                .args([
                    "--source",
                    "wigle",
                    "--json",
                    "--wigle-base-url",
                    &uri,
                    "--data-dir",
                ])
                .arg(&data)
                .assert()
                .success()
                .stdout(predicate::str::contains("\"lat\":48.856"));
        })
        .await
        .unwrap();
    }
}

#[test]
fn locate_ip_answers_from_an_imported_mmdb() {
    use geo_locate::ip::writer::MmdbWriter;
    let dir = tempfile::tempdir().unwrap();
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
        "2001:db8::".parse().unwrap(),
        32,
        48.8566,
        2.3522,
        Some(5),
        Some("FR"),
    )
    .unwrap();
    let mmdb = dir.path().join("GeoLite2-City.mmdb");
    std::fs::write(&mmdb, w.to_bytes()).unwrap();
    let data = dir.path().join("data");
    vigil()
        .args(["geodb", "import"])
        .arg(&mmdb)
        .arg("--data-dir")
        .arg(&data)
        .assert()
        .success()
        .stdout(predicate::str::contains("GeoLite2-City"));
    let out = vigil()
        .args(["locate", "--ip", "203.0.113.7", "--json", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["fallback"], "ipf");
    assert_eq!(answer["accuracy"], 20_000.0);
    assert_eq!(answer["location"]["lat"], 52.52);
    vigil()
        .args(["locate", "--ip", "2001:db8::1", "--data-dir"])
        .arg(&data)
        .assert()
        .success()
        .stdout(predicate::str::contains("IP address (fallback)"));
    // A private address and an unknown one: not found (exit 3).
    for addr in ["192.168.1.2", "8.8.8.8"] {
        vigil()
            .args(["locate", "--json", "--ip", addr, "--data-dir"])
            .arg(&data)
            .assert()
            .code(3)
            .stdout(predicate::str::contains("notFound"));
    }
    // Not an MMDB city database: refused with a reason.
    let mut country = MmdbWriter::new("GeoLite2-Country");
    country
        .insert("203.0.113.0".parse().unwrap(), 24, 0.0, 0.0, None, None)
        .unwrap();
    let bad = dir.path().join("country.mmdb");
    std::fs::write(&bad, country.to_bytes()).unwrap();
    vigil()
        .args(["geodb", "import"])
        .arg(&bad)
        .arg("--data-dir")
        .arg(&data)
        .assert()
        .failure()
        .stderr(predicate::str::contains("city database"));
}
