//! `/ws`: per connection, a reader task (the client's messages, agent orders, shutdown) and a
//! writer task that takes the replies the reader queues and the events of the connection's bus
//! subscription, and writes as many as are ready per flush.
//!
//! Events go from the bus to the writer directly: the bus hands each subscriber an `Arc` of the
//! event, the `{"type":"event",…}` frame is built once per event for every connection, and a
//! delivery wakes one task. A client that stops reading backs up in its bus queue, bounded by
//! `outbound_queue_bytes` (and 4096 events); past it the writer drops the backlog and closes the
//! client with 4008, even while blocked on the client's full socket, so it never slows anyone
//! else and never holds more than that bound.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use event_bus::{
    Delivery, Epoch, EventDraft, EventKind, Filter, Position, Room, Severity, SubscribeOptions,
    Subscription,
};
use futures::stream::{SplitSink, SplitStream, Stream};
use futures::task::AtomicWaker;
use futures::{SinkExt, StreamExt};
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::node::admission::Ticket;
use crate::node::auth::{Principal, Revocation};
use crate::node::orchestrator::{AgentHello, AgentOrder};
use crate::node::proxies::Peer;
use crate::node::state::{ConnectionSlot, Node};
use crate::store::role_name;
use crate::transport::http::{check_origin, session_principal};
use crate::transport::limit::RateLimit;
use crate::transport::protocol::{
    ClientMessage, RoomInfo, ServerMessage, Since, close, event_frame,
};

/// The `/ws` upgrade: refuses tokens in the query string, foreign origins and connections past
/// the cap, then hands the socket to a connection task.
///
/// A client that brings credentials (the session cookie, or `Authorization: Bearer`) takes a
/// connection slot at once and is welcomed without an `auth` message. Any other socket waits in
/// the unauthenticated budget ([`crate::node::admission`]) until its `auth` message, and takes its
/// slot then.
pub async fn upgrade(
    State(state): State<Node>,
    Peer(peer): Peer,
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
    let principal = match credentials(&state, &headers).await {
        Ok(principal) => principal,
        Err(err) => {
            state.counters().refused.fetch_add(1, Ordering::Relaxed);
            return err.into_response();
        }
    };
    let admitted = match &principal {
        Some(_) => state.try_connect().map(Admitted::Slot),
        None => state
            .ws_admission()
            .admit(peer, true)
            .ok()
            .map(Admitted::Waiting),
    };
    let Some(admitted) = admitted else {
        state.counters().refused.fetch_add(1, Ordering::Relaxed);
        return ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "too_many_connections",
            "connection limit reached",
        )
        .into_response();
    };
    let max = state.config().max_message_bytes;
    let tracker = state.tracker().clone();
    // tungstenite's own limit sits above ours so that an oversized message gets a clear close
    // (1009) from us instead of a read error; past twice the limit the socket is simply dropped.
    ws.max_message_size(max * 2)
        .max_frame_size(max * 2)
        .read_buffer_size(512)
        .write_buffer_size(8 * 1024)
        .on_upgrade(move |socket| {
            // Split, start the writer, and run the reader in a task of its own, so that axum's
            // upgrade task ends here and frees its state: a future keeps its arguments and its
            // largest state for its whole life, and an idle connection should carry neither the
            // unsplit socket nor the upgrade.
            let (sink, stream) = socket.split();
            let connection = Connection::new(state, principal, admitted);
            let writer = tokio::spawn(writer(
                sink,
                Arc::clone(&connection.shared),
                connection.state.clone(),
            ));
            tokio::spawn(tracker.track_future(connection.run(stream, writer)));
            std::future::ready(())
        })
}

/// What a socket holds: a connection slot, or a place in the unauthenticated budget.
enum Admitted {
    Slot(ConnectionSlot),
    Waiting(Ticket),
}

/// Credentials brought to the upgrade: `Authorization: Bearer` (which must then be valid), else
/// the session cookie; `None` when neither is there.
async fn credentials(state: &Node, headers: &HeaderMap) -> Result<Option<Principal>, ApiError> {
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        // A token this node cannot check now (the shared database is away) is a 503, which
        // clients retry, not a 401, which `vigil agent` takes as final.
        let principal = match token {
            Some(t) => state.auth().check_token(t).await?,
            None => None,
        };
        return match principal {
            Some(principal) => Ok(Some(principal)),
            None => Err(ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "invalid bearer token",
            )),
        };
    }
    Ok(session_principal(state, headers).await)
}

