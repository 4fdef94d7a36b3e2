//! `/api/streetview`, `/api/streetview/image` and `/api/imagery` against mock providers on
//! 127.0.0.1: keys stay on the server, provider failures are reported beside other results.

mod common;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use event_bus::Role;
use serde_json::{Value, json};
use streetview::{AccessToken, ApiKey, SigningSecret};
use tower::ServiceExt;
use vigil_server::{AppState, ImageryConfig, ServerConfig, app};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "AIzaTestKey-never-leaves-the-server";

async fn get(state: &AppState, token: &str, uri: &str) -> (StatusCode, Vec<u8>, Option<String>) {
    let request = Request::get(uri)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = to_bytes(response.into_body(), 1 << 22)
        .await
        .unwrap()
        .to_vec();
    (status, body, content_type)
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).expect("JSON body")
}

async fn state_with(imagery: ImageryConfig) -> (AppState, String) {
    let (state, _) = AppState::in_memory(ServerConfig {
        imagery,
        ..common::config()
    })
    .await
    .unwrap();
    let token = state
        .auth()
        .create_token(Role::Viewer, "t")
        .await
        .unwrap()
        .1;
    (state, token)
}

#[tokio::test]
async fn without_keys_streetview_gives_the_maps_link_only() {
    let (state, token) = state_with(ImageryConfig::default()).await;
    let (status, body, _) = get(
        &state,
        &token,
        "/api/streetview?lat=48.857832&lng=2.295226&heading=-90&pitch=38&fov=80",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let body = json_of(&body);
    assert_eq!(
        body["maps_url"],
        "https://www.google.com/maps/@?api=1&map_action=pano&viewpoint=48.857832%2C2.295226&heading=-90&pitch=38&fov=80"
    );
    assert!(body["static_url"].is_null() && body["metadata"].is_null());
    let (status, body, _) = get(&state, &token, "/api/streetview/image?lat=1&lng=2").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(json_of(&body)["error"]["code"], "not_configured");

    let (status, body, _) = get(&state, &token, "/api/streetview?lat=91&lng=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        json_of(&body)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("latitude")
    );
}

#[tokio::test]
async fn with_a_key_the_image_is_proxied_signed_and_the_key_never_reaches_the_client() {
    let google = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/maps/api/streetview/metadata"))
        .and(query_param("key", KEY))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            r#"{"copyright":"© Google","date":"2014-04","location":{"lat":46.414342,"lng":10.014006},"pano_id":"vPnURflnc8AZu5NMLYRddw","status":"OK"}"#,
        ))
        .mount(&google)
        .await;
    Mock::given(method("GET"))
        .and(path("/maps/api/streetview"))
        .and(query_param("key", KEY))
        .and(query_param("size", "640x320"))
        .and(query_param("return_error_code", "true"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "image/jpeg")
                .set_body_bytes(vec![0xFF, 0xD8, 0xFF, 0xE0]),
        )
        .mount(&google)
        .await;
    let (state, token) = state_with(ImageryConfig {
        google_api_key: Some(ApiKey::new(KEY).unwrap()),
        google_signing_secret: Some(
            SigningSecret::from_base64("vNIXE0xscrmjlyV-12Nj_BvUPaw=").unwrap(),
        ),
        google_base_url: Some(google.uri()),
        ..ImageryConfig::default()
    })
    .await;

    let (status, body, _) = get(
        &state,
        &token,
        "/api/streetview?lat=46.414382&lng=10.013988&heading=151.78",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !String::from_utf8_lossy(&body).contains(KEY),
        "the key leaked into the answer"
    );
    let body = json_of(&body);
    assert_eq!(body["metadata"]["status"], "OK");
    assert_eq!(body["metadata"]["pano_id"], "vPnURflnc8AZu5NMLYRddw");
    assert_eq!(body["signed"], true);
    let image_url = body["static_url"].as_str().unwrap();
    assert!(
        image_url.starts_with("/api/streetview/image?lat=46.414382&lng=10.013988&heading=151.78"),
        "{image_url}"
    );

    let (status, bytes, content_type) = get(&state, &token, image_url).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(bytes, [0xFF, 0xD8, 0xFF, 0xE0]);
    // The request Google saw was signed.
    let seen = google.received_requests().await.unwrap();
    let image_request = seen
        .iter()
        .find(|r| r.url.path() == "/maps/api/streetview")
        .unwrap();
    assert!(image_request.url.query().unwrap().contains("&signature="));
}

