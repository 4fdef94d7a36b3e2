//! Geolocation: the Ichnaea/Google-compatible `POST /v1/geolocate` and `POST /v2/geosubmit`, and
//! the seed's `POST /api/locate/wifi` and `POST /api/locate/hybrid`, all on one
//! [`geo_locate::Locator`] built at start.
//!
//! # Sources
//!
//! The offline database in `<data_dir>/geodb` (fill it with `vigil geodb import FILE`; a missing
//! directory is an empty database, the server starts anyway) together with its overlay of what
//! `/v2/geosubmit` taught, then WiGLE and OpenCellID when their keys are configured ([`GeoConfig`]),
//! through the read-through cache `<data_dir>/geo-cache.sqlite` shared with `vigil locate`.
//! Provider keys stay on the server: never logged, never in a response.
//!
//! # `/v1/geolocate` and `/v2/geosubmit` (Ichnaea)
//!
//! - The body is JSON, optionally gzip-compressed (`Content-Encoding: gzip`); it is capped at
//!   `max_body_bytes` before and after decompression.
//! - An empty body locates nothing: 404 `notFound` (Firefox sends one).
//! - Entries are validated one by one: an invalid MAC or a cell without a LAC is dropped, the rest
//!   still answers.
//! - Every error is Google's envelope `{"error": {"errors": [{domain, reason, message}], code,
//!   message}}`: 404 `notFound`, 400 `parseError` (with `details.decode` for broken JSON or gzip,
//!   `details.validation` for JSON of the wrong shape), 400 `keyInvalid` (no or a wrong
//!   credential), 403 `forbidden` (geosubmit below operator), 403 `dailyLimitExceeded` (a
//!   provider's quota is spent and nothing else answered), 413 `requestTooLarge`, 503
//!   `serviceUnavailable` (a provider or the database failed).
//! - **Credentials**: `Authorization: Bearer TOKEN`, the session cookie, or — on these two
//!   endpoints only — the token in `?key=TOKEN`. Ichnaea clients (microG's, NeoStumbler) have a
//!   URL setting and no header setting, so the API key in the URL is the only thing they can send.
//!   Everywhere else a credential in a URL is refused; here the server never logs query strings
//!   (metrics are labelled by the matched route) and the token is only a vigil token.
//! - Any role may locate (viewer, operator, admin, agent); submitting needs operator, admin or
//!   agent.
//!
//! # `/api/locate/wifi` and `/api/locate/hybrid` (the seed's shapes)
//!
//! `{"bssids": ["AA:BB:CC:DD:EE:FF", ...]}` and `{"bssids": [...], "cell_towers": [{"mcc",
//! "mnc", "lac", "cid", "signal" | "signal_strength", "radio"?}]}` answer `{"success": true,
//! "latitude", "longitude", "accuracy_m", "confidence", "sources"}` or `{"success": false,
//! "error": "Could not locate"}` (200, as the seed). `accuracy_m` is the radius of the 95 %
//! circle, so `confidence` is always 0.95. The seed's cells carry no radio type: without
//! `radio`, a cell is looked up as each radio its id fits (GSM, WCDMA, LTE, NR).
//!
//! # Budgets and bounds
//!
//! Each token has a budget of online lookups per provider (`wigle_budget`, `opencellid_budget`)
//! and of `/v2/geosubmit` requests (`geosubmit_budget`); see [`GeoConfig`]. A unit is spent just
//! before a request is sent to WiGLE or OpenCellID: answers from the offline database and the
//! cache cost nothing. When a spent budget kept a provider from being asked and nothing else
//! answered, the answer is 429 with `Retry-After` (Google's envelope with reason
//! `userRateLimitExceeded` on `/v1/geolocate` and `/v2/geosubmit`; `budget_exceeded` on the
//! seed routes). What `/v2/geosubmit` teaches is kept for at most `max_overlay_rows`
//! transmitters: past that, known ones still refine and new ones are refused (reason
//! `overlayFull`, 507, when nothing of the body could be stored; otherwise `{"refused": n}` in
//! the 200 answer).
//!
//! # The IP fallback (`considerIp`)
//!
//! With a GeoIP city database imported (`vigil geodb import GeoLite2-City.mmdb`), a
//! `/v1/geolocate` request that no WiFi, Bluetooth or cell data answers is answered from the
//! caller's address, as Ichnaea does: `fallback: "ipf"` and the database's accuracy radius.
//! `considerIp: false` (or `fallbacks.ipf: false`) turns it off; an empty body asks for it.
//! The caller's address is the socket peer (the `ConnectInfo<SocketAddr>` request extension
//! that [`serve`](crate::serve) adds), or the `X-Forwarded-For` entry the nearest trusted proxy
//! added — only when the peer is one of [`GeoConfig::trusted_proxies`]. Private, loopback and
//! other non-public addresses get no IP answer (404).
//!
//! # Several nodes
//!
//! In a cluster (the store is PostgreSQL) every node shares what `/v2/geosubmit` taught: the
//! node that accepts a body appends it to a log in PostgreSQL, and each node keeps its overlay as
//! a cache of that log, applying each row once, in order (the `observations` module). A body
//! accepted by one node refines the others' answers within moments (`NOTIFY`; at worst a 10 s
//! poll), a node started with an empty overlay replays the whole log, and the answer (`refused`,
//! 507 `overlayFull`) speaks of the receiving node's overlay. While PostgreSQL cannot be reached a
//! geosubmit is refused with 503 `serviceUnavailable` and nothing of it is stored; answers go on
//! from each node's overlay. One node alone stores into its overlay directly.
//!
//! # Events
//!
//! Every answered request publishes `location_resolved` to the `monitoring` room with the
//! position, accuracy, fallback, kind of evidence and counts — never the MACs or cell ids.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, RawQuery, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_ENCODING};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use event_bus::{Access, EventDraft, Role};
use geo_locate::api::{
    CellTower, ErrorBody as GoogleErrorBody, ErrorItem, GeosubmitRequest, RadioType,
    WifiAccessPoint,
};
use geo_locate::cache::{Cache, CacheConfig};
use geo_locate::locator::{OpenCellIdSource, WigleSource};
use geo_locate::opencellid::{OpenCellIdClient, OpenCellIdConfig};
use geo_locate::wigle::{WigleClient, WigleConfig};
use geo_locate::{
    ErrorEnvelope, Estimate, EstimateKind, GeoDb, GeolocateRequest, Known, Locator, Query, Radio,
    Source,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::{Budget, GeoConfig};
use crate::error::{ApiError, Error, Result};
use crate::node::Node;
use crate::node::auth::Principal;
use crate::node::budget::{Meter, OverBudget};
use crate::observations::SharedOverlay;
use crate::store::PgStore;
use crate::transport::http::{ApiJson, Caller, check_origin, session_principal};

/// The database and the locator, built once.
pub struct Geo {
    db: Arc<GeoDb>,
    locator: Locator,
    online: Vec<&'static str>,
    /// The online sources' meters, to prune.
    meters: Vec<Arc<Meter>>,
    geosubmit_budget: Meter,
    /// In a cluster: the overlay kept as a cache of the shared geosubmit log.
    shared: Option<Arc<SharedOverlay>>,
}

tokio::task_local! {
    /// Whose budgets the online sources spend while one request is located.
    static SPENDER: Arc<Spender>;
}

/// The caller of the request being located, and the budget that stopped a lookup, if any.
#[derive(Debug)]
struct Spender {
    token_id: String,
    over: parking_lot::Mutex<Option<OverBudget>>,
}

impl Spender {
    /// Keeps the budget that comes back soonest.
    fn refused(&self, over: OverBudget) {
        let mut slot = self.over.lock();
        if slot.is_none_or(|o| over.retry_after < o.retry_after) {
            *slot = Some(over);
        }
    }
}

/// An online source that spends the caller's budget before each provider request.
///
/// [`Source::lookup`] asks `enough` right before each paid request (its documented contract),
/// so the gate sits there: a unit is taken only when a request is about to be sent, never for
/// a cache hit; an empty bucket answers "enough" and the source stops asking. Lookups outside a
/// request (no [`SPENDER`]) are not metered. (A unit taken while the provider is in its quota
/// back-off is spent without a request: the source returns its quota error right after.)
#[derive(Debug)]
struct Metered {
    inner: Arc<dyn Source>,
    meter: Arc<Meter>,
}

#[async_trait::async_trait]
impl Source for Metered {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn lookup(
        &self,
        query: &Query,
        known: &mut Known,
        budget: &mut usize,
        enough: &(dyn for<'k> Fn(&'k Known) -> bool + Send + Sync),
    ) -> geo_locate::Result<()> {
        let Ok(spender) = SPENDER.try_with(Arc::clone) else {
            return self.inner.lookup(query, known, budget, enough).await;
        };
        let spent = AtomicBool::new(false);
        let gate = |k: &Known| {
            if enough(k) || spent.load(Ordering::Relaxed) {
                return true;
            }
            match self.meter.take(&spender.token_id) {
                Ok(()) => false,
                Err(over) => {
                    spent.store(true, Ordering::Relaxed);
                    spender.refused(over);
                    true
                }
            }
        };
        self.inner.lookup(query, known, budget, &gate).await
    }
}

