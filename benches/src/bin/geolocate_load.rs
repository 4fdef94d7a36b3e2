//! `geolocate_load`: an HTTP load generator for `POST /v1/geolocate` on an imported cell dump.
//!
//! It builds Ichnaea requests from the rows of an OpenCellID-format CSV (the one imported into
//! the server's offline database): one to three cells of one area per request, the way a phone
//! sees a serving cell and its neighbours, plus a share of cells the database does not hold in
//! areas it does (answered from the area: Ichnaea's LAC fallback). Then `--connections` keep-alive connections send requests back to
//! back for `--duration` seconds and it reports requests per second, latency p50/p99/p99.9/max,
//! the answers by status, the server's CPU per request (`--server-pid`), and its own CPU and the
//! machine's steal, so a saturated box is visible beside every figure.
//!
//! It runs on one thread by default (at most one core), only connects to loopback, and stops by
//! itself after `--timeout` seconds at the latest.
//!
//! ```text
//! geolocate_load --write-dump cells.csv --rows 1000000     # a synthetic dump, then exit
//! vigil geodb import cells.csv --data-dir DIR && vigil serve --data-dir DIR …
//! geolocate_load --url 127.0.0.1:8000 --cells cells.csv --token vgl_… --server-pid PID
//! ```
//!
//! `benches/run_geo_bench.sh` does all of it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use tokio::io::{AsyncWriteExt as _, BufReader};
use vigil_benches::geo::Rng;
use vigil_benches::geo::dump::write_dump;
use vigil_benches::load::{
    CpuWindow, is_loopback, load_average, quantile_ms, read_response, run_bounded, tcp_connect,
};

#[derive(Debug, Parser)]
#[command(about = "HTTP load on POST /v1/geolocate (loopback only)")]
struct Args {
    /// Write a synthetic OpenCellID-format dump of `--rows` rows to this file and exit.
    #[arg(long)]
    write_dump: Option<PathBuf>,
    /// Rows of the written dump.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// The server, a loopback address and port.
    #[arg(long, default_value = "127.0.0.1:8000")]
    url: SocketAddr,
    /// The dump the server imported; requests are built from its rows.
    #[arg(long)]
    cells: Option<PathBuf>,
    /// A vigil token (any role may locate).
    #[arg(long, env = "VIGIL_TOKEN", default_value = "", hide_env_values = true)]
    token: String,
    /// Keep-alive connections, each with one request in flight.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring (not counted).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Per cent of requests naming only cells the database does not hold (in known areas).
    #[arg(long, default_value_t = 10)]
    unknown_pct: u64,
    /// Distinct request bodies built from the dump.
    #[arg(long, default_value_t = 20_000)]
    bodies: usize,
    /// The server's PID, for its CPU per request.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Generator threads (1: a current-thread runtime, at most one core).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Hard bound on the whole run, seconds.
    #[arg(long, default_value_t = 120.0)]
    timeout: f64,
    /// A label for the report.
    #[arg(long, default_value = "")]
    label: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(path) = &args.write_dump {
        write_dump(path, args.rows, 42, u64::MAX)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!(
            "geolocate_load: wrote {} rows to {}",
            args.rows,
            path.display()
        );
        return Ok(());
    }
    if !is_loopback(args.url.ip()) {
        bail!(
            "geolocate_load only connects to loopback addresses, not {}",
            args.url
        );
    }
    if args.token.is_empty() {
        bail!("--token (or VIGIL_TOKEN) is needed");
    }
    let cells = args.cells.as_ref().context("--cells FILE is needed")?;
    let bodies = build_bodies(cells, args.bodies, args.unknown_pct)?;
    let report = run_bounded(
        "geolocate_load",
        args.threads,
        args.timeout,
        run(&args, bodies),
    )?;
    println!("{}", report.summary(&args));
    println!("{}", report.json(&args));
    Ok(())
}

/// One cell of the dump, as a request names it.
#[derive(Debug, Clone)]
struct Cell {
    radio: &'static str,
    mcc: u16,
    mnc: u16,
    lac: u32,
    cid: u64,
}

