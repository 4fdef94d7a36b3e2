//! Public-API tests of the event bus: ordering, filters, history and resume, lag, concurrency,
//! names.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use event_bus::payloads::{
    AgentExecutionCompleted, AgentExecutionStarted, ChatMessage, OpportunityDiscovered,
};
use event_bus::{
    Bus, BusConfig, Delivery, Epoch, Error, Event, EventDraft, EventKind, Filter, Lagged, Position,
    RoomConfig, Severity, SubscribeOptions, Subscription,
};
use futures::StreamExt;
use serde_json::json;

fn publish(bus: &Bus, kind: &str, room: &str, n: u64) -> Arc<Event> {
    bus.publish_json(kind, room, &json!({ "n": n }))
        .expect("publish")
        .now()
        .expect("in process, the ticket is ready")
}

/// Everything queued now, without waiting.
fn drain(sub: &mut Subscription) -> Vec<Delivery> {
    std::iter::from_fn(|| sub.try_next()).collect()
}

fn seqs(deliveries: &[Delivery]) -> Vec<u64> {
    deliveries
        .iter()
        .map(|d| match d {
            Delivery::Event(e) => e.seq(),
            Delivery::Lagged(l) => panic!("unexpected lag {l:?}"),
        })
        .collect()
}

fn n_of(event: &Event) -> u64 {
    event.to_envelope().data["n"].as_u64().expect("n")
}

#[tokio::test]
async fn events_of_a_room_arrive_in_publish_order() {
    let bus = Bus::new();
    let mut sub = bus.subscribe(Filter::rooms(["scans"]).unwrap()).unwrap();
    for n in 0..500 {
        publish(&bus, "scan_update", "scans", n);
    }
    let mut got = Vec::new();
    while got.len() < 500 {
        match sub.next().await.expect("stream open") {
            Delivery::Event(e) => got.push(n_of(&e)),
            Delivery::Lagged(l) => panic!("lagged {l:?}"),
        }
    }
    assert_eq!(got, (0..500).collect::<Vec<_>>());
}

#[test]
fn seq_is_strictly_increasing_across_rooms() {
    let bus = Bus::new();
    let mut all = bus.subscribe(Filter::all()).unwrap();
    for n in 0..30 {
        let room = ["scans", "alerts", "monitoring"][n as usize % 3];
        publish(&bus, "scan_update", room, n);
    }
    let got = seqs(&drain(&mut all));
    assert_eq!(got, (1..=30).collect::<Vec<_>>());
    assert_eq!(bus.head(), 30);
}

#[test]
fn filters_select_by_room_kind_and_severity() {
    let bus = Bus::new();
    let mut scans = bus.subscribe(Filter::rooms(["scans"]).unwrap()).unwrap();
    let mut two_rooms = bus
        .subscribe(Filter::rooms(["scans", "alerts"]).unwrap())
        .unwrap();
    let mut completed = bus
        .subscribe(Filter::all().kinds(["scan_completed"]).unwrap())
        .unwrap();
    let mut serious = bus
        .subscribe(Filter::all().min_severity(Severity::Error))
        .unwrap();

    let e1 = publish(&bus, "scan_update", "scans", 1);
    let e2 = publish(&bus, "scan_completed", "scans", 2);
    let e3 = bus
        .publish_draft(
            EventDraft::new("critical_alert", "alerts", &json!({"n": 3}))
                .unwrap()
                .with_severity(Severity::Critical),
        )
        .unwrap()
        .now()
        .unwrap();
    let e4 = publish(&bus, "chat_message", "chat", 4);
    let e5 = bus
        .publish_draft(
            EventDraft::new("scan_completed", "monitoring", &json!({"n": 5}))
                .unwrap()
                .with_severity(Severity::Error),
        )
        .unwrap()
        .now()
        .unwrap();

    assert_eq!(seqs(&drain(&mut scans)), [e1.seq(), e2.seq()]);
    assert_eq!(seqs(&drain(&mut two_rooms)), [e1.seq(), e2.seq(), e3.seq()]);
    assert_eq!(seqs(&drain(&mut completed)), [e2.seq(), e5.seq()]);
    assert_eq!(seqs(&drain(&mut serious)), [e3.seq(), e5.seq()]);
    assert!(e4.seq() > 0);
}