impl std::fmt::Debug for Geo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The locator holds the provider clients and their keys: never print it.
        f.debug_struct("Geo")
            .field("db", &self.db.dir())
            .field("online", &self.online)
            .finish_non_exhaustive()
    }
}

fn set(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl Geo {
    /// Opens `<data_dir>/geodb` (missing is fine: empty) and builds the locator with the
    /// configured providers. Fails on a corrupt database, half a WiGLE credential or an
    /// unusable cache file. With `shared` (a cluster), geosubmits go through its log (the
    /// `observations` module).
    pub fn new(data_dir: &Path, config: &GeoConfig, shared: Option<&PgStore>) -> Result<Geo> {
        let dir = data_dir.join("geodb");
        let db = Arc::new(GeoDb::open(&dir).map_err(|e| {
            Error::Config(format!(
                "opening the offline database {}: {e}",
                dir.display()
            ))
        })?);
        let wigle = match (set(&config.wigle_api_name), set(&config.wigle_api_token)) {
            (Some(name), Some(token)) => {
                let mut c = WigleConfig::new(name, token);
                if let Some(base) = &config.wigle_base_url {
                    c = c.with_base_url(base.clone());
                }
                Some(WigleClient::new(c).map_err(|e| Error::Config(format!("WiGLE: {e}")))?)
            }
            (None, None) => None,
            _ => {
                return Err(Error::Config(
                    "WiGLE needs both the API name and the API token".into(),
                ));
            }
        };
        let ocid = match set(&config.opencellid_api_key) {
            Some(key) => {
                let mut c = OpenCellIdConfig::new(key);
                if let Some(base) = &config.opencellid_base_url {
                    c = c.with_base_url(base.clone());
                }
                Some(
                    OpenCellIdClient::new(c)
                        .map_err(|e| Error::Config(format!("OpenCellID: {e}")))?,
                )
            }
            None => None,
        };
        let mut builder = Locator::builder()
            .database(Arc::clone(&db))
            .max_online_lookups(config.max_online_lookups);
        let mut online = Vec::new();
        let mut meters = Vec::new();
        if wigle.is_some() || ocid.is_some() {
            let path = data_dir.join("geo-cache.sqlite");
            let cache = Arc::new(Cache::open(&path, CacheConfig::default()).map_err(|e| {
                Error::Config(format!(
                    "opening the geolocation cache {}: {e}",
                    path.display()
                ))
            })?);
            let mut metered = |name: &'static str, inner: Arc<dyn Source>, budget: Budget| {
                let meter = Arc::new(Meter::new(name, budget));
                meters.push(Arc::clone(&meter));
                online.push(name);
                Arc::new(Metered { inner, meter })
            };
            if let Some(c) = ocid {
                let source = OpenCellIdSource::new(c, Some(Arc::clone(&cache)));
                builder = builder.source(metered(
                    "opencellid",
                    Arc::new(source),
                    config.opencellid_budget,
                ));
            }
            if let Some(c) = wigle {
                let source = WigleSource::new(c, Some(cache));
                builder = builder.source(metered("wigle", Arc::new(source), config.wigle_budget));
            }
        }
        let locator = builder
            .build()
            .map_err(|e| Error::Config(format!("geolocation: {e}")))?;
        db.overlay().set_max_rows(config.max_overlay_rows);
        let shared = shared.map(|pg| Arc::new(SharedOverlay::new(pg.clone(), Arc::clone(&db))));
        Ok(Geo {
            db,
            shared,
            locator,
            online,
            meters,
            geosubmit_budget: Meter::new("geosubmit", config.geosubmit_budget),
        })
    }

    /// Forgets tokens whose budgets are full again (see the `budget` module).
    pub(crate) fn prune_budgets(&self) {
        for meter in &self.meters {
            meter.prune();
        }
        self.geosubmit_budget.prune();
    }

    /// In a cluster, the overlay's tailer of the shared geosubmit log, for [`serve`](crate::serve)
    /// to run.
    pub(crate) fn shared_overlay(&self) -> Option<&Arc<SharedOverlay>> {
        self.shared.as_ref()
    }

    /// The online providers in use (`opencellid`, `wigle`).
    pub fn online_sources(&self) -> &[&'static str] {
        &self.online
    }
}

