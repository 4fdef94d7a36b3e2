//! Port scanner and scope, through the public API, on loopback only.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sec_scan::{
    Error, PortList, PortScanConfig, PortScanner, PortState, Reason, Report, Resolver, Scope,
    ScopeViolation, SystemResolver, Target,
};
use tokio::net::TcpListener;

/// Starts `n` accept-and-close listeners on random loopback ports; returns their ports.
async fn listeners(host: &str, n: usize) -> (Vec<u16>, Vec<tokio::task::JoinHandle<()>>) {
    let mut ports = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..n {
        let l = TcpListener::bind((host, 0)).await.unwrap();
        ports.push(l.local_addr().unwrap().port());
        tasks.push(tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                drop(s);
            }
        }));
    }
    (ports, tasks)
}

async fn plan(targets: &[&str], ports: PortList) -> sec_scan::ScanPlan {
    let targets: Vec<Target> = targets.iter().map(|t| t.parse().unwrap()).collect();
    let scope = Scope::from_targets(&targets).unwrap();
    scope.plan(&targets, ports, &SystemResolver).await.unwrap()
}

/// A socket bound to a random port without listening: the port is closed and stays ours.
fn bound_not_listening(addr: &str) -> tokio::net::TcpSocket {
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .unwrap();
    socket.bind(addr).unwrap();
    socket
}

/// Ports the kernel says are listening and reachable at 127.0.0.1 (other programs on this
/// machine may listen too, so a scan's truth is the kernel's table, not only our listeners).
fn kernel_listeners_v4() -> BTreeSet<u16> {
    let mut ports = BTreeSet::new();
    for (file, reachable) in [
        ("/proc/net/tcp", &["0100007F", "00000000"][..]),
        (
            "/proc/net/tcp6",
            &[
                "00000000000000000000000000000000",
                "0000000000000000FFFF00000100007F",
            ][..],
        ),
    ] {
        let Ok(table) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in table.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 4 || cols[3] != "0A" {
                continue;
            }
            if let Some((addr, port)) = cols[1].split_once(':')
                && reachable.contains(&addr)
                && let Ok(port) = u16::from_str_radix(port, 16)
            {
                ports.insert(port);
            }
        }
    }
    ports
}

