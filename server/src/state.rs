//! The shared state behind every route and connection.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use event_bus::{Bus, BusConfig, DEFAULT_QUEUE_CAPACITY, RedisBroker, RedisConfig};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admission::Admission;
use crate::auth::Auth;
use crate::cluster::{Cluster, Control};
use crate::config::ServerConfig;
use crate::config::redact_url;
use crate::error::Result;
use crate::geolocate::Geo;
use crate::imagery::Imagery;
use crate::orchestrator::{Orchestrator, OrchestratorConfig};
use crate::store::Store;
use crate::telemetry::Telemetry;

/// Counters of the WebSocket side, for `/health`, `/api/websocket/status` and logs.
#[derive(Debug, Default)]
pub struct WsCounters {
    /// Messages received from clients.
    pub messages_in: AtomicU64,
    /// Frames written to clients (a hot path: spread over cache lines).
    pub frames_out: SpreadCounter,
    /// Clients closed for not reading (4008).
    pub slow_disconnects: AtomicU64,
    /// Clients closed for sending too fast (4029).
    pub rate_limited: AtomicU64,
    /// Upgrades refused (origin, cap, query token).
    pub refused: AtomicU64,
}

/// A counter that every worker thread bumps on a hot path: each thread adds to its own cache line
/// (no line bounces between cores on every frame), and a read sums them.
#[derive(Debug)]
pub struct SpreadCounter {
    shards: Box<[Shard]>,
}

#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard(AtomicU64);

/// Shards per counter; threads beyond that share them.
const SHARDS: usize = 16;

impl Default for SpreadCounter {
    fn default() -> Self {
        SpreadCounter {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
        }
    }
}

impl SpreadCounter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
        }
        let shard = SHARD.with(|s| *s);
        self.shards[shard].0.fetch_add(n, Ordering::Relaxed);
    }

    /// The total.
    pub fn get(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .sum()
    }
}

/// Everything the routes share. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ServerConfig,
    bus: Bus,
    store: Store,
    auth: Auth,
    started: Instant,
    started_at: DateTime<Utc>,
    draining: AtomicBool,
    connections: AtomicUsize,
    room_members: Mutex<BTreeMap<String, usize>>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    counters: WsCounters,
    imagery: Imagery,
    geo: Geo,
    telemetry: Telemetry,
    orchestrator: Arc<Orchestrator>,
    /// Several nodes: the Redis broker under the bus (for readiness) and the control channel.
    shared: Option<Shared>,
    /// `/ws` sockets before their `auth` message.
    ws_admission: Arc<Admission>,
    /// Engine.IO sessions before their Socket.IO `CONNECT`.
    engineio_admission: Arc<Admission>,
}

/// What a node of a cluster holds besides the shared store.
#[derive(Debug)]
struct Shared {
    broker: Arc<RedisBroker>,
    cluster: Arc<Cluster>,
}

