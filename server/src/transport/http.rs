//! REST routes, authentication of HTTP requests, and the protective layers.

use axum::Json;
use axum::extract::{FromRef, FromRequestParts, Query, State};
use axum::http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use event_bus::{Epoch, EventDraft, Filter, Position, Role, Room, Severity};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::node::Node;
use crate::node::auth::{Principal, session_cookie_name};
use crate::store::role_name;

/// Whether a query string carries a credential (`token=` or `access_token=`), which is refused
/// everywhere: URLs end up in logs, histories and `Referer` headers.
pub fn query_has_token(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&')
            .filter_map(|pair| pair.split('=').next())
            .any(|name| {
                name.eq_ignore_ascii_case("token") || name.eq_ignore_ascii_case("access_token")
            })
    })
}

/// Refuses a request whose `Origin` is neither the server's own nor configured. Requests without
/// `Origin` (curl, agents, scripts) pass: browsers always send it where it matters.
pub fn check_origin(state: &Node, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or_default();
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let same = !host.is_empty()
        && (origin == format!("http://{host}") || origin == format!("https://{host}"));
    if same || state.config().allowed_origins.iter().any(|o| o == origin) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "origin {origin:?} is not allowed"
        )))
    }
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The session cookie's secret, read under the one name this configuration uses.
pub(crate) fn session_secret<'a>(state: &Node, headers: &'a HeaderMap) -> Option<&'a str> {
    cookie_value(headers, session_cookie_name(state.config().cookie_secure))
}

/// A `Set-Cookie` value for the session cookie: `__Host-` prefixed and `Secure` over HTTPS.
fn session_cookie(state: &Node, secret: &str, max_age: u64) -> String {
    let secure = state.config().cookie_secure;
    format!(
        "{}={secret}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        session_cookie_name(secure),
        if secure { "; Secure" } else { "" }
    )
}

/// The principal of a valid session cookie, if there is one.
pub async fn session_principal(state: &Node, headers: &HeaderMap) -> Option<Principal> {
    let secret = session_secret(state, headers)?;
    state.auth().verify_session(secret).await
}

/// `Json<T>` whose rejections keep the API's error shape (`400 bad_json`).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(
        request: axum::extract::Request,
        state: &S,
    ) -> Result<ApiJson<T>, ApiError> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(ApiError::new(
                rejection.status(),
                "bad_json",
                rejection.body_text(),
            )),
        }
    }
}

/// An authenticated HTTP caller: `Authorization: Bearer TOKEN`, or a session cookie from an
/// allowed origin.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl<S> FromRequestParts<S> for Caller
where
    Node: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Caller, ApiError> {
        let state = &Node::from_ref(state);
        if let Some(value) = parts.headers.get(AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or_else(ApiError::unauthenticated)?;
            // A token this node cannot check now (the shared database is away) is a 503.
            return state
                .auth()
                .check_token(token.trim())
                .await?
                .map(Caller)
                .ok_or_else(ApiError::unauthenticated);
        }
        check_origin(state, &parts.headers)?;
        session_principal(state, &parts.headers)
            .await
            .map(Caller)
            .ok_or_else(ApiError::unauthenticated)
    }
}

impl Caller {
    /// Refuses callers below `role`.
    pub fn require(&self, role: Role) -> Result<&Principal, ApiError> {
        if self.0.is_at_least(role) {
            Ok(&self.0)
        } else {
            Err(ApiError::forbidden(format!(
                "this needs the {} role",
                role_name(role)
            )))
        }
    }
}

#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, description = "Liveness in the seed dashboard's shape", body = Object)))]
/// `GET /health`, in the shape of the seed dashboard server.
pub async fn health(State(state): State<Node>) -> Json<Value> {
    Json(json!({
        "status": if state.is_draining() { "draining" } else { "healthy" },
        "service": "vigil",
        "version": env!("CARGO_PKG_VERSION"),
        "timestamp": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "connected_clients": state.connections(),
        "uptime_seconds": state.uptime_seconds(),
    }))
}

#[utoipa::path(get, path = "/livez", tag = "health", responses((status = 200, description = "The process answers", body = Object)))]
/// `GET /livez`: the process answers.
pub async fn livez() -> &'static str {
    "ok"
}

