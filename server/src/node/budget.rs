//! Per-token budgets for paid and rate-limited upstreams.
//!
//! Any viewer could otherwise spend the server's Google, Mapillary, WiGLE or OpenCellID quota
//! (and its bill) as fast as it can send requests. Each upstream has a token bucket per caller,
//! keyed by the id of the token the caller authenticated with (a session counts as its token):
//! `per_hour` units come back each hour, at most `burst` are held. A caller whose bucket is empty
//! gets 429 with `Retry-After` (seconds) and the stable code `budget_exceeded`; other callers are
//! not affected.
//!
//! The keyed stores hold one small entry per token that spent something lately: token ids are
//! bounded by the token table, and `serve` prunes, once a minute, every entry whose bucket has
//! filled up again (revoked tokens included).

use std::num::NonZeroU32;
use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header::RETRY_AFTER};
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use serde_json::json;

pub use crate::config::Budget;
use crate::error::Result;

/// The governor quota of `budget`.
fn quota(budget: Budget) -> Quota {
    let at_least_one = |n: u32| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
    let per_hour = at_least_one(budget.per_hour);
    // One unit back every hour / per_hour (never zero: an hour is 3.6e12 ns).
    Quota::with_period(Duration::from_secs(3600) / per_hour.get())
        .unwrap_or_else(|| Quota::per_hour(per_hour))
        .allow_burst(at_least_one(budget.burst))
}

/// One upstream's buckets, one per token id.
#[derive(Debug)]
pub(crate) struct Meter {
    upstream: &'static str,
    limiter: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

impl Meter {
    /// Buckets of `budget` for `upstream` (its name in answers and logs).
    pub(crate) fn new(upstream: &'static str, budget: Budget) -> Meter {
        Meter {
            upstream,
            limiter: DefaultKeyedRateLimiter::keyed(quota(budget)),
            clock: DefaultClock::default(),
        }
    }

    /// Spends one unit of `token_id`'s budget, or says when one will be back.
    pub(crate) fn take(&self, token_id: &str) -> Result<(), OverBudget> {
        self.limiter
            .check_key(&token_id.to_owned())
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(self.clock.now());
                // Debug, not info: a client hammering a spent budget must not flood the log.
                tracing::debug!(
                    upstream = self.upstream,
                    token = token_id,
                    retry_after_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    "upstream budget spent"
                );
                OverBudget {
                    upstream: self.upstream,
                    retry_after: wait,
                }
            })
    }

    /// Forgets tokens whose bucket is full again.
    pub(crate) fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Tokens with a bucket in memory.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.limiter.len()
    }
}

/// A caller's budget for an upstream is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OverBudget {
    /// The upstream (`streetview_static`, `mapillary`, `panoramax`, `wigle`, `opencellid`,
    /// `geosubmit`).
    pub(crate) upstream: &'static str,
    /// When the next unit is back.
    pub(crate) retry_after: Duration,
}

impl OverBudget {
    /// `Retry-After` in whole seconds, rounded up, at least 1.
    pub(crate) fn retry_after_secs(&self) -> u64 {
        let d = self.retry_after;
        (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
    }

    /// The message of the answer.
    pub(crate) fn message(&self) -> String {
        format!(
            "this token's budget for {} is spent; retry in {} s",
            self.upstream,
            self.retry_after_secs()
        )
    }

    /// Adds `Retry-After` to an answer.
    pub(crate) fn with_retry_after(&self, mut response: Response) -> Response {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(self.retry_after_secs()));
        response
    }
}

/// 429 `{"error": {"code": "budget_exceeded", "message", "upstream", "retry_after"}}` with
/// `Retry-After`.
impl IntoResponse for OverBudget {
    fn into_response(self) -> Response {
        let body = json!({"error": {
            "code": "budget_exceeded",
            "message": self.message(),
            "upstream": self.upstream,
            "retry_after": self.retry_after_secs(),
        }});
        self.with_retry_after((StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_token_has_its_own_bucket() {
        let meter = Meter::new("wigle", Budget::new(1, 2));
        assert!(meter.take("a").is_ok() && meter.take("a").is_ok());
        let over = meter.take("a").unwrap_err();
        assert_eq!(over.upstream, "wigle");
        // One unit an hour: the next is about an hour away.
        assert!((3500..=3600).contains(&over.retry_after_secs()), "{over:?}");
        assert!(meter.take("b").is_ok());
        assert_eq!(meter.tracked(), 2);
    }

    #[test]
    fn full_buckets_are_pruned() {
        let meter = Meter::new("panoramax", Budget::new(3_600_000, 1));
        meter.take("a").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        meter.prune();
        assert_eq!(meter.tracked(), 0);
    }

    #[test]
    fn retry_after_rounds_up() {
        let over = |ms| OverBudget {
            upstream: "x",
            retry_after: Duration::from_millis(ms),
        };
        assert_eq!(over(0).retry_after_secs(), 1);
        assert_eq!(over(1_001).retry_after_secs(), 2);
        assert_eq!(over(3_000).retry_after_secs(), 3);
    }

    #[test]
    fn zero_budgets_are_refused() {
        assert!(Budget::new(0, 1).check("b").is_err());
        assert!(Budget::new(1, 0).check("b").is_err());
        assert!(Budget::new(1, 1).check("b").is_ok());
    }
}
