//! event-bus benchmarks: publish cost, fan-out, history replay.
//!
//! Run with `cargo bench -p vigil-benches --bench event_bus`. Targets (DESIGN.md §9): publish
//! with no subscriber ≤ 1 µs per event; fan-out ≥ 2 M deliveries/s with 100 subscribers on one
//! core. Everything here runs on one thread.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use event_bus::payloads::AgentExecutionCompleted;
use event_bus::{Bus, BusConfig, Delivery, EventDraft, Filter, Position, RoomConfig};
use futures::StreamExt;

/// A typical event: about 200 bytes of JSON once enveloped.
fn payload(i: u64) -> AgentExecutionCompleted {
    AgentExecutionCompleted {
        agent_id: format!("agent-{}", i % 8),
        agent_name: "port-scanner".into(),
        task_description: "scan 10.0.0.0/24 top-100".into(),
        duration_ms: 1234,
        success: true,
        quality_score: Some(97.5),
    }
}

fn publish(c: &mut Criterion) {
    let mut group = c.benchmark_group("publish_no_subscriber");
    group.throughput(Throughput::Elements(1));
    let bus = Bus::new();
    let typed = payload(1);
    group.bench_function("typed", |b| {
        b.iter(|| bus.publish(black_box(&typed)).unwrap())
    });
    let data = serde_json::to_value(&typed).unwrap();
    group.bench_function("json", |b| {
        b.iter(|| {
            bus.publish_json("agent_execution_completed", "monitoring", black_box(&data))
                .unwrap()
        })
    });
    // The part of publish that runs under the bus lock, with a pre-encoded draft.
    let raw = serde_json::value::to_raw_value(&typed).unwrap();
    group.bench_function("draft", |b| {
        b.iter_batched(
            || {
                EventDraft::new(
                    "agent_execution_completed",
                    "monitoring",
                    &serde_json::Value::Null,
                )
                .map(|mut d| {
                    d.data = raw.clone();
                    d
                })
                .unwrap()
            },
            |draft| bus.publish_draft(draft).unwrap(),
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// Events published per measured batch before the subscribers drain them.
const BATCH: u64 = 256;

fn fan_out(c: &mut Criterion) {
    let mut group = c.benchmark_group("fan_out");
    for subscribers in [1usize, 10, 100, 1000] {
        group.throughput(Throughput::Elements(BATCH * subscribers as u64));
        let typed = payload(1);

        // Publisher and subscribers drain on the same thread, without tasks.
        group.bench_with_input(
            BenchmarkId::new("drain", subscribers),
            &subscribers,
            |b, &n| {
                let bus = BusConfig::default()
                    .queue_capacity(BATCH as usize)
                    .build()
                    .unwrap();
                let mut subs: Vec<_> = (0..n)
                    .map(|_| {
                        bus.subscribe(Filter::rooms(["monitoring"]).unwrap())
                            .unwrap()
                    })
                    .collect();
                b.iter(|| {
                    for _ in 0..BATCH {
                        bus.publish(&typed).unwrap();
                    }
                    let mut delivered = 0u64;
                    for sub in &mut subs {
                        while let Some(d) = sub.try_next() {
                            if let Delivery::Event(e) = d {
                                delivered += black_box(e.json().len() as u64 > 0) as u64;
                            } else {
                                panic!("lagged in a bench sized not to");
                            }
                        }
                    }
                    assert_eq!(delivered, BATCH * n as u64);
                })
            },
        );

        // Baseline, same shape as `drain`: tokio's broadcast channel carrying the same shared
        // events (what a bus without filters, history or per-filter lag counts would cost).
        group.bench_with_input(
            BenchmarkId::new("baseline_tokio_broadcast", subscribers),
            &subscribers,
            |b, &n| {
                let bus = Bus::new();
                let (tx, _) = tokio::sync::broadcast::channel(BATCH as usize);
                let mut rxs: Vec<_> = (0..n).map(|_| tx.subscribe()).collect();
                b.iter(|| {
                    for _ in 0..BATCH {
                        // Encoding and numbering as the bus does, so only the fan-out differs.
                        tx.send(bus.publish(&typed).unwrap().now().unwrap())
                            .unwrap();
                    }
                    let mut delivered = 0u64;
                    for rx in &mut rxs {
                        while let Ok(e) = rx.try_recv() {
                            delivered += black_box(e.json().len() as u64 > 0) as u64;
                        }
                    }
                    assert_eq!(delivered, BATCH * n as u64);
                })
            },
        );

        // Each subscriber is a task awaiting its stream, as a server connection is; one thread.
        group.bench_with_input(
            BenchmarkId::new("tasks", subscribers),
            &subscribers,
            |b, &n| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                let bus = BusConfig::default()
                    .queue_capacity(BATCH as usize)
                    .build()
                    .unwrap();
                b.iter(|| {
                    rt.block_on(async {
                        let mut tasks = tokio::task::JoinSet::new();
                        for _ in 0..n {
                            let mut sub = bus
                                .subscribe(Filter::rooms(["monitoring"]).unwrap())
                                .unwrap();
                            tasks.spawn(async move {
                                let mut got = 0;
                                while got < BATCH {
                                    match sub.next().await {
                                        Some(Delivery::Event(e)) => {
                                            black_box(e.json());
                                            got += 1;
                                        }
                                        other => panic!("unexpected {other:?}"),
                                    }
                                }
                            });
                        }
                        for _ in 0..BATCH {
                            bus.publish(&typed).unwrap();
                            // Let subscribers run as they would between a server's publishes.
                            if n >= 10 {
                                tokio::task::yield_now().await;
                            }
                        }
                        while let Some(r) = tasks.join_next().await {
                            r.unwrap();
                        }
                    })
                })
            },
        );
    }
    group.finish();
}

fn replay(c: &mut Criterion) {
    let mut group = c.benchmark_group("history_replay");
    for (ring, missed) in [(100usize, 100usize), (10_000, 100), (10_000, 10_000)] {
        let bus = BusConfig::default()
            .room(RoomConfig::new("monitoring").unwrap().history(ring))
            .build()
            .unwrap();
        for i in 0..ring as u64 {
            bus.publish(&payload(i)).unwrap();
        }
        let filter = Filter::rooms(["monitoring"]).unwrap();
        let since = Position {
            epoch: bus.epoch(),
            seq: bus.head() - missed as u64,
        };
        group.throughput(Throughput::Elements(missed as u64));
        group.bench_function(BenchmarkId::new(format!("ring_{ring}"), missed), |b| {
            b.iter(|| {
                let replay = bus.since(&filter, black_box(since)).unwrap();
                assert!(replay.recovered && replay.events.len() == missed);
                replay
            })
        });
    }
    group.finish();
}

criterion_group!(benches, publish, fan_out, replay);
criterion_main!(benches);
