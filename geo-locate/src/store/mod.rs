//! The offline database: cells, location areas, WiFi APs and Bluetooth beacons on local disk.
//!
//! # Storage
//!
//! Three sorted, fixed-width tables in one directory (`cells.bin`, `areas.bin`, `beacons.bin`)
//! plus `stats.json`. A cell takes 28 bytes (a 13-byte packed key and a 15-byte spot: position,
//! radius, sample count, conflicts, and the weight sum and spread that later imports refine,
//! see [`learning`](crate::learning)) plus a fifth of a byte of sparse index; an AP 23 bytes. A
//! lookup is one binary search in an in-memory index and one positioned read of a 1.8 KB block.
//! The layout is described in the `table` module; it was chosen over SQLite because it meets
//! the import rate and size targets (see the `geo_db` bench). Tables of the first layout
//! (before weight sums) are refused with a message to import again.
//!
//! # Importing
//!
//! [`GeoDb::import_file`] streams a file through an external sort: chunks of
//! [`ImportOptions::chunk_records`] records are sorted and spilled to run files, then merged
//! with the existing tables into new ones that replace the old by rename. Memory stays bounded
//! by the chunk size; an interrupted import leaves the previous tables untouched and its
//! leftovers are removed by the next run. Importing a newer cell dump replaces the cells it
//! contains. WiGLE sightings are what positions are learned from: each is weighted by what its
//! signal and fix accuracy say about distance, and all of one import's sightings of a
//! transmitter are folded into what is stored at once, so a stray or moving one cannot drag a
//! fixed transmitter (the rules are in [`learning`](crate::learning)). Transmitters flagged as
//! movers are kept but never returned by lookups.
//!
//! # The IP fallback
//!
//! [`GeoDb::import_ip_database`] checks a GeoIP city database in MaxMind's MMDB format and
//! keeps a copy as `ip-city.mmdb` (replaced by rename, so a running reader is never left with a
//! half-written file); [`GeoDb::open`] loads it and [`GeoDb::ip_database`] returns it (see
//! [`crate::ip`]).
//!
//! # Learning from submissions
//!
//! Next to the imported tables, a small writable [`overlay`] (`overlay.sqlite`) keeps what
//! `/v2/geosubmit` reports taught: a weighted position and bounding box per transmitter, filled
//! by [`GeoDb::submit`] with Ichnaea's observation filters. [`GeoDb::fill`] (what the
//! [`Locator`](crate::Locator) asks) combines both; the exact-key lookups ([`GeoDb::cell`],
//! [`GeoDb::wifi`], ...) read the imported tables only. Imports never touch the overlay.

mod build;
mod import;
pub mod overlay;
mod record;
mod table;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use import::{BadLine, ImportOptions, ImportProgress, ImportReport, InputFormat, SkipReason};

use crate::cell::{AreaKey, CellKey};
use crate::error::{Error, Result};
use crate::estimate::{Known, Station};
use crate::ip::{IP_DATABASE_FILE, IpDatabase};
use crate::mac::MacAddr;
use crate::query::Query;
use overlay::{
    BLE_MAX_DIST_M, CELL_MAX_DIST_M, ObservationFilter, Overlay, SubmitReport, WIFI_MAX_DIST_M,
    combine,
};
use record::{AreaRecord, BeaconKind, BeaconRecord, CellRecord, NO_PSC};
use table::Table;

const CELLS: &str = "cells.bin";
const AREAS: &str = "areas.bin";
const BEACONS: &str = "beacons.bin";
const STATS: &str = "stats.json";

/// Counts of what the database holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbStats {
    /// Cells by radio (`gsm`, `wcdma`, `lte`, `nr`, `cdma`).
    pub cells_by_radio: BTreeMap<String, u64>,
    /// Total cells.
    pub cells: u64,
    /// Location areas derived from the cells.
    pub areas: u64,
    /// WiFi access points.
    pub wifi: u64,
    /// Bluetooth beacons.
    pub ble: u64,
    /// Bytes on disk of the three tables.
    pub bytes_on_disk: u64,
    /// The type of the imported GeoIP database (`GeoLite2-City`, ...), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_database: Option<String>,
}

/// The outcome of [`GeoDb::import_ip_database`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IpImportReport {
    /// The database's type from its metadata (`GeoLite2-City`, `DBIP-City-Lite`, ...).
    pub database_type: String,
    /// When the database was built, seconds since the epoch.
    pub build_epoch: u64,
    /// Its size in bytes.
    pub bytes: u64,
    /// Where the copy is kept.
    pub path: PathBuf,
}

