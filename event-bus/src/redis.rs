//! One bus shared by several nodes through Redis 7 (feature `redis`).
//!
//! [`RedisBroker`] is a [`Broker`]: give it to [`crate::Bus::with_broker`] and the bus handle
//! works as before, except that a publish on any node reaches subscribers on every node, in one
//! order, and a client resumes with `since` on any node.
//!
//! # Design
//!
//! Redis sequences; each node mirrors. Redis holds the bus-wide `seq`, the `epoch` and each
//! room's history (a stream). A publish runs one Lua script, atomically:
//!
//! 1. fail with `NOEPOCH` if the bus has no epoch (Redis lost its state; the node then runs the
//!    set-up script below and retries);
//! 2. `HINCRBY seq 1`;
//! 3. put `{"seq":<seq>,"epoch":"<epoch>"` in front of the event's JSON, which the publishing
//!    node encoded once (everything from `,"id":` on) — no node encodes it again;
//! 4. `XADD` the room's stream with entry id `<seq>-0` and an exact `MAXLEN` equal to the room's
//!    history size;
//! 5. `PUBLISH` the JSON on the bus channel, and return `seq` and `epoch`.
//!
//! The set-up script (run by every node when it (re)connects, and by a publish that met
//! `NOEPOCH`) sets a fresh random epoch when there is none, and then deletes the room streams
//! and restarts `seq` at 0: a new epoch never shows history of an old one.
//!
//! Each node keeps a local mirror: an [`InProcessBroker`] that numbers nothing itself.
//! Subscribers, filters, lag reports, history rings and `since` are the in-process ones, local
//! and synchronous. One task per node feeds the mirror from one pub/sub subscription to the bus
//! channel. It expects `seq == head + 1`; on a jump it reads the missing events from the room
//! streams (`XRANGE` on every room, merged by seq) before applying the new one. It does the
//! same after every reconnect, and when a periodic head check (`head_check`, one second by
//! default) finds that the mirror has not reached, by the next check, the head Redis had at
//! the previous one — which catches events whose `PUBLISH` it missed with nothing after them,
//! without mistaking messages still in flight for a gap. A
//! node delivers its own events only when they come back from Redis, so every subscriber on
//! every node sees the same events in the same order: strictly increasing `seq`, no gap, no
//! duplicate.
//!
//! Publishing never waits on the network: [`Broker::publish`] encodes the event, puts it on a
//! bounded queue (full: [`Error::Overloaded`] at once) and returns a pending [`Ticket`]. One
//! writer task per node takes what is queued and sends it as one pipeline of script calls, so
//! many publishes share one round trip; each ticket resolves with the event (its `seq` and
//! `epoch`) when Redis answers.
//!
//! # Key layout
//!
//! All keys share one hash tag, the configured prefix (default `vigil`), so the scripts stay
//! valid on Redis Cluster; give each bus (each test) its own prefix.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{<prefix>}:meta` | hash | `epoch` (16 hex digits), `seq` (the last number given) |
//! | `{<prefix>}:room:<room>` | stream | the room's latest events, entry id `<seq>-0`, field `j` = the event's JSON |
//! | `{<prefix>}:events` | pub/sub channel | every event's JSON, in seq order |
//!
//! # Rooms
//!
//! Every node of a bus must be configured with the same rooms and the same history sizes. A
//! room's history size is its stream's `MAXLEN` and the size of every node's local ring, so
//! every node can replay the same window. An event of a room a node does not know still
//! advances its head but reaches no one there.
//!
//! # Guarantees
//!
//! | property | guarantee |
//! |---|---|
//! | order | on every node, every subscriber sees strictly increasing `seq` across all its rooms — the same order on every node |
//! | completeness | a node applies every event still in its room's stream; an event trimmed out of its stream before the node could read it (a node away for longer than a room's history) is reported to every subscriber as a [`crate::Lagged`] and makes older resumes `recovered: false` |
//! | resume | `since` works on any node, exact within the room's history window and the epoch |
//! | publish | never waits; [`Error::Overloaded`] when the queue is full, [`Error::Unavailable`] while Redis is unreachable |
//! | acknowledged | a resolved ticket means the event is in Redis: every node delivers it |
//!
//! The seq fits in 53 bits (Redis scripts count in doubles): about 9·10¹⁵ events per epoch.
//!
//! # When Redis goes away
//!
//! - **Connection lost** (either connection of a node; an idle writer notices within one
//!   `head_check` period, as it PINGs Redis when it has nothing to send). The writer fails the publishes it had
//!   sent and not heard back about with [`Error::Unconfirmed`] (they may or may not have been
//!   published; if they were, every node delivers them), fails what was still queued with
//!   [`Error::Unavailable`], and until it is connected again every publish fails at once with
//!   [`Error::Unavailable`]. Both tasks reconnect with exponential backoff (`reconnect_min` to
//!   `reconnect_max`). On reconnecting, the mirror reads what it missed from the streams: its
//!   subscribers see a pause, then the missed events in order — nothing acknowledged is lost.
//! - **Redis restarted with its data** (AOF or RDB): the epoch and streams are back; the nodes
//!   continue as after a connection loss (events acknowledged after the last save are gone
//!   with Redis's data).
//! - **Redis restarted without its data**: the first node to reconnect (or publish) sets a new
//!   epoch and the sequence restarts at 1. Each node's mirror takes the new epoch and ends every
//!   live subscription (the positions they hold mean nothing now); a client that resumes with
//!   the old epoch gets `recovered: false`, as after a restart of a single node.
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use event_bus::{Bus, Filter, RedisBroker, RedisConfig, RoomConfig};
//!
//! # async fn run() -> Result<(), event_bus::Error> {
//! let broker = RedisBroker::connect(
//!     RedisConfig::new("redis://127.0.0.1:6379/").prefix("vigil").rooms(RoomConfig::defaults()),
//! )
//! .await?;
//! let bus = Bus::with_broker(Arc::new(broker), 1024);
//! let mut sub = bus.subscribe(Filter::all())?;
//! let event = bus.publish_json("chat_message", "chat", &serde_json::json!({"text": "hi"}))?.await?;
//! // The event comes back from Redis to this node's subscribers as to every other node's.
//! # let _ = (event, sub.recv().await);
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use parking_lot::RwLock;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisResult, Script, Value};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::broker::{Broker, InProcessBroker};
use crate::error::{Error, Result};
use crate::event::{Encoder, Epoch, Event, EventDraft};
use crate::history::Replay;
use crate::metrics::MetricsSnapshot;
use crate::room::{Room, RoomConfig};
use crate::subscription::{Filter, Position, QueueLimits, Subscription};
use crate::ticket::{Resolver, Ticket};

