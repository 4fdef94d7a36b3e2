//! Typed findings: what a scan saw, one fact per finding.
//!
//! A finding is a fact ("port 22 is open", "the certificate expired"), not a verdict. Verdicts
//! ([`Threat`](crate::signature::Threat)s) come from matching [signatures](crate::signature)
//! against the *fields* of findings, one field at a time.
//!
//! # Kinds and their fields
//!
//! These are the names a signature file uses in `kind` and `field`. List fields hold several
//! values; a signature matches each value on its own.
//!
//! | kind | fields |
//! |---|---|
//! | `open_port` | `port`, `service` |
//! | `banner` | `service`, `product`, `version`, `text`, `info`, `os`, `device`, `cpe`\*, `distro`, `ecosystem`, `package`, `package_version`, `method` (`probed`, `softmatch`, `port-table`) |
//! | `ssh` | `version` (the identification line), `kex`\*, `host_key`\*, `cipher`\*, `mac`\* |
//! | `tls` | `protocol`, `cipher`, `issue`\*, `offered`\* (legacy protocols a raw probe saw accepted) |
//! | `certificate` | `subject`, `issuer`, `san`\*, `key`, `signature_algorithm` |
//! | `http` | `status`, `server`, `title`, `missing_header`\* |
//! | `smb` | `dialect` |
//! | `access` | `service`, `check` (an unauthenticated-access check that succeeded) |
//! | `credential` | `service`, `credential` (`user:password` that was accepted) |
//!
//! \* list field.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::service::Method;

/// One observed fact about one host (and usually one port).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The host as the operator named it (a name or an address).
    pub host: String,
    /// The address that was contacted.
    pub addr: IpAddr,
    /// The port, when the fact is about one.
    pub port: Option<u16>,
    /// The fact.
    #[serde(flatten)]
    pub detail: Detail,
}

/// A certificate as read by the TLS check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertificateInfo {
    /// Subject distinguished name.
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// DNS and IP subject alternative names.
    pub san: Vec<String>,
    /// Start of validity (RFC 3339).
    pub not_before: String,
    /// End of validity (RFC 3339).
    pub not_after: String,
    /// Days until `not_after` (negative once expired).
    pub days_left: i64,
    /// Key type and size, e.g. `RSA 2048` or `EC 256`.
    pub key: String,
    /// Signature algorithm name, e.g. `sha256WithRSAEncryption`.
    pub signature_algorithm: String,
    /// Issuer equals subject.
    pub self_signed: bool,
}

