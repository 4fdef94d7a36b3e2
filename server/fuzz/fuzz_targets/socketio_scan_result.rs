//! Socket.IO `scan_result` payloads in both shapes the handler accepts: vigil's result
//! (`task_id`, optionally inside `{result: ...}`) and the seed agent's (`scan_id` naming a task
//! the connection holds, seed findings). The connection here holds two tasks, `t-ip` on an
//! address and `t-name` on a host name, so seed-shaped inputs reach the conversion.
#![no_main]

use std::collections::HashMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sec_scan::{ScanTask, TaskKind};

fn tasks() -> &'static HashMap<String, ScanTask> {
    static TASKS: OnceLock<HashMap<String, ScanTask>> = OnceLock::new();
    TASKS.get_or_init(|| {
        [("t-ip", "127.0.0.1"), ("t-name", "scanme.example")]
            .into_iter()
            .map(|(id, target)| {
                let mut task = ScanTask::new(TaskKind::PortScan, target);
                task.id = id.to_owned();
                task.scan_id = "scan-1".to_owned();
                (task.id.clone(), task)
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(payload) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    match vigil_server::fuzzing::socketio_scan_result(payload, tasks()) {
        Ok((result, _skipped)) => {
            let _ = serde_json::to_string(&result).expect("a parsed result serializes");
        }
        Err((code, message)) => {
            assert!(!code.is_empty() && !message.is_empty());
        }
    }
});
