//! PostgreSQL persistence for many nodes: the same records as the SQLite [`Store`](super::Store),
//! shared by every node of a cluster, plus the shared task queue.
//!
//! # What is stored where
//! One database (the `--database-url`), plain tables:
//! - `tokens` (the SHA-256 of each secret as `bytea`, never the secret), `sessions` (the
//!   SHA-256 of each cookie secret), `agents` (which token registered an agent id first);
//! - `events`: the event log, trimmed to the newest `retention` rows on every append;
//! - `scans`, `tasks`, `results`, `alerts`: scans as accepted, one row per task (which is also
//!   the queue entry), one result per task, one alert per (scan, target, signature) for the
//!   whole cluster (`UNIQUE (scan_id, target, signature_id)`);
//! - `geosubmits`, `geosubmit_log` (version 2): the accepted `/v2/geosubmit` bodies, in order,
//!   which every node applies to its own overlay (the [`geosubmits`](super::geosubmits) module);
//! - `schema_migrations`: the schema versions applied.
//!
//! Times are `timestamptz` (microseconds: nanoseconds are rounded away, unlike in SQLite's
//! text). Task, request, result and threat JSON are `text`: they are only stored and returned.
//!
//! # Migrations
//! [`PgStore::connect`] applies the versioned migrations of this module on one dedicated
//! connection holding a session-level `pg_advisory_lock` on a fixed key, recording each version
//! in `schema_migrations (version, applied)` in the same transaction as its DDL. A node starting
//! beside another waits for the lock and then finds the versions already recorded, so two nodes
//! never race and a restart applies nothing. The connection is closed afterwards, which releases
//! the lock even when a migration failed.
//!
//! # The task queue: claim, lease, renew, reap, fence
//! A task row's `state` is `queued`, `leased`, or how it ended (`success`, `partial`, `failed`,
//! `timed_out`, `cancelled`: [`sec_scan::TaskStatus`]'s names). The older status API
//! ([`PgStore::update_task`], [`PgStore::tasks`], [`TaskRow::status`]) speaks of `running`
//! where the queue says `leased`: `running` is written as `leased` and `leased` read as
//! `running`, so the scan views see the names they always saw.
//! - [`PgStore::claim`] leases up to `free` queued tasks of the agent's kinds to it, highest
//!   priority first, then the longest waiting, with `FOR UPDATE SKIP LOCKED`: dispatchers on
//!   several nodes never wait for each other and never lease a task twice. Each claim adds one to
//!   the task's `attempts`; that number travels with the task as its fencing token.
//! - [`PgStore::renew`] (on every heartbeat) extends the leases of every task an agent holds.
//! - [`PgStore::reap`] (every node, every second or so) puts tasks whose lease ran out back in
//!   the queue, or fails them once their attempts are spent (`attempts >= max_attempts`, where
//!   `max_attempts` is the task's `retries + 1`). It skips rows another reaper holds, so each
//!   expired task is reaped by exactly one node. [`PgStore::release_agent`] does the same at
//!   once for an agent that disconnected.
//! - [`PgStore::complete`] stores a result only from the holder of the current attempt: the
//!   task update is fenced by `agent_id`, `attempts` and `state = 'leased'` in the same
//!   transaction as the result and its alerts. A stale holder is refused; a resend is reported as
//!   a duplicate and stores nothing.
//! - Leases are measured on the database's clock (`now()`), never a node's.
//! - Scan completion is decided under a row lock on the scan (`scans.completed` is set once), so
//!   exactly one caller, on one node, learns that a scan just completed. Lock order: the scan row,
//!   then its task rows; a reaper releases its task locks (commits) before it locks a scan.
//!
//! # Wake-ups
//! Inserting tasks and requeueing them sends `NOTIFY vigil_tasks` (at commit). A
//! [`TaskListener`] from [`PgStore::listen`] holds its own connection with `LISTEN vigil_tasks`
//! and wakes a dispatcher at once; it reconnects by itself and wakes once after a reconnect (a
//! notification may have been missed). Dispatchers should still poll every second or two.
//! Appending a geosubmit sends `NOTIFY vigil_geosubmits`, heard the same way through
//! [`PgStore::listen_geosubmits`].
//!
//! # When PostgreSQL goes away
//! Every call returns [`Error::Postgres`] while the database cannot be reached; nothing panics
//! and nothing is retried behind the caller's back. The pool drops connections that closed and
//! opens new ones on the next call, so a node works again as soon as the database is back.
//! Leases keep running on the database's clock meanwhile: a node that could not renew for longer
//! than the lease loses its tasks to the reapers, and its late results are fenced.
//!
//! Error messages never hold the database URL or its password.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime,
};
use event_bus::{Event, Role};
use futures::StreamExt;
use tokio::sync::{Notify, oneshot};
use tokio_postgres::{AsyncMessage, NoTls, Row};

use super::{AlertRow, ScanRow, SessionRecord, TaskRow, TokenRecord, parse_role, role_name};
use crate::error::{Error, Result};

/// The channel of `NOTIFY` sent when tasks become claimable.
pub const TASKS_CHANNEL: &str = "vigil_tasks";

/// The most connections one node opens (the listener's connection is not counted).
pub const POOL_SIZE: usize = 16;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a call waits for a free pooled connection.
const WAIT_TIMEOUT: Duration = Duration::from_secs(10);

/// The advisory lock key held while migrating (ASCII "vigilmig").
const MIGRATION_LOCK: i64 = 0x7669_6769_6c6d_6967;

/// The advisory lock key taken by [`PgStore::insert_first_admin`] (ASCII "vigiladm").
const FIRST_ADMIN_LOCK: i64 = 0x7669_6769_6c61_646d;