/// What [`AppState::open`] found on first start.
#[derive(Debug)]
pub struct FirstStart {
    /// The admin token minted because the database had none; print it once, it is not stored.
    pub admin_token: String,
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
        config.validate()?;
        let store = match &config.database_url {
            Some(url) => Store::connect(url).await?,
            None => Store::open(&config.data_dir)?,
        };
        Self::with_store(config, store).await
    }

    /// A state whose database lives in memory, for tests; returns the first admin token too.
    pub async fn in_memory(config: ServerConfig) -> Result<(AppState, FirstStart)> {
        config.validate()?;
        let (state, first) = Self::with_store(config, Store::open_in_memory()?).await?;
        let first = first.expect("an empty in-memory database always gets a first token");
        Ok((state, first))
    }

    async fn with_store(
        config: ServerConfig,
        store: Store,
    ) -> Result<(AppState, Option<FirstStart>)> {
        let auth = Auth::load(store.clone()).await?;
        let first = auth
            .first_admin()
            .await?
            .map(|admin_token| FirstStart { admin_token });
        let imagery = Imagery::new(&config.imagery)?;
        let geo = Geo::new(&config.data_dir, &config.geo, store.shared())?;
        let (bus, shared) = match &config.redis_url {
            Some(url) => {
                let broker = Arc::new(
                    RedisBroker::connect(
                        RedisConfig::new(url.clone())
                            .prefix(config.cluster_name.clone())
                            .rooms(config.rooms.clone()),
                    )
                    .await?,
                );
                let cluster = Arc::new(Cluster::connect(url, &config.cluster_name).await?);
                tracing::info!(node = cluster.node_id(), redis = %redact_url(url), "joined the cluster");
                let bus = Bus::with_broker(broker.clone(), DEFAULT_QUEUE_CAPACITY);
                (bus, Some(Shared { broker, cluster }))
            }
            None => {
                let bus = BusConfig {
                    rooms: config.rooms.clone(),
                    ..BusConfig::default()
                }
                .build()?;
                (bus, None)
            }
        };
        let scan_scope = config.scan_scope();
        let scope = if scan_scope.is_empty() {
            None
        } else {
            let mut builder = sec_scan::Scope::builder();
            for rule in scan_scope {
                builder = builder.allow(rule);
            }
            Some(
                builder
                    .build()
                    .map_err(|e| crate::Error::Config(format!("scope: {e}")))?,
            )
        };
        let vulns = open_vulns(&config)?;
        let orchestrator = Arc::new(
            Orchestrator::new(
                bus.clone(),
                store.clone(),
                scope,
                Arc::new(sec_scan::SystemResolver),
                OrchestratorConfig {
                    lease: config.agent_lease,
                    max_agents_per_token: config.max_agents_per_token,
                    max_agents: config.max_agents,
                    vulns,
                    cluster: shared.as_ref().map(|s| s.cluster.clone()),
                    ..OrchestratorConfig::default()
                },
            )
            .await?,
        );
        orchestrator.attach();
        let admission = || {
            Admission::new(
                config.max_unauthenticated,
                config.max_unauthenticated_per_source,
            )
        };
        let (ws_admission, engineio_admission) = (admission(), admission());
        let telemetry = Telemetry::new(&config.rooms);
        let state = AppState {
            inner: Arc::new(Inner {
                ws_admission,
                engineio_admission,
                config,
                bus,
                store,
                auth,
                started: Instant::now(),
                started_at: Utc::now(),
                draining: AtomicBool::new(false),
                connections: AtomicUsize::new(0),
                room_members: Mutex::new(BTreeMap::new()),
                shutdown: CancellationToken::new(),
                tracker: TaskTracker::new(),
                counters: WsCounters::default(),
                imagery,
                geo,
                telemetry,
                orchestrator,
                shared,
            }),
        };
        Ok((state, first))
    }

    /// Tells every other node of the cluster that token `id` was revoked, so that they close
    /// its connections at once. One node alone has no one to tell.
    pub async fn announce_revocation(&self, id: &str) {
        if let Some(shared) = &self.inner.shared {
            let told = shared.cluster.announce(Control::Revoked {
                token_id: id.to_owned(),
            });
            if let Err(err) = told.await {
                tracing::warn!(error = %err, token = id, "the other nodes will see the revocation within seconds");
            }
        }
    }

    /// This node's cluster membership, when it has one.
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.inner.shared.as_ref().map(|s| &s.cluster)
    }

    /// Whether this node can serve: not shutting down and, in a cluster, connected to the
    /// bus's Redis (a node cut off from it would show a frozen dashboard).
    pub fn is_ready(&self) -> bool {
        !self.is_draining()
            && self
                .inner
                .shared
                .as_ref()
                .is_none_or(|s| s.broker.is_connected() && s.cluster.is_reachable())
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// The event bus.
    pub fn bus(&self) -> &Bus {
        &self.inner.bus
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Tokens and sessions.
    pub fn auth(&self) -> &Auth {
        &self.inner.auth
    }

    /// Street View and open imagery clients.
    pub fn imagery(&self) -> &Imagery {
        &self.inner.imagery
    }

    /// The geolocation database and locator.
    pub fn geo(&self) -> &Geo {
        &self.inner.geo
    }

    /// Scans, tasks and agents.
    pub fn orchestrator(&self) -> &Arc<Orchestrator> {
        &self.inner.orchestrator
    }

    /// Prometheus metrics kept by the server.
    pub fn telemetry(&self) -> &Telemetry {
        &self.inner.telemetry
    }

    /// WebSocket counters.
    pub fn counters(&self) -> &WsCounters {
        &self.inner.counters
    }

    /// Seconds since the state was built.
    pub fn uptime_seconds(&self) -> f64 {
        self.inner.started.elapsed().as_secs_f64()
    }

    /// When the server started.
    pub fn started_at(&self) -> DateTime<Utc> {
        self.inner.started_at
    }

    /// Whether shutdown has begun (`/readyz` answers 503).
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::Acquire)
    }

    /// Begins shutdown: readiness goes to 503 and every connection is told to close (1001).
    pub fn begin_shutdown(&self) {
        self.inner.draining.store(true, Ordering::Release);
        self.inner.shutdown.cancel();
    }

    /// Cancelled when shutdown begins.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// Tracks connection tasks so shutdown can wait for them.
    pub fn tracker(&self) -> &TaskTracker {
        &self.inner.tracker
    }

    /// The budget of `/ws` sockets that have not authenticated yet.
    pub(crate) fn ws_admission(&self) -> &Arc<Admission> {
        &self.inner.ws_admission
    }

    /// The budget of Engine.IO sessions that have not connected to Socket.IO yet.
    pub(crate) fn engineio_admission(&self) -> &Arc<Admission> {
        &self.inner.engineio_admission
    }

    /// Sockets waiting to authenticate (`/ws` and Engine.IO).
    pub fn unauthenticated(&self) -> usize {
        self.inner.ws_admission.pending() + self.inner.engineio_admission.pending()
    }

    /// Open WebSocket connections.
    pub fn connections(&self) -> usize {
        self.inner.connections.load(Ordering::Acquire)
    }

    /// Takes a connection slot if one is free.
    pub(crate) fn try_connect(&self) -> Option<ConnectionSlot> {
        let max = self.inner.config.max_connections;
        self.inner
            .connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| ConnectionSlot {
                state: self.clone(),
            })
    }

    /// Connections per room, for `/api/websocket/status`.
    pub fn room_members(&self) -> BTreeMap<String, usize> {
        let members = self
            .inner
            .room_members
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut all: BTreeMap<String, usize> = self
            .bus()
            .rooms()
            .into_iter()
            .map(|r| (r.name.to_string(), 0))
            .collect();
        all.extend(members.iter().map(|(k, v)| (k.clone(), *v)));
        all
    }

    pub(crate) fn join_rooms<'a>(&self, rooms: impl IntoIterator<Item = &'a str>, delta: isize) {
        let mut members = self
            .inner
            .room_members
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for room in rooms {
            let n = members.entry(room.to_owned()).or_default();
            *n = n.saturating_add_signed(delta);
        }
    }
}

/// A held connection slot; released on drop.
#[derive(Debug)]
pub(crate) struct ConnectionSlot {
    state: AppState,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.state.inner.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The vulnerability database `vuln_scan` results are matched against: the configured file,
/// or `<data_dir>/cvedb.sqlite` when it exists.
fn open_vulns(config: &ServerConfig) -> crate::Result<Option<sec_scan::VulnCheck>> {
    let (path, named) = match &config.cvedb {
        Some(p) => (p.clone(), true),
        None => (config.data_dir.join(sec_scan::VulnDb::FILE_NAME), false),
    };
    if !path.exists() {
        if named {
            return Err(crate::Error::Config(format!(
                "the vulnerability database {} does not exist (create it with `vigil cvedb import`)",
                path.display()
            )));
        }
        return Ok(None);
    }
    let db = sec_scan::VulnDb::open_file(&path).map_err(|e| {
        crate::Error::Config(format!(
            "the vulnerability database {}: {e}",
            path.display()
        ))
    })?;
    tracing::info!(path = %path.display(), "vuln_scan results are matched against this vulnerability database");
    Ok(Some(sec_scan::VulnCheck::new(
        db,
        sec_scan::vulndb::MatchOptions {
            paranoid: config.paranoid,
        },
    )))
}
