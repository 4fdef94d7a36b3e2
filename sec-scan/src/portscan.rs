//! TCP connect port scanner.
//!
//! # How it works
//!
//! - **Sharded per core.** The probes (host × port, port-major, in a random order from a
//!   coprime-step walk, so no permutation is stored) are dealt round-robin to one worker thread
//!   per core, each running its own single-threaded tokio runtime. Measured on loopback, one
//!   shared multi-thread runtime was 1.5× slower than this, from cross-thread wake-ups.
//! - **A sliding window** of in-flight connects per worker (`FuturesUnordered`), not lock-step
//!   batches: a new connect starts as soon as one finishes.
//! - **Per-connect timeout and retries**: a connect that times out (or meets an ICMP
//!   unreachable) is retried `retries` times before the port is called filtered.
//! - **Rate limit**: an optional cap in connects per second, split evenly over the workers.
//! - **File descriptors**: the soft `RLIMIT_NOFILE` is raised to the hard limit (unless turned
//!   off) and the window is capped below it; on `EMFILE`, `ENFILE` or `EADDRNOTAVAIL` the
//!   window halves and the probe is retried, it never fails the scan. The window grows back by
//!   one after each window's worth of clean probes (AIMD).
//! - **Self-connections**: when the target port is closed and lies in the ephemeral range, the
//!   kernel may pick that very port as the source port and "connect" the socket to itself. A
//!   connection whose local address equals its peer address is such a case; it is retried, and
//!   never reported open (RustScan reports these as open ports; nmap does not).
//! - **Open is confirmed** by `peer_addr()` before it is reported. Sockets use `SO_LINGER` 0 so
//!   closing an open connection sends RST and leaves no `TIME_WAIT` behind.
//! - **Results stream** through a bounded channel as they are found.

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde::{Deserialize, Serialize};
use tokio::net::TcpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::scope::ScanPlan;

/// The state of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortState {
    /// A connection was established (and confirmed with `getpeername`).
    Open,
    /// The host answered with a reset.
    Closed,
    /// No answer within the timeout, or an ICMP unreachable / permission error.
    Filtered,
    /// This machine could not probe the port (out of file descriptors or local ports even at a
    /// window of one). Says nothing about the target.
    Unknown,
}

/// Why a port got its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// The three-way handshake completed.
    SynAck,
    /// Connection refused (RST).
    ConnRefused,
    /// No answer within the per-connect timeout.
    NoResponse,
    /// Host unreachable.
    HostUnreachable,
    /// Network unreachable.
    NetUnreachable,
    /// Refused locally or by a firewall (`EACCES`/`EPERM`).
    AdminProhibited,
    /// Every attempt connected the socket to itself: nothing listens there.
    SelfConnect,
    /// Out of local resources at a window of one.
    LocalResources,
    /// Another error; its kind is in the log.
    Other,
}

/// One probed port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortResult {
    /// Address and port.
    pub addr: SocketAddr,
    /// Its state.
    pub state: PortState,
    /// Why.
    pub reason: Reason,
    /// Connect time of the deciding attempt, in microseconds.
    pub rtt_us: u64,
}

/// Which results are sent on the stream (counts of all states are always in [`ScanStats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Report {
    /// Open ports only (the default).
    #[default]
    Open,
    /// Open and filtered ports.
    OpenFiltered,
    /// Every port.
    All,
}

/// Port-scanner settings. Every field has a documented default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortScanConfig {
    /// Most connects in flight, over all workers. Default 1 000. Capped below the file
    /// descriptor limit.
    pub concurrency: usize,
    /// Per-connect timeout. Default 1 s.
    pub timeout: Duration,
    /// Extra attempts after a timeout or unreachable before a port is called filtered.
    /// Default 1.
    pub retries: u8,
    /// Most connects per second over all workers; `None` (the default) means no cap.
    pub rate: Option<u32>,
    /// Worker threads; 0 (the default) means one per available core.
    pub workers: usize,
    /// Raise the soft `RLIMIT_NOFILE` to the hard limit before scanning. Default true.
    pub raise_fd_limit: bool,
    /// Which results go on the stream. Default [`Report::Open`].
    pub report: Report,
    /// Visit probes in a random order (a coprime-step walk). Default true.
    pub randomize: bool,
}

