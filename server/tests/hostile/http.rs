//! HTTP: bounded metric labels, request-head and keep-alive timeouts, head size limits, and
//! per-token budgets for paid upstreams (mocked on 127.0.0.1 with wiremock).

use std::time::{Duration, Instant};

use axum::body::{Body, to_bytes};
use axum::http::{Method, Request};
use event_bus::Role;
use serde_json::{Value, json};
use streetview::{AccessToken, ApiKey};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tower::ServiceExt as _;
use vigil_server::{AppState, Budget, GeoConfig, ImageryConfig, ServerConfig, app};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{self, TestServer};

/// One HTTP/1.1 response read off a raw socket.
struct Raw {
    status: u16,
}

/// Reads one response with a `content-length` body (and drops the body); `None` when the
/// server closed (or reset) the connection first. Panics after 10 s.
async fn read_response(tcp: &mut TcpStream) -> Option<Raw> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, tcp.read(&mut chunk))
            .await
            .expect("a response within 10 s")
        {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map_or(0, |(_, v)| v.parse().expect("a numeric content-length"));
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, tcp.read(&mut chunk))
            .await
            .expect("the body within 10 s")
        {
            Ok(0) | Err(_) => return None,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    Some(Raw { status })
}

/// Waits until the server closes `tcp` (EOF or reset) and returns how long that took; panics
/// if it is still open after `limit`. Bytes the server sends first (an error answer) are read
/// and dropped.
async fn closed_within(tcp: &mut TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut chunk = [0u8; 1024];
    loop {
        let left = limit.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, tcp.read(&mut chunk)).await {
            Err(_) => panic!("the connection is still open after {limit:?}"),
            Ok(Ok(0) | Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => continue,
        }
    }
}

async fn metrics_text(addr: std::net::SocketAddr, token: &str) -> String {
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .expect("/metrics answers");
    assert_eq!(response.status(), 200);
    response.text().await.expect("a text body")
}

/// The label sets of the HTTP latency histogram in a scrape.
fn http_label_sets(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.starts_with("vigil_http_request_duration_seconds_count{"))
        .collect()
}

