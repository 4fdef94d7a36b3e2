//! Scan orchestration: a priority queue of tasks, agents with capabilities and slots, leases,
//! results stored before they are acknowledged, and alerts raised once.
//!
//! - `POST /api/scans` checks every target against the server's scope before anything is
//!   queued, then creates one task per target and scan type.
//! - A task waits in the queue (priority 10 first, FIFO within a priority) until an agent with
//!   the capability has a free slot; the least loaded such agent gets it (`assign_task`).
//! - A task is leased to its agent while the agent heartbeats. When the agent disconnects or its
//!   lease runs out, its tasks go back to the queue until their retries are spent, then fail.
//! - A result is accepted only from the agent holding the task, is stored, and only then
//!   acknowledged; a result sent again is acknowledged again and stored once.
//! - A threat raises one alert per scan, target and signature, however often it is reported.
//!
//! Everything that happens is published on the event bus: `scan_scheduled`, `scan_started`,
//! `task_progress`, `scan_update`, `scan_completed` in `scans`; `threat_detected`,
//! `critical_alert` in `alerts`; `agent_registered`, `agent_online`, `agent_offline` in
//! `monitoring`.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use event_bus::{Bus, EventDraft, Severity};
use parking_lot::Mutex;
use sec_scan::{
    PortList, Priority, Resolver, ScanResult, ScanTask, Scope, Target, TaskKind, TaskStatus,
    Threat, VulnCheck,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::error::ApiError;

mod shared;

use crate::store::{AlertRow, ScanRow, Store, TaskRow};
pub use shared::SharedQueue;

/// The id the in-process agent registers under (`local-<node>` in a cluster).
pub const LOCAL_AGENT_ID: &str = "local";

pub use crate::node::command::AgentCommand;

/// What an agent is told to do.
#[derive(Debug, Clone)]
pub enum AgentOrder {
    /// Run this task.
    Assign(ScanTask),
    /// A command, about one task or the agent as a whole.
    Command {
        /// The command.
        command: AgentCommand,
        /// The task it is about (for `cancel`).
        task_id: Option<String>,
    },
}

/// What an agent says about itself when it registers.
#[derive(Debug, Clone, Deserialize)]
pub struct AgentHello {
    /// A stable id the agent chose (the seed's agents send one); a fresh one is made otherwise.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// A display name.
    #[serde(default)]
    pub name: Option<String>,
    /// What it can run (`port_scan`, `ssl_check`, ...). Unknown names are ignored.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Tasks it runs at once (1..=64; default 4).
    #[serde(default)]
    pub max_concurrent: Option<usize>,
}

/// The request body of `POST /api/scans` (and of the seed's `POST /api/scan`, whose single
/// `target` is accepted too).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ScanRequest {
    /// Hosts, addresses, networks or ranges.
    #[serde(default)]
    pub targets: Vec<String>,
    /// One target (the seed's shape).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Scan types: `port_scan`, `banner_grab`, `ssl_check`, `http_probe`, `vuln_scan`,
    /// `credential_check`; also `ports`, `banners`, `tls`, `http`, `vuln`. Default `port_scan`.
    #[serde(default)]
    pub scan_types: Vec<String>,
    /// Port specification (`22,80,8000-8100`, `top100`, `all`); each type's default otherwise.
    /// A JSON list of port numbers (`[22, 80, 443]`, the seed's `ScanTask.ports: List[int]`)
    /// or a single number is accepted too, and kept as the equivalent specification string.
    #[serde(default, deserialize_with = "ports_spec")]
    pub ports: Option<String>,
    /// 1..=10, higher first (default 5).
    #[serde(default)]
    pub priority: Option<u8>,
    /// Retries per task after a failure or a lost agent (0..=10, default 3).
    #[serde(default)]
    pub retries: Option<u32>,
}

/// Reads `ports` as a specification string, a list of port numbers, or one number.
fn ports_spec<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    use serde::de::Error as _;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Ports {
        Spec(String),
        One(u64),
        List(Vec<u64>),
    }
    fn port<E: serde::de::Error>(n: u64) -> Result<u16, E> {
        match u16::try_from(n) {
            Ok(p) if p > 0 => Ok(p),
            _ => Err(E::custom(format!("port {n} is outside 1-65535"))),
        }
    }
    match Option::<Ports>::deserialize(d).map_err(|_| {
        D::Error::custom(
            "ports must be a specification string (\"22,80,8000-8100\") or a list of port numbers",
        )
    })? {
        None => Ok(None),
        Some(Ports::Spec(s)) => Ok(Some(s)),
        Some(Ports::One(n)) => Ok(Some(port::<D::Error>(n)?.to_string())),
        Some(Ports::List(list)) => {
            if list.is_empty() {
                return Err(D::Error::custom("ports is an empty list"));
            }
            // Each port once, in order: a list repeating one port is no longer than the port.
            let ports = list
                .into_iter()
                .map(port::<D::Error>)
                .collect::<Result<std::collections::BTreeSet<u16>, _>>()?;
            let spec: Vec<String> = ports.iter().map(u16::to_string).collect();
            Ok(Some(spec.join(",")))
        }
    }
}

/// The answer to an accepted scan.
#[derive(Debug, Clone, Serialize)]
pub struct ScanAccepted {
    /// The scan id.
    pub scan_id: String,
    /// Always `scheduled`.
    pub status: &'static str,
    /// The tasks created.
    pub tasks: Vec<TaskView>,
}

/// A task as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TaskView {
    /// The task id.
    pub task_id: String,
    /// What it does.
    pub kind: TaskKind,
    /// Its target.
    pub target: String,
    /// `queued`, `running`, or how it ended.
    pub status: String,
    /// The agent running it, while it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Attempts made.
    pub attempts: u32,
}

/// An agent as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AgentView {
    /// The agent id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `online` or `offline`.
    pub status: &'static str,
    /// What it can run.
    pub capabilities: Vec<TaskKind>,
    /// Tasks running on it now.
    pub running: usize,
    /// Tasks it runs at once.
    pub max_concurrent: usize,
    /// When it was last heard from.
    pub last_heartbeat: DateTime<Utc>,
    /// Whether it is the server's in-process agent.
    pub local: bool,
    /// Several nodes: the node holding its connection (as `/api/websocket/status` names it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
}

/// Why a result was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultRefused {
    /// No such task.
    UnknownTask,
    /// The task is not assigned to this agent.
    NotYours,
    /// The result does not describe the task it names.
    Mismatch(&'static str),
    /// A finding or threat is about a host or an address that is not the task's target.
    OffTarget(String),
    /// Storing failed; the agent should send it again later.
    Storage(String),
}

impl ResultRefused {
    /// A stable code for the wire.
    pub fn code(&self) -> &'static str {
        match self {
            ResultRefused::UnknownTask => "unknown_task",
            ResultRefused::NotYours => "not_your_task",
            ResultRefused::Mismatch(_) | ResultRefused::OffTarget(_) => "bad_result",
            ResultRefused::Storage(_) => "storage_failed",
        }
    }
}

