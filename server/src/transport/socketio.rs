//! `/socket.io/`: Socket.IO v5 (Engine.IO v4) through socketioxide, for the seeds'
//! python-socketio agents and `io()` dashboards, under the same rules as `/ws`.
//!
//! # Connecting
//!
//! The token goes in the Socket.IO `auth` payload, `{"token": "vgl_…"}`, or in an
//! `Authorization: Bearer vgl_…` header on the Engine.IO handshake (python-socketio:
//! `connect(url, headers={"Authorization": "Bearer …"})`); a connection without a valid one gets
//! `CONNECT_ERROR` (`{"message": "unauthenticated: …"}`); a token in the query string is refused
//! with HTTP 400 before Socket.IO sees the request. An Engine.IO session opened without the
//! header waits in the unauthenticated budget until its `CONNECT` (`max_unauthenticated`, per
//! source `max_unauthenticated_per_source`); when that is full, such a handshake gets HTTP 503
//! `too_many_unauthenticated` — one with the header is never refused for it. Revoking the token
//! emits `error` `{code: "revoked"}` and disconnects the socket. The
//! browser `Origin` must be the server's own or a configured one (socketioxide has no Origin
//! check: [`service`] wraps it with the one `/ws` uses, so a foreign origin gets HTTP 403 on the
//! polling handshake and on the WebSocket upgrade alike; an allowed one gets
//! `Access-Control-Allow-Origin` so that a browser may read polling responses). Only the default
//! namespace `/` exists.
//!
//! Dashboards (every role but `agent`) join `monitoring`, `scans` and `alerts` on connect, so
//! the seed's `io()` page works as it is; put `rooms: [...]` in the `auth` payload to choose
//! instead (`[]` for none).
//!
//! # Events
//!
//! Every request below may carry a Socket.IO acknowledgement callback: it is answered with
//! `{"status": "ok", ...}` or `{"status": "error", "code", "message"}`. Errors are also emitted as
//! an `error` event `{event, code, message}` for clients that use no callbacks.
//!
//! | client emits | payload | effect |
//! |---|---|---|
//! | `join_room` | `{room}` (or the room name) | bus events of that room arrive; the room's subscribe rule applies (`admin` needs admin) |
//! | `leave_room` | `{room}` (or the room name) | they stop |
//! | `publish` | `{room, kind, data?, severity?}` | publishes on the bus under the room's publish rule; every member of the room gets it, the sender included (Flask-SocketIO's `broadcast=True`) |
//! | `chat_message` | any object | `publish` of kind `chat_message` to `chat` with the object as data (operator and up) |
//! | `register_agent` (agent role) | `{agent_id?, name?, type?, capabilities, max_concurrent?}` | `registration_ack` `{status: "success", agent_id, server_id, heartbeat_seconds}`; `agent_online` goes to `monitoring` |
//! | `heartbeat` (agents) | anything (the seed's stats) | renews the lease on the agent's tasks |
//! | `task_progress` (agents) | `{task_id, progress, message?}` | `task_progress` in `scans` |
//! | `scan_result` (agents) | see below | stored, then acknowledged: callback, and an `ack` event `{of: "scan_result", id: TASK, stored}` |
//!
//! | server emits | payload |
//! |---|---|
//! | the event's kind (`scan_update`, `critical_alert`, `agent_online`, `chat_message`, …) | the bus envelope `{seq, epoch, id, kind, room, severity, time, source?, data}` |
//! | `event` | the envelope of an event whose kind is a reserved name (`connect`, `disconnect`, `error`, `message`, `ack`, `lagged`, `registration_ack`, `assign_task`, `command`, …), so that no published event can pose as one |
//! | `lagged` | `{missed, resume_from}`: events lost that history no longer holds |
//! | `registration_ack`, `ack`, `error` | as above |
//! | `assign_task` (to agents) | the task: `{id, scan_id, kind, type, target, ports, ports_spec, parameters, priority, retries}` |
//! | `command` (to agents) | `{command: "stop" \| "cancel" \| "health_check", task_id?}` |
//!
//! `assign_task` carries vigil's task plus the seed's names: `type` is the kind (`port_scan`), and
//! `ports` is the list of port numbers (the seed's agent iterates it), expanded from the task's
//! specification (or the kind's default list), which stays in `ports_spec` (`null` for the
//! default). A list longer than 4096 ports is not expanded: `ports` is then `null` and
//! `ports_spec` holds it.
//!
//! # `scan_result`
//!
//! Two shapes are accepted, for a task assigned to this agent over this connection only:
//!
//! - **vigil's** (`sec_scan::ScanResult`), bare or as `{"result": …}`: `scan_id`, `task_id`,
//!   `agent_id`, `target`, `kind`, `status`, `findings`, `threats`, `duration_seconds`, `time`,
//!   `attempts` are required, `error` is optional. Recognised by its `task_id`.
//! - **the seed's** (`ScanResult.to_dict()` of its agent): `scan_id` (which the seed's agent sets
//!   to the *task* id) and `status` (`success`, `partial`, `failed`, `timed_out`, `cancelled`)
//!   are required; `findings`, `threats_detected`, `duration_seconds`, `scan_type` and `error`
//!   are optional; `agent_id`, `target` and `timestamp` are ignored (the server knows them).
//!   Each finding is either a vigil finding, or a seed finding `{type: "open_port", port, addr?}`,
//!   stored as an `open_port` finding on the task's target — its address is `addr` (or `ip`), else
//!   the target itself when it is an IP address, else the result is refused. Other seed findings
//!   (`port_status` of closed ports, `ssl_error`, …) are not facts vigil stores: they are counted
//!   in the answer's `skipped_findings`. Each threat must be a vigil threat
//!   (`signature_id, name, severity, host, addr, port, kind, field, evidence, remediation,
//!   references`): the seed's `{threat_id, name, severity, remediation}` lacks what an alert needs,
//!   and such a result is refused with `bad_result`.
//!
//! The result is acknowledged only after it is stored; sent again, it is acknowledged again and
//! stored once.
//!
//! # Limits
//!
//! Engine.IO messages are capped at `max_message_bytes` on both transports (WebSocket message and
//! frame size, polling payload, binary attachments); inbound events, those no handler takes
//! included, are rate limited like `/ws` (the socket is disconnected past the burst); Socket.IO connections count against
//! `max_connections`; a socket that has not joined the namespace within `auth_timeout` is closed.
//! Each socket's outbound queue is socketioxide's bounded channel (in packets, not bytes); when it
//! is full the socket is marked too slow, gets nothing more, and is disconnected — at once when a
//! slot frees, else by the next Engine.IO heartbeat, which cannot be queued either — while every
//! other socket carries on.

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::header::{ACCESS_CONTROL_ALLOW_ORIGIN, ORIGIN, VARY};
use axum::http::{HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use event_bus::{
    Delivery, EventDraft, EventKind, Filter, Position, Role, Room, Severity, Subscription,
};
use futures::StreamExt;
use parking_lot::Mutex;
use serde_json::{Value, json};
use socketioxide::extract::{AckSender, Event, SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::{ParserConfig, SendError, SocketError, SocketIo};
use tokio::sync::{mpsc, oneshot};

use crate::error::ApiError;
use crate::node::admission::Ticket;
use crate::node::auth::{Principal, Revocation};
use crate::node::orchestrator::{AgentHello, AgentOrder};
use crate::node::proxies::Peer;
use crate::node::state::{ConnectionSlot, Node};
use crate::store::role_name;
use crate::transport::http::{check_origin, session_principal};
use crate::transport::limit::RateLimit;

/// Where Socket.IO lives.
pub const PATH: &str = "/socket.io";

/// Rooms a dashboard joins on connect when its `auth` payload names none.
const DEFAULT_ROOMS: [&str; 3] = ["monitoring", "scans", "alerts"];

/// Engine.IO heartbeat. Also the longest a stalled socket stays open once its queue is full.
const PING_INTERVAL: Duration = Duration::from_secs(10);
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Ports of a task are listed for the seed's agent up to this many.
const MAX_LISTED_PORTS: usize = 4096;

/// Event names a bus event never takes: Socket.IO's reserved ones and those of the server's own
/// messages, so that a published kind cannot pose as an order or a connection event. Events of
/// these kinds arrive as `event`.
const RESERVED_NAMES: [&str; 13] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
    "message",
    "error",
    "ack",
    "lagged",
    "registration_ack",
    "assign_task",
    "command",
];

/// The `/socket.io/` service: the Origin check, then socketioxide with vigil's handlers.
pub fn service(state: &Node) -> OriginGuard {
    let config = state.config();
    let max = config.max_message_bytes;
    // Packets, not bytes: socketioxide's per-socket channel. Enough for bursts of small events;
    // a client that stops reading fills it and is dropped.
    let buffer = (config.outbound_queue_bytes / 4096).clamp(64, 1024);
    let parser = ParserConfig::common()
        .max_incoming_binary_buf_size(max)
        .max_incoming_binaries(4)
        .packet_completion_timeout(Duration::from_secs(10));
    let (svc, io) = SocketIo::builder()
        .req_path(PATH)
        .with_parser(parser)
        .max_payload(max as u64)
        .ws_max_message_size(max)
        .ws_max_frame_size(max)
        .ws_read_buffer_size(4 * 1024)
        .max_buffer_size(buffer)
        .ping_interval(PING_INTERVAL)
        .ping_timeout(PING_TIMEOUT)
        .connect_timeout(config.auth_timeout)
        .build_with_inner_svc(NotFound);
    let admit = {
        let state = state.clone();
        move |socket: SocketRef, TryData(auth): TryData<Value>| {
            let state = state.clone();
            async move { admit(&state, &socket, auth.ok()).await }
        }
    };
    let connected = {
        let state = state.clone();
        move |socket: SocketRef| {
            let state = state.clone();
            async move { on_connect(state, socket) }
        }
    };
    io.ns("/", connected.with(admit));
    OriginGuard {
        state: state.clone(),
        inner: svc,
    }
}

type Inner = socketioxide::service::SocketIoService<NotFound>;

/// What socketioxide calls for a path that is not its own (never reached: the route is its own).
#[derive(Debug, Clone, Copy)]
pub struct NotFound;

impl tower::Service<Request<Body>> for NotFound {
    type Response = Response;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<Body>) -> Self::Future {
        std::future::ready(Ok(StatusCode::NOT_FOUND.into_response()))
    }
}

