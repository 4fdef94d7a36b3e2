//! REST routes driven in process: authentication, roles, sessions, events, errors, headers.

mod common;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use common::config;
use event_bus::Role;
use serde_json::{Value, json};
use tower::ServiceExt;
use vigil_server::{AppState, app};

struct Api {
    state: AppState,
    admin: String,
}

impl Api {
    async fn new() -> Api {
        let (state, first) = AppState::in_memory(config()).await.unwrap();
        Api {
            state,
            admin: first.admin_token,
        }
    }

    async fn token(&self, role: Role) -> String {
        self.state
            .auth()
            .create_token(role, "http test")
            .await
            .unwrap()
            .1
    }

    async fn call(&self, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
        let response = app(self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, headers, body)
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut request = Request::get(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let (status, _, body) = self.call(request.body(Body::empty()).unwrap()).await;
        (status, body)
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        let mut request = Request::post(path).header("content-type", "application/json");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let (status, _, body) = self
            .call(request.body(Body::from(body.to_string())).unwrap())
            .await;
        (status, body)
    }
}

#[tokio::test]
async fn health_and_probes_are_public() {
    let api = Api::new().await;
    let (status, body) = api.get("/health", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "healthy");
    assert!(body["uptime_seconds"].as_f64().is_some() && body["connected_clients"] == 0);
    assert_eq!(api.get("/livez", None).await.0, StatusCode::OK);
    assert_eq!(api.get("/readyz", None).await.0, StatusCode::OK);
    api.state.begin_shutdown();
    assert_eq!(
        api.get("/readyz", None).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn protected_routes_refuse_missing_wrong_and_weak_tokens() {
    let api = Api::new().await;
    let viewer = api.token(Role::Viewer).await;
    for path in [
        "/stats",
        "/api/websocket/status",
        "/api/events",
        "/api/session",
    ] {
        let (status, body) = api.get(path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(body["error"]["code"], "unauthenticated", "{path}");
        assert_eq!(
            api.get(path, Some("vgl_wrong")).await.0,
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
        assert_eq!(
            api.get(path, Some(&viewer)).await.0,
            StatusCode::OK,
            "{path}"
        );
    }
    let (status, body) = api
        .post(
            "/api/events",
            Some(&viewer),
            json!({"kind": "chat_message", "room": "chat"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "forbidden");
    let agent = api.token(Role::Agent).await;
    assert_eq!(
        api.get("/stats", Some(&agent)).await.0,
        StatusCode::FORBIDDEN,
        "agents read no dashboards"
    );
}

#[tokio::test]
async fn a_token_in_the_url_is_refused_everywhere() {
    let api = Api::new().await;
    let admin = api.admin.clone();
    for path in [
        "/health?token=x",
        "/stats?access_token=y",
        "/api/events?rooms=chat&token=z",
    ] {
        let (status, body) = api.get(path, Some(&admin)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(body["error"]["code"], "token_in_url");
    }
}

#[tokio::test]
async fn stats_have_the_seed_shape_and_count_events() {
    let api = Api::new().await;
    let operator = api.token(Role::Operator).await;
    for score in [90.0, 100.0] {
        let data = json!({"agent_id": "a", "agent_name": "n", "task_description": "t", "duration_ms": 1, "success": true, "quality_score": score});
        let (status, _) = api
            .post(
                "/api/events",
                Some(&operator),
                json!({"kind": "agent_execution_completed", "room": "monitoring", "data": data}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (_, stats) = api.get("/stats", Some(&operator)).await;
    assert_eq!(stats["metrics"]["total_events"], 2);
    assert_eq!(stats["metrics"]["total_agents_executed"], 2);
    assert_eq!(stats["metrics"]["avg_quality_score"], 95.0);
    assert_eq!(stats["recent_events"], 2);
    for field in [
        "active_agents",
        "total_opportunities",
        "system_uptime_seconds",
        "connected_clients",
    ] {
        assert!(!stats[field].is_null(), "{field}");
    }
    let (_, status) = api.get("/api/websocket/status", Some(&operator)).await;
    assert_eq!(status["status"], "active");
    assert_eq!(status["rooms"]["chat"], 0);
}

#[tokio::test]
async fn events_publish_and_read_back_with_room_rules() {
    let api = Api::new().await;
    let operator = api.token(Role::Operator).await;
    let viewer = api.token(Role::Viewer).await;

    let (status, created) = api
        .post("/api/events", Some(&operator), json!({"kind": "chat_message", "room": "chat", "severity": "warning", "data": {"message": "hi"}}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = api
        .post(
            "/api/events",
            Some(&operator),
            json!({"kind": "x", "room": "admin"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (status, body) = api
        .post(
            "/api/events",
            Some(&operator),
            json!({"kind": "x", "room": "nowhere"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_room"))
    );
    let (status, body) = api
        .post(
            "/api/events",
            Some(&operator),
            json!({"kind": "Bad Kind", "room": "chat"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("bad_json"))
    );
    let (status, body) = api
        .post("/api/events", Some(&operator), json!("not an object"))
        .await;
    assert_eq!(body["error"]["code"], "bad_json", "{status}");

    let (status, listed) = api.get("/api/events?rooms=chat", Some(&viewer)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["recovered"], true);
    let events = listed["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["seq"], created["seq"]);
    assert_eq!(events[0]["source"], "http test");

    let since = created["seq"].as_u64().unwrap();
    let (_, after) = api
        .get(&format!("/api/events?since={since}"), Some(&viewer))
        .await;
    assert!(after["events"].as_array().unwrap().is_empty());
    assert_eq!(
        api.get("/api/events?rooms=admin", Some(&viewer)).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api.get("/api/events?epoch=zz", Some(&viewer)).await.0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn a_session_cookie_stands_in_for_the_token() {
    let api = Api::new().await;
    let operator = api.token(Role::Operator).await;
    let request = Request::post("/api/session")
        .header("content-type", "application/json")
        .body(Body::from(json!({"token": operator}).to_string()))
        .unwrap();
    let (status, headers, body) = api.call(request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["role"], "operator");
    let cookie = headers["set-cookie"].to_str().unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_owned();

    let with_cookie = |origin: Option<&str>| {
        let mut r = Request::get("/api/session").header("cookie", pair.clone());
        if let Some(origin) = origin {
            r = r
                .header("origin", origin)
                .header("host", "vigil.local:8000");
        }
        r.body(Body::empty()).unwrap()
    };
    let (status, _, me) = api.call(with_cookie(None)).await;
    assert_eq!(
        (status, me["role"].as_str()),
        (StatusCode::OK, Some("operator"))
    );
    assert_eq!(
        api.call(with_cookie(Some("http://vigil.local:8000")))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        api.call(with_cookie(Some("https://evil.example"))).await.0,
        StatusCode::FORBIDDEN
    );

    let request = Request::post("/api/session")
        .header("content-type", "application/json")
        .body(Body::from(json!({"token": "vgl_nope"}).to_string()))
        .unwrap();
    assert_eq!(api.call(request).await.0, StatusCode::UNAUTHORIZED);

    let logout = Request::delete("/api/session")
        .header("cookie", pair.clone())
        .body(Body::empty())
        .unwrap();
    assert_eq!(api.call(logout).await.0, StatusCode::NO_CONTENT);
    assert_eq!(
        api.call(with_cookie(None)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn responses_carry_protective_headers_and_json_errors() {
    let api = Api::new().await;
    let (status, headers, body) = api
        .call(Request::get("/nope").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'self'")
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");

    let huge = Request::post("/api/events")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {}", api.admin))
        .body(Body::from(vec![b' '; 2 << 20]))
        .unwrap();
    assert_eq!(api.call(huge).await.0, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn revoked_tokens_stop_working_at_once() {
    let api = Api::new().await;
    let (record, secret) = api
        .state
        .auth()
        .create_token(Role::Viewer, "temp")
        .await
        .unwrap();
    assert_eq!(api.get("/stats", Some(&secret)).await.0, StatusCode::OK);
    api.state.auth().revoke(&record.id).await.unwrap();
    assert_eq!(
        api.get("/stats", Some(&secret)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn metrics_are_prometheus_text_behind_a_token() {
    let api = Api::new().await;
    let operator = api.token(Role::Operator).await;
    assert_eq!(api.get("/metrics", None).await.0, StatusCode::UNAUTHORIZED);
    api.post(
        "/api/events",
        Some(&operator),
        json!({"kind": "chat_message", "room": "chat", "data": {}}),
    )
    .await;
    api.get("/health", None).await;
    let request = Request::get("/metrics")
        .header("authorization", format!("Bearer {operator}"))
        .body(Body::empty())
        .unwrap();
    let (status, headers, body) = api.call(request).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .contains("openmetrics-text")
    );
    let text = body.as_str().expect("text body");
    for expected in [
        "vigil_ws_connections 0",
        "vigil_events_by_room_total{room=\"chat\"} 1",
        "vigil_events_by_severity_total{severity=\"info\"} 1",
        "vigil_http_request_duration_seconds_count{method=\"POST\",route=\"/api/events\",status=\"201\"} 1",
        "vigil_http_request_duration_seconds_count{method=\"GET\",route=\"/health\",status=\"200\"} 1",
        "vigil_ws_disconnects_by_reason_total{reason=\"too_slow\"} 0",
        "vigil_scan_tasks{state=\"queued\"} 0",
        "vigil_agents_online 0",
        "# EOF",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
}

#[tokio::test]
async fn the_openapi_document_lists_every_rest_route() {
    let api = Api::new().await;
    let (status, doc) = api.get("/api/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/health", "get"),
        ("/livez", "get"),
        ("/readyz", "get"),
        ("/stats", "get"),
        ("/metrics", "get"),
        ("/api/websocket/status", "get"),
        ("/api/session", "post"),
        ("/api/session", "delete"),
        ("/api/events", "get"),
        ("/api/events", "post"),
        ("/api/scans", "post"),
        ("/api/scan", "post"),
        ("/api/scans/{id}", "get"),
        ("/api/scans/{id}", "delete"),
        ("/api/agents", "get"),
        ("/api/agents/{id}/command", "post"),
        ("/api/alerts", "get"),
        ("/api/streetview", "get"),
        ("/api/streetview/image", "get"),
        ("/api/imagery", "get"),
        ("/api/openapi.json", "get"),
        ("/api/tokens", "get"),
        ("/api/tokens", "post"),
        ("/api/tokens/{id}", "delete"),
        ("/api/dashboard/config", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is not documented"
        );
    }
    assert!(doc["components"]["securitySchemes"]["token"].is_object());
}

#[tokio::test]
async fn every_protected_route_refuses_a_missing_or_too_weak_token() {
    let api = Api::new().await;
    let tokens = [
        (Role::Viewer, api.token(Role::Viewer).await),
        (Role::Operator, api.token(Role::Operator).await),
        (Role::Admin, api.admin.clone()),
    ];
    let rank = |role: Role| match role {
        Role::Viewer => 0,
        Role::Operator => 1,
        _ => 2,
    };
    // (method, path, body, least role)
    let routes: [(&str, &str, Option<Value>, Role); 12] = [
        ("GET", "/stats", None, Role::Viewer),
        ("GET", "/metrics", None, Role::Viewer),
        ("GET", "/api/websocket/status", None, Role::Viewer),
        ("GET", "/api/events", None, Role::Viewer),
        (
            "POST",
            "/api/events",
            Some(json!({"kind": "x", "room": "monitoring"})),
            Role::Operator,
        ),
        ("GET", "/api/scans", None, Role::Viewer),
        (
            "POST",
            "/api/scans",
            Some(json!({"targets": ["127.0.0.1"]})),
            Role::Operator,
        ),
        ("GET", "/api/agents", None, Role::Viewer),
        (
            "POST",
            "/api/agents/nobody/command",
            Some(json!({"command": "stop"})),
            Role::Admin,
        ),
        ("GET", "/api/alerts", None, Role::Viewer),
        ("GET", "/api/tokens", None, Role::Admin),
        (
            "GET",
            "/api/imagery?lat=1&lng=2&provider=mapillary",
            None,
            Role::Viewer,
        ),
    ];
    for (method, path, body, least) in routes {
        let build = |token: Option<&str>| {
            let mut request = Request::builder().method(method).uri(path);
            if let Some(token) = token {
                request = request.header("authorization", format!("Bearer {token}"));
            }
            match &body {
                Some(json) => request
                    .header("content-type", "application/json")
                    .body(Body::from(json.to_string()))
                    .unwrap(),
                None => request.body(Body::empty()).unwrap(),
            }
        };
        assert_eq!(
            api.call(build(None)).await.0,
            StatusCode::UNAUTHORIZED,
            "{method} {path} without a token"
        );
        assert_eq!(
            api.call(build(Some("vgl_00"))).await.0,
            StatusCode::UNAUTHORIZED,
            "{method} {path} with a wrong token"
        );
        let agent = api.token(Role::Agent).await;
        assert_eq!(
            api.call(build(Some(&agent))).await.0,
            StatusCode::FORBIDDEN,
            "{method} {path} with an agent token"
        );
        for (role, token) in &tokens {
            let (status, _, body) = api.call(build(Some(token))).await;
            if rank(*role) < rank(least) {
                assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path} as {role:?}");
                assert_eq!(
                    body["error"]["code"], "forbidden",
                    "{method} {path} as {role:?}"
                );
            } else {
                // Allowed: whatever else may go wrong (an empty scope, an unknown agent), it is
                // not the role.
                assert_ne!(
                    body["error"]["code"], "forbidden",
                    "{method} {path} as {role:?}"
                );
                assert_ne!(
                    status,
                    StatusCode::UNAUTHORIZED,
                    "{method} {path} as {role:?}"
                );
            }
        }
    }
}

#[tokio::test]
async fn the_connection_cap_refuses_extra_sockets() {
    let server = common::TestServer::start(vigil_server::ServerConfig {
        max_connections: 2,
        ..config()
    })
    .await;
    let token = server.token(Role::Viewer).await;
    let (_a, _) = server.connect_as(&token).await;
    let (_b, _) = server.connect_as(&token).await;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    // Credentials on the upgrade: refused there.
    let mut request = server.url().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 503)
        }
        other => panic!("expected 503, got {:?}", other.map(|_| ())),
    }
    // An anonymous socket waits in its own budget, and is told when it authenticates.
    let mut ws = server.connect().await;
    common::send(&mut ws, serde_json::json!({"type": "auth", "token": token})).await;
    assert_eq!(common::close_code(&mut ws).await, 1013);
    server.stop().await;
}

#[tokio::test]
async fn admins_mint_list_and_revoke_tokens_over_the_api() {
    let api = Api::new().await;
    let admin = api.admin.clone();
    let (status, created) = api
        .post(
            "/api/tokens",
            Some(&admin),
            json!({"role": "operator", "label": "night shift"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["token"].as_str().unwrap().to_owned();
    assert_eq!(
        api.get("/api/scans", Some(&secret)).await.0,
        StatusCode::OK,
        "the new token works at once"
    );
    let (_, listed) = api.get("/api/tokens", Some(&admin)).await;
    let rows = listed["tokens"].as_array().unwrap();
    assert!(
        rows.iter().any(|t| t["id"] == created["id"]
            && t["label"] == "night shift"
            && t["active"] == true)
    );
    assert!(
        !listed.to_string().contains(&secret),
        "secrets are never listed"
    );

    assert_eq!(
        api.get("/api/tokens", Some(&secret)).await.0,
        StatusCode::FORBIDDEN,
        "operators do not manage tokens"
    );
    let (status, body) = api
        .post("/api/tokens", Some(&admin), json!({"role": "root"}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request"))
    );

    let delete = |id: String, token: String| {
        Request::delete(format!("/api/tokens/{id}"))
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        api.call(delete(id.clone(), admin.clone())).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.get("/api/scans", Some(&secret)).await.0,
        StatusCode::UNAUTHORIZED,
        "revoked at once"
    );
    assert_eq!(
        api.call(delete(id, admin.clone())).await.0,
        StatusCode::NOT_FOUND
    );
    let own = api
        .state
        .auth()
        .verify_token(&admin)
        .await
        .unwrap()
        .token_id;
    assert_eq!(
        api.call(delete(own, admin.clone())).await.0,
        StatusCode::BAD_REQUEST,
        "an admin cannot lock itself out"
    );
}
