//! Tokens, sessions and who may do what.
//!
//! A token is `vgl_` followed by 64 hexadecimal digits (256 random bits). The server stores only
//! its SHA-256 and looks presented tokens up by that hash, so comparing secrets never happens
//! byte by byte and response times say nothing about how close a guess was. A dashboard trades a
//! token for a session cookie (another random secret, stored hashed the same way) so that the
//! token itself never sits in the browser.

use std::collections::HashMap;
use std::sync::RwLock;

use chrono::{DateTime, Utc};
use event_bus::Role;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::store::{SessionRecord, Store, TokenRecord};

/// The prefix of every token.
pub const TOKEN_PREFIX: &str = "vgl_";

/// The name of the session cookie over plain HTTP.
pub const SESSION_COOKIE: &str = "vigil_session";

/// The name of the session cookie when the server is reached over HTTPS (`cookie_secure`). The
/// `__Host-` prefix makes browsers refuse the cookie unless it is `Secure`, has `Path=/` and no
/// `Domain`, so no other host (a sibling subdomain, a plain-HTTP page) can plant or overwrite it.
pub const SECURE_SESSION_COOKIE: &str = "__Host-vigil_session";

/// The session cookie's name: [`SECURE_SESSION_COOKIE`] when `secure`, else [`SESSION_COOKIE`].
/// The server reads only this name, never the other.
pub const fn session_cookie_name(secure: bool) -> &'static str {
    if secure {
        SECURE_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// What they may do.
    pub role: Role,
    /// The token's public id.
    pub token_id: String,
    /// The token's label.
    pub label: String,
}

impl Principal {
    /// How the events this principal publishes are signed (their `source`): the token's label,
    /// or `token:<id>` when it has none. Set by the server, never by the client.
    pub fn source(&self) -> String {
        if self.label.is_empty() {
            format!("token:{}", self.token_id)
        } else {
            self.label.clone()
        }
    }

    /// Whether this principal is at least `role` on the viewer < operator < admin ladder (agents
    /// are on no ladder: only `Role::Agent` admits them).
    pub fn is_at_least(&self, role: Role) -> bool {
        event_bus::Access::at_least(role).allows(self.role)
    }
}

/// The room whose messages name their sender.
pub const CHAT_ROOM: &str = "chat";

/// A chat message names its sender in `data.user` (the seed dashboard shows that field): the
/// server writes the sender it knows there, whatever the client sent, so nobody can speak as
/// someone else. Data of other rooms is returned as it is; a chat message that is not an object
/// becomes `{"message": data}`.
pub fn signed_data(room: &str, data: serde_json::Value, source: &str) -> serde_json::Value {
    if room != CHAT_ROOM {
        return data;
    }
    let mut object = match data {
        serde_json::Value::Object(object) => object,
        serde_json::Value::Null => serde_json::Map::new(),
        other => serde_json::Map::from_iter([("message".to_owned(), other)]),
    };
    object.insert(
        "user".to_owned(),
        serde_json::Value::String(source.to_owned()),
    );
    serde_json::Value::Object(object)
}

/// Sessions kept per token: opening one more ends the one that expires first. A token holder
/// signing in again and again (or a script doing it) cannot grow the table without bound.
pub const MAX_SESSIONS_PER_TOKEN: usize = 32;

/// The live token and session tables, loaded from the store and written through to it.
///
/// Tokens are all held in memory (the table is small and made by admins). Sessions are looked
/// up in the store the first time they are seen and kept in memory after, so a session or a
/// token made by another process (`vigil token create`, another node) works at once: a hash
/// that memory does not know is looked up in the store before it is refused.
///
/// Every connection opened with a token watches that token's [`Revocation`]: revoking the
/// token (here, or in the store by another process, noticed by [`Auth::reload`]) fires it, and
/// the connection closes.
#[derive(Debug)]
pub struct Auth {
    store: Store,
    /// Serialises changes (store, then memory) with [`Auth::reload`], so a reload that read the
    /// store just before a change can never overwrite the change in memory.
    writes: tokio::sync::Mutex<()>,
    tokens: RwLock<HashMap<[u8; 32], Principal>>,
    sessions: RwLock<HashMap<[u8; 32], LiveSession>>,
    /// One signal per live token that some connection watches; bounded by the live tokens.
    revocations: std::sync::Mutex<HashMap<String, CancellationToken>>,
}

