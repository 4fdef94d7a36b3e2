//! Publish throughput through Redis from one node, beside the in-process figure, in one run.
//!
//! ```text
//! cargo run --release -p vigil-benches --bin bus_redis [-- EVENTS]
//! ```
//!
//! Starts its own `redis-server` (no persistence) on a free loopback port in a temporary
//! directory and stops it at the end. Every event is the ~300-byte `agent_execution_completed`
//! of the criterion benches. Figures:
//!
//! - **in-process**: `Bus::publish` with no subscriber (the ticket is ready at once);
//! - **redis, pipelined**: one node publishes with up to `WINDOW` tickets outstanding (the
//!   writer sends what is queued as one pipeline of script calls); the time until the last
//!   ticket resolved;
//! - **redis, end to end**: the same, until a subscriber on the same node has received every
//!   event back from Redis (through the node's mirror);
//! - **redis, one at a time**: each publish awaited before the next (one round trip each).

use std::collections::VecDeque;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use event_bus::payloads::AgentExecutionCompleted;
use event_bus::{Bus, Delivery, Filter, RedisBroker, RedisConfig, Ticket};

/// Tickets outstanding at most in the pipelined run (below the broker's queue bound).
const WINDOW: usize = 8192;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn payload(i: u64) -> AgentExecutionCompleted {
    AgentExecutionCompleted {
        agent_id: format!("agent-{}", i % 8),
        agent_name: "port-scanner".into(),
        task_description: "scan 10.0.0.0/24 top-100".into(),
        duration_ms: 1234,
        success: true,
        quality_score: Some(97.5),
    }
}

fn rate(events: u64, took: Duration) -> String {
    format!(
        "{:>10.0} events/s  ({events} in {:.3} s)",
        events as f64 / took.as_secs_f64(),
        took.as_secs_f64()
    )
}

async fn node(url: &str, prefix: &str) -> anyhow::Result<Bus> {
    let broker = RedisBroker::connect(RedisConfig::new(url).prefix(prefix))
        .await
        .context("connecting to the benchmark's redis-server")?;
    Ok(Bus::with_broker(Arc::new(broker), 1 << 20))
}

/// Publishes `n` events keeping up to `WINDOW` tickets outstanding; returns when all resolved.
async fn publish_pipelined(bus: &Bus, n: u64) -> anyhow::Result<()> {
    let mut window: VecDeque<Ticket> = VecDeque::with_capacity(WINDOW);
    for i in 0..n {
        if window.len() == WINDOW {
            window.pop_front().expect("full").await?;
        }
        window.push_back(bus.publish(&payload(i))?);
    }
    for ticket in window {
        ticket.await?;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let events: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(200_000);

    // In process, on this thread.
    let bus = Bus::new();
    for i in 0..10_000 {
        let _ = bus.publish(&payload(i))?;
    }
    let started = Instant::now();
    for i in 0..events {
        let _ = std::hint::black_box(bus.publish(&payload(i))?);
    }
    let in_process = started.elapsed();
    drop(bus);

    let dir = tempfile::tempdir()?;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let _server = Server(
        Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server (is it installed?)")?,
    );
    let url = format!("redis://127.0.0.1:{port}/");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let version = Command::new("redis-server").arg("--version").output()?;
    let (pipelined, end_to_end, one_by_one, one_count) = runtime.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(10);
        let bus = loop {
            match node(&url, "bench-pipelined").await {
                Ok(bus) => break bus,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(err) => return Err(err),
            }
        };
        publish_pipelined(&bus, 10_000).await?;
        let started = Instant::now();
        publish_pipelined(&bus, events).await?;
        let pipelined = started.elapsed();

        let bus = node(&url, "bench-end-to-end").await?;
        let mut sub = bus.subscribe(Filter::all())?;
        let started = Instant::now();
        publish_pipelined(&bus, events).await?;
        let mut received = 0;
        while received < events {
            match tokio::time::timeout(Duration::from_secs(30), sub.recv()).await {
                Ok(Some(Delivery::Event(_))) => received += 1,
                Ok(Some(Delivery::Lagged(lag))) => bail!("the subscriber lagged: {lag:?}"),
                Ok(None) | Err(_) => bail!("only {received} of {events} delivered"),
            }
        }
        let end_to_end = started.elapsed();

        let bus = node(&url, "bench-one-by-one").await?;
        let one_count = (events / 20).max(1_000);
        let started = Instant::now();
        for i in 0..one_count {
            bus.publish(&payload(i))?.await?;
        }
        anyhow::Ok((pipelined, end_to_end, started.elapsed(), one_count))
    })?;

    // Where the time goes on the Redis side: the script's own cost per call.
    let mut conn =
        redis::Client::open(url.as_str())?.get_connection_with_timeout(Duration::from_secs(2))?;
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut conn)
        .unwrap_or_default();
    let evalsha = stats
        .lines()
        .find(|l| l.starts_with("cmdstat_evalsha:"))
        .unwrap_or("cmdstat_evalsha: not reported")
        .to_owned();

    println!("{}", String::from_utf8_lossy(&version.stdout).trim());
    println!(
        "in-process publish (no subscriber)    {}",
        rate(events, in_process)
    );
    println!(
        "redis publish, pipelined (one node)   {}",
        rate(events, pipelined)
    );
    println!(
        "redis publish → own subscriber        {}",
        rate(events, end_to_end)
    );
    println!(
        "redis publish, one at a time          {}  ({:.1} µs per round trip)",
        rate(one_count, one_by_one),
        one_by_one.as_secs_f64() * 1e6 / one_count as f64
    );
    println!("redis side: {}", evalsha.trim());
    Ok(())
}
