//! Small programs, one per vigil use case. Each file under `examples/examples/` starts with how to
//! run it; `cargo test --workspace` compiles them all.
//!
//! | example | what it shows |
//! |---|---|
//! | `event_bus` | publish typed and JSON events in process, subscribe with a filter, resume from history |
