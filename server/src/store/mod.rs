//! Persistence behind one handle, [`Store`], with two engines:
//!
//! | engine | when | what |
//! |---|---|---|
//! | SQLite ([`SqliteStore`]) | one node (the default) | one file, `<data_dir>/vigil.db`, in WAL mode |
//! | PostgreSQL ([`PgStore`]) | several nodes (`vigil serve --database-url … --redis-url …`) | one shared database; migrations applied at start under an advisory lock |
//!
//! Everything durable goes through [`Store`]: tokens, sessions, agent registrations, scans,
//! tasks, results, alerts and the event log. Its methods are `async`; the SQLite engine runs
//! each call on a blocking thread, the PostgreSQL one on a connection pool. Both keep the same
//! rules (an ended task keeps its final status, a result is stored once, an alert is raised once
//! per scan, target and signature), tested by the same cases.
//!
//! The PostgreSQL engine also holds what only a cluster needs: the shared task queue, and the
//! log of accepted geosubmits ([`geosubmits`]) that every node applies to its own overlay.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use event_bus::{Event, Role};

use crate::error::{Error, Result};

pub(crate) mod eventlog;
pub mod geosubmits;
pub mod postgres;
mod sqlite;

pub use postgres::PgStore;
pub use sqlite::{DB_FILE, SqliteStore};

/// A token as stored: never the secret, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// The public id (the first 12 hex digits of the hash), used to list and revoke.
    pub id: String,
    /// SHA-256 of the secret.
    pub hash: [u8; 32],
    /// What the token may do.
    pub role: Role,
    /// A human label ("dashboard", "agent rack 3").
    pub label: String,
    /// When it was made.
    pub created: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked: Option<DateTime<Utc>>,
}

/// A stored session: the hash of the cookie secret and the token it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// SHA-256 of the cookie secret.
    pub hash: [u8; 32],
    /// The token the session was opened with.
    pub token_id: String,
    /// When it stops being valid.
    pub expires: DateTime<Utc>,
}

/// The wire name of a role.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Viewer => "viewer",
        Role::Operator => "operator",
        Role::Admin => "admin",
        Role::Agent => "agent",
    }
}

/// Parses a role name (`viewer`, `operator`, `admin`, `agent`).
pub fn parse_role(name: &str) -> Option<Role> {
    Some(match name {
        "viewer" => Role::Viewer,
        "operator" => Role::Operator,
        "admin" => Role::Admin,
        "agent" => Role::Agent,
        _ => return None,
    })
}

/// A scan as stored: who asked, what they asked (the request JSON), and its tasks.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanRow {
    /// The scan id.
    pub id: String,
    /// The token label or id of who asked.
    pub requested_by: String,
    /// The request as accepted, JSON.
    pub request: String,
    /// When it was accepted.
    pub created: DateTime<Utc>,
}

/// A task as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRow {
    /// The task id.
    pub id: String,
    /// Its scan.
    pub scan_id: String,
    /// The task, JSON.
    pub task: String,
    /// `queued`, `running`, or how it ended.
    pub status: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// The agent it was last assigned to.
    pub agent: Option<String>,
}

/// An alert to store: one per (scan, target, signature).
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRow {
    /// The scan.
    pub scan_id: String,
    /// The task that found it.
    pub task_id: String,
    /// The target as the operator named it.
    pub target: String,
    /// The signature that matched.
    pub signature_id: String,
    /// Its severity name.
    pub severity: String,
    /// The threat, JSON.
    pub threat: String,
}

/// A handle to the database, whichever engine holds it. Cheap to clone.
#[derive(Clone, Debug)]
pub enum Store {
    /// One node: a SQLite file.
    Sqlite(SqliteStore),
    /// Several nodes: a shared PostgreSQL database.
    Postgres(PgStore),
}

