//! `vigil scan`: scan hosts you are authorised to test.
//!
//! The targets typed on the command line are the scope: nothing else is contacted, names are
//! resolved once and pinned, and loopback, link-local and metadata addresses are scanned only
//! when typed as such. Exit codes: 0 when no threat reaches `--fail-on`, 1 when one does, 2 on
//! error.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sec_scan::{
    Detail, Pipeline, PortList, PortScanConfig, PortState, ScanEvent, ScanOptions, ScanReport,
    Scope, Severity, SignatureSet, SystemResolver, Target,
};
use tokio_util::sync::CancellationToken;

/// Scan TCP ports, banners, TLS and HTTP of authorised targets and match threat signatures.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 clean, 1 threats at or above --fail-on, 2 error.\n\
Example: vigil scan 127.0.0.1 --ports 1-65535 --banners --tls --http"
)]
pub struct Args {
    /// Targets: addresses, CIDR networks, ranges (10.0.0.5-20), host names. They are the
    /// scope: nothing else is contacted.
    #[arg(required = true, value_name = "TARGET")]
    targets: Vec<String>,
    /// Ports: `22,80,8000-8100`, `all` (1-65535), `top100`, `top:20`.
    #[arg(short, long, default_value = "top100", value_name = "SPEC")]
    ports: String,
    /// Addresses, networks or names never to contact (they win over the targets).
    #[arg(long, value_delimiter = ',', value_name = "RULE")]
    exclude: Vec<String>,
    /// Ports never to probe.
    #[arg(long, value_name = "SPEC")]
    exclude_ports: Option<String>,
    /// Grab banners and identify services.
    #[arg(long)]
    banners: bool,
    /// Check TLS certificates and protocols.
    #[arg(long)]
    tls: bool,
    /// Probe HTTP (status, server, title, missing security headers).
    #[arg(long)]
    http: bool,
    /// Also try anonymous/unauthenticated access and a short default-credential list (at most
    /// 10 attempts per service). Only on targets you are authorised to log in to.
    #[arg(long)]
    access_checks: bool,
    /// Extra signature file (TOML), added to the built-in set.
    #[arg(long, value_name = "FILE")]
    signatures: Option<PathBuf>,
    /// Use only the `--signatures` file, not the built-in set.
    #[arg(long, requires = "signatures")]
    no_builtin: bool,
    /// Most connects per second (default: no cap).
    #[arg(long, value_name = "N")]
    rate: Option<u32>,
    /// Per-connect timeout in milliseconds.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    timeout: u64,
    /// Extra attempts for ports that do not answer.
    #[arg(long, default_value_t = 1)]
    retries: u8,
    /// Most connects in flight.
    #[arg(long, default_value_t = 1000)]
    concurrency: usize,
    /// Print one JSON document at the end.
    #[arg(long, conflicts_with = "jsonl")]
    json: bool,
    /// Print one JSON object per line as results arrive.
    #[arg(long)]
    jsonl: bool,
    /// Lowest threat severity that makes the exit status 1 (info, low, medium, high,
    /// critical, never).
    #[arg(long, default_value = "high", value_name = "SEVERITY")]
    fail_on: String,
}

/// Runs `vigil scan`; errors are printed here so that they exit with status 2.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match scan(args) {
        Ok(code) => Ok(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            Ok(ExitCode::from(2))
        }
    }
}

