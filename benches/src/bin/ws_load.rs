//! `ws_load`: a WebSocket fan-out load generator for the vigil server and its baselines.
//!
//! It opens N subscribers on `/ws`, publishes events open-loop at a fixed rate with a bound on
//! requests in flight, and measures what arrives: delivered events per second and per cent,
//! publish→receive latency (p50/p99/p99.9/max, from a timestamp inside each event's data), the
//! server's CPU per delivery and RSS per connection from `/proc/PID` (`--server-pid`), and the
//! generator's own CPU and the machine's steal time, so a saturated box is visible beside every
//! figure. Everything is bounded: a run stops by itself after `--timeout` seconds at the latest.
//!
//! Modes:
//!
//! - `fanout` (default): N subscribers, a publisher at `--rate` events/s for `--duration` s.
//! - `idle`: N connections (authenticated and subscribed), then the server's RSS growth per
//!   connection.
//! - `slow`: like `fanout`, but `--slow K` of the subscribers stop reading once subscribed; the
//!   report says whether the server closed them with 4008 and after which event, and the latency
//!   and delivery of the others.
//!
//! Protocols: `vigil` (an `auth` then a `subscribe` message, events in the envelope's `data`,
//! publishing through `POST /api/events` or the `/ws` `publish` message) and `plain` (the
//! baselines: a `/ws` that only sends, `POST /publish` with the raw event body).
//!
//! By default it runs on one thread (a current-thread runtime), so it uses at most one core.
//! Above ~25 000 connections it spreads its source addresses over 127.0.0.2, .3, … (one
//! source/destination pair has only ~28 000 ephemeral ports). It only ever connects to the
//! loopback address it is given; anything else is refused.
//!
//! ```text
//! ws_load --url 127.0.0.1:8000 --protocol vigil --token vgl_… --clients 1000 --rate 100 --duration 10
//! ws_load --url 127.0.0.1:8001 --protocol plain --mode idle --clients 10000 --server-pid 1234
//! ```

#![recursion_limit = "256"]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Parser, ValueEnum};
use futures::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use vigil_benches::load::{
    CpuUse, CpuWindow, is_loopback, load_average, proc_rss, quantile_ms, read_response,
    run_bounded, tcp_connect,
};

/// Which server protocol to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Protocol {
    /// vigil's `/ws` (auth, subscribe, event envelopes) and `POST /api/events`.
    Vigil,
    /// The baselines: `/ws` that only sends text, `POST /publish` with the raw body.
    Plain,
}

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Subscribers plus an open-loop publisher.
    Fanout,
    /// Connections only: server memory per connection.
    Idle,
    /// Fan-out where `--slow` subscribers stop reading.
    Slow,
}

/// How the publisher sends events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Via {
    /// HTTP POST over keep-alive connections.
    Http,
    /// The `/ws` `publish` message (vigil only), waiting for each `ack`.
    Ws,
}

