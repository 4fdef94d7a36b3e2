//! `/ws`: one task reads the client and the bus, one task writes, with a bounded byte queue
//! between them so that a client that stops reading is closed (4008) and never slows anyone else.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use event_bus::{
    Delivery, Epoch, EventDraft, EventKind, Filter, Position, Room, Severity, Subscription,
};
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::http::{check_origin, session_principal};
use crate::limit::RateLimit;
use crate::orchestrator::{AgentHello, AgentOrder};
use crate::protocol::{ClientMessage, RoomInfo, ServerMessage, Since, close, event_frame};
use crate::state::AppState;
use crate::store::role_name;

/// The `/ws` upgrade: refuses tokens in the query string, foreign origins and connections past
/// the cap, then hands the socket to a connection task.
pub async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    // Tokens in the query string are refused for every route by the router's middleware.
    if let Err(err) = check_origin(&state, &headers) {
        state.counters().refused.fetch_add(1, Ordering::Relaxed);
        return err.into_response();
    }
    if state.is_draining() {
        return ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the server is shutting down",
        )
        .into_response();
    }
    let Some(slot) = state.try_connect() else {
        state.counters().refused.fetch_add(1, Ordering::Relaxed);
        return ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "too_many_connections",
            "connection limit reached",
        )
        .into_response();
    };
    let principal = session_principal(&state, &headers);
    let max = state.config().max_message_bytes;
    let tracker = state.tracker().clone();
    // tungstenite's own limit sits above ours so that an oversized message gets a clear close
    // (1009) from us instead of a read error; past twice the limit the socket is simply dropped.
    ws.max_message_size(max * 2)
        .max_frame_size(max * 2)
        .read_buffer_size(1024)
        .write_buffer_size(8 * 1024)
        .on_upgrade(move |socket| {
            tracker.track_future(async move {
                let _slot = slot;
                Connection::new(state, principal).run(socket).await;
            })
        })
}

/// How long a client closed for being too slow has to take its close frame before the socket is
/// dropped (Centrifugo waits 1 s).
const SLOW_CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Frames waiting for the writer, counted in bytes.
struct Outbound {
    tx: mpsc::UnboundedSender<Message>,
    bytes: Arc<AtomicUsize>,
    cap: usize,
    /// Set when the client is too slow: the writer then drops every queued data frame and sends
    /// only the close frame.
    abandon: Arc<AtomicBool>,
}

impl Outbound {
    /// Queues a frame; `false` when the queue is over its cap (the client is too slow).
    fn send(&self, message: Message, len: usize) -> bool {
        let queued = self.bytes.fetch_add(len, Ordering::AcqRel) + len;
        // The writer is gone only when the socket is: nothing more to do either way.
        let _ = self.tx.send(message);
        queued <= self.cap
    }

    fn close(&self, code: u16, reason: &'static str) {
        let _ = self.tx.send(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        })));
    }
}

