//! Scope: what may be scanned, checked before any packet leaves.
//!
//! A [`Scope`] is an allowlist (networks, exact host names, `*.example.com` wildcards) and an
//! exclude list; **excludes always win**, and an empty scope allows nothing. On top of the lists,
//! some address classes are refused unless an allow rule *inside* that class names them:
//!
//! | class | addresses |
//! |---|---|
//! | cloud metadata | 169.254.169.254, 169.254.170.2, 100.100.100.200, fd00:ec2::254 |
//! | link-local | 169.254.0.0/16, fe80::/10 |
//! | loopback | 127.0.0.0/8, ::1 |
//! | multicast | 224.0.0.0/4, ff00::/8 |
//! | unspecified | 0.0.0.0/8, :: |
//! | broadcast | 255.255.255.255 |
//!
//! So `allow 0.0.0.0/0` does not open 127.0.0.1: loopback is scanned only when `127.0.0.1` (or a
//! network inside 127.0.0.0/8) is listed. The other classes are a **hard deny list**: listing
//! the address is not enough, the class must also be unlocked on purpose with
//! [`ScopeBuilder::unlock`] (an operator flag, never a default), so a typed or injected
//! `169.254.169.254` is refused before any packet. The name `metadata.google.internal` is refused
//! unless it is listed exactly.
//!
//! [`Scope::plan`] turns targets into a [`ScanPlan`], the only input the scanners accept: a host
//! name is checked against the allowlist *before* it is resolved, resolved once, and every
//! resolved address must pass too; the plan holds the checked addresses, so nothing resolves the
//! name a second time (no DNS-rebinding escape). Limits on ports per task and hosts per target
//! are enforced at the same point.

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::target::{Net, PortList, Target, canonical, normalize_host, to_bits};

/// An address class refused unless an allow rule inside the class names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum AddressClass {
    /// Cloud instance metadata endpoints.
    Metadata,
    /// Link-local addresses.
    LinkLocal,
    /// Loopback.
    Loopback,
    /// Multicast.
    Multicast,
    /// The unspecified address and 0.0.0.0/8.
    Unspecified,
    /// The limited broadcast address.
    Broadcast,
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressClass::Metadata => "cloud metadata",
            AddressClass::LinkLocal => "link-local",
            AddressClass::Loopback => "loopback",
            AddressClass::Multicast => "multicast",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Broadcast => "broadcast",
        })
    }
}

/// Why a target was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ScopeViolation {
    /// No allow rule covers it (an empty scope gives this for everything).
    NotAllowed,
    /// An exclude rule covers it.
    Excluded {
        /// The exclude rule, as written.
        rule: String,
    },
    /// Its address is in a refused class and no allow rule inside that class names it.
    RefusedClass {
        /// The address.
        addr: IpAddr,
        /// Its class.
        class: AddressClass,
    },
    /// A host name in scope resolved to an address that is not.
    ResolvedOutOfScope {
        /// The offending address.
        addr: IpAddr,
        /// Why that address is refused.
        reason: Box<ScopeViolation>,
    },
    /// A host name on the built-in deny list (metadata names).
    DeniedName,
}

impl fmt::Display for ScopeViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScopeViolation::NotAllowed => f.write_str("not in the allowlist"),
            ScopeViolation::Excluded { rule } => write!(f, "excluded by {rule}"),
            ScopeViolation::RefusedClass { addr, class } => match class {
                AddressClass::Loopback => {
                    write!(
                        f,
                        "{addr} is a loopback address; list it explicitly to scan it"
                    )
                }
                _ => write!(
                    f,
                    "{addr} is a {class} address, refused unless listed and its class unlocked"
                ),
            },
            ScopeViolation::ResolvedOutOfScope { addr, reason } => {
                write!(f, "resolves to {addr}, which is refused: {reason}")
            }
            ScopeViolation::DeniedName => {
                f.write_str("metadata host names are refused unless listed exactly")
            }
        }
    }
}

