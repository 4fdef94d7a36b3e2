//! The subcommands of `vigil`, one module each.
//!
//! To add one: write `commands/NAME.rs` with an `Args` struct (clap derive) and a
//! `run(args) -> anyhow::Result<ExitCode>` function, add a variant to [`Command`] and an arm to
//! [`run`].

mod agent;
mod completions;
mod config;
mod cvedb;
mod events;
mod geodb;
mod imagery;
mod locate;
mod scan;
mod serve;
mod signatures;
mod streetview;
mod token;

use std::process::ExitCode;

use clap::Subcommand;

/// Every `vigil` subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the reference server: WebSocket, REST, auth, persistence.
    Serve(serve::Args),
    /// Run a remote scanning agent for a vigil server.
    Agent(agent::Args),
    /// Follow a server's live event stream.
    Events(events::Args),
    /// Create, list and revoke the server's access tokens.
    Token(token::Args),
    /// Locate a device from the WiFi access points and cell towers it sees.
    Locate(locate::Args),
    /// Import into or inspect the offline geolocation database.
    Geodb(geodb::Args),
    /// Scan authorised hosts: ports, banners, TLS, HTTP, threat signatures.
    Scan(scan::Args),
    /// Import into, inspect or query the offline vulnerability database (NVD, OSV, KEV, EPSS).
    Cvedb(cvedb::Args),
    /// List threat signatures, or check a signature file.
    Signatures(signatures::Args),
    /// Google Street View: links, signed Static API URLs, free metadata, cost.
    Streetview(streetview::Args),
    /// Open street-level imagery (Mapillary, Panoramax) near a point, with viewer links.
    Imagery(imagery::Args),
    /// Show the effective configuration (vigil.toml, VIGIL_* environment), secrets masked.
    Config(config::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::Args),
}

/// Runs one subcommand and returns the process exit code.
pub fn run(command: Command, config_file: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    let layers = || crate::config::Layers::load(config_file);
    match command {
        Command::Completions(args) => completions::run(args),
        Command::Agent(args) => agent::run(args, &layers()?),
        Command::Events(args) => events::run(args),
        Command::Serve(args) => serve::run(args, &layers()?),
        Command::Config(args) => config::run(args, &layers()?),
        Command::Token(args) => token::run(args),
        Command::Streetview(args) => streetview::run(args),
        Command::Imagery(args) => imagery::run(args),
        Command::Scan(args) => scan::run(args),
        Command::Signatures(args) => signatures::run(args),
        Command::Locate(args) => locate::run(args),
        Command::Geodb(args) => geodb::run(args),
        Command::Cvedb(args) => cvedb::run(args),
    }
}
