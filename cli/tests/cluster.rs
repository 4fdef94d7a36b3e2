//! Many nodes end to end (issue 15), on 127.0.0.1 only: two `vigil serve` processes sharing a
//! throw-away `redis-server` and a fresh PostgreSQL database, with `haproxy` in front of them,
//! configured from the template the README shows (`tests/cluster/haproxy.cfg`).
//!
//! Needs `redis-server`, `haproxy` and `VIGIL_TEST_DATABASE_URL` (a PostgreSQL superuser URL,
//! e.g. `postgres://postgres@127.0.0.1:5432/postgres`); without them every test prints
//! `skipping: …` and passes, unless `VIGIL_E2E=required`. The Socket.IO test needs
//! python-socketio as `server/tests/socketio.rs` does. Every test is bounded in time.

#[path = "cluster/harness.rs"]
mod harness;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harness::{Cluster, Ended, Node, NodeConfig, Ws, call, http, run};
use serde_json::{Value, json};

/// How long one cluster test may take, start to end.
const LIMIT: Duration = Duration::from_secs(180);

/// Publishes through `POST /api/events` on `addr`; the event's seq.
async fn post_event(addr: &str, token: &str, n: u64) -> u64 {
    let v = call(
        addr,
        "POST",
        "/api/events",
        token,
        Some(json!({"kind": "chat_message", "room": "chat", "data": {"message": format!("n{n}"), "n": n}})),
    )
    .await;
    v["seq"]
        .as_u64()
        .or_else(|| v["event"]["seq"].as_u64())
        .unwrap_or_else(|| panic!("no seq in {v}"))
}

fn seqs(events: &[Value]) -> Vec<u64> {
    events.iter().map(|e| e["seq"].as_u64().unwrap()).collect()
}

#[test]
fn events_published_on_one_node_reach_every_node_and_resume_on_the_other() {
    let Some(server) = harness::prerequisites("events across nodes") else {
        return;
    };
    run(LIMIT, async {
        let cluster = Cluster::start(&server, 2).await;
        let (a, b, front) = (
            &cluster.nodes[0].addr,
            &cluster.nodes[1].addr,
            cluster.front(),
        );
        let (_, operator) = cluster.token(a, "operator").await;

        let mut on_a = Ws::connect(a, &operator).await;
        let mut on_b = Ws::connect(b, &operator).await;
        let mut through_front = Ws::connect(front, &operator).await;
        // One bus: every node tells the same epoch.
        assert_eq!(on_a.welcome["epoch"], on_b.welcome["epoch"]);
        assert_eq!(on_a.welcome["epoch"], through_front.welcome["epoch"]);
        for ws in [&mut on_a, &mut on_b, &mut through_front] {
            ws.subscribe(&["chat"], None).await;
        }

        // Published on B over REST, on A over /ws, through HAProxy over REST.
        let mut published = vec![post_event(b, &operator, 1).await];
        published.push(
            on_a.publish("chat_message", "chat", json!({"message": "n2", "n": 2}))
                .await,
        );
        published.push(post_event(front, &operator, 3).await);
        assert!(published.windows(2).all(|w| w[0] < w[1]), "{published:?}");
        for (name, ws) in [
            ("A", &mut on_a),
            ("B", &mut on_b),
            ("front", &mut through_front),
        ] {
            let mut got = Vec::new();
            for _ in 0..3 {
                got.push(ws.event().await);
            }
            assert_eq!(seqs(&got), published, "node {name}");
            let ns: Vec<u64> = got
                .iter()
                .map(|e| e["data"]["n"].as_u64().unwrap())
                .collect();
            assert_eq!(ns, [1, 2, 3], "node {name}");
        }

        // A client of A goes away; what it missed is published on B; it resumes on B.
        let epoch = on_a.welcome["epoch"].as_str().unwrap().to_owned();
        let last = *published.last().unwrap();
        drop(on_a);
        let mut missed = Vec::new();
        for n in 4..=6 {
            missed.push(post_event(b, &operator, n).await);
        }
        let mut resumed = Ws::connect(b, &operator).await;
        let before_ack = resumed.subscribe(&["chat"], Some((&epoch, last))).await;
        let replayed: Vec<Value> = before_ack
            .iter()
            .filter(|m| m["type"] == "event")
            .map(|m| m["event"].clone())
            .collect();
        assert_eq!(seqs(&replayed), missed, "exactly the missed events");
        let recovered = before_ack
            .iter()
            .find(|m| m["type"] == "recovered")
            .expect("a recovered message");
        assert_eq!(recovered["recovered"], true, "{recovered}");
        assert_eq!(recovered["replayed"], 3, "{recovered}");
        // Live events keep coming after the replay.
        let next = post_event(a, &operator, 7).await;
        assert_eq!(resumed.event().await["seq"], next);
    });
}

