//! `/socket.io/` on 127.0.0.1: authentication from the `auth` payload only, the Origin check,
//! room ACLs and event delivery, publishing (the sender included), an agent's register, task and
//! result, a client that stops reading, and python-socketio clients written in the seeds' style.
//!
//! The Rust-side client speaks Engine.IO v4 / Socket.IO v5 text packets over a raw WebSocket:
//! `0{open}`, `40{auth}` → `40{sid}` or `44{message}`, `42[name, data]`, `42<id>[...]` → `43<id>[...]`,
//! server ping `2` → pong `3`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{TestServer, call};
use event_bus::{Delivery, Filter, Role};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use vigil_server::ServerConfig;

/// The tests' configuration, with the default time to join the namespace (socketioxide's
/// `connect_timeout` is the server's `auth_timeout`): a loaded machine must not fail a handshake.
fn config() -> ServerConfig {
    ServerConfig {
        auth_timeout: Duration::from_secs(10),
        ..common::config()
    }
}

/// A minimal Socket.IO v5 client over WebSocket.
struct Sio {
    ws: common::Ws,
    next_ack: u64,
    /// Events read while waiting for something else.
    pending: std::collections::VecDeque<(String, Value)>,
}

/// How a connection attempt ended.
#[derive(Debug)]
enum Refusal {
    /// The upgrade was answered with this HTTP status.
    Http(u16),
    /// Socket.IO `CONNECT_ERROR` with this message.
    Connect(String),
}

impl Sio {
    async fn open(
        server: &TestServer,
        query: &str,
        origin: Option<&str>,
    ) -> Result<common::Ws, Refusal> {
        let url = format!(
            "ws://{}/socket.io/?EIO=4&transport=websocket{query}",
            server.addr
        );
        let mut request = url.into_client_request().unwrap();
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().unwrap());
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((ws, _)) => Ok(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(Refusal::Http(response.status().as_u16()))
            }
            Err(other) => panic!("unexpected {other}"),
        }
    }

    /// Opens the transport and joins `/` with `auth` (no CONNECT payload when `None`).
    async fn connect_with(
        server: &TestServer,
        query: &str,
        origin: Option<&str>,
        auth: Option<Value>,
    ) -> Result<Sio, Refusal> {
        let ws = Sio::open(server, query, origin).await?;
        let mut sio = Sio {
            ws,
            next_ack: 1,
            pending: Default::default(),
        };
        let open = sio.packet().await;
        assert!(open.starts_with('0'), "engine.io open packet: {open}");
        let connect = match auth {
            Some(auth) => format!("40{auth}"),
            None => "40".to_owned(),
        };
        sio.send(connect).await;
        let reply = sio.packet().await;
        if let Some(body) = reply.strip_prefix("40") {
            let body: Value = serde_json::from_str(body).expect("CONNECT body");
            assert!(body["sid"].is_string(), "{body}");
            Ok(sio)
        } else if let Some(body) = reply.strip_prefix("44") {
            let body: Value = serde_json::from_str(body).expect("CONNECT_ERROR body");
            Err(Refusal::Connect(
                body["message"].as_str().unwrap_or_default().to_owned(),
            ))
        } else {
            panic!("unexpected answer to CONNECT: {reply}")
        }
    }

    async fn connect(server: &TestServer, auth: Value) -> Sio {
        Sio::connect_with(server, "", None, Some(auth))
            .await
            .expect("connected")
    }

    async fn send(&mut self, text: String) {
        self.ws
            .send(Message::Text(text.into()))
            .await
            .expect("send");
    }

    /// The next Engine.IO packet that is not a ping (pings are answered).
    async fn packet(&mut self) -> String {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("a packet within 10 s")
                .expect("stream open")
                .expect("frame");
            match message {
                Message::Text(text) if text.as_str() == "2" => self.send("3".into()).await,
                Message::Text(text) => return text.to_string(),
                Message::Close(frame) => panic!("closed: {frame:?}"),
                _ => continue,
            }
        }
    }

    async fn emit(&mut self, name: &str, data: Value) {
        self.send(format!("42{}", json!([name, data]))).await;
    }

    /// Emits with an acknowledgement callback and returns its answer; events that come first are
    /// kept for [`Sio::event`].
    async fn call(&mut self, name: &str, data: Value) -> Value {
        let id = self.next_ack;
        self.next_ack += 1;
        self.send(format!("42{id}{}", json!([name, data]))).await;
        let prefix = format!("43{id}");
        loop {
            let packet = self.packet().await;
            if let Some(body) = packet.strip_prefix(&prefix) {
                let mut args: Vec<Value> = serde_json::from_str(body).expect("ACK body");
                return args.remove(0);
            }
            if let Some(event) = parse_event(&packet) {
                self.pending.push_back(event);
            }
        }
    }

    /// The next event, as (name, first argument).
    async fn event(&mut self) -> (String, Value) {
        if let Some(event) = self.pending.pop_front() {
            return event;
        }
        loop {
            let packet = self.packet().await;
            if let Some(event) = parse_event(&packet) {
                return event;
            }
        }
    }

    /// Reads events until one called `name`; returns its payload.
    async fn wait_event(&mut self, name: &str) -> Value {
        loop {
            let (event, data) = self.event().await;
            if event == name {
                return data;
            }
        }
    }
}

