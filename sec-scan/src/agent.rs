//! The network agent: takes tasks from a vigil server over WebSocket, runs them with a
//! [`TaskRunner`], and reports every result until the server has stored it.
//!
//! The wire protocol is the server's `/ws` protocol (JSON text frames tagged by `type`):
//!
//! 1. the upgrade carries `Authorization: Bearer <token>` → `welcome`;
//! 2. `{"type":"register_agent","agent_id"?,"name","capabilities","max_concurrent"}` →
//!    `registration_ack {agent_id, heartbeat_seconds}`;
//! 3. the server sends `assign_task {task}` and `command {command, task_id?}`; the agent sends
//!    `heartbeat`, `task_progress` and `scan_result {result}`, answered by
//!    `ack {of:"scan_result", id: task_id}` once the server has stored it.
//!
//! Guarantees:
//!
//! - **Nothing finished is lost.** A result stays in the agent's queue, and in its spool file
//!   when one is configured (so it also survives an agent restart), until the server
//!   acknowledges it. After a reconnect or a server restart every unacknowledged result is sent
//!   again; the server stores a task's result once, so resending is harmless. A result the
//!   server refuses for good (an unknown task, a task now held by another agent) is dropped and
//!   logged.
//! - **Scope is checked here too.** The runner re-checks every task against the agent's own
//!   scope ([`crate::LocalRunner`] does): a compromised server cannot aim the agent elsewhere.
//! - **Back-off.** A lost connection is retried with exponential back-off and jitter.
//! - **No attempt hangs.** One connection attempt — the TCP connect, the WebSocket upgrade, the
//!   `welcome` and the `registration_ack` — must finish within
//!   [`connect_timeout`](AgentConfig::connect_timeout) (10 s by default), or it is dropped
//!   ([`Error::Timeout`]) and retried with back-off: a load balancer whose backend died, or a
//!   server that accepts the connection and never answers, cannot hold the agent. A
//!   registration the server refuses for a passing reason (its database is away, it has no room
//!   now) is retried the same way; only a refused token or an agent id owned by another token
//!   stop the agent.
//! - **A result the server could not store is sent again** (after 0.5 s, doubling up to 30 s)
//!   on the same connection, until the server stores it or refuses it for good.
//! - **Graceful stop.** On shutdown the agent takes no new task, gives running tasks a grace
//!   period, reports what finished and disconnects: the server hands unfinished tasks to
//!   another agent.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::task::{ScanResult, ScanTask, TaskKind, TaskRunner, TaskStatus, backoff};

/// Agent settings.
///
/// | field | default | meaning |
/// |---|---|---|
/// | `server` | — | the server's WebSocket URL (`ws://host:port/ws` or `wss://…`) |
/// | `token` | — | an `agent` token |
/// | `agent_id` | none | a stable id to keep across restarts (the server assigns one otherwise) |
/// | `name` | `vigil-agent` | a display name |
/// | `capabilities` | every task kind | what this agent runs |
/// | `max_concurrent` | 4 | tasks at once (1..=64) |
/// | `spool` | none | a file keeping unacknowledged results across agent restarts |
/// | `stop_grace` | 30 s | how long running tasks may finish on shutdown |
/// | `reconnect_min`, `reconnect_max` | 0.5 s, 30 s | back-off between connection attempts (and between resends of a result the server could not store) |
/// | `connect_timeout` | 10 s | how long one connection attempt may take, from the TCP connect through the WebSocket upgrade to the server's `registration_ack` |
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The server's WebSocket URL.
    pub server: String,
    /// An `agent` token.
    pub token: String,
    /// A stable id.
    pub agent_id: Option<String>,
    /// A display name.
    pub name: String,
    /// What this agent runs.
    pub capabilities: Vec<TaskKind>,
    /// Tasks at once.
    pub max_concurrent: usize,
    /// Unacknowledged results are kept in this file.
    pub spool: Option<PathBuf>,
    /// How long running tasks may finish on shutdown.
    pub stop_grace: Duration,
    /// The first reconnect delay.
    pub reconnect_min: Duration,
    /// The longest reconnect delay.
    pub reconnect_max: Duration,
    /// How long one connection attempt may take, registration included; a slower one is
    /// dropped and retried after the back-off.
    pub connect_timeout: Duration,
}

