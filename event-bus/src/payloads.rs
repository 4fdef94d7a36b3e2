//! Typed payloads for the events of the seed dashboard, ready to publish.
//!
//! Field names are the wire names the dashboards read. Other crates define their own payload
//! types with [`Payload`]; these are the ones every vigil dashboard understands.

use serde::{Deserialize, Serialize};

use crate::event::Payload;
use crate::severity::Severity;

/// An agent began a task (`agent_execution_started`, room `monitoring`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentExecutionStarted {
    /// The agent's id.
    pub agent_id: String,
    /// The agent's display name.
    pub agent_name: String,
    /// What it is doing.
    pub task_description: String,
}

impl Payload for AgentExecutionStarted {
    const KIND: &'static str = "agent_execution_started";
    const ROOM: &'static str = "monitoring";
}

/// An agent finished a task (`agent_execution_completed`, room `monitoring`): a success, or an
/// error when `success` is false.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentExecutionCompleted {
    /// The agent's id.
    pub agent_id: String,
    /// The agent's display name.
    pub agent_name: String,
    /// What it did.
    pub task_description: String,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// Whether it succeeded.
    pub success: bool,
    /// The quality of its output, 0 to 100, when assessed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality_score: Option<f64>,
}

impl Payload for AgentExecutionCompleted {
    const KIND: &'static str = "agent_execution_completed";
    const ROOM: &'static str = "monitoring";
    const SEVERITY: Severity = Severity::Success;

    fn severity(&self) -> Severity {
        if self.success {
            Severity::Success
        } else {
            Severity::Error
        }
    }
}

/// An opportunity was found (`opportunity_discovered`, room `monitoring`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpportunityDiscovered {
    /// A short title.
    pub title: String,
    /// Its category.
    pub category: String,
    /// What it is.
    pub description: String,
    /// Confidence, 0 to 100.
    pub confidence_score: f64,
    /// An estimate of what it is worth, as free text (e.g. "$10k-50k/yr").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revenue_potential: Option<String>,
}

impl Payload for OpportunityDiscovered {
    const KIND: &'static str = "opportunity_discovered";
    const ROOM: &'static str = "monitoring";
    const SEVERITY: Severity = Severity::Success;
}

/// A quality assessment completed (`quality_score_updated`, room `monitoring`): a success at 90
/// and above, a warning from 70, an error below.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityScoreUpdated {
    /// What was assessed.
    pub subject: String,
    /// The score, 0 to 100.
    pub quality_score: f64,
}

impl Payload for QualityScoreUpdated {
    const KIND: &'static str = "quality_score_updated";
    const ROOM: &'static str = "monitoring";

    fn severity(&self) -> Severity {
        match self.quality_score {
            s if s >= 90.0 => Severity::Success,
            s if s >= 70.0 => Severity::Warning,
            _ => Severity::Error,
        }
    }
}

/// A chat message (`chat_message`, room `chat`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who wrote it.
    pub user: String,
    /// The text, shown as text (never as HTML).
    pub message: String,
}

impl Payload for ChatMessage {
    const KIND: &'static str = "chat_message";
    const ROOM: &'static str = "chat";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_follow_the_data() {
        let mut done = AgentExecutionCompleted {
            agent_id: "a1".into(),
            agent_name: "scanner".into(),
            task_description: "ports".into(),
            duration_ms: 5,
            success: true,
            quality_score: Some(97.0),
        };
        assert_eq!(done.severity(), Severity::Success);
        done.success = false;
        assert_eq!(done.severity(), Severity::Error);
        let q = |s| {
            QualityScoreUpdated {
                subject: "x".into(),
                quality_score: s,
            }
            .severity()
        };
        assert_eq!(
            (q(95.0), q(75.0), q(10.0)),
            (Severity::Success, Severity::Warning, Severity::Error)
        );
    }
}