/// One allow or exclude rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// A network (a single address is a /32 or /128).
    Net(Net),
    /// An exact host name.
    Host(String),
    /// `*.example.com`: any name ending in `.example.com`, never `example.com` itself.
    Wildcard(String),
    /// An inclusive address range (`10.0.0.5-10.0.0.9`).
    Range {
        /// First address.
        start: IpAddr,
        /// Last address.
        end: IpAddr,
    },
}

impl Rule {
    /// Parses `10.0.0.0/8`, `192.0.2.7`, `10.0.0.5-10.0.0.9`, `host.example.com` or
    /// `*.example.com`.
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        if let Some(rest) = s.strip_prefix("*.") {
            let name = normalize_host(rest).map_err(|reason| Error::InvalidTarget {
                input: s.to_owned(),
                reason,
            })?;
            return Ok(Rule::Wildcard(name));
        }
        match s.parse::<Target>()? {
            Target::Ip(ip) => Ok(Rule::Net(Net::host(ip))),
            Target::Net(net) => Ok(Rule::Net(net)),
            Target::Host(name) => Ok(Rule::Host(name)),
            Target::Range { start, end } => Ok(Rule::Range { start, end }),
        }
    }

    /// First and last address of an address rule.
    fn span(&self) -> Option<(IpAddr, IpAddr)> {
        match self {
            Rule::Net(net) => Some((net.addr(), net.nth(net.size() - 1)?)),
            Rule::Range { start, end } => Some((*start, *end)),
            Rule::Host(_) | Rule::Wildcard(_) => None,
        }
    }

    fn matches_ip(&self, ip: IpAddr) -> bool {
        self.span().is_some_and(|(lo, hi)| {
            lo.is_ipv4() == ip.is_ipv4() && to_bits(lo) <= to_bits(ip) && to_bits(ip) <= to_bits(hi)
        })
    }

    fn matches_name(&self, name: &str) -> bool {
        match self {
            Rule::Net(_) | Rule::Range { .. } => false,
            Rule::Host(h) => h == name,
            Rule::Wildcard(suffix) => name
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Net(net) if net.size() == 1 => write!(f, "{}", net.addr()),
            Rule::Net(net) => write!(f, "{net}"),
            Rule::Host(h) => f.write_str(h),
            Rule::Wildcard(s) => write!(f, "*.{s}"),
            Rule::Range { start, end } => write!(f, "{start}-{end}"),
        }
    }
}

/// Limits applied when a plan is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most ports in one task. Default 65 535 (every port).
    pub max_ports: usize,
    /// Most addresses one target (a CIDR or a range) may expand to. Default 65 536 (a /16).
    pub max_hosts_per_target: u128,
    /// Most addresses in one plan. Default 65 536.
    pub max_hosts: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_ports: 65_535,
            max_hosts_per_target: 65_536,
            max_hosts: 65_536,
        }
    }
}

/// Resolves host names. The default, [`SystemResolver`], asks the operating system; tests and
/// agents can supply their own.
pub trait Resolver: Send + Sync {
    /// Every address `host` resolves to.
    fn resolve<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send + 'a>>;
}

/// The operating system's resolver (`getaddrinfo` through tokio).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send + 'a>> {
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host, 0)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    }
}

/// The allowlist, the exclude list and the limits. Build one with [`Scope::builder`].
#[derive(Debug, Clone, Default)]
pub struct Scope {
    allow: Vec<Rule>,
    exclude: Vec<Rule>,
    limits: Limits,
    /// Refused classes that explicit rules may open (loopback always may).
    unlocked: Vec<AddressClass>,
}

/// Builds a [`Scope`].
#[derive(Debug, Default)]
pub struct ScopeBuilder {
    allow: Vec<String>,
    exclude: Vec<String>,
    limits: Limits,
    unlocked: Vec<AddressClass>,
}

