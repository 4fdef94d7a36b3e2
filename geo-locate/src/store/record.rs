//! Fixed-width records of the offline database and their byte encoding.
//!
//! Every record starts with a big-endian key, so records sort by key; positions are stored as
//! 1e-7 degree integers (about 1 cm), radii in metres and sample counts saturated.

use crate::cell::{AreaKey, CellKey, Radio};
use crate::estimate::Station;
use crate::geo::LatLon;
use crate::learning::{self, Emitter, MOVER, Summary};
use crate::mac::MacAddr;

/// No PSC/PCI known for a cell (the 11-bit field's top value).
pub(crate) const NO_PSC: u16 = 0x7ff;

/// A fixed-width, key-ordered record.
pub(crate) trait Record: Copy + Send + 'static {
    /// The key type; records are sorted and looked up by it.
    type Key: Copy + Ord + Send + std::fmt::Debug;
    /// Encoded size in bytes.
    const SIZE: usize;
    /// Bytes of the encoded key at the start of the record (what the index stores).
    const KEY_LEN: usize;
    /// The file magic of a table of these records.
    const MAGIC: &'static [u8; 8];
    fn key(&self) -> Self::Key;
    fn encode(&self, out: &mut [u8]);
    fn decode(bytes: &[u8]) -> Self;
    fn decode_key(bytes: &[u8]) -> Self::Key {
        Self::decode(bytes).key()
    }
    /// Folds the records one import brings for a key (`new`, oldest first, at least one) into
    /// the stored one, if any.
    fn resolve(base: Option<&Self>, new: &[Self]) -> Self;
}

pub(crate) fn to_e7(deg: f64) -> i32 {
    (deg * 1e7).round() as i32
}

pub(crate) fn from_e7(v: i32) -> f64 {
    f64::from(v) / 1e7
}

/// What is known about one transmitter, shared by cells, areas and beacons: 15 bytes.
///
/// ```text
/// lat e7 i32 | lon e7 i32 | radius u16 | samples (14 bits) + conflicts (2 bits) u16 | weight u16 | spread u8
/// ```
///
/// The radius is exact in metres below 10 km, then in 100 m steps up to 5 500 km. Samples
/// saturate at 16 383 (the score stops growing at 1 024). The weight sum `W` of the
/// [`Summary`] is stored as `512·(log2 W + 64)` (0.14 % steps; 0 = unknown, as for cell-dump
/// rows), the spread as `16·log2(1 + m)` (4.4 % steps, up to 62 km).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Spot {
    pub lat_e7: i32,
    pub lon_e7: i32,
    pub radius_m: u32,
    pub samples: u32,
    /// See [`Summary::conflicts`].
    pub conflicts: u8,
    /// `W` as stored (see [`Spot::weight`]); kept encoded so that import chunks stay small.
    weight_code: u16,
    /// The spread as stored (see [`Spot::spread_m`]).
    spread_code: u8,
}

const SPOT_SIZE: usize = 15;
const MAX_SAMPLES: u32 = (1 << 14) - 1;

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

fn encode_weight(w: f64) -> u16 {
    if !(w.is_finite() && w > 0.0) {
        return 0;
    }
    ((w.log2() + 64.0) * 512.0).round().clamp(1.0, 65_535.0) as u16
}

fn decode_weight(v: u16) -> f64 {
    if v == 0 {
        0.0
    } else {
        (f64::from(v) / 512.0 - 64.0).exp2()
    }
}

fn encode_spread(m: f64) -> u8 {
    if !(m.is_finite() && m > 0.0) {
        return 0;
    }
    (16.0 * m.ln_1p() / std::f64::consts::LN_2)
        .round()
        .clamp(0.0, 255.0) as u8
}

fn decode_spread(v: u8) -> f64 {
    (f64::from(v) / 16.0).exp2() - 1.0
}

impl Spot {
    /// A position with a radius and a sample count but no weight sum (a cell-dump row, an
    /// area).
    pub(crate) fn new(pos: LatLon, radius_m: f64, samples: u32) -> Spot {
        Spot {
            lat_e7: to_e7(pos.lat),
            lon_e7: to_e7(pos.lon),
            radius_m: decode_radius(encode_radius(
                radius_m.clamp(0.0, f64::from(u32::MAX)).ceil() as u32,
            )),
            samples: samples.min(MAX_SAMPLES),
            conflicts: 0,
            weight_code: 0,
            spread_code: 0,
        }
    }

