//! A custom scanning agent: your own `TaskRunner` behind vigil's network agent.
//!
//! ```text
//! vigil serve --scope 127.0.0.1 --no-local-agent            # in one terminal
//! vigil token create --role agent --label custom            # copy the token
//! VIGIL_TOKEN=vgl_... cargo run -p vigil-examples --example custom_agent -- http://127.0.0.1:8000
//! ```
//!
//! Then start a port scan of 127.0.0.1 from the dashboard: this agent takes it, "runs" it with
//! the logic below, and the server stores the result. The agent keeps results until the server
//! has stored them, across reconnects. Ctrl-C stops it.

use std::sync::Arc;

use async_trait::async_trait;
use sec_scan::agent::{Agent, AgentConfig};
use sec_scan::{ScanTask, Scope, Target, TaskKind, TaskOutput, TaskRunner};
use tokio_util::sync::CancellationToken;

/// Your logic. Here: check the task against this agent's own scope (never trust the server
/// blindly), then report nothing found.
struct Checker {
    scope: Scope,
}

#[async_trait]
impl TaskRunner for Checker {
    async fn run(
        &self,
        task: &ScanTask,
        _cancel: CancellationToken,
    ) -> sec_scan::Result<TaskOutput> {
        let target: Target = task.target.parse()?;
        self.scope
            .plan(&[target], "80".parse()?, &sec_scan::SystemResolver)
            .await?;
        println!("running {} on {}", task.kind, task.target);
        Ok(TaskOutput::default())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let server = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:8000".into());
    let Ok(token) = std::env::var("VIGIL_TOKEN") else {
        eprintln!("set VIGIL_TOKEN to an agent token (vigil token create --role agent)");
        return Ok(());
    };
    let ws = format!(
        "{}/ws",
        server.trim_end_matches('/').replacen("http", "ws", 1)
    );
    let config = AgentConfig {
        name: "custom example".into(),
        capabilities: vec![TaskKind::PortScan],
        max_concurrent: 2,
        ..AgentConfig::new(ws, token)
    };
    let scope = Scope::builder().allow("127.0.0.1").build()?;
    let stop = CancellationToken::new();
    let on_ctrl_c = stop.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        on_ctrl_c.cancel();
    });
    Agent::new(config, Arc::new(Checker { scope }))?
        .run(stop)
        .await?;
    Ok(())
}
