//! `vigil scan`: scan hosts you are authorised to test.
//!
//! The targets typed on the command line are the scope: nothing else is contacted, names are
//! resolved once and pinned, and loopback, link-local and metadata addresses are scanned only
//! when typed as such. Exit codes: 0 when no threat reaches `--fail-on`, 1 when one does, 2 on
//! error.
//!
//! `--plan` is nmap's list scan (`-sL`): it resolves the names in scope exactly as a scan would,
//! prints the hosts (with their pinned addresses) and ports a scan would contact and every
//! refusal with its reason, and sends nothing to any target. It exits 0 when the scan would run
//! and 2 when it would be refused, so a scope can be audited safely, in a script too (`--json`).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sec_scan::vulndb::MatchOptions;
use sec_scan::{
    Detail, DetectConfig, LoadReport, Pipeline, PortList, PortScanConfig, PortState, ScanEvent,
    ScanOptions, ScanReport, Scope, ServiceProbes, Severity, SignatureSet, SystemResolver, Target,
};
use sec_scan::{VersionRule, VulnCheck, VulnDb};
use tokio_util::sync::CancellationToken;

/// Scan TCP ports, banners, TLS and HTTP of authorised targets and match threat signatures.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 clean, 1 threats at or above --fail-on, 2 error.\n\
With --plan: 0 when the scan would run, 2 when a target would be refused.\n\
Example: vigil scan 127.0.0.1 --ports 1-65535 --banners --tls --http\n\
Audit a scope first: vigil scan --plan 10.0.0.0/24 db.example.com -p top100"
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
    /// Detect services and versions (nmap-style probes; at most 20 s per port, ports in
    /// parallel), plus the SSH key-exchange offer and the SMBv1 check.
    #[arg(long)]
    banners: bool,
    /// Probe file in the nmap-service-probes format to use instead of vigil's built-in one
    /// (e.g. nmap's installed file, read at run time). Its load report goes to stderr.
    #[arg(long, value_name = "FILE")]
    service_probes: Option<PathBuf>,
    /// Version-detection intensity, 0 (only probes meant for the port) to 9 (every probe).
    #[arg(long, default_value_t = 7, value_name = "0-9",
          value_parser = clap::value_parser!(u8).range(0..=9))]
    intensity: u8,
    /// Match detected services against the offline vulnerability database (`vigil cvedb
    /// import`) in `--data-dir`: CVE threats with CVSS, KEV and EPSS. Implies --banners.
    #[arg(long)]
    vulns: bool,
    /// Report CVE matches on distribution builds that the distribution's own data cannot
    /// decide (backports) at their CVSS severity instead of `info` (Nessus's paranoid mode).
    #[arg(long)]
    paranoid: bool,
    /// Data directory holding the vulnerability database (`cvedb.sqlite`).
    #[arg(
        long,
        default_value = "./vigil-data",
        env = "VIGIL_DATA_DIR",
        value_name = "DIR"
    )]
    data_dir: PathBuf,
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
    /// Send nothing: list the hosts (names resolved and pinned) and ports a scan would contact
    /// and every refused target or address with its reason, like nmap's list scan (-sL).
    /// With --json, as one JSON document.
    #[arg(long, conflicts_with = "jsonl")]
    plan: bool,
    /// Lowest threat severity that makes the exit status 1 (info, low, medium, high,
    /// critical, never).
    #[arg(long, default_value = "high", value_name = "SEVERITY")]
    fail_on: String,
}

/// The probe set: the named file (an error names its line), or the built-in one.
fn load_probes(path: Option<&std::path::Path>) -> anyhow::Result<std::sync::Arc<ServiceProbes>> {
    let Some(path) = path else {
        return Ok(ServiceProbes::builtin());
    };
    let text = std::fs::read(path)
        .with_context(|| format!("reading the probe file {}", path.display()))?;
    // nmap's file is mostly ASCII; stray bytes in comments must not refuse it.
    let text = String::from_utf8_lossy(&text);
    let probes =
        ServiceProbes::parse(&text).with_context(|| format!("probe file {}", path.display()))?;
    Ok(std::sync::Arc::new(probes))
}

