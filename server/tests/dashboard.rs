//! The dashboard in a real headless Chromium against a server on 127.0.0.1:0: sign-in, a
//! `#token=` link that asks before replacing a session, live events, the operations panels, a
//! reconnect that replays what it missed exactly once, the map with the Leaflet embedded in the
//! binary and without network, chat under the server-known sender, and HTML payloads that must
//! show as text and run nothing.
//!
//! Skips with a message when Chromium or chromedriver is missing, unless `VIGIL_E2E=required`.
//! Screenshots land in `<target>/dashboard-screenshots/`.

mod common;
mod e2e;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use event_bus::Role;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vigil_server::{LeafletSource, ServerConfig};

use e2e::Browser;

const SECOND: Duration = Duration::from_secs(1);
const PATIENT: Duration = Duration::from_secs(10);

/// An HTTP response read whole: status, lower-cased headers, body bytes.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A minimal HTTP/1.1 request on loopback (`Connection: close`, so the body ends at EOF).
async fn raw(addr: SocketAddr, method: &str, path: &str, headers: &str, body: &str) -> Reply {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(body.as_bytes()).await.expect("write");
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.expect("read");
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response");
    let head = String::from_utf8_lossy(&bytes[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: bytes[split + 4..].to_vec(),
    }
}

/// A JSON request with a bearer token: returns the status and the JSON body.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let body = body.map(Value::to_string).unwrap_or_default();
    let headers = format!("Authorization: Bearer {token}\r\nContent-Type: application/json\r\n");
    let reply = raw(addr, method, path, &headers, &body).await;
    (reply.status, reply.json())
}

/// Publishes through `POST /api/events` and returns the event's id.
async fn publish(addr: SocketAddr, token: &str, event: Value) -> String {
    let (status, answer) = request(addr, "POST", "/api/events", token, Some(&event)).await;
    assert_eq!(status, 201, "publish {event}: {answer}");
    answer["id"].as_str().expect("an event id").to_owned()
}

/// A local service that greets like an SSH protocol 1 server, for a scan to find.
async fn ssh1_service() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let port = listener.local_addr().expect("address").port();
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = socket.write_all(b"SSH-1.5-Cisco-1.25\r\n").await;
                let mut sink = [0u8; 256];
                let _ = socket.read(&mut sink).await;
            });
        }
    });
    (port, task)
}

/// A loopback port with nothing listening: the "network" the map's tiles live on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn config() -> ServerConfig {
    let nowhere = format!("http://127.0.0.1:{}", closed_port());
    let mut config = common::config();
    // Scans may reach this machine only.
    config.scope = vec!["127.0.0.1".into()];
    config.dashboard.tile_url = format!("{nowhere}/tiles/{{z}}/{{x}}/{{y}}.png");
    config.imagery.panoramax_base_url = Some(format!("{nowhere}/api"));
    config.imagery.mapillary_base_url = Some(format!("{nowhere}/graph"));
    // The test plays the server's own part in `scans` and `alerts`, which no client may publish
    // to on a real server: here, operators may.
    for room in &mut config.rooms {
        if matches!(room.name.as_str(), "scans" | "alerts") {
            room.publish = event_bus::Access::at_least(Role::Operator);
        }
    }
    config
}

