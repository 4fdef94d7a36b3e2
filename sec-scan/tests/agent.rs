//! The network agent against a scripted server on 127.0.0.1: registration, tasks, results kept
//! until acknowledged across a dropped connection and an agent restart, refusals, stop.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::{SinkExt, StreamExt};
use sec_scan::agent::{Agent, AgentConfig, AgentEvent};
use sec_scan::{ScanTask, TaskKind, TaskOutput, TaskRunner};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// A runner that finishes at once with no findings.
struct Instant;

#[async_trait]
impl TaskRunner for Instant {
    async fn run(
        &self,
        _task: &ScanTask,
        _cancel: CancellationToken,
    ) -> sec_scan::Result<TaskOutput> {
        Ok(TaskOutput::default())
    }
}

type Peer = WebSocketStream<TcpStream>;

/// The token travels in the upgrade request, never in a frame or the URL. (The signature is
/// tungstenite's callback's, large error type included.)
#[allow(clippy::result_large_err)]
fn check(
    request: &tokio_tungstenite::tungstenite::handshake::server::Request,
    response: tokio_tungstenite::tungstenite::handshake::server::Response,
) -> Result<
    tokio_tungstenite::tungstenite::handshake::server::Response,
    tokio_tungstenite::tungstenite::handshake::server::ErrorResponse,
> {
    assert_eq!(
        request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer vgl_agent")
    );
    assert_eq!(request.uri().query(), None);
    Ok(response)
}

