//! From a detected service to CVE threats.
//!
//! The input is a [`ServiceQuery`]: what version detection found (a CPE in either binding, or
//! a product and version), and, when the banner names a distribution package, the evidence for
//! it (`Debian:12`, source package `openssh`, version `1:9.2p1-2+deb12u10`). The output is one
//! [`CveThreat`] per CVE, with its CVSS, KEV and EPSS facts, a [`Confidence`] and the reason.
//!
//! # NVD configurations
//!
//! The detected CPE is normalised ([`normalize_detected`]: OpenSSH `9.2p1` → `9.2` update
//! `p1`), then the `cpe_match` index is read for its product under every vendor alias
//! ([`vendor_aliases`]). Only **application** (`a`) entries with `vulnerable: true` are
//! indexed, so a configuration naming `o:debian:debian_linux:12.0` never flags a Debian host by
//! itself. An entry fires when its criteria covers the detected name (NISTIR 7696) and, if it
//! has bounds, `start ≤/< version ≤/< end` in the [generic order](crate::version::cmp_generic),
//! with the update appended (`9.2` + `p1` = `9.2p1`, so `9.8p1` is not below the bound `9.8`).
//!
//! The configuration of a fired entry is then evaluated as a whole: nodes AND/OR their
//! entries, `negate` inverts, the configuration combines its nodes by its operator. One service
//! cannot see everything: an entry about another product (the platform of an AND, a
//! `vulnerable: false` "running on" entry) is *unknown*. Evaluation is three-valued (Kleene):
//! an AND whose application node fired and whose platform node is unknown is reported, since
//! only the application node can be decided from a banner; an AND that an entry about this very
//! product makes false (a `negate`d version range, another version) is not. A CVE is reported
//! only when a `vulnerable: true` entry for this product fired.
//!
//! # Distribution evidence
//!
//! Banners of distribution packages keep the upstream version while the distribution
//! backports fixes (`OpenSSH_9.2p1 Debian-2+deb12u3` is fixed for CVE-2024-6387). So:
//!
//! | evidence | data | result |
//! |---|---|---|
//! | ecosystem, source package and package version | OSV rows for that ecosystem and package | the distribution decides: version ≥ fixed (dpkg order, epoch included) → not reported; still affected → [`Confidence::Confirmed`] at CVSS severity. CVEs NVD matched that the distribution data does not list → `Unverified` |
//! | ecosystem without package version, or no OSV data for the package | — | NVD matches are [`Confidence::Unverified`], severity `info`; with [`MatchOptions::paranoid`] at their CVSS severity (Nessus's rule for backported builds) |
//! | none (an upstream build) | — | NVD matches are [`Confidence::Confirmed`] |
//!
//! Only `Debian*` and `Ubuntu*` ecosystems are decided (their ranges are in dpkg order).
//!
//! # Severity
//!
//! From the CVSS base score: 0 → `info` (CVSS "none"), 0.1–3.9 low, 4.0–6.9 medium,
//! 7.0–8.9 high, 9.0–10 critical; no score → `info`. A CVE in CISA's KEV catalog is at least
//! `high` whenever it is reported at its CVSS severity.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use rusqlite::{Connection, OptionalExtension as _};
use serde::{Deserialize, Serialize};

use super::nvd::{Config, CpeMatch};
use super::osv::Range;
use super::{Result, VulnDbError};
use crate::cpe::{Attr, Cpe, Part, normalize_detected, vendor_aliases};
use crate::finding::Kind;
use crate::signature::{Severity, Threat};
use crate::version::{DebVersion, cmp_generic, with_update};

/// A detected service, as version detection and banner parsing describe it. Every field is
/// optional; give what is known.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServiceQuery {
    /// The CPE, 2.3 formatted string or URI binding (`cpe:/a:openbsd:openssh:9.2p1`).
    #[serde(default)]
    pub cpe: Option<String>,
    /// The product name (`OpenSSH`), used when there is no CPE (as the CPE product, vendor
    /// unknown) and in messages.
    #[serde(default)]
    pub product: Option<String>,
    /// The upstream version from the banner (`9.2p1`), used when the CPE has none.
    #[serde(default)]
    pub version: Option<String>,
    /// The OSV ecosystem of the distribution (`Debian:12`, `Ubuntu:22.04:LTS`).
    #[serde(default)]
    pub ecosystem: Option<String>,
    /// The distribution's *source* package (`openssh`).
    #[serde(default)]
    pub source_package: Option<String>,
    /// The package version with epoch and revision (`1:9.2p1-2+deb12u10`).
    #[serde(default)]
    pub package_version: Option<String>,
}

