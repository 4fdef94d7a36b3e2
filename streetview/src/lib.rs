//! Street-level imagery for any point on the ground.
//!
//! This crate will hold, as the streetview issue builds them (see the project's design, section 6):
//!
//! - coordinate validation, longitude normalisation, formatting and bounding boxes;
//! - Google Maps URLs (`api=1`, panoramas, search, directions, map);
//! - a Street View Static API URL builder with HMAC-SHA1 URL signing, and the free metadata client;
//! - Mapillary API v4 (REST `/images`, single images, vector tiles, viewer links);
//! - Panoramax STAC search, collections, assets and licences.
//!
//! Nothing is public yet: the crate exists now so that its place in the dependency graph is
//! fixed from the start.