/// Command-line arguments.
#[derive(Debug, Clone, Parser)]
#[command(about = "WebSocket fan-out load generator (loopback only)")]
struct Args {
    /// Server address, host:port on loopback (127.0.0.0/8 or ::1).
    #[arg(long, default_value = "127.0.0.1:8000")]
    url: SocketAddr,
    /// Server protocol.
    #[arg(long, value_enum, default_value_t = Protocol::Vigil)]
    protocol: Protocol,
    /// Measurement mode.
    #[arg(long, value_enum, default_value_t = Mode::Fanout)]
    mode: Mode,
    /// Token for vigil (operator or admin: it subscribes and publishes).
    #[arg(long, env = "VIGIL_TOKEN", default_value = "")]
    token: String,
    /// Subscribers (or idle connections).
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Events per second offered by the publisher.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds to wait for stragglers after the last publish.
    #[arg(long, default_value_t = 2.0)]
    drain: f64,
    /// Bytes of padding in each event's data (the event is about this plus ~60 bytes).
    #[arg(long, default_value_t = 100)]
    payload: usize,
    /// Room to subscribe to and publish in (vigil).
    #[arg(long, default_value = "monitoring")]
    room: String,
    /// How the publisher sends (vigil: http or ws; plain: http).
    #[arg(long, value_enum, default_value_t = Via::Http)]
    via: Via,
    /// Publisher connections; the bound on requests in flight is one per connection.
    #[arg(long, default_value_t = 8)]
    publishers: usize,
    /// Subscribers that stop reading (mode slow).
    #[arg(long, default_value_t = 0)]
    slow: usize,
    /// Receive buffer of a slow subscriber's socket, bytes (small so the server sees it soon).
    #[arg(long, default_value_t = 32 * 1024)]
    slow_rcvbuf: u32,
    /// Server process to read CPU and memory of, from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Connections opened at once while connecting.
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
    /// Connections per source address before moving to the next 127.0.0.x.
    #[arg(long, default_value_t = 25_000)]
    per_source: usize,
    /// Seconds idle connections are held before memory is read (mode idle).
    #[arg(long, default_value_t = 3.0)]
    settle: f64,
    /// Runtime threads (1: a current-thread runtime, at most one core).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Hard bound on the whole run, seconds: the process exits when it is reached.
    #[arg(long, default_value_t = 120.0)]
    timeout: f64,
    /// A label for the JSON line (server name).
    #[arg(long, default_value = "")]
    label: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !is_loopback(args.url.ip()) {
        bail!(
            "ws_load only connects to loopback addresses, not {}",
            args.url
        );
    }
    if args.protocol == Protocol::Vigil && args.token.is_empty() {
        bail!("--protocol vigil needs --token (or VIGIL_TOKEN)");
    }
    if args.protocol == Protocol::Plain && args.via == Via::Ws {
        bail!("the plain protocol publishes over HTTP only");
    }
    if args.slow > args.clients {
        bail!("--slow must not exceed --clients");
    }
    let wanted = (args.clients as u64 + args.publishers as u64) * 2 + 256;
    rlimit::increase_nofile_limit(wanted).context("raising RLIMIT_NOFILE")?;
    let report = run_bounded("ws_load", args.threads, args.timeout, run(&args))?;
    println!("{}", report.summary(&args));
    println!("{}", report.json(&args));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Connections

type Ws = WebSocketStream<TcpStream>;

/// The source address of connection `i`: 127.0.0.1 for the first `per_source`, then .2, ….
fn source_for(i: usize, per_source: usize) -> IpAddr {
    let n = (i / per_source.max(1)).min(250) as u8;
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + n))
}

/// Opens `/ws` and, for vigil, authenticates and subscribes. Returns the socket ready for events.
async fn open_ws(
    args: &Args,
    i: usize,
    rcvbuf: Option<u32>,
    subscribe: bool,
) -> anyhow::Result<Ws> {
    let stream = tcp_connect(args.url, source_for(i, args.per_source), rcvbuf).await?;
    let config = WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(1 << 20));
    let url = format!("ws://{}/ws", args.url);
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(url.as_str(), stream, Some(config)).await?;
    if args.protocol == Protocol::Plain {
        return Ok(ws);
    }
    let auth = serde_json::json!({"type": "auth", "token": args.token}).to_string();
    ws.send(Message::text(auth)).await?;
    wait_for(&mut ws, "\"welcome\"").await?;
    if subscribe {
        let sub = serde_json::json!({"type": "subscribe", "id": "s", "rooms": [args.room]});
        ws.send(Message::text(sub.to_string())).await?;
        wait_for(&mut ws, "\"ack\"").await?;
    }
    Ok(ws)
}

