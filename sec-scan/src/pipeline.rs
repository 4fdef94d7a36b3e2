//! A whole scan: ports, then per-open-port checks, then signatures.
//!
//! [`Pipeline::run`] takes a [`ScanPlan`] (so every host is in scope), runs the port scanner,
//! then for each open port (bounded concurrency) the checks the [`ScanOptions`] ask for:
//!
//! - **banners**: service and version detection with the [probe set](crate::service)
//!   ([`ScanOptions::probes`], vigil's built-in file by default; at most
//!   [`DetectConfig::port_budget`] per port, ports detected [`ScanOptions::check_concurrency`]
//!   at a time), plus the SSH key-exchange offer on SSH and the SMBv1 probe on the SMB ports;
//! - **TLS**: on ports that look like TLS (the banner said so, or a usual TLS port such as
//!   443), or on every open port when banners are off;
//! - **HTTP**: on ports that look like HTTP (banner, usual ports), over HTTPS when TLS was
//!   found, or on every open port when banners are off;
//! - **access checks** (opt-in): see [`crate::access`].
//!
//! Findings become threats through the [`SignatureSet`]. Progress and results are reported
//! through a callback as they happen, so a front end can draw a progress bar or stream lines.
//! [`LocalRunner`] wraps the pipeline as a [`TaskRunner`] for the in-process
//! [`Executor`](crate::task::Executor), re-checking each task against its own scope.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::access::{AccessChecker, AccessConfig};
use crate::banner::{BannerConfig, BannerGrabber, service_by_port};
use crate::error::{Error, Result};
use crate::finding::{Detail, Finding};
use crate::http::{HttpConfig, HttpProbe};
use crate::portscan::{PortResult, PortScanConfig, PortScanner, PortState, ScanStats};
use crate::scope::{Resolver, ScanHost, ScanPlan, Scope};
use crate::service::{DetectConfig, ServiceProbes};
use crate::signature::VersionRule;
use crate::signature::{SignatureSet, Threat};
use crate::target::{PortList, Target};
use crate::task::{ScanTask, TaskKind, TaskOutput, TaskRunner};
use crate::tls::{TlsChecker, TlsConfig};
use crate::vulndb::VulnCheck;

/// Ports where TLS is usual.
const TLS_PORTS: [u16; 10] = [443, 465, 636, 853, 989, 990, 993, 995, 5986, 8443];
/// Ports where plain HTTP is usual.
const HTTP_PORTS: [u16; 8] = [80, 81, 591, 3000, 8000, 8008, 8080, 8888];

/// What a scan does beyond finding open ports.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Port-scanner settings.
    pub ports: PortScanConfig,
    /// Grab banners and identify services. Default false.
    pub banners: bool,
    /// Check TLS. Default false.
    pub tls: bool,
    /// Probe HTTP. Default false.
    pub http: bool,
    /// Run the opt-in access and default-credential checks. Default false.
    pub access_checks: bool,
    /// Banner settings.
    pub banner: BannerConfig,
    /// TLS settings.
    pub tls_config: TlsConfig,
    /// HTTP settings.
    pub http_config: HttpConfig,
    /// Access-check settings.
    pub access: AccessConfig,
    /// Open ports checked at once. Default 32.
    pub check_concurrency: usize,
    /// The probe set detection runs. Default: vigil's built-in file
    /// ([`ServiceProbes::builtin`]).
    pub probes: Arc<ServiceProbes>,
    /// Detection settings: intensity (0–9, default 7), time budget per port.
    pub detect: DetectConfig,
    /// Match detected services against an offline vulnerability database (CVE threats).
    /// When set, signatures that judge versions step aside for it
    /// ([`crate::signature::VersionRule::StepAside`]). Default none.
    pub vulns: Option<VulnCheck>,
}

impl Default for ScanOptions {
    fn default() -> Self {
        Self {
            ports: PortScanConfig::default(),
            banners: false,
            tls: false,
            http: false,
            access_checks: false,
            banner: BannerConfig::default(),
            tls_config: TlsConfig::default(),
            http_config: HttpConfig::default(),
            access: AccessConfig::default(),
            check_concurrency: 32,
            probes: ServiceProbes::builtin(),
            detect: DetectConfig::default(),
            vulns: None,
        }
    }
}

