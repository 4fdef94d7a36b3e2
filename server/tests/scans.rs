//! Scan orchestration end to end on 127.0.0.1: scope checks, the in-process agent against a
//! weak SSH service, remote agents over `/ws`, idempotent results, requeues, restarts.

mod common;

use std::time::Duration;

use common::{TestServer, call, config, recv, send, wait_for};
use event_bus::Role;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use vigil_server::ServerConfig;

/// An SSH packet carrying KEXINIT with `kex` as the key-exchange list.
fn kexinit(kex: &str) -> Vec<u8> {
    let mut payload = vec![20u8];
    payload.extend_from_slice(&[7u8; 16]);
    let lists = [
        kex,
        "ssh-ed25519",
        "aes128-ctr",
        "aes128-ctr",
        "hmac-sha2-256",
        "hmac-sha2-256",
        "none",
        "none",
        "",
        "",
    ];
    for list in lists {
        payload.extend_from_slice(&(list.len() as u32).to_be_bytes());
        payload.extend_from_slice(list.as_bytes());
    }
    payload.extend_from_slice(&[0, 0, 0, 0, 0]);
    let padding = 8 - (payload.len() + 5) % 8 + 4;
    let mut packet = ((payload.len() + padding + 1) as u32)
        .to_be_bytes()
        .to_vec();
    packet.push(padding as u8);
    packet.extend_from_slice(&payload);
    packet.extend(std::iter::repeat_n(0u8, padding));
    packet
}

/// A deliberately weak SSH-like service on loopback; returns its port.
async fn weak_ssh() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut hello = b"SSH-2.0-OpenSSH_7.4\r\n".to_vec();
                hello.extend_from_slice(&kexinit("curve25519-sha256,diffie-hellman-group1-sha1"));
                let _ = socket.write_all(&hello).await;
                let mut sink = [0u8; 512];
                while matches!(socket.read(&mut sink).await, Ok(n) if n > 0) {}
            });
        }
    });
    port
}

fn scoped(local_agent: Option<usize>) -> ServerConfig {
    ServerConfig {
        scope: vec!["127.0.0.1".into()],
        local_agent,
        ..config()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_runs_through_the_local_agent_and_its_threat_arrives_over_ws_once() {
    let server = TestServer::start(scoped(Some(2))).await;
    let port = weak_ssh().await;
    let (mut watcher, _) = server.connect_as(&server.token(Role::Viewer).await).await;
    send(
        &mut watcher,
        json!({"type": "subscribe", "rooms": ["scans", "alerts"]}),
    )
    .await;
    assert_eq!(recv(&mut watcher).await["of"], "subscribe");

    let operator = server.token(Role::Operator).await;
    let body = json!({"targets": ["127.0.0.1"], "scan_types": ["banner_grab"], "ports": port.to_string(), "priority": 7});
    let (status, accepted) = call(&server.state, "POST", "/api/scans", &operator, Some(body)).await;
    assert_eq!(status, 202, "{accepted}");
    let scan_id = accepted["scan_id"].as_str().unwrap().to_owned();
    assert_eq!(accepted["tasks"].as_array().unwrap().len(), 1);

    let mut kinds = Vec::new();
    let threat = wait_for(&mut watcher, 20, |f| {
        if let Some(kind) = f["event"]["kind"].as_str() {
            kinds.push(kind.to_owned());
        }
        f["event"]["kind"] == "threat_detected"
    })
    .await;
    let data = &threat["event"]["data"];
    assert_eq!(data["signature_id"], "ssh-weak-kex");
    assert_eq!(data["scan_id"], scan_id.as_str());
    assert_eq!(data["target"], "127.0.0.1");
    assert!(!data["remediation"].as_str().unwrap().is_empty());
    assert_eq!(
        threat["event"]["severity"], "error",
        "a high threat is an error event"
    );
    let done = wait_for(&mut watcher, 20, |f| f["event"]["kind"] == "scan_completed").await;
    assert_eq!(done["event"]["data"]["status"], "completed");
    for expected in ["scan_scheduled", "scan_started", "scan_update"] {
        assert!(
            kinds.iter().any(|k| k == expected),
            "{expected} missing from {kinds:?}"
        );
    }

    let (_, scan) = call(
        &server.state,
        "GET",
        &format!("/api/scans/{scan_id}"),
        &operator,
        None,
    )
    .await;
    assert_eq!(scan["completed"], true);
    assert_eq!(scan["tasks"][0]["status"], "success");
    assert_eq!(scan["results"][0]["agent_id"], "local");
    let ids: Vec<&str> = scan["results"][0]["threats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["signature_id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"ssh-weak-kex"), "{ids:?}");
    let (_, alerts) = call(&server.state, "GET", "/api/alerts", &operator, None).await;
    let kex_alerts = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["signature_id"] == "ssh-weak-kex")
        .count();
    assert_eq!(kex_alerts, 1);
    let (_, agents) = call(&server.state, "GET", "/api/agents", &operator, None).await;
    assert_eq!(agents[0]["id"], "local");
    assert_eq!(agents[0]["status"], "online");
    server.stop().await;
}

