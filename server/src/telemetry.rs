//! `/metrics`: Prometheus text exposition of the server's counters, without global state.
//!
//! Long-lived metrics (HTTP latency, frames per room, queued bytes) live in the node's
//! [`Telemetry`](crate::node::metrics::Telemetry);
//! figures the server already keeps (connections, event counts, disconnect reasons) are read at
//! scrape time. Each scrape builds a fresh registry over both, so several servers in one process
//! (as in tests) never share numbers.
//!
//! # Every label set is bounded
//!
//! A label value is never a string a client chose, so no request can make `/metrics` (or the
//! memory behind it) grow:
//!
//! | family | labels | values |
//! |---|---|---|
//! | `http_request_duration_seconds` | `method`, `route`, `status` | `GET`, `HEAD`, `POST`, `PUT`, `DELETE`, `PATCH`, `OPTIONS`, else `other`; a route pattern of the router (requests no route matches are not timed); the status code |
//! | `ws_frames_out_by_room` | `room` | the rooms configured at start, else `other` |
//! | `events_by_room` | `room` | the event bus's rooms (the bus refuses any other; the server adds none at run time) |
//! | `events_by_severity` | `severity` | the five severities |
//! | `ws_disconnects_by_reason` | `reason` | `too_slow`, `rate_limited`, `refused` |
//! | `scan_tasks` | `state` | `queued`, `running`, `done` |

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use event_bus::Role;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::error::ApiError;
use crate::node::Node;
use crate::transport::http::Caller;

/// Figures read from the state at scrape time.
#[derive(Debug)]
struct Snapshot {
    connections: i64,
    messages_in: u64,
    frames_out: u64,
    slow: u64,
    rate_limited: u64,
    refused: u64,
    events_by_room: Vec<(String, u64)>,
    events_by_severity: Vec<(String, u64)>,
    missed: u64,
    subscribers: u64,
    uptime: f64,
    tasks: (usize, usize, usize, usize),
}

fn write_counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let counter = ConstCounter::new(value);
    counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)
}

fn write_gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let gauge = ConstGauge::new(value);
    gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        write_gauge(
            e,
            "ws_connections",
            "Open WebSocket connections.",
            self.connections,
        )?;
        write_counter(
            e,
            "ws_messages_in",
            "Messages received from WebSocket clients.",
            self.messages_in,
        )?;
        write_counter(
            e,
            "ws_frames_out",
            "Frames queued for WebSocket clients.",
            self.frames_out,
        )?;
        write_counter(
            e,
            "ws_slow_disconnects",
            "Clients closed with 4008 for not reading.",
            self.slow,
        )?;
        {
            let dropped = ConstCounter::new(0u64);
            let mut family = e.encode_descriptor(
                "ws_disconnects_by_reason",
                "Connections ended or refused by the server, by reason.",
                None,
                dropped.metric_type(),
            )?;
            for (reason, value) in [
                ("too_slow", self.slow),
                ("rate_limited", self.rate_limited),
                ("refused", self.refused),
            ] {
                ConstCounter::new(value).encode(family.encode_family(&[("reason", reason)])?)?;
            }
        }
        write_gauge(
            e,
            "bus_subscribers",
            "Live event-bus subscriptions.",
            i64::try_from(self.subscribers).unwrap_or(i64::MAX),
        )?;
        write_counter(
            e,
            "bus_missed_deliveries",
            "Event deliveries lost to full subscriber queues.",
            self.missed,
        )?;
        for (name, help, rows, label) in [
            (
                "events_by_room",
                "Events published, by room.",
                &self.events_by_room,
                "room",
            ),
            (
                "events_by_severity",
                "Events published, by severity.",
                &self.events_by_severity,
                "severity",
            ),
        ] {
            let mut family =
                e.encode_descriptor(name, help, None, ConstCounter::new(0u64).metric_type())?;
            for (value_label, value) in rows {
                ConstCounter::new(*value)
                    .encode(family.encode_family(&[(label, value_label.as_str())])?)?;
            }
        }
        let (queued, running, done, agents) = self.tasks;
        {
            let mut family = e.encode_descriptor(
                "scan_tasks",
                "Scan tasks, by state.",
                None,
                ConstGauge::new(0i64).metric_type(),
            )?;
            for (state, n) in [("queued", queued), ("running", running), ("done", done)] {
                ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX))
                    .encode(family.encode_family(&[("state", state)])?)?;
            }
        }
        write_gauge(
            e,
            "agents_online",
            "Scanning agents connected, the in-process one included.",
            i64::try_from(agents).unwrap_or(i64::MAX),
        )?;
        let uptime = ConstGauge::new(self.uptime);
        uptime.encode(e.encode_descriptor(
            "uptime_seconds",
            "Seconds since the server started.",
            None,
            uptime.metric_type(),
        )?)
    }
}

#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, description = "Prometheus/OpenMetrics text (viewer)", body = Object), (status = 401, description = "No valid token or session", body = crate::error::schema::ErrorBody), (status = 403, description = "The role may not do this", body = crate::error::schema::ErrorBody)), security(("token" = []), ("session" = [])))]
/// `GET /metrics` (viewer token: configure Prometheus with `authorization: {credentials: …}`).
pub async fn metrics(State(state): State<Node>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let load = |n: &std::sync::atomic::AtomicU64| n.load(Ordering::Relaxed);
    let c = state.counters();
    let bus = state.bus().metrics();
    let snapshot = Snapshot {
        connections: i64::try_from(state.connections()).unwrap_or(i64::MAX),
        messages_in: load(&c.messages_in),
        frames_out: c.frames_out.get(),
        slow: load(&c.slow_disconnects),
        rate_limited: load(&c.rate_limited),
        refused: load(&c.refused),
        events_by_room: bus.by_room.into_iter().collect(),
        events_by_severity: bus
            .by_severity
            .into_iter()
            .map(|(s, n)| (s.to_string(), n))
            .collect(),
        missed: bus.missed_deliveries,
        subscribers: bus.subscribers,
        uptime: state.uptime_seconds(),
        tasks: state.orchestrator().counts(),
    };
    let mut registry = Registry::with_prefix("vigil");
    state.telemetry().register(&mut registry);
    registry.register_collector(Box::new(Arc::new(snapshot)));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)
        .map_err(|e| ApiError::internal(&e))?;
    Ok((
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// Middleware timing every request by its route pattern (never the raw path: ids would explode
/// the label set) and its method from a fixed set. It is a route layer, so it sees matched
/// routes only, the 405 answer of a route's method router included; requests no route matches
/// get the fixed `unmatched`.
pub async fn track(State(state): State<Node>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let response = next.run(request).await;
    state.telemetry().observe_http(
        &method,
        route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}
