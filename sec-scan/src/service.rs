//! Service and version detection: a compiled probe set and the engine that runs it.
//!
//! A [`ServiceProbes`] is built from a [`ProbeFile`] (vigil's own, [`ServiceProbes::builtin`],
//! or any file in the nmap-service-probes format the user points at, nmap's installed one
//! included). Every pattern is compiled once with [`Match::compile`]; lines whose pattern the
//! `regex` crate cannot run are **skipped and counted** in the [`LoadReport`], by
//! [`Unsupported::kind`](crate::probes::Unsupported::kind).
//!
//! # Why no backtracking engine
//!
//! `regex` cannot run look-around, backreferences, atomic groups or possessive quantifiers. On
//! Debian 12's nmap 7.93 file (100 TCP and 48 UDP probes, 11 917 match and softmatch lines)
//! vigil compiles 11 224 lines and skips 693: 677 for look-around, 16 for a backreference
//! (`vigil -v scan --banners …` prints this report). For the daemons we measured (OpenSSH,
//! vsftpd, nginx, PostgreSQL, Redis on Debian 12) nmap's file gives the same answers through
//! vigil as through nmap, so the skipped 5.8 % did not matter there; they are mostly rare
//! products. Adding `fancy-regex` (bytes only since 0.19) would buy them for a second,
//! backtracking engine (and its worst cases) run on untrusted replies; we chose not to.
//!
//! # The engine, as nmap drives it
//!
//! For one TCP port ([`ServiceProbes::detect`]):
//!
//! 1. The `NULL` probe first: connect, send nothing, wait its `totalwaitms`. A connection the
//!    server closes without a byte within `tcpwrappedms` is `tcpwrapped`.
//! 2. Then every probe whose `ports` list the port (inside TLS: `sslports`), whatever its
//!    rarity, then the others whose rarity is at most the intensity (0–9, default 7), in file
//!    order. Each probe gets its own connection.
//! 3. Each read appends to the reply (at most [`DetectConfig::max_reply`] bytes) and re-tests
//!    the probe's match lines in file order, then its `fallback` probes' lines, then the NULL
//!    probe's. The **first** matching line wins. A `match` ends detection; a `softmatch`
//!    remembers the service, and from then on only probes having a line for that service run
//!    (whatever their rarity), looking for a hard match.
//! 4. When nothing matched, or the service is `ssl`, the port is tried once more through TLS
//!    (any certificate is accepted: this is identification, not verification) and the
//!    probes run again inside it (NULL first, then `sslports`).
//! 5. Nothing matched at all: the port's usual service, with [`Method::PortTable`].
//!
//! Where vigil differs from nmap, on purpose:
//!
//! - Every probe opens its own connection (nmap sends its second probe on the NULL probe's
//!   connection when that one is still open); it costs a connect, and no reply is mixed with
//!   a greeting left unread.
//! - Every CPE of a matching line is kept (nmap keeps one per part `a`/`h`/`o`).
//! - `fallback` names that are no TCP probe are ignored and counted
//!   ([`LoadReport::unknown_fallbacks`]: 2 in nmap 7.93's file).
//!
//! `Exclude` ports are not probed (port table only; there is no `--allports`). Each probe
//! waits at most its `totalwaitms`, and a whole port at most [`DetectConfig::port_budget`]
//! (default 20 s), so a scan's detection time is bounded whatever the file says. UDP probes are
//! parsed and counted but never sent: vigil scans TCP only.
//!
//! # Cost
//!
//! Measured on the five Debian 12 daemons above (loopback, release build, 2 cores), all five
//! ports at once: `vigil scan --banners` with the built-in file 2.6 s (its NULL probe waits
//! 2.5 s for silent services), with nmap's file 13.4 s (2.6 s of it compiling 11 224
//! patterns; nmap's NULL probe waits 6 s), `nmap -sV` 12.8 s.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use crate::banner::service_by_port;
use crate::distro;
use crate::error::{Error, Result};
use crate::finding::{Detail, printable};
use crate::probes::{Filled, Match, Probe, ProbeFile, ProbeFileError, Protocol};

/// vigil's own probe file (MIT OR Apache-2.0, written from the protocols' documentation).
pub const BUILTIN_PROBES: &str = include_str!("../data/vigil-service-probes");

/// Highest intensity: every probe runs.
pub const MAX_INTENSITY: u8 = 9;
/// nmap's default `--version-intensity`.
pub const DEFAULT_INTENSITY: u8 = 7;

/// How a service was identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// A `match` line matched a reply.
    Probed,
    /// Only a `softmatch` line matched: the service is known, the product may not be.
    Softmatch,
    /// Nothing matched; the service is the port's usual one.
    PortTable,
}

