//! Threat signatures: a documented TOML format, a built-in default set, and one-pass matching
//! per finding field.
//!
//! # File format
//!
//! A signature file is TOML with one `[[signature]]` table per signature:
//!
//! ```toml
//! [[signature]]
//! id = "ssh-weak-kex"                       # unique, [a-z0-9._-]
//! name = "SSH server offers a weak key exchange"
//! severity = "high"                         # info | low | medium | high | critical
//! kind = "ssh"                              # which finding kind (see the finding module)
//! field = "kex"                             # which field of that kind
//! regex = '^diffie-hellman-group1-sha1$'    # a regex (Rust `regex` syntax, no look-around) ...
//! # literal = "diffie-hellman-group1-sha1"  # ... or a literal substring; exactly one of the two
//! case_insensitive = false                  # optional, default false
//! remediation = "Disable diffie-hellman-group1-sha1 in sshd_config (KexAlgorithms)."
//! references = ["CVE-2015-4000", "https://weakdh.org/"]   # optional
//! description = "..."                       # optional
//! version_check = false                     # optional: the signature judges a product version
//! ```
//!
//! # Signatures that judge a version
//!
//! A signature with `version_check = true` (the built-in `openssh-outdated`,
//! `openssh-regresshion`, `apache-outdated`, `apache-path-traversal`, `nginx-outdated`) reads a
//! product version from a banner. Distributions backport fixes without changing the upstream
//! version: Debian's `OpenSSH_9.2p1 Debian-2+deb12u10` is not affected by regreSSHion, although
//! 9.2p1 upstream is. Such signatures follow the rule of the vulnerability matcher
//! ([`crate::vulndb`]) — [`VersionRule`]:
//!
//! - the matched finding names no distribution: the threat stands, `confidence: confirmed`;
//! - it names one ([`crate::distro::names_distribution`]): `confidence: unverified`, reported at
//!   `info` — or at the signature's severity under [`VersionRule::Paranoid`] (Nessus's rule for
//!   backported packages);
//! - [`VersionRule::StepAside`]: not evaluated at all, because a vulnerability database is
//!   loaded and the matcher decides versions with the distribution's own data.
//!
//! Unknown keys, unknown kinds, fields that the kind does not have, duplicate ids and bad
//! regexes are errors that name the line.
//!
//! # Matching
//!
//! Signatures are grouped by `(kind, field)`. Each group's regexes compile into one
//! [`regex::RegexSet`] and its literals into one Aho-Corasick automaton, so a field value is
//! scanned once whatever the number of signatures. A signature only ever sees the field it
//! names: matching never runs over a dump of all fields, where a pattern could match across
//! unrelated values.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;

use aho_corasick::AhoCorasick;
use regex::{RegexSet, RegexSetBuilder};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::error::{Error, Result};
use crate::finding::{Finding, Kind, truncate};

/// How bad a threat is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing.
    #[default]
    Info,
    /// Minor.
    Low,
    /// Should be fixed.
    Medium,
    /// Fix soon.
    High,
    /// Fix now.
    Critical,
}

impl Severity {
    /// The lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "info" => Ok(Severity::Info),
            "low" => Ok(Severity::Low),
            "medium" => Ok(Severity::Medium),
            "high" => Ok(Severity::High),
            "critical" => Ok(Severity::Critical),
            _ => Err(format!(
                "unknown severity {s:?} (info, low, medium, high, critical)"
            )),
        }
    }
}

/// What a signature looks for in its field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pattern {
    /// A regular expression (searched, not anchored unless it says so).
    Regex(String),
    /// A literal substring.
    Literal(String),
}

/// One signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Signature {
    /// Unique id.
    pub id: String,
    /// Short name.
    pub name: String,
    /// Severity of a match.
    pub severity: Severity,
    /// Finding kind it applies to.
    pub kind: Kind,
    /// Field of that kind.
    pub field: &'static str,
    /// What to look for.
    pub pattern: Pattern,
    /// Case-insensitive matching.
    pub case_insensitive: bool,
    /// What to do about it.
    pub remediation: String,
    /// CVEs and links.
    pub references: Vec<String>,
    /// Longer explanation.
    pub description: Option<String>,
    /// The signature judges a product version from a banner (see the module docs).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub version_check: bool,
}

