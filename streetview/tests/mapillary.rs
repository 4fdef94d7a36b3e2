//! The Mapillary client against a local mock of the Graph API (127.0.0.1 only).

use streetview::mapillary::{ImageField, ImageQuery, MapillaryClient};
use streetview::{AccessToken, BBox, ClientConfig, Error, LatLng, bbox_around};
use wiremock::matchers::{header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

const IMAGES: &str = include_str!("fixtures/mapillary_images.json");
const IMAGE: &str = include_str!("fixtures/mapillary_image.json");
const OAUTH_ERROR: &str = include_str!("fixtures/mapillary_error_oauth.json");
const RATE_LIMIT: &str = include_str!("fixtures/mapillary_error_rate_limit.json");

const TOKEN: &str = "MLY|4242|secret";

fn client(server: &MockServer) -> MapillaryClient {
    MapillaryClient::new(
        AccessToken::new(TOKEN).unwrap(),
        ClientConfig::default().with_base_url(server.uri()),
    )
    .unwrap()
}

fn json(status: u16, body: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(body.as_bytes().to_vec(), "application/json")
}

fn paris() -> LatLng {
    LatLng::new(48.8584, 2.2945).unwrap()
}

#[tokio::test]
async fn images_in_bbox_sends_token_in_header_only() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/images"))
        .and(header("authorization", "OAuth MLY|4242|secret"))
        .and(query_param(
            "bbox",
            "2.2931346,48.8575017,2.2958654,48.8592983",
        ))
        .and(query_param(
            "fields",
            "id,captured_at,compass_angle,geometry,is_pano,sequence,creator",
        ))
        .and(query_param("limit", "50"))
        .and(query_param("is_pano", "true"))
        .and(query_param("start_captured_at", "2022-01-01T00:00:00Z"))
        .and(query_param_is_missing("access_token"))
        .respond_with(json(200, IMAGES))
        .expect(1)
        .mount(&server)
        .await;

    let bbox = bbox_around(paris(), 100.0).unwrap()[0];
    let query = ImageQuery {
        limit: Some(50),
        is_pano: Some(true),
        start_captured_at: Some("2022-01-01T00:00:00Z".parse().unwrap()),
        ..ImageQuery::default()
    };
    let images = client(&server).images_in_bbox(&bbox, &query).await.unwrap();
    assert_eq!(images.len(), 3);
    let first = &images[0];
    assert_eq!(first.id, "498763468214164");
    assert_eq!(
        first.captured_at.unwrap().to_rfc3339(),
        "2022-08-16T16:42:46+00:00"
    );
    assert_eq!(first.is_pano, Some(false));
    assert_eq!(
        first.creator.as_ref().unwrap().username.as_deref(),
        Some("citymapper")
    );
    let at = first.position().unwrap();
    assert_eq!((at.lat(), at.lng()), (48.8584403, 2.2945612));
    assert_eq!(
        first.viewer_url(),
        "https://www.mapillary.com/app/?pKey=498763468214164&focus=photo"
    );
}

#[tokio::test]
async fn single_image_by_id() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/498763468214164"))
        .and(header("authorization", "OAuth MLY|4242|secret"))
        .and(query_param("fields", "id,computed_geometry,thumb_1024_url"))
        .respond_with(json(200, IMAGE))
        .expect(1)
        .mount(&server)
        .await;
    let fields = [
        ImageField::Id,
        ImageField::ComputedGeometry,
        ImageField::Thumb1024Url,
    ];
    let image = client(&server)
        .image("498763468214164", &fields)
        .await
        .unwrap();
    // The computed position wins over the device's.
    let at = image.position().unwrap();
    assert_eq!((at.lat(), at.lng()), (48.8584381, 2.2945577));
    assert_eq!(image.heading(), Some(150.71));
    assert_eq!(image.camera_type.as_deref(), Some("perspective"));
    assert!(image.thumb_1024_url.is_some());
}

