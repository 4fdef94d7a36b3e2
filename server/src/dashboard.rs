//! The live dashboard: one page at `/dashboard`, its modules and styles embedded in the binary,
//! the map settings it needs, and the Content-Security-Policy that lets exactly those hosts in.
//!
//! Assets are served under `/dashboard/assets/{version}/…`, where `version` is a digest of every
//! embedded asset: a new binary gets new URLs, so assets can be cached for a year while the page
//! itself is revalidated on every load.
//!
//! The page renders every untrusted string with `textContent` or DOM APIs and has no inline
//! script or style, so the policy needs no `'unsafe-inline'`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::LazyLock;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use event_bus::Role;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::http::Caller;
use crate::state::AppState;

/// Leaflet 1.9.4 on unpkg, the public CDN the page falls back to.
pub const LEAFLET_CDN: &str = "https://unpkg.com/leaflet@1.9.4/dist";
/// Subresource Integrity hash of Leaflet 1.9.4's `leaflet.js`.
pub const LEAFLET_JS_SRI: &str = "sha256-20nQCchB9co0qIjJZRGuk2/Z9VM+kNiyxNV1lvTlZBo=";
/// Subresource Integrity hash of Leaflet 1.9.4's `leaflet.css`.
pub const LEAFLET_CSS_SRI: &str = "sha256-p4NxAoJBhIIN+hmNHrzRCf9tD/miZyoHS5obTRR9BMY=";

/// Where the page loads Leaflet from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeafletSource {
    /// A local copy: the `dist` directory of the `leaflet` npm package (holding `leaflet.js`,
    /// `leaflet.css` and `images/`), served by this server under `/dashboard/vendor/leaflet/`.
    Local(PathBuf),
    /// A public CDN: `base_url` holds `leaflet.js` and `leaflet.css`, checked against the two
    /// Subresource Integrity hashes so a tampered copy never runs.
    Cdn {
        /// The directory URL, without a trailing slash.
        base_url: String,
        /// SRI hash of `leaflet.js` (`sha256-…`).
        js_integrity: String,
        /// SRI hash of `leaflet.css` (`sha256-…`).
        css_integrity: String,
    },
    /// No map library: the map panel says so, the rest of the page works.
    Disabled,
}

/// What the dashboard page needs from the server's configuration.
///
/// | field | default | meaning |
/// |---|---|---|
/// | `tile_url` | `https://tile.openstreetmap.org/{z}/{x}/{y}.png` | the map's tile URL template (OpenStreetMap's standard tiles; heavy use needs your own tile server, see the OSM tile usage policy) |
/// | `tile_attribution` | `© OpenStreetMap contributors` | the credit shown on the map, as text |
/// | `leaflet` | Leaflet 1.9.4 from unpkg with its SRI hashes | where the page loads Leaflet from ([`LeafletSource`]) |
/// | `image_hosts` | Mapillary's (`https://*.fbcdn.net`) and Panoramax's (`https://api.panoramax.xyz`) | origins street-level thumbnails may load from (the Street View Static preview comes through this server, so Google needs no entry) |
/// | `embed_key` | none | a Google Maps **Embed API browser key**: when set, the street-level panel shows an interactive panorama in an iframe from `https://www.google.com` |
///
/// The embed key ends up in pages, so it must be a separate key from the server's Street View
/// key: restrict it to the Maps Embed API and to your dashboard's HTTP referrers in the Google
/// Cloud console. The server's own API keys never reach a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardConfig {
    /// Tile URL template with `{z}`, `{x}`, `{y}` and optionally `{s}` (subdomain).
    pub tile_url: String,
    /// Attribution shown on the map, as plain text.
    pub tile_attribution: String,
    /// Where Leaflet comes from.
    pub leaflet: LeafletSource,
    /// Origins (`https://host`, `https://*.domain`) street-level images may load from.
    pub image_hosts: Vec<String>,
    /// A referrer-restricted Google Maps Embed API browser key, for the interactive panorama.
    pub embed_key: Option<String>,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            tile_url: "https://tile.openstreetmap.org/{z}/{x}/{y}.png".into(),
            tile_attribution: "© OpenStreetMap contributors".into(),
            leaflet: LeafletSource::Cdn {
                base_url: LEAFLET_CDN.into(),
                js_integrity: LEAFLET_JS_SRI.into(),
                css_integrity: LEAFLET_CSS_SRI.into(),
            },
            image_hosts: vec![
                "https://*.fbcdn.net".into(),
                "https://api.panoramax.xyz".into(),
            ],
            embed_key: None,
        }
    }
}

/// The origin the Maps Embed API iframe comes from.
const EMBED_ORIGIN: &str = "https://www.google.com";

/// An embedded file: its name under the asset path, its content type, its bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:literal) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

