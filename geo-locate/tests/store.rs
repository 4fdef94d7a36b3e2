//! Public-API tests of the offline database: imports of the cell dump and WiGLE CSVs, lookups,
//! bad lines, truncated gzip and re-runs.

use std::io::Write;
use std::path::{Path, PathBuf};

use geo_locate::store::{ImportOptions, InputFormat, SkipReason};
use geo_locate::{CellKey, GeoDb, LatLon, MacAddr, Radio};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn import(dir: &Path, name: &str, options: &ImportOptions) -> geo_locate::ImportReport {
    GeoDb::import_file(dir, fixture(name), options, &mut |_| {}).expect("import")
}

fn key(radio: Radio, mcc: u16, mnc: u16, lac: u32, cid: u64) -> CellKey {
    CellKey {
        radio,
        mcc,
        mnc,
        lac,
        cid,
    }
}

#[test]
fn cell_dump_imports_with_bad_lines_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut ticks = 0;
    let report = GeoDb::import_file(
        dir.path(),
        fixture("cell_towers.csv"),
        &ImportOptions::default(),
        &mut |_| ticks += 1,
    )
    .unwrap();
    assert!(ticks >= 1, "progress is reported at least at the end");
    assert_eq!(report.format, InputFormat::OpenCellId);
    assert_eq!(report.rows_read, 14);
    assert_eq!(report.imported, 9);
    assert_eq!(report.skipped[&SkipReason::UnknownRadio], 1);
    assert_eq!(report.skipped[&SkipReason::InvalidCell], 1);
    assert_eq!(report.skipped[&SkipReason::Malformed], 1);
    assert_eq!(report.skipped[&SkipReason::InvalidPosition], 2);
    let lines: Vec<(u64, SkipReason)> = report
        .bad_lines
        .iter()
        .map(|b| (b.line, b.reason))
        .collect();
    assert_eq!(
        lines,
        vec![
            (10, SkipReason::UnknownRadio),
            (11, SkipReason::InvalidCell),
            (12, SkipReason::Malformed),
            (13, SkipReason::InvalidPosition),
            (14, SkipReason::InvalidPosition),
        ]
    );
    assert!(report.truncated.is_none());
    assert_eq!(report.stats.cells, 9);
    assert_eq!(report.stats.cells_by_radio["wcdma"], 2);
    assert_eq!(report.stats.cells_by_radio["nr"], 1);
    assert_eq!(report.stats.cells_by_radio["cdma"], 1);

    let db = GeoDb::open(dir.path()).unwrap();
    // Longitude comes before latitude in the dump.
    let gsm = db
        .cell(&key(Radio::Gsm, 262, 1, 1001, 11), None)
        .unwrap()
        .unwrap();
    assert!((gsm.position.lat - 52.52).abs() < 1e-6 && (gsm.position.lon - 13.405).abs() < 1e-6);
    assert_eq!(gsm.radius_m, 1500.0);
    assert_eq!(gsm.samples, 12);
    // UMTS maps to wcdma; the PSC tells two towers with one CID apart.
    let umts = key(Radio::Wcdma, 262, 2, 2001, 13_172_746);
    let near = db.cell(&umts, Some(120)).unwrap().unwrap();
    let far = db.cell(&umts, Some(121)).unwrap().unwrap();
    assert!(near.position.distance_m(far.position) > 10_000.0);
    assert!(db.cell(&umts, Some(122)).unwrap().is_none());
    // Without a PSC, the better-sampled one.
    assert_eq!(db.cell(&umts, None).unwrap().unwrap(), near);
    let nr = db
        .cell(
            &key(Radio::Nr, 262, 3, 4_000_001, 68_719_476_734),
            Some(500),
        )
        .unwrap();
    assert!(nr.is_some());
    assert!(
        db.cell(&key(Radio::Gsm, 262, 1, 1001, 99), None)
            .unwrap()
            .is_none()
    );
    // The area is built from its cells.
    let area = db
        .area(&key(Radio::Gsm, 262, 1, 1001, 0).area())
        .unwrap()
        .unwrap();
    assert_eq!(area.samples, 3);
    assert!(area.position.distance_m(LatLon::new(52.5, 13.4).unwrap()) < 3_000.0);
}

