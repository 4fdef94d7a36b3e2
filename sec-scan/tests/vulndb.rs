//! The offline CVE database end to end: import the fixtures (NVD, OSV, KEV, EPSS), match
//! services, check regreSSHion against Debian, Ubuntu and upstream builds.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use sec_scan::Severity;
use sec_scan::vulndb::{
    Confidence, CveThreat, Format, MatchOptions, MatchSource, ServiceQuery, VulnDb, VulnDbError,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/vuln")
        .join(name)
}

fn import(db: &mut VulnDb, name: &str) -> sec_scan::vulndb::ImportReport {
    db.import_path(&fixture(name), &mut |_| {})
        .unwrap_or_else(|e| panic!("importing {name}: {e}"))
}

/// NVD only.
fn nvd_db() -> VulnDb {
    let mut db = VulnDb::open_in_memory().unwrap();
    import(&mut db, "nvdcve-2.0-sample.json");
    db
}

/// NVD, Debian, Ubuntu, KEV, EPSS.
fn full_db() -> VulnDb {
    let mut db = nvd_db();
    import(&mut db, "osv-debian");
    import(&mut db, "osv-ubuntu");
    import(&mut db, "known_exploited_vulnerabilities.json");
    import(&mut db, "epss_scores-sample.csv");
    db
}

fn cpe(c: &str) -> ServiceQuery {
    ServiceQuery {
        cpe: Some(c.into()),
        ..Default::default()
    }
}

fn debian(version: &str) -> ServiceQuery {
    ServiceQuery {
        cpe: Some("cpe:/a:openbsd:openssh:9.2p1".into()),
        product: Some("OpenSSH".into()),
        version: Some("9.2p1".into()),
        ecosystem: Some("Debian:12".into()),
        source_package: Some("openssh".into()),
        package_version: Some(version.into()),
    }
}

fn find<'a>(threats: &'a [CveThreat], id: &str) -> Option<&'a CveThreat> {
    threats.iter().find(|t| t.cve == id)
}

fn run(db: &VulnDb, q: &ServiceQuery) -> Vec<CveThreat> {
    db.match_service(q, &MatchOptions::default()).unwrap()
}

#[test]
fn debian_fixed_package_is_not_reported() {
    let db = full_db();
    let t = run(&db, &debian("1:9.2p1-2+deb12u10"));
    assert!(find(&t, "CVE-2024-6387").is_none(), "{t:#?}");
    // The fix itself is not affected either.
    assert!(find(&run(&db, &debian("1:9.2p1-2+deb12u3")), "CVE-2024-6387").is_none());
}

#[test]
fn debian_vulnerable_package_is_confirmed() {
    let db = full_db();
    let t = run(&db, &debian("1:9.2p1-2+deb12u2"));
    let x = find(&t, "CVE-2024-6387").expect("reported");
    assert_eq!(x.confidence, Confidence::Confirmed);
    assert_eq!(x.source, MatchSource::Distro);
    assert_eq!(x.severity, Severity::High);
    assert_eq!(
        x.evidence.fixed_version.as_deref(),
        Some("1:9.2p1-2+deb12u3")
    );
    assert_eq!(x.evidence.advisory.as_deref(), Some("DSA-5724-1"));
    let cvss = x.cvss.as_ref().unwrap();
    assert_eq!((cvss.version.as_str(), cvss.score), ("3.1", 8.1));
    assert_eq!(
        cvss.vector.as_deref(),
        Some("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H")
    );
    // A missing epoch sorts below every epoch-1 version: still affected.
    assert!(find(&run(&db, &debian("9.2p1-2+deb12u10")), "CVE-2024-6387").is_some());
}

#[test]
fn without_distro_data_a_distro_banner_is_unverified() {
    let db = nvd_db();
    let q = debian("1:9.2p1-2+deb12u10");
    let t = run(&db, &q);
    let x = find(&t, "CVE-2024-6387").expect("reported");
    assert_eq!(x.confidence, Confidence::Unverified);
    assert_eq!(x.severity, Severity::Info);
    assert!(x.reason.contains("backported"), "{}", x.reason);
    let paranoid = db
        .match_service(&q, &MatchOptions { paranoid: true })
        .unwrap();
    let x = find(&paranoid, "CVE-2024-6387").unwrap();
    assert_eq!(
        (x.confidence, x.severity),
        (Confidence::Unverified, Severity::High)
    );
    // A distribution named without a package revision: the same.
    let named = ServiceQuery {
        package_version: None,
        ..debian("")
    };
    let x = run(&full_db(), &named);
    let x = find(&x, "CVE-2024-6387").unwrap();
    assert_eq!(
        (x.confidence, x.severity),
        (Confidence::Unverified, Severity::Info)
    );
}

