//! The vulnerability check of a scan: detected services in, CVE threats out.
//!
//! A scan's `banner` findings carry what version detection learned — the CPEs its templates
//! produced, the product and version, and the distribution evidence of the banner
//! ([`crate::distro`]). [`query_of`] turns one finding into a [`ServiceQuery`];
//! [`VulnCheck::threats`] matches every finding of a scan and turns each match into a
//! [`Threat`] whose `cve` carries the CVE's facts.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::cpe::{Cpe, Part};
use crate::finding::{Detail, Finding};
use crate::signature::Threat;

use super::{MatchOptions, ServiceQuery, VulnDb};

/// A database a scan matches its findings against, with the reporting options. Cloning shares
/// the database (one SQLite connection behind a lock: a match takes microseconds).
#[derive(Debug, Clone)]
pub struct VulnCheck {
    db: Arc<Mutex<VulnDb>>,
    /// How matches are reported (`paranoid`).
    pub options: MatchOptions,
}

impl VulnCheck {
    /// A check over `db`.
    pub fn new(db: VulnDb, options: MatchOptions) -> VulnCheck {
        VulnCheck {
            db: Arc::new(Mutex::new(db)),
            options,
        }
    }

    /// The CVE threats of `findings`: each banner finding that names an application (a CPE, or
    /// a product and version) is matched; each (CVE, address, port) is reported once. Errors
    /// (a damaged database) are returned beside the threats found before them.
    pub fn threats(&self, findings: &[Finding]) -> (Vec<Threat>, Vec<String>) {
        let mut threats: Vec<Threat> = Vec::new();
        let mut errors = Vec::new();
        let hosts = host_distributions(findings);
        let db = match self.db.lock() {
            Ok(db) => db,
            Err(poisoned) => poisoned.into_inner(),
        };
        for finding in findings {
            let Some(mut query) = query_of(finding) else {
                continue;
            };
            // A service whose banner names no distribution, on a host where another one does
            // (Debian's nginx says `nginx/1.22.1`, its OpenSSH `Debian-2+deb12u10`), is
            // probably that distribution's package: its version cannot decide a CVE alone.
            let inferred = match (&query.ecosystem, hosts.get(&finding.addr)) {
                (None, Some(eco)) if !marks_its_builds(&query) => {
                    query.ecosystem = Some(eco.clone());
                    true
                }
                _ => false,
            };
            match db.match_service(&query, &self.options) {
                Ok(matches) => {
                    for mut m in matches {
                        if inferred {
                            m.reason = format!(
                                "{} {} matches NVD criteria {}; another service on this host names {}, so this is probably its package, whose fix may be backported",
                                query.product.as_deref().unwrap_or("the service"),
                                query.version.as_deref().unwrap_or(""),
                                m.evidence.criteria.as_deref().unwrap_or("?"),
                                query.ecosystem.as_deref().unwrap_or("a distribution"),
                            );
                        }
                        let t =
                            m.to_threat(&finding.host, finding.addr, finding.port, finding.kind());
                        if !threats.iter().any(|o| {
                            o.signature_id == t.signature_id && o.addr == t.addr && o.port == t.port
                        }) {
                            threats.push(t);
                        }
                    }
                }
                Err(e) => errors.push(format!(
                    "{}:{}: vulnerability matching failed: {e}",
                    finding.addr,
                    finding.port.unwrap_or(0)
                )),
            }
        }
        (threats, errors)
    }
}

/// The distribution each host's services name, by address: the OSV ecosystem when a banner
/// gives the release (`Debian:12`), else the distribution's name (`Debian`).
fn host_distributions(findings: &[Finding]) -> HashMap<IpAddr, String> {
    let mut out: HashMap<IpAddr, String> = HashMap::new();
    for f in findings {
        let named = match &f.detail {
            Detail::Banner {
                ecosystem: Some(e), ..
            } => Some(e.clone()),
            Detail::Banner {
                distro: Some(d), ..
            } => Some(capitalised(d)),
            Detail::Ssh { version, .. } => crate::distro::from_ssh_ident(version)
                .map(|e| e.ecosystem.unwrap_or_else(|| capitalised(&e.distro))),
            Detail::Http {
                server: Some(s), ..
            } => crate::distro::from_server_header(s)
                .map(|e| e.ecosystem.unwrap_or_else(|| capitalised(&e.distro))),
            _ => None,
        };
        if let Some(name) = named {
            // A release beats a bare name.
            let better = out
                .get(&f.addr)
                .is_none_or(|old| !old.contains(':') && name.contains(':'));
            if better {
                out.insert(f.addr, name);
            }
        }
    }
    out
}