impl Default for PortScanConfig {
    fn default() -> Self {
        Self {
            concurrency: 1_000,
            timeout: Duration::from_secs(1),
            retries: 1,
            rate: None,
            workers: 0,
            raise_fd_limit: true,
            report: Report::Open,
            randomize: true,
        }
    }
}

/// Counters of a finished scan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanStats {
    /// Ports decided (hosts × ports when the scan was not cancelled).
    pub ports: u64,
    /// Connects attempted, retries included.
    pub attempts: u64,
    /// Open ports.
    pub open: u64,
    /// Closed ports.
    pub closed: u64,
    /// Filtered ports.
    pub filtered: u64,
    /// Ports that could not be probed.
    pub unknown: u64,
    /// Connections that turned out to be the socket connected to itself.
    pub self_connects: u64,
    /// Retries after a timeout or unreachable.
    pub retries: u64,
    /// Times a window shrank after EMFILE/ENFILE/EADDRNOTAVAIL.
    pub window_shrinks: u64,
    /// Worker threads used.
    pub workers: usize,
    /// In-flight connects allowed, over all workers, after the fd-limit cap.
    pub window: usize,
    /// Whether the scan was cancelled before the end.
    pub cancelled: bool,
}

impl ScanStats {
    fn merge(&mut self, o: &ScanStats) {
        self.ports += o.ports;
        self.attempts += o.attempts;
        self.open += o.open;
        self.closed += o.closed;
        self.filtered += o.filtered;
        self.unknown += o.unknown;
        self.self_connects += o.self_connects;
        self.retries += o.retries;
        self.window_shrinks += o.window_shrinks;
        self.cancelled |= o.cancelled;
    }
}

/// Starts port scans. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct PortScanner {
    config: PortScanConfig,
}

/// Self-connections are retried this many times before the port is called closed.
const SELF_CONNECT_ATTEMPTS: u8 = 8;
/// A probe that keeps hitting EMFILE at a window of one gives up after this many tries.
const RESOURCE_ATTEMPTS: u8 = 10;
/// File descriptors kept free for the rest of the process.
const FD_RESERVE: u64 = 64;

impl PortScanner {
    /// A scanner with `config`; fails on a zero concurrency or timeout.
    pub fn new(config: PortScanConfig) -> Result<Self> {
        if config.concurrency == 0 {
            return Err(Error::Config("concurrency must be at least 1".into()));
        }
        if config.timeout.is_zero() {
            return Err(Error::Config("timeout must be above zero".into()));
        }
        if config.rate == Some(0) {
            return Err(Error::Config("rate must be at least 1 connect/s".into()));
        }
        Ok(Self { config })
    }

    /// The settings.
    pub fn config(&self) -> &PortScanConfig {
        &self.config
    }

