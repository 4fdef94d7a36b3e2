//! The top of the server: [`AppState`] (the node and the features' services), the router that
//! puts every route together ([`app`]) and [`serve`], which runs it with the node's background
//! work.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::http::{HeaderName, HeaderValue, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::config::ServerConfig;
use crate::error::{ApiError, Result};
use crate::geolocate::Geo;
use crate::imagery::Imagery;
use crate::node::cluster::Cluster;
use crate::node::{FirstStart, Node, local_agent};
use crate::store::{PgStore, eventlog};
use crate::transport::{connection, http, socketio, ws};
use crate::{dashboard, demo, geolocate, imagery, openapi, scans, telemetry, tokens};

/// Everything the routes share: the [`Node`] (bus, store, auth, orchestration, cluster) and the
/// services of the features that need their own (geolocation, street-level imagery). Cheap to
/// clone. It dereferences to the node, so `state.bus()` and `state.orchestrator()` read as
/// before.
#[derive(Clone, Debug)]
pub struct AppState {
    node: Node,
    geo: Arc<Geo>,
    imagery: Arc<Imagery>,
}

impl AppState {
    /// Opens the data directory and builds the state. On a database with no token at all, an
    /// admin token is minted and returned so the caller can show it once.
    ///
    /// With [`ServerConfig::database_url`] and [`ServerConfig::redis_url`] the node joins a
    /// cluster instead: the state is in the shared PostgreSQL database (migrated at start), the
    /// bus is on Redis, and only the first node to start on an empty database mints the admin
    /// token.
    pub async fn open(config: ServerConfig) -> Result<(AppState, Option<FirstStart>)> {
        let (node, first) = Node::open(config).await?;
        Ok((
            Features::open(node.config(), node.store().shared())?.with(node),
            first,
        ))
    }

    /// A state whose database lives in memory, for tests; returns the first admin token too.
    pub async fn in_memory(config: ServerConfig) -> Result<(AppState, FirstStart)> {
        let (node, first) = Node::in_memory(config).await?;
        Ok((
            Features::open(node.config(), node.store().shared())?.with(node),
            first,
        ))
    }

    /// The node under the routes.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The geolocation database and locator.
    pub fn geo(&self) -> &Geo {
        &self.geo
    }

    /// Street View and open imagery clients.
    pub fn imagery(&self) -> &Imagery {
        &self.imagery
    }
}

impl std::ops::Deref for AppState {
    type Target = Node;

    fn deref(&self) -> &Node {
        &self.node
    }
}

/// The features' services, built from the node's configuration once its data directory exists.
struct Features {
    geo: Geo,
    imagery: Imagery,
}

impl Features {
    fn open(config: &ServerConfig, shared: Option<&PgStore>) -> Result<Features> {
        Ok(Features {
            geo: Geo::new(&config.data_dir, &config.geo, shared)?,
            imagery: Imagery::new(&config.imagery)?,
        })
    }

    fn with(self, node: Node) -> AppState {
        AppState {
            node,
            geo: Arc::new(self.geo),
            imagery: Arc::new(self.imagery),
        }
    }
}

impl FromRef<AppState> for Node {
    fn from_ref(state: &AppState) -> Node {
        state.node.clone()
    }
}

impl FromRef<AppState> for Arc<Geo> {
    fn from_ref(state: &AppState) -> Arc<Geo> {
        Arc::clone(&state.geo)
    }
}

impl FromRef<AppState> for Arc<Imagery> {
    fn from_ref(state: &AppState) -> Arc<Imagery> {
        Arc::clone(&state.imagery)
    }
}