fn parse_event(packet: &str) -> Option<(String, Value)> {
    let body = packet.strip_prefix("42")?;
    let start = body.find('[')?;
    let mut args: Vec<Value> = serde_json::from_str(&body[start..]).ok()?;
    let name = args.remove(0).as_str()?.to_owned();
    Some((name, args.into_iter().next().unwrap_or(Value::Null)))
}

/// The status of a polling handshake `GET /socket.io/?EIO=4&transport=polling{query}`.
async fn polling_status(server: &TestServer, query: &str, origin: Option<&str>) -> u16 {
    polling(server, query, origin).await.status().as_u16()
}

/// The response to a polling handshake.
async fn polling(
    server: &TestServer,
    query: &str,
    origin: Option<&str>,
) -> axum::response::Response {
    use tower::ServiceExt;
    let mut request = axum::http::Request::builder()
        .uri(format!("/socket.io/?EIO=4&transport=polling{query}"))
        .header("host", server.addr.to_string());
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    vigil_server::app(server.state.clone())
        .oneshot(request.body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn connections_need_a_valid_token_in_the_auth_payload() {
    let server = TestServer::start(config()).await;
    let viewer = server.token(Role::Viewer).await;

    let refused = Sio::connect_with(&server, "", None, None)
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(&refused, Refusal::Connect(m) if m.starts_with("unauthenticated")),
        "{refused:?}"
    );
    let refused = Sio::connect_with(&server, "", None, Some(json!({"token": "vgl_not-a-token"})))
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(&refused, Refusal::Connect(m) if m.starts_with("unauthenticated")),
        "{refused:?}"
    );

    // A token in the URL is refused before Socket.IO sees the request, even a valid one.
    let query = format!("&token={viewer}");
    let refused = Sio::connect_with(&server, &query, None, Some(json!({"token": viewer})))
        .await
        .err()
        .expect("refused");
    assert!(matches!(refused, Refusal::Http(400)), "{refused:?}");
    assert_eq!(polling_status(&server, &query, None).await, 400);

    let mut sio = Sio::connect(&server, json!({"token": viewer})).await;
    let answer = sio.call("join_room", json!({"room": "chat"})).await;
    assert_eq!(answer["status"], "ok", "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn a_transport_that_never_joins_the_namespace_is_closed_after_the_auth_timeout() {
    // The common configuration: 300 ms to authenticate.
    let server = TestServer::start(common::config()).await;
    let mut ws = Sio::open(&server, "", None).await.expect("engine.io open");
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "an unauthenticated transport stayed open");
    server.stop().await;
}

