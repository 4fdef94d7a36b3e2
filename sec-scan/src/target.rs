//! What to scan: targets (addresses, networks, ranges, host names) and port lists.
//!
//! Parsing is strict. Ambiguous spellings that resolvers would silently turn into an address
//! (`2130706433`, `0x7f.1`, `0177.0.0.1`) are refused instead of guessed, so that what the
//! operator reads is what is scanned.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// An IP network: an address and a prefix length (`10.0.0.0/24`, `fe80::/10`).
///
/// The address is stored with its host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    /// Builds a network, clearing host bits. Fails when the prefix is longer than the address.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self> {
        let addr = canonical(addr);
        let max = max_prefix(addr);
        if prefix > max {
            return Err(Error::InvalidTarget {
                input: format!("{addr}/{prefix}"),
                reason: format!("prefix longer than {max}"),
            });
        }
        let bits = to_bits(addr) & mask(prefix, max);
        Ok(Self {
            addr: from_bits(bits, addr.is_ipv4()),
            prefix,
        })
    }

    /// A network holding exactly one address.
    pub fn host(addr: IpAddr) -> Self {
        let addr = canonical(addr);
        Self {
            addr,
            prefix: max_prefix(addr),
        }
    }

    /// The network address (host bits cleared).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` (IPv4-mapped IPv6 is treated as IPv4) lies in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        let max = max_prefix(ip);
        to_bits(ip) & mask(self.prefix, max) == to_bits(self.addr)
    }

    /// Whether every address of `other` lies in this network.
    pub fn covers(&self, other: &Net) -> bool {
        other.prefix >= self.prefix && self.contains(other.addr)
    }

    /// How many addresses the network holds (`::/0` holds [`AddressCount::AllOfIpv6`]).
    pub fn size(&self) -> AddressCount {
        AddressCount::between(self.addr, self.last())
    }

    /// The last address of the network (its broadcast address for IPv4).
    pub fn last(&self) -> IpAddr {
        let max = max_prefix(self.addr);
        let all = mask(max, max);
        let host = all & !mask(self.prefix, max);
        from_bits(to_bits(self.addr) | host, self.addr.is_ipv4())
    }

    /// The `index`-th address of the network, if it exists.
    pub fn nth(&self, index: u128) -> Option<IpAddr> {
        nth_between(self.addr, self.last(), index)
    }
}

/// How many addresses a network, range or target holds.
///
/// All of IPv6 holds 2^128 addresses, one more than a `u128` can count, so that one size has
/// its own variant: nothing wraps around to zero or saturates to a wrong count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AddressCount {
    /// This many addresses (at least 1).
    Count(u128),
    /// 2^128 addresses: every IPv6 address.
    AllOfIpv6,
}

impl AddressCount {
    /// The count of addresses from `first` to `last` inclusive (callers pass a valid range;
    /// a reversed one counts as one address rather than wrapping).
    fn between(first: IpAddr, last: IpAddr) -> Self {
        match to_bits(last).saturating_sub(to_bits(first)).checked_add(1) {
            Some(n) => AddressCount::Count(n),
            None => AddressCount::AllOfIpv6,
        }
    }

    /// The count, when it fits in a `u128`.
    pub fn get(self) -> Option<u128> {
        match self {
            AddressCount::Count(n) => Some(n),
            AddressCount::AllOfIpv6 => None,
        }
    }

    /// Whether the count is larger than `limit`.
    pub fn exceeds(self, limit: u128) -> bool {
        self.get().is_none_or(|n| n > limit)
    }
}

impl fmt::Display for AddressCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressCount::Count(n) => write!(f, "{n}"),
            AddressCount::AllOfIpv6 => f.write_str("2^128"),
        }
    }
}

/// Whether `start..=end` is a range: one family, not ending before it starts.
pub(crate) fn valid_range(start: IpAddr, end: IpAddr) -> bool {
    start.is_ipv4() == end.is_ipv4() && to_bits(start) <= to_bits(end)
}

/// The `index`-th address from `first` to `last` inclusive, if it exists.
fn nth_between(first: IpAddr, last: IpAddr, index: u128) -> Option<IpAddr> {
    let span = to_bits(last).checked_sub(to_bits(first))?;
    (index <= span).then(|| from_bits(to_bits(first) + index, first.is_ipv4()))
}