/// Products whose distribution builds say so in their banners by default (Debian's and
/// Ubuntu's OpenSSH add `Debian-…`/`Ubuntu-…`, their Apache `(Debian)`): one of them without the
/// mark is not the distribution's package, whatever the host's other services say.
fn marks_its_builds(query: &ServiceQuery) -> bool {
    let cpe = query.cpe.as_deref().unwrap_or("");
    let product = query.product.as_deref().unwrap_or("").to_ascii_lowercase();
    cpe.contains(":openssh:")
        || cpe.contains(":http_server:")
        || product == "openssh"
        || product.starts_with("apache httpd")
}

fn capitalised(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The matcher's query for one finding: a `banner` finding with an application CPE, or with a
/// product and a version. Operating-system and hardware CPEs are never queried (an OS CPE
/// would match every CVE of the distribution).
pub fn query_of(finding: &Finding) -> Option<ServiceQuery> {
    let Detail::Banner {
        product,
        version,
        cpe,
        ecosystem,
        package,
        package_version,
        ..
    } = &finding.detail
    else {
        return None;
    };
    let application = cpe.iter().find(|c| {
        c.parse::<Cpe>()
            .ok()
            .is_some_and(|p| p.part() == Some(Part::Application))
    });
    if application.is_none() && (product.is_none() || version.is_none()) {
        return None;
    }
    Some(ServiceQuery {
        cpe: application.cloned(),
        product: product.clone(),
        version: version.clone(),
        ecosystem: ecosystem.clone(),
        source_package: package.clone(),
        package_version: package_version.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn banner(cpe: &[&str], product: Option<&str>, version: Option<&str>) -> Finding {
        let json = serde_json::json!({
            "host": "127.0.0.1", "addr": "127.0.0.1", "port": 22, "kind": "banner",
            "service": "ssh", "product": product, "version": version, "text": "",
            "cpe": cpe, "ecosystem": "Debian:12", "package": "openssh",
            "package_version": "1:9.2p1-2+deb12u10",
        });
        serde_json::from_value(json).expect("a banner finding")
    }

    #[test]
    fn application_cpes_and_distribution_evidence_make_the_query() {
        let f = banner(
            &["cpe:/o:linux:linux_kernel", "cpe:/a:openbsd:openssh:9.2p1"],
            Some("OpenSSH"),
            Some("9.2p1"),
        );
        let q = query_of(&f).expect("a query");
        assert_eq!(q.cpe.as_deref(), Some("cpe:/a:openbsd:openssh:9.2p1"));
        assert_eq!(q.ecosystem.as_deref(), Some("Debian:12"));
        assert_eq!(q.package_version.as_deref(), Some("1:9.2p1-2+deb12u10"));
    }

    fn finding(port: u16, detail: serde_json::Value) -> Finding {
        let mut json = serde_json::json!({"host": "127.0.0.1", "addr": "127.0.0.1", "port": port});
        json.as_object_mut()
            .unwrap()
            .extend(detail.as_object().unwrap().clone());
        serde_json::from_value(json).expect("a finding")
    }

    #[test]
    fn a_distribution_named_by_one_service_covers_the_hosts_others() {
        let mut db = VulnDb::open_in_memory().unwrap();
        let nvd = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/vuln/nvdcve-2.0-sample.json");
        db.import_path(&nvd, &mut |_| {}).unwrap();
        let check = VulnCheck::new(db, MatchOptions::default());
        // nginx 1.18.0 is inside CVE-2021-23017's range (0.6.18 to 1.20.0).
        let nginx = finding(
            80,
            serde_json::json!({"kind": "banner", "service": "http", "product": "nginx",
                               "version": "1.18.0", "text": "", "cpe": ["cpe:/a:igor_sysoev:nginx:1.18.0"]}),
        );
        let (alone, _) = check.threats(std::slice::from_ref(&nginx));
        let t = alone
            .iter()
            .find(|t| t.signature_id == "CVE-2021-23017")
            .expect("matched");
        assert_eq!(t.confidence, Some(crate::vulndb::Confidence::Confirmed));
        assert!(t.severity > crate::Severity::Info);

        let debian_ssh = finding(
            22,
            serde_json::json!({"kind": "ssh", "version": "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10",
                               "kex": [], "host_key": [], "cipher": [], "mac": []}),
        );
        let (beside, _) = check.threats(&[debian_ssh, nginx]);
        let t = beside
            .iter()
            .find(|t| t.signature_id == "CVE-2021-23017")
            .expect("matched");
        assert_eq!(t.confidence, Some(crate::vulndb::Confidence::Unverified));
        assert_eq!(t.severity, crate::Severity::Info);
        assert!(
            t.evidence
                .contains("another service on this host names Debian:12"),
            "{}",
            t.evidence
        );
    }

    #[test]
    fn an_os_cpe_alone_or_a_bare_product_is_no_query() {
        assert!(query_of(&banner(&["cpe:/o:linux:linux_kernel"], None, None)).is_none());
        assert!(query_of(&banner(&[], Some("OpenSSH"), None)).is_none());
        assert!(query_of(&banner(&[], Some("OpenSSH"), Some("9.2p1"))).is_some());
    }
}