/// How long a client closed for being too slow has to take its close frame before the socket is
/// dropped (Centrifugo waits 1 s).
const SLOW_CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// What the reader task hands the writer task, behind one short lock.
///
/// Events do not pass through here: the writer takes them straight from the connection's bus
/// subscription when the socket can take more, so a delivery costs one task wake-up, not two,
/// and a client that stops reading backs up in the bus's queue (shared `Arc`s, bounded in
/// events and bytes) rather than in copies.
struct Outbox {
    /// Replies, errors and replayed events, in order.
    frames: VecDeque<Message>,
    /// Bytes of `frames`.
    bytes: usize,
    /// The live stream.
    subscription: Option<Subscription>,
    /// Set when the connection ends.
    end: Option<WriterEnd>,
}

impl Outbox {
    /// What the writer does at once because the connection ended; `None` while it writes on.
    fn stop_step(&self) -> Option<Step> {
        match self.end {
            Some(WriterEnd::Drop) => Some(Step::Stop),
            Some(WriterEnd::TooSlow) => Some(Step::TooSlow),
            Some(WriterEnd::Close) | None => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriterEnd {
    /// The socket is gone: stop at once.
    Drop,
    /// The client is too slow: drop the backlog, send 4008, wait a little, stop.
    TooSlow,
    /// A close frame is queued last in `frames`: write everything, then stop.
    Close,
}

struct Shared {
    outbox: Mutex<Outbox>,
    waker: AtomicWaker,
    /// Bytes of replies queued before the client counts as too slow.
    cap: usize,
}

impl Shared {
    fn new(cap: usize) -> Shared {
        Shared {
            outbox: Mutex::new(Outbox {
                frames: VecDeque::new(),
                bytes: 0,
                subscription: None,
                end: None,
            }),
            waker: AtomicWaker::new(),
            cap,
        }
    }

    /// Ends the writer; the first reason given wins.
    fn end(&self, end: WriterEnd) {
        let mut out = self.outbox.lock();
        if out.end.is_none() {
            out.end = Some(end);
        }
        drop(out);
        self.waker.wake();
    }

    /// Takes what the writer should write next into `batch`: replies first (they were queued
    /// before anything the subscription holds now), then events, at most `BATCH` in all.
    fn poll_take(&self, cx: &mut Context<'_>, batch: &mut Batch, state: &Node) -> Poll<Step> {
        self.waker.register(cx.waker());
        let mut out = self.outbox.lock();
        if let Some(step) = out.stop_step() {
            return Poll::Ready(step);
        }
        while batch.messages.len() < BATCH {
            let Some(message) = out.frames.pop_front() else {
                break;
            };
            let len = frame_len(&message);
            out.bytes -= len;
            batch.push(message, len, None, state);
        }
        // Past a queued close frame nothing more is written.
        let closing = out.end == Some(WriterEnd::Close);
        if !closing && out.frames.is_empty() {
            while batch.messages.len() < BATCH {
                let Some(subscription) = out.subscription.as_mut() else {
                    break;
                };
                let delivery = match subscription.try_next() {
                    Some(delivery) => delivery,
                    None => match Pin::new(subscription).poll_next(cx) {
                        Poll::Ready(Some(delivery)) => delivery,
                        // The bus is gone (the server is stopping): no more events.
                        Poll::Ready(None) => {
                            out.subscription = None;
                            break;
                        }
                        Poll::Pending => break,
                    },
                };
                match delivery {
                    Delivery::Event(event) => {
                        let frame = event_text(&event);
                        let len = frame.len();
                        batch.push(Message::Text(frame), len, Some(&event), state);
                    }
                    // The queue filled while this writer waited on the socket.
                    Delivery::Lagged(_) => return Poll::Ready(Step::TooSlow),
                }
            }
        }
        if out.frames.is_empty() && out.frames.capacity() > 0 {
            // Replies are rare: an idle connection keeps no buffer for them.
            out.frames = VecDeque::new();
        }
        if batch.messages.is_empty() {
            // Nothing to write: an idle connection keeps no batch buffer either (one small
            // allocation per turn for a busy one, against a system call per turn).
            batch.messages = VecDeque::new();
            Poll::Pending
        } else {
            Poll::Ready(Step::Write)
        }
    }

    /// Ready when, during a write, the client has fallen too far behind or the connection ended.
    fn poll_interrupt(&self, cx: &mut Context<'_>) -> Poll<Step> {
        self.waker.register(cx.waker());
        let out = self.outbox.lock();
        if let Some(step) = out.stop_step() {
            return Poll::Ready(step);
        }
        if out.bytes > self.cap {
            return Poll::Ready(Step::TooSlow);
        }
        match &out.subscription {
            Some(subscription) => subscription.poll_gap(cx).map(|_| Step::TooSlow),
            None => Poll::Pending,
        }
    }
}

/// Frames taken per turn of the writer: enough that a burst goes out in few writes, few enough
/// that a turn stays short.
const BATCH: usize = 128;

enum Step {
    Write,
    TooSlow,
    Stop,
}

/// One turn's frames, with the figures the server-wide counters get once per turn.
#[derive(Default)]
struct Batch {
    messages: VecDeque<Message>,
    bytes: usize,
    /// Each room's frame counter, kept across turns, with the events of this turn.
    rooms: Vec<(Room, Counter, u64)>,
}

impl Batch {
    fn push(
        &mut self,
        message: Message,
        len: usize,
        event: Option<&event_bus::Event>,
        state: &Node,
    ) {
        self.messages.push_back(message);
        self.bytes += len;
        if let Some(event) = event {
            match self
                .rooms
                .iter_mut()
                .find(|(room, ..)| room == event.room())
            {
                Some((.., n)) => *n += 1,
                None => {
                    let counter = state.telemetry().room_frames(event.room());
                    self.rooms.push((event.room().clone(), counter, 1));
                }
            }
        }
    }

    /// Adds this turn to the server-wide counters.
    fn count(&mut self, state: &Node) {
        state.counters().frames_out.add(self.messages.len() as u64);
        for (_, counter, n) in &mut self.rooms {
            if *n > 0 {
                counter.inc_by(*n);
                *n = 0;
            }
        }
    }
}

/// `{"type":"event","event":…}` for one event; made once per event and shared by every
/// connection that sends it.
fn event_text(event: &event_bus::Event) -> Utf8Bytes {
    event.prepared(|e| encode_event(e.json()))
}

fn encode_event(json: &bytes::Bytes) -> Utf8Bytes {
    let frame = event_frame(json);
    match String::from_utf8(frame) {
        Ok(text) => Utf8Bytes::from(text),
        // The bus builds its JSON from valid UTF-8 parts; this is never reached.
        Err(err) => Utf8Bytes::from(String::from_utf8_lossy(err.as_bytes()).into_owned()),
    }
}

/// Writes what the reader queues and what the subscription delivers, as much as is ready per
/// flush, and closes a client that falls too far behind with 4008.
async fn writer(mut sink: SplitSink<WebSocket, Message>, shared: Arc<Shared>, state: Node) {
    let mut batch = Batch::default();
    loop {
        let step = std::future::poll_fn(|cx| shared.poll_take(cx, &mut batch, &state)).await;
        match step {
            Step::Write => {}
            Step::TooSlow => return Box::pin(close_too_slow(sink, &shared, &state, batch)).await,
            Step::Stop => return,
        }
        batch.count(&state);
        let queued = batch.bytes;
        let outcome = {
            let write = async {
                while let Some(message) = batch.messages.pop_front() {
                    let closing = matches!(message, Message::Close(_));
                    sink.feed(message).await?;
                    if closing {
                        sink.flush().await?;
                        return Ok::<bool, axum::Error>(true);
                    }
                }
                sink.flush().await?;
                Ok(false)
            };
            tokio::pin!(write);
            // Most turns are written at once; only a turn that waits on a full socket is shown in
            // the queued-bytes gauge, and only then is the client watched for falling behind.
            match futures::poll!(&mut write) {
                Poll::Ready(written) => Ok(written),
                Poll::Pending => {
                    state.telemetry().queued(queued as i64);
                    let outcome = tokio::select! {
                        biased;
                        written = &mut write => Ok(written),
                        step = std::future::poll_fn(|cx| shared.poll_interrupt(cx)) => Err(step),
                    };
                    state.telemetry().queued(-(queued as i64));
                    outcome
                }
            }
        };
        batch.bytes = 0;
        match outcome {
            Ok(Ok(false)) => {}
            Ok(Ok(true)) => {
                let _ = sink.close().await;
                return;
            }
            Ok(Err(_)) | Err(Step::Stop) => return,
            Err(_) => return Box::pin(close_too_slow(sink, &shared, &state, batch)).await,
        }
    }
}

/// Drops the client's backlog and sends it 4008; a client that does not take its close frame
/// within the grace period is dropped.
async fn close_too_slow(
    mut sink: SplitSink<WebSocket, Message>,
    shared: &Shared,
    state: &Node,
    mut batch: Batch,
) {
    state
        .counters()
        .slow_disconnects
        .fetch_add(1, Ordering::Relaxed);
    batch.messages.clear();
    {
        let mut out = shared.outbox.lock();
        out.frames.clear();
        out.bytes = 0;
        // Its queue held events only for this client.
        out.subscription = None;
        out.end = Some(WriterEnd::TooSlow);
    }
    let frame = Message::Close(Some(CloseFrame {
        code: close::TOO_SLOW,
        reason: Utf8Bytes::from_static("too slow: outbound queue full"),
    }));
    let _ = tokio::time::timeout(SLOW_CLOSE_GRACE, async {
        sink.send(frame).await?;
        sink.close().await
    })
    .await;
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
    /// The writer stopped on its own (the socket failed or the client was too slow).
    WriterDone,
}

struct Connection {
    state: Node,
    /// The connection slot, once the client is authenticated.
    slot: Option<ConnectionSlot>,
    /// The place in the unauthenticated budget, until then.
    ticket: Option<Ticket>,
    /// Fires when the token this connection authenticated with is revoked.
    revoked: Option<Revocation>,
    /// Set once the client registered as an agent.
    agent_id: Option<String>,
    orders: Option<mpsc::UnboundedReceiver<AgentOrder>>,
    principal: Option<Principal>,
    /// The rooms subscribed to, sorted (a `Vec`: a connection names a handful).
    rooms: Vec<Room>,
    kinds: Vec<EventKind>,
    min_severity: Severity,
    /// Shared with the writer task.
    shared: Arc<Shared>,
}

impl Connection {
    fn new(state: Node, principal: Option<Principal>, admitted: Admitted) -> Connection {
        let (slot, ticket) = match admitted {
            Admitted::Slot(slot) => (Some(slot), None),
            Admitted::Waiting(ticket) => (None, Some(ticket)),
        };
        let revoked = principal.as_ref().map(|p| state.auth().revocation(p));
        Connection {
            slot,
            ticket,
            revoked,
            agent_id: None,
            orders: None,
            shared: Arc::new(Shared::new(state.config().outbound_queue_bytes)),
            state,
            principal,
            rooms: Vec::new(),
            kinds: Vec::new(),
            min_severity: Severity::Info,
        }
    }

    async fn run(
        mut self,
        mut stream: SplitStream<WebSocket>,
        mut writer: tokio::task::JoinHandle<()>,
    ) {
        let mut limit = RateLimit::new(self.state.config());
        let max_message_bytes = self.state.config().max_message_bytes;
        // Boxed, and dropped once the client authenticates.
        let mut auth_deadline = self
            .principal
            .is_none()
            .then(|| Box::pin(tokio::time::sleep(self.state.config().auth_timeout)));
        let shutdown = self.state.shutdown_token().clone();

        if self.principal.is_some() && !self.welcome() {
            Box::pin(self.finish(End::TooSlow, writer)).await;
            return;
        }
        let end = loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break End::Close(close::GOING_AWAY, "server shutting down"),
                () = expire(&mut auth_deadline) => {
                    break End::Close(close::UNAUTHENTICATED, "authentication timeout");
                }
                () = signal(self.ticket.as_ref().map(Ticket::evicted)) => {
                    break End::Close(close::UNAUTHENTICATED, "authenticate first: making room for newer connections");
                }
                () = signal(self.revoked.as_ref()) => {
                    break End::Close(close::UNAUTHENTICATED, "revoked");
                }
                incoming = stream.next() => {
                    let Some(Ok(message)) = incoming else {
                        // A read error is most often a message past tungstenite's own limit.
                        break if incoming.is_some() { End::Close(close::TOO_BIG, "message too big") } else { End::Gone };
                    };
                    self.state.counters().messages_in.fetch_add(1, Ordering::Relaxed);
                    // Every frame counts, pings and binary frames too, before and after `auth`.
                    if !limit.allow() {
                        self.state.counters().rate_limited.fetch_add(1, Ordering::Relaxed);
                        break End::Close(close::RATE_LIMITED, "too many messages");
                    }
                    let text = match message {
                        Message::Text(text) => text,
                        Message::Close(_) => break End::Gone,
                        Message::Ping(_) | Message::Pong(_) => continue,
                        Message::Binary(_) => {
                            if !self.error(None, "bad_message", "messages are JSON text frames".into()) {
                                break End::TooSlow;
                            }
                            continue;
                        }
                    };
                    if text.len() > max_message_bytes {
                        break End::Close(close::TOO_BIG, "message too big");
                    }
                    // Boxed: handling a message needs more state than waiting for one, and an
                    // idle connection should carry only the latter.
                    match Box::pin(self.handle(&text)).await {
                        Ok(()) => {}
                        Err(end) => break end,
                    }
                    if self.principal.is_some() {
                        auth_deadline = None;
                    }
                }
                order = next_order(&mut self.orders) => {
                    let Some(order) = order else { break End::Close(close::GOING_AWAY, "orchestrator stopped") };
                    if !self.forward_order(&order) {
                        break End::TooSlow;
                    }
                }
                // The writer stopped: the socket failed, or the client was too slow.
                _ = &mut writer => break End::WriterDone,
            }
        };
        Box::pin(self.finish(end, writer)).await;
    }

    async fn finish(mut self, end: End, writer: tokio::task::JoinHandle<()>) {
        if let Some(agent_id) = self.agent_id.take() {
            self.state
                .orchestrator()
                .disconnected(&agent_id, "disconnected");
        }
        let rooms: Vec<String> = self.rooms.iter().map(|r| r.to_string()).collect();
        self.state.join_rooms(rooms.iter().map(String::as_str), -1);
        let grace = match end {
            End::WriterDone => return,
            End::Gone => {
                self.shared.end(WriterEnd::Drop);
                return;
            }
            End::Close(code, reason) => {
                let mut out = self.shared.outbox.lock();
                out.frames.push_back(Message::Close(Some(CloseFrame {
                    code,
                    reason: Utf8Bytes::from_static(reason),
                })));
                if out.end.is_none() {
                    out.end = Some(WriterEnd::Close);
                }
                drop(out);
                self.shared.waker.wake();
                self.state.config().drain_timeout
            }
            // The writer sends 4008 within its own grace period.
            End::TooSlow => {
                self.shared.end(WriterEnd::TooSlow);
                SLOW_CLOSE_GRACE * 2
            }
        };
        // Give the writer time to flush what is queued (a slow client may still catch up and
        // read its close frame); then give up on it.
        let abort = writer.abort_handle();
        if tokio::time::timeout(grace, writer).await.is_err() {
            abort.abort();
        }
    }

    /// Queues a reply; `false` when the client is over its queue cap.
    fn send(&self, message: &ServerMessage<'_>) -> bool {
        let message = text_message(message);
        let mut out = self.shared.outbox.lock();
        let ok = queue(&mut out, message, self.shared.cap);
        drop(out);
        self.shared.waker.wake();
        ok
    }

    fn error(&self, id: Option<&str>, code: &'static str, message: String) -> bool {
        self.send(&ServerMessage::Error { id, code, message })
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
                ClientMessage::Auth { token } => {
                    match self.state.auth().check_token(&token).await {
                        Ok(Some(principal)) => {
                            // From the unauthenticated budget to a connection slot.
                            let Some(slot) = self.state.try_connect() else {
                                self.state
                                    .counters()
                                    .refused
                                    .fetch_add(1, Ordering::Relaxed);
                                return Err(End::Close(
                                    close::TRY_AGAIN_LATER,
                                    "connection limit reached",
                                ));
                            };
                            self.slot = Some(slot);
                            self.ticket = None;
                            self.revoked = Some(self.state.auth().revocation(&principal));
                            self.principal = Some(principal);
                            if self.welcome() {
                                Ok(())
                            } else {
                                Err(End::TooSlow)
                            }
                        }
                        Ok(None) => Err(End::Close(close::UNAUTHENTICATED, "invalid token")),
                        // The shared database is away and this node has not seen the token: not
                        // "invalid" (a client would give its token up), "try again later".
                        Err(err) => {
                            tracing::warn!(error = %err, "checking a token failed");
                            Err(End::Close(
                                close::TRY_AGAIN_LATER,
                                "the token cannot be checked now; try again",
                            ))
                        }
                    }
                }
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
            } => {
                self.publish(&principal, id.as_deref(), &kind, &room, severity, data)
                    .await
            }
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
            } => {
                self.register_agent(
                    &principal,
                    AgentHello {
                        agent_id,
                        name,
                        capabilities,
                        max_concurrent,
                    },
                )
                .await
            }
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