async fn accept(listener: &TcpListener) -> Peer {
    let (socket, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("the agent connects")
        .unwrap();
    tokio_tungstenite::accept_hdr_async(socket, check)
        .await
        .unwrap()
}

async fn next_json(peer: &mut Peer) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), peer.next())
            .await
            .expect("a frame")
            .expect("open")
            .unwrap();
        if let Message::Text(text) = frame {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

async fn send(peer: &mut Peer, value: Value) {
    peer.send(Message::Text(value.to_string().into()))
        .await
        .unwrap();
}

/// Plays the server's side of registration (the upgrade carried the token, so the server
/// welcomes at once); returns the hello.
async fn handshake(peer: &mut Peer, agent_id: &str) -> Value {
    send(peer, json!({"type": "welcome", "role": "agent", "epoch": "0000000000000001", "head": 0, "rooms": [], "max_message_bytes": 65536})).await;
    let hello = next_json(peer).await;
    assert_eq!(hello["type"], "register_agent");
    send(peer, json!({"type": "registration_ack", "agent_id": agent_id, "status": "success", "heartbeat_seconds": 1})).await;
    hello
}

/// Frames until a `scan_result`, skipping heartbeats.
async fn next_result(peer: &mut Peer) -> Value {
    loop {
        let frame = next_json(peer).await;
        if frame["type"] == "scan_result" {
            return frame["result"].clone();
        }
        assert_eq!(frame["type"], "heartbeat", "{frame}");
    }
}

/// Stops the agent and waits (at most `limit`) until it has returned without an error.
async fn stop_cleanly(
    stop: &CancellationToken,
    running: tokio::task::JoinHandle<sec_scan::Result<()>>,
    limit: Duration,
) {
    stop.cancel();
    tokio::time::timeout(limit, running)
        .await
        .expect("the agent stops")
        .unwrap()
        .unwrap();
}

fn task(id: &str) -> ScanTask {
    let mut task = ScanTask::new(TaskKind::PortScan, "127.0.0.1");
    task.id = id.into();
    task.scan_id = "scan-1".into();
    task
}

fn config(port: u16, spool: &std::path::Path) -> AgentConfig {
    AgentConfig {
        spool: Some(spool.to_owned()),
        reconnect_min: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(200),
        stop_grace: Duration::from_secs(2),
        name: "test agent".into(),
        ..AgentConfig::new(format!("ws://127.0.0.1:{port}/ws"), "vgl_agent")
    }
}

#[tokio::test]
async fn a_result_is_resent_after_a_lost_connection_until_acknowledged() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool.jsonl");
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let agent = Agent::new(config(port, &spool), Arc::new(Instant))
        .unwrap()
        .with_events(events_tx);
    let stop = CancellationToken::new();
    let running = tokio::spawn(agent.run(stop.clone()));

    let mut first = accept(&listener).await;
    let hello = handshake(&mut first, "agent-7").await;
    assert_eq!(hello["name"], "test agent");
    assert!(
        hello["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("port_scan"))
    );
    send(
        &mut first,
        json!({"type": "assign_task", "task": task("t1")}),
    )
    .await;
    let result = next_result(&mut first).await;
    assert_eq!(
        (result["task_id"].as_str(), result["agent_id"].as_str()),
        (Some("t1"), Some("agent-7"))
    );
    assert!(
        std::fs::read_to_string(&spool).unwrap().contains("\"t1\""),
        "kept in the spool until acknowledged"
    );
    // The server goes away before acknowledging.
    drop(first);

    let mut second = accept(&listener).await;
    let hello = handshake(&mut second, "agent-7").await;
    assert_eq!(hello["agent_id"], "agent-7", "the agent keeps its id");
    let again = next_result(&mut second).await;
    assert_eq!(again["task_id"], "t1", "resent after reconnecting");
    send(
        &mut second,
        json!({"type": "ack", "of": "scan_result", "id": "t1"}),
    )
    .await;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .unwrap()
            .unwrap()
        {
            AgentEvent::ResultAcknowledged(id) => {
                assert_eq!(id, "t1");
                break;
            }
            _ => continue,
        }
    }
    assert!(
        !std::fs::read_to_string(&spool).unwrap().contains("\"t1\""),
        "gone from the spool once stored"
    );

    // A result refused for good is dropped, not resent forever.
    send(
        &mut second,
        json!({"type": "assign_task", "task": task("t2")}),
    )
    .await;
    assert_eq!(next_result(&mut second).await["task_id"], "t2");
    send(
        &mut second,
        json!({"type": "error", "code": "not_your_task", "message": "taken over", "id": "t2"}),
    )
    .await;
    loop {
        if let AgentEvent::ResultRefused(id, _) =
            tokio::time::timeout(Duration::from_secs(10), events.recv())
                .await
                .unwrap()
                .unwrap()
        {
            assert_eq!(id, "t2");
            break;
        }
    }

    stop_cleanly(&stop, running, Duration::from_secs(10)).await;
}

#[tokio::test]
async fn results_survive_an_agent_restart_through_the_spool() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool.jsonl");

    let stop = CancellationToken::new();
    let running = tokio::spawn(
        Agent::new(config(port, &spool), Arc::new(Instant))
            .unwrap()
            .run(stop.clone()),
    );
    let mut peer = accept(&listener).await;
    handshake(&mut peer, "agent-9").await;
    send(
        &mut peer,
        json!({"type": "assign_task", "task": task("t9")}),
    )
    .await;
    assert_eq!(next_result(&mut peer).await["task_id"], "t9");
    // Stopped before the server acknowledged: the result stays in the spool.
    stop.cancel();
    let resent = next_result(&mut peer).await;
    assert_eq!(
        resent["task_id"], "t9",
        "a stopping agent reports what it holds once more"
    );
    drop(peer);
    tokio::time::timeout(Duration::from_secs(15), running)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(std::fs::read_to_string(&spool).unwrap().contains("\"t9\""));

    // A new agent process with the same spool sends it again.
    let stop = CancellationToken::new();
    let running = tokio::spawn(
        Agent::new(config(port, &spool), Arc::new(Instant))
            .unwrap()
            .run(stop.clone()),
    );
    let mut peer = accept(&listener).await;
    handshake(&mut peer, "agent-9").await;
    assert_eq!(next_result(&mut peer).await["task_id"], "t9");
    send(
        &mut peer,
        json!({"type": "ack", "of": "scan_result", "id": "t9"}),
    )
    .await;
    // Heartbeats continue; the spool empties.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&spool).unwrap().contains("\"t9\"") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the acknowledged result left the spool"
        );
        let frame = next_json(&mut peer).await;
        assert_eq!(frame["type"], "heartbeat");
    }
    stop_cleanly(&stop, running, Duration::from_secs(15)).await;
}

