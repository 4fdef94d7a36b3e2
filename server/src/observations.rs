//! Geosubmit observations shared by the nodes of a cluster: every accepted `/v2/geosubmit` body
//! goes into one log in PostgreSQL (the [`store::geosubmits`](crate::store::geosubmits) module),
//! and each node keeps its overlay (`<data_dir>/geodb/overlay.sqlite`) as a cache of that log.
//!
//! - **Accepting.** The node that takes a request appends the parsed body to the log, then
//!   applies the log to its own overlay up to that row and answers with that row's report, so
//!   `refused` and `overlayFull` speak of the receiving node's overlay as on a single node.
//!   Nothing is stored anywhere when the append fails (503). Once the append committed the
//!   request is accepted: if applying fails then, the answer is still 200 (`{}`) and this node's
//!   tailer applies it later, so a client's retry never puts the body in the log twice.
//! - **Tailing.** A background task on each node ([`SharedOverlay::run`], started by
//!   [`serve`](crate::serve)) applies rows it has not applied yet, in id order and in batches,
//!   woken by `NOTIFY vigil_geosubmits`, by a request that could not apply its own row, and
//!   every 10 s anyway (a notification lost with a connection). It logs and retries while
//!   PostgreSQL is away.
//! - **Exactly once.** A node's position in the log is kept in its overlay's file, written in
//!   the same SQLite transaction as the observations
//!   ([`Overlay::apply_log`](geo_locate::store::overlay::Overlay::apply_log)): a crash or a
//!   restart never applies a row twice nor skips one. One applier runs at a time on a node.
//! - **New nodes.** An empty overlay starts at position 0 and replays the whole log; until it
//!   has, its answers know less than the others'. A data directory pointed at another database
//!   starts that database's log from the beginning (positions are kept per log name).
//! - **The same answers.** Reports without a timestamp are dated by the log, and every node
//!   applies the same rows in the same order, so overlays with the same `max_overlay_rows` hold
//!   the same rows. Observations a node stored before it joined the cluster stay its own.
//!
//! Without PostgreSQL none of this runs: a node stores into its overlay directly.

use std::sync::Arc;
use std::time::Duration;

use geo_locate::GeoDb;
use geo_locate::api::GeosubmitRequest;
use geo_locate::store::overlay::{LogEntry, SubmitReport};
use tokio::sync::{Mutex, Notify, OnceCell};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::store::PgStore;
use crate::store::geosubmits::LoggedGeosubmit;
use crate::store::postgres::TaskListener;

/// Most rows read and applied at a time (one SQLite transaction per batch).
const BATCH: u32 = 256;

/// Most bytes of bodies read at a time (a larger first row is read alone): bodies may be as
/// large as `max_body_bytes`, and a replay must not hold hundreds of them at once.
const BATCH_BYTES: u32 = 8 << 20;

/// How often the tailer looks at the log without being woken.
const POLL: Duration = Duration::from_secs(10);

/// How soon the tailer tries again after a failure.
const RETRY: Duration = Duration::from_secs(2);

/// This node's overlay as a cache of the cluster's geosubmit log. Cheap to share (`Arc`).
#[derive(Debug)]
pub(crate) struct SharedOverlay {
    store: PgStore,
    db: Arc<GeoDb>,
    /// Held while applying, so one applier runs at a time. A request holds it from its append
    /// until its own row is applied: no one else applies that row, so the report it answers
    /// with is its own.
    apply: Mutex<()>,
    /// The log's name ([`PgStore::geosubmit_log_name`]), read once.
    log: OnceCell<String>,
    /// Wakes the tailer when a request could not apply its own row.
    kick: Notify,
}

impl SharedOverlay {
    /// Keeps `db`'s overlay as a cache of the log in `store`.
    pub(crate) fn new(store: PgStore, db: Arc<GeoDb>) -> SharedOverlay {
        SharedOverlay {
            store,
            db,
            apply: Mutex::new(()),
            log: OnceCell::new(),
            kick: Notify::new(),
        }
    }

    async fn log_name(&self) -> Result<&str> {
        self.log
            .get_or_try_init(|| self.store.geosubmit_log_name())
            .await
            .map(String::as_str)
    }

    /// Appends `body` to the log, then applies the log to this node's overlay up to it.
    /// `Ok(Some(report))`: the body's report on this node; `Ok(None)`: appended, but not
    /// applied yet (logged; the tailer will); `Err`: nothing was appended. A body without items
    /// teaches nothing and is not appended.
    pub(crate) async fn submit(&self, body: &GeosubmitRequest) -> Result<Option<SubmitReport>> {
        if body.items.is_empty() {
            return Ok(Some(SubmitReport::default()));
        }
        let json = serde_json::to_string(body).map_err(|e| {
            Error::Geo(geo_locate::Error::InvalidInput(format!(
                "a geosubmit body does not serialise: {e}"
            )))
        })?;
        let _applying = self.apply.lock().await;
        let log = self.log_name().await?;
        let id = self.store.append_geosubmit(&json).await?;
        match self.apply_until(log, Some(id)).await {
            Ok((_, Some(report))) => Ok(Some(report)),
            Ok((_, None)) => {
                // Only when the overlay's position was already past the new row: see `check`.
                tracing::warn!(
                    id,
                    "geosubmit appended but this node's overlay had passed its position"
                );
                Ok(None)
            }
            Err(err) => {
                tracing::warn!(error = %err, id, "geosubmit appended; applying it here failed, the tailer will retry");
                self.kick.notify_one();
                Ok(None)
            }
        }
    }

