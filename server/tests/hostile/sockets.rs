//! `/ws` and Socket.IO against hostile clients: anonymous floods, frames that used to skip the
//! limiter, revocation, tokens minted by another process, agents posing as others, forged
//! results and alerts, chat impersonation, and the bounds on sessions and agent ids.

use std::time::Duration;

use event_bus::Role;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use vigil_server::ServerConfig;

use crate::common::{self, TestServer, Ws, call, recv, send};

/// Opens `/ws` with extra request headers; the HTTP status when the upgrade is refused.
async fn open(server: &TestServer, headers: &[(&'static str, String)]) -> Result<Ws, u16> {
    let mut request = server.url().into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(*name, value.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(other) => panic!("unexpected {other}"),
    }
}

fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {token}"))]
}

/// Reads until the close frame; its code and reason (panics after 10 s or without one).
async fn close_frame(ws: &mut Ws) -> (u16, String) {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("closed within 10 s");
        match message {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (frame.code.into(), frame.reason.to_string());
            }
            Some(Ok(Message::Close(None))) => return (1005, String::new()),
            Some(Ok(_)) => continue,
            Some(Err(err)) => panic!("socket error before a close frame: {err}"),
            None => panic!("stream ended without a close frame"),
        }
    }
}

/// Whether the socket was closed (or dropped) by the server within `within`.
async fn closed_within(ws: &mut Ws, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return false,
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return true,
            Ok(Some(Ok(_))) => continue,
        }
    }
}

fn small_budget() -> ServerConfig {
    ServerConfig {
        max_connections: 100,
        max_unauthenticated: 32,
        max_unauthenticated_per_source: 16,
        auth_timeout: Duration::from_secs(30),
        local_agent: None,
        ..common::config()
    }
}

/// Behind a trusted reverse proxy the per-source budget follows the client the proxy names in
/// `X-Forwarded-For`, not the proxy's own address; from an untrusted peer the header is ignored,
/// so a client cannot pick its source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_source_budget_follows_a_trusted_proxy() {
    let forwarded = |client: &str| vec![("x-forwarded-for", format!("198.51.100.7, {client}"))];

    // 127.0.0.1 is the proxy: 20 clients behind it, one socket each, all admitted (a shared
    // source would have stopped at 16).
    let mut config = small_budget();
    config.geo.trusted_proxies = vec!["127.0.0.1".into()];
    let server = TestServer::start(config.clone()).await;
    let mut held = Vec::new();
    for i in 0..20 {
        held.push(
            open(&server, &forwarded(&format!("192.0.2.{i}")))
                .await
                .expect("upgrade"),
        );
    }
    assert_eq!(server.state.unauthenticated(), 20, "one source each");
    server.stop().await;

    // One client behind it still has one source's budget: past 16 its oldest makes room.
    let server = TestServer::start(config).await;
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(
            open(&server, &forwarded("192.0.2.99"))
                .await
                .expect("upgrade"),
        );
    }
    assert_eq!(server.state.unauthenticated(), 16, "one client, one budget");
    server.stop().await;

    // No trusted proxy: the header means nothing and every socket is 127.0.0.1's.
    let server = TestServer::start(small_budget()).await;
    let mut held = Vec::new();
    for i in 0..20 {
        held.push(
            open(&server, &forwarded(&format!("192.0.2.{i}")))
                .await
                .expect("upgrade"),
        );
    }
    assert_eq!(server.state.unauthenticated(), 16, "the peer's budget");
    server.stop().await;
}

