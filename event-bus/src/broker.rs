//! The seam between the bus handle and where events really go.
//!
//! [`InProcessBroker`] is the default. A broker shared by several servers (the Redis broker,
//! behind the `redis` feature) implements the same trait: it feeds [`SubscriberQueue`]s from
//! its background tasks, and it keeps the contract of [`Broker::publish`] — never wait on the
//! network or on subscribers; answer with a [`Ticket`] that resolves when the seq is known.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::event::{Encoder, Epoch, Event, EventDraft};
use crate::history::{History, Replay};
use crate::metrics::{Counters, MetricsSnapshot};
use crate::room::{Room, RoomConfig};
use crate::subscription::{Filter, Position, Pushed, QueueLimits, SubscriberQueue, Subscription};
use crate::ticket::Ticket;

/// Where a bus's events are sequenced, kept and fanned out.
pub trait Broker: Send + Sync + 'static {
    /// The epoch of this broker's history.
    fn epoch(&self) -> Epoch;

    /// The sequence number of the latest event (0 before the first).
    fn head(&self) -> u64;

    /// Accepts one event for sequencing, recording and fan-out, and hands back a [`Ticket`]
    /// that resolves to the published event (with its `seq`).
    ///
    /// Must not block on I/O nor wait for any subscriber: a subscriber whose queue is full misses
    /// the event and is told so with a [`crate::Lagged`]. An error here means nothing was
    /// published; a ticket may still fail later (see [`Error::Unconfirmed`]).
    fn publish(&self, draft: EventDraft) -> Result<Ticket>;

    /// Registers a subscription whose queue holds what `limits` allow. With `since`, the
    /// events after that position are replayed first; the replay and the live stream neither
    /// overlap nor leave a gap.
    fn subscribe(
        &self,
        filter: Filter,
        since: Option<Position>,
        limits: QueueLimits,
    ) -> Result<(Option<Replay>, Subscription)>;

    /// The events after `since` that pass `filter`, from history.
    fn replay(&self, filter: &Filter, since: Position) -> Result<Replay>;

    /// Adds a room.
    fn add_room(&self, config: RoomConfig) -> Result<()>;

    /// Every room's configuration, sorted by name.
    fn rooms(&self) -> Vec<RoomConfig>;

    /// The counters now.
    fn metrics(&self) -> MetricsSnapshot;
}

/// The in-process broker: one short critical section per publish, no background task.
///
/// One lock orders everything, so every subscriber sees events in strictly increasing `seq`
/// order across all its rooms, and resuming from the last `seq` seen is exact. JSON encoding
/// happens before the lock is taken; under it the bus only numbers the event, appends it to its
/// room's history ring and hands an `Arc` of it to each matching subscriber queue.
pub struct InProcessBroker {
    /// The epoch, readable without the lock; written under it (only a mirror's epoch changes).
    epoch: AtomicU64,
    state: Mutex<State>,
}

struct State {
    epoch: Epoch,
    seq: u64,
    rooms: HashMap<Room, RoomState>,
    /// Subscriptions to every room.
    everywhere: Vec<Arc<SubscriberQueue>>,
    counters: Counters,
}

struct RoomState {
    config: RoomConfig,
    history: History,
    subscribers: Vec<Arc<SubscriberQueue>>,
    published: u64,
}

impl RoomState {
    fn new(config: RoomConfig) -> RoomState {
        RoomState {
            history: History::new(config.history),
            config,
            subscribers: Vec::new(),
            published: 0,
        }
    }
}

impl InProcessBroker {
    /// A broker with these rooms and this epoch.
    pub fn new(rooms: Vec<RoomConfig>, epoch: Epoch) -> Result<InProcessBroker> {
        let mut map = HashMap::with_capacity(rooms.len());
        for config in rooms {
            config.check()?;
            if map.contains_key(&config.name) {
                return Err(Error::RoomExists(config.name.to_string()));
            }
            map.insert(config.name.clone(), RoomState::new(config));
        }
        Ok(InProcessBroker {
            epoch: AtomicU64::new(epoch.as_u64()),
            state: Mutex::new(State {
                epoch,
                seq: 0,
                rooms: map,
                everywhere: Vec::new(),
                counters: Counters::new(),
            }),
        })
    }

    fn check_rooms(state: &State, filter: &Filter) -> Result<()> {
        match filter.rooms.iter().find(|r| !state.rooms.contains_key(*r)) {
            Some(unknown) => Err(Error::UnknownRoom(unknown.to_string())),
            None => Ok(()),
        }
    }