/// Runs a call of the SQLite engine on a blocking thread.
async fn blocking<T: Send + 'static>(
    db: &SqliteStore,
    f: impl FnOnce(&SqliteStore) -> Result<T> + Send + 'static,
) -> Result<T> {
    let db = db.clone();
    tokio::task::spawn_blocking(move || f(&db))
        .await
        .map_err(|e| Error::Task(e.to_string()))?
}

macro_rules! on_engine {
    ($self:ident, |$db:ident| $call:expr) => {
        match $self {
            Store::Sqlite(db) => blocking(db, move |$db| $call).await,
            Store::Postgres($db) => $call.await,
        }
    };
}

impl Store {
    /// Opens (creating if needed) the SQLite database in `dir`.
    pub fn open(dir: &std::path::Path) -> Result<Store> {
        SqliteStore::open(dir).map(Store::Sqlite)
    }

    /// A SQLite database that lives in memory only, for tests.
    pub fn open_in_memory() -> Result<Store> {
        SqliteStore::open_in_memory().map(Store::Sqlite)
    }

    /// Connects to a shared PostgreSQL database and applies its migrations.
    pub async fn connect(database_url: &str) -> Result<Store> {
        PgStore::connect(database_url).await.map(Store::Postgres)
    }

    /// The PostgreSQL store, when the database is shared by several nodes.
    pub fn shared(&self) -> Option<&PgStore> {
        match self {
            Store::Postgres(db) => Some(db),
            Store::Sqlite(_) => None,
        }
    }

    /// Whether the database is shared by several nodes.
    pub fn is_shared(&self) -> bool {
        matches!(self, Store::Postgres(_))
    }

    /// Stores a new token.
    pub async fn insert_token(&self, token: &TokenRecord) -> Result<()> {
        let token = token.clone();
        on_engine!(self, |db| db.insert_token(&token))
    }

    /// Stores `token` only if no token exists at all, atomically even when several nodes start
    /// at once; `true` if it did.
    pub async fn insert_first_admin(&self, token: &TokenRecord) -> Result<bool> {
        let token = token.clone();
        on_engine!(self, |db| db.insert_first_admin(&token))
    }

    /// Marks a token revoked and deletes its sessions; `false` if no live token has that id.
    pub async fn revoke_token(&self, id: &str, at: DateTime<Utc>) -> Result<bool> {
        let id = id.to_owned();
        on_engine!(self, |db| db.revoke_token(&id, at))
    }

