//! Loopback fixtures shared by the integration tests.

#![allow(dead_code)]

use std::sync::Arc;

use chrono::{Datelike, Utc};
use rcgen::{CertificateParams, KeyPair};
use rustls::pki_types::PrivateKeyDer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// An SSH KEXINIT packet offering `kex` (3des-cbc among the ciphers, hmac-md5 among the MACs).
pub fn kexinit(kex: &str) -> Vec<u8> {
    let mut payload = vec![20u8];
    payload.extend_from_slice(&[0x42; 16]);
    for list in [
        kex,
        "ssh-rsa,ssh-ed25519",
        "aes128-ctr,3des-cbc",
        "aes128-ctr,3des-cbc",
        "hmac-sha2-256,hmac-md5",
        "hmac-sha2-256,hmac-md5",
        "none",
        "none",
        "",
        "",
    ] {
        payload.extend_from_slice(&(list.len() as u32).to_be_bytes());
        payload.extend_from_slice(list.as_bytes());
    }
    payload.extend_from_slice(&[0, 0, 0, 0, 0]);
    let padding = 8 - (payload.len() + 5) % 8 + 4;
    let mut packet = ((payload.len() + padding + 1) as u32)
        .to_be_bytes()
        .to_vec();
    packet.push(padding as u8);
    packet.extend_from_slice(&payload);
    packet.extend(std::iter::repeat_n(0u8, padding));
    packet
}

/// An SSH-like server offering a weak key exchange. Returns its port.
pub async fn weak_ssh() -> u16 {
    let mut greeting = b"SSH-2.0-OpenSSH_7.4\r\n".to_vec();
    greeting.extend_from_slice(&kexinit("curve25519-sha256,diffie-hellman-group1-sha1"));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
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
    port
}

/// A TLS server with a self-signed certificate for 127.0.0.1 that expired 10 days ago.
pub async fn expired_tls() -> u16 {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let day = |offset: i64| {
        let d = (Utc::now() + chrono::Duration::days(offset)).date_naive();
        rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8)
    };
    params.not_before = day(-400);
    params.not_after = day(-10);
    let cert = params.self_signed(&key).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let mut buf = [0u8; 1024];
                    if tls.read(&mut buf).await.unwrap_or(0) > 0 {
                        let _ = tls
                            .write_all(b"HTTP/1.1 200 OK\r\nServer: vigil-fixture\r\nConnection: close\r\n\r\n<title>fixture</title>")
                            .await;
                        let _ = tls.shutdown().await;
                    }
                }
            });
        }
    });
    port
}

/// An HTTP server that waits for a request and answers without security headers.
pub async fn bare_http() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                if s.read(&mut buf).await.unwrap_or(0) > 0 {
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\nServer: nginx/1.14.0\r\nConnection: close\r\n\r\n<title>hi</title>")
                        .await;
                }
            });
        }
    });
    port
}
