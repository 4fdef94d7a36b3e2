//! The Street View Image Metadata API: is there a panorama here, where, and from when?
//!
//! Metadata requests are free and consume no quota ("Static Street View Metadata", an
//! Essentials SKU, free and unlimited), so check metadata before paying for an image. Google
//! answers HTTP 200 even on errors; the `status` field says what happened.
//!
//! [`MetadataClient::lookup`] returns `Ok` for `OK`, `ZERO_RESULTS` (no panorama near the
//! location, or a stale pano id: re-query by the stored coordinates) and `NOT_FOUND` (the address
//! could not be geocoded). `OVER_QUERY_LIMIT` becomes [`Error::RateLimited`]; `REQUEST_DENIED`,
//! `INVALID_REQUEST`, `UNKNOWN_ERROR` (retryable) and unknown statuses become
//! [`Error::Provider`] with Google's `error_message`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::coords::LatLng;
use crate::credentials::{ApiKey, SigningSecret};
use crate::error::{Error, Result};
use crate::http::{self, ClientConfig};
use crate::static_api::{GOOGLE_MAPS_API_BASE, METADATA_PATH, StaticRequest};

const PROVIDER: &str = "google";

/// The `status` of a metadata answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Status {
    /// `OK`: a panorama was found.
    Ok,
    /// `ZERO_RESULTS`: no panorama near the location, or the pano id is unknown.
    ZeroResults,
    /// `NOT_FOUND`: the address could not be geocoded.
    NotFound,
    /// `OVER_QUERY_LIMIT`.
    OverQueryLimit,
    /// `REQUEST_DENIED`: bad key, bad signature, or the API is not enabled.
    RequestDenied,
    /// `INVALID_REQUEST`.
    InvalidRequest,
    /// `UNKNOWN_ERROR`: a server error; retrying may work.
    UnknownError,
    /// A status this crate does not know yet, kept verbatim.
    Unknown(String),
}

impl Status {
    /// The wire value.
    pub fn as_str(&self) -> &str {
        match self {
            Status::Ok => "OK",
            Status::ZeroResults => "ZERO_RESULTS",
            Status::NotFound => "NOT_FOUND",
            Status::OverQueryLimit => "OVER_QUERY_LIMIT",
            Status::RequestDenied => "REQUEST_DENIED",
            Status::InvalidRequest => "INVALID_REQUEST",
            Status::UnknownError => "UNKNOWN_ERROR",
            Status::Unknown(other) => other,
        }
    }