impl ScopeBuilder {
    /// Allows a network, address, host name or `*.domain`.
    pub fn allow(mut self, rule: impl Into<String>) -> Self {
        self.allow.push(rule.into());
        self
    }

    /// Excludes a network, address, host name or `*.domain`; excludes win over allows.
    pub fn exclude(mut self, rule: impl Into<String>) -> Self {
        self.exclude.push(rule.into());
        self
    }

    /// Lets explicit allow rules open a hard-denied class (metadata, link-local, multicast,
    /// unspecified, broadcast). Loopback needs no unlocking, only an explicit rule.
    pub fn unlock(mut self, class: AddressClass) -> Self {
        self.unlocked.push(class);
        self
    }

    /// Replaces the limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Parses every rule; the first bad one is the error.
    pub fn build(self) -> Result<Scope> {
        let parse = |v: Vec<String>| v.iter().map(|s| Rule::parse(s)).collect::<Result<Vec<_>>>();
        Ok(Scope {
            allow: parse(self.allow)?,
            exclude: parse(self.exclude)?,
            limits: self.limits,
            unlocked: self.unlocked,
        })
    }
}

/// A host in a plan: a checked address and, when it came from a name, that name (for SNI and
/// the HTTP `Host` header).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScanHost {
    /// The address to connect to. Never resolved again.
    pub addr: IpAddr,
    /// The name the operator gave, if any.
    pub name: Option<String>,
}

impl ScanHost {
    /// The name if there is one, else the address as text.
    pub fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.addr.to_string())
    }
}

/// Hosts and ports that passed the scope. Only [`Scope::plan`] makes one, so a scanner that
/// takes a plan cannot be handed an unchecked target.
#[derive(Debug, Clone)]
pub struct ScanPlan {
    hosts: Arc<[ScanHost]>,
    ports: PortList,
}

impl ScanPlan {
    /// The checked hosts.
    pub fn hosts(&self) -> &[ScanHost] {
        &self.hosts
    }

    /// The ports.
    pub fn ports(&self) -> &PortList {
        &self.ports
    }

    /// Hosts × ports.
    pub fn probe_count(&self) -> u64 {
        self.hosts.len() as u64 * self.ports.len() as u64
    }

    /// The same hosts with other ports, re-checked against `scope`'s port limit.
    pub fn with_ports(&self, scope: &Scope, ports: PortList) -> Result<ScanPlan> {
        scope.check_ports(&ports)?;
        Ok(ScanPlan {
            hosts: Arc::clone(&self.hosts),
            ports,
        })
    }
}

impl Scope {
    /// Starts a builder (an empty scope allows nothing).
    pub fn builder() -> ScopeBuilder {
        ScopeBuilder::default()
    }

    /// The scope `vigil scan TARGET...` uses: exactly the targets typed (networks, addresses,
    /// names; a range is allowed address by address), with default limits.
    pub fn from_targets(targets: &[Target]) -> Result<Scope> {
        let mut allow = Vec::new();
        for t in targets {
            match t {
                Target::Ip(ip) => allow.push(Rule::Net(Net::host(*ip))),
                Target::Net(net) => allow.push(Rule::Net(*net)),
                Target::Host(h) => allow.push(Rule::Host(h.clone())),
                Target::Range { start, end } => allow.push(Rule::Range {
                    start: *start,
                    end: *end,
                }),
            }
        }
        Ok(Scope {
            allow,
            exclude: Vec::new(),
            limits: Limits::default(),
            unlocked: Vec::new(),
        })
    }

    /// Adds exclude rules to an existing scope.
    pub fn with_excludes(mut self, rules: &[String]) -> Result<Scope> {
        for r in rules {
            self.exclude.push(Rule::parse(r)?);
        }
        Ok(self)
    }