impl AgentConfig {
    /// A configuration with the defaults for `server` and `token`.
    pub fn new(server: impl Into<String>, token: impl Into<String>) -> AgentConfig {
        AgentConfig {
            server: server.into(),
            token: token.into(),
            agent_id: None,
            name: "vigil-agent".into(),
            capabilities: vec![
                TaskKind::PortScan,
                TaskKind::BannerGrab,
                TaskKind::SslCheck,
                TaskKind::HttpProbe,
                TaskKind::VulnScan,
                TaskKind::CredentialCheck,
            ],
            max_concurrent: 4,
            spool: None,
            stop_grace: Duration::from_secs(30),
            reconnect_min: Duration::from_millis(500),
            reconnect_max: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
        }
    }

    fn check(&self) -> Result<()> {
        if !(self.server.starts_with("ws://") || self.server.starts_with("wss://")) {
            return Err(Error::Config(format!(
                "server must be a ws:// or wss:// URL, got {:?}",
                self.server
            )));
        }
        if self.server.contains('?') {
            return Err(Error::Config(
                "the server URL must not carry a query (tokens never go in URLs)".into(),
            ));
        }
        if !(1..=64).contains(&self.max_concurrent) {
            return Err(Error::Config("max_concurrent must be in 1..=64".into()));
        }
        if self.capabilities.is_empty() {
            return Err(Error::Config(
                "an agent needs at least one capability".into(),
            ));
        }
        if self.connect_timeout.is_zero() {
            return Err(Error::Config("connect_timeout must be positive".into()));
        }
        Ok(())
    }
}

/// Something the agent did, for a caller that wants to show it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AgentEvent {
    /// Connected and registered under this id.
    Registered(String),
    /// Took a task.
    TaskStarted(String),
    /// A task ended with this status; its result is queued for the server.
    TaskFinished(String, TaskStatus),
    /// The server stored a result.
    ResultAcknowledged(String),
    /// The server refused a result for good; it was dropped.
    ResultRefused(String, String),
    /// The connection was lost; retrying after this delay.
    Disconnected(String, Duration),
}

/// Results waiting for the server's acknowledgement, mirrored to the spool file.
struct Outbox {
    pending: BTreeMap<String, ScanResult>,
    spool: Option<PathBuf>,
    /// Tasks whose results the server stored lately: an `assign_task` for one of them (sent
    /// just before our resent result reached a restarted server) is not run twice.
    stored: std::collections::VecDeque<String>,
}

/// How many stored task ids an agent remembers.
const REMEMBERED: usize = 1024;

impl Outbox {
    fn load(spool: Option<PathBuf>) -> Result<Outbox> {
        let mut pending = BTreeMap::new();
        if let Some(path) = &spool
            && path.exists()
        {
            let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
                target: format!("spool file {}", path.display()),
                source: e,
            })?;
            for (n, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                match serde_json::from_str::<ScanResult>(line) {
                    Ok(result) => {
                        pending.insert(result.task_id.clone(), result);
                    }
                    // A torn last line (a crash mid-write) loses only itself.
                    Err(err) => {
                        tracing::warn!(line = n + 1, error = %err, "skipping a damaged spool line")
                    }
                }
            }
        }
        Ok(Outbox {
            pending,
            spool,
            stored: std::collections::VecDeque::new(),
        })
    }

    /// Rewrites the spool atomically (write a temporary file, then rename).
    fn save(&self) {
        let Some(path) = &self.spool else { return };
        let mut text = String::new();
        for result in self.pending.values() {
            if let Ok(line) = serde_json::to_string(result) {
                text.push_str(&line);
                text.push('\n');
            }
        }
        let tmp = path.with_extension("tmp");
        let written = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path));
        if let Err(err) = written {
            tracing::error!(path = %path.display(), error = %err, "writing the result spool failed; results are still held in memory");
        }
    }

    fn add(&mut self, result: ScanResult) {
        self.pending.insert(result.task_id.clone(), result);
        self.save();
    }

    fn remove(&mut self, task_id: &str) -> bool {
        let removed = self.pending.remove(task_id).is_some();
        if removed {
            self.save();
        }
        removed
    }

    /// The server stored this task's result.
    fn acknowledged(&mut self, task_id: &str) -> bool {
        if self.stored.len() == REMEMBERED {
            self.stored.pop_front();
        }
        self.stored.push_back(task_id.to_owned());
        self.remove(task_id)
    }

    /// Whether this task's result is waiting or was stored lately.
    fn knows(&self, task_id: &str) -> bool {
        self.pending.contains_key(task_id) || self.stored.iter().any(|id| id == task_id)
    }
}