#[tokio::test]
async fn long_method_names_leave_metrics_small() {
    let server = TestServer::start(common::config()).await;
    let addr = server.addr;
    // 2,000 requests, each with its own 4 KB method, on four keep-alive connections.
    let clients: Vec<_> = (0..4)
        .map(|c| {
            tokio::spawn(async move {
                let mut tcp = TcpStream::connect(addr).await.expect("connect");
                for i in 0..500 {
                    let name = format!("M{c}{i:04}");
                    let method = format!("{name}{}", "X".repeat(4096 - name.len()));
                    let request = format!("{method} /health HTTP/1.1\r\nHost: {addr}\r\n\r\n");
                    tcp.write_all(request.as_bytes()).await.expect("write");
                    let response = read_response(&mut tcp).await.expect("an answer");
                    assert_eq!(response.status, 405);
                }
            })
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(60), async {
        for client in clients {
            client.await.expect("client task");
        }
    })
    .await
    .expect("2,000 requests within 60 s");

    let text = metrics_text(addr, &server.admin).await;
    assert!(
        text.len() < 512 * 1024,
        "/metrics is {} bytes after 2,000 method names",
        text.len()
    );
    assert!(!text.contains("XXXXXXXX"), "a method name became a label");
    let sets = http_label_sets(&text);
    assert!(sets.len() <= 8, "{} HTTP label sets: {sets:?}", sets.len());
    assert!(
        text.contains(
            "vigil_http_request_duration_seconds_count{method=\"other\",route=\"/health\",status=\"405\"} 2000"
        ),
        "{sets:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_405_answer_is_labelled_with_fixed_labels() {
    let (state, first) = AppState::in_memory(common::config()).await.unwrap();
    for name in ["BREW", "PROPFIND", "DELETE"] {
        let request = Request::builder()
            .method(Method::from_bytes(name.as_bytes()).unwrap())
            .uri("/livez")
            .body(Body::empty())
            .unwrap();
        let response = app(state.clone()).oneshot(request).await.unwrap();
        assert_eq!(response.status(), 405, "{name}");
    }
    let request = Request::get("/metrics")
        .header("authorization", format!("Bearer {}", first.admin_token))
        .body(Body::empty())
        .unwrap();
    let response = app(state).oneshot(request).await.unwrap();
    let text = String::from_utf8(
        to_bytes(response.into_body(), 1 << 22)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    let sets = http_label_sets(&text);
    assert!(
        sets.contains(
            &"vigil_http_request_duration_seconds_count{method=\"other\",route=\"/livez\",status=\"405\"} 2"
        ),
        "{sets:?}"
    );
    assert!(
        sets.contains(
            &"vigil_http_request_duration_seconds_count{method=\"DELETE\",route=\"/livez\",status=\"405\"} 1"
        ),
        "{sets:?}"
    );
    assert!(!text.contains("BREW") && !text.contains("PROPFIND"));
}

fn timeouts(header_read: Duration, keep_alive: Duration) -> ServerConfig {
    ServerConfig {
        header_read_timeout: header_read,
        keep_alive_timeout: keep_alive,
        ..common::config()
    }
}

#[tokio::test]
async fn an_unfinished_request_head_is_closed_after_the_timeout() {
    let server = TestServer::start(timeouts(
        Duration::from_millis(300),
        Duration::from_millis(300),
    ))
    .await;
    // A head that never ends.
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .unwrap();
    let took = closed_within(&mut tcp, Duration::from_secs(3)).await;
    assert!(took >= Duration::from_millis(250), "closed after {took:?}");

    // Slowloris: one byte every 50 ms keeps no connection past the head timeout.
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    let head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut chunk = [0u8; 256];
    let mut closed = false;
    for byte in head.iter().cycle().take(60) {
        if tcp.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(50), tcp.read(&mut chunk)).await
        {
            closed = true;
            break;
        }
    }
    let took = started.elapsed();
    assert!(closed, "a trickled head kept its connection for {took:?}");
    assert!(took < Duration::from_secs(2), "closed only after {took:?}");

    // A head that arrives whole in time is served.
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut tcp).await.unwrap().status, 200);
    server.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    // The head timer (2 s) would also close an idle connection; the keep-alive timeout is
    // shorter, so the close must come from it.
    let server =
        TestServer::start(timeouts(Duration::from_secs(2), Duration::from_millis(300))).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let request = b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    // Requests closer together than the timeout keep the connection, well past 300 ms in all.
    for _ in 0..6 {
        tcp.write_all(request).await.unwrap();
        let response = read_response(&mut tcp).await.expect("still open");
        assert_eq!(response.status, 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = closed_within(&mut tcp, Duration::from_secs(5)).await;
    assert!(
        took >= Duration::from_millis(150) && took < Duration::from_millis(1_800),
        "idle connection closed after {took:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn oversized_request_heads_are_refused() {
    let server = TestServer::start(common::config()).await;
    let limit = server.state.config().max_header_bytes;
    let send = |head: String| async move {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        // The server may answer and close before it has read everything: ignore write errors.
        let _ = tcp.write_all(head.as_bytes()).await;
        read_response(&mut tcp).await.map(|r| r.status)
    };
    // Under the limit: served.
    let fits = format!(
        "GET /livez HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(limit / 2)
    );
    assert_eq!(send(fits).await, Some(200));
    // One header field larger than the whole limit: 431 (or closed).
    let big = format!(
        "GET /livez HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(limit + 1024)
    );
    let status = send(big).await;
    assert!(matches!(status, Some(431) | None), "{status:?}");
    // Too many header fields, each small.
    let many: String = (0..server.state.config().max_headers + 20)
        .map(|i| format!("X-H{i}: v\r\n"))
        .collect();
    let status = send(format!("GET /livez HTTP/1.1\r\nHost: x\r\n{many}\r\n")).await;
    assert!(matches!(status, Some(431) | None), "{status:?}");
    server.stop().await;
}

#[tokio::test]
async fn shutdown_is_not_held_up_by_idle_or_unfinished_connections() {
    let server = TestServer::start(ServerConfig {
        drain_timeout: Duration::from_secs(1),
        ..common::config()
    })
    .await;
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut idle).await.unwrap().status, 200);
    let mut partial = TcpStream::connect(server.addr).await.unwrap();
    partial.write_all(b"GET /livez HTTP/1.1\r\n").await.unwrap();
    let (mut ws, _) = server.connect_as(&server.admin).await;
    let started = Instant::now();
    let stop = tokio::spawn(server.stop());
    assert_eq!(common::close_code(&mut ws).await, 1001);
    closed_within(&mut idle, Duration::from_secs(3)).await;
    stop.await.unwrap();
    // The partial head (its 10 s head timer still running) is dropped at the drain timeout;
    // the idle connection and the WebSocket close at once.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    closed_within(&mut partial, Duration::from_secs(3)).await;
}

async fn config_validation_refuses_bad_limits_case(config: ServerConfig, what: &str) {
    let err = AppState::in_memory(config)
        .await
        .expect_err(what)
        .to_string();
    assert!(err.contains(what), "{err}");
}

#[tokio::test]
async fn bad_limits_are_refused_at_start() {
    let base = common::config;
    config_validation_refuses_bad_limits_case(
        ServerConfig {
            header_read_timeout: Duration::ZERO,
            ..base()
        },
        "header_read_timeout",
    )
    .await;
    config_validation_refuses_bad_limits_case(
        ServerConfig {
            keep_alive_timeout: Duration::from_secs(60),
            ..base()
        },
        "keep_alive_timeout",
    )
    .await;
    config_validation_refuses_bad_limits_case(
        ServerConfig {
            max_header_bytes: 10,
            ..base()
        },
        "max_header_bytes",
    )
    .await;
    let mut config = base();
    config.imagery.streetview_static_budget = Budget::new(0, 1);
    config_validation_refuses_bad_limits_case(config, "streetview_static_budget").await;
    let mut config = base();
    config.geo.wigle_budget = Budget::new(10, 0);
    config_validation_refuses_bad_limits_case(config, "wigle_budget").await;
}

// ---- Budgets of paid upstreams ----

/// Calls the router in process: status, `Retry-After`, body as JSON (or null).
async fn call(
    state: &AppState,
    method: &str,
    uri: &str,
    token: &str,
    body: Option<&Value>,
) -> (u16, Option<u64>, Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"));
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    let response = app(state.clone())
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().expect("whole seconds"));
    let bytes = to_bytes(response.into_body(), 1 << 22).await.unwrap();
    (
        status,
        retry,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn tokens(state: &AppState, role: Role) -> (String, String) {
    let auth = state.auth();
    (
        auth.create_token(role, "budget test").await.unwrap().1,
        auth.create_token(role, "budget test").await.unwrap().1,
    )
}

#[tokio::test]
async fn the_static_image_proxy_has_a_budget_per_token() {
    let google = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/maps/api/streetview"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "image/jpeg")
                .set_body_bytes(vec![0xFF, 0xD8, 0xFF, 0xE0]),
        )
        .expect(3)
        .mount(&google)
        .await;
    let mut config = common::config();
    config.imagery.google_api_key = Some(ApiKey::new("AIzaBudgetTestKey").unwrap());
    config.imagery.google_base_url = Some(google.uri());
    config.imagery.streetview_static_budget = Budget::new(1, 2);
    let (state, _) = AppState::in_memory(config).await.unwrap();
    let (greedy, other) = tokens(&state, Role::Viewer).await;
    let uri = "/api/streetview/image?lat=46.41&lng=10.01";
    for _ in 0..2 {
        assert_eq!(call(&state, "GET", uri, &greedy, None).await.0, 200);
    }
    let (status, retry, body) = call(&state, "GET", uri, &greedy, None).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "budget_exceeded");
    assert_eq!(body["error"]["upstream"], "streetview_static");
    // One image an hour comes back: the next is about an hour away.
    let retry = retry.expect("Retry-After");
    assert!((3000..=3600).contains(&retry), "{retry}");
    // A bad request costs nothing, and another token is not affected.
    let (status, _, _) = call(
        &state,
        "GET",
        "/api/streetview/image?lat=91&lng=0",
        &other,
        None,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(call(&state, "GET", uri, &other, None).await.0, 200);
    google.verify().await;
}

#[tokio::test]
async fn mapillary_and_panoramax_lookups_have_budgets_per_token() {
    let mapillary = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/images"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": []})))
        .expect(2)
        .mount(&mapillary)
        .await;
    let panoramax = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/search"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"type": "FeatureCollection", "features": [], "links": []})),
        )
        .expect(3)
        .mount(&panoramax)
        .await;
    let mut config = common::config();
    config.imagery = ImageryConfig {
        mapillary_token: Some(AccessToken::new("MLY|1|budget-test").unwrap()),
        mapillary_base_url: Some(mapillary.uri()),
        panoramax_base_url: Some(format!("{}/api", panoramax.uri())),
        mapillary_budget: Budget::new(1, 1),
        panoramax_budget: Budget::new(1, 2),
        ..ImageryConfig::default()
    };
    let (state, _) = AppState::in_memory(config).await.unwrap();
    let (greedy, other) = tokens(&state, Role::Viewer).await;
    let uri = "/api/imagery?lat=48.8584&lng=2.2945&radius=100";
    let (status, _, body) = call(&state, "GET", uri, &greedy, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["errors"], json!([]));
    // Mapillary is spent, Panoramax is not: the answer says which.
    let (status, _, body) = call(&state, "GET", uri, &greedy, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["errors"][0]["provider"], "mapillary");
    assert_eq!(body["errors"][0]["code"], "budget_exceeded");
    // Both spent: 429.
    let (status, retry, body) = call(&state, "GET", uri, &greedy, None).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "budget_exceeded");
    assert!(retry.is_some_and(|s| s >= 1));
    // Invalid parameters are refused before any budget is spent.
    let (status, _, _) = call(
        &state,
        "GET",
        "/api/imagery?lat=48.8&lng=2.2&radius=90000",
        &other,
        None,
    )
    .await;
    assert_eq!(status, 400);
    let (status, _, body) = call(&state, "GET", uri, &other, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["errors"], json!([]));
    mapillary.verify().await;
    panoramax.verify().await;
}