/// Reads until a text frame containing `needle` (errors and closes fail).
async fn wait_for(ws: &mut Ws, needle: &str) -> anyhow::Result<()> {
    let deadline = Duration::from_secs(30);
    loop {
        let message = tokio::time::timeout(deadline, ws.next())
            .await
            .context("no answer from the server")?;
        match message {
            Some(Ok(Message::Text(text))) => {
                if text.contains("\"type\":\"error\"") {
                    bail!("server error: {}", text.as_str());
                }
                if text.contains(needle) {
                    return Ok(());
                }
            }
            Some(Ok(Message::Close(frame))) => bail!("closed by the server: {frame:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => bail!("connection ended"),
        }
    }
}

/// The publish timestamp inside an event: `"t":MICROS` (from the generator's clock origin).
fn stamp_of(text: &str) -> Option<u64> {
    let at = text.find("\"t\":")? + 4;
    let digits = &text[at..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// What one subscriber saw.
#[derive(Debug, Default)]
struct SubResult {
    received: u64,
    latencies_us: Vec<u32>,
    /// The worst latency of events published in each second since the origin, µs.
    worst_by_second_us: Vec<u32>,
    slow: bool,
    close_code: Option<u16>,
    /// The stream ended (EOF or reset) without a close frame.
    ended: bool,
    /// Publish stamp of the last event received before the close (µs from the origin).
    last_stamp_before_close: Option<u64>,
    error: Option<String>,
}

/// Reads events until `stop` flips; a slow subscriber reads nothing until then, and then
/// drains what is there to see whether the server closed it.
async fn subscriber(
    mut ws: Ws,
    origin: Instant,
    slow: bool,
    mut stop: watch::Receiver<bool>,
    expected: usize,
) -> SubResult {
    let mut result = SubResult {
        slow,
        latencies_us: if slow {
            Vec::new()
        } else {
            Vec::with_capacity(expected)
        },
        ..SubResult::default()
    };
    if slow {
        let _ = stop.wait_for(|s| *s).await;
        // Drain for a bounded time: the close frame, if any, sits behind what was queued.
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(message) = ws.next().await {
                if !read_one(message, origin, &mut result, false) {
                    break;
                }
            }
            result.ended = result.close_code.is_none();
        })
        .await;
        return result;
    }
    loop {
        tokio::select! {
            biased;
            message = ws.next() => match message {
                Some(m) => if !read_one(m, origin, &mut result, true) { break },
                None => break,
            },
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    result
}

/// Accounts for one message; false when the connection is over.
fn read_one(
    message: Result<Message, tokio_tungstenite::tungstenite::Error>,
    origin: Instant,
    result: &mut SubResult,
    timed: bool,
) -> bool {
    match message {
        Ok(Message::Text(text)) => {
            if let Some(stamp) = stamp_of(text.as_str()) {
                result.received += 1;
                result.last_stamp_before_close = Some(stamp);
                if timed {
                    let now = origin.elapsed().as_micros() as u64;
                    let latency = now.saturating_sub(stamp).min(u32::MAX as u64) as u32;
                    result.latencies_us.push(latency);
                    let second = (stamp / 1_000_000) as usize;
                    if result.worst_by_second_us.len() <= second {
                        result.worst_by_second_us.resize(second + 1, 0);
                    }
                    let worst = &mut result.worst_by_second_us[second];
                    *worst = (*worst).max(latency);
                }
            }
            true
        }
        Ok(Message::Close(frame)) => {
            result.close_code = Some(frame.map_or(1005, |f| u16::from(f.code)));
            false
        }
        Ok(_) => true,
        Err(e) => {
            result.error = Some(e.to_string());
            false
        }
    }
}

/// Watches the server's side of the given client sockets in `/proc/net/tcp` (loopback: both
/// ends are in this network namespace) until `stop` flips, and says when each left ESTABLISHED:
/// the moment the server closed it, whether or not a close frame could reach the client.
async fn watch_server_sockets(
    server: SocketAddr,
    clients: Vec<SocketAddr>,
    start: Instant,
) -> Vec<Option<f64>> {
    let key = |a: SocketAddr| match a {
        SocketAddr::V4(v4) => format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(v4.ip().octets()),
            v4.port()
        ),
        SocketAddr::V6(_) => String::new(),
    };
    let local = key(server);
    let remotes: Vec<String> = clients.iter().map(|c| key(*c)).collect();
    let mut closed: Vec<Option<f64>> = vec![None; clients.len()];
    if clients.is_empty() || local.is_empty() {
        return closed;
    }
    // Bounded by the run's own time bound; stops once every socket is closed or on abort.
    // The table lists every socket of the namespace (TIME_WAIT ones of earlier runs too), so
    // reading it costs the generator CPU: four times a second is precise enough.
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        let Ok(table) = tokio::fs::read_to_string("/proc/net/tcp").await else {
            return closed;
        };
        let mut established = vec![false; clients.len()];
        for line in table.lines().skip(1) {
            let mut fields = line.split_whitespace().skip(1);
            let (Some(l), Some(r), Some(st)) = (fields.next(), fields.next(), fields.next()) else {
                continue;
            };
            if l != local || st != "01" {
                continue;
            }
            if let Some(i) = remotes.iter().position(|x| x == r) {
                established[i] = true;
            }
        }
        let now = start.elapsed().as_secs_f64();
        for (i, open) in established.iter().enumerate() {
            if !open && closed[i].is_none() {
                closed[i] = Some(now);
            }
        }
        if closed.iter().all(Option::is_some) || WATCH_STOP.load(Ordering::Relaxed) {
            return closed;
        }
    }
}

/// Tells [`watch_server_sockets`] to return.
static WATCH_STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

// ---------------------------------------------------------------------------------------------
// Publisher

/// Publisher counters.
#[derive(Debug, Default)]
struct PubStats {
    offered: AtomicU64,
    accepted: AtomicU64,
    failed: AtomicU64,
    /// Ticks skipped because every publisher connection had a request in flight.
    shed: AtomicU64,
}

/// One event's body: the stamp and a sequence number inside `data` (vigil) or at the top (plain).
fn event_body(args: &Args, stamp: u64, n: u64, pad: &str) -> String {
    format!(
        r#"{{"kind":"bench_tick","room":"{}","data":{{"t":{stamp},"n":{n},"pad":"{pad}"}}}}"#,
        args.room
    )
}

/// A minimal HTTP/1.1 keep-alive client: POSTs bodies and reads each answer.
async fn http_worker(
    args: Arc<Args>,
    i: usize,
    mut rx: mpsc::Receiver<String>,
    stats: Arc<PubStats>,
) -> anyhow::Result<()> {
    let stream = tcp_connect(args.url, source_for(i, args.per_source), None).await?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let (path, auth) = match args.protocol {
        Protocol::Vigil => (
            "/api/events",
            format!("Authorization: Bearer {}\r\n", args.token),
        ),
        Protocol::Plain => ("/publish", String::new()),
    };
    let mut line = String::new();
    let mut body = Vec::new();
    while let Some(event) = rx.recv().await {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{event}",
            args.url,
            event.len()
        );
        write.write_all(request.as_bytes()).await?;
        let status = read_response(&mut read, &mut line, &mut body).await?;
        let ok = (200..300).contains(&status);
        if ok {
            stats.accepted.fetch_add(1, Ordering::Relaxed);
        } else {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            if stats.failed.load(Ordering::Relaxed) <= 3 {
                eprintln!(
                    "ws_load: publish refused: {status} {}",
                    String::from_utf8_lossy(&body)
                );
            }
        }
    }
    Ok(())
}