    fn replay_locked(state: &State, filter: &Filter, since: Position) -> Replay {
        let rooms: Vec<&RoomState> = if filter.rooms.is_empty() {
            state.rooms.values().collect()
        } else {
            filter
                .rooms
                .iter()
                .filter_map(|r| state.rooms.get(r))
                .collect()
        };
        let (recovered, after) = if since.epoch != state.epoch {
            (false, 0)
        } else if since.seq > state.seq {
            (false, state.seq)
        } else {
            (rooms.iter().all(|r| r.history.covers(since.seq)), since.seq)
        };
        let mut events: Vec<Arc<Event>> = rooms
            .iter()
            .flat_map(|r| r.history.after(after))
            .filter(|e| filter.matches_content(e))
            .cloned()
            .collect();
        if rooms.len() > 1 {
            events.sort_unstable_by_key(|e| e.seq());
        }
        Replay {
            recovered,
            epoch: state.epoch,
            head: state.seq,
            events,
        }
    }
}

/// The ways a broker that sequences events elsewhere (the Redis broker) drives an
/// `InProcessBroker` as its node-local mirror. The mirror's subscribers, filters, lag, history
/// rings and replays are the in-process ones; only numbering comes from outside.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
impl InProcessBroker {
    /// Delivers an event numbered elsewhere. Returns `false` (and does nothing) when its `seq` is
    /// not past the mirror's head or its epoch is not the mirror's: the caller has applied it
    /// already or must reset first.
    pub(crate) fn apply(&self, event: Arc<Event>) -> bool {
        let mut guard = self.state.lock();
        let state = &mut *guard;
        if event.seq() <= state.seq || event.epoch() != state.epoch {
            return false;
        }
        state.seq = event.seq();
        let Some(room) = state.rooms.get_mut(event.room().as_str()) else {
            // A room this node does not know: numbered, but nobody here can want it. Every
            // node must configure the same rooms (see the Redis broker's docs).
            return true;
        };
        room.history.push(&event);
        room.published += 1;
        state.counters.record(&event);
        let missed =
            fan_out(&mut room.subscribers, &event) + fan_out(&mut state.everywhere, &event);
        state.counters.missed += missed;
        true
    }

    /// Records that the events after the mirror's head up to `through` cannot be had any more
    /// (trimmed from the store before this node saw them). Every subscriber is told with a
    /// [`crate::Lagged`] counting them all (an upper bound: the mirror cannot tell which of
    /// them matched), and replays from before `through` say `recovered: false`.
    pub(crate) fn lose(&self, through: u64) {
        let mut guard = self.state.lock();
        let state = &mut *guard;
        if through <= state.seq {
            return;
        }
        let missed = through - state.seq;
        state.seq = through;
        for room in state.rooms.values_mut() {
            room.history.mark_lost(through);
            room.subscribers.retain(|q| !q.is_dropped());
            for queue in &room.subscribers {
                queue.lose(missed);
            }
        }
        state.everywhere.retain(|q| !q.is_dropped());
        for queue in &state.everywhere {
            queue.lose(missed);
        }
        state.counters.missed += missed;
    }

    /// The mirror's head and epoch.
    pub(crate) fn position(&self) -> Position {
        let state = self.state.lock();
        Position {
            epoch: state.epoch,
            seq: state.seq,
        }
    }

    /// Starts over with the store's state: a new `epoch`, the head `seq`, and each room's
    /// retained events (oldest first) with the seq through which older ones are gone. Every
    /// live subscription ends: its positions mean nothing in the new epoch, so its holder
    /// resubscribes (and a resume with the old epoch says `recovered: false`).
    pub(crate) fn reset(
        &self,
        epoch: Epoch,
        seq: u64,
        rooms: HashMap<Room, (Vec<Arc<Event>>, u64)>,
    ) {
        let mut guard = self.state.lock();
        let state = &mut *guard;
        for queue in state
            .rooms
            .values_mut()
            .flat_map(|r| r.subscribers.drain(..))
            .chain(state.everywhere.drain(..))
        {
            queue.end();
        }
        state.epoch = epoch;
        self.epoch.store(epoch.as_u64(), Ordering::Release);
        state.seq = seq;
        let mut rooms = rooms;
        for (name, room) in state.rooms.iter_mut() {
            room.history = History::new(room.config.history);
            if let Some((events, lost_through)) = rooms.remove(name) {
                room.history.mark_lost(lost_through);
                for event in events {
                    room.history.push(&event);
                }
            } else {
                room.history.mark_lost(seq);
            }
        }
    }
}