/// Refuses foreign origins (403, as `/ws` does), then hands the request to socketioxide.
#[derive(Clone)]
pub struct OriginGuard {
    state: Node,
    inner: Inner,
}

impl std::fmt::Debug for OriginGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OriginGuard").finish_non_exhaustive()
    }
}

impl tower::Service<Request<Body>> for OriginGuard {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        tower::Service::<Request<Body>>::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        if let Err(err) = check_origin(&self.state, request.headers()) {
            self.state
                .counters()
                .refused
                .fetch_add(1, Ordering::Relaxed);
            return Box::pin(async move { Ok(err.into_response()) });
        }
        // A request without `sid` opens an Engine.IO session. One that brings no credentials
        // waits in the unauthenticated budget until its Socket.IO CONNECT; the session keeps its
        // handshake request, ticket included, so the ticket goes when the session does.
        if is_handshake(request.uri().query()) && !handshake_known(&self.state, request.headers()) {
            let peer = Peer::of(
                self.state.proxies(),
                request.extensions(),
                request.headers(),
            );
            match self.state.engineio_admission().admit(peer.0, false) {
                Ok(ticket) => {
                    request.extensions_mut().insert(Arc::new(ticket));
                }
                Err(_) => {
                    self.state
                        .counters()
                        .refused
                        .fetch_add(1, Ordering::Relaxed);
                    return Box::pin(async move {
                        Ok(ApiError::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "too_many_unauthenticated",
                            "too many sessions are waiting to authenticate: send Authorization: Bearer with the handshake, or try again later",
                        )
                        .into_response())
                    });
                }
            }
        }
        // An allowed origin may read polling responses (a browser's `io()` on a configured
        // origin); no credentials are involved, the token travels in the CONNECT packet.
        let origin = request.headers().get(ORIGIN).cloned();
        let future = tower::Service::call(&mut self.inner, request);
        Box::pin(async move {
            let mut response = match future.await {
                Ok(response) => response.map(Body::new),
                Err(never) => match never {},
            };
            if let Some(origin) = origin {
                let headers = response.headers_mut();
                headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
                headers.append(VARY, HeaderValue::from_static("origin"));
            }
            Ok(response)
        })
    }
}