impl std::fmt::Display for ResultRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResultRefused::UnknownTask => f.write_str("no such task"),
            ResultRefused::NotYours => f.write_str("this task is not assigned to you"),
            ResultRefused::Mismatch(what) => {
                write!(f, "the result's {what} does not match its task")
            }
            ResultRefused::OffTarget(what) => write!(
                f,
                "{what} is not on the task's target; results may only describe the target the server assigned"
            ),
            ResultRefused::Storage(e) => {
                write!(f, "the result could not be stored ({e}); send it again")
            }
        }
    }
}

/// Why an agent could not register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentRefused {
    /// The agent id belongs to another token.
    NotYours(String),
    /// The token (or the server) has as many agents as allowed, all of them online or busy.
    TooMany(&'static str, usize),
    /// The shared database could not say who owns the id (several nodes only).
    Storage(String),
}

impl AgentRefused {
    /// A stable code for the wire.
    pub fn code(&self) -> &'static str {
        match self {
            AgentRefused::NotYours(_) => "agent_id_taken",
            AgentRefused::TooMany(..) => "too_many_agents",
            AgentRefused::Storage(_) => "storage_unavailable",
        }
    }
}

impl std::fmt::Display for AgentRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AgentRefused::NotYours(id) => write!(
                f,
                "agent id {id:?} belongs to another token; register without agent_id, or with an id of your own"
            ),
            AgentRefused::TooMany(what, limit) => write!(
                f,
                "{what} already has {limit} agents online or busy; none can be forgotten to make room"
            ),
            AgentRefused::Storage(err) => write!(f, "the shared database: {err}; try again"),
        }
    }
}

/// The owner of the in-process agent's id: no token can take it.
pub const SERVER_OWNER: &str = "server";

/// Orchestrator settings.
#[derive(Debug, Clone)]
pub struct OrchestratorConfig {
    /// How long an agent keeps its tasks without a heartbeat.
    pub lease: Duration,
    /// Most targets in one scan request.
    pub max_targets: usize,
    /// Agent ids one token may hold; past it, its agent offline the longest is forgotten.
    pub max_agents_per_token: usize,
    /// Agent ids the server holds; past it, the agent offline the longest is forgotten.
    pub max_agents: usize,
    /// The vulnerability database `vuln_scan` results are matched against, here on the server
    /// (agents need none): version signatures step aside and CVE threats are added.
    pub vulns: Option<VulnCheck>,
    /// Several nodes: this node's place in the cluster. With a shared (PostgreSQL) store the
    /// queue lives in the database and every node dispatches to the agents it holds (the
    /// `shared` module's docs).
    pub cluster: Option<Arc<crate::node::cluster::Cluster>>,
}

impl Default for OrchestratorConfig {
    fn default() -> Self {
        OrchestratorConfig {
            lease: Duration::from_secs(30),
            max_targets: 256,
            max_agents_per_token: 256,
            max_agents: 10_000,
            vulns: None,
            cluster: None,
        }
    }
}

#[derive(Debug)]
enum Phase {
    Queued,
    Running { agent: String },
    Done(TaskStatus),
}

#[derive(Debug)]
struct TaskState {
    task: ScanTask,
    phase: Phase,
    attempts: u32,
    /// The agent it was last given to: after a server restart that agent may still send its
    /// result, which is then accepted.
    last_agent: Option<String>,
}

#[derive(Debug)]
struct ScanState {
    requested_by: String,
    created: DateTime<Utc>,
    request: ScanRequest,
    tasks: Vec<String>,
    completed: bool,
}

#[derive(Debug)]
struct AgentState {
    name: String,
    capabilities: Vec<TaskKind>,
    max_concurrent: usize,
    running: HashSet<String>,
    last_seen: Instant,
    last_seen_at: DateTime<Utc>,
    link: Option<mpsc::UnboundedSender<AgentOrder>>,
    local: bool,
}

#[derive(Debug, Default)]
struct Inner {
    scans: BTreeMap<String, ScanState>,
    tasks: HashMap<String, TaskState>,
    /// (priority, then oldest first, task id); entries of tasks no longer queued are skipped.
    queue: BinaryHeap<(u8, Reverse<u64>, String)>,
    enqueued: u64,
    agents: BTreeMap<String, AgentState>,
    /// Which token each agent id belongs to (kept in the store, so a restart changes nothing).
    owners: HashMap<String, String>,
}

/// The scan orchestrator. Cheap to share behind an `Arc`.
pub struct Orchestrator {
    inner: Mutex<Inner>,
    bus: Bus,
    store: Store,
    scope: Option<Scope>,
    resolver: Arc<dyn Resolver>,
    config: OrchestratorConfig,
    /// Several nodes: the shared queue.
    shared: Option<shared::SharedQueue>,
    /// This orchestrator's own `Arc` (weak), for work it spawns from synchronous calls.
    myself: Mutex<std::sync::Weak<Orchestrator>>,
}

impl std::fmt::Debug for Orchestrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Orchestrator")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

fn kind_name(kind: TaskKind) -> String {
    kind.to_string()
}

/// Parses a scan type, accepting the seed's names and short aliases.
pub fn parse_kind(name: &str) -> Option<TaskKind> {
    Some(match name {
        "port_scan" | "ports" => TaskKind::PortScan,
        "banner_grab" | "banners" => TaskKind::BannerGrab,
        "ssl_check" | "tls" => TaskKind::SslCheck,
        "http_probe" | "http" => TaskKind::HttpProbe,
        "vuln_scan" | "vuln" => TaskKind::VulnScan,
        "credential_check" | "credentials" => TaskKind::CredentialCheck,
        _ => return None,
    })
}

fn severity_of(threat: &Threat) -> Severity {
    match threat.severity {
        sec_scan::Severity::Info => Severity::Info,
        sec_scan::Severity::Low | sec_scan::Severity::Medium => Severity::Warning,
        sec_scan::Severity::High => Severity::Error,
        sec_scan::Severity::Critical => Severity::Critical,
    }
}

fn status_name(status: TaskStatus) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "failed".into())
}

/// The alerts a result raises: one row per threat.
fn alert_rows(result: &ScanResult) -> Vec<AlertRow> {
    result
        .threats
        .iter()
        .map(|t| AlertRow {
            scan_id: result.scan_id.clone(),
            task_id: result.task_id.clone(),
            target: result.target.clone(),
            signature_id: t.signature_id.clone(),
            severity: t.severity.name().to_owned(),
            threat: serde_json::to_string(t).unwrap_or_default(),
        })
        .collect()
}

