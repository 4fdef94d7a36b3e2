//! MAC addresses (BSSIDs and Bluetooth addresses) in every common written form.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// A 48-bit MAC address.
///
/// Parses `AA:BB:CC:DD:EE:FF`, `aa-bb-cc-dd-ee-ff`, `aabb.ccdd.eeff` (Cisco) and bare
/// `aabbccddeeff`, in any case. Displays as lower-case colon-separated hex.
///
/// ```
/// use geo_locate::MacAddr;
/// let a: MacAddr = "AA-BB-CC-00-11-22".parse()?;
/// let b: MacAddr = "aabb.cc00.1122".parse()?;
/// assert_eq!(a, b);
/// assert_eq!(a.to_string(), "aa:bb:cc:00:11:22");
/// # Ok::<(), geo_locate::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(u64);

/// The multicast test address that Ichnaea rejects (`01:00:5e:90:10:00`).
const TEST_MAC: u64 = 0x0100_5e90_1000;
const ALL_ONES: u64 = 0xffff_ffff_ffff;

impl MacAddr {
    /// Builds an address from its 48-bit value (the upper 16 bits must be zero).
    pub fn from_u64(value: u64) -> Option<Self> {
        (value <= ALL_ONES).then_some(MacAddr(value))
    }

    /// The 48-bit value.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// The six octets, most significant first.
    pub fn octets(self) -> [u8; 6] {
        let b = self.0.to_be_bytes();
        [b[2], b[3], b[4], b[5], b[6], b[7]]
    }

    /// True for addresses that can never name a real station: all zeros, all ones and the
    /// Ichnaea test MAC. Such addresses are dropped from requests and imports.
    pub fn is_placeholder(self) -> bool {
        self.0 == 0 || self.0 == ALL_ONES || self.0 == TEST_MAC
    }

    /// True when the locally-administered bit is set (virtual, mesh or randomised addresses).
    pub fn is_local(self) -> bool {
        self.octets()[0] & 0x02 != 0
    }

    /// Parses and also rejects placeholder addresses (see [`MacAddr::is_placeholder`]).
    pub fn parse_station(input: &str) -> Result<Self, Error> {
        let mac: MacAddr = input.parse()?;
        if mac.is_placeholder() {
            return Err(Error::InvalidMac {
                input: input.to_owned(),
                reason: "all-zero, broadcast or test address",
            });
        }
        Ok(mac)
    }
}

impl FromStr for MacAddr {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self, Error> {
        let bad = |reason| Error::InvalidMac {
            input: input.to_owned(),
            reason,
        };
        let trimmed = input.trim();
        let mut value: u64 = 0;
        let mut digits = 0usize;
        let mut separator: Option<u8> = None;
        for &c in trimmed.as_bytes() {
            match c {
                b':' | b'-' | b'.' => {
                    match separator {
                        None => separator = Some(c),
                        Some(s) if s != c => return Err(bad("mixed separators")),
                        Some(_) => {}
                    }
                    continue;
                }
                _ => {}
            }
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                _ => return Err(bad("not a hex digit")),
            };
            digits += 1;
            if digits > 12 {
                return Err(bad("more than 12 hex digits"));
            }
            value = (value << 4) | u64::from(d);
        }
        if digits != 12 {
            return Err(bad("expected 12 hex digits"));
        }
        // Check the grouping: 2 digits per group for ':'/'-', 4 for '.'.
        if let Some(sep) = separator {
            let group = if sep == b'.' { 4 } else { 2 };
            let ok = trimmed.split(sep as char).all(|g| g.len() == group);
            if !ok {
                return Err(bad("unexpected digit grouping"));
            }
        }
        Ok(MacAddr(value))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = self.octets();
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            o[0], o[1], o[2], o[3], o[4], o[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacAddr({self})")
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_common_form() {
        let forms = [
            "01:23:45:67:89:ab",
            "01-23-45-67-89-AB",
            "0123.4567.89ab",
            "0123456789AB",
            " 01:23:45:67:89:ab ",
        ];
        for f in forms {
            let mac: MacAddr = f.parse().unwrap();
            assert_eq!(mac.as_u64(), 0x0123_4567_89ab, "{f}");
        }
    }

    #[test]
    fn rejects_malformed() {
        for f in [
            "",
            "01:23:45:67:89",
            "01:23:45:67:89:ab:cd",
            "01:23-45:67:89:ab",
            "0123:4567:89ab",
            "zz:23:45:67:89:ab",
            "0123456789abc",
        ] {
            assert!(f.parse::<MacAddr>().is_err(), "{f} should fail");
        }
    }

    #[test]
    fn rejects_placeholders_as_stations() {
        for f in [
            "00:00:00:00:00:00",
            "ff:ff:ff:ff:ff:ff",
            "01:00:5e:90:10:00",
        ] {
            assert!(MacAddr::parse_station(f).is_err(), "{f}");
        }
        assert!(
            MacAddr::parse_station("02:00:5e:90:10:00")
                .unwrap()
                .is_local()
        );
    }

    #[test]
    fn serde_round_trip() {
        let mac: MacAddr = serde_json::from_str("\"AABBCCDDEEFF\"").unwrap();
        assert_eq!(
            serde_json::to_string(&mac).unwrap(),
            "\"aa:bb:cc:dd:ee:ff\""
        );
    }
}