impl Method {
    /// `probed`, `softmatch` or `port-table`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Probed => "probed",
            Method::Softmatch => "softmatch",
            Method::PortTable => "port-table",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What detection found on one port.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Detection {
    /// The service (`ssh`, `http`, `tcpwrapped`, …), if anything identified it.
    pub service: Option<String>,
    /// Product, version and the other template fields of the line that matched.
    pub fields: Filled,
    /// How the service was identified (`None`: it was not).
    pub method: Option<Method>,
    /// The probe whose reply matched.
    pub probe: Option<String>,
    /// The line of the probe file that matched.
    pub line: Option<usize>,
    /// The service was reached through TLS.
    pub tls: bool,
    /// What the service said: the reply that matched, else the first non-empty reply.
    pub reply: Vec<u8>,
}

impl Detection {
    /// The [`Detail::Banner`] finding for this detection: the template fields, the CPEs, the
    /// method, and the distribution evidence read from the reply ([`crate::distro`]).
    pub fn detail(&self) -> Detail {
        let text = String::from_utf8_lossy(&self.reply);
        let evidence = distro::from_text(&text);
        let f = &self.fields;
        Detail::Banner {
            service: self.service.clone(),
            product: f.product.clone(),
            version: f.version.clone(),
            text: printable(&self.reply[..self.reply.len().min(1024)]),
            info: f.info.clone(),
            hostname: f.hostname.clone(),
            os: f.os.clone(),
            device: f.device.clone(),
            // CPE 2.3 formatted strings, the form NVD data uses; a template that produced no
            // valid name is kept as written.
            cpe: f
                .cpes
                .iter()
                .map(|c| {
                    c.parse::<crate::cpe::Cpe>()
                        .map_or_else(|_| c.clone(), |p| p.to_string())
                })
                .collect(),
            distro: evidence.as_ref().map(|e| e.distro.clone()),
            ecosystem: evidence.as_ref().and_then(|e| e.ecosystem.clone()),
            package: evidence.as_ref().map(|e| e.source_package.clone()),
            package_version: evidence.and_then(|e| e.version),
            method: self.method,
            probe: self.probe.clone(),
            tunnel: self.tls.then(|| "ssl".to_owned()),
        }
    }
}

/// Detection settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectConfig {
    /// 0–9 (nmap's `--version-intensity`): probes rarer than this run only when their `ports`
    /// list the port or a softmatch asks for them. Default 7.
    pub intensity: u8,
    /// Connect (and TLS handshake) timeout. Default 2 s.
    pub connect_timeout: Duration,
    /// Most time spent on one port, all probes together. Default 20 s.
    pub port_budget: Duration,
    /// Most bytes kept of one reply. Default 4 096.
    pub max_reply: usize,
    /// Try TLS when the plain probes found nothing or found `ssl`. Default true.
    pub tls: bool,
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self {
            intensity: DEFAULT_INTENSITY,
            connect_timeout: Duration::from_secs(2),
            port_budget: Duration::from_secs(20),
            max_reply: 4096,
            tls: true,
        }
    }
}

/// What loading a probe file kept and what it skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LoadReport {
    /// TCP probes (the ones vigil sends).
    pub tcp_probes: usize,
    /// UDP probes (parsed, never sent).
    pub udp_probes: usize,
    /// `match` and `softmatch` lines in the file.
    pub lines: usize,
    /// Lines whose pattern compiled.
    pub loaded: usize,
    /// Lines skipped because their pattern cannot run here.
    pub skipped: usize,
    /// Skipped lines per [`Unsupported::kind`](crate::probes::Unsupported::kind).
    pub skipped_by_reason: BTreeMap<&'static str, usize>,
    /// `fallback` names that name no probe (ignored).
    pub unknown_fallbacks: usize,
}

/// One compiled match line.
#[derive(Debug)]
struct Line {
    source: Match,
    regex: regex::bytes::Regex,
}

#[derive(Debug)]
struct CompiledProbe {
    probe: Probe,
    lines: Vec<Line>,
    fallbacks: Vec<usize>,
    /// Services its own lines and its fallbacks' lines can name.
    services: BTreeSet<String>,
}

/// A compiled probe set, ready to detect services.
pub struct ServiceProbes {
    probes: Vec<CompiledProbe>,
    null: Option<usize>,
    exclude: BTreeSet<u16>,
    report: LoadReport,
}

impl std::fmt::Debug for ServiceProbes {
    /// The load report, not the thousands of patterns.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceProbes")
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

/// A probe run's end.
enum Outcome {
    /// A line matched (probe index, line index in that probe's lines, filled templates).
    Matched(usize, usize, Filled),
    /// Nothing matched.
    Nothing,
    /// The server closed without a byte within `tcpwrappedms`.
    Wrapped,
    /// No connection.
    Unreachable,
}

/// The state of one port's detection.
#[derive(Default)]
struct State {
    soft: Option<(usize, usize, Filled, Vec<u8>)>,
    first_reply: Vec<u8>,
    last_error: Option<Error>,
}

impl ServiceProbes {
    /// vigil's built-in probe set ([`BUILTIN_PROBES`]), compiled once.
    pub fn builtin() -> Arc<ServiceProbes> {
        static BUILTIN: OnceLock<Arc<ServiceProbes>> = OnceLock::new();
        Arc::clone(BUILTIN.get_or_init(|| {
            // The file is part of the crate and a test parses it; an error cannot ship.
            Arc::new(ServiceProbes::new(
                ProbeFile::parse(BUILTIN_PROBES).unwrap_or_default(),
            ))
        }))
    }

    /// Parses and compiles a probe file's text.
    pub fn parse(text: &str) -> std::result::Result<ServiceProbes, ProbeFileError> {
        Ok(ServiceProbes::new(ProbeFile::parse(text)?))
    }