/// Publishes through the `/ws` `publish` message, one in flight per connection.
async fn ws_publisher(
    args: Arc<Args>,
    i: usize,
    mut rx: mpsc::Receiver<String>,
    stats: Arc<PubStats>,
) -> anyhow::Result<()> {
    let mut ws = open_ws(&args, i, None, false).await?;
    while let Some(event) = rx.recv().await {
        // The HTTP body plus the message type: {"type":"publish",…}.
        let message = format!(r#"{{"type":"publish","id":"p",{}"#, &event[1..]);
        ws.send(Message::text(message)).await?;
        match wait_for(&mut ws, "\"ack\"").await {
            Ok(()) => stats.accepted.fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                eprintln!("ws_load: ws publish failed: {e}");
                stats.failed.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
    Ok(())
}

/// Offers events at `rate` for `duration`, round-robin over the publisher connections; a tick
/// whose every connection is busy is shed (counted), so the schedule never slips.
async fn publish(args: Arc<Args>, origin: Instant, stats: Arc<PubStats>) -> anyhow::Result<()> {
    let mut senders = Vec::new();
    let mut workers = Vec::new();
    for p in 0..args.publishers.max(1) {
        let (tx, rx) = mpsc::channel::<String>(1);
        senders.push(tx);
        let (args, stats) = (args.clone(), stats.clone());
        workers.push(tokio::spawn(async move {
            let r = match args.via {
                Via::Http => http_worker(args, p, rx, stats).await,
                Via::Ws => ws_publisher(args, p, rx, stats).await,
            };
            if let Err(e) = &r {
                eprintln!("ws_load: publisher {p}: {e:#}");
            }
        }));
    }
    let pad = "x".repeat(args.payload);
    let period = Duration::from_secs_f64(1.0 / args.rate);
    let total = (args.rate * args.duration).round() as u64;
    let start = tokio::time::Instant::now();
    let mut next = 0usize;
    for n in 0..total {
        tokio::time::sleep_until(start + period.mul_f64(n as f64)).await;
        stats.offered.fetch_add(1, Ordering::Relaxed);
        let stamp = origin.elapsed().as_micros() as u64;
        let mut body = Some(event_body(&args, stamp, n, &pad));
        for k in 0..senders.len() {
            let tx = &senders[(next + k) % senders.len()];
            match tx.try_send(body.take().expect("body is put back on failure")) {
                Ok(()) => {
                    next = (next + k + 1) % senders.len();
                    break;
                }
                Err(mpsc::error::TrySendError::Full(b) | mpsc::error::TrySendError::Closed(b)) => {
                    body = Some(b)
                }
            }
        }
        if body.is_some() {
            stats.shed.fetch_add(1, Ordering::Relaxed);
        }
    }
    drop(senders);
    // Requests still in flight get the drain time, no more (a stalled server holds them).
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(args.drain);
    for w in workers {
        let abort = w.abort_handle();
        if tokio::time::timeout_at(deadline, w).await.is_err() {
            abort.abort();
            stats.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The run

/// Everything measured.
#[derive(Debug, Default)]
struct Report {
    connected: usize,
    connect_errors: usize,
    connect_seconds: f64,
    offered: u64,
    accepted: u64,
    failed: u64,
    shed: u64,
    publish_seconds: f64,
    /// Events offered times the subscribers that kept reading, and what those received.
    expected: u64,
    received: u64,
    latencies_us: Vec<u32>,
    /// The worst latency by second of publishing (seconds since the generator started), µs.
    worst_by_second_us: Vec<u32>,
    subscriber_errors: usize,
    cpu: CpuUse,
    server_rss_before: Option<u64>,
    server_rss_after: Option<u64>,
    server_rss_max: Option<u64>,
    /// Slow subscribers: (closed with 4008, other close code, still open), and when the 4008s
    /// came (seconds after publishing began, from the last event received before the close).
    slow_4008: usize,
    slow_other_close: Vec<u16>,
    slow_open: usize,
    slow_ended_without_close: usize,
    /// When the server closed each slow client's socket (its side left ESTABLISHED in
    /// `/proc/net/tcp`), seconds after publishing began; `None`: still open at the end.
    slow_server_closed_after_s: Vec<Option<f64>>,
    slow_close_after_s: Vec<f64>,
    slow_received: Vec<u64>,
    load_before: String,
    load_after: String,
}

async fn run(args: &Args) -> anyhow::Result<Report> {
    let args = Arc::new(args.clone());
    let origin = Instant::now();
    let mut report = Report {
        load_before: load_average(),
        server_rss_before: args.server_pid.and_then(proc_rss),
        ..Report::default()
    };
    let subscribe = true;
    let (stop_tx, stop_rx) = watch::channel(false);
    let gate = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let errors = Arc::new(AtomicUsize::new(0));
    let expected_events = (args.rate * args.duration).round() as usize;
    let slow_count = if args.mode == Mode::Slow {
        args.slow
    } else {
        0
    };
    let connect_start = Instant::now();
    let watched: Arc<std::sync::Mutex<Vec<SocketAddr>>> = Arc::default();
    let (ready_tx, mut ready_rx) = mpsc::channel::<()>(args.clients.max(1));
    let mut tasks = Vec::with_capacity(args.clients);
    for i in 0..args.clients {
        let slow = i < slow_count;
        let watched = watched.clone();
        let (args, gate, errors, stop, ready) = (
            args.clone(),
            gate.clone(),
            errors.clone(),
            stop_rx.clone(),
            ready_tx.clone(),
        );
        let capacity = if args.mode == Mode::Idle {
            0
        } else {
            expected_events
        };
        tasks.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await.expect("never closed");
            let rcvbuf = slow.then_some(args.slow_rcvbuf);
            let ws = match open_ws(&args, i, rcvbuf, subscribe).await {
                Ok(ws) => ws,
                Err(e) => {
                    if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                        eprintln!("ws_load: connection {i}: {e:#}");
                    }
                    drop(ready);
                    return None;
                }
            };
            drop(permit);
            if slow && let Ok(local) = ws.get_ref().local_addr() {
                watched.lock().expect("not poisoned").push(local);
            }
            let _ = ready.send(()).await;
            drop(ready);
            Some(subscriber(ws, origin, slow, stop, capacity).await)
        }));
    }
    drop(ready_tx);
    while ready_rx.recv().await.is_some() {
        report.connected += 1;
    }
    report.connect_errors = errors.load(Ordering::Relaxed);
    report.connect_seconds = connect_start.elapsed().as_secs_f64();
    eprintln!(
        "ws_load: {} connected ({} failed) in {:.1} s",
        report.connected, report.connect_errors, report.connect_seconds
    );

    // RSS sampler for the peak (slow clients may make a server buffer without bound).
    let peak = Arc::new(AtomicU64::new(report.server_rss_before.unwrap_or(0)));
    let sampler = args.server_pid.map(|pid| {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                if let Some(rss) = proc_rss(pid) {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    });

    if args.mode == Mode::Idle {
        tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
        report.server_rss_after = args.server_pid.and_then(proc_rss);
        let window = CpuWindow::start(args.server_pid);
        tokio::time::sleep(Duration::from_secs(1)).await;
        report.cpu = window.stop();
    } else {
        let stats = Arc::new(PubStats::default());
        let window = CpuWindow::start(args.server_pid);
        let publish_start = Instant::now();
        let publish_origin_us = origin.elapsed().as_micros() as u64;
        let clients = watched.lock().expect("not poisoned").clone();
        let watcher = tokio::spawn(watch_server_sockets(args.url, clients, publish_start));
        publish(args.clone(), origin, stats.clone()).await?;
        report.publish_seconds = publish_start.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_secs_f64(args.drain)).await;
        report.cpu = window.stop();
        report.server_rss_after = args.server_pid.and_then(proc_rss);
        report.offered = stats.offered.load(Ordering::Relaxed);
        report.accepted = stats.accepted.load(Ordering::Relaxed);
        report.failed = stats.failed.load(Ordering::Relaxed);
        report.shed = stats.shed.load(Ordering::Relaxed);
        WATCH_STOP.store(true, Ordering::Relaxed);
        report.slow_server_closed_after_s = watcher.await.unwrap_or_default();
        let _ = stop_tx.send(true);
        for task in tasks.drain(..) {
            let Ok(Some(sub)) = task.await else { continue };
            if sub.error.is_some() {
                report.subscriber_errors += 1;
            }
            if sub.slow {
                report.slow_received.push(sub.received);
                match sub.close_code {
                    Some(4008) => {
                        report.slow_4008 += 1;
                        if let Some(stamp) = sub.last_stamp_before_close {
                            report
                                .slow_close_after_s
                                .push(stamp.saturating_sub(publish_origin_us) as f64 / 1e6);
                        }
                    }
                    Some(code) => report.slow_other_close.push(code),
                    None if sub.ended => report.slow_ended_without_close += 1,
                    None => report.slow_open += 1,
                }
            } else {
                // Offered, not accepted: an event the server refused or never answered is an
                // event its subscribers did not get.
                report.expected += report.offered;
                report.received += sub.received;
                report.latencies_us.extend_from_slice(&sub.latencies_us);
                let worst = &mut report.worst_by_second_us;
                if worst.len() < sub.worst_by_second_us.len() {
                    worst.resize(sub.worst_by_second_us.len(), 0);
                }
                for (w, s) in worst.iter_mut().zip(&sub.worst_by_second_us) {
                    *w = (*w).max(*s);
                }
            }
        }
    }
    let _ = stop_tx.send(true);
    if let Some(s) = sampler {
        s.abort();
    }
    if args.server_pid.is_some() {
        report.server_rss_max = Some(peak.load(Ordering::Relaxed));
    }
    report.load_after = load_average();
    report.latencies_us.sort_unstable();
    Ok(report)
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.digits$}"))
}

impl Report {
    fn delivered_pct(&self) -> Option<f64> {
        (self.expected > 0).then(|| 100.0 * self.received as f64 / self.expected as f64)
    }

    fn delivered_per_s(&self) -> f64 {
        self.received as f64 / self.publish_seconds.max(1e-9)
    }

    fn server_cpu_pct(&self) -> Option<f64> {
        self.cpu
            .server_cpu_s
            .map(|s| 100.0 * s / self.cpu.seconds.max(1e-9))
    }

    fn generator_cpu_pct(&self) -> Option<f64> {
        self.cpu
            .generator_cpu_s
            .map(|s| 100.0 * s / self.cpu.seconds.max(1e-9))
    }

    fn us_per_delivery(&self) -> Option<f64> {
        let total = self.received + self.slow_received.iter().sum::<u64>();
        self.cpu
            .server_cpu_s
            .filter(|_| total > 0)
            .map(|s| s * 1e6 / total as f64)
    }

    fn rss_per_conn_kib(&self) -> Option<f64> {
        let (before, after) = (self.server_rss_before?, self.server_rss_after?);
        (self.connected > 0)
            .then(|| (after as f64 - before as f64) / 1024.0 / self.connected as f64)
    }

    fn summary(&self, args: &Args) -> String {
        let cpu = format!(
            "server cpu {}% gen cpu {}% steal {}% load {} → {}",
            fmt_opt(self.server_cpu_pct(), 0),
            fmt_opt(self.generator_cpu_pct(), 0),
            fmt_opt(self.cpu.steal_pct, 1),
            self.load_before,
            self.load_after
        );
        let label = if args.label.is_empty() {
            String::new()
        } else {
            format!("[{}] ", args.label)
        };
        match args.mode {
            Mode::Idle => format!(
                "{label}idle: {} connected ({} failed) in {:.1} s, server rss {} → {} MiB = {} KiB/conn; {cpu}",
                self.connected,
                self.connect_errors,
                self.connect_seconds,
                fmt_opt(self.server_rss_before.map(|b| b as f64 / 1048576.0), 1),
                fmt_opt(self.server_rss_after.map(|b| b as f64 / 1048576.0), 1),
                fmt_opt(self.rss_per_conn_kib(), 2),
            ),
            Mode::Fanout | Mode::Slow => {
                let mut line = format!(
                    "{label}{}: {} subs × {}/s: published {}/{} (shed {}, failed {}), delivered {:.0}/s = {}% , p50 {} p99 {} p99.9 {} max {} ms, {} µs server cpu/delivery, rss max {} MiB; {cpu}",
                    if args.mode == Mode::Slow {
                        "slow"
                    } else {
                        "fanout"
                    },
                    self.connected,
                    args.rate,
                    self.accepted,
                    self.offered,
                    self.shed,
                    self.failed,
                    self.delivered_per_s(),
                    fmt_opt(self.delivered_pct(), 3),
                    fmt_opt(quantile_ms(&self.latencies_us, 0.5), 2),
                    fmt_opt(quantile_ms(&self.latencies_us, 0.99), 2),
                    fmt_opt(quantile_ms(&self.latencies_us, 0.999), 2),
                    fmt_opt(quantile_ms(&self.latencies_us, 1.0), 2),
                    fmt_opt(self.us_per_delivery(), 2),
                    fmt_opt(self.server_rss_max.map(|b| b as f64 / 1048576.0), 1),
                );
                if args.mode == Mode::Slow {
                    let closed: Vec<f64> = self
                        .slow_server_closed_after_s
                        .iter()
                        .flatten()
                        .copied()
                        .collect();
                    line.push_str(&format!(
                        "; slow {}: server closed {} (last after {} s), client saw 4008 ×{}, other close {:?}, cut without close frame ×{}, still open ×{}",
                        args.slow,
                        closed.len(),
                        fmt_opt(closed.iter().copied().reduce(f64::max), 1),
                        self.slow_4008,
                        self.slow_other_close,
                        self.slow_ended_without_close,
                        self.slow_open
                    ));
                }
                line
            }
        }
    }

    fn json(&self, args: &Args) -> String {
        serde_json::json!({
            "label": args.label,
            "mode": format!("{:?}", args.mode).to_lowercase(),
            "protocol": format!("{:?}", args.protocol).to_lowercase(),
            "clients": args.clients,
            "connected": self.connected,
            "connect_errors": self.connect_errors,
            "connect_seconds": self.connect_seconds,
            "rate": args.rate,
            "payload": args.payload,
            "offered": self.offered,
            "accepted": self.accepted,
            "failed": self.failed,
            "shed": self.shed,
            "publish_seconds": self.publish_seconds,
            "expected": self.expected,
            "received": self.received,
            "delivered_per_s": self.delivered_per_s(),
            "delivered_pct": self.delivered_pct(),
            "p50_ms": quantile_ms(&self.latencies_us, 0.5),
            "p99_ms": quantile_ms(&self.latencies_us, 0.99),
            "p999_ms": quantile_ms(&self.latencies_us, 0.999),
            "max_ms": quantile_ms(&self.latencies_us, 1.0),
            "worst_ms_by_second": self
                .worst_by_second_us
                .iter()
                .map(|us| f64::from(*us / 100) / 10.0)
                .collect::<Vec<_>>(),
            "subscriber_errors": self.subscriber_errors,
            "window_seconds": self.cpu.seconds,
            "server_cpu_pct": self.server_cpu_pct(),
            "server_us_per_delivery": self.us_per_delivery(),
            "generator_cpu_pct": self.generator_cpu_pct(),
            "steal_pct": self.cpu.steal_pct,
            "server_rss_before": self.server_rss_before,
            "server_rss_after": self.server_rss_after,
            "server_rss_max": self.server_rss_max,
            "server_rss_per_conn_kib": self.rss_per_conn_kib(),
            "slow": args.slow,
            "slow_closed_4008": self.slow_4008,
            "slow_other_close": self.slow_other_close,
            "slow_never_closed": self.slow_open,
            "slow_ended_without_close": self.slow_ended_without_close,
            "slow_server_closed_after_s": self.slow_server_closed_after_s,
            "slow_close_after_s": self.slow_close_after_s,
            "slow_received": self.slow_received,
            "load_before": self.load_before,
            "load_after": self.load_after,
        })
        .to_string()
    }
}
