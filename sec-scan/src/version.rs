//! Version ordering: Debian's (dpkg) and the generic one used for NVD bounds.
//!
//! Two orders, because two kinds of data decide:
//!
//! - [`DebVersion`]: Debian and Ubuntu package versions, `[epoch:]upstream[-revision]`, in
//!   dpkg's order (`man 7 deb-version`). OSV's `ECOSYSTEM` ranges for `Debian:*` and
//!   `Ubuntu:*` are in this order: `1:9.2p1-2+deb12u10 > 1:9.2p1-2+deb12u3`, and a missing
//!   epoch counts as 0, so `9.2p1-2+deb12u10 < 1:9.2p1-2+deb12u3`.
//! - [`cmp_generic`]: NVD's `versionStart*`/`versionEnd*` bounds are plain strings with no
//!   defined order. Like most tools we compare digit runs as numbers and letter runs
//!   lexically (case-insensitive), skipping separators: `9.2p1` is 9, 2, p, 1, and
//!   `8.5p1 < 8.6 < 9.8 < 9.8p1`. When two versions agree on their common prefix, the longer
//!   one is greater (so `9.8p1` is not below the bound `9.8`); a number is greater than a
//!   letter run in the same position (`1.0.1 > 1.0a`).

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// Why a string is not a Debian version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Debian version {input:?}: {reason}")]
pub struct VersionError {
    /// The input (cut to 200 characters).
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// A Debian package version, `[epoch:]upstream[-revision]`, ordered as dpkg orders it.
///
/// ```
/// use sec_scan::version::DebVersion;
/// let fixed: DebVersion = "1:9.2p1-2+deb12u3".parse().unwrap();
/// let installed: DebVersion = "1:9.2p1-2+deb12u10".parse().unwrap();
/// assert!(installed >= fixed);
/// ```
///
/// Equality is dpkg's: `1.0` equals `1.0-0` and `0:1.0`.
#[derive(Debug, Clone)]
pub struct DebVersion {
    epoch: u64,
    upstream: String,
    revision: String,
}

impl DebVersion {
    /// Parses `[epoch:]upstream[-revision]`. The epoch must be a number; upstream must be
    /// non-empty; the characters allowed are ASCII letters, digits and `.+~-:` (`-` and `:`
    /// only where they can be told apart), as in `man 7 deb-version`.
    pub fn parse(s: &str) -> Result<DebVersion, VersionError> {
        let err = |reason| VersionError {
            input: s.chars().take(200).collect(),
            reason,
        };
        let t = s.trim();
        if t.is_empty() {
            return Err(err("empty"));
        }
        if t.len() > 256 {
            return Err(err("longer than 256 characters"));
        }
        let (epoch, rest) = match t.split_once(':') {
            Some((e, rest)) => {
                if e.is_empty() || !e.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(err("the epoch is not a number"));
                }
                let epoch = e
                    .parse::<u64>()
                    .map_err(|_| err("the epoch is too large"))?;
                (epoch, rest)
            }
            None => (0, t),
        };
        let (upstream, revision) = match rest.rfind('-') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        if upstream.is_empty() {
            return Err(err("the upstream version is empty"));
        }
        if rest.ends_with('-') {
            return Err(err("the revision after '-' is empty"));
        }
        if !upstream
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'~' | b'-' | b':'))
        {
            return Err(err(
                "the upstream version has a character outside [A-Za-z0-9.+~-:]",
            ));
        }
        if !revision
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'~'))
        {
            return Err(err("the revision has a character outside [A-Za-z0-9.+~]"));
        }
        Ok(DebVersion {
            epoch,
            upstream: upstream.to_string(),
            revision: revision.to_string(),
        })
    }

    /// The epoch (0 when absent).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The upstream version.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// The Debian revision (empty when absent).
    pub fn revision(&self) -> &str {
        &self.revision
    }
}

impl FromStr for DebVersion {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<DebVersion, VersionError> {
        DebVersion::parse(s)
    }
}

impl fmt::Display for DebVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.epoch != 0 {
            write!(f, "{}:", self.epoch)?;
        }
        f.write_str(&self.upstream)?;
        if !self.revision.is_empty() {
            write!(f, "-{}", self.revision)?;
        }
        Ok(())
    }
}

