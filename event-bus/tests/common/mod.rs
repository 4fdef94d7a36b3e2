//! Shared by the integration tests: a throw-away `redis-server`, bounded waits, draining.

#![allow(dead_code)]

use std::io::Write as _;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use event_bus::{Bus, Delivery, Subscription};

/// A `redis-server` on a free loopback port, without persistence, in its own temporary
/// directory; stopped when dropped.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

/// Whether a missing `redis-server` must fail the test (`VIGIL_E2E=required`) rather than
/// skip it.
fn required() -> bool {
    std::env::var("VIGIL_E2E").is_ok_and(|v| v == "required")
}

impl RedisServer {
    /// Starts one; `None` (after a visible SKIPPED line) when `redis-server` is not installed,
    /// unless `VIGIL_E2E=required`, which makes that a failure.
    pub fn start(test: &str) -> Option<RedisServer> {
        let installed = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            assert!(
                !required(),
                "VIGIL_E2E=required but redis-server is not installed"
            );
            // Straight to stderr, past the test harness's capture, so the skip is seen.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: {test}: redis-server is not installed"
            );
            return None;
        }
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
            listener.local_addr().expect("its address").port()
        };
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut server = RedisServer {
            child: None,
            port,
            dir,
        };
        server.launch();
        Some(server)
    }

    fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.ping() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer in 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn ping(&self) -> bool {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_ok()
    }

    /// The URL to connect to.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Runs one command on a fresh connection.
    pub fn command(&self, cmd: &redis::Cmd) -> redis::Value {
        let mut conn = redis::Client::open(self.url())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
            .expect("a connection");
        cmd.query(&mut conn).expect("the command runs")
    }

    /// Stops the server (its data is gone: no persistence).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops it and starts a new, empty one on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A key prefix no other test uses.
pub fn unique_prefix(test: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "test-{test}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Waits (at most 10 s) until the bus's head reaches `seq`.
pub async fn settle(bus: &Bus, seq: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while bus.head() < seq {
        assert!(
            Instant::now() < deadline,
            "head {} did not reach {seq} in 10 s",
            bus.head()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Receives deliveries until `n` events have come (at most `limit` in all), failing after 20 s.
pub async fn collect(sub: &mut Subscription, n: usize) -> Vec<Delivery> {
    let mut out = Vec::new();
    let mut events = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while events < n {
        match tokio::time::timeout_at(deadline, sub.recv()).await {
            Ok(Some(delivery)) => {
                if matches!(delivery, Delivery::Event(_)) {
                    events += 1;
                }
                out.push(delivery);
            }
            Ok(None) => panic!("the subscription ended after {events} of {n} events"),
            Err(_) => panic!("only {events} of {n} events in 20 s"),
        }
    }
    out
}

/// Everything queued now, without waiting.
pub fn drain(sub: &mut Subscription) -> Vec<Delivery> {
    std::iter::from_fn(|| sub.try_next()).collect()
}

/// The seqs of `deliveries`, failing on a lag.
pub fn seqs(deliveries: &[Delivery]) -> Vec<u64> {
    deliveries
        .iter()
        .map(|d| match d {
            Delivery::Event(e) => e.seq(),
            Delivery::Lagged(l) => panic!("unexpected lag {l:?}"),
        })
        .collect()
}
