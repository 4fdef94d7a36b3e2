//! What the nodes of a cluster tell each other, over Redis.
//!
//! The event bus carries what users see; this control channel carries what nodes must do.
//! Every node publishes on one Redis pub/sub channel, `{<cluster_name>}:control`, and listens
//! to it; a message names the node that sent it, and that node ignores its own.
//!
//! | message | sent when | what every other node does |
//! |---|---|---|
//! | `revoked` | a token was revoked through this node's API | forgets the token and its sessions and closes every connection opened with it, at once |
//! | `command` | an operator's command (or a scan's cancellation) is for an agent connected to another node | the node holding the agent sends it; the others ignore it |
//!
//! Each node also reports its load (connections, rooms, counters) every second in the hash
//! `{<cluster_name>}:nodes`; `/api/websocket/status` sums the reports of the nodes heard from
//! in the last five seconds.
//!
//! Pub/sub delivers at most once: a node that is not connected to Redis when a message goes out
//! never sees it. Nothing depends on the control channel alone. Revocations are also in the
//! shared database, which every node re-reads every two seconds ([`crate::node::auth::Auth::reload`])
//! and at once when its control connection comes back; the channel only makes it immediate.

use std::time::Duration;

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::config::redact_url;
use crate::error::{Error, Result};

/// One control message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Control {
    /// Token `token_id` was revoked.
    Revoked {
        /// The token's public id.
        token_id: String,
    },
    /// A command for an agent whose connection another node holds.
    Command {
        /// The agent.
        agent_id: String,
        /// The command.
        command: crate::node::command::AgentCommand,
        /// The task it is about.
        task_id: Option<String>,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    node: String,
    #[serde(flatten)]
    message: Control,
}

/// This node's place in a cluster: its id and its connection to the control channel.
pub struct Cluster {
    node_id: String,
    channel: String,
    loads_key: String,
    /// Whether the last load report reached Redis (checked every second).
    reachable: std::sync::atomic::AtomicBool,
    client: redis::Client,
    publisher: Mutex<Option<redis::aio::MultiplexedConnection>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node_id", &self.node_id)
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a node's reported load counts in the cluster's views without a fresh report.
pub const LOAD_MAX_AGE: Duration = Duration::from_secs(5);

fn cluster_error(url: &str, err: impl std::fmt::Display) -> Error {
    Error::Cluster(format!("{}: {err}", redact_url(url)))
}

impl Cluster {
    /// Connects to the cluster's Redis (checking that it answers) as a node with a fresh id.
    pub async fn connect(redis_url: &str, cluster_name: &str) -> Result<Cluster> {
        let client = redis::Client::open(redis_url).map_err(|e| cluster_error(redis_url, e))?;
        let cluster = Cluster {
            node_id: new_node_id()?,
            channel: format!("{{{cluster_name}}}:control"),
            loads_key: format!("{{{cluster_name}}}:nodes"),
            reachable: std::sync::atomic::AtomicBool::new(true),
            client,
            publisher: Mutex::new(None),
        };
        let conn = cluster
            .connection()
            .await
            .map_err(|e| cluster_error(redis_url, e))?;
        *cluster.publisher.lock().await = Some(conn);
        Ok(cluster)
    }

    /// This node's id: random, new at every start.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    async fn connection(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(CONNECT_TIMEOUT));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    /// Tells every other node (reconnecting once if the connection was lost). On failure the
    /// shared database still says it, and every node re-reads it within seconds.
    pub async fn announce(&self, message: Control) -> Result<()> {
        let payload = serde_json::to_string(&Envelope {
            node: self.node_id.clone(),
            message,
        })
        .map_err(|e| Error::Cluster(e.to_string()))?;
        let mut slot = self.publisher.lock().await;
        let mut last = None;
        for _ in 0..2 {
            let conn = match slot.as_mut() {
                Some(conn) => conn,
                None => match self.connection().await {
                    Ok(conn) => slot.insert(conn),
                    Err(err) => return Err(Error::Cluster(err.to_string())),
                },
            };
            match conn.publish::<_, _, i64>(&self.channel, &payload).await {
                Ok(_) => return Ok(()),
                Err(err) => {
                    last = Some(err);
                    *slot = None;
                }
            }
        }
        Err(Error::Cluster(
            last.map_or_else(String::new, |e| e.to_string()),
        ))
    }

    /// Records this node's load (any JSON object) for the cluster's views, stamped with the
    /// time; a node's entry is ignored once it is [`LOAD_MAX_AGE`] old (a node that died).
    pub async fn report_load(&self, load: serde_json::Value) -> Result<()> {
        let reported = tokio::time::timeout(CONNECT_TIMEOUT, self.try_report_load(load)).await;
        match reported {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => {
                self.unreachable();
                Err(err)
            }
            Err(_) => {
                self.unreachable();
                *self.publisher.lock().await = None;
                Err(Error::Cluster("Redis did not answer in time".into()))
            }
        }
    }

