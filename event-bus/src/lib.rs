//! A typed, fast, in-process event bus with rooms, history and replay.
//!
//! Every part of vigil reports through events: agents starting and finishing, scans and their
//! findings, alerts, chat, health. This crate carries them. It is the Centrifugo model in one
//! process:
//!
//! - **Envelope.** Every event has a bus-wide `seq` (strictly increasing), the bus's `epoch`, a
//!   UUID `id`, a `kind`, a `room`, a `severity`, a UTC `time`, an optional `source` and JSON
//!   `data`. It is encoded to JSON **once**, at publish; every delivery shares those bytes
//!   ([`Event::json`]).
//! - **Typed or not.** Producers publish Rust structs that implement [`Payload`] (kind, room and
//!   severity are associated items) and consumers [`Event::decode`] them back. Events from
//!   outside the process go through [`EventDraft`], whose kind and room names are validated
//!   (see [`name`]). Known kinds are the variants of [`EventKind`]; any other valid name is a
//!   custom kind.
//! - **Rooms** (`monitoring`, `scans`, `alerts`, `chat`, `admin` by default) each keep a history
//!   ring and say, as data, which [`Role`]s may subscribe and publish; the server enforces it.
//! - **Publishing never waits.** [`Bus::publish`] takes one short lock, numbers the event, keeps
//!   it in its room's history and hands it to each matching subscriber's bounded queue. It
//!   returns a [`Ticket`]: ready at once in process, resolved when the store answers for a
//!   shared broker; callers that need the `seq` await it, the others drop it.
//! - **Lag is explicit.** A subscriber whose queue is full misses events, and its stream says so
//!   at that point with [`Delivery::Lagged`] — how many it missed and the `seq` to replay from.
//!   Nothing is dropped silently, and a stalled subscriber slows no one else.
//! - **Resume.** [`Bus::since`] and [`Bus::subscribe_since`] replay what came after a
//!   [`Position`] (epoch, seq) with `recovered: true`, or say `recovered: false` when the gap is
//!   older than the history ring or the epoch is another bus's. Live delivery is at most once;
//!   within the history window, at least once.
//! - **Metrics**: counters per kind, room and severity, and the dashboard aggregates
//!   ([`MetricsSnapshot`]).
//! - **One seam to scale out.** The handle talks to a [`Broker`]; [`InProcessBroker`] is the
//!   default. With the `redis` feature, `RedisBroker` (module `redis`) shares one bus between
//!   several servers through Redis 7: one bus-wide seq and epoch in Redis, room history in
//!   Redis streams, and on each node a local in-process mirror, so subscribe, filters, lag and
//!   `since` work as in process on every node.
//!
//! # Example
//!
//! ```
//! use event_bus::{Bus, Delivery, Filter, Payload, Position, Severity};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Serialize, Deserialize)]
//! struct PortOpen { host: String, port: u16 }
//!
//! impl Payload for PortOpen {
//!     const KIND: &'static str = "port_open";
//!     const ROOM: &'static str = "scans";
//!     const SEVERITY: Severity = Severity::Warning;
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), event_bus::Error> {
//! let bus = Bus::new();
//! let mut scans = bus.subscribe(Filter::rooms(["scans"])?.min_severity(Severity::Warning))?;
//!
//! // A publish hands back a ticket; await it for the event's seq, or drop it.
//! let event = bus.publish(&PortOpen { host: "127.0.0.1".into(), port: 22 })?.await?;
//! assert_eq!(event.seq(), 1);
//! let _ = bus.publish_json("chat_message", "chat", &serde_json::json!({"message": "hi"}))?;
//!
//! // The subscriber gets the typed event, and only that one.
//! let Some(Delivery::Event(event)) = scans.recv().await else { panic!("an event") };
//! let open: PortOpen = event.decode()?;
//! assert_eq!(open.port, 22);
//! assert!(scans.try_next().is_none());
//!
//! // A client that saw nothing yet catches up from history.
//! let replay = bus.since(&Filter::all(), Position { epoch: bus.epoch(), seq: 0 })?;
//! assert!(replay.recovered);
//! assert_eq!(replay.events.len(), 2);
//!
//! // Bad names are typed errors.
//! assert!(bus.publish_json("Bad Kind", "scans", &serde_json::Value::Null).is_err());
//! assert!(bus.publish_json("port_open", "nowhere", &serde_json::Value::Null).is_err());
//! # Ok(()) }
//! ```
//!
//! # Guarantees
//!
//! | property | guarantee |
//! |---|---|
//! | order | every subscriber sees events in strictly increasing `seq`, across all its rooms |
//! | live delivery | at most once; a miss is always reported with [`Lagged`] |
//! | resume | exact within each room's history ring and the same epoch; `recovered: false` otherwise |
//! | publish | never waits for a subscriber; one short lock, cost grows with matching subscribers |
//! | memory | bounded: history rings, subscriber queues, and metric label sets are all capped |

mod broker;
mod bus;
mod error;
mod event;
mod history;
mod kind;
mod metrics;
pub mod name;
pub mod payloads;
#[cfg(feature = "redis")]
pub mod redis;
mod room;
mod severity;
mod subscription;
mod ticket;

#[cfg(feature = "redis")]
pub use self::redis::{RedisBroker, RedisConfig};
pub use broker::{Broker, InProcessBroker};
pub use bus::{Bus, BusConfig, DEFAULT_QUEUE_CAPACITY, SubscribeOptions};
pub use error::{Error, Result};
pub use event::{Encoder, Envelope, Epoch, Event, EventDraft, Payload};
pub use history::Replay;
pub use kind::EventKind;
pub use metrics::{MAX_CUSTOM_KINDS, MAX_TRACKED_AGENTS, MetricsSnapshot, OTHER_KINDS};
pub use room::{Access, DEFAULT_HISTORY, DEFAULT_ROOMS, MAX_HISTORY, Role, Room, RoomConfig};
pub use severity::Severity;
pub use subscription::{
    Delivery, Filter, Lagged, Position, Pushed, QueueLimits, SubscriberQueue, Subscription,
};
pub use ticket::{Resolver, Ticket, TicketFuture};
