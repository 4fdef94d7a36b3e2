//! Opt-in unauthenticated-access and default-credential checks.
//!
//! These checks log in, or try to, so they run **only when a scan opts in**, only against
//! hosts of a [`ScanPlan`](crate::ScanPlan) (so in scope), and with a **hard cap on attempts**
//! per service ([`MAX_ATTEMPTS`], lower if configured). They are never a brute force: the
//! credential list is short and fixed, and the first success stops the check.
//!
//! | check | how | finding |
//! |---|---|---|
//! | anonymous FTP | `USER anonymous` / `PASS` → `230` | `access` / `anonymous-ftp` |
//! | Redis without auth | `PING` → `+PONG` | `access` / `redis-no-auth` |
//! | MongoDB without auth | `listDatabases` (OP_MSG) → a database list | `access` / `mongodb-no-auth` |
//! | Elasticsearch without auth | `GET /` → 200 with `cluster_name` | `access` / `elasticsearch-no-auth` |
//! | HTTP basic default credentials | `401` + `WWW-Authenticate: Basic` → try the list | `credential` |

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{Error, Result};
use crate::finding::{Detail, Finding, printable, truncate};
use crate::http::parse_response;
use crate::scope::ScanHost;

/// The most login attempts one check may make against one service, whatever the config says.
pub const MAX_ATTEMPTS: usize = 10;

/// Default credentials tried against HTTP basic authentication, in order.
pub const DEFAULT_CREDENTIALS: [(&str, &str); 8] = [
    ("admin", "admin"),
    ("admin", "password"),
    ("admin", ""),
    ("root", "root"),
    ("guest", "guest"),
    ("user", "user"),
    ("admin", "1234"),
    ("tomcat", "tomcat"),
];

/// Settings of the access checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessConfig {
    /// Time limit per connection. Default 3 s.
    pub timeout: Duration,
    /// Login attempts per service; capped at [`MAX_ATTEMPTS`]. Default 8.
    pub max_attempts: usize,
    /// HTTP path for the basic-auth check. Default `/`.
    pub http_path: String,
}

impl Default for AccessConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(3),
            max_attempts: 8,
            http_path: "/".into(),
        }
    }
}

/// Runs the access checks.
#[derive(Debug, Clone, Default)]
pub struct AccessChecker {
    config: AccessConfig,
}

impl AccessChecker {
    /// A checker with `config` (attempts capped at [`MAX_ATTEMPTS`]).
    pub fn new(mut config: AccessConfig) -> Self {
        config.max_attempts = config.max_attempts.min(MAX_ATTEMPTS);
        Self { config }
    }

    /// Runs the check that fits `service` (as identified by the banner grab, e.g. `ftp`,
    /// `redis`, `http`) or, without one, the port's usual service. Returns the findings of the
    /// checks that succeeded; a protected service gives none.
    pub async fn check(
        &self,
        host: &ScanHost,
        port: u16,
        service: Option<&str>,
    ) -> Result<Vec<Finding>> {
        let addr = SocketAddr::new(host.addr, port);
        let service = service.or(match port {
            21 => Some("ftp"),
            6379 => Some("redis"),
            27017 => Some("mongodb"),
            9200 => Some("elasticsearch"),
            80 | 8080 | 8000 | 8008 => Some("http"),
            _ => None,
        });
        let make = |detail| Finding {
            host: host.display_name(),
            addr: host.addr,
            port: Some(port),
            detail,
        };
        let access = |service: &str, check: &str, evidence: &[u8]| {
            make(Detail::Access {
                service: service.into(),
                check: check.into(),
                evidence: truncate(&printable(evidence), 200).into_owned(),
            })
        };
        let mut out = Vec::new();
        match service {
            Some("ftp") => {
                if let Some(ev) = self.ftp_anonymous(addr).await? {
                    out.push(access("ftp", "anonymous-ftp", &ev));
                }
            }
            Some("redis") => {
                let reply = self.exchange(addr, b"PING\r\n").await?;
                if reply.starts_with(b"+PONG") {
                    out.push(access("redis", "redis-no-auth", &reply));
                }
            }
            Some("mongodb") => {
                let reply = self.exchange(addr, &mongo_list_databases()).await?;
                let has = |needle: &[u8]| reply.windows(needle.len()).any(|w| w == needle);
                if has(b"databases") && has(b"totalSize") {
                    out.push(access(
                        "mongodb",
                        "mongodb-no-auth",
                        b"listDatabases answered",
                    ));
                }
            }
            Some("elasticsearch") => {
                let req = format!(
                    "GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                    host.display_name()
                );
                let reply = self.exchange(addr, req.as_bytes()).await?;
                if parse_response(&reply, false).is_some_and(|r| r.status == 200)
                    && reply.windows(12).any(|w| w == b"cluster_name")
                {
                    out.push(access(
                        "elasticsearch",
                        "elasticsearch-no-auth",
                        b"GET / answered with cluster_name",
                    ));
                }
            }
            Some("http") => {
                if let Some(cred) = self.http_basic(host, addr).await? {
                    out.push(make(Detail::Credential {
                        service: "http-basic".into(),
                        credential: cred,
                    }));
                }
            }
            _ => {}
        }
        Ok(out)
    }

    async fn connect(&self, addr: SocketAddr) -> Result<TcpStream> {
        tokio::time::timeout(self.config.timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| Error::Timeout {
                what: "connect",
                target: addr.to_string(),
                after: self.config.timeout,
            })?
            .map_err(|source| Error::Io {
                target: addr.to_string(),
                source,
            })
    }

