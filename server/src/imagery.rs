//! `/api/streetview`, `/api/streetview/image` and `/api/imagery`: street-level imagery for a
//! point, with every provider key kept on the server.
//!
//! The Static API needs the key in the image URL, so the page never gets that URL: it gets
//! `/api/streetview/image?…`, and the server fetches the (signed) image and passes it on.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use event_bus::Role;
use serde::Deserialize;
use serde_json::{Value, json};
use streetview::mapillary::MapillaryClient;
use streetview::maps_url::Pano;
use streetview::metadata::MetadataClient;
use streetview::nearby;
use streetview::panoramax::PanoramaxClient;
use streetview::static_api::StaticRequest;
use streetview::{ApiKey, ClientConfig, LatLng, SigningSecret};

use crate::config::ImageryConfig;
use crate::error::{ApiError, Error, Result};
use crate::node::budget::{Meter, OverBudget};
use crate::transport::http::Caller;

/// The provider clients, built once.
#[derive(Debug)]
pub struct Imagery {
    google_key: Option<ApiKey>,
    google_secret: Option<SigningSecret>,
    google_base: String,
    metadata: Option<MetadataClient>,
    mapillary: Option<MapillaryClient>,
    panoramax: PanoramaxClient,
    http: reqwest::Client,
    static_budget: Meter,
    mapillary_budget: Meter,
    panoramax_budget: Meter,
}

impl Imagery {
    /// Builds the clients; fails on a malformed base URL.
    pub fn new(config: &ImageryConfig) -> Result<Imagery> {
        let bad = |e: streetview::Error| Error::Config(e.to_string());
        let with_base = |base: &Option<String>| match base {
            Some(base) => ClientConfig::default().with_base_url(base.clone()),
            None => ClientConfig::default(),
        };
        let metadata = match &config.google_api_key {
            Some(key) => Some(
                MetadataClient::new(
                    key.clone(),
                    config.google_signing_secret.clone(),
                    with_base(&config.google_base_url),
                )
                .map_err(bad)?,
            ),
            None => None,
        };
        let mapillary = match &config.mapillary_token {
            Some(token) => Some(
                MapillaryClient::new(token.clone(), with_base(&config.mapillary_base_url))
                    .map_err(bad)?,
            ),
            None => None,
        };
        let panoramax = PanoramaxClient::new(with_base(&config.panoramax_base_url)).map_err(bad)?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(20))
            .user_agent(concat!("vigil-server/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        Ok(Imagery {
            google_key: config.google_api_key.clone(),
            google_secret: config.google_signing_secret.clone(),
            google_base: config
                .google_base_url
                .clone()
                .unwrap_or_else(|| streetview::static_api::GOOGLE_MAPS_API_BASE.to_owned()),
            metadata,
            mapillary,
            panoramax,
            http,
            static_budget: Meter::new("streetview_static", config.streetview_static_budget),
            mapillary_budget: Meter::new("mapillary", config.mapillary_budget),
            panoramax_budget: Meter::new("panoramax", config.panoramax_budget),
        })
    }

    /// Forgets tokens whose budgets are full again (see the `budget` module).
    pub(crate) fn prune_budgets(&self) {
        self.static_budget.prune();
        self.mapillary_budget.prune();
        self.panoramax_budget.prune();
    }
}

fn invalid(err: streetview::Error) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
        err.to_string(),
    )
}

fn provider_error(err: &dyn std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::BAD_GATEWAY, "provider_error", err.to_string())
}

/// Query of `/api/streetview` and `/api/streetview/image`.
#[derive(Debug, Deserialize)]
pub struct ViewQuery {
    lat: f64,
    lng: f64,
    #[serde(default)]
    heading: Option<f64>,
    #[serde(default)]
    pitch: Option<f64>,
    #[serde(default)]
    fov: Option<f64>,
    /// `WIDTHxHEIGHT`, at most 640x640 (image only; default 640x320).
    #[serde(default)]
    size: Option<String>,
}

impl ViewQuery {
    fn point(&self) -> Result<LatLng, ApiError> {
        LatLng::new(self.lat, self.lng).map_err(invalid)
    }

