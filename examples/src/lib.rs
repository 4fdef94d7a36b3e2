//! Small programs, one per vigil use case. Each file under `examples/examples/` starts with how to
//! run it; `cargo test --workspace` compiles them all.
//!
//! | example | what it shows |
//! |---|---|
//! | `event_bus` | publish typed and JSON events in process, subscribe with a filter, resume from history |
//! | `streetview` | build and sign a Street View Static URL; find open imagery near a point (base URLs overridable) |
//! | `locate_offline` | import a small cell/WiFi CSV into an offline database and locate from it |
//! | `scan` | scan 127.0.0.1 with a scope, banners and the built-in signatures, print threats |
//! | `locate_wigle` | locate through WiGLE (`WIGLE_BASE_URL` overrides the endpoint) |
//! | `custom_agent` | your own `TaskRunner` behind vigil's network agent |
//! | `ws_subscriber` | a Rust client of `/ws`: auth, subscribe, resume after reconnects |
