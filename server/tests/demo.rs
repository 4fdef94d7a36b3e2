//! `serve` in demo mode on 127.0.0.1: the weak loopback services are really scanned and their
//! threats arrive over `/ws`, the simulated activity arrives labelled as demo data (with a
//! `location_resolved` from the real estimator), the services listen on 127.0.0.1 only, and
//! shutdown closes them.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use common::{TestServer, call, config, recv, send};
use event_bus::Role;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use vigil_server::{DemoService, DemoStarted, ServerConfig};

/// The bound of the whole wait for demo findings and events (the 30 s).
const DEADLINE: Duration = Duration::from_secs(30);

/// What the test waits for: threats by signature, simulated kinds, the demo announcement.
#[derive(Default)]
struct Seen {
    services: Option<Vec<DemoService>>,
    signatures: BTreeSet<String>,
    critical: usize,
    demo_kinds: BTreeMap<String, Value>,
    demo_scans: usize,
}

const THREATS: [&str; 4] = [
    "ssh-weak-kex",
    "http-missing-csp",
    "tls-expired",
    "tls-self-signed",
];

const SIMULATED: [&str; 7] = [
    "agent_execution_started",
    "agent_execution_completed",
    "quality_score_updated",
    "opportunity_discovered",
    "system_health_updated",
    "chat_message",
    "location_resolved",
];

impl Seen {
    fn done(&self) -> bool {
        self.services.is_some()
            && THREATS.iter().all(|t| self.signatures.contains(*t))
            && self.critical > 0
            && SIMULATED.iter().all(|k| self.demo_kinds.contains_key(*k))
            && self.demo_scans >= 3
    }

    fn missing(&self) -> String {
        let threats: Vec<_> = THREATS
            .iter()
            .filter(|t| !self.signatures.contains(**t))
            .collect();
        let kinds: Vec<_> = SIMULATED
            .iter()
            .filter(|k| !self.demo_kinds.contains_key(**k))
            .collect();
        format!(
            "announced: {}, threats missing: {threats:?} (seen {:?}), critical: {}, simulated kinds missing: {kinds:?}, demo scans: {}",
            self.services.is_some(),
            self.signatures,
            self.critical,
            self.demo_scans
        )
    }

    fn take(&mut self, event: &Value) {
        let kind = event["kind"].as_str().unwrap_or_default();
        let data = &event["data"];
        if event["source"] == "demo" {
            assert_eq!(
                data["demo"], true,
                "a demo event without demo: true: {event}"
            );
        }
        match kind {
            "demo_started" => {
                assert_eq!(event["source"], "demo");
                let started: DemoStarted =
                    serde_json::from_value(data.clone()).expect("a DemoStarted payload");
                assert!(started.demo);
                assert_eq!(started.scope_added, "127.0.0.1");
                self.services = Some(started.services);
            }
            "threat_detected" => {
                // Real findings: published by the orchestrator, not by the simulation.
                assert_eq!(event["source"], "orchestrator", "{event}");
                assert_eq!(data["target"], "127.0.0.1", "{event}");
                if let Some(id) = data["signature_id"].as_str() {
                    self.signatures.insert(id.to_owned());
                }
            }
            "critical_alert" => {
                assert_eq!(event["severity"], "critical");
                self.critical += 1;
            }
            "scan_scheduled" if data["requested_by"] == "demo" => {
                assert_eq!(data["targets"], json!(["127.0.0.1"]), "{event}");
                self.demo_scans += 1;
            }
            _ if event["source"] == "demo" => {
                self.demo_kinds.insert(kind.to_owned(), event.clone());
            }
            _ => {}
        }
    }
}

fn demo_config() -> ServerConfig {
    ServerConfig {
        demo: true,
        ..config()
    }
}

