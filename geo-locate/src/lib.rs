//! Find where a device is from the WiFi access points and cell towers it sees.
//!
//! This crate will hold, as the geo-locate issue builds them (see the project's design, section 4):
//!
//! - the request, response and error types of the Ichnaea/Google `POST /v1/geolocate` API and of
//!   `/v2/geosubmit`, with per-entry validation that drops bad access points and cells one by one;
//! - async clients for WiGLE (`network/search`, `network/detail`) and OpenCellID (`cell/get`,
//!   `cell/getInArea`), behind one source trait with a read-through cache;
//! - an offline database imported from the OpenCellID/MLS cell dump and WiGLE CSV exports;
//! - position estimation: signal-weighted centroids that rise with signal strength, clustering
//!   that ignores moved access points, honest 95 % accuracy radii, and Ichnaea's hybrid rule.
//!
//! Nothing is public yet: the crate exists now so that its place in the dependency graph is
//! fixed from the start.
