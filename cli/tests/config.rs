//! `vigil config show` and the configuration layers as an operator meets them: the file, the
//! environment over it, secrets masked, unknown keys named.

use assert_cmd::Command;
use predicates::prelude::*;

fn vigil(dir: &std::path::Path) -> Command {
    let mut cmd = Command::cargo_bin("vigil").unwrap();
    cmd.current_dir(dir);
    for var in [
        "VIGIL_CONFIG",
        "VIGIL_BIND",
        "VIGIL_SCOPE",
        "VIGIL_TOKEN",
        "GOOGLE_MAPS_API_KEY",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

#[test]
fn the_file_is_read_the_environment_wins_and_secrets_are_masked() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("vigil.toml"),
        "[serve]\nbind = \"127.0.0.1:9100\"\nscope = [\"10.0.0.0/24\"]\n[agent]\ntoken = \"vgl_filesecret\"\n[keys]\ngoogle_maps_api_key = \"AIzaFileSecret\"\n",
    )
    .unwrap();
    let out = vigil(dir.path())
        .args(["config", "show", "--json"])
        .env("VIGIL_SCOPE", "127.0.0.1")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        !text.contains("filesecret") && !text.contains("FileSecret"),
        "secrets leak: {text}"
    );
    let shown: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(shown["serve"]["bind"], "127.0.0.1:9100", "from the file");
    assert_eq!(
        shown["serve"]["scope"][0], "127.0.0.1",
        "the environment wins over the file"
    );
    assert_eq!(shown["agent"]["token"], "*** (set)");
    assert_eq!(shown["keys"]["google_maps_api_key"], "*** (set)");
    assert_eq!(
        shown["serve"]["data_dir"], "vigil-data",
        "defaults fill the rest"
    );
}

#[test]
fn unknown_keys_and_missing_files_are_errors_that_say_which() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("typo.toml"),
        "[serve]\nbnd = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    vigil(dir.path())
        .args(["--config", "typo.toml", "config", "show"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("unknown field `bnd`"));
    vigil(dir.path())
        .args(["--config", "nowhere.toml", "serve"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("nowhere.toml does not exist"));
    vigil(dir.path())
        .args(["config", "show"])
        .env("VIGIL_DEMO", "perhaps")
        .assert()
        .failure()
        .stderr(predicate::str::contains("VIGIL_DEMO must be true or false"));
}

#[test]
fn http_limits_come_from_the_file_and_the_environment_and_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("vigil.toml"),
        "[serve]\nheader_read_timeout = 2.5\nkeep_alive_timeout = 1\n",
    )
    .unwrap();
    let out = vigil(dir.path())
        .args(["config", "show", "--json"])
        .env("VIGIL_MAX_HEADER_BYTES", "8192")
        .output()
        .unwrap();
    assert!(out.status.success());
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["serve"]["header_read_timeout"], 2.5);
    assert_eq!(shown["serve"]["keep_alive_timeout"], 1.0);
    assert_eq!(shown["serve"]["max_header_bytes"], 8192);
    // A keep-alive timeout longer than the head timeout is refused before anything starts.
    vigil(dir.path())
        .args(["serve", "--data-dir", "data", "--keep-alive-timeout", "60"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("keep_alive_timeout"));
}