/// The whole HTTP and WebSocket surface, ready to serve or to drive in tests.
pub fn app(state: AppState) -> Router {
    let body_limit = state.config().max_body_bytes;
    let csp = HeaderValue::from_str(&dashboard::content_security_policy(state.config()))
        .expect("the policy is built from filtered origins: visible ASCII only");
    let header = |name: &'static str, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        )
    };
    Router::new()
        .route("/", get(|| async { Redirect::temporary("/dashboard") }))
        .route("/health", get(http::health))
        .route("/livez", get(http::livez))
        .route("/readyz", get(http::readyz))
        .route("/stats", get(http::stats))
        .route("/metrics", get(telemetry::metrics))
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
        .route("/api/tokens", get(tokens::list).post(tokens::create))
        .route("/api/tokens/{id}", axum::routing::delete(tokens::revoke))
        .route("/api/scans", get(scans::list).post(scans::create))
        .route("/api/scan", axum::routing::post(scans::create_seed_alias))
        .route("/api/openapi.json", get(openapi::document))
        .route("/api/scans/{id}", get(scans::show).delete(scans::cancel))
        .route("/api/agents", get(scans::agents))
        .route(
            "/api/agents/{id}/command",
            axum::routing::post(scans::command),
        )
        .route("/api/alerts", get(scans::alerts))
        .route("/api/streetview", get(imagery::streetview))
        .route("/api/streetview/image", get(imagery::streetview_image))
        .route("/api/imagery", get(imagery::imagery))
        .route("/v1/geolocate", axum::routing::post(geolocate::geolocate))
        .route("/v2/geosubmit", axum::routing::post(geolocate::geosubmit))
        .route(
            "/api/locate/wifi",
            axum::routing::post(geolocate::locate_wifi),
        )
        .route(
            "/api/locate/hybrid",
            axum::routing::post(geolocate::locate_hybrid),
        )
        .route("/ws", get(ws::upgrade))
        .route_service("/socket.io/", socketio::service(&state.node))
        .merge(dashboard::routes())
        .route_layer(middleware::from_fn_with_state(
            state.node.clone(),
            telemetry::track,
        ))
        .fallback(http::not_found)
        .layer(middleware::from_fn(refuse_query_tokens))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(SetResponseHeaderLayer::if_not_present(
            axum::http::header::CONTENT_SECURITY_POLICY,
            csp,
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
///
/// Connections are served by hyper's HTTP/1 builder with the request-head timeout, keep-alive
/// idle timeout and head size limits of [`ServerConfig`]; requests carry the peer address as
/// axum's `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let background = CancellationToken::new();
    let log = tokio::spawn(eventlog::run(
        state.bus().clone(),
        state.store().clone(),
        state.config().event_log_retention,
        background.clone(),
    ));
    let reload = tokio::spawn(reload_tokens(state.clone(), background.clone()));
    let dispatcher = state.orchestrator().is_shared().then(|| {
        let orchestrator = std::sync::Arc::clone(state.orchestrator());
        tokio::spawn(orchestrator.run_shared(background.clone()))
    });
    let control = state.cluster().cloned().map(|cluster| {
        let (state, stop) = (state.clone(), background.clone());
        tokio::spawn(async move {
            tokio::join!(
                cluster.listen(state.node(), stop.clone()),
                report_load(&cluster, &state, &stop)
            );
            cluster.forget_load().await;
        })
    });
    // A cluster: this node's overlay follows the shared geosubmit log.
    let observations = state
        .geo()
        .shared_overlay()
        .map(|shared| tokio::spawn(Arc::clone(shared).run(background.clone())));
    let leases = tokio::spawn(every(Duration::from_secs(1), background.clone(), {
        let state = state.clone();
        move || state.orchestrator().tick()
    }));
    // Demo mode: weak loopback services, scans of them and the simulated activity. Before the
    // in-process agent, so no scan an earlier demo left unfinished is handed to it.
    let demo = if state.config().demo {
        match demo::Demo::start(state.node.clone()).await {
            Ok(demo) => Some(demo),
            Err(err) => {
                background.cancel();
                return Err(err);
            }
        }
    } else {
        None
    };
    let local = state.config().local_agent.map(|concurrency| {
        let orchestrator = std::sync::Arc::clone(state.orchestrator());
        let runner = sec_scan::LocalRunner::new(
            orchestrator.scope().cloned().unwrap_or_default(),
            std::sync::Arc::new(sec_scan::SignatureSet::builtin()),
            sec_scan::ScanOptions::default(),
            std::sync::Arc::new(sec_scan::SystemResolver),
        );
        tokio::spawn(local_agent::run(
            orchestrator,
            std::sync::Arc::new(runner),
            concurrency,
            background.child_token(),
        ))
    });
    let prune = tokio::spawn(every(BUDGET_PRUNE, background.clone(), {
        let state = state.clone();
        move || {
            state.imagery().prune_budgets();
            state.geo().prune_budgets();
        }
    }));
    let connections = connection::accept(listener, app(state.clone()), &state.node, shutdown).await;
    // Readiness goes to 503, every connection is told to close (HTTP ones after the request in
    // flight, WebSocket ones with 1001), and both get `drain_timeout` together.
    tracing::info!("shutting down: draining connections");
    state.begin_shutdown();
    state.tracker().close();
    let drained = tokio::time::timeout(state.config().drain_timeout, async {
        connections.wait().await;
        state.tracker().wait().await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = state.connections(),
            http_connections = connections.open(),
            "drain timeout: dropping the remaining connections"
        );
        connections.force_close();
    }
    if let Some(demo) = demo {
        demo.stop().await;
    }
    background.cancel();
    if let Some(local) = local {
        let _ = local.await;
    }
    let _ = leases.await;
    let _ = prune.await;
    if let Some(observations) = observations {
        let _ = observations.await;
    }
    let _ = log.await;
    let _ = reload.await;
    if let Some(control) = control {
        let _ = control.await;
    }
    if let Some(dispatcher) = dispatcher {
        let _ = dispatcher.await;
    }
    Ok(())
}

/// Reports this node's load to the cluster every second until `stop`.
async fn report_load(cluster: &Cluster, state: &Node, stop: &CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {
                if let Err(err) = cluster.report_load(http::node_load(state)).await {
                    tracing::debug!(error = %err, "reporting load failed");
                }
            }
        }
    }
}

/// How often the per-token budgets forget tokens whose bucket is full again: a token that has
/// not spent anything lately (or was revoked) drops out, and its next request starts from the
/// full bucket it would have had anyway.
const BUDGET_PRUNE: Duration = Duration::from_secs(60);

/// Runs `f` every `period` until `stop`.
async fn every(period: Duration, stop: CancellationToken, mut f: impl FnMut()) {
    let mut tick = tokio::time::interval(period);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => f(),
        }
    }
}

/// Tokens minted or revoked by `vigil token` in another process take effect within this period.
const TOKEN_RELOAD: Duration = Duration::from_secs(2);

async fn reload_tokens(state: AppState, stop: CancellationToken) {
    let mut tick = tokio::time::interval(TOKEN_RELOAD);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {
                if let Err(err) = state.auth().reload().await {
                    tracing::warn!(error = %err, "reloading tokens failed");
                }
            }
        }
    }
}
