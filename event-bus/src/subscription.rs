//! Subscriptions: a filter, a bounded queue per subscriber, and explicit lag.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use futures::Stream;
use futures::task::AtomicWaker;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::event::{Epoch, Event};
use crate::kind::EventKind;
use crate::room::Room;
use crate::severity::Severity;

/// Which events a subscription or a replay wants.
///
/// Empty `rooms` means every room; empty `kinds` means every kind.
///
/// ```
/// use event_bus::{Filter, Severity};
///
/// let filter = Filter::rooms(["scans", "alerts"])?
///     .kinds(["scan_completed", "critical_alert"])?
///     .min_severity(Severity::Warning);
/// # Ok::<(), event_bus::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// Rooms to receive from; empty for all.
    #[serde(default)]
    pub rooms: Vec<Room>,
    /// Kinds to receive; empty for all.
    #[serde(default)]
    pub kinds: Vec<EventKind>,
    /// The least severity received.
    #[serde(default)]
    pub min_severity: Severity,
}

impl Filter {
    /// Everything.
    pub fn all() -> Filter {
        Filter::default()
    }

    /// Only these rooms; names are validated.
    pub fn rooms<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Filter> {
        Ok(Filter {
            rooms: names.into_iter().map(Room::new).collect::<Result<_>>()?,
            ..Filter::default()
        })
    }

    /// Only these kinds; names are validated.
    pub fn kinds<'a>(mut self, names: impl IntoIterator<Item = &'a str>) -> Result<Filter> {
        self.kinds = names
            .into_iter()
            .map(EventKind::parse)
            .collect::<Result<_>>()?;
        Ok(self)
    }

    /// Only events at `severity` or above.
    pub fn min_severity(mut self, severity: Severity) -> Filter {
        self.min_severity = severity;
        self
    }

    /// Whether `event` passes.
    pub fn matches(&self, event: &Event) -> bool {
        (self.rooms.is_empty() || self.rooms.contains(event.room())) && self.matches_content(event)
    }

    /// Whether `event` passes the kind and severity parts (the room is checked elsewhere).
    pub(crate) fn matches_content(&self, event: &Event) -> bool {
        event.severity() >= self.min_severity
            && (self.kinds.is_empty() || self.kinds.contains(event.kind()))
    }
}

/// A place in a bus's history: the last event a client saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Position {
    /// The epoch of the bus the client saw it on.
    pub epoch: Epoch,
    /// The event's sequence number.
    pub seq: u64,
}

/// The subscriber fell behind: `missed` events that matched its filter were not queued for it.
///
/// They were the events after `resume_from` (the sequence number of the last event queued before
/// the gap, 0 when none was): replay them with
/// `since(Position { epoch, seq: resume_from })` while they are still in the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lagged {
    /// How many matching events were not queued.
    pub missed: u64,
    /// The sequence number to resume from.
    pub resume_from: u64,
}

/// What a subscription yields.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// The next event, in sequence order.
    Event(Arc<Event>),
    /// Events were lost to a full queue at this point of the stream.
    Lagged(Lagged),
}

/// What [`SubscriberQueue::push`] did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued for the subscriber.
    Queued,
    /// Not for this subscriber (kind or severity filtered out).
    Skipped,
    /// For this subscriber, but its queue was full: counted in its next [`Lagged`].
    Missed,
}

/// How much one subscriber's queue holds before it lags.
///
/// Events are shared (`Arc`), so a queue costs little memory of its own; the byte bound is for
/// consumers that copy each event into a socket buffer and want a slow reader cut off after a
/// known amount of data rather than a number of events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Events queued at most (at least 1).
    pub events: usize,
    /// Bytes of event JSON ([`Event::json`]) queued at most; `None` for no byte bound. An event
    /// is always queued into an empty queue, however large.
    pub bytes: Option<usize>,
}

impl QueueLimits {
    /// Up to `events` events, with no byte bound.
    pub const fn events(events: usize) -> QueueLimits {
        QueueLimits {
            events,
            bytes: None,
        }
    }
}

/// The bounded queue shared by a publisher side and one [`Subscription`].
///
/// Publishers call [`SubscriberQueue::push`], which never waits: when the queue is full the event
/// is counted as missed instead, and the subscriber is told with a [`Lagged`] at that point of
/// its stream. Brokers other than the in-process one use this type to feed subscriptions.
pub struct SubscriberQueue {
    state: Mutex<QueueState>,
    waker: AtomicWaker,
    /// Set when the subscription is dropped: publishers skip and forget the queue.
    dropped: AtomicBool,
    /// Set when the bus goes away: the stream ends once drained.
    ended: AtomicBool,
    filter: Filter,
    capacity: usize,
    max_bytes: usize,
}

struct QueueState {
    items: VecDeque<Delivery>,
    /// Events queued, not counting lag markers.
    events: usize,
    /// Bytes of JSON of the events queued.
    bytes: usize,
    /// The sequence number of the last event queued.
    last_queued: u64,
    /// A gap that has begun and is not yet marked in `items`.
    gap: Option<Lagged>,
}

impl SubscriberQueue {
    /// A queue for `filter` holding what `limits` allow, starting after sequence number `after`.
    pub fn new(filter: Filter, limits: QueueLimits, after: u64) -> Arc<SubscriberQueue> {
        Arc::new(SubscriberQueue {
            state: Mutex::new(QueueState {
                items: VecDeque::new(),
                events: 0,
                bytes: 0,
                last_queued: after,
                gap: None,
            }),
            waker: AtomicWaker::new(),
            dropped: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            filter,
            capacity: limits.events.max(1),
            max_bytes: limits.bytes.unwrap_or(usize::MAX),
        })
    }