    /// `W`, 1/m²; 0 when unknown.
    pub(crate) fn weight(&self) -> f64 {
        decode_weight(self.weight_code)
    }

    /// Weighted RMS distance of the sightings from the position, metres.
    pub(crate) fn spread_m(&self) -> f64 {
        decode_spread(self.spread_code)
    }

    /// The stored form of a summary (rounded as it will be on disk).
    pub(crate) fn from_summary(s: &Summary) -> Spot {
        Spot {
            conflicts: s.conflicts.min(MOVER),
            weight_code: encode_weight(s.weight),
            spread_code: encode_spread(s.spread_m()),
            ..Spot::new(s.position, s.extent_m, s.samples)
        }
    }

    /// The summary to refine: the stored sums, or for a record without a weight sum one made
    /// from its radius and samples ([`Summary::from_range`]).
    pub(crate) fn summary(&self) -> Summary {
        let position = self.position();
        if self.weight_code > 0 {
            let (weight, spread) = (self.weight(), self.spread_m());
            Summary {
                position,
                weight,
                moment: weight * spread * spread,
                samples: self.samples.max(1),
                extent_m: f64::from(self.radius_m),
                conflicts: self.conflicts,
            }
        } else {
            Summary::from_range(position, f64::from(self.radius_m), self.samples)
        }
    }

    pub(crate) fn position(&self) -> LatLon {
        LatLon {
            lat: from_e7(self.lat_e7),
            lon: from_e7(self.lon_e7),
        }
    }

    /// True for a transmitter flagged as moving: lookups skip it.
    pub(crate) fn is_mover(&self) -> bool {
        self.conflicts >= MOVER
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
        let packed =
            (self.samples.min(MAX_SAMPLES) as u16) | (u16::from(self.conflicts.min(MOVER)) << 14);
        out[10..12].copy_from_slice(&packed.to_be_bytes());
        out[12..14].copy_from_slice(&self.weight_code.to_be_bytes());
        out[14] = self.spread_code;
    }

    fn decode(b: &[u8]) -> Spot {
        let word = |i: usize| [b[i], b[i + 1], b[i + 2], b[i + 3]];
        let packed = u16::from_be_bytes([b[10], b[11]]);
        Spot {
            lat_e7: i32::from_be_bytes(word(0)),
            lon_e7: i32::from_be_bytes(word(4)),
            radius_m: decode_radius(u16::from_be_bytes([b[8], b[9]])),
            samples: u32::from(packed & 0x3fff),
            conflicts: (packed >> 14) as u8,
            weight_code: u16::from_be_bytes([b[12], b[13]]),
            spread_code: b[14],
        }
    }

    /// Folds one import's sightings into the stored spot ([`learning::resolve`]).
    pub(crate) fn resolve(base: Option<&Spot>, new: &[Spot], emitter: Emitter) -> Spot {
        let sums: Vec<Summary> = new.iter().map(Spot::summary).collect();
        match learning::resolve(base.map(Spot::summary), &sums, emitter) {
            Some(s) => Spot::from_summary(&s),
            // Unreachable with at least one record; keep whatever there is.
            None => base.or(new.last()).copied().unwrap_or(Spot::new(
                LatLon { lat: 0.0, lon: 0.0 },
                0.0,
                0,
            )),
        }
    }
}

/// Bytes of a cell key on disk.
const CELL_KEY_LEN: usize = 13;

