//! The `vigil` binary's global behaviour: help, version, completions, bad arguments.

use assert_cmd::Command;
use predicates::prelude::*;

fn vigil() -> Command {
    Command::cargo_bin("vigil").expect("the vigil binary is built for tests")
}

#[test]
fn help_lists_the_subcommands() {
    vigil()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Usage: vigil"))
        .stdout(predicate::str::contains("completions"));
}

#[test]
fn version_is_the_package_version() {
    vigil()
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::diff(format!(
            "vigil {}\n",
            env!("CARGO_PKG_VERSION")
        )));
}

#[test]
fn completions_are_generated_for_each_shell() {
    for (shell, marker) in [
        ("bash", "_vigil()"),
        ("zsh", "#compdef vigil"),
        ("fish", "complete -c vigil"),
    ] {
        vigil()
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(predicate::str::contains(marker));
    }
}

#[test]
fn an_unknown_subcommand_fails_with_usage() {
    vigil()
        .arg("frobnicate")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unrecognized subcommand"));
}