/// What signatures with `version_check = true` do (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VersionRule {
    /// A banner that names a distribution gives an `unverified` threat at `info`.
    #[default]
    Default,
    /// A banner that names a distribution gives an `unverified` threat at the signature's
    /// severity (`--paranoid`).
    Paranoid,
    /// Version signatures are not evaluated: a vulnerability database decides versions.
    StepAside,
}

/// How sure a threat is.
pub use crate::vulndb::Confidence;

/// A signature that matched a finding: the verdict shown to the operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Threat {
    /// Signature id.
    pub signature_id: String,
    /// Signature name.
    pub name: String,
    /// Severity.
    pub severity: Severity,
    /// Host as named by the operator.
    pub host: String,
    /// Address contacted.
    pub addr: IpAddr,
    /// Port, if the finding had one.
    pub port: Option<u16>,
    /// Kind of the matched finding.
    pub kind: Kind,
    /// Field that matched.
    pub field: String,
    /// The matched field value (capped at 200 characters); for a CVE threat, why it was
    /// reported (capped at 400).
    pub evidence: String,
    /// What to do.
    pub remediation: String,
    /// CVEs and links.
    pub references: Vec<String>,
    /// How sure the threat is: set for version judgements (version signatures and CVE
    /// matches), absent for configuration findings, which are observed directly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<Confidence>,
    /// The CVE's facts (CVSS, KEV, EPSS, evidence) for a threat from the vulnerability
    /// database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cve: Option<Box<crate::vulndb::CveThreat>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    signature: Vec<Spanned<RawSignature>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSignature {
    id: Spanned<String>,
    name: String,
    severity: Spanned<String>,
    kind: Spanned<String>,
    field: Spanned<String>,
    regex: Option<Spanned<String>>,
    literal: Option<Spanned<String>>,
    #[serde(default)]
    case_insensitive: bool,
    remediation: String,
    #[serde(default)]
    references: Vec<String>,
    description: Option<String>,
    #[serde(default)]
    version_check: bool,
}

/// The signatures of one `(kind, field)`, compiled.
#[derive(Debug)]
struct Group {
    field: &'static str,
    regexes: Option<RegexSet>,
    regex_ids: Vec<usize>,
    literals: Option<AhoCorasick>,
    literal_ids: Vec<usize>,
    literals_ci: Option<AhoCorasick>,
    literal_ci_ids: Vec<usize>,
}

impl Group {
    /// Indices of the signatures matching `value`, in one pass per automaton.
    fn matches(&self, value: &str, out: &mut Vec<usize>) {
        if let Some(set) = &self.regexes {
            out.extend(set.matches(value).iter().map(|i| self.regex_ids[i]));
        }
        for (ac, ids) in [
            (&self.literals, &self.literal_ids),
            (&self.literals_ci, &self.literal_ci_ids),
        ] {
            if let Some(ac) = ac {
                let mut seen = vec![false; ids.len()];
                for m in ac.find_overlapping_iter(value) {
                    let p = m.pattern().as_usize();
                    if !seen[p] {
                        seen[p] = true;
                        out.push(ids[p]);
                    }
                }
            }
        }
    }
}

/// Compiled signatures, ready to match findings.
#[derive(Debug)]
pub struct SignatureSet {
    signatures: Vec<Signature>,
    groups: HashMap<Kind, Vec<Group>>,
    version_rule: VersionRule,
}

const BUILTIN: &str = include_str!("../signatures/default.toml");