/// What a finding says. The serde tag `kind` is the signature file's `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Detail {
    /// An open TCP port.
    OpenPort {
        /// A service guessed from the port number alone (`ssh` for 22), if any.
        service: Option<String>,
    },
    /// What a service said, and what it was identified as.
    Banner {
        /// Identified service (`ssh`, `http`, `ftp`, `smtp`, `redis`, `tls`, ...).
        service: Option<String>,
        /// Product, e.g. `OpenSSH`, `nginx`.
        product: Option<String>,
        /// Product version.
        version: Option<String>,
        /// The banner, printable (non-printable bytes escaped), capped.
        text: String,
        /// Extra information from the probe file's `i/` template (`protocol 2.0`, …).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        info: Option<String>,
        /// Host name the service gave (`h/`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hostname: Option<String>,
        /// Operating system (`o/`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        os: Option<String>,
        /// Device type (`d/`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<String>,
        /// CPE 2.3 formatted strings (`cpe:2.3:a:openbsd:openssh:9.2p1:*:*:*:*:*:*:*`),
        /// converted from the URI binding the probe file's templates produce.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        cpe: Vec<String>,
        /// The distribution the package comes from (`debian`, `ubuntu`), when the banner says.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        distro: Option<String>,
        /// The OSV ecosystem of that distribution release (`Debian:12`, `Ubuntu:22.04:LTS`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ecosystem: Option<String>,
        /// The distribution's source package (`openssh`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        package: Option<String>,
        /// The package version with its epoch (`1:9.2p1-2+deb12u10`), when the banner has the
        /// distribution's revision.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        package_version: Option<String>,
        /// How the service was identified: `probed`, `softmatch` or `port-table`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        method: Option<Method>,
        /// The probe whose reply matched (`NULL`, `GetRequest`, …).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        probe: Option<String>,
        /// `ssl` when the service was reached through TLS.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tunnel: Option<String>,
    },
    /// An SSH server's identification and key-exchange offer.
    Ssh {
        /// Identification line, e.g. `SSH-2.0-OpenSSH_9.6`.
        version: String,
        /// Key-exchange algorithms offered.
        kex: Vec<String>,
        /// Host-key algorithms offered.
        host_key: Vec<String>,
        /// Ciphers offered (server to client).
        cipher: Vec<String>,
        /// MACs offered (server to client).
        mac: Vec<String>,
    },
    /// A TLS session and the problems found with it.
    Tls {
        /// Negotiated protocol, e.g. `TLSv1.3`.
        protocol: String,
        /// Negotiated cipher suite.
        cipher: String,
        /// Problem codes: `expired`, `not-yet-valid`, `expires-within-30-days`,
        /// `expires-within-60-days`, `self-signed`, `unknown-issuer`, `hostname-mismatch`,
        /// `weak-key`, `weak-signature`, `long-lifetime`, `untrusted` (another verifier error).
        issue: Vec<String>,
        /// Legacy protocols a raw ClientHello probe saw accepted (`TLSv1.0`, `TLSv1.1`).
        offered: Vec<String>,
        /// The trust verdict in words (`trusted`, or the verifier's error).
        verdict: String,
    },
    /// The leaf certificate of a TLS service.
    Certificate(CertificateInfo),
    /// An HTTP response.
    Http {
        /// Status code.
        status: u16,
        /// `Server` header.
        server: Option<String>,
        /// Page title.
        title: Option<String>,
        /// Security headers the response lacks (lower-case names).
        missing_header: Vec<String>,
        /// Whether the probe used HTTPS.
        https: bool,
    },
    /// An SMB negotiation result.
    Smb {
        /// The dialect the server chose, e.g. `NT LM 0.12` (SMBv1).
        dialect: String,
    },
    /// A service answered without authentication (opt-in checks only).
    Access {
        /// The service (`ftp`, `redis`, `mongodb`, `elasticsearch`).
        service: String,
        /// The check that succeeded, e.g. `anonymous-ftp`, `redis-no-auth`.
        check: String,
        /// What the service answered, capped.
        evidence: String,
    },
    /// A default credential was accepted (opt-in checks only).
    Credential {
        /// The service (`http-basic`, ...).
        service: String,
        /// `user:password`.
        credential: String,
    },
}

