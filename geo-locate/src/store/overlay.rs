//! The writable overlay: transmitter positions learnt from `/v2/geosubmit` reports, kept next to
//! the imported base tables and consulted by [`GeoDb::fill`](super::GeoDb::fill).
//!
//! # Model
//!
//! BeaconDB-style, one row per transmitter (WiFi AP, Bluetooth beacon, cell) in a small SQLite
//! file, `overlay.sqlite`, in the database directory. A row keeps the **weighted sums** of the
//! positions it was observed from and their **bounding box**:
//!
//! - position = weighted mean of the observation positions;
//! - radius = distance from that mean to the farthest corner of the box (Ichnaea's station
//!   radius);
//! - samples = the number of accepted observations.
//!
//! An observation that would stretch the box beyond the kind's movement limit (WiFi 5 km,
//! Bluetooth 100 m, cells 100 km, Ichnaea's `MAX_DIST`) means the transmitter moved: the row
//! starts again from the new observation (the newer sighting wins, as in the importer).
//!
//! # Which observations count ([`ObservationFilter`], geo.md §1.3)
//!
//! A report needs a valid position and at least one cell or Bluetooth beacon, or two WiFi APs.
//! Reports whose fix is less accurate than 1 km, higher than 5 km or moving faster than 50 m/s
//! are dropped. Each entry is validated like a geolocate entry (invalid MACs, out-of-range cell
//! keys dropped one by one); then a WiFi AP needs a fix accuracy of at most 200 m, a cell 1 km,
//! a beacon 100 m; an entry seen more than 20 s from the fix, or more than 150 m of travel away
//! (speed × time), is dropped. Opt-outs never enter: SSIDs containing `_nomap` or `_optout`, and
//! hidden (empty) SSIDs.
//!
//! Each observation is weighted as the importer weighs a WiGLE row, `1 / (d̂² + acc²)` with `d̂`
//! the range its signal implies and `acc` the fix accuracy (see [`crate::learning`]), times
//! Ichnaea's `√(2000/age) · √(5/speed)`, each at most 1 (age under 2 s and speed under 5 m/s
//! count as those values; an unknown one counts as 1).
//!
//! # Bound
//!
//! The overlay holds at most [`Overlay::max_rows`] transmitters (WiFi, Bluetooth and cells
//! together; [`DEFAULT_MAX_ROWS`] unless [`Overlay::set_max_rows`] says otherwise). Once it is
//! full, observations of transmitters it already knows still refine them, and observations of
//! new ones are refused and counted in [`SubmitReport::refused_full`]. The rows are counted when
//! this process first writes, then kept up to date by it.
//!
//! # Applying a shared log ([`Overlay::apply_log`])
//!
//! Several overlays can be kept as caches of one append-only log of geosubmit bodies (the
//! server's cluster keeps that log in PostgreSQL; this crate knows nothing of it). Each entry has
//! a position (`seq`, increasing) and the time the log accepted it, which stands in for a
//! report's missing timestamp, so every overlay that applies the same entries in the same order
//! with the same [`Overlay::max_rows`] ends up with the same rows. The position applied so far is
//! kept per log name in the overlay's own file (`log_positions`), written in the same SQLite
//! transaction as the entries' observations: a crash leaves either both or neither, so an entry
//! is never applied twice and never skipped. [`Overlay::log_position`] says where to resume.
//!
//! # Combining with the base
//!
//! When both the imported base and the overlay know a transmitter, their positions are averaged
//! weighted by sample counts (a base record without a count weighs 1), unless they are farther
//! apart than the movement limit: then the overlay (newer) wins. Location areas for the LAC
//! fallback are derived from the overlay's cells of that area and combined the same way.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

use crate::api::{CellTower, GeosubmitItem, GeosubmitRequest};
use crate::cell::{AreaKey, CellKey};
use crate::error::{Error, Result};
use crate::estimate::Station;
use crate::geo::LatLon;
use crate::learning::{Emitter, observation_weight};
use crate::mac::MacAddr;
use crate::query::{self, BeaconReading, CellReading};

/// The overlay's file name inside the database directory.
pub const OVERLAY_FILE: &str = "overlay.sqlite";

/// Transmitters the overlay holds unless told otherwise: about 100 MB of SQLite.
pub const DEFAULT_MAX_ROWS: u64 = 1_000_000;

/// Movement limit for WiFi APs, metres (Ichnaea's `MAX_DIST`).
pub const WIFI_MAX_DIST_M: f64 = 5_000.0;
/// Movement limit for Bluetooth beacons, metres.
pub const BLE_MAX_DIST_M: f64 = 100.0;
/// Movement limit for cells, metres.
pub const CELL_MAX_DIST_M: f64 = 100_000.0;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS beacons (
    kind INTEGER NOT NULL, mac INTEGER NOT NULL,
    weight REAL NOT NULL, lat_sum REAL NOT NULL, lon_sum REAL NOT NULL,
    min_lat REAL NOT NULL, max_lat REAL NOT NULL, min_lon REAL NOT NULL, max_lon REAL NOT NULL,
    samples INTEGER NOT NULL, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL,
    PRIMARY KEY (kind, mac)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cells (
    radio INTEGER NOT NULL, mcc INTEGER NOT NULL, mnc INTEGER NOT NULL, lac INTEGER NOT NULL,
    cid INTEGER NOT NULL, psc INTEGER,
    weight REAL NOT NULL, lat_sum REAL NOT NULL, lon_sum REAL NOT NULL,
    min_lat REAL NOT NULL, max_lat REAL NOT NULL, min_lon REAL NOT NULL, max_lon REAL NOT NULL,
    samples INTEGER NOT NULL, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL,
    PRIMARY KEY (radio, mcc, mnc, lac, cid)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log_positions (
    log TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;
";

/// The limits an observation must meet to be stored. Defaults are Ichnaea's and BeaconDB's
/// (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ObservationFilter {
    /// Largest fix accuracy for WiFi observations, metres. Default 200.
    pub max_wifi_accuracy_m: f64,
    /// Largest fix accuracy for cell observations, metres. Default 1000.
    pub max_cell_accuracy_m: f64,
    /// Largest fix accuracy for Bluetooth observations, metres. Default 100.
    pub max_ble_accuracy_m: f64,
    /// Largest time between the fix and the sighting, milliseconds. Default 20 000.
    pub max_age_ms: i64,
    /// Largest speed of the device, m/s. Default 50.
    pub max_speed_mps: f64,
    /// Largest travel between the fix and the sighting (speed × time), metres. Default 150.
    pub max_travel_m: f64,
    /// Largest altitude of the fix, metres. Default 5000.
    pub max_altitude_m: f64,
}

impl Default for ObservationFilter {
    fn default() -> Self {
        ObservationFilter {
            max_wifi_accuracy_m: 200.0,
            max_cell_accuracy_m: 1_000.0,
            max_ble_accuracy_m: 100.0,
            max_age_ms: 20_000,
            max_speed_mps: 50.0,
            max_travel_m: 150.0,
            max_altitude_m: 5_000.0,
        }
    }
}

/// What [`Overlay::submit`] did with a geosubmit body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubmitReport {
    /// Reports in the body.
    pub reports: usize,
    /// Reports that contributed at least one observation.
    pub accepted_reports: usize,
    /// Reports dropped as a whole (no valid position, too inaccurate, too high, too fast, too
    /// few transmitters).
    pub rejected_reports: usize,
    /// WiFi observations stored.
    pub wifi: usize,
    /// Bluetooth observations stored.
    pub ble: usize,
    /// Cell observations stored.
    pub cells: usize,
    /// Entries dropped: invalid, opted out, hidden, too old or too far from the fix.
    pub dropped_entries: usize,
    /// Valid observations of transmitters the overlay did not know, refused because it holds
    /// [`Overlay::max_rows`] transmitters already.
    pub refused_full: usize,
}

impl SubmitReport {
    /// Observations stored, of every kind.
    pub fn stored(&self) -> usize {
        self.wifi + self.ble + self.cells
    }
}

/// One entry of a shared log of geosubmit bodies, for [`Overlay::apply_log`].
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    /// Its position in the log: entries are applied in increasing `seq`, each once.
    pub seq: u64,
    /// When the log accepted it, milliseconds since the epoch: the time of reports that carry
    /// no timestamp (what [`Overlay::submit`] takes from the clock).
    pub received_ms: i64,
    /// The body.
    pub body: GeosubmitRequest,
}

