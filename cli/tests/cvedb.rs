//! `vigil cvedb`, run as the real binary against a temporary data directory and the
//! sec-scan fixtures.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../sec-scan/tests/fixtures/vuln")
        .join(name)
}

fn vigil(data: &Path) -> Command {
    let mut cmd = Command::cargo_bin("vigil").expect("the vigil binary is built for tests");
    cmd.env("VIGIL_DATA_DIR", data);
    cmd
}

#[test]
fn import_stats_and_match() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    vigil(&data)
        .args(["cvedb", "import"])
        .arg(fixture("nvdcve-2.0-sample.json"))
        .arg(fixture("osv-debian"))
        .arg(fixture("known_exploited_vulnerabilities.csv"))
        .arg(fixture("epss_scores-sample.csv"))
        .assert()
        .success()
        .stdout(predicate::str::contains("NVD CVE JSON 2.0"))
        .stdout(predicate::str::contains("5 records, 4 imported"))
        .stdout(predicate::str::contains("1 rejected or withdrawn"))
        .stdout(predicate::str::contains("OSV directory"))
        .stdout(predicate::str::contains("FIRST EPSS CSV"));
    assert!(data.join("cvedb.sqlite").exists());

    let out = vigil(&data)
        .args(["cvedb", "stats", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let stats: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(stats["cves"], 4);
    assert_eq!(stats["kev"], 2);
    assert_eq!(stats["epss_score_date"], "2099-01-01T12:55:00Z");
    assert_eq!(stats["osv_by_ecosystem"]["Debian:12"], 1);

    vigil(&data)
        .args(["cvedb", "stats"])
        .assert()
        .success()
        .stdout(predicate::str::contains("NVD CVEs        4"));

    // regreSSHion: an upstream build is affected, Debian's patched package is not.
    vigil(&data)
        .args(["cvedb", "match", "--cpe", "cpe:/a:openbsd:openssh:9.2p1"])
        .assert()
        .success()
        .stdout(predicate::str::contains("high     CVE-2024-6387"))
        .stdout(predicate::str::contains("Confirmed"));
    vigil(&data)
        .args(["cvedb", "match", "--cpe", "cpe:/a:openbsd:openssh:9.2p1"])
        .args(["--ecosystem", "Debian:12", "--package", "openssh"])
        .args(["--package-version", "1:9.2p1-2+deb12u10", "--json"])
        .assert()
        .success()
        .stdout(predicate::str::contains("CVE-2024-6387").not());
}

#[test]
fn bad_input_fails_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let bad = dir.path().join("notes.txt");
    std::fs::write(&bad, "just some text\n").unwrap();
    vigil(&data)
        .args(["cvedb", "import"])
        .arg(&bad)
        .arg(fixture("known_exploited_vulnerabilities.json"))
        .arg(dir.path().join("missing.json.gz"))
        .assert()
        .failure()
        .stderr(predicate::str::contains("unrecognised input"))
        .stderr(predicate::str::contains("missing.json.gz"))
        .stderr(predicate::str::contains("2 of 3 files failed"))
        // The good file in between was imported.
        .stdout(predicate::str::contains("CISA KEV JSON"));
    vigil(&data).args(["cvedb", "import"]).assert().failure();
}
