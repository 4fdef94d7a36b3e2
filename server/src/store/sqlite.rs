//! The single-node store: one SQLite file.
//!
//! One database file, `vigil.db`, in the data directory, in WAL mode so that readers never wait
//! for the writer. Calls are synchronous; async code runs them with
//! [`tokio::task::spawn_blocking`] (see [`Store::run`]).

use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use event_bus::{Event, Role};
use rusqlite::{Connection, OptionalExtension, params};

use super::{AlertRow, ScanRow, SessionRecord, TaskRow, TokenRecord, parse_role, role_name};
use crate::error::{Error, Result};

/// The database file's name inside the data directory.
pub const DB_FILE: &str = "vigil.db";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tokens (
    id       TEXT PRIMARY KEY,
    hash     BLOB NOT NULL UNIQUE,
    role     TEXT NOT NULL,
    label    TEXT NOT NULL,
    created  TEXT NOT NULL,
    revoked  TEXT
);
CREATE TABLE IF NOT EXISTS sessions (
    hash     BLOB PRIMARY KEY,
    token_id TEXT NOT NULL REFERENCES tokens(id),
    expires  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    rowid    INTEGER PRIMARY KEY,
    epoch    TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    kind     TEXT NOT NULL,
    room     TEXT NOT NULL,
    severity TEXT NOT NULL,
    time     TEXT NOT NULL,
    json     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_time ON events(time);
CREATE TABLE IF NOT EXISTS scans (
    id           TEXT PRIMARY KEY,
    requested_by TEXT NOT NULL,
    request      TEXT NOT NULL,
    created      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tasks (
    id       TEXT PRIMARY KEY,
    scan_id  TEXT NOT NULL REFERENCES scans(id),
    task     TEXT NOT NULL,
    status   TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    agent    TEXT
);
CREATE INDEX IF NOT EXISTS tasks_scan ON tasks(scan_id);
CREATE TABLE IF NOT EXISTS results (
    task_id  TEXT PRIMARY KEY REFERENCES tasks(id),
    scan_id  TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    result   TEXT NOT NULL,
    stored   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
    id           INTEGER PRIMARY KEY,
    scan_id      TEXT NOT NULL,
    task_id      TEXT NOT NULL,
    target       TEXT NOT NULL,
    signature_id TEXT NOT NULL,
    severity     TEXT NOT NULL,
    threat       TEXT NOT NULL,
    raised       TEXT NOT NULL,
    UNIQUE (scan_id, target, signature_id)
);
CREATE INDEX IF NOT EXISTS sessions_token ON sessions(token_id);
CREATE TABLE IF NOT EXISTS agents (
    id         TEXT PRIMARY KEY,
    token_id   TEXT NOT NULL,
    registered TEXT NOT NULL
);
";

/// A handle to the database. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

fn hash_from(blob: Vec<u8>) -> rusqlite::Result<[u8; 32]> {
    blob.try_into().map_err(|b: Vec<u8>| {
        rusqlite::Error::FromSqlConversionFailure(
            b.len(),
            rusqlite::types::Type::Blob,
            "a token hash is 32 bytes".into(),
        )
    })
}

impl SqliteStore {
    /// Opens (creating if needed) the database in `dir`.
    pub fn open(dir: &Path) -> Result<SqliteStore> {
        std::fs::create_dir_all(dir).map_err(|source| Error::DataDir {
            path: dir.to_owned(),
            source,
        })?;
        let conn = Connection::open(dir.join(DB_FILE))?;
        Self::init(conn)
    }

    /// A database that lives in memory only, for tests.
    pub fn open_in_memory() -> Result<SqliteStore> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<SqliteStore> {
        // WAL: readers do not block the writer; NORMAL: durable across process crashes, and a
        // power loss can lose only the last transactions, never corrupt the file.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T> {
        // A panic while holding the lock leaves SQLite consistent (transactions roll back), so a
        // poisoned lock is still safe to use.
        let mut conn = self
            .conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(f(&mut conn)?)
    }

    /// Runs `f` on a blocking thread, for use from async code.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&SqliteStore) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| Error::Task(e.to_string()))?
    }

    /// Stores a new token.
    pub fn insert_token(&self, token: &TokenRecord) -> Result<()> {
        self.with(|c| insert_token(c, token))
    }

    /// Stores `token` only if no token exists at all; `true` if it did.
    pub fn insert_first_admin(&self, token: &TokenRecord) -> Result<bool> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let n: i64 = tx.query_row("SELECT COUNT(*) FROM tokens", [], |r| r.get(0))?;
            if n > 0 {
                return Ok(false);
            }
            insert_token(&tx, token)?;
            tx.commit()?;
            Ok(true)
        })
    }

    /// Marks a token revoked and deletes its sessions; `false` if no live token has that id.
    pub fn revoke_token(&self, id: &str, at: DateTime<Utc>) -> Result<bool> {
        self.with(|c| {
            let tx = c.transaction()?;
            let n = tx.execute(
                "UPDATE tokens SET revoked = ?2 WHERE id = ?1 AND revoked IS NULL",
                params![id, at.to_rfc3339()],
            )?;
            tx.execute("DELETE FROM sessions WHERE token_id = ?1", params![id])?;
            tx.commit()?;
            Ok(n == 1)
        })
    }

    /// Every token, revoked ones included, oldest first.
    pub fn tokens(&self) -> Result<Vec<TokenRecord>> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT id, hash, role, label, created, revoked FROM tokens ORDER BY created, id",
            )?;
            let rows = stmt.query_map([], token_row)?;
            rows.collect()
        })
    }

    /// The token with this hash, revoked or not.
    pub fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<TokenRecord>> {
        self.with(|c| {
            c.prepare_cached(
                "SELECT id, hash, role, label, created, revoked FROM tokens WHERE hash = ?1",
            )?
            .query_row(params![&hash[..]], token_row)
            .optional()
        })
    }

    /// The unexpired session with this hash, if its token is live.
    pub fn session_by_hash(
        &self,
        hash: &[u8; 32],
        now: DateTime<Utc>,
    ) -> Result<Option<SessionRecord>> {
        self.with(|c| {
            c.prepare_cached(
                "SELECT s.hash, s.token_id, s.expires FROM sessions s JOIN tokens t ON t.id = s.token_id \
                 WHERE s.hash = ?1 AND s.expires > ?2 AND t.revoked IS NULL",
            )?
            .query_row(params![&hash[..], now.to_rfc3339()], session_row)
            .optional()
        })
    }

    /// Keeps the `keep` sessions of `token_id` that expire last and deletes the others; returns
    /// the hashes deleted.
    pub fn trim_sessions(&self, token_id: &str, keep: usize) -> Result<Vec<[u8; 32]>> {
        self.with(|c| {
            let tx = c.transaction()?;
            let doomed: Vec<[u8; 32]> = {
                let mut stmt = tx.prepare(
                    "SELECT hash FROM sessions WHERE token_id = ?1 ORDER BY expires DESC, hash LIMIT -1 OFFSET ?2",
                )?;
                let rows = stmt.query_map(params![token_id, keep as i64], |r| hash_from(r.get(0)?))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            for hash in &doomed {
                tx.execute("DELETE FROM sessions WHERE hash = ?1", params![&hash[..]])?;
            }
            tx.commit()?;
            Ok(doomed)
        })
    }

    /// Deletes expired sessions.
    pub fn delete_expired_sessions(&self, now: DateTime<Utc>) -> Result<usize> {
        self.with(|c| {
            c.execute(
                "DELETE FROM sessions WHERE expires <= ?1",
                params![now.to_rfc3339()],
            )
        })
    }

    /// Every agent id with the token that registered it first.
    pub fn agent_owners(&self) -> Result<Vec<(String, String)>> {
        self.with(|c| {
            let mut stmt = c.prepare("SELECT id, token_id FROM agents ORDER BY registered, id")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }

    /// Records that `token_id` owns the agent id `id` (kept if it is already recorded).
    pub fn insert_agent_owner(&self, id: &str, token_id: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO agents (id, token_id, registered) VALUES (?1, ?2, ?3)",
                params![id, token_id, Utc::now().to_rfc3339()],
            )
            .map(drop)
        })
    }

    /// Forgets an agent id, so that any token may take it again.
    pub fn delete_agent_owner(&self, id: &str) -> Result<()> {
        self.with(|c| {
            c.execute("DELETE FROM agents WHERE id = ?1", params![id])
                .map(drop)
        })
    }

    /// Stores a session.
    pub fn insert_session(&self, session: &SessionRecord) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO sessions (hash, token_id, expires) VALUES (?1, ?2, ?3)",
                params![
                    &session.hash[..],
                    session.token_id,
                    session.expires.to_rfc3339()
                ],
            )
            .map(drop)
        })
    }

    /// Deletes a session.
    pub fn delete_session(&self, hash: &[u8; 32]) -> Result<()> {
        self.with(|c| {
            c.execute("DELETE FROM sessions WHERE hash = ?1", params![&hash[..]])
                .map(drop)
        })
    }

    /// Every unexpired session; expired ones are deleted on the way.
    pub fn sessions(&self, now: DateTime<Utc>) -> Result<Vec<SessionRecord>> {
        self.with(|c| {
            c.execute(
                "DELETE FROM sessions WHERE expires <= ?1",
                params![now.to_rfc3339()],
            )?;
            let mut stmt = c.prepare("SELECT hash, token_id, expires FROM sessions")?;
            let rows = stmt.query_map([], session_row)?;
            rows.collect()
        })
    }

    /// Appends events to the event log in one transaction, then trims the log to the newest
    /// `retention` rows.
    pub fn append_events(&self, events: &[Arc<Event>], retention: u64) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO events (epoch, seq, kind, room, severity, time, json) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                for e in events {
                    stmt.execute(params![
                        e.epoch().to_string(),
                        e.seq() as i64,
                        e.kind().as_str(),
                        e.room().as_str(),
                        e.severity().as_str(),
                        e.time().to_rfc3339(),
                        // Event JSON is built by the bus from valid UTF-8 parts.
                        std::str::from_utf8(e.json()).unwrap_or_default(),
                    ])?;
                }
            }
            let max: Option<i64> = tx
                .prepare_cached("SELECT MAX(rowid) FROM events")?
                .query_row([], |r| r.get(0))
                .optional()?
                .flatten();
            if let Some(max) = max {
                let keep_from = max - i64::try_from(retention).unwrap_or(i64::MAX) + 1;
                tx.prepare_cached("DELETE FROM events WHERE rowid < ?1")?
                    .execute(params![keep_from])?;
            }
            tx.commit()
        })
    }

    /// How many events the log holds.
    pub fn event_count(&self) -> Result<u64> {
        self.with(|c| c.query_row("SELECT COUNT(*) FROM events", [], |r| r.get::<_, i64>(0)))
            .map(|n| n as u64)
    }
}