/// Hands `event` to every live queue of `queues`, forgetting dropped ones; returns the misses.
fn fan_out(queues: &mut Vec<Arc<SubscriberQueue>>, event: &Arc<Event>) -> u64 {
    let mut missed = 0;
    let mut i = 0;
    while i < queues.len() {
        let queue = &queues[i];
        if queue.is_dropped() {
            queues.swap_remove(i);
            continue;
        }
        if queue.push(event) == Pushed::Missed {
            missed += 1;
        }
        i += 1;
    }
    missed
}

impl Broker for InProcessBroker {
    fn epoch(&self) -> Epoch {
        Epoch::from_u64(self.epoch.load(Ordering::Acquire))
    }

    fn head(&self) -> u64 {
        self.state.lock().seq
    }

    fn publish(&self, draft: EventDraft) -> Result<Ticket> {
        let encoder = Encoder::new(draft, self.epoch());
        let mut guard = self.state.lock();
        let state = &mut *guard;
        let Some(room) = state.rooms.get_mut(encoder.room().as_str()) else {
            return Err(Error::UnknownRoom(encoder.room().to_string()));
        };
        state.seq += 1;
        let event = Arc::new(encoder.finish(state.seq));
        room.history.push(&event);
        room.published += 1;
        state.counters.record(&event);
        let missed =
            fan_out(&mut room.subscribers, &event) + fan_out(&mut state.everywhere, &event);
        state.counters.missed += missed;
        Ok(Ticket::ready(Ok(event)))
    }

    fn subscribe(
        &self,
        filter: Filter,
        since: Option<Position>,
        limits: QueueLimits,
    ) -> Result<(Option<Replay>, Subscription)> {
        let mut state = self.state.lock();
        Self::check_rooms(&state, &filter)?;
        let replay = since.map(|pos| Self::replay_locked(&state, &filter, pos));
        let head = state.seq;
        let queue = SubscriberQueue::new(filter, limits, head);
        if queue.filter().rooms.is_empty() {
            state.everywhere.push(Arc::clone(&queue));
        } else {
            let mut rooms = queue.filter().rooms.clone();
            rooms.sort_unstable();
            rooms.dedup();
            for room in rooms {
                if let Some(room) = state.rooms.get_mut(&room) {
                    room.subscribers.push(Arc::clone(&queue));
                }
            }
        }
        Ok((replay, Subscription::new(queue, state.epoch, head)))
    }

    fn replay(&self, filter: &Filter, since: Position) -> Result<Replay> {
        let state = self.state.lock();
        Self::check_rooms(&state, filter)?;
        Ok(Self::replay_locked(&state, filter, since))
    }

    fn add_room(&self, config: RoomConfig) -> Result<()> {
        config.check()?;
        let mut state = self.state.lock();
        if state.rooms.contains_key(&config.name) {
            return Err(Error::RoomExists(config.name.to_string()));
        }
        state
            .rooms
            .insert(config.name.clone(), RoomState::new(config));
        Ok(())
    }

    fn rooms(&self) -> Vec<RoomConfig> {
        let state = self.state.lock();
        let mut rooms: Vec<RoomConfig> = state.rooms.values().map(|r| r.config.clone()).collect();
        rooms.sort_by(|a, b| a.name.cmp(&b.name));
        rooms
    }

    fn metrics(&self) -> MetricsSnapshot {
        let state = self.state.lock();
        let by_room: BTreeMap<String, u64> = state
            .rooms
            .iter()
            .map(|(name, r)| (name.to_string(), r.published))
            .collect();
        let mut live: Vec<*const SubscriberQueue> = state
            .rooms
            .values()
            .flat_map(|r| r.subscribers.iter())
            .chain(state.everywhere.iter())
            .filter(|q| !q.is_dropped())
            .map(Arc::as_ptr)
            .collect();
        // A subscription to several rooms sits in several lists; count it once.
        live.sort_unstable();
        live.dedup();
        state.counters.snapshot(by_room, live.len() as u64)
    }
}

impl Drop for InProcessBroker {
    fn drop(&mut self) {
        let state = self.state.get_mut();
        for queue in state
            .rooms
            .values()
            .flat_map(|r| r.subscribers.iter())
            .chain(state.everywhere.iter())
        {
            queue.end();
        }
    }
}
