//! SQLite persistence: tokens, sessions and the event log.
//!
//! One database file, `vigil.db`, in the data directory, in WAL mode so that readers never wait
//! for the writer. Calls are synchronous; async code runs them with
//! [`tokio::task::spawn_blocking`] (see [`Store::run`]).

use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use event_bus::{Event, Role};
use rusqlite::{Connection, OptionalExtension, params};

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
";

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

/// A handle to the database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
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

fn hash_from(blob: Vec<u8>) -> rusqlite::Result<[u8; 32]> {
    blob.try_into().map_err(|b: Vec<u8>| {
        rusqlite::Error::FromSqlConversionFailure(
            b.len(),
            rusqlite::types::Type::Blob,
            "a token hash is 32 bytes".into(),
        )
    })
}

impl Store {
    /// Opens (creating if needed) the database in `dir`.
    pub fn open(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir).map_err(|source| Error::DataDir {
            path: dir.to_owned(),
            source,
        })?;
        let conn = Connection::open(dir.join(DB_FILE))?;
        Self::init(conn)
    }

    /// A database that lives in memory only, for tests.
    pub fn open_in_memory() -> Result<Store> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Store> {
        // WAL: readers do not block the writer; NORMAL: durable across process crashes, and a
        // power loss can lose only the last transactions, never corrupt the file.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Store {
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
        f: impl FnOnce(&Store) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| Error::Task(e.to_string()))?
    }

    /// Stores a new token.
    pub fn insert_token(&self, token: &TokenRecord) -> Result<()> {
        self.with(|c| {
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
            let rows = stmt.query_map([], |row| {
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
            })?;
            rows.collect()
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
            let rows = stmt.query_map([], |row| {
                let expires: String = row.get(2)?;
                Ok(SessionRecord {
                    hash: hash_from(row.get(0)?)?,
                    token_id: row.get(1)?,
                    expires: parse_time(&expires),
                })
            })?;
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
            let max: Option<i64> = tx.query_row("SELECT MAX(rowid) FROM events", [], |r| r.get(0)).optional()?.flatten();
            if let Some(max) = max {
                let keep_from = max - i64::try_from(retention).unwrap_or(i64::MAX) + 1;
                tx.execute("DELETE FROM events WHERE rowid < ?1", params![keep_from])?;
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
        let store = Store::open_in_memory().unwrap();
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
        let store = Store::open_in_memory().unwrap();
        let bus = event_bus::Bus::new();
        let events: Vec<_> = (0..10)
            .map(|n| {
                bus.publish_json("scan_update", "scans", &serde_json::json!({"n": n}))
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
        Store::open(dir.path())
            .unwrap()
            .insert_token(&token("abc", Role::Viewer))
            .unwrap();
        assert_eq!(Store::open(dir.path()).unwrap().tokens().unwrap().len(), 1);
    }
}