fn scan(args: Args) -> anyhow::Result<ExitCode> {
    let fail_on: Option<Severity> = match args.fail_on.to_ascii_lowercase().as_str() {
        "never" | "none" => None,
        s => Some(s.parse().map_err(anyhow::Error::msg)?),
    };
    let targets = args
        .targets
        .iter()
        .map(|t| t.parse::<Target>())
        .collect::<Result<Vec<_>, _>>()?;
    let mut ports: PortList = args.ports.parse()?;
    if let Some(ex) = &args.exclude_ports {
        ports = ports.without(&ex.parse()?)?;
    }
    let scope = Scope::from_targets(&targets)?.with_excludes(&args.exclude)?;
    let signatures = load_signatures(&args)?;
    let options = ScanOptions {
        ports: PortScanConfig {
            concurrency: args.concurrency,
            timeout: Duration::from_millis(args.timeout),
            retries: args.retries,
            rate: args.rate,
            ..PortScanConfig::default()
        },
        banners: args.banners,
        tls: args.tls,
        http: args.http,
        access_checks: args.access_checks,
        ..ScanOptions::default()
    };
    let pipeline = Pipeline::new(options)?;
    // The port scanner runs its own worker thread per core; the checks are I/O-bound.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = runtime.block_on(async {
        let plan = scope.plan(&targets, ports, &SystemResolver).await?;
        let cancel = CancellationToken::new();
        let on_ctrl_c = cancel.clone();
        let ctrl_c = tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                on_ctrl_c.cancel();
            }
        });
        let progress = if !args.json && !args.jsonl && std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(
                Some(plan.probe_count()),
                ProgressDrawTarget::stderr(),
            );
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {msg:12} [{bar:30}] {pos}/{len} {per_sec} eta {eta}",
                )
                .expect("the progress template is valid")
                .progress_chars("=> "),
            );
            bar.set_message("ports");
            Some(bar)
        } else {
            None
        };
        let jsonl = args.jsonl;
        let report = pipeline
            .run(&plan, &signatures, &cancel, |event| match event {
                ScanEvent::Progress { done, .. } => {
                    if let Some(bar) = &progress {
                        bar.set_position(done);
                    }
                }
                ScanEvent::ChecksStarted(n) => {
                    if let Some(bar) = &progress {
                        bar.set_message(format!("checks ({n})"));
                    }
                }
                ScanEvent::Open(r) if jsonl => {
                    let _ = writeln!(
                        std::io::stdout(),
                        "{}",
                        serde_json::json!({"type": "open", "result": r})
                    );
                }
                ScanEvent::Finding(f) if jsonl && !matches!(f.detail, Detail::OpenPort { .. }) => {
                    let _ = writeln!(
                        std::io::stdout(),
                        "{}",
                        serde_json::json!({"type": "finding", "finding": f})
                    );
                }
                ScanEvent::CheckFailed { target, error } => {
                    tracing::debug!(%target, %error, "check failed");
                }
                _ => {}
            })
            .await;
        if let Some(bar) = progress {
            bar.finish_and_clear();
        }
        ctrl_c.abort();
        report.map_err(anyhow::Error::from)
    })?;
    let worst = report.threats.iter().map(|t| t.severity).max();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if args.jsonl {
        let mut out = std::io::stdout().lock();
        for t in &report.threats {
            writeln!(
                out,
                "{}",
                serde_json::json!({"type": "threat", "threat": t})
            )?;
        }
        writeln!(
            out,
            "{}",
            serde_json::json!({"type": "summary", "stats": report.stats, "errors": report.errors, "duration_ms": report.duration_ms})
        )?;
    } else {
        print_human(&report)?;
    }
    let failed = matches!((fail_on, worst), (Some(limit), Some(w)) if w >= limit);
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn load_signatures(args: &Args) -> anyhow::Result<SignatureSet> {
    let Some(path) = &args.signatures else {
        return Ok(SignatureSet::builtin());
    };
    let file = SignatureSet::load(path)?;
    if args.no_builtin {
        Ok(file)
    } else {
        Ok(SignatureSet::builtin().merged(file)?)
    }
}

fn print_human(report: &ScanReport) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let s = &report.stats;
    for host in &report.hosts {
        let open: Vec<_> = report
            .open
            .iter()
            .filter(|r| r.addr.ip() == host.addr)
            .collect();
        writeln!(
            out,
            "{} ({}): {} open of {} ports",
            host.display_name(),
            host.addr,
            open.len(),
            report.ports_per_host
        )?;
        if open.is_empty() {
            continue;
        }
        writeln!(
            out,
            "  {:<10} {:<6} {:<12} DETAILS",
            "PORT", "STATE", "SERVICE"
        )?;
        for r in open {
            let port = r.addr.port();
            let mut service = String::from("-");
            let mut details = Vec::new();
            // The raw banner is shown only when nothing richer (SSH, TLS, HTTP, ...) says more.
            let mut banners = Vec::new();
            for f in report
                .findings
                .iter()
                .filter(|f| f.addr == host.addr && f.port == Some(port))
            {
                match &f.detail {
                    Detail::OpenPort { service: Some(s) } if service == "-" => service = s.clone(),
                    Detail::OpenPort { .. } => {}
                    Detail::Banner { service: found, .. } => {
                        if let Some(s) = found {
                            service = s.clone();
                        }
                        banners.push(f.summary());
                    }
                    _ => details.push(f.summary()),
                }
            }
            if details.is_empty() {
                details = banners;
            }
            let state = match r.state {
                PortState::Open => "open",
                PortState::Closed => "closed",
                PortState::Filtered => "filtered",
                PortState::Unknown => "unknown",
            };
            let first = details.first().cloned().unwrap_or_default();
            writeln!(
                out,
                "  {:<10} {:<6} {:<12} {}",
                format!("{port}/tcp"),
                state,
                service,
                first
            )?;
            for d in details.iter().skip(1) {
                writeln!(out, "  {:<10} {:<6} {:<12} {}", "", "", "", d)?;
            }
        }
    }
    if !report.threats.is_empty() {
        writeln!(out, "\nTHREATS ({})", report.threats.len())?;
        for t in &report.threats {
            let port = t.port.map(|p| format!(":{p}")).unwrap_or_default();
            writeln!(
                out,
                "  [{:>8}] {}{} {} ({}: {})",
                t.severity.name().to_uppercase(),
                t.addr,
                port,
                t.name,
                t.field,
                t.evidence
            )?;
            writeln!(out, "             fix: {}", t.remediation)?;
            if !t.references.is_empty() {
                writeln!(out, "             see: {}", t.references.join(", "))?;
            }
        }
    } else {
        writeln!(out, "\nNo threats found.")?;
    }
    for e in &report.errors {
        writeln!(out, "warning: {e}")?;
    }
    writeln!(
        out,
        "\n{} ports in {:.2} s: {} open, {} closed, {} filtered{}{}",
        s.ports,
        report.duration_ms as f64 / 1000.0,
        s.open,
        s.closed,
        s.filtered,
        if s.self_connects > 0 {
            format!(", {} self-connections ignored", s.self_connects)
        } else {
            String::new()
        },
        if s.cancelled { " (interrupted)" } else { "" }
    )?;
    Ok(())
}
