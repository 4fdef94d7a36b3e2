//! The Panoramax client against a local mock of a GeoVisio API (127.0.0.1 only).

use streetview::panoramax::{
    Area, AssetKind, CollectionsQuery, PanoramaxClient, PlaceFilter, SearchQuery,
};
use streetview::{BBox, ClientConfig, Error, LatLng};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SEARCH: &str = include_str!("fixtures/panoramax_search.json");
const COLLECTIONS: &str = include_str!("fixtures/panoramax_collections.json");
const ERROR: &str = include_str!("fixtures/panoramax_error.json");

fn client(server: &MockServer) -> PanoramaxClient {
    PanoramaxClient::new(ClientConfig::default().with_base_url(format!("{}/api", server.uri())))
        .unwrap()
}

fn json(status: u16, body: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(body.as_bytes().to_vec(), "application/geo+json")
}

fn cergy() -> LatLng {
    LatLng::new(49.0068908, 1.9191859).unwrap()
}

#[tokio::test]
async fn place_search_parses_items_assets_and_licences() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/search"))
        .and(query_param("place_position", "1.9191859,49.0068908"))
        .and(query_param("place_distance", "5-20"))
        .and(query_param("place_fov_tolerance", "30"))
        .and(query_param("limit", "2"))
        .respond_with(json(200, SEARCH))
        .expect(1)
        .mount(&server)
        .await;

    let place = PlaceFilter {
        position: cergy(),
        distance_m: (5, 20),
        fov_tolerance: 30,
    };
    let page = client(&server)
        .search(&SearchQuery::new(Area::Place(place)).limit(2))
        .await
        .unwrap();
    assert_eq!(page.features.len(), 2);
    assert!(page.next_page().unwrap().contains("page=2"));

    let pano = &page.features[0];
    assert_eq!(pano.id, "00f3f4e9-4b5e-4b1c-8e2d-1f7d3c9a6b21");
    assert_eq!(pano.license(), Some("CC-BY-SA-4.0"));
    assert!(pano.is_360());
    assert_eq!(pano.properties.azimuth, Some(158.0));
    assert_eq!(pano.properties.producer.as_deref(), Some("Adrien Pavie"));
    assert_eq!(
        pano.properties.datetime.unwrap().to_rfc3339(),
        "2021-07-29T11:16:54+02:00"
    );
    assert!(
        pano.asset(AssetKind::Thumb)
            .unwrap()
            .href
            .ends_with("/thumb.jpg")
    );
    assert!(pano.asset(AssetKind::Sd).unwrap().href.ends_with("/sd.jpg"));
    assert!(pano.asset(AssetKind::Hd).unwrap().href.ends_with("/hd.jpg"));
    let at = pano.position().unwrap();
    assert_eq!((at.lat(), at.lng()), (49.0069044, 1.9191781));

    let flat = &page.features[1];
    assert_eq!(flat.license(), Some("etalab-2.0"));
    assert!(!flat.is_360());
}

#[tokio::test]
async fn bbox_search_and_items_near_filter_to_the_circle() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/search"))
        .and(query_param(
            "bbox",
            "1.9189805,49.0067561,1.9193913,49.0070255",
        ))
        .and(query_param("limit", "10"))
        .respond_with(json(200, SEARCH))
        .expect(1)
        .mount(&server)
        .await;
    // The second fixture item is 19 m away: outside a 15 m circle.
    let items = client(&server).items_near(cergy(), 15.0, 10).await.unwrap();
    let ids: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["00f3f4e9-4b5e-4b1c-8e2d-1f7d3c9a6b21"]);
    assert_eq!(
        client(&server).viewer_url(&items[0]),
        format!(
            "{}/?focus=pic&pic=00f3f4e9-4b5e-4b1c-8e2d-1f7d3c9a6b21&map=18/49.0069044/1.9191781",
            server.uri()
        )
    );
}

#[tokio::test]
async fn items_near_the_antimeridian_searches_both_halves() {
    let server = MockServer::start().await;
    Mock::given(path("/api/search"))
        .and(query_param("bbox", "179.9986017,-0.0008983,180,0.0008983"))
        .respond_with(json(200, r#"{"type":"FeatureCollection","features":[]}"#))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/search"))
        .and(query_param("bbox", "-180,-0.0008983,-179.9996017,0.0008983"))
        .respond_with(json(
            200,
            r#"{"type":"FeatureCollection","features":[{"type":"Feature","id":"e","geometry":{"type":"Point","coordinates":[-179.99995,0]},"properties":{}}]}"#,
        ))
        .expect(1)
        .mount(&server)
        .await;
    let items = client(&server)
        .items_near(LatLng::new(0.0, 179.9995).unwrap(), 100.0, 5)
        .await
        .unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].id, "e");
}

#[tokio::test]
async fn collections_parse() {
    let server = MockServer::start().await;
    Mock::given(path("/api/collections"))
        .and(query_param("bbox", "1.9,49,1.95,49.01"))
        .and(query_param("limit", "5"))
        .respond_with(json(200, COLLECTIONS))
        .expect(1)
        .mount(&server)
        .await;
    let query = CollectionsQuery {
        bbox: Some(BBox::new(1.9, 49.0, 1.95, 49.01).unwrap()),
        limit: Some(5),
        datetime: None,
    };
    let page = client(&server).collections(&query).await.unwrap();
    let first = &page.collections[0];
    assert_eq!(first.title.as_deref(), Some("Cergy, rue de la gare"));
    assert_eq!(first.license.as_deref(), Some("CC-BY-SA-4.0"));
    assert_eq!(first.extra["stats:items"]["count"], 42);
}

#[tokio::test]
async fn collection_items() {
    let server = MockServer::start().await;
    Mock::given(path(
        "/api/collections/9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d/items",
    ))
    .and(query_param("limit", "2"))
    .respond_with(json(200, SEARCH))
    .expect(1)
    .mount(&server)
    .await;
    let page = client(&server)
        .collection_items("9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d", Some(2))
        .await
        .unwrap();
    assert_eq!(page.features.len(), 2);
}

#[tokio::test]
async fn server_errors_and_rate_limits_are_typed() {
    let bbox = SearchQuery::new(Area::BBox(BBox::new(1.9, 49.0, 1.95, 49.01).unwrap()));

    let server = MockServer::start().await;
    Mock::given(path("/api/search"))
        .respond_with(json(400, ERROR))
        .mount(&server)
        .await;
    let err = client(&server).search(&bbox).await.unwrap_err();
    match err {
        Error::Provider {
            provider,
            code,
            message,
            ..
        } => {
            assert_eq!(provider, "panoramax");
            assert_eq!(code, "HTTP 400");
            assert_eq!(
                message.as_deref(),
                Some("Parameter place_fov_tolerance must be between 2 and 180")
            );
        }
        other => panic!("expected a provider error, got {other:?}"),
    }

    let server = MockServer::start().await;
    Mock::given(path("/api/search"))
        .respond_with(ResponseTemplate::new(429))
        .mount(&server)
        .await;
    let err = client(&server).search(&bbox).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::RateLimited {
                provider: "panoramax",
                retry_after: None
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn out_of_range_never_reaches_the_server() {
    let server = MockServer::start().await;
    Mock::given(path("/api/search"))
        .respond_with(json(200, SEARCH))
        .expect(0)
        .mount(&server)
        .await;
    let mut place = PlaceFilter::new(cergy());
    place.fov_tolerance = 1;
    let err = client(&server)
        .search(&SearchQuery::new(Area::Place(place)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::OutOfRange {
                parameter: "place_fov_tolerance",
                ..
            }
        ),
        "{err:?}"
    );
}