#[tokio::test]
async fn a_refused_token_is_a_clear_error_and_bad_configs_are_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::new(config(port, &dir.path().join("s")), Arc::new(Instant)).unwrap();
    let running = tokio::spawn(agent.run(CancellationToken::new()));
    let mut peer = accept(&listener).await;
    peer.send(Message::Close(Some(
        tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: 4001u16.into(),
            reason: "invalid token".into(),
        },
    )))
    .await
    .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(err.to_string().contains("refused"), "{err}");

    for bad in [
        AgentConfig::new("http://127.0.0.1:1/ws", "t"),
        AgentConfig::new("ws://127.0.0.1:1/ws?token=x", "t"),
        AgentConfig {
            max_concurrent: 0,
            ..AgentConfig::new("ws://127.0.0.1:1/ws", "t")
        },
        AgentConfig {
            connect_timeout: Duration::ZERO,
            ..AgentConfig::new("ws://127.0.0.1:1/ws", "t")
        },
    ] {
        assert!(Agent::new(bad, Arc::new(Instant)).is_err());
    }
}

/// The first event `pick` takes, skipping others (at most 10 s each).
async fn next_event<T>(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<AgentEvent>,
    pick: impl Fn(AgentEvent) -> Option<T>,
) -> T {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("an event in 10 s")
            .expect("the agent runs");
        if let Some(picked) = pick(event) {
            return picked;
        }
    }
}

/// The next `Disconnected` reason.
async fn next_disconnect(events: &mut tokio::sync::mpsc::UnboundedReceiver<AgentEvent>) -> String {
    next_event(events, |e| match e {
        AgentEvent::Disconnected(why, _) => Some(why),
        _ => None,
    })
    .await
}

/// The next `Registered` id (a disconnection first fails the test).
async fn next_registered(events: &mut tokio::sync::mpsc::UnboundedReceiver<AgentEvent>) -> String {
    next_event(events, |e| match e {
        AgentEvent::Registered(id) => Some(id),
        AgentEvent::Disconnected(why, _) => panic!("disconnected: {why}"),
        _ => None,
    })
    .await
}

/// Regression: `connect_async` had no time limit, so a proxy whose backend died (it accepts the
/// TCP connection and never answers the upgrade) held the agent for good; nor had registration.
#[tokio::test]
async fn a_server_that_never_answers_the_upgrade_or_the_registration_is_left_and_retried() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let config = AgentConfig {
        connect_timeout: Duration::from_millis(300),
        ..config(port, &dir.path().join("spool.jsonl"))
    };
    let stop = CancellationToken::new();
    let running = tokio::spawn(
        Agent::new(config, Arc::new(Instant))
            .unwrap()
            .with_events(events_tx)
            .run(stop.clone()),
    );

    // 1. TCP is accepted; the upgrade is never answered (the socket is held open).
    let (silent, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("the agent connects")
        .unwrap();
    let why = next_disconnect(&mut events).await;
    assert!(
        why.contains("timed out after 300ms") && why.contains("upgrade"),
        "{why}"
    );
    // 2. It tries again: the upgrade is answered and `welcome` sent, but registration never is.
    let mut mute = accept(&listener).await;
    send(&mut mute, json!({"type": "welcome", "role": "agent", "epoch": "0000000000000001", "head": 0, "rooms": [], "max_message_bytes": 65536})).await;
    assert_eq!(next_json(&mut mute).await["type"], "register_agent");
    let why = next_disconnect(&mut events).await;
    assert!(
        why.contains("timed out after 300ms") && why.contains("registration_ack"),
        "{why}"
    );
    // 3. And again: a server that answers gets the agent.
    let mut peer = accept(&listener).await;
    handshake(&mut peer, "agent-3").await;
    assert_eq!(next_registered(&mut events).await, "agent-3");
    drop((silent, mute));

    stop_cleanly(&stop, running, Duration::from_secs(10)).await;
}