/// dpkg's weight of one character of a non-digit run: `~` below the end of the string,
/// letters below everything else.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => c as i32,
        Some(c) => c as i32 + 256,
    }
}

/// dpkg's `verrevcmp`: alternating non-digit runs (by [`order`]) and digit runs (by value).
fn verrevcmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        // Non-digit prefix.
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let ac = order(a.get(i).copied().filter(|c| !c.is_ascii_digit()));
            let bc = order(b.get(j).copied().filter(|c| !c.is_ascii_digit()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            if i < a.len() && !a[i].is_ascii_digit() {
                i += 1;
            }
            if j < b.len() && !b[j].is_ascii_digit() {
                j += 1;
            }
        }
        // Digit run: skip leading zeros, then a longer run is larger, else compare digits.
        while i < a.len() && a[i] == b'0' {
            i += 1;
        }
        while j < b.len() && b[j] == b'0' {
            j += 1;
        }
        let si = i;
        let sj = j;
        while i < a.len() && a[i].is_ascii_digit() {
            i += 1;
        }
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        let (da, db) = (&a[si..i], &b[sj..j]);
        match da.len().cmp(&db.len()).then_with(|| da.cmp(db)) {
            Ordering::Equal => {}
            other => return other,
        }
    }
    Ordering::Equal
}

impl Ord for DebVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| verrevcmp(self.upstream.as_bytes(), other.upstream.as_bytes()))
            .then_with(|| verrevcmp(self.revision.as_bytes(), other.revision.as_bytes()))
    }
}

impl PartialOrd for DebVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for DebVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for DebVersion {}

/// One token of a generic version: a number or a lower-cased letter run.
#[derive(Debug, PartialEq, Eq)]
enum Token<'a> {
    Num(&'a str),
    Alpha(&'a str),
}

fn tokens(s: &str) -> impl Iterator<Item = Token<'_>> {
    let b = s.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < b.len() && !b[i].is_ascii_alphanumeric() {
            i += 1;
        }
        if i >= b.len() {
            return None;
        }
        let start = i;
        if b[i].is_ascii_digit() {
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let digits = s[start..i].trim_start_matches('0');
            Some(Token::Num(digits))
        } else {
            while i < b.len() && b[i].is_ascii_alphabetic() {
                i += 1;
            }
            Some(Token::Alpha(&s[start..i]))
        }
    })
}

