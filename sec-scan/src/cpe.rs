//! CPE 2.3 names: parsing both bindings, printing, matching, and normalising detected names.
//!
//! A CPE (Common Platform Enumeration) name says which product a piece of software is:
//! `cpe:2.3:a:openbsd:openssh:9.2:p1:*:*:*:*:*:*` is the application (`a`) OpenSSH by OpenBSD,
//! version 9.2, update p1. NVD writes the applicability of every CVE in these names; nmap's
//! version detection emits the older URI binding (`cpe:/a:openbsd:openssh:9.2p1`).
//!
//! - [`Cpe::parse`] reads both the 2.3 formatted string (NISTIR 7695 §6.2, backslash quoting) and
//!   the URI binding (§6.1: `%xx` decoding, `%01` = `?`, `%02` = `*`, the five 2.3-only
//!   attributes packed into `edition` as `~ed~sw_ed~t_sw~t_hw~other`). Both give the same
//!   [`Cpe`], with 11 attributes, each [`Attr::Any`] (`*`), [`Attr::Na`] (`-`) or a value.
//! - `Display` prints the 2.3 formatted string.
//! - [`Cpe::matches`] is the name comparison of NISTIR 7696, restricted to what CVE matching
//!   needs: "does the criteria name (source) cover the detected name (target)?".
//! - [`normalize_detected`] closes the naming gaps between nmap and NVD: OpenSSH's `9.2p1`
//!   becomes version `9.2` update `p1` (NVD writes `openssh:8.5:p1`), and [`vendor_aliases`]
//!   lists the vendors NVD has used for a product nmap names differently
//!   (`igor_sysoev:nginx` → `f5:nginx`, `nginx:nginx`).
//!
//! Values are kept lower-case: CPE comparison is case-insensitive.

use std::fmt;
use std::str::FromStr;

/// Why a string is not a CPE name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CPE {input:?}: {reason}")]
pub struct CpeError {
    /// The input (cut to 200 characters).
    pub input: String,
    /// What is wrong with it.
    pub reason: String,
}

impl CpeError {
    fn new(input: &str, reason: impl Into<String>) -> CpeError {
        CpeError {
            input: input.chars().take(200).collect(),
            reason: reason.into(),
        }
    }
}

/// One attribute of a CPE name.
///
/// A value is stored lower-case. Inside it, a backslash quotes a literal `*`, `?` or `\`; an
/// unquoted `*` (any run of characters) or `?` (one character) is a wildcard, allowed only at
/// the start or the end (NISTIR 7695 §5.3.2). Every other character is stored as itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Attr {
    /// `*`: any value.
    #[default]
    Any,
    /// `-`: not applicable (the attribute has no value for this product).
    Na,
    /// A value, possibly with wildcards at its ends.
    Value(String),
}

impl Attr {
    /// The value as a plain string when it is a value without wildcards or quoting; `None`
    /// for ANY, NA and patterns.
    pub fn literal(&self) -> Option<&str> {
        match self {
            Attr::Value(v) if !v.contains(['*', '?', '\\']) => Some(v),
            _ => None,
        }
    }

    /// The value with quoting removed and wildcards kept as `*`/`?`; `None` for ANY and NA.
    pub fn value(&self) -> Option<String> {
        match self {
            Attr::Value(v) => Some(unquote(v)),
            _ => None,
        }
    }

    /// Whether this attribute, as a criteria (source), covers `target` (NISTIR 7696 §6.2,
    /// where SUPERSET and EQUAL count as a match).
    ///
    /// One deliberate departure: a target ANY is covered by a source NA for every attribute
    /// after `version` (see [`Cpe::matches`]); here it is not.
    pub fn covers(&self, target: &Attr) -> bool {
        match (self, target) {
            (Attr::Any, _) => true,
            (Attr::Na, Attr::Na) => true,
            (Attr::Na, _) => false,
            (Attr::Value(_), Attr::Any | Attr::Na) => false,
            (Attr::Value(pattern), Attr::Value(value)) => {
                if value.contains(['*', '?']) && !value.contains('\\') {
                    // A target pattern is only covered by the same pattern.
                    return pattern == value;
                }
                wildcard_match(pattern, &unquote(value))
            }
        }
    }
}

