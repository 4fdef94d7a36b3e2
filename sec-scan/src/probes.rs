//! The nmap-service-probes format: a parser.
//!
//! nmap's service and version detection is driven by a line-oriented file of probes (what to
//! send) and match lines (what the reply means). vigil reads the same format, so a user can load
//! nmap's own file from where it is installed (it is under the NPSL: vigil never ships or copies
//! it) or a file written for vigil. This module turns the text into [`ProbeFile`]; compiling the
//! patterns and running the probes come on top of it.
//!
//! What is read (the format as nmap documents it, "Service and Application Version Detection",
//! chapter "nmap-service-probes File Format"):
//!
//! - `#` comments and blank lines.
//! - `Exclude <portspec>`, at most once and before the first probe (`T:`/`U:` prefixes allowed).
//! - `Probe TCP|UDP <name> q<d>payload<d> [no-payload]`, with any delimiter `<d>` and C-style
//!   escapes in the payload (`\0`, `\n`, `\r`, `\t`, `\a`, `\f`, `\v`, `\\`, `\xHH`, and any
//!   other escaped byte as itself).
//! - The directives after a probe: `ports`, `sslports`, `rarity` (1–9, default 5), `totalwaitms`
//!   (default 5 000), `tcpwrappedms` (default 2 000), `fallback a,b`.
//! - `match` and `softmatch <service> m<d>pattern<d>[i][s] <templates>`: the pattern is kept as
//!   the raw bytes between the delimiters (no escape processing: it is a regular expression);
//!   templates are `p/ v/ i/ h/ o/ d/` with any delimiter, and `cpe:/…/` (nmap's file also
//!   writes `cpe:|…|`: any delimiter is read, the URI is `cpe:/` and what is inside), each
//!   possibly followed by flag letters (nmap writes `a` after CPEs), which are read and ignored.
//!
//! Every problem is a [`ProbeFileError`] naming the line; nothing panics on any input.

use std::fmt;

use crate::target::PortList;

/// Default `rarity` of a probe without one.
pub const DEFAULT_RARITY: u8 = 5;
/// Default `totalwaitms`.
pub const DEFAULT_TOTAL_WAIT_MS: u32 = 5_000;
/// Default `tcpwrappedms`.
pub const DEFAULT_TCPWRAPPED_MS: u32 = 2_000;

/// A parsed probe file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeFile {
    /// Ports never probed for versions (`Exclude`), as written.
    pub exclude: Option<String>,
    /// The probes, in file order.
    pub probes: Vec<Probe>,
}

/// The transport of a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// One `Probe` with its directives and match lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The probe's name (`NULL`, `GetRequest`, …).
    pub name: String,
    /// The bytes sent, escapes decoded (empty for the NULL probe).
    pub payload: Vec<u8>,
    /// `no-payload`: keep this UDP probe out of port scanning.
    pub no_payload: bool,
    /// Ports this probe is tried first on.
    pub ports: Option<PortList>,
    /// Ports this probe is tried first on inside TLS.
    pub ssl_ports: Option<PortList>,
    /// 1 (common) to 9 (rare).
    pub rarity: u8,
    /// How long to wait for a reply, in milliseconds.
    pub total_wait_ms: u32,
    /// A close within this many milliseconds means `tcpwrapped`.
    pub tcpwrapped_ms: u32,
    /// Probes whose match lines are also tried.
    pub fallback: Vec<String>,
    /// The match and softmatch lines, in file order.
    pub matches: Vec<Match>,
    /// Line number of the `Probe` line (1-based).
    pub line: usize,
}

/// A `match` or `softmatch` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// `softmatch`: names the service but lets later probes narrow it.
    pub soft: bool,
    /// The service name (`ssh`, `http`, …).
    pub service: String,
    /// The pattern's raw bytes, as written between the delimiters.
    pub pattern: Vec<u8>,
    /// `i`: case-insensitive.
    pub case_insensitive: bool,
    /// `s`: `.` matches a newline too.
    pub dot_all: bool,
    /// The version templates.
    pub templates: Templates,
    /// Line number (1-based).
    pub line: usize,
}

/// The version templates of a match line, unsubstituted (`$1`, `$P(2)`, … still in them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Templates {
    /// `p/`: product.
    pub product: Option<String>,
    /// `v/`: version.
    pub version: Option<String>,
    /// `i/`: extra information.
    pub info: Option<String>,
    /// `h/`: host name.
    pub hostname: Option<String>,
    /// `o/`: operating system.
    pub os: Option<String>,
    /// `d/`: device type.
    pub device: Option<String>,
    /// `cpe:/…/`: CPE URIs, in order.
    pub cpes: Vec<String>,
}

/// What was wrong with a probe file, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeFileError {
    /// Line number (1-based).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ProbeFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ProbeFileError {}