/// Compares two versions in the generic order used for NVD bounds (see the module docs):
/// `cmp_generic("8.5p1", "8.6")` is `Less`, `cmp_generic("9.8p1", "9.8")` is `Greater`.
pub fn cmp_generic(a: &str, b: &str) -> Ordering {
    let mut ta = tokens(a);
    let mut tb = tokens(b);
    loop {
        match (ta.next(), tb.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let o = match (x, y) {
                    (Token::Num(x), Token::Num(y)) => x.len().cmp(&y.len()).then_with(|| x.cmp(y)),
                    (Token::Num(_), Token::Alpha(_)) => Ordering::Greater,
                    (Token::Alpha(_), Token::Num(_)) => Ordering::Less,
                    (Token::Alpha(x), Token::Alpha(y)) => x
                        .bytes()
                        .map(|c| c.to_ascii_lowercase())
                        .cmp(y.bytes().map(|c| c.to_ascii_lowercase())),
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

/// Joins a CPE version and update into the string the generic order compares: `9.2` + `p1`
/// → `9.2p1`; an update that is ANY, NA or empty adds nothing (`9.8` + `-` → `9.8`).
pub fn with_update(version: &str, update: Option<&str>) -> String {
    match update {
        Some(u) if !u.is_empty() && u != "*" && u != "-" => format!("{version}{u}"),
        _ => version.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> DebVersion {
        DebVersion::parse(s).unwrap()
    }

    #[test]
    fn dpkg_reference_pairs() {
        // `dpkg --compare-versions` results recorded in the research notes.
        assert!(d("1:9.2p1-2+deb12u10") > d("1:9.2p1-2+deb12u3"));
        assert!(d("9.2p1-2+deb12u10") < d("1:9.2p1-2+deb12u3"));
        assert!(d("1:8.9p1-3ubuntu0.7") < d("1:8.9p1-3ubuntu0.10"));
        assert!(d("1.0~rc1") < d("1.0"));
        assert!(d("1.0a") < d("1.0+"));
        assert!(d("5:7.0.15-1~deb12u10") < d("5:7.0.15-1"));
        assert_eq!(d("1.0"), d("1.0-0"));
        assert_eq!(d("0:1.0"), d("1.0"));
        assert!(d("1.0~~") < d("1.0~"));
        assert!(d("1.0~") < d("1.0"));
        assert!(d("1.0") < d("1.0a"));
        assert!(d("1:9.6p1-3ubuntu13.3") > d("1:9.6p1-3ubuntu13"));
    }

    #[test]
    fn dpkg_parse_errors() {
        for bad in [
            "",
            "a:1.0",
            ":1",
            "1.0-",
            "1.0 2",
            "1.0-a_b",
            "99999999999999999999999:1",
        ] {
            assert!(DebVersion::parse(bad).is_err(), "{bad}");
        }
        let v = d("1:9.2p1-2+deb12u3");
        assert_eq!(
            (v.epoch(), v.upstream(), v.revision()),
            (1, "9.2p1", "2+deb12u3")
        );
        assert_eq!(v.to_string(), "1:9.2p1-2+deb12u3");
        assert_eq!(d("1.2-3-4").upstream(), "1.2-3");
    }

    #[test]
    fn generic_order() {
        use Ordering::*;
        let cases = [
            ("8.5p1", "8.6", Less),
            ("8.6", "9.8", Less),
            ("9.2p1", "9.8", Less),
            ("9.8p1", "9.8", Greater),
            ("4.3p2", "4.4", Less),
            ("1.20.0", "1.21.0", Less),
            ("1.9.15", "1.20.0", Less),
            ("1.0.1", "1.0a", Greater),
            ("1.01", "1.1", Equal),
            ("10", "9", Greater),
            ("1.0RC1", "1.0rc1", Equal),
        ];
        for (a, b, o) in cases {
            assert_eq!(cmp_generic(a, b), o, "{a} vs {b}");
            assert_eq!(cmp_generic(b, a), o.reverse(), "{b} vs {a}");
        }
        assert_eq!(with_update("9.2", Some("p1")), "9.2p1");
        assert_eq!(with_update("9.8", Some("-")), "9.8");
    }

    /// Generates versions from a small alphabet that stresses every rule.
    fn generated(n: usize) -> Vec<String> {
        let pieces = [
            "0", "1", "2", "10", "09", "a", "b", "~", "~~", "+", ".", "p1", "rc",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        (0..n)
            .map(|_| {
                let mut s = String::new();
                if next() % 3 == 0 {
                    s.push_str(&format!("{}:", next() % 3));
                }
                s.push_str(&(next() % 12).to_string());
                for _ in 0..(next() % 4) {
                    s.push_str(pieces[(next() % pieces.len() as u64) as usize]);
                }
                if next() % 2 == 0 {
                    s.push('-');
                    s.push_str(&(next() % 5).to_string());
                    for _ in 0..(next() % 3) {
                        s.push_str(pieces[(next() % pieces.len() as u64) as usize]);
                    }
                }
                s
            })
            .collect()
    }

    #[test]
    fn agrees_with_dpkg_when_installed() {
        let probe = std::process::Command::new("dpkg").arg("--version").output();
        if !matches!(probe, Ok(ref o) if o.status.success()) {
            eprintln!("SKIPPED: dpkg is not installed; the cross-check against dpkg did not run");
            return;
        }
        let versions = generated(601);
        let mut checked = 0;
        for pair in versions.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            let (Ok(va), Ok(vb)) = (DebVersion::parse(a), DebVersion::parse(b)) else {
                continue;
            };
            let ours = va.cmp(&vb);
            let op = match ours {
                Ordering::Less => "lt",
                Ordering::Equal => "eq",
                Ordering::Greater => "gt",
            };
            let out = std::process::Command::new("dpkg")
                .args(["--compare-versions", a, op, b])
                .output()
                .expect("dpkg runs");
            assert!(
                out.status.success(),
                "dpkg disagrees: {a} {op} {b} is false"
            );
            checked += 1;
        }
        assert!(checked > 300, "only {checked} pairs checked");
    }
}