/// Before: anonymous sockets took connection slots, so 100 of them (the cap here) left a real
/// dashboard with HTTP 503. Now they wait in their own small budget: a client with a bearer
/// token at the upgrade gets in, and so does one that authenticates with its first message
/// (the oldest anonymous socket makes room for it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_sockets_cannot_keep_authenticated_clients_out() {
    let server = TestServer::start(small_budget()).await;
    let mut anonymous = Vec::new();
    for _ in 0..150 {
        match open(&server, &[]).await {
            Ok(ws) => anonymous.push(ws),
            Err(status) => assert_eq!(status, 503, "only a full server refuses"),
        }
    }
    assert!(
        server.state.unauthenticated() <= 16,
        "one source holds at most its budget: {}",
        server.state.unauthenticated()
    );
    assert_eq!(server.state.connections(), 0, "none took a connection slot");

    // Credentials at the upgrade: welcomed without an `auth` message, counted apart.
    let viewer = server.token(Role::Viewer).await;
    let mut ws = open(&server, &bearer(&viewer)).await.expect("upgrade");
    let welcome = recv(&mut ws).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(welcome["role"], "viewer");

    // The first message authenticates: the oldest anonymous socket made room.
    let (mut second, welcome) = server.connect_as(&viewer).await;
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(server.state.connections(), 2);
    send(&mut second, json!({"type": "ping", "id": "p"})).await;
    assert_eq!(recv(&mut second).await["of"], "ping");

    // The ones pushed out were told why.
    let mut pushed_out = 0;
    for ws in &mut anonymous {
        if closed_within(ws, Duration::from_millis(20)).await {
            pushed_out += 1;
        }
    }
    assert!(
        pushed_out >= 134,
        "only the budget stays: {pushed_out} closed"
    );

    // A wrong bearer token is refused at the upgrade, not parked.
    assert_eq!(open(&server, &bearer("vgl_nope")).await.err(), Some(401));
    drop(anonymous);
    server.stop().await;
}

/// Before: pings and binary frames skipped the inbound rate limit, before and after `auth`.
#[tokio::test]
async fn every_frame_counts_against_the_rate_limit() {
    let config = ServerConfig {
        messages_per_second: 1,
        message_burst: 5,
        ..common::config()
    };
    let server = TestServer::start(config).await;

    let mut ws = server.connect().await;
    for _ in 0..20 {
        if ws.send(Message::Ping(vec![1, 2, 3].into())).await.is_err() {
            break;
        }
    }
    assert_eq!(close_frame(&mut ws).await.0, 4029, "pings before auth");

    let (mut ws, _) = server.connect_as(&server.admin).await;
    for _ in 0..20 {
        if ws
            .send(Message::Binary(vec![0u8; 16].into()))
            .await
            .is_err()
        {
            break;
        }
    }
    assert_eq!(
        close_frame(&mut ws).await.0,
        4029,
        "binary frames after auth"
    );
    server.stop().await;
}

/// Before: a revoked token's open connections kept publishing and subscribing. Now revoking it
/// (over REST, or in the database by `vigil token revoke` in another process) closes every
/// connection it opened with 4001 `revoked` within two seconds. (An agent's connection that
/// closes gives its tasks back to the queue, whatever closed it: `scans.rs`,
/// `a_task_whose_agent_disconnects_is_finished_by_another`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_token_closes_its_connections() {
    let server = TestServer::start(common::config()).await;
    let auth = server.state.auth();

    let (record, operator) = auth.create_token(Role::Operator, "ops").await.unwrap();
    let (mut by_message, _) = server.connect_as(&operator).await;
    let mut by_header = open(&server, &bearer(&operator)).await.unwrap();
    assert_eq!(recv(&mut by_header).await["type"], "welcome");
    let (status, _) = call(
        &server.state,
        "DELETE",
        &format!("/api/tokens/{}", record.id),
        &server.admin,
        None,
    )
    .await;
    assert_eq!(status, 204);
    for ws in [&mut by_message, &mut by_header] {
        let (code, reason) = close_frame(ws).await;
        assert_eq!((code, reason.as_str()), (4001, "revoked"));
    }

    // Revoked by another process (a second handle on the same database, as `vigil token` is):
    // the server notices within its reload period.
    let (record, viewer) = auth.create_token(Role::Viewer, "dash").await.unwrap();
    let (mut ws, _) = server.connect_as(&viewer).await;
    let elsewhere = vigil_server::auth::Auth::load(server.state.store().clone())
        .await
        .unwrap();
    elsewhere.revoke(&record.id).await.unwrap();
    let started = tokio::time::Instant::now();
    let (code, reason) = close_frame(&mut ws).await;
    assert_eq!((code, reason.as_str()), (4001, "revoked"));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "within the reload period"
    );
    server.stop().await;
}

