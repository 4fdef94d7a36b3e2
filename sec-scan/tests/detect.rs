//! The detection engine against fake services on 127.0.0.1: the NULL probe, a service that
//! answers only a probe, softmatch narrowing, TLS, tcpwrapped, and the time bounds.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use sec_scan::{
    Detail, DetectConfig, Method, Pipeline, PortList, ScanOptions, Scope, ServiceProbes,
    SignatureSet, SystemResolver, Target,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A fake service: says `greeting` on connect (if any), then answers each request with what
/// `answer` returns for it (nothing for `None`), and records every request.
async fn fake(
    greeting: &'static [u8],
    answer: fn(&[u8]) -> Option<Vec<u8>>,
) -> (SocketAddr, Arc<Mutex<Vec<Vec<u8>>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                if !greeting.is_empty() && s.write_all(greeting).await.is_err() {
                    return;
                }
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    log.lock().unwrap().push(buf[..n].to_vec());
                    if let Some(reply) = answer(&buf[..n])
                        && s.write_all(&reply).await.is_err()
                    {
                        break;
                    }
                }
            });
        }
    });
    (addr, seen)
}

fn quick() -> DetectConfig {
    DetectConfig {
        connect_timeout: Duration::from_millis(500),
        port_budget: Duration::from_secs(5),
        ..DetectConfig::default()
    }
}

// A probe file written for these tests, with short waits.
const FILE: &str = r"
Probe TCP NULL q||
totalwaitms 300
tcpwrappedms 200
match ftp m|^220 \(vsFTPd ([\d.]+)\)\r\n| p/vsftpd/ v/$1/ cpe:/a:vsftpd_project:vsftpd:$1/
softmatch kv m|^\* kv ready\r\n|

Probe TCP Hello q|HELLO\r\n|
rarity 1
totalwaitms 300
match echo m|^ECHO HELLO| p/echo server/

Probe TCP Other q|OTHER\r\n|
rarity 2
totalwaitms 300
match other m|^OTHER| p/other/

Probe TCP KvVersion q|VERSION\r\n|
rarity 9
totalwaitms 300
match kv m|^(?:\* kv ready\r\n)?KV ([\d.]+)\r\n| p/kvd/ v/$1/

Probe TCP Listed q|LISTED\r\n|
rarity 9
ports 1
totalwaitms 300
match listed m|^LISTED| p/listed/
";

fn probes() -> ServiceProbes {
    ServiceProbes::parse(FILE).unwrap()
}

#[tokio::test]
async fn a_banner_read_by_the_null_probe_is_identified_with_its_cpe() {
    let (addr, seen) = fake(b"220 (vsFTPd 3.0.3)\r\n", |_| None).await;
    let d = probes().detect(addr, None, &quick()).await.unwrap();
    assert_eq!(d.service.as_deref(), Some("ftp"));
    assert_eq!(d.fields.product.as_deref(), Some("vsftpd"));
    assert_eq!(d.fields.version.as_deref(), Some("3.0.3"));
    assert_eq!(d.fields.cpes, ["cpe:/a:vsftpd_project:vsftpd:3.0.3"]);
    assert_eq!(
        (d.method, d.probe.as_deref()),
        (Some(Method::Probed), Some("NULL"))
    );
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing is sent after a match"
    );
}

#[tokio::test]
async fn a_silent_service_is_found_by_a_probe() {
    let (addr, seen) = fake(b"", |req| {
        req.starts_with(b"HELLO")
            .then(|| b"ECHO HELLO\r\n".to_vec())
    })
    .await;
    let d = probes().detect(addr, None, &quick()).await.unwrap();
    assert_eq!(d.service.as_deref(), Some("echo"));
    assert_eq!(d.probe.as_deref(), Some("Hello"));
    assert_eq!(*seen.lock().unwrap(), [b"HELLO\r\n".to_vec()]);
}

#[tokio::test]
async fn a_softmatch_narrows_the_probes_to_its_service_whatever_their_rarity() {
    let (addr, seen) = fake(b"* kv ready\r\n", |req| {
        req.starts_with(b"VERSION")
            .then(|| b"KV 2.4.1\r\n".to_vec())
    })
    .await;
    let d = probes().detect(addr, None, &quick()).await.unwrap();
    assert_eq!(d.service.as_deref(), Some("kv"));
    assert_eq!(d.fields.product.as_deref(), Some("kvd"));
    assert_eq!(d.fields.version.as_deref(), Some("2.4.1"));
    assert_eq!(d.method, Some(Method::Probed));
    // Hello and Other have no kv line: they were never sent. KvVersion (rarity 9) was.
    assert_eq!(*seen.lock().unwrap(), [b"VERSION\r\n".to_vec()]);
}

