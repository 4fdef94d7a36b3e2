//! `vigil serve --demo`: a live dashboard with real findings and nothing to configure.
//!
//! [`Demo::start`] (called by [`crate::serve`] when [`crate::ServerConfig::demo`] is set) binds
//! three deliberately weak services to `127.0.0.1` on ephemeral ports, and nothing else:
//!
//! | service | weakness | scanned with |
//! |---|---|---|
//! | SSH-like banner | `SSH_MSG_KEXINIT` offering `diffie-hellman-group1-sha1`, a CBC cipher and `hmac-md5` | `banner_grab` |
//! | HTTP | answers without `Content-Security-Policy`, `X-Content-Type-Options`, `X-Frame-Options` | `http_probe` |
//! | TLS | a self-signed certificate that expired 10 days ago, generated at start (rcgen) | `ssl_check` |
//!
//! Loopback is in the scope in demo mode only ([`crate::ServerConfig::scan_scope`]). Scans of the
//! three services go through the orchestrator like any `POST /api/scans` (requested by `demo`),
//! so the in-process agent finds real threats; a new round runs every [`RESCAN`].
//!
//! Beside them, a simulated activity follows the seed dashboard's event mix at one event every
//! [`STEP`]: agent executions started and completed (with measured durations and quality
//! scores), quality assessments, opportunities, synthesis phases, system health (the server's
//! real figures), chat messages, and `location_resolved` results that the real geo-locate
//! [`Estimator`] computes from made-up access-point positions. Every simulated event is published
//! through the bus with `source: "demo"` and `demo: true` in its data; the scans and their threats
//! are real and carry the orchestrator's usual events.
//!
//! At start a `demo_started` event ([`DemoStarted`], room `monitoring`) says where the services
//! listen. [`Demo::stop`] cancels the unfinished demo scans, stops every task, and closes the
//! listeners: afterwards their ports refuse connections.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Datelike, Utc};
use event_bus::payloads::{
    AgentExecutionCompleted, AgentExecutionStarted, ChatMessage, OpportunityDiscovered,
    QualityScoreUpdated,
};
use event_bus::{Bus, EventDraft, Payload, Severity};
use geo_locate::LatLon;
use geo_locate::estimate::{BeaconInput, Estimator};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::{Error, Result};
use crate::node::Node;
use crate::node::orchestrator::ScanRequest;

/// The only address demo services bind and demo scans target; added to the scope in demo mode.
pub(crate) const LOOPBACK: &str = "127.0.0.1";

/// The `source` of every simulated event, and who the demo scans are requested by.
pub(crate) const DEMO_SOURCE: &str = "demo";

/// Pause between two simulated events.
pub(crate) const STEP: Duration = Duration::from_millis(1500);

/// Pause between two rounds of scans of the demo services.
pub(crate) const RESCAN: Duration = Duration::from_secs(300);

/// Connections one demo service serves at once; more are closed at once.
const MAX_CONNECTIONS: usize = 16;

/// How long a demo connection may stay open.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest request a demo service reads.
const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// How long [`Demo::stop`] waits for its tasks before giving up on them.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Demo scans remembered for cancellation at stop (a few rounds' worth).
const REMEMBERED_SCANS: usize = 12;

/// One deliberately weak service of the demo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemoService {
    /// `ssh`, `http` or `tls`.
    pub name: String,
    /// Where it listens (always on `127.0.0.1`).
    pub address: SocketAddr,
    /// What is wrong with it.
    pub weakness: String,
    /// The scan type the demo schedules against it.
    pub scan_type: String,
}

/// The `demo_started` event (room `monitoring`): demo mode is on, and where its weak services
/// listen. `vigil serve --demo` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DemoStarted {
    /// Always true: this is demo data.
    pub demo: bool,
    /// The weak services.
    pub services: Vec<DemoService>,
    /// What demo mode added to the scan scope.
    pub scope_added: String,
    /// Seconds between two rounds of scans.
    pub rescan_seconds: u64,
    /// Seconds between two simulated events.
    pub step_seconds: f64,
}

