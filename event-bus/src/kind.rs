//! What an event is about.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::name::{self, NameKind};

/// The kind of an event: one of the known kinds, whose wire names are those of the documents
/// vigil grew from, or a custom kind whose name follows the [naming rule](crate::name).
///
/// Two kinds are equal when their wire names are equal, so `EventKind::parse("chat_message")`
/// and `EventKind::ChatMessage` are the same kind.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum EventKind {
    /// An agent registered with the server.
    /// Wire name `agent_registered`.
    AgentRegistered,
    /// An agent came online.
    /// Wire name `agent_online`.
    AgentOnline,
    /// An agent went offline or missed its heartbeats.
    /// Wire name `agent_offline`.
    AgentOffline,
    /// An agent began executing a task.
    /// Wire name `agent_execution_started`.
    AgentExecutionStarted,
    /// An agent finished a task, well or not.
    /// Wire name `agent_execution_completed`.
    AgentExecutionCompleted,
    /// An agent ran a tool.
    /// Wire name `tool_executed`.
    ToolExecuted,
    /// One agent handed work to another.
    /// Wire name `agent_handoff`.
    AgentHandoff,
    /// An opportunity was found.
    /// Wire name `opportunity_discovered`.
    OpportunityDiscovered,
    /// A synthesis phase began.
    /// Wire name `synthesis_started`.
    SynthesisStarted,
    /// A synthesis phase completed.
    /// Wire name `synthesis_completed`.
    SynthesisCompleted,
    /// A quality assessment completed.
    /// Wire name `quality_score_updated`.
    QualityScoreUpdated,
    /// A component reported an error.
    /// Wire name `error_occurred`.
    ErrorOccurred,
    /// System health figures were updated.
    /// Wire name `system_health_updated`.
    SystemHealthUpdated,
    /// Dashboard metrics were updated.
    /// Wire name `metrics_updated`.
    MetricsUpdated,
    /// Performance figures were updated.
    /// Wire name `performance_update`.
    PerformanceUpdate,
    /// A user sent a chat message.
    /// Wire name `chat_message`.
    ChatMessage,
    /// An answer to a chat message.
    /// Wire name `chat_response`.
    ChatResponse,
    /// A user is typing.
    /// Wire name `typing_indicator`.
    TypingIndicator,
    /// A user joined a room.
    /// Wire name `user_joined`.
    UserJoined,
    /// A user left a room.
    /// Wire name `user_left`.
    UserLeft,
    /// An alert was raised.
    /// Wire name `alert_created`.
    AlertCreated,
    /// A scan was scheduled.
    /// Wire name `scan_scheduled`.
    ScanScheduled,
    /// A scan task started on an agent.
    /// Wire name `scan_started`.
    ScanStarted,
    /// A scan made progress or produced a result.
    /// Wire name `scan_update`.
    ScanUpdate,
    /// A scan completed.
    /// Wire name `scan_completed`.
    ScanCompleted,
    /// A scan task reported progress.
    /// Wire name `task_progress`.
    TaskProgress,
    /// A scan finding matched a threat signature.
    /// Wire name `threat_detected`.
    ThreatDetected,
    /// A critical threat needs action now.
    /// Wire name `critical_alert`.
    CriticalAlert,
    /// A device position was estimated.
    /// Wire name `location_resolved`.
    LocationResolved,
    /// Any other kind; build it with [`EventKind::parse`], which validates the name.
    Custom(Arc<str>),
}

/// Number of known (non-custom) kinds.
pub(crate) const KNOWN_KINDS: usize = 29;