/// A Google-shaped error answer.
struct Envelope(ErrorEnvelope);

impl IntoResponse for Envelope {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.error.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self.0)).into_response()
    }
}

impl Envelope {
    fn custom(code: u16, domain: &str, reason: &str, message: &str) -> Envelope {
        Envelope(ErrorEnvelope {
            error: GoogleErrorBody {
                errors: vec![ErrorItem {
                    domain: domain.to_owned(),
                    reason: reason.to_owned(),
                    message: message.to_owned(),
                }],
                code,
                message: message.to_owned(),
                details: None,
            },
        })
    }

    fn decode(message: impl Into<String>) -> Envelope {
        Envelope(ErrorEnvelope::parse_error(Some(
            json!({"decode": message.into()}),
        )))
    }

    fn validation(message: impl Into<String>) -> Envelope {
        Envelope(ErrorEnvelope::parse_error(Some(
            json!({"validation": message.into()}),
        )))
    }

    fn too_large(limit: usize) -> Envelope {
        Envelope::custom(
            413,
            "global",
            "requestTooLarge",
            &format!("the body is larger than {limit} bytes (after decompression)"),
        )
    }

    fn locate_failed(err: &geo_locate::Error) -> Envelope {
        tracing::warn!(error = %err, "geolocation failed");
        match err {
            geo_locate::Error::QuotaExhausted { .. } => {
                Envelope(ErrorEnvelope::daily_limit_exceeded())
            }
            _ => Envelope(ErrorEnvelope::service_unavailable()),
        }
    }
}