/// Whether a request to `/socket.io/` opens a new Engine.IO session (it names no `sid`).
fn is_handshake(query: Option<&str>) -> bool {
    !query
        .unwrap_or("")
        .split('&')
        .any(|pair| pair.starts_with("sid="))
}

/// Credentials sent with the Engine.IO handshake: `Authorization: Bearer` or the session cookie.
async fn handshake_principal(state: &Node, headers: &axum::http::HeaderMap) -> Option<Principal> {
    match bearer(headers) {
        Some(token) => state.auth().verify_token(token.trim()).await,
        None => session_principal(state, headers).await,
    }
}

fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// Whether the handshake brings credentials this node already knows to be live (memory only:
/// credentials it has not seen yet wait in the unauthenticated budget until CONNECT checks them).
fn handshake_known(state: &Node, headers: &axum::http::HeaderMap) -> bool {
    match bearer(headers) {
        Some(token) => state.auth().known_token(token.trim()).is_some(),
        None => crate::transport::http::session_secret(state, headers)
            .and_then(|secret| state.auth().known_session(secret))
            .is_some(),
    }
}

/// What the auth middleware hands to the connect handler.
#[derive(Clone)]
struct Admitted {
    principal: Principal,
    rooms: Option<Vec<String>>,
    slot: Arc<ConnectionSlot>,
}

/// Why a connection was refused (the `CONNECT_ERROR` message).
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

async fn admit(state: &Node, socket: &SocketRef, auth: Option<Value>) -> Result<(), Refused> {
    let refuse = |message: &str| {
        state.counters().refused.fetch_add(1, Ordering::Relaxed);
        Err(Refused(message.to_owned()))
    };
    if state.is_draining() {
        return refuse("shutting_down: the server is shutting down");
    }
    let auth = auth.unwrap_or(Value::Null);
    // The token in the auth payload, else the credentials of the handshake.
    let principal = match auth.get("token") {
        Some(token) => match token.as_str() {
            Some(t) => match state.auth().check_token(t).await {
                Ok(principal) => principal,
                // The shared database is away and this node has not seen the token.
                Err(err) => {
                    tracing::warn!(error = %err, "checking a token failed");
                    return refuse("unavailable: the token cannot be checked now; try again");
                }
            },
            None => None,
        },
        None => handshake_principal(state, &socket.req_parts().headers).await,
    };
    let Some(principal) = principal else {
        return refuse(if auth.get("token").is_some() {
            "unauthenticated: invalid token"
        } else {
            "unauthenticated: send {token} in the Socket.IO auth payload"
        });
    };
    let rooms = match auth.get("rooms") {
        None | Some(Value::Null) => None,
        Some(Value::Array(names)) => {
            let mut rooms = Vec::new();
            for name in names {
                let Some(name) = name.as_str() else {
                    return refuse("bad_message: rooms must be a list of room names");
                };
                if let Err((code, message)) = readable_room(state, &principal, name) {
                    return refuse(&format!("{code}: {message}"));
                }
                rooms.push(name.to_owned());
            }
            Some(rooms)
        }
        Some(_) => return refuse("bad_message: rooms must be a list of room names"),
    };
    let Some(slot) = state.try_connect() else {
        return refuse("too_many_connections: connection limit reached");
    };
    // Out of the unauthenticated budget.
    if let Some(ticket) = socket.req_parts().extensions.get::<Arc<Ticket>>() {
        ticket.release();
    }
    socket.extensions.insert(Admitted {
        principal,
        rooms,
        slot: Arc::new(slot),
    });
    Ok(())
}

/// The room, if `principal` may subscribe to it; else an error code and message.
fn readable_room(
    state: &Node,
    principal: &Principal,
    name: &str,
) -> Result<Room, (&'static str, String)> {
    let Some(config) = state.bus().room(name) else {
        return Err(match Room::new(name) {
            Err(err) => ("invalid_name", err.to_string()),
            Ok(_) => ("unknown_room", format!("no room {name:?}")),
        });
    };
    if !config.subscribe.allows(principal.role) {
        return Err((
            "forbidden",
            format!(
                "role {} may not subscribe to {name:?}",
                role_name(principal.role)
            ),
        ));
    }
    Ok(config.name)
}

/// Requests from event handlers to the socket's forwarding task.
enum Control {
    Join(Room, oneshot::Sender<()>),
    Leave(Room, oneshot::Sender<()>),
    Orders(mpsc::UnboundedReceiver<AgentOrder>),
    Gone,
}

/// One connected socket, shared by its event handlers.
struct Conn {
    state: Node,
    principal: Principal,
    control: mpsc::UnboundedSender<Control>,
    agent_id: Mutex<Option<String>>,
    /// Tasks sent to this socket and not yet reported, by id.
    tasks: Mutex<HashMap<String, sec_scan::ScanTask>>,
    limit: Mutex<RateLimit>,
    /// Set once the socket is being dropped (too slow, rate limited, shutting down).
    closing: AtomicBool,
    /// Fires when the token is revoked.
    revoked: Revocation,
    _slot: Arc<ConnectionSlot>,
}

