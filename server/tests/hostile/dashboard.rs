//! The dashboard's promises: scripts and styles only from the server itself (Leaflet embedded,
//! no CDN in the policy), and a session cookie that over HTTPS is `__Host-` prefixed, `Secure`,
//! and read under that name only.

use axum::body::Body;
use axum::http::Request;
use event_bus::Role;
use serde_json::json;
use tower::ServiceExt;
use vigil_server::{AppState, LeafletSource, ServerConfig};

/// A response read whole, in process: status, its `Set-Cookie` and CSP headers, body.
struct Reply {
    status: u16,
    set_cookie: String,
    csp: String,
    body: Vec<u8>,
}

async fn call(state: &AppState, method: &str, path: &str, cookie: &str, body: &str) -> Reply {
    let mut request = Request::builder().method(method).uri(path);
    if !cookie.is_empty() {
        request = request.header("cookie", cookie);
    }
    if !body.is_empty() {
        request = request.header("content-type", "application/json");
    }
    let response = vigil_server::app(state.clone())
        .oneshot(
            request
                .body(Body::from(body.to_owned()))
                .expect("a request"),
        )
        .await
        .expect("an answer");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (status, set_cookie, csp) = (
        response.status().as_u16(),
        header("set-cookie"),
        header("content-security-policy"),
    );
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("a body")
        .to_vec();
    Reply {
        status,
        set_cookie,
        csp,
        body,
    }
}

async fn state(config: ServerConfig) -> AppState {
    AppState::in_memory(config).await.expect("state").0
}

/// One directive of a policy (`script-src …`), or "" when absent.
fn directive<'a>(csp: &'a str, name: &str) -> &'a str {
    csp.split(';')
        .map(str::trim)
        .find(|d| d.split(' ').next() == Some(name))
        .unwrap_or_default()
}

#[tokio::test]
async fn the_policy_lets_no_cdn_script_in_and_the_map_still_has_leaflet() {
    let mut local = crate::common::config();
    local.dashboard.leaflet = LeafletSource::Local("leaflet/dist".into());
    let mut tiles = crate::common::config();
    tiles.dashboard.tile_url = "https://{s}.tiles.example/{z}/{x}/{y}.png".into();
    tiles.dashboard.embed_key = Some("browser-key".into());
    for config in [crate::common::config(), local, tiles] {
        let state = state(config).await;
        let page = call(&state, "GET", "/dashboard", "", "").await;
        assert_eq!(page.status, 200);
        for name in ["script-src", "style-src"] {
            assert_eq!(
                directive(&page.csp, name),
                format!("{name} 'self'"),
                "{}",
                page.csp
            );
        }
        assert!(!page.csp.contains("unpkg"), "{}", page.csp);
        assert!(!directive(&page.csp, "default-src").contains("https:"));
    }

    // With no Leaflet directory configured, the page's Leaflet is served from the binary.
    let state = state(crate::common::config()).await;
    for file in ["leaflet.js", "leaflet.css", "images/layers.png"] {
        let reply = call(
            &state,
            "GET",
            &format!("/dashboard/vendor/leaflet/{file}"),
            "",
            "",
        )
        .await;
        assert_eq!(reply.status, 200, "{file}");
        assert!(!reply.body.is_empty(), "{file}");
    }
}

/// Signs in with `token`; returns the `Set-Cookie` value.
async fn sign_in(state: &AppState, token: &str) -> String {
    let reply = call(
        state,
        "POST",
        "/api/session",
        "",
        &json!({ "token": token }).to_string(),
    )
    .await;
    assert_eq!(reply.status, 200);
    reply.set_cookie
}

/// The `name=value` pair a `Set-Cookie` value starts with.
fn pair(set_cookie: &str) -> &str {
    set_cookie.split(';').next().unwrap_or_default()
}

#[tokio::test]
async fn over_https_the_session_cookie_is_host_prefixed_secure_and_read_only_so() {
    let mut config = crate::common::config();
    config.cookie_secure = true;
    let state = state(config).await;
    let (_, viewer) = state
        .auth()
        .create_token(Role::Viewer, "wall")
        .await
        .expect("token");

    let set = sign_in(&state, &viewer).await;
    assert!(set.starts_with("__Host-vigil_session="), "{set}");
    let attributes: Vec<&str> = set.split(';').skip(1).map(str::trim).collect();
    for wanted in ["Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(attributes.contains(&wanted), "{wanted} missing: {set}");
    }
    assert!(
        !attributes
            .iter()
            .any(|a| a.to_ascii_lowercase().starts_with("domain")),
        "a __Host- cookie has no Domain: {set}"
    );

    let cookie = pair(&set).to_owned();
    let me = call(&state, "GET", "/api/session", &cookie, "").await;
    assert_eq!(me.status, 200, "the prefixed cookie is read");
    // The same secret under the plain name (as a plain-HTTP page or a sibling host could set
    // it) is not a session on an HTTPS server.
    let secret = cookie.trim_start_matches("__Host-vigil_session=");
    let planted = call(
        &state,
        "GET",
        "/api/session",
        &format!("vigil_session={secret}"),
        "",
    )
    .await;
    assert_eq!(planted.status, 401, "the unprefixed name is never read");

    // Signing out ends the session and clears the cookie under the same name and attributes,
    // or a browser would keep it.
    let out = call(&state, "DELETE", "/api/session", &cookie, "").await;
    assert_eq!(out.status, 204);
    assert!(
        out.set_cookie.starts_with("__Host-vigil_session=;"),
        "{}",
        out.set_cookie
    );
    assert!(out.set_cookie.contains("; Secure"), "{}", out.set_cookie);
    assert!(out.set_cookie.contains("Max-Age=0"), "{}", out.set_cookie);
    let after = call(&state, "GET", "/api/session", &cookie, "").await;
    assert_eq!(after.status, 401, "the session ended");
}

#[tokio::test]
async fn over_plain_http_the_session_cookie_keeps_its_plain_name() {
    let state = state(crate::common::config()).await;
    let (_, viewer) = state
        .auth()
        .create_token(Role::Viewer, "wall")
        .await
        .expect("token");
    let set = sign_in(&state, &viewer).await;
    assert!(set.starts_with("vigil_session="), "{set}");
    assert!(!set.contains("Secure"), "{set}");
    let cookie = pair(&set).to_owned();
    assert_eq!(
        call(&state, "GET", "/api/session", &cookie, "")
            .await
            .status,
        200
    );
    let secret = cookie.trim_start_matches("vigil_session=");
    let other = format!("__Host-vigil_session={secret}");
    assert_eq!(
        call(&state, "GET", "/api/session", &other, "").await.status,
        401
    );
    let out = call(&state, "DELETE", "/api/session", &cookie, "").await;
    assert!(
        out.set_cookie.starts_with("vigil_session=;"),
        "{}",
        out.set_cookie
    );
}