/// The schema, one entry per version, applied in order and never edited once released.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "
CREATE TABLE tokens (
    id       text PRIMARY KEY,
    hash     bytea NOT NULL UNIQUE CHECK (octet_length(hash) = 32),
    role     text NOT NULL,
    label    text NOT NULL,
    created  timestamptz NOT NULL,
    revoked  timestamptz
);
CREATE TABLE sessions (
    hash     bytea PRIMARY KEY CHECK (octet_length(hash) = 32),
    token_id text NOT NULL REFERENCES tokens (id),
    expires  timestamptz NOT NULL
);
CREATE INDEX sessions_token ON sessions (token_id);
CREATE TABLE agents (
    id         text PRIMARY KEY,
    token_id   text NOT NULL,
    registered timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE events (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    epoch    text NOT NULL,
    seq      bigint NOT NULL,
    kind     text NOT NULL,
    room     text NOT NULL,
    severity text NOT NULL,
    time     timestamptz NOT NULL,
    json     text NOT NULL,
    -- Every node of a cluster logs every event it sees: one row per event.
    UNIQUE (epoch, seq)
);
CREATE INDEX events_time ON events (time);
CREATE TABLE scans (
    id           text PRIMARY KEY,
    requested_by text NOT NULL,
    request      text NOT NULL,
    created      timestamptz NOT NULL,
    completed    timestamptz
);
CREATE TABLE tasks (
    id           text PRIMARY KEY,
    seq          bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    scan_id      text NOT NULL REFERENCES scans (id),
    task         text NOT NULL,
    kind         text NOT NULL,
    priority     smallint NOT NULL DEFAULT 5,
    state        text NOT NULL,
    attempts     integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 4,
    agent_id     text,
    node_id      text,
    lease_until  timestamptz,
    run_after    timestamptz NOT NULL DEFAULT now(),
    created      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tasks_scan ON tasks (scan_id);
CREATE INDEX tasks_queue ON tasks (priority DESC, run_after, seq) WHERE state = 'queued';
CREATE INDEX tasks_leases ON tasks (lease_until) WHERE state = 'leased';
CREATE INDEX tasks_holder ON tasks (agent_id) WHERE state = 'leased';
CREATE TABLE results (
    task_id  text PRIMARY KEY REFERENCES tasks (id),
    seq      bigint GENERATED ALWAYS AS IDENTITY,
    scan_id  text NOT NULL,
    agent_id text NOT NULL,
    result   text NOT NULL,
    stored   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX results_scan ON results (scan_id, seq);
CREATE TABLE alerts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scan_id      text NOT NULL,
    task_id      text NOT NULL,
    target       text NOT NULL,
    signature_id text NOT NULL,
    severity     text NOT NULL,
    threat       text NOT NULL,
    raised       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (scan_id, target, signature_id)
);
-- Agents connected now, anywhere in the cluster: written by the node that holds each connection
-- on register and heartbeat, deleted on disconnect; a node that dies leaves rows that age out.
CREATE TABLE agent_presence (
    id             text PRIMARY KEY,
    node_id        text NOT NULL,
    name           text NOT NULL,
    capabilities   text NOT NULL,
    max_concurrent integer NOT NULL,
    local          boolean NOT NULL,
    since          timestamptz NOT NULL DEFAULT now(),
    last_seen      timestamptz NOT NULL DEFAULT now()
);
",
    ),
    (2, super::geosubmits::MIGRATION),
];

/// The schema version this build expects (the last migration's).
pub const SCHEMA_VERSION: i32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

impl From<tokio_postgres::Error> for Error {
    fn from(err: tokio_postgres::Error) -> Error {
        Error::Postgres(err.to_string())
    }
}

impl From<PoolError> for Error {
    fn from(err: PoolError) -> Error {
        Error::Postgres(err.to_string())
    }
}

/// A task leased by [`PgStore::claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The task id.
    pub task_id: String,
    /// Its scan.
    pub scan_id: String,
    /// The task, JSON, as stored by [`PgStore::insert_scan`].
    pub task: String,
    /// This attempt's number (1 for the first): the fencing token the agent's result must
    /// carry back to [`PgStore::complete`].
    pub attempt: u32,
}

/// A leased task put back in the queue or failed by [`PgStore::reap`] or
/// [`PgStore::release_agent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaped {
    /// The task id.
    pub task_id: String,
    /// Its scan.
    pub scan_id: String,
    /// `queued` (it will run again) or `failed` (its attempts are spent).
    pub state: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// The agent that held it.
    pub agent_id: Option<String>,
    /// The node that agent was connected to.
    pub node_id: Option<String>,
    /// Whether this failure ended the scan's last task: the caller publishes the scan's
    /// completion (set on one entry, for one caller in the cluster).
    pub scan_completed: bool,
}

/// What [`PgStore::complete`] did with a result.
#[derive(Debug, Clone, PartialEq)]
pub enum Completion {
    /// Stored now, with the task's end state.
    Stored {
        /// The alerts raised for the first time (others were already raised for the same
        /// scan, target and signature).
        alerts: Vec<AlertRow>,
        /// Whether this was the scan's last running or queued task: the caller publishes the
        /// scan's completion (exactly one caller in the cluster is told so).
        scan_completed: bool,
    },
    /// The task already has a result: nothing changed; acknowledge again.
    Duplicate,
    /// Refused: the sender does not hold the task's current attempt (a stale lease, another
    /// agent, or a task that ended without a result).
    Fenced {
        /// The task's state now (`running` for a task leased to someone else), `None` for an
        /// unknown task.
        state: Option<String>,
    },
}

/// A running task of a cancelled scan: its agent should be told to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The task id.
    pub task_id: String,
    /// The agent holding it.
    pub agent_id: Option<String>,
    /// The node that agent is connected to.
    pub node_id: Option<String>,
}

/// What [`PgStore::cancel_scan`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cancellation {
    /// Queued tasks now `cancelled`, in insertion order.
    pub cancelled: Vec<String>,
    /// Leased tasks, left to their agents: tell each agent to cancel; their results end them.
    pub running: Vec<Held>,
    /// Whether the scan has now ended (nothing was running): the caller publishes it.
    pub scan_completed: bool,
}

/// Who holds a task now, for a result arriving at a node that did not lease it (the agent
/// reconnected there after its node died).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The task, JSON.
    pub task: String,
    /// `running` while leased, else how it ended (or `queued`).
    pub state: String,
    /// The agent it was last leased to.
    pub agent_id: Option<String>,
    /// The current attempt (the fencing token).
    pub attempt: u32,
}

/// An agent connected to some node of the cluster, as [`PgStore::presences`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    /// The agent id.
    pub id: String,
    /// The node holding its connection.
    pub node_id: String,
    /// Its display name.
    pub name: String,
    /// Its capabilities, JSON (a list of task kinds).
    pub capabilities: String,
    /// Tasks it runs at once at most.
    pub max_concurrent: u32,
    /// Whether it is a node's in-process agent.
    pub local: bool,
    /// Tasks leased to it now, cluster-wide.
    pub running: u32,
    /// When it last connected.
    pub since: DateTime<Utc>,
    /// When its node last heard from it.
    pub last_seen: DateTime<Utc>,
}

/// A [`Claimed`] from a row of `id, scan_id, task, attempts`.
fn claimed_row(r: &Row) -> Result<Claimed> {
    Ok(Claimed {
        task_id: r.try_get(0)?,
        scan_id: r.try_get(1)?,
        task: r.try_get(2)?,
        attempt: u32::try_from(r.try_get::<_, i32>(3)?).unwrap_or(0),
    })
}

/// A handle to the shared database: a bounded connection pool. Cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    /// For connections outside the pool (the listener). Its `Debug` hides the password, but
    /// it is never printed anyway.
    config: Arc<tokio_postgres::Config>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = self.pool.status();
        f.debug_struct("PgStore")
            .field("pool_size", &status.size)
            .field("pool_max", &status.max_size)
            .finish_non_exhaustive()
    }
}

