//! The in-process agent: the same orchestration path as a remote agent, with no network hop.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sec_scan::{ScanTask, TaskRunner};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::node::orchestrator::{
    AgentCommand, AgentHello, AgentOrder, Orchestrator, ResultRefused,
};

/// Runs the in-process agent until `stop` is cancelled; running tasks are then cancelled and
/// reported as such.
pub async fn run(
    orchestrator: Arc<Orchestrator>,
    runner: Arc<dyn TaskRunner>,
    concurrency: usize,
    stop: CancellationToken,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let hello = AgentHello {
        agent_id: Some(orchestrator.local_agent_id()),
        name: Some("in-process agent".into()),
        capabilities: [
            "port_scan",
            "banner_grab",
            "ssl_check",
            "http_probe",
            "vuln_scan",
            "credential_check",
        ]
        .map(String::from)
        .to_vec(),
        max_concurrent: Some(concurrency),
    };
    let id = match orchestrator
        .register(hello, crate::node::orchestrator::SERVER_OWNER, tx, true)
        .await
    {
        Ok(id) => id,
        Err(err) => {
            tracing::error!(error = %err, "the in-process agent could not register");
            return;
        }
    };
    let mut running: JoinSet<()> = JoinSet::new();
    let mut cancels: HashMap<String, CancellationToken> = HashMap::new();
    let mut beat = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = beat.tick() => { orchestrator.heartbeat(&id); }
            order = rx.recv() => match order {
                None => break,
                Some(AgentOrder::Assign(task)) => {
                    let cancel = stop.child_token();
                    cancels.insert(task.id.clone(), cancel.clone());
                    running.spawn(execute(Arc::clone(&orchestrator), Arc::clone(&runner), id.clone(), task, cancel));
                }
                Some(AgentOrder::Command { command: AgentCommand::Cancel, task_id: Some(task_id) }) => {
                    if let Some(token) = cancels.remove(&task_id) {
                        token.cancel();
                    }
                }
                Some(AgentOrder::Command { command, .. }) => {
                    tracing::debug!(?command, "the in-process agent ignores this command");
                }
            },
            Some(_) = running.join_next(), if !running.is_empty() => {
                cancels.retain(|_, token| !token.is_cancelled());
            }
        }
    }
    for token in cancels.values() {
        token.cancel();
    }
    // Cancelled tasks report quickly; do not wait forever for one that does not.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while running.join_next().await.is_some() {}
    })
    .await;
    running.abort_all();
    orchestrator.disconnected(&id, "server shutting down");
}

async fn execute(
    orchestrator: Arc<Orchestrator>,
    runner: Arc<dyn TaskRunner>,
    agent_id: String,
    task: ScanTask,
    cancel: CancellationToken,
) {
    let result = sec_scan::agent::run_task(runner, task.clone(), agent_id.clone(), cancel).await;
    // A storage hiccup is retried a few times; anything else is final.
    for attempt in 0..5u32 {
        match orchestrator.submit_result(&agent_id, result.clone()).await {
            Ok(_) => return,
            Err(ResultRefused::Storage(err)) => {
                tracing::warn!(task = %task.id, error = %err, "storing a result failed; retrying");
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
            Err(other) => {
                tracing::warn!(task = %task.id, error = %other, "the orchestrator refused a local result");
                return;
            }
        }
    }
}
