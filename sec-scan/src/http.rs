//! HTTP probe: status, `Server`, page title, and missing security headers.
//!
//! One `GET` over HTTP/1.1 with `Connection: close`, to the checked address (the `Host` header
//! carries the name, so there is no second DNS resolution). HTTPS uses the TLS check's
//! recording verifier, so a bad certificate does not hide the headers. Reads are capped in bytes
//! and time. Headers reported missing:
//!
//! | header | when |
//! |---|---|
//! | `strict-transport-security` | HTTPS responses only |
//! | `content-security-policy` | always |
//! | `x-content-type-options` | always |
//! | `x-frame-options` | unless the CSP sets `frame-ancestors` |

use std::net::SocketAddr;
use std::sync::LazyLock;
use std::time::Duration;

use regex::bytes::Regex;
use rustls::pki_types::ServerName;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{Error, Result};
use crate::finding::{Detail, Finding, printable, truncate};
use crate::scope::ScanHost;
use crate::tls::{TlsChecker, TlsConfig};

/// HTTP-probe settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Time limit for the whole exchange. Default 5 s.
    pub timeout: Duration,
    /// Most response bytes read. Default 64 KiB.
    pub max_bytes: usize,
    /// Path requested. Default `/`.
    pub path: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            max_bytes: 64 * 1024,
            path: "/".into(),
        }
    }
}

/// What the HTTP probe saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpReport {
    /// Status code.
    pub status: u16,
    /// `Server` header.
    pub server: Option<String>,
    /// Page title (whitespace collapsed, at most 200 characters).
    pub title: Option<String>,
    /// Security headers the response lacks (lower-case).
    pub missing_headers: Vec<String>,
    /// Whether HTTPS was used.
    pub https: bool,
}

impl HttpReport {
    /// The report as a finding.
    pub fn finding(&self, host: &ScanHost, port: u16) -> Finding {
        Finding {
            host: host.display_name(),
            addr: host.addr,
            port: Some(port),
            detail: Detail::Http {
                status: self.status,
                server: self.server.clone(),
                title: self.title.clone(),
                missing_header: self.missing_headers.clone(),
                https: self.https,
            },
        }
    }
}

/// Runs HTTP probes.
#[derive(Debug, Clone)]
pub struct HttpProbe {
    config: HttpConfig,
    tls: TlsChecker,
}

impl HttpProbe {
    /// A probe with `config`.
    pub fn new(config: HttpConfig) -> Result<Self> {
        if !config.path.starts_with('/') || config.path.bytes().any(|b| b <= b' ') {
            return Err(Error::Config(format!("bad HTTP path {:?}", config.path)));
        }
        Ok(Self {
            config,
            tls: TlsChecker::new(TlsConfig::default())?,
        })
    }