/// The publish script. KEYS: meta, the room's stream. ARGV: MAXLEN, channel, the event's JSON
/// from `,"id":` on.
const PUBLISH: &str = r#"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  return redis.error_reply('NOEPOCH the bus has no epoch')
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local json = string.format('{"seq":%d,"epoch":"%s"', seq, epoch) .. ARGV[3]
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[1], string.format('%d-0', seq), 'j', json)
redis.call('PUBLISH', ARGV[2], json)
return {seq, epoch}
"#;

/// The set-up script. KEYS: meta, then every room's stream. ARGV: a fresh epoch, used only
/// when the bus has none (then the streams are dropped and seq restarts).
const SETUP: &str = r#"
if redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], 'seq', 0)
  for i = 2, #KEYS do
    redis.call('DEL', KEYS[i])
  end
end
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'seq')
return {tonumber(meta[2]) or 0, meta[1]}
"#;

/// How to reach Redis and run a bus on it. See the [module docs](self).
///
/// | field | default | meaning |
/// |---|---|---|
/// | `url` | — | `redis://host:port/db` |
/// | `prefix` | `vigil` | the hash tag of every key; one per bus |
/// | `rooms` | [`RoomConfig::defaults`] | must be the same on every node |
/// | `publish_queue` | 16 384 | publishes waiting for the writer before [`Error::Overloaded`] |
/// | `batch` | 512 | most script calls in one pipeline |
/// | `head_check` | 1 s | how often the mirror compares its head with Redis's |
/// | `timeout` | 5 s | connecting, and waiting for any one answer |
/// | `reconnect_min`, `reconnect_max` | 50 ms, 5 s | the reconnection backoff |
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// The Redis URL.
    pub url: String,
    /// The hash tag of every key of this bus: no braces, no whitespace, not empty.
    pub prefix: String,
    /// The rooms; the same on every node.
    pub rooms: Vec<RoomConfig>,
    /// Publishes queued for the writer at most.
    pub publish_queue: usize,
    /// Script calls per pipeline at most.
    pub batch: usize,
    /// The period of the mirror's head check.
    pub head_check: Duration,
    /// The connection and answer timeout.
    pub timeout: Duration,
    /// The first reconnection delay.
    pub reconnect_min: Duration,
    /// The longest reconnection delay.
    pub reconnect_max: Duration,
}

