//! `vigil agent`: a remote scanning agent for a vigil server.
//!
//! It registers with the server over `/ws`, takes the tasks it is given, re-checks each against
//! its own `--scope` (a server cannot aim it anywhere else), and reports every result until the
//! server has stored it — across reconnects, server restarts and, through the spool file, its own
//! restarts. Ctrl-C or SIGTERM stops it gracefully: running tasks get a grace period, then the
//! server hands what is left to another agent.
//!
//! A connection attempt (TCP, WebSocket upgrade, registration) that takes longer than 10 s is
//! dropped and retried with back-off (0.5 s doubling up to 30 s): see
//! [`AgentConfig`]'s `connect_timeout`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use sec_scan::agent::{Agent, AgentConfig, AgentEvent};
use sec_scan::{LocalRunner, ScanOptions, Scope, SignatureSet, SystemResolver};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::config::Layers;

/// Arguments of `vigil agent`. Each also comes from its `VIGIL_*` variable or the `[agent]`
/// table of `vigil.toml` (flags win, then the environment, then the file).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    vigil token create --role agent --label rack-3        # on the server\n  \
    VIGIL_TOKEN=vgl_... vigil agent --server http://10.0.0.2:8000 --scope 10.0.0.0/24 --name rack-3")]
pub struct Args {
    /// The server [default: http://127.0.0.1:8000; env VIGIL_SERVER].
    #[arg(long, env = "VIGIL_SERVER", hide_env = true)]
    server: Option<String>,
    /// An agent token [env VIGIL_TOKEN].
    #[arg(long, env = "VIGIL_TOKEN", hide_env = true, hide_env_values = true)]
    token: Option<String>,
    /// What this agent may scan (repeatable): address, CIDR, range, host name or `*.domain`.
    /// Tasks outside it fail here, whatever the server asks [env VIGIL_SCOPE, comma-separated].
    #[arg(long = "scope", value_name = "CIDR|HOST")]
    scope: Vec<String>,
    /// Tasks run at once [default: 4; env VIGIL_MAX_CONCURRENT].
    #[arg(long, env = "VIGIL_MAX_CONCURRENT", hide_env = true)]
    max_concurrent: Option<usize>,
    /// A display name [default: vigil-agent; env VIGIL_AGENT_NAME].
    #[arg(long, env = "VIGIL_AGENT_NAME", hide_env = true)]
    name: Option<String>,
    /// A stable id, kept across restarts (by default the server assigns one) [env VIGIL_AGENT_ID].
    #[arg(long, env = "VIGIL_AGENT_ID", hide_env = true)]
    agent_id: Option<String>,
    /// Signature file added to the built-in set.
    #[arg(long)]
    signatures: Option<PathBuf>,
    /// Where unacknowledged results wait across restarts [default: vigil-data/agent-spool.jsonl;
    /// env VIGIL_SPOOL].
    #[arg(long, env = "VIGIL_SPOOL", hide_env = true)]
    spool: Option<PathBuf>,
    /// Seconds running tasks may take to finish on shutdown [default: 30].
    #[arg(long)]
    stop_grace: Option<u64>,
}

impl Args {
    /// No flags: what `vigil config show` resolves (the environment and the file still apply).
    pub fn none() -> Args {
        Args {
            server: crate::config::env("VIGIL_SERVER"),
            token: crate::config::env("VIGIL_TOKEN"),
            scope: Vec::new(),
            max_concurrent: crate::config::env_parse("VIGIL_MAX_CONCURRENT")
                .ok()
                .flatten(),
            name: crate::config::env("VIGIL_AGENT_NAME"),
            agent_id: crate::config::env("VIGIL_AGENT_ID"),
            signatures: None,
            spool: crate::config::env("VIGIL_SPOOL").map(PathBuf::from),
            stop_grace: None,
        }
    }
}

/// The settings `vigil agent` runs with, after flags, environment and file.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// The server.
    pub server: String,
    /// The agent token (printed masked).
    #[serde(serialize_with = "masked")]
    pub token: Option<String>,
    /// What the agent may scan.
    pub scope: Vec<String>,
    /// Tasks at once.
    pub max_concurrent: usize,
    /// Display name.
    pub name: String,
    /// Stable id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Extra signatures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signatures: Option<PathBuf>,
    /// Result spool.
    pub spool: PathBuf,
    /// Seconds to finish on shutdown.
    pub stop_grace: u64,
}

fn masked<S: serde::Serializer>(value: &Option<String>, serializer: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(_) => serializer.serialize_str(crate::config::MASK),
        None => serializer.serialize_none(),
    }
}

