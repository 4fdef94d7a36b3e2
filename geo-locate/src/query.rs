//! Validation of a geolocate request into a [`Query`]: per-entry checks with Ichnaea's ranges.
//!
//! An entry whose identity is invalid (a bad MAC, a cell key out of range) is dropped on its own;
//! an optional field out of range (a signal of +20 dBm, a timing advance of 99) is cleared and the
//! entry kept. The request as a whole is never rejected.

use std::collections::HashMap;

use crate::api::{BluetoothBeacon, GeolocateRequest, RadioType, WifiAccessPoint};
use crate::cell::{CellKey, Radio};
use crate::mac::MacAddr;

/// Fewer unique WiFi (or BLE) entries than this and all of them are ignored: one AP must never
/// be enough to locate anyone (Ichnaea's `MIN_WIFIS_IN_QUERY`).
pub const MIN_BEACONS_IN_QUERY: usize = 2;

const MAX_AGE_MS: i64 = 3_600_000;

/// One valid WiFi access point or Bluetooth beacon reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BeaconReading {
    /// The address.
    pub mac: MacAddr,
    /// Received signal in dBm, if given and in range (WiFi −100..−10).
    pub signal: Option<i32>,
    /// Milliseconds since seen, if given and within an hour.
    pub age_ms: Option<i64>,
}

/// One valid cell reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellReading {
    /// The cell's exact key.
    pub key: CellKey,
    /// PSC / PCI, if given and in range.
    pub psc: Option<u16>,
    /// Received signal in dBm, if given and in the radio's range.
    pub signal: Option<i32>,
    /// Timing advance, if given and 0..=63.
    pub timing_advance: Option<u8>,
    /// Milliseconds since seen, if given and within an hour.
    pub age_ms: Option<i64>,
}

/// What entries were dropped while validating, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    /// WiFi entries with an invalid MAC or an opted-out SSID.
    pub wifi: usize,
    /// Cells with an incomplete or out-of-range key.
    pub cells: usize,
    /// Bluetooth entries with an invalid MAC.
    pub ble: usize,
}

/// A validated, deduplicated request: what the estimator and the sources work on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    /// WiFi readings, one per MAC (the strongest), empty if fewer than two.
    pub wifi: Vec<BeaconReading>,
    /// Bluetooth readings, one per MAC (the strongest), empty if fewer than two.
    pub ble: Vec<BeaconReading>,
    /// Cell readings, one per key.
    pub cells: Vec<CellReading>,
    /// Whether the location-area fallback may answer.
    pub lacf: bool,
    /// Whether the IP fallback may answer ([`Locator::locate_with_ip`](crate::Locator::locate_with_ip)).
    pub ipf: bool,
    /// How many entries were dropped.
    pub dropped: Dropped,
}

impl Query {
    /// Validates a request entry by entry.
    pub fn from_request(req: &GeolocateRequest) -> Query {
        let mut dropped = Dropped::default();
        let fallbacks = req.fallbacks.unwrap_or_default();
        let ipf = fallbacks.ipf.or(req.consider_ip).unwrap_or(true);
        let lacf = fallbacks.lacf.unwrap_or(true);

        let wifi = req
            .wifi_access_points
            .iter()
            .filter_map(|ap| {
                let r = wifi_reading(ap);
                if r.is_none() {
                    dropped.wifi += 1;
                }
                r
            })
            .collect();
        let ble = req
            .bluetooth_beacons
            .iter()
            .filter_map(|b| {
                let r = ble_reading(b);
                if r.is_none() {
                    dropped.ble += 1;
                }
                r
            })
            .collect();
        let default_radio = req.radio_type;
        let mut cells: Vec<CellReading> = Vec::new();
        for tower in &req.cell_towers {
            match cell_reading(tower, default_radio) {
                Some(c) => cells.push(c),
                None => dropped.cells += 1,
            }
        }

        Query {
            wifi: dedupe_beacons(wifi),
            ble: dedupe_beacons(ble),
            cells: dedupe_cells(cells),
            lacf,
            ipf,
            dropped,
        }
    }

