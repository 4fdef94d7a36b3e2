//! The error type of the vulnerability database.

use std::path::PathBuf;

/// Everything that can go wrong importing into or reading the vulnerability database.
///
/// An import that fails keeps every batch committed before the failure; rerunning it ends in
/// the same state as an uninterrupted run (records are upserted).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VulnDbError {
    /// A file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The content is none of the formats the importer knows.
    #[error(
        "unrecognised input: expected NVD CVE JSON 2.0, an OSV record (.json, a directory, all.zip), \
         the CISA KEV catalog (JSON or CSV) or a FIRST EPSS CSV; {detail}"
    )]
    UnknownFormat {
        /// What the start of the input looked like.
        detail: String,
    },
    /// The input has the right format but broken content (bad JSON, a missing field, a bad
    /// number).
    #[error("{format} input is malformed: {detail}")]
    Malformed {
        /// The detected format.
        format: &'static str,
        /// What is wrong, with a position when there is one.
        detail: String,
    },
    /// The SQLite database failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A zip archive (OSV all.zip) could not be read.
    #[error("zip archive: {0}")]
    Zip(String),
    /// The database was written by an incompatible schema version.
    #[error(
        "the database has schema version {found}, this build reads {expected}; re-import into a new data directory"
    )]
    Schema {
        /// Version found in the file.
        found: i64,
        /// Version this build writes.
        expected: i64,
    },
    /// A service description the matcher cannot use.
    #[error("cannot match this service: {0}")]
    Query(String),
}

/// `Result` with [`VulnDbError`].
pub type Result<T, E = VulnDbError> = std::result::Result<T, E>;