impl ProbeFile {
    /// Parses a probe file's text.
    pub fn parse(text: &str) -> Result<ProbeFile, ProbeFileError> {
        let mut file = ProbeFile::default();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let err = |message: String| ProbeFileError { line, message };
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let (keyword, rest) = split_word(trimmed);
            match keyword {
                "Exclude" => {
                    if !file.probes.is_empty() {
                        return Err(err("Exclude must come before the first Probe".into()));
                    }
                    if file.exclude.is_some() {
                        return Err(err("Exclude appears twice".into()));
                    }
                    if rest.is_empty() {
                        return Err(err("Exclude needs a port list".into()));
                    }
                    file.exclude = Some(rest.to_owned());
                }
                "Probe" => file.probes.push(parse_probe(rest, line).map_err(err)?),
                "match" | "softmatch" => {
                    let probe = file
                        .probes
                        .last_mut()
                        .ok_or_else(|| err(format!("{keyword} before any Probe")))?;
                    let m = parse_match(keyword == "softmatch", rest, line).map_err(err)?;
                    probe.matches.push(m);
                }
                "ports" | "sslports" | "rarity" | "totalwaitms" | "tcpwrappedms" | "fallback" => {
                    let probe = file
                        .probes
                        .last_mut()
                        .ok_or_else(|| err(format!("{keyword} before any Probe")))?;
                    directive(probe, keyword, rest).map_err(err)?;
                }
                other => return Err(err(format!("unknown directive {other:?}"))),
            }
        }
        Ok(file)
    }

    /// The probe named `name`.
    pub fn probe(&self, name: &str) -> Option<&Probe> {
        self.probes.iter().find(|p| p.name == name)
    }

    /// Match and softmatch lines in the file.
    pub fn match_count(&self) -> usize {
        self.probes.iter().map(|p| p.matches.len()).sum()
    }
}

/// The first whitespace-separated word and the rest, trimmed.
fn split_word(s: &str) -> (&str, &str) {
    match s.find(char::is_whitespace) {
        Some(at) => (&s[..at], s[at..].trim_start()),
        None => (s, ""),
    }
}

/// Takes `<d>…<d>` from the start of `s` (the delimiter is `s`'s first character): the text
/// between and what follows the closing delimiter.
fn delimited(s: &str, what: &str) -> Result<(String, usize, char), String> {
    let mut chars = s.char_indices();
    let Some((_, delim)) = chars.next() else {
        return Err(format!("{what}: missing its delimiter"));
    };
    if delim.is_whitespace() {
        return Err(format!("{what}: a delimiter cannot be whitespace"));
    }
    let start = delim.len_utf8();
    match s[start..].find(delim) {
        Some(len) => Ok((
            s[start..start + len].to_owned(),
            start + len + delim.len_utf8(),
            delim,
        )),
        None => Err(format!("{what}: no closing {delim:?}")),
    }
}

fn parse_probe(rest: &str, line: usize) -> Result<Probe, String> {
    let (protocol, rest) = split_word(rest);
    let protocol = match protocol {
        "TCP" => Protocol::Tcp,
        "UDP" => Protocol::Udp,
        other => return Err(format!("probe protocol must be TCP or UDP, not {other:?}")),
    };
    let (name, rest) = split_word(rest);
    if name.is_empty() {
        return Err("Probe needs a name".into());
    }
    let Some(quoted) = rest.strip_prefix('q') else {
        return Err(format!(
            "probe {name}: the payload must be written q<d>…<d>"
        ));
    };
    let (payload, used, _) = delimited(quoted, "probe payload")?;
    let payload = unescape(&payload).map_err(|e| format!("probe {name}: {e}"))?;
    let tail = quoted[used..].trim();
    let no_payload = match tail {
        "" => false,
        "no-payload" => true,
        other => {
            return Err(format!(
                "probe {name}: unexpected {other:?} after the payload"
            ));
        }
    };
    Ok(Probe {
        protocol,
        name: name.to_owned(),
        payload,
        no_payload,
        ports: None,
        ssl_ports: None,
        rarity: DEFAULT_RARITY,
        total_wait_ms: DEFAULT_TOTAL_WAIT_MS,
        tcpwrapped_ms: DEFAULT_TCPWRAPPED_MS,
        fallback: Vec::new(),
        matches: Vec::new(),
        line,
    })
}

fn directive(probe: &mut Probe, keyword: &str, rest: &str) -> Result<(), String> {
    let number = |min: u32, max: u32| -> Result<u32, String> {
        rest.parse::<u32>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| format!("{keyword} must be a number from {min} to {max}, not {rest:?}"))
    };
    let ports = || -> Result<PortList, String> {
        rest.parse::<PortList>()
            .map_err(|e| format!("{keyword} {rest:?}: {e}"))
    };
    match keyword {
        "ports" => probe.ports = Some(ports()?),
        "sslports" => probe.ssl_ports = Some(ports()?),
        // Bounded by the range checks above: the casts cannot truncate.
        "rarity" => probe.rarity = u8::try_from(number(1, 9)?).unwrap_or(DEFAULT_RARITY),
        "totalwaitms" => probe.total_wait_ms = number(100, 300_000)?,
        "tcpwrappedms" => probe.tcpwrapped_ms = number(100, 300_000)?,
        "fallback" => {
            probe.fallback = rest
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            if probe.fallback.is_empty() {
                return Err("fallback needs at least one probe name".into());
            }
        }
        _ => unreachable!("the caller passes only the directives above"),
    }
    Ok(())
}