/// The value of `key` in a query string, percent-decoded.
fn query_key(query: Option<&str>) -> Option<String> {
    let raw = query?
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(name, _)| *name == "key")?
        .1;
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Authenticates an Ichnaea client: bearer token, `?key=`, or a session cookie from an allowed
/// origin. Anything missing or wrong is 400 `keyInvalid`, as Google and Ichnaea answer.
async fn ichnaea_caller(
    state: &Node,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Principal, Envelope> {
    let invalid = || Envelope(ErrorEnvelope::key_invalid());
    // Unknown is keyInvalid; a token that cannot be checked now (the shared database is away)
    // is serviceUnavailable, which clients retry.
    let checked = |found: Result<Option<Principal>>| match found {
        Ok(principal) => principal.ok_or_else(invalid),
        Err(err) => {
            tracing::warn!(error = %err, "checking a key failed");
            Err(Envelope(ErrorEnvelope::service_unavailable()))
        }
    };
    if let Some(value) = headers.get(AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(invalid)?;
        return checked(state.auth().check_token(token.trim()).await);
    }
    if let Some(key) = query_key(query) {
        return checked(state.auth().check_token(key.trim()).await);
    }
    if check_origin(state, headers).is_err() {
        return Err(Envelope::custom(
            403,
            "global",
            "forbidden",
            "this origin may not use a session here",
        ));
    }
    session_principal(state, headers).await.ok_or_else(invalid)
}

/// Reads the body (capped), inflating it when it is gzip-compressed. `Ok(None)` for an empty or
/// blank body.
async fn read_body(state: &Node, request: Request) -> Result<Option<Bytes>, Envelope> {
    use std::io::Read as _;
    let limit = state.config().max_body_bytes;
    let encoding = request
        .headers()
        .get(CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    let raw = axum::body::to_bytes(request.into_body(), limit)
        .await
        .map_err(|_| Envelope::too_large(limit))?;
    let body = match encoding.as_deref() {
        None | Some("" | "identity") => raw,
        Some("gzip" | "x-gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&raw[..])
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| Envelope::decode(format!("the gzip body cannot be inflated: {e}")))?;
            if out.len() > limit {
                return Err(Envelope::too_large(limit));
            }
            Bytes::from(out)
        }
        Some(other) => {
            return Err(Envelope::decode(format!(
                "unsupported Content-Encoding {other:?}: send identity or gzip"
            )));
        }
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(None)
    } else {
        Ok(Some(body))
    }
}

/// Parses JSON into `T`: broken JSON is `details.decode`, JSON of the wrong shape
/// `details.validation`.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Envelope> {
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => Envelope::validation(e.to_string()),
        _ => Envelope::decode(e.to_string()),
    })
}

fn source_of(principal: &Principal) -> String {
    if principal.label.is_empty() {
        format!("token:{}", principal.token_id)
    } else {
        principal.label.clone()
    }
}

fn kind_name(kind: EstimateKind) -> &'static str {
    match kind {
        EstimateKind::Wifi => "wifi",
        EstimateKind::Ble => "bluetooth",
        EstimateKind::Cell | EstimateKind::Area => "cell",
        EstimateKind::Ip => "ip",
    }
}