#[test]
fn a_token_minted_on_one_node_works_on_the_other_and_its_revocation_closes_sockets_everywhere() {
    let Some(server) = harness::prerequisites("tokens across nodes") else {
        return;
    };
    run(LIMIT, async {
        let cluster = Cluster::start(&server, 2).await;
        let (a, b) = (&cluster.nodes[0].addr, &cluster.nodes[1].addr);
        let (id, viewer) = cluster.token(a, "viewer").await;
        // At once: no waiting for a reload.
        let r = http(b, "GET", "/stats", Some(&viewer), None).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);

        let mut on_b = Ws::connect(b, &viewer).await;
        let mut through_front = Ws::connect(cluster.front(), &viewer).await;
        on_b.subscribe(&["chat"], None).await;
        through_front.subscribe(&["chat"], None).await;

        let started = Instant::now();
        call(
            a,
            "DELETE",
            &format!("/api/tokens/{id}"),
            &cluster.admin,
            None,
        )
        .await;
        for (name, ws) in [("B", &mut on_b), ("front", &mut through_front)] {
            let ended = ws
                .next_within(Duration::from_secs(10))
                .await
                .expect_err("the socket is closed");
            assert_eq!(ended, Ended::Closed(4001, "revoked".into()), "{name}");
        }
        let took = started.elapsed();
        // The control channel makes it immediate; the database re-read (every 2 s) would not.
        assert!(
            took < Duration::from_millis(1500),
            "revocation took {took:?}"
        );
        for addr in [a, b] {
            let r = http(addr, "GET", "/stats", Some(&viewer), None)
                .await
                .unwrap();
            assert_eq!(r.status, 401, "{addr}: {}", r.body);
        }
    });
}

#[test]
fn two_nodes_starting_together_on_an_empty_database_make_exactly_one_admin_token() {
    let Some(server) = harness::prerequisites("one admin token") else {
        return;
    };
    run(LIMIT, async {
        let database = harness::Database::create(&server).await;
        let redis = harness::redis("one admin token");
        let config = NodeConfig {
            database_url: database.url.clone(),
            redis_url: redis.url(),
            cluster_name: harness::unique("e2e"),
        };
        let mut nodes = [Node::spawn(&config), Node::spawn(&config)];
        for node in &mut nodes {
            node.ready().await;
        }
        let printed: Vec<String> = nodes.iter().filter_map(|n| n.first_token.clone()).collect();
        assert_eq!(
            printed.len(),
            1,
            "admin tokens printed: {printed:?}\n--- A\n{}\n--- B\n{}",
            nodes[0].log_text(),
            nodes[1].log_text()
        );
        for node in &nodes {
            let r = http(&node.addr, "GET", "/api/tokens", Some(&printed[0]), None)
                .await
                .unwrap();
            assert_eq!(r.status, 200, "{}", r.body);
            let tokens = r.json()["tokens"].as_array().cloned().unwrap_or_default();
            assert_eq!(tokens.len(), 1, "{tokens:?}");
            assert_eq!(tokens[0]["role"], "admin");
        }
    });
}