/// Regression: a registration the server refused for a passing reason (its database was away:
/// `storage_unavailable`) left the agent connected and unregistered for good.
#[tokio::test]
async fn a_registration_refused_for_now_is_retried_and_one_refused_for_good_stops_the_agent() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let running = tokio::spawn(
        Agent::new(
            config(port, &dir.path().join("spool.jsonl")),
            Arc::new(Instant),
        )
        .unwrap()
        .with_events(events_tx)
        .run(CancellationToken::new()),
    );
    let welcome = json!({"type": "welcome", "role": "agent", "epoch": "0000000000000001", "head": 0, "rooms": [], "max_message_bytes": 65536});

    let mut first = accept(&listener).await;
    send(&mut first, welcome.clone()).await;
    assert_eq!(next_json(&mut first).await["type"], "register_agent");
    send(&mut first, json!({"type": "error", "code": "storage_unavailable", "message": "the shared database: connection refused; try again"})).await;
    let why = next_disconnect(&mut events).await;
    assert!(why.contains("storage_unavailable"), "{why}");

    let mut second = accept(&listener).await;
    handshake(&mut second, "agent-4").await;
    assert_eq!(next_registered(&mut events).await, "agent-4");
    drop(second);

    // An id another token owns will not become free by retrying: the agent stops and says so.
    let mut third = accept(&listener).await;
    send(&mut third, welcome).await;
    assert_eq!(next_json(&mut third).await["type"], "register_agent");
    send(&mut third, json!({"type": "error", "code": "agent_id_taken", "message": "agent id \"agent-4\" belongs to another token"})).await;
    let err = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the agent stops")
        .unwrap()
        .expect_err("a final refusal");
    assert!(err.to_string().contains("agent_id_taken"), "{err}");
}

/// Regression: a result the server could not store (`storage_failed`: its database was away)
/// waited in the outbox until the next reconnect, so on a connection that stayed up its task
/// never ended (heartbeats kept renewing its lease).
#[tokio::test]
async fn a_result_the_server_could_not_store_is_sent_again_on_the_same_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let running = tokio::spawn(
        Agent::new(
            config(port, &dir.path().join("spool.jsonl")),
            Arc::new(Instant),
        )
        .unwrap()
        .run(stop.clone()),
    );
    let mut peer = accept(&listener).await;
    handshake(&mut peer, "agent-5").await;
    send(
        &mut peer,
        json!({"type": "assign_task", "task": task("t5")}),
    )
    .await;
    assert_eq!(next_result(&mut peer).await["task_id"], "t5");
    for _ in 0..2 {
        send(&mut peer, json!({"type": "error", "code": "storage_failed", "message": "the result could not be stored; send it again", "id": "t5"})).await;
        assert_eq!(
            next_result(&mut peer).await["task_id"],
            "t5",
            "sent again without a reconnect"
        );
    }
    send(
        &mut peer,
        json!({"type": "ack", "of": "scan_result", "id": "t5"}),
    )
    .await;
    // Acknowledged: it is not sent again (heartbeats only, for a while).
    let quiet = tokio::time::Instant::now() + Duration::from_millis(700);
    while let Ok(frame) = tokio::time::timeout_at(quiet, next_json(&mut peer)).await {
        assert_eq!(frame["type"], "heartbeat", "{frame}");
    }
    stop_cleanly(&stop, running, Duration::from_secs(10)).await;
}
