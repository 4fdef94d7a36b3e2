//! `vigil streetview …` and `vigil imagery …`, run as the real binary. Network commands talk to
//! wiremock on 127.0.0.1 through their `--…-base-url` flags; nothing reaches a real provider.

use assert_cmd::Command;
use predicates::prelude::*;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const DOC_SECRET: &str = "vNIXE0xscrmjlyV-12Nj_BvUPaw=";

/// The binary with every credential variable removed, so the tests do not depend on the
/// developer's shell.
fn vigil() -> Command {
    let mut cmd = assert_cmd::cargo::cargo_bin_cmd!("vigil");
    cmd.env_remove("GOOGLE_MAPS_API_KEY")
        .env_remove("GOOGLE_MAPS_URL_SIGNING_SECRET")
        .env_remove("MAPILLARY_ACCESS_TOKEN")
        .env_remove("RUST_LOG");
    cmd
}

/// Runs the binary off the async runtime, so the mock server keeps serving meanwhile.
async fn run(mut cmd: Command) -> assert_cmd::assert::Assert {
    tokio::task::spawn_blocking(move || cmd.assert())
        .await
        .expect("the command thread does not panic")
}

fn json(body: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body.as_bytes().to_vec(), "application/json")
}

#[test]
fn url_prints_the_reference_link() {
    vigil()
        .args(["streetview", "url", "48.857832", "2.295226"])
        .args(["--heading", "-90", "--pitch", "38", "--fov", "80"])
        .assert()
        .success()
        .stdout(
            "https://www.google.com/maps/@?api=1&map_action=pano&viewpoint=48.857832%2C2.295226&heading=-90&pitch=38&fov=80\n",
        );
}

#[test]
fn url_accepts_negative_coordinates_and_wraps_longitude() {
    vigil()
        .args(["streetview", "url", "-33.856785", "511.215297"])
        .assert()
        .success()
        .stdout("https://www.google.com/maps/@?api=1&map_action=pano&viewpoint=-33.856785%2C151.215297\n");
}

#[test]
fn out_of_range_input_names_the_parameter_and_range() {
    vigil()
        .args(["streetview", "url", "48.8", "2.3", "--fov", "5"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("fov must be in 10..=100, got 5"));
    vigil()
        .args(["streetview", "url", "91", "0"])
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "latitude must be in -90..=90, got 91",
        ));
    vigil()
        .env("GOOGLE_MAPS_API_KEY", "k")
        .args(["streetview", "static", "1", "2", "--size", "641x100"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("size must be in 1..=640"));
    vigil()
        .env("GOOGLE_MAPS_API_KEY", "k")
        .args([
            "streetview",
            "static",
            "1",
            "2",
            "--size",
            "600x300",
            "--pitch",
            "95",
        ])
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "pitch must be in -90..=90, got 95",
        ));
    vigil()
        .args([
            "imagery",
            "1",
            "2",
            "--radius",
            "9000",
            "--provider",
            "panoramax",
        ])
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "radius must be in 1..=5000 metres",
        ));
}

#[test]
fn static_signs_with_the_two_environment_variables() {
    vigil()
        .env("GOOGLE_MAPS_API_KEY", "YOUR_API_KEY")
        .env("GOOGLE_MAPS_URL_SIGNING_SECRET", DOC_SECRET)
        .args(["streetview", "static", "46.414382", "10.013988", "--size", "600x300"])
        .args(["--heading", "151.78", "--pitch", "-0.76", "--sign"])
        .assert()
        .success()
        .stdout(
            "https://maps.googleapis.com/maps/api/streetview?size=600x300&location=46.414382%2C10.013988&heading=151.78&pitch=-0.76&key=YOUR_API_KEY&signature=XscafPjtrcpyZKmclB7aiBr6QEo=\n",
        );
}

#[test]
fn static_unsigned_notes_it_on_stderr() {
    vigil()
        .env("GOOGLE_MAPS_API_KEY", "K")
        .args(["streetview", "static", "1", "2", "--size", "100x100", "--heading", "-90"])
        .args(["--radius", "20", "--source", "outdoor", "--return-error-code"])
        .assert()
        .success()
        .stdout("https://maps.googleapis.com/maps/api/streetview?size=100x100&location=1%2C2&heading=270&radius=20&source=outdoor&return_error_code=true&key=K\n")
        .stderr(predicate::str::contains("unsigned"));
}

#[test]
fn static_explains_missing_credentials() {
    vigil()
        .args(["streetview", "static", "1", "2", "--size", "100x100"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("GOOGLE_MAPS_API_KEY is not set"));
    vigil()
        .env("GOOGLE_MAPS_API_KEY", "K")
        .args([
            "streetview",
            "static",
            "1",
            "2",
            "--size",
            "100x100",
            "--sign",
        ])
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "--sign needs GOOGLE_MAPS_URL_SIGNING_SECRET",
        ));
    vigil()
        .env("GOOGLE_MAPS_API_KEY", "K")
        .env("GOOGLE_MAPS_URL_SIGNING_SECRET", "not base64!")
        .args([
            "streetview",
            "static",
            "1",
            "2",
            "--size",
            "100x100",
            "--sign",
        ])
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "GOOGLE_MAPS_URL_SIGNING_SECRET is not a valid secret",
        ));
}

