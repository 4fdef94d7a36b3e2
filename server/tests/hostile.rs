//! The server against hostile clients, on 127.0.0.1 only, each case bounded in count and time:
//! every finding of the hostile-clients review, reproduced, and shown to hold now. One module
//! per area.

mod common;

#[path = "hostile/sockets.rs"]
mod sockets;