/// Matching options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MatchOptions {
    /// Report unverified (possibly backported) matches at their CVSS severity instead of
    /// `info`. Default false.
    pub paranoid: bool,
}

/// How sure a match is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    /// The data decides: an upstream build inside NVD's ranges, or a distribution package
    /// below the distribution's fixed version.
    Confirmed,
    /// Only the banner's upstream version matched; the distribution may have backported the
    /// fix.
    Unverified,
}

/// Which data decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchSource {
    /// NVD configurations (CPE and version ranges).
    Nvd,
    /// The distribution's advisories (OSV ranges in dpkg order).
    Distro,
}

/// The CVSS metric a CVE is reported with (v4.0 > v3.1 > v3.0 > v2, NVD's Primary first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CvssInfo {
    /// CVSS version, e.g. `3.1`.
    pub version: String,
    /// Base score, 0–10.
    pub score: f64,
    /// Vector string, e.g. `CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H`.
    pub vector: Option<String>,
    /// Severity from the score (see the module docs).
    pub severity: Severity,
}

/// The CVE's entry in CISA's Known Exploited Vulnerabilities catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KevInfo {
    /// Date CISA added it (`YYYY-MM-DD`).
    pub date_added: Option<String>,
    /// Remediation due date for US federal agencies.
    pub due_date: Option<String>,
    /// `Known` or `Unknown` use in ransomware campaigns.
    pub ransomware: Option<String>,
    /// CISA's name for the vulnerability.
    pub name: Option<String>,
}

/// The CVE's FIRST EPSS score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpssInfo {
    /// Probability of exploitation activity in the next 30 days, 0–1.
    pub score: f64,
    /// Rank among all scored CVEs, 0–1.
    pub percentile: f64,
}

/// What the match rests on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// The detected CPE after normalisation (2.3 formatted string).
    pub cpe: Option<String>,
    /// The NVD criteria that fired.
    pub criteria: Option<String>,
    /// The product version from the banner or CPE, with its update (`9.2p1`).
    pub product_version: Option<String>,
    /// The distribution ecosystem (`Debian:12`).
    pub ecosystem: Option<String>,
    /// The source package.
    pub package: Option<String>,
    /// The package version.
    pub package_version: Option<String>,
    /// The distribution's first fixed version, when its data names one.
    pub fixed_version: Option<String>,
    /// The distribution advisory that decided (`DSA-5724-1`, `USN-6859-1`).
    pub advisory: Option<String>,
}

/// One CVE that applies to a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CveThreat {
    /// CVE id (or a distribution advisory id when the advisory names no CVE).
    pub cve: String,
    /// The reported severity (see the module docs: CVSS, `info` for unverified, KEV ≥ high).
    pub severity: Severity,
    /// How sure the match is.
    pub confidence: Confidence,
    /// Which data decided.
    pub source: MatchSource,
    /// NVD's English description.
    pub description: Option<String>,
    /// The CVSS metric, when NVD has one.
    pub cvss: Option<CvssInfo>,
    /// The KEV entry, when CISA lists the CVE (from the KEV catalog, else NVD's copy).
    pub kev: Option<KevInfo>,
    /// The EPSS score, when imported.
    pub epss: Option<EpssInfo>,
    /// What the match rests on.
    pub evidence: Evidence,
    /// Reference URLs from NVD.
    pub references: Vec<String>,
    /// Why it was reported, in one sentence.
    pub reason: String,
}