    /// True when nothing usable is left.
    pub fn is_empty(&self) -> bool {
        self.wifi.is_empty() && self.ble.is_empty() && self.cells.is_empty()
    }
}

fn in_range(v: Option<i64>, lo: i64, hi: i64) -> Option<i64> {
    v.filter(|x| (lo..=hi).contains(x))
}

fn age(v: Option<i64>) -> Option<i64> {
    in_range(v, -MAX_AGE_MS, MAX_AGE_MS)
}

/// True for SSIDs whose owners opted out of mapping.
pub fn is_opted_out(ssid: &str) -> bool {
    let lower = ssid.to_ascii_lowercase();
    lower.contains("_nomap") || lower.contains("_optout")
}

pub(crate) fn wifi_reading(ap: &WifiAccessPoint) -> Option<BeaconReading> {
    if ap.ssid.as_deref().is_some_and(is_opted_out) {
        return None;
    }
    let mac = MacAddr::parse_station(&ap.mac_address).ok()?;
    Some(BeaconReading {
        mac,
        signal: in_range(ap.signal_strength, -100, -10).map(|s| s as i32),
        age_ms: age(ap.age),
    })
}

pub(crate) fn ble_reading(b: &BluetoothBeacon) -> Option<BeaconReading> {
    let mac = MacAddr::parse_station(&b.mac_address).ok()?;
    Some(BeaconReading {
        mac,
        signal: in_range(b.signal_strength, -127, 0).map(|s| s as i32),
        age_ms: age(b.age),
    })
}

pub(crate) fn cell_reading(
    tower: &crate::api::CellTower,
    default_radio: Option<RadioType>,
) -> Option<CellReading> {
    let radio = tower
        .radio_type
        .or(default_radio)
        .unwrap_or(RadioType::Gsm)
        .radio()?;
    let cid = if radio == Radio::Nr {
        tower.new_radio_cell_id.or(tower.cell_id)
    } else {
        tower.cell_id
    }?;
    let key = CellKey {
        radio,
        mcc: u16::try_from(tower.mobile_country_code?).ok()?,
        mnc: u16::try_from(tower.mobile_network_code?).ok()?,
        lac: u32::try_from(tower.location_area_code?).ok()?,
        cid: u64::try_from(cid).ok()?,
    };
    key.validate().ok()?;
    let max_psc = if radio == Radio::Lte { 503 } else { 1007 };
    let max_psc = if radio == Radio::Wcdma || radio == Radio::Gsm {
        511
    } else {
        max_psc
    };
    let (lo, hi) = radio.signal_range();
    Some(CellReading {
        key,
        psc: in_range(tower.psc, 0, max_psc).map(|p| p as u16),
        signal: in_range(tower.signal_strength, i64::from(lo), i64::from(hi)).map(|s| s as i32),
        timing_advance: in_range(tower.timing_advance, 0, 63).map(|t| t as u8),
        age_ms: age(tower.age),
    })
}

/// Orders readings so that the better one compares greater: stronger signal, then fresher.
fn beacon_rank(r: &BeaconReading) -> (i32, i64) {
    (
        r.signal.unwrap_or(i32::MIN),
        -r.age_ms.map_or(i64::MAX, i64::abs),
    )
}

fn dedupe_beacons(readings: Vec<BeaconReading>) -> Vec<BeaconReading> {
    let mut best: HashMap<MacAddr, BeaconReading> = HashMap::new();
    let mut order = Vec::new();
    for r in readings {
        match best.get_mut(&r.mac) {
            Some(cur) => {
                if beacon_rank(&r) > beacon_rank(cur) {
                    *cur = r;
                }
            }
            None => {
                order.push(r.mac);
                best.insert(r.mac, r);
            }
        }
    }
    if order.len() < MIN_BEACONS_IN_QUERY {
        return Vec::new();
    }
    order.into_iter().filter_map(|m| best.remove(&m)).collect()
}

