//! Vulnerability database benchmark: NVD import rate, peak memory and bytes on disk, and the
//! latency of matching one service, on a generated NVD-shaped data set, against DESIGN.md §10
//! (import ≥ 10 k CVEs/s with bounded memory; one service's CPE against ≈300 k CVEs: p99 ≤ 100 µs).
//!
//! ```text
//! cargo run --release -p vigil-benches --bin cvedb [-- CVES [MATCH_ITERATIONS]]
//! ```
//!
//! `CVES` defaults to 30 000 (a tenth of NVD); `300000` is NVD's size. The generator writes
//! yearly `nvdcve-2.0-YYYY.json.gz` files (25 years) in the feed's shape, with a skewed product
//! distribution like NVD's: operating systems with thousands of CVEs (`o:linux:linux_kernel`,
//! `o:microsoft:windows_10`, never indexed for services), applications with thousands
//! (`google:chrome`, `oracle:mysql`), OpenSSH and nginx with their real order of magnitude, and
//! a long tail of 20 000 products; configurations carry ranges, exploded version lists and
//! AND nodes with OS platforms, about 8 cpeMatch entries per CVE on average. Everything is
//! written to a temporary directory that is removed at the end; peak memory is `VmHWM` from
//! `/proc/self/status`.

use std::io::Write as _;
use std::time::Instant;

use flate2::Compression;
use flate2::write::GzEncoder;
use sec_scan::vulndb::{MatchOptions, ServiceQuery, VulnDb};
use serde_json::{Value, json};
use vigil_benches::geo::Rng;

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// A product and how many CVEs it has at NVD's full size (300 k).
struct Heavy {
    part: &'static str,
    vendor: &'static str,
    product: &'static str,
    full_count: u64,
}

const HEAVY: &[Heavy] = &[
    Heavy {
        part: "o",
        vendor: "linux",
        product: "linux_kernel",
        full_count: 6_000,
    },
    Heavy {
        part: "o",
        vendor: "microsoft",
        product: "windows_10",
        full_count: 5_000,
    },
    Heavy {
        part: "a",
        vendor: "google",
        product: "chrome",
        full_count: 3_000,
    },
    Heavy {
        part: "a",
        vendor: "oracle",
        product: "mysql",
        full_count: 1_500,
    },
    Heavy {
        part: "a",
        vendor: "openbsd",
        product: "openssh",
        full_count: 130,
    },
    Heavy {
        part: "a",
        vendor: "f5",
        product: "nginx",
        full_count: 40,
    },
    Heavy {
        part: "a",
        vendor: "nginx",
        product: "nginx",
        full_count: 30,
    },
];

fn version(rng: &mut Rng) -> String {
    format!("{}.{}.{}", rng.below(12), rng.below(30), rng.below(20))
}

fn cpe(part: &str, vendor: &str, product: &str, v: &str) -> String {
    format!("cpe:2.3:{part}:{vendor}:{product}:{v}:*:*:*:*:*:*:*")
}

/// The configurations of one CVE about (part, vendor, product).
fn configurations(rng: &mut Rng, part: &str, vendor: &str, product: &str) -> Value {
    let mut configs = Vec::new();
    let n_configs = 1 + (rng.below(10) == 0) as u64;
    for _ in 0..n_configs {
        let shape = rng.below(10);
        let mut matches = Vec::new();
        if shape < 5 {
            // One to three ranges.
            for _ in 0..1 + rng.below(3) {
                let (a, b) = (version(rng), version(rng));
                let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                matches.push(json!({
                    "vulnerable": true,
                    "criteria": cpe(part, vendor, product, "*"),
                    "versionStartIncluding": lo,
                    "versionEndExcluding": hi,
                    "matchCriteriaId": "00000000-0000-4000-8000-000000000000"
                }));
            }
        } else if shape < 8 {
            // An exploded version list, as NVD writes for older records.
            let spread = if rng.below(20) == 0 { 60 } else { 10 };
            let k = 3 + rng.below(spread);
            for _ in 0..k {
                matches.push(json!({
                    "vulnerable": true,
                    "criteria": cpe(part, vendor, product, &version(rng)),
                    "matchCriteriaId": "00000000-0000-4000-8000-000000000000"
                }));
            }
        } else {
            matches.push(json!({
                "vulnerable": true,
                "criteria": cpe(part, vendor, product, "*"),
                "versionEndIncluding": version(rng),
                "matchCriteriaId": "00000000-0000-4000-8000-000000000000"
            }));
        }
        if part == "a" && rng.below(4) == 0 {
            // AND with the platforms it runs on.
            let platforms: Vec<Value> = ["linux:linux_kernel", "microsoft:windows", "apple:macos"]
                .iter()
                .map(|p| {
                    json!({
                        "vulnerable": false,
                        "criteria": format!("cpe:2.3:o:{p}:-:*:*:*:*:*:*:*")
                    })
                })
                .collect();
            configs.push(json!({
                "operator": "AND",
                "nodes": [
                    {"operator": "OR", "negate": false, "cpeMatch": matches},
                    {"operator": "OR", "negate": false, "cpeMatch": platforms}
                ]
            }));
        } else {
            configs
                .push(json!({"nodes": [{"operator": "OR", "negate": false, "cpeMatch": matches}]}));
        }
    }
    Value::Array(configs)
}

