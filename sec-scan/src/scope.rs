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
//! Only address rules open a class: a host name or `*.domain` rule never does, so a name in
//! scope that resolves to `169.254.169.254` or `127.0.0.1` is refused unless that address is
//! itself listed (and, but for loopback, its class unlocked).
//!
//! ## IPv4 inside IPv6
//!
//! An IPv6 address that carries an IPv4 address is checked as that IPv4 address as well
//! ([`embedded_ipv4`]): IPv4-mapped `::ffff:a.b.c.d` (which simply *is* the IPv4 address),
//! IPv4-compatible `::a.b.c.d` (not `::` or `::1`), NAT64 `64:ff9b::/96` (the last 32 bits) and
//! `64:ff9b:1::/48` (RFC 6052's /48 layout), 6to4 `2002::/16` (bits 16 to 48) and Teredo
//! `2001::/32` (the server in bits 32 to 64, the client in the last 32 bits inverted; either one
//! in a refused class refuses the address). So `64:ff9b::a9fe:a9fe`, which a NAT64 gateway
//! forwards to 169.254.169.254, is refused as a metadata address, whether typed or resolved from
//! a name in scope. Only an allow rule naming that exact IPv6 address (plus the class unlock)
//! opens it. Exclude rules apply to the carried IPv4 address too. A local-use NAT64 prefix
//! longer than /48 (RFC 8215 lets operators choose one) is read with the /48 layout all the same:
//! the scope cannot know the operator's prefix length.
//!
//! ## Plans and limits
//!
//! [`Scope::plan`] turns targets into a [`ScanPlan`], the only input the scanners accept: a host
//! name is checked against the allowlist *before* it is resolved, resolved once, and every
//! resolved address must pass too; the plan holds the checked addresses, so nothing resolves the
//! name a second time (no DNS-rebinding escape). Limits on ports per task and hosts per target
//! are enforced at the same point. A network or range holding more addresses than
//! [`Limits::max_hosts_per_target`] (default 65 536, a /16) is refused with
//! [`Error::TargetTooLarge`] before any address of it is enumerated; sizes are counted without
//! overflow ([`AddressCount`]), so all of IPv6 (2^128 addresses) is "too large", never zero.
//!
//! [`Scope::audit`] walks the same checks without stopping at the first refusal and without
//! sending anything: it lists what a scan would contact and every refusal with its reason
//! (`vigil scan --plan`).

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::{Arc, LazyLock};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::target::{
    AddressCount, Net, PortList, Target, canonical, normalize_host, to_bits, valid_range,
};

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
    /// An IPv6 address carries an IPv4 address (NAT64, 6to4, Teredo, IPv4-compatible) in a
    /// refused class, and the scope neither lists that exact IPv6 address nor unlocks the class.
    RefusedEmbedded {
        /// The IPv6 address.
        addr: IpAddr,
        /// How it carries the IPv4 address.
        form: Ipv4Embedding,
        /// The IPv4 address it carries.
        ipv4: Ipv4Addr,
        /// The class of that IPv4 address.
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
            ScopeViolation::RefusedEmbedded {
                addr,
                form,
                ipv4,
                class,
            } => write!(
                f,
                "{addr} carries {ipv4} ({form}), a {class} address: refused unless this exact \
                 address is listed{}",
                if *class == AddressClass::Loopback {
                    ""
                } else {
                    " and its class unlocked"
                }
            ),
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
            Rule::Net(net) => Some((net.addr(), net.last())),
            Rule::Range { start, end } => valid_range(*start, *end).then_some((*start, *end)),
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
            Rule::Net(net) if net.size() == AddressCount::Count(1) => write!(f, "{}", net.addr()),
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
    /// A larger target is refused with [`Error::TargetTooLarge`], never enumerated.
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
    ///
    /// An IPv6 address that carries an IPv4 address (see [`embedded_ipv4`]) is checked as that
    /// IPv4 address too: an exclude rule covering the IPv4 address excludes it, and when the
    /// IPv4 address is in a refused class, so is the IPv6 address.
    pub fn check_ip(
        &self,
        ip: IpAddr,
        via_name: Option<&str>,
    ) -> std::result::Result<(), ScopeViolation> {
        let ip = canonical(ip);
        let embedded = embedded_ipv4(ip);
        if let Some(rule) = self.exclude.iter().find(|r| {
            r.matches_ip(ip) || embedded.iter().any(|(_, v4)| r.matches_ip(IpAddr::V4(*v4)))
        }) {
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
        // Only address rules open a refused class, never a name rule: a name in scope that
        // resolves into a refused class is refused.
        if let Some((class, nets)) = refused_class(ip) {
            // Only a rule that lies inside the class (e.g. `127.0.0.1`, not `0.0.0.0/0`) opens it.
            let listed = by_net
                .iter()
                .any(|(lo, hi)| nets.iter().any(|c| c.contains(*lo) && c.contains(*hi)));
            if !listed || !self.is_unlocked(class) {
                return Err(ScopeViolation::RefusedClass { addr: ip, class });
            }
        }
        for (form, ipv4) in embedded {
            if let Some((class, _)) = refused_class(IpAddr::V4(ipv4)) {
                // No network can lie inside the class here, so only the exact address opens it.
                let listed = by_net.iter().any(|(lo, hi)| *lo == ip && *hi == ip);
                if !listed || !self.is_unlocked(class) {
                    return Err(ScopeViolation::RefusedEmbedded {
                        addr: ip,
                        form,
                        ipv4,
                        class,
                    });
                }
            }
        }
        Ok(())
    }

    /// Loopback needs no unlocking; the hard-denied classes do.
    fn is_unlocked(&self, class: AddressClass) -> bool {
        class == AddressClass::Loopback || self.unlocked.contains(&class)
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
        let mut walk = Walk {
            stop_at_first: true,
            ..Walk::default()
        };
        self.walk(targets, resolver, &mut walk).await;
        if let Some(refusal) = walk.refused.into_iter().next() {
            return Err(refusal.error);
        }
        let hosts = self.finish(walk.hosts)?;
        Ok(ScanPlan {
            hosts: hosts.into(),
            ports,
        })
    }

    /// Like [`Scope::plan`], but goes on past refusals and reports all of them: the hosts and
    /// ports a scan would contact and every target or address it refuses, with the reason.
    /// Sends nothing to any target (host names in scope are resolved, once each, as the plan
    /// would). This is `vigil scan --plan`, for auditing a scope safely.
    pub async fn audit(
        &self,
        targets: &[Target],
        ports: PortList,
        resolver: &dyn Resolver,
    ) -> Result<PlanAudit> {
        self.check_ports(&ports)?;
        let mut walk = Walk::default();
        self.walk(targets, resolver, &mut walk).await;
        let mut hosts = walk.hosts;
        dedup(&mut hosts);
        let mut refused = walk.refused;
        if refused.is_empty()
            && let Err(error) = self.finish(hosts.clone())
        {
            refused.push(Refusal {
                target: None,
                addr: None,
                error,
            });
        }
        Ok(PlanAudit {
            hosts,
            ports,
            refused,
        })
    }

    /// Checks the targets: every address target first, so that a refusal costs no DNS query
    /// when `walk.stop_at_first` is set, then the names (each resolved once, only when in scope).
    async fn walk(&self, targets: &[Target], resolver: &dyn Resolver, walk: &mut Walk) {
        for target in targets {
            if walk.done() {
                return;
            }
            match target {
                Target::Host(name) => {
                    if let Err(v) = self.check_name(name) {
                        walk.refuse(target, None, out_of_scope(target, v));
                    }
                }
                _ => self.walk_addresses(target, walk),
            }
        }
        for target in targets {
            let Target::Host(name) = target else { continue };
            if walk.done() {
                return;
            }
            if self.check_name(name).is_err() {
                continue; // Refused above, and never resolved.
            }
            let addrs = match resolver.resolve(name).await {
                Ok(addrs) if addrs.is_empty() => Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no addresses",
                )),
                other => other,
            };
            let addrs = match addrs {
                Ok(addrs) => addrs,
                Err(source) => {
                    let error = Error::Resolve {
                        host: name.clone(),
                        source,
                    };
                    walk.refuse(target, None, error);
                    continue;
                }
            };
            for addr in addrs {
                let addr = canonical(addr);
                match self.check_ip(addr, Some(name)) {
                    Ok(()) => walk.hosts.push(ScanHost {
                        addr,
                        name: Some(name.clone()),
                    }),
                    Err(reason) => {
                        let violation = ScopeViolation::ResolvedOutOfScope {
                            addr,
                            reason: Box::new(reason),
                        };
                        walk.refuse(target, Some(addr), out_of_scope(target, violation));
                        if walk.done() {
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Checks every address of an address target, once its size is known to be within limits.
    fn walk_addresses(&self, target: &Target, walk: &mut Walk) {
        let Some(count) = target.address_count() else {
            let error = Error::InvalidTarget {
                input: target.to_string(),
                reason: "a range must not end before it starts or mix IPv4 and IPv6".into(),
            };
            walk.refuse(target, None, error);
            return;
        };
        let limit = self.limits.max_hosts_per_target;
        if count.exceeds(limit) {
            let error = Error::TargetTooLarge {
                target: target.to_string(),
                addresses: count,
                limit,
            };
            walk.refuse(target, None, error);
            return;
        }
        let mut index = 0;
        while let Some(ip) = target.nth(index) {
            match self.check_ip(ip, None) {
                Ok(()) => walk.hosts.push(ScanHost {
                    addr: canonical(ip),
                    name: None,
                }),
                Err(v) => {
                    walk.refuse(target, Some(ip), out_of_scope(target, v));
                    if walk.done() {
                        return;
                    }
                }
            }
            index += 1;
        }
    }

    /// The plan-wide checks: at least one host, at most `max_hosts`.
    fn finish(&self, mut hosts: Vec<ScanHost>) -> Result<Vec<ScanHost>> {
        dedup(&mut hosts);
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
        Ok(hosts)
    }
}

fn out_of_scope(target: &Target, violation: ScopeViolation) -> Error {
    Error::OutOfScope {
        target: target.to_string(),
        violation,
    }
}

/// Keeps the first host of every address.
fn dedup(hosts: &mut Vec<ScanHost>) {
    let mut seen = std::collections::HashSet::new();
    hosts.retain(|h| seen.insert(h.addr));
}

/// What [`Scope::walk`] collects.
#[derive(Default)]
struct Walk {
    stop_at_first: bool,
    hosts: Vec<ScanHost>,
    refused: Vec<Refusal>,
}

impl Walk {
    fn refuse(&mut self, target: &Target, addr: Option<IpAddr>, error: Error) {
        self.refused.push(Refusal {
            target: Some(target.to_string()),
            addr,
            error,
        });
    }

    fn done(&self) -> bool {
        self.stop_at_first && !self.refused.is_empty()
    }
}

/// What [`Scope::audit`] found: what a scan would contact, and what it refuses.
#[derive(Debug)]
pub struct PlanAudit {
    /// The checked hosts (names resolved and pinned), without duplicates.
    pub hosts: Vec<ScanHost>,
    /// The ports every host would be probed on.
    pub ports: PortList,
    /// Every refusal, in target order. When this is not empty, [`Scope::plan`] refuses to make a
    /// plan at all: a scan is all or nothing.
    pub refused: Vec<Refusal>,
}

impl PlanAudit {
    /// Whether [`Scope::plan`] would accept the same targets.
    pub fn would_scan(&self) -> bool {
        self.refused.is_empty()
    }

    /// Hosts × ports: the connection attempts a scan would make (retries aside).
    pub fn probe_count(&self) -> u64 {
        self.hosts.len() as u64 * self.ports.len() as u64
    }
}

/// One refusal of [`Scope::audit`].
#[derive(Debug)]
pub struct Refusal {
    /// The target as written, or `None` for a refusal of the plan as a whole (too many hosts,
    /// no hosts).
    pub target: Option<String>,
    /// The refused address, when one address of the target was refused (an address of a
    /// network or range, or one that a name resolved to).
    pub addr: Option<IpAddr>,
    /// Why: [`Error::OutOfScope`], [`Error::TargetTooLarge`], [`Error::Resolve`],
    /// [`Error::LimitExceeded`] or [`Error::InvalidTarget`].
    pub error: Error,
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

/// How an IPv6 address carries an IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Ipv4Embedding {
    /// IPv4-mapped, `::ffff:a.b.c.d`: the last 32 bits.
    Mapped,
    /// IPv4-compatible (deprecated), `::a.b.c.d` other than `::` and `::1`: the last 32 bits.
    Compatible,
    /// NAT64 well-known prefix `64:ff9b::/96` (RFC 6052): the last 32 bits.
    Nat64,
    /// NAT64 local-use prefix `64:ff9b:1::/48` (RFC 8215), read with RFC 6052's /48 layout:
    /// bits 48 to 64 and 72 to 88 (bits 64 to 72 are the reserved `u` octet).
    Nat64LocalUse,
    /// 6to4, `2002::/16` (RFC 3056): bits 16 to 48.
    SixToFour,
    /// Teredo, `2001::/32` (RFC 4380): the server, bits 32 to 64.
    TeredoServer,
    /// Teredo, `2001::/32` (RFC 4380): the client, the last 32 bits inverted.
    TeredoClient,
}

impl fmt::Display for Ipv4Embedding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ipv4Embedding::Mapped => "IPv4-mapped",
            Ipv4Embedding::Compatible => "IPv4-compatible",
            Ipv4Embedding::Nat64 => "NAT64",
            Ipv4Embedding::Nat64LocalUse => "NAT64 local-use",
            Ipv4Embedding::SixToFour => "6to4",
            Ipv4Embedding::TeredoServer => "Teredo server",
            Ipv4Embedding::TeredoClient => "Teredo client",
        })
    }
}

/// Every IPv4 address an IPv6 address carries, with how it carries it: none for an IPv4
/// address or a plain IPv6 one, two for Teredo (server and client).
///
/// Traffic to such an address can end at the IPv4 address (through a NAT64 gateway, a 6to4
/// relay, a Teredo relay, or a dual-stack socket), so the scope checks it as that address too.
pub fn embedded_ipv4(ip: IpAddr) -> Vec<(Ipv4Embedding, Ipv4Addr)> {
    let IpAddr::V6(v6) = ip else {
        return Vec::new();
    };
    let bits = u128::from(v6);
    // Truncation to the low 32 bits is the point of these casts.
    let v4 = |shifted: u128| Ipv4Addr::from(shifted as u32);
    if bits >> 32 == 0xffff {
        vec![(Ipv4Embedding::Mapped, v4(bits))]
    } else if bits >> 32 == 0 && bits > 1 {
        vec![(Ipv4Embedding::Compatible, v4(bits))]
    } else if bits >> 32 == 0x0064_ff9b_0000_0000_0000_0000 {
        vec![(Ipv4Embedding::Nat64, v4(bits))]
    } else if bits >> 80 == 0x0064_ff9b_0001 {
        let octet = |shift: u32| ((bits >> shift) & 0xff) as u8;
        let addr = Ipv4Addr::new(octet(72), octet(64), octet(48), octet(40));
        vec![(Ipv4Embedding::Nat64LocalUse, addr)]
    } else if bits >> 112 == 0x2002 {
        vec![(Ipv4Embedding::SixToFour, v4(bits >> 80))]
    } else if bits >> 96 == 0x2001_0000 {
        vec![
            (Ipv4Embedding::TeredoServer, v4(bits >> 64)),
            (Ipv4Embedding::TeredoClient, v4(!bits)),
        ]
    } else {
        Vec::new()
    }
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

    fn v4(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    /// A resolver with a fixed answer that counts its calls; it never touches the network.
    struct Fixed(Vec<IpAddr>, std::sync::atomic::AtomicUsize);

    impl Fixed {
        fn new(addrs: &[&str]) -> Self {
            Self(addrs.iter().map(|a| ip(a)).collect(), Default::default())
        }

        fn calls(&self) -> usize {
            self.1.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    impl Resolver for Fixed {
        fn resolve<'a>(
            &'a self,
            _host: &'a str,
        ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send + 'a>> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(std::future::ready(Ok(self.0.clone())))
        }
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn wide() -> Scope {
        Scope::builder()
            .allow("0.0.0.0/0")
            .allow("::/0")
            .build()
            .unwrap()
    }

    #[test]
    fn embedded_ipv4_is_decoded_in_every_form() {
        use Ipv4Embedding::*;
        let metadata = v4("169.254.169.254");
        for (addr, expected) in [
            ("::ffff:169.254.169.254", vec![(Mapped, metadata)]),
            ("::a9fe:a9fe", vec![(Compatible, metadata)]),
            ("64:ff9b::a9fe:a9fe", vec![(Nat64, metadata)]),
            ("64:ff9b::169.254.169.254", vec![(Nat64, metadata)]),
            // RFC 6052 /48 layout: a.b in bits 48..64, the u octet, c.d in bits 72..88.
            ("64:ff9b:1:a9fe:a9:fe00::", vec![(Nat64LocalUse, metadata)]),
            (
                "64:ff9b:1:c000:2:2100::",
                vec![(Nat64LocalUse, v4("192.0.2.33"))],
            ),
            ("2002:a9fe:a9fe::1", vec![(SixToFour, metadata)]),
            ("2002:c000:0221:1::2", vec![(SixToFour, v4("192.0.2.33"))]),
            // RFC 4380's example: server 65.54.227.120, client 192.0.2.45.
            (
                "2001:0:4136:e378:8000:63bf:3fff:fdd2",
                vec![
                    (TeredoServer, v4("65.54.227.120")),
                    (TeredoClient, v4("192.0.2.45")),
                ],
            ),
            (
                "2001:0:c000:221:0:0:5601:5601",
                vec![(TeredoServer, v4("192.0.2.33")), (TeredoClient, metadata)],
            ),
        ] {
            assert_eq!(embedded_ipv4(ip(addr)), expected, "{addr}");
        }
        for plain in [
            "::",
            "::1",
            "192.0.2.1",
            "2001:db8::1",
            "2001:1::a9fe:a9fe",
            "64:ff9b:2::a9fe:a9fe",
            "fe80::1",
        ] {
            assert!(embedded_ipv4(ip(plain)).is_empty(), "{plain}");
        }
    }

    #[test]
    fn embedded_ipv4_in_a_refused_class_is_refused() {
        let wide = wide();
        for (addr, ipv4, form, class) in [
            (
                "64:ff9b::a9fe:a9fe",
                "169.254.169.254",
                Ipv4Embedding::Nat64,
                AddressClass::Metadata,
            ),
            (
                "64:ff9b::a9fe:aa02",
                "169.254.170.2",
                Ipv4Embedding::Nat64,
                AddressClass::Metadata,
            ),
            (
                "64:ff9b:1:a9fe:a9:fe00::",
                "169.254.169.254",
                Ipv4Embedding::Nat64LocalUse,
                AddressClass::Metadata,
            ),
            (
                "::a9fe:a9fe",
                "169.254.169.254",
                Ipv4Embedding::Compatible,
                AddressClass::Metadata,
            ),
            (
                "2002:6464:64c8::1",
                "100.100.100.200",
                Ipv4Embedding::SixToFour,
                AddressClass::Metadata,
            ),
            (
                "2001:0:a9fe:a9fe::1",
                "169.254.169.254",
                Ipv4Embedding::TeredoServer,
                AddressClass::Metadata,
            ),
            (
                "2001:0:c000:221::5601:5601",
                "169.254.169.254",
                Ipv4Embedding::TeredoClient,
                AddressClass::Metadata,
            ),
            (
                "2002:a9fe:102::1",
                "169.254.1.2",
                Ipv4Embedding::SixToFour,
                AddressClass::LinkLocal,
            ),
            (
                "64:ff9b::7f00:1",
                "127.0.0.1",
                Ipv4Embedding::Nat64,
                AddressClass::Loopback,
            ),
            (
                "2001:0:c000:221::80ff:fffe",
                "127.0.0.1",
                Ipv4Embedding::TeredoClient,
                AddressClass::Loopback,
            ),
            (
                "::e000:1",
                "224.0.0.1",
                Ipv4Embedding::Compatible,
                AddressClass::Multicast,
            ),
            (
                "::2",
                "0.0.0.2",
                Ipv4Embedding::Compatible,
                AddressClass::Unspecified,
            ),
            (
                "64:ff9b::ffff:ffff",
                "255.255.255.255",
                Ipv4Embedding::Nat64,
                AddressClass::Broadcast,
            ),
        ] {
            assert_eq!(
                wide.check_ip(ip(addr), None),
                Err(ScopeViolation::RefusedEmbedded {
                    addr: ip(addr),
                    form,
                    ipv4: v4(ipv4),
                    class,
                }),
                "{addr}"
            );
        }
        // An IPv4-mapped address is that IPv4 address: a plain refused class.
        assert_eq!(
            wide.check_ip(ip("::ffff:169.254.169.254"), None),
            Err(ScopeViolation::RefusedClass {
                addr: ip("169.254.169.254"),
                class: AddressClass::Metadata
            })
        );
        // Embedded addresses outside the refused classes pass.
        for ok in [
            "64:ff9b::c000:221",
            "2002:c000:221::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:db8::1",
        ] {
            assert_eq!(wide.check_ip(ip(ok), None), Ok(()), "{ok}");
        }
        let message = wide
            .check_ip(ip("64:ff9b::a9fe:a9fe"), None)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("carries 169.254.169.254 (NAT64), a cloud metadata address"),
            "{message}"
        );
    }

    #[test]
    fn only_the_exact_embedded_address_with_its_class_unlocked_opens_it() {
        let nat64 = ip("64:ff9b::a9fe:a9fe");
        let listed = Scope::builder()
            .allow("64:ff9b::a9fe:a9fe")
            .build()
            .unwrap();
        assert!(matches!(
            listed.check_ip(nat64, None),
            Err(ScopeViolation::RefusedEmbedded { .. })
        ));
        let unlocked_net = Scope::builder()
            .allow("64:ff9b::/96")
            .unlock(AddressClass::Metadata)
            .build()
            .unwrap();
        assert!(matches!(
            unlocked_net.check_ip(nat64, None),
            Err(ScopeViolation::RefusedEmbedded { .. })
        ));
        let both = Scope::builder()
            .allow("64:ff9b::a9fe:a9fe")
            .unlock(AddressClass::Metadata)
            .build()
            .unwrap();
        assert_eq!(both.check_ip(nat64, None), Ok(()));
        // Loopback keeps its rule: listing the address is enough, a wider network is not.
        let lo = ip("64:ff9b::7f00:1");
        assert_eq!(
            Scope::from_targets(&[Target::Ip(lo)])
                .unwrap()
                .check_ip(lo, None),
            Ok(())
        );
        assert!(
            Scope::builder()
                .allow("64:ff9b::/96")
                .build()
                .unwrap()
                .check_ip(lo, None)
                .is_err()
        );
        // A typed NAT64 metadata address is refused like the typed IPv4 one.
        assert!(
            Scope::from_targets(&[Target::Ip(nat64)])
                .unwrap()
                .check_ip(nat64, None)
                .is_err()
        );
    }

    #[test]
    fn excludes_cover_the_embedded_ipv4() {
        let scope = Scope::builder()
            .allow("::/0")
            .exclude("192.0.2.0/24")
            .build()
            .unwrap();
        for addr in [
            "64:ff9b::c000:221",
            "2002:c000:221::1",
            "::ffff:192.0.2.33",
            "2001:0:c000:221::1",
        ] {
            assert_eq!(
                scope.check_ip(ip(addr), None),
                Err(ScopeViolation::Excluded {
                    rule: "192.0.2.0/24".into()
                }),
                "{addr}"
            );
        }
        assert_eq!(scope.check_ip(ip("64:ff9b::c633:6401"), None), Ok(()));
    }

    #[test]
    fn name_rules_never_authorise_refused_classes() {
        let classes = [
            AddressClass::Metadata,
            AddressClass::LinkLocal,
            AddressClass::Loopback,
            AddressClass::Multicast,
            AddressClass::Unspecified,
            AddressClass::Broadcast,
        ];
        let mut exact = Scope::builder().allow("svc.example.com");
        let mut wildcard = Scope::builder().allow("*.example.com");
        for class in classes {
            exact = exact.unlock(class);
            wildcard = wildcard.unlock(class);
        }
        // Even with every class unlocked, a name rule opens none of them.
        for scope in [exact.build().unwrap(), wildcard.build().unwrap()] {
            for addr in [
                "169.254.169.254",
                "fd00:ec2::254",
                "169.254.1.1",
                "fe80::1",
                "127.0.0.1",
                "::1",
                "::ffff:127.0.0.1",
                "224.0.0.251",
                "ff02::1",
                "0.0.0.0",
                "::",
                "255.255.255.255",
                "64:ff9b::a9fe:a9fe",
                "64:ff9b::7f00:1",
                "2002:a9fe:a9fe::1",
                "2001:0:a9fe:a9fe::1",
            ] {
                let got = scope.check_ip(ip(addr), Some("svc.example.com"));
                assert!(
                    matches!(
                        got,
                        Err(ScopeViolation::RefusedClass { .. }
                            | ScopeViolation::RefusedEmbedded { .. })
                    ),
                    "{addr}: {got:?}"
                );
            }
            assert_eq!(
                scope.check_ip(ip("192.0.2.10"), Some("svc.example.com")),
                Ok(())
            );
        }
        // Loopback stays open to a name when the address itself is listed.
        let listed = Scope::builder()
            .allow("svc.example.com")
            .allow("127.0.0.1")
            .build()
            .unwrap();
        assert_eq!(
            listed.check_ip(ip("127.0.0.1"), Some("svc.example.com")),
            Ok(())
        );
    }

    #[test]
    fn a_name_resolving_to_nat64_metadata_is_refused_before_any_packet() {
        let scope = Scope::builder().allow("*.example.com").build().unwrap();
        let resolver = Fixed::new(&["192.0.2.10", "64:ff9b::a9fe:a9fe"]);
        let target: Target = "svc.example.com".parse().unwrap();
        let err = block_on(scope.plan(
            std::slice::from_ref(&target),
            "80".parse().unwrap(),
            &resolver,
        ))
        .unwrap_err();
        match err {
            Error::OutOfScope {
                violation: ScopeViolation::ResolvedOutOfScope { addr, reason },
                ..
            } => {
                assert_eq!(addr, ip("64:ff9b::a9fe:a9fe"));
                assert!(matches!(
                    *reason,
                    ScopeViolation::RefusedEmbedded {
                        class: AddressClass::Metadata,
                        ..
                    }
                ));
            }
            other => panic!("expected a resolved-out-of-scope refusal, got {other:?}"),
        }
        assert_eq!(resolver.calls(), 1);
    }

    #[test]
    fn targets_too_large_to_enumerate_say_so() {
        let resolver = Fixed::new(&[]);
        for (text, addresses) in [
            ("::/0", AddressCount::AllOfIpv6),
            (
                "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                AddressCount::AllOfIpv6,
            ),
            ("::/1", AddressCount::Count(1 << 127)),
            ("0.0.0.0/0", AddressCount::Count(1 << 32)),
            ("10.0.0.0-10.1.0.0", AddressCount::Count(65_537)),
        ] {
            let target: Target = text.parse().unwrap();
            let scope = Scope::from_targets(std::slice::from_ref(&target)).unwrap();
            let err = block_on(scope.plan(
                std::slice::from_ref(&target),
                "80".parse().unwrap(),
                &resolver,
            ))
            .unwrap_err();
            match &err {
                Error::TargetTooLarge {
                    target: t,
                    addresses: got,
                    limit,
                } => {
                    assert_eq!(t, &target.to_string());
                    assert_eq!(*got, addresses, "{text}");
                    assert_eq!(*limit, 65_536);
                }
                other => panic!("{text}: expected TargetTooLarge, got {other:?}"),
            }
            assert!(err.to_string().contains("split it"), "{err}");
        }
        let whole: Target = "::/0".parse().unwrap();
        let err = block_on(
            Scope::from_targets(std::slice::from_ref(&whole))
                .unwrap()
                .plan(
                    std::slice::from_ref(&whole),
                    "80".parse().unwrap(),
                    &resolver,
                ),
        )
        .unwrap_err();
        assert!(err.to_string().contains("holds 2^128 addresses"), "{err}");
        // The largest target within the limit still plans.
        let full: Target = "10.0.0.0/16".parse().unwrap();
        let plan = block_on(
            Scope::from_targets(std::slice::from_ref(&full))
                .unwrap()
                .plan(
                    std::slice::from_ref(&full),
                    "80".parse().unwrap(),
                    &resolver,
                ),
        )
        .unwrap();
        assert_eq!(plan.hosts().len(), 65_536);
    }

    #[test]
    fn hand_built_bad_ranges_are_refused_not_panicked_on() {
        let resolver = Fixed::new(&[]);
        for target in [
            Target::Range {
                start: ip("10.0.0.9"),
                end: ip("10.0.0.5"),
            },
            Target::Range {
                start: ip("10.0.0.1"),
                end: ip("::1"),
            },
        ] {
            assert_eq!(target.address_count(), None);
            assert_eq!(target.nth(0), None);
            let scope = Scope::builder().allow("0.0.0.0/0").build().unwrap();
            let err = block_on(scope.plan(
                std::slice::from_ref(&target),
                "80".parse().unwrap(),
                &resolver,
            ))
            .unwrap_err();
            assert!(matches!(err, Error::InvalidTarget { .. }), "{err:?}");
        }
        // As an allow rule, such a range matches nothing.
        let rule = Rule::Range {
            start: ip("10.0.0.9"),
            end: ip("10.0.0.5"),
        };
        assert!(!rule.matches_ip(ip("10.0.0.7")));
    }

    #[test]
    fn the_audit_reports_every_refusal_and_what_would_be_contacted() {
        let targets: Vec<Target> = [
            "127.0.0.1",
            "169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "svc.example",
            "::/0",
        ]
        .iter()
        .map(|t| t.parse().unwrap())
        .collect();
        let scope = Scope::from_targets(&targets)
            .unwrap()
            .with_excludes(&["127.0.0.2".into()])
            .unwrap();
        let resolver = Fixed::new(&["127.0.0.1", "192.0.2.7", "64:ff9b::a9fe:a9fe"]);
        let audit = block_on(scope.audit(&targets, "22,80".parse().unwrap(), &resolver)).unwrap();
        assert!(!audit.would_scan());
        assert_eq!(resolver.calls(), 1);
        let hosts: Vec<(IpAddr, Option<&str>)> = audit
            .hosts
            .iter()
            .map(|h| (h.addr, h.name.as_deref()))
            .collect();
        // 127.0.0.1 is listed by address, so the name may use it too (and it is pinned once).
        assert_eq!(
            hosts,
            vec![
                (ip("127.0.0.1"), None),
                (ip("192.0.2.7"), Some("svc.example")),
            ]
        );
        assert_eq!(audit.probe_count(), 4);
        let refused: Vec<(Option<&str>, Option<IpAddr>)> = audit
            .refused
            .iter()
            .map(|r| (r.target.as_deref(), r.addr))
            .collect();
        assert_eq!(
            refused,
            vec![
                (Some("169.254.169.254"), Some(ip("169.254.169.254"))),
                (Some("64:ff9b::a9fe:a9fe"), Some(ip("64:ff9b::a9fe:a9fe"))),
                (Some("::/0"), None),
                (Some("svc.example"), Some(ip("64:ff9b::a9fe:a9fe"))),
            ]
        );
        assert!(matches!(
            audit.refused[2].error,
            Error::TargetTooLarge {
                addresses: AddressCount::AllOfIpv6,
                ..
            }
        ));
        // The plan refuses the same targets at the first refusal.
        let err = block_on(scope.plan(&targets, "22,80".parse().unwrap(), &resolver)).unwrap_err();
        assert!(matches!(err, Error::OutOfScope { .. }));
        assert_eq!(resolver.calls(), 1, "the plan stopped before resolving");
    }

    #[test]
    fn a_clean_audit_would_scan() {
        let targets: Vec<Target> = vec!["127.0.0.1".parse().unwrap()];
        let scope = Scope::from_targets(&targets).unwrap();
        let audit =
            block_on(scope.audit(&targets, "1-3".parse().unwrap(), &Fixed::new(&[]))).unwrap();
        assert!(audit.would_scan());
        assert_eq!(audit.hosts.len(), 1);
        assert_eq!(audit.probe_count(), 3);
        // Everything excluded: the audit says the plan would have no targets.
        let scope = scope.with_excludes(&["127.0.0.0/8".into()]).unwrap();
        let audit =
            block_on(scope.audit(&targets, "1-3".parse().unwrap(), &Fixed::new(&[]))).unwrap();
        assert!(!audit.would_scan());
        assert_eq!(audit.refused.len(), 1);
    }
}
