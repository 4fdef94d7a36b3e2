//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong in `geo-locate`.
///
/// Provider errors carry the provider's own message so that a user can see what WiGLE or
/// OpenCellID said; I/O errors carry the path they concern.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A MAC address could not be parsed.
    #[error("invalid MAC address {input:?}: {reason}")]
    InvalidMac {
        /// The text that was given.
        input: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A value given by the caller is not usable (a cell key out of range, a bad option).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The locator or a client is not configured for what was asked (for example a missing API key).
    #[error("configuration error: {0}")]
    Config(String),
    /// Reading or writing a file failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done (`"open"`, `"write"`, ...).
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An offline database file is not in the expected format (wrong magic, truncated).
    #[error("corrupt database file {}: {reason}", path.display())]
    CorruptDatabase {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The local cache (SQLite) failed.
    #[error("cache: {0}")]
    Cache(#[from] rusqlite::Error),
    /// The HTTP request to a provider failed (connection, timeout, TLS).
    #[error("{provider} request to {endpoint} failed: {source}")]
    Http {
        /// `"WiGLE"` or `"OpenCellID"`.
        provider: &'static str,
        /// The endpoint (`network/search`, `cell/get`); never the URL, which may hold a key.
        endpoint: &'static str,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// A provider answered with something that does not decode as its documented shape.
    #[error("{provider} answered with an unexpected body: {message}")]
    Decode {
        /// `"WiGLE"` or `"OpenCellID"`.
        provider: &'static str,
        /// What failed to decode.
        message: String,
    },
    /// The provider's quota is used up (WiGLE "too many queries today", OpenCellID code 6, HTTP 429).
    /// Back off; do not retry today.
    #[error("{provider} quota exhausted: {message}")]
    QuotaExhausted {
        /// `"WiGLE"` or `"OpenCellID"`.
        provider: &'static str,
        /// The provider's message.
        message: String,
    },
    /// The provider rejected the credentials or API key.
    #[error("{provider} rejected the credentials: {message}")]
    Unauthorized {
        /// `"WiGLE"` or `"OpenCellID"`.
        provider: &'static str,
        /// The provider's message.
        message: String,
    },
    /// Any other error reported by a provider.
    #[error("{provider} error (status {status}, code {code:?}): {message}")]
    Provider {
        /// `"WiGLE"` or `"OpenCellID"`.
        provider: &'static str,
        /// The HTTP status.
        status: u16,
        /// The provider's error code, when it sends one.
        code: Option<i64>,
        /// The provider's message.
        message: String,
    },
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
