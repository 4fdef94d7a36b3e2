//! `vigil scan --vulns` end to end: SSH services on loopback that say what Debian's, Ubuntu's and
//! an upstream OpenSSH say, matched against the sec-scan fixtures (regreSSHion in NVD, Debian's
//! DSA-5724-1, Ubuntu's USN-6859-1, KEV, EPSS).

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::Command;
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../sec-scan/tests/fixtures/vuln")
        .join(name)
}

fn vigil() -> Command {
    Command::cargo_bin("vigil").expect("the vigil binary is built for tests")
}

/// A loopback service that sends `banner` to every connection, then closes it.
fn ssh_like(banner: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let _ = conn.write_all(format!("{banner}\r\n").as_bytes());
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    port
}

fn import(data: &Path, files: &[&str]) {
    let mut cmd = vigil();
    cmd.args(["cvedb", "import", "--data-dir"]).arg(data);
    for f in files {
        cmd.arg(fixture(f));
    }
    cmd.assert().success();
}

/// `(port, CVE id, severity, confidence)` of every CVE threat of a `--json` scan.
fn cves(data: &Path, ports: &[u16], extra: &[&str]) -> Vec<(u16, String, String, String)> {
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    let out = vigil()
        .args([
            "scan",
            "127.0.0.1",
            "--vulns",
            "--json",
            "--fail-on",
            "never",
            "--data-dir",
        ])
        .arg(data)
        .args(["-p", &list.join(",")])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut found: Vec<(u16, String, String, String)> = report["threats"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["cve"].is_object())
        .map(|t| {
            (
                t["port"].as_u64().unwrap() as u16,
                t["signature_id"].as_str().unwrap().to_owned(),
                t["severity"].as_str().unwrap().to_owned(),
                t["confidence"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    found.sort();
    found
}

#[test]
fn distribution_data_decides_backported_openssh() {
    let patched = ssh_like("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10");
    let unpatched = ssh_like("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u2");
    let ubuntu = ssh_like("SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.10");
    let upstream = ssh_like("SSH-2.0-OpenSSH_9.2p1");
    let fixed_upstream = ssh_like("SSH-2.0-OpenSSH_9.8p1");
    let ports = [patched, unpatched, ubuntu, upstream, fixed_upstream];
    let cve = |port: u16, severity: &str, confidence: &str| {
        (
            port,
            "CVE-2024-6387".to_owned(),
            severity.to_owned(),
            confidence.to_owned(),
        )
    };

    // NVD alone: the distribution builds cannot be decided, so they are `unverified` at info;
    // the upstream build is confirmed.
    let dir = tempfile::tempdir().unwrap();
    let nvd_only = dir.path().join("nvd-only");
    import(&nvd_only, &["nvdcve-2.0-sample.json"]);
    let mut want = vec![
        cve(patched, "info", "unverified"),
        cve(unpatched, "info", "unverified"),
        cve(ubuntu, "info", "unverified"),
        cve(upstream, "high", "confirmed"),
    ];
    want.sort();
    assert_eq!(cves(&nvd_only, &ports, &[]), want);
    // --paranoid reports them at their CVSS severity.
    let paranoid = cves(&nvd_only, &ports, &["--paranoid"]);
    assert!(
        paranoid.iter().all(|(_, _, s, _)| s == "high"),
        "{paranoid:?}"
    );
    assert_eq!(paranoid.len(), 4);

    // With Debian's and Ubuntu's data, only the unpatched Debian package and the upstream build.
    let full = dir.path().join("full");
    import(
        &full,
        &[
            "nvdcve-2.0-sample.json",
            "osv-debian",
            "osv-ubuntu",
            "known_exploited_vulnerabilities.json",
        ],
    );
    let mut want = vec![
        cve(unpatched, "high", "confirmed"),
        cve(upstream, "high", "confirmed"),
    ];
    want.sort();
    assert_eq!(cves(&full, &ports, &[]), want);
}

#[test]
fn vulns_without_a_database_says_how_to_make_one() {
    let dir = tempfile::tempdir().unwrap();
    let port = ssh_like("SSH-2.0-OpenSSH_9.2p1");
    let out = vigil()
        .args(["scan", "127.0.0.1", "--vulns", "--data-dir"])
        .arg(dir.path())
        .args(["-p", &port.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("vigil cvedb import"), "{err}");
}