/// Before: a token minted by `vigil token create` beside a running server was refused for up
/// to two seconds, so a script that minted one and started an agent failed.
#[tokio::test]
async fn a_token_minted_by_another_process_works_at_once() {
    let server = TestServer::start(common::config()).await;
    let elsewhere = vigil_server::auth::Auth::load(server.state.store().clone())
        .await
        .unwrap();
    let (_, token) = elsewhere.create_token(Role::Agent, "rack 3").await.unwrap();
    let (_ws, welcome) = server.connect_as(&token).await;
    assert_eq!(welcome["role"], "agent");
    let mut ws = open(&server, &bearer(&token))
        .await
        .expect("bearer upgrade");
    assert_eq!(recv(&mut ws).await["type"], "welcome");
    server.stop().await;
}

/// The socket of an agent, registered under `agent_id` (or a fresh id).
async fn agent(server: &TestServer, token: &str, agent_id: Option<&str>) -> (Ws, Value) {
    let (mut ws, _) = server.connect_as(token).await;
    let mut hello =
        json!({"type": "register_agent", "capabilities": ["port_scan"], "max_concurrent": 1});
    if let Some(id) = agent_id {
        hello["agent_id"] = json!(id);
    }
    send(&mut ws, hello).await;
    let answer = recv(&mut ws).await;
    (ws, answer)
}

fn scoped() -> ServerConfig {
    ServerConfig {
        scope: vec!["127.0.0.1".into()],
        local_agent: None,
        ..common::config()
    }
}

/// Before: agent B registered agent A's id after A dropped, submitted a result for A's task
/// with a critical threat on another host, and it was stored as an alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_are_who_their_token_says_and_results_stay_on_target() {
    let server = TestServer::start(scoped()).await;
    let (token_a, token_b) = (
        server.token(Role::Agent).await,
        server.token(Role::Agent).await,
    );
    let operator = server.token(Role::Operator).await;

    let (mut a, ack) = agent(&server, &token_a, Some("agent-a")).await;
    assert_eq!(ack["type"], "registration_ack", "{ack}");
    let (status, _) = call(
        &server.state,
        "POST",
        "/api/scans",
        &operator,
        Some(json!({"targets": ["127.0.0.1"], "ports": "1"})),
    )
    .await;
    assert_eq!(status, 202);
    let assign = recv(&mut a).await;
    assert_eq!(assign["type"], "assign_task", "{assign}");
    let task = assign["task"].clone();
    drop(a);

    // B asks for A's id: refused, whether A is online or not.
    let (mut b, answer) = agent(&server, &token_b, Some("agent-a")).await;
    assert_eq!(answer["code"], "agent_id_taken", "{answer}");
    // Under an id of its own (and a capability the task does not need, so the task stays
    // queued for A).
    send(
        &mut b,
        json!({"type": "register_agent", "capabilities": ["ssl_check"]}),
    )
    .await;
    let registered = recv(&mut b).await;
    assert_eq!(registered["type"], "registration_ack");
    let b_id = registered["agent_id"].as_str().unwrap().to_owned();
    assert_ne!(b_id, "agent-a");

    // A result for a task B does not hold is refused.
    let forged = |agent_id: &str, host: &str, addr: &str| {
        json!({"type": "scan_result", "result": {
            "scan_id": task["scan_id"], "task_id": task["id"], "agent_id": agent_id,
            "target": host, "kind": "port_scan", "status": "success", "findings": [],
            "threats": [{"signature_id": "x", "name": "Bank is open", "severity": "critical",
                         "host": host, "addr": addr, "port": 443, "kind": "open_port",
                         "field": "port", "evidence": "443", "remediation": "", "references": []}],
            "duration_seconds": 0.1, "time": "2026-12-01T00:00:00Z", "attempts": 1}})
    };
    send(&mut b, forged("agent-a", "bank.example", "203.0.113.9")).await;
    let refused = recv(&mut b).await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "not_your_task");

    // A, back under its own token, holds the task again; a threat on another host is refused.
    let (mut a, ack) = agent(&server, &token_a, Some("agent-a")).await;
    assert_eq!(ack["agent_id"], "agent-a", "{ack}");
    let assign = recv(&mut a).await;
    assert_eq!(assign["task"]["id"], task["id"], "{assign}");
    send(&mut a, forged("agent-a", "bank.example", "203.0.113.9")).await;
    let refused = recv(&mut a).await;
    assert_eq!(refused["code"], "bad_result", "{refused}");
    send(&mut a, forged("agent-a", "127.0.0.1", "203.0.113.9")).await;
    let refused = recv(&mut a).await;
    assert_eq!(refused["code"], "bad_result", "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("203.0.113.9"),
        "{refused}"
    );
    assert!(server.state.store().alerts(10).await.unwrap().is_empty());

    // On target, it is stored.
    send(&mut a, forged("agent-a", "127.0.0.1", "127.0.0.1")).await;
    let ack = recv(&mut a).await;
    assert_eq!(ack["of"], "scan_result", "{ack}");
    assert_eq!(server.state.store().alerts(10).await.unwrap().len(), 1);
    server.stop().await;
}