#[test]
fn subscribing_to_an_unknown_room_is_a_typed_error() {
    let bus = Bus::new();
    let err = bus
        .subscribe(Filter::rooms(["nowhere"]).unwrap())
        .unwrap_err();
    assert!(
        matches!(err, Error::UnknownRoom(ref r) if r == "nowhere"),
        "{err}"
    );
    let err = bus.since(
        &Filter::rooms(["nowhere"]).unwrap(),
        Position {
            epoch: bus.epoch(),
            seq: 0,
        },
    );
    assert!(matches!(err, Err(Error::UnknownRoom(_))));
}

#[test]
fn invalid_names_are_typed_errors_and_nothing_is_published() {
    let bus = Bus::new();
    for (kind, room) in [
        ("Bad Kind", "chat"),
        ("", "chat"),
        ("chat_message", "Chat"),
        ("chat_message", "a/b"),
    ] {
        let err = bus.publish_json(kind, room, &json!({})).unwrap_err();
        assert!(
            matches!(err, Error::InvalidName { .. }),
            "{kind:?} {room:?}: {err}"
        );
    }
    assert!(matches!(
        bus.publish_json("chat_message", "nowhere", &json!({})),
        Err(Error::UnknownRoom(_))
    ));
    assert!(matches!(
        Filter::rooms(["Not A Room"]),
        Err(Error::InvalidName { .. })
    ));
    assert!(matches!(
        Filter::all().kinds(["UPPER"]),
        Err(Error::InvalidName { .. })
    ));
    assert!(matches!(
        RoomConfig::new("bad room"),
        Err(Error::InvalidName { .. })
    ));
    assert_eq!(bus.head(), 0, "a rejected event takes no sequence number");
    assert_eq!(bus.metrics().total_events, 0);
}

#[test]
fn resume_within_the_ring_is_exact() {
    let bus = BusConfig::default()
        .room(RoomConfig::new("scans").unwrap().history(10))
        .build()
        .unwrap();
    let first: Vec<_> = (0..5)
        .map(|n| publish(&bus, "scan_update", "scans", n))
        .collect();
    let seen = Position {
        epoch: bus.epoch(),
        seq: first[2].seq(),
    };
    let later: Vec<_> = (5..8)
        .map(|n| publish(&bus, "scan_update", "scans", n))
        .collect();

    let replay = bus.since(&Filter::rooms(["scans"]).unwrap(), seen).unwrap();
    assert!(replay.recovered);
    assert_eq!(replay.epoch, bus.epoch());
    assert_eq!(replay.head, bus.head());
    let expected: Vec<u64> = first[3..].iter().chain(&later).map(|e| e.seq()).collect();
    assert_eq!(
        replay.events.iter().map(|e| e.seq()).collect::<Vec<_>>(),
        expected
    );
}

#[test]
fn resume_past_the_ring_is_not_recovered_but_returns_what_is_left() {
    let bus = BusConfig::default()
        .room(RoomConfig::new("scans").unwrap().history(3))
        .build()
        .unwrap();
    let events: Vec<_> = (0..10)
        .map(|n| publish(&bus, "scan_update", "scans", n))
        .collect();
    let filter = Filter::rooms(["scans"]).unwrap();

    let replay = bus
        .since(
            &filter,
            Position {
                epoch: bus.epoch(),
                seq: events[1].seq(),
            },
        )
        .unwrap();
    assert!(!replay.recovered);
    assert_eq!(
        replay.events.iter().map(|e| n_of(e)).collect::<Vec<_>>(),
        [7, 8, 9]
    );

    // Exactly at the edge of the ring nothing is missing.
    let edge = bus
        .since(
            &filter,
            Position {
                epoch: bus.epoch(),
                seq: events[6].seq(),
            },
        )
        .unwrap();
    assert!(edge.recovered);
    assert_eq!(edge.events.len(), 3);
}

