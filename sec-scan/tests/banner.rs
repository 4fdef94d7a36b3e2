//! Banner grabbing, service identification and the HTTP probe against loopback fixtures.

use std::time::Duration;

mod common;

use common::kexinit;
use sec_scan::{
    BannerConfig, BannerGrabber, Detail, HttpConfig, HttpProbe, ScanHost, SignatureSet,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A server that speaks first with `greeting`, then echoes nothing and waits for close.
async fn speaks_first(greeting: Vec<u8>) -> (u16, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let greeting = greeting.clone();
            tokio::spawn(async move {
                let _ = s.write_all(&greeting).await;
                let mut buf = [0u8; 512];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            });
        }
    });
    (port, task)
}

/// A server that waits for a request and answers with `response`.
async fn answers(response: &'static [u8]) -> (u16, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                if let Ok(n) = s.read(&mut buf).await
                    && n > 0
                {
                    let _ = s.write_all(response).await;
                }
            });
        }
    });
    (port, task)
}

fn loopback() -> ScanHost {
    ScanHost {
        addr: "127.0.0.1".parse().unwrap(),
        name: None,
    }
}

fn quick() -> BannerGrabber {
    BannerGrabber::new(BannerConfig {
        banner_wait: Duration::from_millis(300),
        probe_wait: Duration::from_secs(2),
        ..BannerConfig::default()
    })
}

#[tokio::test]
async fn weak_ssh_key_exchange_raises_the_threat() {
    let mut greeting = b"SSH-2.0-OpenSSH_7.4\r\n".to_vec();
    greeting.extend_from_slice(&kexinit("curve25519-sha256,diffie-hellman-group1-sha1"));
    let (port, task) = speaks_first(greeting).await;
    let findings = quick().grab(&loopback(), port).await.unwrap();
    let ssh = findings
        .iter()
        .find_map(|f| match &f.detail {
            Detail::Ssh { kex, cipher, .. } => Some((kex.clone(), cipher.clone())),
            _ => None,
        })
        .expect("an ssh finding");
    assert_eq!(ssh.0, ["curve25519-sha256", "diffie-hellman-group1-sha1"]);
    assert_eq!(ssh.1, ["aes128-ctr", "3des-cbc"]);
    assert!(findings.iter().any(|f| matches!(
        &f.detail,
        Detail::Banner { service: Some(s), product: Some(p), version: Some(v), .. }
            if s == "ssh" && p == "OpenSSH" && v == "7.4"
    )));

    let threats = SignatureSet::builtin().match_findings(&findings);
    let ids: Vec<&str> = threats.iter().map(|t| t.signature_id.as_str()).collect();
    assert!(ids.contains(&"ssh-weak-kex"), "{ids:?}");
    assert!(ids.contains(&"ssh-weak-cipher"), "{ids:?}");
    assert!(ids.contains(&"ssh-weak-mac"), "{ids:?}");
    assert!(ids.contains(&"openssh-outdated"), "{ids:?}");
    let kex = threats
        .iter()
        .find(|t| t.signature_id == "ssh-weak-kex")
        .unwrap();
    assert_eq!(kex.evidence, "diffie-hellman-group1-sha1");
    assert_eq!(kex.port, Some(port));
    task.abort();
}

#[tokio::test]
async fn a_strong_ssh_server_raises_nothing() {
    let mut greeting = b"SSH-2.0-OpenSSH_9.9\r\n".to_vec();
    greeting.extend_from_slice(&kexinit("mlkem768x25519-sha256,curve25519-sha256"));
    // Strong ciphers and MACs only.
    let strong = {
        let mut g = greeting.clone();
        let needle = b"aes128-ctr,3des-cbc";
        while let Some(p) = g.windows(needle.len()).position(|w| w == needle) {
            g.splice(
                p..p + needle.len(),
                b"aes128-ctr,aes256-ctr".iter().copied(),
            );
        }
        let needle = b"hmac-sha2-256,hmac-md5";
        while let Some(p) = g.windows(needle.len()).position(|w| w == needle) {
            g.splice(
                p..p + needle.len(),
                b"hmac-sha2-256,hmac-sha512".iter().copied(),
            );
        }
        g
    };
    let (port, task) = speaks_first(strong).await;
    let findings = quick().grab(&loopback(), port).await.unwrap();
    assert!(
        findings
            .iter()
            .any(|f| matches!(f.detail, Detail::Ssh { .. }))
    );
    let threats = SignatureSet::builtin().match_findings(&findings);
    assert!(threats.is_empty(), "{threats:?}");
    task.abort();
}

