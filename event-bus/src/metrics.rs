//! Counters per kind, room and severity, and the dashboard aggregates.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::kind::{EventKind, KNOWN_KINDS};
use crate::severity::Severity;

/// Custom kinds counted by name at most; any more are counted under [`OTHER_KINDS`], so that
/// clients inventing names cannot grow the bus's memory without bound.
pub const MAX_CUSTOM_KINDS: usize = 1024;

/// The label under which custom kinds past [`MAX_CUSTOM_KINDS`] are counted.
pub const OTHER_KINDS: &str = "other";

/// Agents tracked as running at most (a bound against agents that start and never finish).
pub const MAX_TRACKED_AGENTS: usize = 10_000;

/// A copy of the bus's counters at one moment.
///
/// The aggregates are those of the dashboard the project grew from:
///
/// | field | counts |
/// |---|---|
/// | `total_events` | every event published |
/// | `total_agents_executed` | `agent_execution_completed` events |
/// | `total_opportunities_discovered` | `opportunity_discovered` events |
/// | `avg_quality_score` | mean of the numeric `quality_score` in `agent_execution_completed` and `quality_score_updated` data (0 when none) |
/// | `active_agents` | distinct `agent_id`s with more `agent_execution_started` than `agent_execution_completed` events |
/// | `uptime_seconds` | time since the bus was made |
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsSnapshot {
    /// Every event published.
    pub total_events: u64,
    /// Completed agent executions.
    pub total_agents_executed: u64,
    /// Opportunities discovered.
    pub total_opportunities_discovered: u64,
    /// Mean quality score, 0 when none was reported.
    pub avg_quality_score: f64,
    /// How many quality scores the mean is over.
    pub quality_scores: u64,
    /// Agents executing now.
    pub active_agents: u64,
    /// Seconds since the bus was made.
    pub uptime_seconds: f64,
    /// Events per kind name.
    pub by_kind: BTreeMap<String, u64>,
    /// Events per room.
    pub by_room: BTreeMap<String, u64>,
    /// Events per severity.
    pub by_severity: BTreeMap<Severity, u64>,
    /// Live subscriptions.
    pub subscribers: u64,
    /// Deliveries lost to full subscriber queues (each was reported as [`crate::Lagged`]).
    pub missed_deliveries: u64,
}

#[derive(Debug)]
pub(crate) struct Counters {
    started: Instant,
    total: u64,
    known: [u64; KNOWN_KINDS],
    custom: HashMap<Arc<str>, u64>,
    other_kinds: u64,
    severity: [u64; 5],
    quality_sum: f64,
    quality_count: u64,
    running: HashMap<String, u32>,
    pub(crate) missed: u64,
}

/// The fields of agent and quality events that the aggregates read.
#[derive(Deserialize)]
struct AggregateFields<'a> {
    #[serde(default, borrow)]
    agent_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    quality_score: Option<f64>,
}

impl Counters {
    pub(crate) fn new() -> Counters {
        Counters {
            started: Instant::now(),
            total: 0,
            known: [0; KNOWN_KINDS],
            custom: HashMap::new(),
            other_kinds: 0,
            severity: [0; 5],
            quality_sum: 0.0,
            quality_count: 0,
            running: HashMap::new(),
            missed: 0,
        }
    }

    pub(crate) fn record(&mut self, event: &Event) {
        self.total += 1;
        self.severity[event.severity().index()] += 1;
        match event.kind().known_index() {
            Some(i) => self.known[i] += 1,
            None => {
                let name = event.kind().as_str();
                if let Some(count) = self.custom.get_mut(name) {
                    *count += 1;
                } else if self.custom.len() < MAX_CUSTOM_KINDS {
                    self.custom.insert(Arc::from(name), 1);
                } else {
                    self.other_kinds += 1;
                }
            }
        }
        let kind = event.kind();
        let reads_data = matches!(
            kind,
            EventKind::AgentExecutionStarted
                | EventKind::AgentExecutionCompleted
                | EventKind::QualityScoreUpdated
        );
        if !reads_data {
            return;
        }
        // Data that is not an object, or fields of other types, simply do not count.
        let Ok(fields) = serde_json::from_str::<AggregateFields<'_>>(event.data().get()) else {
            return;
        };
        if let Some(score) = fields.quality_score.filter(|s| s.is_finite())
            && matches!(
                kind,
                EventKind::AgentExecutionCompleted | EventKind::QualityScoreUpdated
            )
        {
            self.quality_sum += score;
            self.quality_count += 1;
        }
        let Some(agent) = fields.agent_id else { return };
        if matches!(kind, EventKind::AgentExecutionStarted) {
            if let Some(n) = self.running.get_mut(agent.as_ref()) {
                *n += 1;
            } else if self.running.len() < MAX_TRACKED_AGENTS {
                self.running.insert(agent.into_owned(), 1);
            }
        } else if matches!(kind, EventKind::AgentExecutionCompleted)
            && let Some(n) = self.running.get_mut(agent.as_ref())
        {
            *n -= 1;
            if *n == 0 {
                self.running.remove(agent.as_ref());
            }
        }
    }

    pub(crate) fn snapshot(
        &self,
        by_room: BTreeMap<String, u64>,
        subscribers: u64,
    ) -> MetricsSnapshot {
        let mut by_kind: BTreeMap<String, u64> = EventKind::KNOWN
            .iter()
            .zip(self.known)
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| (k.as_str().to_owned(), n))
            .collect();
        by_kind.extend(self.custom.iter().map(|(k, n)| (k.to_string(), *n)));
        if self.other_kinds > 0 {
            *by_kind.entry(OTHER_KINDS.to_owned()).or_default() += self.other_kinds;
        }
        let count = |kind: EventKind| self.known[kind.known_index().expect("a known kind")];
        MetricsSnapshot {
            total_events: self.total,
            total_agents_executed: count(EventKind::AgentExecutionCompleted),
            total_opportunities_discovered: count(EventKind::OpportunityDiscovered),
            avg_quality_score: if self.quality_count == 0 {
                0.0
            } else {
                self.quality_sum / self.quality_count as f64
            },
            quality_scores: self.quality_count,
            active_agents: self.running.len() as u64,
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            by_kind,
            by_room,
            by_severity: Severity::ALL.into_iter().zip(self.severity).collect(),
            subscribers,
            missed_deliveries: self.missed,
        }
    }
}
