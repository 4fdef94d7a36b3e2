//! Scan tasks, their results, and an in-process executor with a priority queue.
//!
//! [`ScanTask`] and [`ScanResult`] carry the seed design's fields, typed. The [`Executor`] runs
//! tasks through a [`TaskRunner`] (the scanning logic, or a test double):
//!
//! - **priority queue**: priority 1 to 10, higher first; FIFO within a priority. A task waits
//!   in the queue until a slot is free — it is never dropped for want of a worker;
//! - **concurrency limit**: at most [`ExecutorConfig::concurrency`] tasks run at once;
//! - **retries** with exponential backoff and jitter (half fixed, half random), up to the
//!   task's own `retries`;
//! - **per-task timeout**, counted per attempt;
//! - **cancellation** of a queued, waiting or running task, and shutdown of the whole executor;
//! - every task ends in exactly one [`ScanResult`] on the results channel.
//!
//! The network agent (a later piece of work) will feed this same executor from its server
//! connection; in-process users call [`ExecutorHandle::submit`].

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::finding::Finding;
use crate::portscan::random_u64;
use crate::signature::Threat;

/// What a task does (the seed's scan types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TaskKind {
    /// TCP connect port scan.
    PortScan,
    /// TLS certificate and protocol check.
    SslCheck,
    /// HTTP probe.
    HttpProbe,
    /// Banner grab and service identification.
    BannerGrab,
    /// Port scan plus banners, TLS and HTTP, matched against signatures.
    VulnScan,
    /// Opt-in unauthenticated-access and default-credential checks.
    CredentialCheck,
}

impl fmt::Display for TaskKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TaskKind::PortScan => "port_scan",
            TaskKind::SslCheck => "ssl_check",
            TaskKind::HttpProbe => "http_probe",
            TaskKind::BannerGrab => "banner_grab",
            TaskKind::VulnScan => "vuln_scan",
            TaskKind::CredentialCheck => "credential_check",
        })
    }
}

/// A task priority, 1 (lowest) to 10 (most urgent). Default 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Priority(u8);

impl Priority {
    /// A priority; fails outside 1..=10.
    pub fn new(p: u8) -> Result<Self> {
        if (1..=10).contains(&p) {
            Ok(Self(p))
        } else {
            Err(Error::Queue(format!("priority {p} is outside 1..=10")))
        }
    }

    /// The value.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl Default for Priority {
    fn default() -> Self {
        Self(5)
    }
}

impl TryFrom<u8> for Priority {
    type Error = Error;
    fn try_from(p: u8) -> Result<Self> {
        Priority::new(p)
    }
}

impl From<Priority> for u8 {
    fn from(p: Priority) -> u8 {
        p.0
    }
}

/// A unit of scanning work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanTask {
    /// Unique task id.
    pub id: String,
    /// The scan this task belongs to (a scan may have several tasks).
    pub scan_id: String,
    /// What to do.
    pub kind: TaskKind,
    /// Target as text (address, network, range or host name); checked against the scope by
    /// the runner.
    pub target: String,
    /// Port specification (`22,80,1000-2000`, `all`, `top100`); `None` for the kind's default.
    pub ports: Option<String>,
    /// Kind-specific parameters.
    #[serde(default)]
    pub parameters: serde_json::Map<String, serde_json::Value>,
    /// Priority, 1..=10, higher first.
    #[serde(default)]
    pub priority: Priority,
    /// Retries after a failed or timed-out attempt. Default 3.
    pub retries: u32,
}

impl ScanTask {
    /// A task with a fresh id (also its scan id), default priority 5 and 3 retries.
    pub fn new(kind: TaskKind, target: impl Into<String>) -> Self {
        let id = uuid::Uuid::new_v4().to_string();
        Self {
            scan_id: id.clone(),
            id,
            kind,
            target: target.into(),
            ports: None,
            parameters: serde_json::Map::new(),
            priority: Priority::default(),
            retries: 3,
        }
    }

    /// Sets the priority.
    pub fn with_priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the ports.
    pub fn with_ports(mut self, ports: impl Into<String>) -> Self {
        self.ports = Some(ports.into());
        self
    }