fn dedupe_cells(readings: Vec<CellReading>) -> Vec<CellReading> {
    // Better: has a timing advance (and a smaller one), then stronger signal, then fresher.
    let rank = |c: &CellReading| {
        (
            c.timing_advance.map_or(i32::MIN, |t| -i32::from(t)),
            c.signal.unwrap_or(i32::MIN),
            -c.age_ms.map_or(i64::MAX, i64::abs),
        )
    };
    let mut out: Vec<CellReading> = Vec::new();
    for c in readings {
        match out.iter_mut().find(|o| o.key == c.key) {
            Some(o) => {
                if rank(&c) > rank(o) {
                    *o = c;
                }
            }
            None => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(v: serde_json::Value) -> GeolocateRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn drops_bad_entries_one_by_one() {
        let q = Query::from_request(&req(json!({
            "wifiAccessPoints": [
                {"macAddress": "00:00:00:00:00:00"},
                {"macAddress": "ff:ff:ff:ff:ff:ff"},
                {"macAddress": "01:00:5e:90:10:00"},
                {"macAddress": "not a mac"},
                {"macAddress": "aa:bb:cc:00:00:01", "signalStrength": -60},
                {"macAddress": "AABBCC000001", "signalStrength": -50},
                {"macAddress": "aa:bb:cc:00:00:02", "signalStrength": 20},
                {"macAddress": "aa:bb:cc:00:00:03", "ssid": "home_nomap"}
            ],
            "cellTowers": [
                {"radioType": "gsm", "mobileCountryCode": 262, "mobileNetworkCode": 1, "cellId": 5},
                {"radioType": "gsm", "mobileCountryCode": 262, "mobileNetworkCode": 1, "locationAreaCode": 7, "cellId": 5,
                 "timingAdvance": 99, "signalStrength": -70},
                {"radioType": "gsm", "mobileCountryCode": 262, "mobileNetworkCode": 1, "locationAreaCode": 7, "cellId": 65535},
                {"radioType": "6g", "mobileCountryCode": 262, "mobileNetworkCode": 1, "locationAreaCode": 7, "cellId": 6}
            ]
        })));
        assert_eq!(q.wifi.len(), 2);
        // The duplicate keeps the stronger reading.
        assert_eq!(q.wifi[0].signal, Some(-50));
        // Out-of-range signal is cleared, the entry kept.
        assert_eq!(q.wifi[1].signal, None);
        assert_eq!(q.dropped.wifi, 5);
        assert_eq!(q.cells.len(), 1);
        assert_eq!(q.cells[0].timing_advance, None);
        assert_eq!(q.cells[0].signal, Some(-70));
        assert_eq!(q.dropped.cells, 3);
    }

    #[test]
    fn single_wifi_is_ignored_for_privacy() {
        let q = Query::from_request(&req(json!({
            "wifiAccessPoints": [{"macAddress": "aa:bb:cc:00:00:01"}, {"macAddress": "aa:bb:cc:00:00:01"}]
        })));
        assert!(q.wifi.is_empty());
        assert!(q.is_empty());
    }

    #[test]
    fn nr_uses_new_radio_cell_id_and_fallbacks_override() {
        let q = Query::from_request(&req(json!({
            "radioType": "nr",
            "considerIp": true,
            "fallbacks": {"ipf": false, "lacf": false},
            "cellTowers": [{"mobileCountryCode": 262, "mobileNetworkCode": 1, "locationAreaCode": 70000,
                            "newRadioCellId": 68719476734_i64, "psc": 1000}]
        })));
        assert_eq!(q.cells[0].key.radio, Radio::Nr);
        assert_eq!(q.cells[0].key.cid, 68_719_476_734);
        assert_eq!(q.cells[0].psc, Some(1000));
        assert!(!q.ipf && !q.lacf);
    }
}
