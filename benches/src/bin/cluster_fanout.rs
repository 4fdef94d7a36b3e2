//! `cluster_fanout`: cross-node `/ws` fan-out. Subscribers on every node given, events published
//! on one of them at a fixed rate; what arrives on each node: delivered per cent and
//! publish→receive latency (p50/p99/max, from a timestamp inside each event).
//!
//! With two cluster nodes (`--nodes A,B`) this is DESIGN §10's cross-node target; with one node
//! started without Redis and PostgreSQL (`--nodes S`, the same number of clients in all) it is
//! the single-node baseline. `benches/run_cluster_bench.sh` runs both in one go. Loopback only,
//! bounded in time (`--timeout`).
//!
//! ```text
//! cluster_fanout --nodes 127.0.0.1:18501,127.0.0.1:18502 --token vgl_… --clients 500 --rate 100 --duration 10
//! ```

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use futures::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use vigil_benches::load::{
    is_loopback, load_average, quantile_ms, read_response, run_bounded, tcp_connect,
};

/// Command-line arguments.
#[derive(Debug, Clone, Parser)]
#[command(about = "Cross-node /ws fan-out (loopback only)")]
struct Args {
    /// The nodes, comma-separated host:port on loopback; subscribers go to each.
    #[arg(long, value_delimiter = ',', required = true)]
    nodes: Vec<SocketAddr>,
    /// Which node (index into --nodes) events are published on.
    #[arg(long, default_value_t = 0)]
    publish_on: usize,
    /// An operator or admin token valid on every node.
    #[arg(long, env = "VIGIL_TOKEN")]
    token: String,
    /// Subscribers per node.
    #[arg(long, default_value_t = 500)]
    clients: usize,
    /// Events per second published.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds to wait for stragglers after the last publish.
    #[arg(long, default_value_t = 3.0)]
    drain: f64,
    /// Bytes of padding in each event's data.
    #[arg(long, default_value_t = 100)]
    payload: usize,
    /// Room subscribed to and published in.
    #[arg(long, default_value = "monitoring")]
    room: String,
    /// Publisher keep-alive connections (one request in flight on each).
    #[arg(long, default_value_t = 4)]
    publishers: usize,
    /// Connections opened at once while connecting.
    #[arg(long, default_value_t = 100)]
    connect_concurrency: usize,
    /// Runtime threads (1: a current-thread runtime, at most one core).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Hard bound on the whole run, seconds.
    #[arg(long, default_value_t = 180.0)]
    timeout: f64,
    /// A label for the report (e.g. `cluster` or `single`).
    #[arg(long, default_value = "")]
    label: String,
}

type Ws = WebSocketStream<TcpStream>;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    for node in &args.nodes {
        if !is_loopback(node.ip()) {
            bail!("cluster_fanout only connects to loopback addresses, not {node}");
        }
    }
    if args.publish_on >= args.nodes.len() {
        bail!(
            "--publish-on {} is not one of the {} nodes",
            args.publish_on,
            args.nodes.len()
        );
    }
    let wanted = (args.clients * args.nodes.len() + args.publishers) as u64 * 2 + 256;
    rlimit::increase_nofile_limit(wanted).context("raising RLIMIT_NOFILE")?;
    let args = Arc::new(args);
    let report = run_bounded(
        "cluster_fanout",
        args.threads,
        args.timeout,
        run(args.clone()),
    )?;
    for line in report {
        println!("{line}");
    }
    Ok(())
}

/// Opens `/ws` on `node`, authenticates and subscribes to the room.
async fn open(args: &Args, node: SocketAddr) -> anyhow::Result<Ws> {
    let stream = tcp_connect(node, IpAddr::V4(Ipv4Addr::LOCALHOST), None).await?;
    // The token on the upgrade: the socket never waits in the unauthenticated budget.
    let mut request = format!("ws://{node}/ws").into_client_request()?;
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {}", args.token).parse()?);
    let (mut ws, _) = tokio_tungstenite::client_async(request, stream).await?;
    until(&mut ws, "\"welcome\"").await?;
    let sub = serde_json::json!({"type": "subscribe", "id": "s", "rooms": [args.room]});
    ws.send(Message::text(sub.to_string())).await?;
    until(&mut ws, "\"ack\"").await?;
    Ok(ws)
}