#[test]
fn upstream_build_is_confirmed_by_nvd() {
    let db = full_db();
    let t = run(&db, &cpe("cpe:/a:openbsd:openssh:9.2p1"));
    let x = find(&t, "CVE-2024-6387").expect("reported");
    assert_eq!(x.confidence, Confidence::Confirmed);
    assert_eq!(x.source, MatchSource::Nvd);
    assert_eq!(x.severity, Severity::High);
    assert_eq!(
        x.evidence.criteria.as_deref(),
        Some("cpe:2.3:a:openbsd:openssh:*:*:*:*:*:*:*:*")
    );
    assert_eq!(
        x.evidence.cpe.as_deref(),
        Some("cpe:2.3:a:openbsd:openssh:9.2:p1:*:*:*:*:*:*")
    );
    assert!(x.references.iter().any(|r| r.contains("regresshion")));
    let epss = x.epss.as_ref().expect("EPSS attached");
    assert_eq!((epss.score, epss.percentile), (0.38, 0.972));
    assert!(x.kev.is_none());
    // Product and version without a CPE.
    let by_name = ServiceQuery {
        product: Some("openssh".into()),
        version: Some("9.2p1".into()),
        ..Default::default()
    };
    assert!(find(&run(&db, &by_name), "CVE-2024-6387").is_some());
}

#[test]
fn openssh_version_edges() {
    let db = nvd_db();
    let hit = |c: &str| find(&run(&db, &cpe(c)), "CVE-2024-6387").is_some();
    assert!(hit("cpe:/a:openbsd:openssh:4.3p2"), "below 4.4");
    assert!(hit("cpe:/a:openbsd:openssh:4.4"), "4.4:-");
    assert!(!hit("cpe:/a:openbsd:openssh:4.4p1"), "4.4p1 is patched");
    assert!(!hit("cpe:/a:openbsd:openssh:8.4p1"));
    assert!(hit("cpe:/a:openbsd:openssh:8.5p1"), "8.5:p1");
    assert!(hit("cpe:/a:openbsd:openssh:8.6p1"));
    assert!(hit("cpe:/a:openbsd:openssh:9.7p1"));
    assert!(!hit("cpe:/a:openbsd:openssh:9.8p1"), "9.8p1 is the fix");
    assert!(hit("cpe:2.3:a:openbsd:openssh:9.8:-:*:*:*:*:*:*"), "9.8:-");
    assert!(hit("cpe:/a:openbsd:openssh:9.8"), "OpenBSD's own 9.8");
    assert!(!hit("cpe:/a:openbsd:openssh:9.9p1"));
    // No version: nothing can be decided.
    assert!(run(&db, &cpe("cpe:/a:openbsd:openssh")).is_empty());
}

#[test]
fn os_configurations_do_not_flag_hosts() {
    let db = full_db();
    assert!(run(&db, &cpe("cpe:/o:debian:debian_linux:12.0")).is_empty());
    let nginx = run(&db, &cpe("cpe:/a:igor_sysoev:nginx:1.22.1"));
    assert!(find(&nginx, "CVE-2024-6387").is_none());
}

#[test]
fn vendor_alias_finds_f5_nginx() {
    let db = nvd_db();
    let t = run(&db, &cpe("cpe:/a:igor_sysoev:nginx:1.20.0"));
    let x = find(&t, "CVE-2021-23017").expect("igor_sysoev → f5");
    assert_eq!(x.severity, Severity::High);
    assert!(
        find(
            &run(&db, &cpe("cpe:/a:igor_sysoev:nginx:1.20.1")),
            "CVE-2021-23017"
        )
        .is_none()
    );
    assert!(
        find(
            &run(&db, &cpe("cpe:/a:igor_sysoev:nginx:0.6.17")),
            "CVE-2021-23017"
        )
        .is_none()
    );
    assert!(find(&run(&db, &cpe("cpe:/a:f5:nginx:0.6.18")), "CVE-2021-23017").is_some());
    assert!(run(&db, &cpe("cpe:/a:igor_sysoev:nginx:1.22.1")).is_empty());
}

