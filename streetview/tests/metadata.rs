//! The metadata client against a local mock of Google's endpoint (127.0.0.1 only).

use streetview::metadata::{MetadataClient, Status};
use streetview::static_api::StaticRequest;
use streetview::{ApiKey, ClientConfig, Error, LatLng, SigningSecret, sign};
use wiremock::matchers::{method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

const OK: &str = include_str!("fixtures/google_metadata_ok.json");
const ZERO: &str = include_str!("fixtures/google_metadata_zero_results.json");
const DENIED: &str = include_str!("fixtures/google_metadata_request_denied.json");
const OVER: &str = include_str!("fixtures/google_metadata_over_query_limit.json");

const DOC_SECRET: &str = "vNIXE0xscrmjlyV-12Nj_BvUPaw=";

fn request() -> StaticRequest {
    StaticRequest::builder()
        .location(LatLng::new(46.414382, 10.013988).unwrap())
        .size(600, 300)
        .heading(151.78)
        .build()
        .unwrap()
}

fn client(server: &MockServer, secret: Option<SigningSecret>) -> MetadataClient {
    MetadataClient::new(
        ApiKey::new("YOUR_API_KEY").unwrap(),
        secret,
        ClientConfig::default().with_base_url(server.uri()),
    )
    .unwrap()
}

fn json(body: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body.as_bytes().to_vec(), "application/json")
}

#[tokio::test]
async fn ok_answer_parses_and_only_location_and_key_are_sent() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/maps/api/streetview/metadata"))
        .and(query_param("location", "46.414382,10.013988"))
        .and(query_param("key", "YOUR_API_KEY"))
        .and(query_param_is_missing("size"))
        .and(query_param_is_missing("heading"))
        .and(query_param_is_missing("signature"))
        .respond_with(json(OK))
        .expect(1)
        .mount(&server)
        .await;

    let metadata = client(&server, None).lookup(&request()).await.unwrap();
    assert_eq!(metadata.status, Status::Ok);
    assert_eq!(metadata.pano_id.as_deref(), Some("vPnURflnc8AZu5NMLYRddw"));
    assert_eq!(metadata.date.as_deref(), Some("2014-04"));
    let at = metadata.position().unwrap();
    assert!((at.lat() - 46.414342).abs() < 1e-6);
}

#[tokio::test]
async fn signed_lookup_sends_the_signature_of_what_it_sends() {
    let server = MockServer::start().await;
    let secret = SigningSecret::from_base64(DOC_SECRET).unwrap();
    let expected = sign(
        "/maps/api/streetview/metadata?location=46.414382%2C10.013988&key=YOUR_API_KEY",
        &secret,
    );
    Mock::given(method("GET"))
        .and(path("/maps/api/streetview/metadata"))
        .and(query_param("signature", expected.as_str()))
        .respond_with(json(OK))
        .expect(1)
        .mount(&server)
        .await;

    let client = client(&server, Some(secret));
    let url = client.url(&request()).unwrap();
    assert!(url.ends_with(&format!("&signature={expected}")), "{url}");
    let metadata = client.lookup(&request()).await.unwrap();
    assert!(metadata.has_panorama());
}

#[tokio::test]
async fn zero_results_is_an_answer_not_an_error() {
    let server = MockServer::start().await;
    Mock::given(path("/maps/api/streetview/metadata"))
        .respond_with(json(ZERO))
        .mount(&server)
        .await;
    let metadata = client(&server, None).lookup(&request()).await.unwrap();
    assert_eq!(metadata.status, Status::ZeroResults);
    assert!(metadata.pano_id.is_none() && metadata.location.is_none() && metadata.date.is_none());
}

#[tokio::test]
async fn request_denied_is_a_provider_error_with_googles_message() {
    let server = MockServer::start().await;
    Mock::given(path("/maps/api/streetview/metadata"))
        .respond_with(json(DENIED))
        .mount(&server)
        .await;
    let err = client(&server, None).lookup(&request()).await.unwrap_err();
    match &err {
        Error::Provider {
            provider,
            code,
            message,
            ..
        } => {
            assert_eq!(*provider, "google");
            assert_eq!(code, "REQUEST_DENIED");
            assert_eq!(message.as_deref(), Some("The provided API key is invalid."));
        }
        other => panic!("expected a provider error, got {other:?}"),
    }
    assert!(!err.to_string().contains("YOUR_API_KEY"), "{err}");
}

#[tokio::test]
async fn over_query_limit_and_http_429_are_rate_limits() {
    let server = MockServer::start().await;
    Mock::given(path("/maps/api/streetview/metadata"))
        .respond_with(json(OVER))
        .mount(&server)
        .await;
    let err = client(&server, None).lookup(&request()).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::RateLimited {
                provider: "google",
                ..
            }
        ),
        "{err:?}"
    );

    let server = MockServer::start().await;
    Mock::given(path("/maps/api/streetview/metadata"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "7"))
        .mount(&server)
        .await;
    let err = client(&server, None).lookup(&request()).await.unwrap_err();
    match err {
        Error::RateLimited { retry_after, .. } => {
            assert_eq!(retry_after, Some(std::time::Duration::from_secs(7)));
        }
        other => panic!("expected a rate limit, got {other:?}"),
    }
}

#[tokio::test]
async fn http_errors_and_garbage_are_typed() {
    let server = MockServer::start().await;
    Mock::given(path("/maps/api/streetview/metadata"))
        .respond_with(ResponseTemplate::new(403).set_body_string("Forbidden"))
        .mount(&server)
        .await;
    let err = client(&server, None).lookup(&request()).await.unwrap_err();
    assert!(
        matches!(&err, Error::Provider { code, .. } if code == "HTTP 403"),
        "{err:?}"
    );

    let server = MockServer::start().await;
    Mock::given(path("/maps/api/streetview/metadata"))
        .respond_with(json("<html>not json</html>"))
        .mount(&server)
        .await;
    let err = client(&server, None).lookup(&request()).await.unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
}

#[tokio::test]
async fn transport_errors_do_not_leak_the_key() {
    // A port nothing listens on: bind, read the port, drop the listener.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = MetadataClient::new(
        ApiKey::new("SECRET_KEY_123").unwrap(),
        None,
        ClientConfig::default().with_base_url(format!("http://127.0.0.1:{port}")),
    )
    .unwrap();
    let err = client.lookup(&request()).await.unwrap_err();
    assert!(matches!(err, Error::Http { .. }), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("SECRET_KEY_123"), "{shown}");
}