/// Something that happened during a scan.
#[derive(Debug)]
#[non_exhaustive]
pub enum ScanEvent<'a> {
    /// Port-scan progress: ports decided so far, of `total`.
    Progress {
        /// Decided.
        done: u64,
        /// All.
        total: u64,
    },
    /// An open port was found.
    Open(&'a PortResult),
    /// The per-port checks started on this many open ports.
    ChecksStarted(usize),
    /// A finding from a check.
    Finding(&'a Finding),
    /// A check failed (the scan goes on).
    CheckFailed {
        /// `address:port`.
        target: String,
        /// What failed.
        error: &'a Error,
    },
}

/// Everything a scan found.
#[derive(Debug, Clone, Serialize)]
pub struct ScanReport {
    /// The hosts scanned (checked addresses, with names).
    pub hosts: Vec<ScanHost>,
    /// Ports scanned per host.
    pub ports_per_host: usize,
    /// Open ports, sorted.
    pub open: Vec<PortResult>,
    /// All findings (open ports included), sorted by address and port.
    pub findings: Vec<Finding>,
    /// Signature matches, most severe first.
    pub threats: Vec<Threat>,
    /// Port-scan counters.
    pub stats: ScanStats,
    /// Checks that failed, as `address:port: error`.
    pub errors: Vec<String>,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
}

/// Runs scans. Build once, run many.
#[derive(Debug, Clone)]
pub struct Pipeline {
    options: ScanOptions,
    ports: PortScanner,
    banner: BannerGrabber,
    /// Built only when TLS checks are on (loading the root store costs memory).
    tls: Option<TlsChecker>,
    /// Built only when HTTP probes are on.
    http: Option<HttpProbe>,
    access: AccessChecker,
}

impl Pipeline {
    /// Validates the options and builds the scanners.
    pub fn new(options: ScanOptions) -> Result<Self> {
        if options.detect.intensity > crate::service::MAX_INTENSITY {
            return Err(Error::Config(format!(
                "version intensity must be 0 to 9, not {}",
                options.detect.intensity
            )));
        }
        if options.check_concurrency == 0 {
            return Err(Error::Config("check concurrency must be at least 1".into()));
        }
        Ok(Self {
            ports: PortScanner::new(options.ports.clone())?,
            banner: BannerGrabber::new(options.banner.clone()),
            tls: options
                .tls
                .then(|| TlsChecker::new(options.tls_config.clone()))
                .transpose()?,
            http: options
                .http
                .then(|| HttpProbe::new(options.http_config.clone()))
                .transpose()?,
            access: AccessChecker::new(options.access.clone()),
            options,
        })
    }

    /// The options.
    pub fn options(&self) -> &ScanOptions {
        &self.options
    }

    /// Scans `plan`; `on_event` sees progress and results as they come. Stops early (with
    /// what was found so far) when `cancel` fires.
    pub async fn run(
        &self,
        plan: &ScanPlan,
        signatures: &SignatureSet,
        cancel: &CancellationToken,
        mut on_event: impl FnMut(ScanEvent<'_>) + Send,
    ) -> Result<ScanReport> {
        let started = Instant::now();
        tracing::info!(
            hosts = plan.hosts().len(),
            ports = plan.ports().len(),
            banners = self.options.banners,
            tls = self.options.tls,
            http = self.options.http,
            access_checks = self.options.access_checks,
            "scan started"
        );
        let mut scan = self.ports.start(plan)?;
        let total = scan.total();
        let mut open = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                r = scan.next() => match r {
                    Some(r) => {
                        if r.state == PortState::Open {
                            on_event(ScanEvent::Open(&r));
                            open.push(r);
                        }
                    }
                    None => break,
                },
                _ = tick.tick() => on_event(ScanEvent::Progress { done: scan.completed(), total }),
                () = cancel.cancelled() => break,
            }
        }
        on_event(ScanEvent::Progress {
            done: scan.completed(),
            total,
        });
        let stats = scan.finish().await?;
        open.sort_by_key(|r| (r.addr.ip(), r.addr.port()));

        let mut findings = Vec::new();
        let mut errors = Vec::new();
        let host_of = |r: &PortResult| {
            plan.hosts()
                .iter()
                .find(|h| h.addr == r.addr.ip())
                .cloned()
                .unwrap_or(ScanHost {
                    addr: r.addr.ip(),
                    name: None,
                })
        };
        for r in &open {
            let f = Finding {
                host: host_of(r).display_name(),
                addr: r.addr.ip(),
                port: Some(r.addr.port()),
                detail: Detail::OpenPort {
                    service: service_by_port(r.addr.port()).map(str::to_owned),
                },
            };
            on_event(ScanEvent::Finding(&f));
            findings.push(f);
        }
        let o = &self.options;
        if (o.banners || o.tls || o.http || o.access_checks)
            && !open.is_empty()
            && !cancel.is_cancelled()
        {
            on_event(ScanEvent::ChecksStarted(open.len()));
            let jobs: Vec<(PortResult, ScanHost)> = open.iter().map(|r| (*r, host_of(r))).collect();
            let mut checks = futures::stream::iter(jobs)
                .map(|(r, host)| async move {
                    let out = self.check_port(&host, r.addr.port()).await;
                    (r, out)
                })
                .buffer_unordered(o.check_concurrency);
            loop {
                let next = tokio::select! {
                    n = checks.next() => n,
                    () = cancel.cancelled() => None,
                };
                let Some((r, (port_findings, port_errors))) = next else {
                    break;
                };
                for f in &port_findings {
                    on_event(ScanEvent::Finding(f));
                }
                for e in &port_errors {
                    on_event(ScanEvent::CheckFailed {
                        target: r.addr.to_string(),
                        error: e,
                    });
                    errors.push(format!("{}: {e}", r.addr));
                }
                findings.extend(port_findings);
            }
        }
        findings.sort_by_key(|f| (f.addr, f.port));
        let threats = match &o.vulns {
            None => signatures.match_findings(&findings),
            Some(check) => {
                let mut threats = signatures.match_findings_with(&findings, VersionRule::StepAside);
                let (cves, failed) = check.threats(&findings);
                threats.extend(cves);
                errors.extend(failed);
                crate::signature::sort_threats(&mut threats);
                threats
            }
        };
        Ok(ScanReport {
            hosts: plan.hosts().to_vec(),
            ports_per_host: plan.ports().len(),
            open,
            findings,
            threats,
            stats,
            errors,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        })
    }

    /// Runs the enabled checks on one open port.
    async fn check_port(&self, host: &ScanHost, port: u16) -> (Vec<Finding>, Vec<Error>) {
        let o = &self.options;
        let mut findings = Vec::new();
        let mut errors = Vec::new();
        let mut service: Option<String> = None;
        let mut detected_tls = false;
        if o.banners {
            let addr = std::net::SocketAddr::new(host.addr, port);
            match o.probes.detect(addr, host.name.as_deref(), &o.detect).await {
                Ok(d) => {
                    service = d.service.clone();
                    detected_tls = d.tls || service.as_deref() == Some("ssl");
                    if service.as_deref() == Some("ssh")
                        && let Some(f) = self.banner.ssh_offer(host, port).await
                    {
                        findings.push(f);
                    }
                    if (o.banner.smb_ports.contains(&port) || service.as_deref() == Some("smb"))
                        && let Some(f) = self.banner.smb1(host, port).await
                    {
                        findings.push(f);
                    }
                    if d.service.is_some() || !d.reply.is_empty() {
                        findings.push(Finding {
                            host: host.display_name(),
                            addr: host.addr,
                            port: Some(port),
                            detail: d.detail(),
                        });
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        let known = service.as_deref();
        let mut tls_ok = false;
        let tls_expected =
            detected_tls || matches!(known, Some("tls" | "ssl")) || TLS_PORTS.contains(&port);
        if let Some(tls) = &self.tls
            && (tls_expected || !o.banners)
        {
            match tls.check(host, port).await {
                Ok(report) => {
                    tls_ok = report.handshake_error.is_none();
                    findings.extend(report.findings(host, port));
                }
                // Trying TLS on a port that was not expected to speak it is a guess.
                Err(e) if tls_expected => errors.push(e),
                Err(_) => {}
            }
        }
        let http_expected =
            known == Some("http") || HTTP_PORTS.contains(&port) || (tls_ok && o.tls);
        if let Some(http) = &self.http
            && (http_expected || !o.banners)
        {
            match http.probe(host, port, tls_ok || detected_tls).await {
                Ok(report) => findings.push(report.finding(host, port)),
                Err(e) if http_expected => errors.push(e),
                Err(_) => {}
            }
        }
        if o.access_checks {
            let svc = if known == Some("http") || (known.is_none() && (tls_ok || detected_tls)) {
                Some("http")
            } else {
                known
            };
            match self.access.check(host, port, svc).await {
                Ok(f) => findings.extend(f),
                Err(e) => errors.push(e),
            }
        }
        (findings, errors)
    }
}

/// Runs [`ScanTask`]s with a [`Pipeline`], each checked against the runner's own scope (an
/// agent never trusts the task's target blindly).
pub struct LocalRunner {
    scope: Scope,
    signatures: Arc<SignatureSet>,
    base: ScanOptions,
    resolver: Arc<dyn Resolver>,
}

impl std::fmt::Debug for LocalRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRunner")
            .field("scope", &self.scope)
            .field("signatures", &self.signatures.len())
            .finish_non_exhaustive()
    }
}

impl LocalRunner {
    /// A runner scanning within `scope`, with `base` options (each task kind turns on its
    /// checks), matching `signatures`, resolving names with `resolver`.
    pub fn new(
        scope: Scope,
        signatures: Arc<SignatureSet>,
        base: ScanOptions,
        resolver: Arc<dyn Resolver>,
    ) -> Self {
        Self {
            scope,
            signatures,
            base,
            resolver,
        }
    }

    fn options_for(&self, kind: TaskKind) -> ScanOptions {
        let mut o = self.base.clone();
        (o.banners, o.tls, o.http, o.access_checks) = match kind {
            TaskKind::PortScan => (false, false, false, false),
            TaskKind::SslCheck => (false, true, false, false),
            TaskKind::HttpProbe => (true, false, true, false),
            TaskKind::BannerGrab => (true, false, false, false),
            TaskKind::VulnScan => (true, true, true, false),
            TaskKind::CredentialCheck => (true, false, false, true),
        };
        o
    }
}

/// Answers every name with a task's pinned addresses.
struct PinnedResolver(Vec<std::net::IpAddr>);

impl Resolver for PinnedResolver {
    fn resolve<'a>(
        &'a self,
        _host: &'a str,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = std::io::Result<Vec<std::net::IpAddr>>> + Send + 'a>,
    > {
        Box::pin(std::future::ready(Ok(self.0.clone())))
    }
}

/// The ports a task of `kind` scans when it names none: 443 and 8443 for TLS, the usual web ports
/// for HTTP, the 100 most common otherwise.
pub fn default_ports(kind: TaskKind) -> PortList {
    match kind {
        TaskKind::SslCheck => PortList::from_ports([443, 8443]).expect("non-empty"),
        TaskKind::HttpProbe => {
            PortList::from_ports([80, 443, 8000, 8080, 8443]).expect("non-empty")
        }
        _ => PortList::top(100),
    }
}

#[async_trait]
impl TaskRunner for LocalRunner {
    async fn run(&self, task: &ScanTask, cancel: CancellationToken) -> Result<TaskOutput> {
        tracing::info!(task = %task.id, scan = %task.scan_id, kind = %task.kind, target = %task.target, "task started");
        let targets = task
            .target
            .split([',', ' '])
            .filter(|s| !s.is_empty())
            .map(str::parse::<Target>)
            .collect::<Result<Vec<_>>>()?;
        let ports = match &task.ports {
            Some(spec) => spec.parse()?,
            None => default_ports(task.kind),
        };
        // Names resolve to the addresses the server pinned, when it pinned them.
        let pinned = task.pinned_addresses().map(PinnedResolver);
        let resolver: &dyn Resolver = match &pinned {
            Some(pinned) => pinned,
            None => self.resolver.as_ref(),
        };
        let plan = self.scope.plan(&targets, ports, resolver).await?;
        let pipeline = Pipeline::new(self.options_for(task.kind))?;
        let report = pipeline
            .run(&plan, &self.signatures, &cancel, |_| {})
            .await?;
        Ok(TaskOutput {
            partial: !report.errors.is_empty() || report.stats.cancelled,
            findings: report.findings,
            threats: report.threats,
        })
    }
}
