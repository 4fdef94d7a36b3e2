//! `/ws` client text frames, decoded into `ClientMessage` as the connection does: any text is a
//! message or a serde error (answered with an `error` frame), never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_server::protocol::ClientMessage;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(message) = serde_json::from_str::<ClientMessage>(text) {
        let _ = format!("{message:?}");
    }
});
