//! One behavioural suite, run against every broker: the in-process one and (feature `redis`)
//! the Redis one. Each scenario takes a [`Harness`] that makes buses; a bus of the Redis harness
//! is a node of a bus in a `redis-server` started for that test.
//!
//! Publishes are awaited and deliveries waited for with bounds, so the same code holds for a
//! broker that answers at once and for one that answers later.

mod common;

use std::time::Duration;

use common::{collect, drain, seqs, settle};
use event_bus::{
    Bus, BusConfig, Delivery, Epoch, Error, Filter, Lagged, Position, RoomConfig, Severity,
};
use serde_json::json;

/// Makes buses of one broker kind.
enum Harness {
    InProcess,
    #[cfg(feature = "redis")]
    Redis {
        server: common::RedisServer,
        prefix: String,
    },
}

impl Harness {
    /// A bus with these rooms and this subscriber queue capacity.
    async fn bus(&self, rooms: Vec<RoomConfig>, queue: usize) -> Bus {
        match self {
            Harness::InProcess => BusConfig {
                rooms,
                queue_capacity: queue,
                epoch: None,
            }
            .build()
            .expect("a valid configuration"),
            #[cfg(feature = "redis")]
            Harness::Redis { server, prefix } => {
                let config = event_bus::RedisConfig::new(server.url())
                    .prefix(prefix.clone())
                    .rooms(rooms)
                    .head_check(Duration::from_millis(200));
                let broker = event_bus::RedisBroker::connect(config)
                    .await
                    .expect("connects to the test redis-server");
                Bus::with_broker(std::sync::Arc::new(broker), queue)
            }
        }
    }

    async fn default_bus(&self) -> Bus {
        self.bus(RoomConfig::defaults(), 1024).await
    }
}

async fn publish(bus: &Bus, kind: &str, room: &str, n: u64) -> u64 {
    bus.publish_json(kind, room, &json!({ "n": n }))
        .expect("accepted")
        .await
        .expect("published")
        .seq()
}

async fn order_is_strictly_increasing_across_rooms(h: &Harness) {
    let bus = h.default_bus().await;
    let mut all = bus.subscribe(Filter::all()).unwrap();
    let mut scans = bus.subscribe(Filter::rooms(["scans"]).unwrap()).unwrap();
    let mut published = Vec::new();
    for n in 0..60 {
        let room = ["scans", "alerts", "monitoring"][n as usize % 3];
        published.push(publish(&bus, "scan_update", room, n).await);
    }
    assert_eq!(published, (1..=60).collect::<Vec<_>>());
    assert_eq!(seqs(&collect(&mut all, 60).await), published);
    let got = seqs(&collect(&mut scans, 20).await);
    assert_eq!(got, (1..=60).step_by(3).collect::<Vec<_>>());
    assert_eq!(bus.head(), 60);
}

async fn filters_select_by_room_kind_and_severity(h: &Harness) {
    let bus = h.default_bus().await;
    let mut two_rooms = bus
        .subscribe(Filter::rooms(["scans", "alerts"]).unwrap())
        .unwrap();
    let mut completed = bus
        .subscribe(Filter::all().kinds(["scan_completed"]).unwrap())
        .unwrap();
    let mut severe = bus
        .subscribe(Filter::all().min_severity(Severity::Error))
        .unwrap();
    publish(&bus, "scan_update", "scans", 1).await;
    publish(&bus, "scan_completed", "scans", 2).await;
    let draft = event_bus::EventDraft::new("critical_alert", "alerts", &json!({}))
        .unwrap()
        .with_severity(Severity::Critical);
    bus.publish_draft(draft).unwrap().await.unwrap();
    publish(&bus, "chat_message", "chat", 4).await;
    let draft = event_bus::EventDraft::new("scan_completed", "monitoring", &json!({}))
        .unwrap()
        .with_severity(Severity::Error);
    let last = bus.publish_draft(draft).unwrap().await.unwrap().seq();
    settle(&bus, last).await;
    assert_eq!(seqs(&drain(&mut two_rooms)), [1, 2, 3]);
    assert_eq!(seqs(&drain(&mut completed)), [2, 5]);
    assert_eq!(seqs(&drain(&mut severe)), [3, 5]);
}

async fn a_full_queue_reports_lag_with_the_resume_point(h: &Harness) {
    let bus = h.bus(RoomConfig::defaults(), 2).await;
    let mut sub = bus.subscribe(Filter::rooms(["scans"]).unwrap()).unwrap();
    let mut last = 0;
    for n in 0..5 {
        last = publish(&bus, "scan_update", "scans", n).await;
    }
    settle(&bus, last).await;
    let got = drain(&mut sub);
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(seqs(&got[..2]), [1, 2]);
    match got[2] {
        Delivery::Lagged(lag) => assert_eq!(
            lag,
            Lagged {
                missed: 3,
                resume_from: 2
            }
        ),
        ref other => panic!("expected a lag, got {other:?}"),
    }
    // What was missed is in history.
    let replay = bus
        .since(
            sub.criteria(),
            Position {
                epoch: bus.epoch(),
                seq: 2,
            },
        )
        .unwrap();
    assert!(replay.recovered);
    assert_eq!(
        replay.events.iter().map(|e| e.seq()).collect::<Vec<_>>(),
        [3, 4, 5]
    );
}