/// Resolves flags over `VIGIL_*` over the file over the defaults.
pub fn settings(args: Args, layers: &Layers) -> anyhow::Result<Settings> {
    let file = &layers.file.agent;
    let scope = if args.scope.is_empty() {
        crate::config::env_list("VIGIL_SCOPE")
            .or_else(|| file.scope.clone())
            .unwrap_or_default()
    } else {
        args.scope
    };
    Ok(Settings {
        server: args
            .server
            .or_else(|| file.server.clone())
            .unwrap_or_else(|| "http://127.0.0.1:8000".into()),
        token: args.token.or_else(|| file.token.clone()),
        scope,
        max_concurrent: args.max_concurrent.or(file.max_concurrent).unwrap_or(4),
        name: args
            .name
            .or_else(|| file.name.clone())
            .unwrap_or_else(|| "vigil-agent".into()),
        agent_id: args.agent_id.or_else(|| file.agent_id.clone()),
        signatures: args.signatures.or_else(|| file.signatures.clone()),
        spool: args
            .spool
            .or_else(|| file.spool.clone())
            .unwrap_or_else(|| PathBuf::from("vigil-data/agent-spool.jsonl")),
        stop_grace: args.stop_grace.or(file.stop_grace).unwrap_or(30),
    })
}

/// Runs the agent until Ctrl-C or SIGTERM.
pub fn run(args: Args, layers: &Layers) -> anyhow::Result<ExitCode> {
    let args = settings(args, layers)?;
    let Some(token) = args.token.clone() else {
        bail!(
            "an agent token is needed: --token, VIGIL_TOKEN or `token` in [agent] of vigil.toml (vigil token create --role agent)"
        );
    };
    if args.scope.is_empty() {
        bail!(
            "say what this agent may scan: --scope CIDR|HOST (repeatable), VIGIL_SCOPE or `scope` in [agent] of vigil.toml"
        );
    }
    let server = super::events::ws_url(&args.server)?;
    if !(1..=64).contains(&args.max_concurrent) {
        bail!(
            "--max-concurrent must be in 1..=64, got {}",
            args.max_concurrent
        );
    }
    let mut builder = Scope::builder();
    for rule in &args.scope {
        builder = builder.allow(rule.clone());
    }
    let scope = builder.build().context("--scope")?;
    let mut signatures = SignatureSet::builtin();
    if let Some(path) = &args.signatures {
        let extra =
            SignatureSet::load(path).with_context(|| format!("loading {}", path.display()))?;
        signatures = signatures.merged(extra).context("merging signatures")?;
    }
    if let Some(dir) = args.spool.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let runner = LocalRunner::new(
        scope,
        Arc::new(signatures),
        ScanOptions::default(),
        Arc::new(SystemResolver),
    );
    let config = AgentConfig {
        agent_id: args.agent_id,
        name: args.name,
        max_concurrent: args.max_concurrent,
        spool: Some(args.spool),
        stop_grace: Duration::from_secs(args.stop_grace),
        ..AgentConfig::new(server.clone(), token)
    };
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let agent = Agent::new(config, Arc::new(runner))?.with_events(events_tx);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        let signal = shutdown.clone();
        let signals = tokio::spawn(async move {
            super::serve::shutdown_signal().await;
            eprintln!("stopping: finishing running tasks (Ctrl-C again to abort)");
            signal.cancel();
        });
        let printer = tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                match event {
                    AgentEvent::Registered(id) => eprintln!("registered with {server} as {id}"),
                    AgentEvent::TaskStarted(id) => eprintln!("task {id} started"),
                    AgentEvent::TaskFinished(id, status) => {
                        eprintln!("task {id} finished: {status:?}")
                    }
                    AgentEvent::ResultAcknowledged(id) => {
                        eprintln!("task {id}: result stored by the server")
                    }
                    AgentEvent::ResultRefused(id, why) => {
                        eprintln!("task {id}: result refused ({why}); dropped")
                    }
                    AgentEvent::Disconnected(why, delay) => {
                        eprintln!(
                            "disconnected ({why}); retrying in {:.1} s",
                            delay.as_secs_f64()
                        )
                    }
                    other => eprintln!("{other:?}"),
                }
            }
        });
        let outcome = agent.run(shutdown).await;
        signals.abort();
        let _ = printer.await;
        outcome?;
        eprintln!("agent stopped");
        anyhow::Ok(ExitCode::SUCCESS)
    })
}
