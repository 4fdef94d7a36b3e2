//! `vigil config show`: the settings `vigil serve` and `vigil agent` would run with.

use std::process::ExitCode;

use serde::Serialize;

use crate::config::{Keys, Layers};

/// Arguments of `vigil config`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration (flags aside: defaults, the file, the environment),
    /// secrets masked.
    Show {
        /// Print JSON instead of TOML.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct Effective {
    /// The file that was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<String>,
    serve: super::serve::Settings,
    agent: super::agent::Settings,
    keys: Keys,
}

/// Runs `vigil config`.
pub fn run(args: Args, layers: &Layers) -> anyhow::Result<ExitCode> {
    let ConfigCommand::Show { json } = args.command;
    let serve = super::serve::settings(super::serve::Args::none(), layers)?;
    let agent = super::agent::settings(super::agent::Args::none(), layers)?;
    let effective = Effective {
        file: layers.path.as_ref().map(|p| p.display().to_string()),
        keys: serve.keys.masked(),
        serve,
        agent,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&effective)?);
    } else {
        print!("{}", toml::to_string(&effective)?);
    }
    Ok(ExitCode::SUCCESS)
}
