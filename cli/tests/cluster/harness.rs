//! A cluster on 127.0.0.1 for the end-to-end tests: a throw-away `redis-server`, a fresh
//! PostgreSQL database, `vigil serve` nodes (the cargo-built binary) and `haproxy` in front of
//! them, configured from `haproxy.cfg` beside this file (the README shows the same text).
//!
//! A test that stops and starts PostgreSQL runs one of its own instead ([`OwnPostgres`]:
//! `initdb` and `pg_ctl` into a temporary directory, on a free loopback port): the shared one
//! serves other tests at the same time.
//!
//! Every process is a [`Drop`] guard: killed when the test ends, also on a panic or a timeout.
//! A missing `redis-server`, `haproxy`, `VIGIL_TEST_DATABASE_URL` (or, for [`OwnPostgres`],
//! PostgreSQL's server programs) skips a test with a visible `skipping:` line, or fails it
//! under `VIGIL_E2E=required`.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write as _};
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

/// The variable naming the PostgreSQL server the tests create their databases on.
pub const DATABASE_VAR: &str = "VIGIL_TEST_DATABASE_URL";

/// The HAProxy configuration template; `{{bind}}`, `{{servers}}` and `{{sticky_servers}}` are
/// filled in by [`haproxy_config`].
pub const HAPROXY_TEMPLATE: &str = include_str!("haproxy.cfg");

/// Whether a missing tool fails the test instead of skipping it.
pub fn required() -> bool {
    std::env::var("VIGIL_E2E").is_ok_and(|v| v == "required")
}

/// Prints a visible skip line (straight to stderr, past the test harness's capture), or fails
/// under `VIGIL_E2E=required`.
pub fn skip(test: &str, why: &str) {
    assert!(!required(), "VIGIL_E2E=required but {why}");
    let _ = writeln!(std::io::stderr(), "skipping: {test}: {why}");
}

/// `haproxy` from the path, or where Debian installs it (`/usr/sbin` is not on every user's path).
pub fn haproxy_bin() -> PathBuf {
    let debian = Path::new("/usr/sbin/haproxy");
    if !installed("haproxy", "-v") && debian.exists() {
        debian.to_path_buf()
    } else {
        PathBuf::from("haproxy")
    }
}

fn installed(program: impl AsRef<std::ffi::OsStr>, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether `redis-server` and `haproxy` are installed (after the skip line if not).
fn tools(test: &str) -> bool {
    if !installed("redis-server", "--version") {
        skip(test, "redis-server is not installed");
        return false;
    }
    if !installed(haproxy_bin(), "-v") {
        skip(test, "haproxy is not installed");
        return false;
    }
    true
}

/// What a cluster test needs: `redis-server`, `haproxy` and a PostgreSQL server. The database
/// server's URL, or `None` after the skip line.
pub fn prerequisites(test: &str) -> Option<String> {
    if !tools(test) {
        return None;
    }
    match std::env::var(DATABASE_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            skip(
                test,
                &format!(
                    "no PostgreSQL (set {DATABASE_VAR}=postgres://USER@127.0.0.1:PORT/postgres)"
                ),
            );
            None
        }
    }
}

/// A free loopback port (free when this returns; the caller binds it soon after).
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A name no other test of this run uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Kills a child and reaps it.
fn kill(child: &mut Child) {
    if matches!(child.try_wait(), Ok(None)) {
        let _ = child.kill();
    }
    let _ = child.wait();
}

// ---------------------------------------------------------------------------------------------
// Redis: the event-bus tests' throw-away `redis-server` (as `server/tests/cluster.rs` uses it).

#[path = "../../../event-bus/tests/common/mod.rs"]
mod redis_server;

pub use redis_server::RedisServer;

/// A `redis-server` on a free loopback port, without persistence (after [`prerequisites`]
/// found one installed).
pub fn redis(test: &str) -> RedisServer {
    // It waits for the server synchronously: off the runtime's workers.
    tokio::task::block_in_place(|| RedisServer::start(test))
        .expect("redis-server is installed (prerequisites checked)")
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    format!("{}/{name}{query}", &base[..path])
}