/// A request's outcome: the ack body, or an error code and message.
type Outcome = Result<Value, (&'static str, String)>;

fn on_connect(state: Node, socket: SocketRef) {
    let Some(admitted) = socket.extensions.remove::<Admitted>() else {
        // The middleware always inserts it; without it the socket is not ours to serve.
        let _ = socket.disconnect();
        return;
    };
    let config = state.config();
    let (control, rx) = mpsc::unbounded_channel();
    let revoked = state.auth().revocation(&admitted.principal);
    let conn = Arc::new(Conn {
        state: state.clone(),
        principal: admitted.principal,
        control,
        agent_id: Mutex::new(None),
        tasks: Mutex::new(HashMap::new()),
        limit: Mutex::new(RateLimit::new(config)),
        closing: AtomicBool::new(false),
        revoked,
        _slot: admitted.slot,
    });

    let rooms: Vec<String> = match admitted.rooms {
        Some(rooms) => rooms,
        None if conn.principal.role == Role::Agent => Vec::new(),
        None => DEFAULT_ROOMS
            .iter()
            .filter(|name| readable_room(&state, &conn.principal, name).is_ok())
            .map(|name| (*name).to_owned())
            .collect(),
    };
    let initial: Vec<Room> = rooms
        .iter()
        .filter_map(|name| readable_room(&state, &conn.principal, name).ok())
        .collect();

    on(&socket, &conn, "join_room", |conn, _, data| async move {
        let room = room_of(&data)?;
        let room = readable_room(&conn.state, &conn.principal, &room)?;
        let (done, joined) = oneshot::channel();
        conn.control
            .send(Control::Join(room.clone(), done))
            .map_err(|_| gone())?;
        joined.await.map_err(|_| gone())?;
        Ok(json!({"status": "ok", "room": room.as_str()}))
    });
    on(&socket, &conn, "leave_room", |conn, _, data| async move {
        let room = room_of(&data)?;
        let Ok(room) = Room::new(&room) else {
            return Ok(json!({"status": "ok", "room": room}));
        };
        let (done, left) = oneshot::channel();
        conn.control
            .send(Control::Leave(room.clone(), done))
            .map_err(|_| gone())?;
        left.await.map_err(|_| gone())?;
        Ok(json!({"status": "ok", "room": room.as_str()}))
    });
    on(&socket, &conn, "publish", |conn, _, data| async move {
        let field = |name: &str| data.get(name).and_then(Value::as_str).map(str::to_owned);
        let room = field("room").ok_or_else(|| bad("publish needs room and kind"))?;
        let kind = field("kind").ok_or_else(|| bad("publish needs room and kind"))?;
        let severity = match data.get("severity") {
            None | Some(Value::Null) => Severity::Info,
            Some(value) => serde_json::from_value(value.clone())
                .map_err(|e| ("bad_message", format!("severity: {e}")))?,
        };
        let payload = data.get("data").cloned().unwrap_or(Value::Null);
        conn.publish(&room, &kind, severity, &payload).await
    });
    on(&socket, &conn, "chat_message", |conn, _, data| async move {
        if !data.is_object() {
            return Err(bad("chat_message takes an object"));
        }
        conn.publish("chat", "chat_message", Severity::Info, &data)
            .await
    });
    on(
        &socket,
        &conn,
        "register_agent",
        |conn, socket, data| async move { conn.register_agent(&socket, data).await },
    );
    on(&socket, &conn, "heartbeat", |conn, _, _| async move {
        let id = conn.agent()?;
        if conn.state.orchestrator().heartbeat(&id) {
            Ok(json!({"status": "ok"}))
        } else {
            Err(("not_an_agent", "this agent is no longer registered".into()))
        }
    });
    on(
        &socket,
        &conn,
        "task_progress",
        |conn, _, data| async move {
            let id = conn.agent()?;
            let task_id = data
                .get("task_id")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("task_progress needs task_id and progress"))?;
            let progress = data
                .get("progress")
                .and_then(Value::as_f64)
                .ok_or_else(|| bad("task_progress needs task_id and progress"))?;
            let message = data.get("message").and_then(Value::as_str);
            conn.state
                .orchestrator()
                .progress(&id, task_id, progress, message)
                .map_err(|refused| (refused.code(), refused.to_string()))?;
            Ok(json!({"status": "ok"}))
        },
    );
    on(
        &socket,
        &conn,
        "scan_result",
        |conn, socket, data| async move { conn.scan_result(&socket, data).await },
    );
    {
        // Events nobody handles still count against the rate limit.
        let conn = Arc::clone(&conn);
        socket.on_fallback(move |socket: SocketRef, Event(name): Event| {
            let conn = Arc::clone(&conn);
            async move {
                if conn.take_message(&socket, &name) {
                    let name: String = name.chars().take(64).collect();
                    let _ = socket.emit(
                        "error",
                        &json!({"event": name, "code": "unknown_event", "message": "no such event"}),
                    );
                }
            }
        });
    }
    {
        let conn = Arc::clone(&conn);
        socket.on_disconnect(move || {
            let conn = Arc::clone(&conn);
            async move {
                let _ = conn.control.send(Control::Gone);
            }
        });
    }

    let forwarder = Forwarder {
        conn: Arc::clone(&conn),
        socket: socket.clone(),
        subscription: None,
        rooms: BTreeSet::new(),
        orders: None,
    };
    let tracker = state.tracker().clone();
    tokio::spawn(tracker.track_future(forwarder.run(rx, initial)));
}