/// Sorts threats as scans report them: most severe first, then KEV-listed CVEs, then by EPSS
/// score, then by address and port.
pub fn sort_threats(threats: &mut [Threat]) {
    let kev = |t: &Threat| t.cve.as_ref().is_some_and(|c| c.kev.is_some());
    let epss = |t: &Threat| {
        t.cve
            .as_ref()
            .and_then(|c| c.epss.as_ref())
            .map_or(0.0, |e| e.score)
    };
    threats.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(kev(b).cmp(&kev(a)))
            .then(epss(b).total_cmp(&epss(a)))
            .then(a.addr.cmp(&b.addr))
            .then(a.port.cmp(&b.port))
    });
}

/// Whether the finding a version signature matched says it is a distribution's build.
fn names_distribution(finding: &Finding, evidence: &str) -> bool {
    match &finding.detail {
        crate::finding::Detail::Banner {
            distro: Some(_), ..
        } => true,
        crate::finding::Detail::Banner { text, .. } => {
            crate::distro::names_distribution(text) || crate::distro::names_distribution(evidence)
        }
        _ => crate::distro::names_distribution(evidence),
    }
}

impl SignatureSet {
    /// The built-in default set (see `signatures/default.toml` in this crate).
    pub fn builtin() -> SignatureSet {
        SignatureSet::from_toml(BUILTIN, "built-in").expect("the built-in signatures are valid")
    }

