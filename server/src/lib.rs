//! The vigil reference server: where agents, dashboards and scripts meet the event bus.
//!
//! The router is a plain function, [`app`], so tests drive it in process; [`serve`] runs it on a
//! listener with graceful shutdown. The `vigil serve` command and the `vigil-server` binary are
//! thin fronts over both.
//!
//! # What is here today
//!
//! | route | who | what |
//! |---|---|---|
//! | `GET /health` | anyone | liveness with the seed dashboard's fields |
//! | `GET /livez`, `GET /readyz` | anyone | process up; ready (503 while shutting down) |
//! | `GET /stats` | viewer | event metrics in the seed dashboard's shape |
//! | `GET /api/websocket/status` | viewer | connections and members per room |
//! | `POST /api/session` | anyone with a token | trades a token for an HttpOnly, SameSite=Strict cookie |
//! | `GET`, `DELETE /api/session` | session | who am I; sign out |
//! | `GET /api/events` | viewer | history after `since` (and `epoch`), from readable rooms |
//! | `POST /api/events` | operator | publish an event (room rules apply) |
//! | `GET /ws` | token or session | the WebSocket protocol below |
//!
//! Scan orchestration, agents, Socket.IO, geolocation, imagery, `/metrics` and the dashboard
//! page are not built yet.
//!
//! # Security defaults
//!
//! - Every caller authenticates: `Authorization: Bearer vgl_…`, a session cookie, or an `auth`
//!   message on `/ws`. A token in a query string (`?token=`) is refused everywhere.
//! - Tokens carry a role: `viewer` < `operator` < `admin`, and `agent`. Rooms say which roles may
//!   subscribe and publish: `admin` is admin-only; only operators and admins publish to `chat`.
//! - Browser requests must come from the server's own origin or a configured one.
//! - Bodies and WebSocket messages are capped (1 MiB, 64 KiB); inbound WebSocket messages are
//!   rate limited (close 4029); each client has a bounded outbound queue and is closed with 4008
//!   when it stops reading, so it never slows anyone else; unauthenticated sockets are closed
//!   after 10 s (4001).
//! - Responses carry `Content-Security-Policy: default-src 'self'`, `X-Content-Type-Options`,
//!   `Referrer-Policy: no-referrer` and `X-Frame-Options: DENY`.
//!
//! # The `/ws` protocol
//!
//! JSON text frames, each an object with a `type`.
//!
//! | client sends | fields | answer |
//! |---|---|---|
//! | `auth` | `token` | `welcome`, or close 4001 |
//! | `subscribe` | `rooms`, optional `kinds`, `min_severity`, `since {epoch, seq}`, `id` | replayed `event`s and `recovered` when `since` was given, then `ack` |
//! | `unsubscribe` | `rooms`, `id` | `ack` |
//! | `publish` | `kind`, `room`, optional `severity`, `data`, `id` | `ack` with the event's `seq` |
//! | `ping` | `id` | `ack` |
//!
//! | server sends | fields |
//! |---|---|
//! | `welcome` | `role`, `epoch`, `head`, `rooms` (with `subscribe`/`publish` rights), `max_message_bytes` |
//! | `event` | `event`: the envelope `{seq, epoch, id, kind, room, severity, time, source?, data}` |
//! | `recovered` | `recovered` (every missed event was replayed?), `epoch`, `head`, `replayed`, `id` |
//! | `lagged` | `missed`, `resume_from`: events lost that history no longer holds |
//! | `ack` | `of` (the request's type), `id`, `seq` for a publish |
//! | `error` | `code`, `message`, `id`; the connection stays open |
//!
//! `subscribe` adds rooms to the connection's one subscription; `kinds` and `min_severity`, when
//! given, replace the connection's filter. Events arrive in strictly increasing `seq`, except that
//! history replayed for a room added later may be older than events already delivered. Keep the
//! last `epoch` and `seq` you saw and send them as `since` after a reconnect: you get what you
//! missed with `recovered: true`, or `recovered: false` when the server's history no longer
//! reaches back (or the server restarted: the epoch changed).
//!
//! Close codes: 1001 shutting down, 1009 message too big, 4001 unauthenticated, 4008 too slow,
//! 4029 rate limited.
//!
//! An example session (`>` client, `<` server):
//!
//! ```text
//! > {"type":"auth","token":"vgl_…"}
//! < {"type":"welcome","role":"operator","epoch":"5f0c9e2a7b1d4c38","head":41,"rooms":[{"name":"admin","subscribe":false,"publish":false},{"name":"alerts","subscribe":true,"publish":true},…],"max_message_bytes":65536}
//! > {"type":"subscribe","id":"s1","rooms":["scans","alerts"],"min_severity":"warning","since":{"epoch":"5f0c9e2a7b1d4c38","seq":39}}
//! < {"type":"event","event":{"seq":40,"epoch":"5f0c9e2a7b1d4c38","id":"…","kind":"scan_completed","room":"scans","severity":"warning","time":"2026-11-21T10:00:00.000000Z","data":{…}}}
//! < {"type":"recovered","id":"s1","recovered":true,"epoch":"5f0c9e2a7b1d4c38","head":41,"replayed":1}
//! < {"type":"ack","id":"s1","of":"subscribe"}
//! > {"type":"publish","id":"p1","kind":"chat_message","room":"chat","data":{"message":"on it"}}
//! < {"type":"ack","id":"p1","of":"publish","seq":42}
//! > {"type":"subscribe","rooms":["admin"]}
//! < {"type":"error","code":"forbidden","message":"role operator may not subscribe to \"admin\""}
//! ```
//!
//! # Example
//!
//! ```no_run
//! use vigil_server::{AppState, ServerConfig, serve};
//!
//! # async fn run() -> Result<(), vigil_server::Error> {
//! let (state, first) = AppState::open(ServerConfig::default())?;
//! if let Some(first) = first {
//!     println!("admin token (shown once): {}", first.admin_token);
//! }
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await.expect("bind");
//! serve(listener, state, async { tokio::signal::ctrl_c().await.ok(); }).await?;
//! # Ok(()) }
//! ```