impl fmt::Display for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Net {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: &str| Error::InvalidTarget {
            input: s.to_owned(),
            reason: reason.to_owned(),
        };
        match s.split_once('/') {
            Some((addr, prefix)) => {
                let addr: IpAddr = addr.parse().map_err(|_| bad("not an IP address"))?;
                let prefix: u8 = prefix.parse().map_err(|_| bad("bad prefix length"))?;
                Net::new(addr, prefix)
            }
            None => {
                let addr: IpAddr = s.parse().map_err(|_| bad("not an IP address"))?;
                Ok(Net::host(addr))
            }
        }
    }
}

/// One scan target as the operator wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// A single address.
    Ip(IpAddr),
    /// A network in CIDR notation; every address in it is a host to scan.
    Net(Net),
    /// An inclusive address range: `10.0.0.5-10.0.0.9`, or `10.0.0.5-9` for the last octet.
    Range {
        /// First address.
        start: IpAddr,
        /// Last address (inclusive).
        end: IpAddr,
    },
    /// A host name, lower-cased and without a trailing dot. Resolved once, by the scope.
    Host(String),
}

impl Target {
    /// How many addresses the target expands to, or `None` for a host name (unknown until
    /// resolution). Never overflows: a range over all of IPv6 is [`AddressCount::AllOfIpv6`].
    pub fn address_count(&self) -> Option<AddressCount> {
        let (first, last) = self.span()?;
        Some(AddressCount::between(first, last))
    }

    /// The first and the last address of an address target; `None` for a host name, and for a
    /// range built by hand that ends before it starts or mixes IPv4 and IPv6 (parsing refuses
    /// both).
    pub fn span(&self) -> Option<(IpAddr, IpAddr)> {
        match self {
            Target::Ip(ip) => Some((*ip, *ip)),
            Target::Net(net) => Some((net.addr(), net.last())),
            Target::Range { start, end } => valid_range(*start, *end).then_some((*start, *end)),
            Target::Host(_) => None,
        }
    }

    /// The `index`-th address of an address target (not of a host name).
    pub fn nth(&self, index: u128) -> Option<IpAddr> {
        let (first, last) = self.span()?;
        nth_between(first, last, index)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Ip(ip) => write!(f, "{ip}"),
            Target::Net(net) => write!(f, "{net}"),
            Target::Range { start, end } => write!(f, "{start}-{end}"),
            Target::Host(name) => write!(f, "{name}"),
        }
    }
}

impl FromStr for Target {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self> {
        let s = input.trim();
        let bad = |reason: &str| Error::InvalidTarget {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        if s.is_empty() {
            return Err(bad("empty target"));
        }
        // `[::1]` is accepted as an IPv6 literal.
        let s = s
            .strip_prefix('[')
            .and_then(|x| x.strip_suffix(']'))
            .unwrap_or(s);
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Target::Ip(canonical(ip)));
        }
        if s.contains('/') {
            return Ok(Target::Net(s.parse().map_err(|e| match e {
                Error::InvalidTarget { reason, .. } => bad(&reason),
                other => other,
            })?));
        }
        if let Some((a, b)) = s.split_once('-')
            && let Ok(start) = a.parse::<IpAddr>()
        {
            let start = canonical(start);
            let end = match (start, b.parse::<IpAddr>()) {
                (_, Ok(end)) => canonical(end),
                (IpAddr::V4(v4), Err(_)) => {
                    let last: u8 = b.parse().map_err(|_| bad("bad range end"))?;
                    let o = v4.octets();
                    IpAddr::V4(Ipv4Addr::new(o[0], o[1], o[2], last))
                }
                (IpAddr::V6(_), Err(_)) => return Err(bad("bad range end")),
            };
            if start.is_ipv4() != end.is_ipv4() {
                return Err(bad("range mixes IPv4 and IPv6"));
            }
            if !valid_range(start, end) {
                return Err(bad("range end is before its start"));
            }
            return Ok(Target::Range { start, end });
        }
        Ok(Target::Host(normalize_host(s).map_err(|r| bad(&r))?))
    }
}

/// Lower-cases a host name, drops one trailing dot and checks its syntax. Names made only of
/// digits, dots and hex prefixes are refused: resolvers read them as numeric IPv4 forms.
pub(crate) fn normalize_host(s: &str) -> std::result::Result<String, String> {
    let name = s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase();
    if name.is_empty() || name.len() > 253 {
        return Err("host name is empty or longer than 253 characters".into());
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("host name has an empty or over-long label".into());
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("host name label starts or ends with '-'".into());
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err("host name has a character outside [a-z0-9-_.]".into());
        }
    }
    let numeric_form = name.split('.').all(|label| {
        let digits = label
            .strip_prefix("0x")
            .map(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()));
        digits.unwrap_or_else(|| label.bytes().all(|b| b.is_ascii_digit()))
    });
    if numeric_form {
        return Err(
            "numeric IPv4 forms other than dotted quads are ambiguous; write a.b.c.d".into(),
        );
    }
    Ok(name)
}