    async fn try_report_load(&self, mut load: serde_json::Value) -> Result<()> {
        load["node_id"] = serde_json::Value::String(self.node_id.clone());
        load["at_ms"] = serde_json::json!(chrono::Utc::now().timestamp_millis());
        let mut slot = self.publisher.lock().await;
        let conn = match slot.as_mut() {
            Some(conn) => conn,
            None => slot.insert(
                self.connection()
                    .await
                    .map_err(|e| Error::Cluster(e.to_string()))?,
            ),
        };
        let done: redis::RedisResult<i64> = conn
            .hset(&self.loads_key, &self.node_id, load.to_string())
            .await;
        if let Err(err) = done {
            *slot = None;
            return Err(Error::Cluster(err.to_string()));
        }
        self.reachable
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Whether this node's last load report (each second) reached Redis: a node cut off from
    /// Redis says so within about a second even when nothing is published.
    pub fn is_reachable(&self) -> bool {
        self.reachable.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn unreachable(&self) {
        self.reachable
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }

    /// The loads every live node reported (this one's included), oldest node id first; entries
    /// of nodes silent for longer than [`LOAD_MAX_AGE`] are deleted on the way.
    pub async fn loads(&self) -> Result<Vec<serde_json::Value>> {
        let mut conn = self
            .connection()
            .await
            .map_err(|e| Error::Cluster(e.to_string()))?;
        let all: std::collections::BTreeMap<String, String> =
            conn.hgetall(&self.loads_key)
                .await
                .map_err(|e| Error::Cluster(e.to_string()))?;
        let oldest = chrono::Utc::now().timestamp_millis()
            - i64::try_from(LOAD_MAX_AGE.as_millis()).unwrap_or(i64::MAX);
        let mut live = Vec::new();
        for (node, text) in all {
            let load: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            if load["at_ms"].as_i64().is_some_and(|at| at >= oldest) {
                live.push(load);
            } else {
                let _: redis::RedisResult<i64> = conn.hdel(&self.loads_key, &node).await;
            }
        }
        Ok(live)
    }

    /// Removes this node's load entry (it is shutting down).
    pub async fn forget_load(&self) {
        if let Ok(mut conn) = self.connection().await {
            let _: redis::RedisResult<i64> = conn.hdel(&self.loads_key, &self.node_id).await;
        }
    }

    /// Listens to the control channel until `stop`, reconnecting with backoff; after every
    /// (re)connection it re-reads the tokens, so that nothing said while it was away is missed.
    pub async fn listen(&self, handler: &impl ControlHandler, stop: CancellationToken) {
        let mut backoff = Duration::from_millis(50);
        loop {
            let session = async {
                let mut pubsub = self.client.get_async_pubsub().await?;
                pubsub.subscribe(&self.channel).await?;
                redis::RedisResult::Ok(pubsub)
            };
            let pubsub = tokio::select! {
                () = stop.cancelled() => return,
                pubsub = tokio::time::timeout(CONNECT_TIMEOUT, session) => pubsub,
            };
            match pubsub {
                Ok(Ok(pubsub)) => {
                    backoff = Duration::from_millis(50);
                    handler.resync().await;
                    let mut messages = pubsub.into_on_message();
                    loop {
                        let msg = tokio::select! {
                            () = stop.cancelled() => return,
                            msg = futures::StreamExt::next(&mut messages) => msg,
                        };
                        let Some(msg) = msg else { break };
                        let Ok(payload) = msg.get_payload::<String>() else {
                            continue;
                        };
                        self.apply(handler, &payload);
                    }
                    tracing::warn!("cluster control channel lost; reconnecting");
                }
                Ok(Err(err)) => tracing::warn!(error = %err, "cluster control channel unreachable"),
                Err(_) => tracing::warn!("cluster control channel: connection timed out"),
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    fn apply(&self, handler: &impl ControlHandler, payload: &str) {
        let envelope: Envelope = match serde_json::from_str(payload) {
            Ok(envelope) => envelope,
            Err(err) => {
                tracing::warn!(error = %err, "unreadable cluster control message ignored");
                return;
            }
        };
        if envelope.node != self.node_id {
            handler.apply(&envelope.node, envelope.message);
        }
    }
}

/// What a node does with the control channel: the node's state implements it.
pub trait ControlHandler: Send + Sync {
    /// The channel is (re)connected: re-read whatever may have been said while it was away.
    fn resync(&self) -> impl std::future::Future<Output = ()> + Send;

    /// Node `from` said `message`.
    fn apply(&self, from: &str, message: Control);
}

fn new_node_id() -> Result<String> {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).map_err(|e| Error::Random(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_a_stable_shape() {
        let text = serde_json::to_string(&Envelope {
            node: "a1".into(),
            message: Control::Revoked {
                token_id: "abc".into(),
            },
        })
        .unwrap();
        assert_eq!(text, r#"{"node":"a1","kind":"revoked","token_id":"abc"}"#);
        let back: Envelope = serde_json::from_str(&text).unwrap();
        assert_eq!(
            back.message,
            Control::Revoked {
                token_id: "abc".into()
            }
        );
    }
}