/// Registers `name` with a handler that gets the connection, the socket and the payload, and
/// answers through the acknowledgement callback (and an `error` event on failure).
fn on<F, Fut>(socket: &SocketRef, conn: &Arc<Conn>, name: &'static str, handler: F)
where
    F: Fn(Arc<Conn>, SocketRef, Value) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let conn = Arc::clone(conn);
    socket.on(
        name,
        move |socket: SocketRef, TryData(data): TryData<Value>, ack: AckSender| {
            let conn = Arc::clone(&conn);
            let handler = handler.clone();
            async move {
                if !conn.take_message(&socket, name) {
                    return;
                }
                let outcome = match data {
                    Ok(data) => handler(conn, socket.clone(), data).await,
                    Err(err) => Err(("bad_message", format!("not a valid payload: {err}"))),
                };
                match outcome {
                    Ok(body) => {
                        let _ = ack.send(&body);
                    }
                    Err((code, message)) => {
                        let _ =
                            ack.send(&json!({"status": "error", "code": code, "message": message}));
                        let _ = socket.emit(
                            "error",
                            &json!({"event": name, "code": code, "message": message}),
                        );
                    }
                }
            }
        },
    );
}

fn bad(message: &str) -> (&'static str, String) {
    ("bad_message", message.to_owned())
}

fn gone() -> (&'static str, String) {
    ("closing", "the connection is closing".to_owned())
}

/// `{room}` or a bare room name.
fn room_of(data: &Value) -> Result<String, (&'static str, String)> {
    match data {
        Value::String(name) => Ok(name.clone()),
        _ => data
            .get("room")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| bad("name a room: {\"room\": \"scans\"}")),
    }
}

impl Conn {
    /// Counts an inbound event against the rate limit; `false` when it is to be dropped (the
    /// socket is closing, or was just disconnected for sending too fast).
    fn take_message(&self, socket: &SocketRef, name: &str) -> bool {
        if self.closing.load(Ordering::Acquire) {
            return false;
        }
        self.state
            .counters()
            .messages_in
            .fetch_add(1, Ordering::Relaxed);
        if self.limit.lock().allow() {
            return true;
        }
        self.state
            .counters()
            .rate_limited
            .fetch_add(1, Ordering::Relaxed);
        let _ = socket.emit(
            "error",
            &json!({"event": name, "code": "rate_limited", "message": "too many messages"}),
        );
        self.closing.store(true, Ordering::Release);
        let _ = socket.clone().disconnect();
        false
    }

    fn agent(&self) -> Result<String, (&'static str, String)> {
        self.agent_id
            .lock()
            .clone()
            .ok_or_else(|| ("not_an_agent", "register_agent first".to_owned()))
    }

    async fn publish(&self, room: &str, kind: &str, severity: Severity, data: &Value) -> Outcome {
        let bus = self.state.bus();
        let Some(config) = bus.room(room) else {
            return Err(match Room::new(room) {
                Err(err) => ("invalid_name", err.to_string()),
                Ok(_) => ("unknown_room", format!("no room {room:?}")),
            });
        };
        if !config.publish.allows(self.principal.role) {
            return Err((
                "forbidden",
                format!(
                    "role {} may not publish to {room:?}",
                    role_name(self.principal.role)
                ),
            ));
        }
        let kind = EventKind::parse(kind).map_err(|e| ("invalid_name", e.to_string()))?;
        let source = self.principal.source();
        let data = crate::node::auth::signed_data(room, data.clone(), &source);
        let data =
            serde_json::value::to_raw_value(&data).map_err(|e| ("bad_message", e.to_string()))?;
        let draft = EventDraft {
            kind,
            room: config.name,
            severity,
            source: Some(source),
            data,
        };
        // The answer carries the seq: wait for the broker (at once in process).
        let event = bus
            .publish_draft(draft)
            .map_err(|e| ("publish_failed", e.to_string()))?
            .await
            .map_err(|e| ("publish_failed", e.to_string()))?;
        Ok(json!({"status": "ok", "seq": event.seq()}))
    }

    async fn register_agent(&self, socket: &SocketRef, data: Value) -> Outcome {
        if self.principal.role != Role::Agent {
            return Err((
                "forbidden",
                "only agent tokens may register agents".to_owned(),
            ));
        }
        let text = |name: &str| data.get(name).and_then(Value::as_str).map(str::to_owned);
        let capabilities = match data.get("capabilities") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(|c| c.as_str().map(str::to_owned))
                .collect(),
            Some(_) => return Err(bad("capabilities must be a list of scan types")),
        };
        let max_concurrent = match data.get("max_concurrent") {
            None | Some(Value::Null) => None,
            Some(value) => Some(
                value
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| bad("max_concurrent must be a positive integer"))?,
            ),
        };
        let hello = AgentHello {
            agent_id: text("agent_id"),
            name: text("name").or_else(|| text("type")),
            capabilities,
            max_concurrent,
        };
        {
            let mut agent_id = self.agent_id.lock();
            if agent_id.is_some() {
                return Err((
                    "already_registered",
                    "this connection is registered already".to_owned(),
                ));
            }
            // Taken while registering (an empty id), so a second `register_agent` sent at the
            // same time is refused.
            *agent_id = Some(String::new());
        }
        let (tx, rx) = mpsc::unbounded_channel();
        // Orders queue up in `rx` until the forwarding task takes it, so the acknowledgement
        // below always goes out before the first `assign_task`.
        let registered = self
            .state
            .orchestrator()
            .register(hello, &self.principal.token_id, tx, false)
            .await;
        let id = match registered {
            Ok(id) => id,
            Err(refused) => {
                *self.agent_id.lock() = None;
                return Err((refused.code(), refused.to_string()));
            }
        };
        *self.agent_id.lock() = Some(id.clone());
        let lease = self.state.config().agent_lease.as_secs();
        let ack = json!({"status": "success", "agent_id": id, "server_id": id,
                         "heartbeat_seconds": (lease / 3).max(1)});
        if let Err(err) = socket.emit("registration_ack", &ack) {
            self.state.orchestrator().disconnected(&id, "disconnected");
            return Err(("closing", err.to_string()));
        }
        if self.control.send(Control::Orders(rx)).is_err() {
            self.state.orchestrator().disconnected(&id, "disconnected");
            return Err(gone());
        }
        Ok(ack)
    }

    async fn scan_result(&self, socket: &SocketRef, data: Value) -> Outcome {
        let agent_id = self.agent()?;
        let (result, skipped) = {
            let tasks = self.tasks.lock();
            parse_result(data, &tasks)?
        };
        let task_id = result.task_id.clone();
        let stored = self
            .state
            .orchestrator()
            .submit_result(&agent_id, result)
            .await
            .map_err(|refused| (refused.code(), refused.to_string()))?;
        self.tasks.lock().remove(&task_id);
        let _ = socket.emit(
            "ack",
            &json!({"of": "scan_result", "id": task_id, "stored": stored}),
        );
        Ok(
            json!({"status": "ok", "task_id": task_id, "stored": stored, "skipped_findings": skipped}),
        )
    }
}

