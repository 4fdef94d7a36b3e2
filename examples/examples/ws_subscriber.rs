//! A Rust client of the server's `/ws` protocol: authenticate, subscribe, print events, and
//! resume from the last `(epoch, seq)` after a reconnect.
//!
//! ```text
//! vigil serve                                    # prints an admin token on first start
//! VIGIL_TOKEN=vgl_... cargo run -p vigil-examples --example ws_subscriber -- ws://127.0.0.1:8000/ws
//! ```
//!
//! (`vigil events tail` is the full-featured version of this.)

use std::time::Duration;

use event_bus::Envelope;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:8000/ws".into());
    let Ok(token) = std::env::var("VIGIL_TOKEN") else {
        eprintln!("set VIGIL_TOKEN to a viewer (or higher) token");
        return Ok(());
    };
    // Where we are: sent back as `since` after a reconnect, so nothing is missed or repeated.
    let mut resume: Option<(String, u64)> = None;
    loop {
        match follow(&url, &token, &mut resume).await {
            Ok(()) => return Ok(()),
            Err(err) => {
                eprintln!("connection lost ({err}); reconnecting in 2 s");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

async fn follow(url: &str, token: &str, resume: &mut Option<(String, u64)>) -> anyhow::Result<()> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
    // The token travels in the first message, never in the URL.
    ws.send(Message::Text(
        json!({"type": "auth", "token": token}).to_string().into(),
    ))
    .await?;
    while let Some(frame) = ws.next().await {
        let Message::Text(text) = frame? else {
            continue;
        };
        let frame: Value = serde_json::from_str(&text)?;
        match frame["type"].as_str() {
            Some("welcome") => {
                let mut subscribe =
                    json!({"type": "subscribe", "rooms": ["monitoring", "scans", "alerts"]});
                if let Some((epoch, seq)) = resume {
                    subscribe["since"] = json!({"epoch": epoch, "seq": seq});
                }
                ws.send(Message::Text(subscribe.to_string().into())).await?;
            }
            Some("event") => {
                let event: Envelope = serde_json::from_value(frame["event"].clone())?;
                println!(
                    "#{} {} {} {}",
                    event.seq, event.severity, event.kind, event.data
                );
                *resume = Some((event.epoch.to_string(), event.seq));
            }
            Some("recovered") if frame["recovered"] == false => {
                eprintln!("some events could not be replayed")
            }
            Some("error") => eprintln!("server: {}", frame["message"]),
            _ => {}
        }
    }
    anyhow::bail!("the server closed the connection")
}
