//! Cell identities: radio technology, the exact cell key and the area (LAC/TAC) key.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A radio access technology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Radio {
    /// GSM (2G).
    Gsm,
    /// UMTS / WCDMA (3G). OpenCellID writes `UMTS`.
    Wcdma,
    /// LTE (4G).
    Lte,
    /// 5G NR.
    Nr,
    /// CDMA: MNC holds the SID, LAC the NID and the cell id the BID.
    Cdma,
}

impl Radio {
    /// All radios, in key order.
    pub const ALL: [Radio; 5] = [Radio::Gsm, Radio::Wcdma, Radio::Lte, Radio::Nr, Radio::Cdma];

    /// The lower-case API name (`gsm`, `wcdma`, `lte`, `nr`, `cdma`).
    pub fn as_str(self) -> &'static str {
        match self {
            Radio::Gsm => "gsm",
            Radio::Wcdma => "wcdma",
            Radio::Lte => "lte",
            Radio::Nr => "nr",
            Radio::Cdma => "cdma",
        }
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            Radio::Gsm => 0,
            Radio::Wcdma => 1,
            Radio::Lte => 2,
            Radio::Nr => 3,
            Radio::Cdma => 4,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Radio> {
        Radio::ALL.get(usize::from(code)).copied()
    }

    /// The largest valid cell id for this radio (GSM 16 bits, UMTS/LTE 28 bits, NR 36 bits).
    pub fn max_cell_id(self) -> u64 {
        match self {
            Radio::Gsm | Radio::Cdma => 65_534,
            Radio::Wcdma | Radio::Lte => (1 << 28) - 1,
            Radio::Nr => (1 << 36) - 1,
        }
    }

    /// The largest valid LAC/TAC (NR uses 24-bit TACs; the others Ichnaea's 65533).
    pub fn max_area_code(self) -> u32 {
        match self {
            Radio::Nr => (1 << 24) - 3,
            _ => 65_533,
        }
    }

    /// The valid signal range in dBm (Ichnaea's constants; NR and CDMA use LTE's and GSM's).
    pub fn signal_range(self) -> (i32, i32) {
        match self {
            Radio::Gsm | Radio::Cdma => (-113, -51),
            Radio::Wcdma => (-121, -25),
            Radio::Lte | Radio::Nr => (-140, -43),
        }
    }

    /// The signal assumed when a reading has none: the radio's typical median.
    pub fn default_signal(self) -> f64 {
        match self {
            Radio::Gsm | Radio::Cdma => -95.0,
            Radio::Wcdma => -100.0,
            Radio::Lte => -105.0,
            Radio::Nr => -110.0,
        }
    }

    /// Metres per timing-advance step (GSM 553.5 m, LTE/NR 78.12 m); `None` when TA does not
    /// apply.
    pub fn timing_advance_step(self) -> Option<f64> {
        match self {
            Radio::Gsm => Some(553.5),
            Radio::Lte | Radio::Nr => Some(78.12),
            Radio::Wcdma | Radio::Cdma => None,
        }
    }
}

impl fmt::Display for Radio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Radio {
    type Err = Error;

    /// Accepts the API names and OpenCellID/WiGLE spellings (`UMTS`, `GSM`, `LTE`, `NR`, `CDMA`), in
    /// any case.
    fn from_str(s: &str) -> Result<Self, Error> {
        let r = match s.trim().to_ascii_lowercase().as_str() {
            "gsm" => Radio::Gsm,
            "wcdma" | "umts" => Radio::Wcdma,
            "lte" => Radio::Lte,
            "nr" | "5g" => Radio::Nr,
            "cdma" => Radio::Cdma,
            _ => return Err(Error::InvalidInput(format!("unknown radio type {s:?}"))),
        };
        Ok(r)
    }
}

/// The exact identity of a cell: radio, MCC, MNC, LAC/TAC and cell id.
///
/// UMTS cell ids are the 28-bit `RNC·65536 + CID`; NR ids are 36-bit. The physical cell id or
/// scrambling code (PSC/PCI) is kept beside the key because the same id can be reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CellKey {
    /// Radio technology.
    pub radio: Radio,
    /// Mobile country code.
    pub mcc: u16,
    /// Mobile network code (CDMA: SID).
    pub mnc: u16,
    /// Location or tracking area code (CDMA: NID).
    pub lac: u32,
    /// Cell id (CDMA: BID).
    pub cid: u64,
}