async fn launch(name: &str) -> Option<Browser> {
    match Browser::launch(name).await {
        Ok(browser) => Some(browser),
        Err(reason) if !e2e::required() => {
            println!("skipping: {reason} (set VIGIL_E2E=required to fail instead)");
            None
        }
        Err(reason) => panic!("VIGIL_E2E=required but the browser is unavailable: {reason}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_a_real_browser() {
    let Some(browser) = launch("dashboard").await else {
        return;
    };
    // A Leaflet directory with nothing in it: the map cannot start, the rest of the page must.
    let empty = tempfile::tempdir().expect("a temp dir");
    let mut config = config();
    config.dashboard.leaflet = LeafletSource::Local(empty.path().to_owned());
    let server = common::TestServer::start(config).await;
    let addr = server.addr;
    let operator = server.token(Role::Operator).await;
    let base = format!("http://{addr}");

    // Sign in with the printed URL's fragment: the token is traded for a cookie and wiped.
    browser
        .client
        .goto(&format!("{base}/dashboard#token={}", server.admin))
        .await
        .expect("open the dashboard");
    browser
        .wait_text("#connection.conn-live", "live", PATIENT)
        .await;
    browser.wait_text("#role", "admin", SECOND).await;
    let leaks = browser
        .js(
            "return { hash: location.hash, href: location.href, cookie: document.cookie, \
             stored: localStorage.length + sessionStorage.length };",
            vec![],
        )
        .await;
    assert_eq!(leaks["hash"], "", "{leaks}");
    assert!(!leaks["href"].as_str().unwrap().contains("vgl_"), "{leaks}");
    assert_eq!(
        leaks["cookie"], "",
        "the session cookie is HttpOnly: {leaks}"
    );
    assert_eq!(leaks["stored"], 0, "nothing in web storage: {leaks}");

    // A published event reaches the page within a second.
    let started = Instant::now();
    let id = publish(
        addr,
        &operator,
        json!({"kind": "agent_execution_started", "room": "monitoring",
               "data": {"agent_id": "agent-7", "agent_name": "Recon", "task_description": "sweep 10.0.0.0/24"}}),
    )
    .await;
    browser
        .wait_text(
            &format!("#events li[data-id='{id}']"),
            "sweep 10.0.0.0/24",
            SECOND,
        )
        .await;
    let latency = started.elapsed();
    assert!(latency < SECOND, "event shown after {latency:?}");
    println!("event on screen {latency:?} after publishing");
    browser
        .wait_text("#agents tr[data-agent='agent-7']", "busy", SECOND)
        .await;

    // An opportunity card as the seed shows it: title, category, description, confidence
    // coloured by level, revenue potential.
    publish(
        addr,
        &operator,
        json!({"kind": "opportunity_discovered", "room": "monitoring", "severity": "success",
               "data": {"title": "Exposed build server", "category": "hardening",
                        "description": "Jenkins on 10.0.0.12 answers without auth",
                        "confidence_score": 92, "revenue_potential": "$5k-20k/yr"}}),
    )
    .await;
    browser
        .wait_text(".opportunity", "Exposed build server", SECOND)
        .await;
    assert_eq!(browser.text(".opportunity .confidence-high").await, "92%");
    assert_eq!(browser.text(".opportunity .category").await, "hardening");
    assert_eq!(browser.text(".opportunity .revenue").await, "$5k-20k/yr");
    // The metric cards follow.
    // The metric cards follow /stats (other events come from the server's own agent, so the
    // total is compared with the server's count rather than a constant).
    browser.wait_text("#m-opportunities", "1", PATIENT).await;
    let (_, stats) = request(addr, "GET", "/stats", &operator, None).await;
    let total = stats["metrics"]["total_events"].as_u64().expect("a total");
    assert!(total >= 2, "{stats}");
    browser
        .wait_text("#m-total-events", &total.to_string(), PATIENT)
        .await;

    // Headless Chromium shows no notifications: record what the page would show instead, as
    // if the user had granted the permission.
    browser
        .js(
            "window.__shown = [];\
             window.Notification = class { static permission = 'granted';\
               constructor(title, options) { window.__shown.push([title, options.body]); } };",
            vec![],
        )
        .await;

    // A scan started from the form runs on the server's in-process agent against a local
    // service that speaks SSH protocol 1: its result and its critical threat reach the page.
    let (ssh_port, ssh) = ssh1_service().await;
    browser
        .js(
            "document.getElementById('scan-targets').value = '127.0.0.1';\
             for (const c of document.querySelectorAll('input[name=\"scan-type\"]')) c.checked = c.value === 'banners';\
             document.getElementById('scan-ports').value = arguments[0];\
             document.getElementById('scan-form').requestSubmit();",
            vec![json!(ssh_port.to_string())],
        )
        .await;
    browser
        .wait_text("#scan-message", "scheduled", PATIENT)
        .await;
    browser
        .wait_text("#scans .scan .badge", "completed", PATIENT)
        .await;
    browser
        .wait_text(
            "#threats .threat.sev-critical",
            "SSH protocol 1 is enabled",
            PATIENT,
        )
        .await;
    browser
        .wait_text("#threats .threat", "Disable SSH protocol 1", SECOND)
        .await;
    let cards = browser
        .js(
            "return [...document.querySelectorAll('#threats .threat')]\
             .filter((n) => n.textContent.includes('SSH protocol 1')).length;",
            vec![],
        )
        .await;
    assert_eq!(cards, 1, "threat_detected and critical_alert make one card");
    let shown = browser.js("return window.__shown;", vec![]).await;
    assert_eq!(
        shown.as_array().map(Vec::len),
        Some(1),
        "one notification: {shown}"
    );
    assert_eq!(
        shown[0][0], "Critical: SSH protocol 1 is enabled",
        "{shown}"
    );
    browser
        .wait_text("#agents tr[data-agent='local']", "online", SECOND)
        .await;
    ssh.abort();

    // Scan progress, results and threats, as agents report them through the event API.
    let scan = json!({"scan_id": "scan-42", "target": "10.0.0.12"});
    for (kind, extra) in [
        ("scan_scheduled", json!({"status": "scheduled"})),
        (
            "scan_started",
            json!({"task_id": "t1", "kind": "port_scan"}),
        ),
        ("task_progress", json!({"task_id": "t1", "progress": 0.5})),
        (
            "scan_update",
            json!({"task_id": "t1", "kind": "port_scan", "status": "success", "findings": 2}),
        ),
        (
            "scan_completed",
            json!({"status": "completed", "progress": 100,
            "findings": ["22/tcp ssh OpenSSH 7.2", "8080/tcp http Jenkins 2.89"]}),
        ),
    ] {
        let mut data = scan.clone();
        data.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        publish(
            addr,
            &operator,
            json!({"kind": kind, "room": "scans", "data": data}),
        )
        .await;
    }
    browser
        .wait_text("#scans li[data-scan='scan-42']", "Jenkins 2.89", SECOND)
        .await;
    assert!(browser.text("#scans li[data-scan='scan-42'] .badge").await == "completed");
    let progress = browser
        .js(
            "return document.querySelector(\"#scans li[data-scan='scan-42'] progress\").value;",
            vec![],
        )
        .await;
    assert_eq!(progress, 100);
    publish(
        addr,
        &operator,
        json!({"kind": "threat_detected", "room": "alerts", "severity": "error",
               "data": {"scan_id": "scan-42", "target": "10.0.0.12", "signature_id": "jenkins-noauth",
                        "name": "Jenkins without authentication", "severity": "error",
                        "remediation": "Enable security in Manage Jenkins",
                        "references": ["https://www.jenkins.io/doc/book/security/"]}}),
    )
    .await;
    browser
        .wait_text(
            "#threats .threat",
            "Enable security in Manage Jenkins",
            SECOND,
        )
        .await;
    assert_eq!(
        browser
            .count("#threats a[href='https://www.jenkins.io/doc/book/security/']")
            .await,
        1
    );
    publish(
        addr,
        &operator,
        json!({"kind": "critical_alert", "room": "alerts", "severity": "critical",
               "data": {"scan_id": "scan-42", "target": "10.0.0.12", "signature_id": "cve-2024-23897",
                        "name": "Jenkins arbitrary file read", "severity": "critical",
                        "remediation": "Upgrade to 2.442", "references": []}}),
    )
    .await;
    browser
        .wait_text(
            "#threats .threat.sev-critical",
            "Jenkins arbitrary file read",
            SECOND,
        )
        .await;

    // CVE threats: linked to NVD, with CVSS, KEV and EPSS badges, sorted by severity, then KEV,
    // then EPSS — whatever order they arrive in.
    for (id, severity, kev, epss) in [
        ("CVE-2023-44487", "medium", false, 0.94),
        ("CVE-2024-6387", "high", false, 0.51),
        ("CVE-2021-23017", "high", true, 0.02),
    ] {
        let kev = kev.then(
            || json!({"date_added": "2024-01-02", "due_date": "2024-01-23", "ransomware": false}),
        );
        publish(
            addr,
            &operator,
            json!({"kind": "threat_detected", "room": "alerts", "severity": "warning",
                   "data": {"scan_id": "scan-43", "target": "10.0.0.13", "port": 22, "signature_id": id,
                            "name": format!("{id} in the service"), "severity": severity,
                            "confidence": "confirmed",
                            "cve": {"id": id, "cvss": {"version": "3.1", "score": 8.1,
                                    "vector": "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H"},
                                    "kev": kev, "epss": {"score": epss, "percentile": 0.99}},
                            "remediation": "Upgrade", "references": []}}),
        )
        .await;
    }
    browser
        .wait_text("#threats .threat", "CVE-2023-44487 in the service", SECOND)
        .await;
    let order = browser
        .js(
            "return [...document.querySelectorAll('#threats .threat a[href^=\"https://nvd.nist.gov/vuln/detail/\"]')]\
             .map((a) => a.textContent);",
            vec![],
        )
        .await;
    assert_eq!(
        order,
        json!(["CVE-2021-23017", "CVE-2024-6387", "CVE-2023-44487"]),
        "severity, then KEV, then EPSS"
    );
    assert_eq!(browser.count("#threats .badge.kev").await, 1);
    assert!(browser.text("#threats .badge.epss").await.contains("EPSS"));

    // The map: Leaflet's directory is empty; the panel says why, the rest works.
    browser
        .wait_text(
            "#map-message",
            "could not be loaded from this server",
            PATIENT,
        )
        .await;
    assert_eq!(browser.count("#map:not([hidden])").await, 0);
    // Street level still works without the map: a Google Maps link, and a plain word on what
    // is not configured.
    browser
        .js(
            "document.getElementById('street-lat').value = '48.8584';\
             document.getElementById('street-lng').value = '2.2945';\
             document.getElementById('street-form').requestSubmit();",
            vec![],
        )
        .await;
    browser
        .wait_text("#street a", "Open in Google Street View", PATIENT)
        .await;
    assert_eq!(
        browser
            .count("#street a[href^='https://www.google.com/maps/'][rel='noopener noreferrer']")
            .await,
        1
    );
    browser
        .wait_text("#street", "no Maps Embed browser key", SECOND)
        .await;
    browser
        .wait_text("#street .street-notes > *", "", PATIENT)
        .await;
    browser.screenshot("01-admin-live").await;
    browser
        .js(
            "document.querySelector('.map-panel').scrollIntoView();",
            vec![],
        )
        .await;
    browser.screenshot("02-map-offline-street-level").await;
    browser
        .js(
            "document.getElementById('scans-title').scrollIntoView();",
            vec![],
        )
        .await;
    browser.screenshot("02b-scans-agents").await;

    // HTML and script payloads in an event, an agent id and a scan target show as text.
    let payload = "<img src=x onerror=\"window.__pwned=1\"><script>window.__pwned=2</script>";
    publish(
        addr,
        &operator,
        json!({"kind": "opportunity_discovered", "room": "monitoring",
               "data": {"title": payload, "category": payload, "description": payload,
                        "confidence_score": 10, "revenue_potential": payload}}),
    )
    .await;
    publish(
        addr,
        &operator,
        json!({"kind": "agent_registered", "room": "monitoring",
               "data": {"agent_id": payload, "name": payload, "capabilities": [payload]}}),
    )
    .await;
    publish(
        addr,
        &operator,
        json!({"kind": "scan_started", "room": "scans",
               "data": {"scan_id": "scan-<b>x</b>", "target": payload, "status": "running"}}),
    )
    .await;
    publish(
        addr,
        &operator,
        json!({"kind": "alert_created", "room": "alerts", "severity": "warning",
               "data": {"target": payload, "name": payload, "remediation": payload,
                        "references": ["javascript:window.__pwned=3", payload]}}),
    )
    .await;
    browser
        .wait_text("#threats .threat", "window.__pwned=2", SECOND)
        .await;
    browser.wait_text(".opportunity h3", payload, SECOND).await;
    browser.wait_text("#agents", payload, SECOND).await;
    browser
        .wait_text("#scans .scan-target", payload, SECOND)
        .await;
    let injected = browser
        .js(
            "return { pwned: window.__pwned ?? null, \
             imgs: document.querySelectorAll('img[src=\"x\"], main script, main b').length, \
             jsLinks: [...document.querySelectorAll('a')].filter((a) => a.protocol === 'javascript:').length };",
            vec![],
        )
        .await;
    assert_eq!(
        injected,
        json!({"pwned": null, "imgs": 0, "jsLinks": 0}),
        "payloads must render as text"
    );
    assert_eq!(browser.count(".opportunity .confidence-low").await, 1);

    // Chat: an admin posts, everyone in the room sees it.
    browser
        .js(
            "document.getElementById('chat-input').value = 'on it <b>now</b>';\
             document.getElementById('chat-form').requestSubmit();",
            vec![],
        )
        .await;
    browser
        .wait_text("#chat li", "first admin: on it <b>now</b>", SECOND)
        .await;
    // The sender is the one the server knows (the publishing token's label), never the name a
    // client writes into the message.
    publish(
        addr,
        &operator,
        json!({"kind": "chat_message", "room": "chat",
               "data": {"user": "first admin", "message": "paste your token here"}}),
    )
    .await;
    browser
        .wait_text("#chat li", "test: paste your token here", SECOND)
        .await;
    assert_eq!(
        browser
            .js(
                "return [...document.querySelectorAll('#chat li')]\
                 .filter((n) => n.textContent.includes('first admin: paste')).length;",
                vec![],
            )
            .await,
        0,
        "data.user is never shown as the sender"
    );

    // Admin panel: shown to an admin; agent commands reach the server's in-process agent.
    assert_eq!(browser.count("#admin:not([hidden])").await, 1);
    browser
        .js(
            "document.getElementById('command-agent').value = 'local';\
             document.getElementById('command-form').requestSubmit();",
            vec![],
        )
        .await;
    browser
        .wait_text("#command-message", "Sent health_check to local.", PATIENT)
        .await;
    // Token management: the first admin token is listed; a new one is shown once, as text.
    browser.wait_text("#tokens", "first admin", PATIENT).await;
    browser
        .js(
            "document.getElementById('token-role').value = 'viewer';\
             document.getElementById('token-label').value = 'wall screen';\
             document.getElementById('token-form').requestSubmit();",
            vec![],
        )
        .await;
    browser
        .wait_text("#token-created", "New token (shown once): vgl_", PATIENT)
        .await;
    browser.wait_text("#tokens", "wall screen", PATIENT).await;

    // A dropped connection reconnects and replays what it missed, each event once.
    browser
        .js(
            "window.vigil.connection.socket.close(4000, 'test drop');",
            vec![],
        )
        .await;
    browser
        .wait_text("#connection.conn-retrying", "reconnecting", SECOND)
        .await;
    let mut missed = Vec::new();
    for n in 1..=3 {
        missed.push(
            publish(
                addr,
                &operator,
                json!({"kind": "system_health_updated", "room": "monitoring",
                       "data": {"message": format!("missed while offline #{n}")}}),
            )
            .await,
        );
    }
    browser
        .wait_text(
            "#notice",
            "Reconnected: 3 missed event(s) replayed",
            PATIENT,
        )
        .await;
    browser
        .wait_text("#connection.conn-live", "live", SECOND)
        .await;
    for id in &missed {
        assert_eq!(
            browser.count(&format!("#events li[data-id='{id}']")).await,
            1,
            "event {id} shown exactly once"
        );
    }
    let after = publish(
        addr,
        &operator,
        json!({"kind": "system_health_updated", "room": "monitoring", "data": {"message": "back live"}}),
    )
    .await;
    browser
        .wait_text(
            &format!("#events li[data-id='{after}']"),
            "back live",
            SECOND,
        )
        .await;
    browser.js("window.scrollTo(0, 0);", vec![]).await;
    browser.screenshot("03-after-reconnect").await;

    // Filters: only criticals.
    browser
        .js(
            "const s = document.getElementById('filter-severity'); s.value = 'critical';\
             s.dispatchEvent(new Event('input'));",
            vec![],
        )
        .await;
    // Our critical_alert, and the scan's threat_detected and critical_alert.
    let critical = browser.count("#events li.sev-critical").await;
    assert!(critical >= 3, "{critical} critical events");
    assert_eq!(browser.count("#events li").await, critical);

    browser
        .js(
            "const s = document.getElementById('filter-severity'); s.value = 'info';\
             s.dispatchEvent(new Event('input'));",
            vec![],
        )
        .await;
    assert!(browser.count("#events li").await > 10);

    // Pause holds new events back (and says how many wait); resume shows them.
    browser
        .js("document.getElementById('stream-pause').click();", vec![])
        .await;
    let held = publish(
        addr,
        &operator,
        json!({"kind": "metrics_updated", "room": "monitoring", "data": {"message": "held back"}}),
    )
    .await;
    browser
        .wait_text("#stream-paused", "paused · 1 waiting", SECOND)
        .await;
    assert_eq!(
        browser
            .count(&format!("#events li[data-id='{held}']"))
            .await,
        0
    );
    browser
        .js("document.getElementById('stream-pause').click();", vec![])
        .await;
    assert_eq!(
        browser
            .count(&format!("#events li[data-id='{held}']"))
            .await,
        1
    );
    // A click on an event shows its full JSON.
    browser
        .js(
            "document.querySelector(`#events li[data-id='${arguments[0]}'] summary`).click();",
            vec![json!(held)],
        )
        .await;
    browser
        .wait_text(
            &format!("#events li[data-id='{held}'] details[open] pre.json"),
            "\"held back\"",
            SECOND,
        )
        .await;

    // Sign out, then sign in with the form as a viewer: no admin panel, no scan form, no chat.
    browser
        .js("document.getElementById('logout').click();", vec![])
        .await;
    browser
        .wait_text("#login:not([hidden])", "Sign in", PATIENT)
        .await;
    let viewer = server.token(Role::Viewer).await;
    browser
        .js(
            "document.getElementById('login-token').value = arguments[0];\
             document.getElementById('login-form').requestSubmit();",
            vec![json!(viewer)],
        )
        .await;
    browser.wait_text("#role", "viewer", PATIENT).await;
    browser
        .wait_text("#connection.conn-live", "live", PATIENT)
        .await;
    assert_eq!(browser.count("#admin[hidden]").await, 1);
    assert_eq!(browser.count("#scan-form button:disabled").await, 1);
    assert_eq!(browser.count("#chat-form button:disabled").await, 1);
    browser.wait_text("#events li", "back live", PATIENT).await;
    browser
        .client
        .set_window_size(720, 1000)
        .await
        .expect("resize");
    browser.screenshot("04-viewer-half-screen").await;

    replace_session_from_a_link(&browser, &server, &viewer, &operator).await;

    browser.close().await;
    server.stop().await;
}

/// A `#token=` link opened while a viewer is signed in: the page asks before trading the token,
/// keeps the session when told so, and replaces it (ending the old one on the server) only when
/// told so. The fragment leaves the address bar either way.
async fn replace_session_from_a_link(
    browser: &Browser,
    server: &common::TestServer,
    viewer: &str,
    operator: &str,
) {
    let addr = server.addr;
    let (_, me) = request(addr, "GET", "/api/session", viewer, None).await;
    let viewer_id = me["token_id"].as_str().unwrap_or_default().to_owned();
    let link = format!("http://{addr}/dashboard#token={operator}");
    let sessions_of = |id: String| {
        let store = server.state.store().clone();
        async move {
            store
                .sessions(chrono::Utc::now())
                .await
                .expect("sessions")
                .iter()
                .filter(|s| s.token_id == id)
                .count()
        }
    };
    assert_eq!(
        sessions_of(viewer_id.clone()).await,
        1,
        "the viewer is signed in"
    );

    // A fresh load of the link: asked, answered "keep".
    browser.client.goto("about:blank").await.expect("leave");
    browser.client.goto(&link).await.expect("open the link");
    browser
        .wait_text("#replace-session[open]", "viewer (test)", PATIENT)
        .await;
    browser.screenshot("05-replace-session-asked").await;
    let hash = browser.js("return location.href;", vec![]).await;
    assert!(!hash.as_str().unwrap_or("vgl_").contains("vgl_"), "{hash}");
    browser
        .js("document.getElementById('replace-keep').click();", vec![])
        .await;
    browser
        .wait_text("#connection.conn-live", "live", PATIENT)
        .await;
    assert_eq!(browser.text("#role").await, "viewer");
    assert_eq!(browser.count("#replace-session[open]").await, 0);
    assert_eq!(
        sessions_of(viewer_id.clone()).await,
        1,
        "the session was kept"
    );

    // The same link in the open tab (only the fragment changes): asked, answered "replace".
    browser
        .client
        .goto(&link)
        .await
        .expect("open the link again");
    browser
        .wait_text("#replace-session[open]", "viewer (test)", PATIENT)
        .await;
    browser
        .js("document.getElementById('replace-accept').click();", vec![])
        .await;
    browser.wait_text("#role", "operator", PATIENT).await;
    browser
        .wait_text("#connection.conn-live", "live", PATIENT)
        .await;
    let href = browser.js("return location.href;", vec![]).await;
    assert!(!href.as_str().unwrap_or("vgl_").contains("vgl_"), "{href}");
    assert_eq!(
        sessions_of(viewer_id.clone()).await,
        0,
        "the replaced session ended"
    );
}

#[tokio::test]
async fn page_and_assets_are_served_with_types_caching_and_policy() {
    let server = common::TestServer::start(common::config()).await;
    let addr = server.addr;

    let root = raw(addr, "GET", "/", "", "").await;
    assert_eq!(root.status, 307);
    assert_eq!(root.header("location"), "/dashboard");

    let page = raw(addr, "GET", "/dashboard", "", "").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), "text/html; charset=utf-8");
    assert_eq!(page.header("cache-control"), "no-cache");
    let csp = page.header("content-security-policy");
    assert!(csp.starts_with("default-src 'self';"), "{csp}");
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    let html = String::from_utf8(page.body).unwrap();
    assert!(!html.contains("{{"), "the asset path is filled in");
    assert!(
        !html.contains("<script>") && !html.contains(" on"),
        "no inline script or handler"
    );
    let app = html
        .split('"')
        .find(|s| s.starts_with("/dashboard/assets/") && s.ends_with("/app.js"))
        .expect("the page loads app.js")
        .to_owned();

    let js = raw(addr, "GET", &app, "", "").await;
    assert_eq!(js.status, 200);
    assert_eq!(js.header("content-type"), "text/javascript; charset=utf-8");
    assert_eq!(
        js.header("cache-control"),
        "public, max-age=31536000, immutable"
    );
    let css = raw(addr, "GET", &app.replace("app.js", "style.css"), "", "").await;
    assert_eq!(css.header("content-type"), "text/css; charset=utf-8");
    let svg = raw(addr, "GET", &app.replace("app.js", "icon.svg"), "", "").await;
    assert_eq!(svg.header("content-type"), "image/svg+xml");

    // Another build's asset path, an unknown asset, a path outside the whitelist: nothing.
    let stale = raw(addr, "GET", "/dashboard/assets/000000000000/app.js", "", "").await;
    assert_eq!(stale.status, 404);
    let unknown = raw(addr, "GET", &app.replace("app.js", "Cargo.toml"), "", "").await;
    assert_eq!(unknown.status, 404);
    let vendor = raw(
        addr,
        "GET",
        "/dashboard/vendor/leaflet/../../Cargo.toml",
        "",
        "",
    )
    .await;
    assert_eq!(vendor.status, 404);
    // Leaflet comes out of the binary, with its licence.
    let leaflet = raw(addr, "GET", "/dashboard/vendor/leaflet/leaflet.js", "", "").await;
    assert_eq!(leaflet.status, 200);
    assert_eq!(
        leaflet.header("content-type"),
        "text/javascript; charset=utf-8"
    );
    assert!(String::from_utf8_lossy(&leaflet.body).contains("Leaflet 1.9.4,"));
    let marker = raw(
        addr,
        "GET",
        "/dashboard/vendor/leaflet/images/marker-icon.png",
        "",
        "",
    )
    .await;
    assert_eq!(marker.header("content-type"), "image/png");
    assert!(marker.body.starts_with(b"\x89PNG"));
    let licence = raw(addr, "GET", "/dashboard/vendor/leaflet/LICENSE", "", "").await;
    assert!(licence.body.starts_with(b"BSD 2-Clause License"));
    let map = raw(
        addr,
        "GET",
        "/dashboard/vendor/leaflet/leaflet.js.map",
        "",
        "",
    )
    .await;
    assert_eq!(map.status, 404, "only the listed files");

    // The page's configuration is for signed-in viewers only.
    let anonymous = raw(addr, "GET", "/api/dashboard/config", "", "").await;
    assert_eq!(anonymous.status, 401);
    let viewer = server.token(Role::Viewer).await;
    let (status, config) = request(addr, "GET", "/api/dashboard/config", &viewer, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        config["tile_url"],
        "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    );
    assert_eq!(config["leaflet"]["source"], "embedded");
    assert_eq!(config["leaflet"]["version"], vigil_server::LEAFLET_VERSION);
    assert_eq!(
        config["leaflet"]["js"],
        "/dashboard/vendor/leaflet/leaflet.js"
    );
    assert_eq!(
        config["leaflet"]["css"],
        "/dashboard/vendor/leaflet/leaflet.css"
    );
    assert_eq!(config["embed_key"], Value::Null);
    server.stop().await;
}

#[tokio::test]
async fn a_leaflet_dir_replaces_the_embedded_copy() {
    // The vendored copy, marked, in a directory of its own: what `--leaflet-dir` serves.
    let vendored = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/vendor/leaflet");
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut js = std::fs::read(vendored.join("leaflet.js")).expect("the vendored leaflet.js");
    js.extend_from_slice(b"\nwindow.__leafletFromDir = true;\n");
    std::fs::write(dir.path().join("leaflet.js"), &js).expect("write leaflet.js");
    std::fs::write(dir.path().join("secret.txt"), "not for the web").expect("write");
    let mut config = common::config();
    config.dashboard.leaflet = LeafletSource::Local(dir.path().to_owned());
    let server = common::TestServer::start(config).await;
    let addr = server.addr;

    let served = raw(addr, "GET", "/dashboard/vendor/leaflet/leaflet.js", "", "").await;
    assert_eq!(served.status, 200);
    assert_eq!(
        served.body, js,
        "the directory's file, not the embedded one"
    );
    // A listed file the directory lacks, and a file outside the list: nothing.
    let css = raw(addr, "GET", "/dashboard/vendor/leaflet/leaflet.css", "", "").await;
    assert_eq!(css.status, 404);
    let other = raw(addr, "GET", "/dashboard/vendor/leaflet/secret.txt", "", "").await;
    assert_eq!(other.status, 404);

    let page = raw(addr, "GET", "/dashboard", "", "").await;
    let csp = page.header("content-security-policy");
    assert!(csp.contains("script-src 'self';"), "{csp}");
    let viewer = server.token(Role::Viewer).await;
    let (_, answer) = request(addr, "GET", "/api/dashboard/config", &viewer, None).await;
    assert_eq!(answer["leaflet"]["source"], "local");
    assert_eq!(
        answer["leaflet"]["js"],
        "/dashboard/vendor/leaflet/leaflet.js"
    );

    // No map at all: nothing under the vendor path, and the page is told so.
    server.stop().await;
    let mut config = common::config();
    config.dashboard.leaflet = LeafletSource::Disabled;
    let server = common::TestServer::start(config).await;
    let none = raw(
        server.addr,
        "GET",
        "/dashboard/vendor/leaflet/leaflet.js",
        "",
        "",
    )
    .await;
    assert_eq!(none.status, 404);
    let viewer = server.token(Role::Viewer).await;
    let (_, answer) = request(server.addr, "GET", "/api/dashboard/config", &viewer, None).await;
    assert_eq!(answer["leaflet"], Value::Null);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_with_the_embedded_leaflet_and_no_tiles() {
    let Some(browser) = launch("embedded-leaflet").await else {
        return;
    };
    // No Leaflet directory configured: the default, the copy embedded in the binary.
    let config = config();
    assert_eq!(config.dashboard.leaflet, LeafletSource::Embedded);
    let server = common::TestServer::start(config).await;
    let base = format!("http://{}", server.addr);
    // The policy lets scripts and styles come from this server only: no CDN, no https: host.
    let page = raw(server.addr, "GET", "/dashboard", "", "").await;
    let csp = page.header("content-security-policy");
    let directive = |name: &str| {
        csp.split(';')
            .map(str::trim)
            .find(|d| d.starts_with(name))
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(directive("script-src "), "script-src 'self'", "{csp}");
    assert_eq!(directive("style-src "), "style-src 'self'", "{csp}");
    browser
        .client
        .goto(&format!("{base}/dashboard#token={}", server.admin))
        .await
        .expect("open the dashboard");
    browser
        .wait_text("#connection.conn-live", "live", PATIENT)
        .await;
    // Leaflet runs from this server; the tiles (on a closed port) fail and the panel says so.
    browser
        .wait_text(
            "#map .leaflet-control-attribution",
            "OpenStreetMap",
            PATIENT,
        )
        .await;
    let loaded = browser
        .js(
            "const scripts = performance.getEntriesByType('resource')\
               .map((e) => new URL(e.name)).filter((u) => u.pathname.endsWith('.js'));\
             return { version: window.L?.version ?? null,\
               leaflet: scripts.filter((u) => u.origin === location.origin\
                 && u.pathname === '/dashboard/vendor/leaflet/leaflet.js').length,\
               elsewhere: scripts.filter((u) => u.origin !== location.origin).map(String) };",
            vec![],
        )
        .await;
    assert_eq!(
        loaded,
        json!({"version": vigil_server::LEAFLET_VERSION, "leaflet": 1, "elsewhere": []}),
        "Leaflet came from this server's embedded copy"
    );
    browser
        .wait_text("#map-message", "Map tiles cannot be loaded", PATIENT)
        .await;

    // The locate form reaches the real /v1/geolocate: this server has no offline database, so
    // the Ichnaea-style not-found answer is shown in plain words.
    browser
        .js(
            "document.getElementById('locate').open = true;\
             document.getElementById('locate-wifi').value = '01:23:45:67:89:ab -51\\n01:23:45:67:89:ac -70';\
             document.getElementById('locate-form').requestSubmit();",
            vec![],
        )
        .await;
    browser
        .wait_text("#locate-result", "Locating failed: Not found", PATIENT)
        .await;

    // A position resolved by the server is drawn as its accuracy circle, labelled with text.
    let circles_before = browser.count("#map path.leaflet-interactive").await;
    publish(
        server.addr,
        &server.admin,
        json!({"kind": "location_resolved", "room": "monitoring",
               "data": {"latitude": 48.8584, "longitude": 2.2945, "accuracy_m": 40.0, "source": "<img src=x onerror=alert(1)>"}}),
    )
    .await;
    let deadline = std::time::Instant::now() + PATIENT;
    while browser.count("#map path.leaflet-interactive").await <= circles_before {
        assert!(
            std::time::Instant::now() < deadline,
            "the resolved position was never drawn"
        );
        browser
            .js(
                "return new Promise((done) => requestAnimationFrame(() => done(true)));",
                vec![],
            )
            .await;
    }
    assert_eq!(
        browser.count("#map img[src='x']").await,
        0,
        "the label is text, not HTML"
    );

    // A click on the map opens the street-level panel for that point.
    let map = browser
        .client
        .find(fantoccini::Locator::Css("#map"))
        .await
        .expect("the map");
    map.click().await.expect("click the map");
    browser
        .wait_text("#street h3", "Street level", PATIENT)
        .await;
    browser
        .wait_text("#street a", "Open in Google Street View", PATIENT)
        .await;
    browser
        .js(
            "document.querySelector('.map-panel').scrollIntoView();",
            vec![],
        )
        .await;
    browser.screenshot("map-embedded-leaflet").await;
    browser.close().await;
    server.stop().await;
}
