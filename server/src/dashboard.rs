//! The live dashboard: one page at `/dashboard`, its modules and styles embedded in the binary,
//! Leaflet (the map library, embedded too, under its own BSD-2-Clause licence), the map settings
//! the page needs, and the Content-Security-Policy that lets exactly those hosts in.
//!
//! Assets are served under `/dashboard/assets/{version}/…`, where `version` is a digest of every
//! embedded asset: a new binary gets new URLs, so assets can be cached for a year while the page
//! itself is revalidated on every load.
//!
//! The page renders every untrusted string with `textContent` or DOM APIs and has no inline
//! script or style, so the policy needs no `'unsafe-inline'`.

use std::fmt::Write as _;
use std::sync::LazyLock;

use axum::Json;
use axum::Router;
use axum::extract::{FromRef, Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use event_bus::Role;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::config::{LEAFLET_VERSION, LeafletSource, ServerConfig};
use crate::error::ApiError;
use crate::node::Node;
use crate::transport::http::Caller;

/// The origin the Maps Embed API iframe comes from.
const EMBED_ORIGIN: &str = "https://www.google.com";

/// An embedded file: its name under the asset path, its content type, its bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// An embedded file under `assets/` (or `assets/<dir>/`): `asset!("app.js", JS)`.
macro_rules! asset {
    ($name:literal, $type:expr) => {
        asset!("", $name, $type)
    };
    ($dir:literal, $name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/", $dir, $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

static ASSETS: &[Asset] = &[
    asset!("app.js", JS),
    asset!("dom.js", JS),
    asset!("api.js", JS),
    asset!("connection.js", JS),
    asset!("stream.js", JS),
    asset!("metrics.js", JS),
    asset!("operations.js", JS),
    asset!("map.js", JS),
    asset!("chat.js", JS),
    asset!("admin.js", JS),
    asset!("style.css", CSS),
    asset!("icon.svg", "image/svg+xml"),
];

/// The Leaflet files the page may load, with the embedded copy of each. With a local directory
/// the same names are read from it; no other path from a request reaches the file system.
static LEAFLET: &[Asset] = &[
    asset!("vendor/leaflet/", "leaflet.js", JS),
    asset!("vendor/leaflet/", "leaflet.css", CSS),
    asset!("vendor/leaflet/", "images/marker-icon.png", "image/png"),
    asset!("vendor/leaflet/", "images/marker-icon-2x.png", "image/png"),
    asset!("vendor/leaflet/", "images/marker-shadow.png", "image/png"),
    asset!("vendor/leaflet/", "images/layers.png", "image/png"),
    asset!("vendor/leaflet/", "images/layers-2x.png", "image/png"),
    // Leaflet's licence travels with the binary that embeds it.
    asset!("vendor/leaflet/", "LICENSE", "text/plain; charset=utf-8"),
];

/// Leaflet files stay a day in caches: their URLs carry no version.
const LEAFLET_CACHE: &str = "public, max-age=86400";

const INDEX: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/index.html"));

/// A digest of every asset: the version segment of asset URLs.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut hash = Sha256::new();
    for asset in ASSETS {
        hash.update(asset.name.as_bytes());
        hash.update(asset.body);
    }
    hash.finalize()[..6]
        .iter()
        .fold(String::new(), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
});

/// The page, with its asset URLs pointing at this binary's version.
static PAGE: LazyLock<String> = LazyLock::new(|| {
    INDEX.replace(
        "{{ASSETS}}",
        &format!("/dashboard/assets/{}", VERSION.as_str()),
    )
});

/// `GET /dashboard`, its assets, Leaflet's files, and `GET /api/dashboard/config`.
pub(crate) fn routes<S>() -> Router<S>
where
    Node: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/dashboard", get(page))
        .route("/dashboard/", get(page))
        .route("/dashboard/assets/{version}/{name}", get(asset))
        .route("/dashboard/vendor/leaflet/{*path}", get(leaflet_file))
        .route("/api/dashboard/config", get(page_config))
}

fn with_headers(body: impl IntoResponse, content_type: &str, cache: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(content_type) {
        headers.insert(CONTENT_TYPE, value);
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

async fn page() -> Response {
    // Revalidated on every load so a new binary's asset URLs are picked up at once.
    with_headers(PAGE.as_str(), "text/html; charset=utf-8", "no-cache")
}

async fn asset(Path((version, name)): Path<(String, String)>) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(asset) if version == *VERSION => with_headers(
            asset.body,
            asset.content_type,
            "public, max-age=31536000, immutable",
        ),
        // An asset of another build: serve nothing rather than a mismatched module.
        _ => ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such asset").into_response(),
    }
}

async fn leaflet_file(State(state): State<Node>, Path(path): Path<String>) -> Response {
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no Leaflet file of that name",
        )
        .into_response()
    };
    // Only the files of the list: no path from the request ever reaches the file system.
    let Some(file) = LEAFLET.iter().find(|file| file.name == path) else {
        return not_found();
    };
    let dir = match &state.config().dashboard.leaflet {
        LeafletSource::Embedded => {
            return with_headers(file.body, file.content_type, LEAFLET_CACHE);
        }
        LeafletSource::Local(dir) => dir.join(file.name),
        LeafletSource::Disabled => return not_found(),
    };
    match tokio::task::spawn_blocking(move || std::fs::read(dir)).await {
        Ok(Ok(bytes)) => with_headers(bytes, file.content_type, LEAFLET_CACHE),
        Ok(Err(err)) => {
            tracing::warn!(file = file.name, error = %err, "local Leaflet file unreadable");
            not_found()
        }
        Err(err) => ApiError::internal(&err).into_response(),
    }
}