/// The writable overlay of a [`GeoDb`](super::GeoDb). The file is created by the first
/// [`Overlay::submit`]; until then lookups find nothing and touch nothing on disk.
#[derive(Debug)]
pub struct Overlay {
    path: PathBuf,
    conn: Mutex<Option<Connection>>,
    filter: ObservationFilter,
    /// Set once the overlay's file is open: lookups then go straight to it.
    present: AtomicBool,
    /// While it is not, when (ms after `opened`) to look for the file again: another process
    /// may create it, but a lookup must not cost a `stat` each time.
    next_look_ms: AtomicU64,
    opened: Instant,
    /// Most transmitters (rows) kept.
    max_rows: AtomicU64,
    /// Rows in the file, counted at the first submit (`u64::MAX` until then); read and written
    /// under the connection's lock.
    rows: AtomicU64,
}

/// `rows` before the first count.
const NOT_COUNTED: u64 = u64::MAX;

/// How often a missing overlay file is looked for again.
const LOOK_EVERY_MS: u64 = 1000;

/// One observation: where it was seen from, and how much it counts.
#[derive(Debug, Clone, Copy)]
struct Obs {
    at: LatLon,
    weight: f64,
    time: i64,
}

/// The running sums of one transmitter's row.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sums {
    weight: f64,
    lat_sum: f64,
    lon_sum: f64,
    min_lat: f64,
    max_lat: f64,
    min_lon: f64,
    max_lon: f64,
    samples: i64,
    first_seen: i64,
    last_seen: i64,
}

impl Sums {
    fn start(o: &Obs) -> Sums {
        Sums {
            weight: o.weight,
            lat_sum: o.weight * o.at.lat,
            lon_sum: o.weight * o.at.lon,
            min_lat: o.at.lat,
            max_lat: o.at.lat,
            min_lon: o.at.lon,
            max_lon: o.at.lon,
            samples: 1,
            first_seen: o.time,
            last_seen: o.time,
        }
    }

    /// Adds an observation, or starts again from it when the box would exceed `max_dist`.
    fn add(self, o: &Obs, max_dist: f64) -> Sums {
        let grown = Sums {
            weight: self.weight + o.weight,
            lat_sum: self.lat_sum + o.weight * o.at.lat,
            lon_sum: self.lon_sum + o.weight * o.at.lon,
            min_lat: self.min_lat.min(o.at.lat),
            max_lat: self.max_lat.max(o.at.lat),
            min_lon: self.min_lon.min(o.at.lon),
            max_lon: self.max_lon.max(o.at.lon),
            samples: self.samples.saturating_add(1),
            first_seen: self.first_seen.min(o.time),
            last_seen: self.last_seen.max(o.time),
        };
        let (Some(sw), Some(ne)) = (
            LatLon::new(grown.min_lat, grown.min_lon),
            LatLon::new(grown.max_lat, grown.max_lon),
        ) else {
            return Sums::start(o);
        };
        if sw.distance_m(ne) > max_dist {
            Sums::start(o)
        } else {
            grown
        }
    }

    fn station(&self) -> Option<Station> {
        if self.weight <= 0.0 || !self.weight.is_finite() {
            return None;
        }
        let position = LatLon::new(self.lat_sum / self.weight, self.lon_sum / self.weight)?;
        let radius_m = [
            (self.min_lat, self.min_lon),
            (self.min_lat, self.max_lon),
            (self.max_lat, self.min_lon),
            (self.max_lat, self.max_lon),
        ]
        .into_iter()
        .filter_map(|(lat, lon)| LatLon::new(lat, lon))
        .map(|corner| position.distance_m(corner))
        .fold(0.0, f64::max);
        Some(Station {
            position,
            radius_m,
            samples: u32::try_from(self.samples).unwrap_or(u32::MAX),
        })
    }

    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Sums> {
        Ok(Sums {
            weight: row.get(0)?,
            lat_sum: row.get(1)?,
            lon_sum: row.get(2)?,
            min_lat: row.get(3)?,
            max_lat: row.get(4)?,
            min_lon: row.get(5)?,
            max_lon: row.get(6)?,
            samples: row.get(7)?,
            first_seen: row.get(8)?,
            last_seen: row.get(9)?,
        })
    }
}

const SUM_COLUMNS: &str =
    "weight, lat_sum, lon_sum, min_lat, max_lat, min_lon, max_lon, samples, first_seen, last_seen";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BeaconKind {
    Wifi = 0,
    Ble = 1,
}

