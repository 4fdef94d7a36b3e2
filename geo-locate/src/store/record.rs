//! Fixed-width records of the offline database and their byte encoding.
//!
//! Every record starts with a big-endian key, so records sort by key; positions are stored as
//! 1e-7 degree integers (about 1 cm), radii in metres and sample counts saturated.

use crate::cell::{AreaKey, CellKey, Radio};
use crate::estimate::Station;
use crate::geo::LatLon;
use crate::mac::MacAddr;

/// No PSC/PCI known for a cell (the 11-bit field's top value).
pub(crate) const NO_PSC: u16 = 0x7ff;

/// A fixed-width, key-ordered record.
pub(crate) trait Record: Copy + Send + 'static {
    /// The key type; records are sorted and looked up by it.
    type Key: Copy + Ord + Send + std::fmt::Debug;
    /// Encoded size in bytes.
    const SIZE: usize;
    /// The file magic of a table of these records.
    const MAGIC: &'static [u8; 8];
    fn key(&self) -> Self::Key;
    fn encode(&self, out: &mut [u8]);
    fn decode(bytes: &[u8]) -> Self;
    fn decode_key(bytes: &[u8]) -> Self::Key {
        Self::decode(bytes).key()
    }
    /// Merges two records with the same key; `newer` was imported later.
    fn combine(older: &Self, newer: &Self) -> Self;
}

pub(crate) fn to_e7(deg: f64) -> i32 {
    (deg * 1e7).round() as i32
}

pub(crate) fn from_e7(v: i32) -> f64 {
    f64::from(v) / 1e7
}

/// A transmitter position with radius and samples, shared by cells and beacons: 12 bytes.
///
/// The radius is stored as a `u16`: exact in metres below 10 km, then in 100 m steps up to
/// 5 500 km. Samples saturate at 65 535 (the score stops growing long before).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Spot {
    pub lat_e7: i32,
    pub lon_e7: i32,
    pub radius_m: u32,
    pub samples: u32,
}

const SPOT_SIZE: usize = 12;

fn encode_radius(m: u32) -> u16 {
    if m < 10_000 {
        m as u16
    } else {
        (10_000 + (m - 10_000).div_ceil(100)).min(u32::from(u16::MAX)) as u16
    }
}

fn decode_radius(v: u16) -> u32 {
    let v = u32::from(v);
    if v < 10_000 {
        v
    } else {
        10_000 + (v - 10_000) * 100
    }
}

impl Spot {
    pub(crate) fn new(pos: LatLon, radius_m: f64, samples: u32) -> Spot {
        Spot {
            lat_e7: to_e7(pos.lat),
            lon_e7: to_e7(pos.lon),
            radius_m: decode_radius(encode_radius(
                radius_m.clamp(0.0, f64::from(u32::MAX)).ceil() as u32,
            )),
            samples: samples.min(u32::from(u16::MAX)),
        }
    }

    pub(crate) fn position(&self) -> LatLon {
        LatLon {
            lat: from_e7(self.lat_e7),
            lon: from_e7(self.lon_e7),
        }
    }

    pub(crate) fn station(&self) -> Station {
        Station {
            position: self.position(),
            radius_m: f64::from(self.radius_m),
            samples: self.samples,
        }
    }

    fn encode(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.lat_e7.to_be_bytes());
        out[4..8].copy_from_slice(&self.lon_e7.to_be_bytes());
        out[8..10].copy_from_slice(&encode_radius(self.radius_m).to_be_bytes());
        let samples = self.samples.min(u32::from(u16::MAX)) as u16;
        out[10..12].copy_from_slice(&samples.to_be_bytes());
    }

    fn decode(b: &[u8]) -> Spot {
        let word = |i: usize| [b[i], b[i + 1], b[i + 2], b[i + 3]];
        Spot {
            lat_e7: i32::from_be_bytes(word(0)),
            lon_e7: i32::from_be_bytes(word(4)),
            radius_m: decode_radius(u16::from_be_bytes([b[8], b[9]])),
            samples: u32::from(u16::from_be_bytes([b[10], b[11]])),
        }
    }

    /// Combines two sightings of one transmitter. If they are farther apart than `moved_m`, the
    /// transmitter moved and the newer one replaces the older (so a relocated router is
    /// "unlearned" by newer data); otherwise a samples-weighted mean whose radius covers both.
    pub(crate) fn combine(older: &Spot, newer: &Spot, moved_m: f64) -> Spot {
        let (a, b) = (older.position(), newer.position());
        let d = a.distance_m(b);
        if d > moved_m {
            return *newer;
        }
        let (wa, wb) = (
            f64::from(older.samples.max(1)),
            f64::from(newer.samples.max(1)),
        );
        let total = wa + wb;
        let mean = LatLon {
            lat: (a.lat * wa + b.lat * wb) / total,
            lon: (a.lon * wa + b.lon * wb) / total,
        };
        let radius = (mean.distance_m(a) + f64::from(older.radius_m))
            .max(mean.distance_m(b) + f64::from(newer.radius_m));
        Spot::new(
            mean,
            radius,
            older.samples.max(1).saturating_add(newer.samples.max(1)),
        )
    }
}

