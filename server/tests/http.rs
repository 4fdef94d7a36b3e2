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
    fn new() -> Api {
        let (state, first) = AppState::in_memory(config()).unwrap();
        Api {
            state,
            admin: first.admin_token,
        }
    }

    fn token(&self, role: Role) -> String {
        self.state.auth().create_token(role, "http test").unwrap().1
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
    let api = Api::new();
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
    let api = Api::new();
    let viewer = api.token(Role::Viewer);
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
    let agent = api.token(Role::Agent);
    assert_eq!(
        api.get("/stats", Some(&agent)).await.0,
        StatusCode::FORBIDDEN,
        "agents read no dashboards"
    );
}

#[tokio::test]
async fn a_token_in_the_url_is_refused_everywhere() {
    let api = Api::new();
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
    let api = Api::new();
    let operator = api.token(Role::Operator);
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
    let api = Api::new();
    let operator = api.token(Role::Operator);
    let viewer = api.token(Role::Viewer);

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
    let api = Api::new();
    let operator = api.token(Role::Operator);
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
    let api = Api::new();
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
    let api = Api::new();
    let (record, secret) = api.state.auth().create_token(Role::Viewer, "temp").unwrap();
    assert_eq!(api.get("/stats", Some(&secret)).await.0, StatusCode::OK);
    api.state.auth().revoke(&record.id).unwrap();
    assert_eq!(
        api.get("/stats", Some(&secret)).await.0,
        StatusCode::UNAUTHORIZED
    );
}