/// Matches `text` (plain) against `pattern` (stored form: quoted literals, wildcards at the ends).
fn wildcard_match(pattern: &str, text: &str) -> bool {
    // Split the pattern into leading wildcards, a literal middle, trailing wildcards.
    let chars: Vec<char> = pattern.chars().collect();
    let mut start = 0;
    let mut lead_star = false;
    let mut lead_q = 0usize;
    while start < chars.len() && (chars[start] == '*' || chars[start] == '?') {
        if chars[start] == '*' {
            lead_star = true;
        } else {
            lead_q += 1;
        }
        start += 1;
    }
    let mut end = chars.len();
    let mut trail_star = false;
    let mut trail_q = 0usize;
    while end > start && (chars[end - 1] == '*' || chars[end - 1] == '?') {
        // A quoted wildcard at the end is a literal.
        if end >= 2 && chars[end - 2] == '\\' {
            break;
        }
        if chars[end - 1] == '*' {
            trail_star = true;
        } else {
            trail_q += 1;
        }
        end -= 1;
    }
    let middle = unquote(&chars[start..end].iter().collect::<String>());
    let text: Vec<char> = text.chars().collect();
    let middle: Vec<char> = middle.chars().collect();
    let n = text.len();
    let m = middle.len();
    if n < m + lead_q + trail_q {
        return false;
    }
    // Candidate start offsets of the middle.
    let first = lead_q;
    let last = n - m - trail_q;
    let range: Vec<usize> = if lead_star {
        (first..=last).collect()
    } else {
        vec![first]
    };
    range.into_iter().any(|off| {
        if text[off..off + m] != middle[..] {
            return false;
        }
        let rest = n - off - m;
        if trail_star {
            rest >= trail_q
        } else {
            rest == trail_q
        }
    })
}

/// Removes backslash quoting from a stored value.
fn unquote(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The part of a CPE: application, operating system or hardware.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    /// `a`: an application.
    Application,
    /// `o`: an operating system.
    OperatingSystem,
    /// `h`: a hardware device.
    Hardware,
}

/// The names of the 11 attributes, in order.
pub const ATTRIBUTE_NAMES: [&str; 11] = [
    "part",
    "vendor",
    "product",
    "version",
    "update",
    "edition",
    "language",
    "sw_edition",
    "target_sw",
    "target_hw",
    "other",
];

/// A CPE name: 11 attributes (part, vendor, product, version, update, edition, language,
/// sw_edition, target_sw, target_hw, other).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cpe {
    attrs: [Attr; 11],
}

impl Cpe {
    /// Parses a 2.3 formatted string (`cpe:2.3:…`) or a URI binding (`cpe:/…`).
    pub fn parse(s: &str) -> Result<Cpe, CpeError> {
        let trimmed = s.trim();
        if trimmed.len() > 4096 {
            return Err(CpeError::new(s, "longer than 4096 characters"));
        }
        let lower = trimmed.to_ascii_lowercase();
        if let Some(rest) = lower.strip_prefix("cpe:2.3:") {
            parse_formatted(s, rest)
        } else if let Some(rest) = lower.strip_prefix("cpe:/") {
            parse_uri(s, rest)
        } else {
            Err(CpeError::new(s, "does not start with cpe:2.3: or cpe:/"))
        }
    }

    /// Builds an application CPE from a vendor, product and version (lower-cased; characters
    /// outside `[a-z0-9._-]` are quoted as needed).
    pub fn application(vendor: &str, product: &str, version: &str) -> Cpe {
        let mut attrs: [Attr; 11] = Default::default();
        attrs[0] = Attr::Value("a".into());
        attrs[1] = plain_value(vendor);
        attrs[2] = plain_value(product);
        attrs[3] = plain_value(version);
        Cpe { attrs }
    }

    /// Attribute `i` (0 = part … 10 = other); see [`ATTRIBUTE_NAMES`].
    pub fn attr(&self, i: usize) -> &Attr {
        &self.attrs[i.min(10)]
    }

    /// Sets attribute `i` (0 = part … 10 = other).
    pub fn set_attr(&mut self, i: usize, value: Attr) {
        self.attrs[i.min(10)] = value;
    }