impl CveThreat {
    /// Turns the match into a [`Threat`] of a scan: the CVE id is the signature id, the reason
    /// the evidence, the references include the NVD page.
    pub fn to_threat(&self, host: &str, addr: IpAddr, port: Option<u16>, kind: Kind) -> Threat {
        let product = self
            .evidence
            .package
            .clone()
            .or_else(|| self.evidence.cpe.clone())
            .unwrap_or_default();
        let remediation = match &self.evidence.fixed_version {
            Some(v) => format!("Upgrade {product} to {v} or later."),
            None => "Upgrade to a release that fixes this CVE (see the references).".into(),
        };
        let mut references = vec![format!("https://nvd.nist.gov/vuln/detail/{}", self.cve)];
        references.extend(self.references.iter().take(20).cloned());
        Threat {
            signature_id: self.cve.clone(),
            name: match self.description.as_deref().map(short_description) {
                Some(d) if !d.is_empty() => format!("{}: {d}", self.cve),
                _ => match &self.evidence.product_version {
                    Some(v) => format!("{} in {product} {v}", self.cve),
                    None => format!("{} in {product}", self.cve),
                },
            },
            severity: self.severity,
            host: host.to_string(),
            addr,
            port,
            kind,
            field: "cpe".into(),
            evidence: self.reason.chars().take(400).collect(),
            remediation,
            references,
            confidence: Some(self.confidence),
            cve: Some(Box::new(self.clone())),
        }
    }
}

/// The first sentence of a CVE description, at most about 100 characters (cut at a word).
fn short_description(text: &str) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let first = match text.find(". ") {
        Some(end) => &text[..end],
        None => text.trim_end_matches('.'),
    };
    if first.chars().count() <= 100 {
        return first.to_owned();
    }
    let mut out = String::new();
    for word in first.split(' ') {
        if out.chars().count() + word.chars().count() + 1 > 97 {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out.push('…');
    out
}

/// Severity from a CVSS base score.
pub fn severity_from_score(score: f64) -> Severity {
    if score >= 9.0 {
        Severity::Critical
    } else if score >= 7.0 {
        Severity::High
    } else if score >= 4.0 {
        Severity::Medium
    } else if score > 0.0 {
        Severity::Low
    } else {
        Severity::Info
    }
}

/// Three-valued truth for evaluating configurations with parts the service cannot see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tri {
    True,
    False,
    Unknown,
}

impl Tri {
    fn not(self) -> Tri {
        match self {
            Tri::True => Tri::False,
            Tri::False => Tri::True,
            Tri::Unknown => Tri::Unknown,
        }
    }
    fn combine(and: bool, items: impl Iterator<Item = Tri>) -> Tri {
        let mut any_unknown = false;
        let mut any_true = false;
        let mut any_false = false;
        let mut n = 0;
        for t in items {
            n += 1;
            match t {
                Tri::True => any_true = true,
                Tri::False => any_false = true,
                Tri::Unknown => any_unknown = true,
            }
        }
        if n == 0 {
            return Tri::Unknown;
        }
        if and {
            if any_false {
                Tri::False
            } else if any_unknown {
                Tri::Unknown
            } else {
                Tri::True
            }
        } else if any_true {
            Tri::True
        } else if any_unknown {
            Tri::Unknown
        } else {
            Tri::False
        }
    }
}

/// The detected service, normalised.
struct Detected {
    cpe: Cpe,
    product: String,
    vendors: Vec<String>,
    /// Version with update, for bound comparison.
    full_version: String,
}

impl Detected {
    fn is_about(&self, c: &Cpe) -> bool {
        c.part() == Some(Part::Application)
            && c.product().value().as_deref() == Some(self.product.as_str())
            && (self.vendors.is_empty()
                || c.vendor()
                    .value()
                    .is_some_and(|v| self.vendors.contains(&v)))
    }

    /// Whether one entry (criteria + bounds) covers the service.
    fn entry_matches(
        &self,
        criteria: &Cpe,
        start_incl: Option<&str>,
        start_excl: Option<&str>,
        end_incl: Option<&str>,
        end_excl: Option<&str>,
    ) -> bool {
        let mut crit = criteria.clone();
        // The vendor was checked against the aliases by the caller.
        crit.set_attr(1, Attr::Any);
        let bounded = start_incl.is_some()
            || start_excl.is_some()
            || end_incl.is_some()
            || end_excl.is_some();
        if !bounded {
            return crit.matches(&self.cpe);
        }
        if !matches!(crit.version(), Attr::Any | Attr::Na) {
            // A bound on a named version is not NVD's shape; require the name to match.
            if !crit.matches(&self.cpe) {
                return false;
            }
        }
        crit.set_attr(3, Attr::Any);
        if !crit.matches(&self.cpe) {
            return false;
        }
        self.in_bounds(start_incl, start_excl, end_incl, end_excl)
    }