#[utoipa::path(get, path = "/readyz", tag = "health", responses((status = 200, description = "Ready"), (status = 503, description = "Shutting down")))]
/// `GET /readyz`: 503 once shutdown has begun.
pub async fn readyz(State(state): State<Node>) -> Response {
    if state.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining").into_response()
    } else if !state.is_ready() {
        (StatusCode::SERVICE_UNAVAILABLE, "cluster bus unreachable").into_response()
    } else {
        "ready".into_response()
    }
}

#[utoipa::path(get, path = "/stats", tag = "events", responses((status = 200, description = "Event metrics in the seed dashboard's shape (viewer)", body = Object), (status = 401, description = "No valid token or session", body = crate::error::schema::ErrorBody), (status = 403, description = "The role may not do this", body = crate::error::schema::ErrorBody)), security(("token" = []), ("session" = [])))]
/// `GET /stats` (viewer), in the shape of the seed dashboard server.
pub async fn stats(State(state): State<Node>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let m = state.bus().metrics();
    let recent: usize = state
        .bus()
        .since(
            &Filter::all(),
            Position {
                epoch: state.bus().epoch(),
                seq: 0,
            },
        )
        .map(|r| r.events.len())
        .unwrap_or(0);
    Ok(Json(json!({
        "metrics": {
            "total_events": m.total_events,
            "total_agents_executed": m.total_agents_executed,
            "total_opportunities_discovered": m.total_opportunities_discovered,
            "avg_quality_score": m.avg_quality_score,
            "system_uptime_seconds": state.uptime_seconds(),
        },
        "active_agents": m.active_agents,
        "total_opportunities": m.total_opportunities_discovered,
        "recent_events": recent,
        "system_uptime_seconds": state.uptime_seconds(),
        "connected_clients": state.connections(),
        "by_kind": m.by_kind,
        "by_room": m.by_room,
        "by_severity": m.by_severity,
        "missed_deliveries": m.missed_deliveries,
    })))
}

#[utoipa::path(get, path = "/api/websocket/status", tag = "events", responses((status = 200, description = "Connections and members per room (viewer)", body = Object), (status = 401, description = "No valid token or session", body = crate::error::schema::ErrorBody), (status = 403, description = "The role may not do this", body = crate::error::schema::ErrorBody)), security(("token" = []), ("session" = [])))]
/// `GET /api/websocket/status` (viewer), in the shape of the seed WebSocket plan.
pub async fn websocket_status(
    State(state): State<Node>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let here = node_load(&state);
    let Some(cluster) = state.cluster() else {
        return Ok(Json(here));
    };
    // Several nodes: the sum of every live node's last report, each node listed.
    let mut nodes = cluster.loads().await.map_err(|e| ApiError::internal(&e))?;
    if !nodes.iter().any(|n| n["node_id"] == cluster.node_id()) {
        let mut here = here;
        here["node_id"] = json!(cluster.node_id());
        nodes.push(here);
    }
    let mut total = json!({"status": if state.is_draining() { "draining" } else { "active" },
                           "node_id": cluster.node_id()});
    let mut rooms: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for key in [
        "connections",
        "messages_in",
        "frames_out",
        "slow_disconnects",
        "rate_limited",
        "refused",
    ] {
        total[key] = json!(nodes.iter().filter_map(|n| n[key].as_u64()).sum::<u64>());
    }
    for node in &nodes {
        if let Some(map) = node["rooms"].as_object() {
            for (room, n) in map {
                *rooms.entry(room.clone()).or_default() += n.as_u64().unwrap_or(0);
            }
        }
    }
    total["rooms"] = json!(rooms);
    total["nodes"] = Value::Array(nodes);
    Ok(Json(total))
}

/// This node's connections and counters, as `/api/websocket/status` shows them.
pub fn node_load(state: &Node) -> Value {
    let c = state.counters();
    let load = |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
    json!({
        "status": if state.is_draining() { "draining" } else { "active" },
        "connections": state.connections(),
        "rooms": state.room_members(),
        "messages_in": load(&c.messages_in),
        "frames_out": c.frames_out.get(),
        "slow_disconnects": load(&c.slow_disconnects),
        "rate_limited": load(&c.rate_limited),
        "refused": load(&c.refused),
    })
}

