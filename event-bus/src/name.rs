//! The naming rule shared by rooms and custom event kinds.
//!
//! A name is 1 to 64 characters long, starts with a lowercase ASCII letter, and continues with
//! lowercase ASCII letters, digits, `_`, `-`, `.` or `:`. The rule keeps names safe to print,
//! to log and to use as metric labels or URL segments without escaping, whoever sent them.

use std::fmt;

use crate::error::{Error, Result};

/// The longest room or kind name accepted.
pub const MAX_NAME_LEN: usize = 64;

/// What a name names; carried by [`Error::InvalidName`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// A room name.
    Room,
    /// An event kind name.
    Kind,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::Room => "room",
            NameKind::Kind => "kind",
        })
    }
}

/// Checks `name` against the naming rule.
pub fn validate(what: NameKind, name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_NAME_LEN {
        Some("it is longer than 64 characters")
    } else if !name.as_bytes()[0].is_ascii_lowercase() {
        Some("it must start with a lowercase ASCII letter")
    } else if !name.bytes().all(|b| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.' | b':')
    }) {
        Some("only lowercase ASCII letters, digits, '_', '-', '.' and ':' are allowed")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(Error::InvalidName {
            what,
            name: name.chars().take(80).collect(),
            reason,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_usual_names() {
        for name in ["chat", "scans", "agent_online", "team-7", "ns:room.v2", "a"] {
            validate(NameKind::Room, name).unwrap();
        }
    }

    #[test]
    fn rejects_bad_names_with_a_reason() {
        let long = "a".repeat(65);
        for name in [
            "",
            "Chat",
            "7up",
            "_x",
            "has space",
            "emoji🙂",
            "a/b",
            long.as_str(),
        ] {
            let err = validate(NameKind::Kind, name).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::InvalidName {
                        what: NameKind::Kind,
                        ..
                    }
                ),
                "{name}: {err}"
            );
        }
    }
}