impl Payload for DemoStarted {
    const KIND: &'static str = "demo_started";
    const ROOM: &'static str = "monitoring";
}

/// The running demo: its services, scans and simulation, owned until [`Demo::stop`].
#[derive(Debug)]
pub(crate) struct Demo {
    stop: CancellationToken,
    tracker: TaskTracker,
}

impl Demo {
    /// Binds the weak services, announces them, and starts the scans and the simulation.
    pub(crate) async fn start(state: Node) -> Result<Demo> {
        // A previous demo that did not stop cleanly may have left scans of ports that are gone:
        // cancel them before any agent can take them.
        for scan in state.orchestrator().scans().await.unwrap_or_default() {
            if scan["requested_by"] == DEMO_SOURCE
                && scan["completed"] == false
                && let Some(id) = scan["scan_id"].as_str()
            {
                let _ = state.orchestrator().cancel_scan(id).await;
            }
        }
        let stop = CancellationToken::new();
        let tracker = TaskTracker::new();
        let ssh = bind("ssh").await?;
        let http = bind("http").await?;
        let tls = bind("tls").await?;
        let acceptor = expired_self_signed_acceptor()?;
        let services = vec![
            service(
                "ssh",
                &ssh,
                "an SSH-like banner whose key exchange offers diffie-hellman-group1-sha1 (and a CBC cipher, hmac-md5)",
                "banner_grab",
            )?,
            service(
                "http",
                &http,
                "an HTTP server answering without Content-Security-Policy, X-Content-Type-Options and X-Frame-Options",
                "http_probe",
            )?,
            service(
                "tls",
                &tls,
                "a TLS server with a self-signed certificate that expired 10 days ago",
                "ssl_check",
            )?,
        ];

        tracker.spawn(accept_loop(ssh, stop.clone(), tracker.clone(), weak_ssh));
        tracker.spawn(accept_loop(http, stop.clone(), tracker.clone(), weak_http));
        tracker.spawn(accept_loop(
            tls,
            stop.clone(),
            tracker.clone(),
            move |socket| {
                let acceptor = acceptor.clone();
                async move {
                    if let Ok(stream) = acceptor.accept(socket).await {
                        weak_http(stream).await;
                    }
                }
            },
        ));

        let started = DemoStarted {
            demo: true,
            services: services.clone(),
            scope_added: LOOPBACK.to_owned(),
            rescan_seconds: RESCAN.as_secs(),
            step_seconds: STEP.as_secs_f64(),
        };
        publish(state.bus(), &started);
        for s in &services {
            tracing::info!(service = %s.name, address = %s.address, weakness = %s.weakness, "demo: weak service listening");
        }
        if state.config().local_agent.is_none() {
            tracing::warn!(
                "demo: the in-process agent is off, so demo scans wait for a remote agent"
            );
        }

        tracker.spawn(scan_rounds(state.clone(), services, stop.clone()));
        tracker.spawn(simulate(state, stop.clone()));
        Ok(Demo { stop, tracker })
    }

    /// Cancels unfinished demo scans, stops every demo task and closes the listeners.
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        self.tracker.close();
        if tokio::time::timeout(STOP_TIMEOUT, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("demo: some tasks did not stop in time");
        }
    }
}

