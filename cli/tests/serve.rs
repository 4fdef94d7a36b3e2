//! `vigil serve` and `vigil token` as an operator runs them: first start prints an admin token,
//! the server answers on loopback, tokens minted beside it work, SIGTERM stops it cleanly.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use assert_cmd::cargo::CommandCargoExt;
use predicates::prelude::*;

/// A plain HTTP/1.1 GET on loopback; returns the status line and the body.
fn get(addr: &str, path: &str, token: Option<&str>) -> (String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the server");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.lines().next().unwrap_or_default().to_owned();
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

#[test]
fn serve_prints_the_first_admin_token_answers_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = StdCommand::cargo_bin("vigil")
        .unwrap()
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut addr = None;
    let mut token = None;
    let started = Instant::now();
    while (addr.is_none() || token.is_none()) && started.elapsed() < Duration::from_secs(30) {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(rest) = line.split("listening on http://").nth(1) {
            addr = rest.split_whitespace().next().map(str::to_owned);
        }
        if let Some(t) = line.split_whitespace().find(|w| w.starts_with("vgl_")) {
            token = Some(t.to_owned());
        }
    }
    let (addr, token) = (
        addr.expect("the address is printed"),
        token.expect("the admin token is printed"),
    );

    let (status, body) = get(&addr, "/health", None);
    assert!(status.contains("200"), "{status}");
    assert!(body.contains("\"status\":\"healthy\""), "{body}");
    assert!(get(&addr, "/stats", None).0.contains("401"));
    assert!(get(&addr, "/stats", Some(&token)).0.contains("200"));

    // A token minted by another process works once the server has reloaded (≤ 2 s).
    let minted = Command::cargo_bin("vigil")
        .unwrap()
        .args([
            "token",
            "create",
            "--role",
            "viewer",
            "--label",
            "beside",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(minted.status.success());
    let viewer = String::from_utf8(minted.stdout).unwrap().trim().to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !get(&addr, "/stats", Some(&viewer)).0.contains("200") {
        assert!(Instant::now() < deadline, "the new token never worked");
        std::thread::sleep(Duration::from_millis(200));
    }

    let killed = StdCommand::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    if killed.is_ok_and(|s| s.success()) {
        let rest: Vec<String> = lines.map_while(Result::ok).collect();
        assert!(child.wait().unwrap().success());
        assert!(
            rest.iter().any(|l| l.contains("vigil server stopped")),
            "{rest:?}"
        );
    } else {
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

#[test]
fn tokens_are_created_listed_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let vigil = || {
        let mut cmd = Command::cargo_bin("vigil").unwrap();
        cmd.arg("token").arg("--data-dir").arg(&data);
        cmd
    };
    let created = vigil()
        .args(["create", "--role", "agent", "--label", "rack 3", "--json"])
        .output()
        .unwrap();
    assert!(created.status.success());
    let created: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    assert_eq!(created["role"], "agent");
    assert!(created["token"].as_str().unwrap().starts_with("vgl_"));
    let id = created["id"].as_str().unwrap().to_owned();

    vigil()
        .arg("list")
        .assert()
        .success()
        .stdout(
            predicate::str::contains(&id)
                .and(predicate::str::contains("rack 3"))
                .and(predicate::str::contains("active")),
        )
        .stdout(predicate::str::contains("vgl_").not());
    vigil().args(["revoke", &id]).assert().success();
    vigil()
        .arg("list")
        .assert()
        .success()
        .stdout(predicate::str::contains("revoked"));
    vigil()
        .args(["revoke", "nope"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("no token with id"));
    vigil()
        .args(["create", "--role", "superuser"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid value"));
}