#[test]
fn resume_with_another_epoch_is_not_recovered() {
    let bus = Bus::new();
    for n in 0..4 {
        publish(&bus, "scan_update", "scans", n);
    }
    let other = Epoch::from_u64(bus.epoch().as_u64() ^ 1);
    let replay = bus
        .since(
            &Filter::all(),
            Position {
                epoch: other,
                seq: 2,
            },
        )
        .unwrap();
    assert!(!replay.recovered);
    assert_eq!(replay.epoch, bus.epoch());
    // The whole retained history comes back, so a dashboard can redraw.
    assert_eq!(replay.events.len(), 4);

    let ahead = bus
        .since(
            &Filter::all(),
            Position {
                epoch: bus.epoch(),
                seq: 99,
            },
        )
        .unwrap();
    assert!(!ahead.recovered && ahead.events.is_empty());
}

#[test]
fn replay_merges_rooms_in_seq_order_and_applies_the_filter() {
    let bus = Bus::new();
    for n in 0..12 {
        let room = ["scans", "alerts"][n as usize % 2];
        let kind = if n % 3 == 0 {
            "scan_completed"
        } else {
            "scan_update"
        };
        publish(&bus, kind, room, n);
    }
    let filter = Filter::rooms(["alerts", "scans"])
        .unwrap()
        .kinds(["scan_update"])
        .unwrap();
    let replay = bus
        .since(
            &filter,
            Position {
                epoch: bus.epoch(),
                seq: 0,
            },
        )
        .unwrap();
    assert!(replay.recovered);
    let ns: Vec<u64> = replay.events.iter().map(|e| n_of(e)).collect();
    assert_eq!(ns, [1, 2, 4, 5, 7, 8, 10, 11]);
}

#[test]
fn subscribe_since_has_no_gap_and_no_duplicate() {
    let bus = Bus::new();
    let filter = Filter::rooms(["scans"]).unwrap();
    let old: Vec<_> = (0..5)
        .map(|n| publish(&bus, "scan_update", "scans", n))
        .collect();
    let (replay, mut live) = bus
        .subscribe_since(
            filter,
            Position {
                epoch: bus.epoch(),
                seq: old[1].seq(),
            },
        )
        .unwrap();
    let new: Vec<_> = (5..8)
        .map(|n| publish(&bus, "scan_update", "scans", n))
        .collect();
    assert!(replay.recovered);
    let mut all: Vec<u64> = replay.events.iter().map(|e| e.seq()).collect();
    all.extend(seqs(&drain(&mut live)));
    let expected: Vec<u64> = old[2..].iter().chain(&new).map(|e| e.seq()).collect();
    assert_eq!(all, expected);
    assert_eq!(
        live.position(),
        Position {
            epoch: bus.epoch(),
            seq: new[2].seq()
        }
    );
}

#[tokio::test]
async fn a_subscriber_that_never_reads_blocks_no_one_and_learns_what_it_missed() {
    let bus = BusConfig::default().queue_capacity(8).build().unwrap();
    let mut stalled = bus.subscribe(Filter::rooms(["scans"]).unwrap()).unwrap();
    let (_, mut reader) = bus
        .subscribe_with(
            Filter::rooms(["scans"]).unwrap(),
            SubscribeOptions {
                queue_capacity: Some(10_000),
                ..SubscribeOptions::default()
            },
        )
        .unwrap();

    // Publishing 1 000 events completes without anyone reading: publish never waits.
    let events: Vec<_> = (0..1000)
        .map(|n| publish(&bus, "scan_update", "scans", n))
        .collect();

    // The reader that keeps up got every one of them, in order.
    let got = seqs(&drain(&mut reader));
    assert_eq!(got, events.iter().map(|e| e.seq()).collect::<Vec<_>>());

    // The stalled one holds its 8, then a lag marker with the exact count and where to resume.
    let backlog = drain(&mut stalled);
    assert_eq!(backlog.len(), 9);
    assert_eq!(
        seqs(&backlog[..8]),
        events[..8].iter().map(|e| e.seq()).collect::<Vec<_>>()
    );
    match backlog[8] {
        Delivery::Lagged(Lagged {
            missed,
            resume_from,
        }) => {
            assert_eq!(missed, 992);
            assert_eq!(resume_from, events[7].seq());
        }
        ref other => panic!("expected a lag marker, got {other:?}"),
    }
    assert_eq!(bus.metrics().missed_deliveries, 992);

    // After the lag it receives live events again, and the marker sits exactly at the gap.
    let next = publish(&bus, "scan_update", "scans", 1000);
    let Some(Delivery::Event(e)) = stalled.next().await else {
        panic!("live again")
    };
    assert_eq!(e.seq(), next.seq());
}