/// Before: an agent could publish a `critical_alert` straight into `alerts`.
#[tokio::test]
async fn alerts_and_scan_events_come_only_from_the_server() {
    let server = TestServer::start(common::config()).await;
    for token in [server.token(Role::Agent).await, server.admin.clone()] {
        let (mut ws, welcome) = server.connect_as(&token).await;
        for room in ["alerts", "scans"] {
            let rights = welcome["rooms"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["name"] == room)
                .unwrap();
            assert_eq!(rights["publish"], false);
            send(
                &mut ws,
                json!({"type": "publish", "id": "p", "room": room, "kind": "critical_alert",
                       "severity": "critical", "data": {"name": "forged"}}),
            )
            .await;
            let answer = recv(&mut ws).await;
            assert_eq!(answer["code"], "forbidden", "{answer}");
        }
    }
    let (status, _) = call(
        &server.state,
        "POST",
        "/api/events",
        &server.admin,
        Some(json!({"kind": "critical_alert", "room": "alerts", "data": {}})),
    )
    .await;
    assert_eq!(status, 403);
    server.stop().await;
}

/// Before: the dashboard showed the client-supplied `data.user` as a chat message's sender.
#[tokio::test]
async fn chat_names_the_sender_the_server_knows() {
    let server = TestServer::start(common::config()).await;
    let (_, operator) = server
        .state
        .auth()
        .create_token(Role::Operator, "night shift")
        .await
        .unwrap();
    let (mut ws, _) = server.connect_as(&operator).await;
    send(&mut ws, json!({"type": "subscribe", "rooms": ["chat"]})).await;
    assert_eq!(recv(&mut ws).await["of"], "subscribe");
    send(
        &mut ws,
        json!({"type": "publish", "room": "chat", "kind": "chat_message",
               "data": {"user": "admin", "message": "rotate the keys"}}),
    )
    .await;
    let (mut event, mut ack) = (recv(&mut ws).await, recv(&mut ws).await);
    if event["type"] == "ack" {
        std::mem::swap(&mut event, &mut ack);
    }
    assert_eq!(event["event"]["source"], "night shift", "{event}");
    assert_eq!(event["event"]["data"]["user"], "night shift", "{event}");
    assert_eq!(event["event"]["data"]["message"], "rotate the keys");
    server.stop().await;
}

/// Before: every sign-in added a session for good, and the server re-read them all every two
/// seconds.
#[tokio::test]
async fn sessions_per_token_are_bounded() {
    let server = TestServer::start(common::config()).await;
    let viewer = server.token(Role::Viewer).await;
    let auth = server.state.auth();
    let principal = auth.verify_token(&viewer).await.unwrap();
    let max = vigil_server::auth::MAX_SESSIONS_PER_TOKEN;
    let mut sessions: Vec<String> = Vec::new();
    for _ in 0..max + 8 {
        sessions.push(
            auth.create_session(&principal, Duration::from_secs(60))
                .await
                .unwrap(),
        );
    }
    let mut live = 0;
    for s in &sessions {
        live += usize::from(auth.verify_session(s).await.is_some());
    }
    assert_eq!(live, max);
    assert!(
        auth.verify_session(&sessions[max + 7]).await.is_some(),
        "the newest stays"
    );
    let fresh = vigil_server::auth::Auth::load(server.state.store().clone())
        .await
        .unwrap();
    let mut stored = 0;
    for s in &sessions {
        stored += usize::from(fresh.verify_session(s).await.is_some());
    }
    assert_eq!(stored, max, "the store keeps the same bound");
    server.stop().await;
}