/// `vigil` run to completion (at most 30 s); its stdout.
fn vigil_output(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut command = harness::vigil();
    command.args(args).stdin(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vigil runs");
    let deadline = Instant::now() + Duration::from_secs(30);
    while matches!(child.try_wait(), Ok(None)) {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("vigil {args:?} did not finish in 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "vigil {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn vigil_token_on_the_shared_database_sees_and_changes_the_clusters_tokens() {
    let Some(server) = harness::prerequisites("vigil token --database-url") else {
        return;
    };
    run(LIMIT, async {
        let cluster = Cluster::start(&server, 2).await;
        let (a, b) = (&cluster.nodes[0].addr, &cluster.nodes[1].addr);
        let (id, _) = cluster.token(b, "operator").await;
        let url = cluster.config.database_url.clone();

        let listed = tokio::task::block_in_place(|| {
            vigil_output(&["token", "list", "--json", "--database-url", &url], &[])
        });
        let listed: Vec<Value> = serde_json::from_str(&listed).expect("JSON");
        let ids: HashSet<&str> = listed.iter().filter_map(|t| t["id"].as_str()).collect();
        assert!(ids.contains(id.as_str()), "{listed:?}");
        assert_eq!(
            listed.len(),
            2,
            "the admin token and the operator: {listed:?}"
        );

        // Minted by the command line: works on a node at once.
        let created = tokio::task::block_in_place(|| {
            vigil_output(
                &[
                    "token",
                    "create",
                    "--role",
                    "viewer",
                    "--label",
                    "cli",
                    "--json",
                    "--database-url",
                    &url,
                ],
                &[],
            )
        });
        let created: Value = serde_json::from_str(&created).expect("JSON");
        let secret = created["token"].as_str().unwrap().to_owned();
        let r = http(a, "GET", "/stats", Some(&secret), None).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);

        // Revoked by the command line with the cluster's Redis: sockets on every node close.
        let mut on_a = Ws::connect(a, &secret).await;
        let mut on_b = Ws::connect(b, &secret).await;
        let redis_url = cluster.config.redis_url.clone();
        let name = cluster.config.cluster_name.clone();
        let token_id = created["id"].as_str().unwrap().to_owned();
        tokio::task::block_in_place(|| {
            vigil_output(
                &[
                    "token",
                    "revoke",
                    &token_id,
                    "--database-url",
                    &url,
                    "--redis-url",
                    &redis_url,
                ],
                &[("VIGIL_CLUSTER_NAME", &name)],
            )
        });
        for ws in [&mut on_a, &mut on_b] {
            let ended = ws
                .next_within(Duration::from_secs(10))
                .await
                .expect_err("closed");
            assert_eq!(ended, Ended::Closed(4001, "revoked".into()));
        }
    });
}

#[test]
fn redis_restarted_without_its_data_gives_a_new_epoch_and_old_positions_are_not_recovered() {
    let Some(server) = harness::prerequisites("redis restart") else {
        return;
    };
    run(LIMIT, async {
        let mut cluster = Cluster::start(&server, 2).await;
        let (a, b) = (cluster.nodes[0].addr.clone(), cluster.nodes[1].addr.clone());
        let (_, operator) = cluster.token(&a, "operator").await;
        let mut on_a = Ws::connect(&a, &operator).await;
        on_a.subscribe(&["chat"], None).await;
        let mut last = 0;
        for n in 1..=3 {
            last = post_event(&b, &operator, n).await;
        }
        for _ in 1..=3 {
            on_a.event().await;
        }
        let old_epoch = on_a.welcome["epoch"].as_str().unwrap().to_owned();

        // Redis goes away: both nodes say they are not ready, so a balancer routes around them.
        // A node notices when its writer does: at the latest when it next publishes, so each
        // node is asked to publish (refused while Redis is away) until it says so.
        cluster.redis.stop();
        for addr in [&a, &b] {
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut nudged = false;
            while http(addr, "GET", "/readyz", None, None)
                .await
                .is_ok_and(|r| r.status == 200)
            {
                assert!(
                    Instant::now() < deadline,
                    "{addr} stayed ready without Redis"
                );
                if !nudged && Instant::now() + Duration::from_secs(15) > deadline {
                    let r = http(
                        addr,
                        "POST",
                        "/api/events",
                        Some(&operator),
                        Some(&json!({"kind": "chat_message", "room": "chat", "data": {"message": "lost"}})),
                    )
                    .await;
                    eprintln!(
                        "{addr}: still ready 5 s after Redis went away; a publish got {:?}",
                        r.map(|r| r.status)
                    );
                    nudged = true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }

        // It comes back empty: the nodes carry on under a new epoch.
        tokio::task::block_in_place(|| cluster.redis.restart());
        for addr in [&a, &b] {
            let deadline = Instant::now() + Duration::from_secs(40);
            while !http(addr, "GET", "/readyz", None, None)
                .await
                .is_ok_and(|r| r.status == 200)
            {
                assert!(Instant::now() < deadline, "{addr} not ready again in 40 s");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let mut fresh = Ws::connect(&a, &operator).await;
        let new_epoch = fresh.welcome["epoch"].as_str().unwrap().to_owned();
        assert_ne!(
            new_epoch, old_epoch,
            "a new epoch after Redis lost its data"
        );
        let before_ack = fresh.subscribe(&["chat"], Some((&old_epoch, last))).await;
        let recovered = before_ack
            .iter()
            .find(|m| m["type"] == "recovered")
            .expect("a recovered message");
        assert_eq!(recovered["recovered"], false, "{recovered}");
        assert_eq!(recovered["epoch"], new_epoch.as_str(), "{recovered}");

        // Publishing works again on every node and reaches the others.
        let seq = post_event(&b, &operator, 10).await;
        let event = fresh.event().await;
        assert_eq!(event["seq"], seq);
        assert_eq!(event["epoch"], new_epoch.as_str());
        let mut on_b = Ws::connect(&b, &operator).await;
        assert_eq!(on_b.welcome["epoch"], new_epoch.as_str());
        on_b.subscribe(&["chat"], None).await;
        let seq = post_event(&a, &operator, 11).await;
        assert_eq!(on_b.event().await["seq"], seq);
        // The old socket either was ended when the epoch changed or carries on in the new one.
        if let Ok(Some(m)) = on_a.next_within(Duration::from_millis(200)).await {
            assert!(
                m["type"] != "event" || m["event"]["epoch"] == new_epoch.as_str(),
                "an old-epoch event after the restart: {m}"
            );
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Socket.IO

/// Whether python-socketio and aiohttp are importable (the rule of `server/tests/socketio.rs`).
fn python_ready() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import socketio, aiohttp"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        harness::skip(
            "socket.io across nodes",
            "python-socketio is not installed (pip install 'python-socketio[asyncio_client]' aiohttp)",
        );
    }
    ok
}

/// A Python script's stdout lines on a channel; killed on drop.
struct Script {
    child: Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl Script {
    fn start(args: &[&str]) -> Script {
        let mut child = Command::new("python3")
            .arg(harness::script_path("sio_client.py"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Script { child, lines }
    }

    async fn json_line(&mut self) -> Value {
        loop {
            // Generous: three Python interpreters start at once on a loaded machine.
            let line = tokio::time::timeout(Duration::from_secs(60), self.lines.recv())
                .await
                .expect("the script answered in 60 s")
                .expect("the script is still running (its error is on stderr)");
            if let Ok(value) = serde_json::from_str(&line) {
                return value;
            }
        }
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn socketio_clients_on_both_nodes_and_behind_haproxy_get_an_event_published_on_one() {
    let Some(server) = harness::prerequisites("socket.io across nodes") else {
        return;
    };
    if !python_ready() {
        return;
    }
    run(LIMIT, async {
        let cluster = Cluster::start(&server, 2).await;
        let (a, b) = (cluster.nodes[0].url(), cluster.nodes[1].url());
        let front = format!("http://{}", cluster.front());
        let (_, viewer) = cluster.token(&cluster.nodes[0].addr, "viewer").await;
        let (_, operator) = cluster.token(&cluster.nodes[1].addr, "operator").await;
        let mut scripts = [
            Script::start(&[&a, &viewer, "websocket", "chat", "chat_message"]),
            Script::start(&[&b, &viewer, "websocket", "chat", "chat_message"]),
            // Polling, then the upgrade: works behind HAProxy only because /socket.io/ is sticky.
            Script::start(&[&front, &viewer, "polling", "chat", "chat_message"]),
        ];
        for script in &mut scripts {
            let joined = script.json_line().await;
            assert_eq!(joined["joined"]["status"], "ok", "{joined}");
        }
        let seq = post_event(&cluster.nodes[1].addr, &operator, 42).await;
        for (name, script) in ["A", "B", "front (polling)"].iter().zip(&mut scripts) {
            let got = script.json_line().await;
            assert_eq!(got["event"]["seq"], seq, "{name}: {got}");
            assert_eq!(got["event"]["data"]["n"], 42, "{name}: {got}");
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Scans across nodes: tasks are shared through PostgreSQL.

/// A `vigil agent` process; killed on drop.
struct Agent {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Agent {
    fn start(server: &str, token: &str, name: &str, max_concurrent: usize) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let child = harness::vigil()
            .current_dir(dir.path())
            .args([
                "agent",
                "--server",
                server,
                "--token",
                token,
                "--scope",
                "127.0.0.1",
            ])
            .args([
                "--name",
                name,
                "--max-concurrent",
                &max_concurrent.to_string(),
            ])
            .arg("--spool")
            .arg(dir.path().join("spool.jsonl"))
            .stdout(Stdio::null())
            // Kept, and printed if the test fails: what the agent saw (reconnects, refusals).
            .stderr(std::fs::File::create(dir.path().join("agent.log")).expect("agent log"))
            .spawn()
            .expect("vigil agent starts");
        Agent { child, _dir: dir }
    }

    /// What it printed so far.
    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("agent.log")).unwrap_or_default()
    }

    /// Waits (at most `limit`) until its log holds a line containing every one of `words`;
    /// returns that line.
    async fn said(&self, words: &[&str], limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let log = self.log();
            if let Some(line) = log.lines().find(|l| words.iter().all(|w| l.contains(w))) {
                return line.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "the agent did not say {words:?} in {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log =
                std::fs::read_to_string(self._dir.path().join("agent.log")).unwrap_or_default();
            eprintln!("--- vigil agent's log ---\n{log}--- end of the agent's log ---");
        }
    }
}

/// A loopback port that accepts connections and never says anything: a banner grab on it takes
/// its whole wait. Returns the port; the listener lives as long as the runtime.
async fn silent_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    port
}

/// A loopback port whose service says nothing until the returned sender says `true`, then
/// greets every connection, held or new, with an SSH banner: a banner grab on it ends when the
/// test decides. The listener lives as long as the runtime.
async fn gated_port() -> (u16, tokio::sync::watch::Sender<bool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (open, gate) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut gate = gate.clone();
            tokio::spawn(async move {
                if gate.wait_for(|open| *open).await.is_ok() {
                    use tokio::io::AsyncWriteExt as _;
                    let _ = socket.write_all(b"SSH-2.0-OpenSSH_9.2p1\r\n").await;
                    // Held open: the grabber reads what it wants and closes.
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
            });
        }
    });
    (port, open)
}

/// Waits until one agent is online in the cluster and returns the index of the node holding
/// its connection (`/api/agents` names the node; each node's `/api/websocket/status` names
/// itself).
async fn node_holding_the_agent(cluster: &Cluster) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let agents = call(
            &cluster.nodes[0].addr,
            "GET",
            "/api/agents",
            &cluster.admin,
            None,
        )
        .await;
        if let Some(node_id) = agents
            .as_array()
            .filter(|a| a.len() == 1)
            .and_then(|a| a[0]["node_id"].as_str())
        {
            for (i, node) in cluster.nodes.iter().enumerate() {
                let status = call(
                    &node.addr,
                    "GET",
                    "/api/websocket/status",
                    &cluster.admin,
                    None,
                )
                .await;
                if status["node_id"] == node_id {
                    return i;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "the agent never connected: {agents}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn schedule(addr: &str, token: &str, scan_type: &str, port: u16) -> (String, Vec<String>) {
    let v = call(
        addr,
        "POST",
        "/api/scans",
        token,
        Some(json!({"targets": ["127.0.0.1"], "scan_types": [scan_type], "ports": port.to_string(), "retries": 3})),
    )
    .await;
    let tasks = v["tasks"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|t| t["task_id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    (v["scan_id"].as_str().expect("a scan id").to_owned(), tasks)
}

#[test]
fn an_agent_behind_haproxy_takes_a_scan_scheduled_on_the_other_node() {
    let Some(server) = harness::prerequisites("scan across nodes") else {
        return;
    };
    run(LIMIT, async {
        let cluster = Cluster::start(&server, 2).await;
        let (_, agent_token) = cluster.token(&cluster.nodes[0].addr, "agent").await;
        let _agent = Agent::start(
            &format!("http://{}", cluster.front()),
            &agent_token,
            "e2e",
            2,
        );
        let holder = node_holding_the_agent(&cluster).await;
        let other = &cluster.nodes[1 - holder].addr;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap().port();
        let mut watcher = Ws::connect(other, &cluster.admin).await;
        watcher.subscribe(&["scans"], None).await;
        let (scan_id, _) = schedule(other, &cluster.admin, "port_scan", open).await;
        watcher
            .events_until(Duration::from_secs(60), |e| {
                e["kind"] == "scan_completed" && e["data"]["scan_id"] == scan_id.as_str()
            })
            .await;
        for node in &cluster.nodes {
            let scan = call(
                &node.addr,
                "GET",
                &format!("/api/scans/{scan_id}"),
                &cluster.admin,
                None,
            )
            .await;
            assert_eq!(scan["completed"], true, "{scan}");
            let results = scan["results"].as_array().cloned().unwrap_or_default();
            assert_eq!(results.len(), 1, "{scan}");
            assert_eq!(results[0]["status"], "success", "{scan}");
            let text = results[0].to_string();
            assert!(
                text.contains(&open.to_string()),
                "the open port is found: {text}"
            );
        }
        drop(listener);
    });
}

#[test]
fn the_node_holding_an_agent_is_killed_mid_task_and_the_result_is_stored_once() {
    let Some(server) = harness::prerequisites("node killed mid-task") else {
        return;
    };
    run(LIMIT, async {
        let mut cluster = Cluster::start(&server, 2).await;
        let (_, agent_token) = cluster.token(&cluster.nodes[0].addr, "agent").await;
        let _agent = Agent::start(
            &format!("http://{}", cluster.front()),
            &agent_token,
            "e2e",
            2,
        );
        let holder = node_holding_the_agent(&cluster).await;
        let survivor = cluster.nodes[1 - holder].addr.clone();

        let silent = silent_port().await;
        let mut watcher = Ws::connect(&survivor, &cluster.admin).await;
        watcher.subscribe(&["scans"], None).await;
        let (scan_id, tasks) = schedule(&survivor, &cluster.admin, "banner_grab", silent).await;
        assert_eq!(tasks.len(), 1);
        watcher
            .events_until(Duration::from_secs(30), |e| {
                e["kind"] == "scan_started" && e["data"]["task_id"] == tasks[0].as_str()
            })
            .await;

        // The agent is mid-task (the service never answers): its node dies without a word.
        cluster.nodes[holder].kill();
        // HAProxy counts the dead node as up until two health checks fail (about 2 s): new
        // connections it sends there meanwhile (the agent's reconnect, say) go to the survivor
        // instead of answering 503 after three refused tries.
        for _ in 0..4 {
            let r = http(cluster.front(), "GET", "/readyz", None, None)
                .await
                .expect("an answer through HAProxy");
            assert_eq!(r.status, 200, "right after the kill: {}", r.body);
        }
        let events = watcher
            .events_until(Duration::from_secs(90), |e| {
                e["kind"] == "scan_completed" && e["data"]["scan_id"] == scan_id.as_str()
            })
            .await;
        let completed = events.last().unwrap();
        assert_eq!(completed["data"]["status"], "completed", "{completed}");
        let scan = call(
            &survivor,
            "GET",
            &format!("/api/scans/{scan_id}"),
            &cluster.admin,
            None,
        )
        .await;
        assert_eq!(scan["completed"], true, "{scan}");
        let results = scan["results"].as_array().cloned().unwrap_or_default();
        assert_eq!(results.len(), 1, "stored exactly once: {scan}");
        // Through HAProxy, which now routes to the survivor only.
        let front = call(
            cluster.front(),
            "GET",
            &format!("/api/scans/{scan_id}"),
            &cluster.admin,
            None,
        )
        .await;
        assert_eq!(
            front["results"].as_array().map(Vec::len),
            Some(1),
            "{front}"
        );
    });
}

#[test]
fn two_hundred_tasks_over_two_dispatching_nodes_are_each_leased_once() {
    let Some(server) = harness::prerequisites("200 tasks over two nodes") else {
        return;
    };
    run(LIMIT, async {
        let cluster = Cluster::start(&server, 2).await;
        let (a, b) = (cluster.nodes[0].addr.clone(), cluster.nodes[1].addr.clone());
        let (_, agent_token) = cluster.token(&a, "agent").await;
        let _agents = [
            Agent::start(&format!("http://{a}"), &agent_token, "on-a", 8),
            Agent::start(&format!("http://{b}"), &agent_token, "on-b", 8),
        ];
        // Both agents online, each on its own node.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let agents = call(&a, "GET", "/api/agents", &cluster.admin, None).await;
            let nodes: HashSet<&str> = agents
                .as_array()
                .map(|list| list.iter().filter_map(|x| x["node_id"].as_str()).collect())
                .unwrap_or_default();
            if nodes.len() == 2 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the agents did not connect: {agents}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap().port();
        let mut watcher = Ws::connect(&a, &cluster.admin).await;
        watcher.subscribe(&["scans"], None).await;

        // 100 scans scheduled on each node, interleaved: 200 one-task scans.
        let mut scans = HashSet::new();
        let mut all_tasks = HashSet::new();
        for i in 0..200 {
            let addr = if i % 2 == 0 { &a } else { &b };
            let (scan, tasks) = schedule(addr, &cluster.admin, "port_scan", open).await;
            scans.insert(scan);
            all_tasks.extend(tasks);
        }
        assert_eq!(all_tasks.len(), 200);

        let mut started: HashMap<String, usize> = HashMap::new();
        let mut agents_used = HashSet::new();
        let mut completed = HashSet::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while completed.len() < scans.len() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let m = match watcher.next_within(left).await {
                Ok(Some(m)) => m,
                Ok(None) => panic!(
                    "{} of 200 scans completed in 120 s ({} tasks started)",
                    completed.len(),
                    started.len()
                ),
                Err(ended) => panic!("the watcher was closed: {ended:?}"),
            };
            if m["type"] != "event" {
                continue;
            }
            let e = &m["event"];
            match e["kind"].as_str() {
                Some("scan_started") => {
                    *started
                        .entry(e["data"]["task_id"].as_str().unwrap_or_default().to_owned())
                        .or_default() += 1;
                    agents_used.insert(
                        e["data"]["agent_id"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    );
                }
                Some("scan_completed") => {
                    completed.insert(e["data"]["scan_id"].as_str().unwrap_or_default().to_owned());
                }
                _ => {}
            }
        }
        let twice: Vec<_> = started.iter().filter(|(_, n)| **n != 1).collect();
        assert!(twice.is_empty(), "leased more than once: {twice:?}");
        assert_eq!(
            started.keys().cloned().collect::<HashSet<_>>(),
            all_tasks,
            "every task started once"
        );
        assert_eq!(agents_used.len(), 2, "both nodes' agents worked");
        // The stored attempts say the same, on either node.
        let listed = call(&b, "GET", "/api/scans", &cluster.admin, None).await;
        let tasks: Vec<Value> = listed["scans"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| s["tasks"].as_array().cloned().unwrap_or_default())
            .collect();
        assert_eq!(tasks.len(), 200, "every scan is listed on node B");
        assert!(
            tasks.iter().all(|t| t["attempts"] == 1),
            "attempts: {:?}",
            tasks.iter().map(|t| &t["attempts"]).collect::<Vec<_>>()
        );
        drop(listener);
    });
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL stopped and started again (a PostgreSQL of the test's own: the shared one serves
// other tests meanwhile).

/// Waits (at most `limit`) until `GET path` on `addr` answers 200.
async fn until_ok(addr: &str, path: &str, token: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let r = http(addr, "GET", path, Some(token), None).await;
        if r.as_ref().is_ok_and(|r| r.status == 200) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{addr}{path} did not answer 200 in {limit:?}: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET /api/scans/{id}` on `addr`: completed, with one result of `status`.
async fn assert_scan_done(addr: &str, token: &str, scan_id: &str, status: &str) -> Value {
    let scan = call(addr, "GET", &format!("/api/scans/{scan_id}"), token, None).await;
    assert_eq!(scan["completed"], true, "{addr}: {scan}");
    let results = scan["results"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        results.len(),
        1,
        "one result, stored once, on {addr}: {scan}"
    );
    assert_eq!(results[0]["status"], status, "{addr}: {scan}");
    results[0].clone()
}

/// What the README promises when PostgreSQL goes away (`Running several nodes`): requests that
/// need the database answer a typed error at once, tokens a node already knows still work, and
/// each node works again once the database is back; nothing accepted before is lost.
#[test]
fn postgresql_stopped_and_started_again_under_two_nodes_and_an_agent_loses_nothing() {
    let test = "postgresql restart";
    let Some(bindir) = harness::own_postgres_prerequisites(test) else {
        return;
    };
    run(LIMIT, async move {
        let started = Instant::now();
        let mut pg = tokio::task::block_in_place(|| harness::OwnPostgres::create(&bindir));
        let mut cluster = Cluster::start(&pg.url(), 2).await;
        let (a, b) = (cluster.nodes[0].addr.clone(), cluster.nodes[1].addr.clone());
        let admin = cluster.admin.clone();
        let (_, operator) = cluster.token(&a, "operator").await;
        let (_, agent_token) = cluster.token(&a, "agent").await;
        let front = format!("http://{}", cluster.front());
        let agent = Agent::start(&front, &agent_token, "before", 2);
        node_holding_the_agent(&cluster).await;

        // Before the stop: one scan completed; the operator's token is known to both nodes.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap().port();
        let mut watcher = Ws::connect(&b, &admin).await;
        watcher.subscribe(&["scans"], None).await;
        let (done_before, _) = schedule(&a, &admin, "port_scan", open).await;
        watcher
            .events_until(Duration::from_secs(30), |e| {
                e["kind"] == "scan_completed" && e["data"]["scan_id"] == done_before.as_str()
            })
            .await;
        for addr in [&a, &b] {
            let r = http(addr, "GET", "/stats", Some(&operator), None)
                .await
                .unwrap();
            assert_eq!(r.status, 200, "{addr}: {}", r.body);
        }
        // And one scan in flight: the agent is mid-task (the service says nothing until the
        // gate opens) when the database stops.
        let (gated, gate) = gated_port().await;
        let (in_flight, tasks) = schedule(&a, &admin, "banner_grab", gated).await;
        watcher
            .events_until(Duration::from_secs(30), |e| {
                e["kind"] == "scan_started" && e["data"]["task_id"] == tasks[0].as_str()
            })
            .await;

        tokio::task::block_in_place(|| pg.stop());
        let stopped = Instant::now();

        // While it is down.
        for addr in [&a, &b] {
            // Tokens the node knows still authenticate; the bus (Redis) needs no database.
            for token in [&admin, &operator] {
                let r = http(addr, "GET", "/stats", Some(token), None)
                    .await
                    .unwrap();
                assert_eq!(r.status, 200, "a known token on {addr}: {}", r.body);
            }
            // What needs the database answers a typed 503 at once: no hang, no crash.
            let asked = Instant::now();
            let scan = json!({"targets": ["127.0.0.1"], "scan_types": ["port_scan"], "ports": open.to_string()});
            let token = json!({"role": "viewer", "label": "during the outage"});
            for (method, path, body) in [
                ("GET", "/api/scans", None),
                ("GET", "/api/agents", None),
                ("POST", "/api/scans", Some(&scan)),
                ("POST", "/api/tokens", Some(&token)),
            ] {
                let r = http(addr, method, path, Some(&admin), body)
                    .await
                    .unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}"));
                assert_eq!(r.status, 503, "{method} {path} on {addr}: {}", r.body);
                assert_eq!(
                    r.json()["error"]["code"],
                    "storage_unavailable",
                    "{method} {path} on {addr}: {}",
                    r.body
                );
            }
            let took = asked.elapsed();
            assert!(took < Duration::from_secs(5), "four refusals took {took:?}");
            // A token the node has never seen cannot be checked now: "try again", not "invalid".
            let unseen = format!("vgl_{}", "0".repeat(64));
            let r = http(addr, "GET", "/stats", Some(&unseen), None)
                .await
                .unwrap();
            assert_eq!(r.status, 503, "an unseen token on {addr}: {}", r.body);
        }
        post_event(&b, &operator, 1).await;
        // An agent that connects now is refused for now (its token or its id cannot be checked)
        // and retries.
        let late = Agent::start(&front, &agent_token, "during", 2);
        late.said(&["disconnected", "retrying in"], Duration::from_secs(30))
            .await;
        // The first agent's task ends while the database is away: its result cannot be stored,
        // and the agent sends it again.
        gate.send_replace(true);
        agent
            .said(
                &["could not take a result", &tasks[0], "storage_failed"],
                Duration::from_secs(30),
            )
            .await;
        for node in &mut cluster.nodes {
            assert!(node.running(), "a node exited: {}", node.log_text());
        }
        // Down long enough for every background loop of the nodes (dispatch and reaping each
        // second, token reload every 2 s, the listener's reconnects) to have failed at least once.
        tokio::time::sleep_until((stopped + Duration::from_secs(3)).into()).await;
        let down_for = stopped.elapsed();

        tokio::task::block_in_place(|| pg.start());
        let back = Instant::now();

        // Both nodes serve the store again, within a bounded time.
        for addr in [&a, &b] {
            until_ok(addr, "/api/scans", &admin, Duration::from_secs(20)).await;
        }
        let recovered_in = back.elapsed();
        // Nothing accepted before the stop is lost: the scan completed before is listed with its
        // result, and the one in flight completes once its result is sent again.
        watcher
            .events_until(Duration::from_secs(45), |e| {
                e["kind"] == "scan_completed" && e["data"]["scan_id"] == in_flight.as_str()
            })
            .await;
        for addr in [&a, &b] {
            let result = assert_scan_done(addr, &admin, &done_before, "success").await;
            assert!(result.to_string().contains(&open.to_string()), "{result}");
            assert_scan_done(addr, &admin, &in_flight, "success").await;
        }
        // A token minted on one node works on the other.
        let (_, viewer) = cluster.token(&b, "viewer").await;
        let r = http(&a, "GET", "/stats", Some(&viewer), None)
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        // A scan scheduled now completes through an agent.
        let (after, _) = schedule(&b, &admin, "port_scan", open).await;
        watcher
            .events_until(Duration::from_secs(30), |e| {
                e["kind"] == "scan_completed" && e["data"]["scan_id"] == after.as_str()
            })
            .await;
        let result = assert_scan_done(&a, &admin, &after, "success").await;
        assert!(result.to_string().contains(&open.to_string()), "{result}");
        // The agent refused during the outage is registered now: two agents online.
        late.said(&["registered with"], Duration::from_secs(30))
            .await;
        let agents = call(&a, "GET", "/api/agents", &admin, None).await;
        assert_eq!(
            agents.as_array().map(Vec::len),
            Some(2),
            "both agents online: {agents}"
        );
        eprintln!(
            "postgresql restart: down for {down_for:?}, both nodes served again {recovered_in:?} after the start, whole test {:?}",
            started.elapsed()
        );
        drop(listener);
    });
}

// ---------------------------------------------------------------------------------------------
// The README

/// The README's HAProxy block is the template the tests run, filled in with its addresses.
#[test]
fn the_readme_shows_the_tested_haproxy_configuration() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let start = readme
        .find("```haproxy\n")
        .expect("a ```haproxy block in the README")
        + "```haproxy\n".len();
    let end = start + readme[start..].find("```").expect("the block ends");
    let shown = &readme[start..end];
    let expected = harness::haproxy_config(
        "*:8000",
        &[("node1", "10.0.0.11:8000"), ("node2", "10.0.0.12:8000")],
    );
    assert_eq!(
        shown.trim_end(),
        expected.trim_end(),
        "README.md's HAProxy block differs from cli/tests/cluster/haproxy.cfg filled in with *:8000, 10.0.0.11:8000 and 10.0.0.12:8000"
    );
}