/// Dropped without [`Demo::stop`] (the serving future was dropped): the tasks are still told to
/// stop, which closes the listeners.
impl Drop for Demo {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn bind(name: &str) -> Result<TcpListener> {
    TcpListener::bind((LOOPBACK, 0))
        .await
        .map_err(|source| Error::Io {
            context: format!("binding the demo {name} service on {LOOPBACK}"),
            source,
        })
}

fn service(
    name: &str,
    listener: &TcpListener,
    weakness: &str,
    scan_type: &str,
) -> Result<DemoService> {
    let address = listener.local_addr().map_err(|source| Error::Io {
        context: format!("reading the address of the demo {name} service"),
        source,
    })?;
    Ok(DemoService {
        name: name.to_owned(),
        address,
        weakness: weakness.to_owned(),
        scan_type: scan_type.to_owned(),
    })
}

/// Accepts until `stop`, serving each connection with `handle` (bounded in number and time).
/// Returning drops the listener: the port is closed.
async fn accept_loop<F, Fut>(
    listener: TcpListener,
    stop: CancellationToken,
    tracker: TaskTracker,
    handle: F,
) where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let socket = match accepted {
            Ok((socket, _)) => socket,
            Err(err) => {
                tracing::debug!(error = %err, "demo: accept failed");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                }
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            continue;
        };
        let work = handle(socket);
        let stop = stop.clone();
        tracker.spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                _ = tokio::time::timeout(CONNECTION_TIMEOUT, work) => {}
            }
            drop(slot);
        });
    }
}

/// An SSH packet carrying `SSH_MSG_KEXINIT` with weak offers.
fn weak_kexinit() -> Vec<u8> {
    let mut payload = vec![20u8];
    // The 16-byte cookie.
    payload.extend_from_slice(b"vigil-demo-kex!!");
    let lists = [
        "diffie-hellman-group1-sha1,diffie-hellman-group14-sha1",
        "ssh-rsa",
        "aes128-cbc,aes128-ctr",
        "aes128-cbc,aes128-ctr",
        "hmac-md5,hmac-sha2-256",
        "hmac-md5,hmac-sha2-256",
        "none",
        "none",
        "",
        "",
    ];
    for list in lists {
        payload.extend_from_slice(&u32::try_from(list.len()).unwrap_or(0).to_be_bytes());
        payload.extend_from_slice(list.as_bytes());
    }
    // first_kex_packet_follows = false, reserved = 0.
    payload.extend_from_slice(&[0, 0, 0, 0, 0]);
    // RFC 4253 §6: padding of at least 4 bytes makes the packet a multiple of 8.
    let mut padding = 8 - (payload.len() + 5) % 8;
    if padding < 4 {
        padding += 8;
    }
    let length = u32::try_from(payload.len() + padding + 1).unwrap_or(0);
    let mut packet = length.to_be_bytes().to_vec();
    packet.push(u8::try_from(padding).unwrap_or(4));
    packet.extend_from_slice(&payload);
    packet.extend(std::iter::repeat_n(0u8, padding));
    packet
}

/// Says an SSH identification and a weak KEXINIT, then reads (and drops) what the client sends.
async fn weak_ssh(mut socket: TcpStream) {
    let mut hello = b"SSH-2.0-OpenSSH_7.4 vigil-demo\r\n".to_vec();
    hello.extend_from_slice(&weak_kexinit());
    if socket.write_all(&hello).await.is_err() {
        return;
    }
    let mut sink = [0u8; 512];
    let mut total = 0usize;
    while let Ok(n) = socket.read(&mut sink).await {
        total += n;
        if n == 0 || total > MAX_REQUEST_BYTES {
            break;
        }
    }
}

const WEAK_PAGE: &str = "<!doctype html><html><head><title>vigil demo: a deliberately weak web server</title></head><body><p>This page is served without security headers, on purpose, by <code>vigil serve --demo</code>.</p></body></html>";

/// Reads one request head and answers it without any security header.
async fn weak_http<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) {
    let mut request = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
        if request.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        if request.len() > MAX_REQUEST_BYTES {
            return;
        }
    }
    let response = format!(
        "HTTP/1.1 200 OK\r\nServer: vigil-demo\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{WEAK_PAGE}",
        WEAK_PAGE.len()
    );
    if stream.write_all(response.as_bytes()).await.is_ok() {
        let _ = stream.shutdown().await;
    }
}

