//! The in-process executor: priorities, FIFO, concurrency, retries, timeouts, cancellation.
//! Time is paused, so backoffs and timeouts cost nothing and nothing depends on sleeps.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sec_scan::{
    Error, Executor, ExecutorConfig, Priority, ScanResult, ScanTask, TaskKind, TaskOutput,
    TaskRunner, TaskStatus,
};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

/// A runner scripted by the task's target: `gate` waits for the gate, `fail:N` fails N times
/// then succeeds, `hang` never finishes, anything else succeeds after 10 ms.
struct Scripted {
    order: Mutex<Vec<String>>,
    running: AtomicUsize,
    max_running: AtomicUsize,
    attempts: Mutex<HashMap<String, usize>>,
    gate: Arc<Semaphore>,
}

impl Default for Scripted {
    fn default() -> Self {
        Self {
            order: Mutex::default(),
            running: AtomicUsize::default(),
            max_running: AtomicUsize::default(),
            attempts: Mutex::default(),
            gate: Arc::new(Semaphore::new(0)),
        }
    }
}

#[async_trait]
impl TaskRunner for Scripted {
    async fn run(
        &self,
        task: &ScanTask,
        _cancel: CancellationToken,
    ) -> sec_scan::Result<TaskOutput> {
        self.order.lock().unwrap().push(task.target.clone());
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        let attempt = {
            let mut a = self.attempts.lock().unwrap();
            let n = a.entry(task.id.clone()).or_default();
            *n += 1;
            *n
        };
        let out = if task.target == "gate" {
            let _permit = self.gate.acquire().await.unwrap();
            Ok(TaskOutput::default())
        } else if let Some(n) = task.target.strip_prefix("fail:") {
            let n: usize = n.parse().unwrap();
            if attempt <= n {
                Err(Error::Queue(format!("scripted failure {attempt}")))
            } else {
                Ok(TaskOutput::default())
            }
        } else if task.target == "hang" {
            std::future::pending::<()>().await;
            unreachable!()
        } else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok(TaskOutput::default())
        };
        self.running.fetch_sub(1, Ordering::SeqCst);
        out
    }
}

fn start(
    config: ExecutorConfig,
) -> (
    Arc<Scripted>,
    sec_scan::ExecutorHandle,
    mpsc::Receiver<ScanResult>,
    tokio::task::JoinHandle<()>,
) {
    let runner = Arc::new(Scripted::default());
    let (handle, results, join) = Executor::start(config, runner.clone()).unwrap();
    (runner, handle, results, join)
}

fn task(target: &str, priority: u8) -> ScanTask {
    ScanTask::new(TaskKind::PortScan, target).with_priority(Priority::new(priority).unwrap())
}

async fn collect(results: &mut mpsc::Receiver<ScanResult>, n: usize) -> Vec<ScanResult> {
    let mut out = Vec::new();
    for _ in 0..n {
        match results.recv().await {
            Some(r) => out.push(r),
            None => panic!("channel closed after {} results: {out:?}", out.len()),
        }
    }
    out
}

