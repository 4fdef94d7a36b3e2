//! `vigil token create|list|revoke`: manage the server's access tokens.
//!
//! These work on the database in the data directory (or a cluster's shared database with
//! `--database-url`), so they run beside a live server (which picks changes up within two
//! seconds) or before its first start. With `--redis-url` as well, a revocation reaches every
//! node of the cluster at once.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Subcommand, ValueEnum};
use event_bus::Role;
use vigil_server::auth::Auth;
use vigil_server::store::{Store, role_name};

/// Arguments of `vigil token`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory of the server's database.
    #[arg(long, default_value = "vigil-data", global = true)]
    data_dir: PathBuf,

    /// A cluster's shared PostgreSQL database instead of the data directory
    /// [env VIGIL_DATABASE_URL].
    #[arg(
        long,
        value_name = "URL",
        env = "VIGIL_DATABASE_URL",
        hide_env = true,
        global = true
    )]
    database_url: Option<String>,

    /// The cluster's Redis: a revocation is announced to every node at once, not within the
    /// two seconds it takes them to re-read the database [env VIGIL_REDIS_URL].
    #[arg(
        long,
        value_name = "URL",
        env = "VIGIL_REDIS_URL",
        hide_env = true,
        global = true
    )]
    redis_url: Option<String>,

    /// The cluster's name in Redis [default: vigil; env VIGIL_CLUSTER_NAME].
    #[arg(
        long,
        value_name = "NAME",
        env = "VIGIL_CLUSTER_NAME",
        hide_env = true,
        global = true,
        default_value = "vigil"
    )]
    cluster_name: String,

    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Mint a token and print it (only its hash is stored: copy it now).
    Create {
        /// What the token may do.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// A label to recognise it by in `vigil token list`.
        #[arg(long, default_value = "")]
        label: String,
        /// Print JSON: {"id", "role", "label", "token"}.
        #[arg(long)]
        json: bool,
    },
    /// List tokens (ids, roles, labels; never secrets).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id; its sessions end too.
    Revoke {
        /// The id shown by `vigil token list`.
        id: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RoleArg {
    Viewer,
    Operator,
    Admin,
    Agent,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Role {
        match role {
            RoleArg::Viewer => Role::Viewer,
            RoleArg::Operator => Role::Operator,
            RoleArg::Admin => Role::Admin,
            RoleArg::Agent => Role::Agent,
        }
    }
}

/// Runs a token subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(run_async(args))
}

async fn run_async(args: Args) -> anyhow::Result<ExitCode> {
    let store = match &args.database_url {
        Some(url) => Store::connect(url)
            .await
            .with_context(|| format!("connecting to {}", vigil_server::redact_url(url)))?,
        None => Store::open(&args.data_dir)
            .with_context(|| format!("opening {}", args.data_dir.display()))?,
    };
    let auth = Auth::load(store).await.context("reading tokens")?;
    match args.command {
        TokenCommand::Create { role, label, json } => {
            let (record, secret) = auth.create_token(role.into(), &label).await?;
            if json {
                let out = serde_json::json!({"id": record.id, "role": record.role, "label": record.label, "token": secret});
                println!("{out}");
            } else {
                println!("{secret}");
                eprintln!(
                    "token {} ({}) created; it is shown only this once",
                    record.id,
                    role_name(record.role)
                );
            }
        }
        TokenCommand::List { json } => {
            let tokens = auth.tokens().await?;
            if json {
                let list: Vec<_> = tokens
                    .iter()
                    .map(|t| {
                        serde_json::json!({
                            "id": t.id, "role": t.role, "label": t.label,
                            "created": t.created.to_rfc3339(), "revoked": t.revoked.map(|r| r.to_rfc3339()),
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else {
                println!("{:<14} {:<9} {:<26} LABEL", "ID", "ROLE", "STATE");
                for t in &tokens {
                    let role = role_name(t.role);
                    let state = match t.revoked {
                        Some(at) => format!("revoked {}", at.format("%Y-%m-%d %H:%M")),
                        None => "active".into(),
                    };
                    println!("{:<14} {:<9} {:<26} {}", t.id, role, state, t.label);
                }
            }
        }
        TokenCommand::Revoke { id } => {
            auth.revoke(&id).await?;
            eprintln!("token {id} revoked");
            if let Some(url) = &args.redis_url {
                let cluster = vigil_server::cluster::Cluster::connect(url, &args.cluster_name)
                    .await
                    .context("announcing the revocation to the cluster")?;
                cluster
                    .announce(vigil_server::cluster::Control::Revoked {
                        token_id: id.clone(),
                    })
                    .await
                    .context("announcing the revocation to the cluster")?;
                eprintln!("every node was told at once");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
