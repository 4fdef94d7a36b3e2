//! The cluster's log of accepted `/v2/geosubmit` bodies in PostgreSQL: appended by the node
//! that accepted a body, read in order by every node, which applies it to its own overlay (the
//! `observations` module).
//!
//! # The log
//! - `geosubmits (id, body, submitted)`: one row per accepted body, never updated. `body` is the
//!   parsed request serialised again (so only JSON of the known shape is stored), as `text`:
//!   `jsonb` would refuse a `\u0000` inside a string that JSON allows, and nothing here queries
//!   into it. `submitted` (the database's clock) dates the reports that carry no timestamp, the
//!   same on every node.
//! - `geosubmit_log (id)`: one row, a random name made by the migration. A node keeps its
//!   position per log name, so a data directory pointed at another database (a new cluster)
//!   starts that log from its beginning instead of resuming at a position that means nothing
//!   there.
//!
//! # Ids commit in order
//! [`PgStore::append_geosubmit`] takes a transaction-level advisory lock before its insert, so
//! appends are serialised cluster-wide and each commits before the next one draws its id.
//! A reader asking for `id > position` therefore never misses a row that commits late: once a
//! row is visible, every row below it that will ever exist is visible too (ids lost to a
//! rolled-back append leave harmless gaps). Appends also `NOTIFY vigil_geosubmits` at commit.
//!
//! # Growth
//! One row per accepted request, nothing is pruned: a body is at most `max_body_bytes` (1 MiB)
//! after decompression; NeoStumbler's usual submissions are a few kilobytes, and each token may
//! submit `geosubmit_budget` requests an hour (600 by default). A node that starts with an empty
//! overlay replays the whole log, so its length is also a new node's warm-up time.

use chrono::{DateTime, Utc};

use super::postgres::{PgStore, TaskListener};
use crate::error::{Error, Result};

/// The channel of `NOTIFY` sent when a geosubmit is appended.
pub const GEOSUBMITS_CHANNEL: &str = "vigil_geosubmits";

/// The advisory lock key held by each append until it commits (ASCII "vigilgeo").
const APPEND_LOCK: i64 = 0x7669_6769_6c67_656f;

/// Schema version 2: the log.
pub(super) const MIGRATION: &str = "
CREATE TABLE geosubmits (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    body      text NOT NULL,
    submitted timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE geosubmit_log (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    id  text NOT NULL
);
INSERT INTO geosubmit_log (id) VALUES (md5(random()::text || clock_timestamp()::text));
";

/// One row of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedGeosubmit {
    /// Its position: increasing in commit order.
    pub id: i64,
    /// The body, JSON of a `GeosubmitRequest`.
    pub body: String,
    /// When it was appended (the database's clock).
    pub submitted: DateTime<Utc>,
}

impl PgStore {
    /// The log's name, made once by the migration.
    pub async fn geosubmit_log_name(&self) -> Result<String> {
        let c = self.client().await?;
        let row = c.query_one("SELECT id FROM geosubmit_log", &[]).await?;
        Ok(row.try_get(0)?)
    }

    /// Appends a body (JSON) to the log and returns its id, once committed. Ids commit in
    /// increasing order (see the module docs).
    pub async fn append_geosubmit(&self, body: &str) -> Result<i64> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&APPEND_LOCK])
            .await?;
        let row = tx
            .query_one(
                "INSERT INTO geosubmits (body) VALUES ($1) RETURNING id",
                &[&body],
            )
            .await?;
        tx.batch_execute(&format!("NOTIFY {GEOSUBMITS_CHANNEL}"))
            .await?;
        tx.commit().await?;
        Ok(row.try_get(0)?)
    }

    /// The rows with an id above `after`, in id order: at most `limit` of them, and no more
    /// than fit in `max_bytes` of bodies (but always the first, whatever its size), so that a
    /// reader's memory stays bounded however large the bodies were.
    pub async fn geosubmits_after(
        &self,
        after: i64,
        limit: u32,
        max_bytes: u32,
    ) -> Result<Vec<LoggedGeosubmit>> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT id, body, submitted FROM (
                     SELECT id, body, submitted,
                            sum(octet_length(body)) OVER (ORDER BY id) - octet_length(body) AS before
                     FROM geosubmits WHERE id > $1 ORDER BY id LIMIT $2) page
                 WHERE before = 0 OR before + octet_length(body) <= $3
                 ORDER BY id",
                &[&after, &i64::from(limit), &i64::from(max_bytes)],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(LoggedGeosubmit {
                    id: r.try_get(0)?,
                    body: r.try_get(1)?,
                    submitted: r.try_get(2)?,
                })
            })
            .collect()
    }

    /// The highest id in the log, 0 when it is empty.
    pub async fn geosubmit_head(&self) -> Result<i64> {
        let c = self.client().await?;
        let row = c
            .query_one("SELECT coalesce(max(id), 0) FROM geosubmits", &[])
            .await?;
        row.try_get(0).map_err(Error::from)
    }

    /// Listens for appends (`NOTIFY vigil_geosubmits`), as [`PgStore::listen`] does for tasks.
    pub async fn listen_geosubmits(&self) -> Result<TaskListener> {
        self.listen_to(GEOSUBMITS_CHANNEL).await
    }
}