    /// The part, when it is `a`, `o` or `h`.
    pub fn part(&self) -> Option<Part> {
        match self.attrs[0].literal() {
            Some("a") => Some(Part::Application),
            Some("o") => Some(Part::OperatingSystem),
            Some("h") => Some(Part::Hardware),
            _ => None,
        }
    }

    /// The part letter as stored (`a`, `o`, `h`), or `*`.
    pub fn part_str(&self) -> &str {
        self.attrs[0].literal().unwrap_or("*")
    }

    /// The vendor.
    pub fn vendor(&self) -> &Attr {
        &self.attrs[1]
    }

    /// The product.
    pub fn product(&self) -> &Attr {
        &self.attrs[2]
    }

    /// The version.
    pub fn version(&self) -> &Attr {
        &self.attrs[3]
    }

    /// The update (OpenSSH's `p1`).
    pub fn update(&self) -> &Attr {
        &self.attrs[4]
    }

    /// Whether this name, used as criteria (source), covers `target` (NISTIR 7696): every
    /// attribute must be a SUPERSET or EQUAL of the target's.
    ///
    /// A detected name usually knows nothing past the version; so a target ANY counts as
    /// covered by a criteria NA in the attributes after `version` (`update` … `other`):
    /// `openssh:9.8:-` covers a detected `openssh:9.8` with update ANY. Before that
    /// (part, vendor, product, version) the rule is strict.
    pub fn matches(&self, target: &Cpe) -> bool {
        self.attrs
            .iter()
            .zip(target.attrs.iter())
            .enumerate()
            .all(|(i, (s, t))| {
                if i > 3 && matches!((s, t), (Attr::Na, Attr::Any)) {
                    return true;
                }
                s.covers(t)
            })
    }
}

fn plain_value(v: &str) -> Attr {
    let v = v.trim().to_lowercase().replace(char::is_whitespace, "_");
    match v.as_str() {
        "" | "*" => Attr::Any,
        "-" => Attr::Na,
        _ => {
            let mut out = String::with_capacity(v.len());
            for c in v.chars() {
                if matches!(c, '*' | '?' | '\\') {
                    out.push('\\');
                }
                out.push(c);
            }
            Attr::Value(out)
        }
    }
}

impl FromStr for Cpe {
    type Err = CpeError;
    fn from_str(s: &str) -> Result<Cpe, CpeError> {
        Cpe::parse(s)
    }
}

/// Checks the wildcard placement of a stored value: unquoted `*`/`?` only at the ends.
fn check_wildcards(input: &str, v: &str) -> Result<(), CpeError> {
    let chars: Vec<char> = v.chars().collect();
    let mut i = 0;
    // Skip leading wildcards.
    while i < chars.len() && (chars[i] == '*' || chars[i] == '?') {
        i += 1;
    }
    let mut j = chars.len();
    while j > i && (chars[j - 1] == '*' || chars[j - 1] == '?') {
        if j >= 2 && chars[j - 2] == '\\' {
            break;
        }
        j -= 1;
    }
    let mut k = i;
    while k < j {
        match chars[k] {
            '\\' => k += 2,
            '*' | '?' => {
                return Err(CpeError::new(
                    input,
                    format!("unquoted wildcard {:?} inside the value {v:?}", chars[k]),
                ));
            }
            _ => k += 1,
        }
    }
    if i == chars.len() && chars.iter().filter(|c| **c == '*').count() > 1 {
        return Err(CpeError::new(
            input,
            format!("value {v:?} is only wildcards"),
        ));
    }
    Ok(())
}

fn parse_formatted(input: &str, rest: &str) -> Result<Cpe, CpeError> {
    // Split on unquoted ':'.
    let mut fields: Vec<String> = Vec::with_capacity(11);
    let mut cur = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(next) = chars.next() else {
                    return Err(CpeError::new(input, "ends with a lone backslash"));
                };
                if matches!(next, '*' | '?' | '\\') {
                    cur.push('\\');
                }
                cur.push(next);
            }
            ':' => fields.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    fields.push(cur);
    if fields.len() != 11 {
        return Err(CpeError::new(
            input,
            format!(
                "has {} attributes after cpe:2.3:, 11 expected",
                fields.len()
            ),
        ));
    }
    let mut attrs: [Attr; 11] = Default::default();
    for (i, f) in fields.into_iter().enumerate() {
        attrs[i] = match f.as_str() {
            "*" => Attr::Any,
            "-" => Attr::Na,
            "" => {
                return Err(CpeError::new(
                    input,
                    format!("{} is empty", ATTRIBUTE_NAMES[i]),
                ));
            }
            _ => {
                check_wildcards(input, &f)?;
                Attr::Value(f)
            }
        };
    }
    check_part(input, &attrs[0])?;
    Ok(Cpe { attrs })
}

