//! Orchestration shared by several nodes: the queue is in PostgreSQL, each node dispatches to
//! the agents it holds.
//!
//! With a shared store ([`crate::store::Store::Postgres`]) and a cluster
//! ([`crate::node::cluster::Cluster`]) the orchestrator keeps no queue in memory. What it holds is
//! this node's agents (their connections and slots) and the tasks they run now.
//!
//! | step | where | how |
//! |---|---|---|
//! | schedule | any node | the scan and its tasks in one transaction, then `NOTIFY`; every node's dispatcher wakes |
//! | dispatch | the node holding an agent with a free slot | [`PgStore::claim`]: `FOR UPDATE SKIP LOCKED`, highest priority first; the task's attempt number is its fencing token |
//! | heartbeat | the agent's node | [`PgStore::renew`] extends the leases of everything the agent holds |
//! | result | whichever node the agent is connected to now | [`PgStore::complete`]: task, result and alerts in one transaction, fenced by agent and attempt; each alert and each scan completion is told to exactly one node, which publishes it |
//! | disconnect | the agent's node | [`PgStore::release_agent`] requeues its tasks at once (or fails them, retries spent) |
//! | node dies | every other node | the leases run out and the reaper on every node ([`PgStore::reap`], each second) requeues them once; an agent that reconnects through another node before that keeps its tasks there ([`PgStore::adopt`]) and its result is stored once |
//! | cancel, commands | any node | to the agent's node over the control channel when another node holds it |
//!
//! Views (`/api/scans`, `/api/agents`, `/stats`) read the database, so every node shows the
//! cluster. `/api/agents` lists the agents connected now (the `agent_presence` table, refreshed
//! by heartbeats; rows of a node that died age out after two leases).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use event_bus::Severity;
use parking_lot::Mutex;
use sec_scan::{ScanResult, ScanTask, TaskKind, TaskStatus};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{
    AgentCommand, AgentOrder, AgentRefused, AgentState, AgentView, Orchestrator, Phase,
    ResultRefused, TaskState, TaskView, alert_rows, check_on_target, kind_name, match_vulns,
    parse_kind, status_name,
};
use crate::error::ApiError;
use crate::node::cluster::{Cluster, Control};
use crate::store::postgres::{Completion, Presence, Reaped, TaskListener};
use crate::store::{PgStore, Store};

/// How often a dispatcher looks at the queue without being woken.
const POLL: Duration = Duration::from_secs(1);

/// This node's handle on the shared queue.
#[derive(Debug)]
pub struct SharedQueue {
    pg: PgStore,
    cluster: Arc<Cluster>,
    wake: Notify,
    /// (queued, running, done, online agents), refreshed by the dispatcher every second.
    counts: Mutex<(usize, usize, usize, usize)>,
}

fn storage(err: impl std::fmt::Display) -> ResultRefused {
    ResultRefused::Storage(err.to_string())
}

fn internal(err: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "storage_unavailable",
        format!("the shared database: {err}"),
    )
}

fn status_of(name: &str) -> Option<TaskStatus> {
    serde_json::from_value(Value::String(name.to_owned())).ok()
}

impl SharedQueue {
    /// The shared queue when the store is shared; an error when the store is shared but the
    /// node is in no cluster (or the other way round).
    pub(super) fn new(
        store: &Store,
        cluster: Option<&Arc<Cluster>>,
    ) -> crate::Result<Option<SharedQueue>> {
        match (store.shared(), cluster) {
            (None, None) => Ok(None),
            (Some(pg), Some(cluster)) => Ok(Some(SharedQueue {
                pg: pg.clone(),
                cluster: cluster.clone(),
                wake: Notify::new(),
                counts: Mutex::new((0, 0, 0, 0)),
            })),
            _ => Err(crate::Error::Config(
                "a shared database needs a cluster (database_url and redis_url go together)".into(),
            )),
        }
    }

    /// Wakes this node's dispatcher.
    pub(super) fn wake(&self) {
        self.wake.notify_one();
    }

    pub(super) fn counts(&self) -> (usize, usize, usize, usize) {
        *self.counts.lock()
    }

    fn node_id(&self) -> &str {
        self.cluster.node_id()
    }

    pub(super) fn node(&self) -> &str {
        self.node_id()
    }

