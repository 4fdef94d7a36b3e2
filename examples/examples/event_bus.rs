//! The in-process event bus: publish typed and JSON events, subscribe with a filter, notice lag
//! and catch up from history.
//!
//! Run it with:
//!
//! ```text
//! cargo run -p vigil-examples --example event_bus
//! ```

use event_bus::payloads::{AgentExecutionCompleted, AgentExecutionStarted};
use event_bus::{BusConfig, Delivery, Filter, Payload, Severity, SubscribeOptions};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

/// A payload of our own: a custom kind in the `alerts` room.
#[derive(Debug, Serialize, Deserialize)]
struct PortOpened {
    host: String,
    port: u16,
}

impl Payload for PortOpened {
    const KIND: &'static str = "port_opened";
    const ROOM: &'static str = "alerts";
    const SEVERITY: Severity = Severity::Warning;
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    // Small queues so that the slow subscriber below visibly falls behind.
    let bus = BusConfig::default().queue_capacity(4).build()?;

    // A dashboard that wants warnings and worse from every room.
    let mut dashboard = bus.subscribe(Filter::all().min_severity(Severity::Warning))?;
    // A monitor of agent runs that reads nothing until the end.
    let (_, mut slow) = bus.subscribe_with(
        Filter::rooms(["monitoring"])?,
        SubscribeOptions {
            queue_capacity: Some(2),
            ..SubscribeOptions::default()
        },
    )?;

    for (i, port) in [22u16, 80, 443].into_iter().enumerate() {
        let agent_id = format!("agent-{i}");
        bus.publish(&AgentExecutionStarted {
            agent_id: agent_id.clone(),
            agent_name: "port-scanner".into(),
            task_description: format!("probe port {port}"),
        })?;
        bus.publish(&PortOpened {
            host: "127.0.0.1".into(),
            port,
        })?;
        bus.publish(&AgentExecutionCompleted {
            agent_id,
            agent_name: "port-scanner".into(),
            task_description: format!("probe port {port}"),
            duration_ms: 12,
            success: port != 443,
            quality_score: Some(if port == 443 { 40.0 } else { 98.0 }),
        })?;
    }
    // Events from outside the process arrive as JSON; names are validated.
    bus.publish_json(
        "chat_message",
        "chat",
        &serde_json::json!({"user": "ops", "message": "scan done"}),
    )?;
    if let Err(err) = bus.publish_json("Chat Message", "chat", &serde_json::Value::Null) {
        println!("rejected as expected: {err}");
    }

    println!("dashboard (warning and up):");
    while let Some(delivery) = dashboard.try_next() {
        if let Delivery::Event(event) = delivery {
            println!(
                "  #{:<3} {:<9} {:<26} {}",
                event.seq(),
                event.severity(),
                event.kind(),
                event.data()
            );
            if let Ok(port) = event.decode::<PortOpened>() {
                println!("       decoded: {}:{}", port.host, port.port);
            }
        }
    }

    println!("slow monitor:");
    while let Some(delivery) = slow.next().await {
        match delivery {
            Delivery::Event(event) => println!("  #{} {}", event.seq(), event.kind()),
            Delivery::Lagged(lag) => {
                println!(
                    "  lagged: missed {} events after #{}",
                    lag.missed, lag.resume_from
                );
                let position = event_bus::Position {
                    epoch: bus.epoch(),
                    seq: lag.resume_from,
                };
                let replay = bus.since(slow.criteria(), position)?;
                println!(
                    "  recovered from history: {} (complete: {})",
                    replay.events.len(),
                    replay.recovered
                );
                break;
            }
        }
    }

    let metrics = bus.metrics();
    println!(
        "metrics: {} events, {} agent runs, average quality {:.1}, {} missed deliveries",
        metrics.total_events,
        metrics.total_agents_executed,
        metrics.avg_quality_score,
        metrics.missed_deliveries
    );
    Ok(())
}