/// Request bodies: cells grouped by area (1–3 of one area per request) and a share of unknown
/// cells.
fn build_bodies(path: &PathBuf, count: usize, unknown_pct: u64) -> anyhow::Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut areas: HashMap<(u16, u16, u32), Vec<Cell>> = HashMap::new();
    for line in text.lines().skip(1) {
        let mut f = line.split(',');
        let radio = match f.next() {
            Some("GSM") => "gsm",
            Some("UMTS") => "wcdma",
            Some("LTE") => "lte",
            Some("NR") => "nr",
            _ => continue,
        };
        let (Some(mcc), Some(mnc), Some(lac), Some(cid)) = (
            f.next().and_then(|v| v.parse().ok()),
            f.next().and_then(|v| v.parse().ok()),
            f.next().and_then(|v| v.parse().ok()),
            f.next().and_then(|v| v.parse().ok()),
        ) else {
            continue;
        };
        let cells = areas.entry((mcc, mnc, lac)).or_default();
        if cells.len() < 3 {
            cells.push(Cell {
                radio,
                mcc,
                mnc,
                lac,
                cid,
            });
        }
    }
    let mut areas: Vec<Vec<Cell>> = areas.into_values().collect();
    // HashMap order is random: sort so that a run is repeatable.
    areas.sort_by_key(|cells| (cells[0].mcc, cells[0].mnc, cells[0].lac));
    if areas.is_empty() {
        bail!("no cells in {}", path.display());
    }
    let mut rng = Rng::new(7);
    let mut bodies = Vec::with_capacity(count);
    for _ in 0..count {
        let area = &areas[rng.below(areas.len() as u64) as usize];
        let n = 1 + rng.below(area.len() as u64) as usize;
        let unknown = rng.below(100) < unknown_pct;
        let towers: Vec<serde_json::Value> = area[..n]
            .iter()
            .map(|cell| {
                // An unknown cell: an id past every id the dump holds for its area.
                let cid = if unknown { cell.cid ^ 0x0F0F } else { cell.cid };
                let id_field = if cell.radio == "nr" {
                    "newRadioCellId"
                } else {
                    "cellId"
                };
                serde_json::json!({
                    "radioType": cell.radio,
                    "mobileCountryCode": cell.mcc,
                    "mobileNetworkCode": cell.mnc,
                    "locationAreaCode": cell.lac,
                    id_field: cid,
                    "signalStrength": -60 - rng.below(50) as i64,
                })
            })
            .collect();
        bodies.push(serde_json::json!({ "considerIp": false, "cellTowers": towers }).to_string());
    }
    Ok(bodies)
}

#[derive(Debug, Default)]
struct WorkerStats {
    latencies_us: Vec<u32>,
    statuses: HashMap<u16, u64>,
    errors: u64,
}

/// One connection: requests back to back until `end`; only those sent after `measure_from` count.
async fn worker(
    url: SocketAddr,
    stride: usize,
    requests: Arc<Vec<Vec<u8>>>,
    first: usize,
    measure_from: Instant,
    end: Instant,
) -> anyhow::Result<WorkerStats> {
    let stream = tcp_connect(url, url.ip(), None)
        .await
        .context("connecting")?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut line = String::new();
    let mut body = Vec::new();
    let mut stats = WorkerStats::default();
    let mut next = first;
    loop {
        let sent = Instant::now();
        if sent >= end {
            break;
        }
        write.write_all(&requests[next % requests.len()]).await?;
        next += stride;
        let status = match read_response(&mut read, &mut line, &mut body).await {
            Ok(status) => status,
            Err(_) => {
                stats.errors += 1;
                break;
            }
        };
        if sent >= measure_from {
            let us = sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
            stats.latencies_us.push(us);
            *stats.statuses.entry(status).or_default() += 1;
        }
    }
    Ok(stats)
}

#[derive(Debug, Default)]
struct Report {
    seconds: f64,
    latencies_us: Vec<u32>,
    statuses: Vec<(u16, u64)>,
    errors: u64,
    server_cpu_s: Option<f64>,
    generator_cpu_s: Option<f64>,
    steal_pct: Option<f64>,
    load_before: String,
    load_after: String,
}

