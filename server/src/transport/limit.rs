//! The per-connection inbound rate limit shared by `/ws` and Socket.IO.

use std::num::NonZeroU32;

use axum::extract::FromRef;
use governor::{DefaultDirectRateLimiter, Quota};

use crate::config::ServerConfig;
use crate::node::Node;
use crate::node::proxies::Peer;

/// A token bucket (GCRA): `messages_per_second` sustained, `message_burst` at once.
#[derive(Debug)]
pub(crate) struct RateLimit {
    limiter: DefaultDirectRateLimiter,
}

impl RateLimit {
    /// A full bucket with the configured rate and burst. [`ServerConfig::validate`] refuses a
    /// zero rate or burst; should one get here anyway, it counts as 1.
    pub(crate) fn new(config: &ServerConfig) -> RateLimit {
        let at_least_one = |n: u32| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_second(at_least_one(config.messages_per_second))
            .allow_burst(at_least_one(config.message_burst));
        RateLimit {
            limiter: DefaultDirectRateLimiter::direct(quota),
        }
    }

    /// Takes one token; `false` when the bucket is empty. (`&mut self` is kept for its callers;
    /// the limiter itself needs only a shared reference.)
    pub(crate) fn allow(&mut self) -> bool {
        self.limiter.check().is_ok()
    }
}

impl<S> axum::extract::FromRequestParts<S> for Peer
where
    Node: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Peer, Self::Rejection> {
        Ok(Peer::of(
            Node::from_ref(state).proxies(),
            &parts.extensions,
            &parts.headers,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_burst_passes_then_the_bucket_refuses() {
        let config = ServerConfig {
            messages_per_second: 1,
            message_burst: 5,
            ..ServerConfig::default()
        };
        let mut limit = RateLimit::new(&config);
        assert_eq!((0..5).filter(|_| limit.allow()).count(), 5);
        assert!(!limit.allow());
    }
}