fn check_part(input: &str, part: &Attr) -> Result<(), CpeError> {
    match part {
        Attr::Any => Ok(()),
        Attr::Value(v) if matches!(v.as_str(), "a" | "o" | "h") => Ok(()),
        _ => Err(CpeError::new(input, "part must be a, o, h or *")),
    }
}

fn decode_uri_component(input: &str, comp: &str) -> Result<Attr, CpeError> {
    match comp {
        "" => return Ok(Attr::Any),
        "-" => return Ok(Attr::Na),
        _ => {}
    }
    let bytes = comp.as_bytes();
    let mut out = String::with_capacity(comp.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = comp
                .get(i + 1..i + 3)
                .ok_or_else(|| CpeError::new(input, "truncated %-escape"))?;
            let b = u8::from_str_radix(hex, 16)
                .map_err(|_| CpeError::new(input, format!("bad %-escape %{hex}")))?;
            match b {
                0x01 => out.push('?'),
                0x02 => out.push('*'),
                b'*' | b'?' | b'\\' => {
                    out.push('\\');
                    out.push(b as char);
                }
                0x21..=0x7e => out.push((b as char).to_ascii_lowercase()),
                _ => {
                    return Err(CpeError::new(
                        input,
                        format!("%{hex} is not printable ASCII"),
                    ));
                }
            }
            i += 3;
        } else {
            let c = comp[i..].chars().next().unwrap_or('_');
            if matches!(c, '*' | '?' | '\\') {
                out.push('\\');
            }
            out.push(c);
            i += c.len_utf8();
        }
    }
    check_wildcards(input, &out)?;
    Ok(Attr::Value(out))
}

fn parse_uri(input: &str, rest: &str) -> Result<Cpe, CpeError> {
    let comps: Vec<&str> = rest.split(':').collect();
    if comps.len() > 7 {
        return Err(CpeError::new(
            input,
            format!("URI binding has {} components, at most 7", comps.len()),
        ));
    }
    let mut attrs: [Attr; 11] = Default::default();
    for (i, comp) in comps.iter().enumerate() {
        if i == 5 && comp.starts_with('~') {
            // Packed edition: ~edition~sw_edition~target_sw~target_hw~other.
            let packed: Vec<&str> = comp[1..].split('~').collect();
            if packed.len() != 5 {
                return Err(CpeError::new(
                    input,
                    "packed edition needs 5 ~-separated fields",
                ));
            }
            let targets = [5, 7, 8, 9, 10];
            for (k, p) in packed.iter().enumerate() {
                attrs[targets[k]] = decode_uri_component(input, p)?;
            }
        } else {
            attrs[i] = decode_uri_component(input, comp)?;
        }
    }
    check_part(input, &attrs[0])?;
    Ok(Cpe { attrs })
}

