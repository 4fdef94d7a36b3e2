//! `http_hostile`: the HTTP findings of the security review, replayed against a running server
//! as an attacker would, on loopback only.
//!
//! 1. `--requests` requests (2 000) on `--connections` keep-alive connections, each with its own
//!    `--method-bytes` (4 KB) method name, to `/health`; then a `/metrics` scrape. It reports the
//!    server's RSS before and after (`--server-pid`), the scrape's size and its number of HTTP
//!    label sets. Before the fix each method became a label set kept for ever.
//! 2. A connection that sends part of a request head and then nothing: how long until the server
//!    closes it (bounded by `--head-bound` seconds).
//!
//! Every run stops by itself after `--timeout` seconds at the latest. `benches/run_hostile.sh`
//! starts a release `vigil serve` and runs it.
//!
//! ```text
//! http_hostile --url 127.0.0.1:8000 --token vgl_… --server-pid PID
//! ```

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use vigil_benches::load::{is_loopback, proc_rss, read_response, run_bounded, tcp_connect};

#[derive(Debug, Parser)]
#[command(about = "Hostile HTTP clients against a vigil server (loopback only)")]
struct Args {
    /// The server, a loopback address and port.
    #[arg(long, default_value = "127.0.0.1:8000")]
    url: SocketAddr,
    /// A viewer (or stronger) token, for `/metrics`.
    #[arg(long, env = "VIGIL_TOKEN", hide_env_values = true)]
    token: String,
    /// The server's process id, for its RSS.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Requests with long method names.
    #[arg(long, default_value_t = 2_000)]
    requests: usize,
    /// Bytes of each method name.
    #[arg(long, default_value_t = 4_096)]
    method_bytes: usize,
    /// Keep-alive connections the requests are spread over.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Longest wait, in seconds, for the server to close an unfinished request head.
    #[arg(long, default_value_t = 30.0)]
    head_bound: f64,
    /// Hard bound on the whole run, in seconds.
    #[arg(long, default_value_t = 120.0)]
    timeout: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !is_loopback(args.url.ip()) {
        bail!("http_hostile only connects to loopback, not {}", args.url);
    }
    if args.method_bytes < 8 || args.connections == 0 || args.requests == 0 {
        bail!("--method-bytes must be at least 8, --connections and --requests at least 1");
    }
    run_bounded("http_hostile", 2, args.timeout, run(args))
}

fn connect(
    url: SocketAddr,
) -> impl std::future::Future<Output = std::io::Result<tokio::net::TcpStream>> {
    tcp_connect(url, IpAddr::V4(Ipv4Addr::LOCALHOST), None)
}

/// `GET /metrics` on a fresh connection: the body.
async fn scrape(url: SocketAddr, token: &str) -> anyhow::Result<String> {
    let tcp = connect(url).await.context("connecting for /metrics")?;
    let (read, mut write) = tcp.into_split();
    let request = format!(
        "GET /metrics HTTP/1.1\r\nHost: {url}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    write.write_all(request.as_bytes()).await?;
    let mut read = BufReader::new(read);
    let (mut line, mut body) = (String::new(), Vec::new());
    let status = read_response(&mut read, &mut line, &mut body).await?;
    if status != 200 {
        bail!("/metrics answered {status}: is the token a viewer's?");
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

fn rss_mib(pid: Option<u32>) -> Option<f64> {
    pid.and_then(proc_rss).map(|b| b as f64 / (1024.0 * 1024.0))
}

/// One client: `count` requests, each with its own method; reconnects when the server closes.
async fn attacker(
    url: SocketAddr,
    client: usize,
    count: usize,
    method_bytes: usize,
) -> anyhow::Result<BTreeMap<String, usize>> {
    let mut statuses = BTreeMap::new();
    let mut conn = None;
    let (mut line, mut body) = (String::new(), Vec::new());
    for i in 0..count {
        let (read, write) = match &mut conn {
            Some(c) => c,
            None => {
                let (r, w) = connect(url).await?.into_split();
                conn.insert((BufReader::new(r), w))
            }
        };
        let prefix = format!("M{client}x{i}x");
        let method = format!(
            "{prefix}{}",
            "X".repeat(method_bytes.saturating_sub(prefix.len()))
        );
        let request = format!("{method} /health HTTP/1.1\r\nHost: {url}\r\n\r\n");
        let sent = write.write_all(request.as_bytes()).await;
        let answer = match sent {
            Ok(()) => read_response(read, &mut line, &mut body).await.ok(),
            Err(_) => None,
        };
        let key = answer.map_or_else(|| "closed".to_owned(), |s| s.to_string());
        if answer.is_none() || answer == Some(431) {
            conn = None;
        }
        *statuses.entry(key).or_default() += 1;
    }
    Ok(statuses)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let url = args.url;
    let before_text = scrape(url, &args.token).await?;
    let rss_before = rss_mib(args.server_pid);

    let started = Instant::now();
    let per = args.requests.div_ceil(args.connections);
    let mut clients = Vec::new();
    for c in 0..args.connections {
        let count = per.min(args.requests.saturating_sub(c * per));
        clients.push(tokio::spawn(attacker(url, c, count, args.method_bytes)));
    }
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    for client in clients {
        for (k, v) in client.await?? {
            *statuses.entry(k).or_default() += v;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let after_text = scrape(url, &args.token).await?;
    let rss_after = rss_mib(args.server_pid);
    let label_sets = after_text
        .lines()
        .filter(|l| l.starts_with("vigil_http_request_duration_seconds_count{"))
        .count();
    let report = json!({
        "scenario": "long_methods",
        "requests": args.requests,
        "method_bytes": args.method_bytes,
        "connections": args.connections,
        "seconds": seconds,
        "statuses": statuses,
        "rss_before_mib": rss_before,
        "rss_after_mib": rss_after,
        "rss_growth_mib": rss_before.zip(rss_after).map(|(b, a)| a - b),
        "metrics_bytes_before": before_text.len(),
        "metrics_bytes_after": after_text.len(),
        "http_label_sets": label_sets,
    });
    println!("{report}");

    // An unfinished request head, then silence.
    let mut tcp = connect(url).await?;
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Never-Ends: ")
        .await?;
    let started = Instant::now();
    let bound = Duration::from_secs_f64(args.head_bound);
    let mut buf = [0u8; 1024];
    let mut answer = Vec::new();
    let closed = loop {
        let left = bound.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, tcp.read(&mut buf)).await {
            Err(_) => break None,
            Ok(Ok(0) | Err(_)) => break Some(started.elapsed().as_secs_f64()),
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
        }
    };
    let first_line = String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned();
    println!(
        "{}",
        json!({
            "scenario": "unfinished_head",
            "closed_after_s": closed,
            "answer": first_line,
            "bound_s": args.head_bound,
        })
    );
    Ok(())
}
