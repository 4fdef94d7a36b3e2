//! The server's own long-lived metrics: HTTP latency by route, event frames by room, bytes
//! queued on slow sockets. The transports and the HTTP middleware record into [`Telemetry`];
//! the `/metrics` route (the `telemetry` feature) reads it with the figures the node keeps.
//! Every label comes from a fixed set (see that module's docs).

use std::sync::atomic::AtomicI64;

use axum::http::Method;
use event_bus::{Room, RoomConfig};
use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A room as a metric label; cloning it is cheap, so counting a delivery allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoomLabel(pub Room);

impl EncodeLabelSet for RoomLabel {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        [("room", self.0.as_str())].encode(encoder)
    }
}

/// Labels of an HTTP request: each from a fixed set (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct HttpLabels {
    method: &'static str,
    route: String,
    status: u16,
}

/// The method as a label: the standard methods a browser or a client of this API sends, and
/// `other` for anything else (extension methods are any token a client likes).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The server's own metrics.
#[derive(Debug)]
pub struct Telemetry {
    http: Family<HttpLabels, Histogram>,
    frames_by_room: Family<RoomLabel, Counter>,
    queued_bytes: Gauge<i64, AtomicI64>,
    /// The rooms that get their own `room` label; any other is counted as `other`.
    rooms: Box<[Room]>,
    other_room: Room,
}

impl Telemetry {
    /// Metrics for a server with these rooms.
    pub fn new(rooms: &[RoomConfig]) -> Telemetry {
        Telemetry {
            http: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_25, 2.0, 14))
            }),
            frames_by_room: Family::default(),
            queued_bytes: Gauge::default(),
            rooms: rooms.iter().map(|r| r.name.clone()).collect(),
            other_room: Room::from_static("other").expect("`other` is a valid room name"),
        }
    }

    /// The label for `room`: itself when configured, else `other`.
    fn room_label(&self, room: &Room) -> RoomLabel {
        let known = self.rooms.iter().any(|r| r.as_str() == room.as_str());
        RoomLabel(if known { room } else { &self.other_room }.clone())
    }

    /// Counts event frames written for clients in one room.
    pub fn frames_out(&self, room: &Room, frames: u64) {
        self.frames_by_room
            .get_or_create(&self.room_label(room))
            .inc_by(frames);
    }

    /// The counter of event frames for one room, for a writer to keep and bump without looking
    /// it up each time.
    pub fn room_frames(&self, room: &Room) -> Counter {
        self.frames_by_room
            .get_or_create(&self.room_label(room))
            .clone()
    }

    /// Adds to (or, negative, takes from) the bytes queued for all clients.
    pub fn queued(&self, delta: i64) {
        self.queued_bytes.inc_by(delta);
    }

    /// Times one HTTP request: `route` is the router's pattern (or `unmatched`), never a path.
    pub fn observe_http(&self, method: &Method, route: String, status: u16, seconds: f64) {
        let labels = HttpLabels {
            method: method_label(method),
            route,
            status,
        };
        self.http.get_or_create(&labels).observe(seconds);
    }

    /// Adds these metrics to a scrape's registry.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency, by route.",
            self.http.clone(),
        );
        registry.register(
            "ws_frames_out_by_room",
            "Event frames queued for clients, by room.",
            self.frames_by_room.clone(),
        );
        registry.register(
            "ws_queued_bytes",
            "Bytes of frames waiting on WebSocket clients whose sockets are full.",
            self.queued_bytes.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_standard_set_are_other() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::OPTIONS), "OPTIONS");
        assert_eq!(method_label(&Method::TRACE), "other");
        let long = Method::from_bytes("X".repeat(4096).as_bytes()).unwrap();
        assert_eq!(method_label(&long), "other");
    }

    #[test]
    fn unknown_rooms_are_other() {
        let t = Telemetry::new(&RoomConfig::defaults());
        let chat = Room::new("chat").unwrap();
        assert_eq!(t.room_label(&chat).0.as_str(), "chat");
        let stray = Room::new("stray").unwrap();
        assert_eq!(t.room_label(&stray).0.as_str(), "other");
    }
}
