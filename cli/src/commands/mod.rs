//! The subcommands of `vigil`, one module each.
//!
//! To add one: write `commands/NAME.rs` with an `Args` struct (clap derive) and a
//! `run(args) -> anyhow::Result<ExitCode>` function, add a variant to [`Command`] and an arm to
//! [`run`].

mod completions;
mod imagery;
mod serve;
mod streetview;
mod token;

use std::process::ExitCode;

use clap::Subcommand;

/// Every `vigil` subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::Args),
    /// Run the reference server: WebSocket, REST, auth, persistence.
    Serve(serve::Args),
    /// Create, list and revoke the server's access tokens.
    Token(token::Args),
    /// Google Street View: links, signed Static API URLs, free metadata, cost.
    Streetview(streetview::Args),
    /// Open street-level imagery (Mapillary, Panoramax) near a point, with viewer links.
    Imagery(imagery::Args),
}

/// Runs one subcommand and returns the process exit code.
pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Completions(args) => completions::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Token(args) => token::run(args),
        Command::Streetview(args) => streetview::run(args),
        Command::Imagery(args) => imagery::run(args),
    }
}
