//! The one error type of the crate.

use crate::name::NameKind;

/// Everything that can go wrong when publishing, subscribing or replaying.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A room or kind name does not follow the naming rule (see [`crate::name`]).
    #[error("invalid {what} name {name:?}: {reason}")]
    InvalidName {
        /// Whether a room or a kind was named.
        what: NameKind,
        /// The name as given (cut to 80 characters).
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The room is well formed but the bus has no such room.
    #[error("unknown room {0:?}")]
    UnknownRoom(String),
    /// `add_room` named a room that already exists.
    #[error("room {0:?} exists already")]
    RoomExists(String),
    /// A room's history size is outside what the bus accepts.
    #[error("history size {size} for room {room:?} is out of range 0..={max}")]
    HistorySize {
        /// The room being configured.
        room: String,
        /// The size asked for.
        size: usize,
        /// The largest size allowed.
        max: usize,
    },
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(&'static str),
    /// A severity name is not one of `info|success|warning|error|critical`.
    #[error("unknown severity {0:?}; expected info, success, warning, error or critical")]
    UnknownSeverity(String),
    /// An epoch is not 16 hexadecimal digits.
    #[error("invalid epoch {0:?}: expected 16 hexadecimal digits")]
    InvalidEpoch(String),
    /// A typed payload could not be encoded, or event data could not be decoded into the asked
    /// type.
    #[error("payload of kind {kind:?}: {source}")]
    Payload {
        /// The kind of the event.
        kind: String,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
    /// An event was decoded as a payload type of another kind.
    #[error("event is of kind {actual:?}, not {expected:?}")]
    KindMismatch {
        /// The kind the payload type declares.
        expected: &'static str,
        /// The kind the event carries.
        actual: String,
    },
    /// Bytes that should hold an event envelope do not.
    #[error("invalid event envelope: {0}")]
    Envelope(#[source] serde_json::Error),
    /// The bus behind this handle was shut down, or its broker stopped before answering a
    /// publish.
    #[error("the event bus is closed")]
    Closed,
    /// [`crate::Ticket::now`] was called before the broker answered; await the ticket instead.
    #[error("the broker has not answered this publish yet")]
    NotReady,
    /// The broker's publish queue is full: the store behind it does not keep up. Nothing was
    /// published; the caller may retry later or drop the event.
    #[error("publish queue full ({capacity} events waiting)")]
    Overloaded {
        /// How many publishes the queue holds.
        capacity: usize,
    },
    /// The store a shared broker publishes through is unreachable now (the broker reconnects by
    /// itself). Nothing was published.
    #[error("event store unavailable: {0}")]
    Unavailable(String),
    /// The publish was sent to the store but the connection failed before the answer came: it
    /// may or may not have been published. If it was, every subscriber gets it as usual.
    #[error("publish not confirmed: {0}")]
    Unconfirmed(String),
    /// The store refused the publish or answered something unexpected. Nothing was published.
    #[error("event store error: {0}")]
    Store(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
