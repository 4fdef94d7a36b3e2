//! Writes every event to the database's event log, in batches, off the async threads.

use std::sync::Arc;
use std::time::Duration;

use event_bus::{Bus, Delivery, Event, Filter, Position, SubscribeOptions};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::store::Store;

/// Events written per transaction at most.
const BATCH: usize = 512;

/// Writes what `bus` carries to `store`, keeping the newest `retention` events, until `stop`
/// is cancelled; then writes what is left and returns.
pub async fn run(bus: Bus, store: Store, retention: u64, stop: CancellationToken) {
    let options = SubscribeOptions {
        queue_capacity: Some(16 * 1024),
        ..SubscribeOptions::default()
    };
    let mut subscription = match bus.subscribe_with(Filter::all(), options) {
        Ok((_, sub)) => sub,
        Err(err) => {
            tracing::error!(error = %err, "event log cannot subscribe; events will not be persisted");
            return;
        }
    };
    let mut batch: Vec<Arc<Event>> = Vec::with_capacity(BATCH);
    loop {
        let delivery = tokio::select! {
            biased;
            () = stop.cancelled() => None,
            d = subscription.next() => d,
        };
        let Some(delivery) = delivery else { break };
        push(&bus, &mut batch, delivery);
        // Take whatever else is already queued, so one transaction carries a burst.
        while batch.len() < BATCH {
            match subscription.try_next() {
                Some(d) => push(&bus, &mut batch, d),
                None => break,
            }
        }
        flush(&store, &mut batch, retention).await;
    }
    while let Some(d) = subscription.try_next() {
        push(&bus, &mut batch, d);
    }
    flush(&store, &mut batch, retention).await;
}

fn push(bus: &Bus, batch: &mut Vec<Arc<Event>>, delivery: Delivery) {
    match delivery {
        Delivery::Event(event) => batch.push(event),
        Delivery::Lagged(lag) => {
            // Recover the gap from the history rings when they still hold it.
            let position = Position {
                epoch: bus.epoch(),
                seq: lag.resume_from,
            };
            let missed = usize::try_from(lag.missed).unwrap_or(usize::MAX);
            match bus.since(&Filter::all(), position) {
                Ok(replay) if replay.recovered && replay.events.len() >= missed => {
                    batch.extend(replay.events.into_iter().take(missed));
                }
                _ => tracing::warn!(
                    missed = lag.missed,
                    "event log fell behind; events lost from the log"
                ),
            }
        }
    }
}

async fn flush(store: &Store, batch: &mut Vec<Arc<Event>>, retention: u64) {
    if batch.is_empty() {
        return;
    }
    let events = std::mem::take(batch);
    let n = events.len();
    let result = store.append_events(events, retention).await;
    if let Err(err) = result {
        tracing::error!(error = %err, events = n, "event log write failed");
        // Back off a little so a broken disk does not spin the loop.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