fn record(rng: &mut Rng, id: &str, year: u64, target: (&str, &str, &str)) -> Value {
    let (part, vendor, product) = target;
    let score = (rng.below(91) as f64 + 10.0) / 10.0;
    let has_config = rng.below(10) < 7;
    json!({
        "cve": {
            "id": id,
            "sourceIdentifier": "cve@mitre.org",
            "published": format!("{year}-03-01T10:00:00.000"),
            "lastModified": format!("{year}-04-01T10:00:00.000"),
            "vulnStatus": if has_config { "Analyzed" } else { "Awaiting Analysis" },
            "cveTags": [],
            "descriptions": [{"lang": "en", "value": format!("Generated record about {vendor} {product}: a buffer overflow in a parser allows remote attackers to execute code via a crafted request.")}],
            "metrics": {"cvssMetricV31": [{
                "source": "nvd@nist.gov", "type": "Primary",
                "cvssData": {"version": "3.1", "vectorString": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "baseScore": score, "baseSeverity": "HIGH"},
                "exploitabilityScore": 3.9, "impactScore": 5.9
            }]},
            "weaknesses": [{"source": "nvd@nist.gov", "type": "Primary", "description": [{"lang": "en", "value": "CWE-787"}]}],
            "configurations": if has_config { configurations(rng, part, vendor, product) } else { json!([]) },
            "references": [
                {"url": format!("https://example.com/advisories/{id}"), "source": "cve@mitre.org"},
                {"url": format!("https://bugs.example.org/{}", rng.below(1_000_000)), "source": "cve@mitre.org", "tags": ["Issue Tracking"]}
            ]
        }
    })
}

