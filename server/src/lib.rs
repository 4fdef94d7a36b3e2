//! The vigil reference server.
//!
//! This crate will hold, as the server issue builds it (see the project's design, section 7): an
//! axum router (`app(state)`) with the `/ws` JSON protocol, Socket.IO compatibility, the REST API,
//! token authentication with roles, SQLite persistence, scan orchestration and the embedded
//! dashboard.
//!
//! Nothing is public yet: the crate exists now so that its place in the dependency graph is
//! fixed from the start.