#[tokio::test]
async fn oauth_error_is_a_provider_error() {
    let server = MockServer::start().await;
    Mock::given(path("/images"))
        .respond_with(json(401, OAUTH_ERROR))
        .mount(&server)
        .await;
    let bbox = BBox::new(2.29, 48.85, 2.30, 48.86).unwrap();
    let err = client(&server)
        .images_in_bbox(&bbox, &ImageQuery::default())
        .await
        .unwrap_err();
    match &err {
        Error::Provider {
            provider,
            code,
            message,
            ..
        } => {
            assert_eq!(*provider, "mapillary");
            assert_eq!(code, "OAuthException 190 (HTTP 401)");
            assert!(
                message
                    .as_deref()
                    .unwrap()
                    .starts_with("Invalid OAuth access token")
            );
        }
        other => panic!("expected a provider error, got {other:?}"),
    }
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("secret"), "{shown}");
}

#[tokio::test]
async fn rate_limits_are_typed() {
    let bbox = BBox::new(2.29, 48.85, 2.30, 48.86).unwrap();

    let server = MockServer::start().await;
    Mock::given(path("/images"))
        .respond_with(json(400, RATE_LIMIT))
        .mount(&server)
        .await;
    let err = client(&server)
        .images_in_bbox(&bbox, &ImageQuery::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::RateLimited {
                provider: "mapillary",
                ..
            }
        ),
        "{err:?}"
    );

    let server = MockServer::start().await;
    Mock::given(path("/images"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "60"))
        .mount(&server)
        .await;
    let err = client(&server)
        .images_in_bbox(&bbox, &ImageQuery::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::RateLimited { retry_after: Some(d), .. } if d.as_secs() == 60),
        "{err:?}"
    );
}

#[tokio::test]
async fn too_large_a_box_never_reaches_the_server() {
    let server = MockServer::start().await;
    Mock::given(path("/images"))
        .respond_with(json(200, IMAGES))
        .expect(0)
        .mount(&server)
        .await;
    let big = BBox::new(2.0, 48.0, 2.1, 48.1).unwrap();
    let err = client(&server)
        .images_in_bbox(&big, &ImageQuery::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BboxTooLarge { .. }), "{err:?}");
}

#[tokio::test]
async fn images_near_keeps_the_circle_nearest_first() {
    let server = MockServer::start().await;
    Mock::given(path("/images"))
        .respond_with(json(200, IMAGES))
        .expect(1)
        .mount(&server)
        .await;
    let images = client(&server)
        .images_near(paris(), 100.0, &ImageQuery::default(), 4)
        .await
        .unwrap();
    // The third fixture image is inside the box but 134 m away: outside the circle.
    let ids: Vec<&str> = images.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["498763468214164", "312627450377787"]);

    let limited = ImageQuery {
        limit: Some(1),
        ..ImageQuery::default()
    };
    let server = MockServer::start().await;
    Mock::given(path("/images"))
        .respond_with(json(200, IMAGES))
        .mount(&server)
        .await;
    let images = client(&server)
        .images_near(paris(), 100.0, &limited, 4)
        .await
        .unwrap();
    assert_eq!(images.len(), 1);
}

#[tokio::test]
async fn images_near_the_antimeridian_asks_twice_and_dedupes() {
    let server = MockServer::start().await;
    let body =
        r#"{"data":[{"id":"1","geometry":{"type":"Point","coordinates":[179.9996,0.0001]}}]}"#;
    Mock::given(path("/images"))
        .and(query_param("bbox", "179.9986017,-0.0008983,180,0.0008983"))
        .respond_with(json(200, body))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/images"))
        .and(query_param(
            "bbox",
            "-180,-0.0008983,-179.9996017,0.0008983",
        ))
        .respond_with(json(200, body))
        .expect(1)
        .mount(&server)
        .await;
    let center = LatLng::new(0.0, 179.9995).unwrap();
    let images = client(&server)
        .images_near(center, 100.0, &ImageQuery::default(), 4)
        .await
        .unwrap();
    assert_eq!(images.len(), 1);
}

#[tokio::test]
async fn images_near_refuses_past_its_request_budget() {
    let server = MockServer::start().await;
    Mock::given(path("/images"))
        .respond_with(json(200, IMAGES))
        .expect(0)
        .mount(&server)
        .await;
    // 20 km around Paris is ~0.36 × 0.55 degrees: dozens of tiles.
    let err = client(&server)
        .images_near(paris(), 20_000.0, &ImageQuery::default(), 16)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::TooManyRequests { max: 16, .. }),
        "{err:?}"
    );
}
