//! TLS check: a handshake that records instead of failing, then certificate analysis.
//!
//! A normal TLS client stops at the first bad certificate, which is exactly what a scanner
//! wants to look at. [`TlsChecker`] installs a *recording verifier*: it runs the real webpki
//! verification (against the Mozilla roots from `webpki-roots`, plus any roots you add), keeps
//! the verdict, and lets the handshake go on. Handshake signatures are still checked by the
//! crypto provider, so the session is real. The leaf certificate is then read with
//! `x509-parser`:
//!
//! | issue code | when |
//! |---|---|
//! | `expired` / `not-yet-valid` | outside its validity period |
//! | `expires-within-30-days` / `expires-within-60-days` | close to `notAfter` |
//! | `self-signed` | issuer equals subject |
//! | `unknown-issuer` | no path to a trusted root (incomplete chain or private CA) |
//! | `hostname-mismatch` | the SANs do not cover the name (or address) that was scanned |
//! | `weak-key` | RSA below 2048 bits or EC below 256 |
//! | `weak-signature` | signed with SHA-1 or MD5 (or MD2) |
//! | `long-lifetime` | valid for more than 398 days |
//! | `untrusted` | any other verifier error |
//!
//! **Limits, honestly:** rustls speaks TLS 1.2 and 1.3 only. Whether a server still *accepts*
//! TLS 1.0 or 1.1 is found by a separate raw ClientHello probe (see [`crate::legacy`]);
//! SSLv3, and enumerating weak cipher suites (RC4, 3DES, EXPORT, NULL), are not checked. A server
//! whose key the provider refuses for handshake signatures (for example RSA-1024) fails the
//! handshake; its certificate is still recorded and analysed.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
use x509_parser::public_key::PublicKey;

use crate::error::{Error, Result};
use crate::finding::{CertificateInfo, Detail, Finding};
use crate::legacy::{self, LegacyVersion};
use crate::scope::ScanHost;

/// TLS-check settings.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// Time limit for connect plus handshake. Default 5 s.
    pub timeout: Duration,
    /// Trust the Mozilla root store (`webpki-roots`). Default true.
    pub mozilla_roots: bool,
    /// Extra trusted roots (DER), e.g. an organisation's CA. Default none.
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Probe whether TLS 1.0 and 1.1 are accepted (two extra connections). Default true.
    pub legacy_probes: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            mozilla_roots: true,
            extra_roots: Vec::new(),
            legacy_probes: true,
        }
    }
}

/// What a TLS check saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TlsReport {
    /// Negotiated protocol (`TLSv1.3`), or `none` when the handshake failed after the
    /// certificate was seen.
    pub protocol: String,
    /// Negotiated cipher suite, or `none`.
    pub cipher: String,
    /// `trusted`, or the verifier's error.
    pub verdict: String,
    /// The leaf certificate.
    pub certificate: Option<CertificateInfo>,
    /// Certificates the server sent (leaf included).
    pub chain_len: usize,
    /// Issue codes (see the module table).
    pub issues: Vec<String>,
    /// Legacy protocols accepted (`TLSv1.0`, `TLSv1.1`).
    pub offered: Vec<String>,
    /// Why the handshake failed, when it did.
    pub handshake_error: Option<String>,
}

impl TlsReport {
    /// The report as findings: the certificate and the TLS session with its issues.
    pub fn findings(&self, host: &ScanHost, port: u16) -> Vec<Finding> {
        let make = |detail| Finding {
            host: host.display_name(),
            addr: host.addr,
            port: Some(port),
            detail,
        };
        let mut out = Vec::new();
        if let Some(c) = &self.certificate {
            out.push(make(Detail::Certificate(c.clone())));
        }
        out.push(make(Detail::Tls {
            protocol: self.protocol.clone(),
            cipher: self.cipher.clone(),
            issue: self.issues.clone(),
            offered: self.offered.clone(),
            verdict: self.verdict.clone(),
        }));
        out
    }
}

/// Runs TLS checks. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TlsChecker {
    config: TlsConfig,
    provider: Arc<CryptoProvider>,
    webpki: Arc<WebPkiServerVerifier>,
}

impl TlsChecker {
    /// A checker with `config`; fails when an extra root is not a valid certificate or no
    /// roots are configured at all.
    pub fn new(config: TlsConfig) -> Result<Self> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = RootCertStore::empty();
        if config.mozilla_roots {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        for der in &config.extra_roots {
            roots
                .add(der.clone())
                .map_err(|e| Error::Config(format!("extra TLS root: {e}")))?;
        }
        let webpki =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()
                .map_err(|e| Error::Config(format!("TLS verifier: {e}")))?;
        Ok(Self {
            config,
            provider,
            webpki,
        })
    }

