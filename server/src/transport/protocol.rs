//! The `/ws` wire protocol: JSON text frames tagged by `type`.
//!
//! See the crate documentation for the message list and an example session.

use bytes::Bytes;
use event_bus::{Role, Severity};
use serde::{Deserialize, Serialize};

/// A resume point sent by a client.
#[derive(Debug, Clone, Deserialize)]
pub struct Since {
    /// The epoch the client saw (16 hex digits).
    pub epoch: String,
    /// The last sequence number it saw.
    pub seq: u64,
}

/// What a client may send.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Authenticate with a token (when no session cookie did).
    Auth {
        /// The token.
        token: String,
    },
    /// Add rooms to the connection's subscription, and set its kind and severity filter.
    Subscribe {
        /// Echoed in the answer.
        #[serde(default)]
        id: Option<String>,
        /// Rooms to add.
        rooms: Vec<String>,
        /// Kinds to receive (all when absent or empty).
        #[serde(default)]
        kinds: Option<Vec<String>>,
        /// The least severity to receive.
        #[serde(default)]
        min_severity: Option<Severity>,
        /// Replay what came after this point first.
        #[serde(default)]
        since: Option<Since>,
    },
    /// Remove rooms from the subscription.
    Unsubscribe {
        /// Echoed in the answer.
        #[serde(default)]
        id: Option<String>,
        /// Rooms to remove.
        rooms: Vec<String>,
    },
    /// Publish an event.
    Publish {
        /// Echoed in the answer.
        #[serde(default)]
        id: Option<String>,
        /// The event kind.
        kind: String,
        /// The room.
        room: String,
        /// The severity (info when absent).
        #[serde(default)]
        severity: Option<Severity>,
        /// The payload. (A `Value`: raw JSON cannot pass through serde's internally tagged
        /// enums.)
        #[serde(default)]
        data: Option<serde_json::Value>,
    },
    /// Agents: register capabilities and concurrency (needs the `agent` role).
    RegisterAgent {
        /// A stable id to keep across reconnects.
        #[serde(default)]
        agent_id: Option<String>,
        /// A display name.
        #[serde(default)]
        name: Option<String>,
        /// Task kinds it runs (`port_scan`, `ssl_check`, ...).
        #[serde(default)]
        capabilities: Vec<String>,
        /// Tasks it runs at once.
        #[serde(default)]
        max_concurrent: Option<usize>,
    },
    /// Agents: renew the lease on running tasks.
    Heartbeat {
        /// Ids of the tasks it is running (informational).
        #[serde(default)]
        running: Vec<String>,
    },
    /// Agents: how far a task has got.
    TaskProgress {
        /// The task.
        task_id: String,
        /// 0 to 1.
        progress: f64,
        /// A short note.
        #[serde(default)]
        message: Option<String>,
    },
    /// Agents: a task's result; acknowledged (`ack` with `of: "scan_result"` and the task id)
    /// once stored. Send it again until acknowledged: it is stored once.
    ScanResult {
        /// The result.
        result: Box<sec_scan::ScanResult>,
    },
    /// Ask for an `ack`.
    Ping {
        /// Echoed in the answer.
        #[serde(default)]
        id: Option<String>,
    },
}

/// One room as `welcome` describes it to this client.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RoomInfo {
    /// The room's name.
    pub name: String,
    /// Whether this client may subscribe.
    pub subscribe: bool,
    /// Whether this client may publish.
    pub publish: bool,
}

