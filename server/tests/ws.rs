//! `/ws` over real sockets on 127.0.0.1: authentication, rooms and rules, bad input, resume,
//! slow clients, shutdown.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{TestServer, close_code, config, recv, send};
use event_bus::Role;
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use vigil_server::ServerConfig;

#[tokio::test]
async fn a_socket_must_authenticate_first() {
    let server = TestServer::start(config()).await;

    let mut ws = server.connect().await;
    send(&mut ws, json!({"type": "subscribe", "rooms": ["scans"]})).await;
    assert_eq!(close_code(&mut ws).await, 4001);

    let mut ws = server.connect().await;
    send(&mut ws, json!({"type": "auth", "token": "vgl_0000"})).await;
    assert_eq!(close_code(&mut ws).await, 4001, "a wrong token is refused");

    let mut idle = server.connect().await;
    assert_eq!(
        close_code(&mut idle).await,
        4001,
        "silence past the auth timeout is refused"
    );

    let (_, welcome) = server.connect_as(&server.token(Role::Viewer).await).await;
    assert_eq!(welcome["role"], "viewer");
    assert_eq!(welcome["epoch"], server.state.bus().epoch().to_string());
    let admin_room = welcome["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "admin")
        .unwrap();
    assert_eq!(admin_room["subscribe"], false);
    server.stop().await;
}

#[tokio::test]
async fn upgrades_from_foreign_origins_or_with_tokens_in_the_url_are_refused() {
    let server = TestServer::start(ServerConfig {
        allowed_origins: vec!["https://ops.example".into()],
        ..config()
    })
    .await;
    assert_eq!(
        server
            .upgrade_status("/ws", Some("https://evil.example"))
            .await,
        403
    );
    assert_eq!(
        server
            .upgrade_status("/ws", Some("https://ops.example"))
            .await,
        101
    );
    let own = format!("http://{}", server.addr);
    assert_eq!(server.upgrade_status("/ws", Some(&own)).await, 101);
    assert_eq!(server.upgrade_status("/ws?token=vgl_abc", None).await, 400);
    assert_eq!(
        server.state.counters().refused.load(Ordering::Relaxed),
        1,
        "origin refusals are counted"
    );
    server.stop().await;
}

#[tokio::test]
async fn rooms_rules_and_errors_keep_the_connection_open() {
    let server = TestServer::start(config()).await;
    let (mut viewer, _) = server.connect_as(&server.token(Role::Viewer).await).await;

    send(
        &mut viewer,
        json!({"type": "subscribe", "id": "a", "rooms": ["nowhere"]}),
    )
    .await;
    let err = recv(&mut viewer).await;
    assert_eq!(
        (
            err["type"].as_str(),
            err["code"].as_str(),
            err["id"].as_str()
        ),
        (Some("error"), Some("unknown_room"), Some("a"))
    );

    send(
        &mut viewer,
        json!({"type": "subscribe", "rooms": ["Bad Room"]}),
    )
    .await;
    assert_eq!(recv(&mut viewer).await["code"], "invalid_name");

    send(
        &mut viewer,
        json!({"type": "subscribe", "rooms": ["admin"]}),
    )
    .await;
    assert_eq!(recv(&mut viewer).await["code"], "forbidden");

    send(
        &mut viewer,
        json!({"type": "publish", "kind": "chat_message", "room": "chat", "data": {}}),
    )
    .await;
    assert_eq!(
        recv(&mut viewer).await["code"],
        "forbidden",
        "viewers do not chat"
    );

    viewer
        .send(Message::Text("{not json".into()))
        .await
        .unwrap();
    assert_eq!(recv(&mut viewer).await["code"], "bad_message");

    viewer
        .send(Message::Text(r#"{"type":"launch_missiles"}"#.into()))
        .await
        .unwrap();
    assert_eq!(recv(&mut viewer).await["code"], "bad_message");

    send(&mut viewer, json!({"type": "ping", "id": "still-here"})).await;
    let ack = recv(&mut viewer).await;
    assert_eq!(
        (ack["type"].as_str(), ack["of"].as_str(), ack["id"].as_str()),
        (Some("ack"), Some("ping"), Some("still-here"))
    );
    server.stop().await;
}

#[tokio::test]
async fn published_events_reach_subscribers_with_their_filter() {
    let server = TestServer::start(config()).await;
    let (mut reader, _) = server.connect_as(&server.token(Role::Viewer).await).await;
    send(&mut reader, json!({"type": "subscribe", "id": "s", "rooms": ["chat", "alerts"], "min_severity": "warning"})).await;
    assert_eq!(recv(&mut reader).await["of"], "subscribe");

    let (mut operator, _) = server.connect_as(&server.token(Role::Operator).await).await;
    send(&mut operator, json!({"type": "publish", "id": "p1", "kind": "chat_message", "room": "chat", "data": {"message": "<b>hi</b>"}})).await;
    let ack = recv(&mut operator).await;
    assert_eq!(ack["of"], "publish");
    send(&mut operator, json!({"type": "publish", "kind": "chat_message", "room": "chat", "severity": "warning", "data": {"message": "careful"}})).await;
    let ack2 = recv(&mut operator).await;

    // The info event is filtered out; the warning arrives with the server-assigned fields.
    let frame = recv(&mut reader).await;
    assert_eq!(frame["type"], "event");
    let event = &frame["event"];
    assert_eq!(event["seq"], ack2["seq"]);
    assert_eq!(event["kind"], "chat_message");
    assert_eq!(event["data"]["message"], "careful");
    assert_eq!(
        event["source"], "test",
        "the source is the publisher's token label, not what it claims"
    );
    assert!(event["time"].as_str().unwrap().ends_with('Z'));
    server.stop().await;
}

#[tokio::test]
async fn oversized_messages_close_that_socket_only() {
    let server = TestServer::start(ServerConfig {
        max_message_bytes: 4096,
        outbound_queue_bytes: 64 * 1024,
        ..config()
    })
    .await;
    let token = server.token(Role::Operator).await;
    let (mut big, _) = server.connect_as(&token).await;
    let padding = "x".repeat(6000);
    send(&mut big, json!({"type": "ping", "id": padding})).await;
    assert_eq!(close_code(&mut big).await, 1009);

    // Far past the limit: the socket is dropped by the WebSocket layer itself.
    let (mut huge, _) = server.connect_as(&token).await;
    let _ = huge.send(Message::Text("y".repeat(1 << 20).into())).await;
    let end = tokio::time::timeout(Duration::from_secs(5), huge.next())
        .await
        .expect("ends");
    assert!(
        !matches!(end, Some(Ok(Message::Text(_)))),
        "no answer to a 1 MiB frame: {end:?}"
    );

    let (mut fine, _) = server.connect_as(&token).await;
    send(&mut fine, json!({"type": "ping"})).await;
    assert_eq!(
        recv(&mut fine).await["type"],
        "ack",
        "the server carries on"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_flood_of_messages_is_closed_with_4029() {
    let server = TestServer::start(ServerConfig {
        messages_per_second: 1,
        message_burst: 5,
        ..config()
    })
    .await;
    let (mut ws, _) = server.connect_as(&server.token(Role::Viewer).await).await;
    for _ in 0..20 {
        if ws
            .send(Message::Text(r#"{"type":"ping"}"#.into()))
            .await
            .is_err()
        {
            break;
        }
    }
    assert_eq!(close_code(&mut ws).await, 4029);
    server.stop().await;
}

#[tokio::test]
async fn resume_replays_exactly_what_was_missed_or_says_it_cannot() {
    let server = TestServer::start(ServerConfig {
        rooms: event_bus::RoomConfig::defaults()
            .into_iter()
            .map(|r| {
                if r.name.as_str() == "scans" {
                    r.history(5)
                } else {
                    r
                }
            })
            .collect(),
        ..config()
    })
    .await;
    let bus = server.state.bus().clone();
    let token = server.token(Role::Viewer).await;
    let publish = |n: u64| {
        bus.publish_json("scan_update", "scans", &json!({"n": n}))
            .unwrap()
            .now()
            .unwrap()
            .seq()
    };

    let seen = publish(0);
    let missed: Vec<u64> = (1..4).map(publish).collect();
    let (mut ws, _) = server.connect_as(&token).await;
    let epoch = bus.epoch().to_string();
    send(&mut ws, json!({"type": "subscribe", "id": "r", "rooms": ["scans"], "since": {"epoch": epoch, "seq": seen}})).await;
    let mut replayed = Vec::new();
    loop {
        let frame = recv(&mut ws).await;
        match frame["type"].as_str().unwrap() {
            "event" => replayed.push(frame["event"]["seq"].as_u64().unwrap()),
            "recovered" => {
                assert_eq!(frame["recovered"], true);
                assert_eq!(frame["replayed"], 3);
                break;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(replayed, missed);
    assert_eq!(recv(&mut ws).await["of"], "subscribe");
    // Live events follow, without duplicates.
    let live = publish(99);
    assert_eq!(recv(&mut ws).await["event"]["seq"], live);

    // Too far back for a 5-event ring.
    for n in 0..10 {
        publish(100 + n);
    }
    let (mut late, _) = server.connect_as(&token).await;
    send(
        &mut late,
        json!({"type": "subscribe", "rooms": ["scans"], "since": {"epoch": epoch, "seq": seen}}),
    )
    .await;
    let mut events = 0;
    let recovered = loop {
        let frame = recv(&mut late).await;
        if frame["type"] == "recovered" {
            break frame;
        }
        events += 1;
    };
    assert_eq!(recovered["recovered"], false);
    assert_eq!(events, 5, "what the ring still holds is sent");

    // Another epoch (a restarted server) is never recovered.
    let (mut stranger, _) = server.connect_as(&token).await;
    send(&mut stranger, json!({"type": "subscribe", "rooms": ["scans"], "since": {"epoch": "0123456789abcdef", "seq": 1}})).await;
    let recovered = loop {
        let frame = recv(&mut stranger).await;
        if frame["type"] == "recovered" {
            break frame;
        }
    };
    assert_eq!(recovered["recovered"], false);
    assert_eq!(recovered["epoch"], epoch);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_closed_with_4008_while_another_keeps_receiving() {
    let server = TestServer::start(ServerConfig {
        outbound_queue_bytes: 256 * 1024,
        ..config()
    })
    .await;
    let token = server.token(Role::Viewer).await;
    let (mut stalled, _) = server.connect_as(&token).await;
    send(
        &mut stalled,
        json!({"type": "subscribe", "rooms": ["scans"]}),
    )
    .await;
    let (mut reader, _) = server.connect_as(&token).await;
    send(
        &mut reader,
        json!({"type": "subscribe", "rooms": ["scans"]}),
    )
    .await;
    assert_eq!(recv(&mut reader).await["of"], "subscribe");

    // The reader counts every event it gets, concurrently.
    let counting = tokio::spawn(async move {
        let mut n = 0u64;
        while let Some(Ok(message)) = reader.next().await {
            if let Message::Text(text) = message {
                if text.contains("\"type\":\"event\"") {
                    n += 1;
                }
                if text.contains("\"last\":true") {
                    break;
                }
            }
        }
        n
    });

    // 4 KiB events, in small bursts, until the stalled client has been cut off (bounded).
    let bus = server.state.bus().clone();
    let blob = "z".repeat(4096);
    let mut published = 0u64;
    let started = std::time::Instant::now();
    while server
        .state
        .counters()
        .slow_disconnects
        .load(Ordering::Relaxed)
        == 0
    {
        assert!(
            published < 40_000 && started.elapsed() < Duration::from_secs(60),
            "the stalled client was never closed"
        );
        for _ in 0..10 {
            bus.publish_json("scan_update", "scans", &json!({"blob": blob}))
                .unwrap();
            published += 1;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    bus.publish_json("scan_update", "scans", &json!({"last": true}))
        .unwrap();
    published += 1;

    assert_eq!(
        counting.await.unwrap(),
        published,
        "the reading client got every event"
    );
    // The stalled client, reading at last, finds its backlog and then 4008.
    assert_eq!(close_code(&mut stalled).await, 4008);
    server.stop().await;
}

#[tokio::test]
async fn shutdown_closes_sockets_with_1001_and_readiness_drops() {
    let server = TestServer::start(config()).await;
    let (mut ws, _) = server.connect_as(&server.token(Role::Viewer).await).await;
    let state = server.state.clone();
    let stopping = tokio::spawn(server.stop());
    assert_eq!(close_code(&mut ws).await, 1001);
    stopping.await.unwrap();
    assert!(state.is_draining());
}