    /// Starts scanning `plan` on worker threads and returns at once; read results from the
    /// returned [`PortScan`]. Needs no tokio runtime.
    pub fn start(&self, plan: &ScanPlan) -> Result<PortScan> {
        let cfg = &self.config;
        let total = plan.probe_count();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut workers = if cfg.workers == 0 { cores } else { cfg.workers };
        workers = workers
            .clamp(1, 64)
            .min(usize::try_from(total).unwrap_or(usize::MAX).max(1));
        let fd_budget = fd_budget(cfg.raise_fd_limit);
        let window = cfg
            .concurrency
            .min(usize::try_from(fd_budget).unwrap_or(usize::MAX))
            .max(workers);
        let per_worker = (window / workers).max(1);
        let walk = Walk::new(total, cfg.randomize);
        let (tx, rx) = mpsc::channel(4096);
        let cancel = CancellationToken::new();
        let done = Arc::new(AtomicU64::new(0));
        // Every worker's runtime is built before any worker connects: a runtime needs descriptors
        // of its own, and a worker already scanning could take the last of them (EMFILE) from
        // one still starting.
        let runtimes = (0..workers)
            .map(|_| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| Error::Worker(format!("runtime: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut handles = Vec::with_capacity(workers);
        for (index, rt) in runtimes.into_iter().enumerate() {
            let shard = Shard {
                index: index as u64,
                count: workers as u64,
                total,
                walk,
                window: per_worker,
                timeout: cfg.timeout,
                retries: cfg.retries,
                interval: cfg
                    .rate
                    .map(|r| Duration::from_secs_f64(workers as f64 / f64::from(r))),
                report: cfg.report,
                plan: plan.clone(),
            };
            let tx = tx.clone();
            let cancel = cancel.clone();
            let done = Arc::clone(&done);
            let handle = std::thread::Builder::new()
                .name(format!("vigil-portscan-{index}"))
                .spawn(move || -> Result<ScanStats> {
                    Ok(rt.block_on(shard.run(tx, cancel, done)))
                })
                .map_err(|e| Error::Worker(format!("spawn: {e}")))?;
            handles.push(handle);
        }
        tracing::debug!(total, workers, window, "port scan started");
        Ok(PortScan {
            rx,
            handles,
            cancel,
            done,
            total,
            workers,
            window: per_worker * workers,
        })
    }

    /// Scans `plan` to the end and returns the streamed results with the counters.
    pub async fn scan(&self, plan: &ScanPlan) -> Result<(Vec<PortResult>, ScanStats)> {
        let mut scan = self.start(plan)?;
        let mut results = Vec::new();
        while let Some(r) = scan.next().await {
            results.push(r);
        }
        let stats = scan.finish().await?;
        Ok((results, stats))
    }
}

/// A running scan: a stream of results, progress, cancellation, and the final counters.
#[derive(Debug)]
pub struct PortScan {
    rx: mpsc::Receiver<PortResult>,
    handles: Vec<JoinHandle<Result<ScanStats>>>,
    cancel: CancellationToken,
    done: Arc<AtomicU64>,
    total: u64,
    workers: usize,
    window: usize,
}

impl PortScan {
    /// The next result, or `None` when every worker has finished.
    pub async fn next(&mut self) -> Option<PortResult> {
        self.rx.recv().await
    }

    /// The next result, blocking the thread (do not call from async code).
    pub fn blocking_next(&mut self) -> Option<PortResult> {
        self.rx.blocking_recv()
    }

    /// Ports to decide in total.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Ports decided so far.
    pub fn completed(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// A token that stops the scan when cancelled (in-flight connects are dropped).
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Waits for the workers and returns the summed counters. Call after `next` returned
    /// `None`, or to abandon the remaining results (the scan is cancelled first).
    pub async fn finish(self) -> Result<ScanStats> {
        tokio::task::spawn_blocking(move || self.finish_blocking())
            .await
            .map_err(|e| Error::Worker(e.to_string()))?
    }

    /// [`finish`](Self::finish) for synchronous callers.
    pub fn finish_blocking(mut self) -> Result<ScanStats> {
        // After the stream ended this is a no-op; before, it stops the workers.
        self.cancel.cancel();
        self.rx.close();
        let mut stats = ScanStats {
            workers: self.workers,
            window: self.window,
            ..ScanStats::default()
        };
        for h in self.handles.drain(..) {
            let s = h
                .join()
                .map_err(|_| Error::Worker("a scan worker panicked".into()))??;
            stats.merge(&s);
        }
        Ok(stats)
    }
}

impl Drop for PortScan {
    /// Dropping a scan stops its workers (they exit at their next step).
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Raises the soft fd limit if asked, and returns how many descriptors a scan may use.
fn fd_budget(raise: bool) -> u64 {
    let soft = if raise {
        rlimit::increase_nofile_limit(u64::MAX).unwrap_or(256)
    } else {
        rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(256, |(soft, _)| soft)
    };
    soft.saturating_sub(FD_RESERVE).max(1)
}

/// A stateless permutation of `0..total`: `i ↦ (a·i + c) mod total` with `gcd(a, total) = 1`.
#[derive(Debug, Clone, Copy)]
struct Walk {
    total: u64,
    a: u64,
    c: u64,
}

impl Walk {
    fn new(total: u64, randomize: bool) -> Self {
        if !randomize || total < 3 {
            return Self { total, a: 1, c: 0 };
        }
        let seed = random_u64();
        let mut a = (seed % total).max(2);
        while gcd(a, total) != 1 {
            a = a % (total - 1) + 1;
        }
        Self {
            total,
            a,
            c: random_u64() % total,
        }
    }

    fn at(&self, i: u64) -> u64 {
        ((u128::from(self.a) * u128::from(i) + u128::from(self.c)) % u128::from(self.total)) as u64
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// A random number from the standard library's per-process random hash keys.
pub(crate) fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x5eed);
    h.finish()
}

#[derive(Debug, Clone, Copy)]
struct Probe {
    addr: SocketAddr,
    attempts: u8,
    self_connects: u8,
    resource_errors: u8,
}

enum Outcome {
    Open,
    Closed,
    SelfConnect,
    Unreachable(Reason),
    Resources,
    Other,
}

struct Shard {
    index: u64,
    count: u64,
    total: u64,
    walk: Walk,
    window: usize,
    timeout: Duration,
    retries: u8,
    interval: Option<Duration>,
    report: Report,
    plan: ScanPlan,
}

impl Shard {
    fn probe_at(&self, i: u64) -> Probe {
        let j = self.walk.at(i);
        let hosts = self.plan.hosts().len() as u64;
        let host = &self.plan.hosts()[(j % hosts) as usize];
        let port = self.plan.ports().as_slice()[(j / hosts) as usize];
        Probe {
            addr: SocketAddr::new(host.addr, port),
            attempts: 0,
            self_connects: 0,
            resource_errors: 0,
        }
    }

    async fn run(
        self,
        tx: mpsc::Sender<PortResult>,
        cancel: CancellationToken,
        done: Arc<AtomicU64>,
    ) -> ScanStats {
        let mut stats = ScanStats::default();
        let mut next = self.index;
        let mut window = self.window;
        let mut clean = 0usize;
        let mut retry: VecDeque<Probe> = VecDeque::new();
        let mut in_flight = FuturesUnordered::new();
        let mut next_slot = Instant::now();
        loop {
            while in_flight.len() < window {
                let probe = if let Some(p) = retry.pop_front() {
                    p
                } else if next < self.total {
                    let p = self.probe_at(next);
                    next += self.count;
                    p
                } else {
                    break;
                };
                if let Some(interval) = self.interval {
                    let now = Instant::now();
                    if next_slot > now {
                        tokio::select! {
                            () = tokio::time::sleep_until(next_slot) => {}
                            () = cancel.cancelled() => {}
                        }
                    }
                    next_slot = next_slot.max(now) + interval;
                }
                if probe.resource_errors > 0 {
                    // Give the kernel a moment to release descriptors or ports.
                    let backoff = Duration::from_millis(1 << probe.resource_errors.min(7));
                    in_flight.push(attempt(probe, self.timeout, Some(backoff)));
                } else {
                    in_flight.push(attempt(probe, self.timeout, None));
                }
                stats.attempts += 1;
            }
            let finished = tokio::select! {
                biased;
                () = cancel.cancelled() => { stats.cancelled = true; break; }
                r = in_flight.next() => r,
            };
            let Some((mut probe, outcome, rtt)) = finished else {
                break;
            };
            let decided = match outcome {
                Outcome::Open => Some((PortState::Open, Reason::SynAck)),
                Outcome::Closed => Some((PortState::Closed, Reason::ConnRefused)),
                Outcome::SelfConnect => {
                    stats.self_connects += 1;
                    probe.self_connects += 1;
                    if probe.self_connects >= SELF_CONNECT_ATTEMPTS {
                        Some((PortState::Closed, Reason::SelfConnect))
                    } else {
                        retry.push_back(probe);
                        None
                    }
                }
                Outcome::Unreachable(reason) => {
                    if probe.attempts < self.retries {
                        probe.attempts += 1;
                        stats.retries += 1;
                        retry.push_back(probe);
                        None
                    } else {
                        Some((PortState::Filtered, reason))
                    }
                }
                Outcome::Resources => {
                    stats.window_shrinks += 1;
                    window = (window / 2).max(1);
                    clean = 0;
                    probe.resource_errors += 1;
                    if probe.resource_errors >= RESOURCE_ATTEMPTS {
                        Some((PortState::Unknown, Reason::LocalResources))
                    } else {
                        retry.push_back(probe);
                        None
                    }
                }
                Outcome::Other => Some((PortState::Unknown, Reason::Other)),
            };
            let Some((state, reason)) = decided else {
                continue;
            };
            clean += 1;
            if clean >= window && window < self.window {
                window += 1;
                clean = 0;
            }
            stats.ports += 1;
            done.fetch_add(1, Ordering::Relaxed);
            match state {
                PortState::Open => stats.open += 1,
                PortState::Closed => stats.closed += 1,
                PortState::Filtered => stats.filtered += 1,
                PortState::Unknown => stats.unknown += 1,
            }
            let send = match self.report {
                Report::All => true,
                Report::OpenFiltered => state != PortState::Closed,
                Report::Open => state == PortState::Open,
            };
            if send {
                let result = PortResult {
                    addr: probe.addr,
                    state,
                    reason,
                    rtt_us: u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX),
                };
                if tx.send(result).await.is_err() {
                    // The reader went away: nobody wants the rest.
                    stats.cancelled = true;
                    break;
                }
            }
        }
        stats
    }
}

async fn attempt(
    probe: Probe,
    timeout: Duration,
    delay: Option<Duration>,
) -> (Probe, Outcome, Duration) {
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let start = Instant::now();
    let outcome = connect(probe.addr, timeout).await;
    (probe, outcome, start.elapsed())
}

async fn connect(addr: SocketAddr, timeout: Duration) -> Outcome {
    let socket = match addr.ip() {
        IpAddr::V4(_) => TcpSocket::new_v4(),
        IpAddr::V6(_) => TcpSocket::new_v6(),
    };
    let socket = match socket {
        Ok(s) => s,
        Err(e) => return classify(&e),
    };
    // RST on close: no TIME_WAIT per open port, as nmap does.
    let _ = socket.set_zero_linger();
    let stream = match tokio::time::timeout(timeout, socket.connect(addr)).await {
        Err(_) => return Outcome::Unreachable(Reason::NoResponse),
        Ok(Err(e)) => return classify(&e),
        Ok(Ok(stream)) => stream,
    };
    match (stream.local_addr(), stream.peer_addr()) {
        (Ok(local), Ok(peer)) if local == peer => Outcome::SelfConnect,
        (Ok(_), Ok(_)) => Outcome::Open,
        // getpeername failing after a "successful" connect means it was not one.
        (_, Err(e)) | (Err(e), _) => classify(&e),
    }
}

fn classify(e: &io::Error) -> Outcome {
    if let Some(code) = e.raw_os_error()
        && (code == libc::EMFILE
            || code == libc::ENFILE
            || code == libc::EADDRNOTAVAIL
            || code == libc::ENOBUFS)
    {
        return Outcome::Resources;
    }
    match e.kind() {
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset => Outcome::Closed,
        io::ErrorKind::TimedOut => Outcome::Unreachable(Reason::NoResponse),
        io::ErrorKind::HostUnreachable => Outcome::Unreachable(Reason::HostUnreachable),
        io::ErrorKind::NetworkUnreachable => Outcome::Unreachable(Reason::NetUnreachable),
        io::ErrorKind::PermissionDenied => Outcome::Unreachable(Reason::AdminProhibited),
        io::ErrorKind::AddrNotAvailable => Outcome::Resources,
        io::ErrorKind::NotConnected => Outcome::Closed,
        _ => {
            tracing::debug!(error = %e, "unexpected connect error");
            Outcome::Other
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_is_a_permutation() {
        for total in [1u64, 2, 3, 10, 97, 1000, 65_535] {
            let w = Walk::new(total, true);
            let mut seen = vec![false; total as usize];
            for i in 0..total {
                let j = w.at(i) as usize;
                assert!(!seen[j], "total {total}: {j} visited twice");
                seen[j] = true;
            }
        }
    }

    #[test]
    fn classifies_errors() {
        let e = io::Error::from_raw_os_error(libc::EMFILE);
        assert!(matches!(classify(&e), Outcome::Resources));
        let e = io::Error::from_raw_os_error(libc::EADDRNOTAVAIL);
        assert!(matches!(classify(&e), Outcome::Resources));
        let e = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert!(matches!(classify(&e), Outcome::Closed));
        let e = io::Error::from_raw_os_error(libc::EHOSTUNREACH);
        assert!(matches!(
            classify(&e),
            Outcome::Unreachable(Reason::HostUnreachable)
        ));
        let e = io::Error::from_raw_os_error(libc::EACCES);
        assert!(matches!(
            classify(&e),
            Outcome::Unreachable(Reason::AdminProhibited)
        ));
    }

    #[test]
    fn rejects_bad_config() {
        for cfg in [
            PortScanConfig {
                concurrency: 0,
                ..Default::default()
            },
            PortScanConfig {
                timeout: Duration::ZERO,
                ..Default::default()
            },
            PortScanConfig {
                rate: Some(0),
                ..Default::default()
            },
        ] {
            assert!(matches!(PortScanner::new(cfg), Err(Error::Config(_))));
        }
    }
}