/// Reads a result in vigil's shape or the seed's; returns it and the count of seed findings that
/// were not stored.
pub(crate) fn parse_result(
    data: Value,
    tasks: &HashMap<String, sec_scan::ScanTask>,
) -> Result<(sec_scan::ScanResult, usize), (&'static str, String)> {
    let data = match data {
        Value::Object(mut map) if map.len() == 1 && map.contains_key("result") => {
            map.remove("result").unwrap_or(Value::Null)
        }
        other => other,
    };
    if data.get("task_id").is_some() {
        let result: sec_scan::ScanResult = serde_json::from_value(data)
            .map_err(|e| ("bad_result", format!("not a vigil scan result: {e}")))?;
        return Ok((result, 0));
    }
    // The seed's agent sends its task id as `scan_id`.
    let task_id = data.get("scan_id").and_then(Value::as_str).ok_or_else(|| {
        (
            "bad_result",
            "a result needs task_id (vigil) or scan_id (the seed's task id)".to_owned(),
        )
    })?;
    let Some(task) = tasks.get(task_id) else {
        return Err((
            "not_your_task",
            format!("task {task_id} is not assigned to this connection"),
        ));
    };
    let status = data
        .get("status")
        .cloned()
        .ok_or_else(|| ("bad_result", "a result needs status".to_owned()))?;
    let status: sec_scan::TaskStatus =
        serde_json::from_value(status).map_err(|e| ("bad_result", format!("status: {e}")))?;
    let kind = match data.get("scan_type").and_then(Value::as_str) {
        Some(name) => crate::node::orchestrator::parse_kind(name)
            .ok_or_else(|| ("bad_result", format!("unknown scan_type {name:?}")))?,
        None => task.kind,
    };
    let target_ip: Option<IpAddr> = task.target.parse().ok();
    let mut findings = Vec::new();
    let mut skipped = 0;
    let list = |name: &str| match data.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items.clone()),
        Some(_) => Err(("bad_result", format!("{name} must be a list"))),
    };
    for (i, item) in list("findings")?.into_iter().enumerate() {
        if item.get("kind").is_some() {
            let finding: sec_scan::Finding = serde_json::from_value(item)
                .map_err(|e| ("bad_result", format!("findings[{i}]: {e}")))?;
            findings.push(finding);
            continue;
        }
        if item.get("type").and_then(Value::as_str) != Some("open_port") {
            skipped += 1;
            continue;
        }
        let port = item
            .get("port")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                (
                    "bad_result",
                    format!("findings[{i}]: open_port needs a port in 1..=65535"),
                )
            })?;
        let addr = match item
            .get("addr")
            .or_else(|| item.get("ip"))
            .and_then(Value::as_str)
        {
            Some(text) => text.parse().map_err(|_| {
                (
                    "bad_result",
                    format!("findings[{i}]: addr {text:?} is not an IP address"),
                )
            })?,
            None => target_ip.ok_or_else(|| {
                (
                    "bad_result",
                    format!(
                        "findings[{i}]: name the address (addr) when the target is a host name"
                    ),
                )
            })?,
        };
        let finding: sec_scan::Finding = serde_json::from_value(json!({
            "host": task.target, "addr": addr, "port": port, "kind": "open_port", "service": null,
        }))
        .map_err(|e| ("bad_result", format!("findings[{i}]: {e}")))?;
        findings.push(finding);
    }
    let mut threats = Vec::new();
    for (i, item) in list("threats_detected")?.into_iter().enumerate() {
        let threat: sec_scan::Threat = serde_json::from_value(item).map_err(|e| {
            ("bad_result", format!("threats_detected[{i}] must be a vigil threat (signature_id, name, severity, host, addr, port, kind, field, evidence, remediation, references): {e}"))
        })?;
        threats.push(threat);
    }
    let duration_seconds = data
        .get("duration_seconds")
        .and_then(Value::as_f64)
        .filter(|d| d.is_finite() && *d >= 0.0)
        .unwrap_or(0.0);
    let error = data
        .get("error")
        .and_then(Value::as_str)
        .map(|e| e.chars().take(500).collect());
    Ok((
        sec_scan::ScanResult {
            scan_id: task.scan_id.clone(),
            task_id: task.id.clone(),
            agent_id: String::new(),
            target: task.target.clone(),
            kind,
            status,
            findings,
            threats,
            duration_seconds,
            time: chrono::Utc::now(),
            attempts: 1,
            error,
        },
        skipped,
    ))
}