/// A network agent.
pub struct Agent {
    config: AgentConfig,
    runner: Arc<dyn TaskRunner>,
    events: Option<mpsc::UnboundedSender<AgentEvent>>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("server", &self.config.server)
            .field("name", &self.config.name)
            .finish_non_exhaustive()
    }
}

/// Why a session ended.
enum SessionEnd {
    /// Shutdown was asked for and handled.
    Stopped,
    /// The connection was lost, timed out or was refused in a way worth retrying
    /// ([`Error::Server`] or [`Error::Timeout`]).
    Lost(Error),
}

/// Final error codes: the server will never take that result.
const REFUSED_FOR_GOOD: [&str; 3] = ["unknown_task", "not_your_task", "bad_result"];

/// Registration refusals that retrying cannot fix: the token may not register agents, or the
/// agent id belongs to another token.
const REGISTRATION_REFUSED_FOR_GOOD: [&str; 2] = ["forbidden", "agent_id_taken"];

/// Waits for `timer` when there is one, forever otherwise.
async fn fire(timer: &mut Option<std::pin::Pin<Box<tokio::time::Sleep>>>) {
    match timer {
        Some(timer) => timer.await,
        None => std::future::pending().await,
    }
}

impl Agent {
    /// An agent that runs tasks with `runner`.
    pub fn new(config: AgentConfig, runner: Arc<dyn TaskRunner>) -> Result<Agent> {
        config.check()?;
        Ok(Agent {
            config,
            runner,
            events: None,
        })
    }

    /// Reports what the agent does on `events`.
    pub fn with_events(mut self, events: mpsc::UnboundedSender<AgentEvent>) -> Agent {
        self.events = Some(events);
        self
    }

    fn emit(&self, event: AgentEvent) {
        if let Some(events) = &self.events {
            let _ = events.send(event);
        }
    }