/// A TLS acceptor whose certificate (for 127.0.0.1 and localhost) is self-signed and expired:
/// valid from 400 days ago until 10 days ago.
fn expired_self_signed_acceptor() -> Result<TlsAcceptor> {
    let failed = |what: &str, err: &dyn std::fmt::Display| {
        Error::Config(format!("demo TLS service: {what}: {err}"))
    };
    let day = |offset: i64| {
        let d = (Utc::now() + chrono::Duration::days(offset)).date_naive();
        rcgen::date_time_ymd(
            d.year(),
            u8::try_from(d.month()).unwrap_or(1),
            u8::try_from(d.day()).unwrap_or(1),
        )
    };
    let key = rcgen::KeyPair::generate().map_err(|e| failed("key", &e))?;
    let mut params = rcgen::CertificateParams::new(vec![LOOPBACK.to_owned(), "localhost".into()])
        .map_err(|e| failed("certificate parameters", &e))?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "vigil demo (expired, self-signed)",
    );
    params.not_before = day(-400);
    params.not_after = day(-10);
    let cert = params
        .self_signed(&key)
        .map_err(|e| failed("certificate", &e))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| failed("protocol versions", &e))?
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .map_err(|e| failed("server configuration", &e))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Schedules one scan per weak service now and every [`RESCAN`]; at stop, cancels what has not
/// finished (so a restart never resumes scans of ports that are gone).
async fn scan_rounds(state: Node, services: Vec<DemoService>, stop: CancellationToken) {
    let mut scheduled: VecDeque<String> = VecDeque::new();
    loop {
        for s in &services {
            let request = ScanRequest {
                targets: vec![s.address.ip().to_string()],
                target: None,
                scan_types: vec![s.scan_type.clone()],
                ports: Some(s.address.port().to_string()),
                priority: Some(6),
                retries: Some(1),
            };
            match state.orchestrator().schedule(request, DEMO_SOURCE).await {
                Ok(accepted) => {
                    scheduled.push_back(accepted.scan_id);
                    if scheduled.len() > REMEMBERED_SCANS {
                        scheduled.pop_front();
                    }
                }
                Err(err) => {
                    tracing::warn!(service = %s.name, code = err.code, "demo: scheduling a scan failed");
                }
            }
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(RESCAN) => {}
        }
    }
    for scan_id in scheduled {
        let _ = state.orchestrator().cancel_scan(&scan_id).await;
    }
}

/// Publishes `payload` with `demo: true` added to its data and `source: "demo"`.
fn publish<T: Payload>(bus: &Bus, payload: &T) {
    match serde_json::to_value(payload) {
        Ok(data) => publish_value(bus, T::KIND, T::ROOM, payload.severity(), data),
        Err(err) => tracing::debug!(error = %err, kind = T::KIND, "demo: payload not encoded"),
    }
}

fn publish_value(bus: &Bus, kind: &str, room: &str, severity: Severity, mut data: Value) {
    if let Value::Object(map) = &mut data {
        map.insert("demo".into(), Value::Bool(true));
    }
    let published = EventDraft::new(kind, room, &data)
        .map(|draft| draft.with_severity(severity).with_source(DEMO_SOURCE))
        .and_then(|draft| bus.publish_draft(draft));
    if let Err(err) = published {
        tracing::debug!(error = %err, kind, "demo: event not published");
    }
}

/// One beat of the simulated activity.
#[derive(Debug, Clone, Copy)]
enum Beat {
    Health,
    Start(usize),
    Complete(usize),
    Quality,
    Opportunity,
    Synthesis(bool),
    Chat,
    Location,
}

/// The seed dashboard's event mix, one beat every [`STEP`]; every kind shows within 12 beats.
const SCRIPT: [Beat; 20] = [
    Beat::Health,
    Beat::Start(0),
    Beat::Location,
    Beat::Complete(0),
    Beat::Quality,
    Beat::Start(1),
    Beat::Chat,
    Beat::Opportunity,
    Beat::Complete(1),
    Beat::Synthesis(true),
    Beat::Start(2),
    Beat::Synthesis(false),
    Beat::Location,
    Beat::Complete(2),
    Beat::Start(3),
    Beat::Chat,
    Beat::Quality,
    Beat::Complete(3),
    Beat::Opportunity,
    Beat::Location,
];