/// A cell: 13-byte key (radio 4 bits, MCC 10, MNC 15, LAC 24, CID 36, PSC 11: the low 13 bytes
/// of the packed `u128`, whose top bits are always zero) + 15-byte spot = 28 bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
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
    const SIZE: usize = CELL_KEY_LEN + SPOT_SIZE;
    const KEY_LEN: usize = CELL_KEY_LEN;
    const MAGIC: &'static [u8; 8] = b"VGEOCEL2";

    fn key(&self) -> u128 {
        Self::pack_key(&self.key, self.psc)
    }

    fn encode(&self, out: &mut [u8]) {
        out[0..CELL_KEY_LEN].copy_from_slice(&self.key().to_be_bytes()[16 - CELL_KEY_LEN..]);
        self.spot.encode(&mut out[CELL_KEY_LEN..Self::SIZE]);
    }

    fn decode(b: &[u8]) -> Self {
        let (key, psc) = Self::unpack_key(Self::decode_key(b));
        CellRecord {
            key,
            psc,
            spot: Spot::decode(&b[CELL_KEY_LEN..Self::SIZE]),
        }
    }

    fn decode_key(b: &[u8]) -> u128 {
        let mut k = [0u8; 16];
        k[16 - CELL_KEY_LEN..].copy_from_slice(&b[0..CELL_KEY_LEN]);
        u128::from_be_bytes(k)
    }

    fn resolve(base: Option<&Self>, new: &[Self]) -> Self {
        let newest = new.last().or(base).copied().expect("a group has a record");
        let spots: Vec<Spot> = new.iter().map(|r| r.spot).collect();
        CellRecord {
            spot: Spot::resolve(
                base.map(|b| &b.spot),
                &spots,
                Emitter::Cell(newest.key.radio),
            ),
            ..newest
        }
    }
}

/// An area: 8-byte key (radio, MCC, MNC, LAC) + 15-byte spot (samples = number of cells).
#[derive(Debug, Clone, Copy, PartialEq)]
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
    const KEY_LEN: usize = 8;
    const MAGIC: &'static [u8; 8] = b"VGEOARE2";

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

    fn resolve(base: Option<&Self>, new: &[Self]) -> Self {
        new.last().or(base).copied().expect("a group has a record")
    }
}

/// Whether a beacon is a WiFi access point or a Bluetooth device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum BeaconKind {
    Wifi = 0,
    Ble = 1,
}

/// A WiFi AP or Bluetooth beacon: 8-byte key (kind << 48 | MAC) + 15-byte spot.
#[derive(Debug, Clone, Copy, PartialEq)]
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
    const KEY_LEN: usize = 8;
    const MAGIC: &'static [u8; 8] = b"VGEOBCN2";

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

    fn resolve(base: Option<&Self>, new: &[Self]) -> Self {
        let newest = new.last().or(base).copied().expect("a group has a record");
        let emitter = match newest.kind {
            BeaconKind::Wifi => Emitter::Wifi,
            BeaconKind::Ble => Emitter::Ble,
        };
        let spots: Vec<Spot> = new.iter().map(|r| r.spot).collect();
        BeaconRecord {
            spot: Spot::resolve(base.map(|b| &b.spot), &spots, emitter),
            ..newest
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
            16_383
        );
        let mut learned = Summary::sighting(LatLon::new(-33.9, 151.2).unwrap(), 0.0123).merge(
            &Summary::sighting(LatLon::new(-33.9001, 151.2).unwrap(), 0.004),
        );
        learned.conflicts = 2;
        let learned = Spot::from_summary(&learned);
        assert!(
            (learned.weight() / 0.0163 - 1.0).abs() < 0.002,
            "{learned:?}"
        );
        assert!((learned.spread_m() - 4.8).abs() < 0.3, "{learned:?}");
        round_trip(BeaconRecord {
            kind: BeaconKind::Wifi,
            mac: MacAddr::from_u64(0x0012_3456_789a).unwrap(),
            spot: learned,
        });
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
        let far = Spot::new(LatLon::new(48.0, 11.0).unwrap(), 20.0, 3);
        let c = Spot::resolve(Some(&home), &[near], Emitter::Wifi);
        assert_eq!(c.samples, 20);
        assert!(c.position().distance_m(home.position()) < 10.0);
        assert!(c.radius_m >= 20);
        let moved = Spot::resolve(Some(&home), &[far], Emitter::Wifi);
        assert!(moved.position().distance_m(far.position()) < 0.1);
        assert_eq!((moved.samples, moved.conflicts), (3, 1));
        // One stray sighting far away is not a relocation.
        let stray = Spot::new(LatLon::new(48.0, 11.0).unwrap(), 0.0, 1);
        let kept = Spot::resolve(Some(&home), &[stray], Emitter::Wifi);
        assert!(kept.position().distance_m(home.position()) < 0.1);
    }
}