const WIGLE_NAME: &str = "AIDbudget";
const WIGLE_TOKEN: &str = "wigle-budget-token";

async fn mock_wigle(server: &MockServer, mac: &str, lat: f64, lon: f64) {
    Mock::given(method("GET"))
        .and(path("/api/v2/network/search"))
        .and(query_param("netid", mac))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "success": true, "totalResults": 1, "first": 1, "last": 1, "resultCount": 1,
            "searchAfter": null, "search_after": null,
            "results": [{"trilat": lat, "trilong": lon, "ssid": "shop", "qos": 2,
                         "netid": mac.to_uppercase(), "type": "infra", "channel": 6,
                         "encryption": "wpa2", "country": "FR", "city": "Lyon",
                         "firsttime": "2024-05-01T10:00:00.000Z",
                         "lasttime": "2024-05-03T10:00:00.000Z",
                         "lastupdt": "2024-05-03T10:05:00.000Z"}]})))
        .expect(1)
        .mount(server)
        .await;
}

fn wifi(macs: [&str; 2]) -> Value {
    json!({"wifiAccessPoints": [
        {"macAddress": macs[0], "signalStrength": -50},
        {"macAddress": macs[1], "signalStrength": -60}
    ]})
}

/// A geosubmit body placing two APs at one spot.
fn observed(macs: [&str; 2], lat: f64, lon: f64) -> Value {
    json!({"items": [{
        "timestamp": 1_700_000_000_000_i64,
        "position": {"latitude": lat, "longitude": lon, "accuracy": 8.0},
        "wifiAccessPoints": [
            {"macAddress": macs[0], "signalStrength": -55},
            {"macAddress": macs[1], "signalStrength": -70}
        ]
    }]})
}