/// The task as the seed's agent reads it, with vigil's fields kept.
fn task_payload(task: &sec_scan::ScanTask) -> Value {
    let mut value = serde_json::to_value(task).unwrap_or_else(|_| json!({}));
    // A task without ports scans its kind's default list: the seed's agent needs it spelled out.
    let ports = match task.ports.as_deref() {
        Some(spec) => spec.parse::<sec_scan::PortList>().ok(),
        None => Some(sec_scan::pipeline::default_ports(task.kind)),
    }
    .filter(|list| list.len() <= MAX_LISTED_PORTS)
    .map(|list| json!(list.as_slice()))
    .unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("type".into(), json!(task.kind.to_string()));
        map.insert("ports_spec".into(), json!(task.ports));
        map.insert("ports".into(), ports);
    }
    value
}

/// Why the forwarding task stopped.
enum End {
    /// The socket is gone.
    Gone,
    /// Disconnect it (shutdown, orchestrator gone).
    Disconnect,
    /// Its queue is full.
    TooSlow,
}

/// Moves bus events and agent orders to one socket; owns its subscription.
struct Forwarder {
    conn: Arc<Conn>,
    socket: SocketRef,
    subscription: Option<Subscription>,
    rooms: BTreeSet<Room>,
    orders: Option<mpsc::UnboundedReceiver<AgentOrder>>,
}

impl Forwarder {
    async fn run(mut self, mut control: mpsc::UnboundedReceiver<Control>, initial: Vec<Room>) {
        let shutdown = self.conn.state.shutdown_token().clone();
        let revoked = self.conn.revoked.clone();
        let end = if !initial.is_empty() && !self.change(initial, Vec::new()) {
            End::TooSlow
        } else {
            loop {
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => break End::Disconnect,
                    () = revoked.cancelled() => {
                        let _ = self.socket.emit(
                            "error",
                            &json!({"code": "revoked", "message": "the token of this connection was revoked"}),
                        );
                        break End::Disconnect;
                    }
                    message = control.recv() => match message {
                        None | Some(Control::Gone) => break End::Gone,
                        Some(Control::Join(room, done)) => {
                            let ok = self.change(vec![room], Vec::new());
                            let _ = done.send(());
                            if !ok { break End::TooSlow; }
                        }
                        Some(Control::Leave(room, done)) => {
                            let ok = self.change(Vec::new(), vec![room]);
                            let _ = done.send(());
                            if !ok { break End::TooSlow; }
                        }
                        Some(Control::Orders(rx)) => self.orders = Some(rx),
                    },
                    order = next_order(&mut self.orders) => match order {
                        None => break End::Disconnect,
                        Some(order) => if !self.forward_order(order) { break End::TooSlow },
                    },
                    delivery = next_delivery(&mut self.subscription) => match delivery {
                        None => break End::Disconnect,
                        Some(delivery) => if !self.deliver(delivery) { break End::TooSlow },
                    },
                }
            }
        };
        self.finish(end, control).await;
    }

    async fn finish(mut self, end: End, mut control: mpsc::UnboundedReceiver<Control>) {
        let state = self.conn.state.clone();
        self.conn.closing.store(true, Ordering::Release);
        self.subscription = None;
        let rooms: Vec<String> = self.rooms.iter().map(|r| r.to_string()).collect();
        state.join_rooms(rooms.iter().map(String::as_str), -1);
        if let Some(id) = self.conn.agent_id.lock().take() {
            state.orchestrator().disconnected(&id, "disconnected");
        }
        if matches!(end, End::Gone) {
            return;
        }
        if matches!(end, End::TooSlow) {
            state
                .counters()
                .slow_disconnects
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(sid = %self.socket.id, "socket.io client too slow: disconnecting");
        }
        // A full queue takes no DISCONNECT packet: try while it drains; if it never does, the
        // Engine.IO heartbeat (which cannot be queued either) closes the socket.
        let deadline = tokio::time::Instant::now() + PING_INTERVAL + PING_TIMEOUT;
        loop {
            match self.socket.clone().disconnect() {
                Err(SocketError::InternalChannelFull) => {}
                Ok(()) | Err(_) => return,
            }
            tokio::select! {
                message = control.recv() => if matches!(message, None | Some(Control::Gone)) { return },
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
                () = tokio::time::sleep_until(deadline) => return,
            }
        }
    }

    /// Emits one event; `false` when the socket's queue is full.
    fn emit(&self, name: &str, payload: &impl serde::Serialize) -> bool {
        match self.socket.emit(name, payload) {
            Ok(()) => {
                self.conn.state.counters().frames_out.add(1);
                true
            }
            Err(SendError::Socket(SocketError::InternalChannelFull)) => false,
            // Closed: the disconnect handler ends the task. An event that does not encode is
            // skipped (the bus only carries valid JSON, so this does not happen).
            Err(_) => true,
        }
    }

    fn send_event(&self, event: &event_bus::Event) -> bool {
        let Ok(envelope) = serde_json::from_slice::<&serde_json::value::RawValue>(event.json())
        else {
            return true;
        };
        let kind = event.kind().as_str();
        let name = if RESERVED_NAMES.contains(&kind) {
            "event"
        } else {
            kind
        };
        let sent = self.emit(name, &envelope);
        if sent {
            self.conn.state.telemetry().frames_out(event.room(), 1);
        }
        sent
    }

    fn deliver(&mut self, delivery: Delivery) -> bool {
        match delivery {
            Delivery::Event(event) => self.send_event(&event),
            Delivery::Lagged(lag) => {
                let Some(subscription) = &self.subscription else {
                    return true;
                };
                let bus = self.conn.state.bus();
                let position = Position {
                    epoch: bus.epoch(),
                    seq: lag.resume_from,
                };
                let missed = usize::try_from(lag.missed).unwrap_or(usize::MAX);
                match bus.since(subscription.criteria(), position) {
                    Ok(replay) if replay.recovered && replay.events.len() >= missed => {
                        replay.events[..missed].iter().all(|e| self.send_event(e))
                    }
                    _ => self.emit(
                        "lagged",
                        &json!({"missed": lag.missed, "resume_from": lag.resume_from}),
                    ),
                }
            }
        }
    }

    fn forward_order(&mut self, order: AgentOrder) -> bool {
        match order {
            AgentOrder::Assign(task) => {
                let payload = task_payload(&task);
                self.conn.tasks.lock().insert(task.id.clone(), task);
                self.emit("assign_task", &payload)
            }
            AgentOrder::Command { command, task_id } => {
                let mut payload = json!({"command": command});
                if let Some(task_id) = task_id {
                    payload["task_id"] = json!(task_id);
                }
                self.emit("command", &payload)
            }
        }
    }

    /// Adds and removes rooms, continuing the subscription from where it stood (no gap, no
    /// duplicate); `false` when the socket is too slow for what had to be sent.
    fn change(&mut self, add: Vec<Room>, remove: Vec<Room>) -> bool {
        let state = self.conn.state.clone();
        let added: Vec<Room> = add
            .into_iter()
            .filter(|r| !self.rooms.contains(r))
            .collect();
        let removed: Vec<Room> = remove
            .into_iter()
            .filter(|r| self.rooms.contains(r))
            .collect();
        if added.is_empty() && removed.is_empty() {
            return true;
        }
        state.join_rooms(added.iter().map(Room::as_str), 1);
        state.join_rooms(removed.iter().map(Room::as_str), -1);
        self.rooms.extend(added);
        for room in &removed {
            self.rooms.remove(room);
        }
        let old = self.subscription.take();
        if self.rooms.is_empty() {
            return true;
        }
        let filter = Filter {
            rooms: self.rooms.iter().cloned().collect(),
            kinds: Vec::new(),
            min_severity: Severity::Info,
        };
        let bus = state.bus();
        let (missed, subscription) = match old {
            None => match bus.subscribe(filter) {
                Ok(sub) => (Vec::new(), sub),
                Err(err) => {
                    tracing::error!(error = %err, "socket.io subscription failed");
                    return true;
                }
            },
            Some(old) => match bus.subscribe_since(filter, old.position()) {
                Ok((replay, sub)) => (replay.events, sub),
                Err(err) => {
                    tracing::error!(error = %err, "socket.io subscription failed");
                    return true;
                }
            },
        };
        self.subscription = Some(subscription);
        missed.iter().all(|event| self.send_event(event))
    }
}

