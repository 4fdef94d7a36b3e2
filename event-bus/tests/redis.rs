//! The Redis broker across nodes: two brokers ("nodes") on one `redis-server` started for each
//! test. Concurrent publishers on both nodes, resume on the other node, a killed subscription
//! connection, Redis restarted without persistence, a node joining late, back-pressure.
//!
//! Each test starts its own `redis-server` on a free loopback port and stops it when done; it
//! is skipped (with a `SKIPPED:` line) when `redis-server` is not installed, and fails instead
//! when `VIGIL_E2E=required`.

#![cfg(feature = "redis")]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::{RedisServer, collect, seqs, settle, unique_prefix};
use event_bus::{
    Broker, Bus, Delivery, Error, Filter, Position, RedisBroker, RedisConfig, RoomConfig,
};
use serde_json::json;

/// A bound on every test.
const LIMIT: Duration = Duration::from_secs(90);

fn config(server: &RedisServer, prefix: &str) -> RedisConfig {
    RedisConfig::new(server.url())
        .prefix(prefix)
        .head_check(Duration::from_millis(200))
        .reconnect(Duration::from_millis(20), Duration::from_millis(200))
        .timeout(Duration::from_secs(2))
}

async fn node(server: &RedisServer, prefix: &str) -> Bus {
    let broker = RedisBroker::connect(config(server, prefix))
        .await
        .expect("connects");
    Bus::with_broker(Arc::new(broker), 100_000)
}