/// Before: every registration without an id made a new agent for good.
#[tokio::test]
async fn agent_ids_per_token_are_bounded() {
    let config = ServerConfig {
        max_agents_per_token: 3,
        max_agents: 10,
        ..common::config()
    };
    let server = TestServer::start(config).await;
    let token = server.token(Role::Agent).await;
    for _ in 0..20 {
        let (ws, ack) = agent(&server, &token, None).await;
        assert_eq!(ack["type"], "registration_ack", "{ack}");
        drop(ws);
        // Wait until the server has seen the agent go.
        for _ in 0..100 {
            let online = server
                .state
                .orchestrator()
                .agents()
                .await
                .unwrap()
                .iter()
                .filter(|a| a.status == "online" && !a.local)
                .count();
            if online == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let remote = server
        .state
        .orchestrator()
        .agents()
        .await
        .unwrap()
        .iter()
        .filter(|a| !a.local)
        .count();
    assert!(remote <= 3, "{remote} agents kept");

    // Three online agents of one token: a fourth cannot push any of them out.
    let held: Vec<_> = {
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(agent(&server, &token, None).await);
        }
        held
    };
    let (_ws, answer) = agent(&server, &token, None).await;
    assert_eq!(answer["code"], "too_many_agents", "{answer}");
    drop(held);
    server.stop().await;
}

/// An Engine.IO handshake over WebSocket with `headers`; the HTTP status (101 when upgraded).
async fn engineio_handshake(
    server: &TestServer,
    headers: &[(&'static str, String)],
) -> (u16, Option<Ws>) {
    let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", server.addr);
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(*name, value.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => (101, Some(ws)),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            (response.status().as_u16(), None)
        }
        Err(other) => panic!("unexpected {other}"),
    }
}

/// Reads Engine.IO text packets until one starts with `prefix`.
async fn packet(ws: &mut Ws, prefix: &str) -> String {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a packet within 5 s")
            .expect("open")
            .expect("frame");
        if let Message::Text(text) = message
            && text.starts_with(prefix)
        {
            return text.to_string();
        }
    }
}

/// Before: Engine.IO sessions needed no token and were not counted at all (20 000 handshakes
/// added 234 MB). Now anonymous sessions have their own budget; a handshake with a bearer
/// token is not counted and connects on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engineio_sessions_without_a_token_have_a_budget() {
    let server = TestServer::start(small_budget()).await;
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..60 {
        match engineio_handshake(&server, &[]).await {
            (101, Some(ws)) => held.push(ws),
            (503, None) => refused += 1,
            other => panic!("unexpected {:?}", other.0),
        }
    }
    assert_eq!(held.len(), 16, "one source's budget");
    assert_eq!(refused, 44);

    let operator = server.token(Role::Operator).await;
    let (status, ws) = engineio_handshake(&server, &bearer(&operator)).await;
    assert_eq!(status, 101);
    let mut ws = ws.unwrap();
    packet(&mut ws, "0").await;
    // CONNECT with no auth payload: the handshake's bearer token is enough.
    ws.send(Message::Text("40".into())).await.unwrap();
    let connected = packet(&mut ws, "4").await;
    assert!(connected.starts_with("40"), "{connected}");

    // Revoking the token ends the Socket.IO connection too.
    let id = server
        .state
        .auth()
        .verify_token(&operator)
        .await
        .unwrap()
        .token_id;
    server.state.auth().revoke(&id).await.unwrap();
    let error = packet(&mut ws, "42").await;
    assert!(error.contains("revoked"), "{error}");
    let gone = packet(&mut ws, "41").await;
    assert!(gone.starts_with("41"));

    // A session that connects gives its place back (one that just goes away gives it back
    // when socketioxide drops it, after `auth_timeout`).
    let mut ws = held.pop().unwrap();
    packet(&mut ws, "0").await;
    let before = server.state.unauthenticated();
    ws.send(Message::Text(
        format!("40{}", json!({"token": server.admin})).into(),
    ))
    .await
    .unwrap();
    assert!(packet(&mut ws, "4").await.starts_with("40"));
    assert_eq!(server.state.unauthenticated(), before - 1);
    let (status, _) = engineio_handshake(&server, &[]).await;
    assert_eq!(status, 101, "the freed place is taken");
    drop(held);
    server.stop().await;
}
