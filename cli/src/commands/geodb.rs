//! `vigil geodb`: fill and inspect the offline database in `<data-dir>/geodb`.
//!
//! `import` reads the OpenCellID/MLS cell dump (`cell_towers.csv`, `.csv.gz`) or a WiGLE CSV
//! export (1.4 or 1.6), streaming, with a progress bar and a summary of what was skipped and why.
//! An interrupted import leaves the database as it was; run it again. It also takes a GeoIP city
//! database in MaxMind's MMDB format (GeoLite2-City, DB-IP City Lite), kept as
//! `geodb/ip-city.mmdb` for the IP fallback of `vigil locate --ip` and `/v1/geolocate`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args as ClapArgs, Subcommand};
use geo_locate::{GeoDb, ImportOptions};
use indicatif::{ProgressBar, ProgressStyle};

/// Import into or inspect the offline geolocation database.
#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    command: GeodbCommand,
    /// Data directory shared with `vigil serve`; the database lives in its `geodb/`.
    #[arg(
        long,
        global = true,
        default_value = "./vigil-data",
        env = "VIGIL_DATA_DIR"
    )]
    data_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
enum GeodbCommand {
    /// Import a cell dump (OpenCellID/MLS, .csv or .csv.gz), a WiGLE CSV export, or a GeoIP
    /// city database (.mmdb: GeoLite2-City, DB-IP City Lite).
    Import(ImportArgs),
    /// Show what the database holds.
    Stats {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, ClapArgs)]
struct ImportArgs {
    /// The file to import.
    file: PathBuf,
    /// Keep only cells of these MCCs, e.g. `--mcc 262,232`.
    #[arg(long, value_delimiter = ',')]
    mcc: Vec<u16>,
    /// Keep only cells of these MNCs.
    #[arg(long, value_delimiter = ',')]
    mnc: Vec<u16>,
    /// Skip cell-dump rows with fewer samples.
    #[arg(long, default_value_t = 0)]
    min_samples: u32,
    /// Print the import report as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `vigil geodb`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let dir = args.data_dir.join("geodb");
    match args.command {
        GeodbCommand::Import(import) => run_import(&dir, import),
        GeodbCommand::Stats { json } => {
            let db = GeoDb::open(&dir)
                .with_context(|| format!("cannot open the offline database {}", dir.display()))?;
            let stats = db.stats()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&stats)?);
            } else {
                println!("database  {}", dir.display());
                println!("cells     {}", stats.cells);
                for (radio, n) in &stats.cells_by_radio {
                    println!("  {radio:<7} {n}");
                }
                println!("areas     {}", stats.areas);
                println!("wifi      {}", stats.wifi);
                println!("bluetooth {}", stats.ble);
                println!("on disk   {}", human_bytes(stats.bytes_on_disk));
                println!(
                    "geoip     {}",
                    stats.ip_database.as_deref().unwrap_or("none")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn human_bytes(b: u64) -> String {
    match b {
        0..1_000 => format!("{b} B"),
        1_000..1_000_000 => format!("{:.1} kB", b as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        _ => format!("{:.2} GB", b as f64 / 1e9),
    }
}

fn run_import(dir: &std::path::Path, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let size = std::fs::metadata(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?
        .len();
    if geo_locate::ip::is_mmdb_file(&args.file)? {
        let report = GeoDb::import_ip_database(dir, &args.file)
            .with_context(|| format!("importing {}", args.file.display()))?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            println!(
                "imported {} ({}, {}) as {}",
                args.file.display(),
                report.database_type,
                human_bytes(report.bytes),
                report.path.display()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let options = ImportOptions {
        mcc: args.mcc,
        mnc: args.mnc,
        min_samples: args.min_samples,
        ..Default::default()
    };
    // Draws on stderr, and only when it is a terminal.
    let bar = ProgressBar::new(size);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg}",
        )
        .context("progress bar template")?,
    );
    let report = GeoDb::import_file(dir, &args.file, &options, &mut |p| {
        bar.set_position(p.bytes_read);
        if p.merging {
            bar.set_message(format!("{} rows, merging…", p.rows_read));
        } else {
            bar.set_message(format!("{} rows", p.rows_read));
        }
    })
    .with_context(|| format!("importing {}", args.file.display()))?;
    bar.finish_and_clear();

    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let format = match report.format {
            geo_locate::store::InputFormat::OpenCellId => "cell dump",
            geo_locate::store::InputFormat::Wigle => "WiGLE CSV",
        };
        println!(
            "imported {} ({format}) into {}",
            args.file.display(),
            dir.display()
        );
        println!("rows read  {}", report.rows_read);
        println!("imported   {}", report.imported);
        let skipped: u64 = report.skipped.values().sum();
        println!("skipped    {skipped}");
        for (reason, n) in &report.skipped {
            println!("  {:<17} {n}", reason.as_str());
        }
        for bad in report.bad_lines.iter().take(10) {
            println!("  line {}: {} ({})", bad.line, bad.reason, bad.detail);
        }
        if report.bad_lines.len() > 10 {
            println!(
                "  … {} more bad lines listed with --json",
                report.bad_lines.len() - 10
            );
        }
        println!(
            "database   {} cells, {} areas, {} wifi, {} bluetooth",
            report.stats.cells, report.stats.areas, report.stats.wifi, report.stats.ble
        );
    }
    if let Some(why) = &report.truncated {
        eprintln!(
            "warning: {why}; the {} rows read before that were imported",
            report.imported
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
