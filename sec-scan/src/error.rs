//! The one error type of this crate.

use std::time::Duration;

use crate::scope::ScopeViolation;
use crate::target::AddressCount;

/// Everything that can go wrong in `sec-scan`.
///
/// Variants carry the input that caused them (the target, the file and line, the probe), so a
/// message can be shown to an operator as is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A target is outside the scope. Raised before any packet is sent to it.
    #[error("target {target:?} is out of scope: {violation}")]
    OutOfScope {
        /// The target as it was given (a name, an address, a network).
        target: String,
        /// Why it was refused.
        violation: ScopeViolation,
    },
    /// A scope limit (ports per task, hosts per target, total probes) was exceeded.
    #[error("scope limit exceeded: {what} is {got}, the limit is {limit}")]
    LimitExceeded {
        /// Which limit.
        what: &'static str,
        /// The requested amount.
        got: u128,
        /// The configured limit.
        limit: u128,
    },
    /// A network or range holds more addresses than one target may expand to
    /// ([`Limits::max_hosts_per_target`](crate::Limits::max_hosts_per_target)).
    #[error(
        "target {target} holds {addresses} addresses, more than the {limit} one target may expand to; \
         split it or scan a smaller network"
    )]
    TargetTooLarge {
        /// The target as it was given.
        target: String,
        /// How many addresses it holds (all of IPv6 is 2^128, which no `u128` counts).
        addresses: AddressCount,
        /// The limit.
        limit: u128,
    },
    /// A target string could not be parsed.
    #[error("invalid target {input:?}: {reason}")]
    InvalidTarget {
        /// The text that was given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A port specification could not be parsed.
    #[error("invalid port specification {input:?}: {reason}")]
    InvalidPorts {
        /// The text that was given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A host name in scope could not be resolved.
    #[error("could not resolve {host:?}: {source}")]
    Resolve {
        /// The host name.
        host: String,
        /// The resolver's error.
        #[source]
        source: std::io::Error,
    },
    /// A signature file is invalid.
    #[error("{origin}:{line}: {message}")]
    Signature {
        /// Where the signatures came from (a file name, or `built-in`).
        origin: String,
        /// 1-based line of the problem (0 when the file as a whole is wrong).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A configuration value is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A network operation against a target failed.
    #[error("{target}: {source}")]
    Io {
        /// `address:port` of the target.
        target: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A TLS handshake could not be completed at all (a bad certificate does not cause this:
    /// certificates are recorded, not enforced).
    #[error("TLS handshake with {target} failed: {message}")]
    Tls {
        /// `address:port` of the target.
        target: String,
        /// The TLS library's message.
        message: String,
    },
    /// An operation took longer than its time limit.
    #[error("{what} on {target} timed out after {after:?}")]
    Timeout {
        /// What was being done.
        what: &'static str,
        /// `address:port` of the target.
        target: String,
        /// The limit that was hit.
        after: Duration,
    },
    /// The network agent's connection to its vigil server failed, was refused, or ended: the
    /// agent reconnects with back-off.
    #[error("server {server}: {message}")]
    Server {
        /// The server's URL.
        server: String,
        /// What happened.
        message: String,
    },
    /// A scan task was cancelled.
    #[error("task {0} was cancelled")]
    Cancelled(String),
    /// The task queue refused a task or has shut down.
    #[error("task queue: {0}")]
    Queue(String),
    /// A scan worker thread failed.
    #[error("scan worker failed: {0}")]
    Worker(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