impl RedisConfig {
    /// The defaults, with this URL.
    pub fn new(url: impl Into<String>) -> RedisConfig {
        RedisConfig {
            url: url.into(),
            prefix: "vigil".to_owned(),
            rooms: RoomConfig::defaults(),
            publish_queue: 16_384,
            batch: 512,
            head_check: Duration::from_secs(1),
            timeout: Duration::from_secs(5),
            reconnect_min: Duration::from_millis(50),
            reconnect_max: Duration::from_secs(5),
        }
    }

    /// Sets the key prefix (the hash tag).
    pub fn prefix(mut self, prefix: impl Into<String>) -> RedisConfig {
        self.prefix = prefix.into();
        self
    }

    /// Sets the rooms.
    pub fn rooms(mut self, rooms: Vec<RoomConfig>) -> RedisConfig {
        self.rooms = rooms;
        self
    }

    /// Sets the head-check period.
    pub fn head_check(mut self, period: Duration) -> RedisConfig {
        self.head_check = period;
        self
    }

    /// Sets the publish queue bound.
    pub fn publish_queue(mut self, capacity: usize) -> RedisConfig {
        self.publish_queue = capacity;
        self
    }

    /// Sets the reconnection backoff.
    pub fn reconnect(mut self, min: Duration, max: Duration) -> RedisConfig {
        self.reconnect_min = min;
        self.reconnect_max = max;
        self
    }

    /// Sets the connection and answer timeout.
    pub fn timeout(mut self, timeout: Duration) -> RedisConfig {
        self.timeout = timeout;
        self
    }

    fn check(&self) -> Result<()> {
        if self.prefix.is_empty()
            || self
                .prefix
                .chars()
                .any(|c| c == '{' || c == '}' || c.is_whitespace() || c.is_control())
        {
            return Err(Error::Config(
                "the Redis key prefix must be non-empty, without braces or whitespace",
            ));
        }
        if self.publish_queue == 0 || self.batch == 0 {
            return Err(Error::Config("publish_queue and batch must be at least 1"));
        }
        if self.head_check.is_zero() || self.timeout.is_zero() || self.reconnect_min.is_zero() {
            return Err(Error::Config(
                "head_check, timeout and reconnect_min must be positive",
            ));
        }
        Ok(())
    }
}

/// The names of one bus's keys.
#[derive(Debug, Clone)]
struct Keys {
    meta: String,
    channel: String,
    prefix: String,
}

impl Keys {
    fn new(prefix: &str) -> Keys {
        Keys {
            meta: format!("{{{prefix}}}:meta"),
            channel: format!("{{{prefix}}}:events"),
            prefix: prefix.to_owned(),
        }
    }

    fn room(&self, room: &str) -> String {
        format!("{{{}}}:room:{room}", self.prefix)
    }
}

/// One publish waiting for the writer.
struct Job {
    encoder: Encoder,
    stream: String,
    max_len: usize,
    resolver: Resolver,
}

/// What the broker's handle and its two tasks share.
struct Shared {
    mirror: InProcessBroker,
    keys: Keys,
    /// Room → (stream key, history size).
    rooms: RwLock<HashMap<Room, (String, usize)>>,
    /// Whether the writer holds a working connection.
    writer_up: AtomicBool,
    config: RedisConfig,
}

impl Shared {
    fn stream_keys(&self) -> Vec<(Room, String, usize)> {
        let rooms = self.rooms.read();
        let mut keys: Vec<_> = rooms
            .iter()
            .map(|(room, (key, len))| (room.clone(), key.clone(), *len))
            .collect();
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        keys
    }
}