/// The simulated agents: id, name, and the tasks they take in turn.
const AGENTS: [(&str, &str, [&str; 2]); 4] = [
    (
        "demo-recon",
        "Recon agent (demo)",
        [
            "Inventory of services on the demo network",
            "Banner sweep of newly seen hosts",
        ],
    ),
    (
        "demo-tls",
        "TLS auditor (demo)",
        [
            "Certificate expiry review",
            "Cipher and protocol policy check",
        ],
    ),
    (
        "demo-geo",
        "Geolocation agent (demo)",
        [
            "Resolve positions from Wi-Fi scans",
            "Refresh access-point clusters",
        ],
    ),
    (
        "demo-report",
        "Report synthesizer (demo)",
        [
            "Weekly exposure summary",
            "Remediation plan for open findings",
        ],
    ),
];

const OPPORTUNITIES: [(&str, &str, &str, f64, &str); 4] = [
    (
        "Retire SHA-1 key exchanges",
        "hardening",
        "The SSH service still offers diffie-hellman-group1-sha1; removing it closes a Logjam-class downgrade.",
        92.0,
        "avoided incident cost: $10k-50k/yr",
    ),
    (
        "Automate certificate renewal",
        "operations",
        "An expired certificate was served; ACME renewal would have prevented it.",
        88.0,
        "saves about 2 operator hours per certificate",
    ),
    (
        "Add security headers at the proxy",
        "web",
        "Responses lack CSP, nosniff and frame options; one proxy rule fixes every site behind it.",
        76.0,
        "avoided incident cost: $5k-20k/yr",
    ),
    (
        "Offer Wi-Fi positioning to field teams",
        "geolocation",
        "The estimator resolves field devices to tens of metres without GPS.",
        61.0,
        "$20k-80k/yr",
    ),
];

const CHAT: [(&str, &str); 4] = [
    (
        "demo-analyst",
        "Demo mode: the threats in the alerts panel come from real scans of weak services on 127.0.0.1.",
    ),
    (
        "demo-bot",
        "Everything labelled demo is simulated; the scans and their threats are real.",
    ),
    (
        "demo-analyst",
        "The TLS auditor flagged the expired certificate again; renewal is on the opportunities list.",
    ),
    (
        "demo-bot",
        "Geolocation samples are computed by the real estimator from made-up access points.",
    ),
];

/// A made-up place: the device's (made-up) true position, and access points around it.
#[derive(Debug, Clone, Copy)]
struct Place {
    name: &'static str,
    lat: f64,
    lon: f64,
    /// (metres east, metres north, dBm heard by the device).
    aps: [(f64, f64, f64); 4],
}

/// The made-up places the geolocation samples cycle through.
const PLACES: [Place; 3] = [
    Place {
        name: "Berlin, Alexanderplatz (made up)",
        lat: 52.5219,
        lon: 13.4132,
        aps: [
            (12.0, -5.0, -48.0),
            (-35.0, 20.0, -63.0),
            (40.0, 38.0, -71.0),
            (-20.0, -55.0, -77.0),
        ],
    },
    Place {
        name: "Paris, Place de la République (made up)",
        lat: 48.8674,
        lon: 2.3636,
        aps: [
            (-8.0, 15.0, -52.0),
            (30.0, -25.0, -60.0),
            (-45.0, -10.0, -69.0),
            (25.0, 60.0, -80.0),
        ],
    },
    Place {
        name: "San Francisco, Mission District (made up)",
        lat: 37.7599,
        lon: -122.4148,
        aps: [
            (5.0, 8.0, -45.0),
            (-28.0, -30.0, -66.0),
            (50.0, -12.0, -73.0),
            (-15.0, 45.0, -79.0),
        ],
    },
];