    /// Sets the retries.
    pub fn with_retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Pins the addresses a host-name target resolved to when the task was scheduled
    /// (`parameters.addresses`): a runner connects to these and does not resolve the name
    /// again, so the name cannot point somewhere else between the scope check and the scan
    /// (DNS rebinding), and a result can be checked against them.
    pub fn with_pinned_addresses(mut self, addrs: &[IpAddr]) -> Self {
        let list = addrs
            .iter()
            .map(|a| serde_json::Value::String(a.to_string()))
            .collect();
        self.parameters
            .insert(PINNED_ADDRESSES.to_owned(), serde_json::Value::Array(list));
        self
    }

    /// The addresses pinned by [`ScanTask::with_pinned_addresses`], if any (entries that are
    /// not addresses are skipped).
    pub fn pinned_addresses(&self) -> Option<Vec<IpAddr>> {
        let list = self.parameters.get(PINNED_ADDRESSES)?.as_array()?;
        Some(
            list.iter()
                .filter_map(|v| v.as_str()?.parse().ok())
                .collect(),
        )
    }
}

/// The `parameters` key of a task's pinned addresses.
pub const PINNED_ADDRESSES: &str = "addresses";

/// How a task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Finished.
    Success,
    /// Finished, but some checks could not be done.
    Partial,
    /// Every attempt failed.
    Failed,
    /// Every attempt ran out of time.
    TimedOut,
    /// Cancelled before it finished.
    Cancelled,
}

/// The outcome of one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanResult {
    /// The task's scan.
    pub scan_id: String,
    /// The task.
    pub task_id: String,
    /// Who ran it.
    pub agent_id: String,
    /// The task's target.
    pub target: String,
    /// The task's kind.
    pub kind: TaskKind,
    /// How it ended.
    pub status: TaskStatus,
    /// What was seen.
    pub findings: Vec<Finding>,
    /// Signature matches.
    pub threats: Vec<Threat>,
    /// Time from first start to end, in seconds.
    pub duration_seconds: f64,
    /// When it ended.
    pub time: DateTime<Utc>,
    /// Attempts made.
    pub attempts: u32,
    /// The last error, when it failed.
    pub error: Option<String>,
}

/// What a runner returns for one successful attempt.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskOutput {
    /// What was seen.
    pub findings: Vec<Finding>,
    /// Signature matches.
    pub threats: Vec<Threat>,
    /// Some checks could not be done.
    pub partial: bool,
}

/// Runs one attempt of a task.
#[async_trait]
pub trait TaskRunner: Send + Sync + 'static {
    /// Runs `task`. Should return soon after `cancel` fires (the executor stops waiting
    /// for it anyway).
    async fn run(&self, task: &ScanTask, cancel: CancellationToken) -> Result<TaskOutput>;
}

/// Executor settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutorConfig {
    /// Tasks running at once. Default 4.
    pub concurrency: usize,
    /// Time limit per attempt. Default 10 minutes.
    pub task_timeout: Duration,
    /// First retry delay; doubles per retry. Default 1 s.
    pub backoff_base: Duration,
    /// Longest retry delay. Default 60 s.
    pub backoff_max: Duration,
    /// Most tasks waiting (queued or backing off). Default 10 000.
    pub queue_capacity: usize,
    /// Written into every result. Default `local`.
    pub agent_id: String,
    /// Results channel capacity. Default 1 024.
    pub result_buffer: usize,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            concurrency: 4,
            task_timeout: Duration::from_secs(600),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            queue_capacity: 10_000,
            agent_id: "local".into(),
            result_buffer: 1024,
        }
    }
}

/// Retry delay before attempt `attempt + 1` (attempt counts from 1): `base·2^(attempt-1)`
/// capped at `max`, then half of it fixed and half random.
pub fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let exp = base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
        .min(max);
    let half = exp / 2;
    let jitter_ns = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    let jitter = if jitter_ns == 0 {
        Duration::ZERO
    } else {
        Duration::from_nanos(random_u64() % (jitter_ns + 1))
    };
    half + jitter
}

