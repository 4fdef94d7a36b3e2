//! Full-range loopback port-scan benchmark: sec-scan against `nmap -sT -T5` (when installed),
//! same machine, same run, same listeners. Only 127.0.0.1 is scanned.
//!
//! ```text
//! cargo run --release -p vigil-benches --bin portscan [-- RUNS [LISTENERS [CONCURRENCY]]]
//! ```
//!
//! Starts LISTENERS (default 20) accept-and-close listeners on random 127.0.0.1 ports, then
//! scans all 65 535 ports RUNS times (default 10) with sec-scan and, if `nmap` is on the PATH,
//! RUNS times with `nmap -sT -T5 -p- -n 127.0.0.1`. Every run is checked: each listener must be
//! found, and every port reported open must be listening according to the kernel
//! (`/proc/net/tcp*`, so other programs' listeners count as real, never as false positives).
//! Prints wall time (mean ± sd, min), peak RSS, self-connections seen, and the ratio to nmap.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::process::Command;
use std::time::Instant;

use sec_scan::{PortList, PortScanConfig, PortScanner, PortState, Scope, SystemResolver, Target};

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Ports listening on 127.0.0.1 or a wildcard address, per the kernel.
fn kernel_listeners() -> BTreeSet<u16> {
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
            if cols.len() > 3
                && cols[3] == "0A"
                && let Some((addr, port)) = cols[1].split_once(':')
                && reachable.contains(&addr)
                && let Ok(port) = u16::from_str_radix(port, 16)
            {
                ports.insert(port);
            }
        }
    }
    ports
}

struct Run {
    secs: f64,
    open: BTreeSet<u16>,
    self_connects: u64,
}

fn stats(runs: &[f64]) -> (f64, f64, f64) {
    let n = runs.len() as f64;
    let mean = runs.iter().sum::<f64>() / n;
    let var = runs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    let min = runs.iter().copied().fold(f64::INFINITY, f64::min);
    (mean, var.sqrt(), min)
}

/// Checks one run; returns (missed listeners, phantom opens).
fn check(
    run: &Run,
    ours: &[u16],
    before: &BTreeSet<u16>,
    after: &BTreeSet<u16>,
) -> (Vec<u16>, Vec<u16>) {
    let missed = ours
        .iter()
        .copied()
        .filter(|p| !run.open.contains(p))
        .collect();
    let phantom = run
        .open
        .iter()
        .copied()
        .filter(|p| !before.contains(p) && !after.contains(p))
        .collect();
    (missed, phantom)
}