#[test]
fn cost_prints_the_dated_price_list() {
    vigil()
        .args([
            "streetview",
            "cost",
            "--static",
            "150000",
            "--dynamic",
            "100000",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("2025-03-01"))
        .stdout(predicate::str::contains("$910.00"))
        .stdout(predicate::str::contains("$1,330.00"))
        .stdout(predicate::str::contains("$2,240.00"))
        .stdout(predicate::str::contains("Verify"));

    let out = vigil()
        .args([
            "streetview",
            "cost",
            "--static",
            "6000000",
            "--metadata",
            "1000000000",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["price_list_date"], "2025-03-01");
    assert_eq!(report["total_micro_usd"], 13_900_000_000u64);
    assert_eq!(report["lines"][2]["cost_micro_usd"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_against_a_mock() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/maps/api/streetview/metadata"))
        .and(query_param("location", "46.414382,10.013988"))
        .and(query_param("key", "YOUR_API_KEY"))
        // Computed independently (Python hmac) over the path and query that are sent.
        .and(query_param("signature", "ZiG_DUAWwETw9RJYaII0PXqueMI="))
        .respond_with(json(include_str!(
            "../../streetview/tests/fixtures/google_metadata_ok.json"
        )))
        .expect(2)
        .mount(&server)
        .await;

    let mut cmd = vigil();
    cmd.env("GOOGLE_MAPS_API_KEY", "YOUR_API_KEY")
        .env("GOOGLE_MAPS_URL_SIGNING_SECRET", DOC_SECRET)
        .args(["streetview", "metadata", "46.414382", "10.013988", "--sign"])
        .args(["--base-url", &server.uri()]);
    run(cmd)
        .await
        .success()
        .stdout(predicate::str::contains("status     OK"))
        .stdout(predicate::str::contains(
            "pano id    vPnURflnc8AZu5NMLYRddw",
        ))
        .stdout(predicate::str::contains("captured   2014-04"))
        .stdout(predicate::str::contains("&pano=vPnURflnc8AZu5NMLYRddw"))
        .stdout(predicate::str::contains("free"));

    let mut cmd = vigil();
    cmd.env("GOOGLE_MAPS_API_KEY", "YOUR_API_KEY")
        .env("GOOGLE_MAPS_URL_SIGNING_SECRET", DOC_SECRET)
        .args([
            "streetview",
            "metadata",
            "46.414382",
            "10.013988",
            "--sign",
            "--json",
        ])
        .args(["--base-url", &server.uri()]);
    let out = run(cmd).await.success().get_output().stdout.clone();
    let answer: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(answer["status"], "OK");
    assert_eq!(answer["location"]["lat"], 46.41434210086409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_errors_are_reported_without_the_key() {
    let server = MockServer::start().await;
    Mock::given(path("/maps/api/streetview/metadata"))
        .respond_with(json(include_str!(
            "../../streetview/tests/fixtures/google_metadata_request_denied.json"
        )))
        .mount(&server)
        .await;
    let mut cmd = vigil();
    cmd.env("GOOGLE_MAPS_API_KEY", "SECRET_KEY_XYZ").args([
        "streetview",
        "metadata",
        "1",
        "2",
        "--base-url",
        &server.uri(),
    ]);
    run(cmd)
        .await
        .failure()
        .stderr(predicate::str::contains("REQUEST_DENIED"))
        .stderr(predicate::str::contains("The provided API key is invalid."))
        .stderr(predicate::str::contains("SECRET_KEY_XYZ").not());

    let server = MockServer::start().await;
    Mock::given(path("/maps/api/streetview/metadata"))
        .respond_with(ResponseTemplate::new(429))
        .mount(&server)
        .await;
    let mut cmd = vigil();
    cmd.env("GOOGLE_MAPS_API_KEY", "K").args([
        "streetview",
        "metadata",
        "1",
        "2",
        "--base-url",
        &server.uri(),
    ]);
    run(cmd)
        .await
        .failure()
        .stderr(predicate::str::contains("google rate limit reached"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imagery_from_both_providers_nearest_first() {
    let mapillary = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/images"))
        .and(header("authorization", "OAuth MLY|test"))
        .and(query_param(
            "bbox",
            "2.2931346,48.8575017,2.2958654,48.8592983",
        ))
        .respond_with(json(include_str!(
            "../../streetview/tests/fixtures/mapillary_images.json"
        )))
        .expect(2)
        .mount(&mapillary)
        .await;
    let panoramax = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/search"))
        .and(query_param("bbox", "2.2931346,48.8575017,2.2958654,48.8592983"))
        .respond_with(json(
            r#"{"type":"FeatureCollection","features":[{"type":"Feature","id":"pmx-1",
            "geometry":{"type":"Point","coordinates":[2.2946,48.8585]},
            "properties":{"datetime":"2023-05-01T10:00:00+02:00","view:azimuth":90,"license":"etalab-2.0",
            "pers:interior_orientation":{"field_of_view":360}},
            "assets":{"thumb":{"href":"https://pmx.example/api/pictures/pmx-1/thumb.jpg","roles":["thumbnail"]}}}]}"#,
        ))
        .expect(2)
        .mount(&panoramax)
        .await;

    let args = |cmd: &mut Command| {
        cmd.env("MAPILLARY_ACCESS_TOKEN", "MLY|test")
            .args(["imagery", "48.8584", "2.2945", "--radius", "100"])
            .args(["--mapillary-base-url", &mapillary.uri()])
            .args(["--panoramax-base-url", &format!("{}/api", panoramax.uri())]);
    };

    let mut cmd = vigil();
    args(&mut cmd);
    run(cmd)
        .await
        .success()
        .stdout(predicate::str::contains(
            "3 images within 100 m of 48.8584,2.2945",
        ))
        .stdout(predicate::str::contains(
            "https://www.mapillary.com/app/?pKey=498763468214164&focus=photo",
        ))
        .stdout(predicate::str::contains(
            "/?focus=pic&pic=pmx-1&map=18/48.8585/2.2946",
        ))
        .stdout(predicate::str::contains("etalab-2.0"))
        .stdout(predicate::str::contains(
            "Google Street View: https://www.google.com/maps/@?api=1",
        ));

    let mut cmd = vigil();
    args(&mut cmd);
    cmd.arg("--json");
    let out = run(cmd).await.success().get_output().stdout.clone();
    let found: Vec<serde_json::Value> = serde_json::from_slice(&out).unwrap();
    let order: Vec<&str> = found.iter().map(|f| f["id"].as_str().unwrap()).collect();
    // 6 m (Mapillary), 13 m (Panoramax), 70 m (Mapillary); the 134 m corner image is dropped.
    assert_eq!(order, ["498763468214164", "pmx-1", "312627450377787"]);
    assert_eq!(found[1]["licence"], "etalab-2.0");
    assert_eq!(found[1]["panorama"], true);
    assert_eq!(
        found[1]["thumb_url"],
        "https://pmx.example/api/pictures/pmx-1/thumb.jpg"
    );
    assert_eq!(found[0]["licence"], "CC-BY-SA-4.0");
    assert!(found[0].get("thumb_url").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imagery_without_a_token_uses_panoramax_and_says_so() {
    let panoramax = MockServer::start().await;
    Mock::given(path("/api/search"))
        .respond_with(json(r#"{"type":"FeatureCollection","features":[]}"#))
        .expect(1)
        .mount(&panoramax)
        .await;
    let mut cmd = vigil();
    cmd.args(["imagery", "48.8584", "2.2945"])
        .args(["--panoramax-base-url", &format!("{}/api", panoramax.uri())]);
    run(cmd)
        .await
        .success()
        .stdout(predicate::str::contains("0 images within 50 m"))
        .stderr(predicate::str::contains(
            "skipping Mapillary: MAPILLARY_ACCESS_TOKEN is not set",
        ));

    vigil()
        .args(["imagery", "48.8584", "2.2945", "--provider", "mapillary"])
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "MAPILLARY_ACCESS_TOKEN is not set",
        ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imagery_reports_a_provider_failure() {
    let mapillary = MockServer::start().await;
    Mock::given(path("/images"))
        .respond_with(ResponseTemplate::new(429))
        .mount(&mapillary)
        .await;
    let panoramax = MockServer::start().await;
    Mock::given(path("/api/search"))
        .respond_with(json(r#"{"type":"FeatureCollection","features":[]}"#))
        .mount(&panoramax)
        .await;

    // One provider down: a warning, the other's answer, success.
    let mut cmd = vigil();
    cmd.env("MAPILLARY_ACCESS_TOKEN", "MLY|test")
        .args(["imagery", "48.8584", "2.2945"])
        .args(["--mapillary-base-url", &mapillary.uri()])
        .args(["--panoramax-base-url", &format!("{}/api", panoramax.uri())]);
    run(cmd).await.success().stderr(predicate::str::contains(
        "warning: Mapillary: mapillary rate limit reached",
    ));

    // The only provider asked is down: failure.
    let mut cmd = vigil();
    cmd.env("MAPILLARY_ACCESS_TOKEN", "MLY|test")
        .args(["imagery", "48.8584", "2.2945", "--provider", "mapillary"])
        .args(["--mapillary-base-url", &mapillary.uri()]);
    run(cmd)
        .await
        .failure()
        .stderr(predicate::str::contains("rate limit"));
}