#[tokio::test]
async fn a_silent_http_service_is_identified_by_the_http_probe() {
    let (port, task) =
        answers(b"HTTP/1.1 200 OK\r\nServer: nginx/1.14.0\r\nContent-Length: 0\r\n\r\n").await;
    let findings = quick().grab(&loopback(), port).await.unwrap();
    assert!(
        findings.iter().any(|f| matches!(
            &f.detail,
            Detail::Banner { service: Some(s), product: Some(p), .. } if s == "http" && p == "nginx"
        )),
        "{findings:?}"
    );
    task.abort();
}

#[tokio::test]
async fn http_probe_reports_missing_headers_and_outdated_server() {
    let (port, task) = answers(
        b"HTTP/1.1 200 OK\r\nServer: nginx/1.14.0\r\nX-Frame-Options: DENY\r\nConnection: close\r\n\r\n<html><title>Admin</title></html>",
    )
    .await;
    let probe = HttpProbe::new(HttpConfig::default()).unwrap();
    let report = probe.probe(&loopback(), port, false).await.unwrap();
    assert_eq!(report.status, 200);
    assert_eq!(report.title.as_deref(), Some("Admin"));
    assert_eq!(
        report.missing_headers,
        ["content-security-policy", "x-content-type-options"]
    );
    let threats = SignatureSet::builtin().match_findings([&report.finding(&loopback(), port)]);
    let ids: Vec<&str> = threats.iter().map(|t| t.signature_id.as_str()).collect();
    assert_eq!(
        ids,
        ["nginx-outdated", "http-missing-csp", "http-missing-nosniff"]
    );
    task.abort();
}

#[tokio::test]
async fn http_probe_on_a_non_http_service_is_a_typed_error() {
    let (port, task) = speaks_first(b"220 mail ESMTP\r\n".to_vec()).await;
    let probe = HttpProbe::new(HttpConfig {
        timeout: Duration::from_millis(500),
        ..HttpConfig::default()
    })
    .unwrap();
    let err = probe.probe(&loopback(), port, false).await.unwrap_err();
    assert!(
        matches!(
            err,
            sec_scan::Error::Io { .. } | sec_scan::Error::Timeout { .. }
        ),
        "{err:?}"
    );
    task.abort();
}

/// A fake SMBv1 server: answers a NEGOTIATE with an SMB1 response choosing dialect 0.
async fn smb1_server() -> (u16, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 512];
                let n = s.read(&mut buf).await.unwrap_or(0);
                // Only answer a real SMB1 NEGOTIATE offering NT LM 0.12.
                if n > 8
                    && &buf[4..9] == b"\xffSMB\x72"
                    && buf[..n].windows(10).any(|w| w == b"NT LM 0.12")
                {
                    let mut reply = vec![0u8, 0, 0, 0];
                    reply.extend_from_slice(b"\xffSMB\x72\0\0\0\0\x98");
                    reply.resize(4 + 32, 0);
                    reply.extend_from_slice(&[17, 0, 0, 3]);
                    reply.resize(reply.len() + 36, 0);
                    let len = (reply.len() - 4) as u32;
                    reply[1..4].copy_from_slice(&len.to_be_bytes()[1..]);
                    let _ = s.write_all(&reply).await;
                }
            });
        }
    });
    (port, task)
}

#[tokio::test]
async fn smbv1_is_detected_and_matched() {
    let (port, task) = smb1_server().await;
    let grabber = BannerGrabber::new(BannerConfig {
        smb_ports: vec![port],
        banner_wait: Duration::from_millis(300),
        ..BannerConfig::default()
    });
    let findings = grabber.grab(&loopback(), port).await.unwrap();
    assert!(
        findings
            .iter()
            .any(|f| matches!(&f.detail, Detail::Smb { dialect } if dialect == "NT LM 0.12"))
    );
    let threats = SignatureSet::builtin().match_findings(&findings);
    assert_eq!(threats[0].signature_id, "smbv1");
    task.abort();
}

#[tokio::test]
async fn legacy_tls_probe_reads_the_server_hello_version() {
    use sec_scan::legacy::{LegacyVersion, accepts};
    // A fake server that answers any ClientHello with a TLS 1.0 ServerHello header.
    let (port, task) = answers(&[
        0x16, 0x03, 0x01, 0x00, 0x31, 0x02, 0x00, 0x00, 0x2d, 0x03, 0x01, 0, 0, 0, 0, 0,
    ])
    .await;
    let addr = std::net::SocketAddr::new("127.0.0.1".parse().unwrap(), port);
    assert!(accepts(addr, None, LegacyVersion::Tls10, Duration::from_secs(2)).await);
    assert!(!accepts(addr, None, LegacyVersion::Tls11, Duration::from_secs(2)).await);
    task.abort();
    // An alert means refused.
    let (port, task) = answers(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46]).await;
    let addr = std::net::SocketAddr::new("127.0.0.1".parse().unwrap(), port);
    assert!(!accepts(addr, None, LegacyVersion::Tls10, Duration::from_secs(2)).await);
    task.abort();
}
