//! `/v2/geosubmit` observations shared by the nodes of a cluster: in-process nodes with data
//! directories of their own on one PostgreSQL database and one Redis. A body submitted to one
//! node refines the answers of the others, a node started later replays the log, a restarted
//! node applies nothing twice, and a node cut off from PostgreSQL refuses geosubmits with a
//! 503 and loses nothing it accepted.
//!
//! Needs `VIGIL_TEST_DATABASE_URL` and `redis-server`; skips with a visible line without them
//! unless `VIGIL_E2E=required`.

mod common;
#[path = "common/pg.rs"]
mod pg;
#[path = "../../event-bus/tests/common/mod.rs"]
mod redis_server;

use std::path::Path;
use std::time::Duration;

use event_bus::Role;
use geo_locate::{GeoDb, LatLon, MacAddr};
use serde_json::{Value, json};
use vigil_server::store::PgStore;
use vigil_server::{AppState, ServerConfig};

use common::{TestServer, call};
use redis_server::RedisServer;

const MACS: [&str; 2] = ["02:aa:00:00:00:01", "02:aa:00:00:00:02"];

/// Where the reports are made.
fn spot() -> LatLon {
    LatLon::new(45.764, 4.8357).unwrap()
}

/// A geosubmit body: the two APs seen from `at`. Without a timestamp, so each node must date
/// it the same way for the answers to agree.
fn report(at: LatLon) -> Value {
    json!({"items": [{
        "position": {"latitude": at.lat, "longitude": at.lon, "accuracy": 8.0},
        "wifiAccessPoints": [
            {"macAddress": MACS[0], "signalStrength": -55},
            {"macAddress": MACS[1], "signalStrength": -70}
        ]
    }]})
}

fn locate() -> Value {
    json!({"wifiAccessPoints": [
        {"macAddress": MACS[0], "signalStrength": -55},
        {"macAddress": MACS[1], "signalStrength": -70}
    ]})
}

/// A node of the cluster on `url` and `redis`, with its data directory in `dir`.
async fn node(url: &str, redis: &RedisServer, dir: &Path) -> (AppState, Option<String>) {
    let (state, first) = AppState::open(ServerConfig {
        data_dir: dir.to_owned(),
        database_url: Some(url.to_owned()),
        redis_url: Some(redis.url()),
        cluster_name: "geo".to_owned(),
        local_agent: None,
        ..common::config()
    })
    .await
    .expect("a cluster node");
    (state, first.map(|f| f.admin_token))
}

async fn serve(url: &str, redis: &RedisServer, dir: &Path) -> TestServer {
    let (state, first) = node(url, redis, dir).await;
    TestServer::serve(state, first.unwrap_or_default()).await
}

async fn submit(server: &TestServer, token: &str, at: LatLon) -> (u16, Value) {
    call(
        &server.state,
        "POST",
        "/v2/geosubmit",
        token,
        Some(report(at)),
    )
    .await
}

async fn answer(server: &TestServer, token: &str) -> (u16, Value) {
    call(
        &server.state,
        "POST",
        "/v1/geolocate",
        token,
        Some(locate()),
    )
    .await
}

/// Polls `server` until its `/v1/geolocate` answer is `expected`, for at most 15 s.
async fn answers_within(server: &TestServer, token: &str, expected: &Value) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = answer(server, token).await;
        if status == 200 && &body == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {status} {body}, expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the overlay in `dir` knows: the first AP's sample count and the position applied.
fn overlay_state(dir: &Path, log: &str) -> (u32, u64) {
    let db = GeoDb::open(dir.join("geodb")).unwrap();
    let samples = db
        .overlay()
        .wifi(MacAddr::parse_station(MACS[0]).unwrap())
        .unwrap()
        .map_or(0, |s| s.samples);
    (samples, db.overlay().log_position(log).unwrap())
}

fn at(body: &Value) -> LatLon {
    LatLon::new(
        body["location"]["lat"].as_f64().unwrap(),
        body["location"]["lng"].as_f64().unwrap(),
    )
    .unwrap()
}

