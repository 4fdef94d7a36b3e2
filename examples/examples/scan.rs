//! Scan loopback with sec-scan: the scope, a whole scan (ports, banners, TLS, HTTP, signatures)
//! and the same work as prioritised tasks through the in-process executor.
//!
//! To have something to find, the example first starts a deliberately weak SSH-like service on
//! a random 127.0.0.1 port (it offers `diffie-hellman-group1-sha1`). Only 127.0.0.1 is scanned.
//!
//! ```text
//! cargo run -p vigil-examples --example scan                 # the demo service + ports 1-1024
//! cargo run -p vigil-examples --example scan -- 1-65535      # every port of 127.0.0.1
//! ```

use std::sync::Arc;
use std::time::Duration;

use sec_scan::{
    BannerConfig, Executor, ExecutorConfig, LocalRunner, Pipeline, PortList, Priority, ScanEvent,
    ScanOptions, ScanTask, Scope, SignatureSet, SystemResolver, Target, TaskKind,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A weak SSH-like service: identification line, then a KEXINIT offering a SHA-1 group.
async fn demo_service() -> anyhow::Result<u16> {
    let mut payload = vec![20u8];
    payload.extend_from_slice(&[7; 16]);
    for list in [
        "curve25519-sha256,diffie-hellman-group1-sha1",
        "ssh-ed25519",
        "aes128-ctr",
        "aes128-ctr",
        "hmac-sha2-256",
        "hmac-sha2-256",
        "none",
        "none",
        "",
        "",
    ] {
        payload.extend_from_slice(&(list.len() as u32).to_be_bytes());
        payload.extend_from_slice(list.as_bytes());
    }
    payload.extend_from_slice(&[0; 5]);
    let padding = 8 - (payload.len() + 5) % 8 + 4;
    let mut greeting = b"SSH-2.0-OpenSSH_7.4\r\n".to_vec();
    greeting.extend_from_slice(&((payload.len() + padding + 1) as u32).to_be_bytes());
    greeting.push(padding as u8);
    greeting.extend_from_slice(&payload);
    greeting.extend(std::iter::repeat_n(0u8, padding));

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let greeting = greeting.clone();
            tokio::spawn(async move {
                let _ = s.write_all(&greeting).await;
                let mut buf = [0u8; 256];
                while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    Ok(port)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let demo = demo_service().await?;
    let spec = std::env::args().nth(1).unwrap_or_else(|| "1-1024".into());
    let ports = PortList::from_ports(
        spec.parse::<PortList>()?
            .as_slice()
            .iter()
            .copied()
            .chain([demo]),
    )?;

    // 1. The scope: exactly what we typed. Loopback must be listed to be scanned.
    let targets: Vec<Target> = vec!["127.0.0.1".parse()?];
    let scope = Scope::from_targets(&targets)?;
    let refused = scope
        .plan(
            &["169.254.169.254".parse()?],
            ports.clone(),
            &SystemResolver,
        )
        .await;
    println!("169.254.169.254 -> {}", refused.unwrap_err());
    let plan = scope.plan(&targets, ports, &SystemResolver).await?;

    // 2. A whole scan, with results streamed as they are found.
    let options = ScanOptions {
        banners: true,
        tls: true,
        http: true,
        banner: BannerConfig {
            banner_wait: Duration::from_millis(500),
            ..BannerConfig::default()
        },
        ..ScanOptions::default()
    };
    let signatures = SignatureSet::builtin();
    let report = Pipeline::new(options.clone())?
        .run(&plan, &signatures, &CancellationToken::new(), |event| {
            if let ScanEvent::Open(r) = event {
                println!("open: {}", r.addr);
            }
        })
        .await?;
    println!(
        "{} ports in {} ms, {} open, {} self-connections ignored",
        report.stats.ports, report.duration_ms, report.stats.open, report.stats.self_connects
    );
    for t in &report.threats {
        println!(
            "[{}] {}:{} {} ({} = {})\n    fix: {}",
            t.severity,
            t.addr,
            t.port.unwrap_or(0),
            t.name,
            t.field,
            t.evidence,
            t.remediation
        );
    }

    // 3. The same as tasks: a priority queue with retries, run in process.
    let runner = LocalRunner::new(
        scope,
        Arc::new(signatures),
        options,
        Arc::new(SystemResolver),
    );
    let (queue, mut results, done) = Executor::start(ExecutorConfig::default(), Arc::new(runner))?;
    queue.submit(
        ScanTask::new(TaskKind::BannerGrab, "127.0.0.1")
            .with_ports(demo.to_string())
            .with_priority(Priority::new(9)?),
    )?;
    queue.submit(ScanTask::new(TaskKind::PortScan, "127.0.0.1").with_ports("top20"))?;
    queue.close();
    while let Some(r) = results.recv().await {
        println!(
            "task {} ({}): {:?}, {} findings, {} threats in {:.2} s",
            &r.task_id[..8],
            r.kind,
            r.status,
            r.findings.len(),
            r.threats.len(),
            r.duration_seconds
        );
    }
    done.await?;
    Ok(())
}
