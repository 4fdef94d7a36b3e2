//! The history ring of one room, and replays from it.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::event::{Epoch, Event};

/// Events replayed from history, in sequence order.
///
/// `recovered` is `true` when `events` holds every event after the asked position that passes
/// the filter. It is `false` when some may be missing: the gap is older than what a room keeps,
/// the position is ahead of the bus, or the epoch is another bus's (a restart). Then `events`
/// still holds what the bus has after the position (the whole retained history for a foreign
/// epoch), so a dashboard can show recent events while it resynchronises from its source of
/// truth.
#[derive(Debug, Clone)]
pub struct Replay {
    /// Whether nothing is missing.
    pub recovered: bool,
    /// The bus's epoch (the one to resume with next time).
    pub epoch: Epoch,
    /// The sequence number of the bus's latest event when the replay was taken.
    pub head: u64,
    /// The events, oldest first.
    pub events: Vec<Arc<Event>>,
}

/// A bounded ring of a room's latest events.
#[derive(Debug)]
pub(crate) struct History {
    ring: VecDeque<Arc<Event>>,
    capacity: usize,
    /// The sequence number of the latest event pushed out of the ring (0: none yet).
    evicted_through: u64,
}

impl History {
    pub(crate) fn new(capacity: usize) -> History {
        History {
            ring: VecDeque::with_capacity(capacity.min(1024)),
            capacity,
            evicted_through: 0,
        }
    }

    pub(crate) fn push(&mut self, event: &Arc<Event>) {
        if self.capacity == 0 {
            self.evicted_through = event.seq();
            return;
        }
        if self.ring.len() == self.capacity
            && let Some(old) = self.ring.pop_front()
        {
            self.evicted_through = old.seq();
        }
        self.ring.push_back(Arc::clone(event));
    }

    /// Records that this room's events up to `seq` may be gone (never seen by this node).
    pub(crate) fn mark_lost(&mut self, seq: u64) {
        self.evicted_through = self.evicted_through.max(seq);
    }

    /// Whether every event of this room after `seq` is still in the ring.
    pub(crate) fn covers(&self, seq: u64) -> bool {
        seq >= self.evicted_through
    }

    /// The retained events after `seq`, oldest first.
    pub(crate) fn after(&self, seq: u64) -> impl Iterator<Item = &Arc<Event>> {
        let start = self.ring.partition_point(|e| e.seq() <= seq);
        self.ring.range(start..)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.ring.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventDraft;

    fn event(seq: u64) -> Arc<Event> {
        let draft = EventDraft::new("scan_update", "scans", &serde_json::Value::Null).unwrap();
        Arc::new(Event::stamp(draft, seq, Epoch::from_u64(7)))
    }

    #[test]
    fn ring_keeps_the_latest_and_knows_what_it_lost() {
        let mut history = History::new(3);
        for seq in [2, 4, 6, 8, 10] {
            history.push(&event(seq));
        }
        assert_eq!(history.len(), 3);
        assert_eq!(
            history.after(0).map(|e| e.seq()).collect::<Vec<_>>(),
            [6, 8, 10]
        );
        assert_eq!(
            history.after(7).map(|e| e.seq()).collect::<Vec<_>>(),
            [8, 10]
        );
        assert!(history.covers(4) && history.covers(5) && history.covers(9));
        assert!(!history.covers(3));
    }

    #[test]
    fn zero_capacity_keeps_nothing_but_tracks_loss() {
        let mut history = History::new(0);
        history.push(&event(5));
        assert_eq!(history.len(), 0);
        assert!(history.covers(5) && !history.covers(4));
    }
}