    fn static_request(&self) -> Result<StaticRequest, ApiError> {
        let (w, h) = match self.size.as_deref() {
            None => (640, 320),
            Some(text) => text
                .split_once('x')
                .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_parameter",
                        "size must be WIDTHxHEIGHT",
                    )
                })?,
        };
        let mut builder = StaticRequest::builder().location(self.point()?).size(w, h);
        if let Some(heading) = self.heading {
            builder = builder.heading(heading);
        }
        if let Some(pitch) = self.pitch {
            builder = builder.pitch(pitch);
        }
        if let Some(fov) = self.fov {
            builder = builder.fov(fov);
        }
        builder.return_error_code(true).build().map_err(invalid)
    }
}

#[utoipa::path(get, path = "/api/streetview", tag = "imagery", params(("lat" = f64, Query, description = "Latitude"), ("lng" = f64, Query, description = "Longitude"), ("heading" = Option<f64>, Query, description = "Degrees"), ("pitch" = Option<f64>, Query, description = "-90..=90"), ("fov" = Option<f64>, Query, description = "10..=100 for Maps links")), responses((status = 200, description = "Maps link; with a key, metadata and a Static preview URL (viewer)", body = Object), (status = 401, description = "No valid token or session", body = crate::error::schema::ErrorBody), (status = 403, description = "The role may not do this", body = crate::error::schema::ErrorBody)), security(("token" = []), ("session" = [])))]
/// `GET /api/streetview` (viewer): the Maps link, and with a key the proxied Static preview and
/// the free metadata.
pub async fn streetview(
    State(imagery): State<Arc<Imagery>>,
    caller: Caller,
    Query(q): Query<ViewQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let point = q.point()?;
    let mut pano = Pano::at(point);
    if let Some(heading) = q.heading {
        pano = pano.heading(heading);
    }
    if let Some(pitch) = q.pitch {
        pano = pano.pitch(pitch);
    }
    if let Some(fov) = q.fov {
        pano = pano.fov(fov);
    }
    let maps_url = pano.build().map_err(invalid)?;
    let (static_url, metadata) = match &imagery.metadata {
        None => (Value::Null, Value::Null),
        Some(client) => {
            let request = q.static_request()?;
            let mut image = format!("/api/streetview/image?lat={}&lng={}", q.lat, q.lng);
            for (name, value) in [("heading", q.heading), ("pitch", q.pitch), ("fov", q.fov)] {
                if let Some(value) = value {
                    image.push_str(&format!("&{name}={value}"));
                }
            }
            let metadata = match client.lookup(&request).await {
                Ok(m) => serde_json::to_value(m).unwrap_or(Value::Null),
                Err(err) => json!({"status": "ERROR", "error_message": err.to_string()}),
            };
            (Value::String(image), metadata)
        }
    };
    Ok(Json(json!({
        "maps_url": maps_url,
        "static_url": static_url,
        "signed": imagery.google_secret.is_some(),
        "metadata": metadata,
    })))
}

#[utoipa::path(get, path = "/api/streetview/image", tag = "imagery", params(("lat" = f64, Query, description = "Latitude"), ("lng" = f64, Query, description = "Longitude"), ("size" = Option<String>, Query, description = "WIDTHxHEIGHT, at most 640x640")), responses((status = 200, description = "The Static API image, fetched by the server (viewer)", body = Object), (status = 429, description = "This token's streetview_static budget is spent (Retry-After)", body = crate::error::schema::ErrorBody), (status = 401, description = "No valid token or session", body = crate::error::schema::ErrorBody), (status = 403, description = "The role may not do this", body = crate::error::schema::ErrorBody)), security(("token" = []), ("session" = [])))]
/// `GET /api/streetview/image` (viewer): the Static API image, fetched by the server. Each image
/// fetched spends one unit of the token's `streetview_static_budget`.
pub async fn streetview_image(
    State(imagery): State<Arc<Imagery>>,
    caller: Caller,
    Query(q): Query<ViewQuery>,
) -> axum::response::Result<Response> {
    caller.require(Role::Viewer)?;
    let Some(key) = &imagery.google_key else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_configured",
            "no Google API key is configured on this server",
        )
        .into());
    };
    let request = q.static_request()?;
    let url = request
        .image_url_with_base(&imagery.google_base, key, imagery.google_secret.as_ref())
        .map_err(invalid)?;
    imagery.static_budget.take(&caller.0.token_id)?;
    // reqwest errors can carry the URL, and the URL carries the key: report without it.
    let upstream = imagery
        .http
        .get(&url)
        .send()
        .await
        .map_err(|e| provider_error(&e.without_url()))?;
    let status = upstream.status();
    if !status.is_success() {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "provider_error",
            format!(
                "Street View Static API answered {status} (no imagery here, or the key is refused)"
            ),
        )
        .into());
    }
    let content_type = upstream
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .filter(|t| t.starts_with("image/"))
        .unwrap_or("image/jpeg")
        .to_owned();
    let bytes = upstream
        .bytes()
        .await
        .map_err(|e| provider_error(&e.without_url()))?;
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "private, max-age=3600".to_owned()),
        ],
        bytes,
    )
        .into_response())
}