    fn from_wire(text: &str) -> Self {
        match text {
            "OK" => Status::Ok,
            "ZERO_RESULTS" => Status::ZeroResults,
            "NOT_FOUND" => Status::NotFound,
            "OVER_QUERY_LIMIT" => Status::OverQueryLimit,
            "REQUEST_DENIED" => Status::RequestDenied,
            "INVALID_REQUEST" => Status::InvalidRequest,
            "UNKNOWN_ERROR" => Status::UnknownError,
            other => Status::Unknown(other.to_owned()),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Status {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(Status::from_wire(&text))
    }
}

impl Serialize for Status {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A position as Google writes it in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
pub struct Location {
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lng: f64,
}

/// A metadata answer. Only `status` is always there.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Metadata {
    /// What happened.
    pub status: Status,
    /// Id of the panorama found. Ids drift over time: keep the coordinates too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pano_id: Option<String>,
    /// Where the panorama actually is (not the requested point).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// Capture month, `YYYY-MM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// Copyright line to display with the image (`© Google`, or the photographer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copyright: Option<String>,
    /// Google's explanation, mostly with `REQUEST_DENIED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

impl Metadata {
    /// Metadata lookups cost nothing and use no quota: never count them in a bill.
    /// Agrees with [`crate::cost::Sku::StaticStreetViewMetadata`].
    pub const fn is_free() -> bool {
        true
    }

    /// Whether a panorama was found.
    pub fn has_panorama(&self) -> bool {
        self.status == Status::Ok
    }

    /// The panorama's position, validated (`None` when absent or out of range).
    pub fn position(&self) -> Option<LatLng> {
        self.location.and_then(|l| LatLng::new(l.lat, l.lng).ok())
    }

    /// The capture year and month parsed from `date`.
    pub fn capture_month(&self) -> Option<(i32, u32)> {
        let (year, month) = self.date.as_deref()?.split_once('-')?;
        let year = year.parse().ok()?;
        let month = month.get(..2).unwrap_or(month).parse().ok()?;
        (1..=12).contains(&month).then_some((year, month))
    }
}

/// Looks up Street View metadata.
#[derive(Debug, Clone)]
pub struct MetadataClient {
    http: reqwest::Client,
    base: String,
    key: ApiKey,
    secret: Option<SigningSecret>,
}

impl MetadataClient {
    /// A client for `key`, signing every request with `secret` when one is given. The
    /// config's base URL must be an origin (scheme, host, port): the signature covers the path.
    pub fn new(key: ApiKey, secret: Option<SigningSecret>, config: ClientConfig) -> Result<Self> {
        let base = http::origin(
            "base url",
            config.base_url.as_deref().unwrap_or(GOOGLE_MAPS_API_BASE),
        )?;
        Ok(Self {
            http: config.client()?,
            base,
            key,
            secret,
        })
    }

    /// The URL [`MetadataClient::lookup`] would fetch (it holds the key: do not log it).
    pub fn url(&self, request: &StaticRequest) -> Result<String> {
        request.metadata_url_with_base(&self.base, &self.key, self.secret.as_ref())
    }

    /// Asks whether there is a panorama for `request` (its size and angles are not sent).
    #[tracing::instrument(skip_all, fields(target = ?request.target()))]
    pub async fn lookup(&self, request: &StaticRequest) -> Result<Metadata> {
        let url = self.url(request)?;
        let answer = http::get(&self.http, PROVIDER, METADATA_PATH, &url, None).await?;
        if !answer.status.is_success() {
            return Err(Error::Provider {
                provider: PROVIDER,
                endpoint: METADATA_PATH.to_owned(),
                code: format!("HTTP {}", answer.status.as_u16()),
                message: http::body_snippet(&answer.body),
            });
        }
        let metadata: Metadata = http::decode(PROVIDER, METADATA_PATH, &answer.body)?;
        match metadata.status {
            Status::Ok | Status::ZeroResults | Status::NotFound => Ok(metadata),
            Status::OverQueryLimit => Err(Error::RateLimited {
                provider: PROVIDER,
                retry_after: None,
            }),
            ref status => Err(Error::Provider {
                provider: PROVIDER,
                endpoint: METADATA_PATH.to_owned(),
                code: status.to_string(),
                message: metadata.error_message.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example answer of Google's OpenAPI specification.
    const OPENAPI_EXAMPLE: &str = r#"{"copyright":"© Google","date":"2014-04","location":{"lat":46.41434210086409,"lng":10.01400595356193},"pano_id":"vPnURflnc8AZu5NMLYRddw","status":"OK"}"#;

    #[test]
    fn parses_the_documented_answer() {
        let m: Metadata = serde_json::from_str(OPENAPI_EXAMPLE).unwrap();
        assert_eq!(m.status, Status::Ok);
        assert!(m.has_panorama());
        assert_eq!(m.pano_id.as_deref(), Some("vPnURflnc8AZu5NMLYRddw"));
        assert_eq!(m.copyright.as_deref(), Some("© Google"));
        assert_eq!(m.capture_month(), Some((2014, 4)));
        let at = m.position().unwrap();
        assert_eq!(at.lat(), 46.41434210086409);
        assert_eq!(at.lng(), 10.01400595356193);
        assert_eq!(m.error_message, None);
    }

    #[test]
    fn zero_results_has_nothing_else() {
        let m: Metadata = serde_json::from_str(r#"{"status":"ZERO_RESULTS"}"#).unwrap();
        assert_eq!(
            m,
            Metadata {
                status: Status::ZeroResults,
                pano_id: None,
                location: None,
                date: None,
                copyright: None,
                error_message: None,
            }
        );
        assert!(!m.has_panorama());
        assert_eq!(m.position(), None);
        assert_eq!(m.capture_month(), None);
    }

    #[test]
    fn every_status_and_an_unknown_one() {
        for wire in [
            "OK",
            "ZERO_RESULTS",
            "NOT_FOUND",
            "OVER_QUERY_LIMIT",
            "REQUEST_DENIED",
            "INVALID_REQUEST",
            "UNKNOWN_ERROR",
            "SOMETHING_NEW",
        ] {
            let m: Metadata = serde_json::from_str(&format!(r#"{{"status":"{wire}"}}"#)).unwrap();
            assert_eq!(m.status.as_str(), wire);
            assert_eq!(serde_json::to_value(&m.status).unwrap(), wire);
        }
        let m: Metadata = serde_json::from_str(r#"{"status":"SOMETHING_NEW"}"#).unwrap();
        assert_eq!(m.status, Status::Unknown("SOMETHING_NEW".into()));
    }

    #[test]
    fn metadata_is_free() {
        assert!(Metadata::is_free());
        assert!(crate::cost::Sku::StaticStreetViewMetadata.is_free());
    }

    #[test]
    fn client_refuses_a_base_with_a_path() {
        let key = ApiKey::new("k").unwrap();
        let config = ClientConfig::default().with_base_url("https://example.com/google");
        assert!(MetadataClient::new(key, None, config).is_err());
    }
}