/// `running` (the status API's name) is `leased` in the queue.
fn state_for(status: &str) -> &str {
    if status == "running" {
        "leased"
    } else {
        status
    }
}

/// `leased` (the queue's name) is `running` in the status API.
fn status_for(state: String) -> String {
    if state == "leased" {
        "running".to_owned()
    } else {
        state
    }
}

fn hash_of(row: &Row, idx: usize) -> Result<[u8; 32]> {
    let bytes: Vec<u8> = row.try_get(idx)?;
    bytes
        .try_into()
        .map_err(|_| Error::Postgres("a stored hash is not 32 bytes".into()))
}

fn token_of(row: &Row) -> Result<TokenRecord> {
    let role: String = row.try_get(2)?;
    Ok(TokenRecord {
        id: row.try_get(0)?,
        hash: hash_of(row, 1)?,
        role: parse_role(&role).unwrap_or(Role::Viewer),
        label: row.try_get(3)?,
        created: row.try_get(4)?,
        revoked: row.try_get(5)?,
    })
}

fn session_of(row: &Row) -> Result<SessionRecord> {
    Ok(SessionRecord {
        hash: hash_of(row, 0)?,
        token_id: row.try_get(1)?,
        expires: row.try_get(2)?,
    })
}

fn task_of(row: &Row) -> Result<TaskRow> {
    Ok(TaskRow {
        id: row.try_get(0)?,
        scan_id: row.try_get(1)?,
        task: row.try_get(2)?,
        status: status_for(row.try_get(3)?),
        attempts: u32::try_from(row.try_get::<_, i32>(4)?).unwrap_or(0),
        agent: row.try_get(5)?,
    })
}

fn reaped_of(row: &Row) -> Result<Reaped> {
    Ok(Reaped {
        task_id: row.try_get(0)?,
        scan_id: row.try_get(1)?,
        state: row.try_get(2)?,
        attempts: u32::try_from(row.try_get::<_, i32>(3)?).unwrap_or(0),
        agent_id: row.try_get(4)?,
        node_id: row.try_get(5)?,
        scan_completed: false,
    })
}

fn seconds(lease: Duration) -> f64 {
    lease.as_secs_f64()
}