#[derive(Debug)]
struct Queued {
    task: ScanTask,
    seq: u64,
    attempts: u32,
    first_start: Option<Instant>,
    last_error: Option<(TaskStatus, String)>,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    /// Higher priority first, then lower sequence number (FIFO).
    fn cmp(&self, other: &Self) -> CmpOrdering {
        self.task
            .priority
            .cmp(&other.task.priority)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

#[derive(Debug, Default)]
struct State {
    ready: BinaryHeap<Queued>,
    delayed: Vec<(Instant, Queued)>,
    running: HashMap<String, CancellationToken>,
    seq: u64,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    notify: Notify,
    config: ExecutorConfig,
    shutdown: CancellationToken,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock means a panic while holding it; the state is still consistent
        // because every critical section only moves whole entries.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Submits and cancels tasks. Cheap to clone.
#[derive(Clone)]
pub struct ExecutorHandle {
    shared: Arc<Shared>,
    cancelled_tx: mpsc::UnboundedSender<Queued>,
}

impl fmt::Debug for ExecutorHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecutorHandle").finish_non_exhaustive()
    }
}

impl ExecutorHandle {
    /// Queues a task. Fails when the queue is full, the executor has shut down, or a task
    /// with the same id is waiting or running.
    pub fn submit(&self, task: ScanTask) -> Result<()> {
        let mut st = self.shared.lock();
        if st.closed {
            return Err(Error::Queue("the executor has shut down".into()));
        }
        if st.ready.len() + st.delayed.len() >= self.shared.config.queue_capacity {
            return Err(Error::Queue(format!(
                "queue full ({} tasks)",
                self.shared.config.queue_capacity
            )));
        }
        let dup = st.running.contains_key(&task.id)
            || st.ready.iter().any(|q| q.task.id == task.id)
            || st.delayed.iter().any(|(_, q)| q.task.id == task.id);
        if dup {
            return Err(Error::Queue(format!("task {} is already queued", task.id)));
        }
        st.seq += 1;
        let seq = st.seq;
        st.ready.push(Queued {
            task,
            seq,
            attempts: 0,
            first_start: None,
            last_error: None,
        });
        drop(st);
        self.shared.notify.notify_one();
        Ok(())
    }

    /// Cancels a task wherever it is. Returns false when no such task is waiting or running.
    /// A cancelled task still produces one result, with status `cancelled`.
    pub fn cancel(&self, task_id: &str) -> bool {
        let mut st = self.shared.lock();
        if let Some(token) = st.running.get(task_id) {
            token.cancel();
            return true;
        }
        let mut removed = None;
        let ready = std::mem::take(&mut st.ready);
        st.ready = ready
            .into_iter()
            .filter_map(|q| {
                if q.task.id == task_id && removed.is_none() {
                    removed = Some(q);
                    None
                } else {
                    Some(q)
                }
            })
            .collect();
        if removed.is_none()
            && let Some(i) = st.delayed.iter().position(|(_, q)| q.task.id == task_id)
        {
            removed = Some(st.delayed.swap_remove(i).1);
        }
        drop(st);
        match removed {
            Some(q) => {
                // The dispatcher reports it, so results stay in one place.
                let _ = self.cancelled_tx.send(q);
                self.shared.notify.notify_one();
                true
            }
            None => false,
        }
    }

    /// Tasks waiting (queued or backing off).
    pub fn pending(&self) -> usize {
        let st = self.shared.lock();
        st.ready.len() + st.delayed.len()
    }

    /// Tasks running.
    pub fn running(&self) -> usize {
        self.shared.lock().running.len()
    }

    /// Stops taking tasks, cancels everything waiting or running (each still gets its
    /// `cancelled` result), and ends the executor.
    pub fn shutdown(&self) {
        self.shared.lock().closed = true;
        self.shared.shutdown.cancel();
        self.shared.notify.notify_one();
    }

    /// Stops taking tasks but lets queued and running ones finish; the executor ends when
    /// the queue is empty.
    pub fn close(&self) {
        self.shared.lock().closed = true;
        self.shared.notify.notify_one();
    }
}

/// The in-process executor.
pub struct Executor;

impl Executor {
    /// Starts the dispatcher on the current tokio runtime. Returns the handle, the results
    /// channel, and the dispatcher's join handle (it ends after [`ExecutorHandle::close`] once
    /// the queue drains, or after [`ExecutorHandle::shutdown`]).
    pub fn start(
        config: ExecutorConfig,
        runner: Arc<dyn TaskRunner>,
    ) -> Result<(
        ExecutorHandle,
        mpsc::Receiver<ScanResult>,
        tokio::task::JoinHandle<()>,
    )> {
        if config.concurrency == 0 {
            return Err(Error::Config(
                "executor concurrency must be at least 1".into(),
            ));
        }
        if config.task_timeout.is_zero() {
            return Err(Error::Config("task timeout must be above zero".into()));
        }
        let (results_tx, results_rx) = mpsc::channel(config.result_buffer.max(1));
        let (cancelled_tx, cancelled_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            config,
            shutdown: CancellationToken::new(),
        });
        let handle = ExecutorHandle {
            shared: Arc::clone(&shared),
            cancelled_tx,
        };
        let join = tokio::spawn(dispatch(shared, runner, results_tx, cancelled_rx));
        Ok((handle, results_rx, join))
    }
}