/// What the server sends (besides `event`, which [`event_frame`] builds from the bus's bytes).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage<'a> {
    /// The connection is authenticated.
    Welcome {
        /// The client's role.
        role: Role,
        /// The bus's epoch.
        epoch: String,
        /// The latest sequence number.
        head: u64,
        /// The rooms and what this client may do in each.
        rooms: Vec<RoomInfo>,
        /// The largest message the server accepts.
        max_message_bytes: usize,
    },
    /// The end of a replay asked for with `since`.
    Recovered {
        /// The subscribe message's id.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a str>,
        /// Whether every missed event was replayed.
        recovered: bool,
        /// The epoch to resume with next time.
        epoch: String,
        /// The latest sequence number.
        head: u64,
        /// How many events were replayed.
        replayed: usize,
    },
    /// Events were lost and could not be replayed.
    Lagged {
        /// How many.
        missed: u64,
        /// The last sequence number before the gap.
        resume_from: u64,
    },
    /// A request succeeded.
    Ack {
        /// The request's id.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a str>,
        /// The request's type.
        of: &'static str,
        /// The sequence number of a published event.
        #[serde(skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
    },
    /// An agent is registered.
    RegistrationAck {
        /// Its id (send it as `agent_id` when reconnecting).
        agent_id: String,
        /// Always `success`.
        status: &'static str,
        /// Send a heartbeat at least this often.
        heartbeat_seconds: u64,
    },
    /// A task for an agent.
    AssignTask {
        /// The task.
        task: &'a sec_scan::ScanTask,
    },
    /// A command for an agent.
    Command {
        /// What to do.
        command: crate::node::orchestrator::AgentCommand,
        /// The task it is about.
        #[serde(skip_serializing_if = "Option::is_none")]
        task_id: Option<&'a str>,
    },
    /// A request failed; the connection stays open unless a close frame follows.
    Error {
        /// The request's id, when known.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a str>,
        /// A stable code.
        code: &'static str,
        /// What went wrong.
        message: String,
    },
}

impl ServerMessage<'_> {
    /// The frame's text.
    pub fn to_text(&self) -> String {
        // Serialising these plain types cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// `{"type":"event","event":ENVELOPE}` around an event's JSON, which the bus encoded once.
pub fn event_frame(event_json: &Bytes) -> Vec<u8> {
    const HEAD: &[u8] = b"{\"type\":\"event\",\"event\":";
    let mut frame = Vec::with_capacity(HEAD.len() + event_json.len() + 1);
    frame.extend_from_slice(HEAD);
    frame.extend_from_slice(event_json);
    frame.push(b'}');
    frame
}

/// WebSocket close codes used by the server.
pub mod close {
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// A message broke the protocol or could not be read.
    pub const POLICY: u16 = 1008;
    /// A message was larger than allowed.
    pub const TOO_BIG: u16 = 1009;
    /// No valid authentication in time, or a bad token.
    pub const UNAUTHENTICATED: u16 = 4001;
    /// The client's role may not do this.
    pub const FORBIDDEN: u16 = 4003;
    /// The client did not read fast enough.
    pub const TOO_SLOW: u16 = 4008;
    /// The client sent too many messages.
    pub const RATE_LIMITED: u16 = 4029;
    /// The server has no connection slot free (RFC 6455 "Try Again Later").
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_parse_and_reject_strangers() {
        let m: ClientMessage = serde_json::from_str(
            r#"{"type":"subscribe","id":"1","rooms":["scans"],"min_severity":"warning","since":{"epoch":"0000000000000001","seq":5}}"#,
        )
        .unwrap();
        assert!(matches!(
            m,
            ClientMessage::Subscribe {
                since: Some(Since { seq: 5, .. }),
                ..
            }
        ));
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"explode"}"#).is_err());
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"ping","extra":1}"#).is_err());
        assert!(serde_json::from_str::<ClientMessage>(r#"{"rooms":[]}"#).is_err());
    }

    #[test]
    fn server_messages_have_their_type() {
        let text = ServerMessage::Ack {
            id: Some("7"),
            of: "publish",
            seq: Some(3),
        }
        .to_text();
        assert_eq!(text, r#"{"type":"ack","id":"7","of":"publish","seq":3}"#);
        let frame = event_frame(&Bytes::from_static(b"{\"seq\":1}"));
        assert_eq!(frame, br#"{"type":"event","event":{"seq":1}}"#);
    }
}