    /// Extends the leases of what the agent holds and its presence, without waiting. A
    /// presence swept while the database was away (longer than two leases) is recorded again.
    pub(super) fn renew(&self, presence: Presence, lease: Duration) {
        let pg = self.pg.clone();
        tokio::spawn(async move {
            let agent = &presence.id;
            if let Err(err) = pg.renew(agent, lease).await {
                tracing::warn!(error = %err, agent = %agent, "renewing leases failed");
            }
            let refreshed = match pg.touch_presence(agent, &presence.node_id).await {
                Ok(true) => Ok(()),
                Ok(false) => pg.upsert_presence(&presence).await,
                Err(err) => Err(err),
            };
            if let Err(err) = refreshed {
                tracing::warn!(error = %err, agent = %agent, "refreshing presence failed");
            }
        });
    }

    /// How the cluster lists `agent` (connected here) under `agent_id`.
    pub(super) fn presence(&self, agent_id: &str, agent: &AgentState) -> Presence {
        Presence {
            id: agent_id.to_owned(),
            node_id: self.node_id().to_owned(),
            name: agent.name.clone(),
            capabilities: serde_json::to_string(&agent.capabilities).unwrap_or_default(),
            max_concurrent: u32::try_from(agent.max_concurrent).unwrap_or(u32::MAX),
            local: agent.local,
            running: 0,
            since: agent.last_seen_at,
            last_seen: agent.last_seen_at,
        }
    }
}