enum Attempt {
    Done(TaskOutput),
    Failed(String),
    TimedOut,
    Cancelled,
}

async fn dispatch(
    shared: Arc<Shared>,
    runner: Arc<dyn TaskRunner>,
    results: mpsc::Sender<ScanResult>,
    mut cancelled: mpsc::UnboundedReceiver<Queued>,
) {
    let cfg = shared.config.clone();
    let mut workers: JoinSet<(Queued, Attempt)> = JoinSet::new();
    let mut handles_gone = false;
    loop {
        // Report tasks cancelled while waiting.
        while let Ok(q) = cancelled.try_recv() {
            let _ = results
                .send(result_of(&cfg, q, TaskStatus::Cancelled, None))
                .await;
        }
        if shared.shutdown.is_cancelled() {
            // Everything waiting is cancelled; running tasks see their tokens fire.
            let waiting: Vec<Queued> = {
                let mut st = shared.lock();
                let mut v: Vec<Queued> = std::mem::take(&mut st.ready).into_vec();
                v.extend(std::mem::take(&mut st.delayed).into_iter().map(|(_, q)| q));
                v
            };
            for q in waiting {
                let _ = results
                    .send(result_of(&cfg, q, TaskStatus::Cancelled, None))
                    .await;
            }
        }
        let (start, next_due, finished) = {
            let mut st = shared.lock();
            let now = Instant::now();
            let mut i = 0;
            while i < st.delayed.len() {
                if st.delayed[i].0 <= now {
                    let (_, q) = st.delayed.swap_remove(i);
                    st.ready.push(q);
                } else {
                    i += 1;
                }
            }
            let mut start = Vec::new();
            if !shared.shutdown.is_cancelled() {
                while st.running.len() < cfg.concurrency {
                    let Some(q) = st.ready.pop() else { break };
                    let token = shared.shutdown.child_token();
                    st.running.insert(q.task.id.clone(), token.clone());
                    start.push((q, token));
                }
            }
            let next_due = st.delayed.iter().map(|(t, _)| *t).min();
            let finished = st.closed
                && st.ready.is_empty()
                && st.delayed.is_empty()
                && st.running.is_empty()
                && workers.is_empty();
            (start, next_due, finished)
        };
        if finished || (shared.shutdown.is_cancelled() && workers.is_empty()) {
            break;
        }
        for (mut q, token) in start {
            let runner = Arc::clone(&runner);
            let timeout = cfg.task_timeout;
            q.attempts += 1;
            q.first_start.get_or_insert_with(Instant::now);
            workers.spawn(async move {
                let attempt = tokio::select! {
                    biased;
                    () = token.cancelled() => Attempt::Cancelled,
                    r = tokio::time::timeout(timeout, runner.run(&q.task, token.clone())) => match r {
                        Err(_) => Attempt::TimedOut,
                        Ok(Ok(out)) => Attempt::Done(out),
                        Ok(Err(e)) => Attempt::Failed(e.to_string()),
                    },
                };
                (q, attempt)
            });
        }
        let sleep_until = next_due.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            () = shared.notify.notified() => {}
            () = tokio::time::sleep_until(sleep_until) => {}
            () = shared.shutdown.cancelled(), if !shared.shutdown.is_cancelled() => {}
            r = cancelled.recv(), if !handles_gone => match r {
                Some(q) => {
                    let _ = results.send(result_of(&cfg, q, TaskStatus::Cancelled, None)).await;
                }
                None => {
                    // Every handle was dropped: nobody can submit any more, so finish the queue.
                    handles_gone = true;
                    shared.lock().closed = true;
                }
            },
            Some(joined) = workers.join_next(), if !workers.is_empty() => {
                let Ok((mut q, attempt)) = joined else {
                    // A runner panicked; its task id is unknown here, so only log it.
                    tracing::error!("a task runner panicked");
                    continue;
                };
                shared.lock().running.remove(&q.task.id);
                let failure = match attempt {
                    Attempt::Done(out) => {
                        let status = if out.partial { TaskStatus::Partial } else { TaskStatus::Success };
                        let _ = results.send(result_of(&cfg, q, status, Some(out))).await;
                        continue;
                    }
                    Attempt::Cancelled => {
                        let _ = results.send(result_of(&cfg, q, TaskStatus::Cancelled, None)).await;
                        continue;
                    }
                    Attempt::TimedOut => (
                        TaskStatus::TimedOut,
                        format!("attempt timed out after {:?}", cfg.task_timeout),
                    ),
                    Attempt::Failed(m) => (TaskStatus::Failed, m),
                };
                q.last_error = Some(failure);
                let report = if q.attempts <= q.task.retries && !shared.shutdown.is_cancelled() {
                    let delay = backoff(q.attempts, cfg.backoff_base, cfg.backoff_max);
                    tracing::debug!(task = %q.task.id, attempt = q.attempts, ?delay, "retrying");
                    shared.lock().delayed.push((Instant::now() + delay, q));
                    None
                } else {
                    let status = q.last_error.as_ref().map_or(TaskStatus::Failed, |(s, _)| *s);
                    Some(result_of(&cfg, q, status, None))
                };
                if let Some(r) = report {
                    let _ = results.send(r).await;
                }
            }
        }
    }
    while let Ok(q) = cancelled.try_recv() {
        let _ = results
            .send(result_of(&cfg, q, TaskStatus::Cancelled, None))
            .await;
    }
}