#[test]
fn and_configurations_and_negate() {
    let db = nvd_db();
    let hit = |c: &str| find(&run(&db, &cpe(c)), "CVE-2099-0001").is_some();
    // AND with an unseen platform: the application node decides.
    assert!(hit("cpe:/a:example:webapp:2.2"));
    assert!(!hit("cpe:/a:example:webapp:1.9"));
    // AND with a negated node about the same product: 3.0 yes, 3.1 excluded.
    assert!(hit("cpe:/a:example:webapp:3.0"));
    assert!(!hit("cpe:/a:example:webapp:3.1"));
    assert!(hit("cpe:/a:example:webapp:3.2"));
    // The platform alone (vulnerable: false, and an OS) is never reported.
    assert!(run(&db, &cpe("cpe:/o:example:os:-")).is_empty());
}

#[test]
fn kev_raises_severity_and_is_attached() {
    let db = full_db();
    let t = run(&db, &cpe("cpe:/a:example:webapp:2.2"));
    let x = find(&t, "CVE-2099-0001").unwrap();
    // CVSS 4.0 is preferred over 3.1; 6.9 is medium, the KEV entry lifts it to high.
    assert_eq!(x.cvss.as_ref().unwrap().version, "4.0");
    assert_eq!(x.cvss.as_ref().unwrap().severity, Severity::Medium);
    assert_eq!(x.severity, Severity::High);
    let kev = x.kev.as_ref().unwrap();
    assert_eq!(kev.date_added.as_deref(), Some("2099-01-05"));
    assert_eq!(kev.due_date.as_deref(), Some("2099-01-26"));
    assert_eq!(kev.ransomware.as_deref(), Some("Unknown"));
    let nvd_only = nvd_db();
    let x = run(&nvd_only, &cpe("cpe:/a:example:webapp:2.2"));
    assert_eq!(
        find(&x, "CVE-2099-0001").unwrap().severity,
        Severity::Medium
    );
}

#[test]
fn ubuntu_releases() {
    let db = full_db();
    let q = |eco: &str, v: &str, up: &str| ServiceQuery {
        cpe: Some(format!("cpe:/a:openbsd:openssh:{up}")),
        ecosystem: Some(eco.into()),
        source_package: Some("openssh".into()),
        package_version: Some(v.into()),
        ..Default::default()
    };
    let hit = |x: ServiceQuery| find(&run(&db, &x), "CVE-2024-6387").map(|t| t.confidence);
    assert_eq!(
        hit(q("Ubuntu:22.04:LTS", "1:8.9p1-3ubuntu0.7", "8.9p1")),
        Some(Confidence::Confirmed)
    );
    assert_eq!(
        hit(q("Ubuntu:22.04:LTS", "1:8.9p1-3ubuntu0.10", "8.9p1")),
        None
    );
    assert_eq!(
        hit(q("Ubuntu:24.04:LTS", "1:9.6p1-3ubuntu13", "9.6p1")),
        Some(Confidence::Confirmed)
    );
    assert_eq!(
        hit(q("Ubuntu:24.04:LTS", "1:9.6p1-3ubuntu13.3", "9.6p1")),
        None
    );
}

#[test]
fn import_reports_and_stats() {
    let mut db = VulnDb::open_in_memory().unwrap();
    let r = import(&mut db, "nvdcve-2.0-sample.json");
    assert_eq!(r.format, Some(Format::Nvd));
    assert_eq!((r.records, r.imported, r.skipped_rejected), (5, 4, 1));
    assert_eq!(r.cpe_matches, 5 + 1 + 1 + 1);
    let r = import(&mut db, "osv-debian");
    assert_eq!(
        (r.format, r.imported, r.skipped_rejected),
        (Some(Format::OsvDir), 1, 1)
    );
    let r = import(&mut db, "known_exploited_vulnerabilities.csv");
    assert_eq!((r.format, r.imported), (Some(Format::KevCsv), 2));
    import(&mut db, "epss_scores-sample.csv");
    let s = db.stats().unwrap();
    assert_eq!((s.cves, s.osv_records, s.kev, s.epss), (4, 1, 2, 4));
    assert_eq!(s.osv_by_ecosystem.get("Debian:12"), Some(&1));
    assert_eq!(s.epss_score_date.as_deref(), Some("2099-01-01T12:55:00Z"));
    assert_eq!(s.epss_model_version.as_deref(), Some("v2025.03.14"));
    assert_eq!(
        s.kev_catalog_version, None,
        "the CSV has no catalog version"
    );
    import(&mut db, "known_exploited_vulnerabilities.json");
    assert_eq!(
        db.stats().unwrap().kev_catalog_version.as_deref(),
        Some("2099.01.01")
    );
    // Rejected records are not stored.
    assert!(
        run(&db, &cpe("cpe:/a:example:webapp:2.2"))
            .iter()
            .all(|t| t.cve != "CVE-2099-0002")
    );
}