/// Refuses a result with a finding or a threat about anything but the task's target: its
/// address must be one the target covers (for a host name, one the server resolved and pinned
/// when it scheduled the task), and its host the target as written or that address.
fn check_on_target(task: &ScanTask, result: &ScanResult) -> Result<(), ResultRefused> {
    let target: Option<Target> = task.target.parse().ok();
    let pinned = task.pinned_addresses();
    let addr_ok = |addr: std::net::IpAddr| {
        let addr = sec_scan::canonical(addr);
        match &target {
            Some(Target::Ip(ip)) => *ip == addr,
            Some(Target::Net(net)) => net.contains(addr),
            Some(Target::Range { start, end }) => in_range(addr, *start, *end),
            // A task scheduled before addresses were pinned can only be checked by name.
            Some(Target::Host(_)) => pinned
                .as_ref()
                .is_none_or(|list| list.iter().any(|p| sec_scan::canonical(*p) == addr)),
            None => false,
        }
    };
    let host_ok = |host: &str, addr: std::net::IpAddr| {
        host.eq_ignore_ascii_case(&task.target)
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|h| sec_scan::canonical(h) == sec_scan::canonical(addr))
    };
    let facts = result
        .findings
        .iter()
        .map(|f| (f.host.as_str(), f.addr, "a finding"))
        .chain(
            result
                .threats
                .iter()
                .map(|t| (t.host.as_str(), t.addr, "a threat")),
        );
    for (host, addr, what) in facts {
        if !addr_ok(addr) {
            return Err(ResultRefused::OffTarget(format!("{what}'s address {addr}")));
        }
        if !host_ok(host, addr) {
            let host: String = host.chars().take(100).collect();
            return Err(ResultRefused::OffTarget(format!("{what}'s host {host:?}")));
        }
    }
    Ok(())
}

/// Whether `addr` lies in the inclusive range `start..=end` (same family).
fn in_range(addr: std::net::IpAddr, start: std::net::IpAddr, end: std::net::IpAddr) -> bool {
    use std::net::IpAddr::{V4, V6};
    match (addr, start, end) {
        (V4(a), V4(s), V4(e)) => (u32::from(s)..=u32::from(e)).contains(&u32::from(a)),
        (V6(a), V6(s), V6(e)) => (u128::from(s)..=u128::from(e)).contains(&u128::from(a)),
        _ => false,
    }
}

fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message)
}