/// A [`Broker`] whose events go through Redis, so that several nodes share one bus. See the
/// [module docs](self) for the design, the guarantees and what happens when Redis goes away.
///
/// Dropping it stops its tasks and ends its subscriptions.
pub struct RedisBroker {
    shared: Arc<Shared>,
    queue: mpsc::Sender<Job>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroker")
            .field("prefix", &self.shared.keys.prefix)
            .field("position", &self.shared.mirror.position())
            .finish_non_exhaustive()
    }
}

fn unavailable(err: impl std::fmt::Display) -> Error {
    Error::Unavailable(err.to_string())
}

impl RedisBroker {
    /// Connects, adopts the bus's epoch (or sets one when Redis has none), fills the local
    /// mirror from the room streams, and starts the writer and mirror tasks on the current
    /// Tokio runtime. Fails with [`Error::Unavailable`] when Redis cannot be reached within
    /// the timeout; once connected, it reconnects by itself.
    pub async fn connect(config: RedisConfig) -> Result<RedisBroker> {
        config.check()?;
        let client = Client::open(config.url.as_str()).map_err(unavailable)?;
        let keys = Keys::new(&config.prefix);
        let mut rooms = HashMap::with_capacity(config.rooms.len());
        for room in &config.rooms {
            rooms.insert(
                room.name.clone(),
                (keys.room(room.name.as_str()), room.history),
            );
        }
        // The mirror is built before Redis has been asked for the bus's epoch: the mirror task
        // resets it to that epoch, and `connect` waits for that before returning, so this random
        // one is never seen by a subscriber or a publisher.
        let mirror = InProcessBroker::new(config.rooms.clone(), Epoch::random())?;
        let shared = Arc::new(Shared {
            mirror,
            keys,
            rooms: RwLock::new(rooms),
            writer_up: AtomicBool::new(false),
            config,
        });
        let (queue, jobs) = mpsc::channel(shared.config.publish_queue);
        let (synced_tx, mut synced) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(run_mirror(Arc::clone(&shared), client.clone(), synced_tx)),
            tokio::spawn(run_writer(Arc::clone(&shared), client, jobs)),
        ];
        let broker = RedisBroker {
            shared,
            queue,
            tasks,
        };
        let timeout = broker.shared.config.timeout;
        let ready = async {
            loop {
                if *synced.borrow_and_update() && broker.shared.writer_up.load(Ordering::Acquire) {
                    return;
                }
                // The writer has no channel of its own: look again shortly.
                let _ = tokio::time::timeout(Duration::from_millis(10), synced.changed()).await;
            }
        };
        match tokio::time::timeout(timeout, ready).await {
            Ok(()) => Ok(broker),
            Err(_) => Err(Error::Unavailable(format!(
                "no working connection to Redis within {timeout:?}"
            ))),
        }
    }

    /// Whether the writer is connected now (publishes are accepted).
    pub fn is_connected(&self) -> bool {
        self.shared.writer_up.load(Ordering::Acquire)
    }
}

impl Drop for RedisBroker {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Broker for RedisBroker {
    fn epoch(&self) -> Epoch {
        self.shared.mirror.epoch()
    }

    fn head(&self) -> u64 {
        self.shared.mirror.head()
    }

    fn publish(&self, draft: EventDraft) -> Result<Ticket> {
        let (stream, max_len) = match self.shared.rooms.read().get(draft.room.as_str()) {
            Some((stream, len)) => (stream.clone(), *len),
            None => return Err(Error::UnknownRoom(draft.room.to_string())),
        };
        if !self.shared.writer_up.load(Ordering::Acquire) {
            return Err(Error::Unavailable("not connected to Redis".to_owned()));
        }
        let encoder = Encoder::new(draft, self.shared.mirror.epoch());
        let (ticket, resolver) = Ticket::pending();
        let job = Job {
            encoder,
            stream,
            max_len,
            resolver,
        };
        match self.queue.try_send(job) {
            Ok(()) => Ok(ticket),
            Err(mpsc::error::TrySendError::Full(_)) => Err(Error::Overloaded {
                capacity: self.shared.config.publish_queue,
            }),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Error::Closed),
        }
    }