/// What one sighting says about distance: the importer's weight ([`crate::learning`]).
fn signal_weight(emitter: Emitter, signal: Option<i32>, accuracy: Option<f64>) -> f64 {
    observation_weight(emitter, signal.map(f64::from), accuracy)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The position of a report, checked against the report-wide limits.
struct Fix {
    at: LatLon,
    accuracy: Option<f64>,
    speed: Option<f64>,
    age_ms: i64,
    time: i64,
    /// √(5/speed), the per-report part of the weight.
    weight: f64,
}

impl ObservationFilter {
    fn fix(&self, item: &GeosubmitItem, now: i64) -> Option<Fix> {
        let p = item.position.as_ref()?;
        let at = LatLon::new(p.latitude, p.longitude)?;
        // (0, 0) is what broken GPS stacks report: never a real sighting.
        if at.lat == 0.0 && at.lon == 0.0 {
            return None;
        }
        let accuracy = p.accuracy.filter(|a| a.is_finite() && *a >= 0.0);
        if p.accuracy.is_some() && accuracy.is_none() {
            return None;
        }
        let max_acc = self
            .max_wifi_accuracy_m
            .max(self.max_cell_accuracy_m)
            .max(self.max_ble_accuracy_m);
        if accuracy.is_some_and(|a| a > max_acc) {
            return None;
        }
        if p.altitude
            .is_some_and(|h| !h.is_finite() || h > self.max_altitude_m)
        {
            return None;
        }
        let speed = p.speed.filter(|s| s.is_finite() && *s >= 0.0);
        if (p.speed.is_some() && speed.is_none()) || speed.is_some_and(|s| s > self.max_speed_mps) {
            return None;
        }
        let speed_w = speed.map_or(1.0, |s| (5.0 / s.max(5.0)).sqrt());
        Some(Fix {
            at,
            accuracy,
            speed,
            age_ms: p.age.unwrap_or(0),
            time: item.timestamp.filter(|t| *t > 0).unwrap_or(now),
            weight: speed_w,
        })
    }

    /// The weight of one sighting `entry_age_ms` after the report time, or `None` when it is too
    /// old or too far from the fix.
    fn sighting(&self, fix: &Fix, entry_age_ms: Option<i64>, max_acc: f64) -> Option<f64> {
        if fix.accuracy.is_some_and(|a| a > max_acc) {
            return None;
        }
        let apart_ms = entry_age_ms.unwrap_or(0).saturating_sub(fix.age_ms).abs();
        if apart_ms > self.max_age_ms {
            return None;
        }
        if fix
            .speed
            .is_some_and(|s| s * apart_ms as f64 / 1000.0 > self.max_travel_m)
        {
            return None;
        }
        let age_w = (2000.0 / (apart_ms as f64).max(2000.0)).sqrt();
        Some(fix.weight * age_w)
    }
}

impl Overlay {
    /// The overlay of the database in `dir`. Nothing is created until the first submit; an
    /// existing file is opened now.
    pub fn open(dir: &Path, filter: ObservationFilter) -> Result<Overlay> {
        let path = dir.join(OVERLAY_FILE);
        let conn = if path.is_file() {
            Some(Self::connect(&path)?)
        } else {
            None
        };
        Ok(Overlay {
            path,
            present: AtomicBool::new(conn.is_some()),
            conn: Mutex::new(conn),
            filter,
            next_look_ms: AtomicU64::new(LOOK_EVERY_MS),
            opened: Instant::now(),
            max_rows: AtomicU64::new(DEFAULT_MAX_ROWS),
            rows: AtomicU64::new(NOT_COUNTED),
        })
    }

    /// Sets the most transmitters the overlay keeps (see the module's "Bound"); 0 learns no new
    /// transmitter at all.
    pub fn set_max_rows(&self, max: u64) {
        self.max_rows.store(max, Ordering::Relaxed);
    }

    /// The most transmitters the overlay keeps.
    pub fn max_rows(&self) -> u64 {
        self.max_rows.load(Ordering::Relaxed)
    }

    fn connect(path: &Path) -> Result<Connection> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch("PRAGMA journal_mode = WAL;")?;
        conn.execute_batch(SCHEMA)?;
        Ok(conn)
    }

    /// The overlay's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The observation limits in force.
    pub fn filter(&self) -> &ObservationFilter {
        &self.filter
    }

    fn lock(&self) -> MutexGuard<'_, Option<Connection>> {
        // A panic while holding the lock cannot leave SQLite inconsistent; keep going.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the connection; `None` when the overlay does not exist yet. Another process
    /// may create it after this one opened it: a missing file is looked for again at most once a
    /// second.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<Option<T>>) -> Result<Option<T>> {
        if !self.present.load(Ordering::Acquire) {
            let now = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
            let due = self.next_look_ms.load(Ordering::Relaxed);
            let mine = now >= due
                && self
                    .next_look_ms
                    .compare_exchange(
                        due,
                        now + LOOK_EVERY_MS,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    )
                    .is_ok();
            if !mine || !self.path.is_file() {
                return Ok(None);
            }
        }
        let mut guard = self.lock();
        if guard.is_none() {
            *guard = Some(Self::connect(&self.path)?);
            self.present.store(true, Ordering::Release);
        }
        match guard.as_ref() {
            Some(conn) => f(conn),
            None => Ok(None),
        }
    }

    /// What the overlay knows about a WiFi AP.
    pub fn wifi(&self, mac: MacAddr) -> Result<Option<Station>> {
        self.beacon(BeaconKind::Wifi, mac)
    }

    /// What the overlay knows about a Bluetooth beacon.
    pub fn ble(&self, mac: MacAddr) -> Result<Option<Station>> {
        self.beacon(BeaconKind::Ble, mac)
    }

    fn beacon(&self, kind: BeaconKind, mac: MacAddr) -> Result<Option<Station>> {
        self.read(|conn| {
            let sums = conn
                .prepare_cached(&format!(
                    "SELECT {SUM_COLUMNS} FROM beacons WHERE kind = ?1 AND mac = ?2"
                ))?
                .query_row(params![kind as i64, mac.as_u64() as i64], Sums::from_row)
                .optional()?;
            Ok(sums.and_then(|s| s.station()))
        })
    }

    /// What the overlay knows about a cell.
    pub fn cell(&self, key: &CellKey) -> Result<Option<Station>> {
        self.read(|conn| {
            let sums = conn
                .prepare_cached(&format!(
                    "SELECT {SUM_COLUMNS} FROM cells
                     WHERE radio = ?1 AND mcc = ?2 AND mnc = ?3 AND lac = ?4 AND cid = ?5"
                ))?
                .query_row(
                    params![key.radio.code(), key.mcc, key.mnc, key.lac, key.cid as i64],
                    Sums::from_row,
                )
                .optional()?;
            Ok(sums.and_then(|s| s.station()))
        })
    }

    /// A location area made of the overlay's cells in it: their centre, a radius reaching every
    /// cell's coverage, and `samples` = the number of cells.
    pub fn area(&self, key: &AreaKey) -> Result<Option<Station>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {SUM_COLUMNS} FROM cells WHERE radio = ?1 AND mcc = ?2 AND mnc = ?3 AND lac = ?4"
            ))?;
            let cells: Vec<Station> = stmt
                .query_map(
                    params![key.radio.code(), key.mcc, key.mnc, key.lac],
                    Sums::from_row,
                )?
                .filter_map(|r| r.ok().and_then(|s| s.station()))
                .collect();
            Ok(area_of(&cells))
        })
    }

    /// Validates and stores a geosubmit body in one transaction. Invalid reports and entries
    /// are counted and skipped, never an error; an error means the overlay could not be
    /// written.
    pub fn submit(&self, body: &GeosubmitRequest) -> Result<SubmitReport> {
        let (mut report, pending) = self.prepare(body, now_ms());
        if pending.is_empty() {
            return Ok(report);
        }
        let max_rows = self.max_rows();
        self.write(|tx, rows| pending.store(tx, rows, max_rows, &mut report))?;
        Ok(report)
    }

    /// The position of the last entry of the log named `log` applied by
    /// [`Overlay::apply_log`]; 0 when none was (also when the overlay does not exist yet).
    pub fn log_position(&self, log: &str) -> Result<u64> {
        let mut guard = self.lock();
        let conn = match &mut *guard {
            Some(conn) => conn,
            // Straight to the disk, unlike lookups: a resuming reader must not miss a file
            // another process made a moment ago. Nothing is created here.
            closed if self.path.is_file() => {
                let conn = closed.insert(Self::connect(&self.path)?);
                self.present.store(true, Ordering::Release);
                conn
            }
            _ => return Ok(0),
        };
        position(conn, log)
    }

    /// Applies entries of the log named `log` as [`Overlay::submit`] would, in one SQLite
    /// transaction that also records the last entry's `seq` as the log's position (see the
    /// module's "Applying a shared log"). Entries at or below the recorded position, or not
    /// above the entry before them, are skipped: applying a batch again changes nothing.
    /// Returns the report of each entry applied, with its `seq`. The overlay's file is created
    /// by the first entry, even one whose reports are all rejected, so the position is kept.
    pub fn apply_log(&self, log: &str, entries: &[LogEntry]) -> Result<Vec<(u64, SubmitReport)>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        for e in entries {
            i64::try_from(e.seq).map_err(|_| {
                Error::InvalidInput(format!("log position {} is beyond i64", e.seq))
            })?;
        }
        let max_rows = self.max_rows();
        self.write(|tx, rows| {
            let mut at = position(tx, log)?;
            let mut applied = Vec::new();
            for entry in entries {
                if entry.seq <= at {
                    continue;
                }
                let (mut report, pending) = self.prepare(&entry.body, entry.received_ms);
                pending.store(tx, rows, max_rows, &mut report)?;
                at = entry.seq;
                applied.push((entry.seq, report));
            }
            tx.execute(
                "INSERT INTO log_positions (log, seq) VALUES (?1, ?2)
                 ON CONFLICT (log) DO UPDATE SET seq = excluded.seq",
                params![log, at as i64],
            )?;
            Ok(applied)
        })
    }

    /// Validates every report of `body`; `now` is the time of reports without a timestamp.
    fn prepare(&self, body: &GeosubmitRequest, now: i64) -> (SubmitReport, Pending) {
        let mut report = SubmitReport {
            reports: body.items.len(),
            ..SubmitReport::default()
        };
        let mut pending = Pending::default();
        for item in &body.items {
            let before = (pending.beacons.len(), pending.cells.len());
            self.collect(
                item,
                now,
                &mut report,
                &mut pending.beacons,
                &mut pending.cells,
            );
            if (pending.beacons.len(), pending.cells.len()) == before {
                report.rejected_reports += 1;
            } else {
                report.accepted_reports += 1;
            }
        }
        (report, pending)
    }

    /// Runs `f` in a transaction on the overlay's file (creating the directory and the file
    /// first if needed) with the number of rows, and keeps that number once it committed.
    fn write<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>, &mut u64) -> Result<T>,
    ) -> Result<T> {
        let mut guard = self.lock();
        let conn = match &mut *guard {
            Some(conn) => conn,
            closed => {
                if let Some(dir) = self.path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
                }
                let conn = closed.insert(Self::connect(&self.path)?);
                self.present.store(true, Ordering::Release);
                conn
            }
        };
        let tx = conn.transaction()?;
        let mut rows = match self.rows.load(Ordering::Acquire) {
            NOT_COUNTED => {
                let n: i64 = tx.query_row(
                    "SELECT (SELECT COUNT(*) FROM beacons) + (SELECT COUNT(*) FROM cells)",
                    [],
                    |row| row.get(0),
                )?;
                u64::try_from(n).unwrap_or(0)
            }
            n => n,
        };
        let out = f(&tx, &mut rows)?;
        tx.commit()?;
        self.rows.store(rows, Ordering::Release);
        Ok(out)
    }

    /// Validates one report and appends its observations.
    fn collect(
        &self,
        item: &GeosubmitItem,
        now: i64,
        report: &mut SubmitReport,
        beacons: &mut Vec<(BeaconKind, MacAddr, Obs)>,
        cells: &mut Vec<(CellReading, Obs)>,
    ) {
        let entries =
            item.wifi_access_points.len() + item.bluetooth_beacons.len() + item.cell_towers.len();
        let Some(fix) = self.filter.fix(item, now) else {
            report.dropped_entries += entries;
            return;
        };
        let f = &self.filter;
        let mut wifi: Vec<(BeaconReading, f64)> = Vec::new();
        for ap in &item.wifi_access_points {
            // Hidden networks never enter; `_nomap`/`_optout` are refused by the validator.
            let hidden = ap.wifi.ssid.as_deref().is_some_and(|s| s.trim().is_empty());
            let reading = (!hidden)
                .then(|| query::wifi_reading(&ap.wifi))
                .flatten()
                .filter(|r| !wifi.iter().any(|(w, _)| w.mac == r.mac));
            match reading.and_then(|r| {
                f.sighting(&fix, r.age_ms, f.max_wifi_accuracy_m)
                    .map(|w| (r, w * signal_weight(Emitter::Wifi, r.signal, fix.accuracy)))
            }) {
                Some(x) => wifi.push(x),
                None => report.dropped_entries += 1,
            }
        }
        let mut ble: Vec<(BeaconReading, f64)> = Vec::new();
        for b in &item.bluetooth_beacons {
            let reading =
                query::ble_reading(b).filter(|r| !ble.iter().any(|(o, _)| o.mac == r.mac));
            match reading.and_then(|r| {
                f.sighting(&fix, r.age_ms, f.max_ble_accuracy_m)
                    .map(|w| (r, w * signal_weight(Emitter::Ble, r.signal, fix.accuracy)))
            }) {
                Some(x) => ble.push(x),
                None => report.dropped_entries += 1,
            }
        }
        let mut cell: Vec<(CellReading, f64)> = Vec::new();
        for c in &item.cell_towers {
            let tower = CellTower {
                psc: c.cell.psc.or(c.primary_scrambling_code),
                ..c.cell.clone()
            };
            let reading = query::cell_reading(&tower, None)
                .filter(|r| !cell.iter().any(|(o, _)| o.key == r.key));
            match reading.and_then(|r| {
                f.sighting(&fix, r.age_ms, f.max_cell_accuracy_m).map(|w| {
                    let e = Emitter::Cell(r.key.radio);
                    (r, w * signal_weight(e, r.signal, fix.accuracy))
                })
            }) {
                Some(x) => cell.push(x),
                None => report.dropped_entries += 1,
            }
        }
        // Ichnaea keeps a report with at least one cell or beacon, or two WiFi APs; a lone AP
        // is never stored from a report without anything else.
        if wifi.len() < query::MIN_BEACONS_IN_QUERY && ble.is_empty() && cell.is_empty() {
            report.dropped_entries += wifi.len();
            return;
        }
        let obs = |weight: f64| Obs {
            at: fix.at,
            weight,
            time: fix.time,
        };
        let usable = |w: &f64| w.is_finite() && *w > 0.0;
        for (r, w) in wifi.into_iter().filter(|(_, w)| usable(w)) {
            beacons.push((BeaconKind::Wifi, r.mac, obs(w)));
        }
        for (r, w) in ble.into_iter().filter(|(_, w)| usable(w)) {
            beacons.push((BeaconKind::Ble, r.mac, obs(w)));
        }
        for (r, w) in cell.into_iter().filter(|(_, w)| usable(w)) {
            cells.push((r, obs(w)));
        }
    }
}