    /// Sends `request` and reads the answer until close, 16 KiB or the timeout.
    async fn exchange(&self, addr: SocketAddr, request: &[u8]) -> Result<Vec<u8>> {
        let mut s = self.connect(addr).await?;
        s.write_all(request).await.map_err(|source| Error::Io {
            target: addr.to_string(),
            source,
        })?;
        Ok(read_until_quiet(&mut s, self.config.timeout, 16 * 1024).await)
    }

    async fn ftp_anonymous(&self, addr: SocketAddr) -> Result<Option<Vec<u8>>> {
        let mut s = self.connect(addr).await?;
        let t = self.config.timeout;
        let greeting = read_line(&mut s, t).await;
        if !greeting.starts_with(b"220") {
            return Ok(None);
        }
        let io = |source| Error::Io {
            target: addr.to_string(),
            source,
        };
        s.write_all(b"USER anonymous\r\n").await.map_err(io)?;
        let user = read_line(&mut s, t).await;
        if user.starts_with(b"230") {
            return Ok(Some(user));
        }
        if !user.starts_with(b"331") {
            return Ok(None);
        }
        s.write_all(b"PASS vigil-scan@example.invalid\r\n")
            .await
            .map_err(io)?;
        let pass = read_line(&mut s, t).await;
        let _ = s.write_all(b"QUIT\r\n").await;
        Ok(pass.starts_with(b"230").then_some(pass))
    }

    async fn http_basic(&self, host: &ScanHost, addr: SocketAddr) -> Result<Option<String>> {
        let request = |auth: Option<&str>| {
            format!(
                "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: vigil-scan\r\n{}Connection: close\r\n\r\n",
                self.config.http_path,
                host.display_name(),
                auth.map(|a| format!("Authorization: Basic {a}\r\n"))
                    .unwrap_or_default()
            )
        };
        let first = self.exchange(addr, request(None).as_bytes()).await?;
        let asks_basic = parse_response(&first, false).is_some_and(|r| r.status == 401)
            && String::from_utf8_lossy(&first).lines().any(|l| {
                let l = l.to_ascii_lowercase();
                l.starts_with("www-authenticate:") && l.contains("basic")
            });
        if !asks_basic {
            return Ok(None);
        }
        for (user, pass) in DEFAULT_CREDENTIALS.iter().take(self.config.max_attempts) {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            let reply = self
                .exchange(addr, request(Some(&token)).as_bytes())
                .await?;
            if parse_response(&reply, false).is_some_and(|r| (200..400).contains(&r.status)) {
                return Ok(Some(format!("{user}:{pass}")));
            }
        }
        Ok(None)
    }
}

async fn read_line<S: AsyncRead + Unpin>(s: &mut S, timeout: Duration) -> Vec<u8> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    let read = async {
        while line.len() < 1024 {
            match s.read(&mut byte).await {
                Ok(1) => {
                    line.push(byte[0]);
                    if byte[0] == b'\n' {
                        break;
                    }
                }
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(timeout, read).await;
    line
}

async fn read_until_quiet<S: AsyncRead + Unpin>(
    s: &mut S,
    timeout: Duration,
    cap: usize,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut wait = timeout;
    while out.len() < cap {
        match tokio::time::timeout(wait, s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => {
                out.extend_from_slice(&chunk[..n.min(cap - out.len())]);
                wait = Duration::from_millis(200);
            }
            _ => break,
        }
    }
    out
}

/// An OP_MSG `{listDatabases: 1, $db: "admin"}`.
fn mongo_list_databases() -> Vec<u8> {
    let mut doc = Vec::new();
    doc.push(0x10);
    doc.extend_from_slice(b"listDatabases\0");
    doc.extend_from_slice(&1i32.to_le_bytes());
    doc.push(0x02);
    doc.extend_from_slice(b"$db\0");
    doc.extend_from_slice(&6i32.to_le_bytes());
    doc.extend_from_slice(b"admin\0");
    doc.push(0);
    let mut bson = ((doc.len() + 4) as i32).to_le_bytes().to_vec();
    bson.extend_from_slice(&doc);
    let mut body = 0u32.to_le_bytes().to_vec(); // flag bits
    body.push(0); // section kind 0: body
    body.extend_from_slice(&bson);
    let mut msg = ((body.len() + 16) as i32).to_le_bytes().to_vec();
    msg.extend_from_slice(&1i32.to_le_bytes()); // request id
    msg.extend_from_slice(&0i32.to_le_bytes()); // response to
    msg.extend_from_slice(&2013i32.to_le_bytes()); // OP_MSG
    msg.extend_from_slice(&body);
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mongo_message_is_framed() {
        let m = mongo_list_databases();
        assert_eq!(
            i32::from_le_bytes(m[0..4].try_into().unwrap()) as usize,
            m.len()
        );
        assert_eq!(i32::from_le_bytes(m[12..16].try_into().unwrap()), 2013);
        let bson_len = i32::from_le_bytes(m[21..25].try_into().unwrap()) as usize;
        assert_eq!(bson_len, m.len() - 21);
    }

    #[test]
    fn attempts_are_capped() {
        let c = AccessChecker::new(AccessConfig {
            max_attempts: 1000,
            ..AccessConfig::default()
        });
        assert_eq!(c.config.max_attempts, MAX_ATTEMPTS);
    }
}
