//! What the two provider clients share: client setup and one GET that reads the whole answer.

use std::time::Duration;

use crate::error::{Error, Result};

/// The default User-Agent: providers ask for one that names the client.
pub const DEFAULT_USER_AGENT: &str = concat!("vigil-geo-locate/", env!("CARGO_PKG_VERSION"));

/// The default request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

pub(crate) fn client(
    provider: &'static str,
    timeout: Duration,
    user_agent: &str,
) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(user_agent)
        .build()
        .map_err(|source| Error::Http {
            provider,
            endpoint: "client setup",
            source: source.without_url(),
        })
}

/// An answer read in full.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

pub(crate) async fn send(
    provider: &'static str,
    endpoint: &'static str,
    request: reqwest::RequestBuilder,
) -> Result<Answer> {
    let transport = |source: reqwest::Error| Error::Http {
        provider,
        endpoint,
        source: source.without_url(),
    };
    let response = request.send().await.map_err(transport)?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(transport)?.to_vec();
    Ok(Answer { status, body })
}

/// Joins a base URL (with or without a trailing slash) and a path.
pub(crate) fn join(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

/// A short, printable excerpt of a body for error messages.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let t = text.trim();
    if t.chars().count() > 200 {
        format!("{}…", t.chars().take(200).collect::<String>())
    } else {
        t.to_owned()
    }
}