    fn subscribe(
        &self,
        filter: Filter,
        since: Option<Position>,
        limits: QueueLimits,
    ) -> Result<(Option<Replay>, Subscription)> {
        self.shared.mirror.subscribe(filter, since, limits)
    }

    fn replay(&self, filter: &Filter, since: Position) -> Result<Replay> {
        self.shared.mirror.replay(filter, since)
    }

    /// Adds a room on this node. Every other node must add it too (see the module docs);
    /// events published to it before a node adds it are not delivered on that node.
    fn add_room(&self, config: RoomConfig) -> Result<()> {
        let mut rooms = self.shared.rooms.write();
        self.shared.mirror.add_room(config.clone())?;
        let key = self.shared.keys.room(config.name.as_str());
        rooms.insert(config.name, (key, config.history));
        Ok(())
    }

    fn rooms(&self) -> Vec<RoomConfig> {
        self.shared.mirror.rooms()
    }

    fn metrics(&self) -> MetricsSnapshot {
        self.shared.mirror.metrics()
    }
}

/// Exponential reconnection delays.
struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    fn new(config: &RedisConfig) -> Backoff {
        Backoff {
            next: config.reconnect_min,
            min: config.reconnect_min,
            max: config.reconnect_max.max(config.reconnect_min),
        }
    }

    fn reset(&mut self) {
        self.next = self.min;
    }

    async fn wait(&mut self) {
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(self.max);
    }
}

async fn connection(client: &Client, config: &RedisConfig) -> RedisResult<MultiplexedConnection> {
    let settings = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(config.timeout))
        .set_response_timeout(Some(config.timeout));
    client
        .get_multiplexed_async_connection_with_config(&settings)
        .await
}

/// Runs the set-up script: the bus's `(head seq, epoch)`, creating the epoch if there is none.
async fn setup(shared: &Shared, conn: &mut MultiplexedConnection) -> RedisResult<(u64, Epoch)> {
    let script = Script::new(SETUP);
    let mut invocation = script.prepare_invoke();
    invocation.key(&shared.keys.meta);
    for (_, key, _) in shared.stream_keys() {
        invocation.key(key);
    }
    invocation.arg(Epoch::random().to_string());
    let (seq, epoch): (u64, String) = invocation.invoke_async(conn).await?;
    let epoch = epoch.parse::<Epoch>().map_err(|e| {
        redis::RedisError::from((
            redis::ErrorKind::Parse,
            "bad epoch in the bus's meta hash",
            e.to_string(),
        ))
    })?;
    Ok((seq, epoch))
}

// ---------------------------------------------------------------------------------------------
// The writer.

async fn run_writer(shared: Arc<Shared>, client: Client, mut jobs: mpsc::Receiver<Job>) {
    let mut backoff = Backoff::new(&shared.config);
    let script = Script::new(PUBLISH);
    let mut batch: Vec<Job> = Vec::with_capacity(shared.config.batch);
    loop {
        let connected = async {
            let mut conn = connection(&client, &shared.config).await?;
            script.load_async(&mut conn).await?;
            RedisResult::Ok(conn)
        }
        .await;
        let mut conn = match connected {
            Ok(conn) => conn,
            Err(err) => {
                fail_queued(&mut jobs, &err);
                backoff.wait().await;
                continue;
            }
        };
        shared.writer_up.store(true, Ordering::Release);
        backoff.reset();
        loop {
            let received = tokio::select! {
                n = jobs.recv_many(&mut batch, shared.config.batch) => Some(n),
                () = tokio::time::sleep(shared.config.head_check) => None,
            };
            let Some(received) = received else {
                // Idle: check that the connection still answers, so that a dead one is noticed
                // (and `is_connected` says so) before a publish needs it.
                let ping = redis::cmd("PING");
                let answer = tokio::time::timeout(
                    shared.config.timeout,
                    ping.query_async::<Value>(&mut conn),
                )
                .await;
                if !matches!(answer, Ok(Ok(_))) {
                    shared.writer_up.store(false, Ordering::Release);
                    break;
                }
                continue;
            };
            if received == 0 {
                // Every handle is gone.
                return;
            }
            if let Err(err) = send_batch(&shared, &script, &mut conn, &mut batch).await {
                for job in batch.drain(..) {
                    job.resolver
                        .resolve(Err(Error::Unconfirmed(err.to_string())));
                }
                shared.writer_up.store(false, Ordering::Release);
                fail_queued(&mut jobs, &err);
                break;
            }
        }
    }
}