/// A sorted, de-duplicated list of TCP ports (never port 0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<u16>", into = "Vec<u16>")]
pub struct PortList(Vec<u16>);

impl PortList {
    /// Every port, 1 to 65 535.
    pub fn all() -> Self {
        Self((1..=u16::MAX).collect())
    }

    /// The `n` ports most often found open (nmap's frequency order, first 100 at most).
    pub fn top(n: usize) -> Self {
        Self::from_ports(TOP_PORTS.iter().take(n).copied()).expect("the top list has no port 0")
    }

    /// Builds a list from ports; fails on port 0 or an empty list.
    pub fn from_ports(ports: impl IntoIterator<Item = u16>) -> Result<Self> {
        let mut v: Vec<u16> = ports.into_iter().collect();
        if v.contains(&0) {
            return Err(Error::InvalidPorts {
                input: "0".into(),
                reason: "port 0 cannot be scanned".into(),
            });
        }
        v.sort_unstable();
        v.dedup();
        if v.is_empty() {
            return Err(Error::InvalidPorts {
                input: String::new(),
                reason: "no ports".into(),
            });
        }
        Ok(Self(v))
    }

    /// The ports, ascending.
    pub fn as_slice(&self) -> &[u16] {
        &self.0
    }

    /// How many ports.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: a port list holds at least one port.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Removes ports; fails if nothing is left.
    pub fn without(&self, excluded: &PortList) -> Result<Self> {
        Self::from_ports(
            self.0
                .iter()
                .copied()
                .filter(|p| excluded.0.binary_search(p).is_err()),
        )
    }
}

impl TryFrom<Vec<u16>> for PortList {
    type Error = Error;
    fn try_from(v: Vec<u16>) -> Result<Self> {
        Self::from_ports(v)
    }
}

impl From<PortList> for Vec<u16> {
    fn from(p: PortList) -> Self {
        p.0
    }
}

impl FromStr for PortList {
    type Err = Error;

    /// Parses `22`, `22,80,443`, `1000-2000`, `-` or `all` (1-65535), `top100` / `top:20`, and
    /// any comma-separated mix.
    fn from_str(input: &str) -> Result<Self> {
        let bad = |reason: String| Error::InvalidPorts {
            input: input.to_owned(),
            reason,
        };
        // A set of every port, not a list: `all,all,...` in a long spec (a scan request body may
        // be 1 MiB) would otherwise expand to gigabytes before de-duplication.
        let mut ports = PortSet::default();
        for part in input.split(',').map(str::trim) {
            if part.is_empty() {
                return Err(bad("empty item".into()));
            }
            if part == "-" || part.eq_ignore_ascii_case("all") {
                ports.insert_range(1, u16::MAX);
            } else if let Some(n) = part
                .strip_prefix("top:")
                .or_else(|| part.strip_prefix("top"))
            {
                let n: usize = n
                    .parse()
                    .map_err(|_| bad(format!("bad count in {part:?}")))?;
                if n == 0 || n > TOP_PORTS.len() {
                    return Err(bad(format!(
                        "top list holds 1 to {} ports",
                        TOP_PORTS.len()
                    )));
                }
                TOP_PORTS[..n]
                    .iter()
                    .for_each(|p| ports.insert_range(*p, *p));
            } else if let Some((a, b)) = part.split_once('-') {
                let a = parse_port(a).map_err(bad)?;
                let b = parse_port(b).map_err(bad)?;
                if b < a {
                    return Err(bad(format!("range {part:?} ends before it starts")));
                }
                ports.insert_range(a, b);
            } else {
                let p = parse_port(part).map_err(bad)?;
                ports.insert_range(p, p);
            }
        }
        Self::from_ports(ports.iter()).map_err(|e| match e {
            Error::InvalidPorts { reason, .. } => bad(reason),
            other => other,
        })
    }
}

/// Every port 0 to 65 535 as one bit: 8 KiB whatever the spec repeats, and a range costs at
/// most 1 024 word operations (none once every port is in).
struct PortSet {
    words: Box<[u64; 1024]>,
    full: bool,
}

impl Default for PortSet {
    fn default() -> Self {
        Self {
            words: Box::new([0; 1024]),
            full: false,
        }
    }
}

