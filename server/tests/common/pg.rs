//! A database of its own for each PostgreSQL test, on the server named by
//! `VIGIL_TEST_DATABASE_URL` (a superuser URL, e.g. `postgres://postgres@127.0.0.1:5432/postgres`).
//!
//! Without it a test prints a visible `skipping:` line and passes, unless `VIGIL_E2E=required`,
//! which makes that a failure. Each test runs in a fresh `vigil_t_<random>` database, dropped
//! afterwards (also when the test fails or times out), so tests run in parallel.

#![allow(dead_code)]

use std::future::Future;
use std::io::Write;
use std::time::Duration;

use tokio_postgres::NoTls;

/// The variable naming the test server.
pub const URL_VAR: &str = "VIGIL_TEST_DATABASE_URL";

/// The longest a test may run.
pub const TEST_LIMIT: Duration = Duration::from_secs(90);

fn required() -> bool {
    std::env::var("VIGIL_E2E").is_ok_and(|v| v == "required")
}

/// The server URL, or `None` after a visible skip line.
pub fn server_url(test: &str) -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(!required(), "VIGIL_E2E=required but {URL_VAR} is not set");
            // Straight to stderr, past the test harness's capture, so the skip is seen.
            let _ = writeln!(
                std::io::stderr(),
                "skipping: {test}: no PostgreSQL (set {URL_VAR}=postgres://USER@127.0.0.1:PORT/postgres)"
            );
            None
        }
    }
}

/// `url` with its database name replaced by `name` (URL form only).
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    format!("{}/{name}{query}", &base[..path_start])
}

async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, connection) =
        tokio::time::timeout(Duration::from_secs(10), tokio_postgres::connect(url, NoTls))
            .await
            .expect("connecting to the test server timed out")
            .expect("connecting to the test server");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Runs `body` with the URL of a fresh database, bounded by [`TEST_LIMIT`], then drops the
/// database and re-raises the body's panic, if any. Returns at once (after the skip line) when
/// no server is configured.
pub async fn with_db<F, Fut>(test: &str, body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(server) = server_url(test) else {
        return;
    };
    let name = format!("vigil_t_{}", uuid::Uuid::new_v4().simple());
    admin(&server)
        .await
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("CREATE DATABASE");
    let mut handle = tokio::spawn(body(with_database(&server, &name)));
    let outcome = tokio::time::timeout(TEST_LIMIT, &mut handle).await;
    if outcome.is_err() {
        handle.abort();
        let _ = handle.await;
    }
    // FORCE: pools and listeners the body left open are disconnected.
    let dropped = admin(&server)
        .await
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await;
    match outcome {
        Err(_) => panic!("{test}: timed out after {TEST_LIMIT:?}"),
        Ok(Err(join)) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Ok(Err(join)) => panic!("{test}: {join}"),
        Ok(Ok(())) => {}
    }
    dropped.expect("DROP DATABASE");
}