async fn run(args: &Args, bodies: Vec<String>) -> anyhow::Result<Report> {
    let requests: Arc<Vec<Vec<u8>>> = Arc::new(
        bodies
            .iter()
            .map(|body| {
                format!(
                    "POST /v1/geolocate HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
                     Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    args.url,
                    args.token,
                    body.len()
                )
                .into_bytes()
            })
            .collect(),
    );
    let load_before = load_average();
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let end = measure_from + Duration::from_secs_f64(args.duration);
    let mut tasks = Vec::with_capacity(args.connections);
    for i in 0..args.connections {
        tasks.push(tokio::spawn(worker(
            args.url,
            args.connections,
            Arc::clone(&requests),
            i,
            measure_from,
            end,
        )));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let window = CpuWindow::start(args.server_pid);
    tokio::time::sleep_until(end.into()).await;
    let cpu = window.stop();
    let mut report = Report {
        seconds: cpu.seconds,
        server_cpu_s: cpu.server_cpu_s,
        generator_cpu_s: cpu.generator_cpu_s,
        steal_pct: cpu.steal_pct,
        load_before,
        ..Report::default()
    };
    let mut statuses: HashMap<u16, u64> = HashMap::new();
    for task in tasks {
        match task.await? {
            Ok(stats) => {
                report.latencies_us.extend(stats.latencies_us);
                for (status, n) in stats.statuses {
                    *statuses.entry(status).or_default() += n;
                }
                report.errors += stats.errors;
            }
            Err(err) => {
                eprintln!("geolocate_load: connection failed: {err:#}");
                report.errors += 1;
            }
        }
    }
    report.latencies_us.sort_unstable();
    report.statuses = statuses.into_iter().collect();
    report.statuses.sort_unstable();
    report.load_after = load_average();
    Ok(report)
}

impl Report {
    fn requests(&self) -> u64 {
        self.latencies_us.len() as u64
    }

    fn per_second(&self) -> f64 {
        self.requests() as f64 / self.seconds.max(1e-9)
    }

    fn server_us_per_request(&self) -> Option<f64> {
        let n = self.requests();
        self.server_cpu_s
            .filter(|_| n > 0)
            .map(|s| s * 1e6 / n as f64)
    }

    fn pct(&self, cpu_s: Option<f64>) -> Option<f64> {
        cpu_s.map(|s| 100.0 * s / self.seconds.max(1e-9))
    }

    fn summary(&self, args: &Args) -> String {
        let label = if args.label.is_empty() {
            String::new()
        } else {
            format!("[{}] ", args.label)
        };
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|(status, n)| format!("{status}×{n}"))
            .collect();
        let f = |v: Option<f64>, d: usize| v.map_or_else(|| "-".into(), |v| format!("{v:.d$}"));
        format!(
            "{label}geolocate: {} connections, {:.0} req/s over {:.1} s ({}; {} errors), \
             p50 {} p99 {} p99.9 {} max {} ms, {} µs server cpu/request; server cpu {}% \
             gen cpu {}% steal {}% load {} → {}",
            args.connections,
            self.per_second(),
            self.seconds,
            statuses.join(" "),
            self.errors,
            f(quantile_ms(&self.latencies_us, 0.5), 2),
            f(quantile_ms(&self.latencies_us, 0.99), 2),
            f(quantile_ms(&self.latencies_us, 0.999), 2),
            f(quantile_ms(&self.latencies_us, 1.0), 2),
            f(self.server_us_per_request(), 1),
            f(self.pct(self.server_cpu_s), 0),
            f(self.pct(self.generator_cpu_s), 0),
            f(self.steal_pct, 1),
            self.load_before,
            self.load_after,
        )
    }

    fn json(&self, args: &Args) -> String {
        let statuses: serde_json::Map<String, serde_json::Value> = self
            .statuses
            .iter()
            .map(|(status, n)| (status.to_string(), (*n).into()))
            .collect();
        serde_json::json!({
            "label": args.label,
            "connections": args.connections,
            "seconds": self.seconds,
            "requests": self.requests(),
            "requests_per_s": self.per_second(),
            "statuses": statuses,
            "errors": self.errors,
            "p50_ms": quantile_ms(&self.latencies_us, 0.5),
            "p99_ms": quantile_ms(&self.latencies_us, 0.99),
            "p999_ms": quantile_ms(&self.latencies_us, 0.999),
            "max_ms": quantile_ms(&self.latencies_us, 1.0),
            "server_us_per_request": self.server_us_per_request(),
            "server_cpu_pct": self.pct(self.server_cpu_s),
            "generator_cpu_pct": self.pct(self.generator_cpu_s),
            "steal_pct": self.steal_pct,
            "load_before": self.load_before,
            "load_after": self.load_after,
        })
        .to_string()
    }
}