/// The observations of a body that passed validation, waiting to be written.
#[derive(Debug, Default)]
struct Pending {
    beacons: Vec<(BeaconKind, MacAddr, Obs)>,
    cells: Vec<(CellReading, Obs)>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.beacons.is_empty() && self.cells.is_empty()
    }

    /// Adds the observations to their rows in `tx`; `rows` counts the overlay's rows, which may
    /// not grow past `max_rows` (observations of new transmitters are then refused).
    fn store(
        &self,
        tx: &rusqlite::Transaction<'_>,
        rows: &mut u64,
        max_rows: u64,
        report: &mut SubmitReport,
    ) -> Result<()> {
        for (kind, mac, obs) in &self.beacons {
            let max_dist = match kind {
                BeaconKind::Wifi => WIFI_MAX_DIST_M,
                BeaconKind::Ble => BLE_MAX_DIST_M,
            };
            let key = params![*kind as i64, mac.as_u64() as i64];
            let old = tx
                .query_row(
                    &format!("SELECT {SUM_COLUMNS} FROM beacons WHERE kind = ?1 AND mac = ?2"),
                    key,
                    Sums::from_row,
                )
                .optional()?;
            if old.is_none() {
                if *rows >= max_rows {
                    report.refused_full += 1;
                    continue;
                }
                *rows += 1;
            }
            let s = old.map_or_else(|| Sums::start(obs), |o| o.add(obs, max_dist));
            tx.execute(
                &format!(
                    "INSERT OR REPLACE INTO beacons (kind, mac, {SUM_COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
                ),
                params![
                    *kind as i64,
                    mac.as_u64() as i64,
                    s.weight,
                    s.lat_sum,
                    s.lon_sum,
                    s.min_lat,
                    s.max_lat,
                    s.min_lon,
                    s.max_lon,
                    s.samples,
                    s.first_seen,
                    s.last_seen
                ],
            )?;
            match kind {
                BeaconKind::Wifi => report.wifi += 1,
                BeaconKind::Ble => report.ble += 1,
            }
        }
        for (c, obs) in &self.cells {
            let k = c.key;
            let old = tx
                .query_row(
                    &format!(
                        "SELECT {SUM_COLUMNS} FROM cells
                         WHERE radio = ?1 AND mcc = ?2 AND mnc = ?3 AND lac = ?4 AND cid = ?5"
                    ),
                    params![k.radio.code(), k.mcc, k.mnc, k.lac, k.cid as i64],
                    Sums::from_row,
                )
                .optional()?;
            if old.is_none() {
                if *rows >= max_rows {
                    report.refused_full += 1;
                    continue;
                }
                *rows += 1;
            }
            let s = old.map_or_else(|| Sums::start(obs), |o| o.add(obs, CELL_MAX_DIST_M));
            tx.execute(
                &format!(
                    "INSERT OR REPLACE INTO cells (radio, mcc, mnc, lac, cid, psc, {SUM_COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
                ),
                params![
                    k.radio.code(),
                    k.mcc,
                    k.mnc,
                    k.lac,
                    k.cid as i64,
                    c.psc,
                    s.weight,
                    s.lat_sum,
                    s.lon_sum,
                    s.min_lat,
                    s.max_lat,
                    s.min_lon,
                    s.max_lon,
                    s.samples,
                    s.first_seen,
                    s.last_seen
                ],
            )?;
            report.cells += 1;
        }
        Ok(())
    }
}

