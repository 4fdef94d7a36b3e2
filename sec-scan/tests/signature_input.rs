//! Bad signature files give typed errors, never panics: every truncation point and many byte
//! flips of the built-in file are fed to the loader.

use sec_scan::{Error, SignatureSet};

#[test]
fn truncated_and_corrupted_files_never_panic() {
    let source = SignatureSet::builtin_source();
    let bytes = source.as_bytes();
    let mut checked = 0;
    for cut in (0..bytes.len()).step_by(101) {
        let text = String::from_utf8_lossy(&bytes[..cut]);
        match SignatureSet::from_toml(&text, "cut") {
            Ok(set) => assert!(set.len() <= 200),
            Err(Error::Signature { line, .. }) => assert!(line <= text.lines().count() + 1),
            Err(other) => panic!("unexpected error kind: {other:?}"),
        }
        checked += 1;
    }
    // Deterministic pseudo-random byte flips (xorshift), one per attempt.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..150 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut corrupted = bytes.to_vec();
        let at = (state % corrupted.len() as u64) as usize;
        let specials = b"\"'[]=\n\\(*{";
        corrupted[at] = specials[(state >> 32) as usize % specials.len()];
        let text = String::from_utf8_lossy(&corrupted);
        if let Err(e) = SignatureSet::from_toml(&text, "flip") {
            assert!(matches!(e, Error::Signature { .. }), "{e:?}");
        }
        checked += 1;
    }
    assert!(checked > 150);
}