    async fn publish(
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
        let source = principal.source();
        let data = crate::node::auth::signed_data(room, data.unwrap_or_default(), &source);
        let data = match serde_json::value::to_raw_value(&data) {
            Ok(data) => data,
            Err(err) => return self.error(id, "bad_message", err.to_string()),
        };
        let draft = EventDraft {
            kind,
            room: config.name,
            severity: severity.unwrap_or_default(),
            source: Some(source),
            data,
        };
        // The ack carries the seq: wait for the broker's answer (at once in process).
        match bus.publish_draft(draft) {
            Ok(ticket) => match ticket.await {
                Ok(event) => self.send(&ServerMessage::Ack {
                    id,
                    of: "publish",
                    seq: Some(event.seq()),
                }),
                Err(err) => self.error(id, "publish_failed", err.to_string()),
            },
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
            if !self.rooms.contains(&config.name) && !added.contains(&config.name) {
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
        self.rooms.sort_unstable();

        let filter = self.filter_for(self.rooms.clone());
        // Under the outbox lock, so that the writer sees the replayed events and the new stream
        // together and in order.
        let mut out = self.shared.outbox.lock();
        let old = out.subscription.take();
        let started = match &old {
            // First subscription: the bus replays and goes live atomically.
            None => bus
                .subscribe_with(filter, self.subscribe_options(since))
                .map(|(replay, sub)| match replay {
                    Some(replay) => (replay.events, Some(replay.recovered), Vec::new(), sub),
                    None => (Vec::new(), None, Vec::new(), sub),
                })
                .map_err(|err| ("subscribe_failed", err.to_string())),
            // Adding rooms: continue from where the old subscription stood (no gap, no
            // duplicate), and replay the new rooms' history up to that point when asked.
            Some(old) => {
                let at = old.position();
                let replay = match (since, added.is_empty()) {
                    (Some(since), false) => bus
                        .since(&self.filter_for(added.clone()), since)
                        .map(|replay| {
                            let events: Vec<_> = replay
                                .events
                                .into_iter()
                                .filter(|e| e.seq() <= at.seq)
                                .collect();
                            (events, Some(replay.recovered))
                        })
                        .map_err(|err| ("replay_failed", err.to_string())),
                    _ => Ok((Vec::new(), None)),
                };
                replay.and_then(|(replayed, recovered)| {
                    bus.subscribe_with(filter, self.subscribe_options(Some(at)))
                        .map(|(cont, sub)| {
                            let cont = cont.map(|c| c.events).unwrap_or_default();
                            (replayed, recovered, cont, sub)
                        })
                        .map_err(|err| ("subscribe_failed", err.to_string()))
                })
            }
        };
        let (replayed, recovered, continued, subscription) = match started {
            Ok(started) => started,
            Err((code, message)) => {
                // The old stream goes on as it was.
                out.subscription = old;
                drop(out);
                return self.error(id, code, message);
            }
        };
        drop(old);
        let head = subscription.position().seq;
        out.subscription = Some(subscription);
        let mut ok = replayed
            .iter()
            .chain(continued.iter())
            .all(|event| queue_event(&mut out, event, self.shared.cap));
        if let (Some(recovered), true) = (recovered, ok) {
            let frame = ServerMessage::Recovered {
                id,
                recovered,
                epoch: bus.epoch().to_string(),
                head,
                replayed: replayed.len(),
            };
            ok = queue(&mut out, text_message(&frame), self.shared.cap);
        }
        if ok {
            let ack = ServerMessage::Ack {
                id,
                of: "subscribe",
                seq: None,
            };
            ok = queue(&mut out, text_message(&ack), self.shared.cap);
        }
        drop(out);
        self.shared.waker.wake();
        ok
    }

    fn unsubscribe(&mut self, id: Option<&str>, rooms: &[String]) -> bool {
        let removed: Vec<Room> = self
            .rooms
            .iter()
            .filter(|r| rooms.iter().any(|n| n == r.as_str()))
            .cloned()
            .collect();
        self.rooms.retain(|room| !removed.contains(room));
        self.state.join_rooms(removed.iter().map(Room::as_str), -1);
        let ack = ServerMessage::Ack {
            id,
            of: "unsubscribe",
            seq: None,
        };
        let mut out = self.shared.outbox.lock();
        let Some(old) = out.subscription.take() else {
            drop(out);
            return self.send(&ack);
        };
        if self.rooms.is_empty() {
            drop(out);
            return self.send(&ack);
        }
        let bus = self.state.bus().clone();
        let filter = self.filter_for(self.rooms.clone());
        match bus.subscribe_with(filter, self.subscribe_options(Some(old.position()))) {
            Ok((replay, subscription)) => {
                drop(old);
                out.subscription = Some(subscription);
                let events = replay.map(|r| r.events).unwrap_or_default();
                let ok = events
                    .iter()
                    .all(|event| queue_event(&mut out, event, self.shared.cap))
                    && queue(&mut out, text_message(&ack), self.shared.cap);
                drop(out);
                self.shared.waker.wake();
                ok
            }
            Err(err) => {
                out.subscription = Some(old);
                drop(out);
                self.error(id, "subscribe_failed", err.to_string())
            }
        }
    }

    async fn register_agent(&mut self, principal: &Principal, hello: AgentHello) -> bool {
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
        let id = match self
            .state
            .orchestrator()
            .register(hello, &principal.token_id, tx, false)
            .await
        {
            Ok(id) => id,
            Err(refused) => return self.error(None, refused.code(), refused.to_string()),
        };
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

    /// This connection's bus queue: bounded like its replies, so that a client that stops
    /// reading is cut off after `outbound_queue_bytes`.
    fn subscribe_options(&self, since: Option<Position>) -> SubscribeOptions {
        SubscribeOptions {
            since,
            queue_capacity: Some(WS_QUEUE_EVENTS),
            queue_bytes: Some(self.shared.cap),
        }
    }

    fn filter_for(&self, rooms: Vec<Room>) -> Filter {
        Filter {
            rooms,
            kinds: self.kinds.clone(),
            min_severity: self.min_severity,
        }
    }
}

/// Waits for a signal, if there is one.
async fn signal(token: Option<&CancellationToken>) {
    match token {
        Some(token) => token.cancelled().await,
        None => std::future::pending().await,
    }
}

/// Waits for the authentication deadline, if there is one.
async fn expire(deadline: &mut Option<Pin<Box<tokio::time::Sleep>>>) {
    match deadline {
        Some(sleep) => sleep.await,
        None => std::future::pending().await,
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

/// Events queued per connection before it counts as too slow (with the byte bound,
/// `outbound_queue_bytes`, whichever comes first). The queue holds shared `Arc`s, not copies.
const WS_QUEUE_EVENTS: usize = 4096;

fn text_message(message: &ServerMessage<'_>) -> Message {
    Message::Text(Utf8Bytes::from(message.to_text()))
}

/// Queues a frame for the writer; `false` when the replies queued pass `cap` bytes.
fn queue(out: &mut Outbox, message: Message, cap: usize) -> bool {
    out.bytes += frame_len(&message);
    out.frames.push_back(message);
    out.bytes <= cap
}

/// Queues a replayed event.
fn queue_event(out: &mut Outbox, event: &event_bus::Event, cap: usize) -> bool {
    queue(out, Message::Text(event_text(event)), cap)
}
