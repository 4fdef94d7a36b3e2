//! The one error type of this crate.

use std::time::Duration;

/// Everything that can go wrong in this crate.
///
/// Input errors ([`Error::OutOfRange`], [`Error::NotFinite`], [`Error::Invalid`], ...) are raised
/// before any request is built, and name the parameter so that a command line can point at the
/// flag. Provider errors carry the provider's own words. No variant ever carries an API key, a
/// signing secret or an access token: request URLs in errors are reduced to their path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A number is outside the range the provider accepts. Never clamped silently.
    #[error("{parameter} must be in {range}, got {value}")]
    OutOfRange {
        /// The parameter, named as the provider (and the `vigil` command line) names it.
        parameter: &'static str,
        /// The accepted range, written as a Rust range (`-90..=90`) or in words.
        range: &'static str,
        /// The rejected value, as given.
        value: String,
    },

    /// A number is NaN or infinite.
    #[error("{parameter} must be a finite number, got {value}")]
    NotFinite {
        /// The parameter.
        parameter: &'static str,
        /// The rejected value.
        value: f64,
    },

    /// A value has the wrong shape (an empty id, a malformed secret, a bad base URL, ...).
    #[error("invalid {parameter}: {reason}")]
    Invalid {
        /// The parameter.
        parameter: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// A request needs one of several parameters and got none (or two that exclude each other).
    #[error("{0}")]
    Conflict(&'static str),

    /// A Mapillary `/images` bounding box is too big: the API wants `Δlon × Δlat < 0.01`.
    /// Split it with [`crate::mapillary::split_bbox`].
    #[error(
        "bbox area is {area:.6} square degrees; Mapillary accepts less than {max} (split it into tiles)"
    )]
    BboxTooLarge {
        /// `Δlon × Δlat` of the refused box.
        area: f64,
        /// The limit, [`crate::mapillary::MAX_BBOX_AREA`].
        max: f64,
    },

    /// Covering an area would take more requests than the caller allowed.
    #[error(
        "covering this area needs {needed} requests; the limit is {max} (use a smaller radius)"
    )]
    TooManyRequests {
        /// Requests needed.
        needed: usize,
        /// Requests allowed.
        max: usize,
    },

    /// The provider said "slow down": HTTP 429, Google's `OVER_QUERY_LIMIT`, or Mapillary's
    /// "application request limit reached". Back off before retrying.
    #[error("{provider} rate limit reached{}", retry_after.map(|d| format!(" (retry after {} s)", d.as_secs())).unwrap_or_default())]
    RateLimited {
        /// `google`, `mapillary` or `panoramax`.
        provider: &'static str,
        /// The `Retry-After` header, when the provider sent one.
        retry_after: Option<Duration>,
    },

    /// The provider answered with an error of its own (a non-OK Google status, a Mapillary
    /// Graph API error object, a Panoramax error message).
    #[error("{provider} error at {endpoint}: {code}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Provider {
        /// `google`, `mapillary` or `panoramax`.
        provider: &'static str,
        /// The path that was requested, without its query (which may hold credentials).
        endpoint: String,
        /// The provider's status or code (`REQUEST_DENIED`, `HTTP 401`, `190`, ...).
        code: String,
        /// The provider's message, if any.
        message: Option<String>,
    },

    /// The request could not be sent or the answer could not be read.
    #[error("request to {provider} {endpoint} failed: {source}")]
    Http {
        /// `google`, `mapillary` or `panoramax`.
        provider: &'static str,
        /// The path that was requested, without its query.
        endpoint: String,
        /// The transport error, with its URL removed.
        #[source]
        source: reqwest::Error,
    },

    /// The answer was not the JSON the provider documents.
    #[error("unexpected answer from {provider} {endpoint}: {source}")]
    Decode {
        /// `google`, `mapillary` or `panoramax`.
        provider: &'static str,
        /// The path that was requested, without its query.
        endpoint: String,
        /// What did not parse.
        #[source]
        source: serde_json::Error,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::OutOfRange`] for `value`.
    pub(crate) fn out_of_range(
        parameter: &'static str,
        range: &'static str,
        value: impl std::fmt::Display,
    ) -> Self {
        Error::OutOfRange {
            parameter,
            range,
            value: value.to_string(),
        }
    }

    /// An [`Error::Invalid`].
    pub(crate) fn invalid(parameter: &'static str, reason: impl Into<String>) -> Self {
        Error::Invalid {
            parameter,
            reason: reason.into(),
        }
    }
}

/// Checks that `value` is finite and inside `min..=max`.
pub(crate) fn check_range(
    parameter: &'static str,
    range: &'static str,
    value: f64,
    min: f64,
    max: f64,
) -> Result<f64> {
    if !value.is_finite() {
        return Err(Error::NotFinite { parameter, value });
    }
    if value < min || value > max {
        return Err(Error::out_of_range(parameter, range, value));
    }
    Ok(value)
}