async fn next_order(
    orders: &mut Option<mpsc::UnboundedReceiver<AgentOrder>>,
) -> Option<AgentOrder> {
    match orders {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn next_delivery(subscription: &mut Option<Subscription>) -> Option<Delivery> {
    match subscription {
        Some(sub) => sub.next().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(target: &str) -> sec_scan::ScanTask {
        let mut task = sec_scan::ScanTask::new(sec_scan::TaskKind::PortScan, target);
        task.scan_id = "scan-1".into();
        task
    }

    #[test]
    fn seed_results_become_vigil_results() {
        let task = task("127.0.0.1");
        let tasks = HashMap::from([(task.id.clone(), task.clone())]);
        let seed = json!({
            "scan_id": task.id, "agent_id": "scanner_1", "target": "ignored", "scan_type": "port_scan",
            "status": "success",
            "findings": [
                {"type": "open_port", "port": 22, "status": "open", "risk": "medium"},
                {"type": "port_status", "port": 23, "status": "closed"},
            ],
            "threats_detected": [], "duration_seconds": 0.5, "timestamp": "2026-11-21T10:00:00.123456",
        });
        let (result, skipped) = parse_result(seed, &tasks).unwrap();
        assert_eq!(skipped, 1);
        assert_eq!(result.task_id, task.id);
        assert_eq!(result.scan_id, "scan-1");
        assert_eq!(result.target, "127.0.0.1");
        assert_eq!(result.findings.len(), 1);
        assert_eq!(result.findings[0].port, Some(22));
        assert_eq!(result.status, sec_scan::TaskStatus::Success);
    }

    #[test]
    fn seed_results_are_refused_when_they_cannot_be_stored_faithfully() {
        let named = task("scanme.example");
        let tasks = HashMap::from([(named.id.clone(), named.clone())]);
        let no_addr = json!({"scan_id": named.id, "status": "success",
                             "findings": [{"type": "open_port", "port": 22}]});
        assert_eq!(parse_result(no_addr, &tasks).unwrap_err().0, "bad_result");
        let seed_threat = json!({"scan_id": named.id, "status": "success",
                                 "threats_detected": [{"threat_id": "x", "name": "X", "severity": "critical", "remediation": "r"}]});
        assert_eq!(
            parse_result(seed_threat, &tasks).unwrap_err().0,
            "bad_result"
        );
        let stranger = json!({"scan_id": "not-a-task", "status": "success"});
        assert_eq!(
            parse_result(stranger, &tasks).unwrap_err().0,
            "not_your_task"
        );
        let no_status = json!({"scan_id": named.id});
        assert_eq!(parse_result(no_status, &tasks).unwrap_err().0, "bad_result");
    }

    #[test]
    fn tasks_carry_the_seed_names() {
        let task = task("127.0.0.1").with_ports("22,80");
        let payload = task_payload(&task);
        assert_eq!(payload["type"], "port_scan");
        assert_eq!(payload["kind"], "port_scan");
        assert_eq!(payload["ports"], json!([22, 80]));
        assert_eq!(payload["ports_spec"], "22,80");
        let default = task_payload(&self::task("127.0.0.1"));
        assert_eq!(
            default["ports"].as_array().map(Vec::len),
            Some(100),
            "the kind's default list"
        );
        assert_eq!(default["ports_spec"], Value::Null);
        let all = task_payload(&self::task("127.0.0.1").with_ports("all"));
        assert_eq!(all["ports"], Value::Null);
        assert_eq!(all["ports_spec"], "all");
    }
}