fn parse_match(soft: bool, rest: &str, line: usize) -> Result<Match, String> {
    let (service, rest) = split_word(rest);
    if service.is_empty() {
        return Err("a match line needs a service name".into());
    }
    let Some(pattern) = rest.strip_prefix('m') else {
        return Err(format!("{service}: the pattern must be written m<d>…<d>"));
    };
    let (body, used, _) = delimited(pattern, "pattern")?;
    let mut after = &pattern[used..];
    let (mut case_insensitive, mut dot_all) = (false, false);
    while let Some(flag) = after.chars().next().filter(|c| !c.is_whitespace()) {
        match flag {
            'i' => case_insensitive = true,
            's' => dot_all = true,
            other => return Err(format!("{service}: unknown pattern flag {other:?}")),
        }
        after = &after[1..];
    }
    if body.is_empty() {
        return Err(format!("{service}: an empty pattern matches everything"));
    }
    Ok(Match {
        soft,
        service: service.to_owned(),
        pattern: body.into_bytes(),
        case_insensitive,
        dot_all,
        templates: parse_templates(after.trim_start())?,
        line,
    })
}

fn parse_templates(mut s: &str) -> Result<Templates, String> {
    let mut t = Templates::default();
    while !s.is_empty() {
        let (value, used) = if let Some(cpe) = s.strip_prefix("cpe:") {
            // Written `cpe:/a:vendor:product/`; nmap's own file also has `cpe:|h:…|`.
            let (value, used, _) = delimited(cpe, "cpe")?;
            t.cpes.push(format!("cpe:/{value}"));
            (None, "cpe:".len() + used)
        } else {
            let mut chars = s.chars();
            let key = chars.next().unwrap_or(' ');
            let slot = match key {
                'p' => &mut t.product,
                'v' => &mut t.version,
                'i' => &mut t.info,
                'h' => &mut t.hostname,
                'o' => &mut t.os,
                'd' => &mut t.device,
                other => return Err(format!("unknown version template {other:?}")),
            };
            let (value, used, _) = delimited(&s[key.len_utf8()..], "template")?;
            (Some((slot, value)), key.len_utf8() + used)
        };
        if let Some((slot, value)) = value {
            if slot.is_some() {
                return Err("a version template appears twice".into());
            }
            *slot = Some(value);
        }
        s = &s[used..];
        // Flag letters after a template (nmap writes `a` after CPEs) are read and ignored.
        let flags = s
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(s.len());
        if flags > 3 {
            return Err(format!("unexpected {:?} after a template", &s[..flags]));
        }
        s = s[flags..].trim_start();
    }
    Ok(t)
}

/// Decodes a probe payload's C-style escapes.
fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let Some(e) = bytes.next() else {
            return Err("the payload ends with a lone backslash".into());
        };
        out.push(match e {
            b'0' => 0,
            b'a' => 0x07,
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'v' => 0x0b,
            b'x' => {
                let hex = [bytes.next(), bytes.next()];
                let [Some(h), Some(l)] = hex else {
                    return Err("\\x needs two hex digits".into());
                };
                let digit = |c: u8| (c as char).to_digit(16);
                match (digit(h), digit(l)) {
                    // Two hex digits are at most 0xff.
                    (Some(h), Some(l)) => u8::try_from(h * 16 + l).unwrap_or(u8::MAX),
                    _ => return Err("\\x needs two hex digits".into()),
                }
            }
            other => other,
        });
    }
    Ok(out)
}

/// Why a pattern cannot be run by the `regex` crate (it needs a backtracking engine, or it is
/// not a pattern nmap would accept either).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsupported {
    /// `(?=`, `(?!`, `(?<=`, `(?<!`: look-around.
    LookAround,
    /// `(?>`: an atomic group.
    Atomic,
    /// `\1`–`\9`: a backreference.
    Backreference,
    /// `x*+`, `x++`, `x?+`, `x{n}+`: a possessive quantifier.
    Possessive,
    /// An escape the `regex` crate has no meaning for (`\K`, `\G`, `\Q`, …).
    Escape(char),
    /// The pattern matches the empty string (nmap refuses those too).
    MatchesEmpty,
    /// The rewritten pattern did not compile.
    Syntax(String),
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unsupported::LookAround => f.write_str("look-around"),
            Unsupported::Atomic => f.write_str("an atomic group"),
            Unsupported::Backreference => f.write_str("a backreference"),
            Unsupported::Possessive => f.write_str("a possessive quantifier"),
            Unsupported::Escape(c) => write!(f, "the escape \\{c}"),
            Unsupported::MatchesEmpty => f.write_str("a pattern that matches the empty string"),
            Unsupported::Syntax(e) => write!(f, "{e}"),
        }
    }
}

