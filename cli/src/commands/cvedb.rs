//! `vigil cvedb`: fill, inspect and query the offline vulnerability database
//! `<data-dir>/cvedb.sqlite`.
//!
//! `import` takes NVD CVE JSON 2.0 files (API answers, yearly/`modified`/`recent` feeds,
//! `.json` or `.json.gz`), OSV records (a `.json`, a directory, an ecosystem's `all.zip`), the
//! CISA KEV catalog (JSON or CSV) and FIRST EPSS scores (`.csv`, `.csv.gz`); the format is
//! recognised from the content. Each file is streamed with a progress bar and summarised. An
//! interrupted import keeps what it committed; run it again. `stats` shows what the database
//! holds, `match` what it says about one service.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args as ClapArgs, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use sec_scan::vulndb::{ImportReport, MatchOptions, ServiceQuery, VulnDb};

/// Import into, inspect or query the offline vulnerability database.
#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    command: CvedbCommand,
    /// Data directory shared with `vigil serve`; the database is its `cvedb.sqlite`.
    #[arg(
        long,
        global = true,
        default_value = "./vigil-data",
        env = "VIGIL_DATA_DIR"
    )]
    data_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
enum CvedbCommand {
    /// Import NVD CVE JSON 2.0 (.json, .json.gz), OSV (.json, a directory, all.zip), CISA KEV
    /// (JSON, CSV) or FIRST EPSS (.csv, .csv.gz) files. The format is read from the content.
    Import {
        /// The files to import, in order (import yearly NVD files before `modified` feeds:
        /// either order ends with the newest record).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print one JSON import report per file (one per line).
        #[arg(long)]
        json: bool,
    },
    /// Show what the database holds.
    Stats {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the CVEs that apply to one service.
    Match {
        /// The service's CPE, 2.3 or URI binding (cpe:/a:openbsd:openssh:9.2p1).
        #[arg(long)]
        cpe: Option<String>,
        /// Product name, when there is no CPE.
        #[arg(long)]
        product: Option<String>,
        /// Upstream version from the banner (9.2p1), when the CPE has none.
        #[arg(long)]
        product_version: Option<String>,
        /// OSV ecosystem of the distribution (Debian:12, Ubuntu:22.04:LTS).
        #[arg(long)]
        ecosystem: Option<String>,
        /// Distribution source package (openssh).
        #[arg(long)]
        package: Option<String>,
        /// Package version with epoch and revision (1:9.2p1-2+deb12u10).
        #[arg(long)]
        package_version: Option<String>,
        /// Report unverified (possibly backported) matches at their CVSS severity.
        #[arg(long)]
        paranoid: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `vigil cvedb`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let dir = args.data_dir;
    match args.command {
        CvedbCommand::Import { files, json } => run_import(&dir, &files, json),
        CvedbCommand::Stats { json } => {
            let db = open(&dir)?;
            let s = db.stats()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
                return Ok(ExitCode::SUCCESS);
            }
            let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
            println!("database        {}", dir.join(VulnDb::FILE_NAME).display());
            println!("on disk         {}", human_bytes(s.bytes_on_disk));
            println!("NVD CVEs        {}", s.cves);
            println!(
                "  cpeMatch      {} application entries indexed",
                s.cpe_matches
            );
            println!("  configs       {}", s.configurations);
            println!("  newest        {}", opt(&s.nvd_last_modified));
            println!("OSV records     {}", s.osv_records);
            for (eco, n) in &s.osv_by_ecosystem {
                println!("  {eco:<13} {n} (package, CVE) rows");
            }
            println!(
                "CISA KEV        {} (catalog {}, released {})",
                s.kev,
                opt(&s.kev_catalog_version),
                opt(&s.kev_date_released)
            );
            println!(
                "FIRST EPSS      {} (scored {}, model {})",
                s.epss,
                opt(&s.epss_score_date),
                opt(&s.epss_model_version)
            );
            Ok(ExitCode::SUCCESS)
        }
        CvedbCommand::Match {
            cpe,
            product,
            product_version,
            ecosystem,
            package,
            package_version,
            paranoid,
            json,
        } => {
            if cpe.is_none() && product.is_none() && package.is_none() {
                anyhow::bail!("give --cpe, or --product and --product-version, or --package");
            }
            let db = open(&dir)?;
            let query = ServiceQuery {
                cpe,
                product,
                version: product_version,
                ecosystem,
                source_package: package,
                package_version,
            };
            let threats = db.match_service(&query, &MatchOptions { paranoid })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&threats)?);
            } else if threats.is_empty() {
                println!("no CVEs apply");
            } else {
                for t in &threats {
                    let cvss = t
                        .cvss
                        .as_ref()
                        .map(|c| format!("CVSS {} {:.1}", c.version, c.score))
                        .unwrap_or_else(|| "no CVSS".into());
                    let kev = if t.kev.is_some() { " KEV" } else { "" };
                    let epss = t
                        .epss
                        .as_ref()
                        .map(|e| format!(" EPSS {:.3} ({:.0}%)", e.score, e.percentile * 100.0))
                        .unwrap_or_default();
                    println!(
                        "{:<8} {:<16} {:?} {cvss}{kev}{epss}",
                        t.severity.name(),
                        t.cve,
                        t.confidence
                    );
                    println!("         {}", t.reason);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn open(dir: &Path) -> anyhow::Result<VulnDb> {
    VulnDb::open(dir).with_context(|| {
        format!(
            "cannot open the vulnerability database in {}",
            dir.display()
        )
    })
}

fn human_bytes(b: u64) -> String {
    match b {
        0..1_000 => format!("{b} B"),
        1_000..1_000_000 => format!("{:.1} kB", b as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        _ => format!("{:.2} GB", b as f64 / 1e9),
    }
}

fn run_import(dir: &Path, files: &[PathBuf], json: bool) -> anyhow::Result<ExitCode> {
    let mut db = open(dir)?;
    let mut failed = 0;
    for file in files {
        let size = match std::fs::metadata(file) {
            Ok(m) if m.is_file() => m.len(),
            Ok(_) => 0,
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", file.display());
                failed += 1;
                continue;
            }
        };
        // Draws on stderr, and only when it is a terminal.
        let bar = if size > 0 {
            ProgressBar::new(size)
        } else {
            ProgressBar::new_spinner()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg}",
            )
            .context("progress bar template")?,
        );
        let result = db.import_path(file, &mut |p| {
            bar.set_position(p.bytes_read);
            bar.set_message(format!("{} records", p.records));
        });
        bar.finish_and_clear();
        match result {
            Ok(report) => print_report(file, &report, json)?,
            Err(e) => {
                eprintln!(
                    "error: importing {}: {e} (records committed before the error are kept; \
                     fix the file and import it again)",
                    file.display()
                );
                failed += 1;
            }
        }
    }
    db.checkpoint()?;
    if failed > 0 {
        eprintln!("{failed} of {} files failed", files.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(file: &Path, r: &ImportReport, json: bool) -> anyhow::Result<()> {
    if json {
        let mut v = serde_json::to_value(r)?;
        v["file"] = serde_json::Value::String(file.display().to_string());
        println!("{}", serde_json::to_string(&v)?);
        return Ok(());
    }
    let format = r.format.map(|f| f.name()).unwrap_or("empty directory");
    println!(
        "{}: {format}, {} read, {} records, {} imported",
        file.display(),
        human_bytes(r.bytes),
        r.records,
        r.imported
    );
    if r.skipped_older > 0 {
        println!("  {} not newer than the stored copy", r.skipped_older);
    }
    if r.skipped_rejected > 0 {
        println!("  {} rejected or withdrawn, skipped", r.skipped_rejected);
    }
    if r.cpe_matches > 0 {
        println!("  {} application cpeMatch entries indexed", r.cpe_matches);
    }
    if r.skipped_bad > 0 {
        println!("  {} unusable, skipped:", r.skipped_bad);
        for p in &r.problems {
            println!("    {p}");
        }
    }
    Ok(())
}