/// Publishes `location_resolved` (room `monitoring`): position, accuracy, fallback and counts,
/// never a MAC or a cell id. A bus without that room just skips it.
fn publish_resolved(
    state: &Node,
    principal: &Principal,
    endpoint: &str,
    query: &Query,
    estimate: &Estimate,
) {
    let r = estimate.to_response();
    let dropped = query.dropped.wifi + query.dropped.cells + query.dropped.ble;
    let data = json!({
        "endpoint": endpoint,
        "latitude": r.location.lat,
        "longitude": r.location.lng,
        "accuracy_m": r.accuracy,
        "fallback": r.fallback,
        "source": kind_name(estimate.kind),
        "used": estimate.used,
        "counts": {
            "wifi": query.wifi.len(),
            "cells": query.cells.len(),
            "bluetooth": query.ble.len(),
            "dropped": dropped,
        },
    });
    let published = EventDraft::new("location_resolved", "monitoring", &data).and_then(|draft| {
        state.bus().publish_draft(EventDraft {
            source: Some(source_of(principal)),
            ..draft
        })
    });
    if let Err(err) = published {
        tracing::debug!(error = %err, "location_resolved not published");
    }
}

/// What the locator found, and the budget that kept a provider from being asked.
struct Located {
    estimate: Option<Estimate>,
    over: Option<OverBudget>,
}

/// Runs the locator with the caller's budgets, publishing the event for an answer.
async fn resolve(
    state: &Node,
    geo: &Geo,
    principal: &Principal,
    endpoint: &str,
    query: &Query,
    caller: Option<IpAddr>,
) -> Result<Located, geo_locate::Error> {
    let spender = Arc::new(Spender {
        token_id: principal.token_id.clone(),
        over: parking_lot::Mutex::new(None),
    });
    let estimate = SPENDER
        .scope(
            Arc::clone(&spender),
            geo.locator.locate_with_ip(query, caller),
        )
        .await?;
    if let Some(e) = &estimate {
        publish_resolved(state, principal, endpoint, query, e);
    }
    let over = *spender.over.lock();
    Ok(Located { estimate, over })
}

/// Google's envelope for a spent budget: 429 `userRateLimitExceeded` with `Retry-After`.
fn over_budget_envelope(over: OverBudget) -> Response {
    over.with_retry_after(
        Envelope::custom(429, "usageLimits", "userRateLimitExceeded", &over.message())
            .into_response(),
    )
}

#[utoipa::path(post, path = "/v1/geolocate", tag = "geolocation",
    params(("key" = Option<String>, Query, description = "A vigil token, for Ichnaea clients that cannot send a header")),
    request_body(content = Object, description = "Ichnaea/Google geolocate request; JSON, optionally gzip (Content-Encoding: gzip); an empty body asks for the IP fallback"),
    responses(
        (status = 200, description = "{location: {lat, lng}, accuracy, fallback?}; fallback \"ipf\" when the caller's address answered (considerIp)", body = Object),
        (status = 400, description = "Google envelope: parseError (details.decode or details.validation) or keyInvalid", body = Object),
        (status = 403, description = "Google envelope: dailyLimitExceeded", body = Object),
        (status = 429, description = "Google envelope: userRateLimitExceeded (this token's provider budget is spent; Retry-After)", body = Object),
        (status = 404, description = "Google envelope: notFound", body = Object),
        (status = 503, description = "Google envelope: serviceUnavailable", body = Object)),
    security(("token" = []), ("session" = []), ("key" = [])))]
/// `POST /v1/geolocate` (any role): Ichnaea/Google-compatible geolocation.
pub async fn geolocate(
    State(state): State<Node>,
    State(geo): State<Arc<Geo>>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Response {
    match geolocate_inner(&state, &geo, query.as_deref(), request).await {
        Ok(response) => response,
        Err(envelope) => envelope.into_response(),
    }
}

async fn geolocate_inner(
    state: &Node,
    geo: &Geo,
    query: Option<&str>,
    request: Request,
) -> Result<Response, Envelope> {
    let principal = ichnaea_caller(state, request.headers(), query).await?;
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let caller = state.proxies().caller_ip(peer, request.headers());
    // An empty body (Firefox sends one) asks for what the address alone says.
    let parsed: GeolocateRequest = match read_body(state, request).await? {
        Some(body) => parse(&body)?,
        None => GeolocateRequest::default(),
    };
    let query = Query::from_request(&parsed);
    match resolve(state, geo, &principal, "/v1/geolocate", &query, caller).await {
        Ok(Located {
            estimate: Some(estimate),
            ..
        }) => Ok(Json(estimate.to_response()).into_response()),
        Ok(Located {
            estimate: None,
            over: Some(over),
        }) => Ok(over_budget_envelope(over)),
        Ok(Located { estimate: None, .. }) => Err(Envelope(ErrorEnvelope::not_found())),
        Err(err) => Err(Envelope::locate_failed(&err)),
    }
}

#[utoipa::path(post, path = "/v2/geosubmit", tag = "geolocation",
    params(("key" = Option<String>, Query, description = "A vigil token, for Ichnaea clients that cannot send a header")),
    request_body(content = Object, description = "Ichnaea geosubmit v2: {items: [{timestamp, position, wifiAccessPoints, cellTowers, bluetoothBeacons}]}; JSON, optionally gzip"),
    responses(
        (status = 200, description = "{} (accepted observations are stored and refine later answers)", body = Object),
        (status = 400, description = "Google envelope: parseError or keyInvalid", body = Object),
        (status = 403, description = "Google envelope: forbidden (needs operator, admin or agent)", body = Object),
        (status = 429, description = "Google envelope: userRateLimitExceeded (this token's geosubmit budget is spent; Retry-After)", body = Object),
        (status = 507, description = "Google envelope: overlayFull (the overlay holds max_overlay_rows transmitters; nothing new could be stored)", body = Object),
        (status = 503, description = "Google envelope: serviceUnavailable", body = Object)),
    security(("token" = []), ("session" = []), ("key" = [])))]
