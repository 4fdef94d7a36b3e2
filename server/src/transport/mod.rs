//! How clients reach the node: the HTTP surface every route shares ([`http`]: extractors,
//! origin checks, sessions, health, events), the `/ws` protocol ([`protocol`] and `ws`),
//! Socket.IO, the per-connection rate limit and the connection layer (head timeouts, graceful
//! drain). Built on the node; the features use its extractors.

pub(crate) mod connection;
pub mod http;
pub(crate) mod limit;
pub mod protocol;
pub(crate) mod socketio;
pub(crate) mod ws;