    /// Whether the version (with update) lies within the bounds that are present.
    fn in_bounds(
        &self,
        start_incl: Option<&str>,
        start_excl: Option<&str>,
        end_incl: Option<&str>,
        end_excl: Option<&str>,
    ) -> bool {
        let v = self.full_version.as_str();
        use std::cmp::Ordering::*;
        start_incl.is_none_or(|b| cmp_generic(v, b) != Less)
            && start_excl.is_none_or(|b| cmp_generic(v, b) == Greater)
            && end_incl.is_none_or(|b| cmp_generic(v, b) != Greater)
            && end_excl.is_none_or(|b| cmp_generic(v, b) == Less)
    }

    fn eval_entry(&self, m: &CpeMatch, fired: &mut Option<String>) -> Tri {
        let Ok(c) = Cpe::parse(&m.criteria) else {
            return Tri::Unknown;
        };
        if !self.is_about(&c) {
            return Tri::Unknown;
        }
        let hit = self.entry_matches(
            &c,
            m.version_start_including.as_deref(),
            m.version_start_excluding.as_deref(),
            m.version_end_including.as_deref(),
            m.version_end_excluding.as_deref(),
        );
        if hit && m.vulnerable && fired.is_none() {
            *fired = Some(m.criteria.clone());
        }
        if hit { Tri::True } else { Tri::False }
    }

    /// Evaluates a configuration; `Some(criteria)` when it applies and a vulnerable entry for
    /// this product fired.
    fn eval_config(&self, config: &Config) -> Option<String> {
        let mut fired = None;
        let nodes: Vec<Tri> = config
            .nodes
            .iter()
            .map(|node| {
                let and = node.operator.as_deref() == Some("AND");
                let t = Tri::combine(
                    and,
                    node.cpe_match
                        .iter()
                        .map(|m| self.eval_entry(m, &mut fired))
                        .collect::<Vec<_>>()
                        .into_iter(),
                );
                if node.negate { t.not() } else { t }
            })
            .collect();
        let and = config.operator.as_deref() == Some("AND");
        let mut result = Tri::combine(and, nodes.into_iter());
        if config.negate {
            result = result.not();
        }
        match result {
            Tri::False => None,
            Tri::True | Tri::Unknown => fired,
        }
    }
}

fn build_detected(query: &ServiceQuery) -> Result<Option<Detected>> {
    let mut cpe = match (&query.cpe, &query.product) {
        (Some(s), _) => Cpe::parse(s).map_err(|e| VulnDbError::Query(e.to_string()))?,
        (None, Some(p)) => Cpe::application("*", p, query.version.as_deref().unwrap_or("*")),
        (None, None) => return Ok(None),
    };
    if cpe.part() != Some(Part::Application) {
        // Only application CPEs are matched; an OS or hardware CPE says nothing about a service.
        return Ok(None);
    }
    if cpe.version() == &Attr::Any
        && let Some(v) = &query.version
        && !v.trim().is_empty()
    {
        let with = Cpe::application("x", "x", v);
        cpe.set_attr(3, with.version().clone());
    }
    let cpe = normalize_detected(&cpe);
    let Some(product) = cpe.product().value() else {
        return Ok(None);
    };
    let Some(version) = cpe.version().literal().map(str::to_string) else {
        return Ok(None);
    };
    let vendors = match cpe.vendor().value() {
        Some(v) => vendor_aliases(&v, &product),
        None => vendor_aliases("", &product),
    };
    let full_version = with_update(&version, cpe.update().literal());
    Ok(Some(Detected {
        cpe,
        product,
        vendors,
        full_version,
    }))
}

