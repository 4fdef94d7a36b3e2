//! The OpenCellID client against a local mock server shaped like the real API.

mod common;

use geo_locate::opencellid::{OpenCellIdClient, OpenCellIdConfig};
use geo_locate::wigle::BoundingBox;
use geo_locate::{CellKey, Error};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn client(server: &MockServer) -> OpenCellIdClient {
    OpenCellIdClient::new(OpenCellIdConfig::new("pk.test").with_base_url(server.uri())).unwrap()
}

async fn serve(server: &MockServer, cid: &str, status: u16, fixture: &str) {
    Mock::given(method("GET"))
        .and(path("/cell/get"))
        .and(query_param("key", "pk.test"))
        .and(query_param("format", "json"))
        .and(query_param("cellid", cid))
        .respond_with(ResponseTemplate::new(status).set_body_json(common::json(fixture)))
        .mount(server)
        .await;
}

fn key(cid: u64) -> CellKey {
    format!("gsm:262:1:1001:{cid}").parse().unwrap()
}

#[tokio::test]
async fn cell_get_hit_miss_and_area_estimate() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/cell/get"))
        .and(query_param("mcc", "262"))
        .and(query_param("mnc", "1"))
        .and(query_param("lac", "1001"))
        .and(query_param("cellid", "11"))
        .and(query_param("radio", "GSM"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(common::json("opencellid/cell_get.json")),
        )
        .mount(&server)
        .await;
    serve(&server, "12", 200, "opencellid/not_found.json").await;
    serve(&server, "13", 200, "opencellid/cell_area_estimate.json").await;
    let c = client(&server);
    let hit = c.locate_cell(&key(11)).await.unwrap().unwrap();
    assert_eq!(hit.radius_m, 1500.0);
    assert_eq!(hit.samples, 12);
    assert!((hit.position.lat - 52.52).abs() < 1e-9 && (hit.position.lon - 13.405).abs() < 1e-9);
    assert!(c.cell(&key(12)).await.unwrap().is_none());
    // An area estimate (cellid −1) is not the cell.
    assert!(c.cell(&key(13)).await.unwrap().is_some());
    assert!(c.locate_cell(&key(13)).await.unwrap().is_none());
}

#[tokio::test]
async fn errors_are_typed_with_the_provider_message() {
    let server = MockServer::start().await;
    serve(&server, "20", 200, "opencellid/too_many_requests.json").await;
    serve(&server, "21", 429, "opencellid/too_many_requests.json").await;
    serve(&server, "22", 200, "opencellid/key_not_whitelisted.json").await;
    serve(&server, "23", 200, "opencellid/internal_error.json").await;
    let c = client(&server);
    for cid in [20, 21] {
        match c.cell(&key(cid)).await {
            Err(Error::QuotaExhausted { message, .. }) => assert_eq!(message, "Too many requests"),
            other => panic!("{cid}: {other:?}"),
        }
    }
    match c.cell(&key(22)).await {
        Err(Error::Unauthorized { message, .. }) => assert_eq!(message, "API key not whitelisted"),
        other => panic!("{other:?}"),
    }
    match c.cell(&key(23)).await {
        Err(Error::Provider { code, message, .. }) => {
            assert_eq!(code, Some(5));
            assert_eq!(message, "Internal error");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn get_in_area_sends_bbox_as_latmin_lonmin_latmax_lonmax() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/cell/getInArea"))
        .and(query_param("BBOX", "52.5,13.39,52.53,13.42"))
        .and(query_param("limit", "50"))
        .and(query_param("offset", "0"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(common::json("opencellid/in_area.json")),
        )
        .mount(&server)
        .await;
    let area = client(&server)
        .cells_in_area(BoundingBox::new(52.5, 52.53, 13.39, 13.42).unwrap(), 50, 0)
        .await
        .unwrap();
    assert_eq!(area.count, 2);
    assert_eq!(area.cells[1].cellid, Some(12));
}

#[test]
fn missing_key_is_a_config_error() {
    assert!(matches!(
        OpenCellIdClient::new(OpenCellIdConfig::new(" ")),
        Err(Error::Config(_))
    ));
}
