//! Learning transmitter positions from sightings: what each observation says about distance,
//! and the running sums that later imports refine.
//!
//! A wardriver's row says "at this GPS fix (accurate to `acc` metres) I heard this access point
//! at `s` dBm". The access point is somewhere around the fix; how far, the signal tells:
//! under the log-distance model the range is about `d̂ = 10^((P − s) / (10·n))`. So the fix is an
//! estimate of the AP's position whose error has a variance of about `d̂² + acc²`, and the
//! best linear estimate from many fixes weighs each by the inverse of that variance:
//!
//! ```text
//! w = 1 / (d̂² + acc²)        d̂ = 10^((P − s) / (10·n)), s clamped to −100..−20 dBm
//! ```
//!
//! | emitter | P (dBm at 1 m) | n | missing signal | missing accuracy |
//! |---|---|---|---|---|
//! | WiFi | −30 | 3.0 | −80 dBm | 10 m |
//! | Bluetooth | −50 | 2.5 | −80 dBm | 10 m |
//! | cell | +20 | 3.5 | the radio's median (GSM −95, WCDMA −100, LTE −105, NR −110) | 10 m |
//!
//! Why this and not something else:
//!
//! - A plain mean of the fixes (weight 1, what the importer did before) lets a sighting at
//!   −92 dBm (about 120 m away by the model) pull as hard as one from the doorstep at −45 dBm
//!   (3 m). Here, both with a 5 m fix, the doorstep one weighs about 385 times more.
//! - The unknown transmit power `P` of one AP is common to all its sightings, so it changes
//!   the weights' scale, not their ratios (except against the `acc²` term): the values above
//!   are typical, not critical.
//! - The GPS term keeps a strong sighting from a poor fix from dominating: at 2 m from the AP
//!   but with a 50 m fix, the sighting weighs as one 50 m away.
//! - Sample counts enter through the sums: a transmitter seen 40 times has 40 weights added,
//!   and a cell-dump row carrying `samples` counts as that many sightings at its `range`.
//!
//! # What is kept ([`Summary`])
//!
//! Per transmitter: the weighted mean position, the weight sum `W = Σw`, the weighted spread
//! (`√(Σ w·dist² / W)`, the RMS distance of the sightings from the mean), the sample count, the
//! extent (the farthest sighting from the mean, Ichnaea's radius) and a count of conflicts. The
//! mean, `W`, `Σ w·dist²` and the count combine exactly ([`Summary::merge`], the parallel-axis
//! rule), so importing a file in two parts gives what importing it at once gives, up to the
//! storage's rounding (1 cm in position, 0.14 % in `W`, 4.4 % in spread).
//!
//! # Outliers and movers ([`resolve`])
//!
//! Within one import, the sightings of a transmitter are grouped greedily: a sighting joins the
//! group whose mean is within the **conflict distance** of it (WiFi 1 km, Bluetooth 200 m,
//! cells 20 km, each plus four implied ranges of the two sides, so a weak far sighting is not
//! mistaken for a conflict). The group with the most sightings wins; the others are dropped. A
//! group far from the stored position replaces it only with at least three sightings or more
//! than the stored ones (the AP was relocated); a stray sighting never drags the stored
//! position. A transmitter that shows up in three or more places, with the dropped places
//! holding at least as many sightings as the kept one, is a **mover** (a mobile hotspot, a
//! router in a bus): it is stored but flagged, and lookups do not return it (Ichnaea blocks
//! such stations too).

use crate::cell::Radio;
use crate::estimate::Station;
use crate::geo::{Frame, LatLon};

/// What was heard: the signal model depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emitter {
    /// A WiFi access point.
    Wifi,
    /// A Bluetooth beacon.
    Ble,
    /// A cell of this radio.
    Cell(Radio),
}

impl Emitter {
    /// Received power at 1 m, dBm.
    fn reference_dbm(self) -> f64 {
        match self {
            Emitter::Wifi => -30.0,
            Emitter::Ble => -50.0,
            Emitter::Cell(_) => 20.0,
        }
    }

