//! Benchmarks, load generators and accuracy harnesses for vigil.
//!
//! | bench | command | what it measures |
//! |---|---|---|
//! | `event_bus` | `cargo bench -p vigil-benches --bench event_bus` | publish cost, fan-out, history replay |
//! | `geo_lookup` | `cargo bench -p vigil-benches --bench geo_lookup` | offline cell/WiFi lookups, the estimator |
//! | `geo_db` | `cargo run --release -p vigil-benches --bin geo_db` | import rate, bytes per cell, lookup latency on 10 M generated rows, against SQLite |
//! | `geo_accuracy` | `cargo run --release -p vigil-benches --bin geo_accuracy` | median/p95 error and 95 % radius coverage on a simulated city, against the seed's `signal²` method |
//! | `scan_signatures` | `cargo bench -p vigil-benches --bench scan_signatures` | 1 000 signatures in one pass per field, against a loop of single regexes |
//! | `ws_load` | `benches/run_ws_bench.sh` (or `cargo run --release -p vigil-benches --bin ws_load -- --help`) | `/ws` fan-out delivery and latency, server CPU per delivery, memory per idle connection, slow-client isolation; vigil against aiohttp (seed 001) and Node `ws` in the same run |
//! | `geolocate_load` | `benches/run_geo_bench.sh` (or `cargo run --release -p vigil-benches --bin geolocate_load -- --help`) | `POST /v1/geolocate` requests per second, latency and server CPU per request on an imported 1 M-row cell dump |
//! | `http_hostile` | `benches/run_hostile.sh` (or `cargo run --release -p vigil-benches --bin http_hostile -- --help`) | as an attacker, on loopback: server RSS and `/metrics` size after 2 000 requests with 4 KB method names, and how long an unfinished request head keeps its connection |
//! | `hostile_load` | `benches/run_hostile.sh` (or `cargo run --release -p vigil-benches --bin hostile_load -- --help`) | as an attacker, on loopback: whether a client with a token is welcomed while more than 10 000 anonymous `/ws` sockets are held open, and server RSS after 20 000 Engine.IO handshakes without a token |
//! | `cvedb` | `cargo run --release -p vigil-benches --bin cvedb [-- CVES]` | NVD import rate, peak RSS and bytes on disk, and match latency p50/p99 for openssh, nginx and a product with thousands of CVEs, on a generated NVD-shaped data set (30 k CVEs by default, `300000` for NVD's size) |
//! | `bus_redis` | `cargo run --release -p vigil-benches --bin bus_redis [-- EVENTS]` | event-bus publish throughput through Redis from one node (pipelined, end to end back to a subscriber, one at a time) beside the in-process figure; starts its own `redis-server` |
//! | `cluster_fanout` | `benches/run_cluster_bench.sh` (or `cargo run --release -p vigil-benches --bin cluster_fanout -- --help`) | cross-node `/ws` fan-out: subscribers on two nodes sharing Redis and PostgreSQL, events published on one; delivered % and p99 publish→receive on each node, beside one node with the in-process bus and the same clients; the script starts its own redis-server, PostgreSQL and nodes on loopback |
//! | `portscan` | `cargo run --release -p vigil-benches --bin portscan -- RUNS LISTENERS` | full 65 535-port loopback scan against `nmap -sT -T5` (when installed): time, RSS, false positives |

pub mod geo;
pub mod load;