/// The position of `log` recorded in the overlay, 0 when none is.
fn position(conn: &Connection, log: &str) -> Result<u64> {
    let seq: Option<i64> = conn
        .prepare_cached("SELECT seq FROM log_positions WHERE log = ?1")?
        .query_row(params![log], |row| row.get(0))
        .optional()?;
    Ok(seq.and_then(|s| u64::try_from(s).ok()).unwrap_or(0))
}

/// The area made of `cells`: their unweighted centre, a radius reaching each cell's coverage.
fn area_of(cells: &[Station]) -> Option<Station> {
    if cells.is_empty() {
        return None;
    }
    let n = cells.len() as f64;
    let lat = cells.iter().map(|s| s.position.lat).sum::<f64>() / n;
    let lon = cells.iter().map(|s| s.position.lon).sum::<f64>() / n;
    let centre = LatLon::new(lat, lon)?;
    let radius_m = cells
        .iter()
        .map(|s| centre.distance_m(s.position) + s.radius_m)
        .fold(0.0, f64::max);
    Some(Station {
        position: centre,
        radius_m,
        samples: u32::try_from(cells.len()).unwrap_or(u32::MAX),
    })
}

/// Combines what the base and the overlay know about one transmitter (see the module docs).
pub(crate) fn combine(
    base: Option<Station>,
    observed: Option<Station>,
    max_dist: f64,
) -> Option<Station> {
    let (b, o) = match (base, observed) {
        (b, None) => return b,
        (None, o) => return o,
        (Some(b), Some(o)) => (b, o),
    };
    if b.position.distance_m(o.position) > max_dist {
        return Some(o);
    }
    let wb = f64::from(b.samples.max(1));
    let wo = f64::from(o.samples.max(1));
    let position = LatLon::new(
        (b.position.lat * wb + o.position.lat * wo) / (wb + wo),
        (b.position.lon * wb + o.position.lon * wo) / (wb + wo),
    )?;
    let radius_m = (b.radius_m + position.distance_m(b.position))
        .max(o.radius_m + position.distance_m(o.position));
    Some(Station {
        position,
        radius_m,
        samples: b.samples.saturating_add(o.samples),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::GeosubmitRequest;
    use crate::cell::Radio;
    use serde_json::json;

    fn body(v: serde_json::Value) -> GeosubmitRequest {
        serde_json::from_value(v).unwrap()
    }

    fn overlay(dir: &Path) -> Overlay {
        Overlay::open(dir, ObservationFilter::default()).unwrap()
    }

    fn mac(s: &str) -> MacAddr {
        MacAddr::parse_station(s).unwrap()
    }

    const HERE: (f64, f64) = (52.52, 13.405);

    fn item(lat: f64, lon: f64, extra: serde_json::Value) -> serde_json::Value {
        let mut v = json!({
            "timestamp": 1_700_000_000_000_i64,
            "position": {"latitude": lat, "longitude": lon, "accuracy": 10.0},
            "wifiAccessPoints": [
                {"macAddress": "aa:bb:cc:00:00:01", "signalStrength": -60},
                {"macAddress": "aa:bb:cc:00:00:02", "signalStrength": -70}
            ]
        });
        if let (Some(obj), Some(more)) = (v.as_object_mut(), extra.as_object()) {
            for (k, val) in more {
                obj.insert(k.clone(), val.clone());
            }
        }
        v
    }

    #[test]
    fn an_overlay_another_process_creates_is_found_within_a_second() {
        let dir = tempfile::tempdir().unwrap();
        let geodb = dir.path().join("geodb");
        let reader = overlay(&geodb);
        let ap = mac("aa:bb:cc:00:00:01");
        // Missing: lookups answer nothing and do not look at the disk each time.
        for _ in 0..1000 {
            assert_eq!(reader.wifi(ap).unwrap(), None);
        }
        let writer = overlay(&geodb);
        writer
            .submit(&body(json!({"items": [item(HERE.0, HERE.1, json!({}))]})))
            .unwrap();
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        loop {
            if reader.wifi(ap).unwrap().is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "the new overlay was never found");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(reader.present.load(Ordering::Acquire));
    }

    #[test]
    fn nothing_on_disk_until_the_first_accepted_report() {
        let dir = tempfile::tempdir().unwrap();
        let o = overlay(&dir.path().join("geodb"));
        assert_eq!(o.wifi(mac("aa:bb:cc:00:00:01")).unwrap(), None);
        let r = o.submit(&body(json!({"items": []}))).unwrap();
        assert_eq!(r, SubmitReport::default());
        assert!(!o.path().exists());
        let r = o
            .submit(&body(json!({"items": [item(HERE.0, HERE.1, json!({}))]})))
            .unwrap();
        assert_eq!((r.accepted_reports, r.wifi), (1, 2));
        assert!(o.path().is_file());
        let s = o.wifi(mac("aa:bb:cc:00:00:01")).unwrap().unwrap();
        assert!((s.position.lat - HERE.0).abs() < 1e-9 && (s.position.lon - HERE.1).abs() < 1e-9);
        assert_eq!(s.samples, 1);
        assert!(s.radius_m < 1e-6, "{s:?}");
        // Another process (or a restart) sees the same rows.
        let again = overlay(&dir.path().join("geodb"));
        assert!(again.wifi(mac("aa:bb:cc:00:00:02")).unwrap().is_some());
    }

    #[test]
    fn weighted_mean_and_bounding_box_radius() {
        let dir = tempfile::tempdir().unwrap();
        let o = overlay(dir.path());
        let here = LatLon::new(HERE.0, HERE.1).unwrap();
        let east = here.offset(100.0, 0.0);
        // Same accuracy and signal: equal weights, the mean is half way.
        o.submit(&body(json!({"items": [
            item(here.lat, here.lon, json!({})),
            item(east.lat, east.lon, json!({})),
        ]})))
        .unwrap();
        let s = o.wifi(mac("aa:bb:cc:00:00:01")).unwrap().unwrap();
        assert!(
            (s.position.distance_m(here.offset(50.0, 0.0))) < 0.5,
            "{s:?}"
        );
        assert!((s.radius_m - 50.0).abs() < 0.5, "{s:?}");
        assert_eq!(s.samples, 2);
        // At −60 dBm (10 m by the WiFi model) a 40 m fix weighs 1/(10² + 40²) against the
        // 10 m fix's 1/(10² + 10²): 2/17 as much.
        let dir = tempfile::tempdir().unwrap();
        let o = overlay(dir.path());
        let mut far = item(east.lat, east.lon, json!({}));
        far["position"]["accuracy"] = json!(40.0);
        o.submit(&body(
            json!({"items": [item(here.lat, here.lon, json!({})), far]}),
        ))
        .unwrap();
        let s = o.wifi(mac("aa:bb:cc:00:00:01")).unwrap().unwrap();
        let expected = here.offset(100.0 * 2.0 / 19.0, 0.0);
        assert!(s.position.distance_m(expected) < 0.5, "{s:?}");
    }

    #[test]
    fn filters_drop_bad_observations() {
        let dir = tempfile::tempdir().unwrap();
        let o = overlay(dir.path());
        let bad = |pos: serde_json::Value| {
            let mut v = item(HERE.0, HERE.1, json!({}));
            v["position"] = pos;
            v
        };
        let r = o
            .submit(&body(json!({"items": [
                bad(json!({"latitude": 52.52, "longitude": 13.405, "accuracy": 1500.0})),
                bad(json!({"latitude": 52.52, "longitude": 13.405, "speed": 60.0})),
                bad(json!({"latitude": 52.52, "longitude": 13.405, "altitude": 9000.0})),
                bad(json!({"latitude": 95.0, "longitude": 13.405})),
                {"wifiAccessPoints": [{"macAddress": "aa:bb:cc:00:00:09"}, {"macAddress": "aa:bb:cc:00:00:0a"}]},
            ]})))
            .unwrap();
        assert_eq!((r.reports, r.rejected_reports, r.stored()), (5, 5, 0));
        assert_eq!(r.dropped_entries, 10);
        // WiFi needs a 200 m fix; the cell in the same report (1 km limit) is kept.
        let r = o
            .submit(&body(json!({"items": [{
                "position": {"latitude": 52.52, "longitude": 13.405, "accuracy": 500.0},
                "wifiAccessPoints": [{"macAddress": "aa:bb:cc:00:00:01"}, {"macAddress": "aa:bb:cc:00:00:02"}],
                "cellTowers": [{"radioType": "lte", "mobileCountryCode": 262, "mobileNetworkCode": 1,
                                "locationAreaCode": 7, "cellId": 1234567}]
            }]})))
            .unwrap();
        assert_eq!((r.wifi, r.cells, r.dropped_entries), (0, 1, 2));
        // Too old, too far travelled, opted out, hidden, invalid: each dropped on its own.
        let r = o
            .submit(&body(json!({"items": [{
                "position": {"latitude": 52.52, "longitude": 13.405, "accuracy": 5.0, "speed": 20.0},
                "wifiAccessPoints": [
                    {"macAddress": "aa:bb:cc:00:00:03"},
                    {"macAddress": "aa:bb:cc:00:00:04", "age": 500},
                    {"macAddress": "aa:bb:cc:00:00:05", "age": 30000},
                    {"macAddress": "aa:bb:cc:00:00:06", "age": 10000},
                    {"macAddress": "aa:bb:cc:00:00:07", "ssid": "home_nomap"},
                    {"macAddress": "aa:bb:cc:00:00:08", "ssid": ""},
                    {"macAddress": "00:00:00:00:00:00"}
                ]
            }]})))
            .unwrap();
        assert_eq!((r.wifi, r.dropped_entries), (2, 5));
        for m in ["05", "06", "07", "08"] {
            assert_eq!(o.wifi(mac(&format!("aa:bb:cc:00:00:{m}"))).unwrap(), None);
        }
        // A lone WiFi AP with nothing else is not stored.
        let r = o
            .submit(&body(json!({"items": [{
                "position": {"latitude": 52.52, "longitude": 13.405},
                "wifiAccessPoints": [{"macAddress": "aa:bb:cc:00:00:0b"}]
            }]})))
            .unwrap();
        assert_eq!((r.stored(), r.rejected_reports), (0, 1));
    }

    #[test]
    fn a_moved_transmitter_starts_again() {
        let dir = tempfile::tempdir().unwrap();
        let o = overlay(dir.path());
        let here = LatLon::new(HERE.0, HERE.1).unwrap();
        let far = here.offset(0.0, 8_000.0);
        o.submit(&body(
            json!({"items": [item(here.lat, here.lon, json!({}))]}),
        ))
        .unwrap();
        o.submit(&body(json!({"items": [item(far.lat, far.lon, json!({}))]})))
            .unwrap();
        let s = o.wifi(mac("aa:bb:cc:00:00:01")).unwrap().unwrap();
        assert!(s.position.distance_m(far) < 0.5);
        assert_eq!(s.samples, 1);
    }

    #[test]
    fn cells_and_their_area() {
        let dir = tempfile::tempdir().unwrap();
        let o = overlay(dir.path());
        let here = LatLon::new(HERE.0, HERE.1).unwrap();
        let other = here.offset(2_000.0, 0.0);
        let cell = |cid: i64, at: LatLon| {
            json!({
                "position": {"latitude": at.lat, "longitude": at.lon, "accuracy": 50.0},
                "cellTowers": [{"radioType": "gsm", "mobileCountryCode": 262, "mobileNetworkCode": 1,
                                "locationAreaCode": 7, "cellId": cid, "primaryScramblingCode": 12}]
            })
        };
        let r = o
            .submit(&body(json!({"items": [cell(10, here), cell(11, other)]})))
            .unwrap();
        assert_eq!(r.cells, 2);
        let key = |cid| CellKey {
            radio: Radio::Gsm,
            mcc: 262,
            mnc: 1,
            lac: 7,
            cid,
        };
        assert!(o.cell(&key(10)).unwrap().unwrap().position.distance_m(here) < 0.5);
        let area = o.area(&key(10).area()).unwrap().unwrap();
        assert_eq!(area.samples, 2);
        assert!(area.position.distance_m(here.offset(1_000.0, 0.0)) < 1.0);
        assert!((area.radius_m - 1_000.0).abs() < 1.0);
        assert_eq!(o.cell(&key(12)).unwrap(), None);
    }

    #[test]
    fn combining_base_and_overlay() {
        let here = LatLon::new(HERE.0, HERE.1).unwrap();
        let st = |at: LatLon, samples| Station {
            position: at,
            radius_m: 10.0,
            samples,
        };
        let base = st(here, 3);
        let seen = st(here.offset(40.0, 0.0), 1);
        let c = combine(Some(base), Some(seen), WIFI_MAX_DIST_M).unwrap();
        assert!(c.position.distance_m(here.offset(10.0, 0.0)) < 0.5);
        assert_eq!(c.samples, 4);
        assert!((c.radius_m - 40.0).abs() < 0.5);
        let moved = st(here.offset(9_000.0, 0.0), 1);
        assert_eq!(
            combine(Some(base), Some(moved), WIFI_MAX_DIST_M),
            Some(moved)
        );
        assert_eq!(combine(Some(base), None, WIFI_MAX_DIST_M), Some(base));
        assert_eq!(combine(None, Some(seen), WIFI_MAX_DIST_M), Some(seen));
    }

    #[test]
    fn the_database_uses_what_was_submitted() {
        use crate::{Estimator, GeoDb, GeolocateRequest, Query};
        let dir = tempfile::tempdir().unwrap();
        let db = GeoDb::open(dir.path().join("geodb")).unwrap();
        let here = LatLon::new(HERE.0, HERE.1).unwrap();
        let request: GeolocateRequest = serde_json::from_value(json!({"wifiAccessPoints": [
            {"macAddress": "aa:bb:cc:00:00:01", "signalStrength": -60},
            {"macAddress": "aa:bb:cc:00:00:02", "signalStrength": -70}
        ]}))
        .unwrap();
        let query = Query::from_request(&request);
        assert!(
            Estimator::default()
                .locate(&query, &db.known(&query).unwrap())
                .is_none()
        );
        let r = db
            .submit(&body(
                json!({"items": [item(here.lat, here.lon, json!({}))]}),
            ))
            .unwrap();
        assert_eq!(r.wifi, 2);
        let fix = Estimator::default()
            .locate(&query, &db.known(&query).unwrap())
            .unwrap();
        assert!(fix.position.distance_m(here) < 1.0, "{fix:?}");
    }

    #[test]
    fn a_full_overlay_refuses_new_transmitters_and_refines_known_ones() {
        let dir = tempfile::tempdir().unwrap();
        let o = overlay(dir.path());
        assert_eq!(o.max_rows(), DEFAULT_MAX_ROWS);
        o.set_max_rows(3);
        let here = LatLon::new(HERE.0, HERE.1).unwrap();
        let r = o
            .submit(&body(
                json!({"items": [item(here.lat, here.lon, json!({}))]}),
            ))
            .unwrap();
        assert_eq!((r.wifi, r.refused_full), (2, 0));
        // Two new APs, one row left: the first is stored, the second refused.
        let mut more = item(here.lat, here.lon, json!({}));
        more["wifiAccessPoints"] = json!([
            {"macAddress": "aa:bb:cc:00:00:03"}, {"macAddress": "aa:bb:cc:00:00:04"}
        ]);
        let r = o.submit(&body(json!({"items": [more]}))).unwrap();
        assert_eq!((r.wifi, r.refused_full), (1, 1));
        assert!(o.wifi(mac("aa:bb:cc:00:00:03")).unwrap().is_some());
        assert_eq!(o.wifi(mac("aa:bb:cc:00:00:04")).unwrap(), None);
        // Known transmitters still learn.
        let east = here.offset(100.0, 0.0);
        let r = o
            .submit(&body(
                json!({"items": [item(east.lat, east.lon, json!({}))]}),
            ))
            .unwrap();
        assert_eq!((r.wifi, r.refused_full), (2, 0));
        assert_eq!(
            o.wifi(mac("aa:bb:cc:00:00:01")).unwrap().unwrap().samples,
            2
        );
        // Another process opening the same file counts its rows first.
        let again = overlay(dir.path());
        again.set_max_rows(3);
        let mut new = item(here.lat, here.lon, json!({}));
        new["wifiAccessPoints"] = json!([
            {"macAddress": "aa:bb:cc:00:00:05"}, {"macAddress": "aa:bb:cc:00:00:06"}
        ]);
        let r = again.submit(&body(json!({"items": [new]}))).unwrap();
        assert_eq!((r.wifi, r.refused_full), (0, 2));
    }

    fn entry(seq: u64, v: serde_json::Value) -> LogEntry {
        LogEntry {
            seq,
            received_ms: 1_600_000_000_000 + seq as i64,
            body: body(v),
        }
    }

    #[test]
    fn a_log_is_applied_once_and_resumes_where_it_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let o = overlay(&dir.path().join("geodb"));
        assert_eq!(o.log_position("cluster").unwrap(), 0);
        assert!(!o.path().exists(), "asking creates nothing");
        let here = LatLon::new(HERE.0, HERE.1).unwrap();
        let report = json!({"items": [item(here.lat, here.lon, json!({}))]});
        let rejected =
            json!({"items": [{"wifiAccessPoints": [{"macAddress": "aa:bb:cc:00:00:09"}]}]});
        let batch = [
            entry(3, report.clone()),
            entry(5, rejected),
            entry(4, report.clone()),
        ];
        let applied = o.apply_log("cluster", &batch).unwrap();
        let seqs: Vec<u64> = applied.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(seqs, [3, 5], "an entry below the one before it is skipped");
        assert_eq!(applied[0].1.wifi, 2);
        assert_eq!(applied[1].1.rejected_reports, 1);
        assert_eq!(o.log_position("cluster").unwrap(), 5);
        assert_eq!(o.log_position("another log").unwrap(), 0);
        // The same batch again, and a batch overlapping it, apply only what is new.
        assert!(o.apply_log("cluster", &batch).unwrap().is_empty());
        let ap = mac("aa:bb:cc:00:00:01");
        assert_eq!(o.wifi(ap).unwrap().unwrap().samples, 1);
        let applied = o
            .apply_log(
                "cluster",
                &[entry(5, report.clone()), entry(6, report.clone())],
            )
            .unwrap();
        assert_eq!(applied.len(), 1);
        assert_eq!(o.wifi(ap).unwrap().unwrap().samples, 2);
        // A restart (another process on the same file) resumes there.
        let again = overlay(&dir.path().join("geodb"));
        assert_eq!(again.log_position("cluster").unwrap(), 6);
        // A log's first entry creates the overlay even when it teaches nothing.
        let fresh = overlay(&dir.path().join("other"));
        let nothing = json!({"items": []});
        assert_eq!(fresh.apply_log("c", &[entry(1, nothing)]).unwrap().len(), 1);
        assert!(fresh.path().is_file());
        assert_eq!(fresh.log_position("c").unwrap(), 1);
        let too_far = LogEntry {
            seq: u64::MAX,
            ..entry(1, json!({"items": []}))
        };
        assert!(matches!(
            fresh.apply_log("c", &[too_far]),
            Err(Error::InvalidInput(_))
        ));
    }

    #[test]
    fn a_batch_that_fails_keeps_neither_its_observations_nor_its_position() {
        let dir = tempfile::tempdir().unwrap();
        let o = overlay(dir.path());
        let here = LatLon::new(HERE.0, HERE.1).unwrap();
        let report = json!({"items": [item(here.lat, here.lon, json!({}))]});
        o.apply_log("cluster", &[entry(1, report.clone())]).unwrap();
        // The position is written last: make that write fail, as a crash before commit would.
        let side = Connection::open(o.path()).unwrap();
        side.execute_batch(
            "CREATE TRIGGER refuse BEFORE UPDATE ON log_positions
             BEGIN SELECT RAISE(ABORT, 'refused'); END;",
        )
        .unwrap();
        assert!(o.apply_log("cluster", &[entry(2, report.clone())]).is_err());
        assert_eq!(o.log_position("cluster").unwrap(), 1);
        let ap = mac("aa:bb:cc:00:00:01");
        assert_eq!(o.wifi(ap).unwrap().unwrap().samples, 1, "rolled back");
        side.execute_batch("DROP TRIGGER refuse").unwrap();
        assert_eq!(
            o.apply_log("cluster", &[entry(2, report)]).unwrap().len(),
            1
        );
        assert_eq!(o.wifi(ap).unwrap().unwrap().samples, 2, "applied once");
        assert_eq!(o.log_position("cluster").unwrap(), 2);
    }

    #[test]
    fn overlays_applying_one_log_hold_the_same_rows() {
        let here = LatLon::new(HERE.0, HERE.1).unwrap();
        let mut untimed = item(here.lat, here.lon, json!({}));
        untimed.as_object_mut().unwrap().remove("timestamp");
        let log = [
            entry(1, json!({"items": [untimed.clone()]})),
            entry(
                2,
                json!({"items": [item(here.lat + 0.0005, here.lon, json!({}))]}),
            ),
        ];
        let rows = |o: &Overlay| -> Vec<(i64, f64, f64, i64)> {
            let guard = o.lock();
            let conn = guard.as_ref().unwrap();
            let mut stmt = conn
                .prepare("SELECT mac, lat_sum, weight, first_seen FROM beacons ORDER BY mac")
                .unwrap();
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (a, b) = (overlay(a.path()), overlay(b.path()));
        a.apply_log("cluster", &log).unwrap();
        b.apply_log("cluster", &log[..1]).unwrap();
        b.apply_log("cluster", &log[1..]).unwrap();
        assert_eq!(rows(&a), rows(&b));
        // A report without a timestamp is dated when the log accepted it, not when it is applied.
        assert_eq!(rows(&a)[0].3, log[0].received_ms);
    }

    #[test]
    fn signal_weights() {
        let w = |e, s| signal_weight(e, s, Some(5.0));
        assert!(w(Emitter::Wifi, Some(-50)) > 10.0 * w(Emitter::Wifi, Some(-90)));
        assert!(w(Emitter::Ble, Some(-60)) > w(Emitter::Ble, Some(-90)));
        let lte = Emitter::Cell(Radio::Lte);
        assert!(w(lte, Some(-70)) > w(lte, Some(-110)));
        // A missing signal counts as the emitter's default.
        assert_eq!(w(Emitter::Wifi, None), w(Emitter::Wifi, Some(-80)));
        // A poor fix weighs less.
        assert!(signal_weight(Emitter::Wifi, Some(-50), Some(100.0)) < w(Emitter::Wifi, Some(-50)));
    }
}
