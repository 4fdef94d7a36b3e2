//! `hostile_load`: the unauthenticated floods of the hostile-clients review, against a running
//! vigil server on loopback, with the server's memory read from `/proc/PID`.
//!
//! 1. `--sockets N` anonymous `/ws` upgrades that never send `auth`, spread over the source
//!    addresses 127.0.0.1 … 127.0.0.`--sources` and held open; then a client with
//!    `Authorization: Bearer` on the upgrade and a client that authenticates with its first
//!    message, each timed to its `welcome`.
//! 2. `--handshakes N` Engine.IO polling handshakes without a token (`GET
//!    /socket.io/?EIO=4&transport=polling`), over one keep-alive connection per source address.
//!
//! It reports what the server answered (upgraded, refused, closed later) and its RSS before and
//! after each step. It only ever connects to the loopback address it is given, and stops by
//! itself after `--timeout` seconds.
//!
//! ```text
//! hostile_load --server 127.0.0.1:8000 --pid 1234 --token vgl_… --sockets 12000 --handshakes 20000
//! ```

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use futures::StreamExt as _;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use vigil_benches::load::{is_loopback, proc_rss, read_response, run_bounded, tcp_connect};

#[derive(Debug, Parser)]
#[command(about = "Unauthenticated floods against a vigil server on loopback")]
struct Args {
    /// Server address, on loopback.
    #[arg(long, default_value = "127.0.0.1:8000")]
    server: SocketAddr,
    /// The server's process id, for its RSS.
    #[arg(long)]
    pid: u32,
    /// A valid token (any role), for the clients that must still get in.
    #[arg(long)]
    token: String,
    /// Anonymous `/ws` sockets to open and hold.
    #[arg(long, default_value_t = 12_000)]
    sockets: usize,
    /// Source addresses 127.0.0.1 … 127.0.0.N the sockets are spread over.
    #[arg(long, default_value_t = 200)]
    sources: u8,
    /// Engine.IO handshakes without a token.
    #[arg(long, default_value_t = 20_000)]
    handshakes: usize,
    /// Hard bound on the whole run, in seconds.
    #[arg(long, default_value_t = 120.0)]
    timeout: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !is_loopback(args.server.ip()) {
        bail!("hostile_load only connects to loopback addresses");
    }
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    run_bounded("hostile_load", 1, args.timeout, run(args))
}

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or_else(
        || "?".into(),
        |b| format!("{:.1} MiB", b as f64 / 1048576.0),
    )
}