    /// Path-loss exponent.
    fn path_loss_n(self) -> f64 {
        match self {
            Emitter::Wifi => 3.0,
            Emitter::Ble => 2.5,
            Emitter::Cell(_) => 3.5,
        }
    }

    /// The signal assumed when a sighting has none.
    fn default_dbm(self) -> f64 {
        match self {
            Emitter::Wifi | Emitter::Ble => -80.0,
            Emitter::Cell(r) => r.default_signal(),
        }
    }

    /// Sightings of one fixed transmitter farther apart than this (plus four implied ranges)
    /// are in conflict.
    pub fn conflict_m(self) -> f64 {
        match self {
            Emitter::Wifi => 1_000.0,
            Emitter::Ble => 200.0,
            Emitter::Cell(_) => 20_000.0,
        }
    }
}

/// The signal model of one kind of emitter, for [`LearningConfig`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SignalModel {
    /// Received power at 1 m, dBm.
    pub reference_dbm: f64,
    /// Path-loss exponent.
    pub path_loss_n: f64,
    /// The weight is `(d̂² + acc²)^(−power/2)`: 2 is inverse variance.
    pub power: f64,
}

/// How sightings are weighted, per kind of emitter. The defaults are the module docs' table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LearningConfig {
    /// WiFi: −30 dBm at 1 m, n = 3, power 2.
    pub wifi: SignalModel,
    /// Bluetooth: −50 dBm at 1 m, n = 2.5, power 2.
    pub ble: SignalModel,
    /// Cells: +20 dBm at 1 m, n = 3.5, power 2.
    pub cell: SignalModel,
}

impl Default for LearningConfig {
    fn default() -> Self {
        let model = |e: Emitter| SignalModel {
            reference_dbm: e.reference_dbm(),
            path_loss_n: e.path_loss_n(),
            power: 2.0,
        };
        LearningConfig {
            wifi: model(Emitter::Wifi),
            ble: model(Emitter::Ble),
            cell: model(Emitter::Cell(Radio::Lte)),
        }
    }
}

impl LearningConfig {
    /// The model of `emitter`.
    pub fn model(&self, emitter: Emitter) -> &SignalModel {
        match emitter {
            Emitter::Wifi => &self.wifi,
            Emitter::Ble => &self.ble,
            Emitter::Cell(_) => &self.cell,
        }
    }

    /// [`observation_weight`] under this configuration.
    pub fn weight(
        &self,
        emitter: Emitter,
        signal_dbm: Option<f64>,
        fix_accuracy_m: Option<f64>,
    ) -> f64 {
        let m = self.model(emitter);
        let d = range_under(m, emitter, signal_dbm);
        let acc = fix_accuracy_m
            .filter(|a| a.is_finite() && *a > 0.0)
            .unwrap_or(DEFAULT_ACCURACY_M)
            .max(MIN_ACCURACY_M);
        (d * d + acc * acc).powf(-m.power / 2.0)
    }
}

fn range_under(m: &SignalModel, emitter: Emitter, signal_dbm: Option<f64>) -> f64 {
    // Cells are received much stronger near the mast than WiFi: each has its own clamp.
    let (lo, hi) = match emitter {
        Emitter::Cell(_) => (-140.0, -25.0),
        _ => (-100.0, -20.0),
    };
    let s = signal_dbm
        .filter(|s| s.is_finite() && *s != 0.0)
        .unwrap_or(emitter.default_dbm())
        .clamp(lo, hi);
    10f64
        .powf((m.reference_dbm - s) / (10.0 * m.path_loss_n))
        .max(1.0)
}

/// Fix accuracy assumed when a sighting has none, metres.
const DEFAULT_ACCURACY_M: f64 = 10.0;
/// Accuracy floor, metres: no GPS fix is better than this.
const MIN_ACCURACY_M: f64 = 1.0;

/// The range that a signal implies under the log-distance model, metres (at least 1 m).
///
/// ```
/// use geo_locate::learning::{Emitter, implied_range_m};
/// let near = implied_range_m(Emitter::Wifi, Some(-45.0));
/// let far = implied_range_m(Emitter::Wifi, Some(-90.0));
/// assert!(near < 4.0 && far > 90.0);
/// ```
pub fn implied_range_m(emitter: Emitter, signal_dbm: Option<f64>) -> f64 {
    range_under(
        LearningConfig::default().model(emitter),
        emitter,
        signal_dbm,
    )
}

