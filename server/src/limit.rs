//! The per-connection inbound rate limit shared by `/ws` and Socket.IO.

use std::time::Instant;

use crate::config::ServerConfig;

/// A token bucket: `messages_per_second` sustained, `message_burst` at once.
#[derive(Debug)]
pub(crate) struct RateLimit {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
}

impl RateLimit {
    /// A full bucket with the configured rate and burst.
    pub(crate) fn new(config: &ServerConfig) -> RateLimit {
        RateLimit {
            tokens: f64::from(config.message_burst),
            rate: f64::from(config.messages_per_second),
            burst: f64::from(config.message_burst),
            last: Instant::now(),
        }
    }

    /// Takes one token; `false` when the bucket is empty.
    pub(crate) fn allow(&mut self) -> bool {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