#[tokio::test]
async fn a_softmatch_alone_is_reported_as_such() {
    let (addr, _) = fake(b"* kv ready\r\n", |_| None).await;
    let d = probes().detect(addr, None, &quick()).await.unwrap();
    assert_eq!(
        (d.service.as_deref(), d.method),
        (Some("kv"), Some(Method::Softmatch))
    );
    assert_eq!(d.reply, b"* kv ready\r\n");
}

#[tokio::test]
async fn a_service_behind_tls_is_probed_inside_it() {
    let port = common::expired_tls().await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let file = "Probe TCP NULL q||\ntotalwaitms 300\n\
                Probe TCP GetRequest q|GET / HTTP/1.0\\r\\n\\r\\n|\nrarity 1\ntotalwaitms 500\n\
                match http m|^HTTP/1\\.[01] \\d\\d\\d .*\\r\\nServer: ([^\\r\\n]+)\\r\\n|s p/$1/\n";
    let set = ServiceProbes::parse(file).unwrap();
    let d = set.detect(addr, None, &quick()).await.unwrap();
    assert_eq!(d.service.as_deref(), Some("http"), "{d:?}");
    assert!(d.tls);
    assert_eq!(d.fields.product.as_deref(), Some("vigil-fixture"));
    match d.detail() {
        Detail::Banner { tunnel, .. } => assert_eq!(tunnel.as_deref(), Some("ssl")),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_connection_closed_at_once_is_tcpwrapped() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            drop(s);
        }
    });
    let d = probes().detect(addr, None, &quick()).await.unwrap();
    assert_eq!(d.service.as_deref(), Some("tcpwrapped"));
}