    /// A connector that completes handshakes whatever the certificate (for probes that only
    /// need the encrypted channel, like the HTTPS probe).
    pub(crate) fn recording_connector(&self) -> Result<TlsConnector> {
        let recorder = Arc::new(Recorder {
            inner: Arc::clone(&self.webpki),
            provider: Arc::clone(&self.provider),
            seen: Mutex::new(None),
        });
        let config = ClientConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("TLS versions: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(recorder)
            .with_no_client_auth();
        Ok(TlsConnector::from(Arc::new(config)))
    }

    /// Connects to `host:port`, completes a handshake whatever the certificate, and analyses
    /// it. SNI and the name check use the host's name when it has one, else its address.
    pub async fn check(&self, host: &ScanHost, port: u16) -> Result<TlsReport> {
        let addr = SocketAddr::new(host.addr, port);
        let server_name: ServerName<'static> = match &host.name {
            Some(n) => ServerName::try_from(n.clone()).map_err(|e| Error::InvalidTarget {
                input: n.clone(),
                reason: e.to_string(),
            })?,
            None => ServerName::IpAddress(host.addr.into()),
        };
        let recorder = Arc::new(Recorder {
            inner: Arc::clone(&self.webpki),
            provider: Arc::clone(&self.provider),
            seen: Mutex::new(None),
        });
        let config = ClientConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("TLS versions: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(recorder.clone())
            .with_no_client_auth();
        let connector = TlsConnector::from(Arc::new(config));
        let timeout = self.config.timeout;
        let handshake = async {
            let tcp = TcpStream::connect(addr).await.map_err(|source| Error::Io {
                target: addr.to_string(),
                source,
            })?;
            Ok::<_, Error>(connector.connect(server_name.clone(), tcp).await)
        };
        let outcome = tokio::time::timeout(timeout, handshake)
            .await
            .map_err(|_| Error::Timeout {
                what: "TLS handshake",
                target: addr.to_string(),
                after: timeout,
            })??;
        let (protocol, cipher, handshake_error) = match &outcome {
            Ok(stream) => {
                let (_, conn) = stream.get_ref();
                (
                    conn.protocol_version().map_or("none".into(), protocol_name),
                    conn.negotiated_cipher_suite()
                        .map_or("none".into(), |s| format!("{:?}", s.suite())),
                    None,
                )
            }
            Err(e) => ("none".into(), "none".into(), Some(e.to_string())),
        };
        let recorded = recorder.seen.lock().map(|mut g| g.take()).unwrap_or(None);
        let Some(recorded) = recorded else {
            return Err(Error::Tls {
                target: addr.to_string(),
                message: handshake_error.unwrap_or_else(|| "no certificate was presented".into()),
            });
        };
        let (certificate, mut issues) = analyse(
            &recorded.end_entity,
            &server_name,
            &recorded.verdict,
            SystemTime::now(),
        );
        issues.dedup();
        let mut offered = Vec::new();
        if self.config.legacy_probes {
            for v in [LegacyVersion::Tls10, LegacyVersion::Tls11] {
                if legacy::accepts(addr, host.name.as_deref(), v, timeout).await {
                    offered.push(v.name().to_owned());
                }
            }
        }
        Ok(TlsReport {
            protocol,
            cipher,
            verdict: match &recorded.verdict {
                Ok(()) => "trusted".into(),
                Err(e) => e.to_string(),
            },
            certificate,
            chain_len: 1 + recorded.intermediates,
            issues,
            offered,
            handshake_error,
        })
    }
}

fn protocol_name(v: rustls::ProtocolVersion) -> String {
    match v {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".into(),
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".into(),
        other => format!("{other:?}"),
    }
}

#[derive(Debug)]
struct Recorded {
    end_entity: CertificateDer<'static>,
    intermediates: usize,
    verdict: std::result::Result<(), rustls::Error>,
}

/// Runs the real verifier, keeps its verdict, and lets the handshake continue.
#[derive(Debug)]
struct Recorder {
    inner: Arc<WebPkiServerVerifier>,
    provider: Arc<CryptoProvider>,
    seen: Mutex<Option<Recorded>>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let verdict = self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map(|_| ());
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(Recorded {
                end_entity: end_entity.clone().into_owned(),
                intermediates: intermediates.len(),
                verdict,
            });
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

const DAY: i64 = 86_400;

/// Reads a leaf certificate and lists its issues. `verdict` is the webpki result for the
/// chain; `now` the time to judge validity at.
pub fn analyse(
    der: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    verdict: &std::result::Result<(), rustls::Error>,
    now: SystemTime,
) -> (Option<CertificateInfo>, Vec<String>) {
    let mut issues: Vec<String> = Vec::new();
    let mut push = |s: &str| {
        if !issues.iter().any(|i| i == s) {
            issues.push(s.to_owned());
        }
    };
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        push("untrusted");
        return (None, issues);
    };
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let not_before = cert.validity().not_before.timestamp();
    let not_after = cert.validity().not_after.timestamp();
    let days_left = (not_after - now).div_euclid(DAY);
    if now > not_after {
        push("expired");
    } else if now < not_before {
        push("not-yet-valid");
    } else if not_after - now < 30 * DAY {
        push("expires-within-30-days");
    } else if not_after - now < 60 * DAY {
        push("expires-within-60-days");
    }
    let self_signed = cert.subject().as_raw() == cert.issuer().as_raw();
    if self_signed {
        push("self-signed");
    }
    if let Err(e) = verdict {
        match e {
            rustls::Error::InvalidCertificate(ce) => match ce {
                CertificateError::UnknownIssuer => {
                    if !self_signed {
                        push("unknown-issuer");
                    }
                }
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    push("expired")
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    push("not-yet-valid")
                }
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => push("hostname-mismatch"),
                _ => push("untrusted"),
            },
            _ => push("untrusted"),
        }
    }
    // The chain check stops before the name check, so check the name on its own.
    let name_ok = webpki::EndEntityCert::try_from(der)
        .and_then(|ee| ee.verify_is_valid_for_subject_name(server_name))
        .is_ok();
    if !name_ok {
        push("hostname-mismatch");
    }
    let key = match cert.public_key().parsed() {
        Ok(PublicKey::RSA(rsa)) => {
            let bits = rsa.key_size();
            if bits < 2048 {
                push("weak-key");
            }
            format!("RSA {bits}")
        }
        Ok(PublicKey::EC(ec)) => {
            let bits = ec.key_size();
            if bits < 256 {
                push("weak-key");
            }
            format!("EC {bits}")
        }
        Ok(PublicKey::DSA(_)) => {
            push("weak-key");
            "DSA".into()
        }
        Ok(_) => match cert
            .public_key()
            .algorithm
            .algorithm
            .to_id_string()
            .as_str()
        {
            "1.3.101.112" => "Ed25519".into(),
            "1.3.101.113" => "Ed448".into(),
            other => other.to_owned(),
        },
        Err(_) => "unknown".into(),
    };
    let sig_oid = cert.signature_algorithm.algorithm.to_id_string();
    let (sig_name, weak_sig) = signature_name(&sig_oid);
    if weak_sig {
        push("weak-signature");
    }
    if not_after - not_before > 398 * DAY {
        push("long-lifetime");
    }
    let mut san = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(d) => san.push((*d).to_owned()),
                GeneralName::IPAddress(ip) => match ip.len() {
                    4 => san.push(std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]).to_string()),
                    16 => {
                        let mut b = [0u8; 16];
                        b.copy_from_slice(ip);
                        san.push(std::net::Ipv6Addr::from(b).to_string());
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
    let rfc3339 = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0).map_or_else(|| t.to_string(), |d| d.to_rfc3339())
    };
    let info = CertificateInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        san,
        not_before: rfc3339(not_before),
        not_after: rfc3339(not_after),
        days_left,
        key,
        signature_algorithm: sig_name,
        self_signed,
    };
    (Some(info), issues)
}