/// Fails every queued publish: nothing of it reached Redis.
fn fail_queued(jobs: &mut mpsc::Receiver<Job>, err: &redis::RedisError) {
    while let Ok(job) = jobs.try_recv() {
        job.resolver.resolve(Err(unavailable(err)));
    }
}

/// Sends `batch` as one pipeline and resolves its tickets. Calls that were not run (the script
/// was flushed, or the bus lost its epoch) are run again once; an error of the connection
/// leaves the unresolved jobs in `batch` for the caller.
async fn send_batch(
    shared: &Shared,
    script: &Script,
    conn: &mut MultiplexedConnection,
    batch: &mut Vec<Job>,
) -> RedisResult<()> {
    for attempt in 0..2 {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for job in batch.iter() {
            pipe.cmd("EVALSHA")
                .arg(script.get_hash())
                .arg(2)
                .arg(&shared.keys.meta)
                .arg(&job.stream)
                .arg(job.max_len)
                .arg(&shared.keys.channel)
                .arg(job.encoder.tail());
        }
        let answers: Vec<Value> = pipe.query_async(conn).await?;
        let mut retry = Vec::new();
        let mut reload = false;
        let mut lost_epoch = false;
        for (job, answer) in batch.drain(..).zip(answers) {
            match parse_published(answer) {
                Ok((seq, epoch)) => {
                    let event = Arc::new(job.encoder.finish_in(seq, epoch));
                    job.resolver.resolve(Ok(event));
                }
                Err(err) if attempt == 0 && err.starts_with("NOSCRIPT") => {
                    reload = true;
                    retry.push(job);
                }
                Err(err) if attempt == 0 && err.starts_with("NOEPOCH") => {
                    lost_epoch = true;
                    retry.push(job);
                }
                Err(err) => job.resolver.resolve(Err(Error::Store(err))),
            }
        }
        if retry.is_empty() {
            return Ok(());
        }
        if reload {
            script.load_async(conn).await?;
        }
        if lost_epoch {
            setup(shared, conn).await?;
        }
        *batch = retry;
    }
    for job in batch.drain(..) {
        job.resolver.resolve(Err(Error::Store(
            "the publish script was not run".to_owned(),
        )));
    }
    Ok(())
}

/// Reads the script's `{seq, epoch}`, or the error Redis gave for this call.
fn parse_published(answer: Value) -> std::result::Result<(u64, Epoch), String> {
    match answer {
        Value::Array(items) => match items.as_slice() {
            [Value::Int(seq), epoch] => {
                let epoch: String =
                    redis::from_redis_value_ref(epoch).map_err(|e| e.to_string())?;
                let epoch = epoch.parse::<Epoch>().map_err(|e| e.to_string())?;
                u64::try_from(*seq)
                    .map(|seq| (seq, epoch))
                    .map_err(|_| "negative seq".to_owned())
            }
            _ => Err(format!("unexpected answer {items:?}")),
        },
        Value::ServerError(err) => Err(match err.details() {
            Some(details) => format!("{} {details}", err.code()),
            None => err.code().to_owned(),
        }),
        other => Err(format!("unexpected answer {other:?}")),
    }
}

// ---------------------------------------------------------------------------------------------
// The mirror.

async fn run_mirror(shared: Arc<Shared>, client: Client, synced: watch::Sender<bool>) {
    let mut backoff = Backoff::new(&shared.config);
    loop {
        // Ends only with an error: the connection was lost.
        let _ = mirror_session(&shared, &client, &synced, &mut backoff).await;
        backoff.wait().await;
    }
}

