//! The PostgreSQL store against a real server (`VIGIL_TEST_DATABASE_URL`), each test in a
//! database of its own: the SQLite store's semantics, migrations under a lock, the first admin,
//! the shared task queue (claims, leases, reaping, fencing, alerts once, wake-ups), and the
//! geosubmit log (appends in commit order).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use event_bus::Role;
use parking_lot::Mutex;
use sec_scan::{Priority, ScanTask, TaskKind};
use vigil_server::Error;
use vigil_server::auth::Auth;
use vigil_server::store::postgres::{Completion, PgStore, Presence};
use vigil_server::store::{AlertRow, ScanRow, SessionRecord, Store, TaskRow, TokenRecord};

#[path = "common/pg.rs"]
mod pg;

const LEASE: Duration = Duration::from_secs(60);

fn now() -> DateTime<Utc> {
    // PostgreSQL keeps microseconds.
    Utc::now().trunc_subsecs(6)
}

fn token(id: &str, role: Role) -> TokenRecord {
    TokenRecord {
        id: id.into(),
        hash: [id.len() as u8; 32],
        role,
        label: format!("{id} label"),
        created: now(),
        revoked: None,
    }
}

fn scan(id: &str) -> ScanRow {
    ScanRow {
        id: id.into(),
        requested_by: "tester".into(),
        request: format!(r#"{{"scan":"{id}"}}"#),
        created: now(),
    }
}

fn task(scan_id: &str, n: usize, kind: TaskKind, priority: u8, retries: u32) -> TaskRow {
    let mut t = ScanTask::new(kind, format!("10.0.0.{n}"))
        .with_priority(Priority::new(priority).unwrap())
        .with_retries(retries);
    t.id = format!("{scan_id}-t{n}");
    t.scan_id = scan_id.into();
    TaskRow {
        id: t.id.clone(),
        scan_id: scan_id.into(),
        task: serde_json::to_string(&t).unwrap(),
        status: "queued".into(),
        attempts: 0,
        agent: None,
    }
}

fn alert(scan_id: &str, task_id: &str, target: &str, signature: &str) -> AlertRow {
    AlertRow {
        scan_id: scan_id.into(),
        task_id: task_id.into(),
        target: target.into(),
        signature_id: signature.into(),
        severity: "high".into(),
        threat: format!(r#"{{"signature_id":"{signature}"}}"#),
    }
}

fn kinds(list: &[TaskKind]) -> Vec<String> {
    list.iter().map(ToString::to_string).collect()
}

async fn store(url: &str) -> PgStore {
    PgStore::connect(url).await.expect("connect")
}

async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .unwrap_or_else(|_| panic!("{what} took longer than 10 s"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_round_trip_and_revoke() {
    pg::with_db("tokens_round_trip_and_revoke", |url| async move {
        let store = store(&url).await;
        let abc = token("abc", Role::Admin);
        store.insert_token(&abc).await.unwrap();
        store
            .insert_token(&token("defg", Role::Agent))
            .await
            .unwrap();
        assert!(
            store.insert_token(&abc).await.is_err(),
            "an id is stored once"
        );
        let all = store.tokens().await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all.iter().find(|t| t.id == "abc").unwrap(), &abc);
        assert_eq!(
            all.iter().find(|t| t.id == "defg").unwrap().role,
            Role::Agent
        );
        assert_eq!(store.token_by_hash(&[3; 32]).await.unwrap(), Some(abc));
        assert_eq!(store.token_by_hash(&[9; 32]).await.unwrap(), None);

        let session = SessionRecord {
            hash: [7; 32],
            token_id: "abc".into(),
            expires: now() + chrono::Duration::hours(1),
        };
        store.insert_session(&session).await.unwrap();
        assert_eq!(
            store.session_by_hash(&[7; 32], now()).await.unwrap(),
            Some(session.clone())
        );
        assert!(store.revoke_token("abc", now()).await.unwrap());
        assert!(
            !store.revoke_token("abc", now()).await.unwrap(),
            "revoking twice changes nothing"
        );
        assert!(!store.revoke_token("nope", now()).await.unwrap());
        assert!(
            store
                .tokens()
                .await
                .unwrap()
                .iter()
                .find(|t| t.id == "abc")
                .unwrap()
                .revoked
                .is_some()
        );
        assert_eq!(
            store.session_by_hash(&[7; 32], now()).await.unwrap(),
            None,
            "revoking deletes the token's sessions"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_expire_trim_and_delete() {
    pg::with_db("sessions_expire_trim_and_delete", |url| async move {
        let store = store(&url).await;
        store
            .insert_token(&token("tok", Role::Viewer))
            .await
            .unwrap();
        let t0 = now();
        let session = |n: u8, minutes: i64| SessionRecord {
            hash: [n; 32],
            token_id: "tok".into(),
            expires: t0 + chrono::Duration::minutes(minutes),
        };
        for (n, minutes) in [(1, 10), (2, 20), (3, 30), (4, -5)] {
            store.insert_session(&session(n, minutes)).await.unwrap();
        }
        assert_eq!(
            store.session_by_hash(&[4; 32], t0).await.unwrap(),
            None,
            "an expired session is not found"
        );
        assert_eq!(
            store.session_by_hash(&[2; 32], t0).await.unwrap(),
            Some(session(2, 20))
        );
        assert_eq!(store.delete_expired_sessions(t0).await.unwrap(), 1);
        assert_eq!(store.delete_expired_sessions(t0).await.unwrap(), 0);
        // Keep the one expiring last.
        assert_eq!(
            store.trim_sessions("tok", 1).await.unwrap().len(),
            2,
            "two of three trimmed"
        );
        assert_eq!(store.sessions(t0).await.unwrap(), vec![session(3, 30)]);
        store.insert_session(&session(5, 1)).await.unwrap();
        assert_eq!(
            store
                .sessions(t0 + chrono::Duration::minutes(2))
                .await
                .unwrap(),
            vec![session(3, 30)],
            "sessions() deletes the expired on the way"
        );
        store.delete_session(&[3; 32]).await.unwrap();
        assert!(store.sessions(t0).await.unwrap().is_empty());
        assert!(store.trim_sessions("tok", 0).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_owners_keep_the_first() {
    pg::with_db("agent_owners_keep_the_first", |url| async move {
        let store = store(&url).await;
        store.insert_agent_owner("a1", "tok1").await.unwrap();
        store.insert_agent_owner("a1", "tok2").await.unwrap();
        store.insert_agent_owner("a2", "tok2").await.unwrap();
        assert_eq!(
            store.agent_owners().await.unwrap(),
            vec![("a1".into(), "tok1".into()), ("a2".into(), "tok2".into())]
        );
        store.delete_agent_owner("a1").await.unwrap();
        store.insert_agent_owner("a1", "tok2").await.unwrap();
        let owners: HashMap<_, _> = store.agent_owners().await.unwrap().into_iter().collect();
        assert_eq!(owners["a1"], "tok2");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_log_keeps_only_the_newest() {
    pg::with_db("the_event_log_keeps_only_the_newest", |url| async move {
        let store = store(&url).await;
        let other = self::store(&url).await;
        let bus = event_bus::Bus::new();
        let events: Vec<_> = (0..200)
            .map(|n| {
                bus.publish_json("scan_update", "scans", &serde_json::json!({"n": n}))
                    .unwrap()
                    .now()
                    .unwrap()
            })
            .collect();
        store.append_events(&events[..6], 4).await.unwrap();
        assert_eq!(store.event_count().await.unwrap(), 4);
        store.append_events(&events[6..10], 4).await.unwrap();
        assert_eq!(store.event_count().await.unwrap(), 4);
        store.append_events(&[], 4).await.unwrap();
        assert_eq!(store.event_count().await.unwrap(), 4);

        // Two nodes appending at once never fail; the next append trims to the retention.
        let mut appenders = Vec::new();
        for (i, chunk) in events[10..].chunks(10).enumerate() {
            let s = if i % 2 == 0 {
                store.clone()
            } else {
                other.clone()
            };
            let chunk = chunk.to_vec();
            appenders.push(tokio::spawn(
                async move { s.append_events(&chunk, 20).await },
            ));
        }
        for a in appenders {
            a.await.unwrap().expect("a concurrent append");
        }
        assert!(store.event_count().await.unwrap() >= 20);
        store.append_events(&events[..1], 20).await.unwrap();
        assert_eq!(store.event_count().await.unwrap(), 20);
        store.append_events(&[], 0).await.unwrap();
        assert_eq!(store.event_count().await.unwrap(), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_tasks_results_and_alerts_round_trip() {
    pg::with_db(
        "scans_tasks_results_and_alerts_round_trip",
        |url| async move {
            let store = store(&url).await;
            let s = scan("s1");
            let tasks: Vec<_> = (0..3)
                .map(|n| task("s1", n, TaskKind::PortScan, 5, 3))
                .collect();
            store.insert_scan(&s, &tasks).await.unwrap();
            assert_eq!(store.scans().await.unwrap(), vec![s]);
            assert_eq!(store.tasks().await.unwrap(), tasks);

            store
                .update_task("s1-t0", "running", 1, Some("agent-1"))
                .await
                .unwrap();
            let t0 = &store.tasks().await.unwrap()[0];
            assert_eq!(
                (t0.status.as_str(), t0.attempts, t0.agent.as_deref()),
                ("running", 1, Some("agent-1"))
            );
            // The agent is kept when none is given.
            store.update_task("s1-t0", "queued", 1, None).await.unwrap();
            assert_eq!(
                store.tasks().await.unwrap()[0].agent.as_deref(),
                Some("agent-1")
            );

            let a = alert("s1", "s1-t0", "10.0.0.0", "sig-1");
            let stored = store
                .store_result(
                    "s1-t0",
                    "s1",
                    "agent-1",
                    "success",
                    r#"{"r":0}"#,
                    std::slice::from_ref(&a),
                )
                .await
                .unwrap();
            assert_eq!(stored, Some(vec![a.clone()]));
            assert_eq!(
                store
                    .store_result("s1-t0", "s1", "agent-1", "success", r#"{"r":0}"#, &[])
                    .await
                    .unwrap(),
                None,
                "a result is stored once"
            );
            // The same alert from another task of the scan is not raised again.
            let again = alert("s1", "s1-t1", "10.0.0.0", "sig-1");
            let other = alert("s1", "s1-t1", "10.0.0.0", "sig-2");
            assert_eq!(
                store
                    .store_result(
                        "s1-t1",
                        "s1",
                        "agent-1",
                        "partial",
                        r#"{"r":1}"#,
                        &[again, other.clone()]
                    )
                    .await
                    .unwrap(),
                Some(vec![other.clone()])
            );
            // An ended task keeps its status.
            store
                .update_task("s1-t0", "running", 2, Some("agent-2"))
                .await
                .unwrap();
            let rows = store.tasks().await.unwrap();
            assert_eq!(
                rows.iter().map(|t| t.status.as_str()).collect::<Vec<_>>(),
                ["success", "partial", "queued"]
            );
            assert_eq!(rows[0].agent.as_deref(), Some("agent-1"));
            assert_eq!(store.scan_tasks("s1").await.unwrap(), rows);
            assert!(store.scan_tasks("nope").await.unwrap().is_empty());

            assert_eq!(
                store.results("s1").await.unwrap(),
                vec![r#"{"r":0}"#.to_owned(), r#"{"r":1}"#.to_owned()]
            );
            let alerts = store.alerts(10).await.unwrap();
            assert_eq!(
                alerts.iter().map(|(_, a)| a.clone()).collect::<Vec<_>>(),
                vec![other, a],
                "newest first"
            );
            assert!(DateTime::parse_from_rfc3339(&alerts[0].0).is_ok());
            assert_eq!(store.alerts(1).await.unwrap().len(), 1);
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_starting_at_once_migrate_once() {
    pg::with_db(
        "two_nodes_starting_at_once_migrate_once",
        |url| async move {
            let (a, b) = tokio::join!(PgStore::connect(&url), PgStore::connect(&url));
            let (a, b) = (a.expect("node a"), b.expect("node b"));
            assert_eq!(a.schema_versions().await.unwrap(), vec![1, 2]);
            a.insert_token(&token("abc", Role::Admin)).await.unwrap();
            assert_eq!(b.tokens().await.unwrap().len(), 1);
            // A restart applies nothing and keeps the data.
            let c = store(&url).await;
            assert_eq!(c.schema_versions().await.unwrap(), vec![1, 2]);
            assert_eq!(c.tokens().await.unwrap().len(), 1);
            assert!(format!("{c:?}").starts_with("PgStore"));
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_an_error_without_the_password() {
    // No server needed: nothing listens on port 1.
    let err = PgStore::connect("postgres://vigil:s3cret-pw@127.0.0.1:1/vigil")
        .await
        .expect_err("nothing listens there");
    assert!(matches!(err, Error::Postgres(_)), "{err:?}");
    assert!(!err.to_string().contains("s3cret"), "{err}");
    assert!(!format!("{err:?}").contains("s3cret"), "{err:?}");
    let err = PgStore::connect("postgres://vigil:s3cret-pw@127.0.0.1:1/vigil?sslmode=bogus")
        .await
        .expect_err("a bad URL");
    assert!(!err.to_string().contains("s3cret"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_admin_is_made_once() {
    pg::with_db("the_first_admin_is_made_once", |url| async move {
        let a = store(&url).await;
        let b = store(&url).await;
        let mut racers = Vec::new();
        for n in 0..8u8 {
            let s = if n % 2 == 0 { a.clone() } else { b.clone() };
            racers.push(tokio::spawn(async move {
                let mut t = token(&format!("admin{n}"), Role::Admin);
                t.hash = [n; 32];
                s.insert_first_admin(&t).await.unwrap()
            }));
        }
        let mut made = 0;
        for r in racers {
            made += usize::from(r.await.unwrap());
        }
        assert_eq!(made, 1);
        assert_eq!(a.tokens().await.unwrap().len(), 1);
        assert!(
            !a.insert_first_admin(&token("late", Role::Admin))
                .await
                .unwrap()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_dispatchers_lease_each_task_once() {
    pg::with_db("two_dispatchers_lease_each_task_once", |url| async move {
        let nodes = [store(&url).await, store(&url).await];
        let mut total = 0;
        for s in 0..4 {
            let id = format!("scan{s}");
            let tasks: Vec<_> = (0..50)
                .map(|n| task(&id, n, TaskKind::PortScan, 1 + (n % 10) as u8, 3))
                .collect();
            total += tasks.len();
            nodes[s % 2].insert_scan(&scan(&id), &tasks).await.unwrap();
        }
        assert_eq!(total, 200);
        let claims: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let completed_scans: Arc<Mutex<Vec<String>>> = Arc::default();
        let mut agents = Vec::new();
        for (n, node) in nodes.iter().enumerate() {
            for a in 0..3 {
                let (node, claims, completed) =
                    (node.clone(), claims.clone(), completed_scans.clone());
                let agent = format!("agent-{n}-{a}");
                let node_id = format!("node-{n}");
                agents.push(tokio::spawn(async move {
                    let caps = kinds(&[TaskKind::PortScan, TaskKind::HttpProbe]);
                    let mut rounds = 0;
                    loop {
                        rounds += 1;
                        assert!(rounds < 1000, "the queue never emptied");
                        let got = node
                            .claim(&agent, &node_id, &caps, 1 + (rounds % 4), LEASE)
                            .await
                            .expect("claim");
                        if got.is_empty() {
                            break;
                        }
                        for c in got {
                            assert_eq!(c.attempt, 1);
                            *claims.lock().entry(c.task_id.clone()).or_default() += 1;
                            let done = node
                                .complete(&c.task_id, &agent, c.attempt, "success", "{}", &[])
                                .await
                                .expect("complete");
                            match done {
                                Completion::Stored {
                                    scan_completed: true,
                                    ..
                                } => completed.lock().push(c.scan_id),
                                Completion::Stored { .. } => {}
                                other => panic!("{other:?}"),
                            }
                        }
                    }
                }));
            }
        }
        for a in agents {
            a.await.unwrap();
        }
        let claims = claims.lock().clone();
        assert_eq!(claims.len(), 200, "every task was leased");
        assert!(claims.values().all(|&n| n == 1), "no task was leased twice");
        let mut completed = completed_scans.lock().clone();
        completed.sort();
        assert_eq!(
            completed,
            ["scan0", "scan1", "scan2", "scan3"],
            "each scan's completion is reported once"
        );
        let tasks = nodes[0].tasks().await.unwrap();
        assert!(tasks.iter().all(|t| t.status == "success"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_follow_priority_age_and_kind() {
    pg::with_db("claims_follow_priority_age_and_kind", |url| async move {
        let store = store(&url).await;
        let tasks = vec![
            task("s", 0, TaskKind::PortScan, 1, 3),
            task("s", 1, TaskKind::PortScan, 10, 3),
            task("s", 2, TaskKind::PortScan, 5, 3),
            task("s", 3, TaskKind::PortScan, 10, 3),
            task("s", 4, TaskKind::SslCheck, 10, 3),
        ];
        store.insert_scan(&scan("s"), &tasks).await.unwrap();
        let ports = kinds(&[TaskKind::PortScan]);
        assert!(
            store
                .claim("a", "n", &kinds(&[TaskKind::HttpProbe]), 5, LEASE)
                .await
                .unwrap()
                .is_empty(),
            "no task of that kind"
        );
        assert!(
            store
                .claim("a", "n", &ports, 0, LEASE)
                .await
                .unwrap()
                .is_empty()
        );
        let order: Vec<String> = store
            .claim("a", "n", &ports, 3, LEASE)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.task_id)
            .collect();
        assert_eq!(order, ["s-t1", "s-t3", "s-t2"]);
        let rest = store.claim("b", "n", &ports, 3, LEASE).await.unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].task_id, "s-t0");
        assert_eq!(rest[0].scan_id, "s");
        assert_eq!(rest[0].task, tasks[0].task);
        let rows = store.tasks().await.unwrap();
        assert_eq!(rows[1].status, "running", "leased reads as running");
        assert_eq!(rows[1].agent.as_deref(), Some("a"));
        assert_eq!(rows[4].status, "queued");
        assert_eq!(store.renew("a", LEASE).await.unwrap(), 3);
        assert_eq!(store.renew("nobody", LEASE).await.unwrap(), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_lease_is_reaped_once_then_retried_then_failed() {
    pg::with_db(
        "an_expired_lease_is_reaped_once_then_retried_then_failed",
        |url| async move {
            let a = store(&url).await;
            let b = store(&url).await;
            let ports = kinds(&[TaskKind::PortScan]);
            let short = Duration::from_millis(200);
            // One retry: two attempts in all.
            a.insert_scan(&scan("s"), &[task("s", 0, TaskKind::PortScan, 5, 1)])
                .await
                .unwrap();
            let first = a.claim("ag1", "n1", &ports, 1, short).await.unwrap();
            assert_eq!(first[0].attempt, 1);
            // A renewed lease is not reaped.
            assert_eq!(a.renew("ag1", Duration::from_secs(60)).await.unwrap(), 1);
            tokio::time::sleep(Duration::from_millis(400)).await;
            assert!(a.reap().await.unwrap().is_empty());
            a.renew("ag1", short).await.unwrap();
            tokio::time::sleep(Duration::from_millis(400)).await;

            let (ra, rb) = tokio::join!(a.reap(), b.reap());
            let reaped: Vec<_> = ra.unwrap().into_iter().chain(rb.unwrap()).collect();
            assert_eq!(reaped.len(), 1, "reaped by exactly one node: {reaped:?}");
            assert_eq!(reaped[0].task_id, "s-t0");
            assert_eq!(reaped[0].state, "queued");
            assert_eq!(reaped[0].attempts, 1);
            assert_eq!(reaped[0].agent_id.as_deref(), Some("ag1"));
            assert!(!reaped[0].scan_completed);

            let second = b.claim("ag2", "n2", &ports, 1, short).await.unwrap();
            assert_eq!(second[0].attempt, 2, "attempts + 1 on the next claim");
            // The first holder's late result is refused.
            assert_eq!(
                a.complete("s-t0", "ag1", 1, "success", "{}", &[])
                    .await
                    .unwrap(),
                Completion::Fenced {
                    state: Some("running".into())
                }
            );
            tokio::time::sleep(Duration::from_millis(400)).await;
            let (ra, rb) = tokio::join!(a.reap(), b.reap());
            let reaped: Vec<_> = ra.unwrap().into_iter().chain(rb.unwrap()).collect();
            assert_eq!(reaped.len(), 1);
            assert_eq!(reaped[0].state, "failed", "attempts spent");
            assert_eq!(reaped[0].attempts, 2);
            assert!(reaped[0].scan_completed, "its scan's last task");
            assert!(
                a.claim("ag3", "n1", &ports, 1, short)
                    .await
                    .unwrap()
                    .is_empty()
            );
            assert_eq!(a.tasks().await.unwrap()[0].status, "failed");
            assert_eq!(
                b.complete("s-t0", "ag2", 2, "success", "{}", &[])
                    .await
                    .unwrap(),
                Completion::Fenced {
                    state: Some("failed".into())
                }
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnected_agent_releases_its_tasks() {
    pg::with_db(
        "a_disconnected_agent_releases_its_tasks",
        |url| async move {
            let store = store(&url).await;
            let ports = kinds(&[TaskKind::PortScan]);
            store
                .insert_scan(
                    &scan("s"),
                    &[
                        task("s", 0, TaskKind::PortScan, 5, 3),
                        task("s", 1, TaskKind::PortScan, 5, 0),
                    ],
                )
                .await
                .unwrap();
            assert_eq!(
                store
                    .claim("ag", "n1", &ports, 2, LEASE)
                    .await
                    .unwrap()
                    .len(),
                2
            );
            assert!(
                store.release_agent("ag", "n2").await.unwrap().is_empty(),
                "only through the node it held them by"
            );
            let released = store.release_agent("ag", "n1").await.unwrap();
            let states: Vec<_> = released
                .iter()
                .map(|r| (r.task_id.as_str(), r.state.as_str()))
                .collect();
            assert_eq!(states, [("s-t0", "queued"), ("s-t1", "failed")]);
            assert!(released.iter().all(|r| !r.scan_completed));
            let again = store.claim("ag", "n1", &ports, 2, LEASE).await.unwrap();
            assert_eq!(again.len(), 1);
            assert_eq!((again[0].task_id.as_str(), again[0].attempt), ("s-t0", 2));
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn results_are_fenced_stored_once_and_alerts_raised_once() {
    pg::with_db(
        "results_are_fenced_stored_once_and_alerts_raised_once",
        |url| async move {
            let a = store(&url).await;
            let b = store(&url).await;
            let ports = kinds(&[TaskKind::PortScan]);
            let tasks = [
                task("s", 0, TaskKind::PortScan, 5, 3),
                task("s", 1, TaskKind::PortScan, 5, 3),
            ];
            a.insert_scan(&scan("s"), &tasks).await.unwrap();
            let c0 = a
                .claim("ag0", "n1", &ports, 1, LEASE)
                .await
                .unwrap()
                .remove(0);
            let c1 = b
                .claim("ag1", "n2", &ports, 1, LEASE)
                .await
                .unwrap()
                .remove(0);
            // Both tasks found the same threat on the same target.
            let shared = |task_id: &str| alert("s", task_id, "example.org", "sig-1");
            assert_eq!(
                a.complete(&c0.task_id, "ag1", c0.attempt, "success", "{}", &[])
                    .await
                    .unwrap(),
                Completion::Fenced {
                    state: Some("running".into())
                },
                "not the holder"
            );
            assert_eq!(
                a.complete(&c0.task_id, "ag0", c0.attempt + 1, "success", "{}", &[])
                    .await
                    .unwrap(),
                Completion::Fenced {
                    state: Some("running".into())
                },
                "not the current attempt"
            );
            assert_eq!(
                a.complete("nope", "ag0", 1, "success", "{}", &[])
                    .await
                    .unwrap(),
                Completion::Fenced { state: None }
            );
            assert!(
                a.complete(&c0.task_id, "ag0", 1, "running", "{}", &[])
                    .await
                    .is_err(),
                "not an end state"
            );
            let alerts0 = [shared(&c0.task_id)];
            let alerts1 = [
                shared(&c1.task_id),
                alert("s", &c1.task_id, "example.org", "sig-2"),
            ];
            let (r0, r1) = tokio::join!(
                a.complete(
                    &c0.task_id,
                    "ag0",
                    c0.attempt,
                    "success",
                    r#"{"t":0}"#,
                    &alerts0
                ),
                b.complete(
                    &c1.task_id,
                    "ag1",
                    c1.attempt,
                    "partial",
                    r#"{"t":1}"#,
                    &alerts1
                ),
            );
            let (r0, r1) = (r0.unwrap(), r1.unwrap());
            let (
                Completion::Stored {
                    alerts: a0,
                    scan_completed: done0,
                },
                Completion::Stored {
                    alerts: a1,
                    scan_completed: done1,
                },
            ) = (&r0, &r1)
            else {
                panic!("{r0:?} {r1:?}");
            };
            let raised: Vec<_> = a0
                .iter()
                .chain(a1)
                .map(|a| a.signature_id.as_str())
                .collect();
            assert_eq!(
                raised.iter().filter(|s| **s == "sig-1").count(),
                1,
                "the shared alert is raised once: {raised:?}"
            );
            assert!(raised.contains(&"sig-2"));
            assert!(done0 ^ done1, "the scan completes once");

            // Resending is harmless.
            assert_eq!(
                b.complete(
                    &c1.task_id,
                    "ag1",
                    c1.attempt,
                    "partial",
                    r#"{"t":1}"#,
                    &[shared(&c1.task_id)]
                )
                .await
                .unwrap(),
                Completion::Duplicate
            );
            assert_eq!(
                a.complete(&c1.task_id, "ag9", 7, "success", "{}", &[])
                    .await
                    .unwrap(),
                Completion::Duplicate,
                "once stored, anyone is told so"
            );
            assert_eq!(a.results("s").await.unwrap().len(), 2);
            assert_eq!(a.alerts(100).await.unwrap().len(), 2);
            let statuses: Vec<_> = a
                .scan_tasks("s")
                .await
                .unwrap()
                .into_iter()
                .map(|t| t.status)
                .collect();
            let mut statuses = statuses;
            statuses.sort();
            assert_eq!(statuses, ["partial", "success"]);
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_scan_ends_queued_tasks_and_names_running_ones() {
    pg::with_db(
        "cancelling_a_scan_ends_queued_tasks_and_names_running_ones",
        |url| async move {
            let store = store(&url).await;
            let ports = kinds(&[TaskKind::PortScan]);
            let tasks: Vec<_> = (0..3)
                .map(|n| task("s", n, TaskKind::PortScan, 5, 3))
                .collect();
            store.insert_scan(&scan("s"), &tasks).await.unwrap();
            let held = store.claim("ag", "n1", &ports, 1, LEASE).await.unwrap();
            assert_eq!(store.cancel_scan("nope").await.unwrap(), None);
            let cancel = store.cancel_scan("s").await.unwrap().unwrap();
            assert_eq!(cancel.cancelled, ["s-t1", "s-t2"]);
            assert_eq!(cancel.running.len(), 1);
            assert_eq!(cancel.running[0].task_id, held[0].task_id);
            assert_eq!(cancel.running[0].agent_id.as_deref(), Some("ag"));
            assert_eq!(cancel.running[0].node_id.as_deref(), Some("n1"));
            assert!(!cancel.scan_completed);
            assert!(
                store
                    .claim("ag2", "n1", &ports, 5, LEASE)
                    .await
                    .unwrap()
                    .is_empty()
            );
            let done = store
                .complete(&held[0].task_id, "ag", 1, "cancelled", "{}", &[])
                .await
                .unwrap();
            assert_eq!(
                done,
                Completion::Stored {
                    alerts: vec![],
                    scan_completed: true
                }
            );
            let again = store.cancel_scan("s").await.unwrap().unwrap();
            assert!(again.cancelled.is_empty() && again.running.is_empty());
            assert!(!again.scan_completed, "completed once");
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_wakes_a_listener() {
    pg::with_db("notify_wakes_a_listener", |url| async move {
        let a = store(&url).await;
        let b = store(&url).await;
        let listener = a.listen().await.expect("listen");
        b.insert_scan(&scan("s"), &[task("s", 0, TaskKind::PortScan, 5, 3)])
            .await
            .unwrap();
        bounded("a wake-up after insert_scan", listener.notified()).await;
        let ports = kinds(&[TaskKind::PortScan]);
        b.claim("ag", "n2", &ports, 1, LEASE).await.unwrap();
        b.release_agent("ag", "n2").await.unwrap();
        bounded("a wake-up after a requeue", listener.notified()).await;
        drop(listener);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_recovers_when_its_connections_are_cut() {
    pg::with_db(
        "a_node_recovers_when_its_connections_are_cut",
        |url| async move {
            let a = store(&url).await;
            let b = store(&url).await;
            a.insert_token(&token("abc", Role::Admin)).await.unwrap();
            let listener = a.listen().await.expect("listen");
            // What a database restart does to a node: every connection of ours is closed.
            let admin = store(&url).await;
            let cut = |admin: PgStore| async move {
                admin.tokens().await.expect("the admin node works");
                let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(connection);
                client
                    .execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE datname = current_database() AND pid <> pg_backend_pid()",
                        &[],
                    )
                    .await
                    .unwrap()
            };
            assert!(
                cut(admin).await >= 2,
                "the pool's and the listener's connections"
            );
            // Calls may fail while the pool notices; they never panic, and the node comes back.
            let mut tries = 0;
            let tokens = loop {
                tries += 1;
                match a.tokens().await {
                    Ok(tokens) => break tokens,
                    Err(err) => {
                        assert!(matches!(err, Error::Postgres(_)), "{err:?}");
                        assert!(tries < 20, "the pool never reconnected: {err}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            };
            assert_eq!(tokens.len(), 1);
            // The listener reconnects by itself (one wake-up for what it may have missed), then
            // hears notifications again.
            bounded("the listener's reconnect wake-up", listener.notified()).await;
            b.insert_scan(&scan("s"), &[task("s", 0, TaskKind::PortScan, 5, 3)])
                .await
                .unwrap();
            bounded("a wake-up after the reconnect", listener.notified()).await;
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tailer_of_the_geosubmit_log_misses_no_row_appended_concurrently() {
    pg::with_db(
        "a_tailer_of_the_geosubmit_log_misses_no_row_appended_concurrently",
        |url| async move {
            let (a, b) = (store(&url).await, store(&url).await);
            let name = a.geosubmit_log_name().await.unwrap();
            assert_eq!(b.geosubmit_log_name().await.unwrap(), name, "one log");
            assert_eq!(a.geosubmit_head().await.unwrap(), 0);
            let listener = b.listen_geosubmits().await.expect("listen");
            const EACH: usize = 60;
            let writer = |s: PgStore, who: &'static str| {
                tokio::spawn(async move {
                    for i in 0..EACH {
                        s.append_geosubmit(&format!(r#"{{"items":[],"n":"{who}{i}"}}"#))
                            .await
                            .unwrap();
                    }
                })
            };
            let writers = [writer(a.clone(), "a"), writer(b.clone(), "b")];
            bounded("a wake-up after an append", listener.notified()).await;
            // Tail with small pages while both write, until they are done and nothing is left:
            // whatever commits late must still come after what was already read.
            let mut seen = Vec::new();
            loop {
                let done = writers.iter().all(tokio::task::JoinHandle::is_finished);
                let after = seen.last().copied().unwrap_or(0);
                let page = a.geosubmits_after(after, 7, 1 << 20).await.unwrap();
                if page.is_empty() && done {
                    break;
                }
                seen.extend(page.iter().map(|r| r.id));
            }
            for w in writers {
                w.await.unwrap();
            }
            let all: Vec<i64> = a
                .geosubmits_after(0, 1000, 1 << 20)
                .await
                .unwrap()
                .iter()
                .map(|r| r.id)
                .collect();
            assert_eq!(all.len(), 2 * EACH);
            assert_eq!(seen, all, "the tail read every row, in order");
            assert_eq!(a.geosubmit_head().await.unwrap(), *all.last().unwrap());
            // Pages are bounded in bytes too, but always hold their first row.
            // The first rows are `a0`..`a2` and `b0`..`b1` in some order: one length.
            let body_len = u32::try_from(r#"{"items":[],"n":"a0"}"#.len()).unwrap();
            let page = |max| {
                let a = a.clone();
                async move { a.geosubmits_after(0, 10, max).await.unwrap().len() }
            };
            assert_eq!(page(1).await, 1, "a larger first row is read alone");
            assert_eq!(page(2 * body_len).await, 2);
            assert_eq!(page(2 * body_len + 1).await, 2);
            assert_eq!(page(1 << 20).await, 10);
        },
    )
    .await;
}

/// Regression: the listener's wait before reconnecting doubled with every lost connection and
/// never shrank, so a node that had lived through a few database restarts waited up to 30 s
/// before it heard `NOTIFY` again. Each loss after a good connection starts again from 1 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_reconnects_as_fast_after_the_fourth_loss_as_after_the_first() {
    pg::with_db(
        "the_listener_reconnects_as_fast_after_the_fourth_loss_as_after_the_first",
        |url| async move {
            let a = store(&url).await;
            let listener = a.listen().await.expect("listen");
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            let started = std::time::Instant::now();
            for round in 1..=4 {
                let cut = client
                    .execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                         WHERE datname = current_database() AND pid <> pg_backend_pid()
                           AND query = 'LISTEN vigil_tasks'",
                        &[],
                    )
                    .await
                    .unwrap();
                assert_eq!(cut, 1, "round {round}: the listener's connection");
                bounded("the listener's reconnect wake-up", listener.notified()).await;
            }
            // 1 s before each reconnect: about 4 s. Doubling would take 1 + 2 + 4 + 8 = 15 s.
            let took = started.elapsed();
            assert!(
                took < Duration::from_secs(10),
                "four reconnects took {took:?}"
            );
        },
    )
    .await;
}

/// While the database cannot be reached, a token the node knows verifies from memory, and one
/// it has not seen (minted on another node a moment ago) cannot be checked: an error, which the
/// API answers with 503, not "unknown" (401), which made `vigil agent` give its token up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_database_is_away_known_tokens_verify_and_unseen_ones_are_an_error() {
    let test = "while_the_database_is_away_known_tokens_verify_and_unseen_ones_are_an_error";
    pg::with_db(test, |url| async move {
        let here = Auth::load(Store::Postgres(store(&url).await))
            .await
            .unwrap();
        let (_, known) = here.create_token(Role::Operator, "known").await.unwrap();
        let elsewhere = Auth::load(Store::Postgres(store(&url).await))
            .await
            .unwrap();
        let (_, unseen) = elsewhere
            .create_token(Role::Viewer, "unseen")
            .await
            .unwrap();

        // The database goes away: this database only, the server is shared with other tests.
        let server = pg::server_url(test).expect("with_db runs only with a server");
        let name = url.rsplit('/').next().unwrap().to_owned();
        let (admin, connection) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        admin
            .batch_execute(&format!(
                "ALTER DATABASE {name} ALLOW_CONNECTIONS false;
                 SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
            ))
            .await
            .unwrap();

        let principal = bounded("a known token", here.check_token(&known)).await;
        assert_eq!(principal.unwrap().unwrap().role, Role::Operator);
        let err = bounded("an unseen token", here.check_token(&unseen))
            .await
            .expect_err("cannot be checked now");
        assert!(matches!(err, Error::Postgres(_)), "{err:?}");
        assert!(
            here.verify_token(&unseen).await.is_none(),
            "the lenient check says unknown"
        );
        assert!(
            here.check_token("vgl_not_a_token").await.unwrap().is_none(),
            "a malformed token is not looked up"
        );

        // Back: the unseen token is found.
        admin
            .batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
            .await
            .unwrap();
        let mut tries = 0;
        let principal = loop {
            tries += 1;
            match here.check_token(&unseen).await {
                Ok(found) => break found,
                Err(err) => {
                    assert!(tries < 50, "the store never came back: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        assert_eq!(principal.expect("found once back").role, Role::Viewer);
    })
    .await;
}

/// Presence rows: a heartbeat refreshes its agent's row; a row swept while heartbeats could not
/// reach the database (a long outage) says so, and is recorded again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presence_swept_during_an_outage_is_recorded_again() {
    pg::with_db(
        "a_presence_swept_during_an_outage_is_recorded_again",
        |url| async move {
            let db = store(&url).await;
            let presence = Presence {
                id: "rack-1".into(),
                node_id: "n1".into(),
                name: "rack".into(),
                capabilities: r#"["port_scan"]"#.into(),
                max_concurrent: 4,
                local: false,
                running: 0,
                since: Utc::now(),
                last_seen: Utc::now(),
            };
            db.upsert_presence(&presence).await.unwrap();
            assert!(db.touch_presence("rack-1", "n1").await.unwrap());
            assert!(
                !db.touch_presence("rack-1", "n2").await.unwrap(),
                "another node's row is not this node's to refresh"
            );
            let listed = db.presences(Duration::from_secs(60)).await.unwrap();
            assert_eq!(listed.len(), 1);
            assert_eq!(listed[0].name, "rack");
            // The sweep of a lister that has not heard of it for longer than its max age.
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert!(db.presences(Duration::ZERO).await.unwrap().is_empty());
            assert!(!db.touch_presence("rack-1", "n1").await.unwrap(), "swept");
            db.upsert_presence(&presence).await.unwrap();
            let listed = db.presences(Duration::from_secs(60)).await.unwrap();
            assert_eq!(listed.len(), 1, "recorded again");
        },
    )
    .await;
}