#[test]
fn mcc_filter_and_min_samples_apply_while_streaming() {
    let dir = tempfile::tempdir().unwrap();
    let options = ImportOptions {
        mcc: vec![262],
        min_samples: 5,
        ..Default::default()
    };
    let report = import(dir.path(), "cell_towers.csv", &options);
    assert_eq!(report.skipped[&SkipReason::Filtered], 2);
    // GSM 12 (4), UMTS psc 121 (3) and GSM 17 (1) have fewer than 5 samples.
    assert_eq!(report.skipped[&SkipReason::TooFewSamples], 3);
    assert_eq!(report.imported, 4);
    let db = GeoDb::open(dir.path()).unwrap();
    assert!(
        db.cell(&key(Radio::Lte, 208, 1, 3002, 1_234_567), None)
            .unwrap()
            .is_none()
    );
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A headerless dump (as the per-MCC files are) with `n` valid GSM rows.
fn synthetic_dump(n: u64) -> Vec<u8> {
    let mut s = String::new();
    for i in 0..n {
        s.push_str(&format!(
            "GSM,262,1,{},{},,{:.5},{:.5},1000,5,1,0,0,0\n",
            1 + i / 1000,
            1 + i % 60_000,
            13.0 + (i % 1000) as f64 * 1e-3,
            52.0 + (i / 1000) as f64 * 1e-3
        ));
    }
    s.into_bytes()
}

#[test]
fn gzip_is_detected_and_a_truncated_gzip_keeps_what_it_read() {
    let dir = tempfile::tempdir().unwrap();
    let plain = synthetic_dump(20_000);
    let gz = gzip(&plain);
    let path = dir.path().join("full.csv.gz");
    std::fs::write(&path, &gz).unwrap();
    let db_dir = dir.path().join("db");
    let report =
        GeoDb::import_file(&db_dir, &path, &ImportOptions::default(), &mut |_| {}).unwrap();
    assert_eq!(report.imported, 20_000);
    assert!(report.truncated.is_none());
    assert_eq!(report.bytes_read, gz.len() as u64);

    let cut = dir.path().join("cut.csv.gz");
    std::fs::write(&cut, &gz[..gz.len() / 2]).unwrap();
    let db2 = dir.path().join("db2");
    let report = GeoDb::import_file(&db2, &cut, &ImportOptions::default(), &mut |_| {}).unwrap();
    let msg = report.truncated.expect("truncation is reported");
    assert!(msg.contains("input ended early after line"), "{msg}");
    assert!(
        report.imported > 1_000 && report.imported < 20_000,
        "{}",
        report.imported
    );
    let db = GeoDb::open(&db2).unwrap();
    assert_eq!(db.stats().unwrap().cells, report.imported);
}

#[test]
fn interrupted_import_leaves_the_old_tables_and_reruns_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    import(dir.path(), "cell_towers.csv", &ImportOptions::default());
    // What an import killed mid-way leaves behind: scratch runs and a half-written table.
    std::fs::create_dir_all(dir.path().join("import.tmp")).unwrap();
    std::fs::write(dir.path().join("import.tmp/cells-00000.run"), b"garbage").unwrap();
    std::fs::write(dir.path().join("cells.bin.tmp"), b"garbage").unwrap();
    let db = GeoDb::open(dir.path()).unwrap();
    assert_eq!(db.stats().unwrap().cells, 9);
    // Running it again replaces, it does not duplicate.
    let report = import(dir.path(), "cell_towers.csv", &ImportOptions::default());
    assert_eq!(report.stats.cells, 9);
    assert!(!dir.path().join("import.tmp").exists());
}

#[test]
fn small_chunks_give_the_same_database() {
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic_dump(5_000);
    let options = ImportOptions {
        chunk_records: 1_024,
        ..Default::default()
    };
    let report = GeoDb::import_reader(dir.path(), &data[..], None, &options, &mut |_| {}).unwrap();
    assert_eq!(report.stats.cells, 5_000);
    let db = GeoDb::open(dir.path()).unwrap();
    for i in [0u64, 1, 1_023, 1_024, 2_500, 4_999] {
        let k = key(Radio::Gsm, 262, 1, 1 + (i / 1000) as u32, 1 + i % 60_000);
        let s = db
            .cell(&k, None)
            .unwrap()
            .unwrap_or_else(|| panic!("row {i}"));
        assert!((s.position.lon - (13.0 + (i % 1000) as f64 * 1e-3)).abs() < 1e-6);
    }
}

