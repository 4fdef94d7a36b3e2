//! `vigil`: one command line for locating devices, scanning authorised hosts, watching events and
//! finding street-level imagery.
//!
//! `main` only parses arguments, sets up logging, runs the chosen subcommand and turns its result
//! into an exit code. Each subcommand lives in its own file under `commands/`.

// Doc comments on clap arguments are `--help` text for operators, written as plain text (URLs,
// `[:port]`), not rustdoc markup.
#![allow(rustdoc::bare_urls, rustdoc::broken_intra_doc_links)]

mod commands;
mod config;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// Field security toolkit: locate, scan, watch, see.
#[derive(Debug, Parser)]
#[command(name = "vigil", version, about, long_about = None, propagate_version = true)]
pub(crate) struct Cli {
    /// Log more: `-v` for debug, `-vv` for trace. `RUST_LOG` overrides this.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    /// Configuration file for `serve` and `agent` [default: ./vigil.toml when it exists].
    #[arg(long, global = true, env = "VIGIL_CONFIG", value_name = "FILE")]
    config: Option<std::path::PathBuf>,

    #[command(subcommand)]
    command: commands::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    match commands::run(cli.command, cli.config.as_deref()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr so that stdout stays clean for `--json` output.
fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