#[tokio::test]
async fn targets_out_of_scope_are_refused_before_anything_is_queued() {
    let server = TestServer::start(scoped(None)).await;
    let operator = server.token(Role::Operator).await;
    for target in ["10.1.2.3", "169.254.169.254", "example.com", "127.0.0.0/8"] {
        let (status, body) = call(
            &server.state,
            "POST",
            "/api/scans",
            &operator,
            Some(json!({"targets": [target]})),
        )
        .await;
        assert_eq!(status, 403, "{target}: {body}");
        assert_eq!(body["error"]["code"], "out_of_scope", "{target}");
    }
    let (status, body) = call(
        &server.state,
        "POST",
        "/api/scans",
        &operator,
        Some(json!({"targets": ["127.0.0.1"], "scan_types": ["teleport"]})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
    let (status, _) = call(
        &server.state,
        "POST",
        "/api/scans",
        &operator,
        Some(json!({"targets": ["127.0.0.1"], "priority": 11})),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = call(
        &server.state,
        "POST",
        "/api/scans",
        &operator,
        Some(json!({"targets": []})),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = call(
        &server.state,
        "POST",
        "/api/scans",
        &server.token(Role::Viewer).await,
        Some(json!({"targets": ["127.0.0.1"]})),
    )
    .await;
    assert_eq!(status, 403, "viewers do not scan");
    let (_, scans) = call(&server.state, "GET", "/api/scans", &operator, None).await;
    assert_eq!(scans["total"], 0, "nothing was queued");
    server.stop().await;

    let unscoped = TestServer::start(config()).await;
    let (status, body) = call(
        &unscoped.state,
        "POST",
        "/api/scan",
        &unscoped.token(Role::Operator).await,
        Some(json!({"target": "127.0.0.1"})),
    )
    .await;
    assert_eq!(status, 403);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--scope")
    );
    unscoped.stop().await;
}

#[tokio::test]
async fn ports_are_a_specification_or_a_list_of_numbers() {
    let server = TestServer::start(scoped(None)).await;
    let operator = server.token(Role::Operator).await;
    for (ports, spec) in [
        (json!([22, 80, 443]), "22,80,443"),
        (json!(8080), "8080"),
        (json!("22,8000-8002"), "22,8000-8002"),
    ] {
        let (status, accepted) = call(
            &server.state,
            "POST",
            "/api/scans",
            &operator,
            Some(json!({"targets": ["127.0.0.1"], "scan_types": ["port_scan"], "ports": ports})),
        )
        .await;
        assert_eq!(status, 202, "{ports}: {accepted}");
        let id = accepted["scan_id"].as_str().unwrap();
        let (_, scan) = call(
            &server.state,
            "GET",
            &format!("/api/scans/{id}"),
            &operator,
            None,
        )
        .await;
        assert_eq!(scan["ports"], spec, "{ports}: {scan}");
    }
    for ports in [
        json!([0]),
        json!([65536]),
        json!([22, -1]),
        json!([]),
        json!({"a": 1}),
        json!([22.5]),
    ] {
        let (status, body) = call(
            &server.state,
            "POST",
            "/api/scans",
            &operator,
            Some(json!({"targets": ["127.0.0.1"], "ports": ports})),
        )
        .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some("bad_json")),
            "{ports}: {body}"
        );
        assert!(
            body["error"]["message"].as_str().unwrap().contains("port"),
            "{ports}: {body}"
        );
    }
    server.stop().await;
}

/// A vulnerability database holding the regreSSHion facts (NVD, Debian's DSA-5724-1, KEV,
/// EPSS): the fixtures of sec-scan's own tests.
fn cvedb(dir: &std::path::Path) -> std::path::PathBuf {
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sec-scan/tests/fixtures/vuln");
    let mut db = sec_scan::VulnDb::open(dir).expect("a database");
    for f in [
        "nvdcve-2.0-sample.json",
        "osv-debian",
        "known_exploited_vulnerabilities.json",
        "epss_scores-sample.csv",
    ] {
        db.import_path(&fixtures.join(f), &mut |_| {})
            .unwrap_or_else(|e| panic!("{f}: {e}"));
    }
    dir.join(sec_scan::VulnDb::FILE_NAME)
}

#[tokio::test]
async fn vuln_scan_results_are_matched_on_the_server_with_the_distributions_data() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(ServerConfig {
        cvedb: Some(cvedb(dir.path())),
        ..scoped(None)
    })
    .await;
    let operator = server.token(Role::Operator).await;
    let (mut watcher, _) = server.connect_as(&server.token(Role::Viewer).await).await;
    send(
        &mut watcher,
        json!({"type": "subscribe", "rooms": ["alerts"]}),
    )
    .await;
    assert_eq!(recv(&mut watcher).await["of"], "subscribe");

    let (mut agent, _) = server.connect_as(&server.token(Role::Agent).await).await;
    send(&mut agent, json!({"type": "register_agent", "name": "vulns", "capabilities": ["vuln_scan"], "max_concurrent": 1})).await;
    let agent_id = recv(&mut agent).await["agent_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, accepted) = call(
        &server.state,
        "POST",
        "/api/scans",
        &operator,
        Some(json!({"targets": ["127.0.0.1"], "scan_types": ["vuln_scan"], "ports": [22, 2222]})),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let task = recv(&mut agent).await["task"].clone();
    assert_eq!(task["kind"], "vuln_scan");

    // The agent has no database: it reports what it detected, and its own signature's
    // judgement of the version, which the server's data replaces.
    let banner = |port: u16, revision: &str| {
        json!({"host": "127.0.0.1", "addr": "127.0.0.1", "port": port, "kind": "banner",
               "service": "ssh", "product": "OpenSSH", "version": "9.2p1",
               "text": format!("SSH-2.0-OpenSSH_9.2p1 Debian-{revision}"),
               "cpe": ["cpe:/a:openbsd:openssh:9.2p1", "cpe:/o:linux:linux_kernel"],
               "distro": "debian", "ecosystem": "Debian:12", "package": "openssh",
               "package_version": format!("1:9.2p1-{revision}")})
    };
    let mut result = result_for(
        &task,
        &agent_id,
        json!([{"signature_id": "openssh-regresshion", "name": "regreSSHion", "severity": "info",
                "host": "127.0.0.1", "addr": "127.0.0.1", "port": 22, "kind": "ssh", "field": "version",
                "evidence": "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u2", "remediation": "Upgrade",
                "references": [], "confidence": "unverified"}]),
    );
    result["findings"] = json!([banner(22, "2+deb12u2"), banner(2222, "2+deb12u10")]);
    send(&mut agent, json!({"type": "scan_result", "result": result})).await;
    assert_eq!(recv(&mut agent).await["of"], "scan_result");

    let alert = wait_for(&mut watcher, 20, |f| {
        f["event"]["kind"] == "threat_detected"
    })
    .await;
    let data = &alert["event"]["data"];
    assert_eq!(data["signature_id"], "CVE-2024-6387");
    assert_eq!(data["port"], 22);
    assert_eq!(data["confidence"], "confirmed");
    assert_eq!(data["cve"]["id"], "CVE-2024-6387");
    assert_eq!(data["cve"]["cvss"]["score"], 8.1);
    assert!(data["cve"]["epss"]["score"].as_f64().is_some(), "{data}");

    let id = accepted["scan_id"].as_str().unwrap();
    let (_, scan) = call(
        &server.state,
        "GET",
        &format!("/api/scans/{id}"),
        &operator,
        None,
    )
    .await;
    let threats = scan["results"][0]["threats"].as_array().unwrap();
    let found: Vec<(String, u64)> = threats
        .iter()
        .map(|t| {
            (
                t["signature_id"].as_str().unwrap().to_owned(),
                t["port"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![("CVE-2024-6387".to_owned(), 22)],
        "deb12u10 carries Debian's fix; the version signature stepped aside"
    );
    assert_eq!(
        threats[0]["cve"]["evidence"]["advisory"], "DSA-5724-1",
        "{}",
        threats[0]
    );
    server.stop().await;
}

/// A result as an agent would send it for `task`.
fn result_for(task: &Value, agent_id: &str, threats: Value) -> Value {
    json!({
        "scan_id": task["scan_id"], "task_id": task["id"], "agent_id": agent_id, "target": task["target"],
        "kind": task["kind"], "status": "success", "findings": [], "threats": threats,
        "duration_seconds": 0.5, "time": "2026-11-21T10:00:00Z", "attempts": 1, "error": null
    })
}

async fn register(server: &TestServer, name: &str) -> (common::Ws, String) {
    let (mut agent, _) = server.connect_as(&server.token(Role::Agent).await).await;
    send(&mut agent, json!({"type": "register_agent", "name": name, "capabilities": ["port_scan"], "max_concurrent": 1})).await;
    let ack = recv(&mut agent).await;
    assert_eq!(ack["type"], "registration_ack", "{ack}");
    (agent, ack["agent_id"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn a_remote_agent_gets_tasks_and_its_result_is_stored_once() {
    let server = TestServer::start(scoped(None)).await;
    let operator = server.token(Role::Operator).await;

    let (mut viewer, _) = server.connect_as(&server.token(Role::Viewer).await).await;
    send(
        &mut viewer,
        json!({"type": "register_agent", "capabilities": ["port_scan"]}),
    )
    .await;
    assert_eq!(
        recv(&mut viewer).await["code"],
        "forbidden",
        "only agent tokens register"
    );

    let (mut agent, agent_id) = register(&server, "rack-3").await;
    let (_, accepted) = call(
        &server.state,
        "POST",
        "/api/scan",
        &operator,
        Some(json!({"target": "127.0.0.1", "scan_types": ["port_scan"]})),
    )
    .await;
    let assigned = recv(&mut agent).await;
    assert_eq!(assigned["type"], "assign_task", "{assigned}");
    let task = assigned["task"].clone();
    assert_eq!(task["scan_id"], accepted["scan_id"]);

    let mut forged = result_for(&task, &agent_id, json!([]));
    forged["task_id"] = json!("no-such-task");
    send(&mut agent, json!({"type": "scan_result", "result": forged})).await;
    assert_eq!(recv(&mut agent).await["code"], "unknown_task");

    for _ in 0..2 {
        send(
            &mut agent,
            json!({"type": "scan_result", "result": result_for(&task, &agent_id, json!([]))}),
        )
        .await;
        let ack = recv(&mut agent).await;
        assert_eq!(
            (ack["type"].as_str(), ack["of"].as_str()),
            (Some("ack"), Some("scan_result")),
            "{ack}"
        );
        assert_eq!(ack["id"], task["id"]);
    }
    let scan_id = accepted["scan_id"].as_str().unwrap();
    let (_, scan) = call(
        &server.state,
        "GET",
        &format!("/api/scans/{scan_id}"),
        &operator,
        None,
    )
    .await;
    assert_eq!(scan["results"].as_array().unwrap().len(), 1, "stored once");
    assert_eq!(scan["tasks"][0]["status"], "success");
    assert_eq!(scan["completed"], true);
    server.stop().await;
}

#[tokio::test]
async fn a_task_whose_agent_disconnects_is_finished_by_another() {
    let server = TestServer::start(scoped(None)).await;
    let operator = server.token(Role::Operator).await;
    let (mut first, _) = register(&server, "first").await;
    let (_, accepted) = call(
        &server.state,
        "POST",
        "/api/scans",
        &operator,
        Some(json!({"targets": ["127.0.0.1"]})),
    )
    .await;
    let assigned = recv(&mut first).await;
    assert_eq!(assigned["type"], "assign_task");
    let task_id = assigned["task"]["id"].clone();
    drop(first);

    let (mut second, second_id) = register(&server, "second").await;
    let again = recv(&mut second).await;
    assert_eq!(again["type"], "assign_task");
    assert_eq!(again["task"]["id"], task_id, "the same task, requeued");
    send(
        &mut second,
        json!({"type": "scan_result", "result": result_for(&again["task"], &second_id, json!([]))}),
    )
    .await;
    assert_eq!(recv(&mut second).await["of"], "scan_result");
    let (_, scan) = call(
        &server.state,
        "GET",
        &format!("/api/scans/{}", accepted["scan_id"].as_str().unwrap()),
        &operator,
        None,
    )
    .await;
    assert_eq!(scan["tasks"][0]["attempts"], 2);
    assert_eq!(scan["results"][0]["agent_id"], second_id.as_str());
    server.stop().await;
}

#[tokio::test]
async fn a_silent_agent_loses_its_lease_and_a_task_without_retries_fails() {
    let server = TestServer::start(ServerConfig {
        agent_lease: Duration::from_secs(1),
        ..scoped(None)
    })
    .await;
    let operator = server.token(Role::Operator).await;
    let (mut watcher, _) = server.connect_as(&server.token(Role::Viewer).await).await;
    send(
        &mut watcher,
        json!({"type": "subscribe", "rooms": ["scans", "monitoring"]}),
    )
    .await;
    let (mut agent, _) = register(&server, "sleepy").await;
    call(
        &server.state,
        "POST",
        "/api/scans",
        &operator,
        Some(json!({"targets": ["127.0.0.1"], "retries": 0})),
    )
    .await;
    assert_eq!(recv(&mut agent).await["type"], "assign_task");
    // No heartbeat: after the lease the agent is offline and the task, out of retries, fails.
    let offline = wait_for(&mut watcher, 10, |f| f["event"]["kind"] == "agent_offline").await;
    assert_eq!(offline["event"]["data"]["reason"], "lease expired");
    let done = wait_for(&mut watcher, 10, |f| f["event"]["kind"] == "scan_completed").await;
    assert_eq!(done["event"]["data"]["status"], "failed");
    server.stop().await;
}

#[tokio::test]
async fn a_restart_keeps_scans_results_and_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let config = || ServerConfig {
        data_dir: dir.path().to_path_buf(),
        ..scoped(None)
    };
    let (scan_id, operator) = {
        let (state, first) = vigil_server::AppState::open(config()).await.unwrap();
        let operator = first.unwrap().admin_token;
        let (_, accepted) = call(
            &state,
            "POST",
            "/api/scans",
            &operator,
            Some(json!({"targets": ["127.0.0.1"]})),
        )
        .await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let hello =
            serde_json::from_value(json!({"name": "direct", "capabilities": ["port_scan"]}))
                .unwrap();
        let agent = state
            .orchestrator()
            .register(hello, "test-token", tx, false)
            .await
            .unwrap();
        let Some(vigil_server::orchestrator::AgentOrder::Assign(task)) = rx.recv().await else {
            panic!("a task")
        };
        let threat = json!([{
            "signature_id": "telnet-open", "name": "Telnet is open", "severity": "high", "host": "127.0.0.1",
            "addr": "127.0.0.1", "port": 23, "kind": "open_port", "field": "port", "evidence": "23",
            "remediation": "Disable telnet.", "references": []
        }]);
        let result = result_for(&serde_json::to_value(&task).unwrap(), &agent, threat);
        let stored = state
            .orchestrator()
            .submit_result(&agent, serde_json::from_value(result).unwrap())
            .await;
        assert_eq!(stored, Ok(true));
        (accepted["scan_id"].as_str().unwrap().to_owned(), operator)
    };
    let (state, first) = vigil_server::AppState::open(config()).await.unwrap();
    assert!(first.is_none(), "the admin token survived");
    let (status, scan) = call(
        &state,
        "GET",
        &format!("/api/scans/{scan_id}"),
        &operator,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(scan["completed"], true);
    assert_eq!(scan["results"].as_array().unwrap().len(), 1);
    let (_, alerts) = call(&state, "GET", "/api/alerts", &operator, None).await;
    assert_eq!(alerts["alerts"][0]["signature_id"], "telnet-open");
}

#[tokio::test]
async fn admins_command_agents_and_operators_cancel_scans() {
    let server = TestServer::start(scoped(None)).await;
    let (mut agent, agent_id) = register(&server, "commanded").await;
    let operator = server.token(Role::Operator).await;
    let (status, _) = call(
        &server.state,
        "POST",
        &format!("/api/agents/{agent_id}/command"),
        &operator,
        Some(json!({"command": "health_check"})),
    )
    .await;
    assert_eq!(status, 403, "commands need admin");
    let (status, _) = call(
        &server.state,
        "POST",
        &format!("/api/agents/{agent_id}/command"),
        &server.admin,
        Some(json!({"command": "health_check"})),
    )
    .await;
    assert_eq!(status, 202);
    let command = recv(&mut agent).await;
    assert_eq!(
        (command["type"].as_str(), command["command"].as_str()),
        (Some("command"), Some("health_check"))
    );
    let (status, _) = call(
        &server.state,
        "POST",
        "/api/agents/nobody/command",
        &server.admin,
        Some(json!({"command": "stop"})),
    )
    .await;
    assert_eq!(status, 404);

    let (_, accepted) = call(
        &server.state,
        "POST",
        "/api/scans",
        &operator,
        Some(json!({"targets": ["127.0.0.1"]})),
    )
    .await;
    let assigned = recv(&mut agent).await;
    let scan_id = accepted["scan_id"].as_str().unwrap();
    let (status, cancelled) = call(
        &server.state,
        "DELETE",
        &format!("/api/scans/{scan_id}"),
        &operator,
        None,
    )
    .await;
    assert_eq!(
        (status, cancelled["cancelled_tasks"].as_u64()),
        (200, Some(1))
    );
    let cancel = recv(&mut agent).await;
    assert_eq!(
        (cancel["command"].as_str(), cancel["task_id"].clone()),
        (Some("cancel"), assigned["task"]["id"].clone())
    );
    let _: Value = cancel;
    server.stop().await;
}