/// One paragraph saying what a probe file gave.
fn load_summary(path: Option<&std::path::Path>, r: &LoadReport) -> String {
    let source = path.map_or_else(
        || "built-in probe file".to_owned(),
        |p| p.display().to_string(),
    );
    let mut s = format!(
        "service probes: {source}: {} TCP probes ({} UDP probes not sent), {} of {} match lines loaded",
        r.tcp_probes, r.udp_probes, r.loaded, r.lines
    );
    if r.skipped > 0 {
        let reasons: Vec<String> = r
            .skipped_by_reason
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        s.push_str(&format!(
            ", {} skipped (the regex engine cannot run them: {})",
            r.skipped,
            reasons.join(", ")
        ));
    }
    s
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
    let signatures = load_signatures(&args)?.with_version_rule(if args.paranoid {
        VersionRule::Paranoid
    } else {
        VersionRule::Default
    });
    if args.plan {
        return print_plan(&scope, &targets, ports, args.json);
    }
    let probes = load_probes(args.service_probes.as_deref())?;
    // `vigil -v scan …` turns on info logs; the load report is shown then, and whenever a
    // probe file was named.
    if args.service_probes.is_some() || tracing::enabled!(tracing::Level::INFO) {
        eprintln!(
            "{}",
            load_summary(args.service_probes.as_deref(), probes.report())
        );
    }
    let vulns = if args.vulns {
        let file = args.data_dir.join(VulnDb::FILE_NAME);
        if !file.exists() {
            anyhow::bail!(
                "--vulns: no vulnerability database at {} (import feeds with `vigil cvedb import FILE... --data-dir {}`)",
                file.display(),
                args.data_dir.display()
            );
        }
        let db = VulnDb::open_file(&file)
            .with_context(|| format!("opening the vulnerability database {}", file.display()))?;
        Some(VulnCheck::new(
            db,
            MatchOptions {
                paranoid: args.paranoid,
            },
        ))
    } else {
        None
    };
    let options = ScanOptions {
        vulns,
        probes,
        detect: DetectConfig {
            intensity: args.intensity,
            ..DetectConfig::default()
        },
        ports: PortScanConfig {
            concurrency: args.concurrency,
            timeout: Duration::from_millis(args.timeout),
            retries: args.retries,
            rate: args.rate,
            ..PortScanConfig::default()
        },
        banners: args.banners || args.vulns,
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

/// `--plan`: what a scan would contact and what it refuses; nothing is sent to any target.
fn print_plan(
    scope: &Scope,
    targets: &[Target],
    ports: PortList,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // The same resolver and checks as a scan: what is printed is what would be contacted.
    let audit = runtime.block_on(scope.audit(targets, ports, &SystemResolver))?;
    let port_spec = compact_ports(audit.ports.as_slice());
    let mut out = std::io::stdout().lock();
    if json {
        let refused: Vec<serde_json::Value> = audit
            .refused
            .iter()
            .map(|r| {
                let violation = match &r.error {
                    sec_scan::Error::OutOfScope { violation, .. } => {
                        serde_json::to_value(violation)?
                    }
                    _ => serde_json::Value::Null,
                };
                Ok(serde_json::json!({
                    "target": r.target,
                    "addr": r.addr,
                    "kind": refusal_kind(&r.error),
                    "reason": r.error.to_string(),
                    "violation": violation,
                }))
            })
            .collect::<serde_json::Result<_>>()?;
        let doc = serde_json::json!({
            "sent": false,
            "would_scan": audit.would_scan(),
            "hosts": audit.hosts,
            "ports": port_spec,
            "port_count": audit.ports.len(),
            "probes": audit.probe_count(),
            "refused": refused,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
    } else {
        writeln!(
            out,
            "Plan only: nothing was sent to any target.\n\nHOSTS ({})",
            audit.hosts.len()
        )?;
        for host in &audit.hosts {
            match &host.name {
                Some(name) => writeln!(out, "  {:<39} {name}", host.addr)?,
                None => writeln!(out, "  {}", host.addr)?,
            }
        }
        writeln!(out, "\nPORTS ({}): {port_spec}", audit.ports.len())?;
        if !audit.refused.is_empty() {
            writeln!(out, "\nREFUSED ({})", audit.refused.len())?;
            for r in &audit.refused {
                let what = match (&r.addr, &r.target) {
                    (Some(addr), Some(target)) if addr.to_string() != *target => {
                        format!("{addr} (of {target})")
                    }
                    (Some(addr), _) => addr.to_string(),
                    (None, Some(target)) => target.clone(),
                    (None, None) => "the plan".to_owned(),
                };
                writeln!(out, "  {what}: {}", r.error)?;
            }
        }
        if audit.would_scan() {
            writeln!(
                out,
                "\nA scan would make {} connection attempts ({} hosts x {} ports, retries aside).",
                audit.probe_count(),
                audit.hosts.len(),
                audit.ports.len()
            )?;
        } else {
            writeln!(
                out,
                "\nA scan of these targets would be refused as a whole: remove or fix the refused ones."
            )?;
        }
    }
    Ok(if audit.would_scan() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// A short machine name for a refusal's error.
fn refusal_kind(error: &sec_scan::Error) -> &'static str {
    match error {
        sec_scan::Error::OutOfScope { .. } => "out_of_scope",
        sec_scan::Error::TargetTooLarge { .. } => "too_large",
        sec_scan::Error::Resolve { .. } => "resolve",
        sec_scan::Error::LimitExceeded { .. } => "limit",
        sec_scan::Error::InvalidTarget { .. } => "invalid_target",
        _ => "other",
    }
}

/// `22,80,8000-8100`: sorted ports with runs folded into ranges.
fn compact_ports(ports: &[u16]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ports.len() {
        let start = ports[i];
        let mut end = start;
        while i + 1 < ports.len() && ports[i + 1] == end.wrapping_add(1) && end < u16::MAX {
            end = ports[i + 1];
            i += 1;
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
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
                    Detail::Banner {
                        service: found,
                        product,
                        version,
                        info,
                        tunnel,
                        ..
                    } => {
                        if let Some(s) = found {
                            service = match tunnel {
                                Some(t) => format!("{t}/{s}"),
                                None => s.clone(),
                            };
                        }
                        let named: Vec<&str> = [product, version, info]
                            .into_iter()
                            .flatten()
                            .map(String::as_str)
                            .collect();
                        if named.is_empty() {
                            banners.push(f.summary());
                        } else {
                            // The product line comes first, whatever else is known.
                            details.insert(0, named.join(" "));
                        }
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
            if let Some(cve) = &t.cve {
                let mut facts = Vec::new();
                if let Some(c) = &cve.cvss {
                    facts.push(format!("CVSS {} {:.1}", c.version, c.score));
                }
                if let Some(k) = &cve.kev {
                    facts.push(format!(
                        "KEV (added {}, due {})",
                        k.date_added.as_deref().unwrap_or("?"),
                        k.due_date.as_deref().unwrap_or("?")
                    ));
                }
                if let Some(e) = &cve.epss {
                    facts.push(format!(
                        "EPSS {:.1} % (percentile {:.0})",
                        e.score * 100.0,
                        e.percentile * 100.0
                    ));
                }
                facts.push(format!("{:?}", cve.confidence).to_lowercase());
                writeln!(out, "             {}", facts.join(" · "))?;
            } else if t.confidence == Some(sec_scan::vulndb::Confidence::Unverified) {
                writeln!(
                    out,
                    "             unverified: a distribution build, which may carry the fix (--paranoid reports it at its severity)"
                )?;
            }
            writeln!(out, "             fix: {}", t.remediation)?;
            if !t.references.is_empty() {
                let shown: Vec<&str> = t.references.iter().take(3).map(String::as_str).collect();
                let more = t.references.len() - shown.len();
                writeln!(
                    out,
                    "             see: {}{}",
                    shown.join(", "),
                    if more > 0 {
                        format!(" (+{more} more with --json)")
                    } else {
                        String::new()
                    }
                )?;
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

#[cfg(test)]
mod tests {
    use super::compact_ports;

    #[test]
    fn ports_fold_into_ranges() {
        assert_eq!(compact_ports(&[22]), "22");
        assert_eq!(
            compact_ports(&[22, 80, 81, 82, 443, 8000, 8001]),
            "22,80-82,443,8000-8001"
        );
        let all: Vec<u16> = (1..=u16::MAX).collect();
        assert_eq!(compact_ports(&all), "1-65535");
        assert_eq!(compact_ports(&[65_534, 65_535]), "65534-65535");
    }
}