impl Orchestrator {
    /// Gives the agent its id for the whole cluster: the id it asked for when no other token
    /// owns it anywhere, else a fresh one.
    pub(super) async fn claim_shared_id(
        &self,
        queue: &SharedQueue,
        wanted: Option<String>,
        owner: &str,
    ) -> Result<String, AgentRefused> {
        let wanted = wanted
            .filter(|id| !id.is_empty() && id.len() <= 128 && !id.chars().any(char::is_control));
        let id = wanted.unwrap_or_else(|| {
            format!("agent-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
        });
        let holder = queue
            .pg
            .claim_agent_id(&id, owner)
            .await
            .map_err(|e| AgentRefused::Storage(e.to_string()))?;
        if holder != owner {
            return Err(AgentRefused::NotYours(id));
        }
        self.inner.lock().owners.insert(id.clone(), holder);
        Ok(id)
    }

    /// After an agent registered here: its presence, and the tasks it still holds from before
    /// (leased through a node that died, or here before a reconnect) move to this node.
    pub(super) async fn joined_shared(&self, queue: &SharedQueue, agent_id: &str, local: bool) {
        let presence = {
            let inner = self.inner.lock();
            inner.agents.get(agent_id).map(|a| Presence {
                local,
                ..queue.presence(agent_id, a)
            })
        };
        if let Some(presence) = presence
            && let Err(err) = queue.pg.upsert_presence(&presence).await
        {
            tracing::warn!(error = %err, agent = agent_id, "recording presence failed");
        }
        match queue.pg.adopt(agent_id, queue.node_id()).await {
            Ok(held) => {
                let mut inner = self.inner.lock();
                for claimed in held {
                    let Ok(task) = serde_json::from_str::<ScanTask>(&claimed.task) else {
                        continue;
                    };
                    if let Some(agent) = inner.agents.get_mut(agent_id) {
                        agent.running.insert(claimed.task_id.clone());
                    }
                    inner.tasks.insert(
                        claimed.task_id,
                        TaskState {
                            task,
                            phase: Phase::Running {
                                agent: agent_id.to_owned(),
                            },
                            attempts: claimed.attempt,
                            last_agent: Some(agent_id.to_owned()),
                        },
                    );
                }
            }
            Err(err) => tracing::warn!(error = %err, agent = agent_id, "adopting tasks failed"),
        }
        queue.wake();
    }

    /// After an agent left this node: its tasks go back to the queue at once.
    pub(super) fn left_shared(&self, queue: &SharedQueue, agent_id: &str) {
        let (pg, agent, node) = (
            queue.pg.clone(),
            agent_id.to_owned(),
            queue.node_id().to_owned(),
        );
        let Some(this) = self.me() else {
            return;
        };
        tokio::spawn(async move {
            match pg.release_agent(&agent, &node).await {
                Ok(reaped) => this.after_reap(&reaped).await,
                Err(err) => {
                    tracing::warn!(error = %err, agent = %agent, "releasing tasks failed; the reapers will")
                }
            }
            if let Err(err) = pg.remove_presence(&agent, &node).await {
                tracing::warn!(error = %err, agent = %agent, "removing presence failed");
            }
            if let Some(queue) = &this.shared {
                queue.wake();
            }
        });
    }

    /// The dispatcher of a node in a cluster: claims tasks for this node's agents when woken
    /// (a `NOTIFY`, a local change) or every second, reaps expired leases and refreshes the
    /// counts. Runs until `stop`.
    pub async fn run_shared(self: Arc<Self>, stop: CancellationToken) {
        let Some(queue) = &self.shared else {
            return;
        };
        self.attach();
        let mut listener = None;
        let mut last_reap = tokio::time::Instant::now() - POLL;
        loop {
            if listener.is_none() {
                match queue.pg.listen().await {
                    Ok(l) => listener = Some(l),
                    Err(err) => tracing::warn!(error = %err, "listening for tasks failed; polling"),
                }
            }
            let notified = TaskListener::notified_if(listener.as_ref());
            tokio::select! {
                () = stop.cancelled() => return,
                () = notified => {}
                () = queue.wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
            self.dispatch_shared(queue).await;
            if last_reap.elapsed() >= POLL {
                last_reap = tokio::time::Instant::now();
                match queue.pg.reap().await {
                    Ok(reaped) => {
                        if !reaped.is_empty() {
                            tracing::warn!(tasks = reaped.len(), "leases expired; tasks requeued");
                            self.after_reap(&reaped).await;
                            self.dispatch_shared(queue).await;
                        }
                    }
                    Err(err) => tracing::warn!(error = %err, "reaping leases failed"),
                }
                self.refresh_counts(queue).await;
            }
        }
    }

    fn me(&self) -> Option<Arc<Orchestrator>> {
        self.myself.lock().upgrade()
    }

    async fn refresh_counts(&self, queue: &SharedQueue) {
        let (Ok(tasks), Ok(agents)) = (
            queue.pg.task_counts().await,
            queue.pg.presences(self.config.lease * 2).await,
        ) else {
            return;
        };
        let mut counts = (0, 0, 0, agents.len());
        for (state, n) in tasks {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            match state.as_str() {
                "queued" => counts.0 += n,
                "running" => counts.1 += n,
                _ => counts.2 += n,
            }
        }
        *queue.counts.lock() = counts;
    }

    /// Claims queued tasks for every agent of this node with a free slot and sends them.
    async fn dispatch_shared(&self, queue: &SharedQueue) {
        let wanting: Vec<(String, Vec<String>, usize)> = {
            let inner = self.inner.lock();
            inner
                .agents
                .iter()
                .filter(|(_, a)| a.link.is_some() && a.running.len() < a.max_concurrent)
                .map(|(id, a)| {
                    let kinds = a.capabilities.iter().map(|k| kind_name(*k)).collect();
                    (id.clone(), kinds, a.max_concurrent - a.running.len())
                })
                .collect()
        };
        for (agent_id, kinds, free) in wanting {
            let claimed = match queue
                .pg
                .claim(&agent_id, queue.node_id(), &kinds, free, self.config.lease)
                .await
            {
                Ok(claimed) => claimed,
                Err(err) => {
                    tracing::warn!(error = %err, "claiming tasks failed");
                    return;
                }
            };
            let mut lost = false;
            for claimed in claimed {
                let Ok(task) = serde_json::from_str::<ScanTask>(&claimed.task) else {
                    tracing::warn!(task = %claimed.task_id, "stored task does not parse; left to the reapers");
                    continue;
                };
                let mut inner = self.inner.lock();
                let sent = inner
                    .agents
                    .get(&agent_id)
                    .and_then(|a| a.link.as_ref())
                    .is_some_and(|link| link.send(AgentOrder::Assign(task.clone())).is_ok());
                if !sent {
                    lost = true;
                    continue;
                }
                if let Some(agent) = inner.agents.get_mut(&agent_id) {
                    agent.running.insert(claimed.task_id.clone());
                }
                let (scan_id, target, kind) =
                    (task.scan_id.clone(), task.target.clone(), task.kind);
                inner.tasks.insert(
                    claimed.task_id.clone(),
                    TaskState {
                        task,
                        phase: Phase::Running {
                            agent: agent_id.clone(),
                        },
                        attempts: claimed.attempt,
                        last_agent: Some(agent_id.clone()),
                    },
                );
                drop(inner);
                self.publish(
                    "scan_started",
                    "scans",
                    Severity::Info,
                    json!({"scan_id": scan_id, "task_id": claimed.task_id, "target": target,
                           "kind": kind_name(kind), "agent_id": agent_id, "attempt": claimed.attempt,
                           "node_id": queue.node_id()}),
                );
            }
            if lost {
                // The agent went away while its tasks were being claimed: hand them back now
                // rather than when their lease runs out.
                self.left_shared(queue, &agent_id);
            }
        }
    }

    /// Publishes what reaping (or a release) ended: failed tasks and completed scans.
    async fn after_reap(&self, reaped: &[Reaped]) {
        for r in reaped {
            if r.state == "failed" {
                self.publish(
                    "scan_update",
                    "scans",
                    Severity::Error,
                    json!({"scan_id": r.scan_id, "task_id": r.task_id, "status": "failed",
                           "agent_id": r.agent_id, "findings": 0, "threats": [],
                           "error": format!("retries spent after {} attempts; the agent or its node went away", r.attempts)}),
                );
            }
            if r.scan_completed {
                self.scan_ended_shared(&r.scan_id).await;
            }
        }
    }

    /// Publishes a scan's completion from its tasks' end states in the database.
    async fn scan_ended_shared(&self, scan_id: &str) {
        let Some(queue) = &self.shared else {
            return;
        };
        match queue.pg.scan_tasks(scan_id).await {
            Ok(rows) => {
                let statuses: Vec<TaskStatus> =
                    rows.iter().filter_map(|t| status_of(&t.status)).collect();
                self.publish_scan_end(scan_id, &statuses);
            }
            Err(err) => {
                tracing::warn!(error = %err, scan = scan_id, "reading a completed scan failed")
            }
        }
    }

    /// Takes a result at this node, whichever node leased the task.
    pub(super) async fn submit_shared(
        &self,
        queue: &SharedQueue,
        agent_id: &str,
        mut result: ScanResult,
    ) -> Result<bool, ResultRefused> {
        let here = {
            let inner = self.inner.lock();
            inner
                .tasks
                .get(&result.task_id)
                .and_then(|t| match &t.phase {
                    Phase::Running { agent } if agent == agent_id => {
                        Some((t.task.clone(), t.attempts))
                    }
                    _ => None,
                })
        };
        let (task, attempt) = match here {
            Some(found) => found,
            None => {
                let holder = queue
                    .pg
                    .holder(&result.task_id)
                    .await
                    .map_err(storage)?
                    .ok_or(ResultRefused::UnknownTask)?;
                let task = serde_json::from_str::<ScanTask>(&holder.task).map_err(storage)?;
                (task, holder.attempt)
            }
        };
        if result.scan_id != task.scan_id {
            return Err(ResultRefused::Mismatch("scan_id"));
        }
        if result.kind != task.kind {
            return Err(ResultRefused::Mismatch("kind"));
        }
        check_on_target(&task, &result)?;
        result.target = task.target.clone();
        result.agent_id = agent_id.to_owned();
        if result.kind == TaskKind::VulnScan
            && let Some(check) = self.config.vulns.clone()
        {
            result = tokio::task::spawn_blocking(move || match_vulns(&check, result))
                .await
                .map_err(|e| storage(format!("vulnerability matching: {e}")))?;
        }
        let alerts = alert_rows(&result);
        let json = serde_json::to_string(&result).map_err(storage)?;
        let status = status_name(result.status);
        let completion = queue
            .pg
            .complete(&result.task_id, agent_id, attempt, &status, &json, &alerts)
            .await
            .map_err(storage)?;
        let forget = |this: &Orchestrator| {
            let mut inner = this.inner.lock();
            inner.tasks.remove(&result.task_id);
            if let Some(agent) = inner.agents.get_mut(agent_id) {
                agent.running.remove(&result.task_id);
            }
        };
        match completion {
            Completion::Stored {
                alerts,
                scan_completed,
            } => {
                forget(self);
                self.publish_task_end(
                    &task.scan_id,
                    &result.task_id,
                    &task.target,
                    task.kind,
                    result.status,
                    Some(&result),
                    &alerts,
                );
                if scan_completed {
                    self.scan_ended_shared(&task.scan_id).await;
                }
                queue.wake();
                Ok(true)
            }
            Completion::Duplicate => {
                forget(self);
                queue.wake();
                Ok(false)
            }
            Completion::Fenced { .. } => Err(ResultRefused::NotYours),
        }
    }

    /// Cancels a scan for the whole cluster.
    pub(super) async fn cancel_shared(
        &self,
        queue: &SharedQueue,
        scan_id: &str,
    ) -> Result<usize, ApiError> {
        let cancellation = queue
            .pg
            .cancel_scan(scan_id)
            .await
            .map_err(internal)?
            .ok_or_else(|| {
                ApiError::new(
                    axum::http::StatusCode::NOT_FOUND,
                    "unknown_scan",
                    format!("no scan {scan_id}"),
                )
            })?;
        for task_id in &cancellation.cancelled {
            self.publish(
                "scan_update",
                "scans",
                Severity::Info,
                json!({"scan_id": scan_id, "task_id": task_id, "status": "cancelled",
                       "findings": 0, "threats": []}),
            );
        }
        for held in &cancellation.running {
            let Some(agent_id) = &held.agent_id else {
                continue;
            };
            if let Err(err) = self
                .command(agent_id, AgentCommand::Cancel, Some(held.task_id.clone()))
                .await
            {
                tracing::warn!(agent = %agent_id, task = %held.task_id, error = %err.message, "cancel not delivered");
            }
        }
        if cancellation.scan_completed {
            self.scan_ended_shared(scan_id).await;
        }
        Ok(cancellation.cancelled.len() + cancellation.running.len())
    }

    /// Sends a command to an agent another node holds, over the control channel.
    pub(super) async fn command_elsewhere(
        &self,
        queue: &SharedQueue,
        agent_id: &str,
        command: AgentCommand,
        task_id: Option<String>,
    ) -> Result<(), ApiError> {
        let online = queue
            .pg
            .presences(self.config.lease * 2)
            .await
            .map_err(internal)?
            .into_iter()
            .any(|p| p.id == agent_id);
        if !online {
            return Err(ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "unknown_agent",
                format!("no online agent {agent_id}"),
            ));
        }
        queue
            .cluster
            .announce(Control::Command {
                agent_id: agent_id.to_owned(),
                command,
                task_id,
            })
            .await
            .map_err(internal)
    }

    /// The agents connected to any node of the cluster.
    pub(super) async fn agents_shared(
        &self,
        queue: &SharedQueue,
    ) -> Result<Vec<AgentView>, ApiError> {
        let presences = queue
            .pg
            .presences(self.config.lease * 2)
            .await
            .map_err(internal)?;
        Ok(presences
            .into_iter()
            .map(|p| {
                let names: Vec<String> = serde_json::from_str(&p.capabilities).unwrap_or_default();
                AgentView {
                    id: p.id,
                    name: p.name,
                    status: "online",
                    capabilities: names.iter().filter_map(|n| parse_kind(n)).collect(),
                    running: usize::try_from(p.running).unwrap_or(usize::MAX),
                    max_concurrent: usize::try_from(p.max_concurrent).unwrap_or(usize::MAX),
                    last_heartbeat: p.last_seen,
                    local: p.local,
                    node_id: Some(p.node_id),
                }
            })
            .collect())
    }

    /// Every scan of the cluster (or the one named), newest first, with its tasks.
    pub(super) async fn scans_shared(
        &self,
        queue: &SharedQueue,
        only: Option<&str>,
    ) -> Result<Vec<Value>, ApiError> {
        let mut scans = queue.pg.scans().await.map_err(internal)?;
        if let Some(id) = only {
            scans.retain(|s| s.id == id);
        }
        if scans.is_empty() {
            return Ok(Vec::new());
        }
        let rows = match only {
            Some(id) => queue.pg.scan_tasks(id).await,
            None => queue.pg.tasks().await,
        }
        .map_err(internal)?;
        let mut by_scan: HashMap<&str, Vec<TaskView>> = HashMap::new();
        for row in &rows {
            let Ok(task) = serde_json::from_str::<ScanTask>(&row.task) else {
                continue;
            };
            by_scan
                .entry(row.scan_id.as_str())
                .or_default()
                .push(TaskView {
                    task_id: row.id.clone(),
                    kind: task.kind,
                    target: task.target,
                    status: row.status.clone(),
                    agent_id: (row.status == "running")
                        .then(|| row.agent.clone())
                        .flatten(),
                    attempts: row.attempts,
                });
        }
        scans.sort_by_key(|s| std::cmp::Reverse(s.created));
        Ok(scans
            .iter()
            .map(|s| {
                let request: Value = serde_json::from_str(&s.request).unwrap_or(Value::Null);
                let tasks = by_scan.remove(s.id.as_str()).unwrap_or_default();
                let completed = !tasks.is_empty()
                    && tasks
                        .iter()
                        .all(|t| t.status != "queued" && t.status != "running");
                json!({"scan_id": s.id, "requested_by": s.requested_by, "created": s.created,
                       "completed": completed, "targets": request["targets"],
                       "scan_types": request["scan_types"], "ports": request["ports"],
                       "tasks": tasks})
            })
            .collect())
    }
}