/// Fires when a token is revoked. Cheap to clone; see [`Auth::revocation`].
pub type Revocation = CancellationToken;

/// A session's principal and when it expires.
type LiveSession = (Principal, DateTime<Utc>);

fn sha256(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_secret() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::Random(e.to_string()))?;
    Ok(hex(&bytes))
}

/// Whether `secret` has the shape of a token (`vgl_` and 64 lower-case hex digits): only such a
/// string is worth a look in the store.
fn well_formed_token(secret: &str) -> bool {
    secret.strip_prefix(TOKEN_PREFIX).is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Whether `secret` has the shape of a session secret (64 lower-case hex digits).
fn well_formed_session(secret: &str) -> bool {
    secret.len() == 64
        && secret
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A fresh token of `role`: its record (the hash, never the secret) and the secret.
fn new_token(role: Role, label: &str) -> Result<(TokenRecord, String)> {
    let secret = format!("{TOKEN_PREFIX}{}", random_secret()?);
    let hash = sha256(&secret);
    let record = TokenRecord {
        id: hex(&hash[..6]),
        hash,
        role,
        label: label.to_owned(),
        created: Utc::now(),
        revoked: None,
    };
    Ok((record, secret))
}

fn principal_of(record: &TokenRecord) -> Principal {
    Principal {
        role: record.role,
        token_id: record.id.clone(),
        label: record.label.clone(),
    }
}

impl Auth {
    /// Loads every live token from `store` (sessions are read when first presented).
    pub async fn load(store: Store) -> Result<Auth> {
        let tokens = Self::live_tokens(&store).await?;
        Ok(Auth {
            writes: tokio::sync::Mutex::new(()),
            tokens: RwLock::new(tokens),
            sessions: RwLock::new(HashMap::new()),
            revocations: std::sync::Mutex::new(HashMap::new()),
            store,
        })
    }

    async fn live_tokens(store: &Store) -> Result<HashMap<[u8; 32], Principal>> {
        Ok(store
            .tokens()
            .await?
            .iter()
            .filter(|t| t.revoked.is_none())
            .map(|t| (t.hash, principal_of(t)))
            .collect())
    }

    /// Re-reads the token table, so that tokens revoked by another process (the `vigil token`
    /// command) stop working and close their connections; forgets expired sessions. Tokens
    /// minted elsewhere need no reload: they are found in the store when first presented.
    pub async fn reload(&self) -> Result<()> {
        let _serial = self.writes.lock().await;
        let fresh = Self::live_tokens(&self.store).await?;
        let live_ids: std::collections::HashSet<&str> =
            fresh.values().map(|p| p.token_id.as_str()).collect();
        let now = Utc::now();
        write(&self.sessions)
            .retain(|_, (p, expires)| *expires > now && live_ids.contains(p.token_id.as_str()));
        let gone: Vec<String> = lock(&self.revocations)
            .keys()
            .filter(|id| !live_ids.contains(id.as_str()))
            .cloned()
            .collect();
        drop(live_ids);
        *write(&self.tokens) = fresh;
        for id in gone {
            self.fire(&id);
        }
        self.store.delete_expired_sessions(now).await?;
        Ok(())
    }

    /// Whether any token exists, revoked or not (a fresh install has none).
    pub async fn is_empty(&self) -> Result<bool> {
        Ok(self.store.tokens().await?.is_empty())
    }

    /// Mints a token; returns its record and the secret, which is shown once and never stored.
    pub async fn create_token(&self, role: Role, label: &str) -> Result<(TokenRecord, String)> {
        let _serial = self.writes.lock().await;
        let (record, secret) = new_token(role, label)?;
        self.store.insert_token(&record).await?;
        write(&self.tokens).insert(record.hash, principal_of(&record));
        Ok((record, secret))
    }

    /// On a database with no token at all, mints the first admin token and returns its secret
    /// (shown once). Atomic across nodes: when several start at once on one shared database,
    /// exactly one of them mints it.
    pub async fn first_admin(&self) -> Result<Option<String>> {
        let _serial = self.writes.lock().await;
        let (record, secret) = new_token(Role::Admin, "first admin")?;
        if !self.store.insert_first_admin(&record).await? {
            return Ok(None);
        }
        write(&self.tokens).insert(record.hash, principal_of(&record));
        Ok(Some(secret))
    }

    /// Revokes the token with this id, ends its sessions, and closes every connection opened
    /// with it (their [`Revocation`] fires).
    pub async fn revoke(&self, id: &str) -> Result<()> {
        let _serial = self.writes.lock().await;
        if !self.store.revoke_token(id, Utc::now()).await? {
            return Err(Error::UnknownToken(id.to_owned()));
        }
        self.forget_revoked(id);
        Ok(())
    }

    /// Forgets a token revoked elsewhere (by another node, which said so on the cluster's
    /// control channel) at once: its sessions end and its connections here close.
    pub fn forget_revoked(&self, id: &str) {
        write(&self.tokens).retain(|_, p| p.token_id != id);
        write(&self.sessions).retain(|_, (p, _)| p.token_id != id);
        self.fire(id);
    }

    fn fire(&self, token_id: &str) {
        if let Some(signal) = lock(&self.revocations).remove(token_id) {
            signal.cancel();
        }
    }

    /// The signal that fires when `principal`'s token is revoked; already fired when it is not
    /// live now. A connection takes it once it knows who is on the other end.
    pub fn revocation(&self, principal: &Principal) -> Revocation {
        let live = read(&self.tokens)
            .values()
            .any(|p| p.token_id == principal.token_id);
        if !live {
            let fired = CancellationToken::new();
            fired.cancel();
            return fired;
        }
        lock(&self.revocations)
            .entry(principal.token_id.clone())
            .or_default()
            .clone()
    }

    /// Every token (never the secrets).
    pub async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        self.store.tokens().await
    }

    /// Who holds this token, if this process already knows it live (memory only, never the
    /// store): for cheap checks that may err towards "unknown", such as which admission budget
    /// a handshake waits in.
    pub fn known_token(&self, secret: &str) -> Option<Principal> {
        if !well_formed_token(secret) {
            return None;
        }
        read(&self.tokens).get(&sha256(secret)).cloned()
    }

    /// Who this session cookie belongs to, if this process already knows it live (memory only).
    pub fn known_session(&self, secret: &str) -> Option<Principal> {
        if !well_formed_session(secret) {
            return None;
        }
        let now = Utc::now();
        read(&self.sessions)
            .get(&sha256(secret))
            .filter(|(_, expires)| *expires > now)
            .map(|(principal, _)| principal.clone())
    }

    /// Who holds this token, if it is live. A token this process has not seen (minted by
    /// another process a moment ago) is looked up in the store; when that lookup fails, the
    /// token counts as unknown (see [`Auth::check_token`] to tell the two apart).
    pub async fn verify_token(&self, secret: &str) -> Option<Principal> {
        self.check_token(secret).await.unwrap_or_else(|err| {
            tracing::warn!(error = %err, "looking a token up failed");
            None
        })
    }

    /// Like [`Auth::verify_token`], but a token this process does not know while the store
    /// cannot be asked (the shared database is restarting) is an error, not an unknown token:
    /// the caller may answer "try again" (503) rather than "invalid token" (401), which would
    /// make a client such as `vigil agent` give its token up. Tokens known here answer from
    /// memory, store or no store.
    pub async fn check_token(&self, secret: &str) -> Result<Option<Principal>> {
        if !well_formed_token(secret) {
            return Ok(None);
        }
        let hash = sha256(secret);
        if let Some(principal) = read(&self.tokens).get(&hash) {
            return Ok(Some(principal.clone()));
        }
        let _serial = self.writes.lock().await;
        let Some(record) = self.store.token_by_hash(&hash).await? else {
            return Ok(None);
        };
        if record.revoked.is_some() {
            return Ok(None);
        }
        let principal = principal_of(&record);
        write(&self.tokens).insert(hash, principal.clone());
        Ok(Some(principal))
    }

    /// Opens a session for `principal`; returns the cookie secret. A token keeps at most
    /// [`MAX_SESSIONS_PER_TOKEN`] sessions: the one that expires first makes room.
    pub async fn create_session(
        &self,
        principal: &Principal,
        ttl: std::time::Duration,
    ) -> Result<String> {
        let _serial = self.writes.lock().await;
        let secret = random_secret()?;
        let hash = sha256(&secret);
        let expires =
            Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(12));
        self.store
            .insert_session(&SessionRecord {
                hash,
                token_id: principal.token_id.clone(),
                expires,
            })
            .await?;
        let ended = self
            .store
            .trim_sessions(&principal.token_id, MAX_SESSIONS_PER_TOKEN)
            .await?;
        let mut sessions = write(&self.sessions);
        for old in &ended {
            sessions.remove(old);
        }
        sessions.insert(hash, (principal.clone(), expires));
        Ok(secret)
    }

    /// Who this session cookie belongs to, if it is live. A session this process has not seen
    /// is looked up in the store.
    pub async fn verify_session(&self, secret: &str) -> Option<Principal> {
        if !well_formed_session(secret) {
            return None;
        }
        let hash = sha256(secret);
        let now = Utc::now();
        if let Some((principal, expires)) = read(&self.sessions).get(&hash) {
            return (*expires > now).then(|| principal.clone());
        }
        let _serial = self.writes.lock().await;
        let record = match self.store.session_by_hash(&hash, now).await {
            Ok(record) => record?,
            Err(err) => {
                tracing::warn!(error = %err, "looking a session up failed");
                return None;
            }
        };
        let principal = read(&self.tokens)
            .values()
            .find(|p| p.token_id == record.token_id)
            .cloned()?;
        write(&self.sessions).insert(hash, (principal.clone(), record.expires));
        Some(principal)
    }

    /// Ends a session.
    pub async fn end_session(&self, secret: &str) -> Result<()> {
        let _serial = self.writes.lock().await;
        let hash = sha256(secret);
        write(&self.sessions).remove(&hash);
        self.store.delete_session(&hash).await
    }
}