impl CellKey {
    /// Checks the key against Ichnaea's ranges (MCC 1..999, MNC 0..999, LAC 1..65533 or NR 24-bit,
    /// CID 1..max for the radio, with GSM's 65535 placeholder rejected).
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |what: &str| {
            Err(Error::InvalidInput(format!(
                "{what} out of range in {self}"
            )))
        };
        if !(1..=999).contains(&self.mcc) {
            return bad("MCC");
        }
        let max_mnc = if self.radio == Radio::Cdma {
            32_767
        } else {
            999
        };
        if self.mnc > max_mnc {
            return bad("MNC");
        }
        let min_lac = if self.radio == Radio::Cdma { 0 } else { 1 };
        if self.lac < min_lac || self.lac > self.radio.max_area_code() {
            return bad("LAC");
        }
        if self.cid == 0 || self.cid > self.radio.max_cell_id() {
            return bad("cell id");
        }
        Ok(())
    }

    /// The area this cell belongs to.
    pub fn area(&self) -> AreaKey {
        AreaKey {
            radio: self.radio,
            mcc: self.mcc,
            mnc: self.mnc,
            lac: self.lac,
        }
    }
}

impl fmt::Display for CellKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}:{}",
            self.radio, self.mcc, self.mnc, self.lac, self.cid
        )
    }
}

impl FromStr for CellKey {
    type Err = Error;

    /// Parses `RADIO:MCC:MNC:LAC:CID` (the CLI form), then validates it.
    fn from_str(s: &str) -> Result<Self, Error> {
        let parts: Vec<&str> = s.trim().split(':').collect();
        if parts.len() != 5 {
            return Err(Error::InvalidInput(format!(
                "expected RADIO:MCC:MNC:LAC:CID, got {s:?}"
            )));
        }
        let num = |i: usize, what: &str| -> Result<u64, Error> {
            parts[i]
                .parse::<u64>()
                .map_err(|_| Error::InvalidInput(format!("{what} {:?} is not a number", parts[i])))
        };
        let narrow = |v: u64, what: &str| -> Result<u32, Error> {
            u32::try_from(v).map_err(|_| Error::InvalidInput(format!("{what} {v} out of range")))
        };
        let key = CellKey {
            radio: parts[0].parse()?,
            mcc: u16::try_from(num(1, "MCC")?)
                .map_err(|_| Error::InvalidInput("MCC out of range".into()))?,
            mnc: u16::try_from(num(2, "MNC")?)
                .map_err(|_| Error::InvalidInput("MNC out of range".into()))?,
            lac: narrow(num(3, "LAC")?, "LAC")?,
            cid: num(4, "cell id")?,
        };
        key.validate()?;
        Ok(key)
    }
}

/// A location/tracking area: a cell key without the cell id. The unit of the LAC fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AreaKey {
    /// Radio technology.
    pub radio: Radio,
    /// Mobile country code.
    pub mcc: u16,
    /// Mobile network code.
    pub mnc: u16,
    /// Location or tracking area code.
    pub lac: u32,
}

impl fmt::Display for AreaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}:{}", self.radio, self.mcc, self.mnc, self.lac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cli_form() {
        let k: CellKey = "lte:262:1:12345:26877953".parse().unwrap();
        assert_eq!(k.radio, Radio::Lte);
        assert_eq!(k.cid, 26_877_953);
        assert_eq!(k.to_string(), "lte:262:1:12345:26877953");
        assert_eq!("UMTS".parse::<Radio>().unwrap(), Radio::Wcdma);
    }

    #[test]
    fn rejects_out_of_range_keys() {
        for s in [
            "gsm:0:1:1:1",
            "gsm:262:1:0:1",
            "gsm:262:1:65535:1",
            "gsm:262:1:1:65535",
            "gsm:262:1:1:0",
            "lte:262:1:1:268435456",
            "wifi:262:1:1:1",
            "gsm:262:1:1",
            "gsm:262:x:1:1",
        ] {
            assert!(s.parse::<CellKey>().is_err(), "{s}");
        }
        assert!("nr:262:1:1000000:68719476735".parse::<CellKey>().is_ok());
    }
}