/// A small deterministic generator (SplitMix64): the demo is the same on every run.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `low..high`, rounded to one decimal.
    fn between(&mut self, low: f64, high: f64) -> f64 {
        let unit = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((low + unit * (high - low)) * 10.0).round() / 10.0
    }
}

/// The simulation's memory between beats.
#[derive(Debug)]
struct Simulation {
    rng: Rng,
    cycle: usize,
    running: HashMap<usize, (Instant, &'static str)>,
    last_subject: String,
    opportunity: usize,
    chat: usize,
    place: usize,
    estimator: Estimator,
}

impl Simulation {
    fn new() -> Simulation {
        Simulation {
            rng: Rng(0x5eed_0001_7f39_dbce),
            cycle: 0,
            running: HashMap::new(),
            last_subject: "demo network inventory".into(),
            opportunity: 0,
            chat: 0,
            place: 0,
            estimator: Estimator::default(),
        }
    }

    fn beat(&mut self, state: &Node, beat: Beat) {
        let bus = state.bus();
        match beat {
            Beat::Health => {
                let (queued, running, done, agents) = state.orchestrator().counts();
                publish_value(
                    bus,
                    "system_health_updated",
                    "monitoring",
                    Severity::Info,
                    json!({
                        "status": if state.is_draining() { "draining" } else { "healthy" },
                        "uptime_seconds": state.uptime_seconds().round(),
                        "connected_clients": state.connections(),
                        "events_published": bus.head(),
                        "tasks": {"queued": queued, "running": running, "done": done},
                        "agents_online": agents,
                    }),
                );
            }
            Beat::Start(agent) => {
                let (id, name, tasks) = AGENTS[agent % AGENTS.len()];
                let task = tasks[self.cycle % tasks.len()];
                self.running.insert(agent, (Instant::now(), task));
                publish(
                    bus,
                    &AgentExecutionStarted {
                        agent_id: id.into(),
                        agent_name: name.into(),
                        task_description: task.into(),
                    },
                );
            }
            Beat::Complete(agent) => {
                let Some((since, task)) = self.running.remove(&agent) else {
                    return;
                };
                let (id, name, _) = AGENTS[agent % AGENTS.len()];
                // Now and then a run fails, as in the seed's mix of success and error.
                let success = !(agent == 2 && self.cycle % 3 == 2);
                let quality = success.then(|| self.rng.between(72.0, 99.5));
                self.last_subject = format!("{name}: {task}");
                publish(
                    bus,
                    &AgentExecutionCompleted {
                        agent_id: id.into(),
                        agent_name: name.into(),
                        task_description: task.into(),
                        duration_ms: u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX),
                        success,
                        quality_score: quality,
                    },
                );
            }
            Beat::Quality => {
                let score = self.rng.between(64.0, 99.0);
                publish(
                    bus,
                    &QualityScoreUpdated {
                        subject: self.last_subject.clone(),
                        quality_score: score,
                    },
                );
            }
            Beat::Opportunity => {
                let (title, category, description, confidence, revenue) =
                    OPPORTUNITIES[self.opportunity % OPPORTUNITIES.len()];
                self.opportunity += 1;
                publish(
                    bus,
                    &OpportunityDiscovered {
                        title: title.into(),
                        category: category.into(),
                        description: description.into(),
                        confidence_score: confidence,
                        revenue_potential: Some(revenue.into()),
                    },
                );
            }
            Beat::Synthesis(begins) => {
                let (kind, severity) = if begins {
                    ("synthesis_started", Severity::Info)
                } else {
                    ("synthesis_completed", Severity::Success)
                };
                publish_value(
                    bus,
                    kind,
                    "monitoring",
                    severity,
                    json!({"phase": "exposure report", "inputs": 3 + self.cycle % 4}),
                );
            }
            Beat::Chat => {
                let (user, message) = CHAT[self.chat % CHAT.len()];
                self.chat += 1;
                publish(
                    bus,
                    &ChatMessage {
                        user: user.into(),
                        message: message.into(),
                    },
                );
            }
            Beat::Location => {
                let place = self.place % PLACES.len();
                self.place += 1;
                if let Some(data) = self.locate(place) {
                    publish_value(bus, "location_resolved", "monitoring", Severity::Info, data);
                }
            }
        }
    }