/// Ports around the listeners, spanning part of the ephemeral range, plus the listeners.
fn window_around(ports: &[u16], span: u16) -> PortList {
    let lo = ports.iter().min().unwrap().saturating_sub(span / 2).max(1);
    let hi = lo.saturating_add(span);
    PortList::from_ports((lo..=hi).chain(ports.iter().copied())).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finds_exactly_the_listeners_over_repeated_scans() {
    let (ports, tasks) = listeners("127.0.0.1", 8).await;
    let expected: BTreeSet<u16> = ports.iter().copied().collect();
    let list = window_around(&ports, 3000);
    let plan = plan(&["127.0.0.1"], list.clone()).await;
    let scanner = PortScanner::new(PortScanConfig {
        timeout: Duration::from_secs(2),
        ..Default::default()
    })
    .unwrap();
    let mut self_connects = 0;
    for run in 0..10 {
        let before = kernel_listeners_v4();
        let (results, stats) = scanner.scan(&plan).await.unwrap();
        let after = kernel_listeners_v4();
        let open: BTreeSet<u16> = results
            .iter()
            .filter(|r| r.state == PortState::Open)
            .map(|r| r.addr.port())
            .collect();
        assert!(
            open.is_superset(&expected),
            "run {run}: missed {:?}",
            expected.difference(&open)
        );
        // Anything else reported open must be a real listener of another program, never a
        // self-connection in the ephemeral range.
        let truth: BTreeSet<u16> = before.union(&after).copied().collect();
        let phantom: Vec<&u16> = open.difference(&truth).collect();
        assert!(
            phantom.is_empty(),
            "run {run}: ports reported open with no listener: {phantom:?}"
        );
        assert_eq!(stats.ports, list.len() as u64);
        assert_eq!(stats.open, open.len() as u64);
        assert_eq!(
            stats.open + stats.closed,
            stats.ports,
            "nothing filtered on loopback"
        );
        self_connects += stats.self_connects;
    }
    // Self-connections may or may not happen; when they do they are counted, never open.
    println!("self-connections seen and dropped: {self_connects}");
    for t in tasks {
        t.abort();
    }
}

#[tokio::test]
async fn closed_ports_are_reported_closed_with_a_reason() {
    let (open, tasks) = listeners("127.0.0.1", 1).await;
    // Bound but not listening: connects get a reset, and nobody else can take the port.
    let holder = bound_not_listening("127.0.0.1:0");
    let closed = holder.local_addr().unwrap().port();
    let plan = plan(
        &["127.0.0.1"],
        PortList::from_ports([open[0], closed]).unwrap(),
    )
    .await;
    let scanner = PortScanner::new(PortScanConfig {
        report: Report::All,
        workers: 1,
        ..Default::default()
    })
    .unwrap();
    let (results, _) = scanner.scan(&plan).await.unwrap();
    assert_eq!(results.len(), 2);
    for r in results {
        if r.addr.port() == open[0] {
            assert_eq!((r.state, r.reason), (PortState::Open, Reason::SynAck));
        } else {
            assert_eq!(r.addr.port(), closed);
            assert_eq!(r.state, PortState::Closed);
            assert!(matches!(
                r.reason,
                Reason::ConnRefused | Reason::SelfConnect
            ));
        }
    }
    for t in tasks {
        t.abort();
    }
}

#[tokio::test]
async fn scans_ipv6_loopback() {
    if TcpListener::bind("[::1]:0").await.is_err() {
        eprintln!("skipped: no IPv6 loopback on this machine");
        return;
    }
    let holder = bound_not_listening("[::1]:0");
    let closed = holder.local_addr().unwrap().port();
    let (ports, tasks) = listeners("::1", 3).await;
    let list = PortList::from_ports(ports.iter().copied().chain([closed])).unwrap();
    let plan = plan(&["::1"], list).await;
    let (results, stats) = PortScanner::default().scan(&plan).await.unwrap();
    let open: BTreeSet<u16> = results.iter().map(|r| r.addr.port()).collect();
    assert_eq!(open, ports.iter().copied().collect());
    assert!(
        results
            .iter()
            .all(|r| r.addr.ip() == "::1".parse::<IpAddr>().unwrap())
    );
    assert_eq!(stats.open, 3);
    for t in tasks {
        t.abort();
    }
}

#[tokio::test]
async fn a_tiny_window_and_a_rate_limit_still_finish_correctly() {
    let (ports, tasks) = listeners("127.0.0.1", 2).await;
    let list = window_around(&ports, 200);
    let plan = plan(&["127.0.0.1"], list.clone()).await;
    let scanner = PortScanner::new(PortScanConfig {
        concurrency: 1,
        workers: 1,
        rate: Some(20_000),
        ..Default::default()
    })
    .unwrap();
    let before = kernel_listeners_v4();
    let (results, stats) = scanner.scan(&plan).await.unwrap();
    let after = kernel_listeners_v4();
    let open: BTreeSet<u16> = results.iter().map(|r| r.addr.port()).collect();
    // Our listeners, plus possibly other programs' real listeners in the window.
    assert!(open.is_superset(&ports.iter().copied().collect()));
    assert!(
        open.iter().all(|p| before.contains(p) || after.contains(p)),
        "{open:?}"
    );
    assert_eq!(stats.window, 1);
    assert_eq!(stats.ports, list.len() as u64);
    for t in tasks {
        t.abort();
    }
}

#[tokio::test]
async fn results_stream_and_cancellation_stops_the_scan() {
    let plan = plan(&["127.0.0.1"], PortList::all()).await;
    let scanner = PortScanner::new(PortScanConfig {
        report: Report::All,
        concurrency: 4,
        ..Default::default()
    })
    .unwrap();
    let mut scan = scanner.start(&plan).unwrap();
    assert_eq!(scan.total(), 65_535);
    // The first result arrives while the scan is still running.
    let first = scan.next().await.expect("a result streams before the end");
    assert!(first.addr.ip().is_loopback());
    scan.cancel_token().cancel();
    let stats = scan.finish().await.unwrap();
    assert!(stats.cancelled);
    assert!(stats.ports < 65_535);
}

/// A resolver that counts calls and answers with fixed addresses.
struct FakeResolver {
    calls: AtomicUsize,
    answer: Vec<IpAddr>,
}

impl Resolver for FakeResolver {
    fn resolve<'a>(
        &'a self,
        _host: &'a str,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send + 'a>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let answer = self.answer.clone();
        Box::pin(async move { Ok(answer) })
    }
}

fn fake(answer: &[&str]) -> FakeResolver {
    FakeResolver {
        calls: AtomicUsize::new(0),
        answer: answer.iter().map(|a| a.parse().unwrap()).collect(),
    }
}

