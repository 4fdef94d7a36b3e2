//! Offline database benchmark: import rate, bytes per cell and lookup latency on a generated
//! OpenCellID-format dump (10 M rows by default), against the targets of DESIGN.md §9 and a
//! SQLite baseline (rusqlite, one `INSERT OR REPLACE` per row in one transaction, `WITHOUT
//! ROWID` primary key on the cell key) measured in the same run on the first rows.
//!
//! ```text
//! cargo run --release -p vigil-benches --bin geo_db [-- ROWS [SQLITE_ROWS]]
//! ```
//!
//! Everything is written to a temporary directory that is removed at the end; peak memory is
//! read from `/proc/self/status` where available.

use std::io::BufRead;
use std::time::Instant;

use geo_locate::{GeoDb, ImportOptions};
use vigil_benches::geo::Rng;
use vigil_benches::geo::dump::write_dump;

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let rows: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(10_000_000);
    let sqlite_rows: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let tmp = tempfile::tempdir()?;
    let dump = tmp.path().join("cell_towers.csv");

    let t = Instant::now();
    let sample = write_dump(&dump, rows, 42, 97)?;
    let csv_bytes = std::fs::metadata(&dump)?.len();
    println!(
        "generated {rows} rows ({:.0} MB) in {:.1} s",
        csv_bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    // Import.
    let db_dir = tmp.path().join("db");
    let rss_before = peak_rss_kib();
    let t = Instant::now();
    let mut parse_secs = 0.0;
    let report = GeoDb::import_file(&db_dir, &dump, &ImportOptions::default(), &mut |p| {
        if p.merging {
            parse_secs = t.elapsed().as_secs_f64();
        }
    })?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "import phases: read+sort {parse_secs:.2} s, merge {:.2} s",
        secs - parse_secs
    );
    let rate = report.rows_read as f64 / secs;
    let stats = report.stats.clone();
    let per_cell = stats.bytes_on_disk as f64 / stats.cells as f64;
    println!(
        "import: {} rows in {secs:.2} s = {:.2} M rows/s (target 1.00: {:.2}x); {} cells, {} areas",
        report.rows_read,
        rate / 1e6,
        rate / 1e6,
        stats.cells,
        stats.areas
    );
    println!(
        "disk: {} B = {per_cell:.2} B/cell incl. areas and index (target 32: {:.2}x of budget)",
        stats.bytes_on_disk,
        per_cell / 32.0
    );
    if let (Some(before), Some(after)) = (rss_before, peak_rss_kib()) {
        println!(
            "peak RSS: {:.0} MB before import, {:.0} MB after",
            before as f64 / 1024.0,
            after as f64 / 1024.0
        );
    }

    // Lookups: hits (sampled keys) and misses (random keys), shuffled.
    let db = GeoDb::open(&db_dir)?;
    let mut rng = Rng::new(7);
    let mut keys = sample.clone();
    for (k, _) in sample.iter().take(sample.len() / 4) {
        let mut miss = *k;
        miss.cid = 1 + rng.below(miss.radio.max_cell_id().min(1 << 32) - 1);
        keys.push((miss, None));
    }
    for i in (1..keys.len()).rev() {
        keys.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut lat = Vec::with_capacity(keys.len());
    let mut hits = 0usize;
    for (k, psc) in &keys {
        let t = Instant::now();
        let found = db.cell(k, *psc)?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
        hits += usize::from(found.is_some());
    }
    lat.sort_by(f64::total_cmp);
    let p50 = percentile(&lat, 0.5);
    println!(
        "lookup: {} keys ({hits} hits), p50 {p50:.2} µs (target 5: {:.2}x of budget), p99 {:.2} µs",
        keys.len(),
        p50 / 5.0,
        percentile(&lat, 0.99)
    );

    // Baseline: SQLite on the first rows of the same file.
    let conn = rusqlite::Connection::open(tmp.path().join("baseline.sqlite"))?;
    conn.execute_batch(
        "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;
         CREATE TABLE cells (radio INTEGER, mcc INTEGER, mnc INTEGER, lac INTEGER, cid INTEGER,
           psc INTEGER, lat REAL, lon REAL, range INTEGER, samples INTEGER,
           PRIMARY KEY (radio, mcc, mnc, lac, cid, psc)) WITHOUT ROWID;",
    )?;
    let file = std::io::BufReader::new(std::fs::File::open(&dump)?);
    let t = Instant::now();
    let tx = conn.unchecked_transaction()?;
    let mut n = 0u64;
    {
        let mut stmt = tx.prepare(
            "INSERT OR REPLACE INTO cells VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for line in file.lines().skip(1).take(sqlite_rows as usize) {
            let line = line?;
            let f: Vec<&str> = line.trim_end().split(',').collect();
            let radio = match f[0] {
                "GSM" => 0,
                "UMTS" => 1,
                "LTE" => 2,
                _ => 3,
            };
            stmt.execute(rusqlite::params![
                radio,
                f[1].parse::<i64>()?,
                f[2].parse::<i64>()?,
                f[3].parse::<i64>()?,
                f[4].parse::<i64>()?,
                f[5].parse::<i64>().unwrap_or(-1),
                f[7].parse::<f64>()?,
                f[6].parse::<f64>()?,
                f[8].parse::<i64>()?,
                f[9].parse::<i64>()?,
            ])?;
            n += 1;
        }
    }
    tx.commit()?;
    let sql_secs = t.elapsed().as_secs_f64();
    let sql_rate = n as f64 / sql_secs;
    let sql_bytes = std::fs::metadata(tmp.path().join("baseline.sqlite"))?.len();
    let mut stmt = conn.prepare(
        "SELECT lat, lon FROM cells WHERE radio=?1 AND mcc=?2 AND mnc=?3 AND lac=?4 AND cid=?5",
    )?;
    let mut sql_lat = Vec::new();
    for (k, _) in keys.iter().take(100_000) {
        let t = Instant::now();
        let mut rows = stmt.query(rusqlite::params![
            i64::from(k.radio as u8),
            k.mcc,
            k.mnc,
            k.lac,
            k.cid as i64
        ])?;
        let _ = rows.next()?;
        sql_lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    sql_lat.sort_by(f64::total_cmp);
    let sql_p50 = percentile(&sql_lat, 0.5);
    println!(
        "baseline SQLite ({n} rows): import {:.2} M rows/s, {:.1} B/cell, lookup p50 {sql_p50:.2} µs",
        sql_rate / 1e6,
        sql_bytes as f64 / n as f64
    );
    println!(
        "ratios vs SQLite: import {:.1}x faster, {:.2}x the size per cell, lookup p50 {:.2}x",
        rate / sql_rate,
        per_cell / (sql_bytes as f64 / n as f64),
        p50 / sql_p50
    );
    Ok(())
}
