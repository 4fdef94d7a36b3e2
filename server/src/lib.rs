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
//! | `GET /dashboard` | anyone (signs in with a token) | the live dashboard page; its assets under `/dashboard/assets/…`, Leaflet (embedded, or `--leaflet-dir`) under `/dashboard/vendor/leaflet/…` |
//! | `GET /api/dashboard/config` | viewer | the map settings the page needs (tile URL, Leaflet source, embed key) |
//! | `GET /health` | anyone | liveness with the seed dashboard's fields |
//! | `GET /livez`, `GET /readyz` | anyone | process up; ready (503 while shutting down) |
//! | `GET /stats` | viewer | event metrics in the seed dashboard's shape |
//! | `GET /api/websocket/status` | viewer | connections and members per room |
//! | `GET /metrics` | viewer | Prometheus/OpenMetrics text: HTTP latency by route, WebSocket connections, frames by room, queued bytes, disconnects by reason, events by room and severity |
//! | `POST /api/session` | anyone with a token | trades a token for an HttpOnly, SameSite=Strict cookie |
//! | `GET`, `DELETE /api/session` | session | who am I; sign out |
//! | `GET`, `POST /api/tokens`; `DELETE /api/tokens/{id}` | admin | list, mint (the secret is in that answer only) and revoke tokens |
//! | `GET /api/events` | viewer | history after `since` (and `epoch`), from readable rooms |
//! | `POST /api/events` | operator | publish an event (room rules apply) |
//! | `POST /api/scans` (seed alias `POST /api/scan`) | operator | schedule a scan: `{targets, scan_types, ports, priority, retries}`; every target is checked against the server's scope first |
//! | `GET /api/scans`, `GET /api/scans/{id}` | viewer | scans with their tasks; one scan with its stored results |
//! | `DELETE /api/scans/{id}` | operator | cancel what has not finished |
//! | `GET /api/agents` | viewer | agents, their capabilities and load |
//! | `POST /api/agents/{id}/command` | admin | `{command: stop\|cancel\|health_check, task_id?}` |
//! | `GET /api/alerts` | viewer | raised alerts, newest first (one per scan, target and signature) |
//! | `GET /api/streetview` | viewer | Google Maps Street View link; with a key, the free metadata and a Static preview URL |
//! | `GET /api/streetview/image` | viewer | the Static API image, fetched by the server so the key stays here |
//! | `GET /api/imagery` | viewer | Mapillary and Panoramax images near a point, nearest first, with viewer links |
//! | `POST /v1/geolocate` | any role; token also as `?key=` | Ichnaea/Google geolocation: gzip bodies, per-entry validation, Google-shaped errors, the IP fallback (`considerIp`, `fallback: "ipf"`) from an imported GeoIP database (the `geolocate` module's docs) |
//! | `POST /v2/geosubmit` | operator, admin or agent; `?key=` too | Ichnaea observations; accepted ones refine later answers |
//! | `POST /api/locate/wifi`, `POST /api/locate/hybrid` | any role | the seed's `{bssids}` / `{bssids, cell_towers}` lookups and answer shape |
//! | `GET /api/openapi.json` | anyone | the OpenAPI 3.1 document of these routes |
//! | `GET /ws` | token or session | the WebSocket protocol below |
//! | `GET`, `POST /socket.io/` | token in the Socket.IO `auth` payload | Socket.IO v5 for python-socketio agents and `io()` dashboards: `join_room`/`leave_room`, events under their kind name, agents' `register_agent`/`heartbeat`/`scan_result` (the `socketio` module's docs) |
//!
//! # Security defaults
//!
//! - Every caller authenticates: `Authorization: Bearer vgl_…`, a session cookie, or an `auth`
//!   message on `/ws` (whose upgrade also takes the first two). A token minted by another
//!   process (`vigil token create`) works at once: an unknown token is looked up in the
//!   database before it is refused. Revoking a token closes every `/ws` and Socket.IO
//!   connection it opened within two seconds (4001 `revoked`), ends its sessions, and sends an
//!   agent's running tasks back to the queue. A token in a query string (`?token=`) is refused everywhere; the one
//!   exception is `?key=` on `/v1/geolocate` and `/v2/geosubmit`, because Ichnaea clients (microG,
//!   NeoStumbler) can only put their API key in the URL. The server never logs query strings.
//! - Tokens carry a role: `viewer` < `operator` < `admin`, and `agent`. Rooms say which roles may
//!   subscribe and publish: `admin` is admin-only; only operators and admins publish to `chat`.
//! - Browser requests must come from the server's own origin or a configured one.
//! - Bodies and WebSocket messages are capped (1 MiB, 64 KiB); every inbound WebSocket frame
//!   (text, binary, ping) counts against the rate limit, before and after `auth` (close 4029);
//!   each client has a bounded outbound queue and is closed with 4008 when it stops reading, so
//!   it never slows anyone else; unauthenticated sockets are closed after 10 s (4001).
//! - Sockets that have not authenticated wait in a budget of their own (1 024, 64 per source
//!   address), apart from the 10 000 connection slots; a client with credentials on the upgrade
//!   is never counted, and one that authenticates with its first message still gets in (the
//!   oldest anonymous socket is closed with 4001 to make room). See `ServerConfig`.
//! - A request head must arrive whole within 10 s (else the connection is closed), an idle
//!   keep-alive connection is closed after 5 s, a head is at most 16 KiB and 100 fields (431).
//! - An agent id belongs to the token that registered it; a result is accepted only from the
//!   agent holding the task, and only when every finding and threat is on the task's target
//!   (for a host name, an address the server resolved and pinned when it scheduled the task).
//!   No client publishes to `alerts` or `scans`: alerts come only from validated results. A
//!   chat message's sender (`source`, and `data.user`) is the token's label, set by the server.
//! - Paid and rate-limited upstreams (Static Street View, Mapillary, Panoramax, WiGLE,
//!   OpenCellID) and geosubmits have a budget per token: 429 with `Retry-After` when it is spent.
//! - Metric labels come from fixed sets only.
//! - Responses carry `Content-Security-Policy: default-src 'self'`, scripts and styles from the
//!   server's own origin only (Leaflet is embedded), plus exactly the configured tile, imagery
//!   and embed hosts (no `unsafe-inline`, no CDN), `X-Content-Type-Options`,
//!   `Referrer-Policy: no-referrer` and `X-Frame-Options: DENY`.
//!
//! # The `/ws` protocol
//!
//! JSON text frames, each an object with a `type`.
//!
//! | client sends | fields | answer |
//! |---|---|---|
//! | `auth` | `token` (not needed when the upgrade carried `Authorization: Bearer` or the session cookie: `welcome` comes at once) | `welcome`, or close 4001 |
//! | `subscribe` | `rooms`, optional `kinds`, `min_severity`, `since {epoch, seq}`, `id` | replayed `event`s and `recovered` when `since` was given, then `ack` |
//! | `unsubscribe` | `rooms`, `id` | `ack` |
//! | `publish` | `kind`, `room`, optional `severity`, `data`, `id` | `ack` with the event's `seq` |
//! | `ping` | `id` | `ack` |
//! | `register_agent` (agent role) | `capabilities`, `max_concurrent`, optional `agent_id`, `name` | `registration_ack` with `agent_id`, `heartbeat_seconds` |
//! | `heartbeat` (agents) | optional `running` | nothing; renews the lease on its tasks |
//! | `task_progress` (agents) | `task_id`, `progress` (0..1), optional `message` | nothing, or `error` |
//! | `scan_result` (agents) | `result`: `{scan_id, task_id, agent_id, target, kind, status, findings, threats, duration_seconds, time, attempts, error}` | `ack` (`of: "scan_result"`, `id`: the task) once stored, or `error`; resend until acknowledged, it is stored once |
//!
//! | server sends | fields |
//! |---|---|
//! | `welcome` | `role`, `epoch`, `head`, `rooms` (with `subscribe`/`publish` rights), `max_message_bytes` |
//! | `event` | `event`: the envelope `{seq, epoch, id, kind, room, severity, time, source?, data}` |
//! | `recovered` | `recovered` (every missed event was replayed?), `epoch`, `head`, `replayed`, `id` |
//! | `lagged` | `missed`, `resume_from`: events lost that history no longer holds |
//! | `ack` | `of` (the request's type), `id`, `seq` for a publish |
//! | `error` | `code`, `message`, `id`; the connection stays open |
//! | `assign_task` (to agents) | `task`: `{id, scan_id, kind, target, ports, parameters, priority, retries}` |
//! | `command` (to agents) | `command` (`stop`, `cancel`, `health_check`), `task_id` |
//!
//! `subscribe` adds rooms to the connection's one subscription; `kinds` and `min_severity`, when
//! given, replace the connection's filter. Events arrive in strictly increasing `seq`, except that
//! history replayed for a room added later may be older than events already delivered. Keep the
//! last `epoch` and `seq` you saw and send them as `since` after a reconnect: you get what you
//! missed with `recovered: true`, or `recovered: false` when the server's history no longer
//! reaches back (or the server restarted: the epoch changed).
//!
//! Agents hold their tasks while they heartbeat (every `heartbeat_seconds`); when an agent
//! disconnects or goes silent past its lease, its tasks go back to the queue until their retries
//! are spent. A result is accepted only from the agent holding the task.
//!
//! Close codes: 1001 shutting down, 1009 message too big, 1013 no connection slot free (try
//! again later), 4001 unauthenticated (reason `revoked` when the token was revoked), 4008 too
//! slow, 4029 rate limited.
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
//! # Several nodes
//!
//! With [`ServerConfig::database_url`] and [`ServerConfig::redis_url`] (`vigil serve
//! --database-url postgres://… --redis-url redis://…`; both or neither) a node joins a cluster.
//! Nothing of the protocol changes for clients; any node answers any request.
//!
//! | what | one node (default) | a cluster |
//! |---|---|---|
//! | tokens, sessions, agent ids, scans, tasks, results, alerts, event log | SQLite in the data directory ([`store::Store::Sqlite`]) | one PostgreSQL database ([`store::PgStore`]), migrated at start under an advisory lock |
//! | the event bus | in process | Redis ([`event_bus::RedisBroker`]): one `seq` and epoch for the cluster; every node delivers every event in one order and resumes `since` |
//! | the task queue | in memory, rebuilt from SQLite at start | PostgreSQL rows claimed with `FOR UPDATE SKIP LOCKED` by the node holding a free agent; leases, a reaper on every node, attempts as fencing tokens (the `orchestrator::shared` module) |
//! | `/v2/geosubmit` observations | the overlay in `<data_dir>/geodb` | an append-only log in PostgreSQL; each node's overlay is a cache of it, applied in order and replayed by a node that starts with an empty one (the `geolocate` module's docs) |
//! | revocations, agent commands | local | also told to every node at once on the Redis control channel ([`cluster`]) |
//! | `/api/agents`, `/api/scans`, `/stats`, `/api/websocket/status` | this node | the cluster (agents connected to any node; scans and task counts from the database; connections summed over the nodes' reports) |
//! | first start | an admin token is minted on an empty database | the same, exactly once for the cluster |
//!
//! Decisions worth knowing: rate limits, connection caps and per-token budgets stay per node;
//! `/api/agents` lists the agents connected now (one node alone also lists those it has seen);
//! each node's in-process agent has its own id (`local-<node id>`); Socket.IO needs sticky
//! sessions for its polling transport only (each socket holds its own bus subscription, so no
//! Socket.IO adapter is needed). `/readyz` answers 503 while a node is cut off from Redis, so a
//! load balancer routes around it. README's "Running several nodes" gives a working HAProxy
//! configuration and what happens when Redis or PostgreSQL restarts.
//!
//! # Demo mode
//!
//! With [`ServerConfig::demo`] (`vigil serve --demo`), [`serve`] also starts three deliberately
//! weak services bound to `127.0.0.1` on ephemeral ports: an SSH-like banner whose key exchange
//! offers `diffie-hellman-group1-sha1`, an HTTP server without security headers, and a TLS server
//! whose self-signed certificate expired ten days ago (made at start). `127.0.0.1` joins the scan
//! scope in demo mode only ([`ServerConfig::scan_scope`]). Scans of the three go through the
//! orchestrator (requested by `demo`) at start and every five minutes, so the in-process agent
//! raises real `threat_detected` and `critical_alert` events. Alongside, a simulated activity with
//! the seed dashboard's mix (agent executions with quality scores, quality assessments,
//! opportunities, synthesis phases, system health, chat, and `location_resolved` answers of the
//! real geo-locate estimator on made-up access points) is published at one event every 1.5 s,
//! each with `source: "demo"` and `demo: true` in its data. A [`DemoStarted`] event
//! (`demo_started`, room `monitoring`) says where the services listen. Shutdown cancels the
//! unfinished demo scans, stops the demo's tasks and closes its listeners.
//!
//! # Layout
//!
//! The modules are layers; each uses only its own layer and those below it, and no two modules
//! import each other (`tests/layers.rs` checks both):
//!
//! | layer | modules | what |
//! |---|---|---|
//! | top | `app`, `openapi` | [`AppState`] (the node plus the features' services), the router ([`app`]), [`serve`], the OpenAPI document |
//! | features | `scans`, `geolocate` (and `observations`, its tailer of the shared geosubmit log), `imagery`, `dashboard`, `telemetry`, `tokens`, `demo` | the routes of each feature; `geolocate` and `imagery` hold their own services, reached through axum's `FromRef` |
//! | transport | [`http`], [`protocol`], `ws`, `socketio`, `limit`, `connection` | extractors, origin checks, sessions; the `/ws` and Socket.IO protocols; rate limits; head timeouts and draining |
//! | node | [`Node`], [`auth`], [`orchestrator`], [`cluster`], budgets, admission, trusted proxies, metrics | what one server process holds whatever its routes |
//! | store | [`store`] | SQLite or PostgreSQL behind one async [`store::Store`], and the event log writer |
//! | base | `config`, `error` | plain configuration data ([`ServerConfig`] and the feature settings it carries), errors |
//!
//! Data flows up: a request enters through a transport, a feature reads the node, the node reads
//! and writes the store. Configuration is plain data; the features read their part of it.
//!
//! # Example
//!
//! ```no_run
//! use vigil_server::{AppState, ServerConfig, serve};
//!
//! # async fn run() -> Result<(), vigil_server::Error> {
//! let (state, first) = AppState::open(ServerConfig::default()).await?;
//! if let Some(first) = first {
//!     println!("admin token (shown once): {}", first.admin_token);
//! }
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await.expect("bind");
//! serve(listener, state, async { tokio::signal::ctrl_c().await.ok(); }).await?;
//! # Ok(()) }
//! ```

mod app;
mod config;
mod dashboard;
mod demo;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod geolocate;
mod imagery;
mod node;
mod observations;
mod openapi;
mod scans;
pub mod store;
mod telemetry;
mod tokens;
mod transport;

pub use app::{AppState, app, serve};
pub use config::{
    Budget, DashboardConfig, GeoConfig, ImageryConfig, LEAFLET_VERSION, LeafletSource,
    ServerConfig, redact_url,
};
pub use demo::{DemoService, DemoStarted};
pub use error::{ApiError, Error, Result};
pub use node::{FirstStart, Node, WsCounters, auth, cluster, orchestrator};
pub use transport::{http, protocol};
