//! File-descriptor pressure: the scanner raises the soft limit when allowed, and when the
//! process runs out of descriptors mid-scan it shrinks its window instead of failing.
//!
//! This is its own test binary because it changes the process-wide `RLIMIT_NOFILE`.

use std::collections::BTreeSet;

use sec_scan::{PortList, PortScanConfig, PortScanner, Scope, SystemResolver, Target};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raises_the_limit_and_survives_emfile() {
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    if hard < 512 {
        eprintln!("skipped: hard RLIMIT_NOFILE {hard} is too low to test with");
        return;
    }
    let l1 = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let l2 = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ours: BTreeSet<u16> = [&l1, &l2]
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect();
    // The listeners never accept: the kernel completes handshakes from the backlog, so they stay
    // open even while this process has no descriptor left (an accept loop would end on EMFILE
    // and close them, which is what once made this test flaky).
    let lo = *ours.iter().next().unwrap();
    let ports = PortList::from_ports(
        (lo.saturating_sub(300).max(1)..=lo.saturating_add(300)).chain(ours.iter().copied()),
    )
    .unwrap();
    let targets: Vec<Target> = vec!["127.0.0.1".parse().unwrap()];
    let plan = Scope::from_targets(&targets)
        .unwrap()
        .plan(&targets, ports.clone(), &SystemResolver)
        .await
        .unwrap();

    // 1. With a low soft limit and raising allowed, the scanner lifts it to the hard limit.
    rlimit::setrlimit(rlimit::Resource::NOFILE, 256, hard).unwrap();
    PortScanner::new(PortScanConfig::default())
        .unwrap()
        .scan(&plan)
        .await
        .unwrap();
    assert_eq!(rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap().0, hard);

    // 2. With raising off, a 320 soft limit and most descriptors already taken, connects hit
    //    EMFILE: the window shrinks and every port is still decided correctly.
    rlimit::setrlimit(rlimit::Resource::NOFILE, 320, hard).unwrap();
    let mut hog = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        hog.push(f);
    }
    // Leave a handful free, so progress is possible at a small window (the scanner's per-core
    // runtimes need a few descriptors of their own before the first connect).
    hog.truncate(hog.len().saturating_sub(32));
    let scanner = PortScanner::new(PortScanConfig {
        raise_fd_limit: false,
        concurrency: 1000,
        ..PortScanConfig::default()
    })
    .unwrap();
    let scanned = scanner.scan(&plan).await;
    drop(hog);
    let (results, stats) = scanned.unwrap_or_else(|e| panic!("the scan failed under EMFILE: {e}"));
    rlimit::setrlimit(rlimit::Resource::NOFILE, soft, hard).unwrap();
    assert!(
        stats.window_shrinks > 0,
        "EMFILE was hit and handled: {stats:?}"
    );
    assert_eq!(stats.ports, ports.len() as u64, "every port decided");
    assert_eq!(stats.unknown, 0, "{stats:?}");
    let open: BTreeSet<u16> = results.iter().map(|r| r.addr.port()).collect();
    assert!(open.is_superset(&ours), "{open:?}");
    drop((l1, l2));
}