impl SqliteStore {
    /// Stores a scan and its tasks in one transaction.
    pub fn insert_scan(&self, scan: &ScanRow, tasks: &[TaskRow]) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT INTO scans (id, requested_by, request, created) VALUES (?1, ?2, ?3, ?4)",
                params![scan.id, scan.requested_by, scan.request, scan.created.to_rfc3339()],
            )?;
            for t in tasks {
                tx.execute(
                    "INSERT INTO tasks (id, scan_id, task, status, attempts, agent) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![t.id, t.scan_id, t.task, t.status, t.attempts, t.agent],
                )?;
            }
            tx.commit()
        })
    }

    /// Records a task's status and attempts. A task that has ended keeps its final status:
    /// writes may arrive out of order, and an ended task must never be run again on restart.
    pub fn update_task(
        &self,
        id: &str,
        status: &str,
        attempts: u32,
        agent: Option<&str>,
    ) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE tasks SET status = ?2, attempts = ?3, agent = COALESCE(?4, agent)
                 WHERE id = ?1 AND status IN ('queued', 'running')",
                params![id, status, attempts, agent],
            )
            .map(drop)
        })
    }

    /// Stores a task's result and its new alerts in one transaction. Returns `false` (and
    /// changes nothing) when the task already has a result: resending is harmless. Alerts
    /// already raised for the same scan, target and signature are not raised again; the
    /// returned list holds only the new ones.
    pub fn store_result(
        &self,
        task_id: &str,
        scan_id: &str,
        agent_id: &str,
        status: &str,
        result: &str,
        alerts: &[AlertRow],
    ) -> Result<Option<Vec<AlertRow>>> {
        self.with(|c| {
            let tx = c.transaction()?;
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO results (task_id, scan_id, agent_id, result, stored) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![task_id, scan_id, agent_id, result, Utc::now().to_rfc3339()],
            )?;
            if inserted == 0 {
                return Ok(None);
            }
            tx.execute("UPDATE tasks SET status = ?2 WHERE id = ?1", params![task_id, status])?;
            let mut fresh = Vec::new();
            for a in alerts {
                let n = tx.execute(
                    "INSERT OR IGNORE INTO alerts (scan_id, task_id, target, signature_id, severity, threat, raised)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![a.scan_id, a.task_id, a.target, a.signature_id, a.severity, a.threat, Utc::now().to_rfc3339()],
                )?;
                if n == 1 {
                    fresh.push(a.clone());
                }
            }
            tx.commit()?;
            Ok(Some(fresh))
        })
    }

    /// Every scan, oldest first.
    pub fn scans(&self) -> Result<Vec<ScanRow>> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT id, requested_by, request, created FROM scans ORDER BY created, id",
            )?;
            let rows = stmt.query_map([], |r| {
                let created: String = r.get(3)?;
                Ok(ScanRow {
                    id: r.get(0)?,
                    requested_by: r.get(1)?,
                    request: r.get(2)?,
                    created: parse_time(&created),
                })
            })?;
            rows.collect()
        })
    }

    /// Every task, in insertion order.
    pub fn tasks(&self) -> Result<Vec<TaskRow>> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT id, scan_id, task, status, attempts, agent FROM tasks ORDER BY rowid",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(TaskRow {
                    id: r.get(0)?,
                    scan_id: r.get(1)?,
                    task: r.get(2)?,
                    status: r.get(3)?,
                    attempts: r.get(4)?,
                    agent: r.get(5)?,
                })
            })?;
            rows.collect()
        })
    }

    /// The stored results of a scan, JSON, in storage order.
    pub fn results(&self, scan_id: &str) -> Result<Vec<String>> {
        self.with(|c| {
            let mut stmt =
                c.prepare("SELECT result FROM results WHERE scan_id = ?1 ORDER BY rowid")?;
            let rows = stmt.query_map(params![scan_id], |r| r.get(0))?;
            rows.collect()
        })
    }

    /// The newest `limit` alerts, newest first, as (raised, threat JSON, scan, task, target).
    pub fn alerts(&self, limit: u32) -> Result<Vec<(String, AlertRow)>> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT raised, scan_id, task_id, target, signature_id, severity, threat FROM alerts ORDER BY id DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map(params![limit], |r| {
                Ok((
                    r.get(0)?,
                    AlertRow {
                        scan_id: r.get(1)?,
                        task_id: r.get(2)?,
                        target: r.get(3)?,
                        signature_id: r.get(4)?,
                        severity: r.get(5)?,
                        threat: r.get(6)?,
                    },
                ))
            })?;
            rows.collect()
        })
    }
}