    /// The limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Whether nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty()
    }

    /// Checks one address. `via_name` is the in-scope name it was resolved from, if any.
    pub fn check_ip(
        &self,
        ip: IpAddr,
        via_name: Option<&str>,
    ) -> std::result::Result<(), ScopeViolation> {
        let ip = canonical(ip);
        if let Some(rule) = self.exclude.iter().find(|r| r.matches_ip(ip)) {
            return Err(ScopeViolation::Excluded {
                rule: rule.to_string(),
            });
        }
        let by_net: Vec<(IpAddr, IpAddr)> = self
            .allow
            .iter()
            .filter(|r| r.matches_ip(ip))
            .filter_map(Rule::span)
            .collect();
        let by_name = via_name.is_some_and(|n| self.allow.iter().any(|r| r.matches_name(n)));
        if by_net.is_empty() && !by_name {
            return Err(ScopeViolation::NotAllowed);
        }
        if let Some((class, nets)) = refused_class(ip) {
            // Only a rule that lies inside the class (e.g. `127.0.0.1`, not `0.0.0.0/0`, and
            // not a name that happens to resolve there) opens it.
            let listed = by_net
                .iter()
                .any(|(lo, hi)| nets.iter().any(|c| c.contains(*lo) && c.contains(*hi)));
            let unlocked = class == AddressClass::Loopback || self.unlocked.contains(&class);
            if !listed || !unlocked {
                return Err(ScopeViolation::RefusedClass { addr: ip, class });
            }
        }
        Ok(())
    }

    /// Checks a host name before it is resolved.
    pub fn check_name(&self, name: &str) -> std::result::Result<(), ScopeViolation> {
        if let Some(rule) = self.exclude.iter().find(|r| r.matches_name(name)) {
            return Err(ScopeViolation::Excluded {
                rule: rule.to_string(),
            });
        }
        let exact = self
            .allow
            .iter()
            .any(|r| matches!(r, Rule::Host(h) if h == name));
        if DENIED_NAMES.contains(&name) && !exact {
            return Err(ScopeViolation::DeniedName);
        }
        if exact || self.allow.iter().any(|r| r.matches_name(name)) {
            Ok(())
        } else {
            Err(ScopeViolation::NotAllowed)
        }
    }

    fn check_ports(&self, ports: &PortList) -> Result<()> {
        if ports.len() > self.limits.max_ports {
            return Err(Error::LimitExceeded {
                what: "ports per task",
                got: ports.len() as u128,
                limit: self.limits.max_ports as u128,
            });
        }
        Ok(())
    }

    /// Checks every target, resolves host names once (with `resolver`), and returns the plan.
    /// The first refused target is the error; nothing is sent to any target before this returns
    /// `Ok`, and a name that is not in scope is not even resolved.
    pub async fn plan(
        &self,
        targets: &[Target],
        ports: PortList,
        resolver: &dyn Resolver,
    ) -> Result<ScanPlan> {
        self.check_ports(&ports)?;
        let mut hosts: Vec<ScanHost> = Vec::new();
        let oos = |target: &Target, violation| Error::OutOfScope {
            target: target.to_string(),
            violation,
        };
        // Check every address target first, so a refusal costs no DNS query.
        for target in targets {
            match target {
                Target::Host(name) => self.check_name(name).map_err(|v| oos(target, v))?,
                _ => {
                    let count = target.address_count().unwrap_or(0);
                    if count > self.limits.max_hosts_per_target {
                        return Err(Error::LimitExceeded {
                            what: "addresses in one target",
                            got: count,
                            limit: self.limits.max_hosts_per_target,
                        });
                    }
                    for i in 0..count {
                        let ip = target.nth(i).expect("index below the count");
                        self.check_ip(ip, None).map_err(|v| oos(target, v))?;
                        hosts.push(ScanHost {
                            addr: ip,
                            name: None,
                        });
                    }
                }
            }
        }
        for target in targets {
            if let Target::Host(name) = target {
                let addrs = resolver
                    .resolve(name)
                    .await
                    .map_err(|source| Error::Resolve {
                        host: name.clone(),
                        source,
                    })?;
                if addrs.is_empty() {
                    return Err(Error::Resolve {
                        host: name.clone(),
                        source: std::io::Error::new(std::io::ErrorKind::NotFound, "no addresses"),
                    });
                }
                for addr in addrs {
                    let addr = canonical(addr);
                    self.check_ip(addr, Some(name)).map_err(|reason| {
                        oos(
                            target,
                            ScopeViolation::ResolvedOutOfScope {
                                addr,
                                reason: Box::new(reason),
                            },
                        )
                    })?;
                    hosts.push(ScanHost {
                        addr,
                        name: Some(name.clone()),
                    });
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        hosts.retain(|h| seen.insert(h.addr));
        if hosts.len() > self.limits.max_hosts {
            return Err(Error::LimitExceeded {
                what: "hosts in one plan",
                got: hosts.len() as u128,
                limit: self.limits.max_hosts as u128,
            });
        }
        if hosts.is_empty() {
            return Err(Error::InvalidTarget {
                input: String::new(),
                reason: "no targets".into(),
            });
        }
        Ok(ScanPlan {
            hosts: hosts.into(),
            ports,
        })
    }
}

const DENIED_NAMES: [&str; 3] = [
    "metadata.google.internal",
    "metadata",
    "instance-data.ec2.internal",
];

/// The refused classes and their networks, parsed once.
static REFUSED: LazyLock<Vec<(AddressClass, Vec<Net>)>> = LazyLock::new(|| {
    let classes: [(AddressClass, &[&str]); 6] = [
        (
            AddressClass::Metadata,
            &[
                "169.254.169.254/32",
                "169.254.170.2/32",
                "100.100.100.200/32",
                "fd00:ec2::254/128",
            ],
        ),
        (AddressClass::LinkLocal, &["169.254.0.0/16", "fe80::/10"]),
        (AddressClass::Loopback, &["127.0.0.0/8", "::1/128"]),
        (AddressClass::Multicast, &["224.0.0.0/4", "ff00::/8"]),
        (AddressClass::Unspecified, &["0.0.0.0/8", "::/128"]),
        (AddressClass::Broadcast, &["255.255.255.255/32"]),
    ];
    classes
        .into_iter()
        .map(|(class, list)| {
            let nets = list
                .iter()
                .map(|s| s.parse().expect("built-in networks parse"))
                .collect();
            (class, nets)
        })
        .collect()
});

/// The first refused class `ip` belongs to (metadata before link-local), with its networks.
fn refused_class(ip: IpAddr) -> Option<(AddressClass, &'static [Net])> {
    REFUSED
        .iter()
        .find(|(_, nets)| nets.iter().any(|n| n.contains(ip)))
        .map(|(class, nets)| (*class, nets.as_slice()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn empty_scope_denies_everything() {
        let scope = Scope::default();
        assert_eq!(
            scope.check_ip(ip("192.0.2.1"), None),
            Err(ScopeViolation::NotAllowed)
        );
        assert_eq!(
            scope.check_name("example.com"),
            Err(ScopeViolation::NotAllowed)
        );
    }

    #[test]
    fn excludes_win() {
        let scope = Scope::builder()
            .allow("10.0.0.0/8")
            .exclude("10.1.0.0/16")
            .build()
            .unwrap();
        assert!(scope.check_ip(ip("10.2.0.1"), None).is_ok());
        assert!(matches!(
            scope.check_ip(ip("10.1.2.3"), None),
            Err(ScopeViolation::Excluded { .. })
        ));
        assert!(matches!(
            scope.check_ip(ip("::ffff:10.1.2.3"), None),
            Err(ScopeViolation::Excluded { .. })
        ));
    }

    #[test]
    fn refused_classes_need_an_explicit_rule() {
        let wide = Scope::builder()
            .allow("0.0.0.0/0")
            .allow("::/0")
            .build()
            .unwrap();
        for (addr, class) in [
            ("169.254.169.254", AddressClass::Metadata),
            ("169.254.3.4", AddressClass::LinkLocal),
            ("127.0.0.1", AddressClass::Loopback),
            ("::1", AddressClass::Loopback),
            ("224.0.0.1", AddressClass::Multicast),
            ("0.0.0.0", AddressClass::Unspecified),
            ("255.255.255.255", AddressClass::Broadcast),
            ("fe80::1", AddressClass::LinkLocal),
            ("fd00:ec2::254", AddressClass::Metadata),
        ] {
            assert_eq!(
                wide.check_ip(ip(addr), None),
                Err(ScopeViolation::RefusedClass {
                    addr: ip(addr),
                    class
                }),
                "{addr}"
            );
        }
        let listed = Scope::builder()
            .allow("127.0.0.1")
            .allow("169.254.169.254")
            .build()
            .unwrap();
        assert!(listed.check_ip(ip("127.0.0.1"), None).is_ok());
        assert!(listed.check_ip(ip("127.0.0.2"), None).is_err());
        // Listing a hard-denied address is not enough; its class must be unlocked too.
        assert!(matches!(
            listed.check_ip(ip("169.254.169.254"), None),
            Err(ScopeViolation::RefusedClass {
                class: AddressClass::Metadata,
                ..
            })
        ));
        let unlocked = Scope::builder()
            .allow("169.254.169.254")
            .unlock(AddressClass::Metadata)
            .build()
            .unwrap();
        assert!(unlocked.check_ip(ip("169.254.169.254"), None).is_ok());
        let typed = Scope::from_targets(&["169.254.169.254".parse().unwrap()]).unwrap();
        assert!(typed.check_ip(ip("169.254.169.254"), None).is_err());
    }

    #[test]
    fn ranges_are_rules() {
        let scope = Scope::from_targets(&["10.0.0.0-10.0.255.255".parse().unwrap()]).unwrap();
        assert!(scope.check_ip(ip("10.0.7.1"), None).is_ok());
        assert_eq!(
            scope.check_ip(ip("10.1.0.0"), None),
            Err(ScopeViolation::NotAllowed)
        );
        let lo = Scope::builder()
            .allow("127.0.0.1-127.0.0.3")
            .build()
            .unwrap();
        assert!(
            lo.check_ip(ip("127.0.0.2"), None).is_ok(),
            "a range inside loopback lists it"
        );
        let wide = Scope::builder()
            .allow("126.0.0.0-128.0.0.0")
            .build()
            .unwrap();
        assert!(
            wide.check_ip(ip("127.0.0.1"), None).is_err(),
            "a range around it does not"
        );
    }

    #[test]
    fn wildcards_match_on_the_dot_boundary() {
        let scope = Scope::builder().allow("*.example.com").build().unwrap();
        assert!(scope.check_name("a.example.com").is_ok());
        assert!(scope.check_name("a.b.example.com").is_ok());
        assert_eq!(
            scope.check_name("example.com"),
            Err(ScopeViolation::NotAllowed)
        );
        assert_eq!(
            scope.check_name("badexample.com"),
            Err(ScopeViolation::NotAllowed)
        );
    }

    #[test]
    fn metadata_names_are_denied_unless_exact() {
        let scope = Scope::builder().allow("*.google.internal").build().unwrap();
        assert_eq!(
            scope.check_name("metadata.google.internal"),
            Err(ScopeViolation::DeniedName)
        );
    }

    #[test]
    fn names_resolving_into_a_refused_class_are_refused() {
        let scope = Scope::builder().allow("svc.example.com").build().unwrap();
        assert!(
            scope
                .check_ip(ip("192.0.2.10"), Some("svc.example.com"))
                .is_ok()
        );
        assert!(matches!(
            scope.check_ip(ip("127.0.0.1"), Some("svc.example.com")),
            Err(ScopeViolation::RefusedClass { .. })
        ));
    }
}