#[tokio::test(start_paused = true)]
async fn higher_priority_first_then_fifo() {
    let (runner, handle, mut results, _join) = start(ExecutorConfig {
        concurrency: 1,
        ..Default::default()
    });
    handle.submit(task("gate", 5)).unwrap();
    // Let the gate task start, so the rest queue up behind it.
    tokio::task::yield_now().await;
    while handle.running() == 0 {
        tokio::task::yield_now().await;
    }
    for (t, p) in [
        ("low-1", 2),
        ("mid-1", 5),
        ("high-1", 9),
        ("mid-2", 5),
        ("high-2", 9),
        ("low-2", 2),
    ] {
        handle.submit(task(t, p)).unwrap();
    }
    runner.gate.add_permits(1);
    collect(&mut results, 7).await;
    let order = runner.order.lock().unwrap().clone();
    assert_eq!(
        order,
        [
            "gate", "high-1", "high-2", "mid-1", "mid-2", "low-1", "low-2"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn concurrency_is_limited_and_no_task_is_lost() {
    let (runner, handle, mut results, join) = start(ExecutorConfig {
        concurrency: 3,
        ..Default::default()
    });
    for i in 0..50 {
        handle
            .submit(task(&format!("t{i}"), 1 + (i % 10) as u8))
            .unwrap();
    }
    handle.close();
    let all = collect(&mut results, 50).await;
    assert!(all.iter().all(|r| r.status == TaskStatus::Success));
    assert_eq!(runner.max_running.load(Ordering::SeqCst), 3);
    join.await.unwrap();
    assert!(
        results.recv().await.is_none(),
        "exactly one result per task"
    );
}

#[tokio::test(start_paused = true)]
async fn failed_attempts_are_retried_with_backoff() {
    let (_runner, handle, mut results, _join) = start(ExecutorConfig {
        backoff_base: Duration::from_secs(1),
        ..Default::default()
    });
    let started = tokio::time::Instant::now();
    handle.submit(task("fail:2", 5).with_retries(3)).unwrap();
    let r = results.recv().await.unwrap();
    assert_eq!(r.status, TaskStatus::Success);
    assert_eq!(r.attempts, 3);
    // Backoffs: [0.5, 1] s then [1, 2] s.
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited <= Duration::from_secs(3),
        "{waited:?}"
    );

    handle.submit(task("fail:9", 5).with_retries(2)).unwrap();
    let r = results.recv().await.unwrap();
    assert_eq!(r.status, TaskStatus::Failed);
    assert_eq!(r.attempts, 3);
    assert_eq!(r.error.as_deref(), Some("task queue: scripted failure 3"));
}

#[tokio::test(start_paused = true)]
async fn attempts_time_out() {
    let (_runner, handle, mut results, _join) = start(ExecutorConfig {
        task_timeout: Duration::from_secs(5),
        ..Default::default()
    });
    handle.submit(task("hang", 5).with_retries(1)).unwrap();
    let r = results.recv().await.unwrap();
    assert_eq!(r.status, TaskStatus::TimedOut);
    assert_eq!(r.attempts, 2);
}

#[tokio::test(start_paused = true)]
async fn running_and_queued_tasks_can_be_cancelled() {
    let (runner, handle, mut results, _join) = start(ExecutorConfig {
        concurrency: 1,
        ..Default::default()
    });
    let running = task("hang", 5);
    let queued = task("never", 5);
    handle.submit(running.clone()).unwrap();
    handle.submit(queued.clone()).unwrap();
    while handle.running() == 0 {
        tokio::task::yield_now().await;
    }
    assert!(handle.cancel(&queued.id));
    assert!(handle.cancel(&running.id));
    assert!(!handle.cancel("no-such-task"));
    let got = collect(&mut results, 2).await;
    assert!(got.iter().all(|r| r.status == TaskStatus::Cancelled));
    let ids: Vec<&str> = got.iter().map(|r| r.task_id.as_str()).collect();
    assert!(ids.contains(&running.id.as_str()) && ids.contains(&queued.id.as_str()));
    assert_eq!(
        *runner.order.lock().unwrap(),
        ["hang"],
        "the queued task never ran"
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_cancels_everything_and_ends() {
    let (_runner, handle, mut results, join) = start(ExecutorConfig {
        concurrency: 1,
        ..Default::default()
    });
    for t in ["hang", "a", "b"] {
        handle.submit(task(t, 5)).unwrap();
    }
    while handle.running() == 0 {
        tokio::task::yield_now().await;
    }
    handle.shutdown();
    let got = collect(&mut results, 3).await;
    assert!(
        got.iter().all(|r| r.status == TaskStatus::Cancelled),
        "{got:?}"
    );
    join.await.unwrap();
    assert!(matches!(
        handle.submit(task("late", 5)),
        Err(Error::Queue(_))
    ));
}

#[tokio::test]
async fn bad_submissions_are_refused() {
    let (_runner, handle, _results, _join) = start(ExecutorConfig {
        queue_capacity: 1,
        concurrency: 1,
        ..Default::default()
    });
    let t = task("gate", 5);
    handle.submit(t.clone()).unwrap();
    assert!(
        matches!(handle.submit(t), Err(Error::Queue(_))),
        "duplicate id"
    );
    assert!(
        Executor::start(
            ExecutorConfig {
                concurrency: 0,
                ..Default::default()
            },
            Arc::new(Scripted::default())
        )
        .is_err()
    );
}