/// NVD matches: CVE id → the criteria that fired.
fn nvd_matches(conn: &Connection, det: &Detected) -> Result<BTreeMap<String, String>> {
    // (cve, config) whose configuration must be evaluated, and the criteria that fired.
    let mut to_evaluate: BTreeSet<(String, i64)> = BTreeSet::new();
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let det_version = det.cpe.version().literal().unwrap_or("");
    let det_update = det.cpe.update();
    let mut run = |sql: &str, params: &[&dyn rusqlite::ToSql]| -> Result<()> {
        let mut stmt = conn.prepare_cached(sql)?;
        let mut rows = stmt.query(params)?;
        while let Some(r) = rows.next()? {
            let cve = r.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
            if out.contains_key(cve) {
                continue;
            }
            let config: i64 = r.get(1)?;
            let b: [Option<&str>; 4] = [
                r.get_ref(3)?
                    .as_str_or_null()
                    .map_err(rusqlite::Error::from)?,
                r.get_ref(4)?
                    .as_str_or_null()
                    .map_err(rusqlite::Error::from)?,
                r.get_ref(5)?
                    .as_str_or_null()
                    .map_err(rusqlite::Error::from)?,
                r.get_ref(6)?
                    .as_str_or_null()
                    .map_err(rusqlite::Error::from)?,
            ];
            let version = r.get_ref(7)?.as_str().map_err(rusqlite::Error::from)?;
            let upd = r.get_ref(8)?.as_str().map_err(rusqlite::Error::from)?;
            let simple: bool = r.get(9)?;
            let config_simple: bool = r.get(10)?;
            let plain = |v: &str| !v.contains(['*', '?', '\\']) || v == "*";
            let hit = if simple && plain(version) && plain(upd) {
                // Fast path: decide from the stored version and update.
                let update_ok = match upd {
                    "*" => true,
                    "-" => matches!(det_update, Attr::Na | Attr::Any),
                    u => det_update.literal() == Some(u),
                };
                let bounded = b.iter().any(Option::is_some);
                update_ok
                    && match version {
                        "*" => !bounded || det.in_bounds(b[0], b[1], b[2], b[3]),
                        "-" => false,
                        v => !bounded && v == det_version,
                    }
            } else {
                let criteria = r.get_ref(2)?.as_str().map_err(rusqlite::Error::from)?;
                match Cpe::parse(criteria) {
                    Ok(c) => det.entry_matches(&c, b[0], b[1], b[2], b[3]),
                    Err(_) => false,
                }
            };
            if !hit {
                continue;
            }
            if config_simple {
                let criteria: String = r.get(2)?;
                out.insert(cve.to_string(), criteria);
            } else {
                to_evaluate.insert((cve.to_string(), config));
            }
        }
        Ok(())
    };
    const COLS: &str = "SELECT cve_id, config_idx, criteria, start_incl, start_excl, end_incl, \
                        end_excl, version, upd, simple, config_simple FROM cpe_match";
    if det.vendors.is_empty() {
        run(&format!("{COLS} WHERE product = ?1"), &[&det.product])?;
    } else {
        for v in &det.vendors {
            run(
                &format!("{COLS} WHERE product = ?1 AND vendor = ?2"),
                &[&det.product, v],
            )?;
        }
    }
    let mut stmt =
        conn.prepare_cached("SELECT json FROM cve_config WHERE cve_id = ?1 AND idx = ?2")?;
    for (cve, idx) in to_evaluate {
        if out.contains_key(&cve) {
            continue;
        }
        let json: Option<String> = stmt.query_row((&cve, idx), |r| r.get(0)).optional()?;
        let Some(json) = json else { continue };
        let Ok(config) = serde_json::from_str::<Config>(&json) else {
            continue;
        };
        if let Some(criteria) = det.eval_config(&config) {
            out.insert(cve, criteria);
        }
    }
    Ok(out)
}

/// What the distribution data says about one CVE for the installed package version.
struct DistroVerdict {
    affected: bool,
    fixed: Option<String>,
    advisory: String,
}