    /// Sends one `GET` to `host:port` (over TLS when `https`) and reads the answer.
    pub async fn probe(&self, host: &ScanHost, port: u16, https: bool) -> Result<HttpReport> {
        let addr = SocketAddr::new(host.addr, port);
        let authority = match (&host.name, host.addr) {
            (Some(n), _) => n.clone(),
            (None, std::net::IpAddr::V6(v6)) => format!("[{v6}]"),
            (None, ip) => ip.to_string(),
        };
        let default_port = if https { 443 } else { 80 };
        let host_header = if port == default_port {
            authority
        } else {
            format!("{authority}:{port}")
        };
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: vigil-scan\r\nAccept: */*\r\nConnection: close\r\n\r\n",
            self.config.path
        );
        let exchange = async {
            let tcp = TcpStream::connect(addr).await.map_err(|source| Error::Io {
                target: addr.to_string(),
                source,
            })?;
            if https {
                let name: ServerName<'static> = match &host.name {
                    Some(n) => {
                        ServerName::try_from(n.clone()).map_err(|e| Error::InvalidTarget {
                            input: n.clone(),
                            reason: e.to_string(),
                        })?
                    }
                    None => ServerName::IpAddress(host.addr.into()),
                };
                let stream = self
                    .tls
                    .recording_connector()?
                    .connect(name, tcp)
                    .await
                    .map_err(|e| Error::Tls {
                        target: addr.to_string(),
                        message: e.to_string(),
                    })?;
                send(stream, &request, self.config.max_bytes).await
            } else {
                send(tcp, &request, self.config.max_bytes).await
            }
            .map_err(|source| Error::Io {
                target: addr.to_string(),
                source,
            })
        };
        let raw = tokio::time::timeout(self.config.timeout, exchange)
            .await
            .map_err(|_| Error::Timeout {
                what: "HTTP probe",
                target: addr.to_string(),
                after: self.config.timeout,
            })??;
        parse_response(&raw, https).ok_or_else(|| Error::Io {
            target: addr.to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not an HTTP response: {}", truncate(&printable(&raw), 60)),
            ),
        })
    }
}

async fn send<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &str,
    cap: usize,
) -> std::io::Result<Vec<u8>> {
    stream.write_all(request.as_bytes()).await?;
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    while out.len() < cap {
        match stream.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n.min(cap - out.len())]),
            // A TLS peer that closes without close_notify still sent a full answer.
            Err(e) if !out.is_empty() && e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

static TITLE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?is)<title[^>]*>(.*?)</title>").expect("the title regex is valid")
});

/// Parses a raw HTTP/1.x response.
pub(crate) fn parse_response(raw: &[u8], https: bool) -> Option<HttpReport> {
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| (p, p + 4))
        .or_else(|| {
            raw.windows(2)
                .position(|w| w == b"\n\n")
                .map(|p| (p, p + 2))
        })
        .unwrap_or((raw.len(), raw.len()));
    let head = String::from_utf8_lossy(&raw[..head_end.0]);
    let mut lines = head.lines();
    let status_line = lines.next()?;
    let mut parts = status_line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    let status: u16 = parts.next()?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let csp = get("content-security-policy");
    let mut missing = Vec::new();
    if https && get("strict-transport-security").is_none() {
        missing.push("strict-transport-security".to_owned());
    }
    if csp.is_none() {
        missing.push("content-security-policy".to_owned());
    }
    if get("x-content-type-options").is_none() {
        missing.push("x-content-type-options".to_owned());
    }
    let frame_ancestors = csp
        .as_deref()
        .is_some_and(|c| c.to_ascii_lowercase().contains("frame-ancestors"));
    if get("x-frame-options").is_none() && !frame_ancestors {
        missing.push("x-frame-options".to_owned());
    }
    let body = &raw[head_end.1..];
    let title = TITLE.captures(body).and_then(|c| {
        let t = String::from_utf8_lossy(c.get(1)?.as_bytes());
        let t = t.split_whitespace().collect::<Vec<_>>().join(" ");
        (!t.is_empty()).then(|| truncate(&t, 200).into_owned())
    });
    Some(HttpReport {
        status,
        server: get("server"),
        title,
        missing_headers: missing,
        https,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_response() {
        let raw = b"HTTP/1.1 200 OK\r\nServer: nginx/1.14.0\r\nX-Frame-Options: DENY\r\n\r\n<html><head><TITLE>\n  Hello\n world </TITLE>";
        let r = parse_response(raw, true).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.server.as_deref(), Some("nginx/1.14.0"));
        assert_eq!(r.title.as_deref(), Some("Hello world"));
        assert_eq!(
            r.missing_headers,
            [
                "strict-transport-security",
                "content-security-policy",
                "x-content-type-options"
            ]
        );
    }

    #[test]
    fn csp_frame_ancestors_replaces_x_frame_options() {
        let raw = b"HTTP/1.0 404 Not Found\r\nContent-Security-Policy: default-src 'self'; frame-ancestors 'none'\r\nX-Content-Type-Options: nosniff\r\n\r\n";
        let r = parse_response(raw, false).unwrap();
        assert!(r.missing_headers.is_empty(), "{:?}", r.missing_headers);
        assert_eq!(r.title, None);
    }

    #[test]
    fn non_http_is_none() {
        assert!(parse_response(b"SSH-2.0-x\r\n", false).is_none());
        assert!(parse_response(b"", false).is_none());
        assert!(parse_response(b"HTTP/1.1 abc\r\n\r\n", false).is_none());
    }
}
