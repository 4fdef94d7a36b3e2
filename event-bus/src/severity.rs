//! How much an event matters.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The severity of an event, ordered from `Info` (least) to `Critical` (most).
///
/// A subscription's minimum severity keeps events at that level and above: `Warning` keeps
/// warnings, errors and critical events.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Routine information.
    #[default]
    Info,
    /// Something finished well.
    Success,
    /// Something needs a look.
    Warning,
    /// Something failed.
    Error,
    /// Something needs action now.
    Critical,
}

impl Severity {
    /// Every severity, least first.
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Success,
        Severity::Warning,
        Severity::Error,
        Severity::Critical,
    ];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Success => "success",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Severity::ALL
            .into_iter()
            .find(|sev| sev.as_str() == s)
            .ok_or_else(|| Error::UnknownSeverity(s.chars().take(80).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_names_round_trip() {
        assert!(Severity::Info < Severity::Success && Severity::Error < Severity::Critical);
        for sev in Severity::ALL {
            assert_eq!(sev.as_str().parse::<Severity>().unwrap(), sev);
            assert_eq!(serde_json::to_string(&sev).unwrap(), format!("\"{sev}\""));
        }
        assert!(matches!(
            "fatal".parse::<Severity>(),
            Err(Error::UnknownSeverity(_))
        ));
    }
}