async fn mirror_session(
    shared: &Shared,
    client: &Client,
    synced: &watch::Sender<bool>,
    backoff: &mut Backoff,
) -> RedisResult<()> {
    let timeout = shared.config.timeout;
    let timed_out = || redis::RedisError::from((redis::ErrorKind::Io, "timed out"));
    // Subscribe first, then read the head: nothing published in between is missed.
    let mut pubsub = tokio::time::timeout(timeout, client.get_async_pubsub())
        .await
        .map_err(|_| timed_out())??;
    tokio::time::timeout(timeout, pubsub.subscribe(&shared.keys.channel))
        .await
        .map_err(|_| timed_out())??;
    let mut conn = connection(client, &shared.config).await?;
    sync(shared, &mut conn).await?;
    synced.send_replace(true);
    backoff.reset();
    let mut messages = pubsub.into_on_message();
    let mut check = tokio::time::interval(shared.config.head_check);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    check.reset();
    // The head Redis had at the last check. Messages up to it may still be on their way over
    // the subscription (a busy bus keeps some in flight), so it is a gap only if the mirror has
    // not reached it by the next check.
    let mut target: Option<u64> = None;
    loop {
        tokio::select! {
            // Messages first: the head check runs only when none is waiting here, so it never
            // takes events still queued on this node for lost ones.
            biased;
            message = messages.next() => {
                let Some(message) = message else {
                    return Err(redis::RedisError::from((
                        redis::ErrorKind::Io,
                        "the subscription connection closed",
                    )));
                };
                // An undecodable message is skipped: the head check finds the event in its
                // stream, or reports it lost.
                if let Ok(event) = Event::from_json(Bytes::copy_from_slice(message.get_payload_bytes())) {
                    receive(shared, &mut conn, event).await?;
                }
            }
            _ = check.tick() => {
                if let Some(target) = target.take() {
                    fill(shared, &mut conn, target).await?;
                }
                let (head, epoch) = setup(shared, &mut conn).await?;
                let at = shared.mirror.position();
                if epoch != at.epoch || head < at.seq {
                    reset(shared, &mut conn, head, epoch).await?;
                } else if head > at.seq {
                    target = Some(head);
                }
            }
        }
    }
}

/// One event from the channel: applied when it is the next, after a gap fill when it is later,
/// dropped when the mirror has it already.
async fn receive(
    shared: &Shared,
    conn: &mut MultiplexedConnection,
    event: Event,
) -> RedisResult<()> {
    let at = shared.mirror.position();
    if event.epoch() != at.epoch {
        return sync(shared, conn).await;
    }
    if event.seq() <= at.seq {
        return Ok(());
    }
    if event.seq() > at.seq + 1 {
        fill(shared, conn, event.seq() - 1).await?;
    }
    shared.mirror.apply(Arc::new(event));
    Ok(())
}

/// Compares the mirror with Redis, and catches up at once: a gap fill for the same epoch, a
/// reset for another. For a fresh subscription (nothing in flight) or a foreign epoch.
async fn sync(shared: &Shared, conn: &mut MultiplexedConnection) -> RedisResult<()> {
    let (head, epoch) = setup(shared, conn).await?;
    let at = shared.mirror.position();
    if epoch != at.epoch || head < at.seq {
        reset(shared, conn, head, epoch).await
    } else if head > at.seq {
        fill(shared, conn, head).await
    } else {
        Ok(())
    }
}

/// One room's stream entries as events, oldest first; entries that do not decode are skipped.
fn decode_entries(reply: Value) -> Vec<Event> {
    let Value::Array(entries) = reply else {
        return Vec::new();
    };
    entries
        .into_iter()
        .filter_map(|entry| {
            let Value::Array(mut parts) = entry else {
                return None;
            };
            let Value::Array(fields) = parts.pop()? else {
                return None;
            };
            let mut fields = fields.into_iter();
            while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
                if matches!(&name, Value::BulkString(n) if n == b"j")
                    && let Value::BulkString(json) = value
                {
                    return Event::from_json(Bytes::from(json)).ok();
                }
            }
            None
        })
        .collect()
}