/// On Linux, the local addresses of the listening TCP sockets on `port` (from the kernel's
/// socket tables): proof of what a service is bound to, without connecting anywhere.
#[cfg(target_os = "linux")]
fn listening_addresses(port: u16) -> Vec<String> {
    let mut found = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state)) = (fields.get(1), fields.get(3)) else {
                continue;
            };
            let Some((addr, hex_port)) = local.rsplit_once(':') else {
                continue;
            };
            // State 0A is LISTEN.
            if *state == "0A" && u16::from_str_radix(hex_port, 16) == Ok(port) {
                found.push(addr.to_owned());
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_mode_shows_real_threats_and_labelled_simulated_activity_then_stops_cleanly() {
    let server = TestServer::start(demo_config()).await;
    let (mut ws, welcome) = server.connect_as(&server.token(Role::Viewer).await).await;
    // Replay from the beginning: the announcement may precede this subscription.
    send(
        &mut ws,
        json!({"type": "subscribe", "id": "s", "rooms": ["monitoring", "scans", "alerts", "chat"],
               "since": {"epoch": welcome["epoch"], "seq": 0}}),
    )
    .await;

    let mut seen = Seen::default();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !seen.done() {
        let frame = match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                serde_json::from_str::<Value>(&text).expect("JSON frame")
            }
            Ok(Some(Ok(_))) => continue,
            Ok(other) => panic!("the socket ended: {other:?}; {}", seen.missing()),
            Err(_) => panic!("not everything arrived within 30 s: {}", seen.missing()),
        };
        match frame["type"].as_str() {
            Some("event") => seen.take(&frame["event"]),
            Some("recovered") => assert_eq!(frame["recovered"], true, "{frame}"),
            Some("ack") => {}
            other => panic!("unexpected frame {other:?}: {frame}"),
        }
    }

    // The announced services: the three weak ones, on 127.0.0.1 only.
    let services = seen.services.clone().expect("announced");
    let names: BTreeSet<&str> = services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, BTreeSet::from(["http", "ssh", "tls"]));
    for s in &services {
        assert_eq!(
            s.address.ip(),
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            "{}",
            s.name
        );
        assert_ne!(s.address.port(), 0);
        #[cfg(target_os = "linux")]
        assert_eq!(
            listening_addresses(s.address.port()),
            ["0100007F"],
            "{} must listen on 127.0.0.1 only",
            s.name
        );
    }

    // The simulated events are labelled, typed as the dashboards expect, and the location comes
    // from the estimator.
    for kind in SIMULATED {
        let event = &seen.demo_kinds[kind];
        assert_eq!(event["source"], "demo", "{event}");
        assert_eq!(event["data"]["demo"], true, "{event}");
    }
    assert_eq!(
        seen.demo_kinds["chat_message"]["room"], "chat",
        "chat goes to the chat room"
    );
    let started = &seen.demo_kinds["agent_execution_started"]["data"];
    assert!(started["agent_id"].as_str().unwrap().starts_with("demo-"));
    let completed = &seen.demo_kinds["agent_execution_completed"]["data"];
    assert!(completed["duration_ms"].as_u64().unwrap() > 0);
    let quality = seen.demo_kinds["quality_score_updated"]["data"]["quality_score"]
        .as_f64()
        .unwrap();
    assert!((0.0..=100.0).contains(&quality));
    let location = &seen.demo_kinds["location_resolved"]["data"];
    let (lat, lng, accuracy, error) = (
        location["latitude"].as_f64().unwrap(),
        location["longitude"].as_f64().unwrap(),
        location["accuracy_m"].as_f64().unwrap(),
        location["error_m"].as_f64().unwrap(),
    );
    assert!((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lng));
    assert!(
        error < accuracy,
        "the made-up truth lies inside the 95 % circle: {location}"
    );
    assert!(location["used"].as_u64().unwrap() >= 2);

    // The demo scans are real scans, stored like any other.
    let operator = server.token(Role::Operator).await;
    let (status, alerts) = call(&server.state, "GET", "/api/alerts", &operator, None).await;
    assert_eq!(status, 200);
    let stored: BTreeSet<&str> = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["signature_id"].as_str())
        .collect();
    for threat in THREATS {
        assert!(stored.contains(threat), "{threat} not stored: {stored:?}");
    }

    drop(ws);
    server.stop().await;
    for s in &services {
        let refused = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::TcpStream::connect(s.address),
        )
        .await
        .expect("connect answers at once on loopback");
        assert!(
            refused.is_err(),
            "{} still accepts connections after stop",
            s.name
        );
    }
}

#[tokio::test]
async fn loopback_is_in_scope_in_demo_mode_only() {
    assert!(ServerConfig::default().scan_scope().is_empty());
    assert_eq!(demo_config().scan_scope(), ["127.0.0.1"]);
    let both = ServerConfig {
        scope: vec!["10.0.0.0/8".into(), "127.0.0.1".into()],
        ..demo_config()
    };
    assert_eq!(both.scan_scope(), ["10.0.0.0/8", "127.0.0.1"]);

    // Without demo mode, loopback is refused before anything is queued, and nothing demo runs.
    let server = TestServer::start(ServerConfig {
        local_agent: None,
        ..config()
    })
    .await;
    let operator = server.token(Role::Operator).await;
    let (status, body) = call(
        &server.state,
        "POST",
        "/api/scans",
        &operator,
        Some(json!({"targets": ["127.0.0.1"], "ports": "1"})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("out_of_scope"))
    );
    let (mut ws, welcome) = server.connect_as(&operator).await;
    send(
        &mut ws,
        json!({"type": "subscribe", "id": "s", "rooms": ["monitoring", "chat"],
               "since": {"epoch": welcome["epoch"], "seq": 0}}),
    )
    .await;
    // The replay is complete before `recovered`; it holds no demo event.
    loop {
        let frame = recv(&mut ws).await;
        match frame["type"].as_str() {
            Some("event") => assert_ne!(frame["event"]["source"], "demo", "{frame}"),
            Some("recovered") => break,
            other => panic!("unexpected {other:?}: {frame}"),
        }
    }
    drop(ws);
    server.stop().await;
}

/// The services' addresses are what the announcement says: a quick self-check of the helper on
/// a listener this test binds itself.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_socket_table_helper_sees_a_loopback_listener() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: std::net::SocketAddr = listener.local_addr().unwrap();
    assert_eq!(listening_addresses(addr.port()), ["0100007F"]);
    drop(listener);
    assert!(listening_addresses(addr.port()).is_empty());
}