#[tokio::test]
async fn wigle_lookups_have_a_budget_per_token_and_offline_answers_are_free() {
    let wigle = MockServer::start().await;
    let first = ["66:77:88:00:00:01", "66:77:88:00:00:02"];
    let second = ["66:77:88:00:01:01", "66:77:88:00:01:02"];
    for (i, mac) in first.iter().chain(&second).enumerate() {
        mock_wigle(&wigle, mac, 45.764, 4.8357 + i as f64 * 1e-4).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig {
        data_dir: dir.path().to_owned(),
        ..common::config()
    };
    config.geo = GeoConfig {
        wigle_api_name: Some(WIGLE_NAME.into()),
        wigle_api_token: Some(WIGLE_TOKEN.into()),
        wigle_base_url: Some(wigle.uri()),
        wigle_budget: Budget::new(1, 2),
        ..GeoConfig::default()
    };
    let (state, _) = AppState::in_memory(config).await.unwrap();
    let (greedy, other) = tokens(&state, Role::Viewer).await;
    let operator = state
        .auth()
        .create_token(Role::Operator, "t")
        .await
        .unwrap()
        .1;

    // Two APs unknown offline: two WiGLE requests, the whole budget.
    let (status, _, body) =
        call(&state, "POST", "/v1/geolocate", &greedy, Some(&wifi(first))).await;
    assert_eq!(status, 200, "{body}");
    // Two more: refused with Google's envelope, before anything is sent.
    let (status, retry, body) = call(
        &state,
        "POST",
        "/v1/geolocate",
        &greedy,
        Some(&wifi(second)),
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(
        body["error"]["errors"][0]["reason"],
        "userRateLimitExceeded"
    );
    assert!(retry.is_some_and(|s| s >= 1));
    let (status, _, body) = call(
        &state,
        "POST",
        "/api/locate/wifi",
        &greedy,
        Some(&json!({"bssids": second})),
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "budget_exceeded");
    // The cache and the offline data still answer the spent token.
    let (status, _, body) =
        call(&state, "POST", "/v1/geolocate", &greedy, Some(&wifi(first))).await;
    assert_eq!(status, 200, "cached: {body}");
    let learnt = ["02:bb:00:00:00:01", "02:bb:00:00:00:02"];
    let (status, _, body) = call(
        &state,
        "POST",
        "/v2/geosubmit",
        &operator,
        Some(&observed(learnt, 45.75, 4.85)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = call(
        &state,
        "POST",
        "/v1/geolocate",
        &greedy,
        Some(&wifi(learnt)),
    )
    .await;
    assert_eq!(status, 200, "offline: {body}");
    // Another token gets through.
    let (status, _, body) =
        call(&state, "POST", "/v1/geolocate", &other, Some(&wifi(second))).await;
    assert_eq!(status, 200, "{body}");
    wigle.verify().await;
}

#[tokio::test]
async fn opencellid_lookups_have_a_budget_per_token() {
    let ocid = MockServer::start().await;
    for cid in [4242, 4243] {
        Mock::given(method("GET"))
            .and(path("/cell/get"))
            .and(query_param("cellid", cid.to_string()))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "lon": 4.85, "lat": 45.75, "mcc": 208, "mnc": 20, "lac": 9, "cellid": cid,
                "averageSignalStrength": -90, "range": 1500, "samples": 12, "changeable": 1,
                "radio": "LTE"})))
            .expect(1)
            .mount(&ocid)
            .await;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig {
        data_dir: dir.path().to_owned(),
        ..common::config()
    };
    config.geo = GeoConfig {
        opencellid_api_key: Some("pk.budget".into()),
        opencellid_base_url: Some(ocid.uri()),
        opencellid_budget: Budget::new(1, 1),
        ..GeoConfig::default()
    };
    let (state, _) = AppState::in_memory(config).await.unwrap();
    let (greedy, other) = tokens(&state, Role::Agent).await;
    let cell = |cid: u32| json!({"cell_towers": [{"mcc": 208, "mnc": 20, "lac": 9, "cid": cid, "radio": "lte"}]});
    let (status, _, body) = call(
        &state,
        "POST",
        "/api/locate/hybrid",
        &greedy,
        Some(&cell(4242)),
    )
    .await;
    assert_eq!(
        (status, body["success"].clone()),
        (200, json!(true)),
        "{body}"
    );
    let (status, retry, body) = call(
        &state,
        "POST",
        "/api/locate/hybrid",
        &greedy,
        Some(&cell(4243)),
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["upstream"], "opencellid");
    assert!(retry.is_some_and(|s| s >= 1));
    let (status, _, body) = call(
        &state,
        "POST",
        "/api/locate/hybrid",
        &other,
        Some(&cell(4243)),
    )
    .await;
    assert_eq!(
        (status, body["success"].clone()),
        (200, json!(true)),
        "{body}"
    );
    ocid.verify().await;
}

#[tokio::test]
async fn geosubmit_has_a_budget_and_the_overlay_a_bound() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig {
        data_dir: dir.path().to_owned(),
        ..common::config()
    };
    config.geo.geosubmit_budget = Budget::new(1, 2);
    config.geo.max_overlay_rows = 2;
    let (state, _) = AppState::in_memory(config).await.unwrap();
    let (greedy, other) = tokens(&state, Role::Operator).await;
    let known = ["02:cc:00:00:00:01", "02:cc:00:00:00:02"];
    let fresh = ["02:cc:00:00:00:03", "02:cc:00:00:00:04"];
    let submit = |token: &str, body: Value| {
        let state = state.clone();
        let token = token.to_owned();
        async move { call(&state, "POST", "/v2/geosubmit", &token, Some(&body)).await }
    };
    let (status, _, body) = submit(&greedy, observed(known, 45.75, 4.85)).await;
    assert_eq!((status, &body), (200, &json!({})));
    // The overlay is full: new transmitters are refused, clearly.
    let (status, _, body) = submit(&greedy, observed(fresh, 45.75, 4.85)).await;
    assert_eq!(status, 507, "{body}");
    assert_eq!(body["error"]["errors"][0]["reason"], "overlayFull");
    // Two submissions was the whole budget.
    let (status, retry, body) = submit(&greedy, observed(known, 45.75, 4.85)).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(
        body["error"]["errors"][0]["reason"],
        "userRateLimitExceeded"
    );
    assert!(retry.is_some_and(|s| s >= 1));
    // Another token: known transmitters still refine, the new one is counted as refused.
    let mut mixed = observed(known, 45.7501, 4.8501);
    mixed["items"][0]["wifiAccessPoints"]
        .as_array_mut()
        .unwrap()
        .push(json!({"macAddress": fresh[0], "signalStrength": -60}));
    let (status, _, body) = submit(&other, mixed).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["refused"], 1);
    assert_eq!(body["reason"], "overlayFull");
}
