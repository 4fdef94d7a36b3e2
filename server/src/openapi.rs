//! The OpenAPI 3.1 document of the REST API, served at `GET /api/openapi.json`.

use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::schema::{ErrorBody, ErrorFields};

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("vgl_ followed by 64 hex digits")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::node::auth::SESSION_COOKIE,
                "The dashboard's session. A server started with --cookie-secure (reached over \
                 HTTPS) names it __Host-vigil_session instead, and reads only that name.",
            ))),
        );
        // Only /v1/geolocate and /v2/geosubmit: Ichnaea clients cannot send a header.
        components.add_security_scheme(
            "key",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::new("key"))),
        );
    }
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "vigil",
        description = "The vigil reference server's REST API. WebSocket (`/ws`) messages are documented in the server crate's docs.",
    ),
    paths(
        crate::transport::http::health,
        crate::transport::http::livez,
        crate::transport::http::readyz,
        crate::transport::http::stats,
        crate::transport::http::websocket_status,
        crate::transport::http::create_session,
        crate::transport::http::session_info,
        crate::transport::http::end_session,
        crate::tokens::list,
        crate::tokens::create,
        crate::tokens::revoke,
        crate::transport::http::list_events,
        crate::transport::http::publish_event,
        crate::telemetry::metrics,
        crate::scans::create,
        crate::scans::create_seed_alias,
        crate::scans::list,
        crate::scans::show,
        crate::scans::cancel,
        crate::scans::agents,
        crate::scans::command,
        crate::scans::alerts,
        crate::imagery::streetview,
        crate::imagery::streetview_image,
        crate::imagery::imagery,
        crate::geolocate::geolocate,
        crate::geolocate::geosubmit,
        crate::geolocate::locate_wifi,
        crate::geolocate::locate_hybrid,
        crate::dashboard::page_config,
        document,
    ),
    components(schemas(ErrorBody, ErrorFields)),
    modifiers(&Security),
)]
pub struct ApiDoc;

/// `GET /api/openapi.json`: this document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "meta", responses((status = 200, description = "The OpenAPI document", body = Object)))]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
