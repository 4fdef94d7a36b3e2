//! `vigil completions SHELL`: print a shell completion script.

use std::io;
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

/// Arguments of `vigil completions`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    vigil completions bash > ~/.local/share/bash-completion/completions/vigil\n  \
    vigil completions zsh > \"${fpath[1]}/_vigil\"\n  \
    vigil completions fish > ~/.config/fish/completions/vigil.fish")]
pub struct Args {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: Shell,
}

/// Writes the completion script for `args.shell` to standard output.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut command = crate::Cli::command();
    clap_complete::generate(args.shell, &mut command, "vigil", &mut io::stdout());
    Ok(ExitCode::SUCCESS)
}