#[tokio::test]
async fn foreign_origins_are_refused_on_both_transports() {
    let server = TestServer::start(ServerConfig {
        allowed_origins: vec!["https://ops.example".into()],
        ..config()
    })
    .await;
    let viewer = server.token(Role::Viewer).await;
    let auth = json!({"token": viewer});

    let refused = Sio::connect_with(
        &server,
        "",
        Some("https://evil.example"),
        Some(auth.clone()),
    )
    .await
    .err()
    .expect("refused");
    assert!(matches!(refused, Refusal::Http(403)), "{refused:?}");
    assert_eq!(
        polling_status(&server, "", Some("https://evil.example")).await,
        403
    );

    let own = format!("http://{}", server.addr);
    assert_eq!(polling_status(&server, "", Some(&own)).await, 200);
    assert_eq!(
        polling_status(&server, "", Some("https://ops.example")).await,
        200
    );
    let response = polling(&server, "", Some("https://ops.example")).await;
    let allowed = response.headers().get("access-control-allow-origin");
    assert_eq!(
        allowed.and_then(|v| v.to_str().ok()),
        Some("https://ops.example")
    );
    Sio::connect_with(&server, "", Some(&own), Some(auth.clone()))
        .await
        .expect("same origin");
    Sio::connect_with(&server, "", Some("https://ops.example"), Some(auth))
        .await
        .expect("configured origin");
    server.stop().await;
}

#[tokio::test]
async fn rooms_follow_the_bus_rules_and_publishing_reaches_the_sender_too() {
    let server = TestServer::start(config()).await;
    let mut viewer = Sio::connect(
        &server,
        json!({"token": server.token(Role::Viewer).await, "rooms": []}),
    )
    .await;
    let mut operator = Sio::connect(
        &server,
        json!({"token": server.token(Role::Operator).await, "rooms": []}),
    )
    .await;

    let answer = viewer.call("join_room", json!({"room": "admin"})).await;
    assert_eq!(
        (answer["status"].as_str(), answer["code"].as_str()),
        (Some("error"), Some("forbidden")),
        "{answer}"
    );
    let (name, error) = viewer.event().await;
    assert_eq!(
        (name.as_str(), error["code"].as_str()),
        ("error", Some("forbidden")),
        "{error}"
    );
    let answer = viewer.call("join_room", json!({"room": "nowhere"})).await;
    assert_eq!(answer["code"], "unknown_room", "{answer}");
    // Admins may not be joined by a viewer's auth payload either.
    let refused = Sio::connect_with(
        &server,
        "",
        None,
        Some(json!({"token": server.token(Role::Viewer).await, "rooms": ["admin"]})),
    )
    .await
    .err()
    .expect("refused");
    assert!(
        matches!(&refused, Refusal::Connect(m) if m.starts_with("forbidden")),
        "{refused:?}"
    );

    // A joined room's events arrive under their kind, with the bus envelope.
    assert_eq!(
        viewer.call("join_room", json!({"room": "scans"})).await["status"],
        "ok"
    );
    server
        .state
        .bus()
        .publish_json(
            "scan_update",
            "scans",
            &json!({"scan_id": "s1", "status": "success"}),
        )
        .unwrap();
    let envelope = viewer.wait_event("scan_update").await;
    assert_eq!(envelope["room"], "scans", "{envelope}");
    assert_eq!(envelope["kind"], "scan_update");
    assert_eq!(envelope["data"]["scan_id"], "s1");
    assert!(
        envelope["seq"].as_u64().is_some() && envelope["epoch"].is_string(),
        "{envelope}"
    );

    // Publishing to chat needs operator; the sender gets its own message (broadcast=True).
    assert_eq!(
        viewer.call("join_room", "chat".into()).await["status"],
        "ok"
    );
    let answer = viewer.call("chat_message", json!({"message": "hi"})).await;
    assert_eq!(answer["code"], "forbidden", "{answer}");
    assert_eq!(
        operator.call("join_room", json!({"room": "chat"})).await["status"],
        "ok"
    );
    let answer = operator
        .call("chat_message", json!({"message": "on it"}))
        .await;
    assert_eq!(answer["status"], "ok", "{answer}");
    for client in [&mut operator, &mut viewer] {
        let message = client.wait_event("chat_message").await;
        assert_eq!(message["data"]["message"], "on it", "{message}");
        assert_eq!(message["room"], "chat");
    }
    let answer = operator
        .call(
            "publish",
            json!({"room": "admin", "kind": "note", "data": {}}),
        )
        .await;
    assert_eq!(answer["code"], "forbidden", "{answer}");
    // A published kind cannot pose as an order or a Socket.IO event: it arrives as `event`.
    let answer = operator
        .call(
            "publish",
            json!({"room": "chat", "kind": "assign_task", "data": {"id": "fake"}}),
        )
        .await;
    assert_eq!(answer["status"], "ok", "{answer}");
    let envelope = loop {
        let (name, data) = operator.event().await;
        assert_ne!(name, "assign_task");
        if name == "event" {
            break data;
        }
    };
    assert_eq!(envelope["kind"], "assign_task", "{envelope}");
    let (name, _) = viewer.event().await;
    assert_eq!(name, "event");

    // After leave_room nothing more arrives from that room: the next event is from another one.
    assert_eq!(
        viewer.call("leave_room", json!({"room": "scans"})).await["status"],
        "ok"
    );
    let bus = server.state.bus();
    bus.publish_json("scan_update", "scans", &json!({"scan_id": "s2"}))
        .unwrap();
    bus.publish_json("chat_message", "chat", &json!({"message": "after"}))
        .unwrap();
    let (name, data) = viewer.event().await;
    assert_eq!(
        (name.as_str(), &data["data"]["message"]),
        ("chat_message", &json!("after")),
        "{data}"
    );

    let status = call(
        &server.state,
        "GET",
        "/api/websocket/status",
        &server.admin,
        None,
    )
    .await
    .1;
    assert_eq!(status["rooms"]["chat"], 2, "{status}");
    server.stop().await;
}