#[test]
fn reimport_is_idempotent_and_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = VulnDb::open(dir.path()).unwrap();
    import(&mut db, "nvdcve-2.0-sample.json");
    import(&mut db, "osv-ubuntu");
    let before = db.stats().unwrap();
    let again = import(&mut db, "nvdcve-2.0-sample.json");
    assert_eq!(again.imported, 0);
    assert_eq!(again.skipped_older, 4);
    let again = import(&mut db, "osv-ubuntu");
    assert_eq!((again.imported, again.skipped_older), (0, 1));
    let after = db.stats().unwrap();
    assert_eq!(
        (
            before.cves,
            before.cpe_matches,
            before.configurations,
            before.osv_affected
        ),
        (
            after.cves,
            after.cpe_matches,
            after.configurations,
            after.osv_affected
        )
    );
    drop(db);
    // Reopening keeps everything.
    let db = VulnDb::open(dir.path()).unwrap();
    let s = db.stats().unwrap();
    assert_eq!(s.cves, 4);
    assert!(s.bytes_on_disk > 0);
    assert!(dir.path().join(VulnDb::FILE_NAME).exists());
}

#[test]
fn modified_feed_replaces_older_records() {
    let mut db = nvd_db();
    let t = run(&db, &cpe("cpe:/a:f5:nginx:1.20.2"));
    assert!(find(&t, "CVE-2021-23017").is_none());
    let r = import(&mut db, "nvdcve-2.0-modified.json");
    assert_eq!(r.imported, 1);
    let t = run(&db, &cpe("cpe:/a:f5:nginx:1.20.2"));
    let x = find(&t, "CVE-2021-23017").expect("the widened range applies");
    assert!(
        x.description
            .as_deref()
            .unwrap()
            .starts_with("Illustrative update")
    );
    // Importing the older yearly file again keeps the newer record.
    let r = import(&mut db, "nvdcve-2.0-sample.json");
    assert_eq!(r.skipped_older, 4);
    assert!(find(&run(&db, &cpe("cpe:/a:f5:nginx:1.20.2")), "CVE-2021-23017").is_some());
    assert_eq!(db.stats().unwrap().cves, 4);
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

#[test]
fn gzip_inputs_are_recognised_by_content() {
    let dir = tempfile::tempdir().unwrap();
    // A misleading name: the content decides.
    let nvd = dir.path().join("feed.bin");
    std::fs::write(
        &nvd,
        gzip(&std::fs::read(fixture("nvdcve-2.0-sample.json")).unwrap()),
    )
    .unwrap();
    let epss = dir.path().join("epss_scores-current.csv.gz");
    std::fs::write(
        &epss,
        gzip(&std::fs::read(fixture("epss_scores-sample.csv")).unwrap()),
    )
    .unwrap();
    let mut db = VulnDb::open_in_memory().unwrap();
    let mut ticks = 0;
    let r = db.import_path(&nvd, &mut |_| ticks += 1).unwrap();
    assert_eq!((r.format, r.imported), (Some(Format::Nvd), 4));
    assert!(ticks > 0);
    assert_eq!(r.bytes, std::fs::metadata(&nvd).unwrap().len());
    let r = db.import_path(&epss, &mut |_| {}).unwrap();
    assert_eq!((r.format, r.imported), (Some(Format::Epss), 4));
    let t = run(&db, &cpe("cpe:/a:openbsd:openssh:9.2p1"));
    assert!(find(&t, "CVE-2024-6387").unwrap().epss.is_some());
}

#[test]
fn osv_all_zip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("all.zip");
    let file = std::fs::File::create(&path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for name in ["DSA-5724-1.json", "DSA-9999-1.json"] {
        zip.start_file(name, opts).unwrap();
        zip.write_all(&std::fs::read(fixture("osv-debian").join(name)).unwrap())
            .unwrap();
    }
    zip.start_file("broken.json", opts).unwrap();
    zip.write_all(b"{\"id\": ").unwrap();
    zip.finish().unwrap();
    let mut db = nvd_db();
    let r = db.import_path(&path, &mut |_| {}).unwrap();
    assert_eq!(r.format, Some(Format::OsvZip));
    assert_eq!((r.imported, r.skipped_rejected, r.skipped_bad), (1, 1, 1));
    assert!(r.problems[0].starts_with("broken.json"), "{:?}", r.problems);
    assert!(find(&run(&db, &debian("1:9.2p1-2+deb12u10")), "CVE-2024-6387").is_none());
    // The same archive through a reader.
    let mut db2 = VulnDb::open_in_memory().unwrap();
    let r = db2
        .import_reader(std::fs::File::open(&path).unwrap(), &mut |_| {})
        .unwrap();
    assert_eq!(r.imported, 1);
}

#[test]
fn bad_input_is_a_typed_error_and_keeps_what_was_imported() {
    let mut db = nvd_db();
    let e = db
        .import_reader(&b"hello world"[..], &mut |_| {})
        .unwrap_err();
    assert!(matches!(e, VulnDbError::UnknownFormat { .. }), "{e}");
    // A feed cut in the middle of its second record: the first is kept.
    let text = std::fs::read_to_string(fixture("nvdcve-2.0-modified.json")).unwrap();
    let doubled = text.replacen(
        "\"vulnerabilities\": [",
        "\"vulnerabilities\": [{\"cve\":{\"id\":\"CVE-2099-0100\",\"lastModified\":\"2099-01-01T00:00:00\"}},",
        1,
    );
    let cut = &doubled[..doubled.len() / 2];
    let e = db.import_reader(cut.as_bytes(), &mut |_| {}).unwrap_err();
    assert!(matches!(e, VulnDbError::Malformed { .. }), "{e}");
    assert!(e.to_string().contains("NVD"), "{e}");
    assert_eq!(db.stats().unwrap().cves, 5, "CVE-2099-0100 was kept");
    // Wrong types inside a record.
    let e = db
        .import_reader(
            &br#"{"format":"NVD_CVE","vulnerabilities":[{"cve":{"id":7}}]}"#[..],
            &mut |_| {},
        )
        .unwrap_err();
    assert!(matches!(e, VulnDbError::Malformed { .. }), "{e}");
    // EPSS with a bad line: counted, the rest imported.
    let r = db
        .import_reader(
            &b"cve,epss,percentile\nCVE-1-1,x,0.5\nCVE-2024-6387,0.5,0.5\n"[..],
            &mut |_| {},
        )
        .unwrap();
    assert_eq!((r.imported, r.skipped_bad), (1, 1));
    // A bad CPE in a query is an error, not a panic.
    assert!(
        db.match_service(&cpe("cpe:/x:y"), &MatchOptions::default())
            .is_err()
    );
    // A missing file names the file.
    let e = db
        .import_path(Path::new("/nonexistent/feed.json"), &mut |_| {})
        .unwrap_err();
    assert!(e.to_string().contains("feed.json"));
}

#[test]
fn threats_serialise_and_convert() {
    let db = full_db();
    let t = run(&db, &debian("1:9.2p1-2+deb12u2"));
    let x = find(&t, "CVE-2024-6387").unwrap();
    let json = serde_json::to_value(x).unwrap();
    assert_eq!(json["confidence"], "confirmed");
    assert_eq!(json["severity"], "high");
    assert_eq!(json["evidence"]["package_version"], "1:9.2p1-2+deb12u2");
    let threat = x.to_threat(
        "host",
        "192.0.2.1".parse().unwrap(),
        Some(22),
        sec_scan::Kind::Ssh,
    );
    assert_eq!(threat.signature_id, "CVE-2024-6387");
    assert_eq!(threat.severity, Severity::High);
    assert!(threat.remediation.contains("1:9.2p1-2+deb12u3"));
    assert!(threat.references[0].ends_with("CVE-2024-6387"));
}

#[test]
fn an_import_replaces_answers_kept_from_before_it() {
    let mut db = nvd_db();
    let debian = ServiceQuery {
        cpe: Some("cpe:/a:openbsd:openssh:9.2p1".into()),
        ecosystem: Some("Debian:12".into()),
        source_package: Some("openssh".into()),
        package_version: Some("1:9.2p1-2+deb12u10".into()),
        ..ServiceQuery::default()
    };
    let options = MatchOptions::default();
    let before = db.match_service(&debian, &options).unwrap();
    assert!(
        before
            .iter()
            .any(|t| t.cve == "CVE-2024-6387" && t.confidence == Confidence::Unverified),
        "{before:?}"
    );
    // Asked again: the same answer (kept).
    assert_eq!(db.match_service(&debian, &options).unwrap(), before);
    // Debian's data arrives: the kept answer must not survive it.
    import(&mut db, "osv-debian");
    let after = db.match_service(&debian, &options).unwrap();
    assert!(after.iter().all(|t| t.cve != "CVE-2024-6387"), "{after:?}");
}
