//! Opt-in access checks against loopback fakes: they find what is open, stop at the first
//! success, and never exceed the attempt cap.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sec_scan::access::MAX_ATTEMPTS;
use sec_scan::{AccessChecker, AccessConfig, Detail, ScanHost, SignatureSet};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

fn loopback() -> ScanHost {
    ScanHost {
        addr: "127.0.0.1".parse().unwrap(),
        name: None,
    }
}

fn checker() -> AccessChecker {
    AccessChecker::new(AccessConfig {
        timeout: Duration::from_secs(2),
        ..AccessConfig::default()
    })
}

/// A fake FTP server; `anonymous_ok` decides the answer to PASS.
async fn ftp(anonymous_ok: bool) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                let mut lines = BufReader::new(r).lines();
                w.write_all(b"220 fake FTP\r\n").await.unwrap();
                while let Ok(Some(line)) = lines.next_line().await {
                    let reply: &[u8] = if line.starts_with("USER") {
                        b"331 password please\r\n"
                    } else if line.starts_with("PASS") && anonymous_ok {
                        b"230 welcome\r\n"
                    } else if line.starts_with("PASS") {
                        b"530 no\r\n"
                    } else {
                        b"221 bye\r\n"
                    };
                    if w.write_all(reply).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// A one-reply server: answers every request with `reply` and closes.
async fn replies(reply: &'static [u8]) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                if s.read(&mut buf).await.unwrap_or(0) > 0 {
                    let _ = s.write_all(reply).await;
                }
            });
        }
    });
    port
}

/// An HTTP server behind basic auth that accepts only `accept` (a base64 token, or none).
async fn basic_auth(accept: Option<&'static str>, requests: Arc<AtomicUsize>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let requests = Arc::clone(&requests);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 2048];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                requests.fetch_add(1, Ordering::SeqCst);
                let ok = accept.is_some_and(|t| req.contains(&format!("Authorization: Basic {t}")));
                let reply: &[u8] = if ok {
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
                } else {
                    b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"x\"\r\nContent-Length: 0\r\n\r\n"
                };
                let _ = s.write_all(reply).await;
            });
        }
    });
    port
}

#[tokio::test]
async fn anonymous_ftp_is_found_and_matched() {
    let open = ftp(true).await;
    let findings = checker()
        .check(&loopback(), open, Some("ftp"))
        .await
        .unwrap();
    assert_eq!(findings.len(), 1);
    let threats = SignatureSet::builtin().match_findings(&findings);
    assert_eq!(threats[0].signature_id, "ftp-anonymous");

    let closed = ftp(false).await;
    assert!(
        checker()
            .check(&loopback(), closed, Some("ftp"))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn redis_mongodb_and_elasticsearch_without_auth() {
    let redis = replies(b"+PONG\r\n").await;
    let f = checker()
        .check(&loopback(), redis, Some("redis"))
        .await
        .unwrap();
    assert!(matches!(&f[0].detail, Detail::Access { check, .. } if check == "redis-no-auth"));

    let protected = replies(b"-NOAUTH Authentication required.\r\n").await;
    assert!(
        checker()
            .check(&loopback(), protected, Some("redis"))
            .await
            .unwrap()
            .is_empty()
    );

    let mongo = replies(b"\x60\0\0\0....databases....totalSize....").await;
    let f = checker()
        .check(&loopback(), mongo, Some("mongodb"))
        .await
        .unwrap();
    assert!(matches!(&f[0].detail, Detail::Access { check, .. } if check == "mongodb-no-auth"));

    let es = replies(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"cluster_name\":\"x\"}",
    )
    .await;
    let f = checker()
        .check(&loopback(), es, Some("elasticsearch"))
        .await
        .unwrap();
    let threats = SignatureSet::builtin().match_findings(&f);
    assert_eq!(threats[0].signature_id, "elasticsearch-no-auth");
}

#[tokio::test]
async fn default_credentials_stop_at_the_first_success() {
    let requests = Arc::new(AtomicUsize::new(0));
    // admin:password is the second entry of the list.
    let port = basic_auth(Some("YWRtaW46cGFzc3dvcmQ="), Arc::clone(&requests)).await;
    let f = checker()
        .check(&loopback(), port, Some("http"))
        .await
        .unwrap();
    assert!(
        matches!(&f[0].detail, Detail::Credential { credential, .. } if credential == "admin:password")
    );
    assert_eq!(
        requests.load(Ordering::SeqCst),
        3,
        "one probe, then two attempts"
    );
    let threats = SignatureSet::builtin().match_findings(&f);
    assert_eq!(threats[0].signature_id, "default-credentials");
    assert_eq!(threats[0].severity, sec_scan::Severity::Critical);
}

#[tokio::test]
async fn attempts_never_exceed_the_cap() {
    let requests = Arc::new(AtomicUsize::new(0));
    let port = basic_auth(None, Arc::clone(&requests)).await;
    let eager = AccessChecker::new(AccessConfig {
        max_attempts: 1_000,
        timeout: Duration::from_secs(2),
        ..AccessConfig::default()
    });
    let f = eager.check(&loopback(), port, Some("http")).await.unwrap();
    assert!(f.is_empty());
    let attempts = requests.load(Ordering::SeqCst) - 1;
    assert!(attempts <= MAX_ATTEMPTS, "{attempts} attempts");
    assert_eq!(
        attempts,
        sec_scan::access::DEFAULT_CREDENTIALS
            .len()
            .min(MAX_ATTEMPTS)
    );
}