fn nmap_available() -> bool {
    Command::new("nmap")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn nmap_run() -> anyhow::Result<Run> {
    let start = Instant::now();
    // Fixed target: only ever 127.0.0.1.
    let out = Command::new("nmap")
        .args(["-sT", "-T5", "-p-", "-n", "-oG", "-", "127.0.0.1"])
        .output()?;
    let secs = start.elapsed().as_secs_f64();
    anyhow::ensure!(
        out.status.success(),
        "nmap failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut open = BTreeSet::new();
    for line in text.lines().filter(|l| l.contains("Ports:")) {
        let ports = line.split("Ports:").nth(1).unwrap_or("");
        for entry in ports.split(',') {
            let mut f = entry.trim().split('/');
            if let (Some(p), Some("open")) = (f.next(), f.next())
                && let Ok(p) = p.trim().parse()
            {
                open.insert(p);
            }
        }
    }
    Ok(Run {
        secs,
        open,
        self_connects: 0,
    })
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().map_or(Ok(10), |a| a.parse())?;
    let listeners: usize = args.next().map_or(Ok(20), |a| a.parse())?;
    let concurrency: usize = args
        .next()
        .map_or(Ok(PortScanConfig::default().concurrency), |a| a.parse())?;
    anyhow::ensure!(runs >= 1, "at least one run");

    let mut ours = Vec::new();
    for _ in 0..listeners {
        let l = TcpListener::bind("127.0.0.1:0")?;
        ours.push(l.local_addr()?.port());
        std::thread::spawn(move || {
            for s in l.incoming() {
                drop(s);
            }
        });
    }
    ours.sort_unstable();
    let rss_before = peak_rss_kib();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let targets: Vec<Target> = vec!["127.0.0.1".parse()?];
    let scope = Scope::from_targets(&targets)?;
    let plan = rt.block_on(scope.plan(&targets, PortList::all(), &SystemResolver))?;
    let scanner = PortScanner::new(PortScanConfig {
        concurrency,
        ..PortScanConfig::default()
    })?;

    let with_nmap = nmap_available();
    println!(
        "listeners: {listeners} on 127.0.0.1, runs: {runs} (+1 warm-up each), ports: 1-65535, concurrency: {concurrency}, nmap: {}",
        if with_nmap {
            "yes, runs interleaved"
        } else {
            "not installed (apt-get install nmap)"
        }
    );
    let scan_once = || -> anyhow::Result<(Run, usize)> {
        let start = Instant::now();
        let mut scan = scanner.start(&plan)?;
        let mut open = BTreeSet::new();
        while let Some(r) = scan.blocking_next() {
            if r.state == PortState::Open {
                open.insert(r.addr.port());
            }
        }
        let s = scan.finish_blocking()?;
        let secs = start.elapsed().as_secs_f64();
        Ok((
            Run {
                secs,
                open,
                self_connects: s.self_connects,
            },
            s.workers,
        ))
    };
    let (mut ours_times, mut nmap_times) = (Vec::new(), Vec::new());
    let (mut ours_bad, mut nmap_bad, mut agree) = (0, 0, 0);
    let (mut phantoms, mut self_connects, mut workers) = (0, 0, 0);
    for i in 0..=runs {
        let before = kernel_listeners();
        let (ours_run, w) = scan_once()?;
        let mid = kernel_listeners();
        workers = w;
        let (missed, phantom) = check(&ours_run, &ours, &before, &mid);
        let nmap = if with_nmap { Some(nmap_run()?) } else { None };
        let after = kernel_listeners();
        if i == 0 {
            let n = nmap.as_ref().map(|r| format!(", nmap {:.3} s", r.secs));
            println!(
                "warm-up: sec-scan {:.3} s{}",
                ours_run.secs,
                n.unwrap_or_default()
            );
            continue;
        }
        if !missed.is_empty() || !phantom.is_empty() {
            ours_bad += 1;
        }
        phantoms += phantom.len();
        self_connects += ours_run.self_connects;
        ours_times.push(ours_run.secs);
        let mut line = format!(
            "run {i:2}: sec-scan {:.3} s, {} open, self-connections dropped {}, missed {missed:?}, phantom {phantom:?}",
            ours_run.secs,
            ours_run.open.len(),
            ours_run.self_connects
        );
        if let Some(n) = nmap {
            let (nmissed, nphantom) = check(&n, &ours, &mid, &after);
            if !nmissed.is_empty() || !nphantom.is_empty() {
                nmap_bad += 1;
            }
            // Other programs' listeners come and go; compare only ports stable across the pair.
            let stable = |set: &BTreeSet<u16>| -> BTreeSet<u16> {
                set.iter()
                    .copied()
                    .filter(|p| before.contains(p) == after.contains(p))
                    .collect()
            };
            let same = stable(&ours_run.open) == stable(&n.open);
            if same {
                agree += 1;
            }
            line.push_str(&format!(
                " | nmap {:.3} s, {} open, missed {nmissed:?}, phantom {nphantom:?}, same ports: {same}",
                n.secs,
                n.open.len()
            ));
            nmap_times.push(n.secs);
        }
        println!("{line}");
    }
    let rss = peak_rss_kib();
    let (mean, sd, min) = stats(&ours_times);
    println!(
        "sec-scan: {mean:.3} ± {sd:.3} s (min {min:.3}), {workers} workers, peak RSS {} KiB (process before scanning {} KiB), wrong answers {ours_bad}/{runs} runs ({phantoms} phantom opens), self-connections dropped {self_connects}",
        rss.map_or("?".into(), |r| r.to_string()),
        rss_before.map_or("?".into(), |r| r.to_string()),
    );
    if with_nmap {
        let (nmean, nsd, nmin) = stats(&nmap_times);
        println!(
            "nmap -sT -T5: {nmean:.3} ± {nsd:.3} s (min {nmin:.3}), wrong answers {nmap_bad}/{runs} runs"
        );
        println!(
            "ratio: sec-scan mean wall time = {:.2}x nmap's (nmap/sec-scan = {:.2}x); same open ports in {agree}/{runs} paired runs",
            mean / nmean,
            nmean / mean
        );
    }
    Ok(())
}