fn insert_token(c: &Connection, token: &TokenRecord) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO tokens (id, hash, role, label, created, revoked) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            token.id,
            &token.hash[..],
            role_name(token.role),
            token.label,
            token.created.to_rfc3339(),
            token.revoked.map(|t| t.to_rfc3339()),
        ],
    )
    .map(drop)
}

fn token_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRecord> {
    let role: String = row.get(2)?;
    let created: String = row.get(4)?;
    let revoked: Option<String> = row.get(5)?;
    Ok(TokenRecord {
        id: row.get(0)?,
        hash: hash_from(row.get(1)?)?,
        role: parse_role(&role).unwrap_or(Role::Viewer),
        label: row.get(3)?,
        created: parse_time(&created),
        revoked: revoked.as_deref().map(parse_time),
    })
}

fn session_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRecord> {
    let expires: String = row.get(2)?;
    Ok(SessionRecord {
        hash: hash_from(row.get(0)?)?,
        token_id: row.get(1)?,
        expires: parse_time(&expires),
    })
}

fn parse_time(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(id: &str, role: Role) -> TokenRecord {
        TokenRecord {
            id: id.into(),
            hash: [id.len() as u8; 32],
            role,
            label: format!("{id} label"),
            created: Utc::now(),
            revoked: None,
        }
    }

    #[test]
    fn tokens_round_trip_and_revoke() {
        let store = SqliteStore::open_in_memory().unwrap();
        store.insert_token(&token("abc", Role::Admin)).unwrap();
        store.insert_token(&token("defg", Role::Agent)).unwrap();
        let all = store.tokens().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(
            all.iter().find(|t| t.id == "defg").unwrap().role,
            Role::Agent
        );
        assert!(store.revoke_token("abc", Utc::now()).unwrap());
        assert!(
            !store.revoke_token("abc", Utc::now()).unwrap(),
            "revoking twice changes nothing"
        );
        assert!(!store.revoke_token("nope", Utc::now()).unwrap());
        assert!(
            store
                .tokens()
                .unwrap()
                .iter()
                .find(|t| t.id == "abc")
                .unwrap()
                .revoked
                .is_some()
        );
    }

    #[test]
    fn the_event_log_keeps_only_the_newest() {
        let store = SqliteStore::open_in_memory().unwrap();
        let bus = event_bus::Bus::new();
        let events: Vec<_> = (0..10)
            .map(|n| {
                bus.publish_json("scan_update", "scans", &serde_json::json!({"n": n}))
                    .unwrap()
                    .now()
                    .unwrap()
            })
            .collect();
        store.append_events(&events[..6], 4).unwrap();
        assert_eq!(store.event_count().unwrap(), 4);
        store.append_events(&events[6..], 4).unwrap();
        assert_eq!(store.event_count().unwrap(), 4);
    }

    #[test]
    fn a_database_on_disk_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        SqliteStore::open(dir.path())
            .unwrap()
            .insert_token(&token("abc", Role::Viewer))
            .unwrap();
        assert_eq!(
            SqliteStore::open(dir.path())
                .unwrap()
                .tokens()
                .unwrap()
                .len(),
            1
        );
    }
}
