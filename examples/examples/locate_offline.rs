//! Locate a device offline: import a small cell dump and a WiGLE CSV, then ask for positions.
//!
//! ```text
//! cargo run -p vigil-examples --example locate_offline
//! ```
//!
//! The two files are written to a temporary directory so the example runs anywhere; with real
//! data, point `GeoDb::import_file` at OpenCellID's `cell_towers.csv.gz` or your WiGLE export.

use std::sync::Arc;

use geo_locate::{GeoDb, GeolocateRequest, ImportOptions, Locator};

const CELL_DUMP: &str = "\
radio,mcc,net,area,cell,unit,lon,lat,range,samples,changeable,created,updated,averageSignal
GSM,262,1,1001,11,,13.4050,52.5200,1500,12,1,1459692000,1700000000,0
GSM,262,1,1001,12,,13.4150,52.5250,2000,4,1,1459692000,1700000000,-85
LTE,262,3,3001,26877953,301,13.4000,52.5300,500,50,1,1459692000,1700000000,0
";

const WIGLE_EXPORT: &str = "\
WigleWifi-1.6,appRelease=2.70,model=Pixel 7,release=14,device=panther,display=UQ1A,board=panther,brand=google,star=Sol,body=3,subBody=0
MAC,SSID,AuthMode,FirstSeen,Channel,Frequency,RSSI,CurrentLatitude,CurrentLongitude,AltitudeMeters,AccuracyMeters,RCOIs,MfgrId,Type
aa:bb:cc:00:00:01,cafe,[WPA2-PSK-CCMP][ESS],2024-05-01 10:00:00,6,2437,-60,52.52000,13.40500,40,5,,,WIFI
aa:bb:cc:00:00:01,cafe,[WPA2-PSK-CCMP][ESS],2024-05-01 10:00:09,6,2437,-52,52.52008,13.40512,40,5,,,WIFI
aa:bb:cc:00:00:02,library,[WPA2-PSK-CCMP][ESS],2024-05-01 10:00:00,36,5180,-70,52.52030,13.40480,40,5,,,WIFI
aa:bb:cc:00:00:03,bakery,[WPA2-PSK-CCMP][ESS],2024-05-01 10:00:20,11,2462,-75,52.51990,13.40560,40,5,,,WIFI
aa:bb:cc:00:00:04,home_nomap,[WPA2-PSK-CCMP][ESS],2024-05-01 10:00:00,1,2412,-70,52.52030,13.40480,40,5,,,WIFI
";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let db_dir = tmp.path().join("geodb");
    for (name, body) in [("cell_towers.csv", CELL_DUMP), ("wigle.csv", WIGLE_EXPORT)] {
        let path = tmp.path().join(name);
        std::fs::write(&path, body)?;
        let report = GeoDb::import_file(&db_dir, &path, &ImportOptions::default(), &mut |_| {})?;
        println!(
            "{name}: {} rows, {} imported, skipped {:?}",
            report.rows_read, report.imported, report.skipped
        );
    }

    let locator = Locator::builder()
        .database(Arc::new(GeoDb::open(&db_dir)?))
        .build()?;

    // What a phone would send: the APs and the serving cell it sees, with signal strengths.
    let request: GeolocateRequest = serde_json::from_value(serde_json::json!({
        "wifiAccessPoints": [
            {"macAddress": "AA:BB:CC:00:00:01", "signalStrength": -48},
            {"macAddress": "aa-bb-cc-00-00-02", "signalStrength": -71},
            {"macAddress": "aabb.cc00.0003", "signalStrength": -80},
            {"macAddress": "00:00:00:00:00:00", "signalStrength": -40}
        ],
        "cellTowers": [{"radioType": "gsm", "mobileCountryCode": 262, "mobileNetworkCode": 1,
                        "locationAreaCode": 1001, "cellId": 11, "signalStrength": -70}]
    }))?;
    match locator.locate(&request).await? {
        Some(r) => println!("WiFi + cell: {}", serde_json::to_string(&r)?),
        None => println!("WiFi + cell: not found"),
    }

    // A cell the dump does not have, in an area it knows: the coarse LAC fallback answers.
    let unknown_cell: GeolocateRequest = serde_json::from_value(serde_json::json!({
        "cellTowers": [{"radioType": "gsm", "mobileCountryCode": 262, "mobileNetworkCode": 1,
                        "locationAreaCode": 1001, "cellId": 4242}]
    }))?;
    match locator.locate(&unknown_cell).await? {
        Some(r) => println!("unknown cell: {}", serde_json::to_string(&r)?),
        None => println!("unknown cell: not found"),
    }
    Ok(())
}