fn range_affects(range: &Range, v: &DebVersion) -> Option<(bool, Option<String>)> {
    // Events sorted by version, `introduced: 0` first; walk them (OSV's evaluation).
    let mut events: Vec<(DebVersion, u8, String)> = Vec::new();
    for e in &range.events {
        let (kind, ver) = if let Some(i) = &e.introduced {
            (0u8, i)
        } else if let Some(f) = &e.fixed {
            (1, f)
        } else if let Some(l) = &e.last_affected {
            (2, l)
        } else {
            continue;
        };
        let parsed = if kind == 0 && ver == "0" {
            DebVersion::parse("0").ok()?
        } else {
            DebVersion::parse(ver).ok()?
        };
        events.push((parsed, kind, ver.clone()));
    }
    events.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut affected = false;
    let mut fixed = None;
    for (ev, kind, raw) in &events {
        match kind {
            0 if ev <= v => affected = true,
            1 => {
                if ev <= v {
                    affected = false;
                } else if fixed.is_none() {
                    fixed = Some(raw.clone());
                }
            }
            2 if ev < v => affected = false,
            _ => {}
        }
    }
    Some((affected, fixed))
}

fn distro_verdicts(
    conn: &Connection,
    ecosystem: &str,
    package: &str,
    version: &DebVersion,
) -> Result<BTreeMap<String, DistroVerdict>> {
    let mut stmt = conn.prepare_cached(
        "SELECT cve_id, osv_id, ranges, versions FROM osv_affected WHERE ecosystem = ?1 AND package = ?2",
    )?;
    let mut rows = stmt.query((ecosystem, package))?;
    let mut out: BTreeMap<String, DistroVerdict> = BTreeMap::new();
    while let Some(r) = rows.next()? {
        let cve: String = r.get(0)?;
        let osv_id: String = r.get(1)?;
        let ranges: Vec<Range> = serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or_default();
        let versions: Vec<String> =
            serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default();
        let mut affected = versions
            .iter()
            .any(|x| DebVersion::parse(x).is_ok_and(|x| &x == version));
        let mut fixed = None;
        for range in &ranges {
            if let Some((a, f)) = range_affects(range, version) {
                affected |= a;
                if fixed.is_none() {
                    fixed = f;
                }
            }
        }
        let entry = out.entry(cve).or_insert(DistroVerdict {
            affected: false,
            fixed: None,
            advisory: osv_id.clone(),
        });
        if affected && !entry.affected {
            entry.advisory = osv_id;
            entry.affected = true;
        }
        if entry.fixed.is_none() {
            entry.fixed = fixed;
        }
    }
    Ok(out)
}

struct CveRow {
    description: Option<String>,
    cvss: Option<CvssInfo>,
    kev: Option<KevInfo>,
    references: Vec<String>,
}

/// NVD, KEV and EPSS facts of one CVE, in one query.
fn details(
    conn: &Connection,
    cve: &str,
) -> Result<(Option<CveRow>, Option<KevInfo>, Option<EpssInfo>)> {
    let mut stmt = conn.prepare_cached(
        "SELECT c.id, c.description, c.cvss_version, c.cvss_score, c.cvss_vector, c.kev_added,
                c.kev_due, c.kev_name, c.refs,
                k.cve_id, k.date_added, k.due_date, k.ransomware, k.name,
                e.score, e.percentile
         FROM (SELECT ?1 AS id) q
         LEFT JOIN cve c ON c.id = q.id
         LEFT JOIN kev k ON k.cve_id = q.id
         LEFT JOIN epss e ON e.cve_id = q.id",
    )?;
    Ok(stmt.query_row([cve], |r| {
        let nvd = match r.get::<_, Option<String>>(0)? {
            None => None,
            Some(_) => {
                let version: Option<String> = r.get(2)?;
                let score: Option<f64> = r.get(3)?;
                let kev_added: Option<String> = r.get(5)?;
                let refs: Option<String> = r.get(8)?;
                Some(CveRow {
                    description: r.get(1)?,
                    cvss: match (version, score) {
                        (Some(version), Some(score)) => Some(CvssInfo {
                            version,
                            score,
                            vector: r.get(4)?,
                            severity: severity_from_score(score),
                        }),
                        _ => None,
                    },
                    kev: match kev_added {
                        Some(added) => Some(KevInfo {
                            date_added: Some(added),
                            due_date: r.get(6)?,
                            ransomware: None,
                            name: r.get(7)?,
                        }),
                        None => None,
                    },
                    references: refs
                        .and_then(|s| serde_json::from_str(&s).ok())
                        .unwrap_or_default(),
                })
            }
        };
        let kev = match r.get::<_, Option<String>>(9)? {
            None => None,
            Some(_) => Some(KevInfo {
                date_added: r.get(10)?,
                due_date: r.get(11)?,
                ransomware: r.get(12)?,
                name: r.get(13)?,
            }),
        };
        let epss = match (r.get::<_, Option<f64>>(14)?, r.get::<_, Option<f64>>(15)?) {
            (Some(score), Some(percentile)) => Some(EpssInfo { score, percentile }),
            _ => None,
        };
        Ok((nvd, kev, epss))
    })?)
}