#[tokio::test]
async fn dashboards_join_the_seed_rooms_by_default_and_agents_join_none() {
    let server = TestServer::start(config()).await;
    let mut viewer =
        Sio::connect(&server, json!({"token": server.token(Role::Viewer).await})).await;
    let mut agent = Sio::connect(&server, json!({"token": server.token(Role::Agent).await})).await;
    let status = call(
        &server.state,
        "GET",
        "/api/websocket/status",
        &server.admin,
        None,
    )
    .await
    .1;
    for room in ["monitoring", "scans", "alerts"] {
        assert_eq!(status["rooms"][room], 1, "{status}");
    }
    // Its acknowledged request proves the agent's subscription state is settled.
    let answer = agent.call("heartbeat", json!({})).await;
    assert_eq!(answer["code"], "not_an_agent", "{answer}");
    server
        .state
        .bus()
        .publish_json("critical_alert", "alerts", &json!({"name": "x"}))
        .unwrap();
    assert_eq!(
        viewer.wait_event("critical_alert").await["data"]["name"],
        "x"
    );
    server.stop().await;
}

#[tokio::test]
async fn an_oversized_message_ends_that_socket_only() {
    let server = TestServer::start(config()).await;
    let token = server.token(Role::Operator).await;
    let mut big = Sio::connect(&server, json!({"token": token, "rooms": []})).await;
    let mut other = Sio::connect(&server, json!({"token": token, "rooms": ["chat"]})).await;
    let limit = server.state.config().max_message_bytes;
    big.emit("chat_message", json!({"message": "x".repeat(limit + 1)}))
        .await;
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match big.ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(Message::Text(text))) => {
                    assert!(
                        !text.starts_with("42"),
                        "the oversized event was handled: {text}"
                    )
                }
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the socket stayed open after an oversized message"
    );
    let answer = other
        .call("chat_message", json!({"message": "still here"}))
        .await;
    assert_eq!(answer["status"], "ok", "{answer}");
    assert_eq!(
        other.wait_event("chat_message").await["data"]["message"],
        "still here"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_socket_sending_past_its_burst_is_disconnected() {
    let server = TestServer::start(config()).await;
    let mut flood = Sio::connect(
        &server,
        json!({"token": server.token(Role::Viewer).await, "rooms": []}),
    )
    .await;
    let burst = server.state.config().message_burst as usize;
    for _ in 0..burst * 2 {
        flood.emit("leave_room", json!({"room": "chat"})).await;
    }
    let error = flood.wait_event("error").await;
    assert_eq!(error["code"], "rate_limited", "{error}");
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match flood.ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(Message::Text(text))) if text.as_str() == "41" => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the flooding socket was not disconnected");
    assert!(
        server
            .state
            .counters()
            .rate_limited
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    server.stop().await;
}

fn scoped() -> ServerConfig {
    ServerConfig {
        scope: vec!["127.0.0.1".into()],
        local_agent: None,
        ..config()
    }
}

#[tokio::test]
async fn an_agent_registers_gets_its_task_and_reports_in_the_seed_shape() {
    let server = TestServer::start(scoped()).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open_port = listener.local_addr().unwrap().port();
    let mut dashboard =
        Sio::connect(&server, json!({"token": server.token(Role::Viewer).await})).await;
    // The dashboard's subscription is live once a request of it was answered.
    assert_eq!(
        dashboard.call("join_room", json!({"room": "scans"})).await["status"],
        "ok"
    );

    let mut viewer_agent = Sio::connect(
        &server,
        json!({"token": server.token(Role::Viewer).await, "rooms": []}),
    )
    .await;
    let answer = viewer_agent
        .call(
            "register_agent",
            json!({"agent_id": "x", "type": "t", "capabilities": ["port_scan"]}),
        )
        .await;
    assert_eq!(answer["code"], "forbidden", "{answer}");

    let mut agent = Sio::connect(&server, json!({"token": server.token(Role::Agent).await})).await;
    agent
        .emit(
            "register_agent",
            json!({"agent_id": "scanner_0001", "type": "autonomous_scanner",
                   "capabilities": ["port_scan", "ssl_check"], "max_concurrent": 5}),
        )
        .await;
    let ack = agent.wait_event("registration_ack").await;
    assert_eq!(ack["status"], "success", "{ack}");
    assert_eq!(ack["agent_id"], "scanner_0001");
    let online = dashboard.wait_event("agent_online").await;
    assert_eq!(online["data"]["agent_id"], "scanner_0001", "{online}");
    assert_eq!(
        agent.call("heartbeat", json!({"status": "ready"})).await["status"],
        "ok"
    );

    let operator = server.token(Role::Operator).await;
    let (status, scheduled) = call(
        &server.state,
        "POST",
        "/api/scan",
        &operator,
        Some(json!({"target": "127.0.0.1", "scan_types": ["port_scan"], "ports": open_port.to_string()})),
    )
    .await;
    assert_eq!(status, 202, "{scheduled}");
    let scan_id = scheduled["scan_id"].as_str().unwrap().to_owned();

    let task = agent.wait_event("assign_task").await;
    assert_eq!(task["type"], "port_scan", "{task}");
    assert_eq!(task["target"], "127.0.0.1");
    assert_eq!(task["ports"], json!([open_port]));
    assert_eq!(task["scan_id"], scan_id.as_str());
    let task_id = task["id"].as_str().unwrap().to_owned();

    // Results for tasks this agent does not hold are refused.
    let answer = agent
        .call(
            "scan_result",
            json!({"scan_id": "someone-else", "status": "success"}),
        )
        .await;
    assert_eq!(answer["code"], "not_your_task", "{answer}");

    let result = json!({
        "scan_id": task_id, "agent_id": "scanner_0001", "target": "127.0.0.1", "scan_type": "port_scan",
        "status": "success",
        "findings": [{"type": "open_port", "port": open_port, "status": "open", "risk": "medium"}],
        "threats_detected": [], "duration_seconds": 0.01, "timestamp": "2026-11-21T10:00:00.000001",
    });
    let answer = agent.call("scan_result", result.clone()).await;
    assert_eq!(answer["status"], "ok", "{answer}");
    assert_eq!(answer["stored"], true);
    let acked = agent.wait_event("ack").await;
    assert_eq!(
        (acked["of"].as_str(), acked["id"].as_str()),
        (Some("scan_result"), Some(task_id.as_str()))
    );

    let update = dashboard.wait_event("scan_update").await;
    assert_eq!(update["data"]["task_id"], task_id.as_str(), "{update}");
    assert_eq!(update["data"]["status"], "success");
    let (_, stored) = call(
        &server.state,
        "GET",
        &format!("/api/scans/{scan_id}"),
        &operator,
        None,
    )
    .await;
    let findings = &stored["results"][0]["findings"];
    assert_eq!(findings[0]["port"], open_port, "{stored}");
    assert_eq!(findings[0]["kind"], "open_port");
    assert_eq!(stored["results"][0]["agent_id"], "scanner_0001");
    drop(listener);
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_while_another_keeps_receiving() {
    let server = TestServer::start(config()).await;
    let viewer = server.token(Role::Viewer).await;
    let mut stalled =
        Sio::connect(&server, json!({"token": viewer, "rooms": ["monitoring"]})).await;
    let mut reader = Sio::connect(&server, json!({"token": viewer, "rooms": ["monitoring"]})).await;
    // Settle both subscriptions: each answered a request after joining.
    assert_eq!(
        stalled
            .call("join_room", json!({"room": "monitoring"}))
            .await["status"],
        "ok"
    );
    assert_eq!(
        reader
            .call("join_room", json!({"room": "monitoring"}))
            .await["status"],
        "ok"
    );

    let before = server
        .state
        .counters()
        .slow_disconnects
        .load(std::sync::atomic::Ordering::Relaxed);
    // 64 KiB events fill the stalled socket's TCP buffers and then its bounded queue.
    let blob = "x".repeat(60 * 1024);
    let mut sent = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while server
        .state
        .counters()
        .slow_disconnects
        .load(std::sync::atomic::Ordering::Relaxed)
        == before
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stalled client was never dropped"
        );
        server
            .state
            .bus()
            .publish_json("telemetry", "monitoring", &json!({"n": sent, "blob": blob}))
            .unwrap();
        sent += 1;
        // The reader keeps up with every event, in order.
        let event = reader.wait_event("telemetry").await;
        assert_eq!(event["data"]["n"], sent - 1);
        tokio::task::yield_now().await;
    }
    // The stalled client's connection ends (a close frame or a dropped stream), within the
    // Engine.IO heartbeat.
    // Meanwhile the reader keeps reading (and answering pings).
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            tokio::select! {
                message = stalled.ws.next() => match message {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                    Some(Ok(_)) => {}
                },
                message = reader.ws.next() => {
                    if let Some(Ok(Message::Text(text))) = message && text.as_str() == "2" {
                        reader.send("3".into()).await;
                    }
                }
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stalled socket was not closed");
    // The reader still works.
    server
        .state
        .bus()
        .publish_json("telemetry", "monitoring", &json!({"n": "last"}))
        .unwrap();
    assert_eq!(reader.wait_event("telemetry").await["data"]["n"], "last");
    server.stop().await;
}

/// Whether python-socketio and aiohttp are importable; with `VIGIL_E2E=required` their absence
/// fails the test.
fn python_ready() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import socketio, aiohttp"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("VIGIL_E2E").as_deref() != Ok("required"),
            "VIGIL_E2E=required but python-socketio is not installed (pip install 'python-socketio[asyncio_client]' aiohttp)"
        );
        println!("skipping: python-socketio not installed");
    }
    ok
}