/// An opened offline database. Lookups take `&self` and may run from many threads.
#[derive(Debug)]
pub struct GeoDb {
    dir: PathBuf,
    cells: Option<Table<CellRecord>>,
    areas: Option<Table<AreaRecord>>,
    beacons: Option<Table<BeaconRecord>>,
    overlay: Overlay,
    ip: Option<Arc<IpDatabase>>,
}

impl GeoDb {
    /// Opens the database in `dir`. A missing directory or table is an empty database.
    pub fn open(dir: impl AsRef<Path>) -> Result<GeoDb> {
        let dir = dir.as_ref().to_owned();
        let ip_path = dir.join(IP_DATABASE_FILE);
        let ip = if ip_path.is_file() {
            Some(Arc::new(IpDatabase::open(&ip_path).map_err(|e| {
                Error::CorruptDatabase {
                    path: ip_path.clone(),
                    reason: e.to_string(),
                }
            })?))
        } else {
            None
        };
        Ok(GeoDb {
            cells: Table::open(&dir.join(CELLS))?,
            areas: Table::open(&dir.join(AREAS))?,
            beacons: Table::open(&dir.join(BEACONS))?,
            overlay: Overlay::open(&dir, ObservationFilter::default())?,
            ip,
            dir,
        })
    }

    /// The imported GeoIP city database, if any.
    pub fn ip_database(&self) -> Option<&Arc<IpDatabase>> {
        self.ip.as_ref()
    }

    /// Checks that `path` is a GeoIP city database in MMDB format (GeoLite2-City, DB-IP City
    /// Lite) and keeps a copy in the database in `dir` (creating it if needed), replacing any
    /// earlier one. Re-open the database afterwards to use it.
    pub fn import_ip_database(
        dir: impl AsRef<Path>,
        path: impl AsRef<Path>,
    ) -> Result<IpImportReport> {
        let (dir, path) = (dir.as_ref(), path.as_ref());
        let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
        let size = bytes.len() as u64;
        let db = IpDatabase::from_bytes(bytes, path)?;
        let report = IpImportReport {
            database_type: db.database_type().to_owned(),
            build_epoch: db.build_epoch(),
            bytes: size,
            path: dir.join(IP_DATABASE_FILE),
        };
        drop(db);
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
        let tmp = dir.join("ip-city.mmdb.tmp");
        std::fs::copy(path, &tmp).map_err(|e| Error::io("copy", path, e))?;
        std::fs::rename(&tmp, &report.path).map_err(|e| Error::io("rename", &report.path, e))?;
        Ok(report)
    }

    /// The directory of this database.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Looks a cell up by its exact key. With a `psc`, a record with the same PSC (or one without
    /// a PSC) matches, a record with a different PSC does not (the id was reused by another
    /// tower). Without one, the best-sampled record of that key matches.
    pub fn cell(&self, key: &CellKey, psc: Option<u16>) -> Result<Option<Station>> {
        let Some(t) = &self.cells else {
            return Ok(None);
        };
        let found = t.range(
            CellRecord::pack_key(key, 0),
            CellRecord::pack_key(key, NO_PSC),
        )?;
        let pick = match psc {
            Some(p) => found
                .iter()
                .find(|r| r.psc == p)
                .or_else(|| found.iter().find(|r| r.psc == NO_PSC)),
            None => found.iter().max_by_key(|r| r.spot.samples),
        };
        Ok(pick
            .filter(|r| !r.spot.is_mover())
            .map(|r| r.spot.station()))
    }

    /// Looks an area up; its `samples` is the number of cells it was built from.
    pub fn area(&self, key: &AreaKey) -> Result<Option<Station>> {
        let Some(t) = &self.areas else {
            return Ok(None);
        };
        Ok(t.get(AreaRecord::pack_key(key))?.map(|r| r.spot.station()))
    }

    /// Looks a WiFi access point up by BSSID.
    pub fn wifi(&self, mac: MacAddr) -> Result<Option<Station>> {
        self.beacon(BeaconKind::Wifi, mac)
    }

    /// Looks a Bluetooth beacon up by address.
    pub fn ble(&self, mac: MacAddr) -> Result<Option<Station>> {
        self.beacon(BeaconKind::Ble, mac)
    }

    fn beacon(&self, kind: BeaconKind, mac: MacAddr) -> Result<Option<Station>> {
        let Some(t) = &self.beacons else {
            return Ok(None);
        };
        Ok(t.get(BeaconRecord::pack_key(kind, mac))?
            .filter(|r| !r.spot.is_mover())
            .map(|r| r.spot.station()))
    }

    /// The writable overlay of observations learnt from submissions.
    pub fn overlay(&self) -> &Overlay {
        &self.overlay
    }

