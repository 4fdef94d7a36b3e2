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

/// A plain HTTP/1.1 POST of JSON on loopback; returns the status line.
fn post(addr: &str, path: &str, token: &str, body: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to the server");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.lines().next().unwrap_or_default().to_owned()
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

    // `vigil events tail` replays from history and follows; --count ends it.
    for n in 1..=2 {
        let status = post(
            &addr,
            "/api/events",
            &token,
            &format!(r#"{{"kind":"chat_message","room":"chat","data":{{"n":{n}}}}}"#),
        );
        assert!(status.contains("201"), "{status}");
    }
    let tail = Command::cargo_bin("vigil")
        .unwrap()
        .args([
            "events",
            "tail",
            "--server",
            &format!("http://{addr}"),
            "--room",
            "chat",
            "--since",
            "0",
            "--count",
            "2",
            "--json",
        ])
        .env("VIGIL_TOKEN", &token)
        .timeout(Duration::from_secs(20))
        .output()
        .unwrap();
    assert!(
        tail.status.success(),
        "{}",
        String::from_utf8_lossy(&tail.stderr)
    );
    let printed: Vec<serde_json::Value> = String::from_utf8(tail.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(printed.len(), 2);
    assert_eq!(printed[0]["data"]["n"], 1);
    assert_eq!(printed[1]["data"]["n"], 2);
    assert!(printed[0]["seq"].as_u64() < printed[1]["seq"].as_u64());
    Command::cargo_bin("vigil")
        .unwrap()
        .args([
            "events",
            "tail",
            "--server",
            &format!("http://{addr}"),
            "--count",
            "1",
        ])
        .env("VIGIL_TOKEN", "vgl_wrong")
        .timeout(Duration::from_secs(20))
        .assert()
        .failure()
        .stderr(predicate::str::contains("refused the token"));

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

/// Starts `vigil serve` with `args` on 127.0.0.1:0 and returns the child and its address.
fn start_server(data: &std::path::Path, extra: &[&str]) -> (std::process::Child, String) {
    let mut command = StdCommand::cargo_bin("vigil").unwrap();
    command.arg("serve").arg("--data-dir").arg(data).args(extra);
    if !extra.contains(&"--bind") {
        command.args(["--bind", "127.0.0.1:0"]);
    }
    let mut child = command.stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("the server prints its address")
            .unwrap();
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    (child, addr)
}

fn mint(data: &std::path::Path, role: &str) -> String {
    let out = Command::cargo_bin("vigil")
        .unwrap()
        .args(["token", "create", "--role", role, "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn a_remote_agent_takes_a_scan_and_its_result_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let operator = mint(&data, "operator");
    let agent_token = mint(&data, "agent");
    let (mut server, addr) = start_server(&data, &["--scope", "127.0.0.1", "--no-local-agent"]);
    let target = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = target.local_addr().unwrap().port();

    let mut agent = StdCommand::cargo_bin("vigil")
        .unwrap()
        .args([
            "agent",
            "--server",
            &format!("http://{addr}"),
            "--scope",
            "127.0.0.1",
            "--name",
            "rack-3",
            "--spool",
        ])
        .arg(dir.path().join("spool.jsonl"))
        .env("VIGIL_TOKEN", &agent_token)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut agent_lines = BufReader::new(agent.stderr.take().unwrap()).lines();
    let registered = agent_lines.next().unwrap().unwrap();
    assert!(registered.contains("registered with"), "{registered}");

    let body =
        format!(r#"{{"targets":["127.0.0.1"],"scan_types":["port_scan"],"ports":"{port}"}}"#);
    let status = post(&addr, "/api/scans", &operator, &body);
    assert!(status.contains("202"), "{status}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let scan = loop {
        let (_, listed) = get(&addr, "/api/scans", Some(&operator));
        let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
        let scan = listed["scans"][0].clone();
        if scan["completed"] == true {
            break scan;
        }
        assert!(
            Instant::now() < deadline,
            "the scan never completed: {scan}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let id = scan["scan_id"].as_str().unwrap();
    let (_, detail) = get(&addr, &format!("/api/scans/{id}"), Some(&operator));
    let detail: serde_json::Value = serde_json::from_str(&detail).unwrap();
    let result = &detail["results"][0];
    assert_eq!(result["status"], "success", "{detail}");
    assert_ne!(result["agent_id"], "local");
    assert!(
        result["findings"].to_string().contains(&port.to_string()),
        "the open port was found: {result}"
    );
    drop(target);

    let _ = StdCommand::new("kill")
        .args(["-TERM", &agent.id().to_string()])
        .status();
    let rest: Vec<String> = agent_lines.map_while(Result::ok).collect();
    assert!(agent.wait().unwrap().success(), "{rest:?}");
    assert!(rest.iter().any(|l| l.contains("agent stopped")), "{rest:?}");
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn a_result_held_across_a_server_restart_is_stored_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let operator = mint(&data, "operator");
    let agent_token = mint(&data, "agent");
    // A fixed port, so the restarted server is where the agent looks for it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bind = format!("127.0.0.1:{port}");
    let server_args = ["--scope", "127.0.0.1", "--no-local-agent"];
    let (mut server, addr) = start_server_at(&data, &bind, &server_args);
    assert_eq!(addr, bind);

    // A service that accepts and says nothing: a banner grab of it takes several seconds.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming().take(16).flatten() {
            held.push(stream);
        }
    });

    let mut agent = StdCommand::cargo_bin("vigil")
        .unwrap()
        .args([
            "agent",
            "--server",
            &format!("http://{addr}"),
            "--scope",
            "127.0.0.1",
            "--agent-id",
            "steady",
            "--spool",
        ])
        .arg(dir.path().join("spool.jsonl"))
        .env("VIGIL_TOKEN", &agent_token)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let reader = BufReader::new(agent.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in reader.lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let wait_for = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("the agent never said {needle:?}"));
            if line.contains(needle) {
                return line;
            }
        }
    };
    wait_for("registered with");

    let body = format!(
        r#"{{"targets":["127.0.0.1"],"scan_types":["banner_grab"],"ports":"{silent_port}"}}"#
    );
    assert!(post(&addr, "/api/scans", &operator, &body).contains("202"));
    wait_for("started");
    // The server dies while the task runs; the agent finishes and holds the result.
    server.kill().unwrap();
    server.wait().unwrap();
    wait_for("finished");

    let (mut server, addr) = start_server_at(&data, &bind, &server_args);
    wait_for("result stored by the server");
    let (_, listed) = get(&addr, "/api/scans", Some(&operator));
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let id = listed["scans"][0]["scan_id"].as_str().unwrap().to_owned();
    let (_, detail) = get(&addr, &format!("/api/scans/{id}"), Some(&operator));
    let detail: serde_json::Value = serde_json::from_str(&detail).unwrap();
    assert_eq!(
        detail["results"].as_array().unwrap().len(),
        1,
        "stored exactly once: {detail}"
    );
    assert_eq!(detail["results"][0]["agent_id"], "steady");
    assert_eq!(detail["completed"], true);

    let _ = StdCommand::new("kill")
        .args(["-TERM", &agent.id().to_string()])
        .status();
    assert!(agent.wait().unwrap().success());
    server.kill().unwrap();
    server.wait().unwrap();
}

/// Starts `vigil serve` on `bind` (a fixed address).
fn start_server_at(
    data: &std::path::Path,
    bind: &str,
    extra: &[&str],
) -> (std::process::Child, String) {
    let mut args: Vec<&str> = extra.to_vec();
    args.extend(["--bind", bind]);
    start_server(data, &args)
}
