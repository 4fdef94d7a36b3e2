//! The server against hostile clients: each finding of the security review reproduced, on
//! 127.0.0.1 only, bounded in count and time, and shown to hold.

mod common;

#[path = "hostile/http.rs"]
mod http;
