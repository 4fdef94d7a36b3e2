//! The node: what one server process holds whatever its routes — the bus, the store, who may
//! do what ([`auth`]), the scan orchestration ([`orchestrator`], with the in-process agent), its
//! place in a cluster ([`cluster`]), per-token budgets, the budget of unauthenticated sockets,
//! the trusted reverse proxies and the long-lived metrics. [`Node`] ties them together.
//!
//! Below it are only `config`, `error` and `store`; the transports and the features are built
//! on it and never the other way round.

pub(crate) mod admission;
pub mod auth;
pub(crate) mod budget;
pub mod cluster;
pub(crate) mod command;
pub(crate) mod local_agent;
pub(crate) mod metrics;
pub mod orchestrator;
pub(crate) mod proxies;
pub(crate) mod state;

pub use state::{FirstStart, Node, WsCounters};