/// A cell: 16-byte key (radio 4 bits, MCC 10, MNC 15, LAC 24, CID 36, PSC 11) + 12-byte spot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CellRecord {
    pub key: CellKey,
    pub psc: u16,
    pub spot: Spot,
}

impl CellRecord {
    pub(crate) fn pack_key(key: &CellKey, psc: u16) -> u128 {
        (u128::from(key.radio.code()) << 96)
            | (u128::from(key.mcc) << 86)
            | (u128::from(key.mnc) << 71)
            | (u128::from(key.lac) << 47)
            | (u128::from(key.cid) << 11)
            | u128::from(psc.min(NO_PSC))
    }

    fn unpack_key(v: u128) -> (CellKey, u16) {
        let radio = Radio::from_code(((v >> 96) & 0xf) as u8).unwrap_or(Radio::Gsm);
        (
            CellKey {
                radio,
                mcc: ((v >> 86) & 0x3ff) as u16,
                mnc: ((v >> 71) & 0x7fff) as u16,
                lac: ((v >> 47) & 0xff_ffff) as u32,
                cid: ((v >> 11) & 0xf_ffff_ffff) as u64,
            },
            (v & 0x7ff) as u16,
        )
    }
}

impl Record for CellRecord {
    type Key = u128;
    const SIZE: usize = 16 + SPOT_SIZE;
    const MAGIC: &'static [u8; 8] = b"VGEOCEL1";

    fn key(&self) -> u128 {
        Self::pack_key(&self.key, self.psc)
    }

    fn encode(&self, out: &mut [u8]) {
        out[0..16].copy_from_slice(&self.key().to_be_bytes());
        self.spot.encode(&mut out[16..Self::SIZE]);
    }

    fn decode(b: &[u8]) -> Self {
        let (key, psc) = Self::unpack_key(Self::decode_key(b));
        CellRecord {
            key,
            psc,
            spot: Spot::decode(&b[16..Self::SIZE]),
        }
    }

    fn decode_key(b: &[u8]) -> u128 {
        let mut k = [0u8; 16];
        k.copy_from_slice(&b[0..16]);
        u128::from_be_bytes(k)
    }

    fn combine(older: &Self, newer: &Self) -> Self {
        CellRecord {
            spot: Spot::combine(&older.spot, &newer.spot, 100_000.0),
            ..*newer
        }
    }
}

/// An area: 8-byte key (radio, MCC, MNC, LAC) + 12-byte spot (samples = number of cells).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AreaRecord {
    pub key: AreaKey,
    pub spot: Spot,
}

impl AreaRecord {
    pub(crate) fn pack_key(k: &AreaKey) -> u64 {
        (u64::from(k.radio.code()) << 49)
            | (u64::from(k.mcc) << 39)
            | (u64::from(k.mnc) << 24)
            | u64::from(k.lac)
    }
}

impl Record for AreaRecord {
    type Key = u64;
    const SIZE: usize = 8 + SPOT_SIZE;
    const MAGIC: &'static [u8; 8] = b"VGEOARE1";

    fn key(&self) -> u64 {
        Self::pack_key(&self.key)
    }

    fn encode(&self, out: &mut [u8]) {
        out[0..8].copy_from_slice(&self.key().to_be_bytes());
        self.spot.encode(&mut out[8..Self::SIZE]);
    }

    fn decode(b: &[u8]) -> Self {
        let v = Self::decode_key(b);
        AreaRecord {
            key: AreaKey {
                radio: Radio::from_code(((v >> 49) & 0xf) as u8).unwrap_or(Radio::Gsm),
                mcc: ((v >> 39) & 0x3ff) as u16,
                mnc: ((v >> 24) & 0x7fff) as u16,
                lac: (v & 0xff_ffff) as u32,
            },
            spot: Spot::decode(&b[8..Self::SIZE]),
        }
    }

    fn decode_key(b: &[u8]) -> u64 {
        let mut k = [0u8; 8];
        k.copy_from_slice(&b[0..8]);
        u64::from_be_bytes(k)
    }

    fn combine(_older: &Self, newer: &Self) -> Self {
        *newer
    }
}

/// Whether a beacon is a WiFi access point or a Bluetooth device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum BeaconKind {
    Wifi = 0,
    Ble = 1,
}

/// A WiFi AP or Bluetooth beacon: 8-byte key (kind << 48 | MAC) + 12-byte spot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BeaconRecord {
    pub kind: BeaconKind,
    pub mac: MacAddr,
    pub spot: Spot,
}