pub mod auth;
mod config;
mod error;
mod eventlog;
pub mod http;
pub mod protocol;
mod state;
pub mod store;
mod ws;

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;
use tower_http::set_header::SetResponseHeaderLayer;

pub use config::ServerConfig;
pub use error::{ApiError, Error, Result};
pub use state::{AppState, FirstStart, WsCounters};

/// The whole HTTP and WebSocket surface, ready to serve or to drive in tests.
pub fn app(state: AppState) -> Router {
    let body_limit = state.config().max_body_bytes;
    let header = |name: &'static str, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        )
    };
    Router::new()
        .route("/", get(|| async { Redirect::temporary("/health") }))
        .route("/health", get(http::health))
        .route("/livez", get(http::livez))
        .route("/readyz", get(http::readyz))
        .route("/stats", get(http::stats))
        .route("/api/websocket/status", get(http::websocket_status))
        .route(
            "/api/session",
            get(http::session_info)
                .post(http::create_session)
                .delete(http::end_session),
        )
        .route(
            "/api/events",
            get(http::list_events).post(http::publish_event),
        )
        .route("/ws", get(ws::upgrade))
        .fallback(http::not_found)
        .layer(middleware::from_fn(refuse_query_tokens))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(header(
            "content-security-policy",
            "default-src 'self'; frame-ancestors 'none'; base-uri 'none'",
        ))
        .layer(header("x-content-type-options", "nosniff"))
        .layer(header("referrer-policy", "no-referrer"))
        .layer(header("x-frame-options", "DENY"))
        .with_state(state)
}

async fn refuse_query_tokens(request: Request<axum::body::Body>, next: Next) -> Response {
    if http::query_has_token(request.uri().query()) {
        return ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "token_in_url",
            "tokens are never accepted in a URL: use the Authorization header or a session",
        )
        .into_response();
    }
    next.run(request).await
}

/// Serves `state` on `listener` until `shutdown` resolves, then drains: readiness goes to 503,
/// new connections are refused, WebSocket clients get a 1001 close, in-flight work gets
/// `drain_timeout`, and the event log is flushed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let background = CancellationToken::new();
    let log = tokio::spawn(eventlog::run(state.clone(), background.clone()));
    let reload = tokio::spawn(reload_tokens(state.clone(), background.clone()));
    let drain_state = state.clone();
    let served = axum::serve(listener, app(state.clone()))
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: draining connections");
            drain_state.begin_shutdown();
        })
        .await
        .map_err(|source| Error::Io {
            context: "serving".into(),
            source,
        });
    // Upgraded WebSocket connections are not tracked by axum: wait for them here.
    state.begin_shutdown();
    state.tracker().close();
    if tokio::time::timeout(state.config().drain_timeout, state.tracker().wait())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = state.connections(),
            "drain timeout: dropping the remaining connections"
        );
    }
    background.cancel();
    let _ = log.await;
    let _ = reload.await;
    served
}

/// Tokens minted or revoked by `vigil token` in another process take effect within this period.
const TOKEN_RELOAD: Duration = Duration::from_secs(2);

async fn reload_tokens(state: AppState, stop: CancellationToken) {
    let mut tick = tokio::time::interval(TOKEN_RELOAD);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {
                let auth_state = state.clone();
                if let Err(err) = state.store().run(move |_| auth_state.auth().reload()).await {
                    tracing::warn!(error = %err, "reloading tokens failed");
                }
            }
        }
    }
}
