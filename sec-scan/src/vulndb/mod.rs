//! The offline vulnerability database: NVD, OSV, CISA KEV and FIRST EPSS in one SQLite file,
//! and the matcher that turns a detected service into CVE threats.
//!
//! # The file
//!
//! One SQLite database, `<data-dir>/cvedb.sqlite` ([`VulnDb::FILE_NAME`]); `vigil cvedb import`
//! fills it, `vigil cvedb stats` describes it. Tables:
//!
//! | table | one row per | key / index |
//! |---|---|---|
//! | `cve` | NVD CVE (Rejected skipped): dates, English description, preferred CVSS, CWEs, NVD's KEV copies, reference URLs | `id` |
//! | `cve_config` | configuration of a CVE, as compact JSON (nodes, operators, negate, every cpeMatch) | `(cve_id, idx)` |
//! | `cpe_match` | `vulnerable: true` application (`a`) cpeMatch entry, with its criteria, version, update and four bounds | `(product, vendor, …)`, so matching a CPE is an index range scan |
//! | `osv`, `osv_affected` | OSV record; (ecosystem, package, CVE) it covers, with its ranges and versions | `(ecosystem, package, cve_id)` |
//! | `kev` | CISA KEV entry | `cve_id` |
//! | `epss` | EPSS score and percentile | `cve_id` |
//! | `meta` | feed facts: EPSS `score_date`/`model_version`, KEV `catalogVersion`/`dateReleased`, schema version | `key` |
//!
//! # Importing
//!
//! [`VulnDb::import_path`] takes a file (`.json`, `.json.gz`, `.csv`, `.csv.gz`, `.zip`) or a
//! directory of OSV `.json` files; the format is recognised from the content, not the name
//! ([`Format`]). Every importer streams: an NVD yearly file is one JSON object with a large
//! `vulnerabilities` array, which is read item by item ([`stream`]), so memory stays bounded by
//! one batch. Records are written in transactions of [`BATCH`] records, as upserts:
//!
//! - an NVD record replaces the stored one only when its `lastModified` is not older, so
//!   importing a `modified` feed after the yearly files updates them, and the reverse order
//!   keeps the newer data;
//! - OSV records likewise by `modified`; KEV and EPSS rows are replaced.
//!
//! An import that stops half-way (a crash, Ctrl-C, a broken file) leaves the committed batches;
//! running it again ends in the state of an uninterrupted run.
//!
//! # Matching
//!
//! See [`matcher`]: [`VulnDb::match_service`] takes a [`ServiceQuery`] (a CPE, product and
//! version, and optional distribution evidence) and returns [`CveThreat`]s.

mod epss;
pub mod error;
mod kev;
pub mod matcher;
mod nvd;
mod osv;
pub mod scan;
mod source;
pub mod stream;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension as _};
use serde::Serialize;

pub use error::{Result, VulnDbError};
pub use matcher::{
    Confidence, CveThreat, CvssInfo, EpssInfo, Evidence, KevInfo, MatchOptions, MatchSource,
    ServiceQuery,
};
pub use scan::{VulnCheck, query_of};
pub use source::Format;

/// Records written per transaction.
pub const BATCH: usize = 2_000;