/// The body of `POST /api/session`.
#[derive(Debug, Deserialize)]
pub struct SessionRequest {
    /// The token to trade for a session.
    pub token: String,
}

/// What `/api/session` says about the caller.
#[derive(Debug, Serialize, Deserialize)]
pub struct SessionInfo {
    /// The caller's role.
    pub role: Role,
    /// The token's public id.
    pub token_id: String,
    /// The token's label.
    pub label: String,
}

impl From<&Principal> for SessionInfo {
    fn from(p: &Principal) -> SessionInfo {
        SessionInfo {
            role: p.role,
            token_id: p.token_id.clone(),
            label: p.label.clone(),
        }
    }
}

#[utoipa::path(post, path = "/api/session", tag = "auth", request_body(content = Object, description = "{\"token\": \"vgl_…\"}"), responses((status = 200, description = "A session cookie was set", body = Object)))]
/// `POST /api/session`: trades a token for an HttpOnly, SameSite=Strict session cookie
/// (`__Host-vigil_session` and `Secure` when `cookie_secure` is set).
pub async fn create_session(
    State(state): State<Node>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SessionRequest>,
) -> Result<Response, ApiError> {
    check_origin(&state, &headers)?;
    // A token this node cannot check now (the shared database is away) is a 503, not a 401.
    let principal = state
        .auth()
        .check_token(body.token.trim())
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    let ttl = state.config().session_ttl;
    let secret = state.auth().create_session(&principal, ttl).await?;
    let cookie = session_cookie(&state, &secret, ttl.as_secs());
    let mut response = Json(SessionInfo::from(&principal)).into_response();
    response.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| ApiError::internal(&e))?,
    );
    Ok(response)
}

#[utoipa::path(get, path = "/api/session", tag = "auth", responses((status = 200, description = "Who the caller is", body = Object), (status = 401, description = "No valid token or session", body = crate::error::schema::ErrorBody), (status = 403, description = "The role may not do this", body = crate::error::schema::ErrorBody)), security(("token" = []), ("session" = [])))]
/// `GET /api/session`: who the caller is.
pub async fn session_info(caller: Caller) -> Json<SessionInfo> {
    Json(SessionInfo::from(&caller.0))
}

#[utoipa::path(delete, path = "/api/session", tag = "auth", responses((status = 204, description = "Signed out")))]
/// `DELETE /api/session`: ends the cookie session.
pub async fn end_session(
    State(state): State<Node>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_origin(&state, &headers)?;
    if let Some(secret) = session_secret(&state, &headers) {
        state.auth().end_session(secret).await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_str(&session_cookie(&state, "", 0))
            .map_err(|e| ApiError::internal(&e))?,
    );
    Ok(response)
}

/// Query of `GET /api/events`.
#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    /// Comma-separated rooms (default: every room the caller may read).
    #[serde(default)]
    pub rooms: Option<String>,
    /// The last sequence number seen (default 0: everything retained).
    #[serde(default)]
    pub since: Option<u64>,
    /// The epoch that `since` belongs to (default: the current one).
    #[serde(default)]
    pub epoch: Option<String>,
    /// The least severity.
    #[serde(default)]
    pub min_severity: Option<Severity>,
    /// At most this many events, the oldest first (default and cap 1000).
    #[serde(default)]
    pub limit: Option<usize>,
}

