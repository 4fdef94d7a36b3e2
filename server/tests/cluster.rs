//! Two nodes in one process on one PostgreSQL database and one Redis: scans scheduled on one
//! node run on agents of the other, views show the cluster, tokens and revocations hold on
//! both. (The same with real processes behind HAProxy, and a node killed mid-task, is in the
//! CLI's `cluster` tests.)
//!
//! Needs `VIGIL_TEST_DATABASE_URL` and `redis-server`; skips with a visible line without them
//! unless `VIGIL_E2E=required`.

mod common;
#[path = "common/pg.rs"]
mod pg;
#[path = "../../event-bus/tests/common/mod.rs"]
mod redis_server;

use std::collections::HashMap;
use std::time::Duration;

use event_bus::Role;
use serde_json::{Value, json};
use vigil_server::{AppState, ServerConfig};

use common::{TestServer, call, recv, send, wait_for};
use redis_server::RedisServer;

struct Cluster {
    a: TestServer,
    b: TestServer,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

async fn node(
    database_url: &str,
    redis: &str,
    name: &str,
) -> (AppState, Option<String>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (state, first) = AppState::open(ServerConfig {
        data_dir: dir.path().to_owned(),
        database_url: Some(database_url.to_owned()),
        redis_url: Some(redis.to_owned()),
        cluster_name: name.to_owned(),
        scope: vec!["127.0.0.1".into()],
        local_agent: None,
        agent_lease: Duration::from_secs(5),
        ..common::config()
    })
    .await
    .expect("a cluster node");
    (state, first.map(|f| f.admin_token), dir)
}

async fn cluster(database_url: &str, redis: &RedisServer, name: &str) -> Cluster {
    let (a, first_a, dir_a) = node(database_url, &redis.url(), name).await;
    let (b, first_b, dir_b) = node(database_url, &redis.url(), name).await;
    assert!(first_b.is_none(), "one admin token for the cluster");
    let admin = first_a.expect("the first node mints the admin token");
    Cluster {
        a: TestServer::serve(a, admin.clone()).await,
        b: TestServer::serve(b, admin).await,
        _dirs: (dir_a, dir_b),
    }
}

async fn register(server: &TestServer, name: &str, max: usize) -> (common::Ws, String) {
    let (mut agent, _) = server.connect_as(&server.token(Role::Agent).await).await;
    send(&mut agent, json!({"type": "register_agent", "name": name, "capabilities": ["port_scan"], "max_concurrent": max})).await;
    let ack = recv(&mut agent).await;
    assert_eq!(ack["type"], "registration_ack", "{ack}");
    (agent, ack["agent_id"].as_str().unwrap().to_owned())
}

fn result_for(task: &Value, agent_id: &str) -> Value {
    json!({
        "scan_id": task["scan_id"], "task_id": task["id"], "agent_id": agent_id, "target": task["target"],
        "kind": task["kind"], "status": "success", "findings": [], "threats": [],
        "duration_seconds": 0.1, "time": "2026-12-03T10:00:00Z", "attempts": 1, "error": null
    })
}

async fn run<F, Fut>(test: &'static str, body: F)
where
    F: FnOnce(String, RedisServer) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let Some(redis) = RedisServer::start(test) else {
        return;
    };
    pg::with_db(test, move |url| body(url, redis)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_on_one_node_runs_a_scan_scheduled_on_the_other() {
    run(
        "an_agent_on_one_node_runs_a_scan_scheduled_on_the_other",
        |url, redis| async move {
            let c = cluster(&url, &redis, "one").await;
            let (mut watcher, _) = c.b.connect_as(&c.b.token(Role::Viewer).await).await;
            send(
                &mut watcher,
                json!({"type": "subscribe", "rooms": ["scans"]}),
            )
            .await;
            assert_eq!(recv(&mut watcher).await["of"], "subscribe");
            let (mut agent, agent_id) = register(&c.a, "rack-a", 1).await;

            let operator = c.b.token(Role::Operator).await;
            let (status, accepted) = call(
                &c.b.state,
                "POST",
                "/api/scans",
                &operator,
                Some(json!({"targets": ["127.0.0.1"], "scan_types": ["port_scan"], "ports": "22"})),
            )
            .await;
            assert_eq!(status, 202, "{accepted}");
            let scan_id = accepted["scan_id"].as_str().unwrap().to_owned();

            let assigned = wait_for(&mut agent, 10, |m| m["type"] == "assign_task").await;
            let task = assigned["task"].clone();
            assert_eq!(task["scan_id"], scan_id.as_str());

            // Both nodes list the agent, connected to node A.
            for node in [&c.a, &c.b] {
                let (_, agents) = call(&node.state, "GET", "/api/agents", &operator, None).await;
                let listed = agents
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|a| a["id"] == agent_id.as_str())
                    .cloned();
                let listed = listed.unwrap_or_else(|| panic!("agent listed: {agents}"));
                assert_eq!(listed["running"], 1, "{listed}");
            }

            // Connection counts are the cluster's: the watcher is on B, the agent on A.
            let mut seen = Value::Null;
            for _ in 0..40 {
                let (_, status) =
                    call(&c.a.state, "GET", "/api/websocket/status", &operator, None).await;
                seen = status;
                // Each node reports its load once a second: wait for both reports to say so.
                if seen["nodes"].as_array().is_some_and(|n| n.len() == 2)
                    && seen["connections"].as_u64() >= Some(2)
                    && seen["rooms"]["scans"].as_u64() >= Some(1)
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert_eq!(seen["nodes"].as_array().map(Vec::len), Some(2), "{seen}");
            assert!(seen["connections"].as_u64() >= Some(2), "{seen}");
            assert!(seen["rooms"]["scans"].as_u64() >= Some(1), "{seen}");
            for _ in 0..2 {
                send(
                    &mut agent,
                    json!({"type": "scan_result", "result": result_for(&task, &agent_id)}),
                )
                .await;
                let ack = wait_for(&mut agent, 5, |m| {
                    m["type"] == "ack" || m["type"] == "error"
                })
                .await;
                assert_eq!(ack["of"], "scan_result", "resending is acknowledged: {ack}");
            }
            let done = wait_for(&mut watcher, 10, |m| {
                m["type"] == "event" && m["event"]["kind"] == "scan_completed"
            })
            .await;
            assert_eq!(done["event"]["data"]["scan_id"], scan_id.as_str());
            assert_eq!(done["event"]["data"]["status"], "completed");
            for node in [&c.a, &c.b] {
                let (_, scan) = call(
                    &node.state,
                    "GET",
                    &format!("/api/scans/{scan_id}"),
                    &operator,
                    None,
                )
                .await;
                assert_eq!(scan["completed"], true, "{scan}");
                assert_eq!(
                    scan["results"].as_array().unwrap().len(),
                    1,
                    "stored once: {scan}"
                );
                assert_eq!(scan["tasks"][0]["status"], "success");
            }
            c.a.stop().await;
            c.b.stop().await;
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_over_two_dispatching_nodes_are_each_leased_once() {
    run(
        "tasks_over_two_dispatching_nodes_are_each_leased_once",
        |url, redis| async move {
            let c = cluster(&url, &redis, "many").await;
            let mut agents = Vec::new();
            for (i, node) in [&c.a, &c.a, &c.b, &c.b].into_iter().enumerate() {
                agents.push(register(node, &format!("agent-{i}"), 2).await);
            }
            let operator = c.a.token(Role::Operator).await;
            const SCANS: usize = 40;
            let mut scans = Vec::new();
            for i in 0..SCANS {
                let node = if i % 2 == 0 { &c.a } else { &c.b };
                let (status, accepted) = call(
                    &node.state,
                    "POST",
                    "/api/scans",
                    &operator,
                    Some(json!({"targets": ["127.0.0.1"], "ports": "22"})),
                )
                .await;
                assert_eq!(status, 202, "{accepted}");
                scans.push(accepted["scan_id"].as_str().unwrap().to_owned());
            }
            // Every agent answers what it is given, until every task has been answered.
            let mut assigned: HashMap<String, usize> = HashMap::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while assigned.len() < SCANS {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{} of {SCANS} tasks assigned",
                    assigned.len()
                );
                for (ws, id) in &mut agents {
                    let Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(text)))) =
                        tokio::time::timeout(
                            Duration::from_millis(20),
                            futures::StreamExt::next(ws),
                        )
                        .await
                    else {
                        continue;
                    };
                    let message: Value = serde_json::from_str(&text).unwrap();
                    if message["type"] == "assign_task" {
                        let task = message["task"].clone();
                        *assigned
                            .entry(task["id"].as_str().unwrap().to_owned())
                            .or_default() += 1;
                        send(
                            ws,
                            json!({"type": "scan_result", "result": result_for(&task, id)}),
                        )
                        .await;
                    }
                }
            }
            assert!(
                assigned.values().all(|n| *n == 1),
                "each task leased once: {assigned:?}"
            );
            for scan_id in &scans {
                let mut completed = false;
                for _ in 0..100 {
                    let (_, scan) = call(
                        &c.b.state,
                        "GET",
                        &format!("/api/scans/{scan_id}"),
                        &operator,
                        None,
                    )
                    .await;
                    if scan["completed"] == true {
                        assert_eq!(scan["tasks"][0]["attempts"], 1, "{scan}");
                        completed = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                assert!(completed, "scan {scan_id} completed");
            }
            c.a.stop().await;
            c.b.stop().await;
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_on_one_node_reaches_the_agent_on_the_other() {
    run(
        "cancelling_on_one_node_reaches_the_agent_on_the_other",
        |url, redis| async move {
            let c = cluster(&url, &redis, "cancel").await;
            let (mut agent, _) = register(&c.a, "slow", 1).await;
            let operator = c.b.token(Role::Operator).await;
            let (_, first) = call(
                &c.b.state,
                "POST",
                "/api/scans",
                &operator,
                Some(json!({"targets": ["127.0.0.1", "127.0.0.1"], "ports": "22"})),
            )
            .await;
            let scan_id = first["scan_id"].as_str().unwrap().to_owned();
            let assigned = wait_for(&mut agent, 10, |m| m["type"] == "assign_task").await;
            let (status, cancelled) = call(
                &c.b.state,
                "DELETE",
                &format!("/api/scans/{scan_id}"),
                &operator,
                None,
            )
            .await;
            assert_eq!(status, 200, "{cancelled}");
            assert_eq!(
                cancelled["cancelled_tasks"], 2,
                "one queued, one running: {cancelled}"
            );
            let command = wait_for(&mut agent, 10, |m| m["type"] == "command").await;
            assert_eq!(command["command"], "cancel", "{command}");
            assert_eq!(command["task_id"], assigned["task"]["id"]);
            let (status, _) = call(
                &c.a.state,
                "DELETE",
                "/api/scans/no-such-scan",
                &operator,
                None,
            )
            .await;
            assert_eq!(status, 404);
            c.a.stop().await;
            c.b.stop().await;
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_id_belongs_to_one_token_across_the_cluster() {
    run("an_agent_id_belongs_to_one_token_across_the_cluster", |url, redis| async move {
        let c = cluster(&url, &redis, "ids").await;
        let (mut first, _) = c.a.connect_as(&c.a.token(Role::Agent).await).await;
        send(&mut first, json!({"type": "register_agent", "agent_id": "rack-7", "capabilities": ["port_scan"]})).await;
        assert_eq!(recv(&mut first).await["agent_id"], "rack-7");
        let (mut other, _) = c.b.connect_as(&c.b.token(Role::Agent).await).await;
        send(&mut other, json!({"type": "register_agent", "agent_id": "rack-7", "capabilities": ["port_scan"]})).await;
        let refused = recv(&mut other).await;
        assert_eq!(refused["code"], "agent_id_taken", "{refused}");
        c.a.stop().await;
        c.b.stop().await;
    })
    .await;
}

/// While the shared database is away, a token this node has not seen (it may have been minted on
/// the other node a moment ago) cannot be checked: every way of presenting it says "try again" (503, `serviceUnavailable`,
/// close 1013), never "invalid", which would make a client give its token up. Known tokens still
/// work from memory, and the unseen one works once the database is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_database_is_away_an_unseen_token_is_try_again_everywhere() {
    let test = "while_the_database_is_away_an_unseen_token_is_try_again_everywhere";
    run(test, move |url, redis| async move {
        let c = cluster(&url, &redis, "away").await;
        let known = c.a.token(Role::Operator).await;
        let (status, _) = call(&c.a.state, "GET", "/api/agents", &known, None).await;
        assert_eq!(status, 200, "node a has seen its own token");
        // Well-formed, and in no database: while the database is away node a cannot tell it
        // from a token minted on node b a moment ago (which a's periodic re-read would learn).
        let unseen = format!("vgl_{}", "5e".repeat(32));

        // This test's database only: the server is shared with other tests.
        let server = pg::server_url(test).expect("with_db runs only with a server");
        let name = url.rsplit('/').next().unwrap().to_owned();
        let (admin, connection) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let allow = |yes: bool| {
            format!(
                "ALTER DATABASE {name} ALLOW_CONNECTIONS {yes};
                 SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            )
        };
        admin.batch_execute(&allow(false)).await.unwrap();
        // A connection that was starting up as the database closed is not terminated by that
        // first sweep: sweep until none is left twice in a row.
        let mut empty = 0;
        for _ in 0..50 {
            admin.batch_execute(&allow(false)).await.unwrap();
            let left: i64 = admin
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
                    &[&name],
                )
                .await
                .unwrap()
                .get(0);
            empty = if left == 0 { empty + 1 } else { 0 };
            if empty == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(empty, 2, "the database's connections did not go away");

        let ten = Duration::from_secs(10);
        // REST with the header, sessions, and Ichnaea's geolocate: 503s.
        let (status, body) =
            tokio::time::timeout(ten, call(&c.a.state, "GET", "/api/agents", &unseen, None))
                .await
                .unwrap_or_else(|_| panic!("REST hung"));
        assert_eq!(status, 503, "{body}");
        let (status, body) = tokio::time::timeout(
            ten,
            call(
                &c.a.state,
                "POST",
                "/api/session",
                "",
                Some(json!({"token": unseen})),
            ),
        )
        .await
        .unwrap_or_else(|_| panic!("session hung"));
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["code"], "storage_unavailable", "{body}");
        let (status, body) = tokio::time::timeout(
            ten,
            call(
                &c.a.state,
                "POST",
                "/v1/geolocate",
                &unseen,
                Some(json!({"considerIp": false})),
            ),
        )
        .await
        .unwrap_or_else(|_| panic!("geolocate hung"));
        assert_eq!(status, 503, "{body}");
        assert_eq!(
            body["error"]["errors"][0]["reason"], "serviceUnavailable",
            "{body}"
        );
        // /ws, authenticating with the first message: close 1013 "try again later".
        let mut ws = c.a.connect().await;
        send(&mut ws, json!({"type": "auth", "token": unseen})).await;
        let code = tokio::time::timeout(ten, common::close_code(&mut ws))
            .await
            .unwrap_or_else(|_| panic!("/ws hung"));
        assert_eq!(code, 1013);
        // The known token still works, from memory.
        let (_ws, welcome) = c.a.connect_as(&known).await;
        assert_eq!(welcome["type"], "welcome");

        admin.batch_execute(&allow(true)).await.unwrap();
        // Back: the made-up token is what it is, unknown (401), and one minted on b works on a.
        let minted = c.b.token(Role::Viewer).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (status, _) = call(&c.a.state, "GET", "/api/session", &unseen, None).await;
            let (minted_status, _) = call(&c.a.state, "GET", "/api/agents", &minted, None).await;
            if status == 401 && minted_status == 200 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "still {status} after the database came back"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        c.a.stop().await;
        c.b.stop().await;
    })
    .await;
}
