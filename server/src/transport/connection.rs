//! The accept loop and HTTP/1 connections, on hyper's own builder.
//!
//! `axum::serve` sets no timer on hyper, so a client that never finishes its request head keeps
//! its connection for ever. Here each connection gets:
//!
//! - hyper's request-head timer ([`ServerConfig::header_read_timeout`]): a head not complete in
//!   time closes the connection. Hyper restarts that timer while a kept-alive connection waits
//!   for its next request, so no idle connection outlives it either;
//! - a keep-alive idle timeout ([`ServerConfig::keep_alive_timeout`]): once no request has been
//!   in flight for that long, the connection is shut down gracefully;
//! - a head size limit ([`ServerConfig::max_header_bytes`], [`ServerConfig::max_headers`]):
//!   hyper answers 431 and closes;
//! - `TCP_NODELAY`, and upgrades (`/ws`, Socket.IO's WebSocket transport) handed to axum;
//! - the peer address as axum's `ConnectInfo<SocketAddr>` in every request's extensions.
//!
//! Shutdown: [`Node::begin_shutdown`] cancels the state's shutdown token; every connection
//! then finishes the request in flight and closes. Connections still open when the drain time
//! is up are dropped through [`Connections::force_close`].

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

use crate::config::ServerConfig;
use crate::node::Node;

/// The HTTP connections of one server, for the drain to wait on.
#[derive(Debug)]
pub(crate) struct Connections {
    tracker: TaskTracker,
    force: CancellationToken,
}

impl Connections {
    /// Waits until every connection has closed.
    pub(crate) async fn wait(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// Drops the connections still open.
    pub(crate) fn force_close(&self) {
        self.force.cancel();
    }

    /// Connections still open.
    pub(crate) fn open(&self) -> usize {
        self.tracker.len()
    }
}

/// hyper's HTTP/1 builder with the configured limits and a Tokio timer.
fn builder(config: &ServerConfig) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .keep_alive(true)
        .max_header_size(config.max_header_bytes)
        .max_headers(config.max_headers);
    builder
}

/// Whether an accept error concerns one connection only (the next accept may well succeed).
fn is_connection_error(err: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset, Interrupted};
    matches!(
        err.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset | Interrupted
    )
}

/// Accepts connections on `listener` and serves `router` on each until `shutdown` resolves;
/// then stops accepting (the listener is closed) and returns the open connections.
pub(crate) async fn accept(
    listener: TcpListener,
    router: Router,
    state: &Node,
    shutdown: impl Future<Output = ()>,
) -> Connections {
    let connections = Connections {
        tracker: TaskTracker::new(),
        force: CancellationToken::new(),
    };
    let http = builder(state.config());
    let idle = state.config().keep_alive_timeout;
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) if is_connection_error(&err) => continue,
                Err(err) => {
                    // Out of file descriptors, most likely: wait for some to be freed.
                    tracing::error!(error = %err, "accepting a connection failed");
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            },
        };
        // Nagle's algorithm with the client's delayed ACK holds small frames back by up to
        // 40 ms; every frame here is a message someone waits for.
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "TCP_NODELAY could not be set");
        }
        connections.tracker.spawn(serve_one(
            http.clone(),
            router.clone(),
            tcp,
            peer,
            Shutdown {
                drain: state.shutdown_token().clone(),
                force: connections.force.clone(),
            },
            idle,
        ));
    }
    drop(listener);
    connections
}

/// The two ways a connection is told to end: gracefully (drain) or at once (force).
struct Shutdown {
    drain: CancellationToken,
    force: CancellationToken,
}

/// When a connection last started or finished a request, and how many are in flight.
#[derive(Debug)]
struct Activity {
    origin: Instant,
    /// Milliseconds after `origin` of the last request start or end; `u64::MAX` before the
    /// first request (a connection that never sent a head is the head timer's business).
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

/// A request in flight; its end counts as activity.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Activity {
    fn new() -> Activity {
        Activity {
            origin: Instant::now(),
            last_ms: AtomicU64::new(u64::MAX),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let now = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.last_ms.store(now, Ordering::Release);
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.touch();
        Busy(Arc::clone(self))
    }

    /// Resolves once no request has been in flight for `idle`, after at least one request.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let last = self.last_ms.load(Ordering::Acquire);
            let wait = if last == u64::MAX || self.in_flight.load(Ordering::Acquire) > 0 {
                idle
            } else {
                let since = self
                    .origin
                    .elapsed()
                    .saturating_sub(Duration::from_millis(last));
                match idle.checked_sub(since) {
                    Some(left) if !left.is_zero() => left,
                    _ => return,
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// Serves one connection until it ends, is idle too long, or shutdown says so.
async fn serve_one(
    http: http1::Builder,
    router: Router,
    tcp: TcpStream,
    peer: SocketAddr,
    shutdown: Shutdown,
    idle: Duration,
) {
    let activity = Arc::new(Activity::new());
    let service = {
        let activity = Arc::clone(&activity);
        hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let busy = activity.begin();
            let call = router.clone().oneshot(request);
            async move {
                let response: Result<_, Infallible> = call.await;
                drop(busy);
                response
            }
        })
    };
    let conn = http
        .serve_connection(TokioIo::new(tcp), service)
        .with_upgrades();
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(err) = ended {
                    // Head timeouts, oversized heads, resets: the client's doing, not ours.
                    tracing::debug!(%peer, error = %err, "HTTP connection ended");
                }
                return;
            }
            () = shutdown.drain.cancelled(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            () = activity.idle_for(idle), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            () = shutdown.force.cancelled() => return,
        }
    }
}
