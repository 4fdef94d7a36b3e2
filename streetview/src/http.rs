//! What the three HTTP clients share: base URLs, one GET, the rate-limit and error mapping.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use crate::error::{Error, Result};

/// Default timeout of every client built by this crate.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// Most bytes of an error body kept for a message.
const ERROR_BODY_CAP: usize = 2_048;

/// Validates a base URL (`http` or `https`, no query or fragment) and returns it without a
/// trailing `/`, ready for `format!("{base}{path}")`.
pub(crate) fn base_url(parameter: &'static str, base: &str) -> Result<String> {
    let parsed = url::Url::parse(base.trim())
        .map_err(|e| Error::invalid(parameter, format!("{base:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Error::invalid(
            parameter,
            format!("{base:?} is not http or https"),
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(Error::invalid(
            parameter,
            format!("{base:?} must not have a query or fragment"),
        ));
    }
    if parsed.cannot_be_a_base() || parsed.host_str().is_none() {
        return Err(Error::invalid(parameter, format!("{base:?} has no host")));
    }
    Ok(parsed.as_str().trim_end_matches('/').to_owned())
}

/// Like [`base_url`], but only scheme, host and port: for Google, whose signature covers the
/// path, so the path must be exactly Google's.
pub(crate) fn origin(parameter: &'static str, base: &str) -> Result<String> {
    let base = base_url(parameter, base)?;
    let parsed = url::Url::parse(&base).map_err(|e| Error::invalid(parameter, e.to_string()))?;
    if parsed.path() != "/" && !parsed.path().is_empty() {
        return Err(Error::invalid(
            parameter,
            format!(
                "{base:?} must be an origin such as https://maps.googleapis.com, without a path"
            ),
        ));
    }
    Ok(base)
}

/// How a provider client connects. Every client of this crate takes one.
///
/// ```
/// use streetview::ClientConfig;
/// // Point a client at a local mock, a proxy or another instance:
/// let config = ClientConfig::default().with_base_url("http://127.0.0.1:8080");
/// assert_eq!(config.timeout, std::time::Duration::from_secs(20));
/// ```
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Where the provider's API lives. `None` (the default) means the provider's public
    /// endpoint: `https://maps.googleapis.com` (an origin only: Google signs the path),
    /// `https://graph.mapillary.com`, `https://api.panoramax.xyz/api` (the meta-catalogue).
    pub base_url: Option<String>,
    /// Timeout of each request, 20 s by default. Ignored when `http` is given.
    pub timeout: Duration,
    /// A ready `reqwest::Client` to share (its own timeout and TLS settings apply); by
    /// default each provider client builds its own.
    pub http: Option<reqwest::Client>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            base_url: None,
            timeout: DEFAULT_TIMEOUT,
            http: None,
        }
    }
}

impl ClientConfig {
    /// The default config with another base URL.
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = Some(base_url.into());
        self
    }

    /// The HTTP client: the given one, or a new one with `timeout`.
    pub(crate) fn client(&self) -> Result<reqwest::Client> {
        if let Some(http) = &self.http {
            return Ok(http.clone());
        }
        reqwest::Client::builder()
            .timeout(self.timeout)
            .user_agent(concat!("vigil-streetview/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| Error::Http {
                provider: "streetview",
                endpoint: "client setup".to_owned(),
                source: source.without_url(),
            })
    }
}

/// An answer read in full.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Vec<u8>,
}

/// Sends a GET and reads the whole answer. HTTP 429 becomes [`Error::RateLimited`]; transport
/// failures become [`Error::Http`] with the URL (which may hold a key) removed. `endpoint` is
/// what errors and logs show instead of the URL.
pub(crate) async fn get(
    client: &reqwest::Client,
    provider: &'static str,
    endpoint: &str,
    url: &str,
    authorization: Option<&str>,
) -> Result<Answer> {
    let transport = |source: reqwest::Error| Error::Http {
        provider,
        endpoint: endpoint.to_owned(),
        source: source.without_url(),
    };
    let mut request = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json");
    if let Some(value) = authorization {
        let mut value = reqwest::header::HeaderValue::from_str(value)
            .map_err(|_| Error::invalid("access token", "not a valid HTTP header value"))?;
        value.set_sensitive(true);
        request = request.header(reqwest::header::AUTHORIZATION, value);
    }
    let response = request.send().await.map_err(transport)?;
    let status = response.status();
    tracing::debug!(provider, endpoint, status = status.as_u16(), "answer");
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Err(Error::RateLimited {
            provider,
            retry_after: retry_after(response.headers()),
        });
    }
    let body = response.bytes().await.map_err(transport)?.to_vec();
    Ok(Answer { status, body })
}

/// Seconds of a `Retry-After` header (the HTTP-date form is ignored).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Parses a JSON body into `T`, mapping failure to [`Error::Decode`].
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    provider: &'static str,
    endpoint: &str,
    body: &[u8],
) -> Result<T> {
    serde_json::from_slice(body).map_err(|source| Error::Decode {
        provider,
        endpoint: endpoint.to_owned(),
        source,
    })
}

/// The start of a body as text, for an error message when nothing better is known.
pub(crate) fn body_snippet(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(&body[..body.len().min(ERROR_BODY_CAP)]);
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert_eq!(
            base_url("b", "https://api.panoramax.xyz/api/").unwrap(),
            "https://api.panoramax.xyz/api"
        );
        assert_eq!(
            base_url("b", "http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert!(base_url("b", "ftp://x").is_err());
        assert!(base_url("b", "nonsense").is_err());
        assert!(base_url("b", "https://x/?a=1").is_err());
        assert_eq!(
            origin("b", "https://maps.googleapis.com/").unwrap(),
            "https://maps.googleapis.com"
        );
        assert!(origin("b", "https://example.com/proxy").is_err());
    }

    #[test]
    fn retry_after_seconds() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, "30".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(30)));
        headers.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), None);
    }
}