/// Reads the events after the mirror's head through `to` from every room's stream and applies
/// them in seq order; seqs no stream has any more are reported lost.
async fn fill(shared: &Shared, conn: &mut MultiplexedConnection, to: u64) -> RedisResult<()> {
    let at = shared.mirror.position();
    if to <= at.seq {
        return Ok(());
    }
    let rooms = shared.stream_keys();
    let mut pipe = redis::pipe();
    for (_, key, _) in &rooms {
        pipe.cmd("XRANGE")
            .arg(key)
            .arg(format!("{}-0", at.seq + 1))
            .arg(format!("{to}-0"));
    }
    let replies: Vec<Value> = pipe.query_async(conn).await?;
    let mut events: Vec<Event> = replies.into_iter().flat_map(decode_entries).collect();
    events.sort_unstable_by_key(Event::seq);
    for event in events {
        if event.epoch() != at.epoch {
            // The bus started over under us: the next sync resets the mirror.
            break;
        }
        let head = shared.mirror.head();
        if event.seq() > head + 1 {
            shared.mirror.lose(event.seq() - 1);
        }
        shared.mirror.apply(Arc::new(event));
    }
    if shared.mirror.head() < to {
        shared.mirror.lose(to);
    }
    Ok(())
}

/// Starts the mirror over from Redis: the bus's epoch, its head, and every room's stream.
async fn reset(
    shared: &Shared,
    conn: &mut MultiplexedConnection,
    head: u64,
    epoch: Epoch,
) -> RedisResult<()> {
    let rooms = shared.stream_keys();
    let mut pipe = redis::pipe();
    for (_, key, _) in &rooms {
        pipe.cmd("XRANGE").arg(key).arg("-").arg("+");
    }
    let replies: Vec<Value> = pipe.query_async(conn).await?;
    let streams: Vec<(Room, usize, Vec<Arc<Event>>)> = rooms
        .into_iter()
        .zip(replies)
        .map(|((room, _, max_len), reply)| {
            let events = decode_entries(reply)
                .into_iter()
                .filter(|e| e.epoch() == epoch)
                .map(Arc::new)
                .collect();
            (room, max_len, events)
        })
        .collect();
    // Events published since the head was read are in the streams already: they count as
    // applied (no subscriber survives a reset), and their messages are dropped.
    let head = streams
        .iter()
        .filter_map(|(_, _, events)| events.last().map(|e| e.seq()))
        .fold(head, u64::max);
    let mut loaded = HashMap::with_capacity(streams.len());
    for (room, max_len, events) in streams {
        // A full stream may have lost older events; one that is not full has lost none.
        let lost_through = match events.first() {
            _ if max_len == 0 => head,
            Some(first) if events.len() >= max_len => first.seq() - 1,
            _ => 0,
        };
        loaded.insert(room, (events, lost_through));
    }
    shared.mirror.reset(epoch, head, loaded);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_one_hash_tag() {
        let keys = Keys::new("bus-1");
        assert_eq!(keys.meta, "{bus-1}:meta");
        assert_eq!(keys.channel, "{bus-1}:events");
        assert_eq!(keys.room("scans"), "{bus-1}:room:scans");
        for bad in ["", "a{b", "a}b", "a b"] {
            assert!(
                RedisConfig::new("redis://127.0.0.1/")
                    .prefix(bad)
                    .check()
                    .is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn script_answers_are_read_or_reported() {
        let ok = Value::Array(vec![
            Value::Int(42),
            Value::BulkString(b"00000000000000ff".to_vec()),
        ]);
        assert_eq!(parse_published(ok), Ok((42, Epoch::from_u64(255))));
        let bad_epoch = Value::Array(vec![Value::Int(1), Value::BulkString(b"zz".to_vec())]);
        assert!(parse_published(bad_epoch).is_err());
        assert!(parse_published(Value::Nil).is_err());
    }

    #[test]
    fn stream_entries_decode_to_events() {
        let draft = EventDraft::new("scan_update", "scans", &serde_json::json!({"n": 1})).unwrap();
        let event = Event::stamp(draft, 7, Epoch::from_u64(3));
        let entry = |id: &str, field: &[u8], json: &[u8]| {
            Value::Array(vec![
                Value::BulkString(id.as_bytes().to_vec()),
                Value::Array(vec![
                    Value::BulkString(field.to_vec()),
                    Value::BulkString(json.to_vec()),
                ]),
            ])
        };
        let reply = Value::Array(vec![
            entry("7-0", b"j", event.json()),
            entry("8-0", b"other", event.json()),
            entry("9-0", b"j", b"not json"),
        ]);
        let events = decode_entries(reply);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].seq(), 7);
        assert_eq!(events[0].json(), event.json());
    }
}