    /// Stores the accepted observations of a `/v2/geosubmit` body in the overlay (creating the
    /// database directory and the overlay on the first one), so that later lookups use them.
    /// Invalid reports and entries are counted in the report, not errors.
    pub fn submit(&self, body: &crate::api::GeosubmitRequest) -> Result<SubmitReport> {
        self.overlay.submit(body)
    }

    /// Everything this database knows about the transmitters of a query.
    pub fn known(&self, query: &Query) -> Result<Known> {
        let mut known = Known::default();
        self.fill(query, &mut known)?;
        Ok(known)
    }

    /// Adds to `known` what this database knows and `known` lacks: the imported tables
    /// combined with the overlay (see [`overlay`]).
    pub fn fill(&self, query: &Query, known: &mut Known) -> Result<()> {
        use std::collections::hash_map::Entry;
        let o = &self.overlay;
        for r in &query.wifi {
            if let Entry::Vacant(v) = known.wifi.entry(r.mac)
                && let Some(s) = combine(self.wifi(r.mac)?, o.wifi(r.mac)?, WIFI_MAX_DIST_M)
            {
                v.insert(s);
            }
        }
        for r in &query.ble {
            if let Entry::Vacant(v) = known.ble.entry(r.mac)
                && let Some(s) = combine(self.ble(r.mac)?, o.ble(r.mac)?, BLE_MAX_DIST_M)
            {
                v.insert(s);
            }
        }
        for c in &query.cells {
            if let Entry::Vacant(v) = known.cells.entry(c.key)
                && let Some(s) =
                    combine(self.cell(&c.key, c.psc)?, o.cell(&c.key)?, CELL_MAX_DIST_M)
            {
                v.insert(s);
            }
            let area = c.key.area();
            if let Entry::Vacant(v) = known.areas.entry(area)
                && let Some(s) = combine(self.area(&area)?, o.area(&area)?, CELL_MAX_DIST_M)
            {
                v.insert(s);
            }
        }
        Ok(())
    }

    /// Counts of what is stored.
    pub fn stats(&self) -> Result<DbStats> {
        let mut stats = read_stats(&self.dir)?;
        stats.cells = self.cells.as_ref().map_or(0, Table::len);
        stats.areas = self.areas.as_ref().map_or(0, Table::len);
        stats.bytes_on_disk = self.cells.as_ref().map_or(0, Table::file_size)
            + self.areas.as_ref().map_or(0, Table::file_size)
            + self.beacons.as_ref().map_or(0, Table::file_size);
        stats.ip_database = self.ip.as_ref().map(|d| d.database_type().to_owned());
        Ok(stats)
    }

    /// Imports a file (OpenCellID/MLS cell dump or WiGLE CSV, optionally gzip-compressed; the
    /// format is detected) into the database in `dir`, creating it if needed. `progress` is
    /// called every 64 Ki rows and at the end. Re-open the database afterwards to see the rows.
    ///
    /// Malformed lines are counted and skipped; a truncated input keeps what was read and says
    /// so in [`ImportReport::truncated`].
    pub fn import_file(
        dir: impl AsRef<Path>,
        path: impl AsRef<Path>,
        options: &ImportOptions,
        progress: &mut dyn FnMut(&ImportProgress),
    ) -> Result<ImportReport> {
        let path = path.as_ref();
        if path.is_dir() {
            return Err(Error::InvalidInput(format!(
                "{} is a directory, not a file to import",
                path.display()
            )));
        }
        if crate::ip::is_mmdb_file(path)? {
            return Err(Error::InvalidInput(format!(
                "{} is a GeoIP (MMDB) database: import it with GeoDb::import_ip_database",
                path.display()
            )));
        }
        let file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
        import::import_reader(dir.as_ref(), path, file, None, options, progress)
    }

    /// Like [`GeoDb::import_file`] from any reader; `format` `None` detects it.
    pub fn import_reader(
        dir: impl AsRef<Path>,
        reader: impl std::io::Read,
        format: Option<InputFormat>,
        options: &ImportOptions,
        progress: &mut dyn FnMut(&ImportProgress),
    ) -> Result<ImportReport> {
        import::import_reader(
            dir.as_ref(),
            Path::new("<import input>"),
            reader,
            format,
            options,
            progress,
        )
    }
}

fn read_stats(dir: &Path) -> Result<DbStats> {
    let path = dir.join(STATS);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::CorruptDatabase {
            path,
            reason: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DbStats::default()),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

fn write_stats(dir: &Path, stats: &DbStats) -> Result<()> {
    let path = dir.join(STATS);
    let tmp = dir.join("stats.json.tmp");
    let body = serde_json::to_vec_pretty(stats).map_err(|e| Error::InvalidInput(e.to_string()))?;
    std::fs::write(&tmp, body).map_err(|e| Error::io("write", &tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io("rename", &path, e))
}
