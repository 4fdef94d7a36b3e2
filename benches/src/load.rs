//! What the load generators share: loopback TCP connections, a minimal HTTP/1.1 response reader,
//! CPU and memory readings from `/proc`, and quantiles.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpSocket, TcpStream};

/// Runs a generator's `run` future on `threads` threads (1: a current-thread runtime, at most one
/// core) and gives up after `timeout` seconds; past that bound plus 5 s the process exits (code
/// 3) whatever it is doing, so a run is always bounded in time.
pub fn run_bounded<T>(
    name: &'static str,
    threads: usize,
    timeout: f64,
    run: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let bound = Duration::from_secs_f64(timeout);
    std::thread::spawn(move || {
        std::thread::sleep(bound + Duration::from_secs(5));
        eprintln!("{name}: hard time bound reached, exiting");
        std::process::exit(3);
    });
    let runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    let result = runtime.block_on(async {
        tokio::time::timeout(bound, run)
            .await
            .map_err(|_| anyhow::anyhow!("timed out after {timeout} s"))?
    });
    // Connections still open are dropped with the runtime; do not wait for their tasks.
    runtime.shutdown_timeout(Duration::from_millis(200));
    result
}

/// Whether `ip` is a loopback address: the only kind the load generators connect to.
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback(),
    }
}

/// Clock ticks per second of `/proc` CPU times (USER_HZ; 100 on every Linux we run on).
const TICKS: f64 = 100.0;

/// utime + stime of a process, in seconds.
pub fn proc_cpu(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS)
}

/// Resident set size of a process, bytes.
pub fn proc_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The machine's CPU counters: (total ticks, steal ticks).
pub fn machine_cpu() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total = values.iter().take(8).sum();
    Some((total, *values.get(7).unwrap_or(&0)))
}

/// The load averages, as `/proc/loadavg` prints them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// CPU use over a window: the server's, the generator's and the machine's steal.
pub struct CpuWindow {
    start: Instant,
    server: Option<f64>,
    own: Option<f64>,
    machine: Option<(u64, u64)>,
    server_pid: Option<u32>,
}

/// What a [`CpuWindow`] measured.
#[derive(Debug, Default, Clone, Copy)]
pub struct CpuUse {
    /// Wall-clock seconds of the window.
    pub seconds: f64,
    /// The server's CPU seconds.
    pub server_cpu_s: Option<f64>,
    /// The generator's own CPU seconds.
    pub generator_cpu_s: Option<f64>,
    /// The machine's steal time, per cent.
    pub steal_pct: Option<f64>,
}

impl CpuWindow {
    /// Starts a window, reading the server's counters when its PID is known.
    pub fn start(server_pid: Option<u32>) -> CpuWindow {
        CpuWindow {
            start: Instant::now(),
            server: server_pid.and_then(|p| proc_cpu(&p.to_string())),
            own: proc_cpu("self"),
            machine: machine_cpu(),
            server_pid,
        }
    }

    /// What was used since the start.
    pub fn stop(&self) -> CpuUse {
        let server = self
            .server_pid
            .and_then(|p| proc_cpu(&p.to_string()))
            .zip(self.server)
            .map(|(b, a)| b - a);
        let own = proc_cpu("self").zip(self.own).map(|(b, a)| b - a);
        let steal = machine_cpu()
            .zip(self.machine)
            .and_then(|((t1, s1), (t0, s0))| {
                (t1 > t0).then(|| 100.0 * (s1 - s0) as f64 / (t1 - t0) as f64)
            });
        CpuUse {
            seconds: self.start.elapsed().as_secs_f64(),
            server_cpu_s: server,
            generator_cpu_s: own,
            steal_pct: steal,
        }
    }
}

/// Opens a TCP connection from a given loopback source address.
pub async fn tcp_connect(
    server: SocketAddr,
    source: IpAddr,
    rcvbuf: Option<u32>,
) -> std::io::Result<TcpStream> {
    let socket = match server {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(size) = rcvbuf {
        socket.set_recv_buffer_size(size)?;
    }
    if server.is_ipv4() && source != IpAddr::V4(Ipv4Addr::LOCALHOST) {
        socket.bind(SocketAddr::new(source, 0))?;
    }
    let stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Reads one HTTP/1.1 response: returns the status and leaves the body in `body`
/// (`Content-Length` or chunked).
pub async fn read_response(
    read: &mut BufReader<OwnedReadHalf>,
    line: &mut String,
    body: &mut Vec<u8>,
) -> anyhow::Result<u16> {
    line.clear();
    if read.read_line(line).await? == 0 {
        bail!("connection closed by the server");
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .context("not an HTTP status line")?;
    let mut length = 0usize;
    let mut chunked = false;
    loop {
        line.clear();
        if read.read_line(line).await? == 0 {
            bail!("connection closed by the server");
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.trim().eq_ignore_ascii_case("chunked");
            }
        }
    }
    if chunked {
        read_chunked(read, line, body).await?;
    } else {
        body.resize(length, 0);
        read.read_exact(body).await?;
    }
    Ok(status)
}

/// Reads a chunked body (Node answers without a Content-Length).
async fn read_chunked(
    read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    line: &mut String,
    body: &mut Vec<u8>,
) -> anyhow::Result<()> {
    body.clear();
    loop {
        line.clear();
        read.read_line(line).await?;
        let size_text = line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size_text, 16).context("bad chunk size")?;
        if size == 0 {
            // Trailers, then the empty line.
            loop {
                line.clear();
                if read.read_line(line).await? == 0 || line.trim_end().is_empty() {
                    return Ok(());
                }
            }
        }
        let at = body.len();
        body.resize(at + size + 2, 0);
        read.read_exact(&mut body[at..]).await?;
        body.truncate(at + size);
    }
}

/// The value at quantile `q` of sorted values, in milliseconds.
pub fn quantile_ms(sorted: &[u32], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let at = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(f64::from(sorted[at]) / 1000.0)
}
