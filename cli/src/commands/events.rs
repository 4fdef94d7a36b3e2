//! `vigil events tail`: follow a server's event stream in the terminal.
//!
//! Connects to `/ws`, authenticates with the token in the first message (never in the URL),
//! subscribes, prints events as they come, and after a lost connection reconnects with back-off
//! and resumes from the last `(epoch, seq)` it printed, so nothing is shown twice and a gap the
//! server can no longer fill is said out loud.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use event_bus::{Envelope, Severity};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// Arguments of `vigil events`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: EventsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum EventsCommand {
    /// Print events live, resuming after reconnects without duplicates.
    #[command(after_help = "Examples:\n  \
        VIGIL_TOKEN=vgl_... vigil events tail --server http://127.0.0.1:8000\n  \
        vigil events tail --server http://127.0.0.1:8000 --room alerts --min-severity warning --json")]
    Tail(TailArgs),
}

/// Arguments of `vigil events tail`.
#[derive(Debug, clap::Args)]
pub struct TailArgs {
    /// The server, e.g. http://127.0.0.1:8000 (https:// for TLS).
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    server: String,
    /// An access token (viewer or above); read from VIGIL_TOKEN when not given.
    #[arg(long, env = "VIGIL_TOKEN", hide_env_values = true)]
    token: String,
    /// Rooms to follow (repeatable; default: every room the token may read).
    #[arg(long = "room", value_name = "ROOM")]
    rooms: Vec<String>,
    /// Start after this sequence number (replayed from the server's history).
    #[arg(long)]
    since: Option<u64>,
    /// The least severity shown.
    #[arg(long, value_parser = parse_severity)]
    min_severity: Option<Severity>,
    /// Print one JSON envelope per line.
    #[arg(long)]
    json: bool,
    /// Exit after this many events.
    #[arg(long)]
    count: Option<u64>,
}

fn parse_severity(text: &str) -> Result<Severity, String> {
    text.parse().map_err(|e: event_bus::Error| e.to_string())
}

/// Runs `vigil events`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let EventsCommand::Tail(args) = args.command;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(tail(args))
}

/// The `/ws` URL of a server given as `http(s)://host:port` (or already `ws(s)://`).
pub(crate) fn ws_url(server: &str) -> anyhow::Result<String> {
    let server = server.trim_end_matches('/');
    let url = if let Some(rest) = server.strip_prefix("http://") {
        format!("ws://{rest}/ws")
    } else if let Some(rest) = server.strip_prefix("https://") {
        format!("wss://{rest}/ws")
    } else if server.starts_with("ws://") || server.starts_with("wss://") {
        format!("{server}/ws")
    } else {
        bail!("--server must start with http://, https://, ws:// or wss://, got {server:?}");
    };
    if url.contains('?') {
        bail!("--server must not carry a query string (tokens never go in URLs)");
    }
    Ok(url)
}

/// Where the stream stands: the last event printed.
#[derive(Debug, Default, Clone)]
struct Resume {
    epoch: Option<String>,
    seq: Option<u64>,
}

enum Outcome {
    /// The requested count was reached.
    Done,
    /// The connection ended; try again.
    Lost(String),
}

