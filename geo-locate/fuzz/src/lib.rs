//! Helpers shared by the geo-locate fuzz targets.

use std::io::Read;
use std::path::PathBuf;

/// The most bytes a body may inflate to, as the server caps it (1 MiB).
pub const BODY_LIMIT: usize = 1 << 20;

/// A body as the server reads it: gzip is inflated (capped) when it starts with the gzip magic,
/// anything else is taken as is. `None` when the gzip stream is broken or too large.
pub fn body(data: &[u8]) -> Option<Vec<u8>> {
    if data.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(data)
            .take(BODY_LIMIT as u64 + 1)
            .read_to_end(&mut out)
            .ok()?;
        (out.len() <= BODY_LIMIT).then_some(out)
    } else {
        Some(data.to_vec())
    }
}

/// A scratch directory for one fuzz process, on tmpfs when the machine has one (imports and
/// the overlay write files), removed and made anew by each caller as it needs.
pub fn scratch(name: &str) -> PathBuf {
    let base = std::env::var_os("FUZZ_SCRATCH")
        .map(PathBuf::from)
        .or_else(|| {
            let shm = PathBuf::from("/dev/shm");
            shm.is_dir().then_some(shm)
        })
        .unwrap_or_else(std::env::temp_dir);
    base.join(format!("vigil-fuzz-{name}-{}", std::process::id()))
}
