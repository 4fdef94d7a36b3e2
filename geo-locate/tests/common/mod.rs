//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Path of a fixture file.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A fixture's content as a JSON value.
pub fn json(name: &str) -> serde_json::Value {
    let bytes = std::fs::read(fixture(name)).expect("fixture exists");
    serde_json::from_slice(&bytes).expect("fixture is JSON")
}
