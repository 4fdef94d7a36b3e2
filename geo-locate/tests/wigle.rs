//! The WiGLE client against a local mock server shaped like the real API.

mod common;

use geo_locate::wigle::{BoundingBox, WigleClient, WigleConfig, WigleSearch};
use geo_locate::{Error, MacAddr};
use wiremock::matchers::{header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Basic auth of `AIDtest:secret`.
const AUTH: &str = "Basic QUlEdGVzdDpzZWNyZXQ=";

fn client(server: &MockServer) -> WigleClient {
    WigleClient::new(WigleConfig::new("AIDtest", "secret").with_base_url(server.uri())).unwrap()
}

#[tokio::test]
async fn search_sends_scalar_box_and_pages_with_search_after() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v2/network/search"))
        .and(header("authorization", AUTH))
        .and(query_param("latrange1", "52.5"))
        .and(query_param("latrange2", "52.53"))
        .and(query_param("longrange1", "13.39"))
        .and(query_param("longrange2", "13.42"))
        .and(query_param("resultsPerPage", "100"))
        .and(query_param_is_missing("searchAfter"))
        .and(query_param_is_missing("latrange"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(common::json("wigle/search_page1.json")),
        )
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/network/search"))
        .and(query_param("searchAfter", "4721634"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(common::json("wigle/search_page2.json")),
        )
        .expect(1)
        .mount(&server)
        .await;

    let c = client(&server);
    let search = WigleSearch {
        bbox: Some(BoundingBox::new(52.5, 52.53, 13.39, 13.42).unwrap()),
        results_per_page: Some(500),
        ..Default::default()
    };
    let first = c.search(&search).await.unwrap();
    assert_eq!(first.total_results, 3);
    assert_eq!(first.search_after.as_deref(), Some("4721634"));
    let all = c.search_all(&search, 10).await.unwrap();
    let ssids: Vec<_> = all.iter().filter_map(|n| n.ssid.clone()).collect();
    assert_eq!(ssids, ["cafe", "library", "bakery"]);
    assert_eq!(all[0].position().unwrap().lat, 52.52001);
}

#[tokio::test]
async fn locate_bssid_uses_netid_and_maps_misses() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v2/network/search"))
        .and(query_param("netid", "aa:bb:cc:00:00:01"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(common::json("wigle/search_page1.json")),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/network/search"))
        .and(query_param("netid", "aa:bb:cc:99:99:99"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(common::json("wigle/search_empty.json")),
        )
        .mount(&server)
        .await;
    let c = client(&server);
    let hit = c
        .locate_bssid("AA-BB-CC-00-00-01".parse::<MacAddr>().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!((hit.position.lon - 13.40498).abs() < 1e-9);
    let miss = c
        .locate_bssid("aa:bb:cc:99:99:99".parse().unwrap())
        .await
        .unwrap();
    assert!(miss.is_none());
}

#[tokio::test]
async fn detail_returns_observations() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v2/network/detail"))
        .and(query_param("netid", "aa:bb:cc:00:00:01"))
        .respond_with(ResponseTemplate::new(200).set_body_json(common::json("wigle/detail.json")))
        .mount(&server)
        .await;
    let d = client(&server)
        .detail("aa:bb:cc:00:00:01".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.location_data.len(), 2);
    assert_eq!(d.location_data[1].signal, Some(-55.0));
}

#[tokio::test]
async fn quota_and_credentials_errors_are_typed() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v2/network/search"))
        .and(query_param("ssid", "http429"))
        .respond_with(
            ResponseTemplate::new(429).set_body_json(common::json("wigle/too_many_queries.json")),
        )
        .mount(&server)
        .await;
    Mock::given(path("/api/v2/network/search"))
        .and(query_param("ssid", "in200"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(common::json("wigle/too_many_queries.json")),
        )
        .mount(&server)
        .await;
    Mock::given(path("/api/v2/network/search"))
        .and(query_param("ssid", "badcreds"))
        .respond_with(
            ResponseTemplate::new(403).set_body_json(common::json("wigle/unauthorized.json")),
        )
        .mount(&server)
        .await;
    Mock::given(path("/api/v2/network/search"))
        .and(query_param("ssid", "broken"))
        .respond_with(ResponseTemplate::new(500).set_body_string("upstream exploded"))
        .mount(&server)
        .await;
    Mock::given(path("/api/v2/network/search"))
        .and(query_param("ssid", "garbage"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>maintenance</html>"))
        .mount(&server)
        .await;
    let c = client(&server);
    let search = |ssid: &str| WigleSearch {
        ssid: Some(ssid.to_owned()),
        ..Default::default()
    };
    for ssid in ["http429", "in200"] {
        match c.search(&search(ssid)).await {
            Err(Error::QuotaExhausted { message, .. }) => {
                assert!(message.contains("too many queries today"), "{message}")
            }
            other => panic!("{ssid}: {other:?}"),
        }
    }
    match c.search(&search("badcreds")).await {
        Err(Error::Unauthorized { message, .. }) => assert_eq!(message, "Authentication required"),
        other => panic!("{other:?}"),
    }
    match c.search(&search("broken")).await {
        Err(Error::Provider {
            status, message, ..
        }) => {
            assert_eq!(status, 500);
            assert_eq!(message, "upstream exploded");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        c.search(&search("garbage")).await,
        Err(Error::Decode { .. })
    ));
}

#[tokio::test]
async fn unreachable_server_is_an_http_error() {
    // Bind and drop a listener to get a local port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = WigleClient::new(
        WigleConfig::new("AIDtest", "secret").with_base_url(format!("http://127.0.0.1:{port}")),
    )
    .unwrap();
    let err = c.search(&WigleSearch::default()).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Http {
                endpoint: "network/search",
                ..
            }
        ),
        "{err}"
    );
}