#[tokio::test]
async fn a_provider_error_on_the_image_is_a_bad_gateway_without_the_key() {
    let google = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/maps/api/streetview"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&google)
        .await;
    let (state, token) = state_with(ImageryConfig {
        google_api_key: Some(ApiKey::new(KEY).unwrap()),
        google_base_url: Some(google.uri()),
        ..ImageryConfig::default()
    })
    .await;
    let (status, body, _) = get(&state, &token, "/api/streetview/image?lat=1&lng=2").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(!String::from_utf8_lossy(&body).contains(KEY));
    assert_eq!(json_of(&body)["error"]["code"], "provider_error");
}

#[tokio::test]
async fn imagery_merges_providers_nearest_first_and_reports_failures() {
    let panoramax = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/search"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "type": "FeatureCollection",
            "features": [{
                "type": "Feature", "stac_version": "1.0.0", "id": "pmx-1", "collection": "c-1",
                "geometry": {"type": "Point", "coordinates": [2.29530, 48.85840]},
                "properties": {"datetime": "2023-05-01T10:00:00+02:00", "view:azimuth": 90, "license": "etalab-2.0",
                               "pers:interior_orientation": {"field_of_view": 360}},
                "assets": {"thumb": {"href": "https://pmx.example/api/pictures/pmx-1/thumb.jpg", "roles": ["thumbnail"]}},
                "links": []
            }],
            "links": []
        })))
        .mount(&panoramax)
        .await;
    let mapillary = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/images"))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({
            "error": {"message": "Application request limit reached", "type": "OAuthException", "code": 4, "fbtrace_id": "x"}
        })))
        .mount(&mapillary)
        .await;
    let (state, token) = state_with(ImageryConfig {
        mapillary_token: Some(AccessToken::new("MLY|1|secret-token").unwrap()),
        mapillary_base_url: Some(mapillary.uri()),
        panoramax_base_url: Some(format!("{}/api", panoramax.uri())),
        ..ImageryConfig::default()
    })
    .await;
    let (status, body, _) = get(
        &state,
        &token,
        "/api/imagery?lat=48.8584&lng=2.2945&radius=100",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert!(!String::from_utf8_lossy(&body).contains("secret-token"));
    let body = json_of(&body);
    let images = body["images"].as_array().unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0]["provider"], "panoramax");
    assert_eq!(images[0]["licence"], "etalab-2.0");
    assert_eq!(images[0]["panorama"], true);
    assert!(images[0]["distance_m"].as_f64().unwrap() < 100.0);
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["provider"], "mapillary");

    let (status, _, _) = get(&state, &token, "/api/imagery?lat=48.8&lng=2.2&radius=90000").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = get(
        &state,
        &token,
        "/api/imagery?lat=48.8&lng=2.2&provider=kartaview",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn imagery_without_a_mapillary_token_says_so() {
    let panoramax = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/search"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"type": "FeatureCollection", "features": [], "links": []})),
        )
        .mount(&panoramax)
        .await;
    let (state, token) = state_with(ImageryConfig {
        panoramax_base_url: Some(format!("{}/api", panoramax.uri())),
        ..ImageryConfig::default()
    })
    .await;
    let (status, body, _) = get(&state, &token, "/api/imagery?lat=48.8&lng=2.2").await;
    assert_eq!(status, StatusCode::OK);
    let body = json_of(&body);
    assert!(body["images"].as_array().unwrap().is_empty());
    assert_eq!(body["errors"][0]["provider"], "mapillary");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("no Mapillary token")
    );
}
