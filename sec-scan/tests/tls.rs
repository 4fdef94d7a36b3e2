//! TLS check against loopback servers whose certificates are generated at test time (rcgen).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use chrono::{Datelike, Utc};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SubjectPublicKeyInfo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sec_scan::tls::analyse;
use sec_scan::{Error, ScanHost, SignatureSet, TlsChecker, TlsConfig};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Sets a validity window in days relative to today (UTC midnight).
fn validity(params: &mut CertificateParams, from_days: i64, to_days: i64) {
    let day = |offset: i64| {
        let d = (Utc::now() + chrono::Duration::days(offset)).date_naive();
        rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8)
    };
    params.not_before = day(from_days);
    params.not_after = day(to_days);
}

struct Cert {
    der: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

fn self_signed(sans: &[&str], from_days: i64, to_days: i64) -> Cert {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    validity(&mut params, from_days, to_days);
    let cert = params.self_signed(&key).unwrap();
    Cert {
        der: cert.der().clone(),
        key: PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    }
}

/// A test CA and a leaf it signed; returns (ca certificate, leaf).
fn ca_signed(sans: &[&str], from_days: i64, to_days: i64) -> (CertificateDer<'static>, Cert) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "vigil test CA");
    validity(&mut ca_params, -10, 300);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    validity(&mut params, from_days, to_days);
    let leaf = params.signed_by(&leaf_key, &issuer).unwrap();
    (
        ca_cert.der().clone(),
        Cert {
            der: leaf.der().clone(),
            key: PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        },
    )
}

/// Serves TLS on a random loopback port with `cert`; returns the port.
async fn serve(cert: Cert) -> (u16, tokio::task::JoinHandle<()>) {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der], cert.key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = acceptor.accept(tcp).await;
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

fn checker(extra_roots: Vec<CertificateDer<'static>>) -> TlsChecker {
    TlsChecker::new(TlsConfig {
        extra_roots,
        ..TlsConfig::default()
    })
    .unwrap()
}

#[tokio::test]
async fn expired_self_signed_certificate_is_reported_and_raises_threats() {
    let (port, task) = serve(self_signed(&["127.0.0.1"], -400, -10)).await;
    let report = checker(vec![]).check(&loopback(), port).await.unwrap();
    assert_eq!(
        report.protocol, "TLSv1.3",
        "the handshake completed despite the certificate"
    );
    assert!(report.handshake_error.is_none());
    assert!(
        report.issues.contains(&"expired".to_owned()),
        "{:?}",
        report.issues
    );
    assert!(report.issues.contains(&"self-signed".to_owned()));
    assert!(!report.issues.contains(&"hostname-mismatch".to_owned()));
    assert!(
        report.offered.is_empty(),
        "rustls servers refuse TLS 1.0/1.1"
    );
    let cert = report.certificate.as_ref().unwrap();
    assert!(cert.days_left < 0);
    assert!(cert.self_signed);
    assert_eq!(cert.san, ["127.0.0.1"]);

    let findings = report.findings(&loopback(), port);
    let threats = SignatureSet::builtin().match_findings(&findings);
    let ids: Vec<&str> = threats.iter().map(|t| t.signature_id.as_str()).collect();
    assert!(ids.contains(&"tls-expired"), "{ids:?}");
    assert!(ids.contains(&"tls-self-signed"), "{ids:?}");
    assert_eq!(
        threats[0].severity,
        sec_scan::Severity::Critical,
        "most severe first"
    );
    task.abort();
}

#[tokio::test]
async fn hostname_mismatch_is_reported() {
    let (port, task) = serve(self_signed(&["other.example"], -1, 80)).await;
    let report = checker(vec![]).check(&loopback(), port).await.unwrap();
    assert!(
        report.issues.contains(&"hostname-mismatch".to_owned()),
        "{:?}",
        report.issues
    );
    assert!(!report.issues.contains(&"expired".to_owned()));
    task.abort();
}

#[tokio::test]
async fn trusted_certificate_expiring_soon() {
    let (ca, leaf) = ca_signed(&["127.0.0.1"], -2, 20);
    let (port, task) = serve(leaf).await;
    let report = checker(vec![ca]).check(&loopback(), port).await.unwrap();
    assert_eq!(report.verdict, "trusted");
    assert_eq!(report.issues, ["expires-within-30-days"]);
    let threats = SignatureSet::builtin().match_findings(&report.findings(&loopback(), port));
    assert_eq!(threats.len(), 1);
    assert_eq!(threats[0].signature_id, "tls-expires-30-days");
    assert_eq!(threats[0].severity, sec_scan::Severity::High);
    task.abort();
}

#[tokio::test]
async fn expiring_within_sixty_days_and_unknown_issuer() {
    let (_ca, leaf) = ca_signed(&["127.0.0.1"], -2, 45);
    let (port, task) = serve(leaf).await;
    // The CA is not trusted this time.
    let report = checker(vec![]).check(&loopback(), port).await.unwrap();
    assert!(
        report.issues.contains(&"expires-within-60-days".to_owned()),
        "{:?}",
        report.issues
    );
    assert!(report.issues.contains(&"unknown-issuer".to_owned()));
    assert!(!report.issues.contains(&"self-signed".to_owned()));
    task.abort();
}

#[test]
fn weak_rsa_key_is_flagged() {
    // rcgen cannot make RSA-1024 keys, and TLS providers refuse to sign with them, so the
    // analysis is tested on a certificate carrying a 1024-bit public key (fixture).
    let spki = SubjectPublicKeyInfo::from_pem(include_str!("fixtures/rsa1024-public.pem")).unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let issuer = Issuer::new(ca_params, ca_key);
    let mut params = CertificateParams::new(vec!["weak.example".to_owned()]).unwrap();
    validity(&mut params, -1, 100);
    let cert = params.signed_by(&spki, &issuer).unwrap();
    let name = ServerName::try_from("weak.example").unwrap();
    let (info, issues) = analyse(cert.der(), &name, &Ok(()), SystemTime::now());
    assert_eq!(info.unwrap().key, "RSA 1024");
    assert!(issues.contains(&"weak-key".to_owned()), "{issues:?}");
    assert!(!issues.contains(&"hostname-mismatch".to_owned()));
}

#[tokio::test]
async fn a_plain_tcp_service_is_a_typed_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            drop(s);
        }
    });
    let err = checker(vec![]).check(&loopback(), port).await.unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    task.abort();
}