/// The kinds of findings, as named in signature files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Kind {
    /// [`Detail::OpenPort`].
    OpenPort,
    /// [`Detail::Banner`].
    Banner,
    /// [`Detail::Ssh`].
    Ssh,
    /// [`Detail::Tls`].
    Tls,
    /// [`Detail::Certificate`].
    Certificate,
    /// [`Detail::Http`].
    Http,
    /// [`Detail::Smb`].
    Smb,
    /// [`Detail::Access`].
    Access,
    /// [`Detail::Credential`].
    Credential,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 9] = [
        Kind::OpenPort,
        Kind::Banner,
        Kind::Ssh,
        Kind::Tls,
        Kind::Certificate,
        Kind::Http,
        Kind::Smb,
        Kind::Access,
        Kind::Credential,
    ];

    /// The name used in signature files.
    pub fn name(self) -> &'static str {
        match self {
            Kind::OpenPort => "open_port",
            Kind::Banner => "banner",
            Kind::Ssh => "ssh",
            Kind::Tls => "tls",
            Kind::Certificate => "certificate",
            Kind::Http => "http",
            Kind::Smb => "smb",
            Kind::Access => "access",
            Kind::Credential => "credential",
        }
    }

    /// The kind with that name.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The fields a signature may match on this kind.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            Kind::OpenPort => &["port", "service"],
            Kind::Banner => &[
                "service",
                "product",
                "version",
                "text",
                "info",
                "os",
                "device",
                "cpe",
                "distro",
                "ecosystem",
                "package",
                "package_version",
                "method",
            ],
            Kind::Ssh => &["version", "kex", "host_key", "cipher", "mac"],
            Kind::Tls => &["protocol", "cipher", "issue", "offered"],
            Kind::Certificate => &["subject", "issuer", "san", "key", "signature_algorithm"],
            Kind::Http => &["status", "server", "title", "missing_header"],
            Kind::Smb => &["dialect"],
            Kind::Access => &["service", "check"],
            Kind::Credential => &["service", "credential"],
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl Finding {
    /// The finding's kind.
    pub fn kind(&self) -> Kind {
        match &self.detail {
            Detail::OpenPort { .. } => Kind::OpenPort,
            Detail::Banner { .. } => Kind::Banner,
            Detail::Ssh { .. } => Kind::Ssh,
            Detail::Tls { .. } => Kind::Tls,
            Detail::Certificate(_) => Kind::Certificate,
            Detail::Http { .. } => Kind::Http,
            Detail::Smb { .. } => Kind::Smb,
            Detail::Access { .. } => Kind::Access,
            Detail::Credential { .. } => Kind::Credential,
        }
    }

    /// Calls `visit(field, value)` for every matchable value: once per value of a list field,
    /// never for an absent optional field. Field names are those of [`Kind::fields`].
    pub fn for_each_field(&self, mut visit: impl FnMut(&'static str, Cow<'_, str>)) {
        let opt = |name, v: &Option<String>, visit: &mut dyn FnMut(&'static str, Cow<'_, str>)| {
            if let Some(v) = v {
                visit(name, Cow::Borrowed(v.as_str()));
            }
        };
        let list = |name, v: &[String], visit: &mut dyn FnMut(&'static str, Cow<'_, str>)| {
            for item in v {
                visit(name, Cow::Borrowed(item.as_str()));
            }
        };
        match &self.detail {
            Detail::OpenPort { service } => {
                if let Some(p) = self.port {
                    visit("port", Cow::Owned(p.to_string()));
                }
                opt("service", service, &mut visit);
            }
            Detail::Banner {
                service,
                product,
                version,
                text,
                info,
                os,
                device,
                cpe,
                distro,
                ecosystem,
                package,
                package_version,
                method,
                ..
            } => {
                opt("service", service, &mut visit);
                opt("product", product, &mut visit);
                opt("version", version, &mut visit);
                visit("text", Cow::Borrowed(text));
                opt("info", info, &mut visit);
                opt("os", os, &mut visit);
                opt("device", device, &mut visit);
                list("cpe", cpe, &mut visit);
                opt("distro", distro, &mut visit);
                opt("ecosystem", ecosystem, &mut visit);
                opt("package", package, &mut visit);
                opt("package_version", package_version, &mut visit);
                if let Some(m) = method {
                    visit("method", Cow::Borrowed(m.as_str()));
                }
            }
            Detail::Ssh {
                version,
                kex,
                host_key,
                cipher,
                mac,
            } => {
                visit("version", Cow::Borrowed(version));
                list("kex", kex, &mut visit);
                list("host_key", host_key, &mut visit);
                list("cipher", cipher, &mut visit);
                list("mac", mac, &mut visit);
            }
            Detail::Tls {
                protocol,
                cipher,
                issue,
                offered,
                ..
            } => {
                visit("protocol", Cow::Borrowed(protocol));
                visit("cipher", Cow::Borrowed(cipher));
                list("issue", issue, &mut visit);
                list("offered", offered, &mut visit);
            }
            Detail::Certificate(c) => {
                visit("subject", Cow::Borrowed(&c.subject));
                visit("issuer", Cow::Borrowed(&c.issuer));
                list("san", &c.san, &mut visit);
                visit("key", Cow::Borrowed(&c.key));
                visit("signature_algorithm", Cow::Borrowed(&c.signature_algorithm));
            }
            Detail::Http {
                status,
                server,
                title,
                missing_header,
                ..
            } => {
                visit("status", Cow::Owned(status.to_string()));
                opt("server", server, &mut visit);
                opt("title", title, &mut visit);
                list("missing_header", missing_header, &mut visit);
            }
            Detail::Smb { dialect } => visit("dialect", Cow::Borrowed(dialect)),
            Detail::Access { service, check, .. } => {
                visit("service", Cow::Borrowed(service));
                visit("check", Cow::Borrowed(check));
            }
            Detail::Credential {
                service,
                credential,
            } => {
                visit("service", Cow::Borrowed(service));
                visit("credential", Cow::Borrowed(credential));
            }
        }
    }

    /// A one-line summary for people.
    pub fn summary(&self) -> String {
        match &self.detail {
            Detail::OpenPort { service } => match service {
                Some(s) => format!("open ({s})"),
                None => "open".into(),
            },
            Detail::Banner { service, text, .. } => format!(
                "{}: {}",
                service.as_deref().unwrap_or("banner"),
                truncate(text, 80)
            ),
            Detail::Ssh { version, kex, .. } => {
                format!("{version}, {} key exchanges offered", kex.len())
            }
            Detail::Tls {
                protocol,
                cipher,
                issue,
                ..
            } => {
                if issue.is_empty() {
                    format!("{protocol} {cipher}")
                } else {
                    format!("{protocol} {cipher}; {}", issue.join(", "))
                }
            }
            Detail::Certificate(c) => format!(
                "certificate {} (issuer {}), {} days left, {}",
                truncate(&c.subject, 60),
                truncate(&c.issuer, 60),
                c.days_left,
                c.key
            ),
            Detail::Http {
                status,
                server,
                title,
                missing_header,
                https,
            } => format!(
                "{} {status}{}{}{}",
                if *https { "HTTPS" } else { "HTTP" },
                server
                    .as_ref()
                    .map(|s| format!(", server {s}"))
                    .unwrap_or_default(),
                title
                    .as_ref()
                    .map(|t| format!(", title {:?}", truncate(t, 60)))
                    .unwrap_or_default(),
                if missing_header.is_empty() {
                    String::new()
                } else {
                    format!(", missing {}", missing_header.join(", "))
                }
            ),
            Detail::Smb { dialect } => format!("SMB dialect {dialect}"),
            Detail::Access { check, .. } => format!("no authentication: {check}"),
            Detail::Credential {
                service,
                credential,
            } => format!("{service} accepted default credential {credential}"),
        }
    }
}

