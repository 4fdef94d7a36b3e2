//! Helpers shared by the server's integration tests: a server on 127.0.0.1:0 with an in-memory
//! database, tokens per role, and a WebSocket client.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use event_bus::Role;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use vigil_server::{AppState, ServerConfig};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct TestServer {
    pub addr: SocketAddr,
    pub state: AppState,
    pub admin: String,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<vigil_server::Result<()>>>,
}

impl TestServer {
    pub async fn start(config: ServerConfig) -> TestServer {
        let (state, first) = AppState::in_memory(config).await.expect("state");
        TestServer::serve(state, first.admin_token).await
    }

    /// Serves `state` on a free loopback port; `admin` is a token of its database.
    pub async fn serve(state: AppState, admin: String) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(vigil_server::serve(listener, state.clone(), async move {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            state,
            admin,
            stop: Some(stop),
            handle: Some(handle),
        }
    }

    pub async fn token(&self, role: Role) -> String {
        self.state
            .auth()
            .create_token(role, "test")
            .await
            .expect("token")
            .1
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// A socket that has not authenticated yet.
    pub async fn connect(&self) -> Ws {
        let (ws, _) = tokio_tungstenite::connect_async(self.url())
            .await
            .expect("connect");
        ws
    }

    /// A socket authenticated with `token`, its `welcome` already read.
    pub async fn connect_as(&self, token: &str) -> (Ws, Value) {
        let mut ws = self.connect().await;
        send(&mut ws, serde_json::json!({"type": "auth", "token": token})).await;
        let welcome = recv(&mut ws).await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        (ws, welcome)
    }

    pub async fn upgrade_status(&self, path: &str, origin: Option<&str>) -> u16 {
        let mut request = format!("ws://{}{path}", self.addr)
            .into_client_request()
            .unwrap();
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().unwrap());
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok(_) => 101,
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                response.status().as_u16()
            }
            Err(other) => panic!("unexpected {other}"),
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(20), handle)
                .await
                .expect("server stops within its drain timeout")
                .unwrap()
                .unwrap();
        }
    }
}

pub async fn send(ws: &mut Ws, value: Value) {
    ws.send(Message::Text(value.to_string().into()))
        .await
        .expect("send");
}

/// The next text frame as JSON; panics on close or after 5 s.
pub async fn recv(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame within 5 s")
            .expect("stream open")
            .expect("frame");
        match message {
            Message::Text(text) => return serde_json::from_str(&text).expect("JSON frame"),
            Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => continue,
        }
    }
}

/// Reads until the close frame and returns its code; panics after 10 s.
pub async fn close_code(ws: &mut Ws) -> u16 {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("closed within 10 s");
        match message {
            Some(Ok(Message::Close(Some(frame)))) => return frame.code.into(),
            Some(Ok(Message::Close(None))) => return 1005,
            Some(Ok(_)) => continue,
            Some(Err(err)) => panic!("socket error before a close frame: {err}"),
            None => panic!("stream ended without a close frame"),
        }
    }
}

/// A configuration for tests: small timeouts, and every outside provider moved to a loopback
/// port where nothing listens, so no test can ever reach a public service by accident.
pub fn config() -> ServerConfig {
    let nowhere = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
        format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port())
    };
    let mut config = ServerConfig {
        auth_timeout: Duration::from_millis(300),
        drain_timeout: Duration::from_secs(5),
        ..ServerConfig::default()
    };
    config.imagery.panoramax_base_url = Some(format!("{nowhere}/api"));
    config.imagery.mapillary_base_url = Some(format!("{nowhere}/graph"));
    config.imagery.google_base_url = Some(nowhere.clone());
    config.geo.wigle_base_url = Some(nowhere.clone());
    config.geo.opencellid_base_url = Some(nowhere);
    config
}

/// Calls the router in process with a bearer token; returns the status and the JSON body.
pub async fn call(
    state: &AppState,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    use tower::ServiceExt;
    let mut request = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"));
    let body = match body {
        Some(json) => {
            request = request.header("content-type", "application/json");
            axum::body::Body::from(json.to_string())
        }
        None => axum::body::Body::empty(),
    };
    let response = vigil_server::app(state.clone())
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Reads frames until one satisfies `pick`, within `secs` seconds; returns it.
pub async fn wait_for(ws: &mut Ws, secs: u64, mut pick: impl FnMut(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let message = tokio::time::timeout(left, ws.next())
            .await
            .expect("the awaited frame did not come in time")
            .expect("stream open")
            .expect("frame");
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text).expect("JSON frame");
            if pick(&value) {
                return value;
            }
        }
    }
}