static ASSETS: &[Asset] = &[
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("dom.js", "text/javascript; charset=utf-8"),
    asset!("api.js", "text/javascript; charset=utf-8"),
    asset!("connection.js", "text/javascript; charset=utf-8"),
    asset!("stream.js", "text/javascript; charset=utf-8"),
    asset!("metrics.js", "text/javascript; charset=utf-8"),
    asset!("operations.js", "text/javascript; charset=utf-8"),
    asset!("map.js", "text/javascript; charset=utf-8"),
    asset!("chat.js", "text/javascript; charset=utf-8"),
    asset!("admin.js", "text/javascript; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
];

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

/// The Leaflet files served from a local directory; nothing else in it is reachable.
const LEAFLET_FILES: &[(&str, &str)] = &[
    ("leaflet.js", JS),
    ("leaflet.css", "text/css; charset=utf-8"),
    ("images/marker-icon.png", "image/png"),
    ("images/marker-icon-2x.png", "image/png"),
    ("images/marker-shadow.png", "image/png"),
    ("images/layers.png", "image/png"),
    ("images/layers-2x.png", "image/png"),
];

/// `GET /dashboard`, its assets, a local Leaflet when configured, and `GET /api/dashboard/config`.
pub(crate) fn routes() -> Router<AppState> {
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

async fn leaflet_file(State(state): State<AppState>, Path(path): Path<String>) -> Response {
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no local Leaflet file of that name",
        )
        .into_response()
    };
    let LeafletSource::Local(dir) = &state.config().dashboard.leaflet else {
        return not_found();
    };
    // Only the files of the whitelist: no path from the request ever reaches the file system.
    let Some(&(name, content_type)) = LEAFLET_FILES.iter().find(|(name, _)| *name == path) else {
        return not_found();
    };
    let file = dir.join(name);
    match tokio::task::spawn_blocking(move || std::fs::read(file)).await {
        Ok(Ok(bytes)) => with_headers(bytes, content_type, "public, max-age=86400"),
        Ok(Err(err)) => {
            tracing::warn!(file = name, error = %err, "local Leaflet file unreadable");
            not_found()
        }
        Err(err) => ApiError::internal(&err).into_response(),
    }
}

/// `GET /api/dashboard/config` (viewer): the map settings the page needs.
#[utoipa::path(get, path = "/api/dashboard/config", tag = "dashboard", responses((status = 200, description = "Tile URL, attribution, Leaflet source, embed key (viewer)", body = Object), (status = 401, description = "No valid token or session", body = crate::openapi::ErrorBody)), security(("token" = []), ("session" = [])))]
pub(crate) async fn page_config(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let config = &state.config().dashboard;
    let leaflet = match &config.leaflet {
        LeafletSource::Local(_) => json!({
            "source": "local",
            "js": "/dashboard/vendor/leaflet/leaflet.js",
            "css": "/dashboard/vendor/leaflet/leaflet.css",
        }),
        LeafletSource::Cdn {
            base_url,
            js_integrity,
            css_integrity,
        } => json!({
            "source": "cdn",
            "js": format!("{base_url}/leaflet.js"),
            "css": format!("{base_url}/leaflet.css"),
            "js_integrity": js_integrity,
            "css_integrity": css_integrity,
        }),
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

/// The Content-Security-Policy of every response: `default-src 'self'`, plus exactly the
/// configured tile, imagery, Leaflet CDN and embed hosts where each is needed. No
/// `'unsafe-inline'`, no `'unsafe-eval'`.
pub(crate) fn content_security_policy(config: &ServerConfig) -> String {
    let dashboard = &config.dashboard;
    let mut scripts = vec!["'self'".to_owned()];
    let mut styles = vec!["'self'".to_owned()];
    let mut images = vec!["'self'".to_owned(), "data:".to_owned()];
    let mut frames = Vec::new();
    if let LeafletSource::Cdn { base_url, .. } = &dashboard.leaflet
        && let Some(origin) = origin_of(base_url)
    {
        scripts.push(origin.clone());
        styles.push(origin.clone());
        images.push(origin);
    }
    for url in std::iter::once(&dashboard.tile_url).chain(&dashboard.image_hosts) {
        if let Some(origin) = origin_of(url)
            && !images.contains(&origin)
        {
            images.push(origin);
        }
    }
    if dashboard.embed_key.is_some() {
        frames.push(EMBED_ORIGIN.to_owned());
    }
    let frames = if frames.is_empty() {
        "'none'".to_owned()
    } else {
        frames.join(" ")
    };
    format!(
        "default-src 'self'; script-src {}; style-src {}; img-src {}; connect-src 'self'; \
         frame-src {frames}; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; \
         form-action 'self'",
        scripts.join(" "),
        styles.join(" "),
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
        assert!(
            csp.contains("script-src 'self' https://unpkg.com;"),
            "{csp}"
        );
        assert!(csp.contains("https://tile.openstreetmap.org"), "{csp}");
        assert!(csp.contains("frame-src 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");

        let mut config = ServerConfig::default();
        config.dashboard.leaflet = LeafletSource::Local(PathBuf::from("leaflet/dist"));
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
        assert!(!csp.contains("unpkg"), "{csp}");
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
