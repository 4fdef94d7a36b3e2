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
    /// Whether this principal is at least `role` on the viewer < operator < admin ladder (agents
    /// are on no ladder: only `Role::Agent` admits them).
    pub fn is_at_least(&self, role: Role) -> bool {
        event_bus::Access::at_least(role).allows(self.role)
    }
}

/// The live token and session tables, loaded from the store and written through to it.
#[derive(Debug)]
pub struct Auth {
    store: Store,
    /// Serialises changes (store, then memory) with [`Auth::reload`], so a reload that read the
    /// store just before a change can never overwrite the change in memory.
    writes: std::sync::Mutex<()>,
    tokens: RwLock<HashMap<[u8; 32], Principal>>,
    sessions: RwLock<HashMap<[u8; 32], LiveSession>>,
}

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

impl Auth {
    /// Loads every live token and unexpired session from `store`.
    pub fn load(store: Store) -> Result<Auth> {
        let records = store.tokens()?;
        let live: HashMap<[u8; 32], Principal> = records
            .iter()
            .filter(|t| t.revoked.is_none())
            .map(|t| {
                let principal = Principal {
                    role: t.role,
                    token_id: t.id.clone(),
                    label: t.label.clone(),
                };
                (t.hash, principal)
            })
            .collect();
        let by_id: HashMap<&str, &Principal> =
            live.values().map(|p| (p.token_id.as_str(), p)).collect();
        let sessions = store
            .sessions(Utc::now())?
            .into_iter()
            .filter_map(|s| {
                by_id
                    .get(s.token_id.as_str())
                    .map(|p| (s.hash, ((*p).clone(), s.expires)))
            })
            .collect();
        Ok(Auth {
            writes: std::sync::Mutex::new(()),
            tokens: RwLock::new(live),
            sessions: RwLock::new(sessions),
            store,
        })
    }

    /// Re-reads tokens and sessions from the store, so changes made by another process (the
    /// `vigil token` command) take effect.
    pub fn reload(&self) -> Result<()> {
        let _serial = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = Auth::load(self.store.clone())?;
        let tokens = fresh.tokens.into_inner().unwrap_or_else(|p| p.into_inner());
        let sessions = fresh
            .sessions
            .into_inner()
            .unwrap_or_else(|p| p.into_inner());
        *write(&self.tokens) = tokens;
        *write(&self.sessions) = sessions;
        Ok(())
    }

    /// Whether any token exists, revoked or not (a fresh install has none).
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.store.tokens()?.is_empty())
    }

    /// Mints a token; returns its record and the secret, which is shown once and never stored.
    pub fn create_token(&self, role: Role, label: &str) -> Result<(TokenRecord, String)> {
        let _serial = self.writes.lock().unwrap_or_else(|p| p.into_inner());
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
        self.store.insert_token(&record)?;
        let principal = Principal {
            role,
            token_id: record.id.clone(),
            label: record.label.clone(),
        };
        write(&self.tokens).insert(hash, principal);
        Ok((record, secret))
    }

    /// Revokes the token with this id and ends its sessions.
    pub fn revoke(&self, id: &str) -> Result<()> {
        let _serial = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        if !self.store.revoke_token(id, Utc::now())? {
            return Err(Error::UnknownToken(id.to_owned()));
        }
        write(&self.tokens).retain(|_, p| p.token_id != id);
        write(&self.sessions).retain(|_, (p, _)| p.token_id != id);
        Ok(())
    }

    /// Every token (never the secrets).
    pub fn tokens(&self) -> Result<Vec<TokenRecord>> {
        self.store.tokens()
    }

    /// Who holds this token, if it is live.
    pub fn verify_token(&self, secret: &str) -> Option<Principal> {
        if !secret.starts_with(TOKEN_PREFIX) {
            return None;
        }
        read(&self.tokens).get(&sha256(secret)).cloned()
    }

    /// Opens a session for `principal`; returns the cookie secret.
    pub fn create_session(
        &self,
        principal: &Principal,
        ttl: std::time::Duration,
    ) -> Result<String> {
        let _serial = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        let secret = random_secret()?;
        let hash = sha256(&secret);
        let expires =
            Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(12));
        self.store.insert_session(&SessionRecord {
            hash,
            token_id: principal.token_id.clone(),
            expires,
        })?;
        write(&self.sessions).insert(hash, (principal.clone(), expires));
        Ok(secret)
    }

    /// Who this session cookie belongs to, if it is live.
    pub fn verify_session(&self, secret: &str) -> Option<Principal> {
        let hash = sha256(secret);
        let sessions = read(&self.sessions);
        let (principal, expires) = sessions.get(&hash)?;
        (*expires > Utc::now()).then(|| principal.clone())
    }

    /// Ends a session.
    pub fn end_session(&self, secret: &str) -> Result<()> {
        let _serial = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        let hash = sha256(secret);
        write(&self.sessions).remove(&hash);
        self.store.delete_session(&hash)
    }
}

// The maps hold plain data and are never left half-updated, so a poisoned lock is still sound.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_until_revoked_and_survive_a_reload() {
        let store = Store::open_in_memory().unwrap();
        let auth = Auth::load(store.clone()).unwrap();
        assert!(auth.is_empty().unwrap());
        let (record, secret) = auth.create_token(Role::Operator, "ops").unwrap();
        assert!(secret.starts_with(TOKEN_PREFIX) && secret.len() == 68);
        assert_eq!(auth.verify_token(&secret).unwrap().role, Role::Operator);
        assert!(auth.verify_token("vgl_nope").is_none());
        assert!(
            auth.verify_token(&secret[4..]).is_none(),
            "the prefix is part of the token"
        );

        let reloaded = Auth::load(store.clone()).unwrap();
        assert_eq!(reloaded.verify_token(&secret).unwrap().token_id, record.id);

        let session = reloaded
            .create_session(
                &reloaded.verify_token(&secret).unwrap(),
                std::time::Duration::from_secs(60),
            )
            .unwrap();
        assert!(reloaded.verify_session(&session).is_some());
        reloaded.revoke(&record.id).unwrap();
        assert!(reloaded.verify_token(&secret).is_none());
        assert!(
            reloaded.verify_session(&session).is_none(),
            "revoking a token ends its sessions"
        );
        assert!(matches!(
            reloaded.revoke(&record.id),
            Err(Error::UnknownToken(_))
        ));
        assert!(Auth::load(store).unwrap().verify_token(&secret).is_none());
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
