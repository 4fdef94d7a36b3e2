//! The answer to a publish: ready at once in process, later when a shared broker answers.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::event::Event;

/// What [`crate::Bus::publish`] hands back once the event is accepted: the published event
/// (with its `seq` and `epoch`), now or later.
///
/// The in-process broker numbers an event while publishing, so its tickets are ready at once and
/// cost nothing beyond the event itself. A broker shared by several nodes (the Redis broker)
/// learns the `seq` when its store answers; its tickets resolve then.
///
/// - Callers that need the `seq` (to acknowledge a client) `.await` the ticket.
/// - Callers that only publish drop it: the event is published all the same. Dropping never
///   blocks and never cancels the publish.
/// - [`Ticket::try_get`] looks without waiting; [`Ticket::now`] takes the outcome when the caller
///   knows it is ready (the in-process broker).
///
/// ```
/// use event_bus::Bus;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), event_bus::Error> {
/// let bus = Bus::new();
/// let ticket = bus.publish_json("chat_message", "chat", &serde_json::json!({"text": "hi"}))?;
/// let event = ticket.await?;
/// assert_eq!(event.seq(), 1);
/// // In process, the outcome is there at once.
/// let event = bus.publish_json("chat_message", "chat", &serde_json::Value::Null)?.now()?;
/// assert_eq!(event.seq(), 2);
/// # Ok(()) }
/// ```
pub struct Ticket(Inner);

enum Inner {
    /// The outcome, until it is taken.
    Ready(Option<Result<Arc<Event>>>),
    /// The broker answers through this channel.
    Pending(oneshot::Receiver<Result<Arc<Event>>>),
}

impl Ticket {
    /// A ticket whose outcome is known now.
    pub fn ready(outcome: Result<Arc<Event>>) -> Ticket {
        Ticket(Inner::Ready(Some(outcome)))
    }

    /// A ticket that resolves when the returned [`Resolver`] is used (or fails with
    /// [`Error::Closed`] when it is dropped unused).
    pub fn pending() -> (Ticket, Resolver) {
        let (tx, rx) = oneshot::channel();
        (Ticket(Inner::Pending(rx)), Resolver(tx))
    }

    /// The outcome if the broker has answered, without waiting; `None` while it has not (or once
    /// the outcome was taken).
    pub fn try_get(&mut self) -> Option<Result<Arc<Event>>> {
        match &mut self.0 {
            Inner::Ready(outcome) => outcome.take(),
            Inner::Pending(rx) => match rx.try_recv() {
                Ok(outcome) => {
                    self.0 = Inner::Ready(None);
                    Some(outcome)
                }
                Err(oneshot::error::TryRecvError::Empty) => None,
                Err(oneshot::error::TryRecvError::Closed) => {
                    self.0 = Inner::Ready(None);
                    Some(Err(Error::Closed))
                }
            },
        }
    }

    /// The outcome now: for callers that know their broker answers at once (the in-process
    /// one). A ticket the broker has not answered yet gives [`Error::NotReady`] and is spent:
    /// await it instead when the broker may be shared.
    pub fn now(mut self) -> Result<Arc<Event>> {
        self.try_get().unwrap_or(Err(Error::NotReady))
    }
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.0 {
            Inner::Ready(Some(Ok(event))) => format!("ready(seq {})", event.seq()),
            Inner::Ready(Some(Err(err))) => format!("failed({err})"),
            Inner::Ready(None) => "taken".to_owned(),
            Inner::Pending(_) => "pending".to_owned(),
        };
        f.debug_tuple("Ticket").field(&state).finish()
    }
}

/// The broker's side of a pending [`Ticket`].
#[derive(Debug)]
pub struct Resolver(oneshot::Sender<Result<Arc<Event>>>);

impl Resolver {
    /// Resolves the ticket; nothing happens when its holder dropped it.
    pub fn resolve(self, outcome: Result<Arc<Event>>) {
        let _ = self.0.send(outcome);
    }
}

/// The future of an awaited [`Ticket`].
#[derive(Debug)]
pub struct TicketFuture(Ticket);

impl Future for TicketFuture {
    type Output = Result<Arc<Event>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match &mut this.0.0 {
            Inner::Ready(outcome) => Poll::Ready(outcome.take().unwrap_or(Err(Error::NotReady))),
            Inner::Pending(rx) => match Pin::new(rx).poll(cx) {
                Poll::Ready(Ok(outcome)) => Poll::Ready(outcome),
                Poll::Ready(Err(_)) => Poll::Ready(Err(Error::Closed)),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl IntoFuture for Ticket {
    type Output = Result<Arc<Event>>;
    type IntoFuture = TicketFuture;

    fn into_future(self) -> TicketFuture {
        TicketFuture(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Epoch, EventDraft};

    fn event(seq: u64) -> Arc<Event> {
        let draft = EventDraft::new("scan_update", "scans", &serde_json::Value::Null).unwrap();
        Arc::new(Event::stamp(draft, seq, Epoch::from_u64(1)))
    }

    #[test]
    fn a_pending_ticket_resolves_once() {
        let (mut ticket, resolver) = Ticket::pending();
        assert!(ticket.try_get().is_none());
        resolver.resolve(Ok(event(7)));
        assert_eq!(ticket.try_get().unwrap().unwrap().seq(), 7);
        assert!(ticket.try_get().is_none(), "taken");
    }

    #[test]
    fn a_dropped_resolver_closes_the_ticket() {
        let (ticket, resolver) = Ticket::pending();
        drop(resolver);
        assert!(matches!(ticket.now(), Err(Error::Closed)));
        let (ticket, _resolver) = Ticket::pending();
        assert!(matches!(ticket.now(), Err(Error::NotReady)));
    }

    #[tokio::test]
    async fn tickets_are_awaitable() {
        assert_eq!(Ticket::ready(Ok(event(3))).await.unwrap().seq(), 3);
        let (ticket, resolver) = Ticket::pending();
        let waiter = tokio::spawn(ticket.into_future());
        resolver.resolve(Ok(event(4)));
        assert_eq!(waiter.await.unwrap().unwrap().seq(), 4);
    }
}
