//! Distribution evidence: which package of which distribution a service banner comes from.
//!
//! Distributions backport security fixes without changing the upstream version, so
//! `OpenSSH_9.2p1` alone cannot say whether CVE-2024-6387 is fixed; the package revision
//! Debian and Ubuntu put in the banner can. This module turns what a service said into a
//! [`PackageEvidence`]: the distribution, its release when the banner implies one, the OSV
//! ecosystem name, the source package and the package version in dpkg's form (with its epoch,
//! which no banner carries: see [`epoch`]).
//!
//! What is read:
//!
//! - An SSH identification line `SSH-2.0-OpenSSH_<upstream> Debian-<revision>` (or `Ubuntu-`):
//!   package `openssh`, version `1:<upstream>-<revision>`. The Debian release comes from
//!   `+debNNuM` / `~debNNuM` in the revision, else from the upstream version each release
//!   shipped; the Ubuntu release from the upstream version (8.9p1 is 22.04, 9.6p1 is 24.04).
//! - An HTTP `Server:` value `Apache/2.4.57 (Debian)` or `nginx/1.22.1 (Ubuntu)`: the
//!   distribution is known, the revision is not (version `None`).
//!
//! Anything else gives `None`: no guess is made from a bare upstream version.

use serde::{Deserialize, Serialize};

/// Which distribution package a service is, as far as its banner tells.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageEvidence {
    /// `debian`, `ubuntu`.
    pub distro: String,
    /// The release, when the banner implies one (`12`, `22.04`).
    pub release: Option<String>,
    /// The OSV ecosystem (`Debian:12`, `Ubuntu:22.04:LTS`), when the release is known.
    pub ecosystem: Option<String>,
    /// The source package (`openssh`, `apache2`, `nginx`).
    pub source_package: String,
    /// The package version with its epoch (`1:9.2p1-2+deb12u10`), when the banner has the
    /// revision.
    pub version: Option<String>,
}

/// The epoch Debian and Ubuntu give a source package (0 when it has none). The epoch is part
/// of the version dpkg compares first, and no banner shows it.
pub fn epoch(source_package: &str) -> u32 {
    match source_package {
        "openssh" => 1,
        "redis" => 5,
        "mariadb" => 1,
        _ => 0,
    }
}

/// Evidence from anything a service said: an SSH identification line or an HTTP `Server:`
/// header, found anywhere in `text`.
pub fn from_text(text: &str) -> Option<PackageEvidence> {
    if let Some(at) = text.find("SSH-") {
        let line = text[at..].lines().next().unwrap_or("");
        if let Some(e) = from_ssh_ident(line) {
            return Some(e);
        }
    }
    text.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("server")
            .then(|| from_server_header(value.trim()))
            .flatten()
    })
}

/// Whether `text` (a banner, an SSH identification line, an HTTP `Server:` value) says the
/// software is a distribution's build — Debian's `Debian-2+deb12u10`, `Apache/2.4.57 (Ubuntu)`,
/// a Red Hat `el9` release, and the like. Distributions backport fixes without changing the
/// upstream version, so a version read from such a banner cannot decide a CVE alone.
pub fn names_distribution(text: &str) -> bool {
    if from_text(text).is_some()
        || from_ssh_ident(text).is_some()
        || from_server_header(text).is_some()
    {
        return true;
    }
    let lower = text.to_ascii_lowercase();
    const NAMES: [&str; 16] = [
        "debian",
        "ubuntu",
        "raspbian",
        "red hat",
        "redhat",
        "centos",
        "fedora",
        "suse",
        "rocky",
        "almalinux",
        "amazon linux",
        "amzn",
        "oracle linux",
        "alpine",
        "freebsd",
        "+deb",
    ];
    if NAMES.iter().any(|n| lower.contains(n)) {
        return true;
    }
    // Red Hat family release tags: `.el9`, `.el8_6`, `-el7`.
    lower.match_indices("el").any(|(at, _)| {
        let before = lower[..at].chars().next_back();
        let after = lower[at + 2..].chars().next();
        matches!(before, Some('.' | '-' | '+' | '_')) && after.is_some_and(|c| c.is_ascii_digit())
    })
}