/// Writes the year files and returns their paths.
fn generate(dir: &std::path::Path, total: u64) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut rng = Rng::new(7);
    let scale = total as f64 / 300_000.0;
    // The list of targets, one per CVE, heavy products first, then the tail.
    let mut targets: Vec<(String, String, String)> = Vec::with_capacity(total as usize);
    for h in HEAVY {
        let n = ((h.full_count as f64 * scale).round() as u64).max(1);
        for _ in 0..n {
            targets.push((h.part.into(), h.vendor.into(), h.product.into()));
        }
    }
    while (targets.len() as u64) < total {
        // Zipf-like: product i is drawn with weight ~1/i.
        let u = rng.unit();
        let i = (20_000f64.powf(u)) as u64;
        targets.push(("a".into(), format!("vendor{i}"), format!("product{i}")));
    }
    targets.truncate(total as usize);
    // Shuffle so every year holds a mix.
    for i in (1..targets.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        targets.swap(i, j);
    }
    let years = 25u64;
    let per_year = total.div_ceil(years);
    let mut files = Vec::new();
    for (y, chunk) in targets.chunks(per_year as usize).enumerate() {
        let year = 2002 + y as u64;
        let path = dir.join(format!("nvdcve-2.0-{year}.json.gz"));
        let mut gz = GzEncoder::new(
            std::io::BufWriter::new(std::fs::File::create(&path)?),
            Compression::fast(),
        );
        write!(
            gz,
            "{{\"resultsPerPage\":{n},\"startIndex\":0,\"totalResults\":{n},\"format\":\"NVD_CVE\",\"version\":\"2.0\",\"timestamp\":\"{year}-12-31T00:00:00.000\",\"vulnerabilities\":[",
            n = chunk.len()
        )?;
        for (k, (part, vendor, product)) in chunk.iter().enumerate() {
            if k > 0 {
                gz.write_all(b",")?;
            }
            let id = format!("CVE-{year}-{:05}", k + 1);
            serde_json::to_writer(
                &mut gz,
                &record(&mut rng, &id, year, (part, vendor, product)),
            )?;
        }
        gz.write_all(b"]}")?;
        gz.finish()?.flush()?;
        files.push(path);
    }
    Ok(files)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let total: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(30_000);
    let iterations: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5_000);
    let tmp = tempfile::tempdir()?;

    let t = Instant::now();
    let files = generate(tmp.path(), total)?;
    let gz_bytes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    println!(
        "generated {total} CVEs in {} year files ({:.1} MB gzip) in {:.1} s",
        files.len(),
        gz_bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let rss_before = peak_rss_kib().unwrap_or(0);

    let db_dir = tmp.path().join("data");
    let mut db = VulnDb::open(&db_dir)?;
    let t = Instant::now();
    let mut imported = 0;
    let mut cpe_matches = 0;
    for f in &files {
        let r = db.import_path(f, &mut |_| {})?;
        imported += r.imported;
        cpe_matches += r.cpe_matches;
    }
    db.checkpoint()?;
    let secs = t.elapsed().as_secs_f64();
    let stats = db.stats()?;
    println!(
        "import: {imported} CVEs ({} stored, {cpe_matches} application cpeMatch entries indexed) in {secs:.1} s = {:.0} CVEs/s",
        stats.cves,
        imported as f64 / secs
    );
    println!(
        "peak RSS: {} MiB (before import {} MiB); on disk: {:.1} MB ({:.0} bytes per CVE)",
        peak_rss_kib().unwrap_or(0) / 1024,
        rss_before / 1024,
        stats.bytes_on_disk as f64 / 1e6,
        stats.bytes_on_disk as f64 / stats.cves.max(1) as f64
    );

    let services = [
        ("openssh 9.2p1", "cpe:/a:openbsd:openssh:9.2p1"),
        (
            "nginx 1.22.1 (igor_sysoev)",
            "cpe:/a:igor_sysoev:nginx:1.22.1",
        ),
        (
            "chrome 5.10.3 (thousands of CVEs)",
            "cpe:/a:google:chrome:5.10.3",
        ),
        ("mysql 8.0.0", "cpe:/a:oracle:mysql:8.0.0"),
        ("tail product", "cpe:/a:vendor3:product3:4.2.1"),
    ];
    let options = MatchOptions::default();
    for (name, cpe) in services {
        let q = ServiceQuery {
            cpe: Some(cpe.into()),
            ..Default::default()
        };
        let found = db.match_service(&q, &options)?.len();
        // Cold: the answer cache emptied before every run (a service seen for the first time);
        // warm: the same service again (what a scan of many alike hosts mostly does).
        for cold in [true, false] {
            let mut lat = Vec::with_capacity(iterations);
            // At most MATCH_ITERATIONS runs, and at most about 5 s per service.
            let budget = Instant::now();
            for i in 0..iterations {
                if i >= 100 && budget.elapsed().as_secs() >= 5 {
                    break;
                }
                if cold {
                    db.clear_match_cache();
                }
                let t = Instant::now();
                let r = db.match_service(&q, &options)?;
                lat.push(t.elapsed().as_secs_f64() * 1e6);
                std::hint::black_box(r);
            }
            lat.sort_by(f64::total_cmp);
            println!(
                "match {name:<34} {} {found:>5} CVEs  p50 {:>8.1} µs  p99 {:>8.1} µs  max {:>8.1} µs  ({} runs)",
                if cold { "cold" } else { "warm" },
                percentile(&lat, 0.5),
                percentile(&lat, 0.99),
                lat[lat.len() - 1],
                lat.len()
            );
        }
    }
    Ok(())
}
