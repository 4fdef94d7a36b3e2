//! Service and version detection against real daemons from Debian's packages, side by side with
//! `nmap -sV`.
//!
//! `.ci/daemons.sh start DIR` starts sshd, nginx, vsftpd, redis-server and PostgreSQL on free
//! 127.0.0.1 ports and prints `VIGIL_REAL_DAEMONS=ssh=127.0.0.1:P,...`; `.ci/run` exports it. Without
//! it (or without nmap) these tests skip with a message, and fail when `VIGIL_E2E=required`.

use std::collections::BTreeMap;
use std::process::Command;

use assert_cmd::cargo::cargo_bin;
use serde_json::Value;

/// nmap's probe file where Debian installs it: read at run time, never copied.
const NMAP_PROBES: &str = "/usr/share/nmap/nmap-service-probes";

/// The daemons: expected service name → port.
fn daemons() -> Option<BTreeMap<String, u16>> {
    let required = std::env::var("VIGIL_E2E").as_deref() == Ok("required");
    let Ok(spec) = std::env::var("VIGIL_REAL_DAEMONS") else {
        assert!(
            !required,
            "VIGIL_E2E=required but VIGIL_REAL_DAEMONS is not set (.ci/daemons.sh start DIR)"
        );
        eprintln!(
            "SKIPPED: real-daemon detection tests: VIGIL_REAL_DAEMONS is not set (run .ci/daemons.sh start DIR)"
        );
        return None;
    };
    let mut out = BTreeMap::new();
    for item in spec.split(',') {
        let (service, addr) = item.split_once('=').expect("service=addr");
        let (host, port) = addr.rsplit_once(':').expect("host:port");
        assert_eq!(host, "127.0.0.1", "daemons are on loopback only");
        out.insert(service.to_owned(), port.parse().expect("port"));
    }
    Some(out)
}

fn nmap_available() -> bool {
    let found = Command::new("nmap").arg("--version").output().is_ok();
    if !found {
        assert!(
            std::env::var("VIGIL_E2E").as_deref() != Ok("required"),
            "VIGIL_E2E=required but nmap is not installed"
        );
        eprintln!("SKIPPED: nmap comparison: nmap is not installed");
    }
    found
}

/// What one tool said about one port.
#[derive(Debug, Default, Clone, PartialEq)]
struct Seen {
    service: Option<String>,
    product: Option<String>,
    version: Option<String>,
}

