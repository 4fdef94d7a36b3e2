//! The server against hostile clients: each finding of the security review reproduced on
//! 127.0.0.1 (or in process), asserting that it now holds. Bounded in count and time.
//!
//! One module per area, each in `hostile/`.

mod common;

#[path = "hostile/dashboard.rs"]
mod dashboard;
#[path = "hostile/http.rs"]
mod http;
#[path = "hostile/sockets.rs"]
mod sockets;