/// `POST /v2/geosubmit` (operator, admin or agent): store observations.
pub async fn geosubmit(
    State(state): State<Node>,
    State(geo): State<Arc<Geo>>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Response {
    match geosubmit_inner(&state, &geo, query.as_deref(), request).await {
        Ok(response) => response,
        Err(envelope) => envelope.into_response(),
    }
}

async fn geosubmit_inner(
    state: &Node,
    geo: &Geo,
    query: Option<&str>,
    request: Request,
) -> Result<Response, Envelope> {
    let principal = ichnaea_caller(state, request.headers(), query).await?;
    if !Access::at_least(Role::Operator)
        .and(Role::Agent)
        .allows(principal.role)
    {
        return Err(Envelope::custom(
            403,
            "global",
            "forbidden",
            "submitting observations needs the operator, admin or agent role",
        ));
    }
    if let Err(over) = geo.geosubmit_budget.take(&principal.token_id) {
        return Ok(over_budget_envelope(over));
    }
    let Some(body) = read_body(state, request).await? else {
        return Err(Envelope::validation("an empty body has no items"));
    };
    let parsed: GeosubmitRequest = parse(&body)?;
    let report = if let Some(shared) = &geo.shared {
        let appended = shared.submit(&parsed).await.map_err(|e| {
            tracing::error!(error = %e, "appending observations to the shared log failed");
            Envelope(ErrorEnvelope::service_unavailable())
        })?;
        // Appended but not applied here yet: accepted all the same (see `observations`).
        let Some(report) = appended else {
            return Ok(Json(json!({})).into_response());
        };
        report
    } else {
        let db = Arc::clone(&geo.db);
        tokio::task::spawn_blocking(move || db.submit(&parsed))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "geosubmit task failed");
                Envelope(ErrorEnvelope::service_unavailable())
            })?
            .map_err(|e| {
                tracing::error!(error = %e, "storing observations failed");
                Envelope(ErrorEnvelope::service_unavailable())
            })?
    };
    tracing::info!(
        submitter = %source_of(&principal),
        reports = report.reports,
        accepted = report.accepted_reports,
        wifi = report.wifi,
        cells = report.cells,
        bluetooth = report.ble,
        dropped = report.dropped_entries,
        refused_full = report.refused_full,
        "geosubmit stored"
    );
    if report.refused_full == 0 {
        return Ok(Json(json!({})).into_response());
    }
    let message = format!(
        "the observation overlay is full ({} transmitters): {} observations of transmitters it \
         does not know were refused; known ones still refine",
        geo.db.overlay().max_rows(),
        report.refused_full
    );
    tracing::warn!(submitter = %source_of(&principal), refused = report.refused_full, "geosubmit overlay full");
    if report.stored() == 0 {
        return Err(Envelope::custom(507, "global", "overlayFull", &message));
    }
    Ok(
        Json(json!({"refused": report.refused_full, "reason": "overlayFull", "message": message}))
            .into_response(),
    )
}

fn locator_unavailable(err: &geo_locate::Error) -> ApiError {
    tracing::warn!(error = %err, "geolocation failed");
    match err {
        geo_locate::Error::QuotaExhausted { .. } => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "quota_exhausted",
            "the online geolocation providers' quota is spent and the offline data did not answer",
        ),
        _ => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "geolocation_unavailable",
            "geolocation failed; see the server log",
        ),
    }
}

