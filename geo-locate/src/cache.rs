//! A read-through cache of provider answers (hits and misses) with a time to live, in SQLite.
//!
//! Every WiGLE and OpenCellID answer is kept, including "unknown", so that the same BSSID or cell
//! never costs quota twice within the TTL. WiGLE answers are stored under the WiGLE user that
//! fetched them and are only ever returned to that user; there is deliberately no export (the
//! WiGLE terms forbid redistribution).

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

use crate::cell::CellKey;
use crate::error::{Error, Result};
use crate::estimate::Station;
use crate::geo::LatLon;
use crate::mac::MacAddr;

/// Time-to-live settings of the [`Cache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// How long a found position is trusted. Default 30 days.
    pub hit_ttl: Duration,
    /// How long "unknown" is remembered. Default 30 days (Ichnaea/WiGLE data changes slowly and
    /// WiGLE quotas are a handful of queries a day).
    pub miss_ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            hit_ttl: Duration::from_secs(30 * 86_400),
            miss_ttl: Duration::from_secs(30 * 86_400),
        }
    }
}

/// A cached answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cached {
    /// The provider knew the transmitter.
    Hit(Station),
    /// The provider did not know it.
    Miss,
}

/// The cache. Methods take `&self`; the connection is behind a mutex held only for one
/// statement.
#[derive(Debug)]
pub struct Cache {
    conn: Mutex<Connection>,
    config: CacheConfig,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS wigle_cache (
    user TEXT NOT NULL, mac INTEGER NOT NULL, found INTEGER NOT NULL,
    lat REAL, lon REAL, radius REAL, samples INTEGER, fetched INTEGER NOT NULL,
    PRIMARY KEY (user, mac)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cell_cache (
    radio INTEGER NOT NULL, mcc INTEGER NOT NULL, mnc INTEGER NOT NULL, lac INTEGER NOT NULL,
    cid INTEGER NOT NULL, found INTEGER NOT NULL,
    lat REAL, lon REAL, radius REAL, samples INTEGER, fetched INTEGER NOT NULL,
    PRIMARY KEY (radio, mcc, mnc, lac, cid)) WITHOUT ROWID;
";

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

type Row = (
    bool,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<i64>,
    i64,
);

impl Cache {
    /// Opens (or creates) the cache file.
    pub fn open(path: impl AsRef<Path>, config: CacheConfig) -> Result<Cache> {
        let path = path.as_ref();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
        }
        Self::init(Connection::open(path)?, config)
    }

    /// An in-memory cache (for tests and one-shot use).
    pub fn in_memory(config: CacheConfig) -> Result<Cache> {
        Self::init(Connection::open_in_memory()?, config)
    }

    fn init(conn: Connection, config: CacheConfig) -> Result<Cache> {
        conn.execute_batch(SCHEMA)?;
        Ok(Cache {
            conn: Mutex::new(conn),
            config,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent; keep going.
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn fresh(&self, row: Option<Row>, now: SystemTime) -> Option<Cached> {
        let (found, lat, lon, radius, samples, fetched) = row?;
        let age = unix(now).saturating_sub(fetched);
        let ttl = if found {
            self.config.hit_ttl
        } else {
            self.config.miss_ttl
        };
        if age < 0 || age as u64 >= ttl.as_secs() {
            return None;
        }
        if !found {
            return Some(Cached::Miss);
        }
        let position = LatLon::new(lat?, lon?)?;
        Some(Cached::Hit(Station {
            position,
            radius_m: radius.unwrap_or(0.0),
            samples: samples.map_or(0, |s| u32::try_from(s).unwrap_or(0)),
        }))
    }

    /// A WiGLE answer for `mac` fetched by `user`, if cached and fresh at `now`.
    pub fn wigle(&self, user: &str, mac: MacAddr, now: SystemTime) -> Result<Option<Cached>> {
        let row: Option<Row> = self
            .lock()
            .query_row(
                "SELECT found, lat, lon, radius, samples, fetched FROM wigle_cache
                 WHERE user = ?1 AND mac = ?2",
                params![user, mac.as_u64() as i64],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                },
            )
            .optional()?;
        Ok(self.fresh(row, now))
    }

    /// Stores a WiGLE answer (`None`: WiGLE does not know `mac`) for `user`.
    pub fn put_wigle(
        &self,
        user: &str,
        mac: MacAddr,
        answer: Option<Station>,
        now: SystemTime,
    ) -> Result<()> {
        self.lock().execute(
            "INSERT OR REPLACE INTO wigle_cache VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                user,
                mac.as_u64() as i64,
                answer.is_some(),
                answer.map(|s| s.position.lat),
                answer.map(|s| s.position.lon),
                answer.map(|s| s.radius_m),
                answer.map(|s| i64::from(s.samples)),
                unix(now)
            ],
        )?;
        Ok(())
    }

    /// An OpenCellID answer for `key`, if cached and fresh at `now`.
    pub fn cell(&self, key: &CellKey, now: SystemTime) -> Result<Option<Cached>> {
        let row: Option<Row> = self
            .lock()
            .query_row(
                "SELECT found, lat, lon, radius, samples, fetched FROM cell_cache
                 WHERE radio = ?1 AND mcc = ?2 AND mnc = ?3 AND lac = ?4 AND cid = ?5",
                params![key.radio.code(), key.mcc, key.mnc, key.lac, key.cid as i64],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                },
            )
            .optional()?;
        Ok(self.fresh(row, now))
    }

    /// Stores an OpenCellID answer (`None`: unknown cell).
    pub fn put_cell(&self, key: &CellKey, answer: Option<Station>, now: SystemTime) -> Result<()> {
        self.lock().execute(
            "INSERT OR REPLACE INTO cell_cache VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                key.radio.code(),
                key.mcc,
                key.mnc,
                key.lac,
                key.cid as i64,
                answer.is_some(),
                answer.map(|s| s.position.lat),
                answer.map(|s| s.position.lon),
                answer.map(|s| s.radius_m),
                answer.map(|s| i64::from(s.samples)),
                unix(now)
            ],
        )?;
        Ok(())
    }