    /// The text of the built-in set, a starting point for a custom file.
    pub fn builtin_source() -> &'static str {
        BUILTIN
    }

    /// Reads and compiles a signature file.
    pub fn load(path: &Path) -> Result<SignatureSet> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Signature {
            origin: path.display().to_string(),
            line: 0,
            message: format!("cannot read: {e}"),
        })?;
        SignatureSet::from_toml(&text, &path.display().to_string())
    }

    /// Parses and compiles signatures from TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<SignatureSet> {
        let err = |offset: Option<usize>, message: String| Error::Signature {
            origin: origin.to_owned(),
            line: offset.map_or(0, |o| line_of(text, o)),
            message,
        };
        let raw: RawFile = toml::from_str(text)
            .map_err(|e| err(e.span().map(|s| s.start), e.message().trim().to_owned()))?;
        let mut signatures = Vec::with_capacity(raw.signature.len());
        let mut ids = HashSet::new();
        for spanned in raw.signature {
            let table_at = spanned.span().start;
            let r = spanned.into_inner();
            let id = r.id.get_ref();
            if id.is_empty()
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            {
                return Err(err(
                    Some(r.id.span().start),
                    format!("id {id:?} must be non-empty and use only [A-Za-z0-9._-]"),
                ));
            }
            if !ids.insert(id.clone()) {
                return Err(err(Some(r.id.span().start), format!("duplicate id {id:?}")));
            }
            let severity = r
                .severity
                .get_ref()
                .parse()
                .map_err(|m| err(Some(r.severity.span().start), m))?;
            let kind = Kind::from_name(r.kind.get_ref()).ok_or_else(|| {
                let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
                err(
                    Some(r.kind.span().start),
                    format!(
                        "unknown kind {:?} (one of {})",
                        r.kind.get_ref(),
                        names.join(", ")
                    ),
                )
            })?;
            let field = *kind
                .fields()
                .iter()
                .find(|f| **f == r.field.get_ref())
                .ok_or_else(|| {
                    err(
                        Some(r.field.span().start),
                        format!(
                            "kind {kind} has no field {:?} (fields: {})",
                            r.field.get_ref(),
                            kind.fields().join(", ")
                        ),
                    )
                })?;
            let pattern = match (r.regex, r.literal) {
                (Some(re), None) => {
                    let src = re.get_ref();
                    regex::RegexBuilder::new(src)
                        .case_insensitive(r.case_insensitive)
                        .build()
                        .map_err(|e| err(Some(re.span().start), format!("bad regex: {e}")))?;
                    Pattern::Regex(src.clone())
                }
                (None, Some(lit)) => {
                    if lit.get_ref().is_empty() {
                        return Err(err(Some(lit.span().start), "empty literal".into()));
                    }
                    Pattern::Literal(lit.into_inner())
                }
                _ => {
                    return Err(err(
                        Some(table_at),
                        format!("signature {id:?} needs exactly one of `regex` or `literal`"),
                    ));
                }
            };
            signatures.push(Signature {
                id: r.id.into_inner(),
                name: r.name,
                severity,
                kind,
                field,
                pattern,
                case_insensitive: r.case_insensitive,
                remediation: r.remediation,
                references: r.references,
                description: r.description,
                version_check: r.version_check,
            });
        }
        SignatureSet::compile(signatures, origin)
    }

    /// Compiles signatures built in code. Ids must be unique.
    pub fn new(signatures: Vec<Signature>) -> Result<SignatureSet> {
        let mut ids = HashSet::new();
        for s in &signatures {
            if !ids.insert(s.id.as_str()) {
                return Err(Error::Signature {
                    origin: "code".into(),
                    line: 0,
                    message: format!("duplicate id {:?}", s.id),
                });
            }
        }
        SignatureSet::compile(signatures, "code")
    }

    /// Adds `other`'s signatures to these; ids must stay unique.
    pub fn merged(self, other: SignatureSet) -> Result<SignatureSet> {
        let mut all = self.signatures;
        all.extend(other.signatures);
        SignatureSet::new(all)
    }

    fn compile(signatures: Vec<Signature>, origin: &str) -> Result<SignatureSet> {
        let fail = |message: String| Error::Signature {
            origin: origin.to_owned(),
            line: 0,
            message,
        };
        let mut by_field: HashMap<(Kind, &'static str), Vec<usize>> = HashMap::new();
        for (i, s) in signatures.iter().enumerate() {
            by_field.entry((s.kind, s.field)).or_default().push(i);
        }
        let mut groups: HashMap<Kind, Vec<Group>> = HashMap::new();
        for ((kind, field), members) in by_field {
            let mut regex_src = Vec::new();
            let mut regex_ids = Vec::new();
            let mut lits = Vec::new();
            let mut literal_ids = Vec::new();
            let mut lits_ci = Vec::new();
            let mut literal_ci_ids = Vec::new();
            for i in members {
                let s = &signatures[i];
                match &s.pattern {
                    Pattern::Regex(re) => {
                        regex_src.push(if s.case_insensitive {
                            format!("(?i:{re})")
                        } else {
                            re.clone()
                        });
                        regex_ids.push(i);
                    }
                    Pattern::Literal(l) if s.case_insensitive => {
                        lits_ci.push(l.clone());
                        literal_ci_ids.push(i);
                    }
                    Pattern::Literal(l) => {
                        lits.push(l.clone());
                        literal_ids.push(i);
                    }
                }
            }
            let regexes = if regex_src.is_empty() {
                None
            } else {
                Some(
                    RegexSetBuilder::new(&regex_src)
                        .size_limit(256 << 20)
                        .dfa_size_limit(64 << 20)
                        .build()
                        .map_err(|e| fail(format!("{kind}.{field}: {e}")))?,
                )
            };
            let ac = |pats: &[String], ci: bool| -> Result<Option<AhoCorasick>> {
                if pats.is_empty() {
                    return Ok(None);
                }
                AhoCorasick::builder()
                    .ascii_case_insensitive(ci)
                    .build(pats)
                    .map(Some)
                    .map_err(|e| fail(format!("{kind}.{field}: {e}")))
            };
            groups.entry(kind).or_default().push(Group {
                field,
                regexes,
                regex_ids,
                literals: ac(&lits, false)?,
                literal_ids,
                literals_ci: ac(&lits_ci, true)?,
                literal_ci_ids,
            });
        }
        Ok(SignatureSet {
            signatures,
            groups,
            version_rule: VersionRule::Default,
        })
    }

    /// These signatures with `rule` for the ones that judge versions.
    pub fn with_version_rule(mut self, rule: VersionRule) -> SignatureSet {
        self.version_rule = rule;
        self
    }

    /// The rule for signatures that judge versions.
    pub fn version_rule(&self) -> VersionRule {
        self.version_rule
    }

    /// The signatures, in file order.
    pub fn signatures(&self) -> &[Signature] {
        &self.signatures
    }

    /// How many signatures.
    pub fn len(&self) -> usize {
        self.signatures.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.signatures.is_empty()
    }

    /// The threats one finding raises: each matching signature once, with the first value
    /// that matched as evidence.
    pub fn match_finding(&self, finding: &Finding) -> Vec<Threat> {
        self.match_finding_with(finding, self.version_rule)
    }

    /// [`SignatureSet::match_finding`] with `rule` for version signatures instead of the set's.
    pub fn match_finding_with(&self, finding: &Finding, rule: VersionRule) -> Vec<Threat> {
        let kind = finding.kind();
        let Some(groups) = self.groups.get(&kind) else {
            return Vec::new();
        };
        let mut hits: Vec<(usize, String, &'static str)> = Vec::new();
        let mut scratch = Vec::new();
        finding.for_each_field(|field, value| {
            for g in groups.iter().filter(|g| g.field == field) {
                scratch.clear();
                g.matches(&value, &mut scratch);
                for &i in &scratch {
                    if !hits.iter().any(|(j, _, _)| *j == i) {
                        hits.push((i, truncate(&value, 200).into_owned(), field));
                    }
                }
            }
        });
        hits.sort_by_key(|(i, _, _)| *i);
        hits.into_iter()
            .filter_map(|(i, evidence, field)| {
                let s = &self.signatures[i];
                let (severity, confidence) = if !s.version_check {
                    (s.severity, None)
                } else if rule == VersionRule::StepAside {
                    return None;
                } else if names_distribution(finding, &evidence) {
                    let severity = match rule {
                        VersionRule::Paranoid => s.severity,
                        _ => Severity::Info,
                    };
                    (severity, Some(Confidence::Unverified))
                } else {
                    (s.severity, Some(Confidence::Confirmed))
                };
                Some(Threat {
                    signature_id: s.id.clone(),
                    name: s.name.clone(),
                    severity,
                    host: finding.host.clone(),
                    addr: finding.addr,
                    port: finding.port,
                    kind,
                    field: field.to_owned(),
                    evidence,
                    remediation: s.remediation.clone(),
                    references: s.references.clone(),
                    confidence,
                    cve: None,
                })
            })
            .collect()
    }

    /// The threats of many findings, each (signature, address, port) once, most severe first.
    pub fn match_findings<'a>(
        &self,
        findings: impl IntoIterator<Item = &'a Finding>,
    ) -> Vec<Threat> {
        self.match_findings_with(findings, self.version_rule)
    }

    /// [`SignatureSet::match_findings`] with `rule` for version signatures.
    pub fn match_findings_with<'a>(
        &self,
        findings: impl IntoIterator<Item = &'a Finding>,
        rule: VersionRule,
    ) -> Vec<Threat> {
        let mut seen = HashSet::new();
        let mut out: Vec<Threat> = findings
            .into_iter()
            .flat_map(|f| self.match_finding_with(f, rule))
            .filter(|t| seen.insert((t.signature_id.clone(), t.addr, t.port)))
            .collect();
        sort_threats(&mut out);
        out
    }
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Detail;

    fn finding(detail: Detail) -> Finding {
        Finding {
            host: "127.0.0.1".into(),
            addr: "127.0.0.1".parse().unwrap(),
            port: Some(22),
            detail,
        }
    }

    fn ssh(version: &str) -> Finding {
        finding(Detail::Ssh {
            version: version.into(),
            kex: vec![],
            host_key: vec![],
            cipher: vec![],
            mac: vec![],
        })
    }

    fn regresshion(set: &SignatureSet, version: &str, rule: VersionRule) -> Option<Threat> {
        set.match_finding_with(&ssh(version), rule)
            .into_iter()
            .find(|t| t.signature_id == "openssh-regresshion")
    }

    #[test]
    fn version_signatures_follow_the_distribution_rule() {
        let set = SignatureSet::builtin();
        // Upstream builds: the version decides.
        for v in [
            "SSH-2.0-OpenSSH_9.2p1",
            "SSH-2.0-OpenSSH_8.5p1",
            "SSH-2.0-OpenSSH_9.7p1",
            "SSH-2.0-OpenSSH_4.3p2",
            "SSH-1.99-OpenSSH_3.9p1",
        ] {
            let t = regresshion(&set, v, VersionRule::Default).unwrap_or_else(|| panic!("{v}"));
            assert_eq!(
                (t.severity, t.confidence),
                (Severity::High, Some(Confidence::Confirmed)),
                "{v}"
            );
        }
        for v in [
            "SSH-2.0-OpenSSH_9.8p1",
            "SSH-2.0-OpenSSH_8.4p1",
            "SSH-2.0-OpenSSH_4.4p1",
            "SSH-2.0-OpenSSH_10.0",
        ] {
            assert!(regresshion(&set, v, VersionRule::Default).is_none(), "{v}");
        }
        // Debian's patched build: unverified at info, or at its severity when paranoid.
        let debian = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10";
        let t = regresshion(&set, debian, VersionRule::Default).expect("reported");
        assert_eq!(
            (t.severity, t.confidence),
            (Severity::Info, Some(Confidence::Unverified))
        );
        let t = regresshion(&set, debian, VersionRule::Paranoid).expect("reported");
        assert_eq!(
            (t.severity, t.confidence),
            (Severity::High, Some(Confidence::Unverified))
        );
        // A vulnerability database decides instead.
        assert!(regresshion(&set, debian, VersionRule::StepAside).is_none());
        assert!(regresshion(&set, "SSH-2.0-OpenSSH_9.2p1", VersionRule::StepAside).is_none());
        // Configuration signatures are untouched by the rule.
        let weak = finding(Detail::Ssh {
            version: debian.into(),
            kex: vec!["diffie-hellman-group1-sha1".into()],
            host_key: vec![],
            cipher: vec![],
            mac: vec![],
        });
        let kex = set
            .match_finding_with(&weak, VersionRule::StepAside)
            .into_iter()
            .find(|t| t.signature_id == "ssh-weak-kex")
            .expect("kex");
        assert_eq!((kex.severity, kex.confidence), (Severity::High, None));
        // The set's own rule applies to match_finding.
        let paranoid = SignatureSet::builtin().with_version_rule(VersionRule::Paranoid);
        assert!(
            paranoid
                .match_finding(&ssh(debian))
                .iter()
                .any(|t| t.signature_id == "openssh-regresshion" && t.severity == Severity::High)
        );
    }

    #[test]
    fn builtin_set_compiles_and_covers_the_seed() {
        let set = SignatureSet::builtin();
        for id in [
            "ssh-weak-kex",
            "tls-expired",
            "default-credentials",
            "telnet-open",
            "smbv1",
            "ftp-anonymous",
            "redis-no-auth",
            "mongodb-no-auth",
            "elasticsearch-no-auth",
            "openssh-outdated",
            "apache-outdated",
            "nginx-outdated",
            "tls-legacy-protocol",
            "tls-self-signed",
            "tls-expires-30-days",
        ] {
            assert!(
                set.signatures().iter().any(|s| s.id == id),
                "built-in set lacks {id}"
            );
        }
    }

    #[test]
    fn matches_per_field_only() {
        let set = SignatureSet::from_toml(
            r#"
[[signature]]
id = "kex"
name = "weak kex"
severity = "high"
kind = "ssh"
field = "kex"
literal = "diffie-hellman-group1-sha1"
remediation = "fix"
"#,
            "t",
        )
        .unwrap();
        let weak = finding(Detail::Ssh {
            version: "SSH-2.0-x".into(),
            kex: vec![
                "curve25519-sha256".into(),
                "diffie-hellman-group1-sha1".into(),
            ],
            host_key: vec![],
            cipher: vec![],
            mac: vec![],
        });
        let threats = set.match_finding(&weak);
        assert_eq!(threats.len(), 1);
        assert_eq!(threats[0].evidence, "diffie-hellman-group1-sha1");
        assert_eq!(threats[0].field, "kex");
        // The same text in another field (the version line) is not a match.
        let elsewhere = finding(Detail::Ssh {
            version: "SSH-2.0-diffie-hellman-group1-sha1".into(),
            kex: vec!["curve25519-sha256".into()],
            host_key: vec![],
            cipher: vec![],
            mac: vec![],
        });
        assert!(set.match_finding(&elsewhere).is_empty());
    }

    #[test]
    fn case_insensitive_literals_and_regexes() {
        let set = SignatureSet::from_toml(
            r#"
[[signature]]
id = "a"
name = "a"
severity = "low"
kind = "http"
field = "server"
literal = "APACHE/2.2"
case_insensitive = true
remediation = "r"

[[signature]]
id = "b"
name = "b"
severity = "medium"
kind = "http"
field = "server"
regex = '^apache/2\.2\.\d+$'
case_insensitive = true
remediation = "r"
"#,
            "t",
        )
        .unwrap();
        let f = finding(Detail::Http {
            status: 200,
            server: Some("Apache/2.2.15".into()),
            title: None,
            missing_header: vec![],
            https: false,
        });
        let ids: Vec<String> = set
            .match_finding(&f)
            .into_iter()
            .map(|t| t.signature_id)
            .collect();
        assert_eq!(ids, ["a", "b"]);
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            (
                "[[signature]]\nid = \"x\"\nname = \"x\"\nseverity = \"urgent\"\nkind = \"ssh\"\nfield = \"kex\"\nregex = \"a\"\nremediation = \"r\"\n",
                4,
                "severity",
            ),
            (
                "[[signature]]\nid = \"x\"\nname = \"x\"\nseverity = \"low\"\nkind = \"smtp\"\nfield = \"kex\"\nregex = \"a\"\nremediation = \"r\"\n",
                5,
                "unknown kind",
            ),
            (
                "[[signature]]\nid = \"x\"\nname = \"x\"\nseverity = \"low\"\nkind = \"ssh\"\nfield = \"title\"\nregex = \"a\"\nremediation = \"r\"\n",
                6,
                "no field",
            ),
            (
                "[[signature]]\nid = \"x\"\nname = \"x\"\nseverity = \"low\"\nkind = \"ssh\"\nfield = \"kex\"\nregex = \"(a\"\nremediation = \"r\"\n",
                7,
                "bad regex",
            ),
            (
                "[[signature]]\nid = \"x\"\nname = \"x\"\nseverity = \"low\"\nkind = \"ssh\"\nfield = \"kex\"\nremediation = \"r\"\n",
                1,
                "exactly one",
            ),
            (
                "[[signature]]\nid = \"x\"\nname = \"x\"\nseverity = \"low\"\nkind = \"ssh\"\nfield = \"kex\"\nregex = \"a\"\nremediation = \"r\"\nbogus = 1\n",
                9,
                "bogus",
            ),
            ("\n\n[[signature]\n", 3, ""),
        ];
        for (text, line, needle) in cases {
            match SignatureSet::from_toml(text, "f.toml") {
                Err(Error::Signature {
                    line: got, message, ..
                }) => {
                    assert_eq!(got, line, "{message}");
                    assert!(message.contains(needle), "{message:?} lacks {needle:?}");
                }
                other => panic!("expected a signature error, got {other:?}"),
            }
        }
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let one = "[[signature]]\nid = \"x\"\nname = \"x\"\nseverity = \"low\"\nkind = \"ssh\"\nfield = \"kex\"\nregex = \"a\"\nremediation = \"r\"\n";
        let text = format!("{one}\n{one}");
        match SignatureSet::from_toml(&text, "f") {
            Err(Error::Signature { line, message, .. }) => {
                assert_eq!(line, 11);
                assert!(message.contains("duplicate"));
            }
            other => panic!("{other:?}"),
        }
    }
}