async fn run(args: Args) -> anyhow::Result<()> {
    let rss0 = proc_rss(args.pid);
    println!("server RSS at start: {}", mib(rss0));

    // 1. Anonymous /ws sockets, held open.
    let started = Instant::now();
    let mut held = Vec::with_capacity(args.sockets);
    let (mut upgraded, mut refused, mut failed) = (0usize, 0usize, 0usize);
    for i in 0..args.sockets {
        let source = IpAddr::V4(Ipv4Addr::new(
            127,
            0,
            0,
            1 + (i % usize::from(args.sources.max(1))) as u8,
        ));
        match anonymous_upgrade(args.server, source).await {
            Ok(Some(stream)) => {
                upgraded += 1;
                held.push(stream);
            }
            Ok(None) => refused += 1,
            Err(_) => failed += 1,
        }
    }
    println!(
        "{} anonymous /ws upgrades in {:.1} s: {upgraded} upgraded, {refused} refused, {failed} failed",
        args.sockets,
        started.elapsed().as_secs_f64()
    );
    let mut open = 0usize;
    let mut probe = [0u8; 256];
    for stream in &mut held {
        // A socket the server pushed out has its close frame (or EOF) waiting.
        // Nothing to read within a millisecond: the server still holds it open.
        if tokio::time::timeout(Duration::from_millis(1), stream.read(&mut probe))
            .await
            .is_err()
        {
            open += 1;
        }
    }
    println!(
        "still open after the flood: {open} (the server closed {} to make room)",
        upgraded - open
    );
    let rss1 = proc_rss(args.pid);
    println!("server RSS with the flood held: {}", mib(rss1));

    let url = format!("ws://{}/ws", args.server);
    let t = Instant::now();
    let mut request = url.as_str().into_client_request()?;
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {}", args.token).parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .context("the bearer client was refused")?;
    let welcome = next_text(&mut ws).await?;
    println!(
        "client with Bearer on the upgrade: {} after {:.1} ms",
        kind(&welcome),
        t.elapsed().as_secs_f64() * 1e3
    );
    let t = Instant::now();
    let (mut ws2, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .context("the first-message client was refused")?;
    futures::SinkExt::send(
        &mut ws2,
        Message::Text(
            serde_json::json!({"type": "auth", "token": args.token})
                .to_string()
                .into(),
        ),
    )
    .await?;
    let welcome = next_text(&mut ws2).await?;
    println!(
        "client authenticating with its first message: {} after {:.1} ms",
        kind(&welcome),
        t.elapsed().as_secs_f64() * 1e3
    );
    drop((ws, ws2, held));
    tokio::time::sleep(Duration::from_secs(1)).await;

    // 2. Engine.IO handshakes without a token.
    let rss2 = proc_rss(args.pid);
    let started = Instant::now();
    let (mut ok, mut busy, mut other) = (0usize, 0usize, 0usize);
    // One keep-alive connection per source address, the handshakes dealt out in turn, so the
    // flood reaches the server-wide budget and not only one source's.
    type Conn = (
        BufReader<tokio::net::tcp::OwnedReadHalf>,
        tokio::net::tcp::OwnedWriteHalf,
    );
    let sources = usize::from(args.sources.max(1));
    let mut conns: Vec<Option<Conn>> = (0..sources).map(|_| None).collect();
    let (mut line, mut body) = (String::new(), Vec::new());
    let request = format!(
        "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: {}\r\n\r\n",
        args.server
    );
    for i in 0..args.handshakes {
        let slot = i % sources;
        let conn = &mut conns[slot];
        if conn.is_none() {
            let octet = u8::try_from(slot + 1).unwrap_or(u8::MAX);
            let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, octet));
            let stream = tcp_connect(args.server, source, None).await?;
            let (read, write) = stream.into_split();
            *conn = Some((BufReader::new(read), write));
        }
        let Some((read, write)) = conn.as_mut() else {
            continue;
        };
        let status = match write.write_all(request.as_bytes()).await {
            Ok(()) => read_response(read, &mut line, &mut body).await.ok(),
            Err(_) => None,
        };
        match status {
            Some(200) => ok += 1,
            Some(503) => busy += 1,
            Some(_) => other += 1,
            None => {
                other += 1;
                *conn = None;
            }
        }
    }
    let rss3 = proc_rss(args.pid);
    println!(
        "{} Engine.IO handshakes without a token in {:.1} s: {ok} opened a session, {busy} refused (503), {other} other",
        args.handshakes,
        started.elapsed().as_secs_f64()
    );
    println!(
        "server RSS before / after the handshakes: {} / {} (growth {})",
        mib(rss2),
        mib(rss3),
        match (rss2, rss3) {
            (Some(a), Some(b)) => mib(Some(b.saturating_sub(a))),
            _ => "?".into(),
        }
    );
    Ok(())
}

/// An upgrade with no credentials from `source`; the stream when the server switched protocols,
/// `None` when it answered with an error status.
async fn anonymous_upgrade(
    server: SocketAddr,
    source: IpAddr,
) -> anyhow::Result<Option<TcpStream>> {
    let mut stream = tcp_connect(server, source, Some(4096)).await?;
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {server}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut reader = BufReader::new(&mut stream);
    let mut status = String::new();
    reader.read_line(&mut status).await?;
    let switched = status.split_whitespace().nth(1) == Some("101");
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).await? == 0 || header.trim_end().is_empty() {
            break;
        }
    }
    Ok(switched.then_some(stream))
}

async fn next_text(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
) -> anyhow::Result<serde_json::Value> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .context("no answer within 10 s")?
            .context("closed")??;
        if let Message::Text(text) = message {
            return Ok(serde_json::from_str(&text)?);
        }
    }
}

fn kind(frame: &serde_json::Value) -> String {
    frame["type"].as_str().unwrap_or("?").to_owned()
}