    /// Deletes entries older than their TTL at `now`; returns how many were removed.
    pub fn purge_expired(&self, now: SystemTime) -> Result<usize> {
        let now = unix(now);
        let hit = now - self.config.hit_ttl.as_secs() as i64;
        let miss = now - self.config.miss_ttl.as_secs() as i64;
        let conn = self.lock();
        let mut n = 0;
        for table in ["wigle_cache", "cell_cache"] {
            n += conn.execute(
                &format!(
                    "DELETE FROM {table} WHERE (found AND fetched <= ?1) OR (NOT found AND fetched <= ?2)"
                ),
                params![hit, miss],
            )?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn station() -> Station {
        Station {
            position: LatLon::new(52.52, 13.405).unwrap(),
            radius_m: 30.0,
            samples: 3,
        }
    }

    #[test]
    fn hits_and_misses_expire_with_their_ttl() {
        let cache = Cache::in_memory(CacheConfig {
            hit_ttl: Duration::from_secs(100),
            miss_ttl: Duration::from_secs(10),
        })
        .unwrap();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let a: MacAddr = "aa:bb:cc:00:00:01".parse().unwrap();
        let b: MacAddr = "aa:bb:cc:00:00:02".parse().unwrap();
        cache.put_wigle("AIDme", a, Some(station()), t0).unwrap();
        cache.put_wigle("AIDme", b, None, t0).unwrap();
        let later = |s| t0 + Duration::from_secs(s);
        assert_eq!(
            cache.wigle("AIDme", a, later(99)).unwrap(),
            Some(Cached::Hit(station()))
        );
        assert_eq!(cache.wigle("AIDme", a, later(100)).unwrap(), None);
        assert_eq!(
            cache.wigle("AIDme", b, later(9)).unwrap(),
            Some(Cached::Miss)
        );
        assert_eq!(cache.wigle("AIDme", b, later(10)).unwrap(), None);
        // Another WiGLE user never sees this user's answers.
        assert_eq!(cache.wigle("AIDother", a, later(1)).unwrap(), None);
        assert_eq!(cache.purge_expired(later(50)).unwrap(), 1);
        assert_eq!(cache.purge_expired(later(200)).unwrap(), 1);
    }

    #[test]
    fn cells_round_trip_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/cache.sqlite");
        let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let key: CellKey = "nr:262:1:70000:68719476734".parse().unwrap();
        let miss: CellKey = "lte:262:1:7:9".parse().unwrap();
        {
            let cache = Cache::open(&path, CacheConfig::default()).unwrap();
            cache.put_cell(&key, Some(station()), t0).unwrap();
            cache.put_cell(&miss, None, t0).unwrap();
        }
        let cache = Cache::open(&path, CacheConfig::default()).unwrap();
        assert_eq!(cache.cell(&key, t0).unwrap(), Some(Cached::Hit(station())));
        assert_eq!(cache.cell(&miss, t0).unwrap(), Some(Cached::Miss));
        // A clock that went backwards does not serve from the future.
        assert_eq!(cache.cell(&key, t0 - Duration::from_secs(5)).unwrap(), None);
    }
}