    /// Every token, revoked ones included, oldest first.
    pub async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        on_engine!(self, |db| db.tokens())
    }

    /// The token with this hash, revoked or not.
    pub async fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<TokenRecord>> {
        let hash = *hash;
        on_engine!(self, |db| db.token_by_hash(&hash))
    }

    /// The unexpired session with this hash, if its token is live.
    pub async fn session_by_hash(
        &self,
        hash: &[u8; 32],
        now: DateTime<Utc>,
    ) -> Result<Option<SessionRecord>> {
        let hash = *hash;
        on_engine!(self, |db| db.session_by_hash(&hash, now))
    }

    /// Keeps the `keep` sessions of `token_id` that expire last and deletes the others; returns
    /// the hashes deleted.
    pub async fn trim_sessions(&self, token_id: &str, keep: usize) -> Result<Vec<[u8; 32]>> {
        let token_id = token_id.to_owned();
        on_engine!(self, |db| db.trim_sessions(&token_id, keep))
    }

    /// Deletes expired sessions.
    pub async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> Result<usize> {
        on_engine!(self, |db| db.delete_expired_sessions(now))
    }

    /// Every agent id with the token that registered it first.
    pub async fn agent_owners(&self) -> Result<Vec<(String, String)>> {
        on_engine!(self, |db| db.agent_owners())
    }

    /// Records that `token_id` owns the agent id `id` (kept if it is already recorded).
    pub async fn insert_agent_owner(&self, id: &str, token_id: &str) -> Result<()> {
        let (id, token_id) = (id.to_owned(), token_id.to_owned());
        on_engine!(self, |db| db.insert_agent_owner(&id, &token_id))
    }

    /// Forgets an agent id, so that any token may take it again.
    pub async fn delete_agent_owner(&self, id: &str) -> Result<()> {
        let id = id.to_owned();
        on_engine!(self, |db| db.delete_agent_owner(&id))
    }

    /// Stores a session.
    pub async fn insert_session(&self, session: &SessionRecord) -> Result<()> {
        let session = session.clone();
        on_engine!(self, |db| db.insert_session(&session))
    }

    /// Deletes a session.
    pub async fn delete_session(&self, hash: &[u8; 32]) -> Result<()> {
        let hash = *hash;
        on_engine!(self, |db| db.delete_session(&hash))
    }

    /// Every unexpired session; expired ones are deleted on the way.
    pub async fn sessions(&self, now: DateTime<Utc>) -> Result<Vec<SessionRecord>> {
        on_engine!(self, |db| db.sessions(now))
    }

    /// Appends events to the event log, then trims it to the newest `retention` rows. An event
    /// already logged (same epoch and seq: every node of a cluster logs what it sees) is kept
    /// once.
    pub async fn append_events(&self, events: Vec<Arc<Event>>, retention: u64) -> Result<()> {
        on_engine!(self, |db| db.append_events(&events, retention))
    }

    /// How many events the log holds.
    pub async fn event_count(&self) -> Result<u64> {
        on_engine!(self, |db| db.event_count())
    }

    /// Stores a scan and its tasks in one transaction.
    pub async fn insert_scan(&self, scan: &ScanRow, tasks: &[TaskRow]) -> Result<()> {
        let (scan, tasks) = (scan.clone(), tasks.to_vec());
        on_engine!(self, |db| db.insert_scan(&scan, &tasks))
    }

    /// Records a task's status and attempts; a task that has ended keeps its final status.
    pub async fn update_task(
        &self,
        id: &str,
        status: &str,
        attempts: u32,
        agent: Option<&str>,
    ) -> Result<()> {
        let (id, status, agent) = (id.to_owned(), status.to_owned(), agent.map(str::to_owned));
        on_engine!(self, |db| db.update_task(
            &id,
            &status,
            attempts,
            agent.as_deref()
        ))
    }

    /// Stores a task's result and its new alerts in one transaction; `None` when the task
    /// already has a result. The returned alerts are only those raised for the first time.
    pub async fn store_result(
        &self,
        task_id: &str,
        scan_id: &str,
        agent_id: &str,
        status: &str,
        result: &str,
        alerts: &[AlertRow],
    ) -> Result<Option<Vec<AlertRow>>> {
        let (task_id, scan_id, agent_id, status, result, alerts) = (
            task_id.to_owned(),
            scan_id.to_owned(),
            agent_id.to_owned(),
            status.to_owned(),
            result.to_owned(),
            alerts.to_vec(),
        );
        on_engine!(self, |db| db.store_result(
            &task_id, &scan_id, &agent_id, &status, &result, &alerts
        ))
    }

    /// Every scan, oldest first.
    pub async fn scans(&self) -> Result<Vec<ScanRow>> {
        on_engine!(self, |db| db.scans())
    }

    /// Every task, in insertion order.
    pub async fn tasks(&self) -> Result<Vec<TaskRow>> {
        on_engine!(self, |db| db.tasks())
    }

    /// The stored results of a scan, JSON, in storage order.
    pub async fn results(&self, scan_id: &str) -> Result<Vec<String>> {
        let scan_id = scan_id.to_owned();
        on_engine!(self, |db| db.results(&scan_id))
    }

    /// The newest `limit` alerts, newest first, with when each was raised.
    pub async fn alerts(&self, limit: u32) -> Result<Vec<(String, AlertRow)>> {
        on_engine!(self, |db| db.alerts(limit))
    }
}