fn seed_answer(estimate: Option<&Estimate>, with_sources: bool) -> Value {
    let Some(e) = estimate else {
        return json!({"success": false, "error": "Could not locate"});
    };
    let r = e.to_response();
    let mut body = json!({
        "success": true,
        "latitude": r.location.lat,
        "longitude": r.location.lng,
        "accuracy_m": r.accuracy.round() as u64,
        "confidence": 0.95,
    });
    if with_sources {
        body["sources"] = json!([kind_name(e.kind)]);
    }
    if let Some(f) = r.fallback {
        body["fallback"] = json!(f);
    }
    body
}

fn require_locator_role(caller: &Caller) -> Result<&Principal, ApiError> {
    if Access::at_least(Role::Viewer)
        .and(Role::Agent)
        .allows(caller.0.role)
    {
        Ok(&caller.0)
    } else {
        Err(ApiError::forbidden(
            "locating needs a viewer role or above, or an agent",
        ))
    }
}

/// The body of `POST /api/locate/wifi`.
#[derive(Debug, Deserialize)]
pub struct WifiBody {
    /// BSSIDs in any common form.
    #[serde(default)]
    pub bssids: Vec<String>,
}

fn wifi_entries(bssids: &[String]) -> Vec<WifiAccessPoint> {
    bssids
        .iter()
        .map(|b| WifiAccessPoint {
            mac_address: b.clone(),
            ..WifiAccessPoint::default()
        })
        .collect()
}

#[utoipa::path(post, path = "/api/locate/wifi", tag = "geolocation",
    request_body(content = Object, description = "{\"bssids\": [\"AA:BB:CC:DD:EE:FF\", ...]} (at least two known APs are needed)"),
    responses(
        (status = 200, description = "{success: true, latitude, longitude, accuracy_m, confidence} or {success: false, error}", body = Object),
        (status = 401, description = "No valid token or session", body = crate::error::schema::ErrorBody),
        (status = 429, description = "This token's provider budget is spent and nothing else answered (Retry-After)", body = crate::error::schema::ErrorBody),
        (status = 503, description = "A provider or the database failed", body = crate::error::schema::ErrorBody)),
    security(("token" = []), ("session" = [])))]
/// `POST /api/locate/wifi` (any role): the seed's WiFi lookup.
pub async fn locate_wifi(
    State(state): State<Node>,
    State(geo): State<Arc<Geo>>,
    caller: Caller,
    ApiJson(body): ApiJson<WifiBody>,
) -> Result<Response, ApiError> {
    let principal = require_locator_role(&caller)?;
    let request = GeolocateRequest {
        wifi_access_points: wifi_entries(&body.bssids),
        ..GeolocateRequest::default()
    };
    let query = Query::from_request(&request);
    let located = resolve(&state, &geo, principal, "/api/locate/wifi", &query, None)
        .await
        .map_err(|e| locator_unavailable(&e))?;
    Ok(seed_response(located, false))
}

/// The seed's answer, or 429 when a spent budget kept a provider from being asked and nothing
/// answered.
fn seed_response(located: Located, with_sources: bool) -> Response {
    match located {
        Located {
            estimate: None,
            over: Some(over),
        } => over.into_response(),
        Located { estimate, .. } => {
            Json(seed_answer(estimate.as_ref(), with_sources)).into_response()
        }
    }
}

/// A cell in the seed's shape.
#[derive(Debug, Deserialize)]
pub struct SeedCell {
    /// Mobile country code.
    #[serde(default)]
    pub mcc: Option<i64>,
    /// Mobile network code.
    #[serde(default)]
    pub mnc: Option<i64>,
    /// LAC or TAC.
    #[serde(default)]
    pub lac: Option<i64>,
    /// Cell id.
    #[serde(default)]
    pub cid: Option<i64>,
    /// Signal in dBm (`signal` in the seed's example, `signal_strength` in its dataclass).
    #[serde(default, alias = "signal")]
    pub signal_strength: Option<i64>,
    /// `gsm`, `wcdma`, `lte`, `nr` (an extension; the seed has none).
    #[serde(default, alias = "radio_type")]
    pub radio: Option<RadioType>,
}

/// The body of `POST /api/locate/hybrid`.
#[derive(Debug, Deserialize)]
pub struct HybridBody {
    /// BSSIDs.
    #[serde(default)]
    pub bssids: Option<Vec<String>>,
    /// Cells.
    #[serde(default)]
    pub cell_towers: Vec<SeedCell>,
}