/// The weight of one sighting: `1 / (d̂² + acc²)` (see the module docs), in 1/m².
///
/// ```
/// use geo_locate::learning::{Emitter, observation_weight};
/// let doorstep = observation_weight(Emitter::Wifi, Some(-45.0), Some(5.0));
/// let far_away = observation_weight(Emitter::Wifi, Some(-92.0), Some(5.0));
/// assert!(doorstep > 100.0 * far_away);
/// ```
pub fn observation_weight(
    emitter: Emitter,
    signal_dbm: Option<f64>,
    fix_accuracy_m: Option<f64>,
) -> f64 {
    LearningConfig::default().weight(emitter, signal_dbm, fix_accuracy_m)
}

/// The running sums of one transmitter's sightings (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// The weighted mean position.
    pub position: LatLon,
    /// `W = Σw`, 1/m².
    pub weight: f64,
    /// `Σ w·dist²` of the sightings from the mean (dimensionless: weights are 1/m²).
    pub moment: f64,
    /// Sightings.
    pub samples: u32,
    /// The farthest sighting from the mean, metres.
    pub extent_m: f64,
    /// 0 none; 1–2 conflicting sightings were dropped or the transmitter was relocated; 3 a
    /// mover (see [`Summary::is_mover`]).
    pub conflicts: u8,
}

/// The conflict count that marks a mover.
pub const MOVER: u8 = 3;

impl Summary {
    /// One sighting at `position` with weight `weight`.
    pub fn sighting(position: LatLon, weight: f64) -> Summary {
        Summary {
            position,
            weight: if weight.is_finite() && weight > 0.0 {
                weight
            } else {
                f64::MIN_POSITIVE
            },
            moment: 0.0,
            samples: 1,
            extent_m: 0.0,
            conflicts: 0,
        }
    }

    /// A summary of `samples` sightings spread over `radius_m` (a cell-dump row: OpenCellID's
    /// `range` and `samples`), for when no weight sum is known: each sighting counts as one
    /// made at `radius_m / 2` with a 10 m fix.
    pub fn from_range(position: LatLon, radius_m: f64, samples: u32) -> Summary {
        let n = f64::from(samples.max(1));
        let r = (radius_m.max(0.0) / 2.0).hypot(DEFAULT_ACCURACY_M);
        let weight = n / (r * r);
        Summary {
            position,
            weight,
            moment: weight * (radius_m.max(0.0) / 2.0).powi(2),
            samples: samples.max(1),
            extent_m: radius_m.max(0.0),
            conflicts: 0,
        }
    }

    /// The weighted RMS distance of the sightings from the mean, metres.
    pub fn spread_m(&self) -> f64 {
        if self.weight > 0.0 {
            (self.moment.max(0.0) / self.weight).sqrt()
        } else {
            0.0
        }
    }

    /// The typical range of these sightings, `√(samples / W)`, metres: how close to the
    /// transmitter they were made.
    pub fn typical_range_m(&self) -> f64 {
        (f64::from(self.samples.max(1)) / self.weight.max(f64::MIN_POSITIVE)).sqrt()
    }

    /// True when the transmitter was seen in too many places to have one (see the module
    /// docs); lookups skip it.
    pub fn is_mover(&self) -> bool {
        self.conflicts >= MOVER
    }

    /// Both summaries pooled: weighted mean, summed weights and moments (parallel-axis rule),
    /// summed samples, the extent covering both. Exact and order-free up to rounding; computed
    /// in a local frame, so safe across the 180° meridian.
    pub fn merge(&self, other: &Summary) -> Summary {
        let frame = Frame::new(self.position);
        let (bx, by) = frame.to_xy(other.position);
        let total = self.weight + other.weight;
        let share = other.weight / total;
        let (mx, my) = (bx * share, by * share);
        let d2 = bx * bx + by * by;
        let position = frame.to_latlon(mx, my);
        let moment = self.moment + other.moment + self.weight * other.weight / total * d2;
        let to_self = mx.hypot(my);
        let to_other = (bx - mx).hypot(by - my);
        Summary {
            position,
            weight: total,
            moment,
            samples: self.samples.saturating_add(other.samples),
            extent_m: (self.extent_m + to_self).max(other.extent_m + to_other),
            conflicts: self.conflicts.max(other.conflicts),
        }
    }