#[test]
fn wigle_csv_1_6_and_1_4_import_by_header_name() {
    let dir = tempfile::tempdir().unwrap();
    let r16 = import(dir.path(), "wigle-1.6.csv", &ImportOptions::default());
    assert_eq!(r16.format, InputFormat::Wigle);
    assert_eq!(r16.rows_read, 14);
    assert_eq!(r16.skipped[&SkipReason::HiddenSsid], 1);
    assert_eq!(r16.skipped[&SkipReason::OptedOut], 2);
    assert_eq!(r16.skipped[&SkipReason::InvalidMac], 1);
    assert_eq!(r16.skipped[&SkipReason::PoorFix], 1);
    assert_eq!(r16.skipped[&SkipReason::Unsupported], 1);
    assert_eq!(r16.skipped[&SkipReason::InvalidPosition], 1);
    assert_eq!(r16.stats.wifi, 2);
    assert_eq!(r16.stats.ble, 2);
    assert_eq!(r16.stats.cells, 2);

    let db = GeoDb::open(dir.path()).unwrap();
    let mac = |s: &str| s.parse::<MacAddr>().unwrap();
    let cafe = db.wifi(mac("aa:bb:cc:00:00:01")).unwrap().unwrap();
    assert_eq!(cafe.samples, 2);
    assert!(cafe.radius_m > 5.0 && cafe.radius_m < 20.0, "{cafe:?}");
    for hidden_or_opted_out in [
        "aa:bb:cc:00:00:03",
        "aa:bb:cc:00:00:04",
        "aa:bb:cc:00:00:05",
    ] {
        assert!(db.wifi(mac(hidden_or_opted_out)).unwrap().is_none());
    }
    assert!(db.ble(mac("11:22:33:44:55:66")).unwrap().is_some());
    assert!(db.wifi(mac("11:22:33:44:55:66")).unwrap().is_none());
    assert!(
        db.cell(&key(Radio::Gsm, 262, 1, 1001, 11), None)
            .unwrap()
            .is_some()
    );

    // 1.4 has no Frequency column; its cafe sightings are combined with 1.6's.
    let r14 = import(dir.path(), "wigle-1.4.csv", &ImportOptions::default());
    assert_eq!(r14.imported, 2);
    assert_eq!(r14.bad_lines[0].line, 5);
    assert_eq!(r14.bad_lines[0].reason, SkipReason::InvalidMac);
    let db = GeoDb::open(dir.path()).unwrap();
    assert_eq!(
        db.wifi(mac("aa:bb:cc:00:00:01")).unwrap().unwrap().samples,
        3
    );
    assert!(db.wifi(mac("aa:bb:cc:00:01:01")).unwrap().is_some());
    assert_eq!(db.stats().unwrap().wifi, 3);
    // The WiGLE import did not touch the cells.
    assert_eq!(db.stats().unwrap().cells, 2);
}

#[test]
fn corrupt_tables_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cells.bin"), b"not a table").unwrap();
    let err = GeoDb::open(dir.path()).unwrap_err();
    assert!(
        matches!(err, geo_locate::Error::CorruptDatabase { .. }),
        "{err}"
    );
    let empty = GeoDb::open(dir.path().join("missing")).unwrap();
    assert_eq!(empty.stats().unwrap().cells, 0);
}

#[test]
fn header_without_coordinates_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let err = GeoDb::import_reader(
        dir.path(),
        &b"radio,mcc,net,area,cell\nGSM,262,1,1,1\n"[..],
        Some(InputFormat::OpenCellId),
        &ImportOptions::default(),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("lacks"), "{err}");
}

/// A tiny deterministic generator for garbage input.
fn garbage(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed;
    let alphabet = b"GSMLTEUMTSNR0123456789,,,,..--\n\n\r\"x _";
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            alphabet[(x % alphabet.len() as u64) as usize]
        })
        .collect()
}

#[test]
fn garbage_never_panics_and_is_counted() {
    for seed in 1..40u64 {
        let dir = tempfile::tempdir().unwrap();
        let data = garbage(seed, 20_000);
        for format in [InputFormat::OpenCellId, InputFormat::Wigle] {
            let mut body = data.clone();
            if format == InputFormat::Wigle {
                let mut with_header = b"MAC,SSID,CurrentLatitude,CurrentLongitude,Type\n".to_vec();
                with_header.append(&mut body);
                body = with_header;
            }
            let report = GeoDb::import_reader(
                dir.path(),
                &body[..],
                Some(format),
                &ImportOptions::default(),
                &mut |_| {},
            )
            .unwrap();
            let skipped: u64 = report.skipped.values().sum();
            assert_eq!(report.imported + skipped, report.rows_read, "seed {seed}");
        }
    }
}

/// A WiGLE 1.6 CSV of WiFi sightings `(mac, at, rssi, accuracy)`.
fn wigle_csv(rows: &[(&str, LatLon, i32, f64)]) -> Vec<u8> {
    let mut out = String::from(
        "WigleWifi-1.6,appRelease=test,model=t,release=1,device=t,display=t,board=t,brand=t,star=Sol,body=3,subBody=0\n\
         MAC,SSID,AuthMode,FirstSeen,Channel,Frequency,RSSI,CurrentLatitude,CurrentLongitude,AltitudeMeters,AccuracyMeters,RCOIs,MfgrId,Type\n",
    );
    for (mac, at, rssi, acc) in rows {
        out.push_str(&format!(
            "{mac},net,[WPA2-PSK-CCMP][ESS],2024-05-01 10:00:00,6,2437,{rssi},{:.7},{:.7},40,{acc},,,WIFI\n",
            at.lat, at.lon
        ));
    }
    out.into_bytes()
}

