//! `vigil serve`: run the reference server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use vigil_server::{AppState, ServerConfig};

/// Arguments of `vigil serve`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    vigil serve\n  \
    vigil serve --bind 127.0.0.1:9000 --data-dir /var/lib/vigil --allow-origin https://ops.example")]
pub struct Args {
    /// Address to listen on. The default keeps the server on this machine; expose it
    /// deliberately, behind TLS.
    #[arg(long, default_value = "127.0.0.1:8000")]
    bind: SocketAddr,

    /// Directory of the SQLite database (tokens, sessions, event log).
    #[arg(long, default_value = "vigil-data")]
    data_dir: PathBuf,

    /// A browser origin allowed besides the server's own (repeatable), e.g. https://ops.example.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    allowed_origins: Vec<String>,

    /// Mark the session cookie Secure (set this when serving behind HTTPS).
    #[arg(long)]
    cookie_secure: bool,
}

/// Starts the server and runs it until Ctrl-C or SIGTERM.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = ServerConfig {
        data_dir: args.data_dir.clone(),
        allowed_origins: args.allowed_origins,
        cookie_secure: args.cookie_secure,
        ..ServerConfig::default()
    };
    let (state, first) =
        AppState::open(config).with_context(|| format!("opening {}", args.data_dir.display()))?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.bind)
            .await
            .with_context(|| format!("binding {}", args.bind))?;
        let local = listener.local_addr().context("reading the bound address")?;
        eprintln!(
            "vigil server listening on http://{local}  (data in {})",
            args.data_dir.display()
        );
        if let Some(first) = first {
            // Shown once: only its hash is stored.
            eprintln!();
            eprintln!("First start: an admin token was created. It is shown only this once:");
            eprintln!();
            eprintln!("    {}", first.admin_token);
            eprintln!();
            eprintln!(
                "Use it as `Authorization: Bearer TOKEN`, or trade it for a browser session with"
            );
            eprintln!(
                "POST http://{local}/api/session. Mint more with `vigil token create --role ROLE`."
            );
        }
        vigil_server::serve(listener, state, shutdown_signal()).await?;
        eprintln!("vigil server stopped");
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

/// Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
