//! Signature matching: 1 000 signatures on one finding field, matched in one pass by
//! sec-scan's `SignatureSet` (a `RegexSet` per field), against the seed's method, a loop of
//! individual regexes (DESIGN.md §9 target: ≥ 20×).
//!
//! Run with `cargo bench -p vigil-benches --bench scan_signatures`.
//!
//! The signatures look like service-detection rules: an anchored protocol prefix, a product
//! name and a version pattern (`^SSH-2\.0-Prod17[_ /-]v?(\d+)\.(\d+)`). The inputs are 16
//! banners; a few match one signature, most match none, as in real scans.

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use regex::Regex;
use sec_scan::{Detail, Finding, SignatureSet};

const PREFIXES: [&str; 8] = [
    r"^SSH-2\.0-",
    r"^HTTP/1\.[01] \d{3} .*\r\nServer: ",
    r"^220[ -](?:[\w.-]+ )?",
    r"^\+OK ",
    r"^\* OK \[CAPABILITY [^\]]*\] ",
    r"^RFB 00\d\.00\d ",
    r"(?i)^<\?xml[^>]*>\s*<",
    r"^-ERR ",
];

fn patterns(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let prefix = PREFIXES[i % PREFIXES.len()];
            format!(r"{prefix}Prod{i}[_ /-]v?(\d+)\.(\d+)")
        })
        .collect()
}

fn signature_file(patterns: &[String]) -> String {
    let mut toml = String::new();
    for (i, p) in patterns.iter().enumerate() {
        toml.push_str(&format!(
            "[[signature]]\nid = \"sig-{i}\"\nname = \"Product {i}\"\nseverity = \"low\"\nkind = \"banner\"\nfield = \"text\"\nregex = '{p}'\nremediation = \"upgrade\"\n\n"
        ));
    }
    toml
}

fn banners() -> Vec<String> {
    let mut v: Vec<String> = vec![
        "SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13".into(),
        "SSH-2.0-Prod8_7.4".into(),
        "HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\nContent-Type: text/html".into(),
        "HTTP/1.1 404 Not Found\r\nServer: Prod9/2.4".into(),
        "220 mail.example.com ESMTP Postfix (Debian/GNU)".into(),
        "220 (vsFTPd 3.0.3)".into(),
        "+OK Dovecot ready.".into(),
        "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS] Dovecot ready.".into(),
        "RFB 003.008 ".into(),
        "-ERR unknown command 'GET'".into(),
        "-NOAUTH Authentication required.".into(),
        "\u{16}\u{3}\u{3}binary tls".into(),
    ];
    v.extend(
        (0..4).map(|i| {
            format!("random banner number {i} with no product at all, long enough to scan")
        }),
    );
    v
}

fn findings(banners: &[String]) -> Vec<Finding> {
    let addr: IpAddr = "127.0.0.1".parse().unwrap();
    banners
        .iter()
        .map(|b| Finding {
            host: "127.0.0.1".into(),
            addr,
            port: Some(22),
            detail: Detail::Banner {
                service: None,
                product: None,
                version: None,
                text: b.clone(),
                info: None,
                hostname: None,
                os: None,
                device: None,
                cpe: Vec::new(),
                distro: None,
                ecosystem: None,
                package: None,
                package_version: None,
                method: None,
                probe: None,
                tunnel: None,
            },
        })
        .collect()
}

fn matching(c: &mut Criterion) {
    let pats = patterns(1000);
    let set = SignatureSet::from_toml(&signature_file(&pats), "bench").expect("valid signatures");
    let loop_regexes: Vec<Regex> = pats.iter().map(|p| Regex::new(p).unwrap()).collect();
    let banners = banners();
    let findings = findings(&banners);

    // Both methods must agree before their speed means anything.
    for (f, b) in findings.iter().zip(&banners) {
        let mut a: Vec<usize> = set
            .match_finding(f)
            .iter()
            .map(|t| t.signature_id[4..].parse().unwrap())
            .collect();
        a.sort_unstable();
        let l: Vec<usize> = (0..loop_regexes.len())
            .filter(|&i| loop_regexes[i].is_match(b))
            .collect();
        assert_eq!(a, l, "methods disagree on {b:?}");
    }

    let mut group = c.benchmark_group("signatures_1000");
    group.throughput(Throughput::Elements(findings.len() as u64));
    group.bench_function("signature_set_one_pass", |bench| {
        bench.iter(|| {
            let mut n = 0;
            for f in &findings {
                n += set.match_finding(black_box(f)).len();
            }
            n
        })
    });
    group.bench_function("loop_of_individual_regexes", |bench| {
        bench.iter(|| {
            let mut n = 0;
            for b in &banners {
                for r in &loop_regexes {
                    if r.is_match(black_box(b)) {
                        n += 1;
                    }
                }
            }
            n
        })
    });
    group.finish();
}

criterion_group!(benches, matching);
criterion_main!(benches);