    /// Compiles a parsed probe file (lines that cannot run are skipped and counted).
    pub fn new(file: ProbeFile) -> ServiceProbes {
        let mut report = LoadReport::default();
        let names: BTreeMap<String, usize> = file
            .probes
            .iter()
            .enumerate()
            .filter(|(_, p)| p.protocol == Protocol::Tcp)
            .map(|(i, p)| (p.name.clone(), i))
            .rev()
            .collect();
        let mut probes = Vec::with_capacity(file.probes.len());
        for mut probe in file.probes {
            match probe.protocol {
                Protocol::Tcp => report.tcp_probes += 1,
                Protocol::Udp => report.udp_probes += 1,
            }
            report.lines += probe.matches.len();
            let mut lines = Vec::with_capacity(probe.matches.len());
            for m in std::mem::take(&mut probe.matches) {
                match m.compile() {
                    Ok(regex) => lines.push(Line { source: m, regex }),
                    Err(e) => {
                        report.skipped += 1;
                        *report.skipped_by_reason.entry(e.kind()).or_default() += 1;
                    }
                }
            }
            report.loaded += lines.len();
            let mut fallbacks = Vec::new();
            if probe.protocol == Protocol::Tcp {
                for name in &probe.fallback {
                    match names.get(name) {
                        Some(&i) => fallbacks.push(i),
                        None => report.unknown_fallbacks += 1,
                    }
                }
            }
            probes.push(CompiledProbe {
                probe,
                lines,
                fallbacks,
                services: BTreeSet::new(),
            });
        }
        for i in 0..probes.len() {
            let mut services: BTreeSet<String> = probes[i]
                .lines
                .iter()
                .map(|l| l.source.service.clone())
                .collect();
            for &f in &probes[i].fallbacks {
                services.extend(probes[f].lines.iter().map(|l| l.source.service.clone()));
            }
            probes[i].services = services;
        }
        let null = probes.iter().position(|p| {
            p.probe.protocol == Protocol::Tcp
                && p.probe.name == "NULL"
                && p.probe.payload.is_empty()
        });
        ServiceProbes {
            exclude: file.exclude.as_deref().map(tcp_exclude).unwrap_or_default(),
            probes,
            null,
            report,
        }
    }

    /// What was loaded and skipped.
    pub fn report(&self) -> &LoadReport {
        &self.report
    }

    /// TCP ports never probed (`Exclude`).
    pub fn excluded(&self, port: u16) -> bool {
        self.exclude.contains(&port)
    }

    /// Matches `reply` as the answer to the probe named `probe` (its lines, its fallbacks',
    /// the NULL probe's), without any network: what the engine does after each read.
    /// `None` when the probe does not exist or nothing matched.
    pub fn identify(&self, probe: &str, reply: &[u8]) -> Option<Detection> {
        let index = self
            .probes
            .iter()
            .position(|p| p.probe.protocol == Protocol::Tcp && p.probe.name == probe)?;
        let (p, l, fields) = self.match_reply(index, reply, false)?;
        Some(self.detection(p, l, fields, reply.to_vec(), false))
    }

    /// Identifies the TCP service at `addr`. `server_name` is sent as TLS SNI when TLS is
    /// tried. Fails only when the port cannot be connected to at all.
    pub async fn detect(
        &self,
        addr: SocketAddr,
        server_name: Option<&str>,
        config: &DetectConfig,
    ) -> Result<Detection> {
        let port = addr.port();
        let port_table = || Detection {
            service: service_by_port(port).map(str::to_owned),
            method: service_by_port(port).map(|_| Method::PortTable),
            ..Detection::default()
        };
        if self.excluded(port) {
            return Ok(port_table());
        }
        let deadline = Instant::now() + config.port_budget;
        let mut state = State::default();
        // A hard `ssl` match is kept while the probes run again inside TLS.
        let mut plain_ssl_match = None;
        if let Some(found) = self.phase(addr, None, config, deadline, &mut state).await {
            if !(found.service.as_deref() == Some("ssl") && config.tls) {
                return Ok(found);
            }
            plain_ssl_match = Some(found);
        }
        let plain_ssl = plain_ssl_match.is_some()
            || state
                .soft
                .as_ref()
                .is_some_and(|(p, l, ..)| self.probes[*p].lines[*l].source.service == "ssl");
        let reachable = state.last_error.is_none() || !state.first_reply.is_empty();
        if config.tls && reachable && (state.soft.is_none() || plain_ssl) {
            let plain = std::mem::take(&mut state);
            let name = tls_name(addr, server_name);
            if let Some(found) = self
                .phase(addr, Some(name), config, deadline, &mut state)
                .await
            {
                return Ok(found);
            }
            if let Some(found) = self.softmatched(&mut state, true) {
                return Ok(found);
            }
            state = plain;
        }
        if let Some(found) = plain_ssl_match {
            return Ok(found);
        }
        if let Some(found) = self.softmatched(&mut state, false) {
            return Ok(found);
        }
        if let Some(e) = state.last_error.take()
            && state.first_reply.is_empty()
        {
            return Err(e);
        }
        let mut found = port_table();
        found.reply = state.first_reply;
        Ok(found)
    }