/// Cuts `s` to at most `max` characters, adding `…` when cut.
pub(crate) fn truncate(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        None => Cow::Borrowed(s),
        Some((i, _)) => Cow::Owned(format!("{}…", &s[..i])),
    }
}

/// Bytes as text: printable ASCII kept, `\r` `\n` `\t` escaped, everything else as `\xNN`.
pub(crate) fn printable(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_its_name() {
        for k in Kind::ALL {
            assert_eq!(Kind::from_name(k.name()), Some(k));
        }
        assert_eq!(Kind::from_name("nope"), None);
    }

    #[test]
    fn fields_are_visited_per_value() {
        let f = Finding {
            host: "h".into(),
            addr: "127.0.0.1".parse().unwrap(),
            port: Some(22),
            detail: Detail::Ssh {
                version: "SSH-2.0-x".into(),
                kex: vec!["a".into(), "b".into()],
                host_key: vec![],
                cipher: vec![],
                mac: vec![],
            },
        };
        let mut seen = Vec::new();
        f.for_each_field(|name, v| {
            assert!(Kind::Ssh.fields().contains(&name));
            seen.push(format!("{name}={v}"));
        });
        assert_eq!(seen, ["version=SSH-2.0-x", "kex=a", "kex=b"]);
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(json["kind"], "ssh");
        let back: Finding = serde_json::from_value(json).unwrap();
        assert_eq!(back, f);
    }

    #[test]
    fn printable_escapes() {
        assert_eq!(printable(b"SSH-2.0\r\n\x00\xff"), "SSH-2.0\\r\\n\\x00\\xff");
        assert_eq!(truncate("abcdef", 3), "abc…");
        assert_eq!(truncate("abc", 3), "abc");
    }
}