#[utoipa::path(get, path = "/api/events", tag = "events", params(("rooms" = Option<String>, Query, description = "Comma-separated rooms"), ("since" = Option<u64>, Query, description = "Last seq seen"), ("epoch" = Option<String>, Query, description = "Epoch of since"), ("min_severity" = Option<String>, Query, description = "info|success|warning|error|critical"), ("limit" = Option<u32>, Query, description = "At most 1000")), responses((status = 200, description = "History after a position (viewer)", body = Object), (status = 401, description = "No valid token or session", body = crate::error::schema::ErrorBody), (status = 403, description = "The role may not do this", body = crate::error::schema::ErrorBody)), security(("token" = []), ("session" = [])))]
/// `GET /api/events` (viewer): history after a position, from the rooms the caller may read.
pub async fn list_events(
    State(state): State<Node>,
    caller: Caller,
    Query(query): Query<EventsQuery>,
) -> Result<Json<Value>, ApiError> {
    let principal = caller.require(Role::Viewer)?;
    let bus = state.bus();
    let readable: Vec<Room> = bus
        .rooms()
        .into_iter()
        .filter(|r| r.subscribe.allows(principal.role))
        .map(|r| r.name)
        .collect();
    let rooms = match query.rooms.as_deref().filter(|r| !r.is_empty()) {
        None => readable,
        Some(list) => {
            let mut rooms = Vec::new();
            for name in list.split(',') {
                let room = Room::new(name.trim())?;
                if bus.room(room.as_str()).is_none() {
                    return Err(event_bus::Error::UnknownRoom(room.to_string()).into());
                }
                if !readable.contains(&room) {
                    return Err(ApiError::forbidden(format!(
                        "your role may not read room {room}"
                    )));
                }
                rooms.push(room);
            }
            rooms
        }
    };
    let epoch = match query.epoch.as_deref() {
        Some(text) => text.parse::<Epoch>()?,
        None => bus.epoch(),
    };
    let filter = Filter {
        rooms,
        kinds: Vec::new(),
        min_severity: query.min_severity.unwrap_or_default(),
    };
    let replay = bus.since(
        &filter,
        Position {
            epoch,
            seq: query.since.unwrap_or(0),
        },
    )?;
    let limit = query.limit.unwrap_or(1000).min(1000);
    let truncated = replay.events.len() > limit;
    let events: Vec<Value> = replay
        .events
        .iter()
        .take(limit)
        .map(|e| serde_json::from_slice(e.json()).unwrap_or(Value::Null))
        .collect();
    Ok(Json(json!({
        "epoch": replay.epoch.to_string(),
        "head": replay.head,
        "recovered": replay.recovered,
        "truncated": truncated,
        "events": events,
    })))
}

#[utoipa::path(post, path = "/api/events", tag = "events", request_body(content = Object, description = "{kind, room, severity?, data?}"), responses((status = 201, description = "Published (operator; room rules apply)", body = Object), (status = 401, description = "No valid token or session", body = crate::error::schema::ErrorBody), (status = 403, description = "The role may not do this", body = crate::error::schema::ErrorBody)), security(("token" = []), ("session" = [])))]
/// `POST /api/events` (operator, and the room's publish rule): publish from outside.
pub async fn publish_event(
    State(state): State<Node>,
    caller: Caller,
    ApiJson(draft): ApiJson<EventDraft>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let principal = caller.require(Role::Operator)?;
    let room = state
        .bus()
        .room(draft.room.as_str())
        .ok_or_else(|| ApiError::from(event_bus::Error::UnknownRoom(draft.room.to_string())))?;
    if !room.publish.allows(principal.role) {
        return Err(ApiError::forbidden(format!(
            "your role may not publish to room {}",
            room.name
        )));
    }
    let source = principal.source();
    let data = if draft.room.as_str() == crate::node::auth::CHAT_ROOM {
        let data: Value = serde_json::from_str(draft.data.get())
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let signed = crate::node::auth::signed_data(draft.room.as_str(), data, &source);
        serde_json::value::to_raw_value(&signed).map_err(|e| ApiError::internal(&e))?
    } else {
        draft.data
    };
    let event = state
        .bus()
        .publish_draft(EventDraft {
            source: Some(source),
            data,
            ..draft
        })?
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "seq": event.seq(), "id": event.id(), "epoch": event.epoch().to_string() })),
    ))
}

/// JSON body errors keep the API's error shape.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_in_queries_are_spotted() {
        assert!(query_has_token(Some("token=abc")));
        assert!(query_has_token(Some("a=1&Access_Token=x")));
        assert!(!query_has_token(Some("tokens=1&key=2")));
        assert!(!query_has_token(None));
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("a=1; vigil_session=s3cret; b=2"),
        );
        assert_eq!(cookie_value(&headers, "vigil_session"), Some("s3cret"));
        assert_eq!(cookie_value(&headers, "c"), None);
    }
}