/// Largest compiled pattern accepted, in bytes (the `regex` crate's size limit).
const COMPILED_SIZE_LIMIT: usize = 1 << 20;

impl Match {
    /// Compiles the pattern for the `regex` crate's byte matcher, with the rewrites that keep
    /// PCRE's meaning: no Unicode (`(?-u)`: bytes, ASCII case folding, as nmap's PCRE),
    /// `$` as PCRE's "end, or before a final newline", `\0NN` octal as `\xHH`, a `{` that is no
    /// repetition and a `[` inside a class as literals, `\<`/`\>` as the literal characters
    /// (PCRE), `&` and `~` in classes escaped (set operators in `regex`). Constructs that need a
    /// backtracking engine are refused with [`Unsupported`]; the caller counts and skips them.
    pub fn compile(&self) -> Result<regex::bytes::Regex, Unsupported> {
        let pattern = String::from_utf8_lossy(&self.pattern);
        let rewritten = rewrite(&pattern)?;
        // Flags after `-` are turned off: `(?is-u)`.
        let mut flags = String::from("(?");
        if self.case_insensitive {
            flags.push('i');
        }
        if self.dot_all {
            flags.push('s');
        }
        flags.push_str("-u)");
        let regex = regex::bytes::RegexBuilder::new(&format!("{flags}{rewritten}"))
            .size_limit(COMPILED_SIZE_LIMIT)
            .build()
            .map_err(|e| Unsupported::Syntax(e.to_string()))?;
        if regex.is_match(b"") {
            return Err(Unsupported::MatchesEmpty);
        }
        Ok(regex)
    }
}

impl Unsupported {
    /// A short stable name for the kind of problem, for counting (`look-around`, `atomic`,
    /// `backreference`, `possessive`, `escape`, `matches-empty`, `syntax`).
    pub fn kind(&self) -> &'static str {
        match self {
            Unsupported::LookAround => "look-around",
            Unsupported::Atomic => "atomic",
            Unsupported::Backreference => "backreference",
            Unsupported::Possessive => "possessive",
            Unsupported::Escape(_) => "escape",
            Unsupported::MatchesEmpty => "matches-empty",
            Unsupported::Syntax(_) => "syntax",
        }
    }
}

/// A match line's templates filled in from one reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filled {
    /// Product.
    pub product: Option<String>,
    /// Version.
    pub version: Option<String>,
    /// Extra information.
    pub info: Option<String>,
    /// Host name.
    pub hostname: Option<String>,
    /// Operating system.
    pub os: Option<String>,
    /// Device type.
    pub device: Option<String>,
    /// CPE URIs (URI binding, `cpe:/a:vendor:product:version`).
    pub cpes: Vec<String>,
}

impl Templates {
    /// Fills the templates from a match's capture groups.
    ///
    /// Substitutions, as nmap defines them: `$1`–`$9` (the group's bytes), `$P(n)` (only the
    /// printable bytes of group `n`, for UTF-16 text), `$SUBST(n,"from","to")` (group `n` with
    /// every `from` replaced by `to`), `$I(n,"<")` / `$I(n,">")` (group `n`, at most 8 bytes,
    /// read as an unsigned little- or big-endian integer, written in decimal). In CPE templates
    /// the substituted text is lower-cased, whitespace becomes `_`, and
    /// ``:/?#[]@!$&'()*+,;=%<>"`` are percent-encoded.
    ///
    /// A reference that cannot be filled (a group the pattern lacks or that did not take part,
    /// `$I` on more than 8 bytes, a malformed `$SUBST(…)`) yields empty text: the line still
    /// matches, the field is just shorter. A `$` that starts no substitution is kept as itself.
    /// Control bytes in the result are dropped; a field that ends up empty is `None`.
    pub fn fill(&self, caps: &regex::bytes::Captures<'_>) -> Filled {
        let text = |t: &Option<String>| {
            t.as_deref()
                .map(|t| substitute(t, caps, false))
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        };
        Filled {
            product: text(&self.product),
            version: text(&self.version),
            info: text(&self.info),
            hostname: text(&self.hostname),
            os: text(&self.os),
            device: text(&self.device),
            cpes: self
                .cpes
                .iter()
                .map(|t| substitute(t, caps, true))
                .collect(),
        }
    }
}

/// Group `n`'s bytes (empty when it does not exist or did not take part).
fn group<'a>(caps: &regex::bytes::Captures<'a>, n: usize) -> &'a [u8] {
    caps.get(n).map_or(&[][..], |m| m.as_bytes())
}