    fn softmatched(&self, state: &mut State, tls: bool) -> Option<Detection> {
        let (p, l, fields, reply) = state.soft.take()?;
        Some(self.detection(p, l, fields, reply, tls))
    }

    fn detection(
        &self,
        p: usize,
        l: usize,
        fields: Filled,
        reply: Vec<u8>,
        tls: bool,
    ) -> Detection {
        let line = &self.probes[p].lines[l].source;
        Detection {
            service: Some(line.service.clone()),
            fields,
            method: Some(if line.soft {
                Method::Softmatch
            } else {
                Method::Probed
            }),
            probe: Some(self.probes[p].probe.name.clone()),
            line: Some(line.line),
            tls,
            reply,
        }
    }

    /// The probes to try, in order, and from which index on they run only after a softmatch.
    fn order(&self, port: u16, tls: bool, intensity: u8) -> (Vec<usize>, usize) {
        let mut order: Vec<usize> = self.null.into_iter().collect();
        let tcp =
            |i: &usize| self.probes[*i].probe.protocol == Protocol::Tcp && Some(*i) != self.null;
        let listed = |i: usize| {
            let p = &self.probes[i].probe;
            let list = if tls { &p.ssl_ports } else { &p.ports };
            list.as_ref().is_some_and(|l| l.as_slice().contains(&port))
        };
        let all: Vec<usize> = (0..self.probes.len()).filter(tcp).collect();
        order.extend(all.iter().copied().filter(|&i| listed(i)));
        order.extend(
            all.iter()
                .copied()
                .filter(|&i| !listed(i) && self.probes[i].probe.rarity <= intensity),
        );
        let rare_from = order.len();
        order.extend(
            all.iter()
                .copied()
                .filter(|&i| !listed(i) && self.probes[i].probe.rarity > intensity),
        );
        (order, rare_from)
    }

    /// Runs the probes once, plain or inside TLS. Returns a hard match.
    async fn phase(
        &self,
        addr: SocketAddr,
        tls: Option<ServerName<'static>>,
        config: &DetectConfig,
        deadline: Instant,
        state: &mut State,
    ) -> Option<Detection> {
        let (order, rare_from) = self.order(addr.port(), tls.is_some(), config.intensity);
        for (n, &i) in order.iter().enumerate() {
            if Instant::now() >= deadline {
                break;
            }
            let soft_service = state
                .soft
                .as_ref()
                .map(|(p, l, ..)| self.probes[*p].lines[*l].source.service.clone());
            match &soft_service {
                Some(s) if !self.probes[i].services.contains(s) => continue,
                None if n >= rare_from => break,
                _ => {}
            }
            let mut reply = Vec::new();
            let outcome = self
                .run_probe(i, addr, tls.clone(), config, deadline, state, &mut reply)
                .await;
            if state.first_reply.is_empty() && !reply.is_empty() {
                state.first_reply = reply.clone();
            }
            match outcome {
                Outcome::Matched(p, l, fields) => {
                    if self.probes[p].lines[l].source.soft {
                        if state.soft.is_none() {
                            state.soft = Some((p, l, fields, reply));
                        }
                    } else {
                        return Some(self.detection(p, l, fields, reply, tls.is_some()));
                    }
                }
                Outcome::Wrapped => {
                    return Some(Detection {
                        service: Some("tcpwrapped".into()),
                        method: Some(Method::Probed),
                        probe: Some(self.probes[i].probe.name.clone()),
                        tls: tls.is_some(),
                        ..Detection::default()
                    });
                }
                Outcome::Unreachable => break,
                Outcome::Nothing => {}
            }
        }
        None
    }