impl fmt::Display for Cpe {
    /// The 2.3 formatted string: `cpe:2.3:a:openbsd:openssh:9.2:p1:*:*:*:*:*:*`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cpe:2.3")?;
        for a in &self.attrs {
            f.write_str(":")?;
            match a {
                Attr::Any => f.write_str("*")?,
                Attr::Na => f.write_str("-")?,
                Attr::Value(v) => {
                    let mut chars = v.chars();
                    while let Some(c) = chars.next() {
                        if c == '\\' {
                            f.write_str("\\")?;
                            if let Some(n) = chars.next() {
                                write!(f, "{n}")?;
                            }
                        } else if c.is_ascii_alphanumeric()
                            || matches!(c, '-' | '.' | '_' | '*' | '?')
                            || !c.is_ascii()
                        {
                            write!(f, "{c}")?;
                        } else {
                            write!(f, "\\{c}")?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Vendors NVD has used for a product that detectors name differently. The first vendor
/// of each row is the one current NVD records use.
///
/// | product | vendors tried |
/// |---|---|
/// | nginx | `f5` (records since 2020), `nginx` (older records), `igor_sysoev` (nmap) |
/// | openssh | `openbsd` |
/// | http_server | `apache` |
/// | vsftpd | `vsftpd_project`, `beasts` (nmap) |
const VENDOR_ALIASES: &[(&str, &[&str])] = &[
    ("nginx", &["f5", "nginx", "igor_sysoev"]),
    ("openssh", &["openbsd"]),
    ("vsftpd", &["vsftpd_project", "beasts"]),
];

/// The vendors to look a detected (vendor, product) up under: the aliases of the table in
/// this function's source (nginx: `f5`, `nginx`, `igor_sysoev`; vsftpd: `vsftpd_project`,
/// `beasts`), or just the detected vendor. Always contains `vendor` itself.
pub fn vendor_aliases(vendor: &str, product: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if let Some((_, vendors)) = VENDOR_ALIASES.iter().find(|(p, vs)| {
        *p == product && (vs.contains(&vendor) || vendor.is_empty() || vendor == "*")
    }) {
        out.extend(vendors.iter().map(|v| v.to_string()));
    }
    if !vendor.is_empty() && vendor != "*" && !out.iter().any(|v| v == vendor) {
        out.push(vendor.to_string());
    }
    out
}

/// Normalises a detected CPE for matching against NVD criteria.
///
/// - OpenSSH (`openbsd:openssh`) versions with a portable suffix are split: `9.2p1` → version
///   `9.2`, update `p1` (NVD's `openssh:8.5:p1`). A version without suffix (OpenBSD's own
///   `9.8`) gets update NA, which NVD writes as `openssh:9.8:-`.
/// - The vendor is not rewritten here; the matcher tries every vendor [`vendor_aliases`]
///   lists.
pub fn normalize_detected(cpe: &Cpe) -> Cpe {
    let mut out = cpe.clone();
    if out.product().literal() == Some("openssh")
        && out.update() == &Attr::Any
        && let Some(v) = out.version().literal().map(str::to_string)
    {
        if let Some(pos) = v.find('p') {
            let (ver, upd) = v.split_at(pos);
            if !ver.is_empty() && upd.len() > 1 && upd[1..].bytes().all(|b| b.is_ascii_digit()) {
                out.attrs[3] = Attr::Value(ver.to_string());
                out.attrs[4] = Attr::Value(upd.to_string());
            }
        } else if v.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            out.attrs[4] = Attr::Na;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatted_and_uri_agree() {
        let a = Cpe::parse("cpe:2.3:a:openbsd:openssh:9.2p1:*:*:*:*:*:*:*").unwrap();
        let b = Cpe::parse("cpe:/a:openbsd:openssh:9.2p1").unwrap();
        assert_eq!(a, b);
        assert_eq!(
            a.to_string(),
            "cpe:2.3:a:openbsd:openssh:9.2p1:*:*:*:*:*:*:*"
        );
    }

    #[test]
    fn quoting_round_trips() {
        let s = "cpe:2.3:a:hp:insight_diagnostics:7.4.0.1570:-:*:*:online:win2003:x64:*";
        assert_eq!(Cpe::parse(s).unwrap().to_string(), s);
        let q = Cpe::parse(r"cpe:2.3:a:foo\:bar:c\+\+:1.0:*:*:*:*:*:*:*").unwrap();
        assert_eq!(q.vendor().value().as_deref(), Some("foo:bar"));
        assert_eq!(q.product().value().as_deref(), Some("c++"));
        assert_eq!(q.to_string(), r"cpe:2.3:a:foo\:bar:c\+\+:1.0:*:*:*:*:*:*:*");
    }

    #[test]
    fn uri_decoding_and_packed_edition() {
        let c = Cpe::parse("cpe:/a:foo%21:bar:1.%02:-:~legacy~pro~linux~x64~").unwrap();
        assert_eq!(c.vendor().value().as_deref(), Some("foo!"));
        assert_eq!(c.version(), &Attr::Value("1.*".into()));
        assert_eq!(c.update(), &Attr::Na);
        assert_eq!(c.attr(5), &Attr::Value("legacy".into()));
        assert_eq!(c.attr(7), &Attr::Value("pro".into()));
        assert_eq!(c.attr(8), &Attr::Value("linux".into()));
        assert_eq!(c.attr(9), &Attr::Value("x64".into()));
        assert_eq!(c.attr(10), &Attr::Any);
        assert_eq!(
            c.to_string(),
            r"cpe:2.3:a:foo\!:bar:1.*:-:legacy:*:pro:linux:x64:*"
        );
        let lang = Cpe::parse("cpe:/a:v:p:1:u:e:en-us").unwrap();
        assert_eq!(lang.attr(6), &Attr::Value("en-us".into()));
        let q = Cpe::parse("cpe:/a:v:p:%011").unwrap();
        assert_eq!(q.version(), &Attr::Value("?1".into()));
    }

    #[test]
    fn bad_input_is_an_error() {
        for bad in [
            "",
            "cpe:2.3:a:b",
            "cpe:2.3:x:v:p:*:*:*:*:*:*:*:*",
            "cpe:2.3:a:v:p:1*2:*:*:*:*:*:*:*",
            "cpe:2.3:a:v:p:1:*:*:*:*:*:*:*:*",
            "cpe:/a:v:p:%zz",
            "cpe:/a:v:p:1:2:~a~b:x",
            "cpe:2.3:a:v:p:1\\",
            "nope",
        ] {
            assert!(Cpe::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matching_follows_nistir_7696() {
        let crit = Cpe::parse("cpe:2.3:a:openbsd:openssh:8.5:p1:*:*:*:*:*:*").unwrap();
        let det = normalize_detected(&Cpe::parse("cpe:/a:OpenBSD:OpenSSH:8.5p1").unwrap());
        assert!(crit.matches(&det));
        let no = normalize_detected(&Cpe::parse("cpe:/a:openbsd:openssh:8.6p1").unwrap());
        assert!(!crit.matches(&no));
        let na = Cpe::parse("cpe:2.3:a:openbsd:openssh:9.8:-:*:*:*:*:*:*").unwrap();
        let p1 = normalize_detected(&Cpe::parse("cpe:/a:openbsd:openssh:9.8p1").unwrap());
        let plain = normalize_detected(&Cpe::parse("cpe:/a:openbsd:openssh:9.8").unwrap());
        assert!(!na.matches(&p1));
        assert!(na.matches(&plain));
        let wild = Cpe::parse("cpe:2.3:a:openbsd:open*:9.?:*:*:*:*:*:*:*").unwrap();
        assert!(wild.matches(&plain));
        assert!(!wild.matches(&Cpe::parse("cpe:/a:openbsd:openssh:9.10").unwrap()));
        // A criteria value never covers an unknown (ANY) version.
        let any = Cpe::parse("cpe:/a:openbsd:openssh").unwrap();
        assert!(!crit.matches(&any));
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*ssh", "openssh"));
        assert!(wildcard_match("open*", "openssh"));
        assert!(wildcard_match("??enssh", "openssh"));
        assert!(!wildcard_match("?enssh", "openssh"));
        assert!(wildcard_match("*ss?", "openssh"));
        assert!(wildcard_match("a\\*", "a*"));
        assert!(!wildcard_match("a\\*", "ab"));
    }

    #[test]
    fn normaliser_and_aliases() {
        let c = normalize_detected(&Cpe::parse("cpe:/a:openbsd:openssh:9.2p1").unwrap());
        assert_eq!(
            c.to_string(),
            "cpe:2.3:a:openbsd:openssh:9.2:p1:*:*:*:*:*:*"
        );
        assert_eq!(
            vendor_aliases("igor_sysoev", "nginx"),
            ["f5", "nginx", "igor_sysoev"]
        );
        assert_eq!(vendor_aliases("apache", "http_server"), ["apache"]);
        assert_eq!(
            Cpe::application("Igor Sysoev", "nginx", "1.22.1").to_string(),
            "cpe:2.3:a:igor_sysoev:nginx:1.22.1:*:*:*:*:*:*:*"
        );
    }
}