fn result_of(
    cfg: &ExecutorConfig,
    q: Queued,
    status: TaskStatus,
    output: Option<TaskOutput>,
) -> ScanResult {
    let output = output.unwrap_or_default();
    let error = match status {
        TaskStatus::Failed | TaskStatus::TimedOut => q.last_error.map(|(_, m)| m),
        _ => None,
    };
    ScanResult {
        scan_id: q.task.scan_id,
        task_id: q.task.id,
        agent_id: cfg.agent_id.clone(),
        target: q.task.target,
        kind: q.task.kind,
        status,
        findings: output.findings,
        threats: output.threats,
        duration_seconds: q.first_start.map_or(0.0, |s| s.elapsed().as_secs_f64()),
        time: Utc::now(),
        attempts: q.attempts,
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_bounds() {
        assert!(Priority::new(0).is_err());
        assert!(Priority::new(11).is_err());
        assert_eq!(Priority::new(10).unwrap().get(), 10);
        let task: std::result::Result<ScanTask, _> = serde_json::from_str(
            r#"{"id":"a","scan_id":"s","kind":"port_scan","target":"127.0.0.1","ports":null,"priority":11,"retries":0}"#,
        );
        assert!(task.is_err());
    }

    #[test]
    fn backoff_doubles_with_bounded_jitter() {
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(10);
        for _ in 0..100 {
            let d1 = backoff(1, base, max);
            assert!(d1 >= Duration::from_millis(500) && d1 <= base, "{d1:?}");
            let d3 = backoff(3, base, max);
            assert!(
                d3 >= Duration::from_secs(2) && d3 <= Duration::from_secs(4),
                "{d3:?}"
            );
            let d9 = backoff(9, base, max);
            assert!(d9 >= Duration::from_secs(5) && d9 <= max, "{d9:?}");
        }
    }

    #[test]
    fn queue_order_is_priority_then_fifo() {
        let mut heap = BinaryHeap::new();
        for (seq, p) in [(1, 5), (2, 9), (3, 5), (4, 1), (5, 9)] {
            heap.push(Queued {
                task: ScanTask::new(TaskKind::PortScan, format!("{seq}"))
                    .with_priority(Priority::new(p).unwrap()),
                seq,
                attempts: 0,
                first_start: None,
                last_error: None,
            });
        }
        let order: Vec<String> = std::iter::from_fn(|| heap.pop().map(|q| q.task.target)).collect();
        assert_eq!(order, ["2", "5", "1", "3", "4"]);
    }
}