    /// Sends probe `i` on a fresh connection and reads until a line matches, the server
    /// closes, the reply is full, or the probe's wait (or the port's budget) is over.
    #[allow(clippy::too_many_arguments)]
    async fn run_probe(
        &self,
        i: usize,
        addr: SocketAddr,
        tls: Option<ServerName<'static>>,
        config: &DetectConfig,
        deadline: Instant,
        state: &mut State,
        reply: &mut Vec<u8>,
    ) -> Outcome {
        let probe = &self.probes[i].probe;
        let started = Instant::now();
        let connect_by = deadline.min(started + config.connect_timeout);
        let tcp = match tokio::time::timeout_at(connect_by, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => {
                state.last_error = Some(Error::Io {
                    target: addr.to_string(),
                    source,
                });
                return Outcome::Unreachable;
            }
            Err(_) => {
                state.last_error = Some(Error::Timeout {
                    what: "connect",
                    target: addr.to_string(),
                    after: config.connect_timeout,
                });
                return Outcome::Unreachable;
            }
        };
        let soft_known = state.soft.is_some();
        let wait_until =
            deadline.min(started + Duration::from_millis(u64::from(probe.total_wait_ms)));
        let wrapped_by = started + Duration::from_millis(u64::from(probe.tcpwrapped_ms));
        match tls {
            None => {
                self.exchange(i, tcp, config, wait_until, wrapped_by, soft_known, reply)
                    .await
            }
            Some(name) => {
                let Some(connector) = tls_connector() else {
                    return Outcome::Unreachable;
                };
                let handshake = connector.connect(name, tcp);
                match tokio::time::timeout_at(connect_by, handshake).await {
                    Ok(Ok(stream)) => {
                        self.exchange(i, stream, config, wait_until, wrapped_by, soft_known, reply)
                            .await
                    }
                    // Not TLS (or no agreement): nothing to probe inside.
                    _ => Outcome::Unreachable,
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        i: usize,
        mut stream: S,
        config: &DetectConfig,
        wait_until: Instant,
        wrapped_by: Instant,
        soft_known: bool,
        reply: &mut Vec<u8>,
    ) -> Outcome {
        let probe = &self.probes[i].probe;
        if !probe.payload.is_empty()
            && tokio::time::timeout_at(wait_until, stream.write_all(&probe.payload))
                .await
                .map_or(true, |r| r.is_err())
        {
            return Outcome::Nothing;
        }
        let mut chunk = vec![0u8; 2048];
        while reply.len() < config.max_reply {
            match tokio::time::timeout_at(wait_until, stream.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => {
                    let room = config.max_reply - reply.len();
                    reply.extend_from_slice(&chunk[..n.min(room)]);
                    if let Some((p, l, fields)) = self.match_reply(i, reply, soft_known) {
                        return Outcome::Matched(p, l, fields);
                    }
                }
                // Closed (or reset) with nothing said, early: a TCP wrapper's refusal.
                Ok(_)
                    if reply.is_empty() && Some(i) == self.null && Instant::now() < wrapped_by =>
                {
                    return Outcome::Wrapped;
                }
                _ => break,
            }
        }
        Outcome::Nothing
    }

    /// The first line matching `reply` among probe `i`'s, its fallbacks' and the NULL probe's.
    /// Once a softmatch is known, soft lines are passed over.
    fn match_reply(
        &self,
        i: usize,
        reply: &[u8],
        soft_known: bool,
    ) -> Option<(usize, usize, Filled)> {
        let null = self.null.filter(|&n| n != i);
        let sources = std::iter::once(i)
            .chain(self.probes[i].fallbacks.iter().copied())
            .chain(null);
        for p in sources {
            for (l, line) in self.probes[p].lines.iter().enumerate() {
                if soft_known && line.source.soft {
                    continue;
                }
                if let Some(caps) = line.regex.captures(reply) {
                    return Some((p, l, line.source.templates.fill(&caps)));
                }
            }
        }
        None
    }
}

/// The TCP ports of an `Exclude` spec (`T:9100-9107,U:53` style; no prefix means both).
fn tcp_exclude(spec: &str) -> BTreeSet<u16> {
    let mut out = BTreeSet::new();
    let mut tcp = true;
    for item in spec.split(',').map(str::trim) {
        let item = if let Some(rest) = item.strip_prefix("T:") {
            tcp = true;
            rest
        } else if let Some(rest) = item.strip_prefix("U:") {
            tcp = false;
            rest
        } else {
            item
        };
        if !tcp || item.is_empty() {
            continue;
        }
        let (lo, hi) = match item.split_once('-') {
            Some((a, b)) => (a.trim().parse::<u16>(), b.trim().parse::<u16>()),
            None => (item.parse::<u16>(), item.parse::<u16>()),
        };
        if let (Ok(lo), Ok(hi)) = (lo, hi) {
            out.extend(lo..=hi);
        }
    }
    out
}

fn tls_name(addr: SocketAddr, server_name: Option<&str>) -> ServerName<'static> {
    server_name
        .and_then(|n| ServerName::try_from(n.to_owned()).ok())
        .unwrap_or_else(|| ServerName::IpAddress(addr.ip().into()))
}

/// A TLS client that accepts any certificate: detection needs the channel, not trust.
/// `None` only if the crypto provider refused the default protocol versions.
fn tls_connector() -> Option<TlsConnector> {
    static CONNECTOR: OnceLock<Option<TlsConnector>> = OnceLock::new();
    CONNECTOR
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let config = ClientConfig::builder_with_provider(Arc::clone(&provider))
                .with_safe_default_protocol_versions()
                .ok()?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
                .with_no_client_auth();
            Some(TlsConnector::from(Arc::new(config)))
        })
        .clone()
}

#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(probe: &str, reply: &[u8]) -> Detection {
        ServiceProbes::builtin()
            .identify(probe, reply)
            .unwrap_or_else(|| panic!("{probe}: nothing matched {reply:?}"))
    }

    fn check(d: &Detection, service: &str, product: Option<&str>, version: Option<&str>) {
        assert_eq!(d.service.as_deref(), Some(service), "{d:?}");
        assert_eq!(d.fields.product.as_deref(), product, "{d:?}");
        assert_eq!(d.fields.version.as_deref(), version, "{d:?}");
    }

    #[test]
    fn the_builtin_file_parses_and_every_pattern_compiles() {
        ProbeFile::parse(BUILTIN_PROBES).unwrap();
        let set = ServiceProbes::builtin();
        let r = set.report();
        assert_eq!(r.skipped, 0, "{r:?}");
        assert_eq!(r.unknown_fallbacks, 0);
        assert!(r.tcp_probes >= 12 && r.loaded >= 80, "{r:?}");
        assert!(set.excluded(9100) && !set.excluded(80));
    }

    // Replies below are written here from the protocol documents and from what the daemons
    // named in the probe file's header answer; none is taken from another tool's data.

    #[test]
    fn ssh_ftp_smtp_pop3_imap_from_their_greetings() {
        let d = id("NULL", b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10\r\n");
        check(&d, "ssh", Some("OpenSSH"), Some("9.2p1"));
        assert_eq!(
            d.fields.info.as_deref(),
            Some("Debian 2+deb12u10; protocol 2.0")
        );
        assert_eq!(d.fields.os.as_deref(), Some("Linux"));
        assert_eq!(
            d.fields.cpes,
            ["cpe:/a:openbsd:openssh:9.2p1", "cpe:/o:linux:linux_kernel"]
        );
        assert_eq!(d.method, Some(Method::Probed));
        let d = id("NULL", b"SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.10\r\n");
        assert_eq!(
            d.fields.info.as_deref(),
            Some("Ubuntu 3ubuntu0.10; protocol 2.0")
        );
        check(
            &id("NULL", b"SSH-2.0-OpenSSH_7.4\r\n"),
            "ssh",
            Some("OpenSSH"),
            Some("7.4"),
        );
        check(
            &id("NULL", b"SSH-2.0-dropbear_2022.83\r\n"),
            "ssh",
            Some("Dropbear sshd"),
            Some("2022.83"),
        );

        let d = id("NULL", b"220 (vsFTPd 3.0.3)\r\n");
        check(&d, "ftp", Some("vsftpd"), Some("3.0.3"));
        assert_eq!(d.fields.cpes, ["cpe:/a:vsftpd_project:vsftpd:3.0.3"]);
        check(
            &id(
                "NULL",
                b"220 ProFTPD 1.3.8 Server (Debian) [::ffff:10.0.0.1]\r\n",
            ),
            "ftp",
            Some("ProFTPD"),
            Some("1.3.8"),
        );
        let d = id("NULL", b"220 files.example FTP server ready\r\n");
        assert_eq!(
            (d.service.as_deref(), d.method),
            (Some("ftp"), Some(Method::Softmatch))
        );

        let d = id("NULL", b"220 mx.example.org ESMTP Postfix (Debian/GNU)\r\n");
        check(&d, "smtp", Some("Postfix smtpd"), None);
        assert_eq!(d.fields.hostname.as_deref(), Some("mx.example.org"));
        check(
            &id(
                "NULL",
                b"220 mail.example ESMTP Exim 4.96 Mon, 01 Dec 2025 10:00:00 +0000\r\n",
            ),
            "smtp",
            Some("Exim smtpd"),
            Some("4.96"),
        );

        check(
            &id("NULL", b"+OK Dovecot (Debian) ready.\r\n"),
            "pop3",
            Some("Dovecot pop3d"),
            None,
        );
        let d = id(
            "NULL",
            b"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN] Dovecot (Debian) ready.\r\n",
        );
        check(&d, "imap", Some("Dovecot imapd"), None);
        assert_eq!(d.fields.info.as_deref(), Some("Debian"));
    }

    #[test]
    fn mysql_mariadb_vnc_telnet_from_their_greetings() {
        let mut maria = vec![0x5b, 0, 0, 0, 0x0a];
        maria.extend_from_slice(b"5.5.5-10.11.6-MariaDB-0+deb12u1\0\x08\0\0\0abcdefgh\0");
        let d = id("NULL", &maria);
        check(&d, "mysql", Some("MariaDB"), Some("10.11.6"));
        assert_eq!(d.fields.cpes, ["cpe:/a:mariadb:mariadb:10.11.6"]);
        let mut mysql = vec![0x4a, 0, 0, 0, 0x0a];
        mysql.extend_from_slice(b"8.0.36-0ubuntu0.22.04.1\0\x0b\0\0\0");
        let d = id("NULL", &mysql);
        check(&d, "mysql", Some("MySQL"), Some("8.0.36"));
        assert_eq!(d.fields.cpes, ["cpe:/a:oracle:mysql:8.0.36"]);

        let d = id("NULL", b"RFB 003.008\n");
        check(&d, "vnc", Some("VNC"), None);
        assert_eq!(d.fields.info.as_deref(), Some("RFB protocol 3.8"));
        check(
            &id("NULL", &[0xff, 0xfd, 0x18, 0xff, 0xfd, 0x20]),
            "telnet",
            None,
            None,
        );
    }

    #[test]
    fn http_nginx_apache_and_elasticsearch_from_get() {
        let d = id(
            "GetRequest",
            b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Thu, 03 Dec 2026 13:00:00 GMT\r\nContent-Type: text/html\r\n\r\n<html>",
        );
        check(&d, "http", Some("nginx"), Some("1.22.1"));
        assert_eq!(d.fields.cpes, ["cpe:/a:f5:nginx:1.22.1"]);
        let d = id(
            "GetRequest",
            b"HTTP/1.1 403 Forbidden\r\nDate: x\r\nServer: Apache/2.4.57 (Debian)\r\n\r\n",
        );
        check(&d, "http", Some("Apache httpd"), Some("2.4.57"));
        assert_eq!(d.fields.info.as_deref(), Some("Debian"));
        assert_eq!(d.fields.cpes, ["cpe:/a:apache:http_server:2.4.57"]);
        let es = b"HTTP/1.0 200 OK\r\nX-elastic-product: Elasticsearch\r\ncontent-type: application/json\r\n\r\n{\n  \"name\" : \"node-1\",\n  \"cluster_name\" : \"elasticsearch\",\n  \"version\" : {\n    \"number\" : \"8.11.1\",\n    \"build_flavor\" : \"default\"\n  },\n  \"tagline\" : \"You Know, for Search\"\n}\n";
        let d = id("GetRequest", es);
        check(
            &d,
            "elasticsearch",
            Some("Elasticsearch REST API"),
            Some("8.11.1"),
        );
        assert_eq!(d.fields.cpes, ["cpe:/a:elastic:elasticsearch:8.11.1"]);
        let d = id(
            "GetRequest",
            b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"security\" charset=\"UTF-8\"\r\nX-elastic-product: Elasticsearch\r\n\r\n",
        );
        check(&d, "elasticsearch", Some("Elasticsearch REST API"), None);
        // An unknown server still names itself.
        check(
            &id(
                "GetRequest",
                b"HTTP/1.1 200 OK\r\nServer: Jetty/9.4.51\r\n\r\n",
            ),
            "http",
            Some("Jetty"),
            Some("9.4.51"),
        );
    }

    #[test]
    fn redis_postgresql_mongodb_memcached_from_their_probes() {
        let d = id(
            "GetRequest",
            b"-ERR wrong number of arguments for 'get' command\r\n",
        );
        assert_eq!(
            (d.service.as_deref(), d.method),
            (Some("redis"), Some(Method::Softmatch))
        );
        let info = b"$586\r\n# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:00000000\r\nredis_mode:standalone\r\nos:Linux 6.1.0-18-amd64 x86_64\r\narch_bits:64\r\n";
        let d = id("RedisInfo", info);
        check(&d, "redis", Some("Redis key-value store"), Some("7.0.15"));
        assert_eq!(d.fields.os.as_deref(), Some("Linux 6.1.0-18-amd64 x86_64"));
        assert_eq!(d.fields.cpes, ["cpe:/a:redis:redis:7.0.15"]);
        check(
            &id("RedisInfo", b"-NOAUTH Authentication required.\r\n"),
            "redis",
            Some("Redis key-value store"),
            None,
        );

        let pg = b"E\0\0\0\x69SFATAL\0VFATAL\0C0A000\0Munsupported frontend protocol 9.0: server supports 3.0 to 3.0\0Fpostmaster.c\0L2222\0RProcessStartupPacket\0\0";
        let d = id("PostgreSQLStartup", pg);
        check(&d, "postgresql", Some("PostgreSQL DB"), Some("14 or later"));
        assert_eq!(d.fields.cpes, ["cpe:/a:postgresql:postgresql"]);
        let pg13 = b"E\0\0\0\x69SFATAL\0VFATAL\0C0A000\0Munsupported frontend protocol 9.0: server supports 2.0 to 3.0\0Fpostmaster.c\0L2100\0RProcessStartupPacket\0\0";
        check(
            &id("PostgreSQLStartup", pg13),
            "postgresql",
            Some("PostgreSQL DB"),
            Some("9.6 - 13"),
        );
        // Asked for a protocol below 3, a server answers in the old format.
        let old = b"EFATAL:  unsupported frontend protocol 1.0: server supports 3.0 to 3.0\n\0";
        check(
            &id("PostgreSQLStartup", old),
            "postgresql",
            Some("PostgreSQL DB"),
            None,
        );

        // An OP_MSG reply (opcode 2013) answering our request id, with a version string.
        let mut mongo = Vec::new();
        mongo.extend_from_slice(&[0x60, 0, 0, 0, 9, 0, 0, 0]);
        mongo.extend_from_slice(b"1giv\xdd\x07\0\0\0\0\0\0\0");
        mongo.extend_from_slice(
            b"\x50\0\0\0\x02version\0\x06\0\0\x007.0.4\0\x01ok\0\0\0\0\0\0\0\xf0?\0",
        );
        let d = id("MongoBuildInfo", &mongo);
        check(&d, "mongodb", Some("MongoDB"), Some("7.0.4"));
        assert_eq!(d.fields.cpes, ["cpe:/a:mongodb:mongodb:7.0.4"]);

        check(
            &id("MemcachedVersion", b"VERSION 1.6.18\r\n"),
            "memcached",
            Some("Memcached"),
            Some("1.6.18"),
        );
    }

    #[test]
    fn rdp_smb_dns_ldap_mqtt_amqp_from_their_probes() {
        let rdp = b"\x03\0\0\x13\x0e\xd0\0\0\x12\x34\0\x02\x1f\x08\0\x02\0\0\0";
        let d = id("RDPNegotiate", rdp);
        assert_eq!(d.service.as_deref(), Some("rdp"));
        assert_eq!(d.fields.info.as_deref(), Some("negotiated protocol 2"));

        let mut smb = vec![0, 0, 0, 0x80];
        smb.extend_from_slice(b"\xfeSMB\x40\0");
        smb.extend_from_slice(&[0; 58]);
        smb.extend_from_slice(b"\x41\0\x01\0\x10\x02");
        smb.extend_from_slice(&[0; 20]);
        let d = id("SMB2Negotiate", &smb);
        assert_eq!(d.service.as_deref(), Some("smb"));
        assert_eq!(d.fields.info.as_deref(), Some("SMB dialect 2.1"));

        let mut dns = b"\0\x3e\0\x06\x85\x80\0\x01\0\x01\0\0\0\0".to_vec();
        dns.extend_from_slice(b"\x07version\x04bind\0\0\x10\0\x03");
        dns.extend_from_slice(b"\xc0\x0c\0\x10\0\x03\0\0\0\0\0\x19\x18");
        dns.extend_from_slice(b"9.18.28-1~deb12u2-Debian");
        let d = id("DNSVersionBind", &dns);
        check(&d, "domain", Some("ISC BIND"), Some("9.18.28"));
        assert_eq!(d.fields.info.as_deref(), Some("-1~deb12u2-Debian"));
        assert_eq!(d.fields.cpes, ["cpe:/a:isc:bind:9.18.28"]);

        // searchResEntry for the root DSE, then searchResDone.
        let mut ldap = b"0\x45\x02\x01\x01d\x40\x04\0\x30\x3c".to_vec();
        ldap.extend_from_slice(b"0\x1a\x04\x0avendorName1\x0c\x04\x0a389 Project");
        ldap.extend_from_slice(b"0\x1e\x04\x0dvendorVersion1\x0d\x04\x0b389-Directory/2.3.1");
        let d = id("LDAPRootDSE", &ldap);
        assert_eq!(d.service.as_deref(), Some("ldap"));
        assert_eq!(d.fields.product.as_deref(), Some("389 Project"));
        check(
            &id(
                "LDAPRootDSE",
                b"0\x0c\x02\x01\x01e\x07\x0a\x01\x00\x04\0\x04\0",
            ),
            "ldap",
            None,
            None,
        );

        let d = id("MQTTConnect", b"\x20\x02\x00\x00");
        assert_eq!(d.service.as_deref(), Some("mqtt"));
        assert_eq!(d.fields.info.as_deref(), Some("connection accepted"));
        let d = id("MQTTConnect", b"\x20\x02\x00\x05");
        assert_eq!(
            d.fields.info.as_deref(),
            Some("connection refused, return code 5")
        );

        let mut amqp = b"\x01\0\0\0\0\x01\x90\0\x0a\0\x0a\0\x09\0\0\0\x80".to_vec();
        amqp.extend_from_slice(b"\x0cclusterS\0\0\0\x04rab1");
        amqp.extend_from_slice(b"\x07productS\0\0\0\x08RabbitMQ");
        amqp.extend_from_slice(b"\x07versionS\0\0\0\x063.12.1");
        let d = id("AMQPHeader", &amqp);
        check(&d, "amqp", Some("RabbitMQ"), Some("3.12.1"));
        assert_eq!(d.fields.cpes, ["cpe:/a:vmware:rabbitmq:3.12.1"]);
        check(&id("AMQPHeader", b"AMQP\0\0\x09\x01"), "amqp", None, None);
    }

    #[test]
    fn fallbacks_and_the_null_probes_lines_are_tried_after_a_probes_own() {
        let set = ServiceProbes::parse(
            "Probe TCP NULL q||\nmatch ssh m|^SSH-|\n\
             Probe TCP A q|a|\nmatch a m|^A|\n\
             Probe TCP B q|b|\nfallback A\nmatch b m|^B|\n",
        )
        .unwrap();
        assert_eq!(
            set.identify("B", b"A!").unwrap().service.as_deref(),
            Some("a")
        );
        assert_eq!(
            set.identify("B", b"SSH-2.0").unwrap().service.as_deref(),
            Some("ssh")
        );
        assert_eq!(set.identify("B", b"B").unwrap().line, Some(7));
        assert!(set.identify("B", b"zzz").is_none());
        assert!(set.identify("C", b"B").is_none());
    }

    #[test]
    fn probe_order_is_null_then_listed_ports_then_rarity() {
        let set = ServiceProbes::parse(
            "Probe TCP NULL q||\n\
             Probe TCP Rare q|r|\nrarity 9\nports 7000\n\
             Probe TCP Common q|c|\nrarity 1\n\
             Probe TCP Mid q|m|\nrarity 8\nsslports 7000\n\
             Probe UDP U q|u|\nrarity 1\n",
        )
        .unwrap();
        assert_eq!(set.order(7000, false, 7), (vec![0, 1, 2, 3], 3));
        assert_eq!(set.order(7000, true, 7), (vec![0, 3, 2, 1], 3));
        assert_eq!(set.order(80, false, 9), (vec![0, 1, 2, 3], 4));
        assert_eq!(set.order(80, false, 0), (vec![0, 1, 2, 3], 1));
        assert_eq!(set.report().udp_probes, 1);
    }

    #[test]
    fn exclude_specs_keep_only_tcp_ports() {
        let e = tcp_exclude("T:9100-9102,U:53,T:7");
        assert_eq!(e.into_iter().collect::<Vec<_>>(), [7, 9100, 9101, 9102]);
        assert!(tcp_exclude("53,junk,9-x").contains(&53));
    }
}