async fn tail(args: TailArgs) -> anyhow::Result<ExitCode> {
    let url = ws_url(&args.server)?;
    let colour = !args.json && std::io::stdout().is_terminal();
    let mut resume = Resume {
        epoch: None,
        seq: args.since,
    };
    let mut printed = 0u64;
    let mut delay = Duration::from_millis(500);
    loop {
        match session(&url, &args, &mut resume, &mut printed, colour).await {
            Ok(Outcome::Done) => return Ok(ExitCode::SUCCESS),
            Ok(Outcome::Lost(why)) => eprintln!(
                "connection lost ({why}); reconnecting in {:.1} s",
                delay.as_secs_f64()
            ),
            Err(err) => return Err(err),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

/// One connection. Errors that retrying cannot fix (a refused token, a forbidden room) end the
/// command; a lost connection is `Outcome::Lost`.
async fn session(
    url: &str,
    args: &TailArgs,
    resume: &mut Resume,
    printed: &mut u64,
    colour: bool,
) -> anyhow::Result<Outcome> {
    let (mut ws, _) = match tokio_tungstenite::connect_async(url).await {
        Ok(pair) => pair,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            bail!(
                "the server refused the connection: HTTP {}",
                response.status()
            )
        }
        Err(err) => return Ok(Outcome::Lost(err.to_string())),
    };
    let send = |value: Value| Message::Text(value.to_string().into());
    if ws
        .send(send(json!({"type": "auth", "token": args.token})))
        .await
        .is_err()
    {
        return Ok(Outcome::Lost("send failed".into()));
    }
    let mut subscribed = false;
    while let Some(frame) = ws.next().await {
        let text = match frame {
            Ok(Message::Text(text)) => text,
            Ok(Message::Close(Some(close))) => {
                let code = u16::from(close.code);
                match code {
                    4001 => bail!("the server refused the token ({})", close.reason),
                    4003 => bail!("forbidden: {}", close.reason),
                    _ => return Ok(Outcome::Lost(format!("closed {code}: {}", close.reason))),
                }
            }
            Ok(Message::Close(None)) => return Ok(Outcome::Lost("closed".into())),
            Ok(_) => continue,
            Err(err) => return Ok(Outcome::Lost(err.to_string())),
        };
        let frame: Value =
            serde_json::from_str(&text).context("the server sent a frame that is not JSON")?;
        match frame["type"].as_str().unwrap_or_default() {
            "welcome" => {
                let epoch = frame["epoch"].as_str().unwrap_or_default().to_owned();
                let rooms: Vec<String> = if args.rooms.is_empty() {
                    frame["rooms"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|r| r["subscribe"] == true)
                        .filter_map(|r| r["name"].as_str().map(str::to_owned))
                        .collect()
                } else {
                    args.rooms.clone()
                };
                let mut subscribe = json!({"type": "subscribe", "id": "tail", "rooms": rooms});
                if let Some(min) = args.min_severity {
                    subscribe["min_severity"] = json!(min);
                }
                if let Some(seq) = resume.seq {
                    // A first run with --since has no epoch yet: the server's current one.
                    let since_epoch = resume.epoch.clone().unwrap_or_else(|| epoch.clone());
                    subscribe["since"] = json!({"epoch": since_epoch, "seq": seq});
                }
                if resume.epoch.as_deref().is_some_and(|e| e != epoch) {
                    eprintln!(
                        "note: the server restarted (new epoch); events from before may be missing"
                    );
                }
                resume.epoch = Some(epoch);
                if ws.send(send(subscribe)).await.is_err() {
                    return Ok(Outcome::Lost("send failed".into()));
                }
            }
            "event" => {
                let envelope: Envelope =
                    serde_json::from_value(frame["event"].clone()).context("malformed event")?;
                if resume.seq.is_some_and(|seq| envelope.seq <= seq)
                    && resume.epoch.as_deref() == Some(&envelope.epoch.to_string())
                {
                    continue;
                }
                resume.seq = Some(envelope.seq);
                print_event(&frame["event"], &envelope, args.json, colour)?;
                *printed += 1;
                if args.count.is_some_and(|n| *printed >= n) {
                    let _ = ws.close(None).await;
                    return Ok(Outcome::Done);
                }
            }
            "recovered" if frame["recovered"] == false => {
                eprintln!(
                    "note: some events could not be replayed (the server's history no longer reaches back)"
                );
            }
            "lagged" => eprintln!("note: {} events were missed", frame["missed"]),
            "ack" if frame["id"] == "tail" => subscribed = true,
            "error" => {
                let code = frame["code"].as_str().unwrap_or_default();
                if !subscribed && matches!(code, "forbidden" | "unknown_room" | "invalid_name") {
                    bail!("{}", frame["message"].as_str().unwrap_or(code));
                }
                eprintln!(
                    "server error: {}",
                    frame["message"].as_str().unwrap_or(code)
                );
            }
            _ => {}
        }
    }
    Ok(Outcome::Lost("stream ended".into()))
}

fn print_event(raw: &Value, envelope: &Envelope, json: bool, colour: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{raw}")?;
        return Ok(out.flush()?);
    }
    let (start, end) = if colour {
        let code = match envelope.severity {
            Severity::Info => "36",
            Severity::Success => "32",
            Severity::Warning => "33",
            Severity::Error => "31",
            Severity::Critical => "1;97;41",
        };
        (format!("\x1b[{code}m"), "\x1b[0m")
    } else {
        (String::new(), "")
    };
    // Data from the server is shown as JSON text: control characters arrive escaped, so a
    // hostile event cannot drive the terminal.
    writeln!(
        out,
        "{} {start}{:<8}{end} #{:<6} {:<10} {:<26} {}",
        envelope.time.format("%H:%M:%S"),
        envelope.severity,
        envelope.seq,
        envelope.room,
        envelope.kind,
        envelope.data
    )?;
    Ok(out.flush()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_become_websocket_urls() {
        assert_eq!(
            ws_url("http://127.0.0.1:8000").unwrap(),
            "ws://127.0.0.1:8000/ws"
        );
        assert_eq!(
            ws_url("https://ops.example/").unwrap(),
            "wss://ops.example/ws"
        );
        assert!(ws_url("127.0.0.1:8000").is_err());
        assert!(ws_url("http://h/?token=x").is_err());
    }
}