async fn since_replays_within_history_and_says_when_it_cannot(h: &Harness) {
    let rooms = vec![
        RoomConfig::new("scans").unwrap().history(3),
        RoomConfig::new("chat").unwrap().history(10),
    ];
    let bus = h.bus(rooms, 64).await;
    let mut last = 0;
    for n in 0..5 {
        last = publish(&bus, "scan_update", "scans", n).await;
    }
    settle(&bus, last).await;
    let epoch = bus.epoch();
    let at = |seq| Position { epoch, seq };
    let scans = Filter::rooms(["scans"]).unwrap();
    let seqs_of = |r: &event_bus::Replay| r.events.iter().map(|e| e.seq()).collect::<Vec<_>>();

    let within = bus.since(&scans, at(2)).unwrap();
    assert!(within.recovered);
    assert_eq!(seqs_of(&within), [3, 4, 5]);
    assert_eq!(within.head, 5);

    // History bound: the ring keeps three; an older position is not recoverable.
    let too_old = bus.since(&scans, at(0)).unwrap();
    assert!(!too_old.recovered);
    assert_eq!(seqs_of(&too_old), [3, 4, 5]);

    let ahead = bus.since(&scans, at(99)).unwrap();
    assert!(!ahead.recovered);

    let foreign = bus
        .since(
            &scans,
            Position {
                epoch: Epoch::from_u64(epoch.as_u64() ^ 1),
                seq: 4,
            },
        )
        .unwrap();
    assert!(!foreign.recovered);
    assert_eq!(foreign.epoch, epoch);

    // subscribe_since: the replay and the live stream neither overlap nor leave a gap.
    let (replay, mut sub) = bus.subscribe_since(Filter::all(), at(3)).unwrap();
    assert!(replay.recovered);
    assert_eq!(seqs_of(&replay), [4, 5]);
    let next = publish(&bus, "chat_message", "chat", 6).await;
    assert_eq!(seqs(&collect(&mut sub, 1).await), [next]);
    assert_eq!(next, 6);
}

async fn unknown_rooms_are_typed_errors(h: &Harness) {
    let bus = h.default_bus().await;
    assert!(matches!(
        bus.publish_json("chat_message", "nowhere", &json!({})),
        Err(Error::UnknownRoom(_))
    ));
    assert!(matches!(
        bus.subscribe(Filter::rooms(["nowhere"]).unwrap()),
        Err(Error::UnknownRoom(_))
    ));
    assert!(matches!(
        bus.since(
            &Filter::rooms(["nowhere"]).unwrap(),
            Position {
                epoch: bus.epoch(),
                seq: 0
            }
        ),
        Err(Error::UnknownRoom(_))
    ));
    assert!(bus.publish_json("Bad Kind", "chat", &json!({})).is_err());
    assert_eq!(bus.head(), 0, "nothing was published");
}

async fn a_room_without_history_delivers_live_only(h: &Harness) {
    let rooms = vec![RoomConfig::new("chat").unwrap().history(0)];
    let bus = h.bus(rooms, 16).await;
    let mut sub = bus.subscribe(Filter::all()).unwrap();
    let seq = publish(&bus, "chat_message", "chat", 1).await;
    assert_eq!(seqs(&collect(&mut sub, 1).await), [seq]);
    let replay = bus
        .since(
            &Filter::all(),
            Position {
                epoch: bus.epoch(),
                seq: 0,
            },
        )
        .unwrap();
    assert!(!replay.recovered);
    assert!(replay.events.is_empty());
    let metrics = bus.metrics();
    assert_eq!(metrics.total_events, 1);
}

/// Runs each scenario against each broker, bounded in time.
macro_rules! conformance {
    ($($scenario:ident),* $(,)?) => {
        mod in_process {
            $(
                #[tokio::test]
                async fn $scenario() {
                    tokio::time::timeout(std::time::Duration::from_secs(60), super::$scenario(&super::Harness::InProcess))
                        .await
                        .expect("bounded in time");
                }
            )*
        }

        #[cfg(feature = "redis")]
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let Some(server) = super::common::RedisServer::start(stringify!($scenario)) else {
                        return;
                    };
                    let harness = super::Harness::Redis {
                        server,
                        prefix: super::common::unique_prefix(stringify!($scenario)),
                    };
                    tokio::time::timeout(std::time::Duration::from_secs(60), super::$scenario(&harness))
                        .await
                        .expect("bounded in time");
                }
            )*
        }
    };
}

conformance!(
    order_is_strictly_increasing_across_rooms,
    filters_select_by_room_kind_and_severity,
    a_full_queue_reports_lag_with_the_resume_point,
    since_replays_within_history_and_says_when_it_cannot,
    unknown_rooms_are_typed_errors,
    a_room_without_history_delivers_live_only,
);