fn to_i64(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

fn to_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The queue columns of a task, read from its JSON (kind, priority, retries + 1); a task that
/// does not parse gets no kind, so no agent ever claims it.
fn queue_columns(task: &str) -> (String, i16, i32) {
    match serde_json::from_str::<sec_scan::ScanTask>(task) {
        Ok(t) => (
            t.kind.to_string(),
            i16::from(t.priority.get()),
            to_i32(t.retries.saturating_add(1)),
        ),
        Err(err) => {
            tracing::warn!(error = %err, "stored task does not parse; it will not be claimed");
            (String::new(), 5, 4)
        }
    }
}

/// Requeues (or fails, attempts spent) the leased tasks chosen by `due`, a query of task ids
/// that locks them; `$n` parameters of `due` are passed in `params`.
fn requeue_sql(due: &str) -> String {
    format!(
        "WITH due AS MATERIALIZED ({due})
         UPDATE tasks t SET
             state = CASE WHEN t.attempts >= t.max_attempts THEN 'failed' ELSE 'queued' END,
             lease_until = NULL,
             run_after = now()
         FROM due WHERE t.id = due.id
         RETURNING t.id, t.scan_id, t.state, t.attempts, t.agent_id, t.node_id, t.seq"
    )
}

/// Marks the scan completed if none of its tasks is queued or leased, and says whether this
/// call did it. Takes the scan's row lock first, so that the check sees every task ended by a
/// transaction that held the lock before.
async fn finish_scan_if_done(tx: &impl GenericClient, scan_id: &str) -> Result<bool> {
    tx.query("SELECT 1 FROM scans WHERE id = $1 FOR UPDATE", &[&scan_id])
        .await?;
    let n = tx
        .execute(
            "UPDATE scans SET completed = now()
             WHERE id = $1 AND completed IS NULL
               AND EXISTS (SELECT 1 FROM tasks WHERE scan_id = $1)
               AND NOT EXISTS (SELECT 1 FROM tasks WHERE scan_id = $1 AND state IN ('queued', 'leased'))",
            &[&scan_id],
        )
        .await?;
    Ok(n == 1)
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`, or the
    /// `key=value` form), builds a pool of at most [`POOL_SIZE`] connections, and applies the
    /// migrations this build has and the database lacks (see the module docs). Fails if the
    /// database cannot be reached, or holds a newer schema than this build knows.
    pub async fn connect(url: &str) -> Result<PgStore> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| Error::Postgres(format!("database URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("vigil-server");
        }
        // Notice a peer that vanished (a failed-over host) in well under the default two hours.
        config.keepalives_idle(Duration::from_secs(30));
        migrate(&config).await?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(WAIT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| Error::Postgres(format!("connection pool: {e}")))?;
        Ok(PgStore {
            pool,
            config: Arc::new(config),
        })
    }

    pub(super) async fn client(&self) -> Result<deadpool_postgres::Object> {
        Ok(self.pool.get().await?)
    }

    /// The schema versions recorded in `schema_migrations`, in order.
    pub async fn schema_versions(&self) -> Result<Vec<i32>> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT version FROM schema_migrations ORDER BY version",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| r.try_get(0).map_err(Error::from))
            .collect()
    }

    // ---- tokens and sessions -------------------------------------------------------------

    /// Stores a new token.
    pub async fn insert_token(&self, token: &TokenRecord) -> Result<()> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO tokens (id, hash, role, label, created, revoked) VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &token.id,
                &&token.hash[..],
                &role_name(token.role),
                &token.label,
                &token.created,
                &token.revoked,
            ],
        )
        .await?;
        Ok(())
    }

    /// Stores `token` only if the database holds no token at all, and says whether it did:
    /// the first start of a cluster makes one admin token however many nodes start at once
    /// (a transaction-level advisory lock serializes the check and the insert).
    pub async fn insert_first_admin(&self, token: &TokenRecord) -> Result<bool> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&FIRST_ADMIN_LOCK])
            .await?;
        let any = tx
            .query_opt("SELECT 1 FROM tokens LIMIT 1", &[])
            .await?
            .is_some();
        if any {
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO tokens (id, hash, role, label, created, revoked) VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &token.id,
                &&token.hash[..],
                &role_name(token.role),
                &token.label,
                &token.created,
                &token.revoked,
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Marks a token revoked and deletes its sessions; `false` if no live token has that id.
    pub async fn revoke_token(&self, id: &str, at: DateTime<Utc>) -> Result<bool> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let n = tx
            .execute(
                "UPDATE tokens SET revoked = $2 WHERE id = $1 AND revoked IS NULL",
                &[&id, &at],
            )
            .await?;
        tx.execute("DELETE FROM sessions WHERE token_id = $1", &[&id])
            .await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Every token, revoked ones included, oldest first.
    pub async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT id, hash, role, label, created, revoked FROM tokens ORDER BY created, id",
                &[],
            )
            .await?;
        rows.iter().map(token_of).collect()
    }

    /// The token with this hash, revoked or not.
    pub async fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<TokenRecord>> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(
                "SELECT id, hash, role, label, created, revoked FROM tokens WHERE hash = $1",
            )
            .await?;
        c.query_opt(&stmt, &[&&hash[..]])
            .await?
            .as_ref()
            .map(token_of)
            .transpose()
    }

    /// The unexpired session with this hash, if its token is live.
    pub async fn session_by_hash(
        &self,
        hash: &[u8; 32],
        now: DateTime<Utc>,
    ) -> Result<Option<SessionRecord>> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(
                "SELECT s.hash, s.token_id, s.expires FROM sessions s JOIN tokens t ON t.id = s.token_id
                 WHERE s.hash = $1 AND s.expires > $2 AND t.revoked IS NULL",
            )
            .await?;
        c.query_opt(&stmt, &[&&hash[..], &now])
            .await?
            .as_ref()
            .map(session_of)
            .transpose()
    }

    /// Keeps the `keep` sessions of `token_id` that expire last and deletes the others; returns
    /// the hashes deleted.
    pub async fn trim_sessions(&self, token_id: &str, keep: usize) -> Result<Vec<[u8; 32]>> {
        let c = self.client().await?;
        let rows = c
            .query(
                "DELETE FROM sessions WHERE hash IN (
                     SELECT hash FROM sessions WHERE token_id = $1
                     ORDER BY expires DESC, hash OFFSET $2)
                 RETURNING hash",
                &[&token_id, &to_i64(keep)],
            )
            .await?;
        rows.iter().map(|r| hash_of(r, 0)).collect()
    }

    /// Deletes expired sessions; returns how many.
    pub async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> Result<usize> {
        let c = self.client().await?;
        let n = c
            .execute("DELETE FROM sessions WHERE expires <= $1", &[&now])
            .await?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Every agent id with the token that registered it first.
    pub async fn agent_owners(&self) -> Result<Vec<(String, String)>> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT id, token_id FROM agents ORDER BY registered, id",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Records that `token_id` owns the agent id `id` (kept if it is already recorded, by any
    /// node).
    pub async fn insert_agent_owner(&self, id: &str, token_id: &str) -> Result<()> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO agents (id, token_id, registered) VALUES ($1, $2, now())
             ON CONFLICT (id) DO NOTHING",
            &[&id, &token_id],
        )
        .await?;
        Ok(())
    }

    /// Forgets an agent id, so that any token may take it again.
    pub async fn delete_agent_owner(&self, id: &str) -> Result<()> {
        let c = self.client().await?;
        c.execute("DELETE FROM agents WHERE id = $1", &[&id])
            .await?;
        Ok(())
    }

    /// Stores a session.
    pub async fn insert_session(&self, session: &SessionRecord) -> Result<()> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO sessions (hash, token_id, expires) VALUES ($1, $2, $3)",
            &[&&session.hash[..], &session.token_id, &session.expires],
        )
        .await?;
        Ok(())
    }

    /// Deletes a session.
    pub async fn delete_session(&self, hash: &[u8; 32]) -> Result<()> {
        let c = self.client().await?;
        c.execute("DELETE FROM sessions WHERE hash = $1", &[&&hash[..]])
            .await?;
        Ok(())
    }

    /// Every unexpired session, soonest to expire first; expired ones are deleted on the way.
    pub async fn sessions(&self, now: DateTime<Utc>) -> Result<Vec<SessionRecord>> {
        let c = self.client().await?;
        c.execute("DELETE FROM sessions WHERE expires <= $1", &[&now])
            .await?;
        let rows = c
            .query(
                "SELECT hash, token_id, expires FROM sessions ORDER BY expires, hash",
                &[],
            )
            .await?;
        rows.iter().map(session_of).collect()
    }

    // ---- the event log -------------------------------------------------------------------

    /// Appends events to the event log in one transaction (one statement), then trims the log
    /// to the newest `retention` rows. Appenders on several nodes never wait for each other's
    /// trims (rows another trim holds are skipped: the next append trims them), so the log may
    /// hold a few more rows than `retention` between appends, never fewer.
    pub async fn append_events(&self, events: &[Arc<Event>], retention: u64) -> Result<()> {
        let mut epochs = Vec::with_capacity(events.len());
        let mut seqs = Vec::with_capacity(events.len());
        let mut kinds = Vec::with_capacity(events.len());
        let mut rooms = Vec::with_capacity(events.len());
        let mut severities = Vec::with_capacity(events.len());
        let mut times = Vec::with_capacity(events.len());
        let mut jsons = Vec::with_capacity(events.len());
        for e in events {
            epochs.push(e.epoch().to_string());
            seqs.push(to_i64(e.seq()));
            kinds.push(e.kind().as_str().to_owned());
            rooms.push(e.room().as_str().to_owned());
            severities.push(e.severity().as_str().to_owned());
            times.push(e.time());
            // Event JSON is built by the bus from valid UTF-8 parts.
            jsons.push(std::str::from_utf8(e.json()).unwrap_or_default().to_owned());
        }
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        if !events.is_empty() {
            tx.execute(
                "INSERT INTO events (epoch, seq, kind, room, severity, time, json)
                 SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[],
                                      $6::timestamptz[], $7::text[])
                 ON CONFLICT (epoch, seq) DO NOTHING",
                &[&epochs, &seqs, &kinds, &rooms, &severities, &times, &jsons],
            )
            .await?;
        }
        tx.execute(
            "DELETE FROM events WHERE id IN (
                 SELECT id FROM events
                 WHERE id <= (SELECT id FROM events ORDER BY id DESC OFFSET $1 LIMIT 1)
                 FOR UPDATE SKIP LOCKED)",
            &[&to_i64(retention)],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// How many events the log holds.
    pub async fn event_count(&self) -> Result<u64> {
        let c = self.client().await?;
        let n: i64 = c
            .query_one("SELECT count(*) FROM events", &[])
            .await?
            .try_get(0)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    // ---- scans, tasks, results, alerts ----------------------------------------------------

    /// Stores a scan and its tasks in one transaction, and wakes the dispatchers
    /// (`NOTIFY vigil_tasks`). Each task's kind, priority and `retries + 1` (its
    /// `max_attempts`) are read from its JSON; a status of `running` is stored as `leased`.
    pub async fn insert_scan(&self, scan: &ScanRow, tasks: &[TaskRow]) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        tx.execute(
            "INSERT INTO scans (id, requested_by, request, created) VALUES ($1, $2, $3, $4)",
            &[&scan.id, &scan.requested_by, &scan.request, &scan.created],
        )
        .await?;
        let stmt = tx
            .prepare(
                "INSERT INTO tasks (id, scan_id, task, kind, priority, state, attempts, max_attempts, agent_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .await?;
        for t in tasks {
            let (kind, priority, max_attempts) = queue_columns(&t.task);
            tx.execute(
                &stmt,
                &[
                    &t.id,
                    &t.scan_id,
                    &t.task,
                    &kind,
                    &priority,
                    &state_for(&t.status),
                    &to_i32(t.attempts),
                    &max_attempts,
                    &t.agent,
                ],
            )
            .await?;
        }
        if tasks.iter().any(|t| t.status == "queued") {
            tx.batch_execute("NOTIFY vigil_tasks").await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records a task's status and attempts (`running` is stored as `leased`). A task that has
    /// ended keeps its final status: writes may arrive out of order, and an ended task must
    /// never be run again. A task marked `running` this way has no lease (it is not reaped);
    /// one marked `queued` can be claimed again at once.
    pub async fn update_task(
        &self,
        id: &str,
        status: &str,
        attempts: u32,
        agent: Option<&str>,
    ) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let state = state_for(status);
        tx.execute(
            "UPDATE tasks SET state = $2, attempts = $3, agent_id = COALESCE($4, agent_id),
                 lease_until = CASE WHEN $2 = 'leased' THEN lease_until END,
                 run_after = CASE WHEN $2 = 'queued' THEN now() ELSE run_after END
             WHERE id = $1 AND state IN ('queued', 'leased')",
            &[&id, &state, &to_i32(attempts), &agent],
        )
        .await?;
        if state == "queued" {
            tx.batch_execute("NOTIFY vigil_tasks").await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Stores a task's result and its new alerts in one transaction, without fencing (the
    /// single-node API; the queue's is [`PgStore::complete`]). Returns `None` (and changes
    /// nothing) when the task already has a result: resending is harmless. Alerts already
    /// raised for the same scan, target and signature are not raised again; the returned list
    /// holds only the new ones.
    pub async fn store_result(
        &self,
        task_id: &str,
        scan_id: &str,
        agent_id: &str,
        status: &str,
        result: &str,
        alerts: &[AlertRow],
    ) -> Result<Option<Vec<AlertRow>>> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let inserted = tx
            .execute(
                "INSERT INTO results (task_id, scan_id, agent_id, result) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (task_id) DO NOTHING",
                &[&task_id, &scan_id, &agent_id, &result],
            )
            .await?;
        if inserted == 0 {
            return Ok(None);
        }
        tx.execute(
            "UPDATE tasks SET state = $2, lease_until = NULL WHERE id = $1",
            &[&task_id, &state_for(status)],
        )
        .await?;
        let fresh = insert_alerts(&tx, alerts).await?;
        tx.commit().await?;
        Ok(Some(fresh))
    }

    /// Every scan, oldest first.
    pub async fn scans(&self) -> Result<Vec<ScanRow>> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT id, requested_by, request, created FROM scans ORDER BY created, id",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ScanRow {
                    id: r.try_get(0)?,
                    requested_by: r.try_get(1)?,
                    request: r.try_get(2)?,
                    created: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Every task, in insertion order (`leased` reads as `running`).
    pub async fn tasks(&self) -> Result<Vec<TaskRow>> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT id, scan_id, task, state, attempts, agent_id FROM tasks ORDER BY seq",
                &[],
            )
            .await?;
        rows.iter().map(task_of).collect()
    }

    /// The tasks of one scan, in insertion order (`leased` reads as `running`): what a caller
    /// told that the scan completed reads to sum it up.
    pub async fn scan_tasks(&self, scan_id: &str) -> Result<Vec<TaskRow>> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT id, scan_id, task, state, attempts, agent_id FROM tasks
                 WHERE scan_id = $1 ORDER BY seq",
                &[&scan_id],
            )
            .await?;
        rows.iter().map(task_of).collect()
    }

    /// The stored results of a scan, JSON, in storage order.
    pub async fn results(&self, scan_id: &str) -> Result<Vec<String>> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT result FROM results WHERE scan_id = $1 ORDER BY seq",
                &[&scan_id],
            )
            .await?;
        rows.iter()
            .map(|r| r.try_get(0).map_err(Error::from))
            .collect()
    }

    /// The newest `limit` alerts, newest first, as (raised, RFC 3339; the alert).
    pub async fn alerts(&self, limit: u32) -> Result<Vec<(String, AlertRow)>> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT raised, scan_id, task_id, target, signature_id, severity, threat
                 FROM alerts ORDER BY id DESC LIMIT $1",
                &[&i64::from(limit)],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let raised: DateTime<Utc> = r.try_get(0)?;
                Ok((
                    raised.to_rfc3339(),
                    AlertRow {
                        scan_id: r.try_get(1)?,
                        task_id: r.try_get(2)?,
                        target: r.try_get(3)?,
                        signature_id: r.try_get(4)?,
                        severity: r.try_get(5)?,
                        threat: r.try_get(6)?,
                    },
                ))
            })
            .collect()
    }

    // ---- the shared task queue -----------------------------------------------------------

    /// Leases up to `free` queued tasks whose kind is one of `kinds` to `agent_id` (connected
    /// to `node_id`) for `lease`: highest priority first, then the longest waiting. Each gets
    /// one more attempt, returned as its fencing token. Rows another dispatcher is claiming are
    /// skipped, never waited for, so no task is leased twice.
    pub async fn claim(
        &self,
        agent_id: &str,
        node_id: &str,
        kinds: &[String],
        free: usize,
        lease: Duration,
    ) -> Result<Vec<Claimed>> {
        if free == 0 || kinds.is_empty() {
            return Ok(Vec::new());
        }
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(
                "WITH next AS MATERIALIZED (
                     SELECT id FROM tasks
                     WHERE state = 'queued' AND kind = ANY($1) AND run_after <= now()
                     ORDER BY priority DESC, run_after, seq
                     LIMIT $2
                     FOR UPDATE SKIP LOCKED)
                 UPDATE tasks t SET
                     state = 'leased', agent_id = $3, node_id = $4, attempts = t.attempts + 1,
                     lease_until = now() + make_interval(secs => $5)
                 FROM next WHERE t.id = next.id
                 RETURNING t.id, t.scan_id, t.task, t.attempts, t.priority, t.run_after, t.seq",
            )
            .await?;
        let mut rows = c
            .query(
                &stmt,
                &[&kinds, &to_i64(free), &agent_id, &node_id, &seconds(lease)],
            )
            .await?;
        // RETURNING has no order: put them back in queue order.
        rows.sort_by_cached_key(|r| {
            (
                std::cmp::Reverse(r.try_get::<_, i16>(4).ok()),
                r.try_get::<_, DateTime<Utc>>(5).ok(),
                r.try_get::<_, i64>(6).ok(),
            )
        });
        rows.iter().map(claimed_row).collect()
    }

    /// Extends to `lease` from now the lease of every task `agent_id` holds (call on each
    /// heartbeat); returns how many.
    pub async fn renew(&self, agent_id: &str, lease: Duration) -> Result<u64> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(
                "UPDATE tasks SET lease_until = now() + make_interval(secs => $2)
                 WHERE agent_id = $1 AND state = 'leased'",
            )
            .await?;
        Ok(c.execute(&stmt, &[&agent_id, &seconds(lease)]).await?)
    }

    /// Puts every leased task whose lease has run out back in the queue, or fails it when its
    /// attempts are spent. Safe to run on every node at once: each expired task is reaped by
    /// exactly one caller. Returns what changed, for the caller to publish.
    pub async fn reap(&self) -> Result<Vec<Reaped>> {
        let sql = requeue_sql(
            "SELECT id FROM tasks WHERE state = 'leased' AND lease_until < now()
             ORDER BY lease_until FOR UPDATE SKIP LOCKED",
        );
        self.requeue(&sql, &[]).await
    }

    /// Puts the tasks `agent_id` held through `node_id` back in the queue at once (or fails
    /// them, attempts spent): the agent disconnected. Returns what changed.
    pub async fn release_agent(&self, agent_id: &str, node_id: &str) -> Result<Vec<Reaped>> {
        let sql = requeue_sql(
            "SELECT id FROM tasks WHERE state = 'leased' AND agent_id = $1 AND node_id = $2
             FOR UPDATE",
        );
        self.requeue(&sql, &[&agent_id, &node_id]).await
    }

    async fn requeue(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Reaped>> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let mut rows = tx.query(sql, params).await?;
        rows.sort_by_cached_key(|r| r.try_get::<_, i64>(6).ok());
        let mut reaped = rows.iter().map(reaped_of).collect::<Result<Vec<_>>>()?;
        if reaped.iter().any(|r| r.state == "queued") {
            tx.batch_execute("NOTIFY vigil_tasks").await?;
        }
        tx.commit().await?;
        // A failed task may have been its scan's last: decide that under the scan's lock, in
        // a transaction of its own (the task locks above are released, so no lock cycle).
        let mut scans: Vec<String> = reaped
            .iter()
            .filter(|r| r.state == "failed")
            .map(|r| r.scan_id.clone())
            .collect();
        scans.sort();
        scans.dedup();
        for scan_id in scans {
            let tx = c.transaction().await?;
            let done = finish_scan_if_done(&tx, &scan_id).await?;
            tx.commit().await?;
            if done
                && let Some(last) = reaped
                    .iter_mut()
                    .rev()
                    .find(|r| r.scan_id == scan_id && r.state == "failed")
            {
                last.scan_completed = true;
            }
        }
        Ok(reaped)
    }

    /// Stores a result from the holder of the task's current attempt, in one transaction: the
    /// task ends with `status` (an end state: `success`, `partial`, `failed`, `timed_out` or
    /// `cancelled`) only if `agent_id` holds it at attempt `attempt`; the result is stored once;
    /// alerts are raised once per scan, target and signature across the cluster; and the scan's
    /// completion is decided. See [`Completion`].
    pub async fn complete(
        &self,
        task_id: &str,
        agent_id: &str,
        attempt: u32,
        status: &str,
        result_json: &str,
        alerts: &[AlertRow],
    ) -> Result<Completion> {
        if matches!(status, "queued" | "leased" | "running") {
            return Err(Error::Postgres(format!(
                "complete: {status:?} is not an end state"
            )));
        }
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let Some(row) = tx
            .query_opt("SELECT scan_id FROM tasks WHERE id = $1", &[&task_id])
            .await?
        else {
            return Ok(Completion::Fenced { state: None });
        };
        let scan_id: String = row.try_get(0)?;
        // The scan's lock first (see `finish_scan_if_done`), then the task's.
        tx.query("SELECT 1 FROM scans WHERE id = $1 FOR UPDATE", &[&scan_id])
            .await?;
        let updated = tx
            .execute(
                "UPDATE tasks SET state = $4, lease_until = NULL
                 WHERE id = $1 AND agent_id = $2 AND attempts = $3 AND state = 'leased'",
                &[&task_id, &agent_id, &to_i32(attempt), &status],
            )
            .await?;
        if updated == 0 {
            let stored = tx
                .query_opt("SELECT 1 FROM results WHERE task_id = $1", &[&task_id])
                .await?
                .is_some();
            if stored {
                return Ok(Completion::Duplicate);
            }
            let state: Option<String> = tx
                .query_opt("SELECT state FROM tasks WHERE id = $1", &[&task_id])
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
            return Ok(Completion::Fenced {
                state: state.map(status_for),
            });
        }
        let inserted = tx
            .execute(
                "INSERT INTO results (task_id, scan_id, agent_id, result) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (task_id) DO NOTHING",
                &[&task_id, &scan_id, &agent_id, &result_json],
            )
            .await?;
        if inserted == 0 {
            // Stored earlier through the unfenced API: keep that one.
            return Ok(Completion::Duplicate);
        }
        let fresh = insert_alerts(&tx, alerts).await?;
        let scan_completed = finish_scan_if_done(&tx, &scan_id).await?;
        tx.commit().await?;
        Ok(Completion::Stored {
            alerts: fresh,
            scan_completed,
        })
    }

    /// Cancels a scan: its queued tasks end `cancelled` now; its leased tasks are returned for
    /// their agents to be told (their results, or their reaping, end them). `None` for an
    /// unknown scan.
    pub async fn cancel_scan(&self, scan_id: &str) -> Result<Option<Cancellation>> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        if tx
            .query_opt("SELECT 1 FROM scans WHERE id = $1 FOR UPDATE", &[&scan_id])
            .await?
            .is_none()
        {
            return Ok(None);
        }
        let mut cancelled = tx
            .query(
                "UPDATE tasks SET state = 'cancelled', lease_until = NULL
                 WHERE scan_id = $1 AND state = 'queued'
                 RETURNING id, seq",
                &[&scan_id],
            )
            .await?;
        cancelled.sort_by_cached_key(|r| r.try_get::<_, i64>(1).ok());
        let running = tx
            .query(
                "SELECT id, agent_id, node_id FROM tasks
                 WHERE scan_id = $1 AND state = 'leased' ORDER BY seq",
                &[&scan_id],
            )
            .await?;
        let scan_completed = finish_scan_if_done(&tx, scan_id).await?;
        tx.commit().await?;
        Ok(Some(Cancellation {
            cancelled: cancelled
                .iter()
                .map(|r| r.try_get(0).map_err(Error::from))
                .collect::<Result<_>>()?,
            running: running
                .iter()
                .map(|r| {
                    Ok(Held {
                        task_id: r.try_get(0)?,
                        agent_id: r.try_get(1)?,
                        node_id: r.try_get(2)?,
                    })
                })
                .collect::<Result<_>>()?,
            scan_completed,
        }))
    }

    /// Records that `node_id` now holds the connection of `agent_id`: the tasks leased to the
    /// agent (through a node that died, or this one before a reconnect) move to this node, so
    /// its results and a later disconnect are handled here. Returns those tasks with their
    /// current attempts.
    pub async fn adopt(&self, agent_id: &str, node_id: &str) -> Result<Vec<Claimed>> {
        let c = self.client().await?;
        let rows = c
            .query(
                "UPDATE tasks SET node_id = $2 WHERE agent_id = $1 AND state = 'leased'
                 RETURNING id, scan_id, task, attempts",
                &[&agent_id, &node_id],
            )
            .await?;
        rows.iter().map(claimed_row).collect()
    }

    /// The task's holder and state now; `None` for an unknown task.
    pub async fn holder(&self, task_id: &str) -> Result<Option<Holder>> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT task, state, agent_id, attempts FROM tasks WHERE id = $1",
                &[&task_id],
            )
            .await?;
        row.map(|r| {
            let state: String = r.try_get(1)?;
            Ok(Holder {
                task: r.try_get(0)?,
                state: if state == "leased" {
                    "running".to_owned()
                } else {
                    state
                },
                agent_id: r.try_get(2)?,
                attempt: u32::try_from(r.try_get::<_, i32>(3)?).unwrap_or(0),
            })
        })
        .transpose()
    }

    /// Gives agent id `id` to `token_id` unless a token already has it; returns the token that
    /// owns it now (compare with yours), atomically across nodes.
    pub async fn claim_agent_id(&self, id: &str, token_id: &str) -> Result<String> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO agents (id, token_id) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
            &[&id, &token_id],
        )
        .await?;
        let row = c
            .query_one("SELECT token_id FROM agents WHERE id = $1", &[&id])
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Records (or refreshes) an agent connected to `presence.node_id`.
    pub async fn upsert_presence(&self, presence: &Presence) -> Result<()> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO agent_presence (id, node_id, name, capabilities, max_concurrent, local)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (id) DO UPDATE SET node_id = $2, name = $3, capabilities = $4,
                 max_concurrent = $5, local = $6, since = CASE
                     WHEN agent_presence.node_id = $2 THEN agent_presence.since ELSE now() END,
                 last_seen = now()",
            &[
                &presence.id,
                &presence.node_id,
                &presence.name,
                &presence.capabilities,
                &i32::try_from(presence.max_concurrent).unwrap_or(i32::MAX),
                &presence.local,
            ],
        )
        .await?;
        Ok(())
    }

    /// Refreshes when `node_id` last heard from `agent_id` (a heartbeat). `false` when there is
    /// no such row (it was swept while the database could not be told of heartbeats): record
    /// the presence again with [`PgStore::upsert_presence`].
    pub async fn touch_presence(&self, agent_id: &str, node_id: &str) -> Result<bool> {
        let c = self.client().await?;
        let touched = c
            .execute(
                "UPDATE agent_presence SET last_seen = now() WHERE id = $1 AND node_id = $2",
                &[&agent_id, &node_id],
            )
            .await?;
        Ok(touched > 0)
    }

    /// Forgets that `node_id` holds `agent_id` (it disconnected; another node may hold it now).
    pub async fn remove_presence(&self, agent_id: &str, node_id: &str) -> Result<()> {
        let c = self.client().await?;
        c.execute(
            "DELETE FROM agent_presence WHERE id = $1 AND node_id = $2",
            &[&agent_id, &node_id],
        )
        .await?;
        Ok(())
    }

    /// Every agent some node heard from within `max_age`, with its running tasks; older rows
    /// (of nodes that died) are deleted on the way.
    pub async fn presences(&self, max_age: Duration) -> Result<Vec<Presence>> {
        let c = self.client().await?;
        c.execute(
            "DELETE FROM agent_presence WHERE last_seen < now() - make_interval(secs => $1)",
            &[&seconds(max_age)],
        )
        .await?;
        let rows = c
            .query(
                "SELECT p.id, p.node_id, p.name, p.capabilities, p.max_concurrent, p.local,
                        (SELECT count(*) FROM tasks t WHERE t.agent_id = p.id AND t.state = 'leased'),
                        p.since, p.last_seen
                 FROM agent_presence p ORDER BY p.id",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Presence {
                    id: r.try_get(0)?,
                    node_id: r.try_get(1)?,
                    name: r.try_get(2)?,
                    capabilities: r.try_get(3)?,
                    max_concurrent: u32::try_from(r.try_get::<_, i32>(4)?).unwrap_or(0),
                    local: r.try_get(5)?,
                    running: u32::try_from(r.try_get::<_, i64>(6)?).unwrap_or(0),
                    since: r.try_get(7)?,
                    last_seen: r.try_get(8)?,
                })
            })
            .collect()
    }

    /// Counts of the cluster's tasks by state name (`queued`, `running`, and the end states).
    pub async fn task_counts(&self) -> Result<Vec<(String, u64)>> {
        let c = self.client().await?;
        let rows = c
            .query("SELECT state, count(*) FROM tasks GROUP BY state", &[])
            .await?;
        rows.iter()
            .map(|r| {
                let state: String = r.try_get(0)?;
                let n: i64 = r.try_get(1)?;
                let state = if state == "leased" {
                    "running".to_owned()
                } else {
                    state
                };
                Ok((state, u64::try_from(n).unwrap_or(0)))
            })
            .collect()
    }

    /// Listens for `NOTIFY vigil_tasks` on a connection of its own (outside the pool). Returns
    /// once the listener is registered, so every notification committed afterwards wakes it.
    /// Fails if the database cannot be reached now; later losses are retried in the background
    /// (after 1 s, doubling up to 30 s while the database stays away; back to 1 s once it was
    /// reached), with one wake-up after each reconnect.
    pub async fn listen(&self) -> Result<TaskListener> {
        self.listen_to(TASKS_CHANNEL).await
    }

    /// [`PgStore::listen`] on another of this store's channels (a constant identifier: it is
    /// written into the `LISTEN` statement).
    pub(super) async fn listen_to(&self, channel: &'static str) -> Result<TaskListener> {
        let notify = Arc::new(Notify::new());
        let (ready, registered) = oneshot::channel();
        let task = tokio::spawn(run_listener(
            Arc::clone(&self.config),
            channel,
            Arc::clone(&notify),
            ready,
        ));
        match registered.await {
            Ok(Ok(())) => Ok(TaskListener { notify, task }),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(Error::Postgres(format!(
                "the listener on {channel} stopped"
            ))),
        }
    }
}

async fn insert_alerts(
    tx: &deadpool_postgres::Transaction<'_>,
    alerts: &[AlertRow],
) -> Result<Vec<AlertRow>> {
    let mut fresh = Vec::new();
    if alerts.is_empty() {
        return Ok(fresh);
    }
    let stmt = tx
        .prepare_cached(
            "INSERT INTO alerts (scan_id, task_id, target, signature_id, severity, threat)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (scan_id, target, signature_id) DO NOTHING
             RETURNING id",
        )
        .await?;
    for a in alerts {
        let raised = tx
            .query_opt(
                &stmt,
                &[
                    &a.scan_id,
                    &a.task_id,
                    &a.target,
                    &a.signature_id,
                    &a.severity,
                    &a.threat,
                ],
            )
            .await?;
        if raised.is_some() {
            fresh.push(a.clone());
        }
    }
    Ok(fresh)
}

/// Applies the migrations the database lacks, on a connection of its own holding the
/// migration lock for its whole session.
async fn migrate(config: &tokio_postgres::Config) -> Result<()> {
    let (mut client, connection) = config.connect(NoTls).await?;
    let driver = tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(error = %err, "migration connection ended");
        }
    });
    let outcome = async {
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                     version integer PRIMARY KEY,
                     applied timestamptz NOT NULL DEFAULT now())",
            )
            .await?;
        let applied: Vec<i32> = client
            .query("SELECT version FROM schema_migrations", &[])
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        if let Some(newest) = applied.iter().max()
            && *newest > SCHEMA_VERSION
        {
            return Err(Error::Postgres(format!(
                "the database's schema is version {newest}; this build knows up to {SCHEMA_VERSION}"
            )));
        }
        for (version, sql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            let tx = client.transaction().await?;
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO schema_migrations (version) VALUES ($1)",
                &[version],
            )
            .await?;
            tx.commit().await?;
            tracing::info!(version, "database schema migrated");
        }
        client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await?;
        Ok(())
    }
    .await;
    // Closing the session releases the lock whatever happened above.
    drop(client);
    let _ = driver.await;
    outcome
}

/// Wakes a dispatcher when tasks become claimable (`NOTIFY vigil_tasks`), from
/// [`PgStore::listen`] (or a geosubmit tailer when the log grows, from
/// [`PgStore::listen_geosubmits`]). Dropping it closes its connection.
#[derive(Debug)]
pub struct TaskListener {
    notify: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl TaskListener {
    /// Waits for the next notification. Notifications that came while nobody waited are
    /// folded into one wake-up, taken by the next call.
    pub async fn notified(&self) {
        self.notify.notified().await;
    }

    /// [`TaskListener::notified`] when there is a listener; never without one (a loop that
    /// could not listen polls instead).
    pub async fn notified_if(listener: Option<&TaskListener>) {
        match listener {
            Some(l) => l.notified().await,
            None => std::future::pending().await,
        }
    }
}

impl Drop for TaskListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run_listener(
    config: Arc<tokio_postgres::Config>,
    channel: &'static str,
    notify: Arc<Notify>,
    ready: oneshot::Sender<Result<()>>,
) {
    let mut ready = Some(ready);
    let mut backoff = LISTEN_BACKOFF_MIN;
    loop {
        let mut listened = false;
        let err = listen_session(&config, channel, &notify, &mut ready, &mut listened).await;
        if let Some(ready) = ready.take() {
            let _ = ready.send(Err(err));
            return;
        }
        // A connection that got as far as LISTEN ends an outage: the next one is a new outage
        // and starts from the shortest wait (else a node that lived through a few would wait
        // the longest wait after every later restart of the database).
        if listened {
            backoff = LISTEN_BACKOFF_MIN;
        }
        tracing::warn!(error = %err, channel, retry_in = ?backoff, "listener lost its connection; reconnecting");
        tokio::time::sleep(backoff).await;
        backoff = next_listen_backoff(backoff);
    }
}

/// The listener's first wait before reconnecting.
const LISTEN_BACKOFF_MIN: Duration = Duration::from_secs(1);

/// The listener's longest wait before reconnecting.
const LISTEN_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The wait after `backoff`, when that attempt failed too: doubled, at most the longest.
fn next_listen_backoff(backoff: Duration) -> Duration {
    (backoff * 2).min(LISTEN_BACKOFF_MAX)
}

/// One connection's life: `LISTEN`, then forward notifications until it ends. `listened` is
/// set once `LISTEN` succeeded.
async fn listen_session(
    config: &tokio_postgres::Config,
    channel: &str,
    notify: &Notify,
    ready: &mut Option<oneshot::Sender<Result<()>>>,
    listened: &mut bool,
) -> Error {
    let (client, mut connection) = match config.connect(NoTls).await {
        Ok(pair) => pair,
        Err(err) => return err.into(),
    };
    let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
    let statement = format!("LISTEN {channel}");
    let listen = client.batch_execute(&statement);
    tokio::pin!(listen);
    let mut listening = false;
    loop {
        tokio::select! {
            done = &mut listen, if !listening => {
                if let Err(err) = done {
                    return err.into();
                }
                listening = true;
                *listened = true;
                match ready.take() {
                    Some(ready) => {
                        let _ = ready.send(Ok(()));
                    }
                    // A reconnect: a notification may have come while we were away.
                    None => notify.notify_one(),
                }
            }
            message = messages.next() => match message {
                Some(Ok(AsyncMessage::Notification(_))) => notify.notify_one(),
                Some(Ok(_)) => {}
                Some(Err(err)) => return err.into(),
                None => return Error::Postgres("the listener's connection closed".into()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_and_leased_are_one_state() {
        assert_eq!(state_for("running"), "leased");
        assert_eq!(state_for("queued"), "queued");
        assert_eq!(state_for("timed_out"), "timed_out");
        assert_eq!(status_for("leased".into()), "running");
        assert_eq!(status_for("cancelled".into()), "cancelled");
    }

    #[test]
    fn queue_columns_come_from_the_task() {
        let task = sec_scan::ScanTask::new(sec_scan::TaskKind::SslCheck, "10.0.0.1")
            .with_priority(sec_scan::Priority::new(9).unwrap())
            .with_retries(2);
        let json = serde_json::to_string(&task).unwrap();
        assert_eq!(queue_columns(&json), ("ssl_check".into(), 9, 3));
        assert_eq!(
            queue_columns("not a task"),
            (String::new(), 5, 4),
            "never claimed"
        );
    }

    #[test]
    fn migrations_are_in_order() {
        assert!(MIGRATIONS.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(MIGRATIONS[0].0, 1);
        assert_eq!(SCHEMA_VERSION, MIGRATIONS[MIGRATIONS.len() - 1].0);
    }
}