/// A signature algorithm OID's usual name, and whether it is weak (MD2, MD5, SHA-1).
fn signature_name(oid: &str) -> (String, bool) {
    let (name, weak) = match oid {
        "1.2.840.113549.1.1.2" => ("md2WithRSAEncryption", true),
        "1.2.840.113549.1.1.4" => ("md5WithRSAEncryption", true),
        "1.2.840.113549.1.1.5" => ("sha1WithRSAEncryption", true),
        "1.2.840.10045.4.1" => ("ecdsa-with-SHA1", true),
        "1.2.840.10040.4.3" => ("dsa-with-sha1", true),
        "1.3.14.3.2.29" => ("sha1WithRSASignature", true),
        "1.2.840.113549.1.1.11" => ("sha256WithRSAEncryption", false),
        "1.2.840.113549.1.1.12" => ("sha384WithRSAEncryption", false),
        "1.2.840.113549.1.1.13" => ("sha512WithRSAEncryption", false),
        "1.2.840.113549.1.1.10" => ("rsassaPss", false),
        "1.2.840.10045.4.3.2" => ("ecdsa-with-SHA256", false),
        "1.2.840.10045.4.3.3" => ("ecdsa-with-SHA384", false),
        "1.2.840.10045.4.3.4" => ("ecdsa-with-SHA512", false),
        "1.3.101.112" => ("Ed25519", false),
        "1.3.101.113" => ("Ed448", false),
        other => return (other.to_owned(), false),
    };
    (name.to_owned(), weak)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_signature_oids_are_flagged() {
        assert_eq!(
            signature_name("1.2.840.113549.1.1.5"),
            ("sha1WithRSAEncryption".into(), true)
        );
        assert!(signature_name("1.2.840.113549.1.1.4").1);
        assert!(!signature_name("1.2.840.113549.1.1.11").1);
        assert_eq!(signature_name("1.2.3").0, "1.2.3");
    }

    #[test]
    fn garbage_is_untrusted_not_a_panic() {
        let der = CertificateDer::from(vec![1u8, 2, 3]);
        let name = ServerName::try_from("example.com").unwrap();
        let (info, issues) = analyse(&der, &name, &Ok(()), SystemTime::now());
        assert!(info.is_none());
        assert_eq!(issues, ["untrusted"]);
    }
}