#[tokio::test]
async fn ipv6_loopback_is_checked_too() {
    let Ok(l) = TcpListener::bind("[::1]:0").await else {
        eprintln!("skipped: no IPv6 loopback on this machine");
        return;
    };
    drop(l);
    let cert = self_signed(&["::1"], -1, 200);
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der], cert.key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("[::1]:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = acceptor.accept(tcp).await;
        }
    });
    let host = ScanHost {
        addr: "::1".parse::<IpAddr>().unwrap(),
        name: None,
    };
    let report = checker(vec![]).check(&host, port).await.unwrap();
    assert!(report.issues.contains(&"self-signed".to_owned()));
    assert!(
        !report.issues.contains(&"hostname-mismatch".to_owned()),
        "{:?}",
        report.issues
    );
    task.abort();
}

#[test]
fn sha1_signature_is_flagged() {
    use base64::Engine;
    // A self-signed SHA-1 certificate made once with openssl (rcgen cannot sign with SHA-1).
    let pem = include_str!("fixtures/sha1-selfsigned.pem");
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let der = CertificateDer::from(der);
    let name = ServerName::try_from("sha1.example").unwrap();
    let (info, issues) = analyse(&der, &name, &Ok(()), SystemTime::now());
    let info = info.unwrap();
    assert_eq!(info.signature_algorithm, "sha1WithRSAEncryption");
    assert_eq!(info.key, "RSA 2048");
    assert!(issues.contains(&"weak-signature".to_owned()), "{issues:?}");
    assert!(issues.contains(&"self-signed".to_owned()));
    assert!(issues.contains(&"long-lifetime".to_owned()));
    assert!(!issues.contains(&"hostname-mismatch".to_owned()));
    let other = ServerName::try_from("other.example").unwrap();
    let (_, issues) = analyse(&der, &other, &Ok(()), SystemTime::now());
    assert!(issues.contains(&"hostname-mismatch".to_owned()));
}
