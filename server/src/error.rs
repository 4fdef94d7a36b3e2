//! The server's error type, and how errors look on the wire.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// What can go wrong starting or running the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The data directory could not be created or used.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] rusqlite::Error),
    /// The event bus refused something.
    #[error(transparent)]
    Bus(#[from] event_bus::Error),
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// No token has that id.
    #[error("no token with id {0:?}")]
    UnknownToken(String),
    /// The operating system's random source failed.
    #[error("random source: {0}")]
    Random(String),
    /// A socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The shared PostgreSQL database failed or could not be reached (the message never holds
    /// the database URL or its password).
    #[error("postgres: {0}")]
    Postgres(String),
    /// A background database task was lost.
    #[error("database task failed: {0}")]
    Task(String),
    /// The cluster's Redis could not be reached or refused a command.
    #[error("cluster (Redis): {0}")]
    Cluster(String),
    /// The offline geolocation database (its overlay of observations) failed.
    #[error("geolocation database: {0}")]
    Geo(#[source] geo_locate::Error),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error answer of the REST API: an HTTP status and a JSON body
/// `{"error": {"code": "...", "message": "..."}}` whose `code` is stable.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable, machine-readable code.
    pub code: &'static str,
    /// A human-readable explanation.
    pub message: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorFields<'a>,
}

#[derive(Serialize)]
struct ErrorFields<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 401 `unauthenticated`.
    pub fn unauthenticated() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "a valid token is required: send `Authorization: Bearer TOKEN` or sign in with POST /api/session",
        )
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 500 `internal`, logging the cause (never sent to the client).
    pub fn internal(cause: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }
}

impl From<event_bus::Error> for ApiError {
    fn from(err: event_bus::Error) -> ApiError {
        match err {
            event_bus::Error::UnknownRoom(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_room", err.to_string())
            }
            event_bus::Error::InvalidName { .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_name", err.to_string())
            }
            event_bus::Error::InvalidEpoch(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_epoch", err.to_string())
            }
            // A shared bus whose store is away or saturated: the client may retry.
            event_bus::Error::Overloaded { .. }
            | event_bus::Error::Unavailable(_)
            | event_bus::Error::Unconfirmed(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "bus_unavailable",
                err.to_string(),
            ),
            other => ApiError::internal(&other),
        }
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> ApiError {
        match err {
            Error::UnknownToken(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_token", err.to_string())
            }
            Error::Bus(bus) => bus.into(),
            // The shared database is away (restarting, unreachable, out of connections): not a
            // fault of this server, and over once it is back, so the client may retry. The
            // cause is logged, never sent.
            Error::Postgres(_) => {
                tracing::warn!(error = %err, "the shared database failed a request");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    "the shared database is unavailable; try again",
                )
            }
            other => ApiError::internal(&other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorFields {
                code: self.code,
                message: &self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

/// The shape of [`ApiError`]'s body, for the OpenAPI document.
pub(crate) mod schema {
    use utoipa::ToSchema;

    /// The error body of every failing REST call.
    #[derive(Debug, ToSchema)]
    #[allow(dead_code)]
    pub struct ErrorBody {
        /// The error.
        error: ErrorFields,
    }

    /// A stable code and a human message.
    #[derive(Debug, ToSchema)]
    #[allow(dead_code)]
    pub struct ErrorFields {
        /// Stable, machine-readable (`unauthenticated`, `forbidden`, `out_of_scope`, ...).
        code: String,
        /// For people.
        message: String,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_outage_is_a_503_the_client_may_retry() {
        let api = ApiError::from(Error::Postgres(
            "error connecting to server: Connection refused (os error 111)".into(),
        ));
        assert_eq!(api.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(api.code, "storage_unavailable");
        assert!(
            !api.message.contains("Connection refused"),
            "the cause stays in the log: {}",
            api.message
        );
        // Other failures are still internal errors.
        let api = ApiError::from(Error::Task("lost".into()));
        assert_eq!(api.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
