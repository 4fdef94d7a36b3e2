//! Check hosts you are authorised to test, and say what is wrong with them.
//!
//! This crate will hold, as the sec-scan issue builds them (see the project's design, section 5):
//!
//! - a scope (allowlist, excludes, refused address classes) checked before any packet leaves;
//! - a TCP connect port scanner with a sliding window, timeouts, retries, a rate limit and
//!   self-connection detection; banner grabbing; a TLS certificate check; an HTTP probe;
//! - typed findings, and a signature database compiled into one `RegexSet` per finding field;
//! - a priority task queue with retries and concurrency limits, and the agent runtime.
//!
//! Nothing is public yet: the crate exists now so that its place in the dependency graph is
//! fixed from the start.
