//! `vigil signatures`: list the threat signatures, or check a signature file.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use sec_scan::{Error, SignatureSet};

/// List threat signatures or validate a signature file.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// List the built-in signatures (or those of a file).
    List {
        /// List this file's signatures instead of the built-in set.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// Print JSON.
        #[arg(long, conflicts_with = "toml")]
        json: bool,
        /// Print the built-in set as TOML, a starting point for your own file.
        #[arg(long)]
        toml: bool,
    },
    /// Validate a signature file; errors name the line. Exit 0 valid, 1 invalid, 2 unreadable.
    Check {
        /// The TOML file.
        file: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `vigil signatures`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Sub::List { file, json, toml } => {
            if toml {
                print!("{}", SignatureSet::builtin_source());
                return Ok(ExitCode::SUCCESS);
            }
            let set = match &file {
                Some(path) => match SignatureSet::load(path) {
                    Ok(set) => set,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return Ok(ExitCode::from(2));
                    }
                },
                None => SignatureSet::builtin(),
            };
            let mut out = std::io::stdout().lock();
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(set.signatures())?)?;
            } else {
                writeln!(out, "{:<28} {:<9} {:<28} NAME", "ID", "SEVERITY", "MATCHES")?;
                for s in set.signatures() {
                    let target = format!("{}.{}", s.kind, s.field);
                    writeln!(
                        out,
                        "{:<28} {:<9} {:<28} {}",
                        s.id, s.severity, target, s.name
                    )?;
                }
                writeln!(out, "{} signatures", set.len())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Sub::Check { file, json } => {
            let result = SignatureSet::load(&file);
            let code = match &result {
                Ok(_) => ExitCode::SUCCESS,
                Err(Error::Signature {
                    line: 0, message, ..
                }) if message.starts_with("cannot read") => ExitCode::from(2),
                Err(_) => ExitCode::from(1),
            };
            match (json, result) {
                (true, Ok(set)) => println!(
                    "{}",
                    serde_json::json!({"file": file, "valid": true, "signatures": set.len()})
                ),
                (true, Err(e)) => {
                    let line = match &e {
                        Error::Signature { line, .. } => *line,
                        _ => 0,
                    };
                    println!(
                        "{}",
                        serde_json::json!({"file": file, "valid": false, "line": line, "error": e.to_string()})
                    );
                }
                (false, Ok(set)) => println!("{}: {} signatures, valid", file.display(), set.len()),
                (false, Err(e)) => eprintln!("error: {e}"),
            }
            Ok(code)
        }
    }
}