/// The schema version this build writes (kept in `meta`).
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cve(
    id TEXT PRIMARY KEY,
    status TEXT,
    published TEXT,
    last_modified TEXT,
    description TEXT,
    cvss_version TEXT,
    cvss_score REAL,
    cvss_vector TEXT,
    cvss_severity TEXT,
    cwes TEXT,
    kev_added TEXT,
    kev_due TEXT,
    kev_name TEXT,
    refs TEXT
);
CREATE TABLE IF NOT EXISTS cve_config(
    cve_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    json TEXT NOT NULL,
    PRIMARY KEY(cve_id, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cpe_match(
    product TEXT NOT NULL,
    vendor TEXT NOT NULL,
    cve_id TEXT NOT NULL,
    config_idx INTEGER NOT NULL,
    node_idx INTEGER NOT NULL,
    match_idx INTEGER NOT NULL,
    criteria TEXT NOT NULL,
    start_incl TEXT,
    start_excl TEXT,
    end_incl TEXT,
    end_excl TEXT,
    -- The criteria's version and update in stored form ('*' ANY, '-' NA), and whether every
    -- attribute after update is ANY: then the matcher decides without parsing the criteria.
    version TEXT NOT NULL,
    upd TEXT NOT NULL,
    simple INTEGER NOT NULL,
    -- 1 when the configuration is one plain OR node: the entry alone decides.
    config_simple INTEGER NOT NULL,
    PRIMARY KEY(product, vendor, cve_id, config_idx, node_idx, match_idx)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS cpe_match_cve ON cpe_match(cve_id);
CREATE TABLE IF NOT EXISTS osv(id TEXT PRIMARY KEY, modified TEXT);
CREATE TABLE IF NOT EXISTS osv_affected(
    ecosystem TEXT NOT NULL,
    package TEXT NOT NULL,
    cve_id TEXT NOT NULL,
    osv_id TEXT NOT NULL,
    ranges TEXT NOT NULL,
    versions TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS osv_affected_key ON osv_affected(ecosystem, package, cve_id);
CREATE INDEX IF NOT EXISTS osv_affected_id ON osv_affected(osv_id);
CREATE TABLE IF NOT EXISTS kev(
    cve_id TEXT PRIMARY KEY,
    date_added TEXT,
    due_date TEXT,
    ransomware TEXT,
    name TEXT
);
CREATE TABLE IF NOT EXISTS epss(cve_id TEXT PRIMARY KEY, score REAL, percentile REAL);
";

/// The offline vulnerability database.
pub struct VulnDb {
    conn: Connection,
    path: Option<PathBuf>,
    /// The answers to recent queries: a scan asks about the same few products and versions
    /// again and again. Emptied by every import.
    cache: std::cell::RefCell<HashMap<(ServiceQuery, bool), Vec<CveThreat>>>,
}

/// Answers [`VulnDb::match_service`] keeps; past it the cache starts over.
pub const MATCH_CACHE_ENTRIES: usize = 4_096;

impl std::fmt::Debug for VulnDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VulnDb").field("path", &self.path).finish()
    }
}

/// Progress of a running import, for a progress bar.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ImportProgress {
    /// Bytes read from the input (compressed bytes for `.gz` and `.zip`).
    pub bytes_read: u64,
    /// Records read so far (CVEs, OSV records, KEV entries, EPSS rows).
    pub records: u64,
}

/// What one import did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImportReport {
    /// The detected format (`None` only for an empty OSV directory).
    pub format: Option<Format>,
    /// Bytes read from the input.
    pub bytes: u64,
    /// Records read.
    pub records: u64,
    /// Records written (new or replacing an older copy).
    pub imported: u64,
    /// NVD records with `vulnStatus` Rejected, and OSV records with `withdrawn`.
    pub skipped_rejected: u64,
    /// Records not written because the database holds a copy at least as new.
    pub skipped_older: u64,
    /// Rows skipped as unusable (an EPSS line whose score is not a number, a KEV row without
    /// a CVE id), with the first few reasons in `problems`.
    pub skipped_bad: u64,
    /// Up to 20 reasons for `skipped_bad`, with their line or record.
    pub problems: Vec<String>,
    /// Application cpeMatch entries indexed (NVD).
    pub cpe_matches: u64,
}

impl ImportReport {
    fn bad(&mut self, what: String) {
        self.skipped_bad += 1;
        if self.problems.len() < 20 {
            self.problems.push(what);
        }
    }
}

/// What the database holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DbStats {
    /// The database file (`None` in memory).
    pub path: Option<PathBuf>,
    /// Size of the database file in bytes (0 in memory).
    pub bytes_on_disk: u64,
    /// NVD CVE records.
    pub cves: u64,
    /// Indexed application cpeMatch entries.
    pub cpe_matches: u64,
    /// Stored NVD configurations.
    pub configurations: u64,
    /// OSV records.
    pub osv_records: u64,
    /// (ecosystem, package, CVE) rows from OSV.
    pub osv_affected: u64,
    /// OSV rows per ecosystem.
    pub osv_by_ecosystem: BTreeMap<String, u64>,
    /// CISA KEV entries.
    pub kev: u64,
    /// EPSS scores.
    pub epss: u64,
    /// The newest NVD `lastModified`.
    pub nvd_last_modified: Option<String>,
    /// KEV `catalogVersion` of the last imported catalog.
    pub kev_catalog_version: Option<String>,
    /// KEV `dateReleased` of the last imported catalog.
    pub kev_date_released: Option<String>,
    /// EPSS `score_date` of the last imported file.
    pub epss_score_date: Option<String>,
    /// EPSS `model_version` of the last imported file.
    pub epss_model_version: Option<String>,
}

impl VulnDb {
    /// The database's file name inside a data directory.
    pub const FILE_NAME: &'static str = "cvedb.sqlite";

    /// Opens (creating it and the directory when missing) `<data_dir>/cvedb.sqlite`.
    pub fn open(data_dir: &Path) -> Result<VulnDb> {
        std::fs::create_dir_all(data_dir).map_err(|source| VulnDbError::Io {
            path: data_dir.to_path_buf(),
            source,
        })?;
        VulnDb::open_file(&data_dir.join(Self::FILE_NAME))
    }