/// Reads until a text message containing `needle`, at most 30 s.
async fn until(ws: &mut Ws, needle: &str) -> anyhow::Result<()> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .context("no answer in 30 s")?;
        match message {
            Some(Ok(Message::Text(text))) if text.contains("\"type\":\"error\"") => {
                bail!("server error: {}", text.as_str())
            }
            Some(Ok(Message::Text(text))) if text.contains(needle) => return Ok(()),
            Some(Ok(Message::Close(frame))) => bail!("closed: {frame:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => bail!("connection ended"),
        }
    }
}

/// The publish stamp in an event: `"t":MICROS` since the run's origin.
fn stamp(text: &str) -> Option<u64> {
    let at = text.find("\"t\":")? + 4;
    let rest = &text[at..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Reads events until `stop`; the latency of each, µs.
async fn subscriber(mut ws: Ws, origin: Instant, mut stop: watch::Receiver<bool>) -> Vec<u32> {
    let mut latencies = Vec::new();
    loop {
        tokio::select! {
            biased;
            message = ws.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    if let Some(t) = stamp(text.as_str()) {
                        let now = origin.elapsed().as_micros() as u64;
                        latencies.push(now.saturating_sub(t).min(u64::from(u32::MAX)) as u32);
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    latencies
}

/// One keep-alive publisher connection: POSTs what it is given.
async fn publisher(
    node: SocketAddr,
    token: String,
    mut rx: tokio::sync::mpsc::Receiver<String>,
    accepted: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let stream = tcp_connect(node, IpAddr::V4(Ipv4Addr::LOCALHOST), None).await?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let (mut line, mut body) = (String::new(), Vec::new());
    while let Some(event) = rx.recv().await {
        let request = format!(
            "POST /api/events HTTP/1.1\r\nHost: {node}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{event}",
            event.len()
        );
        write.write_all(request.as_bytes()).await?;
        let status = read_response(&mut read, &mut line, &mut body).await?;
        if (200..300).contains(&status) {
            accepted.fetch_add(1, Ordering::Relaxed);
        } else if failed.fetch_add(1, Ordering::Relaxed) < 3 {
            eprintln!(
                "cluster_fanout: publish refused: {status} {}",
                String::from_utf8_lossy(&body)
            );
        }
    }
    Ok(())
}

async fn run(args: Arc<Args>) -> anyhow::Result<Vec<String>> {
    // Connect every subscriber first, a bounded number at a time.
    let gate = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let mut opening = Vec::new();
    for (n, node) in args.nodes.iter().enumerate() {
        for _ in 0..args.clients {
            let (args, gate, node) = (args.clone(), gate.clone(), *node);
            opening.push(tokio::spawn(async move {
                let _permit = gate.acquire_owned().await?;
                anyhow::Ok((n, open(&args, node).await?))
            }));
        }
    }
    let started_connecting = Instant::now();
    let mut sockets = Vec::new();
    for handle in opening {
        sockets.push(handle.await??);
    }
    eprintln!(
        "cluster_fanout: {} subscribers on {} node(s) in {:.1} s",
        sockets.len(),
        args.nodes.len(),
        started_connecting.elapsed().as_secs_f64()
    );

    let origin = Instant::now();
    let (stop_tx, stop_rx) = watch::channel(false);
    let readers: Vec<_> = sockets
        .into_iter()
        .map(|(n, ws)| {
            let stop = stop_rx.clone();
            (n, tokio::spawn(subscriber(ws, origin, stop)))
        })
        .collect();

    let accepted = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut senders = Vec::new();
    let mut workers = Vec::new();
    for _ in 0..args.publishers.max(1) {
        let (tx, rx) = tokio::sync::mpsc::channel::<String>(1);
        senders.push(tx);
        let (node, token) = (args.nodes[args.publish_on], args.token.clone());
        let (a, f) = (accepted.clone(), failed.clone());
        workers.push(tokio::spawn(async move {
            if let Err(e) = publisher(node, token, rx, a, f).await {
                eprintln!("cluster_fanout: publisher: {e:#}");
            }
        }));
    }
    let pad = "x".repeat(args.payload);
    let total = (args.rate * args.duration).round() as u64;
    let period = Duration::from_secs_f64(1.0 / args.rate);
    let start = tokio::time::Instant::now();
    let mut shed = 0u64;
    for i in 0..total {
        tokio::time::sleep_until(start + period.mul_f64(i as f64)).await;
        let t = origin.elapsed().as_micros() as u64;
        let body = format!(
            r#"{{"kind":"bench_tick","room":"{}","data":{{"t":{t},"n":{i},"pad":"{pad}"}}}}"#,
            args.room
        );
        // Open loop: a tick whose every connection is busy is shed, never delayed.
        let free = (0..senders.len())
            .map(|k| (i as usize + k) % senders.len())
            .find(|&k| senders[k].capacity() > 0);
        match free {
            Some(k) => {
                let _ = senders[k].try_send(body);
            }
            None => shed += 1,
        }
    }
    drop(senders);
    for worker in workers {
        let _ = worker.await;
    }
    tokio::time::sleep(Duration::from_secs_f64(args.drain)).await;
    let _ = stop_tx.send(true);

    let accepted = accepted.load(Ordering::Relaxed);
    let mut per_node: Vec<Vec<u32>> = vec![Vec::new(); args.nodes.len()];
    let mut received = vec![0u64; args.nodes.len()];
    for (n, handle) in readers {
        let latencies = handle.await.unwrap_or_default();
        received[n] += latencies.len() as u64;
        per_node[n].extend(latencies);
    }
    let mut lines = Vec::new();
    let mut all = Vec::new();
    for (n, latencies) in per_node.iter_mut().enumerate() {
        latencies.sort_unstable();
        let expected = accepted * args.clients as u64;
        let pct = if expected == 0 {
            0.0
        } else {
            100.0 * received[n] as f64 / expected as f64
        };
        let role = if n == args.publish_on {
            "publishing node"
        } else {
            "other node"
        };
        lines.push(format!(
            "{label} node {n} ({role}, {addr}): {clients} clients, delivered {received}/{expected} = {pct:.3} %, latency p50 {p50:.2} ms p99 {p99:.2} ms max {max:.2} ms",
            label = args.label,
            addr = args.nodes[n],
            clients = args.clients,
            received = received[n],
            p50 = quantile_ms(latencies, 0.5).unwrap_or(f64::NAN),
            p99 = quantile_ms(latencies, 0.99).unwrap_or(f64::NAN),
            max = quantile_ms(latencies, 1.0).unwrap_or(f64::NAN),
        ));
        all.extend_from_slice(latencies);
    }
    all.sort_unstable();
    let expected = accepted * (args.clients * args.nodes.len()) as u64;
    let delivered = all.len() as f64 * 100.0 / (expected.max(1) as f64);
    lines.push(format!(
        "{} all: offered {total}, accepted {accepted}, refused {}, shed {shed}; delivered {:.3} %, p99 {:.2} ms; load {}",
        args.label,
        failed.load(Ordering::Relaxed),
        delivered,
        quantile_ms(&all, 0.99).unwrap_or(f64::NAN),
        load_average(),
    ));
    lines.push(
        serde_json::json!({
            "bench": "cluster_fanout", "label": args.label, "nodes": args.nodes.len(),
            "clients_per_node": args.clients, "rate": args.rate, "duration": args.duration,
            "offered": total, "accepted": accepted, "shed": shed,
            "delivered_pct": delivered,
            "p99_ms": quantile_ms(&all, 0.99),
            "per_node": per_node.iter().enumerate().map(|(n, l)| serde_json::json!({
                "node": n, "publishing": n == args.publish_on, "received": received[n],
                "delivered_pct": 100.0 * received[n] as f64 / ((accepted * args.clients as u64).max(1) as f64),
                "p50_ms": quantile_ms(l, 0.5), "p99_ms": quantile_ms(l, 0.99), "max_ms": quantile_ms(l, 1.0),
            })).collect::<Vec<_>>(),
        })
        .to_string(),
    );
    Ok(lines)
}