/// A Python script under `tests/e2e/`, its stdout lines forwarded to a channel; killed on drop.
struct Script {
    child: Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl Script {
    fn start(name: &str, args: &[&str]) -> Script {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/e2e")
            .join(name);
        let mut child = Command::new("python3")
            .arg(path)
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

    /// The next line that parses as JSON, within `secs` seconds.
    async fn json_line(&mut self, secs: u64) -> Value {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(secs), self.lines.recv())
                .await
                .expect("the script answered in time")
                .expect("the script is still running");
            if let Ok(value) = serde_json::from_str(&line) {
                return value;
            }
        }
    }

    /// Waits for the script to exit; its status code.
    async fn exit_code(mut self, secs: u64) -> i32 {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code().unwrap_or(-1);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the script did not exit in time"
            );
            // The child's exit has no async handle here (no tokio `process` feature): poll it.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[tokio::test]
async fn python_socketio_dashboard_joins_a_room_and_receives_an_event() {
    if !python_ready() {
        return;
    }
    let server = TestServer::start(config()).await;
    let url = format!("http://{}", server.addr);
    let token = server.token(Role::Viewer).await;
    let mut script = Script::start("sio_dashboard.py", &[&url, &token]);
    let joined = script.json_line(20).await;
    assert_eq!(joined["joined"]["status"], "ok", "{joined}");
    assert_eq!(joined["admin"]["code"], "forbidden", "{joined}");
    server
        .state
        .bus()
        .publish_json(
            "scan_update",
            "scans",
            &json!({"scan_id": "from-rust", "status": "success"}),
        )
        .unwrap();
    let received = script.json_line(20).await;
    assert_eq!(
        received["scan_update"]["data"]["scan_id"], "from-rust",
        "{received}"
    );
    assert_eq!(received["scan_update"]["room"], "scans");
    assert_eq!(script.exit_code(20).await, 0);
    server.stop().await;
}

#[tokio::test]
async fn python_socketio_agent_in_the_seed_style_registers_gets_a_task_and_reports() {
    if !python_ready() {
        return;
    }
    let server = TestServer::start(scoped()).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open_port = listener.local_addr().unwrap().port();
    let mut events = server.state.bus().subscribe(Filter::all()).unwrap();
    let url = format!("http://{}", server.addr);
    let token = server.token(Role::Agent).await;
    let mut script = Script::start("sio_agent.py", &[&url, &token]);

    // The agent is online once the orchestrator says so.
    let agent_id = loop {
        let delivery = tokio::time::timeout(Duration::from_secs(20), events.next())
            .await
            .expect("the agent registered in time")
            .expect("bus open");
        if let Delivery::Event(event) = delivery
            && event.kind().as_str() == "agent_online"
        {
            let data: Value = serde_json::from_str(event.data().get()).unwrap();
            break data["agent_id"].as_str().unwrap().to_owned();
        }
    };
    assert!(agent_id.starts_with("scanner_"), "{agent_id}");

    let operator = server.token(Role::Operator).await;
    let (status, scheduled) = call(
        &server.state,
        "POST",
        "/api/scan",
        &operator,
        Some(json!({"target": "127.0.0.1", "scan_types": ["port_scan"], "ports": open_port.to_string()})),
    )
    .await;
    assert_eq!(status, 202, "{scheduled}");
    let scan_id = scheduled["scan_id"].as_str().unwrap().to_owned();

    let report = script.json_line(30).await;
    assert_eq!(report["registration"]["status"], "success", "{report}");
    assert_eq!(report["ack"]["of"], "scan_result", "{report}");
    assert_eq!(report["ack"]["stored"], true, "{report}");
    assert_eq!(script.exit_code(20).await, 0);

    let (_, stored) = call(
        &server.state,
        "GET",
        &format!("/api/scans/{scan_id}"),
        &operator,
        None,
    )
    .await;
    assert_eq!(stored["completed"], true, "{stored}");
    let result = &stored["results"][0];
    assert_eq!(result["agent_id"], agent_id.as_str(), "{stored}");
    assert_eq!(result["status"], "success");
    assert_eq!(result["findings"][0]["port"], open_port, "{stored}");
    drop(listener);
    server.stop().await;
}