impl Orchestrator {
    /// An orchestrator over `scope` (`None` or empty: every scan is refused), restoring scans,
    /// tasks and results from the store: unfinished tasks go back to the queue.
    pub async fn new(
        bus: Bus,
        store: Store,
        scope: Option<Scope>,
        resolver: Arc<dyn Resolver>,
        config: OrchestratorConfig,
    ) -> crate::Result<Orchestrator> {
        let mut inner = Inner::default();
        let shared = shared::SharedQueue::new(&store, config.cluster.as_ref())?;
        // A shared queue lives in the database: nothing of it is restored into memory.
        let restored = if shared.is_some() {
            Vec::new()
        } else {
            store.scans().await?
        };
        for scan in restored {
            let request: ScanRequest = serde_json::from_str(&scan.request).unwrap_or(ScanRequest {
                targets: Vec::new(),
                target: None,
                scan_types: Vec::new(),
                ports: None,
                priority: None,
                retries: None,
            });
            inner.scans.insert(
                scan.id,
                ScanState {
                    requested_by: scan.requested_by,
                    created: scan.created,
                    request,
                    tasks: Vec::new(),
                    completed: false,
                },
            );
        }
        let restored = if shared.is_some() {
            Vec::new()
        } else {
            store.tasks().await?
        };
        for row in restored {
            let Ok(task) = serde_json::from_str::<ScanTask>(&row.task) else {
                tracing::warn!(task = %row.id, "stored task does not parse; skipped");
                continue;
            };
            let phase = match row.status.as_str() {
                "queued" | "running" => Phase::Queued,
                other => Phase::Done(
                    serde_json::from_value(Value::String(other.to_owned()))
                        .unwrap_or(TaskStatus::Failed),
                ),
            };
            if let Some(scan) = inner.scans.get_mut(&row.scan_id) {
                scan.tasks.push(row.id.clone());
            }
            if matches!(phase, Phase::Queued) {
                inner.enqueued += 1;
                let entry = (task.priority.get(), Reverse(inner.enqueued), row.id.clone());
                inner.queue.push(entry);
            }
            inner.tasks.insert(
                row.id,
                TaskState {
                    task,
                    phase,
                    attempts: row.attempts,
                    last_agent: row.agent,
                },
            );
        }
        inner.owners = store.agent_owners().await?.into_iter().collect();
        inner
            .owners
            .insert(LOCAL_AGENT_ID.to_owned(), SERVER_OWNER.to_owned());
        let finished: Vec<String> = inner
            .scans
            .iter()
            .filter(|(_, s)| {
                !s.tasks.is_empty()
                    && s.tasks.iter().all(|t| {
                        inner
                            .tasks
                            .get(t)
                            .is_some_and(|t| matches!(t.phase, Phase::Done(_)))
                    })
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in finished {
            if let Some(scan) = inner.scans.get_mut(&id) {
                scan.completed = true;
            }
        }
        Ok(Orchestrator {
            inner: Mutex::new(inner),
            bus,
            store,
            scope: scope.filter(|s| !s.is_empty()),
            resolver,
            config,
            shared,
            myself: Mutex::new(std::sync::Weak::new()),
        })
    }

    /// Call once on the `Arc` the orchestrator lives in, before using it: work it spawns from
    /// synchronous calls (several nodes: handing a departed agent's tasks back) needs it.
    pub fn attach(self: &Arc<Self>) {
        *self.myself.lock() = Arc::downgrade(self);
    }

    /// The id of this node's in-process agent: `local`, or `local-<node id>` in a cluster
    /// (every node has its own).
    pub fn local_agent_id(&self) -> String {
        match &self.shared {
            Some(queue) => format!("{}-{}", LOCAL_AGENT_ID, queue.node()),
            None => LOCAL_AGENT_ID.to_owned(),
        }
    }

    /// Whether the queue is shared with other nodes.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// The scope scans are checked against.
    pub fn scope(&self) -> Option<&Scope> {
        self.scope.as_ref()
    }

    fn publish(&self, kind: &str, room: &str, severity: Severity, data: Value) {
        let draft = EventDraft::new(kind, room, &data)
            .map(|d| d.with_severity(severity).with_source("orchestrator"));
        if let Err(err) = draft.and_then(|d| self.bus.publish_draft(d)) {
            tracing::error!(error = %err, kind, "publishing an orchestration event failed");
        }
    }

    /// Checks and queues a scan. Nothing is queued unless every target is in scope.
    pub async fn schedule(
        &self,
        mut request: ScanRequest,
        requested_by: &str,
    ) -> Result<ScanAccepted, ApiError> {
        if let Some(target) = request.target.take() {
            request.targets.push(target);
        }
        request.targets.retain(|t| !t.trim().is_empty());
        if request.targets.is_empty() {
            return Err(bad("bad_request", "name at least one target"));
        }
        if request.targets.len() > self.config.max_targets {
            return Err(bad(
                "bad_request",
                format!("at most {} targets per scan", self.config.max_targets),
            ));
        }
        if request.scan_types.is_empty() {
            request.scan_types.push("port_scan".into());
        }
        let mut kinds = Vec::new();
        for name in &request.scan_types {
            let kind = parse_kind(name).ok_or_else(|| {
                bad(
                    "bad_request",
                    format!("unknown scan type {name:?}; use port_scan, banner_grab, ssl_check, http_probe, vuln_scan or credential_check"),
                )
            })?;
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        let priority = Priority::new(request.priority.unwrap_or(5))
            .map_err(|e| bad("bad_request", format!("priority: {e}")))?;
        let retries = request.retries.unwrap_or(3);
        if retries > 10 {
            return Err(bad("bad_request", "retries must be in 0..=10"));
        }
        let ports_for_check: PortList = match &request.ports {
            Some(spec) => spec
                .parse()
                .map_err(|e| bad("bad_request", format!("ports: {e}")))?,
            None => PortList::top(100),
        };
        let Some(scope) = &self.scope else {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "out_of_scope",
                "this server may scan nothing: start it with --scope CIDR|HOST for the hosts you are authorised to test",
            ));
        };
        // The addresses each host name resolved to, pinned in its tasks.
        let mut pinned: HashMap<&str, Vec<std::net::IpAddr>> = HashMap::new();
        for text in &request.targets {
            let target: Target = text
                .parse()
                .map_err(|e| bad("bad_target", format!("{text}: {e}")))?;
            // Resolves names once and checks every address; no packet is sent.
            let plan = scope
                .plan(
                    std::slice::from_ref(&target),
                    ports_for_check.clone(),
                    self.resolver.as_ref(),
                )
                .await
                .map_err(|e| ApiError::new(StatusCode::FORBIDDEN, "out_of_scope", e.to_string()))?;
            if matches!(target, Target::Host(_)) {
                pinned.insert(text, plan.hosts().iter().map(|h| h.addr).collect());
            }
        }

        let scan_id = uuid::Uuid::new_v4().to_string();
        let created = Utc::now();
        let mut tasks = Vec::new();
        for target in &request.targets {
            for kind in &kinds {
                let mut task = ScanTask::new(*kind, target.clone())
                    .with_priority(priority)
                    .with_retries(retries);
                task.scan_id = scan_id.clone();
                if let Some(ports) = &request.ports {
                    task = task.with_ports(ports.clone());
                }
                if let Some(addrs) = pinned.get(target.as_str()) {
                    task = task.with_pinned_addresses(addrs);
                }
                tasks.push(task);
            }
        }
        let rows: Vec<TaskRow> = tasks
            .iter()
            .map(|t| TaskRow {
                id: t.id.clone(),
                scan_id: scan_id.clone(),
                task: serde_json::to_string(t).unwrap_or_default(),
                status: "queued".into(),
                attempts: 0,
                agent: None,
            })
            .collect();
        let scan_row = ScanRow {
            id: scan_id.clone(),
            requested_by: requested_by.to_owned(),
            request: serde_json::to_string(&request).unwrap_or_default(),
            created,
        };
        self.store.insert_scan(&scan_row, &rows).await?;
        tracing::info!(scan = %scan_id, requested_by, targets = ?request.targets, kinds = ?kinds, "scan scheduled");
        let kinds_json = json!(kinds);

        let views: Vec<TaskView> = tasks
            .iter()
            .map(|t| TaskView {
                task_id: t.id.clone(),
                kind: t.kind,
                target: t.target.clone(),
                status: "queued".into(),
                agent_id: None,
                attempts: 0,
            })
            .collect();
        if let Some(queue) = &self.shared {
            self.publish(
                "scan_scheduled",
                "scans",
                Severity::Info,
                json!({
                    "scan_id": scan_id, "targets": request.targets, "scan_types": kinds_json,
                    "ports": request.ports, "priority": priority.get(), "requested_by": requested_by,
                    "tasks": views,
                }),
            );
            queue.wake();
            return Ok(ScanAccepted {
                scan_id,
                status: "scheduled",
                tasks: views,
            });
        }
        {
            let mut inner = self.inner.lock();
            inner.scans.insert(
                scan_id.clone(),
                ScanState {
                    requested_by: requested_by.to_owned(),
                    created,
                    request: request.clone(),
                    tasks: tasks.iter().map(|t| t.id.clone()).collect(),
                    completed: false,
                },
            );
            for task in tasks {
                inner.enqueued += 1;
                let entry = (
                    task.priority.get(),
                    Reverse(inner.enqueued),
                    task.id.clone(),
                );
                inner.queue.push(entry);
                inner.tasks.insert(
                    task.id.clone(),
                    TaskState {
                        task,
                        phase: Phase::Queued,
                        attempts: 0,
                        last_agent: None,
                    },
                );
            }
            self.publish(
                "scan_scheduled",
                "scans",
                Severity::Info,
                json!({
                    "scan_id": scan_id, "targets": request.targets, "scan_types": kinds,
                    "ports": request.ports, "priority": priority.get(), "requested_by": requested_by,
                    "tasks": views,
                }),
            );
            self.dispatch(&mut inner);
        }
        Ok(ScanAccepted {
            scan_id,
            status: "scheduled",
            tasks: views,
        })
    }

    /// Registers an agent for the token `owner`; returns its id. `link` carries its orders.
    ///
    /// An agent id belongs to the token that registered it first: another token asking for it
    /// is refused. Each token holds at most `max_agents_per_token` ids and the server at most
    /// `max_agents`; past either, the agent offline the longest (with no task) is forgotten.
    pub async fn register(
        &self,
        mut hello: AgentHello,
        owner: &str,
        link: mpsc::UnboundedSender<AgentOrder>,
        local: bool,
    ) -> Result<String, AgentRefused> {
        if let Some(queue) = &self.shared {
            hello.agent_id = Some(
                self.claim_shared_id(queue, hello.agent_id.take(), owner)
                    .await?,
            );
        }
        let id = self.register_here(hello, owner, link, local)?;
        if let Some(queue) = &self.shared {
            self.joined_shared(queue, &id, local).await;
        }
        Ok(id)
    }

    fn register_here(
        &self,
        hello: AgentHello,
        owner: &str,
        link: mpsc::UnboundedSender<AgentOrder>,
        local: bool,
    ) -> Result<String, AgentRefused> {
        let capabilities: Vec<TaskKind> = {
            let mut kinds: Vec<TaskKind> = hello
                .capabilities
                .iter()
                .filter_map(|c| parse_kind(c))
                .collect();
            kinds.dedup();
            if kinds.is_empty() {
                vec![TaskKind::PortScan]
            } else {
                kinds
            }
        };
        let max_concurrent = hello.max_concurrent.unwrap_or(4).clamp(1, 64);
        let mut inner = self.inner.lock();
        let wanted = hello
            .agent_id
            .filter(|id| !id.is_empty() && id.len() <= 128 && !id.chars().any(char::is_control));
        if let Some(id) = &wanted
            && inner.owners.get(id).is_some_and(|o| o != owner)
        {
            return Err(AgentRefused::NotYours(id.clone()));
        }
        // An id of this token still connected (the old connection is not gone yet) gets a fresh
        // id, as before.
        let wanted = wanted.filter(|id| inner.agents.get(id).is_none_or(|a| a.link.is_none()));
        let id = wanted.unwrap_or_else(|| {
            format!("agent-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
        });
        let new = !inner.owners.contains_key(&id);
        if new {
            self.make_room(&mut inner, owner)?;
            inner.owners.insert(id.clone(), owner.to_owned());
            self.persist_owner(&id, owner);
        }
        let name = hello
            .name
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| id.clone())
            .chars()
            .filter(|c| !c.is_control())
            .take(128)
            .collect();
        let new = new || !inner.agents.contains_key(&id);
        inner.agents.insert(
            id.clone(),
            AgentState {
                name,
                capabilities: capabilities.clone(),
                max_concurrent,
                running: HashSet::new(),
                last_seen: Instant::now(),
                last_seen_at: Utc::now(),
                link: Some(link),
                local,
            },
        );
        let data = json!({"agent_id": id, "capabilities": capabilities, "max_concurrent": max_concurrent, "local": local});
        if new {
            self.publish(
                "agent_registered",
                "monitoring",
                Severity::Info,
                data.clone(),
            );
        }
        self.publish("agent_online", "monitoring", Severity::Success, data);
        self.dispatch(&mut inner);
        Ok(id)
    }

    /// Frees an agent id for a new one of `owner`, when the token or the server is at its
    /// bound: the id offline the longest with no task is forgotten.
    fn make_room(&self, inner: &mut Inner, owner: &str) -> Result<(), AgentRefused> {
        let held = inner.owners.values().filter(|o| *o == owner).count();
        if held >= self.config.max_agents_per_token {
            self.forget_idle(inner, Some(owner))
                .ok_or(AgentRefused::TooMany(
                    "this token",
                    self.config.max_agents_per_token,
                ))?;
        }
        if inner.owners.len() >= self.config.max_agents {
            self.forget_idle(inner, None)
                .ok_or(AgentRefused::TooMany("the server", self.config.max_agents))?;
        }
        Ok(())
    }

    /// Forgets the agent (of `owner`, when given) offline the longest with no task; ids that
    /// are only in the owner table (from before a restart) go first.
    fn forget_idle(&self, inner: &mut Inner, owner: Option<&str>) -> Option<String> {
        let holding: HashSet<&str> = inner
            .tasks
            .values()
            .filter(|t| !matches!(t.phase, Phase::Done(_)))
            .filter_map(|t| t.last_agent.as_deref())
            .collect();
        let victim = inner
            .owners
            .iter()
            .filter(|(_, o)| owner.is_none_or(|w| w == o.as_str()) && o.as_str() != SERVER_OWNER)
            .filter(|(id, _)| !holding.contains(id.as_str()))
            .filter_map(|(id, _)| match inner.agents.get(id) {
                None => Some((None, id)),
                Some(a) if a.link.is_none() && a.running.is_empty() => {
                    Some((Some(a.last_seen), id))
                }
                Some(_) => None,
            })
            .min()
            .map(|(_, id)| id.clone())?;
        inner.owners.remove(&victim);
        inner.agents.remove(&victim);
        let store = self.store.clone();
        let id = victim.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            drop(handle.spawn(async move {
                if let Err(err) = store.delete_agent_owner(&id).await {
                    tracing::warn!(error = %err, agent = %id, "forgetting an agent failed");
                }
            }));
        }
        Some(victim)
    }