    /// Runs the real estimator on a made-up place; the data has the shape of the geolocation
    /// endpoints' `location_resolved`, plus how far the answer is from the made-up truth.
    fn locate(&self, place: usize) -> Option<Value> {
        let Place {
            name,
            lat,
            lon,
            aps,
        } = PLACES[place];
        let truth = LatLon::new(lat, lon)?;
        let beacons: Vec<BeaconInput> = aps
            .iter()
            .map(|&(east, north, dbm)| BeaconInput::at(truth.offset(east, north), Some(dbm)))
            .collect();
        let Some(estimate) = self.estimator.locate_beacons(&beacons) else {
            tracing::debug!(place = name, "demo: the estimator found no cluster");
            return None;
        };
        let r = estimate.to_response();
        Some(json!({
            "endpoint": "demo",
            "place": name,
            "latitude": r.location.lat,
            "longitude": r.location.lng,
            "accuracy_m": r.accuracy,
            "fallback": r.fallback,
            "source": "wifi",
            "used": estimate.used,
            "counts": {"wifi": beacons.len(), "cells": 0, "bluetooth": 0, "dropped": 0},
            "error_m": (estimate.position.distance_m(truth) * 10.0).round() / 10.0,
        }))
    }
}

/// Plays [`SCRIPT`] over and over, one beat every [`STEP`], until `stop`.
async fn simulate(state: Node, stop: CancellationToken) {
    let mut simulation = Simulation::new();
    let mut tick = tokio::time::interval(STEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut position = 0usize;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        simulation.beat(&state, SCRIPT[position]);
        position += 1;
        if position == SCRIPT.len() {
            position = 0;
            simulation.cycle += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_made_up_place_resolves_near_its_truth() {
        let simulation = Simulation::new();
        for place in 0..PLACES.len() {
            let data = simulation.locate(place).expect("an estimate");
            let error = data["error_m"].as_f64().unwrap();
            let accuracy = data["accuracy_m"].as_f64().unwrap();
            assert!(error < accuracy, "{data}");
            assert_eq!(data["used"], 4, "{data}");
        }
    }

    #[test]
    fn the_kexinit_packet_is_well_formed() {
        let packet = weak_kexinit();
        let length = u32::from_be_bytes(packet[..4].try_into().unwrap()) as usize;
        assert_eq!(packet.len(), length + 4);
        assert_eq!(packet.len() % 8, 0);
        let padding = usize::from(packet[4]);
        assert!(padding >= 4);
        assert_eq!(packet[5], 20, "SSH_MSG_KEXINIT");
        let text = String::from_utf8_lossy(&packet);
        assert!(text.contains("diffie-hellman-group1-sha1"));
    }

    #[test]
    fn the_script_shows_every_kind_within_its_first_twelve_beats() {
        let first: Vec<String> = SCRIPT[..12].iter().map(|b| format!("{b:?}")).collect();
        for kind in [
            "Health",
            "Start",
            "Complete",
            "Quality",
            "Opportunity",
            "Synthesis",
            "Chat",
            "Location",
        ] {
            assert!(first.iter().any(|b| b.starts_with(kind)), "{kind}");
        }
    }

    #[test]
    fn the_generator_is_deterministic_and_in_range() {
        let (mut a, mut b) = (Rng(7), Rng(7));
        for _ in 0..100 {
            let x = a.between(72.0, 99.5);
            assert_eq!(x, b.between(72.0, 99.5));
            assert!((72.0..=99.5).contains(&x));
        }
    }
}