fn events_of(deliveries: &[Delivery]) -> Vec<(u64, u64, u64)> {
    deliveries
        .iter()
        .map(|d| match d {
            Delivery::Event(e) => {
                let data = e.to_envelope().data;
                (
                    e.seq(),
                    data["p"].as_u64().expect("p"),
                    data["n"].as_u64().expect("n"),
                )
            }
            Delivery::Lagged(l) => panic!("unexpected lag {l:?}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_on_two_nodes_give_every_subscriber_one_gapless_order() {
    let Some(server) = RedisServer::start("two_nodes") else {
        return;
    };
    tokio::time::timeout(LIMIT, async {
        let prefix = unique_prefix("two-nodes");
        let a = node(&server, &prefix).await;
        let b = node(&server, &prefix).await;
        assert_eq!(
            a.epoch(),
            b.epoch(),
            "the second node adopts the bus's epoch"
        );
        let mut subs = vec![
            a.subscribe(Filter::all()).unwrap(),
            b.subscribe(Filter::all()).unwrap(),
            b.subscribe(Filter::rooms(["scans"]).unwrap()).unwrap(),
        ];
        const PUBLISHERS: u64 = 4;
        const EACH: u64 = 500;
        let mut tasks = tokio::task::JoinSet::new();
        for p in 0..PUBLISHERS {
            let bus = if p % 2 == 0 { a.clone() } else { b.clone() };
            tasks.spawn(async move {
                // Many in flight at once (pipelined), then awaited.
                let mut tickets = Vec::new();
                for n in 0..EACH {
                    let room = if n % 2 == 0 { "scans" } else { "monitoring" };
                    tickets.push(
                        bus.publish_json("scan_update", room, &json!({"p": p, "n": n}))
                            .expect("accepted"),
                    );
                    if n % 50 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                let mut seqs = Vec::new();
                for ticket in tickets {
                    seqs.push(ticket.await.expect("published").seq());
                }
                seqs
            });
        }
        let mut acked = Vec::new();
        while let Some(seqs) = tasks.join_next().await {
            let seqs = seqs.unwrap();
            assert!(
                seqs.windows(2).all(|w| w[0] < w[1]),
                "one publisher's events are numbered in its order"
            );
            acked.extend(seqs);
        }
        acked.sort_unstable();
        let total = PUBLISHERS * EACH;
        assert_eq!(
            acked,
            (1..=total).collect::<Vec<_>>(),
            "every seq given once"
        );

        let on_a = events_of(&collect(&mut subs[0], total as usize).await);
        let on_b = events_of(&collect(&mut subs[1], total as usize).await);
        let scans_b = events_of(&collect(&mut subs[2], (total / 2) as usize).await);
        assert_eq!(
            on_a.iter().map(|e| e.0).collect::<Vec<_>>(),
            (1..=total).collect::<Vec<_>>(),
            "strictly increasing, no gap, no duplicate"
        );
        assert_eq!(
            on_a, on_b,
            "both nodes see the same events in the same order"
        );
        let distinct: HashSet<(u64, u64)> = on_a.iter().map(|e| (e.1, e.2)).collect();
        assert_eq!(distinct.len() as u64, total);
        assert!(scans_b.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(scans_b.iter().all(|e| e.2 % 2 == 0));
        for sub in &mut subs {
            assert!(sub.try_next().is_none(), "nothing more");
        }
        assert_eq!(a.head(), total);
        assert_eq!(b.head(), total);
    })
    .await
    .expect("bounded in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resumes_on_the_other_node() {
    let Some(server) = RedisServer::start("resume") else {
        return;
    };
    tokio::time::timeout(LIMIT, async {
        let prefix = unique_prefix("resume");
        let a = node(&server, &prefix).await;
        let b = node(&server, &prefix).await;
        let mut on_a = a.subscribe(Filter::rooms(["scans"]).unwrap()).unwrap();
        for n in 0..10 {
            a.publish_json("scan_update", "scans", &json!({"p": 0, "n": n}))
                .unwrap()
                .await
                .unwrap();
        }
        // The client reads four events on node A, then goes away.
        let seen = collect(&mut on_a, 4).await;
        drop(on_a);
        let position = Position {
            epoch: a.epoch(),
            seq: seqs(&seen)[3],
        };
        settle(&b, 10).await;
        let (replay, mut on_b) = b
            .subscribe_since(Filter::rooms(["scans"]).unwrap(), position)
            .unwrap();
        assert!(replay.recovered);
        assert_eq!(
            replay.events.iter().map(|e| e.seq()).collect::<Vec<_>>(),
            (5..=10).collect::<Vec<_>>()
        );
        let next = a
            .publish_json("scan_update", "scans", &json!({"p": 0, "n": 10}))
            .unwrap()
            .await
            .unwrap();
        assert_eq!(seqs(&collect(&mut on_b, 1).await), [next.seq()]);
    })
    .await
    .expect("bounded in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_subscription_connections_loses_nothing() {
    let Some(server) = RedisServer::start("kill_pubsub") else {
        return;
    };
    tokio::time::timeout(LIMIT, async {
        let prefix = unique_prefix("kill");
        let a = node(&server, &prefix).await;
        let b = node(&server, &prefix).await;
        let mut on_a = a.subscribe(Filter::all()).unwrap();
        let mut on_b = b.subscribe(Filter::all()).unwrap();
        const TOTAL: u64 = 3000;
        let publisher = {
            let a = a.clone();
            tokio::spawn(async move {
                let mut last = 0;
                for n in 0..TOTAL {
                    last = a
                        .publish_json("scan_update", "scans", &json!({"p": 0, "n": n}))
                        .expect("accepted")
                        .await
                        .expect("published")
                        .seq();
                }
                last
            })
        };
        // Mid-stream, Redis drops every pub/sub connection (both nodes'), twice.
        let mut killed = 0;
        for _ in 0..2 {
            settle(&b, b.head() + 500).await;
            let answer = server.command(redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("pubsub"));
            killed += redis::from_redis_value::<i64>(answer).expect("a count");
        }
        assert!(killed >= 2, "killed {killed} connections");
        assert_eq!(publisher.await.unwrap(), TOTAL);
        for sub in [&mut on_a, &mut on_b] {
            let got = seqs(&collect(sub, TOTAL as usize).await);
            assert_eq!(got, (1..=TOTAL).collect::<Vec<_>>());
            assert!(sub.try_next().is_none());
        }
    })
    .await
    .expect("bounded in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_without_persistence_gives_a_new_epoch() {
    let Some(mut server) = RedisServer::start("restart") else {
        return;
    };
    tokio::time::timeout(LIMIT, async {
        let prefix = unique_prefix("restart");
        let a = node(&server, &prefix).await;
        let mut sub = a.subscribe(Filter::all()).unwrap();
        for n in 0..5 {
            a.publish_json("scan_update", "scans", &json!({"p": 0, "n": n}))
                .unwrap()
                .await
                .unwrap();
        }
        collect(&mut sub, 5).await;
        let old = sub.position();
        assert_eq!(old.seq, 5);

        server.stop();
        // While Redis is away, publishing fails fast with a typed error, never hangs.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match a.publish_json("scan_update", "scans", &json!({"p": 0, "n": 99})) {
                Err(Error::Unavailable(_)) => break,
                Err(other) => panic!("unexpected error {other}"),
                Ok(ticket) => {
                    let outcome = tokio::time::timeout(Duration::from_secs(5), ticket)
                        .await
                        .expect("a ticket resolves in bounded time");
                    assert!(
                        matches!(outcome, Err(Error::Unconfirmed(_) | Error::Unavailable(_))),
                        "{outcome:?}"
                    );
                }
            }
            assert!(tokio::time::Instant::now() < deadline, "never unavailable");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        server.restart();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while a.epoch() == old.epoch {
            assert!(tokio::time::Instant::now() < deadline, "no new epoch");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The live subscription ended: its positions mean nothing in the new epoch.
        assert!(
            tokio::time::timeout(Duration::from_secs(5), sub.recv())
                .await
                .expect("ends in bounded time")
                .is_none()
        );
        let replay = a.since(&Filter::all(), old).unwrap();
        assert!(!replay.recovered, "the old epoch cannot be resumed");
        assert_ne!(replay.epoch, old.epoch);

        // The bus works again, from seq 1 of the new epoch, once the writer is back.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let event = loop {
            match a.publish_json("scan_update", "scans", &json!({"p": 0, "n": 100})) {
                Ok(ticket) => break ticket.await.expect("published"),
                Err(Error::Unavailable(_)) => {
                    assert!(tokio::time::Instant::now() < deadline, "no reconnect");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(other) => panic!("{other}"),
            }
        };
        assert_eq!(event.seq(), 1);
        assert_eq!(event.epoch(), a.epoch());
    })
    .await
    .expect("bounded in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joining_later_adopts_the_epoch_and_the_history() {
    let Some(server) = RedisServer::start("late_node") else {
        return;
    };
    tokio::time::timeout(LIMIT, async {
        let prefix = unique_prefix("late");
        let rooms = vec![RoomConfig::new("scans").unwrap().history(5)];
        let connect =
            |rooms: Vec<RoomConfig>| RedisBroker::connect(config(&server, &prefix).rooms(rooms));
        let a = Bus::with_broker(Arc::new(connect(rooms.clone()).await.unwrap()), 64);
        for n in 0..8 {
            a.publish_json("scan_update", "scans", &json!({"p": 0, "n": n}))
                .unwrap()
                .await
                .unwrap();
        }
        let b = Bus::with_broker(Arc::new(connect(rooms).await.unwrap()), 64);
        assert_eq!(b.epoch(), a.epoch());
        assert_eq!(b.head(), 8);
        let at = |seq| Position {
            epoch: a.epoch(),
            seq,
        };
        let replay = b.since(&Filter::all(), at(3)).unwrap();
        assert!(replay.recovered, "the stream keeps 4..=8");
        assert_eq!(
            replay.events.iter().map(|e| e.seq()).collect::<Vec<_>>(),
            [4, 5, 6, 7, 8]
        );
        // Older than the stream keeps: the late node knows it cannot tell.
        assert!(!b.since(&Filter::all(), at(1)).unwrap().recovered);
        // The stream really is bounded by the room's history size.
        let len = server.command(redis::cmd("XLEN").arg(format!("{{{prefix}}}:room:scans")));
        assert_eq!(redis::from_redis_value::<u64>(len).unwrap(), 5);
    })
    .await
    .expect("bounded in time");
}

#[test]
fn a_full_publish_queue_fails_at_once() {
    let Some(server) = RedisServer::start("overloaded") else {
        return;
    };
    // One thread: the writer cannot run while this test publishes, so the queue fills.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let broker = tokio::time::timeout(
            LIMIT,
            RedisBroker::connect(config(&server, &unique_prefix("full")).publish_queue(4)),
        )
        .await
        .expect("bounded")
        .expect("connects");
        let draft = || {
            event_bus::EventDraft::new("scan_update", "scans", &json!({"p": 0, "n": 0})).unwrap()
        };
        let mut tickets = Vec::new();
        for _ in 0..4 {
            tickets.push(broker.publish(draft()).expect("room in the queue"));
        }
        assert!(matches!(
            broker.publish(draft()),
            Err(Error::Overloaded { capacity: 4 })
        ));
        // What was accepted is published.
        for ticket in tickets {
            let event = tokio::time::timeout(LIMIT, ticket)
                .await
                .expect("bounded")
                .expect("published");
            assert!(event.seq() >= 1);
        }
    });
}