impl EventKind {
    /// Every known kind, in declaration order.
    pub const KNOWN: [EventKind; KNOWN_KINDS] = [
        EventKind::AgentRegistered,
        EventKind::AgentOnline,
        EventKind::AgentOffline,
        EventKind::AgentExecutionStarted,
        EventKind::AgentExecutionCompleted,
        EventKind::ToolExecuted,
        EventKind::AgentHandoff,
        EventKind::OpportunityDiscovered,
        EventKind::SynthesisStarted,
        EventKind::SynthesisCompleted,
        EventKind::QualityScoreUpdated,
        EventKind::ErrorOccurred,
        EventKind::SystemHealthUpdated,
        EventKind::MetricsUpdated,
        EventKind::PerformanceUpdate,
        EventKind::ChatMessage,
        EventKind::ChatResponse,
        EventKind::TypingIndicator,
        EventKind::UserJoined,
        EventKind::UserLeft,
        EventKind::AlertCreated,
        EventKind::ScanScheduled,
        EventKind::ScanStarted,
        EventKind::ScanUpdate,
        EventKind::ScanCompleted,
        EventKind::TaskProgress,
        EventKind::ThreatDetected,
        EventKind::CriticalAlert,
        EventKind::LocationResolved,
    ];

    /// Parses a wire name: a known name gives its variant, any other valid name a custom kind.
    pub fn parse(name: &str) -> Result<EventKind> {
        if let Some(known) = Self::known(name) {
            return Ok(known);
        }
        name::validate(NameKind::Kind, name)?;
        Ok(EventKind::Custom(Arc::from(name)))
    }

    /// The known kind with this wire name, if there is one.
    pub fn known(name: &str) -> Option<EventKind> {
        Some(match name {
            "agent_registered" => EventKind::AgentRegistered,
            "agent_online" => EventKind::AgentOnline,
            "agent_offline" => EventKind::AgentOffline,
            "agent_execution_started" => EventKind::AgentExecutionStarted,
            "agent_execution_completed" => EventKind::AgentExecutionCompleted,
            "tool_executed" => EventKind::ToolExecuted,
            "agent_handoff" => EventKind::AgentHandoff,
            "opportunity_discovered" => EventKind::OpportunityDiscovered,
            "synthesis_started" => EventKind::SynthesisStarted,
            "synthesis_completed" => EventKind::SynthesisCompleted,
            "quality_score_updated" => EventKind::QualityScoreUpdated,
            "error_occurred" => EventKind::ErrorOccurred,
            "system_health_updated" => EventKind::SystemHealthUpdated,
            "metrics_updated" => EventKind::MetricsUpdated,
            "performance_update" => EventKind::PerformanceUpdate,
            "chat_message" => EventKind::ChatMessage,
            "chat_response" => EventKind::ChatResponse,
            "typing_indicator" => EventKind::TypingIndicator,
            "user_joined" => EventKind::UserJoined,
            "user_left" => EventKind::UserLeft,
            "alert_created" => EventKind::AlertCreated,
            "scan_scheduled" => EventKind::ScanScheduled,
            "scan_started" => EventKind::ScanStarted,
            "scan_update" => EventKind::ScanUpdate,
            "scan_completed" => EventKind::ScanCompleted,
            "task_progress" => EventKind::TaskProgress,
            "threat_detected" => EventKind::ThreatDetected,
            "critical_alert" => EventKind::CriticalAlert,
            "location_resolved" => EventKind::LocationResolved,
            _ => return None,
        })
    }

    /// The wire name.
    pub fn as_str(&self) -> &str {
        match self {
            EventKind::AgentRegistered => "agent_registered",
            EventKind::AgentOnline => "agent_online",
            EventKind::AgentOffline => "agent_offline",
            EventKind::AgentExecutionStarted => "agent_execution_started",
            EventKind::AgentExecutionCompleted => "agent_execution_completed",
            EventKind::ToolExecuted => "tool_executed",
            EventKind::AgentHandoff => "agent_handoff",
            EventKind::OpportunityDiscovered => "opportunity_discovered",
            EventKind::SynthesisStarted => "synthesis_started",
            EventKind::SynthesisCompleted => "synthesis_completed",
            EventKind::QualityScoreUpdated => "quality_score_updated",
            EventKind::ErrorOccurred => "error_occurred",
            EventKind::SystemHealthUpdated => "system_health_updated",
            EventKind::MetricsUpdated => "metrics_updated",
            EventKind::PerformanceUpdate => "performance_update",
            EventKind::ChatMessage => "chat_message",
            EventKind::ChatResponse => "chat_response",
            EventKind::TypingIndicator => "typing_indicator",
            EventKind::UserJoined => "user_joined",
            EventKind::UserLeft => "user_left",
            EventKind::AlertCreated => "alert_created",
            EventKind::ScanScheduled => "scan_scheduled",
            EventKind::ScanStarted => "scan_started",
            EventKind::ScanUpdate => "scan_update",
            EventKind::ScanCompleted => "scan_completed",
            EventKind::TaskProgress => "task_progress",
            EventKind::ThreatDetected => "threat_detected",
            EventKind::CriticalAlert => "critical_alert",
            EventKind::LocationResolved => "location_resolved",
            EventKind::Custom(name) => name,
        }
    }