fn attr(element: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let start = element.find(&key)? + key.len();
    let end = element[start..].find('"')? + start;
    Some(
        element[start..end]
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// `nmap -sV` on the given ports of 127.0.0.1, read from its XML output.
fn nmap(ports: &[u16]) -> BTreeMap<u16, Seen> {
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    let out = Command::new("nmap")
        .args([
            "-sV",
            "-Pn",
            "-n",
            "-oX",
            "-",
            "-p",
            &list.join(","),
            "127.0.0.1",
        ])
        .output()
        .expect("nmap runs");
    assert!(out.status.success(), "nmap failed: {out:?}");
    let xml = String::from_utf8_lossy(&out.stdout);
    let mut seen = BTreeMap::new();
    for chunk in xml.split("<port protocol=\"tcp\" portid=\"").skip(1) {
        let port: u16 = chunk[..chunk.find('"').unwrap()].parse().unwrap();
        let end = chunk.find("</port>").unwrap_or(chunk.len());
        let body = &chunk[..end];
        let service = body.find("<service ").map(|at| {
            let el = &body[at..];
            &el[..el.find('>').unwrap_or(el.len())]
        });
        seen.insert(
            port,
            Seen {
                service: service.and_then(|s| attr(s, "name")),
                product: service.and_then(|s| attr(s, "product")),
                version: service.and_then(|s| attr(s, "version")),
            },
        );
    }
    seen
}

/// `vigil scan --banners --json` on the given ports, with extra arguments.
fn vigil(ports: &[u16], extra: &[&str]) -> (BTreeMap<u16, Seen>, Value) {
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    let out = Command::new(cargo_bin("vigil"))
        .args([
            "scan",
            "127.0.0.1",
            "--banners",
            "--json",
            "--fail-on",
            "never",
            "-p",
        ])
        .arg(list.join(","))
        .args(extra)
        .output()
        .expect("vigil runs");
    assert!(
        out.status.success(),
        "vigil scan failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let mut seen = BTreeMap::new();
    for f in report["findings"].as_array().expect("findings") {
        if f["kind"] != "banner" {
            continue;
        }
        let port = f["port"].as_u64().unwrap() as u16;
        let text = |k: &str| f[k].as_str().map(str::to_owned);
        seen.insert(
            port,
            Seen {
                service: text("service"),
                product: text("product"),
                version: text("version"),
            },
        );
    }
    (seen, report)
}

/// vigil agrees with nmap on a port: the same service, and every version nmap names (nmap writes
/// a distribution's package revision into the version, `9.2p1 Debian 2+deb12u10`; vigil keeps the
/// upstream version in `version` and the rest in `info`, so nmap's version must start with vigil's).
fn agrees(nmap: &Seen, vigil: &Seen, report: &Value, port: u16) -> Result<(), String> {
    if nmap.service != vigil.service {
        return Err(format!(
            "service: nmap {:?}, vigil {:?}",
            nmap.service, vigil.service
        ));
    }
    if let Some(want) = &nmap.version {
        let got = vigil.version.as_deref().unwrap_or("");
        let info = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["kind"] == "banner" && f["port"] == port)
            .and_then(|f| f["info"].as_str())
            .unwrap_or("");
        let full = if info.is_empty() {
            got.to_owned()
        } else {
            format!("{got} {info}")
        };
        if got.is_empty() || !(want == got || want.starts_with(&format!("{got} "))) {
            return Err(format!(
                "version: nmap {want:?}, vigil {got:?} (info {info:?})"
            ));
        }
        let _ = full;
    }
    Ok(())
}

#[test]
fn built_in_probes_identify_every_daemon_and_agree_with_nmap() {
    let Some(daemons) = daemons() else { return };
    let ports: Vec<u16> = daemons.values().copied().collect();
    let (seen, report) = vigil(&ports, &[]);
    for (service, port) in &daemons {
        let s = seen.get(port).cloned().unwrap_or_default();
        assert_eq!(
            s.service.as_deref(),
            Some(service.as_str()),
            "port {port}: {s:?}"
        );
        assert!(
            s.product.is_some(),
            "{service} on {port}: no product: {s:?}"
        );
    }
    // Exact versions where the daemon says them.
    let version = |svc: &str| seen[&daemons[svc]].version.clone().unwrap_or_default();
    assert!(
        version("ssh").contains('p'),
        "OpenSSH version: {:?}",
        version("ssh")
    );
    assert!(!version("ftp").is_empty(), "vsftpd version");
    assert!(!version("http").is_empty(), "nginx version");
    assert!(!version("redis").is_empty(), "redis version");
    if !nmap_available() {
        return;
    }
    let theirs = nmap(&ports);
    let mut disagreements = Vec::new();
    for (service, port) in &daemons {
        if let Err(e) = agrees(&theirs[port], &seen[port], &report, *port) {
            disagreements.push(format!("{service} ({port}): {e}"));
        }
    }
    // PostgreSQL reveals no version before authentication: nmap infers a range from the source
    // line of an error message, vigil from the protocol versions the server offers.
    disagreements.retain(|d| !(d.starts_with("postgresql") && d.contains("version:")));
    assert!(disagreements.is_empty(), "{disagreements:#?}");
}

#[test]
fn with_nmaps_probe_file_vigil_agrees_with_nmap() {
    let Some(daemons) = daemons() else { return };
    if !nmap_available() {
        return;
    }
    if !std::path::Path::new(NMAP_PROBES).exists() {
        panic!("nmap is installed but {NMAP_PROBES} is missing");
    }
    let ports: Vec<u16> = daemons.values().copied().collect();
    let (seen, _) = vigil(&ports, &["--service-probes", NMAP_PROBES]);
    let theirs = nmap(&ports);
    for (service, port) in &daemons {
        let ours = seen.get(port).cloned().unwrap_or_default();
        assert_eq!(ours.service, theirs[port].service, "{service} on {port}");
        assert_eq!(ours.product, theirs[port].product, "{service} on {port}");
        assert_eq!(ours.version, theirs[port].version, "{service} on {port}");
    }
}

/// Every threat of a `--vulns` scan of the daemons: `(port, id, severity)`.
fn vuln_threats(ports: &[u16], data: &std::path::Path) -> Vec<(u16, String, String)> {
    let data = data.to_str().unwrap();
    let (_, report) = vigil(ports, &["--vulns", "--data-dir", data]);
    report["threats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["port"].as_u64().unwrap_or(0) as u16,
                t["signature_id"].as_str().unwrap().to_owned(),
                t["severity"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn debians_patched_packages_raise_no_cve() {
    let Some(daemons) = daemons() else { return };
    let ports: Vec<u16> = daemons.values().copied().collect();
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sec-scan/tests/fixtures/vuln");
    let import = |data: &std::path::Path, files: &[&str]| {
        let mut cmd = Command::new(cargo_bin("vigil"));
        cmd.args(["cvedb", "import", "--data-dir"]).arg(data);
        for f in files {
            cmd.arg(fixtures.join(f));
        }
        assert!(cmd.status().unwrap().success());
    };
    let dir = tempfile::tempdir().unwrap();
    // With Debian's data: Debian 12's OpenSSH (deb12u10) carries the regreSSHion fix.
    let full = dir.path().join("full");
    import(
        &full,
        &[
            "nvdcve-2.0-sample.json",
            "osv-debian",
            "known_exploited_vulnerabilities.json",
            "epss_scores-sample.csv",
        ],
    );
    let threats = vuln_threats(&ports, &full);
    let cves: Vec<_> = threats.iter().filter(|t| t.1.starts_with("CVE-")).collect();
    assert!(
        cves.is_empty(),
        "CVE false positives on patched packages: {cves:?}"
    );
    // Without it: the version cannot decide a distribution build, so nothing above `low`.
    let nvd_only = dir.path().join("nvd-only");
    import(&nvd_only, &["nvdcve-2.0-sample.json"]);
    let threats = vuln_threats(&ports, &nvd_only);
    let loud: Vec<_> = threats
        .iter()
        .filter(|t| t.1.starts_with("CVE-") && !["info", "low"].contains(&t.2.as_str()))
        .collect();
    assert!(loud.is_empty(), "{loud:?}");
    assert!(
        threats
            .iter()
            .any(|t| t.1 == "CVE-2024-6387" && t.0 == daemons["ssh"] && t.2 == "info"),
        "the backport-prone match is reported as unverified info: {threats:?}"
    );
}