/// Evidence from an SSH identification line, e.g. `SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10`.
pub fn from_ssh_ident(line: &str) -> Option<PackageEvidence> {
    let line = line.trim_end_matches(['\r', '\n']);
    let software = line.splitn(3, '-').nth(2)?;
    let (software, comment) = software.split_once(' ')?;
    let upstream = software.strip_prefix("OpenSSH_")?;
    let comment = comment.split_whitespace().next()?;
    let (distro, revision) = if let Some(r) = comment.strip_prefix("Debian-") {
        ("debian", r)
    } else if let Some(r) = comment.strip_prefix("Ubuntu-") {
        ("ubuntu", r)
    } else {
        return None;
    };
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '~' | '-'))
    };
    if !valid(upstream) || !valid(revision) {
        return None;
    }
    let release = match distro {
        "debian" => debian_release(revision).or_else(|| debian_openssh_release(upstream)),
        _ => ubuntu_openssh_release(upstream),
    };
    Some(evidence(
        distro,
        release,
        "openssh",
        Some(format!("{}:{upstream}-{revision}", epoch("openssh"))),
    ))
}

/// Evidence from an HTTP `Server:` value, e.g. `Apache/2.4.57 (Debian)`.
pub fn from_server_header(value: &str) -> Option<PackageEvidence> {
    let (product, rest) = value.split_once('/')?;
    let package = match product {
        "Apache" => "apache2",
        "nginx" => "nginx",
        "lighttpd" => "lighttpd",
        _ => return None,
    };
    let comment = rest.split_once('(')?.1.split_once(')')?.0;
    let distro = match comment.to_ascii_lowercase().as_str() {
        "debian" => "debian",
        "ubuntu" => "ubuntu",
        _ => return None,
    };
    Some(evidence(distro, None, package, None))
}

fn evidence(
    distro: &str,
    release: Option<&str>,
    source_package: &str,
    version: Option<String>,
) -> PackageEvidence {
    let ecosystem = release.map(|r| match distro {
        "ubuntu" if is_ubuntu_lts(r) => format!("Ubuntu:{r}:LTS"),
        "ubuntu" => format!("Ubuntu:{r}"),
        _ => format!("Debian:{r}"),
    });
    PackageEvidence {
        distro: distro.to_owned(),
        release: release.map(str::to_owned),
        ecosystem,
        source_package: source_package.to_owned(),
        version,
    }
}

/// `12` from a revision with `+deb12u10` or `~deb12u1` in it.
fn debian_release(revision: &str) -> Option<&'static str> {
    let at = revision.find("deb")?;
    let digits: String = revision[at + 3..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let tail = &revision[at + 3 + digits.len()..];
    if !tail.starts_with('u') {
        return None;
    }
    Some(match digits.as_str() {
        "9" => "9",
        "10" => "10",
        "11" => "11",
        "12" => "12",
        "13" => "13",
        "14" => "14",
        _ => return None,
    })
}

/// The Debian release that shipped this OpenSSH upstream version.
fn debian_openssh_release(upstream: &str) -> Option<&'static str> {
    Some(match upstream {
        "7.4p1" => "9",
        "7.9p1" => "10",
        "8.4p1" => "11",
        "9.2p1" => "12",
        "10.0p1" => "13",
        _ => return None,
    })
}

/// The Ubuntu release that shipped this OpenSSH upstream version.
fn ubuntu_openssh_release(upstream: &str) -> Option<&'static str> {
    Some(match upstream {
        "7.2p2" => "16.04",
        "7.6p1" => "18.04",
        "8.2p1" => "20.04",
        "8.9p1" => "22.04",
        "9.6p1" => "24.04",
        _ => return None,
    })
}