    /// Applies every row this node's overlay lacks; returns how many it applied.
    pub(crate) async fn catch_up(&self) -> Result<usize> {
        let _applying = self.apply.lock().await;
        let log = self.log_name().await?;
        Ok(self.apply_until(log, None).await?.0)
    }

    /// Applies the rows after this node's position, batch by batch, until none is left. Returns
    /// how many it applied and, when `mine` is one of them, that row's report. The caller holds
    /// `apply`.
    async fn apply_until(
        &self,
        log: &str,
        mine: Option<i64>,
    ) -> Result<(usize, Option<SubmitReport>)> {
        let mut position = self.position(log).await?;
        let (mut applied, mut report) = (0, None);
        loop {
            let after = i64::try_from(position).unwrap_or(i64::MAX);
            let rows = self
                .store
                .geosubmits_after(after, BATCH, BATCH_BYTES)
                .await?;
            let Some(last) = rows.last().map(|r| r.id) else {
                break;
            };
            let entries: Vec<LogEntry> = rows.iter().filter_map(entry).collect();
            let (db, name) = (Arc::clone(&self.db), log.to_owned());
            let reports =
                tokio::task::spawn_blocking(move || db.overlay().apply_log(&name, &entries))
                    .await
                    .map_err(|e| Error::Task(e.to_string()))?
                    .map_err(Error::Geo)?;
            applied += reports.len();
            if let Some(mine) = mine {
                report = report.or_else(|| {
                    reports
                        .iter()
                        .find(|(seq, _)| i64::try_from(*seq) == Ok(mine))
                        .map(|(_, r)| *r)
                });
            }
            position = position.max(u64::try_from(last).unwrap_or(0));
        }
        Ok((applied, report))
    }

    /// This node's position in the log.
    async fn position(&self, log: &str) -> Result<u64> {
        let (db, name) = (Arc::clone(&self.db), log.to_owned());
        tokio::task::spawn_blocking(move || db.overlay().log_position(&name))
            .await
            .map_err(|e| Error::Task(e.to_string()))?
            .map_err(Error::Geo)
    }

    /// Says so when this node's position is past the end of the log: the database was
    /// restored from an older backup (or its sequence was reset), and rows appended with ids
    /// up to the position will not be applied here.
    async fn check(&self) -> Result<()> {
        let log = self.log_name().await?;
        let position = self.position(log).await?;
        let head = self.store.geosubmit_head().await?;
        if i64::try_from(position).unwrap_or(i64::MAX) > head {
            tracing::error!(
                position,
                head,
                "this node's overlay has applied more of the geosubmit log than the database \
                 holds (restored from an older backup?): new observations up to the position \
                 will not reach this node; remove its geodb/overlay.sqlite to replay the log"
            );
        }
        Ok(())
    }

    /// The tailer: applies the log as it grows until `stop`.
    pub(crate) async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut listener = None;
        let mut failing = false;
        let mut checked = false;
        loop {
            if listener.is_none() {
                tokio::select! {
                    () = stop.cancelled() => return,
                    listened = self.store.listen_geosubmits() => match listened {
                        Ok(l) => listener = Some(l),
                        Err(err) => tracing::debug!(error = %err, "listening for geosubmits failed; polling"),
                    },
                }
            }
            let caught_up = tokio::select! {
                () = stop.cancelled() => return,
                caught_up = async {
                    let n = self.catch_up().await?;
                    if !checked {
                        self.check().await?;
                    }
                    Ok::<_, Error>(n)
                } => caught_up,
            };
            match caught_up {
                Ok(n) => {
                    checked = true;
                    if failing {
                        tracing::info!(applied = n, "geosubmit log reachable again");
                    } else if n > 0 {
                        tracing::debug!(applied = n, "geosubmit log applied");
                    }
                    failing = false;
                }
                Err(err) => {
                    if failing {
                        tracing::debug!(error = %err, "geosubmit log still unreachable");
                    } else {
                        tracing::warn!(error = %err, "applying the geosubmit log failed; retrying");
                    }
                    failing = true;
                }
            }
            let notified = TaskListener::notified_if(listener.as_ref());
            tokio::select! {
                () = stop.cancelled() => return,
                () = notified => {}
                () = self.kick.notified() => {}
                () = tokio::time::sleep(if failing { RETRY } else { POLL }) => {}
            }
        }
    }
}

/// The overlay's entry for a row. A body that no longer parses (it was written by this code, so
/// only a hand-edited row) is applied as an empty one, which moves the position past it.
fn entry(row: &LoggedGeosubmit) -> Option<LogEntry> {
    let seq = u64::try_from(row.id).ok()?;
    let body = serde_json::from_str(&row.body).unwrap_or_else(|err| {
        tracing::error!(id = row.id, error = %err, "a logged geosubmit does not parse; skipped");
        GeosubmitRequest::default()
    });
    Some(LogEntry {
        seq,
        received_ms: row.submitted.timestamp_millis(),
        body,
    })
}
