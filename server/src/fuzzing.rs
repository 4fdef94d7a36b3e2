//! Entry points for the fuzz targets in `server/fuzz/`: the decoders of client input, without
//! the connection state around them. Not a stable API.

use std::collections::HashMap;

/// Decodes a Socket.IO `scan_result` payload as the handler does, in vigil's shape
/// (`{task_id, ...}`, optionally wrapped in `{result: ...}`) or the seed's (`{scan_id, ...}`,
/// read against the tasks the connection holds). Returns the result and how many seed findings
/// were not stored, or the error code and message the client would get.
pub fn socketio_scan_result(
    data: serde_json::Value,
    tasks: &HashMap<String, sec_scan::ScanTask>,
) -> Result<(sec_scan::ScanResult, usize), (&'static str, String)> {
    crate::transport::socketio::parse_result(data, tasks)
}