// The maps hold plain data and are never left half-updated, so a poisoned lock is still sound.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tokens_verify_until_revoked_and_survive_a_reload() {
        let store = Store::open_in_memory().unwrap();
        let auth = Auth::load(store.clone()).await.unwrap();
        assert!(auth.is_empty().await.unwrap());
        let (record, secret) = auth.create_token(Role::Operator, "ops").await.unwrap();
        assert!(secret.starts_with(TOKEN_PREFIX) && secret.len() == 68);
        assert_eq!(
            auth.verify_token(&secret).await.unwrap().role,
            Role::Operator
        );
        assert!(auth.verify_token("vgl_nope").await.is_none());
        assert!(
            auth.verify_token(&secret[4..]).await.is_none(),
            "the prefix is part of the token"
        );

        let reloaded = Auth::load(store.clone()).await.unwrap();
        assert_eq!(
            reloaded.verify_token(&secret).await.unwrap().token_id,
            record.id
        );

        let session = reloaded
            .create_session(
                &reloaded.verify_token(&secret).await.unwrap(),
                std::time::Duration::from_secs(60),
            )
            .await
            .unwrap();
        assert!(reloaded.verify_session(&session).await.is_some());
        reloaded.revoke(&record.id).await.unwrap();
        assert!(reloaded.verify_token(&secret).await.is_none());
        assert!(
            reloaded.verify_session(&session).await.is_none(),
            "revoking a token ends its sessions"
        );
        assert!(matches!(
            reloaded.revoke(&record.id).await,
            Err(Error::UnknownToken(_))
        ));
        assert!(
            Auth::load(store)
                .await
                .unwrap()
                .verify_token(&secret)
                .await
                .is_none()
        );
    }

    #[test]
    fn the_role_ladder() {
        let p = |role| Principal {
            role,
            token_id: "x".into(),
            label: String::new(),
        };
        assert!(p(Role::Admin).is_at_least(Role::Operator));
        assert!(!p(Role::Viewer).is_at_least(Role::Operator));
        assert!(!p(Role::Agent).is_at_least(Role::Viewer));
    }
}