fn is_ubuntu_lts(release: &str) -> bool {
    release
        .split_once('.')
        .is_some_and(|(y, m)| m == "04" && y.parse::<u32>().is_ok_and(|y| y % 2 == 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distribution_builds_are_recognised() {
        for yes in [
            "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10",
            "SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.10",
            "Apache/2.4.57 (Debian)",
            "Apache/2.4.37 (Red Hat Enterprise Linux)",
            "Apache/2.4.6 (CentOS) OpenSSL/1.0.2k-fips",
            "SSH-2.0-OpenSSH_8.0 (openssh-8.0p1-19.el8_8)",
            "nginx/1.20.1 (Ubuntu)",
        ] {
            assert!(names_distribution(yes), "{yes}");
        }
        for no in [
            "SSH-2.0-OpenSSH_9.2p1",
            "nginx/1.22.1",
            "Apache/2.4.58 (Unix)",
            "SSH-2.0-OpenSSH_9.8",
            "lighttpd/1.4.69",
            "Microsoft-IIS/10.0",
        ] {
            assert!(!names_distribution(no), "{no}");
        }
    }

    #[test]
    fn debian_openssh_banners_give_the_dpkg_version_and_release() {
        let e = from_ssh_ident("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10\r\n").unwrap();
        assert_eq!(e.distro, "debian");
        assert_eq!(e.release.as_deref(), Some("12"));
        assert_eq!(e.ecosystem.as_deref(), Some("Debian:12"));
        assert_eq!(e.source_package, "openssh");
        assert_eq!(e.version.as_deref(), Some("1:9.2p1-2+deb12u10"));
        let e = from_ssh_ident("SSH-2.0-OpenSSH_8.4p1 Debian-5+deb11u3").unwrap();
        assert_eq!(
            (e.release.as_deref(), e.version.as_deref()),
            (Some("11"), Some("1:8.4p1-5+deb11u3"))
        );
        let e = from_ssh_ident("SSH-2.0-OpenSSH_10.0p2 Debian-7+deb13u1").unwrap();
        assert_eq!(e.ecosystem.as_deref(), Some("Debian:13"));
        // No security update yet: the release comes from the upstream version.
        let e = from_ssh_ident("SSH-2.0-OpenSSH_9.2p1 Debian-2").unwrap();
        assert_eq!(
            (e.release.as_deref(), e.version.as_deref()),
            (Some("12"), Some("1:9.2p1-2"))
        );
    }

    #[test]
    fn ubuntu_openssh_banners_take_the_release_from_the_upstream_version() {
        let e = from_ssh_ident("SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.10").unwrap();
        assert_eq!(e.distro, "ubuntu");
        assert_eq!(e.release.as_deref(), Some("22.04"));
        assert_eq!(e.ecosystem.as_deref(), Some("Ubuntu:22.04:LTS"));
        assert_eq!(e.version.as_deref(), Some("1:8.9p1-3ubuntu0.10"));
        let e = from_ssh_ident("SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13.3").unwrap();
        assert_eq!(e.ecosystem.as_deref(), Some("Ubuntu:24.04:LTS"));
        assert_eq!(e.version.as_deref(), Some("1:9.6p1-3ubuntu13.3"));
        // An Ubuntu release vigil does not know: the distro and version, no release.
        let e = from_ssh_ident("SSH-2.0-OpenSSH_9.3p1 Ubuntu-1ubuntu3").unwrap();
        assert_eq!((e.release, e.ecosystem), (None, None));
    }

    #[test]
    fn server_headers_name_the_distro_but_not_the_revision() {
        let e = from_server_header("Apache/2.4.57 (Debian)").unwrap();
        assert_eq!(
            (
                e.distro.as_str(),
                e.source_package.as_str(),
                e.version,
                e.release
            ),
            ("debian", "apache2", None, None)
        );
        let e = from_text("HTTP/1.1 200 OK\r\nserver: nginx/1.24.0 (Ubuntu)\r\n\r\n").unwrap();
        assert_eq!(
            (e.distro.as_str(), e.source_package.as_str()),
            ("ubuntu", "nginx")
        );
        assert_eq!(from_server_header("nginx/1.22.1"), None);
        assert_eq!(from_server_header("Apache/2.4.57 (Unix)"), None);
    }

    #[test]
    fn banners_without_a_distro_comment_give_nothing() {
        for line in [
            "SSH-2.0-OpenSSH_9.2p1",
            "SSH-2.0-OpenSSH_9.8 FreeBSD-20240701",
            "SSH-2.0-dropbear_2022.83",
            "SSH-2.0-OpenSSH_9.2p1 Debian-",
            "SSH-2.0-OpenSSH_9.2p1 Debian-2;rm -rf",
            "",
            "SSH-",
        ] {
            assert_eq!(from_ssh_ident(line), None, "{line:?}");
        }
        assert_eq!(from_text("220 (vsFTPd 3.0.3)\r\n"), None);
        assert_eq!(epoch("nginx"), 0);
    }
}