    /// The subscriber's filter.
    pub fn filter(&self) -> &Filter {
        &self.filter
    }

    /// Whether the subscription was dropped; a broker then forgets the queue.
    pub fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::Acquire)
    }

    /// Queues `event` if it passes the kind and severity filter (the broker has already matched
    /// the room).
    pub fn push(&self, event: &Arc<Event>) -> Pushed {
        if !self.filter.matches_content(event) {
            return Pushed::Skipped;
        }
        let pushed = {
            let mut state = self.state.lock();
            let len = event.json().len();
            let full = state.events >= self.capacity
                || (state.events > 0 && state.bytes.saturating_add(len) > self.max_bytes);
            if full {
                let resume_from = state.last_queued;
                let gap = state.gap.get_or_insert(Lagged {
                    missed: 0,
                    resume_from,
                });
                gap.missed += 1;
                Pushed::Missed
            } else {
                if let Some(gap) = state.gap.take() {
                    state.items.push_back(Delivery::Lagged(gap));
                }
                state.items.push_back(Delivery::Event(Arc::clone(event)));
                state.events += 1;
                state.bytes += len;
                state.last_queued = event.seq();
                Pushed::Queued
            }
        };
        // Wake even on a miss: the subscriber must learn about the gap.
        self.waker.wake();
        pushed
    }

    /// Counts `missed` events this subscriber will never get (its broker lost them), reported
    /// with the next [`Lagged`] like events missed to a full queue.
    pub(crate) fn lose(&self, missed: u64) {
        {
            let mut state = self.state.lock();
            let resume_from = state.last_queued;
            state
                .gap
                .get_or_insert(Lagged {
                    missed: 0,
                    resume_from,
                })
                .missed += missed;
        }
        self.waker.wake();
    }

    /// Marks the stream as ended (the bus is going away) and wakes the subscriber.
    pub fn end(&self) {
        self.ended.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Moves everything queued into `out`; a pending gap comes last.
    fn drain_into(&self, out: &mut VecDeque<Delivery>) {
        let mut state = self.state.lock();
        if out.is_empty() {
            std::mem::swap(out, &mut state.items);
        } else {
            out.extend(state.items.drain(..));
        }
        state.events = 0;
        state.bytes = 0;
        if let Some(gap) = state.gap.take() {
            out.push_back(Delivery::Lagged(gap));
        }
    }
}

/// A live subscription: a [`Stream`] of [`Delivery`] in sequence order.
///
/// Dropping it unsubscribes. The stream ends when the bus is dropped.
pub struct Subscription {
    queue: Arc<SubscriberQueue>,
    local: VecDeque<Delivery>,
    epoch: Epoch,
    last_seen: u64,
}

impl Subscription {
    /// Wraps a queue a broker registered; `epoch` and `after` say where the stream starts.
    pub fn new(queue: Arc<SubscriberQueue>, epoch: Epoch, after: u64) -> Subscription {
        Subscription {
            queue,
            local: VecDeque::new(),
            epoch,
            last_seen: after,
        }
    }

    /// The filter this subscription was made with (named so as not to clash with
    /// `StreamExt::filter`).
    pub fn criteria(&self) -> &Filter {
        &self.queue.filter
    }

    /// Where the subscriber is: the last event it was handed (or where it started).
    pub fn position(&self) -> Position {
        Position {
            epoch: self.epoch,
            seq: self.last_seen,
        }
    }

    /// The next delivery without waiting, if one is queued.
    pub fn try_next(&mut self) -> Option<Delivery> {
        if self.local.is_empty() {
            self.queue.drain_into(&mut self.local);
        }
        let delivery = self.local.pop_front()?;
        if let Delivery::Event(event) = &delivery {
            self.last_seen = event.seq();
        }
        Some(delivery)
    }

    /// Ready with the gap once events for this subscriber have been missed because its queue was
    /// full, before that gap is handed out by [`Subscription::try_next`]; otherwise registers the
    /// task to be woken at the next push and returns `Pending`.
    ///
    /// A consumer busy writing what it already took (to a socket that does not drain, say) polls
    /// this to notice at once that it has fallen behind, instead of when it next reads the queue.
    pub fn poll_gap(&self, cx: &mut Context<'_>) -> Poll<Lagged> {
        self.queue.waker.register(cx.waker());
        match self.queue.state.lock().gap {
            Some(gap) => Poll::Ready(gap),
            None => Poll::Pending,
        }
    }

    /// Waits for the next delivery; `None` once the bus is gone and everything was handed out.
    pub async fn recv(&mut self) -> Option<Delivery> {
        futures::StreamExt::next(self).await
    }
}

impl Stream for Subscription {
    type Item = Delivery;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        let this = self.get_mut();
        if let Some(delivery) = this.try_next() {
            return Poll::Ready(Some(delivery));
        }
        // Register first, then look again, so a push between the two is never missed.
        this.queue.waker.register(cx.waker());
        if let Some(delivery) = this.try_next() {
            return Poll::Ready(Some(delivery));
        }
        if this.queue.ended.load(Ordering::Acquire) {
            // A push may have raced the end flag; hand it out before ending.
            return Poll::Ready(this.try_next());
        }
        Poll::Pending
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.queue.dropped.store(true, Ordering::Release);
        // Free what is queued now rather than at the broker's next clean-up.
        let mut state = self.queue.state.lock();
        state.items = VecDeque::new();
        state.events = 0;
        state.bytes = 0;
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("filter", &self.queue.filter)
            .field("position", &self.position())
            .finish_non_exhaustive()
    }
}