#[test]
fn a_lag_marker_sits_between_the_events_around_the_gap() {
    let bus = BusConfig::default().queue_capacity(2).build().unwrap();
    let mut sub = bus.subscribe(Filter::rooms(["scans"]).unwrap()).unwrap();
    let e: Vec<_> = (0..4)
        .map(|n| publish(&bus, "scan_update", "scans", n))
        .collect();
    // Read one: the queue had 2, 2 were missed.
    let first = sub.try_next().unwrap();
    assert!(matches!(first, Delivery::Event(ref x) if x.seq() == e[0].seq()));
    let later = publish(&bus, "scan_update", "scans", 4);
    let rest = drain(&mut sub);
    assert!(matches!(rest[0], Delivery::Event(ref x) if x.seq() == e[1].seq()));
    assert!(
        matches!(rest[1], Delivery::Lagged(Lagged { missed: 2, resume_from }) if resume_from == e[1].seq()),
        "{rest:?}"
    );
    assert!(matches!(rest[2], Delivery::Event(ref x) if x.seq() == later.seq()));
    assert_eq!(rest.len(), 3);

    // What was missed is still in history and replays exactly.
    let Delivery::Lagged(lag) = rest[1] else {
        unreachable!()
    };
    let replay = bus
        .since(
            &Filter::rooms(["scans"]).unwrap(),
            Position {
                epoch: bus.epoch(),
                seq: lag.resume_from,
            },
        )
        .unwrap();
    assert!(replay.recovered);
    assert_eq!(
        replay
            .events
            .iter()
            .take(lag.missed as usize)
            .map(|x| x.seq())
            .collect::<Vec<_>>(),
        [e[2].seq(), e[3].seq()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_and_subscribers_lose_and_duplicate_nothing() {
    const PUBLISHERS: u64 = 4;
    const PER_PUBLISHER: u64 = 5_000;
    const TOTAL: u64 = PUBLISHERS * PER_PUBLISHER;
    let bus = BusConfig::default()
        .queue_capacity(TOTAL as usize)
        .build()
        .unwrap();

    let mut readers = tokio::task::JoinSet::new();
    for i in 0..8 {
        // Half subscribe to one room, half to all: each must see every event it should.
        let filter = if i % 2 == 0 {
            Filter::rooms(["scans"]).unwrap()
        } else {
            Filter::all()
        };
        let mut sub = bus.subscribe(filter).unwrap();
        readers.spawn(async move {
            let mut seen = HashSet::new();
            let mut last = 0;
            let mut from_each = vec![Vec::new(); PUBLISHERS as usize];
            while (seen.len() as u64) < TOTAL {
                let delivery = tokio::time::timeout(Duration::from_secs(30), sub.next())
                    .await
                    .expect("events keep coming")
                    .expect("stream open");
                let Delivery::Event(e) = delivery else {
                    panic!("a reader that keeps up lagged")
                };
                assert!(e.seq() > last, "seq went backwards");
                last = e.seq();
                assert!(seen.insert(e.id()), "duplicate {}", e.seq());
                let data = e.to_envelope().data;
                from_each[data["p"].as_u64().unwrap() as usize].push(data["n"].as_u64().unwrap());
            }
            from_each
        });
    }

    let mut publishers = tokio::task::JoinSet::new();
    for p in 0..PUBLISHERS {
        let bus = bus.clone();
        publishers.spawn_blocking(move || {
            for n in 0..PER_PUBLISHER {
                bus.publish_json("scan_update", "scans", &json!({"p": p, "n": n}))
                    .unwrap();
            }
        });
    }
    while let Some(done) = publishers.join_next().await {
        done.unwrap();
    }
    while let Some(from_each) = readers.join_next().await {
        // Each publisher's events arrive in the order it published them.
        for ns in from_each.unwrap() {
            assert_eq!(ns, (0..PER_PUBLISHER).collect::<Vec<_>>());
        }
    }
    assert_eq!(bus.metrics().total_events, TOTAL);
    assert_eq!(bus.metrics().missed_deliveries, 0);
}

#[test]
fn typed_payloads_round_trip_and_feed_the_dashboard_aggregates() {
    let bus = Bus::new();
    let start = |id: &str| AgentExecutionStarted {
        agent_id: id.into(),
        agent_name: "scanner".into(),
        task_description: "ports".into(),
    };
    let done = |id: &str, ok: bool, q: f64| AgentExecutionCompleted {
        agent_id: id.into(),
        agent_name: "scanner".into(),
        task_description: "ports".into(),
        duration_ms: 10,
        success: ok,
        quality_score: Some(q),
    };
    bus.publish(&start("a")).unwrap();
    bus.publish(&start("b")).unwrap();
    bus.publish(&start("c")).unwrap();
    let failed = bus.publish(&done("a", false, 90.0)).unwrap().now().unwrap();
    bus.publish(&done("b", true, 100.0)).unwrap();
    bus.publish(&OpportunityDiscovered {
        title: "Open Redis".into(),
        category: "exposure".into(),
        description: "no auth".into(),
        confidence_score: 88.0,
        revenue_potential: None,
    })
    .unwrap();
    bus.publish(&ChatMessage {
        user: "ops".into(),
        message: "<script>".into(),
    })
    .unwrap();
    bus.publish_json("port_knock", "alerts", &json!({}))
        .unwrap();

    assert_eq!(failed.severity(), Severity::Error);
    assert_eq!(
        failed.decode::<AgentExecutionCompleted>().unwrap(),
        done("a", false, 90.0)
    );

    let m = bus.metrics();
    assert_eq!(m.total_events, 8);
    assert_eq!(m.total_agents_executed, 2);
    assert_eq!(m.total_opportunities_discovered, 1);
    assert_eq!(m.avg_quality_score, 95.0);
    assert_eq!(m.active_agents, 1, "c is still running");
    assert_eq!(m.by_kind["agent_execution_started"], 3);
    assert_eq!(m.by_kind["port_knock"], 1);
    assert_eq!(m.by_room["monitoring"], 6);
    assert_eq!(m.by_room["chat"], 1);
    assert_eq!(m.by_severity[&Severity::Error], 1);
    assert_eq!(m.by_severity[&Severity::Success], 2);
    assert!(m.uptime_seconds >= 0.0);
    assert_eq!(
        EventKind::parse("port_knock").unwrap().to_string(),
        "port_knock"
    );
}

#[test]
fn custom_kind_labels_are_bounded() {
    let bus = Bus::new();
    for i in 0..(event_bus::MAX_CUSTOM_KINDS + 10) {
        bus.publish_json(&format!("custom_{i}"), "monitoring", &json!(null))
            .unwrap();
    }
    let m = bus.metrics();
    assert_eq!(m.by_kind.len(), event_bus::MAX_CUSTOM_KINDS + 1);
    assert_eq!(m.by_kind[event_bus::OTHER_KINDS], 10);
}

#[tokio::test]
async fn dropping_a_subscription_unsubscribes_and_dropping_the_bus_ends_streams() {
    let bus = Bus::new();
    let sub = bus.subscribe(Filter::all()).unwrap();
    let mut kept = bus
        .subscribe(Filter::rooms(["chat", "scans"]).unwrap())
        .unwrap();
    assert_eq!(bus.metrics().subscribers, 2);
    drop(sub);
    publish(&bus, "scan_update", "scans", 0);
    assert_eq!(bus.metrics().subscribers, 1);

    drop(bus);
    assert!(
        matches!(kept.next().await, Some(Delivery::Event(_))),
        "queued events are still handed out"
    );
    assert!(kept.next().await.is_none(), "then the stream ends");
}

#[test]
fn rooms_can_be_added_and_carry_their_rules() {
    let bus = Bus::new();
    bus.add_room(RoomConfig::new("field-team").unwrap().history(5))
        .unwrap();
    assert!(matches!(
        bus.add_room(RoomConfig::new("chat").unwrap()),
        Err(Error::RoomExists(_))
    ));
    assert!(matches!(
        bus.add_room(
            RoomConfig::new("huge")
                .unwrap()
                .history(event_bus::MAX_HISTORY + 1)
        ),
        Err(Error::HistorySize { .. })
    ));
    assert_eq!(bus.room("field-team").unwrap().history, 5);
    assert!(
        !bus.room("admin")
            .unwrap()
            .subscribe
            .allows(event_bus::Role::Viewer)
    );
    publish(&bus, "user_joined", "field-team", 0);
    assert_eq!(bus.rooms().len(), 6);
    assert!(matches!(
        BusConfig::default().queue_capacity(0).build(),
        Err(Error::Config(_))
    ));
}

#[tokio::test]
async fn a_byte_bound_makes_a_subscriber_lag_before_its_event_count_does() {
    let bus = Bus::new();
    let (_, mut sub) = bus
        .subscribe_with(
            Filter::rooms(["chat"]).unwrap(),
            SubscribeOptions {
                queue_bytes: Some(1000),
                ..SubscribeOptions::default()
            },
        )
        .unwrap();
    let text = "x".repeat(300);
    let mut published = Vec::new();
    for _ in 0..10 {
        published.push(
            bus.publish_json("chat", "chat", &serde_json::json!({ "text": text }))
                .unwrap()
                .now()
                .unwrap(),
        );
    }
    // Each event is a little over 300 bytes of JSON: two fit under 1000 bytes, the third does not.
    let per_event = published[0].json().len();
    let fit = 1000 / per_event;
    assert!((1..10).contains(&fit), "{per_event} bytes per event");
    let gap = std::future::poll_fn(|cx| match sub.poll_gap(cx) {
        std::task::Poll::Ready(gap) => std::task::Poll::Ready(Some(gap)),
        std::task::Poll::Pending => std::task::Poll::Ready(None),
    })
    .await
    .expect("the byte bound was passed");
    assert_eq!(gap.missed, (10 - fit) as u64);
    assert_eq!(gap.resume_from, published[fit - 1].seq());
    for event in &published[..fit] {
        match sub.try_next() {
            Some(Delivery::Event(got)) => assert_eq!(got.seq(), event.seq()),
            other => panic!("expected an event, got {other:?}"),
        }
    }
    match sub.try_next() {
        Some(Delivery::Lagged(lag)) => assert_eq!(lag, gap),
        other => panic!("expected the gap, got {other:?}"),
    }
    // Drained, the queue takes events again; an event larger than the bound still goes into an
    // empty queue.
    let big = "y".repeat(5000);
    let event = bus
        .publish_json("chat", "chat", &serde_json::json!({ "text": big }))
        .unwrap()
        .now()
        .unwrap();
    match sub.try_next() {
        Some(Delivery::Event(got)) => assert_eq!(got.seq(), event.seq()),
        other => panic!("expected the large event, got {other:?}"),
    }
}

#[tokio::test]
async fn poll_gap_wakes_a_consumer_busy_elsewhere_when_its_queue_overflows() {
    let bus = BusConfig::default().queue_capacity(2).build().unwrap();
    let sub = bus.subscribe(Filter::rooms(["chat"]).unwrap()).unwrap();
    let publisher = bus.clone();
    let waiter = tokio::spawn(async move { std::future::poll_fn(|cx| sub.poll_gap(cx)).await });
    tokio::task::yield_now().await;
    for _ in 0..5 {
        publisher
            .publish_json("chat", "chat", &serde_json::json!({}))
            .unwrap();
    }
    let gap = tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
        .await
        .expect("woken")
        .unwrap();
    assert_eq!(gap.missed, 3);
}

#[test]
fn an_event_prepares_one_value_for_every_caller() {
    let bus = Bus::new();
    let event = bus
        .publish_json("chat", "chat", &serde_json::json!({"text": "hi"}))
        .unwrap()
        .now()
        .unwrap();
    let made = std::sync::atomic::AtomicUsize::new(0);
    let frame = |e: &event_bus::Event| {
        made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ::bytes::Bytes::from(format!("[{}]", std::str::from_utf8(e.json()).unwrap()))
    };
    let a = event.prepared(frame);
    let b = event.prepared(frame);
    assert_eq!(a, b);
    assert_eq!(a.as_ptr(), b.as_ptr(), "the same bytes, shared");
    assert_eq!(made.load(std::sync::atomic::Ordering::Relaxed), 1);
    // Another type is made each time and does not disturb the first.
    let len: usize = event.prepared(|e| e.json().len());
    assert_eq!(len + 2, a.len());
    assert_eq!(event.prepared(frame).as_ptr(), a.as_ptr());
}