/// Writes queued frames, as many as are ready per flush (one syscall for a burst).
async fn writer(
    mut sink: futures::stream::SplitSink<WebSocket, Message>,
    mut rx: mpsc::UnboundedReceiver<Message>,
    bytes: Arc<AtomicUsize>,
    abandon: Arc<AtomicBool>,
    state: AppState,
) {
    // Up to 16 frames go out per flush; a small batch keeps an idle connection small.
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, 16).await > 0 {
        for message in batch.drain(..) {
            let len = frame_len(&message);
            let closing = matches!(message, Message::Close(_));
            if !closing && abandon.load(Ordering::Acquire) {
                // A client that fell this far behind gets its close frame next, not more data.
                bytes.fetch_sub(len, Ordering::AcqRel);
                state.telemetry().queued(-(len as i64));
                continue;
            }
            if sink.feed(message).await.is_err() {
                return;
            }
            bytes.fetch_sub(len, Ordering::AcqRel);
            state.telemetry().queued(-(len as i64));
            if closing {
                let _ = sink.flush().await;
                let _ = sink.close().await;
                return;
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
}

fn frame_len(message: &Message) -> usize {
    match message {
        Message::Text(text) => text.len(),
        Message::Binary(data) | Message::Ping(data) | Message::Pong(data) => data.len(),
        Message::Close(_) => 0,
    }
}

/// Why a connection ends.
enum End {
    /// The client went away or the socket failed.
    Gone,
    /// Send this close frame, then end.
    Close(u16, &'static str),
    /// The client is too slow: close it with 4008.
    TooSlow,
}

struct Connection {
    state: AppState,
    /// Set once the client registered as an agent.
    agent_id: Option<String>,
    orders: Option<mpsc::UnboundedReceiver<AgentOrder>>,
    principal: Option<Principal>,
    subscription: Option<Subscription>,
    rooms: BTreeSet<Room>,
    kinds: Vec<EventKind>,
    min_severity: Severity,
    out: Option<Outbound>,
}

impl Connection {
    fn new(state: AppState, principal: Option<Principal>) -> Connection {
        Connection {
            state,
            agent_id: None,
            orders: None,
            principal,
            subscription: None,
            rooms: BTreeSet::new(),
            kinds: Vec::new(),
            min_severity: Severity::Info,
            out: None,
        }
    }

    async fn run(mut self, socket: WebSocket) {
        let (sink, mut stream) = socket.split();
        let (tx, rx) = mpsc::unbounded_channel();
        let bytes = Arc::new(AtomicUsize::new(0));
        let abandon = Arc::new(AtomicBool::new(false));
        let writer = tokio::spawn(writer(
            sink,
            rx,
            Arc::clone(&bytes),
            Arc::clone(&abandon),
            self.state.clone(),
        ));
        self.out = Some(Outbound {
            tx,
            bytes,
            cap: self.state.config().outbound_queue_bytes,
            abandon,
        });
        let config = self.state.config().clone();
        let mut limit = RateLimit::new(&config);
        let auth_deadline = tokio::time::sleep(config.auth_timeout);
        tokio::pin!(auth_deadline);
        let shutdown = self.state.shutdown_token().clone();

        if self.principal.is_some() && !self.welcome() {
            self.finish(End::TooSlow, writer).await;
            return;
        }
        let end = loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break End::Close(close::GOING_AWAY, "server shutting down"),
                () = &mut auth_deadline, if self.principal.is_none() => {
                    break End::Close(close::UNAUTHENTICATED, "authentication timeout");
                }
                incoming = stream.next() => {
                    let Some(Ok(message)) = incoming else {
                        // A read error is most often a message past tungstenite's own limit.
                        break if incoming.is_some() { End::Close(close::TOO_BIG, "message too big") } else { End::Gone };
                    };
                    self.state.counters().messages_in.fetch_add(1, Ordering::Relaxed);
                    let text = match message {
                        Message::Text(text) => text,
                        Message::Close(_) => break End::Gone,
                        Message::Ping(_) | Message::Pong(_) => continue,
                        Message::Binary(_) => {
                            self.error(None, "bad_message", "messages are JSON text frames".into());
                            continue;
                        }
                    };
                    if !limit.allow() {
                        self.state.counters().rate_limited.fetch_add(1, Ordering::Relaxed);
                        break End::Close(close::RATE_LIMITED, "too many messages");
                    }
                    if text.len() > config.max_message_bytes {
                        break End::Close(close::TOO_BIG, "message too big");
                    }
                    match self.handle(&text).await {
                        Ok(()) => {}
                        Err(end) => break end,
                    }
                }
                order = next_order(&mut self.orders) => {
                    let Some(order) = order else { break End::Close(close::GOING_AWAY, "orchestrator stopped") };
                    if !self.forward_order(&order) {
                        break End::TooSlow;
                    }
                }
                delivery = next_delivery(&mut self.subscription) => {
                    let Some(delivery) = delivery else { break End::Close(close::GOING_AWAY, "event bus closed") };
                    if !self.deliver(delivery) {
                        break End::TooSlow;
                    }
                }
            }
        };
        self.finish(end, writer).await;
    }

    async fn finish(mut self, end: End, writer: tokio::task::JoinHandle<()>) {
        if let Some(agent_id) = self.agent_id.take() {
            self.state
                .orchestrator()
                .disconnected(&agent_id, "disconnected");
        }
        if let Some(sub) = self.subscription.take() {
            drop(sub);
        }
        let rooms: Vec<String> = self.rooms.iter().map(|r| r.to_string()).collect();
        self.state.join_rooms(rooms.iter().map(String::as_str), -1);
        let pending = self.out.as_ref().map(|out| Arc::clone(&out.bytes));
        let too_slow = matches!(end, End::TooSlow);
        if let Some(out) = self.out.take() {
            match end {
                End::Gone => {}
                End::Close(code, reason) => out.close(code, reason),
                End::TooSlow => {
                    self.state
                        .counters()
                        .slow_disconnects
                        .fetch_add(1, Ordering::Relaxed);
                    // Drop the backlog; the close frame is all this client gets now.
                    out.abandon.store(true, Ordering::Release);
                    out.close(close::TOO_SLOW, "too slow: outbound queue full");
                }
            }
            drop(out);
        }
        // Give the writer time to flush what is queued (a slow client may still catch up and
        // read its close frame); then give up on it.
        let grace = if too_slow {
            SLOW_CLOSE_GRACE
        } else {
            self.state.config().drain_timeout
        };
        let abort = writer.abort_handle();
        if tokio::time::timeout(grace, writer).await.is_err() {
            abort.abort();
        }
        // Whatever the writer never wrote leaves the server-wide queue gauge with the connection.
        if let Some(pending) = pending {
            let left = pending.swap(0, Ordering::AcqRel);
            self.state.telemetry().queued(-(left as i64));
        }
    }

    fn out(&self) -> &Outbound {
        self.out
            .as_ref()
            .expect("the outbound queue exists while the connection runs")
    }

    /// Queues a control message; `false` when the client is over its queue cap.
    fn send(&self, message: &ServerMessage<'_>) -> bool {
        let text = message.to_text();
        let len = text.len();
        self.state
            .counters()
            .frames_out
            .fetch_add(1, Ordering::Relaxed);
        self.state.telemetry().queued(len as i64);
        self.out().send(Message::Text(Utf8Bytes::from(text)), len)
    }

    fn error(&self, id: Option<&str>, code: &'static str, message: String) -> bool {
        self.send(&ServerMessage::Error { id, code, message })
    }

    /// Queues one event; `false` when the client is too slow.
    fn send_event(&self, event: &event_bus::Event) -> bool {
        let frame = event_frame(event.json());
        let len = frame.len();
        // The bus builds its JSON from valid UTF-8 parts, so this never fails.
        let Ok(text) = Utf8Bytes::try_from(frame) else {
            return true;
        };
        self.state
            .counters()
            .frames_out
            .fetch_add(1, Ordering::Relaxed);
        self.state.telemetry().frame_out(event.room());
        self.state.telemetry().queued(len as i64);
        // Over the cap, `finish` drops the backlog and queues the 4008 close.
        self.out().send(Message::Text(text), len)
    }

    fn welcome(&self) -> bool {
        let principal = self
            .principal
            .as_ref()
            .expect("welcome follows authentication");
        let bus = self.state.bus();
        let rooms = bus
            .rooms()
            .into_iter()
            .map(|r| RoomInfo {
                name: r.name.to_string(),
                subscribe: r.subscribe.allows(principal.role),
                publish: r.publish.allows(principal.role),
            })
            .collect();
        self.send(&ServerMessage::Welcome {
            role: principal.role,
            epoch: bus.epoch().to_string(),
            head: bus.head(),
            rooms,
            max_message_bytes: self.state.config().max_message_bytes,
        })
    }

    async fn handle(&mut self, text: &str) -> Result<(), End> {
        let message: ClientMessage = match serde_json::from_str(text) {
            Ok(message) => message,
            Err(err) => {
                let ok = self.error(None, "bad_message", format!("not a valid message: {err}"));
                return if ok { Ok(()) } else { Err(End::TooSlow) };
            }
        };
        let Some(principal) = self.principal.clone() else {
            return match message {
                ClientMessage::Auth { token } => match self.state.auth().verify_token(&token) {
                    Some(principal) => {
                        self.principal = Some(principal);
                        if self.welcome() {
                            Ok(())
                        } else {
                            Err(End::TooSlow)
                        }
                    }
                    None => Err(End::Close(close::UNAUTHENTICATED, "invalid token")),
                },
                _ => Err(End::Close(close::UNAUTHENTICATED, "authenticate first")),
            };
        };
        let ok = match message {
            ClientMessage::Auth { .. } => self.error(
                None,
                "already_authenticated",
                "this connection is authenticated".into(),
            ),
            ClientMessage::Ping { id } => self.send(&ServerMessage::Ack {
                id: id.as_deref(),
                of: "ping",
                seq: None,
            }),
            ClientMessage::Publish {
                id,
                kind,
                room,
                severity,
                data,
            } => self.publish(&principal, id.as_deref(), &kind, &room, severity, data),
            ClientMessage::Subscribe {
                id,
                rooms,
                kinds,
                min_severity,
                since,
            } => self.subscribe(
                &principal,
                id.as_deref(),
                &rooms,
                kinds,
                min_severity,
                since,
            ),
            ClientMessage::Unsubscribe { id, rooms } => self.unsubscribe(id.as_deref(), &rooms),
            ClientMessage::RegisterAgent {
                agent_id,
                name,
                capabilities,
                max_concurrent,
            } => self.register_agent(
                &principal,
                AgentHello {
                    agent_id,
                    name,
                    capabilities,
                    max_concurrent,
                },
            ),
            ClientMessage::Heartbeat { .. } => match &self.agent_id {
                Some(id) => {
                    self.state.orchestrator().heartbeat(id);
                    true
                }
                None => self.error(None, "not_an_agent", "register_agent first".into()),
            },
            ClientMessage::TaskProgress {
                task_id,
                progress,
                message,
            } => match &self.agent_id {
                Some(id) => match self.state.orchestrator().progress(
                    id,
                    &task_id,
                    progress,
                    message.as_deref(),
                ) {
                    Ok(()) => true,
                    Err(refused) => self.error(Some(&task_id), refused.code(), refused.to_string()),
                },
                None => self.error(None, "not_an_agent", "register_agent first".into()),
            },
            ClientMessage::ScanResult { result } => match self.agent_id.clone() {
                Some(id) => {
                    let task_id = result.task_id.clone();
                    match self.state.orchestrator().submit_result(&id, *result).await {
                        Ok(_) => self.send(&ServerMessage::Ack {
                            id: Some(&task_id),
                            of: "scan_result",
                            seq: None,
                        }),
                        Err(refused) => {
                            self.error(Some(&task_id), refused.code(), refused.to_string())
                        }
                    }
                }
                None => self.error(None, "not_an_agent", "register_agent first".into()),
            },
        };
        if ok { Ok(()) } else { Err(End::TooSlow) }
    }

    fn publish(
        &self,
        principal: &Principal,
        id: Option<&str>,
        kind: &str,
        room: &str,
        severity: Option<Severity>,
        data: Option<serde_json::Value>,
    ) -> bool {
        let bus = self.state.bus();
        let Some(config) = bus.room(room) else {
            return match Room::new(room) {
                Err(err) => self.error(id, "invalid_name", err.to_string()),
                Ok(_) => self.error(id, "unknown_room", format!("no room {room:?}")),
            };
        };
        if !config.publish.allows(principal.role) {
            return self.error(
                id,
                "forbidden",
                format!(
                    "role {} may not publish to {room:?}",
                    role_name(principal.role)
                ),
            );
        }
        let kind = match EventKind::parse(kind) {
            Ok(kind) => kind,
            Err(err) => return self.error(id, "invalid_name", err.to_string()),
        };
        let data = match serde_json::value::to_raw_value(&data.unwrap_or_default()) {
            Ok(data) => data,
            Err(err) => return self.error(id, "bad_message", err.to_string()),
        };
        let draft = EventDraft {
            kind,
            room: config.name,
            severity: severity.unwrap_or_default(),
            source: Some(source_of(principal)),
            data,
        };
        match bus.publish_draft(draft) {
            Ok(event) => self.send(&ServerMessage::Ack {
                id,
                of: "publish",
                seq: Some(event.seq()),
            }),
            Err(err) => self.error(id, "publish_failed", err.to_string()),
        }
    }

    fn subscribe(
        &mut self,
        principal: &Principal,
        id: Option<&str>,
        rooms: &[String],
        kinds: Option<Vec<String>>,
        min_severity: Option<Severity>,
        since: Option<Since>,
    ) -> bool {
        let bus = self.state.bus().clone();
        let mut added = Vec::new();
        for name in rooms {
            let Some(config) = bus.room(name) else {
                return match Room::new(name) {
                    Err(err) => self.error(id, "invalid_name", err.to_string()),
                    Ok(_) => self.error(id, "unknown_room", format!("no room {name:?}")),
                };
            };
            if !config.subscribe.allows(principal.role) {
                return self.error(
                    id,
                    "forbidden",
                    format!(
                        "role {} may not subscribe to {name:?}",
                        role_name(principal.role)
                    ),
                );
            }
            if !self.rooms.contains(&config.name) {
                added.push(config.name);
            }
        }
        let kinds = match kinds {
            None => self.kinds.clone(),
            Some(names) => match names
                .iter()
                .map(|k| EventKind::parse(k))
                .collect::<Result<Vec<_>, _>>()
            {
                Ok(kinds) => kinds,
                Err(err) => return self.error(id, "invalid_name", err.to_string()),
            },
        };
        let since = match since {
            None => None,
            Some(Since { epoch, seq }) => match epoch.parse::<Epoch>() {
                Ok(epoch) => Some(Position { epoch, seq }),
                Err(err) => return self.error(id, "invalid_epoch", err.to_string()),
            },
        };
        if rooms.is_empty() && self.rooms.is_empty() {
            return self.error(id, "bad_message", "name at least one room".into());
        }
        self.kinds = kinds;
        self.min_severity = min_severity.unwrap_or(self.min_severity);
        self.state.join_rooms(added.iter().map(Room::as_str), 1);
        self.rooms.extend(added.iter().cloned());

        let filter = self.filter_for(self.rooms.iter().cloned().collect());
        let (replayed, recovered, continued, subscription) = match self.subscription.take() {
            // First subscription: the bus replays and goes live atomically.
            None => match since {
                Some(since) => match bus.subscribe_since(filter, since) {
                    Ok((replay, sub)) => (replay.events, Some(replay.recovered), Vec::new(), sub),
                    Err(err) => return self.error(id, "subscribe_failed", err.to_string()),
                },
                None => match bus.subscribe(filter) {
                    Ok(sub) => (Vec::new(), None, Vec::new(), sub),
                    Err(err) => return self.error(id, "subscribe_failed", err.to_string()),
                },
            },
            // Adding rooms: continue from where the old subscription stood (no gap, no
            // duplicate), and replay the new rooms' history up to that point when asked.
            Some(old) => {
                let at = old.position();
                let mut replayed = Vec::new();
                let mut recovered = None;
                if let (Some(since), false) = (since, added.is_empty()) {
                    match bus.since(&self.filter_for(added.clone()), since) {
                        Ok(replay) => {
                            replayed
                                .extend(replay.events.into_iter().filter(|e| e.seq() <= at.seq));
                            recovered = Some(replay.recovered);
                        }
                        Err(err) => return self.error(id, "replay_failed", err.to_string()),
                    }
                }
                match bus.subscribe_since(filter, at) {
                    Ok((cont, sub)) => (replayed, recovered, cont.events, sub),
                    Err(err) => return self.error(id, "subscribe_failed", err.to_string()),
                }
            }
        };
        self.subscription = Some(subscription);
        for event in replayed.iter().chain(continued.iter()) {
            if !self.send_event(event) {
                return false;
            }
        }
        if let Some(recovered) = recovered {
            let sent = self.send(&ServerMessage::Recovered {
                id,
                recovered,
                epoch: bus.epoch().to_string(),
                head: self.subscription.as_ref().map_or(0, |s| s.position().seq),
                replayed: replayed.len(),
            });
            if !sent {
                return false;
            }
        }
        self.send(&ServerMessage::Ack {
            id,
            of: "subscribe",
            seq: None,
        })
    }

    fn unsubscribe(&mut self, id: Option<&str>, rooms: &[String]) -> bool {
        let removed: Vec<Room> = self
            .rooms
            .iter()
            .filter(|r| rooms.iter().any(|n| n == r.as_str()))
            .cloned()
            .collect();
        for room in &removed {
            self.rooms.remove(room);
        }
        self.state.join_rooms(removed.iter().map(Room::as_str), -1);
        let Some(old) = self.subscription.take() else {
            return self.send(&ServerMessage::Ack {
                id,
                of: "unsubscribe",
                seq: None,
            });
        };
        if self.rooms.is_empty() {
            return self.send(&ServerMessage::Ack {
                id,
                of: "unsubscribe",
                seq: None,
            });
        }
        let bus = self.state.bus().clone();
        let filter = self.filter_for(self.rooms.iter().cloned().collect());
        match bus.subscribe_since(filter, old.position()) {
            Ok((replay, subscription)) => {
                self.subscription = Some(subscription);
                for event in &replay.events {
                    if !self.send_event(event) {
                        return false;
                    }
                }
                self.send(&ServerMessage::Ack {
                    id,
                    of: "unsubscribe",
                    seq: None,
                })
            }
            Err(err) => self.error(id, "subscribe_failed", err.to_string()),
        }
    }

    fn register_agent(&mut self, principal: &Principal, hello: AgentHello) -> bool {
        if principal.role != event_bus::Role::Agent {
            return self.error(
                None,
                "forbidden",
                "only agent tokens may register agents".into(),
            );
        }
        if self.agent_id.is_some() {
            return self.error(
                None,
                "already_registered",
                "this connection is registered already".into(),
            );
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let id = self.state.orchestrator().register(hello, tx, false);
        self.agent_id = Some(id.clone());
        self.orders = Some(rx);
        let lease = self.state.config().agent_lease.as_secs();
        self.send(&ServerMessage::RegistrationAck {
            agent_id: id,
            status: "success",
            heartbeat_seconds: (lease / 3).max(1),
        })
    }

    fn forward_order(&self, order: &AgentOrder) -> bool {
        match order {
            AgentOrder::Assign(task) => self.send(&ServerMessage::AssignTask { task }),
            AgentOrder::Command { command, task_id } => self.send(&ServerMessage::Command {
                command: *command,
                task_id: task_id.as_deref(),
            }),
        }
    }

    fn filter_for(&self, rooms: Vec<Room>) -> Filter {
        Filter {
            rooms,
            kinds: self.kinds.clone(),
            min_severity: self.min_severity,
        }
    }

    /// Forwards one delivery; `false` when the client is too slow.
    fn deliver(&mut self, delivery: Delivery) -> bool {
        match delivery {
            Delivery::Event(event) => self.send_event(&event),
            Delivery::Lagged(lag) => {
                // This task fell behind the bus; replay the gap from history when it is there.
                let Some(subscription) = &self.subscription else {
                    return true;
                };
                let position = Position {
                    epoch: self.state.bus().epoch(),
                    seq: lag.resume_from,
                };
                let missed = usize::try_from(lag.missed).unwrap_or(usize::MAX);
                match self.state.bus().since(subscription.criteria(), position) {
                    Ok(replay) if replay.recovered && replay.events.len() >= missed => {
                        replay.events[..missed].iter().all(|e| self.send_event(e))
                    }
                    _ => self.send(&ServerMessage::Lagged {
                        missed: lag.missed,
                        resume_from: lag.resume_from,
                    }),
                }
            }
        }
    }
}

fn source_of(principal: &Principal) -> String {
    if principal.label.is_empty() {
        format!("token:{}", principal.token_id)
    } else {
        principal.label.clone()
    }
}

async fn next_order(
    orders: &mut Option<mpsc::UnboundedReceiver<AgentOrder>>,
) -> Option<AgentOrder> {
    match orders {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn next_delivery(subscription: &mut Option<Subscription>) -> Option<Delivery> {
    match subscription {
        Some(sub) => sub.next().await,
        None => std::future::pending().await,
    }
}