    fn persist_owner(&self, id: &str, owner: &str) {
        let store = self.store.clone();
        let (id, owner) = (id.to_owned(), owner.to_owned());
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            drop(handle.spawn(async move {
                if let Err(err) = store.insert_agent_owner(&id, &owner).await {
                    tracing::warn!(error = %err, agent = %id, "recording an agent's owner failed");
                }
            }));
        }
    }

    /// Renews an agent's lease.
    pub fn heartbeat(&self, agent_id: &str) -> bool {
        let mut inner = self.inner.lock();
        match inner.agents.get_mut(agent_id) {
            Some(agent) if agent.link.is_some() => {
                agent.last_seen = Instant::now();
                agent.last_seen_at = Utc::now();
                if let Some(queue) = &self.shared {
                    queue.renew(queue.presence(agent_id, agent), self.config.lease);
                }
                true
            }
            _ => false,
        }
    }

    /// Publishes a task's progress (0..=1) when the agent holds the task.
    pub fn progress(
        &self,
        agent_id: &str,
        task_id: &str,
        progress: f64,
        message: Option<&str>,
    ) -> Result<(), ResultRefused> {
        let inner = self.inner.lock();
        let task = inner.tasks.get(task_id).ok_or(ResultRefused::UnknownTask)?;
        if !matches!(&task.phase, Phase::Running { agent } if agent == agent_id) {
            return Err(ResultRefused::NotYours);
        }
        let progress = if progress.is_finite() {
            progress.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let message: Option<String> = message.map(|m| m.chars().take(200).collect());
        self.publish(
            "task_progress",
            "scans",
            Severity::Info,
            json!({"scan_id": task.task.scan_id, "task_id": task_id, "agent_id": agent_id, "target": task.task.target,
                   "progress": progress, "message": message}),
        );
        Ok(())
    }

    /// Takes a result from `agent_id`: checks it, stores it, then frees the slot, raises new
    /// alerts and publishes. `Ok(true)` when stored now, `Ok(false)` when it was stored before.
    pub async fn submit_result(
        &self,
        agent_id: &str,
        mut result: ScanResult,
    ) -> Result<bool, ResultRefused> {
        if let Some(queue) = &self.shared {
            return self.submit_shared(queue, agent_id, result).await;
        }
        {
            let inner = self.inner.lock();
            let task = inner
                .tasks
                .get(&result.task_id)
                .ok_or(ResultRefused::UnknownTask)?;
            match &task.phase {
                Phase::Running { agent } if agent == agent_id => {}
                // Queued again after a server restart, but this agent was running it and
                // kept its result: take it.
                Phase::Queued if task.last_agent.as_deref() == Some(agent_id) => {}
                // Already stored: the agent did not see our ack; acknowledge again.
                Phase::Done(_) => return Ok(false),
                _ => return Err(ResultRefused::NotYours),
            }
            if result.scan_id != task.task.scan_id {
                return Err(ResultRefused::Mismatch("scan_id"));
            }
            if result.kind != task.task.kind {
                return Err(ResultRefused::Mismatch("kind"));
            }
            check_on_target(&task.task, &result)?;
            // The task's own target is authoritative, whatever the agent wrote.
            result.target = task.task.target.clone();
            result.agent_id = agent_id.to_owned();
        }
        if result.kind == TaskKind::VulnScan
            && let Some(check) = self.config.vulns.clone()
        {
            result = tokio::task::spawn_blocking(move || match_vulns(&check, result))
                .await
                .map_err(|e| ResultRefused::Storage(format!("vulnerability matching: {e}")))?;
        }
        let alerts = alert_rows(&result);
        let json =
            serde_json::to_string(&result).map_err(|e| ResultRefused::Storage(e.to_string()))?;
        let (task_id, scan_id, agent, status) = (
            result.task_id.clone(),
            result.scan_id.clone(),
            agent_id.to_owned(),
            status_name(result.status),
        );
        let stored = self
            .store
            .store_result(&task_id, &scan_id, &agent, &status, &json, &alerts)
            .await
            .map_err(|e| ResultRefused::Storage(e.to_string()))?;
        let Some(new_alerts) = stored else {
            return Ok(false);
        };

        let mut inner = self.inner.lock();
        self.finish_task(
            &mut inner,
            &result.task_id,
            result.status,
            Some(&result),
            &new_alerts,
        );
        self.dispatch(&mut inner);
        Ok(true)
    }

    /// Marks a task done, frees its agent's slot, publishes, and completes its scan if it was
    /// the last one.
    fn finish_task(
        &self,
        inner: &mut Inner,
        task_id: &str,
        status: TaskStatus,
        result: Option<&ScanResult>,
        new_alerts: &[AlertRow],
    ) {
        let Some(task) = inner.tasks.get_mut(task_id) else {
            return;
        };
        if let Phase::Running { agent } = &task.phase {
            let holder = agent.clone();
            if let Some(agent) = inner.agents.get_mut(&holder) {
                agent.running.remove(task_id);
            }
        }
        let Some(task) = inner.tasks.get_mut(task_id) else {
            return;
        };
        task.phase = Phase::Done(status);
        let scan_id = task.task.scan_id.clone();
        let (target, kind) = (task.task.target.clone(), task.task.kind);
        self.publish_task_end(&scan_id, task_id, &target, kind, status, result, new_alerts);
        self.complete_scan_if_done(inner, &scan_id);
    }

    /// Publishes how a task ended (`scan_update`) and the alerts it raised for the first time.
    #[allow(clippy::too_many_arguments)]
    fn publish_task_end(
        &self,
        scan_id: &str,
        task_id: &str,
        target: &str,
        kind: TaskKind,
        status: TaskStatus,
        result: Option<&ScanResult>,
        new_alerts: &[AlertRow],
    ) {
        let threats: Vec<&Threat> = result
            .map(|r| r.threats.iter().collect())
            .unwrap_or_default();
        let severity = match status {
            TaskStatus::Success if threats.is_empty() => Severity::Success,
            TaskStatus::Success | TaskStatus::Partial => Severity::Warning,
            TaskStatus::Cancelled => Severity::Info,
            TaskStatus::Failed | TaskStatus::TimedOut => Severity::Error,
        };
        self.publish(
            "scan_update",
            "scans",
            severity,
            json!({
                "scan_id": scan_id, "task_id": task_id, "target": target, "kind": kind_name(kind),
                "status": status, "agent_id": result.map(|r| r.agent_id.clone()),
                "findings": result.map(|r| r.findings.len()).unwrap_or(0),
                "threats": threats,
                "duration_seconds": result.map(|r| r.duration_seconds),
                "error": result.and_then(|r| r.error.clone()),
            }),
        );
        for alert in new_alerts {
            let Ok(threat) = serde_json::from_str::<Threat>(&alert.threat) else {
                continue;
            };
            let severity = severity_of(&threat);
            let data = json!({
                "scan_id": alert.scan_id, "task_id": alert.task_id, "target": alert.target,
                "signature_id": threat.signature_id, "name": threat.name, "severity": threat.severity,
                "host": threat.host, "port": threat.port, "evidence": threat.evidence,
                "remediation": threat.remediation, "references": threat.references,
                "confidence": threat.confidence, "cve": threat.cve.as_deref().map(cve_view),
            });
            self.publish("threat_detected", "alerts", severity, data.clone());
            if severity == Severity::Critical {
                self.publish("critical_alert", "alerts", Severity::Critical, data);
            }
        }
    }

    fn complete_scan_if_done(&self, inner: &mut Inner, scan_id: &str) {
        let Some(scan) = inner.scans.get(scan_id) else {
            return;
        };
        if scan.completed {
            return;
        }
        let statuses: Vec<TaskStatus> = scan
            .tasks
            .iter()
            .filter_map(|t| match inner.tasks.get(t).map(|t| &t.phase) {
                Some(Phase::Done(status)) => Some(*status),
                _ => None,
            })
            .collect();
        if statuses.len() < scan.tasks.len() {
            return;
        }
        if let Some(scan) = inner.scans.get_mut(scan_id) {
            scan.completed = true;
        }
        self.publish_scan_end(scan_id, &statuses);
    }

    /// Publishes that a scan ended (`scan_completed`), from its tasks' end states.
    fn publish_scan_end(&self, scan_id: &str, statuses: &[TaskStatus]) {
        let failed = statuses
            .iter()
            .filter(|s| matches!(s, TaskStatus::Failed | TaskStatus::TimedOut))
            .count();
        let cancelled = statuses
            .iter()
            .filter(|s| matches!(s, TaskStatus::Cancelled))
            .count();
        let status = if cancelled > 0 {
            "cancelled"
        } else if failed == statuses.len() {
            "failed"
        } else if failed > 0 {
            "partial"
        } else {
            "completed"
        };
        let severity = if status == "completed" {
            Severity::Success
        } else {
            Severity::Warning
        };
        self.publish(
            "scan_completed",
            "scans",
            severity,
            json!({"scan_id": scan_id, "status": status, "tasks": statuses.len(), "failed": failed, "cancelled": cancelled}),
        );
    }

    /// The agent is gone: its running tasks go back to the queue (or fail, retries spent).
    pub fn disconnected(&self, agent_id: &str, reason: &str) {
        let mut inner = self.inner.lock();
        let Some(agent) = inner.agents.get_mut(agent_id) else {
            return;
        };
        if agent.link.take().is_none() {
            return;
        }
        let running: Vec<String> = agent.running.drain().collect();
        self.publish(
            "agent_offline",
            "monitoring",
            Severity::Warning,
            json!({"agent_id": agent_id, "reason": reason}),
        );
        if let Some(queue) = &self.shared {
            for task_id in &running {
                inner.tasks.remove(task_id);
            }
            drop(inner);
            self.left_shared(queue, agent_id);
            return;
        }
        for task_id in running {
            self.requeue(&mut inner, &task_id, reason);
        }
        self.dispatch(&mut inner);
    }

    /// Puts a task that lost its agent back in the queue, or fails it when its retries are
    /// spent.
    fn requeue(&self, inner: &mut Inner, task_id: &str, reason: &str) {
        let Some(task) = inner.tasks.get_mut(task_id) else {
            return;
        };
        if matches!(task.phase, Phase::Done(_)) {
            return;
        }
        if task.attempts > task.task.retries {
            tracing::warn!(
                task = task_id,
                attempts = task.attempts,
                reason,
                "task failed: retries spent"
            );
            let attempts = task.attempts;
            self.persist_task(task_id, "failed", attempts, None);
            let result = ScanResult {
                scan_id: task.task.scan_id.clone(),
                task_id: task_id.to_owned(),
                agent_id: String::new(),
                target: task.task.target.clone(),
                kind: task.task.kind,
                status: TaskStatus::Failed,
                findings: Vec::new(),
                threats: Vec::new(),
                duration_seconds: 0.0,
                time: Utc::now(),
                attempts,
                error: Some(format!("retries spent; last attempt: {reason}")),
            };
            self.finish_task(inner, task_id, TaskStatus::Failed, Some(&result), &[]);
            return;
        }
        task.phase = Phase::Queued;
        let attempts = task.attempts;
        let priority = task.task.priority.get();
        inner.enqueued += 1;
        let entry = (priority, Reverse(inner.enqueued), task_id.to_owned());
        inner.queue.push(entry);
        self.persist_task(task_id, "queued", attempts, None);
    }

    /// Records a task's status without waiting (status changes are also rebuilt on restart, so
    /// a lost write costs at most a rerun).
    fn persist_task(
        &self,
        task_id: &str,
        status: &'static str,
        attempts: u32,
        agent: Option<&str>,
    ) {
        let store = self.store.clone();
        let task_id = task_id.to_owned();
        let agent = agent.map(str::to_owned);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            drop(handle.spawn(async move {
                if let Err(err) = store
                    .update_task(&task_id, status, attempts, agent.as_deref())
                    .await
                {
                    tracing::warn!(error = %err, task = %task_id, "recording task status failed");
                }
            }));
        }
    }

    /// Expires the leases of agents not heard from in time. Call it every second or so.
    pub fn tick(&self) {
        let expired: Vec<String> = {
            let inner = self.inner.lock();
            inner
                .agents
                .iter()
                .filter(|(_, a)| {
                    !a.local && a.link.is_some() && a.last_seen.elapsed() > self.config.lease
                })
                .map(|(id, _)| id.clone())
                .collect()
        };
        for id in expired {
            tracing::warn!(agent = %id, "agent lease expired");
            self.disconnected(&id, "lease expired");
        }
    }

    /// Assigns queued tasks to free agents, least loaded first.
    fn dispatch(&self, inner: &mut Inner) {
        if let Some(queue) = &self.shared {
            // The node's dispatcher claims from the shared queue (`run_shared`).
            queue.wake();
            return;
        }
        let mut blocked = Vec::new();
        while let Some(entry) = inner.queue.pop() {
            let task_id = entry.2.clone();
            let Some(task) = inner.tasks.get(&task_id) else {
                continue;
            };
            if !matches!(task.phase, Phase::Queued) {
                continue;
            }
            let kind = task.task.kind;
            let chosen = inner
                .agents
                .iter()
                .filter(|(_, a)| {
                    a.link.is_some()
                        && a.capabilities.contains(&kind)
                        && a.running.len() < a.max_concurrent
                })
                .min_by(|(_, a), (_, b)| {
                    let load = |x: &AgentState| x.running.len() as f64 / x.max_concurrent as f64;
                    load(a).total_cmp(&load(b))
                })
                .map(|(id, _)| id.clone());
            let Some(agent_id) = chosen else {
                blocked.push(entry);
                continue;
            };
            let order = AgentOrder::Assign(task.task.clone());
            let sent = inner
                .agents
                .get(&agent_id)
                .and_then(|a| a.link.as_ref())
                .is_some_and(|link| link.send(order).is_ok());
            if !sent {
                // The agent's connection is gone; forget it and try this task again.
                if let Some(agent) = inner.agents.get_mut(&agent_id) {
                    agent.link = None;
                }
                inner.queue.push(entry);
                continue;
            }
            let Some(task) = inner.tasks.get_mut(&task_id) else {
                continue;
            };
            task.phase = Phase::Running {
                agent: agent_id.clone(),
            };
            task.last_agent = Some(agent_id.clone());
            task.attempts += 1;
            let (attempts, scan_id, target) = (
                task.attempts,
                task.task.scan_id.clone(),
                task.task.target.clone(),
            );
            if let Some(agent) = inner.agents.get_mut(&agent_id) {
                agent.running.insert(task_id.clone());
            }
            self.persist_task(&task_id, "running", attempts, Some(&agent_id));
            self.publish(
                "scan_started",
                "scans",
                Severity::Info,
                json!({"scan_id": scan_id, "task_id": task_id, "target": target, "kind": kind_name(kind),
                       "agent_id": agent_id, "attempt": attempts}),
            );
        }
        inner.queue.extend(blocked);
    }

    /// Cancels a scan: queued tasks end now, running ones are told to stop.
    pub async fn cancel_scan(&self, scan_id: &str) -> Result<usize, ApiError> {
        if let Some(queue) = &self.shared {
            return self.cancel_shared(queue, scan_id).await;
        }
        let mut inner = self.inner.lock();
        let Some(scan) = inner.scans.get(scan_id) else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_scan",
                format!("no scan {scan_id}"),
            ));
        };
        let task_ids = scan.tasks.clone();
        let mut touched = 0;
        for task_id in task_ids {
            let Some(task) = inner.tasks.get(&task_id) else {
                continue;
            };
            match &task.phase {
                Phase::Queued => {
                    let attempts = task.attempts;
                    self.persist_task(&task_id, "cancelled", attempts, None);
                    self.finish_task(&mut inner, &task_id, TaskStatus::Cancelled, None, &[]);
                    touched += 1;
                }
                Phase::Running { agent } => {
                    let order = AgentOrder::Command {
                        command: AgentCommand::Cancel,
                        task_id: Some(task_id.clone()),
                    };
                    if let Some(link) = inner.agents.get(agent).and_then(|a| a.link.as_ref()) {
                        let _ = link.send(order);
                    }
                    touched += 1;
                }
                Phase::Done(_) => {}
            }
        }
        Ok(touched)
    }

    /// Sends a command to an agent.
    pub async fn command(
        &self,
        agent_id: &str,
        command: AgentCommand,
        task_id: Option<String>,
    ) -> Result<(), ApiError> {
        if let Some(queue) = &self.shared
            && !self.holds(agent_id)
        {
            return self
                .command_elsewhere(queue, agent_id, command, task_id)
                .await;
        }
        self.command_here(agent_id, command, task_id)
    }

    /// Whether this node holds `agent_id`'s connection.
    fn holds(&self, agent_id: &str) -> bool {
        self.inner
            .lock()
            .agents
            .get(agent_id)
            .is_some_and(|a| a.link.is_some())
    }

    /// Sends a command to an agent connected to this node.
    pub fn command_here(
        &self,
        agent_id: &str,
        command: AgentCommand,
        task_id: Option<String>,
    ) -> Result<(), ApiError> {
        let inner = self.inner.lock();
        let link = inner
            .agents
            .get(agent_id)
            .and_then(|a| a.link.as_ref())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "unknown_agent",
                    format!("no online agent {agent_id}"),
                )
            })?;
        link.send(AgentOrder::Command { command, task_id })
            .map_err(|_| {
                ApiError::new(
                    StatusCode::CONFLICT,
                    "agent_gone",
                    "the agent just disconnected",
                )
            })
    }

    /// Every agent.
    pub async fn agents(&self) -> Result<Vec<AgentView>, ApiError> {
        if let Some(queue) = &self.shared {
            return self.agents_shared(queue).await;
        }
        let inner = self.inner.lock();
        Ok(inner
            .agents
            .iter()
            .map(|(id, a)| AgentView {
                id: id.clone(),
                name: a.name.clone(),
                status: if a.link.is_some() {
                    "online"
                } else {
                    "offline"
                },
                capabilities: a.capabilities.clone(),
                running: a.running.len(),
                max_concurrent: a.max_concurrent,
                last_heartbeat: a.last_seen_at,
                local: a.local,
                node_id: None,
            })
            .collect())
    }

    fn task_views(&self, inner: &Inner, ids: &[String]) -> Vec<TaskView> {
        ids.iter()
            .filter_map(|id| {
                let t = inner.tasks.get(id)?;
                let (status, agent_id) = match &t.phase {
                    Phase::Queued => ("queued".to_owned(), None),
                    Phase::Running { agent } => ("running".to_owned(), Some(agent.clone())),
                    Phase::Done(s) => (status_name(*s), None),
                };
                Some(TaskView {
                    task_id: id.clone(),
                    kind: t.task.kind,
                    target: t.task.target.clone(),
                    status,
                    agent_id,
                    attempts: t.attempts,
                })
            })
            .collect()
    }

    /// Every scan, newest first, with its tasks.
    pub async fn scans(&self) -> Result<Vec<Value>, ApiError> {
        if let Some(queue) = &self.shared {
            return self.scans_shared(queue, None).await;
        }
        let inner = self.inner.lock();
        let mut scans: Vec<(&String, &ScanState)> = inner.scans.iter().collect();
        scans.sort_by_key(|s| Reverse(s.1.created));
        Ok(scans
            .into_iter()
            .map(|(id, s)| {
                let tasks = self.task_views(&inner, &s.tasks);
                json!({"scan_id": id, "requested_by": s.requested_by, "created": s.created, "completed": s.completed,
                       "targets": s.request.targets, "scan_types": s.request.scan_types, "ports": s.request.ports,
                       "tasks": tasks})
            })
            .collect())
    }

    /// One scan with its tasks and stored results.
    pub async fn scan(&self, scan_id: &str) -> Result<Value, ApiError> {
        let summary = if let Some(queue) = &self.shared {
            self.scans_shared(queue, Some(scan_id))
                .await?
                .pop()
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::NOT_FOUND,
                        "unknown_scan",
                        format!("no scan {scan_id}"),
                    )
                })?
        } else {
            let inner = self.inner.lock();
            let scan = inner.scans.get(scan_id).ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "unknown_scan",
                    format!("no scan {scan_id}"),
                )
            })?;
            let tasks = self.task_views(&inner, &scan.tasks);
            json!({"scan_id": scan_id, "requested_by": scan.requested_by, "created": scan.created,
                   "completed": scan.completed, "targets": scan.request.targets,
                   "scan_types": scan.request.scan_types, "ports": scan.request.ports, "tasks": tasks})
        };
        let results = self.store.results(scan_id).await?;
        let results: Vec<Value> = results
            .iter()
            .filter_map(|r| serde_json::from_str(r).ok())
            .collect();
        let mut summary = summary;
        summary["results"] = Value::Array(results);
        Ok(summary)
    }

    /// Counts for `/stats` and `/metrics`: (queued, running, done) tasks and online agents.
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        if let Some(queue) = &self.shared {
            return queue.counts();
        }
        let inner = self.inner.lock();
        let mut counts = (0, 0, 0, 0);
        for task in inner.tasks.values() {
            match task.phase {
                Phase::Queued => counts.0 += 1,
                Phase::Running { .. } => counts.1 += 1,
                Phase::Done(_) => counts.2 += 1,
            }
        }
        counts.3 = inner.agents.values().filter(|a| a.link.is_some()).count();
        counts
    }
}

