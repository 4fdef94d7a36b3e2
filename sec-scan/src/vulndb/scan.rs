//! The vulnerability check of a scan: detected services in, CVE threats out.
//!
//! A scan's `banner` findings carry what version detection learned — the CPEs its templates
//! produced, the product and version, and the distribution evidence of the banner
//! ([`crate::distro`]). [`query_of`] turns one finding into a [`ServiceQuery`];
//! [`VulnCheck::threats`] matches every finding of a scan and turns each match into a
//! [`Threat`] whose `cve` carries the CVE's facts.

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
        let db = match self.db.lock() {
            Ok(db) => db,
            Err(poisoned) => poisoned.into_inner(),
        };
        for finding in findings {
            let Some(query) = query_of(finding) else {
                continue;
            };
            match db.match_service(&query, &self.options) {
                Ok(matches) => {
                    for m in matches {
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

    #[test]
    fn an_os_cpe_alone_or_a_bare_product_is_no_query() {
        assert!(query_of(&banner(&["cpe:/o:linux:linux_kernel"], None, None)).is_none());
        assert!(query_of(&banner(&[], Some("OpenSSH"), None)).is_none());
        assert!(query_of(&banner(&[], Some("OpenSSH"), Some("9.2p1"))).is_some());
    }
}
