//! Benchmarks, load generators and accuracy harnesses for vigil.
//!
//! | bench | command | what it measures |
//! |---|---|---|
//! | `event_bus` | `cargo bench -p vigil-benches --bench event_bus` | publish cost, fan-out, history replay |