/// Query of `/api/imagery`.
#[derive(Debug, Deserialize)]
pub struct ImageryQuery {
    lat: f64,
    lng: f64,
    /// Metres, 1..=5000 (default 50).
    #[serde(default)]
    radius: Option<f64>,
    /// `all` (default), `mapillary` or `panoramax`.
    #[serde(default)]
    provider: Option<String>,
    /// Per provider, 1..=2000 (default 20).
    #[serde(default)]
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/imagery", tag = "imagery", params(("lat" = f64, Query, description = "Latitude"), ("lng" = f64, Query, description = "Longitude"), ("radius" = Option<f64>, Query, description = "Metres, 1..=5000"), ("provider" = Option<String>, Query, description = "all|mapillary|panoramax"), ("limit" = Option<u32>, Query, description = "Per provider")), responses((status = 200, description = "Mapillary and Panoramax images near a point (viewer)", body = Object), (status = 429, description = "This token's budget for every provider asked is spent (Retry-After)", body = crate::error::schema::ErrorBody), (status = 401, description = "No valid token or session", body = crate::error::schema::ErrorBody), (status = 403, description = "The role may not do this", body = crate::error::schema::ErrorBody)), security(("token" = []), ("session" = [])))]
/// `GET /api/imagery` (viewer): Mapillary and Panoramax images near a point, nearest first.
/// Each provider asked spends one unit of the token's budget for it.
pub async fn imagery(
    State(imagery): State<Arc<Imagery>>,
    caller: Caller,
    Query(q): Query<ImageryQuery>,
) -> axum::response::Result<Json<Value>> {
    caller.require(Role::Viewer)?;
    let center = LatLng::new(q.lat, q.lng).map_err(invalid)?;
    let (use_mapillary, use_panoramax) = match q.provider.as_deref().unwrap_or("all") {
        "all" => (true, true),
        "mapillary" => (true, false),
        "panoramax" => (false, true),
        other => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_parameter",
                format!("provider must be all, mapillary or panoramax, got {other:?}"),
            )
            .into());
        }
    };
    let (radius, limit) = (q.radius.unwrap_or(50.0), q.limit.unwrap_or(20));
    // Asking no provider only validates the radius and the limit: a bad request spends nothing.
    nearby::search(None, None, center, radius, limit)
        .await
        .map_err(invalid)?;
    let mut errors = Vec::new();
    let mapillary = if use_mapillary {
        imagery.mapillary.as_ref()
    } else {
        None
    };
    if use_mapillary && mapillary.is_none() {
        errors.push(json!({"provider": "mapillary", "message": "no Mapillary token is configured on this server"}));
    }
    let panoramax = use_panoramax.then_some(&imagery.panoramax);
    // One unit of the token's budget per provider asked.
    let token = &caller.0.token_id;
    let mut over: Vec<OverBudget> = Vec::new();
    let mut within = |meter: &Meter| match meter.take(token) {
        Ok(()) => true,
        Err(spent) => {
            over.push(spent);
            false
        }
    };
    let mapillary = mapillary.filter(|_| within(&imagery.mapillary_budget));
    let panoramax = panoramax.filter(|_| within(&imagery.panoramax_budget));
    if mapillary.is_none() && panoramax.is_none() {
        // Everything that could answer is over budget: say when the first is back.
        if let Some(soonest) = over.iter().min_by_key(|o| o.retry_after) {
            return Err((*soonest).into());
        }
    }
    errors.extend(over.iter().map(|o| {
        json!({"provider": o.upstream, "code": "budget_exceeded", "message": o.message(),
               "retry_after": o.retry_after_secs()})
    }));
    let found = nearby::search(mapillary, panoramax, center, radius, limit)
        .await
        .map_err(invalid)?;
    errors.extend(
        found
            .failures
            .iter()
            .map(|(provider, err)| json!({"provider": provider, "message": err.to_string()})),
    );
    Ok(Json(json!({ "images": found.images, "errors": errors })))
}