fn import_rows(dir: &Path, rows: &[(&str, LatLon, i32, f64)]) {
    GeoDb::import_reader(
        dir,
        std::io::Cursor::new(wigle_csv(rows)),
        Some(InputFormat::Wigle),
        &ImportOptions::default(),
        &mut |_| {},
    )
    .expect("import");
}

fn wifi(db: &GeoDb, mac: &str) -> Option<geo_locate::Station> {
    db.wifi(MacAddr::parse_station(mac).unwrap()).unwrap()
}

#[test]
fn an_ap_heard_strongly_lands_near_the_strong_sighting() {
    let ap = LatLon::new(-33.87, 151.21).unwrap();
    let near = ap.offset(6.0, 2.0);
    let far = ap.offset(-260.0, 40.0);
    let dir = tempfile::tempdir().unwrap();
    let mut rows = vec![("02:00:00:00:00:01", near, -45, 5.0)];
    for _ in 0..6 {
        rows.push(("02:00:00:00:00:01", far, -92, 5.0));
    }
    import_rows(dir.path(), &rows);
    let s = wifi(&GeoDb::open(dir.path()).unwrap(), "02:00:00:00:00:01").unwrap();
    // The plain mean of these seven sightings is 220 m from the AP.
    assert!(s.position.distance_m(near) < 15.0, "{s:?}");
    assert_eq!(s.samples, 7);
}

#[test]
fn a_movers_sightings_do_not_drag_a_fixed_ap() {
    let ap = LatLon::new(51.5, -0.0005).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A fixed AP seen 12 times around its place, across the 0° meridian.
    let around: Vec<(&str, LatLon, i32, f64)> = (0..12)
        .map(|i| {
            let a = f64::from(i) * 0.52;
            (
                "02:00:00:00:00:02",
                ap.offset(20.0 * a.cos(), 20.0 * a.sin()),
                -62,
                8.0,
            )
        })
        .collect();
    import_rows(dir.path(), &around);
    let before = wifi(&GeoDb::open(dir.path()).unwrap(), "02:00:00:00:00:02").unwrap();
    assert!(before.position.distance_m(ap) < 5.0, "{before:?}");
    // Later, the same MAC heard strongly 2 km away, twice (a clash, a bus, a GPS jump).
    let away = ap.offset(2_000.0, 300.0);
    import_rows(
        dir.path(),
        &[
            ("02:00:00:00:00:02", away, -50, 5.0),
            ("02:00:00:00:00:02", away, -48, 5.0),
        ],
    );
    let after = wifi(&GeoDb::open(dir.path()).unwrap(), "02:00:00:00:00:02").unwrap();
    assert!(
        after.position.distance_m(before.position) < 1.0,
        "{after:?}"
    );
    // A mobile hotspot, seen strongly all over the city, is never returned.
    let hotspot: Vec<(&str, LatLon, i32, f64)> = (0..6)
        .map(|i| {
            (
                "02:00:00:00:00:03",
                ap.offset(f64::from(i) * 1_500.0, 0.0),
                -50,
                5.0,
            )
        })
        .collect();
    import_rows(dir.path(), &hotspot);
    let db = GeoDb::open(dir.path()).unwrap();
    assert_eq!(wifi(&db, "02:00:00:00:00:03"), None);
    assert!(wifi(&db, "02:00:00:00:00:02").is_some());
}

#[test]
fn importing_in_two_parts_equals_importing_at_once() {
    let ap = LatLon::new(-16.76, 179.9998).unwrap();
    let rows: Vec<(&str, LatLon, i32, f64)> = (0..20)
        .map(|i| {
            let t = f64::from(i);
            (
                "02:00:00:00:00:04",
                ap.offset(-90.0 + 9.0 * t, 15.0 * (t * 0.7).sin()),
                -50 - (i % 7) * 6,
                3.0 + t,
            )
        })
        .collect();
    let once = tempfile::tempdir().unwrap();
    import_rows(once.path(), &rows);
    let parts = tempfile::tempdir().unwrap();
    import_rows(parts.path(), &rows[..8]);
    import_rows(parts.path(), &rows[8..]);
    let a = wifi(&GeoDb::open(once.path()).unwrap(), "02:00:00:00:00:04").unwrap();
    let b = wifi(&GeoDb::open(parts.path()).unwrap(), "02:00:00:00:00:04").unwrap();
    // Across the 180° meridian, and equal up to the storage's rounding.
    assert!(a.position.distance_m(ap) < 60.0, "{a:?}");
    assert!(a.position.distance_m(b.position) < 0.05, "{a:?} {b:?}");
    assert_eq!(a.samples, b.samples);
    assert!((a.radius_m - b.radius_m).abs() <= 1.0, "{a:?} {b:?}");
}