/// A CVE threat's facts as alert events carry them (the dashboard's badges).
fn cve_view(cve: &sec_scan::vulndb::CveThreat) -> Value {
    json!({
        "id": cve.cve,
        "cvss": cve.cvss.as_ref().map(|c| json!({"version": c.version, "score": c.score, "vector": c.vector})),
        "kev": cve.kev.as_ref().map(|k| json!({
            "date_added": k.date_added, "due_date": k.due_date,
            "ransomware": k.ransomware.as_deref() == Some("Known"),
        })),
        "epss": cve.epss.as_ref().map(|e| json!({"score": e.score, "percentile": e.percentile})),
        "confidence": cve.confidence,
        "source": cve.source,
        "evidence": cve.evidence,
    })
}

/// Banner findings of one result matched against the database, at most: a result is bounded by
/// the message size, this bounds the work one agent can ask of the server.
const MAX_MATCHED_FINDINGS: usize = 1_024;

/// Replaces a `vuln_scan` result's version judgements by the database's: threats of version
/// signatures (they carry a confidence but no CVE) go, CVE threats come.
fn match_vulns(check: &VulnCheck, mut result: ScanResult) -> ScanResult {
    result
        .threats
        .retain(|t| !(t.confidence.is_some() && t.cve.is_none()));
    result.threats.retain(|t| t.cve.is_none());
    let banners: Vec<sec_scan::Finding> = result
        .findings
        .iter()
        .filter(|f| sec_scan::vulndb::query_of(f).is_some())
        .take(MAX_MATCHED_FINDINGS)
        .cloned()
        .collect();
    let (cves, errors) = check.threats(&banners);
    for e in errors {
        tracing::warn!(task = %result.task_id, "{e}");
    }
    result.threats.extend(cves);
    sec_scan::signature::sort_threats(&mut result.threats);
    result
}