/// `GET /api/dashboard/config` (viewer): the map settings the page needs.
#[utoipa::path(get, path = "/api/dashboard/config", tag = "dashboard", responses((status = 200, description = "Tile URL, attribution, Leaflet source, embed key (viewer)", body = Object), (status = 401, description = "No valid token or session", body = crate::error::schema::ErrorBody)), security(("token" = []), ("session" = [])))]
pub(crate) async fn page_config(
    State(state): State<Node>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let config = &state.config().dashboard;
    let files = |source: &str, version: Option<&str>| {
        json!({
            "source": source,
            "version": version,
            "js": "/dashboard/vendor/leaflet/leaflet.js",
            "css": "/dashboard/vendor/leaflet/leaflet.css",
        })
    };
    let leaflet = match &config.leaflet {
        LeafletSource::Embedded => files("embedded", Some(LEAFLET_VERSION)),
        // Whatever release the directory holds.
        LeafletSource::Local(_) => files("local", None),
        LeafletSource::Disabled => Value::Null,
    };
    Ok(Json(json!({
        "tile_url": config.tile_url,
        "tile_attribution": config.tile_attribution,
        "leaflet": leaflet,
        "embed_key": config.embed_key,
    })))
}

/// The origin (`scheme://host[:port]`) of a URL or URL template; a `{s}` subdomain placeholder
/// becomes a `*.` wildcard. `None` for anything that is not plain `http(s)`.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "https" && scheme != "http" {
        return None;
    }
    let host = rest.split(['/', '?', '#']).next()?;
    let host = match host.strip_prefix("{s}.") {
        Some(domain) => format!("*.{domain}"),
        None => host.to_owned(),
    };
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '*' | '[' | ']'));
    valid.then(|| format!("{scheme}://{host}"))
}

/// The Content-Security-Policy of every response: `default-src 'self'`, scripts and styles from
/// this server only (Leaflet included), plus exactly the configured tile, imagery and embed hosts
/// where each is needed. No `'unsafe-inline'`, no `'unsafe-eval'`, no CDN.
pub(crate) fn content_security_policy(config: &ServerConfig) -> String {
    let dashboard = &config.dashboard;
    let mut images = vec!["'self'".to_owned(), "data:".to_owned()];
    for url in std::iter::once(&dashboard.tile_url).chain(&dashboard.image_hosts) {
        if let Some(origin) = origin_of(url)
            && !images.contains(&origin)
        {
            images.push(origin);
        }
    }
    let frames = if dashboard.embed_key.is_some() {
        EMBED_ORIGIN
    } else {
        "'none'"
    };
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src {}; \
         connect-src 'self'; frame-src {frames}; object-src 'none'; frame-ancestors 'none'; \
         base-uri 'none'; form-action 'self'",
        images.join(" "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_come_from_urls_and_templates() {
        assert_eq!(
            origin_of("https://tile.openstreetmap.org/{z}/{x}/{y}.png").as_deref(),
            Some("https://tile.openstreetmap.org")
        );
        assert_eq!(
            origin_of("https://{s}.tiles.example:8443/{z}/{x}/{y}.png").as_deref(),
            Some("https://*.tiles.example:8443")
        );
        assert_eq!(origin_of("javascript:alert(1)"), None);
        assert_eq!(origin_of("https://a b/"), None);
        assert_eq!(origin_of("https://x.example; script-src *"), None);
    }

    #[test]
    fn policy_adds_exactly_the_configured_hosts() {
        let config = ServerConfig::default();
        let csp = content_security_policy(&config);
        assert!(csp.starts_with("default-src 'self';"), "{csp}");
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(csp.contains("style-src 'self';"), "{csp}");
        assert!(csp.contains("https://tile.openstreetmap.org"), "{csp}");
        assert!(csp.contains("frame-src 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert!(!csp.contains("unpkg"), "{csp}");

        let mut config = ServerConfig::default();
        config.dashboard.leaflet = LeafletSource::Local(std::path::PathBuf::from("leaflet/dist"));
        config.dashboard.image_hosts.clear();
        config.dashboard.tile_url = "https://tiles.internal/{z}/{x}/{y}.png".into();
        config.dashboard.embed_key = Some("browser-key".into());
        let csp = content_security_policy(&config);
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(
            csp.contains("img-src 'self' data: https://tiles.internal;"),
            "{csp}"
        );
        assert!(csp.contains("frame-src https://www.google.com;"), "{csp}");
    }

    #[test]
    fn the_embedded_leaflet_is_the_published_release() {
        let js = LEAFLET.iter().find(|f| f.name == "leaflet.js");
        let js = std::str::from_utf8(js.map_or(&[][..], |f| f.body)).unwrap_or_default();
        assert!(
            js.contains(&format!("Leaflet {LEAFLET_VERSION},")),
            "the embedded leaflet.js is release {LEAFLET_VERSION}"
        );
        for file in LEAFLET {
            assert!(!file.body.is_empty(), "{} is empty", file.name);
        }
        let licence = LEAFLET.iter().find(|f| f.name == "LICENSE");
        assert!(licence.is_some_and(|f| f.body.starts_with(b"BSD 2-Clause License")));
    }

    #[test]
    fn page_points_at_this_builds_assets() {
        assert!(PAGE.contains(&format!("/dashboard/assets/{}/app.js", *VERSION)));
        assert!(!PAGE.contains("{{"));
        for asset in ASSETS {
            assert!(!asset.body.is_empty(), "{} is empty", asset.name);
        }
    }
}