    /// Whether `other` cannot be the same fixed transmitter: farther apart than the emitter's
    /// conflict distance plus four typical ranges of each.
    pub fn conflicts_with(&self, other: &Summary, emitter: Emitter) -> bool {
        let limit = emitter.conflict_m()
            + 4.0
                * (self.typical_range_m().min(emitter.conflict_m())
                    + other.typical_range_m().min(emitter.conflict_m()));
        self.position.distance_m(other.position) > limit
    }

    /// The station lookups return: position, extent as the radius, samples.
    pub fn station(&self) -> Station {
        Station {
            position: self.position,
            radius_m: self.extent_m,
            samples: self.samples,
        }
    }
}

/// Sightings needed before a transmitter seen elsewhere is taken to have been relocated.
const MIN_RELOCATION_SAMPLES: u32 = 3;

/// Folds one import's sightings of a transmitter (`new`, oldest first) into what was stored
/// (`base`): the outlier and mover rules of the module docs. `None` only when there is nothing.
pub fn resolve(base: Option<Summary>, new: &[Summary], emitter: Emitter) -> Option<Summary> {
    let mut groups: Vec<Summary> = Vec::new();
    for s in new {
        let home = groups
            .iter_mut()
            .filter(|g| !g.conflicts_with(s, emitter))
            .min_by(|a, b| {
                a.position
                    .distance_m(s.position)
                    .total_cmp(&b.position.distance_m(s.position))
            });
        match home {
            Some(g) => *g = g.merge(s),
            None => groups.push(*s),
        }
    }
    // The best-supported group, the later on a tie.
    let best = groups
        .iter()
        .enumerate()
        .max_by(|(ia, a), (ib, b)| {
            a.samples
                .cmp(&b.samples)
                .then(a.weight.total_cmp(&b.weight))
                .then(ia.cmp(ib))
        })
        .map(|(i, _)| i);
    let Some(best) = best else {
        return base;
    };
    let dominant = groups[best];
    let dropped_here: u32 = groups
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != best)
        .map(|(_, g)| g.samples)
        .sum();
    let places_here = groups.len();
    let (kept, dropped, places, prior) = match base {
        None => (dominant, dropped_here, places_here, 0),
        Some(b) if !b.conflicts_with(&dominant, emitter) => {
            (b.merge(&dominant), dropped_here, places_here, b.conflicts)
        }
        Some(b) => {
            if dominant.samples >= MIN_RELOCATION_SAMPLES || dominant.samples > b.samples {
                // Relocated: the newer place wins.
                (
                    dominant,
                    dropped_here + b.samples,
                    places_here + 1,
                    b.conflicts,
                )
            } else {
                // A stray sighting: keep the stored place, with whatever agrees with it.
                let agreeing = groups
                    .iter()
                    .filter(|g| !b.conflicts_with(g, emitter))
                    .fold(b, |acc, g| acc.merge(g));
                let agreeing_samples = agreeing.samples - b.samples;
                (
                    agreeing,
                    dropped_here + dominant.samples - agreeing_samples.min(dominant.samples),
                    places_here + 1,
                    b.conflicts,
                )
            }
        }
    };
    let conflicts = if prior >= MOVER || (places >= 3 && dropped >= kept.samples) {
        MOVER
    } else if places > 1 {
        prior.saturating_add(1).min(MOVER - 1)
    } else {
        prior.min(MOVER - 1)
    };
    Some(Summary { conflicts, ..kept })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn here() -> LatLon {
        LatLon::new(52.52, 13.405).unwrap()
    }

    /// The RSSI of an AP `d` metres away under the module's WiFi model.
    fn rssi(d: f64) -> f64 {
        -30.0 - 30.0 * d.max(1.0).log10()
    }

    fn sight(at: LatLon, d_from_ap: f64) -> Summary {
        Summary::sighting(
            at,
            observation_weight(Emitter::Wifi, Some(rssi(d_from_ap)), Some(5.0)),
        )
    }

    #[test]
    fn strong_near_sighting_outweighs_weak_far_ones() {
        let ap = here();
        // Three weak sightings 250 m east, one strong one 5 m west.
        let far = ap.offset(250.0, 0.0);
        let near = ap.offset(-5.0, 0.0);
        let new = [
            sight(far, 250.0),
            sight(near, 5.0),
            sight(far, 250.0),
            sight(far, 250.0),
        ];
        let s = resolve(None, &new, Emitter::Wifi).unwrap();
        assert!(s.position.distance_m(ap) < 12.0, "{s:?}");
        assert_eq!(s.samples, 4);
        assert_eq!(s.conflicts, 0);
        // The plain mean would sit 186 m east.
        assert!((s.extent_m - 250.0).abs() < 15.0, "{s:?}");
    }

    #[test]
    fn merge_is_exact_and_order_free() {
        let a = sight(here(), 10.0);
        let b = sight(here().offset(40.0, 10.0), 30.0);
        let c = sight(here().offset(-20.0, 35.0), 60.0);
        let left = a.merge(&b).merge(&c);
        let right = a.merge(&b.merge(&c));
        assert!(left.position.distance_m(right.position) < 1e-6);
        assert!((left.weight - right.weight).abs() < 1e-15);
        // The local frames differ by a few ppm over tens of metres.
        assert!((left.moment / right.moment - 1.0).abs() < 1e-4);
        assert_eq!(left.samples, 3);
    }

    #[test]
    fn a_stray_sighting_does_not_drag_a_fixed_ap() {
        let ap = here();
        let base: Vec<Summary> = (0..10)
            .map(|i| sight(ap.offset(f64::from(i) * 3.0 - 15.0, 8.0), 20.0))
            .collect();
        let stored = resolve(None, &base, Emitter::Wifi).unwrap();
        // Two strong sightings 2.5 km away (a mover's MAC clash, a GPS jump).
        let far = ap.offset(2_500.0, 0.0);
        let later = resolve(
            Some(stored),
            &[sight(far, 5.0), sight(far, 5.0)],
            Emitter::Wifi,
        )
        .unwrap();
        assert!(
            later.position.distance_m(stored.position) < 1.0,
            "{later:?}"
        );
        assert_eq!(later.samples, 10);
        assert!(!later.is_mover());
    }

    #[test]
    fn a_relocated_ap_moves_and_a_mobile_one_is_flagged() {
        let ap = here();
        let old: Vec<Summary> = (0..5).map(|_| sight(ap, 20.0)).collect();
        let stored = resolve(None, &old, Emitter::Wifi).unwrap();
        let moved = ap.offset(0.0, 3_000.0);
        let new: Vec<Summary> = (0..4).map(|_| sight(moved, 20.0)).collect();
        let s = resolve(Some(stored), &new, Emitter::Wifi).unwrap();
        assert!(s.position.distance_m(moved) < 1.0);
        assert!(!s.is_mover());
        // Seen in five places two km apart, once or twice each: a mover.
        let places: Vec<Summary> = (0..5)
            .flat_map(|i| {
                let p = ap.offset(f64::from(i) * 2_000.0, 0.0);
                [sight(p, 10.0), sight(p, 12.0)]
                    .into_iter()
                    .take(1 + (i % 2) as usize)
            })
            .collect();
        let s = resolve(None, &places, Emitter::Wifi).unwrap();
        assert!(s.is_mover(), "{s:?}");
    }

    #[test]
    fn across_the_antimeridian() {
        let east = LatLon::new(-17.0, 179.9999).unwrap();
        let west = LatLon::new(-17.0, -179.9999).unwrap();
        let s = Summary::sighting(east, 1.0).merge(&Summary::sighting(west, 1.0));
        assert!(s.position.lon.abs() > 179.99, "{s:?}");
        assert!(s.position.distance_m(east) < 15.0);
    }
}