async fn run<F, Fut>(test: &'static str, body: F)
where
    F: FnOnce(String, RedisServer) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let Some(redis) = RedisServer::start(test) else {
        return;
    };
    pg::with_db(test, move |url| body(url, redis)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_geosubmit_on_one_node_refines_the_others_and_a_new_node_replays_the_log() {
    run(
        "a_geosubmit_on_one_node_refines_the_others_and_a_new_node_replays_the_log",
        |url, redis| async move {
            let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
            let a = serve(&url, &redis, dirs[0].path()).await;
            let b = serve(&url, &redis, dirs[1].path()).await;
            let operator = a.token(Role::Operator).await;
            let viewer = b.token(Role::Viewer).await;
            assert_eq!(answer(&b, &viewer).await.0, 404, "unknown before");

            let (status, body) = submit(&a, &operator, spot()).await;
            assert_eq!((status, &body), (200, &json!({})));
            // The receiving node answers from it at once, the other within a bounded wait.
            let (status, on_a) = answer(&a, &viewer).await;
            assert_eq!(status, 200, "{on_a}");
            assert!(at(&on_a).distance_m(spot()) < 15.0, "{on_a}");
            answers_within(&b, &viewer, &on_a).await;

            // More history than one batch of a replay: rows appended straight into the log
            // (as other nodes would), then one more request on B.
            let pg = PgStore::connect(&url).await.unwrap();
            for i in 0..300 {
                let body = report(spot().offset(f64::from(i % 7), 0.0)).to_string();
                pg.append_geosubmit(&body).await.unwrap();
            }
            let (status, body) = submit(&b, &operator, spot().offset(0.0, 10.0)).await;
            assert_eq!((status, &body), (200, &json!({})));
            let (_, on_b) = answer(&b, &viewer).await;
            assert_ne!(on_b, on_a, "the new rows moved the answer");
            answers_within(&a, &viewer, &on_b).await;

            // A node started now, with an empty overlay, replays the whole log and answers
            // exactly as the others do.
            let c = serve(&url, &redis, dirs[2].path()).await;
            answers_within(&c, &viewer, &on_b).await;
            a.stop().await;
            b.stop().await;
            c.stop().await;
            let log = pg.geosubmit_log_name().await.unwrap();
            let head = u64::try_from(pg.geosubmit_head().await.unwrap()).unwrap();
            assert_eq!(head, 302);
            for dir in &dirs {
                assert_eq!(
                    overlay_state(dir.path(), &log),
                    (302, head),
                    "each row once"
                );
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_resumes_where_it_stopped_and_applies_nothing_twice() {
    run(
        "a_restarted_node_resumes_where_it_stopped_and_applies_nothing_twice",
        |url, redis| async move {
            let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
            let a = serve(&url, &redis, dir_a.path()).await;
            let b = serve(&url, &redis, dir_b.path()).await;
            let operator = a.token(Role::Operator).await;
            assert_eq!(submit(&a, &operator, spot()).await.0, 200);
            let (_, first) = answer(&a, &operator).await;
            answers_within(&b, &operator, &first).await;
            b.stop().await;
            let pg = PgStore::connect(&url).await.unwrap();
            let log = pg.geosubmit_log_name().await.unwrap();
            assert_eq!(overlay_state(dir_b.path(), &log), (1, 1));

            // While B is down, A accepts another report: B must pick it up when it is back,
            // and must not apply the first one again.
            assert_eq!(submit(&a, &operator, spot().offset(30.0, 0.0)).await.0, 200);
            let b = serve(&url, &redis, dir_b.path()).await;
            let (_, second) = answer(&a, &operator).await;
            answers_within(&b, &operator, &second).await;
            // And one after the restart, heard through NOTIFY.
            assert_eq!(submit(&a, &operator, spot().offset(0.0, 30.0)).await.0, 200);
            let (_, third) = answer(&a, &operator).await;
            answers_within(&b, &operator, &third).await;
            b.stop().await;
            a.stop().await;
            assert_eq!(overlay_state(dir_b.path(), &log), (3, 3));
            assert_eq!(overlay_state(dir_a.path(), &log), (3, 3));
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_postgres_a_geosubmit_is_a_503_and_nothing_accepted_is_lost() {
    run(
        "without_postgres_a_geosubmit_is_a_503_and_nothing_accepted_is_lost",
        |url, redis| async move {
            let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
            let a = serve(&url, &redis, dir_a.path()).await;
            let b = serve(&url, &redis, dir_b.path()).await;
            let operator = a.token(Role::Operator).await;
            assert_eq!(submit(&a, &operator, spot()).await.0, 200);

            // What a database outage does to the nodes: their connections are closed and no
            // new one is let in (from the server's maintenance database: ours is the one shut).
            let server = std::env::var(pg::URL_VAR).unwrap();
            let (admin, connection) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            let name = url.rsplit('/').next().unwrap().to_owned();
            admin
                .batch_execute(&format!(
                    "ALTER DATABASE {name} ALLOW_CONNECTIONS false;
                     SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}';"
                ))
                .await
                .unwrap();
            let (status, body) = submit(&a, &operator, spot().offset(500.0, 0.0)).await;
            assert_eq!(status, 503, "{body}");
            assert_eq!(body["error"]["code"], 503, "{body}");
            assert_eq!(body["error"]["errors"][0]["reason"], "serviceUnavailable");
            // Answers come from the local overlay: they go on.
            let (status, before) = answer(&a, &operator).await;
            assert_eq!(status, 200, "{before}");

            admin
                .batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
                .await
                .unwrap();
            // The pool drops the connections that were cut as it meets them: a request may
            // still fail while it does, never more than the pool holds.
            let mut tries = 0;
            loop {
                tries += 1;
                let (status, body) = submit(&b, &operator, spot().offset(0.0, 20.0)).await;
                if status == 200 {
                    break;
                }
                assert_eq!(status, 503, "{body}");
                assert!(tries <= 20, "PostgreSQL is back but geosubmits still fail");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let (_, after) = answer(&b, &operator).await;
            answers_within(&a, &operator, &after).await;
            a.stop().await;
            b.stop().await;
            let pg = PgStore::connect(&url).await.unwrap();
            let log = pg.geosubmit_log_name().await.unwrap();
            let rows = pg.geosubmits_after(0, 10, 1 << 20).await.unwrap();
            assert_eq!(rows.len(), 2, "the refused body was not stored: {rows:?}");
            let head = u64::try_from(rows[1].id).unwrap();
            assert_eq!(overlay_state(dir_a.path(), &log), (2, head));
            assert_eq!(overlay_state(dir_b.path(), &log), (2, head));
        },
    )
    .await;
}