    /// Opens (creating it when missing) a database file.
    pub fn open_file(path: &Path) -> Result<VulnDb> {
        let conn = Connection::open(path)?;
        // WAL with NORMAL sync: a crash loses at most the last batch, never corrupts. A 32 MiB
        // page cache bounds memory and keeps index inserts of a large import off the disk.
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-32768;",
        )?;
        let mut db = VulnDb {
            conn,
            path: Some(path.to_path_buf()),
            cache: Default::default(),
        };
        db.init()?;
        Ok(db)
    }

    /// A database in memory (tests, fuzzing).
    pub fn open_in_memory() -> Result<VulnDb> {
        let mut db = VulnDb {
            conn: Connection::open_in_memory()?,
            path: None,
            cache: Default::default(),
        };
        db.init()?;
        Ok(db)
    }

    fn init(&mut self) -> Result<()> {
        self.conn.execute_batch(SCHEMA)?;
        let found: Option<String> = self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key='schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        match found {
            None => {
                self.set_meta("schema_version", &SCHEMA_VERSION.to_string())?;
            }
            Some(v) => {
                let found = v.parse::<i64>().unwrap_or(-1);
                if found != SCHEMA_VERSION {
                    return Err(VulnDbError::Schema {
                        found,
                        expected: SCHEMA_VERSION,
                    });
                }
            }
        }
        Ok(())
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES(?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )?;
        Ok(())
    }

    fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    /// Imports a file or a directory of OSV `.json` files; see the [module docs](self).
    pub fn import_path(
        &mut self,
        path: &Path,
        progress: &mut dyn FnMut(ImportProgress),
    ) -> Result<ImportReport> {
        self.cache.get_mut().clear();
        source::import_path(self, path, progress)
    }

    /// Imports from a reader (gzip recognised by its magic bytes, the format by content).
    /// An OSV `all.zip` read this way is buffered in memory first; prefer
    /// [`import_path`](Self::import_path) for large archives.
    pub fn import_reader(
        &mut self,
        reader: impl std::io::Read,
        progress: &mut dyn FnMut(ImportProgress),
    ) -> Result<ImportReport> {
        self.cache.get_mut().clear();
        source::import_reader(self, Box::new(reader), progress)
    }

    /// Imports from a reader in a format the caller names (gzip is still recognised by its
    /// magic bytes). [`Format::OsvDir`] is refused: a reader is no directory.
    pub fn import_reader_as(
        &mut self,
        reader: impl std::io::Read,
        format: Format,
        progress: &mut dyn FnMut(ImportProgress),
    ) -> Result<ImportReport> {
        self.cache.get_mut().clear();
        source::import_reader_as(self, Box::new(reader), format, progress)
    }

    /// Counts per table, feed dates and the file size.
    pub fn stats(&self) -> Result<DbStats> {
        let count = |table: &str| -> Result<u64> {
            Ok(self
                .conn
                .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
                    r.get::<_, i64>(0)
                })? as u64)
        };
        let mut by_eco = BTreeMap::new();
        let mut stmt = self
            .conn
            .prepare("SELECT ecosystem, count(*) FROM osv_affected GROUP BY ecosystem")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (e, n) = row?;
            by_eco.insert(e, n as u64);
        }
        let bytes_on_disk = match &self.path {
            Some(p) => {
                let main = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
                let wal = std::fs::metadata(p.with_extension("sqlite-wal"))
                    .map(|m| m.len())
                    .unwrap_or(0);
                main + wal
            }
            None => 0,
        };
        Ok(DbStats {
            path: self.path.clone(),
            bytes_on_disk,
            cves: count("cve")?,
            cpe_matches: count("cpe_match")?,
            configurations: count("cve_config")?,
            osv_records: count("osv")?,
            osv_affected: count("osv_affected")?,
            osv_by_ecosystem: by_eco,
            kev: count("kev")?,
            epss: count("epss")?,
            nvd_last_modified: self.conn.query_row(
                "SELECT max(last_modified) FROM cve",
                [],
                |r| r.get(0),
            )?,
            kev_catalog_version: self.meta("kev_catalog_version")?,
            kev_date_released: self.meta("kev_date_released")?,
            epss_score_date: self.meta("epss_score_date")?,
            epss_model_version: self.meta("epss_model_version")?,
        })
    }

    /// Matches one detected service; see [`matcher`].
    ///
    /// Answers are kept (up to [`MATCH_CACHE_ENTRIES`]) until the next import, so asking again
    /// about a service already seen costs a copy of the answer.
    pub fn match_service(
        &self,
        query: &ServiceQuery,
        options: &MatchOptions,
    ) -> Result<Vec<CveThreat>> {
        let key = (query.clone(), options.paranoid);
        if let Some(hit) = self.cache.borrow().get(&key) {
            return Ok(hit.clone());
        }
        let found = matcher::match_service(&self.conn, query, options)?;
        let mut cache = self.cache.borrow_mut();
        if cache.len() >= MATCH_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(key, found.clone());
        Ok(found)
    }

    /// Forgets the kept answers of [`VulnDb::match_service`] (benchmarks measure cold lookups).
    pub fn clear_match_cache(&self) {
        self.cache.borrow_mut().clear();
    }

    /// Folds the WAL into the main file and runs `PRAGMA optimize` (after a large import).
    pub fn checkpoint(&self) -> Result<()> {
        self.conn
            .execute_batch("PRAGMA optimize; PRAGMA wal_checkpoint(TRUNCATE);")?;
        Ok(())
    }
}
