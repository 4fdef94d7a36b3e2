//! Check hosts you are authorised to test, and say what is wrong with them.
//!
//! `sec-scan` is vigil's scanning library: a [`Scope`] decides what may be touched, a fast
//! TCP connect [port scanner](portscan) finds open ports, [banner grabbing](banner), a
//! [TLS check](tls), an [HTTP probe](http) and opt-in [access checks](access) turn them into
//! typed [`Finding`]s, and a [`SignatureSet`] turns findings into [`Threat`]s with a severity
//! and a remediation. A priority [task queue](task) runs scans in process, and is the engine
//! the [network agent](agent) drives.
//!
//! # Scope first
//!
//! Nothing is sent to a target that has not passed the scope: the scanners only accept a
//! [`ScanPlan`], and only [`Scope::plan`] makes one. Excludes win over allows; cloud metadata,
//! link-local, loopback, multicast, unspecified and broadcast addresses must be listed
//! explicitly (by address: a host-name rule never opens them); host names are resolved once and
//! the checked address is pinned.
//!
//! - **IPv4 inside IPv6.** An IPv6 address that carries an IPv4 address (IPv4-mapped,
//!   IPv4-compatible, NAT64 `64:ff9b::/96` and `64:ff9b:1::/48`, 6to4, Teredo server and client)
//!   is checked as that IPv4 address too, so `64:ff9b::a9fe:a9fe` is refused as the metadata
//!   address 169.254.169.254; see [`embedded_ipv4`] and the [`scope`] module.
//! - **Size limit.** One network or range may expand to at most
//!   [`Limits::max_hosts_per_target`] addresses (default 65 536); a larger one is refused with
//!   [`Error::TargetTooLarge`], which names the target and its size. Sizes never overflow: all of
//!   IPv6 is 2^128 addresses ([`AddressCount::AllOfIpv6`]).
//! - **Audit.** [`Scope::audit`] lists what a scan would contact and every refusal with its
//!   reason, sending nothing (`vigil scan --plan`).
//!
//! # Example
//!
//! ```no_run
//! use sec_scan::{Pipeline, PortList, ScanOptions, Scope, SignatureSet, SystemResolver, Target};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn run() -> sec_scan::Result<()> {
//! // The operator's targets are the scope.
//! let targets: Vec<Target> = vec!["127.0.0.1".parse()?];
//! let scope = Scope::from_targets(&targets)?;
//! let plan = scope.plan(&targets, "1-1024".parse::<PortList>()?, &SystemResolver).await?;
//!
//! let pipeline = Pipeline::new(ScanOptions { banners: true, tls: true, http: true, ..Default::default() })?;
//! let report = pipeline
//!     .run(&plan, &SignatureSet::builtin(), &CancellationToken::new(), |_event| {})
//!     .await?;
//! for threat in &report.threats {
//!     println!("{} {}:{:?} {} -> {}", threat.severity, threat.addr, threat.port, threat.name, threat.remediation);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Modules
//!
//! | module | what |
//! |---|---|
//! | [`scope`] | allowlist, excludes, refused address classes (IPv4 inside IPv6 too), limits, name pinning, audit |
//! | [`target`] | target and port-list parsing |
//! | [`portscan`] | sharded, windowed TCP connect scanner with self-connection detection |
//! | [`banner`] | banner grab, SSH key-exchange offer, SMBv1 probe, service identification |
//! | [`probes`] | the nmap-service-probes format: a parser, pattern compilation, version templates |
//! | [`service`] | the compiled probe set (vigil's built-in file or nmap's) and the detection engine |
//! | [`distro`] | distribution evidence: Debian/Ubuntu package and version from a banner |
//! | [`tls`] | recording-verifier TLS check and certificate analysis |
//! | [`legacy`] | raw ClientHello probes for TLS 1.0/1.1 (which rustls cannot speak) |
//! | [`http`] | HTTP status, server, title, missing security headers |
//! | [`access`] | opt-in unauthenticated-access and default-credential checks, hard-capped |
//! | [`finding`] | typed findings and their matchable fields |
//! | [`signature`] | the signature file format, the built-in set, one-pass matching |
//! | [`task`] | `ScanTask`, `ScanResult`, the priority queue and executor |
//! | [`pipeline`] | a whole scan, and the executor's `LocalRunner` |
//! | [`cpe`] | CPE 2.3 names: both bindings, NISTIR 7696 matching, normalising detected names |
//! | [`version`] | version orders: dpkg's (`DebVersion`) and the generic one for NVD bounds |
//! | [`vulndb`] | the offline CVE database (NVD, OSV, KEV, EPSS in SQLite) and the service matcher |
//! | [`agent`] | the network agent: takes tasks from a vigil server over WebSocket, reports results until stored |
//!
//! Progress is reported through callbacks and channels; this crate never prints, never reads
//! the environment and never installs a tracing subscriber.

pub mod access;
pub mod agent;
pub mod banner;
pub mod cpe;
pub mod distro;
pub mod error;
pub mod finding;
pub mod http;
pub mod legacy;
pub mod pipeline;
pub mod portscan;
pub mod probes;
pub mod scope;
pub mod service;
pub mod signature;
pub mod target;
pub mod task;
pub mod tls;
pub mod version;
pub mod vulndb;

pub use access::{AccessChecker, AccessConfig};
pub use banner::{BannerConfig, BannerGrabber};
pub use distro::PackageEvidence;
pub use error::{Error, Result};
pub use finding::{Detail, Finding, Kind};
pub use http::{HttpConfig, HttpProbe, HttpReport};
pub use pipeline::{LocalRunner, Pipeline, ScanEvent, ScanOptions, ScanReport};
pub use portscan::{
    PortResult, PortScan, PortScanConfig, PortScanner, PortState, Reason, Report, ScanStats,
};
pub use scope::{
    AddressClass, Ipv4Embedding, Limits, PlanAudit, Refusal, Resolver, Rule, ScanHost, ScanPlan,
    Scope, ScopeViolation, SystemResolver, embedded_ipv4,
};
pub use service::{DetectConfig, Detection, LoadReport, Method, ServiceProbes};
pub use signature::{Severity, Signature, SignatureSet, Threat, VersionRule};
pub use target::{AddressCount, Net, PortList, Target, canonical};
pub use task::{
    Executor, ExecutorConfig, ExecutorHandle, Priority, ScanResult, ScanTask, TaskKind, TaskOutput,
    TaskRunner, TaskStatus,
};
pub use tls::{TlsChecker, TlsConfig, TlsReport};
pub use vulndb::{VulnCheck, VulnDb};