/// The geolocate entries for a seed cell: one per radio it could be when none is given.
fn cell_entries(cell: &SeedCell) -> Vec<CellTower> {
    let radios: Vec<RadioType> = match cell.radio {
        Some(r) => vec![r],
        None => {
            let cid = cell.cid.and_then(|c| u64::try_from(c).ok()).unwrap_or(0);
            [Radio::Gsm, Radio::Wcdma, Radio::Lte, Radio::Nr]
                .into_iter()
                .filter(|r| cid <= r.max_cell_id())
                .filter(|r| *r != Radio::Nr || cid > Radio::Lte.max_cell_id())
                .map(RadioType::from)
                .collect()
        }
    };
    radios
        .into_iter()
        .map(|radio| CellTower {
            radio_type: Some(radio),
            mobile_country_code: cell.mcc,
            mobile_network_code: cell.mnc,
            location_area_code: cell.lac,
            cell_id: (radio != RadioType::Nr).then_some(cell.cid).flatten(),
            new_radio_cell_id: (radio == RadioType::Nr).then_some(cell.cid).flatten(),
            signal_strength: cell.signal_strength,
            ..CellTower::default()
        })
        .collect()
}

#[utoipa::path(post, path = "/api/locate/hybrid", tag = "geolocation",
    request_body(content = Object, description = "{\"bssids\": [...], \"cell_towers\": [{\"mcc\", \"mnc\", \"lac\", \"cid\", \"signal\", \"radio\"?}]}"),
    responses(
        (status = 200, description = "{success: true, latitude, longitude, accuracy_m, sources, confidence} or {success: false, error}", body = Object),
        (status = 401, description = "No valid token or session", body = crate::error::schema::ErrorBody),
        (status = 429, description = "This token's provider budget is spent and nothing else answered (Retry-After)", body = crate::error::schema::ErrorBody),
        (status = 503, description = "A provider or the database failed", body = crate::error::schema::ErrorBody)),
    security(("token" = []), ("session" = [])))]
/// `POST /api/locate/hybrid` (any role): the seed's WiFi-and-cells lookup, answered by
/// Ichnaea's agreeing-group rule rather than the seed's average of disagreeing fixes.
pub async fn locate_hybrid(
    State(state): State<Node>,
    State(geo): State<Arc<Geo>>,
    caller: Caller,
    ApiJson(body): ApiJson<HybridBody>,
) -> Result<Response, ApiError> {
    let principal = require_locator_role(&caller)?;
    let request = GeolocateRequest {
        wifi_access_points: wifi_entries(body.bssids.as_deref().unwrap_or_default()),
        cell_towers: body.cell_towers.iter().flat_map(cell_entries).collect(),
        ..GeolocateRequest::default()
    };
    let query = Query::from_request(&request);
    let located = resolve(&state, &geo, principal, "/api/locate/hybrid", &query, None)
        .await
        .map_err(|e| locator_unavailable(&e))?;
    Ok(seed_response(located, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_read_and_decoded() {
        assert_eq!(query_key(Some("key=vgl_ab12")).as_deref(), Some("vgl_ab12"));
        assert_eq!(query_key(Some("a=1&key=x%5Fy+z")).as_deref(), Some("x_y z"));
        assert_eq!(query_key(Some("key=bad%zz%")).as_deref(), Some("bad%zz%"));
        assert_eq!(query_key(Some("keys=1")), None);
        assert_eq!(query_key(None), None);
    }

    #[test]
    fn debug_masks_keys() {
        let c = GeoConfig {
            wigle_api_name: Some("AIDsecretname".into()),
            wigle_api_token: Some("secret-token".into()),
            opencellid_api_key: Some("pk.secret".into()),
            ..GeoConfig::default()
        };
        let text = format!("{c:?}");
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("***"));
    }

    #[test]
    fn seed_cells_without_radio_try_each_radio_that_fits() {
        let cell = |cid| SeedCell {
            mcc: Some(310),
            mnc: Some(410),
            lac: Some(123),
            cid: Some(cid),
            signal_strength: Some(-95),
            radio: None,
        };
        let radios =
            |c: &SeedCell| -> Vec<_> { cell_entries(c).iter().map(|t| t.radio_type).collect() };
        assert_eq!(
            radios(&cell(456)),
            [
                Some(RadioType::Gsm),
                Some(RadioType::Wcdma),
                Some(RadioType::Lte)
            ]
        );
        assert_eq!(
            radios(&cell(1_234_567)),
            [Some(RadioType::Wcdma), Some(RadioType::Lte)]
        );
        let nr = cell_entries(&cell(1 << 30));
        assert_eq!(nr.len(), 1);
        assert_eq!(nr[0].new_radio_cell_id, Some(1 << 30));
    }
}