impl PortSet {
    fn insert_range(&mut self, first: u16, last: u16) {
        if self.full || last < first {
            return;
        }
        let (first, last) = (usize::from(first), usize::from(last));
        for word in first / 64..=last / 64 {
            let lo = if word == first / 64 { first % 64 } else { 0 };
            let hi = if word == last / 64 { last % 64 } else { 63 };
            // Bits lo..=hi.
            let mask = (u64::MAX >> (63 - hi)) & (u64::MAX << lo);
            self.words[word] |= mask;
        }
        // Port 0 is never valid, so "full" means 1 to 65 535.
        self.full = self.words[0] | 1 == u64::MAX && self.words[1..].iter().all(|w| *w == u64::MAX);
    }

    fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        (0..=u16::MAX).filter(|p| self.words[usize::from(p >> 6)] & (1 << (p & 63)) != 0)
    }
}

fn parse_port(s: &str) -> std::result::Result<u16, String> {
    match s.trim().parse::<u16>() {
        Ok(0) => Err("port 0 cannot be scanned".into()),
        Ok(p) => Ok(p),
        Err(_) => Err(format!("{s:?} is not a port (1-65535)")),
    }
}

/// The 100 TCP ports most often found open, in nmap's published frequency order.
pub const TOP_PORTS: [u16; 100] = [
    80, 23, 443, 21, 22, 25, 3389, 110, 445, 139, 143, 53, 135, 3306, 8080, 1723, 111, 995, 993,
    5900, 1025, 587, 8888, 199, 1720, 465, 548, 113, 81, 6001, 10000, 514, 5060, 179, 1026, 2000,
    8443, 8000, 32768, 554, 26, 1433, 49152, 2001, 515, 8008, 49154, 1027, 5666, 646, 5000, 5631,
    631, 49153, 8081, 2049, 88, 79, 5800, 106, 2121, 1110, 49155, 6000, 513, 990, 5357, 427, 49156,
    543, 544, 5101, 144, 7, 389, 8009, 3128, 444, 9999, 5009, 7070, 5190, 3000, 5432, 1900, 3986,
    13, 1029, 9, 5051, 6646, 49157, 1028, 873, 1755, 2717, 4899, 9100, 119, 37,
];

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) become plain IPv4, so no check can be
/// side-stepped by spelling an address differently.
pub fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

fn max_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

fn mask(prefix: u8, max: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        let all = if max == 32 {
            u128::from(u32::MAX)
        } else {
            u128::MAX
        };
        all & !all.checked_shr(u32::from(prefix)).unwrap_or(0)
    }
}

