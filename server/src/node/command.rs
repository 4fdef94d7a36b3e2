//! What an operator can tell an agent: carried by the `/ws` and Socket.IO protocols to the agent,
//! and by the cluster's control channel to the node that holds it.

use serde::{Deserialize, Serialize};

/// Commands an operator can send to an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentCommand {
    /// Finish or hand back running work and disconnect.
    Stop,
    /// Cancel a task.
    Cancel,
    /// Report health now.
    HealthCheck,
}