impl BeaconRecord {
    pub(crate) fn pack_key(kind: BeaconKind, mac: MacAddr) -> u64 {
        ((kind as u64) << 48) | mac.as_u64()
    }
}

impl Record for BeaconRecord {
    type Key = u64;
    const SIZE: usize = 8 + SPOT_SIZE;
    const MAGIC: &'static [u8; 8] = b"VGEOBCN1";

    fn key(&self) -> u64 {
        Self::pack_key(self.kind, self.mac)
    }

    fn encode(&self, out: &mut [u8]) {
        out[0..8].copy_from_slice(&self.key().to_be_bytes());
        self.spot.encode(&mut out[8..Self::SIZE]);
    }

    fn decode(b: &[u8]) -> Self {
        let v = Self::decode_key(b);
        BeaconRecord {
            kind: if v >> 48 == 1 {
                BeaconKind::Ble
            } else {
                BeaconKind::Wifi
            },
            mac: MacAddr::from_u64(v & 0xffff_ffff_ffff)
                .unwrap_or(MacAddr::from_u64(0).expect("zero is a valid 48-bit value")),
            spot: Spot::decode(&b[8..Self::SIZE]),
        }
    }

    fn decode_key(b: &[u8]) -> u64 {
        let mut k = [0u8; 8];
        k.copy_from_slice(&b[0..8]);
        u64::from_be_bytes(k)
    }

    fn combine(older: &Self, newer: &Self) -> Self {
        // Ichnaea's movement limits: WiFi 5 km; BLE 100 m is too tight for drive-by sightings,
        // so 1 km.
        let moved = match newer.kind {
            BeaconKind::Wifi => 5_000.0,
            BeaconKind::Ble => 1_000.0,
        };
        BeaconRecord {
            spot: Spot::combine(&older.spot, &newer.spot, moved),
            ..*newer
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<R: Record + PartialEq + std::fmt::Debug>(r: R) {
        let mut buf = vec![0u8; R::SIZE];
        r.encode(&mut buf);
        assert_eq!(R::decode(&buf), r);
    }

    #[test]
    fn records_round_trip_at_the_extremes() {
        let spot = Spot::new(LatLon::new(-89.9999999, 179.9999999).unwrap(), 123_456.0, 7);
        assert_eq!(spot.radius_m, 123_500);
        assert_eq!(
            Spot::new(LatLon::new(0.0, 0.0).unwrap(), 9_999.2, 70_000).radius_m,
            10_000
        );
        assert_eq!(
            Spot::new(LatLon::new(0.0, 0.0).unwrap(), 12.0, 70_000).samples,
            65_535
        );
        for key in [
            CellKey {
                radio: Radio::Nr,
                mcc: 999,
                mnc: 999,
                lac: (1 << 24) - 3,
                cid: (1 << 36) - 1,
            },
            CellKey {
                radio: Radio::Cdma,
                mcc: 1,
                mnc: 32_767,
                lac: 0,
                cid: 1,
            },
            CellKey {
                radio: Radio::Gsm,
                mcc: 262,
                mnc: 0,
                lac: 1,
                cid: 65_534,
            },
        ] {
            round_trip(CellRecord {
                key,
                psc: 503,
                spot,
            });
            round_trip(CellRecord {
                key,
                psc: NO_PSC,
                spot,
            });
            round_trip(AreaRecord {
                key: key.area(),
                spot,
            });
        }
        round_trip(BeaconRecord {
            kind: BeaconKind::Ble,
            mac: MacAddr::from_u64(0xffff_ffff_fffe).unwrap(),
            spot,
        });
    }

    #[test]
    fn key_order_is_byte_order() {
        let a = CellKey {
            radio: Radio::Gsm,
            mcc: 262,
            mnc: 1,
            lac: 5,
            cid: 9,
        };
        let b = CellKey { cid: 10, ..a };
        assert!(CellRecord::pack_key(&a, NO_PSC) < CellRecord::pack_key(&b, 0));
        assert!(
            CellRecord::pack_key(&a, 0).to_be_bytes() < CellRecord::pack_key(&a, 1).to_be_bytes()
        );
    }

    #[test]
    fn moved_transmitter_is_replaced_not_averaged() {
        let home = Spot::new(LatLon::new(52.0, 13.0).unwrap(), 20.0, 10);
        let near = Spot::new(LatLon::new(52.0001, 13.0).unwrap(), 20.0, 10);
        let far = Spot::new(LatLon::new(48.0, 11.0).unwrap(), 20.0, 1);
        let c = Spot::combine(&home, &near, 5_000.0);
        assert_eq!(c.samples, 20);
        assert!(c.position().distance_m(home.position()) < 10.0);
        assert!(c.radius_m >= 20);
        assert_eq!(Spot::combine(&home, &far, 5_000.0), far);
    }
}
