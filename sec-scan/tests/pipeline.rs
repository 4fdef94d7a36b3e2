//! A whole scan of loopback fixtures: ports, banners, TLS, HTTP, signatures; and the same
//! through the in-process executor.

mod common;

use std::sync::Arc;
use std::time::Duration;

use sec_scan::{
    BannerConfig, Executor, ExecutorConfig, LocalRunner, Pipeline, PortList, ScanOptions, ScanTask,
    Scope, SignatureSet, SystemResolver, Target, TaskKind, TaskStatus,
};
use tokio_util::sync::CancellationToken;

fn options() -> ScanOptions {
    ScanOptions {
        banners: true,
        tls: true,
        http: true,
        banner: BannerConfig {
            banner_wait: Duration::from_millis(300),
            ..BannerConfig::default()
        },
        ..ScanOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_scan_finds_the_fixture_threats() {
    let ssh = common::weak_ssh().await;
    let tls = common::expired_tls().await;
    let http = common::bare_http().await;
    let targets: Vec<Target> = vec!["127.0.0.1".parse().unwrap()];
    let scope = Scope::from_targets(&targets).unwrap();
    let plan = scope
        .plan(
            &targets,
            PortList::from_ports([ssh, tls, http]).unwrap(),
            &SystemResolver,
        )
        .await
        .unwrap();
    let pipeline = Pipeline::new(options()).unwrap();
    let mut streamed = 0;
    let report = pipeline
        .run(
            &plan,
            &SignatureSet::builtin(),
            &CancellationToken::new(),
            |e| {
                if matches!(e, sec_scan::ScanEvent::Finding(_)) {
                    streamed += 1;
                }
            },
        )
        .await
        .unwrap();
    assert_eq!(report.open.len(), 3);
    assert_eq!(
        streamed,
        report.findings.len(),
        "every finding was streamed"
    );
    let has = |id: &str, port: u16| {
        report
            .threats
            .iter()
            .any(|t| t.signature_id == id && t.port == Some(port))
    };
    assert!(has("ssh-weak-kex", ssh), "{:#?}", report.threats);
    assert!(has("tls-expired", tls), "{:#?}", report.threats);
    assert!(has("tls-self-signed", tls));
    assert!(
        has("http-missing-hsts", tls),
        "HTTPS probe ran over TLS: {:#?}",
        report.findings
    );
    assert!(has("nginx-outdated", http));
    assert!(has("http-missing-csp", http));
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_executor_runs_scan_tasks_within_its_scope() {
    let ssh = common::weak_ssh().await;
    let scope = Scope::builder().allow("127.0.0.1").build().unwrap();
    let runner = LocalRunner::new(
        scope,
        Arc::new(SignatureSet::builtin()),
        options(),
        Arc::new(SystemResolver),
    );
    let (handle, mut results, _join) =
        Executor::start(ExecutorConfig::default(), Arc::new(runner)).unwrap();
    let ok = ScanTask::new(TaskKind::VulnScan, "127.0.0.1").with_ports(ssh.to_string());
    let refused = ScanTask::new(TaskKind::PortScan, "169.254.169.254")
        .with_ports("80")
        .with_retries(0);
    handle.submit(ok.clone()).unwrap();
    handle.submit(refused.clone()).unwrap();
    let mut got = [results.recv().await.unwrap(), results.recv().await.unwrap()];
    got.sort_by_key(|r| r.task_id == refused.id);
    assert_eq!(got[0].task_id, ok.id);
    assert_eq!(got[0].status, TaskStatus::Success);
    assert!(
        got[0]
            .threats
            .iter()
            .any(|t| t.signature_id == "ssh-weak-kex")
    );
    assert_eq!(got[1].status, TaskStatus::Failed);
    assert!(
        got[1].error.as_deref().unwrap().contains("out of scope"),
        "{:?}",
        got[1].error
    );
}