pub(crate) fn to_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_bits(bits: u128, v4: bool) -> IpAddr {
    if v4 {
        // Host bits of an IPv4 network never exceed 32 bits.
        IpAddr::V4(Ipv4Addr::from(bits as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(bits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        assert_eq!(
            "127.0.0.1".parse::<Target>().unwrap(),
            Target::Ip("127.0.0.1".parse().unwrap())
        );
        assert_eq!(
            "::ffff:127.0.0.1".parse::<Target>().unwrap(),
            Target::Ip("127.0.0.1".parse().unwrap())
        );
        assert_eq!(
            "[::1]".parse::<Target>().unwrap(),
            Target::Ip("::1".parse().unwrap())
        );
        let net: Target = "10.1.2.3/24".parse().unwrap();
        assert_eq!(net.to_string(), "10.1.2.0/24");
        assert_eq!(net.address_count(), Some(AddressCount::Count(256)));
        let range: Target = "10.0.0.5-9".parse().unwrap();
        assert_eq!(range.address_count(), Some(AddressCount::Count(5)));
        assert_eq!(range.nth(4), Some("10.0.0.9".parse().unwrap()));
        assert_eq!(range.nth(5), None);
        assert_eq!(
            "Example.COM.".parse::<Target>().unwrap(),
            Target::Host("example.com".into())
        );
    }

    #[test]
    fn refuses_ambiguous_and_broken_targets() {
        for bad in [
            "",
            "2130706433",
            "0x7f.1",
            "0177.0.0.1",
            "10.0.0.9-5",
            "1.2.3.4/33",
            "a..b",
            "-a.com",
            "a b",
            "10.0.0.1-::1",
        ] {
            assert!(
                matches!(bad.parse::<Target>(), Err(Error::InvalidTarget { .. })),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn net_contains_and_covers() {
        let net: Net = "169.254.0.0/16".parse().unwrap();
        assert!(net.contains("169.254.169.254".parse().unwrap()));
        assert!(net.contains("::ffff:169.254.1.1".parse().unwrap()));
        assert!(!net.contains("169.255.0.1".parse().unwrap()));
        assert!(net.covers(&"169.254.169.254/32".parse().unwrap()));
        assert!(!net.covers(&"169.0.0.0/8".parse().unwrap()));
        let all: Net = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        assert!(!all.contains("::1".parse().unwrap()));
        let v6: Net = "fe80::/10".parse().unwrap();
        assert!(v6.contains("fe80::1".parse().unwrap()));
    }

    #[test]
    fn parses_ports() {
        let p: PortList = "80,22,1000-1002,22".parse().unwrap();
        assert_eq!(p.as_slice(), &[22, 80, 1000, 1001, 1002]);
        assert_eq!("all".parse::<PortList>().unwrap().len(), 65_535);
        assert_eq!("-".parse::<PortList>().unwrap().len(), 65_535);
        assert_eq!("top10".parse::<PortList>().unwrap().len(), 10);
        assert_eq!("top:100".parse::<PortList>().unwrap().len(), 100);
        for bad in ["0", "65536", "10-5", "", "a", "1,,2", "top0", "top101"] {
            assert!(
                matches!(bad.parse::<PortList>(), Err(Error::InvalidPorts { .. })),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn top_ports_are_unique() {
        let list = PortList::top(100);
        assert_eq!(list.len(), 100);
    }

    #[test]
    fn sizes_never_overflow() {
        let all_v6: Net = "::/0".parse().unwrap();
        assert_eq!(all_v6.size(), AddressCount::AllOfIpv6);
        assert_eq!(
            all_v6.last(),
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
                .parse::<IpAddr>()
                .unwrap()
        );
        assert_eq!(all_v6.nth(u128::MAX), Some(all_v6.last()));
        assert_eq!(all_v6.to_string(), "::/0");
        let range: Target = "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
            .parse()
            .unwrap();
        assert_eq!(range.address_count(), Some(AddressCount::AllOfIpv6));
        assert_eq!(range.nth(u128::MAX), Some(all_v6.last()));
        let half: Net = "8000::/1".parse().unwrap();
        assert_eq!(half.size(), AddressCount::Count(1 << 127));
        assert_eq!(half.nth(1 << 127), None);
        let all_v4: Net = "0.0.0.0/0".parse().unwrap();
        assert_eq!(all_v4.size(), AddressCount::Count(1 << 32));
        assert_eq!(all_v4.last(), "255.255.255.255".parse::<IpAddr>().unwrap());
        assert_eq!(all_v4.nth(1 << 32), None);
        let host: Net = "192.0.2.1/32".parse().unwrap();
        assert_eq!(host.size(), AddressCount::Count(1));
        assert_eq!(host.last(), host.addr());
        let v6_host: Net = "2001:db8::1/128".parse().unwrap();
        assert_eq!(v6_host.size(), AddressCount::Count(1));
        assert!(AddressCount::AllOfIpv6.exceeds(u128::MAX));
        assert!(!AddressCount::Count(u128::MAX).exceeds(u128::MAX));
        assert!(AddressCount::Count(65_537).exceeds(65_536));
        assert!(AddressCount::AllOfIpv6 > AddressCount::Count(u128::MAX));
        assert_eq!(AddressCount::AllOfIpv6.to_string(), "2^128");
    }

    /// Found by reading the fuzz target's speed: every `all` used to expand to 65 535 list
    /// entries before de-duplication, so a 1 MiB spec of `all,all,...` asked for gigabytes.
    #[test]
    fn a_port_spec_repeating_all_stays_small() {
        let spec = vec!["all"; 262_144].join(",");
        let started = std::time::Instant::now();
        let ports: PortList = spec.parse().unwrap();
        assert_eq!(ports.len(), 65_535);
        let spec = vec!["2-65534,top100,80"; 20_000].join(",");
        assert_eq!(spec.parse::<PortList>().unwrap().len(), 65_533);
        let edges: PortList = "60-70,127-129,65530-65535,64".parse().unwrap();
        let mut expected: Vec<u16> = (60..=70).chain(127..=129).chain(65_530..=65_535).collect();
        expected.sort_unstable();
        assert_eq!(edges.as_slice(), expected.as_slice());
        let spec = vec!["1-3,7,100-200"; 20_000].join(",");
        assert_eq!(
            spec.parse::<PortList>().unwrap().as_slice().len(),
            3 + 1 + 101
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "{:?}",
            started.elapsed()
        );
    }
}
