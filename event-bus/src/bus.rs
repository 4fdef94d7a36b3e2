//! The bus handle and its configuration.

use std::sync::Arc;

use crate::broker::{Broker, InProcessBroker};
use crate::error::{Error, Result};
use crate::event::{Epoch, EventDraft, Payload};
use crate::history::Replay;
use crate::metrics::MetricsSnapshot;
use crate::room::RoomConfig;
use crate::subscription::{Filter, Position, QueueLimits, Subscription};
use crate::ticket::Ticket;

/// The default number of events a subscriber's queue holds before it lags.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1024;

/// How to build a [`Bus`].
///
/// | field | default | meaning |
/// |---|---|---|
/// | `rooms` | [`RoomConfig::defaults`]: `monitoring`, `scans`, `alerts`, `chat`, `admin`, 100 events of history each | the rooms and their options |
/// | `queue_capacity` | 1024 ([`DEFAULT_QUEUE_CAPACITY`]) | events queued per subscriber before it lags; at least 1 |
/// | `epoch` | random | the epoch of the history; fix it only in tests |
#[derive(Debug, Clone)]
pub struct BusConfig {
    /// The rooms and their options.
    pub rooms: Vec<RoomConfig>,
    /// Events queued per subscriber before it lags.
    pub queue_capacity: usize,
    /// The epoch; `None` for a random one.
    pub epoch: Option<Epoch>,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            rooms: RoomConfig::defaults(),
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            epoch: None,
        }
    }
}

impl BusConfig {
    /// Adds a room, or replaces the room of the same name.
    pub fn room(mut self, config: RoomConfig) -> BusConfig {
        self.rooms.retain(|r| r.name != config.name);
        self.rooms.push(config);
        self
    }

    /// Sets the per-subscriber queue capacity.
    pub fn queue_capacity(mut self, capacity: usize) -> BusConfig {
        self.queue_capacity = capacity;
        self
    }

    /// Fixes the epoch.
    pub fn epoch(mut self, epoch: Epoch) -> BusConfig {
        self.epoch = Some(epoch);
        self
    }

    /// Checks the configuration and builds an in-process bus.
    pub fn build(self) -> Result<Bus> {
        if self.queue_capacity == 0 {
            return Err(Error::Config("queue_capacity must be at least 1"));
        }
        let broker = InProcessBroker::new(self.rooms, self.epoch.unwrap_or_else(Epoch::random))?;
        Ok(Bus {
            broker: Arc::new(broker),
            queue_capacity: self.queue_capacity,
        })
    }
}

/// Options of [`Bus::subscribe_with`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SubscribeOptions {
    /// Replay the events after this position before the live stream.
    pub since: Option<Position>,
    /// This subscriber's queue capacity instead of the bus's.
    pub queue_capacity: Option<usize>,
    /// A bound on the bytes of event JSON queued for this subscriber (none by default): past
    /// it the subscriber lags as it does past its capacity.
    pub queue_bytes: Option<usize>,
}

/// A handle to an event bus. Cheap to clone; every clone is the same bus. The bus lives while a
/// handle does; when the last one is dropped, subscriptions end.
#[derive(Clone)]
pub struct Bus {
    broker: Arc<dyn Broker>,
    queue_capacity: usize,
}

impl Default for Bus {
    fn default() -> Self {
        Bus::new()
    }
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("epoch", &self.broker.epoch())
            .field("head", &self.broker.head())
            .finish_non_exhaustive()
    }
}

impl Bus {
    /// An in-process bus with the default configuration.
    pub fn new() -> Bus {
        BusConfig::default()
            .build()
            .expect("the default configuration is valid")
    }

    /// A bus over another broker.
    pub fn with_broker(broker: Arc<dyn Broker>, queue_capacity: usize) -> Bus {
        Bus {
            broker,
            queue_capacity: queue_capacity.max(1),
        }
    }

    /// Publishes a typed payload to its room. Never waits for a subscriber nor for the network.
    ///
    /// The [`Ticket`] resolves to the published event: at once in process, when the store
    /// answers for a shared broker. Await it for the `seq`, or drop it.
    pub fn publish<T: Payload + ?Sized>(&self, payload: &T) -> Result<Ticket> {
        self.broker.publish(EventDraft::from_payload(payload)?)
    }

    /// Publishes a draft: an untyped event, or a typed one with a source or another severity.
    /// See [`Bus::publish`] for the ticket.
    pub fn publish_draft(&self, draft: EventDraft) -> Result<Ticket> {
        self.broker.publish(draft)
    }

    /// Publishes untyped JSON; `kind` and `room` are validated. See [`Bus::publish`] for the
    /// ticket.
    pub fn publish_json(&self, kind: &str, room: &str, data: &serde_json::Value) -> Result<Ticket> {
        self.broker.publish(EventDraft::new(kind, room, data)?)
    }

    /// Subscribes to the live stream from now on.
    pub fn subscribe(&self, filter: Filter) -> Result<Subscription> {
        let (_, subscription) =
            self.broker
                .subscribe(filter, None, QueueLimits::events(self.queue_capacity))?;
        Ok(subscription)
    }

    /// Replays what came after `since`, then continues live, with no gap and no duplicate
    /// between the two.
    pub fn subscribe_since(
        &self,
        filter: Filter,
        since: Position,
    ) -> Result<(Replay, Subscription)> {
        let (replay, subscription) = self.broker.subscribe(
            filter,
            Some(since),
            QueueLimits::events(self.queue_capacity),
        )?;
        Ok((
            replay.expect("a replay is returned when one is asked for"),
            subscription,
        ))
    }

    /// Subscribes with options.
    pub fn subscribe_with(
        &self,
        filter: Filter,
        options: SubscribeOptions,
    ) -> Result<(Option<Replay>, Subscription)> {
        let limits = QueueLimits {
            events: options.queue_capacity.unwrap_or(self.queue_capacity).max(1),
            bytes: options.queue_bytes,
        };
        self.broker.subscribe(filter, options.since, limits)
    }

    /// The events after `since` that pass `filter`, from history.
    pub fn since(&self, filter: &Filter, since: Position) -> Result<Replay> {
        self.broker.replay(filter, since)
    }

    /// The epoch of this bus's history.
    pub fn epoch(&self) -> Epoch {
        self.broker.epoch()
    }

    /// The sequence number of the latest event (0 before the first).
    pub fn head(&self) -> u64 {
        self.broker.head()
    }

    /// Adds a room at run time.
    pub fn add_room(&self, config: RoomConfig) -> Result<()> {
        self.broker.add_room(config)
    }

    /// Every room's configuration, sorted by name.
    pub fn rooms(&self) -> Vec<RoomConfig> {
        self.broker.rooms()
    }

    /// One room's configuration.
    pub fn room(&self, name: &str) -> Option<RoomConfig> {
        self.broker
            .rooms()
            .into_iter()
            .find(|r| r.name.as_str() == name)
    }

    /// The counters and dashboard aggregates now.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.broker.metrics()
    }
}