#[tokio::test]
async fn metadata_address_is_refused_before_any_packet() {
    // The scope is wide, but 169.254.169.254 is a refused class: no plan, so no scan can start.
    let scope = Scope::builder().allow("0.0.0.0/0").build().unwrap();
    let resolver = fake(&[]);
    let err = scope
        .plan(
            &["169.254.169.254".parse().unwrap()],
            "80".parse().unwrap(),
            &resolver,
        )
        .await
        .unwrap_err();
    match err {
        Error::OutOfScope { target, violation } => {
            assert_eq!(target, "169.254.169.254");
            assert!(matches!(violation, ScopeViolation::RefusedClass { .. }));
        }
        other => panic!("expected OutOfScope, got {other:?}"),
    }
    assert_eq!(resolver.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn out_of_scope_name_is_refused_without_being_resolved() {
    let scope = Scope::builder().allow("127.0.0.1").build().unwrap();
    let resolver = fake(&["127.0.0.1"]);
    let targets: Vec<Target> = vec![
        "127.0.0.1".parse().unwrap(),
        "not-in-scope.example".parse().unwrap(),
    ];
    let err = scope
        .plan(&targets, "22".parse().unwrap(), &resolver)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        Error::OutOfScope {
            violation: ScopeViolation::NotAllowed,
            ..
        }
    ));
    assert_eq!(
        resolver.calls.load(Ordering::SeqCst),
        0,
        "no DNS query for it"
    );
}

#[tokio::test]
async fn a_name_resolving_to_metadata_is_refused() {
    // DNS rebinding: the name is allowed, its address is not.
    let scope = Scope::builder().allow("rebind.example").build().unwrap();
    let resolver = fake(&["192.0.2.10", "169.254.169.254"]);
    let err = scope
        .plan(
            &["rebind.example".parse().unwrap()],
            "80".parse().unwrap(),
            &resolver,
        )
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        Error::OutOfScope {
            violation: ScopeViolation::ResolvedOutOfScope { .. },
            ..
        }
    ));
    assert_eq!(
        resolver.calls.load(Ordering::SeqCst),
        1,
        "resolved exactly once"
    );
}

#[tokio::test]
async fn the_plan_pins_the_resolved_address() {
    let scope = Scope::builder()
        .allow("svc.example")
        .allow("192.0.2.0/24")
        .build()
        .unwrap();
    let resolver = fake(&["192.0.2.7"]);
    let plan = scope
        .plan(
            &["svc.example".parse().unwrap()],
            "443".parse().unwrap(),
            &resolver,
        )
        .await
        .unwrap();
    assert_eq!(plan.hosts().len(), 1);
    assert_eq!(plan.hosts()[0].addr, "192.0.2.7".parse::<IpAddr>().unwrap());
    assert_eq!(plan.hosts()[0].name.as_deref(), Some("svc.example"));
}

#[tokio::test]
async fn limits_are_enforced() {
    let scope = Scope::builder()
        .allow("10.0.0.0/8")
        .limits(sec_scan::Limits {
            max_ports: 100,
            max_hosts_per_target: 256,
            max_hosts: 1000,
        })
        .build()
        .unwrap();
    let resolver = fake(&[]);
    let too_many_ports = scope
        .plan(&["10.0.0.1".parse().unwrap()], PortList::all(), &resolver)
        .await;
    assert!(matches!(too_many_ports, Err(Error::LimitExceeded { .. })));
    let too_many_hosts = scope
        .plan(
            &["10.0.0.0/16".parse().unwrap()],
            "80".parse().unwrap(),
            &resolver,
        )
        .await;
    assert!(matches!(too_many_hosts, Err(Error::TargetTooLarge { .. })));
}

#[tokio::test]
async fn unanswered_connects_time_out_are_retried_and_reported_filtered() {
    // A listener that never accepts, with its accept queue already full: Linux drops further
    // SYNs, so a connect gets no answer at all — a filtered port, on loopback.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut fillers = Vec::new();
    for _ in 0..2 {
        fillers.push(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap(),
        );
    }
    let plan = plan(&["127.0.0.1"], PortList::from_ports([port]).unwrap()).await;
    let scanner = PortScanner::new(PortScanConfig {
        timeout: Duration::from_millis(200),
        retries: 2,
        report: Report::All,
        ..Default::default()
    })
    .unwrap();
    let (results, stats) = scanner.scan(&plan).await.unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(
        (results[0].state, results[0].reason),
        (PortState::Filtered, Reason::NoResponse)
    );
    assert_eq!(stats.retries, 2, "{stats:?}");
    assert_eq!(stats.attempts, 3);
    drop(fillers);
    drop(listener);
}