pub(super) fn match_service(
    conn: &Connection,
    query: &ServiceQuery,
    options: &MatchOptions,
) -> Result<Vec<CveThreat>> {
    let det = build_detected(query)?;
    let nvd = match &det {
        Some(d) => nvd_matches(conn, d)?,
        None => BTreeMap::new(),
    };
    let ecosystem = query.ecosystem.as_deref().filter(|s| !s.trim().is_empty());
    let package = query
        .source_package
        .clone()
        .or_else(|| det.as_ref().map(|d| d.product.clone()));
    let pkg_version = query
        .package_version
        .as_deref()
        .and_then(|v| DebVersion::parse(v).ok());
    // The distribution decides when it has data for this package and the version is known.
    let mut distro: Option<BTreeMap<String, DistroVerdict>> = None;
    if let (Some(eco), Some(pkg), Some(ver)) = (ecosystem, &package, &pkg_version)
        && (eco.starts_with("Debian") || eco.starts_with("Ubuntu"))
    {
        let verdicts = distro_verdicts(conn, eco, pkg, ver)?;
        if !verdicts.is_empty() {
            distro = Some(verdicts);
        }
    }
    let base_evidence = Evidence {
        cpe: det.as_ref().map(|d| d.cpe.to_string()),
        criteria: None,
        product_version: det.as_ref().map(|d| d.full_version.clone()),
        ecosystem: ecosystem.map(str::to_string),
        package: ecosystem.and(package.clone()),
        package_version: query.package_version.clone(),
        fixed_version: None,
        advisory: None,
    };
    struct Pending {
        cve: String,
        confidence: Confidence,
        source: MatchSource,
        evidence: Evidence,
        reason: String,
    }
    let mut pending: Vec<Pending> = Vec::new();
    let what = det
        .as_ref()
        .map(|d| format!("{} {}", d.product, d.full_version))
        .unwrap_or_else(|| package.clone().unwrap_or_default());
    match &distro {
        Some(verdicts) => {
            let eco = ecosystem.unwrap_or_default();
            let pv = query.package_version.as_deref().unwrap_or_default();
            for (cve, v) in verdicts {
                if !v.affected {
                    continue;
                }
                let mut evidence = base_evidence.clone();
                evidence.criteria = nvd.get(cve).cloned();
                evidence.fixed_version = v.fixed.clone();
                evidence.advisory = Some(v.advisory.clone());
                let fix = match &v.fixed {
                    Some(f) => format!("below the fixed {f}"),
                    None => "with no fixed version yet".into(),
                };
                pending.push(Pending {
                    cve: cve.clone(),
                    confidence: Confidence::Confirmed,
                    source: MatchSource::Distro,
                    evidence,
                    reason: format!(
                        "{eco} package {} {pv} is affected according to {} ({fix})",
                        package.as_deref().unwrap_or_default(),
                        v.advisory
                    ),
                });
            }
            for (cve, criteria) in &nvd {
                if verdicts.contains_key(cve) {
                    continue;
                }
                let mut evidence = base_evidence.clone();
                evidence.criteria = Some(criteria.clone());
                pending.push(Pending {
                    cve: cve.clone(),
                    confidence: Confidence::Unverified,
                    source: MatchSource::Nvd,
                    evidence,
                    reason: format!(
                        "{what} matches NVD criteria {criteria}, but the {eco} data does not list \
                         this CVE for the package; the fix may be backported"
                    ),
                });
            }
        }
        None => {
            for (cve, criteria) in &nvd {
                let mut evidence = base_evidence.clone();
                evidence.criteria = Some(criteria.clone());
                let (confidence, reason) = match ecosystem {
                    None => (
                        Confidence::Confirmed,
                        format!("{what} matches NVD criteria {criteria}"),
                    ),
                    Some(eco) => (
                        Confidence::Unverified,
                        format!(
                            "{what} matches NVD criteria {criteria}; the banner names {eco}, whose \
                             advisory data for this package{} is not in the database, so the fix \
                             may be backported",
                            if pkg_version.is_none() {
                                " and version"
                            } else {
                                ""
                            }
                        ),
                    ),
                };
                pending.push(Pending {
                    cve: cve.clone(),
                    confidence,
                    source: MatchSource::Nvd,
                    evidence,
                    reason,
                });
            }
        }
    }
    let mut out = Vec::with_capacity(pending.len());
    for p in pending {
        let (row, kev, epss) = details(conn, &p.cve)?;
        let kev = kev.or_else(|| row.as_ref().and_then(|r| r.kev.clone()));
        let cvss = row.as_ref().and_then(|r| r.cvss.clone());
        let cvss_severity = cvss.as_ref().map(|c| c.severity).unwrap_or(Severity::Info);
        let at_cvss = p.confidence == Confidence::Confirmed || options.paranoid;
        let severity = if at_cvss {
            if kev.is_some() {
                cvss_severity.max(Severity::High)
            } else {
                cvss_severity
            }
        } else {
            Severity::Info
        };
        out.push(CveThreat {
            epss,
            cve: p.cve,
            severity,
            confidence: p.confidence,
            source: p.source,
            description: row.as_ref().and_then(|r| r.description.clone()),
            cvss,
            kev,
            evidence: p.evidence,
            references: row.map(|r| r.references).unwrap_or_default(),
            reason: p.reason,
        });
    }
    out.sort_by(|a, b| {
        b.kev
            .is_some()
            .cmp(&a.kev.is_some())
            .then(b.severity.cmp(&a.severity))
            .then(a.cve.cmp(&b.cve))
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threat_names_take_the_first_sentence_of_the_description() {
        assert_eq!(
            short_description(
                "A signal handler race condition was found in OpenSSH's server (sshd). If a client does not authenticate..."
            ),
            "A signal handler race condition was found in OpenSSH's server (sshd)"
        );
        let long = "word ".repeat(60);
        let short = short_description(&long);
        assert!(
            short.chars().count() <= 100 && short.ends_with('…'),
            "{short}"
        );
        assert_eq!(short_description(""), "");
    }
    use crate::vulndb::osv::Event;

    #[test]
    fn severity_thresholds() {
        assert_eq!(severity_from_score(0.0), Severity::Info);
        assert_eq!(severity_from_score(3.9), Severity::Low);
        assert_eq!(severity_from_score(4.0), Severity::Medium);
        assert_eq!(severity_from_score(8.1), Severity::High);
        assert_eq!(severity_from_score(9.0), Severity::Critical);
    }

    #[test]
    fn osv_range_walk() {
        let ev = |i: Option<&str>, f: Option<&str>, l: Option<&str>| Event {
            introduced: i.map(Into::into),
            fixed: f.map(Into::into),
            last_affected: l.map(Into::into),
            limit: None,
        };
        let r = Range {
            kind: "ECOSYSTEM".into(),
            events: vec![
                ev(Some("0"), None, None),
                ev(None, Some("1:9.2p1-2+deb12u3"), None),
            ],
        };
        let v = |s: &str| DebVersion::parse(s).unwrap();
        assert!(range_affects(&r, &v("1:9.2p1-2+deb12u2")).unwrap().0);
        assert!(!range_affects(&r, &v("1:9.2p1-2+deb12u3")).unwrap().0);
        assert!(!range_affects(&r, &v("1:9.2p1-2+deb12u10")).unwrap().0);
        let last = Range {
            kind: "ECOSYSTEM".into(),
            events: vec![ev(Some("1.0"), None, None), ev(None, None, Some("1.5"))],
        };
        assert!(range_affects(&last, &v("1.5")).unwrap().0);
        assert!(!range_affects(&last, &v("1.6")).unwrap().0);
        assert!(!range_affects(&last, &v("0.9")).unwrap().0);
    }
}