async fn admin_execute(server: &str, sql: &str) -> Result<(), tokio_postgres::Error> {
    let (client, connection) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_postgres::connect(server, tokio_postgres::NoTls),
    )
    .await
    .expect("connecting to the test PostgreSQL timed out")?;
    let driver = tokio::spawn(connection);
    let result = client.batch_execute(sql).await;
    drop(client);
    let _ = driver.await;
    result
}

/// A fresh database on the test server, dropped (connections and all) with this guard.
pub struct Database {
    server: String,
    name: String,
    /// The URL nodes and `vigil token` connect to.
    pub url: String,
}

impl Database {
    /// Creates one.
    pub async fn create(server: &str) -> Database {
        let name = unique("vigil_e2e");
        admin_execute(server, &format!("CREATE DATABASE {name}"))
            .await
            .expect("CREATE DATABASE on the test server");
        Database {
            server: server.to_owned(),
            url: with_database(server, &name),
            name,
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // Drop may run inside the test's runtime: use a runtime of its own on another thread.
        let (server, name) = (self.server.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                tokio::time::timeout(
                    Duration::from_secs(20),
                    admin_execute(
                        &server,
                        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                    ),
                )
                .await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(Ok(())))) {
            let _ = writeln!(
                std::io::stderr(),
                "warning: database {} was not dropped",
                self.name
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A PostgreSQL server of the test's own, to stop and start again

/// What a test with a PostgreSQL of its own needs: `redis-server`, `haproxy`, and PostgreSQL's
/// server programs (when running as root, also the `postgres` user: the server refuses to run
/// as root). The programs' directory, or `None` after the skip line.
pub fn own_postgres_prerequisites(test: &str) -> Option<PathBuf> {
    if !tools(test) {
        return None;
    }
    let Some(bindir) = postgres_bindir() else {
        skip(
            test,
            "PostgreSQL's initdb and pg_ctl are not installed (apt-get install postgresql)",
        );
        return None;
    };
    if running_as_root() && !installed("id", "postgres") {
        skip(test, "running as root and there is no `postgres` user");
        return None;
    }
    Some(bindir)
}

/// Where `initdb` and `pg_ctl` are: `pg_config --bindir` when they are there, else the newest
/// `/usr/lib/postgresql/VERSION/bin` (Debian keeps them off the path).
fn postgres_bindir() -> Option<PathBuf> {
    let has_programs = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    if let Some(dir) = from_pg_config.filter(|d| has_programs(d)) {
        return Some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_programs(dir))
        .collect();
    versions.sort();
    versions.pop().map(|(_, dir)| dir)
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// `text` quoted for `sh`.
fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// A PostgreSQL server in a temporary directory on a free loopback port, trust authentication,
/// superuser `postgres`, no fsync (nothing here must survive a crash of the machine). Run as
/// the `postgres` user (through `su`) when the test runs as root, as `.ci/daemons.sh` does.
/// [`OwnPostgres::stop`] and [`OwnPostgres::start`] stop it and start it again on the same port
/// and data directory; dropping it stops it at once (`-m immediate`).
pub struct OwnPostgres {
    bindir: PathBuf,
    /// Its port.
    pub port: u16,
    as_postgres: bool,
    running: bool,
    dir: tempfile::TempDir,
}

impl OwnPostgres {
    /// Creates a cluster with `initdb` and starts it (at most 60 s for both).
    pub fn create(bindir: &Path) -> OwnPostgres {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let as_postgres = running_as_root();
        let mut pg = OwnPostgres {
            bindir: bindir.to_owned(),
            port: free_port(),
            as_postgres,
            running: false,
            dir,
        };
        std::fs::create_dir(pg.home()).expect("a directory for PostgreSQL");
        if as_postgres {
            // The server runs as `postgres`: it must reach into the temporary directory (which
            // only root may list) and own its own.
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(pg.dir.path(), std::fs::Permissions::from_mode(0o711))
                .expect("chmod the temporary directory");
            let chown = Command::new("chown")
                .arg("postgres")
                .arg(pg.home())
                .status()
                .expect("chown runs");
            assert!(chown.success(), "chown postgres {}", pg.home().display());
        }
        let data = pg.data();
        pg.pg(&[
            "initdb",
            "-D",
            &data,
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ]);
        pg.start();
        pg
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("pg")
    }

    fn data(&self) -> String {
        self.home().join("data").display().to_string()
    }

    fn log_path(&self) -> PathBuf {
        self.home().join("log")
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// One of PostgreSQL's programs with its arguments, run as `postgres` when we are root.
    fn command(&self, args: &[&str]) -> Command {
        let program = self.bindir.join(args[0]).display().to_string();
        if self.as_postgres {
            let line: Vec<String> = std::iter::once(program.as_str())
                .chain(args[1..].iter().copied())
                .map(sh_quote)
                .collect();
            let mut su = Command::new("su");
            su.args(["postgres", "-s", "/bin/sh", "-c", &line.join(" ")]);
            su
        } else {
            let mut direct = Command::new(&program);
            direct.args(&args[1..]);
            direct
        }
    }

    /// Runs one of PostgreSQL's programs; fails the test with its output and the server's log
    /// when it fails.
    fn pg(&self, args: &[&str]) {
        // pg_ctl's own limit (`-t`) bounds the wait; initdb takes seconds.
        let out = self
            .command(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{} runs: {e}", args[0]));
        assert!(
            out.status.success(),
            "{args:?} failed: {}{}
--- server log ---
{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log_text()
        );
    }

    /// Starts it (again), on its port and data directory, and waits until it takes connections.
    pub fn start(&mut self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            self.port,
            self.home().display()
        );
        let (data, log) = (self.data(), self.log_path().display().to_string());
        self.pg(&[
            "pg_ctl", "-D", &data, "-l", &log, "-o", &options, "-w", "-t", "30", "start",
        ]);
        self.running = true;
    }

    /// A fast shutdown (`pg_ctl -m fast`): open transactions are rolled back, every connection
    /// is closed, then the server exits. Waits (at most 30 s) until it has.
    pub fn stop(&mut self) {
        let data = self.data();
        self.pg(&[
            "pg_ctl", "-D", &data, "-m", "fast", "-w", "-t", "30", "stop",
        ]);
        self.running = false;
    }

    /// A superuser URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        if self.running {
            let data = self.data();
            // Not `pg`: no panic while dropping, whatever happens.
            let status = self
                .command(&["pg_ctl", "-D", &data, "-m", "immediate", "-w", "stop"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if !status.is_ok_and(|s| s.success()) {
                let _ = writeln!(
                    std::io::stderr(),
                    "warning: the test's PostgreSQL in {} may still run",
                    self.dir.path().display()
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// vigil serve

/// What a node is started with.
#[derive(Clone)]
pub struct NodeConfig {
    /// PostgreSQL URL.
    pub database_url: String,
    /// Redis URL.
    pub redis_url: String,
    /// `VIGIL_CLUSTER_NAME`.
    pub cluster_name: String,
}

/// One `vigil serve` process in its own data directory, on a port of its own.
pub struct Node {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The admin token this node printed on a first start, if it did.
    pub first_token: Option<String>,
    /// Everything it wrote on stderr so far.
    pub log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

/// The `vigil` binary under test.
pub fn vigil() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vigil"));
    // Nothing of the caller's environment or working directory configures it.
    for (key, _) in std::env::vars() {
        if key.starts_with("VIGIL_") {
            command.env_remove(key);
        }
    }
    command.env("RUST_LOG", "warn");
    command
}

impl Node {
    /// Spawns `vigil serve` on a free port without waiting for it (see [`Node::ready`]).
    pub fn spawn(config: &NodeConfig) -> Node {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut child = vigil()
            .current_dir(dir.path())
            .env("VIGIL_CLUSTER_NAME", &config.cluster_name)
            .args(["serve", "--bind", "127.0.0.1:0", "--no-local-agent"])
            .args(["--scope", "127.0.0.1"])
            .args(["--database-url", &config.database_url])
            .args(["--redis-url", &config.redis_url])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("vigil serve starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Node {
            child,
            addr: String::new(),
            first_token: None,
            log,
            _dir: dir,
        }
    }

    /// Waits (at most 60 s) until the node has printed its address and answers 200 on
    /// `/readyz`; picks up the first-start token.
    pub async fn ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.addr.is_empty() {
            if let Some(addr) = self.scan_log() {
                self.addr = addr;
                break;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("vigil serve exited with {status}: {}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "vigil serve printed no address in 60 s: {}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        while http(&self.addr, "GET", "/readyz", None, None)
            .await
            .map_or(true, |r| r.status != 200)
        {
            assert!(
                Instant::now() < deadline,
                "{} was not ready in 60 s: {}",
                self.addr,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The token is printed after the address: give the reader thread a moment.
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.scan_log();
    }

    fn scan_log(&mut self) -> Option<String> {
        let log = self.log.lock().unwrap();
        let mut addr = None;
        let mut after_first_start = false;
        for line in log.iter() {
            if let Some(rest) = line.split("listening on http://").nth(1) {
                addr = rest.split_whitespace().next().map(str::to_owned);
            }
            if line.contains("First start") {
                after_first_start = true;
            }
            let trimmed = line.trim();
            if after_first_start
                && self.first_token.is_none()
                && trimmed.starts_with("vgl_")
                && !trimmed.contains(' ')
            {
                self.first_token = Some(trimmed.to_owned());
            }
        }
        addr
    }

    /// Starts a node and waits until it is ready.
    pub async fn start(config: &NodeConfig) -> Node {
        let mut node = Node::spawn(config);
        node.ready().await;
        node
    }

    /// Everything it printed.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGKILL: no goodbye to anyone.
    pub fn kill(&mut self) {
        kill(&mut self.child);
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

// ---------------------------------------------------------------------------------------------
// HAProxy

/// The configuration text for `bind` in front of `servers` (name, address), from the template.
pub fn haproxy_config(bind: &str, servers: &[(&str, &str)]) -> String {
    let plain: Vec<String> = servers
        .iter()
        .map(|(name, addr)| format!("    server {name} {addr}"))
        .collect();
    let sticky: Vec<String> = servers
        .iter()
        .map(|(name, addr)| {
            format!("    server {name} {addr} track vigil_nodes/{name} cookie {name}")
        })
        .collect();
    HAPROXY_TEMPLATE
        .replace("{{bind}}", bind)
        .replace("{{servers}}", &plain.join("\n"))
        .replace("{{sticky_servers}}", &sticky.join("\n"))
}

/// `haproxy` in the foreground, in front of some nodes.
pub struct Haproxy {
    child: Child,
    /// `127.0.0.1:PORT` of its frontend.
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    /// Starts it in front of `nodes` and waits (at most 30 s) until it routes to every one.
    pub async fn start(nodes: &[&Node]) -> Haproxy {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let addr = format!("127.0.0.1:{}", free_port());
        let names: Vec<String> = (1..=nodes.len()).map(|i| format!("node{i}")).collect();
        let servers: Vec<(&str, &str)> = names
            .iter()
            .zip(nodes)
            .map(|(name, node)| (name.as_str(), node.addr.as_str()))
            .collect();
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, haproxy_config(&addr, &servers)).expect("write haproxy.cfg");
        let check = Command::new(haproxy_bin())
            .arg("-c")
            .arg("-f")
            .arg(&path)
            .output()
            .expect("haproxy -c runs");
        assert!(
            check.status.success(),
            "haproxy rejects the configuration: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let log = std::fs::File::create(dir.path().join("haproxy.log")).expect("a log file");
        let child = Command::new(haproxy_bin())
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("haproxy starts");
        let mut haproxy = Haproxy {
            child,
            addr,
            _dir: dir,
        };
        haproxy.wait_routes_to(nodes.len()).await;
        haproxy
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("haproxy.log")).unwrap_or_default()
    }

    /// Waits (at most 30 s) until HAProxy sees `n` nodes up.
    pub async fn wait_routes_to(&mut self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.servers_up().await < n {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("haproxy exited with {status}: {}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "haproxy did not route to {n} nodes in 30 s: {}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// How many distinct nodes answer through the frontend: counted by the `vigil_node` cookie
    /// HAProxy sets on `/socket.io/` answers, naming the node it chose (only nodes that pass
    /// the health check are chosen).
    async fn servers_up(&self) -> usize {
        let mut cookies = std::collections::HashSet::new();
        for _ in 0..8 {
            let answer = http(
                &self.addr,
                "GET",
                "/socket.io/?EIO=4&transport=polling",
                None,
                None,
            )
            .await;
            if let Some(cookie) = answer.as_ref().ok().and_then(|r| r.header("set-cookie")) {
                cookies.insert(cookie.split(';').next().unwrap_or_default().to_owned());
            }
        }
        cookies.len()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

// ---------------------------------------------------------------------------------------------
// The cluster

/// Redis, a database, some nodes, HAProxy in front of them.
pub struct Cluster {
    /// In reverse order of need, so that nodes go before what they use.
    pub haproxy: Option<Haproxy>,
    /// The nodes.
    pub nodes: Vec<Node>,
    /// The admin token the first node printed.
    pub admin: String,
    /// What nodes are started with.
    pub config: NodeConfig,
    /// The bus.
    pub redis: RedisServer,
    /// The state.
    pub database: Database,
}

impl Cluster {
    /// Starts `n` nodes (the first alone, so that it prints the admin token), then HAProxy.
    pub async fn start(server: &str, n: usize) -> Cluster {
        let database = Database::create(server).await;
        let redis = redis("cluster");
        let config = NodeConfig {
            database_url: database.url.clone(),
            redis_url: redis.url(),
            cluster_name: unique("e2e"),
        };
        let first = Node::start(&config).await;
        let admin = first.first_token.clone().unwrap_or_else(|| {
            panic!(
                "the first node printed no admin token: {}",
                first.log_text()
            )
        });
        let mut nodes = vec![first];
        for _ in 1..n {
            nodes.push(Node::start(&config).await);
        }
        let haproxy = Haproxy::start(&nodes.iter().collect::<Vec<_>>()).await;
        Cluster {
            haproxy: Some(haproxy),
            nodes,
            admin,
            config,
            redis,
            database,
        }
    }

    /// HAProxy's frontend address.
    pub fn front(&self) -> &str {
        &self.haproxy.as_ref().expect("haproxy runs").addr
    }

    /// Mints a token of `role` through `addr`.
    pub async fn token(&self, addr: &str, role: &str) -> (String, String) {
        let r = http(
            addr,
            "POST",
            "/api/tokens",
            Some(&self.admin),
            Some(&json!({"role": role, "label": unique(role)})),
        )
        .await
        .expect("POST /api/tokens");
        assert!(
            r.status == 200 || r.status == 201,
            "{} {}",
            r.status,
            r.body
        );
        let v = r.json();
        (
            v["id"].as_str().expect("an id").to_owned(),
            v["token"].as_str().expect("a token").to_owned(),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// An HTTP answer.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header lines, lower-cased names.
    pub headers: Vec<(String, String)>,
    /// The body (a chunked body is de-chunked).
    pub body: String,
}

impl Response {
    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// The first header called `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            return body.to_owned();
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// One HTTP/1.1 request on a new connection (`Connection: close`), bounded to 10 s.
pub async fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> std::io::Result<Response> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let body = body.map(Value::to_string).unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("no status line in {text:?}")))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let chunked = headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
        let body = if chunked {
            dechunk(body)
        } else {
            body.to_owned()
        };
        Ok(Response {
            status,
            headers,
            body,
        })
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| std::io::Error::other(format!("{method} {addr}{path} took over 10 s")))?
}

/// Like [`http`], but fails the test on a transport error or an unexpected status.
pub async fn call(addr: &str, method: &str, path: &str, token: &str, body: Option<Value>) -> Value {
    let r = http(addr, method, path, Some(token), body.as_ref())
        .await
        .unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}"));
    assert!(
        (200..300).contains(&r.status),
        "{method} {path} on {addr}: {} {}",
        r.status,
        r.body
    );
    r.json()
}

// ---------------------------------------------------------------------------------------------
// /ws

/// A `/ws` client.
pub struct Ws {
    stream: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
    /// The `welcome` message.
    pub welcome: Value,
    /// Messages read while waiting for an answer, handed out first by the readers.
    pending: std::collections::VecDeque<Value>,
}

/// How a socket ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// A close frame with this code and reason.
    Closed(u16, String),
    /// The connection dropped without one.
    Dropped,
}

impl Ws {
    /// Connects to `addr` with the token on the upgrade and reads `welcome`.
    pub async fn connect(addr: &str, token: &str) -> Ws {
        let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let (stream, _) = tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async(request),
        )
        .await
        .unwrap_or_else(|_| panic!("/ws on {addr}: no upgrade in 10 s"))
        .unwrap_or_else(|e| panic!("/ws on {addr}: {e}"));
        let mut ws = Ws {
            stream,
            welcome: Value::Null,
            pending: std::collections::VecDeque::new(),
        };
        let welcome = ws.next().await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        ws.welcome = welcome;
        ws
    }

    /// Sends one JSON message.
    pub async fn send(&mut self, message: Value) {
        self.stream
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("send on /ws");
    }

    /// The next JSON message, failing after 20 s or on a close.
    pub async fn next(&mut self) -> Value {
        match self.next_within(Duration::from_secs(20)).await {
            Ok(Some(v)) => v,
            Ok(None) => panic!("/ws: nothing in 20 s"),
            Err(ended) => panic!("/ws ended: {ended:?}"),
        }
    }

    /// The next JSON message within `limit` (`Ok(None)` when none came), or how the socket
    /// ended.
    pub async fn next_within(&mut self, limit: Duration) -> Result<Option<Value>, Ended> {
        if let Some(m) = self.pending.pop_front() {
            return Ok(Some(m));
        }
        self.read_within(limit).await
    }

    /// Like [`Ws::next_within`], straight from the socket.
    async fn read_within(&mut self, limit: Duration) -> Result<Option<Value>, Ended> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return Ok(None),
                Ok(None) | Ok(Some(Err(_))) => return Err(Ended::Dropped),
                Ok(Some(Ok(Message::Text(text)))) => {
                    return Ok(Some(serde_json::from_str(&text).expect("JSON on /ws")));
                }
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return Err(frame.map_or(Ended::Dropped, |CloseFrame { code, reason }| {
                        Ended::Closed(code.into(), reason.to_string())
                    }));
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// Subscribes to `rooms` (with `since` when given) and returns what came before the `ack`:
    /// replayed events and the `recovered` message.
    pub async fn subscribe(&mut self, rooms: &[&str], since: Option<(&str, u64)>) -> Vec<Value> {
        let mut message = json!({"type": "subscribe", "id": "sub", "rooms": rooms});
        if let Some((epoch, seq)) = since {
            message["since"] = json!({"epoch": epoch, "seq": seq});
        }
        self.send(message).await;
        let mut before = Vec::new();
        loop {
            let m = self.next().await;
            if m["type"] == "ack" && m["id"] == "sub" {
                return before;
            }
            assert_ne!(m["type"], "error", "{m}");
            before.push(m);
        }
    }

    /// Publishes and returns the acknowledged `seq`.
    pub async fn publish(&mut self, kind: &str, room: &str, data: Value) -> u64 {
        self.send(
            json!({"type": "publish", "id": "pub", "kind": kind, "room": room, "data": data}),
        )
        .await;
        loop {
            let m = match self.read_within(Duration::from_secs(20)).await {
                Ok(Some(m)) => m,
                other => panic!("no ack of a publish: {other:?}"),
            };
            if m["type"] == "ack" && m["id"] == "pub" {
                return m["seq"].as_u64().expect("a seq");
            }
            assert_ne!(m["type"], "error", "{m}");
            // Its own event may come back before the ack: keep it for the readers.
            self.pending.push_back(m);
        }
    }

    /// The next `event` envelope (skipping other messages), within 20 s.
    pub async fn event(&mut self) -> Value {
        loop {
            let m = self.next().await;
            if m["type"] == "event" {
                return m["event"].clone();
            }
        }
    }

    /// Events until one matches `done` (returned last), within `limit`.
    pub async fn events_until(
        &mut self,
        limit: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_within(left).await {
                Ok(Some(m)) if m["type"] == "event" => {
                    let event = m["event"].clone();
                    let stop = done(&event);
                    out.push(event);
                    if stop {
                        return out;
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => panic!("no matching event in {limit:?} ({} events seen)", out.len()),
                Err(ended) => panic!("/ws ended while waiting: {ended:?}"),
            }
        }
    }
}

/// Runs a test body bounded by `limit`; the guards it owns are dropped when it ends, also on a
/// timeout (its future is dropped) or a panic.
pub fn run<F: std::future::Future<Output = ()>>(limit: Duration, body: F) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        if tokio::time::timeout(limit, body).await.is_err() {
            panic!("the test did not finish in {limit:?}");
        }
    });
}

/// The Python scripts beside this file.
pub fn script_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/cluster")
        .join(name)
}