#[tokio::test]
async fn probe_waits_and_the_port_budget_bound_a_silent_port() {
    let (addr, seen) = fake(b"", |_| None).await;
    let started = Instant::now();
    let d = probes().detect(addr, None, &quick()).await.unwrap();
    // NULL, Hello, Other at 300 ms each, one TLS attempt bounded by the connect timeout.
    assert!(
        started.elapsed() < Duration::from_millis(2_500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!((d.service, d.method), (None, None));
    // Hello and Other, not the rare probes; then a TLS ClientHello (the one TLS attempt).
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[..2], [b"HELLO\r\n".to_vec(), b"OTHER\r\n".to_vec()]);
    assert!(
        seen[2..].iter().all(|r| r.starts_with(&[0x16, 0x03])),
        "{seen:?}"
    );

    // A budget shorter than the probes' waits wins.
    let slow = ServiceProbes::parse("Probe TCP NULL q||\ntotalwaitms 10000\n").unwrap();
    let started = Instant::now();
    let config = DetectConfig {
        port_budget: Duration::from_millis(400),
        ..quick()
    };
    slow.detect(addr, None, &config).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_probe_listing_the_port_runs_whatever_its_rarity_and_intensity_zero_skips_others() {
    let (addr, seen) = fake(b"", |_| None).await;
    let config = DetectConfig {
        intensity: 0,
        ..quick()
    };
    probes().detect(addr, None, &config).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    // Only the TLS attempt's ClientHello: rarity 1 is above intensity 0.
    assert!(
        seen.iter().all(|r| r.starts_with(&[0x16, 0x03])),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_closed_port_is_an_error_not_a_detection() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    assert!(probes().detect(addr, None, &quick()).await.is_err());
}

/// A fake Redis without a password: RESP errors for unknown input, INFO and PING answered.
fn redis(req: &[u8]) -> Option<Vec<u8>> {
    Some(if req.starts_with(b"GET ") {
        b"-ERR wrong number of arguments for 'get' command\r\n".to_vec()
    } else if req.starts_with(b"INFO") {
        let body = "# Server\r\nredis_version:7.2.4\r\nredis_mode:standalone\r\n";
        format!("${}\r\n{body}\r\n", body.len()).into_bytes()
    } else if req.starts_with(b"PING") {
        b"+PONG\r\n".to_vec()
    } else {
        b"-ERR unknown command\r\n".to_vec()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_on_another_port_is_identified_by_the_builtin_probes_and_gets_its_access_check() {
    let (addr, _) = fake(b"", redis).await;
    assert_ne!(addr.port(), 6379);
    let targets: Vec<Target> = vec!["127.0.0.1".parse().unwrap()];
    let scope = Scope::from_targets(&targets).unwrap();
    let plan = scope
        .plan(
            &targets,
            PortList::from_ports([addr.port()]).unwrap(),
            &SystemResolver,
        )
        .await
        .unwrap();
    let pipeline = Pipeline::new(ScanOptions {
        banners: true,
        access_checks: true,
        ..ScanOptions::default()
    })
    .unwrap();
    let report = pipeline
        .run(
            &plan,
            &SignatureSet::builtin(),
            &CancellationToken::new(),
            |_| {},
        )
        .await
        .unwrap();
    let banner = report
        .findings
        .iter()
        .find_map(|f| match &f.detail {
            Detail::Banner {
                service,
                product,
                version,
                cpe,
                method,
                probe,
                ..
            } => Some((service, product, version, cpe, method, probe)),
            _ => None,
        })
        .expect("a banner finding");
    assert_eq!(banner.0.as_deref(), Some("redis"));
    assert_eq!(banner.1.as_deref(), Some("Redis key-value store"));
    assert_eq!(banner.2.as_deref(), Some("7.2.4"));
    assert_eq!(*banner.3, ["cpe:2.3:a:redis:redis:7.2.4:*:*:*:*:*:*:*"]);
    assert_eq!(*banner.4, Some(Method::Probed));
    assert_eq!(banner.5.as_deref(), Some("RedisInfo"));
    assert!(
        report.findings.iter().any(|f| matches!(
            &f.detail,
            Detail::Access { check, .. } if check == "redis-no-auth"
        )),
        "{:?}",
        report.findings
    );
    // The new fields serialise, and old JSON without them still parses.
    let json = serde_json::to_string(&report.findings).unwrap();
    assert!(json.contains("\"method\":\"probed\"") && json.contains("\"cpe\":["));
    let old: Detail = serde_json::from_str(
        r#"{"kind":"banner","service":"ssh","product":null,"version":null,"text":"SSH-2.0-x"}"#,
    )
    .unwrap();
    assert!(matches!(old, Detail::Banner { cpe, method: None, .. } if cpe.is_empty()));
}

/// nmap's own probe file, when this machine has it: load counts only (it is read, never
/// copied). Skipped with a message otherwise.
#[test]
fn nmaps_installed_probe_file_loads_when_present() {
    let path = "/usr/share/nmap/nmap-service-probes";
    let Ok(bytes) = std::fs::read(path) else {
        eprintln!("skipped: {path} is not installed");
        return;
    };
    let set = ServiceProbes::parse(&String::from_utf8_lossy(&bytes)).unwrap();
    let r = set.report();
    eprintln!("{path}: {r:?}");
    assert!(r.tcp_probes > 50 && r.loaded > 10_000, "{r:?}");
    assert_eq!(r.loaded + r.skipped, r.lines);
}

#[tokio::test]
async fn the_builtin_probes_find_http_inside_tls() {
    let port = common::expired_tls().await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    // The NULL probe waits 2.5 s in plain text and again inside TLS: the default budget.
    let d = ServiceProbes::builtin()
        .detect(addr, None, &DetectConfig::default())
        .await
        .unwrap();
    assert_eq!(d.service.as_deref(), Some("http"), "{d:?}");
    assert!(d.tls);
    assert_eq!(d.fields.product.as_deref(), Some("vigil-fixture"));
}

#[tokio::test]
async fn a_hard_ssl_match_survives_when_nothing_answers_inside_tls() {
    // Answers any bytes with a TLS alert record, and never completes a handshake.
    let (addr, _) = fake(b"", |_| Some(b"\x15\x03\x03\x00\x02\x02\x28".to_vec())).await;
    let set = ServiceProbes::parse(
        "Probe TCP NULL q||\ntotalwaitms 200\n\
         Probe TCP Hello q|HELLO|\nrarity 1\ntotalwaitms 300\n\
         match ssl m|^\\x15\\x03[\\x00-\\x04]\\0\\x02\\x02| p/TLS alert/\n",
    )
    .unwrap();
    let d = set.detect(addr, None, &quick()).await.unwrap();
    assert_eq!(d.service.as_deref(), Some("ssl"), "{d:?}");
    assert_eq!(d.fields.product.as_deref(), Some("TLS alert"));
    assert!(!d.tls);
}