/// Reads `n` (one digit 1–9) at the start of `s`.
fn group_number(s: &str) -> Option<(usize, &str)> {
    let d = s.chars().next().filter(|c| ('1'..='9').contains(c))?;
    Some((d.to_digit(10)? as usize, &s[1..]))
}

/// Reads `"text"` at the start of `s` (after optional spaces).
fn quoted_arg(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start().strip_prefix('"')?;
    let end = s.find('"')?;
    Some((&s[..end], &s[end + 1..]))
}

/// Parses the inside of `$SUBST(`…`)` / `$I(`…`)` / `$P(`…`)` and computes the bytes.
/// Returns the bytes and what follows the closing `)`.
fn function<'s>(
    name: &str,
    s: &'s str,
    caps: &regex::bytes::Captures<'_>,
) -> Option<(Vec<u8>, &'s str)> {
    let (n, rest) = group_number(s)?;
    let bytes = group(caps, n);
    match name {
        "P" => {
            let rest = rest.trim_start().strip_prefix(')')?;
            let printable = bytes
                .iter()
                .copied()
                .filter(|b| (0x20..0x7f).contains(b))
                .collect();
            Some((printable, rest))
        }
        "SUBST" => {
            let rest = rest.trim_start().strip_prefix(',')?;
            let (from, rest) = quoted_arg(rest)?;
            let rest = rest.trim_start().strip_prefix(',')?;
            let (to, rest) = quoted_arg(rest)?;
            let rest = rest.trim_start().strip_prefix(')')?;
            let mut out = Vec::with_capacity(bytes.len());
            let (from, to) = (from.as_bytes(), to.as_bytes());
            let mut i = 0;
            while i < bytes.len() {
                if !from.is_empty() && bytes[i..].starts_with(from) {
                    out.extend_from_slice(to);
                    i += from.len();
                } else {
                    out.push(bytes[i]);
                    i += 1;
                }
            }
            Some((out, rest))
        }
        "I" => {
            let rest = rest.trim_start().strip_prefix(',')?;
            let (order, rest) = quoted_arg(rest)?;
            let rest = rest.trim_start().strip_prefix(')')?;
            if bytes.len() > 8 {
                return Some((Vec::new(), rest));
            }
            let fold = |acc: u64, b: &u8| (acc << 8) | u64::from(*b);
            let value = match order {
                "<" => bytes.iter().rev().fold(0, fold),
                ">" => bytes.iter().fold(0, fold),
                _ => return None,
            };
            Some((value.to_string().into_bytes(), rest))
        }
        _ => None,
    }
}