    /// Runs until `shutdown` is cancelled, reconnecting as needed. Returns an error only for
    /// what retrying cannot fix: a refused token, a bad configuration, an unreadable spool.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let mut outbox = Outbox::load(self.config.spool.clone())?;
        let mut agent_id = self.config.agent_id.clone();
        let mut running: JoinSet<ScanResult> = JoinSet::new();
        let mut cancels: HashMap<String, CancellationToken> = HashMap::new();
        let mut attempt = 0u32;
        loop {
            let end = self
                .session(
                    &shutdown,
                    &mut outbox,
                    &mut agent_id,
                    &mut running,
                    &mut cancels,
                    &mut attempt,
                )
                .await?;
            match end {
                SessionEnd::Stopped => return Ok(()),
                SessionEnd::Lost(why) => {
                    attempt = attempt.saturating_add(1);
                    let delay = backoff(
                        attempt,
                        self.config.reconnect_min,
                        self.config.reconnect_max,
                    );
                    tracing::warn!(error = %why, retry_in = ?delay, "connection to the server lost");
                    self.emit(AgentEvent::Disconnected(why.to_string(), delay));
                    // Tasks keep running while we are away; their results wait in the outbox.
                    let wait = tokio::time::sleep(delay);
                    tokio::pin!(wait);
                    loop {
                        tokio::select! {
                            () = shutdown.cancelled() => {
                                self.drain(&mut running, &mut cancels, &mut outbox).await;
                                return Ok(());
                            }
                            () = &mut wait => break,
                            Some(done) = running.join_next(), if !running.is_empty() => {
                                if let Ok(result) = done {
                                    cancels.remove(&result.task_id);
                                    self.emit(AgentEvent::TaskFinished(result.task_id.clone(), result.status));
                                    outbox.add(result);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Lets running tasks finish within the grace period, cancels the rest (the server hands
    /// them to another agent), and keeps finished results in the outbox/spool.
    async fn drain(
        &self,
        running: &mut JoinSet<ScanResult>,
        cancels: &mut HashMap<String, CancellationToken>,
        outbox: &mut Outbox,
    ) {
        let deadline = tokio::time::sleep(self.config.stop_grace);
        tokio::pin!(deadline);
        while !running.is_empty() {
            tokio::select! {
                () = &mut deadline => break,
                Some(done) = running.join_next() => {
                    if let Ok(result) = done {
                        cancels.remove(&result.task_id);
                        outbox.add(result);
                    }
                }
            }
        }
        for token in cancels.values() {
            token.cancel();
        }
        running.abort_all();
    }

    #[allow(clippy::too_many_arguments)]
    /// The WebSocket upgrade request: the server URL, with the token in `Authorization`.
    fn upgrade_request(
        &self,
    ) -> Result<tokio_tungstenite::tungstenite::handshake::client::Request> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = self
            .config
            .server
            .as_str()
            .into_client_request()
            .map_err(|e| Error::Config(format!("server URL: {e}")))?;
        let bearer = format!("Bearer {}", self.config.token)
            .parse()
            .map_err(|_| {
                Error::Config("the token holds characters no HTTP header can carry".into())
            })?;
        request.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::header::AUTHORIZATION,
            bearer,
        );
        Ok(request)
    }

    async fn session(
        &self,
        shutdown: &CancellationToken,
        outbox: &mut Outbox,
        agent_id: &mut Option<String>,
        running: &mut JoinSet<ScanResult>,
        cancels: &mut HashMap<String, CancellationToken>,
        attempt: &mut u32,
    ) -> Result<SessionEnd> {
        let server = &self.config.server;
        let lost = |message: String| -> Result<SessionEnd> {
            Ok(SessionEnd::Lost(Error::Server {
                server: server.clone(),
                message,
            }))
        };
        let timed_out = |what: &'static str| -> Result<SessionEnd> {
            Ok(SessionEnd::Lost(Error::Timeout {
                what,
                target: server.clone(),
                after: self.config.connect_timeout,
            }))
        };
        // One deadline for the whole attempt: connect, upgrade, welcome, registration.
        let deadline = tokio::time::Instant::now() + self.config.connect_timeout;
        let connect = tokio::select! {
            () = shutdown.cancelled() => {
                self.drain(running, cancels, outbox).await;
                return Ok(SessionEnd::Stopped);
            }
            c = tokio::time::timeout_at(deadline, tokio_tungstenite::connect_async(self.upgrade_request()?)) => c,
        };
        let (ws, _) = match connect {
            Ok(Ok(pair)) => pair,
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response)))
                if response.status().is_client_error() =>
            {
                return Err(Error::Config(format!(
                    "the server refused the connection: HTTP {}",
                    response.status()
                )));
            }
            Ok(Err(err)) => return lost(err.to_string()),
            Err(_) => return timed_out("connecting (TCP and WebSocket upgrade)"),
        };
        // The token went with the upgrade (`Authorization: Bearer`): the server welcomes the
        // agent without an `auth` message, and counts it apart from anonymous sockets.
        let (mut sink, mut stream) = ws.split();
        let text = |v: Value| Message::Text(v.to_string().into());
        let mut heartbeat = tokio::time::interval(Duration::from_secs(10));
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut registered = false;
        // Results the server could not store (its database was away) go again when this fires;
        // `refusals` counts such refusals in a row, for the back-off.
        let mut resend: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
        let mut refusals = 0u32;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => {
                    // Finish what can be finished, report it, then leave: the server requeues
                    // whatever is still running.
                    self.drain(running, cancels, outbox).await;
                    for result in outbox.pending.values() {
                        let _ = sink.feed(text(json!({"type": "scan_result", "result": result}))).await;
                    }
                    let _ = sink.flush().await;
                    // Give the server a moment to acknowledge; unacknowledged results stay
                    // in the spool for the next run.
                    let acks = async {
                        while !outbox.pending.is_empty() {
                            let Some(Ok(Message::Text(t))) = stream.next().await else { break };
                            let Ok(frame) = serde_json::from_str::<Value>(&t) else { continue };
                            if frame["type"] == "ack" && frame["of"] == "scan_result"
                                && let Some(id) = frame["id"].as_str()
                            {
                                outbox.acknowledged(id);
                            }
                        }
                    };
                    let _ = tokio::time::timeout(Duration::from_secs(5), acks).await;
                    let _ = sink.send(Message::Close(None)).await;
                    return Ok(SessionEnd::Stopped);
                }
                () = tokio::time::sleep_until(deadline), if !registered => {
                    return timed_out("registering (welcome and registration_ack)");
                }
                () = fire(&mut resend) => {
                    resend = None;
                    // Every unacknowledged result: the server stores each once.
                    for result in outbox.pending.values() {
                        let _ = sink.feed(text(json!({"type": "scan_result", "result": result}))).await;
                    }
                    if sink.flush().await.is_err() {
                        return lost("send failed".into());
                    }
                }
                _ = heartbeat.tick(), if registered => {
                    let ids: Vec<&String> = cancels.keys().collect();
                    if sink.send(text(json!({"type": "heartbeat", "running": ids}))).await.is_err() {
                        return lost("heartbeat failed".into());
                    }
                }
                Some(done) = running.join_next(), if !running.is_empty() => {
                    let Ok(result) = done else { continue };
                    cancels.remove(&result.task_id);
                    self.emit(AgentEvent::TaskFinished(result.task_id.clone(), result.status));
                    let frame = json!({"type": "scan_result", "result": result});
                    outbox.add(result);
                    if registered && sink.send(text(frame)).await.is_err() {
                        return lost("send failed".into());
                    }
                }
                frame = stream.next() => {
                    let message = match frame {
                        Some(Ok(m)) => m,
                        Some(Err(err)) => return lost(err.to_string()),
                        None => return lost("the server closed the connection".into()),
                    };
                    let body = match message {
                        Message::Text(t) => t,
                        Message::Close(Some(close)) => {
                            let code = u16::from(close.code);
                            if code == 4001 || code == 4003 {
                                return Err(Error::Config(format!("the server refused this agent ({code}): {}", close.reason)));
                            }
                            return lost(format!("closed {code}: {}", close.reason));
                        }
                        Message::Close(None) => return lost("closed".into()),
                        _ => continue,
                    };
                    let Ok(frame) = serde_json::from_str::<Value>(&body) else { continue };
                    match frame["type"].as_str().unwrap_or_default() {
                        "welcome" => {
                            let hello = json!({
                                "type": "register_agent", "agent_id": agent_id, "name": self.config.name,
                                "capabilities": self.config.capabilities, "max_concurrent": self.config.max_concurrent,
                            });
                            if sink.send(text(hello)).await.is_err() {
                                return lost("send failed".into());
                            }
                        }
                        "registration_ack" => {
                            let id = frame["agent_id"].as_str().unwrap_or_default().to_owned();
                            let every = frame["heartbeat_seconds"].as_u64().unwrap_or(10).clamp(1, 300);
                            heartbeat = tokio::time::interval(Duration::from_secs(every));
                            heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                            *agent_id = Some(id.clone());
                            registered = true;
                            *attempt = 0;
                            tracing::info!(agent = %id, "registered with the server");
                            self.emit(AgentEvent::Registered(id));
                            // Everything not yet acknowledged goes again; the server stores once.
                            for result in outbox.pending.values() {
                                let _ = sink.feed(text(json!({"type": "scan_result", "result": result}))).await;
                            }
                            if sink.flush().await.is_err() {
                                return lost("send failed".into());
                            }
                        }
                        "assign_task" => {
                            let Ok(task) = serde_json::from_value::<ScanTask>(frame["task"].clone()) else {
                                tracing::warn!("the server sent a task that does not parse; ignored");
                                continue;
                            };
                            if cancels.contains_key(&task.id) || outbox.knows(&task.id) {
                                continue;
                            }
                            self.emit(AgentEvent::TaskStarted(task.id.clone()));
                            let cancel = CancellationToken::new();
                            cancels.insert(task.id.clone(), cancel.clone());
                            let runner = Arc::clone(&self.runner);
                            let agent = agent_id.clone().unwrap_or_default();
                            running.spawn(run_task(runner, task, agent, cancel));
                        }
                        "command" => match frame["command"].as_str().unwrap_or_default() {
                            "cancel" => {
                                if let Some(token) = frame["task_id"].as_str().and_then(|id| cancels.get(id)) {
                                    token.cancel();
                                }
                            }
                            "stop" => shutdown.cancel(),
                            "health_check" => {
                                let ids: Vec<&String> = cancels.keys().collect();
                                let _ = sink.send(text(json!({"type": "heartbeat", "running": ids}))).await;
                            }
                            other => tracing::debug!(command = other, "unknown command ignored"),
                        },
                        "ack" if frame["of"] == "scan_result" => {
                            if let Some(id) = frame["id"].as_str()
                                && outbox.acknowledged(id)
                            {
                                refusals = 0;
                                self.emit(AgentEvent::ResultAcknowledged(id.to_owned()));
                            }
                        }
                        "error" => {
                            let code = frame["code"].as_str().unwrap_or_default();
                            let id = frame["id"].as_str().unwrap_or_default();
                            let message = frame["message"].as_str().unwrap_or(code).to_owned();
                            if !registered {
                                // Before registration, an error answers `register_agent`.
                                if REGISTRATION_REFUSED_FOR_GOOD.contains(&code) {
                                    return Err(Error::Config(format!("the server refused to register this agent ({code}): {message}")));
                                }
                                // Passing (the server's database is away, no room now): try
                                // again on a new connection after the back-off.
                                return lost(format!("registration refused ({code}): {message}"));
                            }
                            if REFUSED_FOR_GOOD.contains(&code) {
                                if outbox.remove(id) {
                                    tracing::warn!(task = id, code, %message, "the server refused a result; dropped");
                                    self.emit(AgentEvent::ResultRefused(id.to_owned(), message));
                                }
                            } else if outbox.pending.contains_key(id) {
                                // Not stored now (`storage_failed`): the server asks for it again.
                                refusals = refusals.saturating_add(1);
                                let delay = backoff(refusals, self.config.reconnect_min, self.config.reconnect_max);
                                tracing::warn!(task = id, code, %message, retry_in = ?delay, "the server could not take a result; sending it again");
                                if resend.is_none() {
                                    resend = Some(Box::pin(tokio::time::sleep(delay)));
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

/// Runs one task with `runner` and turns the outcome into the result an agent reports: success
/// or partial with findings and threats, cancelled, or failed with the error. The network agent
/// and the server's in-process agent both use it.
pub async fn run_task(
    runner: Arc<dyn TaskRunner>,
    task: ScanTask,
    agent_id: String,
    cancel: CancellationToken,
) -> ScanResult {
    let started = Instant::now();
    let outcome = runner.run(&task, cancel.clone()).await;
    let (status, findings, threats, error) = match outcome {
        Ok(_) if cancel.is_cancelled() => (TaskStatus::Cancelled, Vec::new(), Vec::new(), None),
        Ok(out) => (
            if out.partial {
                TaskStatus::Partial
            } else {
                TaskStatus::Success
            },
            out.findings,
            out.threats,
            None,
        ),
        Err(err) => (
            TaskStatus::Failed,
            Vec::new(),
            Vec::new(),
            Some(err.to_string()),
        ),
    };
    ScanResult {
        scan_id: task.scan_id.clone(),
        task_id: task.id.clone(),
        agent_id,
        target: task.target.clone(),
        kind: task.kind,
        status,
        findings,
        threats,
        duration_seconds: started.elapsed().as_secs_f64(),
        time: Utc::now(),
        attempts: 1,
        error,
    }
}