    /// Whether this is a custom kind.
    pub fn is_custom(&self) -> bool {
        matches!(self, EventKind::Custom(_)) && Self::known(self.as_str()).is_none()
    }

    /// The position of a known kind in [`EventKind::KNOWN`].
    pub(crate) fn known_index(&self) -> Option<usize> {
        Some(match self {
            EventKind::AgentRegistered => 0,
            EventKind::AgentOnline => 1,
            EventKind::AgentOffline => 2,
            EventKind::AgentExecutionStarted => 3,
            EventKind::AgentExecutionCompleted => 4,
            EventKind::ToolExecuted => 5,
            EventKind::AgentHandoff => 6,
            EventKind::OpportunityDiscovered => 7,
            EventKind::SynthesisStarted => 8,
            EventKind::SynthesisCompleted => 9,
            EventKind::QualityScoreUpdated => 10,
            EventKind::ErrorOccurred => 11,
            EventKind::SystemHealthUpdated => 12,
            EventKind::MetricsUpdated => 13,
            EventKind::PerformanceUpdate => 14,
            EventKind::ChatMessage => 15,
            EventKind::ChatResponse => 16,
            EventKind::TypingIndicator => 17,
            EventKind::UserJoined => 18,
            EventKind::UserLeft => 19,
            EventKind::AlertCreated => 20,
            EventKind::ScanScheduled => 21,
            EventKind::ScanStarted => 22,
            EventKind::ScanUpdate => 23,
            EventKind::ScanCompleted => 24,
            EventKind::TaskProgress => 25,
            EventKind::ThreatDetected => 26,
            EventKind::CriticalAlert => 27,
            EventKind::LocationResolved => 28,
            EventKind::Custom(name) => return Self::known(name)?.known_index(),
        })
    }
}

impl PartialEq for EventKind {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for EventKind {}

impl Hash for EventKind {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        EventKind::parse(s)
    }
}

impl Serialize for EventKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        EventKind::parse(&name).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_names_round_trip() {
        for (i, kind) in EventKind::KNOWN.iter().enumerate() {
            let parsed = EventKind::parse(kind.as_str()).unwrap();
            assert_eq!(&parsed, kind);
            assert!(!parsed.is_custom());
            assert_eq!(parsed.known_index(), Some(i));
        }
    }

    #[test]
    fn custom_kinds_are_validated_and_compare_by_name() {
        let custom = EventKind::parse("port_knock").unwrap();
        assert!(custom.is_custom());
        assert_eq!(custom.known_index(), None);
        assert!(EventKind::parse("Port Knock").is_err());
        // A custom kind spelled like a known one is that known kind.
        assert_eq!(
            EventKind::Custom(Arc::from("chat_message")),
            EventKind::ChatMessage
        );
        assert_eq!(
            EventKind::Custom(Arc::from("chat_message")).known_index(),
            EventKind::ChatMessage.known_index()
        );
    }

    #[test]
    fn serde_uses_the_wire_name() {
        assert_eq!(
            serde_json::to_string(&EventKind::CriticalAlert).unwrap(),
            "\"critical_alert\""
        );
        let kind: EventKind = serde_json::from_str("\"scan_update\"").unwrap();
        assert_eq!(kind, EventKind::ScanUpdate);
        assert!(serde_json::from_str::<EventKind>("\"NOPE\"").is_err());
    }
}