/// Fills one template (see [`Templates::fill`]).
fn substitute(template: &str, caps: &regex::bytes::Captures<'_>, cpe: bool) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    let push_sub = |out: &mut String, bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes);
        for c in text.chars().filter(|c| !c.is_control()) {
            if !cpe {
                out.push(c);
            } else if c.is_whitespace() {
                out.push('_');
            } else if ":/?#[]@!$&'()*+,;=%<>\"".contains(c) {
                out.push_str(&format!("%{:02x}", c as u32));
            } else {
                out.extend(c.to_lowercase());
            }
        }
    };
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some((n, tail)) = group_number(after) {
            push_sub(&mut out, group(caps, n));
            rest = tail;
            continue;
        }
        let mut done = false;
        for name in ["P", "SUBST", "I"] {
            if let Some(args) = after.strip_prefix(name).and_then(|a| a.strip_prefix('(')) {
                // A malformed call is dropped up to its closing parenthesis.
                match function(name, args, caps) {
                    Some((bytes, tail)) => {
                        push_sub(&mut out, &bytes);
                        rest = tail;
                    }
                    None => rest = args.find(')').map_or("", |p| &args[p + 1..]),
                }
                done = true;
                break;
            }
        }
        if !done {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Whether `rest` starts a counted repetition: `{n}`, `{n,}` or `{n,m}`.
fn is_repetition(rest: &[char]) -> bool {
    let Some(close) = rest.iter().position(|&c| c == '}') else {
        return false;
    };
    let inner: String = rest[1..close].iter().collect();
    let mut parts = inner.splitn(2, ',');
    let first = parts.next().unwrap_or("");
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    match parts.next() {
        None => digits(first),
        Some(second) => digits(first) && (second.is_empty() || digits(second)),
    }
}

/// PCRE pattern text to `regex` syntax (see [`Match::compile`]).
fn rewrite(pattern: &str) -> Result<String, Unsupported> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut in_class = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                let Some(&e) = chars.get(i + 1) else {
                    return Err(Unsupported::Syntax(
                        "a pattern ends with a lone backslash".into(),
                    ));
                };
                i += 2;
                match e {
                    '0' => {
                        // `\0`, `\0N`, `\0NN`: octal.
                        let mut value = 0u32;
                        let mut taken = 0;
                        while taken < 2 && chars.get(i).is_some_and(|d| ('0'..='7').contains(d)) {
                            value = value * 8 + chars[i].to_digit(8).unwrap_or(0);
                            i += 1;
                            taken += 1;
                        }
                        out.push_str(&format!("\\x{value:02x}"));
                    }
                    '1'..='9' if !in_class => return Err(Unsupported::Backreference),
                    '<' | '>' => out.push(e),
                    'Z' if !in_class => out.push_str("(?:\\n?\\z)"),
                    'd' | 'D' | 'w' | 'W' | 's' | 'S' | 'n' | 'r' | 't' | 'f' | 'v' | 'a' | 'x' => {
                        out.push('\\');
                        out.push(e);
                    }
                    'b' | 'B' | 'A' | 'z' if !in_class => {
                        out.push('\\');
                        out.push(e);
                    }
                    'e' => out.push_str("\\x1b"),
                    e if e.is_ascii_alphanumeric() => return Err(Unsupported::Escape(e)),
                    e if e.is_ascii() => {
                        out.push('\\');
                        out.push(e);
                    }
                    e => out.push(e),
                }
                continue;
            }
            '[' if in_class => out.push_str("\\["),
            '[' => {
                in_class = true;
                out.push('[');
                if chars.get(i + 1) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                // A `]` first in a class is a literal.
                if chars.get(i + 1) == Some(&']') {
                    out.push_str("\\]");
                    i += 1;
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '&' | '~' if in_class => {
                out.push('\\');
                out.push(c);
            }
            '-' if in_class && out.ends_with('-') => out.push_str("\\-"),
            '(' if !in_class && chars.get(i + 1) == Some(&'?') => {
                let next: String = chars[i + 2..chars.len().min(i + 4)].iter().collect();
                if next.starts_with('=') || next.starts_with('!') || next == "<=" || next == "<!" {
                    return Err(Unsupported::LookAround);
                }
                if next.starts_with('>') {
                    return Err(Unsupported::Atomic);
                }
                out.push('(');
            }
            '$' if !in_class => out.push_str("(?:\\n?\\z)"),
            '{' if !in_class && !is_repetition(&chars[i..]) => out.push_str("\\{"),
            '*' | '+' | '?' | '}' if !in_class && chars.get(i + 1) == Some(&'+') => {
                // `?` right after `(` is a group flag, not a quantifier.
                if !(c == '?' && out.ends_with('(')) {
                    return Err(Unsupported::Possessive);
                }
                out.push(c);
            }
            c => out.push(c),
        }
        i += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lines written here in the format's shape, not taken from nmap's file.
    const SAMPLE: &str = r#"
# vigil's own probes
Exclude T:9100-9107

Probe TCP NULL q||
totalwaitms 6000
tcpwrappedms 3000
match ssh m|^SSH-([\d.]+)-OpenSSH_([\w._-]+) Debian-(\S+)\r?\n| p/OpenSSH/ v/$2 Debian $3/ i/protocol $1/ o/Linux/ cpe:/a:openbsd:openssh:$2/ cpe:/o:linux:linux_kernel/a
softmatch ftp m/^220[- ].*ftp/i
match redis m=^-ERR wrong number of arguments= p/Redis key-value store/

Probe TCP GetRequest q|GET / HTTP/1.0\r\n\r\n|
rarity 1
ports 80,8000-8010
sslports 443
fallback NULL
match http m|^HTTP/1\.[01] \d\d\d.*\r\nServer: nginx/([\d.]+)|s p/nginx/ v/$1/ cpe:/a:f5:nginx:$1/

Probe UDP DNSStatus q|\0\0\x10\0\0\0\0\0\0\0\0\0| no-payload
rarity 9
"#;

    #[test]
    fn a_sample_file_parses_with_every_part() {
        let f = ProbeFile::parse(SAMPLE).unwrap();
        assert_eq!(f.exclude.as_deref(), Some("T:9100-9107"));
        assert_eq!(f.probes.len(), 3);
        assert_eq!(f.match_count(), 4);

        let null = f.probe("NULL").unwrap();
        assert_eq!(
            (null.protocol, null.payload.as_slice()),
            (Protocol::Tcp, &b""[..])
        );
        assert_eq!(
            (null.total_wait_ms, null.tcpwrapped_ms, null.rarity),
            (6000, 3000, 5)
        );
        let ssh = &null.matches[0];
        assert!(!ssh.soft);
        assert_eq!(ssh.service, "ssh");
        assert_eq!(
            ssh.pattern,
            br"^SSH-([\d.]+)-OpenSSH_([\w._-]+) Debian-(\S+)\r?\n".to_vec()
        );
        assert_eq!(ssh.templates.product.as_deref(), Some("OpenSSH"));
        assert_eq!(ssh.templates.version.as_deref(), Some("$2 Debian $3"));
        assert_eq!(ssh.templates.info.as_deref(), Some("protocol $1"));
        assert_eq!(ssh.templates.os.as_deref(), Some("Linux"));
        assert_eq!(
            ssh.templates.cpes,
            ["cpe:/a:openbsd:openssh:$2", "cpe:/o:linux:linux_kernel"]
        );
        let ftp = &null.matches[1];
        assert!(ftp.soft && ftp.case_insensitive && !ftp.dot_all);
        assert_eq!(ftp.templates, Templates::default());
        assert_eq!(
            null.matches[2].pattern,
            b"^-ERR wrong number of arguments".to_vec()
        );

        let get = f.probe("GetRequest").unwrap();
        assert_eq!(get.payload, b"GET / HTTP/1.0\r\n\r\n".to_vec());
        assert_eq!(get.rarity, 1);
        assert!(get.ports.as_ref().unwrap().as_slice().contains(&8005));
        assert!(get.ssl_ports.as_ref().unwrap().as_slice().contains(&443));
        assert_eq!(get.fallback, ["NULL"]);
        assert!(get.matches[0].dot_all);
        assert_eq!(get.line, 12);

        let dns = f.probe("DNSStatus").unwrap();
        assert_eq!(dns.protocol, Protocol::Udp);
        assert!(dns.no_payload);
        assert_eq!(dns.payload, [0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn bad_lines_are_typed_errors_with_their_line() {
        let cases: &[(&str, usize, &str)] = &[
            ("match ssh m|x|", 1, "before any Probe"),
            ("Probe TCP A q||\nExclude 1", 2, "before the first Probe"),
            ("Probe SCTP A q||", 1, "TCP or UDP"),
            ("Probe TCP A q|abc", 1, "no closing"),
            ("Probe TCP A |abc|", 1, "q<d>"),
            ("Probe TCP A q|\\x4|", 1, "two hex digits"),
            ("Probe TCP A q|a\\|", 1, "lone backslash"),
            ("Probe TCP A q||\nrarity 10", 2, "from 1 to 9"),
            ("Probe TCP A q||\ntotalwaitms soon", 2, "totalwaitms"),
            ("Probe TCP A q||\nports 99999", 2, "ports"),
            ("Probe TCP A q||\nmatch ssh m|x|q", 2, "pattern flag"),
            ("Probe TCP A q||\nmatch ssh m||", 2, "empty pattern"),
            (
                "Probe TCP A q||\nmatch ssh m|x| z/y/",
                2,
                "unknown version template",
            ),
            ("Probe TCP A q||\nmatch ssh m|x| p/a/ p/b/", 2, "twice"),
            (
                "Probe TCP A q||\nmatch ssh m|x| cpe:",
                2,
                "cpe: missing its delimiter",
            ),
            ("Probe TCP A q||\nmatch ssh m|x| p/a", 2, "no closing"),
            ("Probe TCP A q||\nfallback ,", 2, "at least one"),
            ("Probe TCP A q||\nmagic on", 2, "unknown directive"),
        ];
        for (text, line, needle) in cases {
            let e = ProbeFile::parse(text).unwrap_err();
            assert_eq!(e.line, *line, "{text:?}: {e}");
            assert!(e.to_string().contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn delimiters_may_be_any_character_and_multibyte_text_is_safe() {
        let f = ProbeFile::parse("Probe TCP X q#é#\nmatch x mé^aéi p%ü% v|1|").unwrap();
        let p = &f.probes[0];
        assert_eq!(p.payload, "é".as_bytes());
        assert_eq!(p.matches[0].pattern, b"^a".to_vec());
        assert!(p.matches[0].case_insensitive);
        assert_eq!(p.matches[0].templates.product.as_deref(), Some("ü"));
        assert_eq!(p.matches[0].templates.version.as_deref(), Some("1"));
    }

    fn compiled(pattern: &str, flags: &str) -> Result<regex::bytes::Regex, Unsupported> {
        let f = ProbeFile::parse(&format!(
            "Probe TCP X q||\nmatch x m\x01{pattern}\x01{flags}"
        ))
        .unwrap();
        f.probes[0].matches[0].compile()
    }

    #[test]
    fn patterns_keep_their_pcre_meaning_under_the_regex_crate() {
        // `$` also matches before a final newline, as in PCRE.
        let r = compiled("^READY$", "").unwrap();
        assert!(r.is_match(b"READY\n") && r.is_match(b"READY") && !r.is_match(b"READY\n\n"));
        // Octal NUL and bytes above 0x7f match single bytes.
        let r = compiled(r"^\0\x01\xf5", "").unwrap();
        assert!(r.is_match(&[0, 1, 0xf5]));
        // A `{` that is no repetition is a literal; one that is stays a repetition.
        assert!(compiled(r"^\{x{2}\}", "").unwrap().is_match(b"{xx}"));
        assert!(compiled(r"^a{b", "").unwrap().is_match(b"a{b"));
        assert!(compiled(r"^a}b", "").unwrap().is_match(b"a}b"));
        // `[` inside a class, `]` first in a class, `&&` in a class are literals.
        assert!(compiled(r"^[[]x", "").unwrap().is_match(b"[x"));
        assert!(compiled(r"^[]a]+$", "").unwrap().is_match(b"]a]"));
        assert!(compiled(r"^[&&]+$", "").unwrap().is_match(b"&&&"));
        // `\<` is a literal in PCRE.
        assert!(compiled(r"^\<html", "").unwrap().is_match(b"<html"));
        // Flags: ASCII case folding, dot-all.
        assert!(compiled("^ssh-", "i").unwrap().is_match(b"SSH-2.0"));
        assert!(compiled("^a.b", "s").unwrap().is_match(b"a\nb"));
        assert!(!compiled("^a.b", "").unwrap().is_match(b"a\nb"));
        // Group flags are not possessive quantifiers.
        assert!(compiled("^(?:ab)+c", "").unwrap().is_match(b"ababc"));
    }

    #[test]
    fn patterns_that_need_backtracking_are_refused_by_kind() {
        assert_eq!(
            compiled("^a(?=b)", "").unwrap_err(),
            Unsupported::LookAround
        );
        assert_eq!(
            compiled("^a(?!b)", "").unwrap_err(),
            Unsupported::LookAround
        );
        assert_eq!(
            compiled("^(?<=a)b", "").unwrap_err(),
            Unsupported::LookAround
        );
        assert_eq!(compiled("^(?>ab)", "").unwrap_err(), Unsupported::Atomic);
        assert_eq!(
            compiled(r"^(a)\1", "").unwrap_err(),
            Unsupported::Backreference
        );
        assert_eq!(compiled("^a*+b", "").unwrap_err(), Unsupported::Possessive);
        assert_eq!(compiled(r"^\Kx", "").unwrap_err(), Unsupported::Escape('K'));
        assert_eq!(compiled("a*", "").unwrap_err(), Unsupported::MatchesEmpty);
        assert!(matches!(compiled("^(a", ""), Err(Unsupported::Syntax(_))));
    }
    fn filled(pattern: &str, templates: &str, reply: &[u8]) -> Filled {
        let f = ProbeFile::parse(&format!(
            "Probe TCP X q||\nmatch x m\x01{pattern}\x01s {templates}"
        ))
        .unwrap();
        let m = &f.probes[0].matches[0];
        let caps = m.compile().unwrap().captures(reply).unwrap();
        m.templates.fill(&caps)
    }

    #[test]
    fn templates_substitute_groups_printable_subst_and_integers() {
        let f = filled(
            r"^SSH-([\d.]+)-OpenSSH_(\S+) (\S+)",
            r"p/OpenSSH/ v/$2/ i/protocol $1; $3/ cpe:/a:openbsd:openssh:$2/",
            b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n",
        );
        assert_eq!(f.product.as_deref(), Some("OpenSSH"));
        assert_eq!(f.version.as_deref(), Some("9.2p1"));
        assert_eq!(f.info.as_deref(), Some("protocol 2.0; Debian-2"));
        assert_eq!(f.cpes, ["cpe:/a:openbsd:openssh:9.2p1"]);
        // $P keeps printable bytes (UTF-16LE text), $SUBST replaces, $I reads integers.
        let f = filled(
            r"^(.{6})\|(\S+)\|(..)(..)",
            r#"p/$P(1)/ v/$SUBST(2,"_",".")/ i/$I(3,"<") $I(4,">")/"#,
            b"a\0b\0c\0|1_2_3|\x01\x02\x01\x02",
        );
        assert_eq!(f.product.as_deref(), Some("abc"));
        assert_eq!(f.version.as_deref(), Some("1.2.3"));
        assert_eq!(f.info.as_deref(), Some("513 258"));
        // In CPEs: lower case, `_` for spaces, specials percent-encoded.
        let f = filled(r"^(.+)$", r"cpe:/a:x:y:$1/", b"My Ver:1/2");
        assert_eq!(f.cpes, ["cpe:/a:x:y:my_ver%3a1%2f2"]);
    }

    #[test]
    fn bad_template_references_are_empty_never_a_panic() {
        let f = filled(
            r"^(a)(b)?",
            r#"p/x$9y/ v/$2/ i/$I(1,"?")z/ h/$SUBST(1,"a")/ o/$Q $ $P(/ d/$I(1,">")/"#,
            b"a",
        );
        assert_eq!(f.product.as_deref(), Some("xy"));
        assert_eq!(f.version, None);
        assert_eq!(f.info.as_deref(), Some("z"));
        assert_eq!(f.hostname, None);
        assert_eq!(f.os.as_deref(), Some("$Q $"));
        assert_eq!(f.device.as_deref(), Some("97"));
        // More than 8 bytes for $I: empty.
        let f = filled(r"^(.{9})", r#"v/$I(1,"<")/"#, b"123456789");
        assert_eq!(f.version, None);
    }
}
