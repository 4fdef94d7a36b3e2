//! Simulated cities for the accuracy harness: WiFi APs ([`City`]) and LTE towers ([`CellCity`]).
//!
//! Access points are scattered over a square city. Each has a true position, a transmit power
//! and a database position: the truth plus the error of wardriving data (positions are biased
//! toward where they were observed from, σ ≈ 15 m per axis), and for a fraction of them a
//! position 1–5 km away (the AP moved since it was mapped). A device at a random point hears
//! every AP whose signal, under the log-distance model with log-normal shadowing
//! (`RSSI = P0 − 10·n·log10(d) + N(0, σ)`), is above the detection threshold; it reports the
//! strongest few, some without a signal value.

use geo_locate::LatLon;

use super::Rng;

/// Parameters of the simulation. Defaults: a 3 km × 3 km city with 4 000 APs, n = 3, σ = 6 dB,
/// P0 = −40 ± 4 dBm, detection at −95 dBm, the 25 strongest reported, 5 % moved APs and 10 %
/// readings without a signal.
#[derive(Debug, Clone)]
pub struct CityConfig {
    /// City edge, metres.
    pub size_m: f64,
    /// Number of APs.
    pub aps: usize,
    /// Path-loss exponent of the simulated propagation.
    pub path_loss_n: f64,
    /// Shadowing standard deviation, dB.
    pub shadowing_db: f64,
    /// Mean received power at 1 m, dBm.
    pub p0_mean_dbm: f64,
    /// Spread of P0 between APs, dB.
    pub p0_sd_db: f64,
    /// Readings weaker than this are not heard.
    pub detect_dbm: f64,
    /// The device reports at most this many APs (the strongest).
    pub max_reported: usize,
    /// Fraction of APs whose database position is stale by 1–5 km.
    pub moved_fraction: f64,
    /// Fraction of readings reported without a signal value.
    pub missing_signal_fraction: f64,
    /// Standard deviation of database position errors per axis, metres.
    pub db_error_m: f64,
}

impl Default for CityConfig {
    fn default() -> Self {
        CityConfig {
            size_m: 3_000.0,
            aps: 4_000,
            path_loss_n: 3.0,
            shadowing_db: 6.0,
            p0_mean_dbm: -40.0,
            p0_sd_db: 4.0,
            detect_dbm: -95.0,
            max_reported: 25,
            moved_fraction: 0.05,
            missing_signal_fraction: 0.10,
            db_error_m: 15.0,
        }
    }
}

/// One simulated access point.
#[derive(Debug, Clone, Copy)]
pub struct Ap {
    /// Where it really is.
    pub truth: LatLon,
    /// Where the database says it is.
    pub db: LatLon,
    /// The database's radius for it, metres.
    pub radius_m: f64,
    /// The database's sample count.
    pub samples: u32,
    /// Its received power at 1 m, dBm.
    pub p0_dbm: f64,
    /// True if the database position is stale (moved AP).
    pub moved: bool,
}

/// A reading of one AP by the device.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    /// Index into [`City::aps`].
    pub ap: usize,
    /// Signal in whole dBm, or `None` when the scanner did not report one.
    pub signal: Option<i32>,
}

/// A device somewhere in the city and what it heard.
#[derive(Debug, Clone)]
pub struct Scan {
    /// Where the device really is.
    pub truth: LatLon,
    /// What it reported, strongest first.
    pub readings: Vec<Reading>,
}

/// The simulated city.
#[derive(Debug, Clone)]
pub struct City {
    /// The configuration it was built with.
    pub config: CityConfig,
    /// South-west corner.
    pub origin: LatLon,
    /// The APs.
    pub aps: Vec<Ap>,
}

impl City {
    /// Builds a city deterministically from `seed`.
    pub fn new(config: CityConfig, seed: u64) -> City {
        let mut rng = Rng::new(seed);
        let origin = LatLon::new(52.50, 13.35).expect("valid origin");
        let aps = (0..config.aps)
            .map(|_| {
                let truth =
                    origin.offset(rng.range(0.0, config.size_m), rng.range(0.0, config.size_m));
                let moved = rng.unit() < config.moved_fraction;
                let db = if moved {
                    let d = rng.range(1_000.0, 5_000.0);
                    let a = rng.range(0.0, std::f64::consts::TAU);
                    truth.offset(d * a.cos(), d * a.sin())
                } else {
                    truth.offset(
                        config.db_error_m * rng.normal(),
                        config.db_error_m * rng.normal(),
                    )
                };
                Ap {
                    truth,
                    db,
                    radius_m: rng.range(15.0, 80.0),
                    samples: 1 + rng.below(30) as u32,
                    p0_dbm: config.p0_mean_dbm + config.p0_sd_db * rng.normal(),
                    moved,
                }
            })
            .collect();
        City {
            config,
            origin,
            aps,
        }
    }

    /// A device at a random point away from the edges, and its scan.
    pub fn scan(&self, rng: &mut Rng) -> Scan {
        let c = &self.config;
        let margin = c.size_m * 0.15;
        let truth = self.origin.offset(
            rng.range(margin, c.size_m - margin),
            rng.range(margin, c.size_m - margin),
        );
        let mut heard: Vec<(usize, f64)> = self
            .aps
            .iter()
            .enumerate()
            .filter_map(|(i, ap)| {
                let d = ap.truth.distance_m(truth).max(1.0);
                if d > 1_500.0 {
                    return None;
                }
                let s =
                    ap.p0_dbm - 10.0 * c.path_loss_n * d.log10() + c.shadowing_db * rng.normal();
                (s >= c.detect_dbm).then_some((i, s))
            })
            .collect();
        heard.sort_by(|a, b| b.1.total_cmp(&a.1));
        heard.truncate(c.max_reported);
        let readings = heard
            .into_iter()
            .map(|(ap, s)| Reading {
                ap,
                signal: (rng.unit() >= c.missing_signal_fraction).then_some(s.round() as i32),
            })
            .collect();
        Scan { truth, readings }
    }
}

/// The seed's method, reproduced: a weighted average of the database positions with weight
/// `signal²` on negative dBm (a missing signal counts as 0, and if the first network has none,
/// all weigh the same). It uses every AP heard and claims a fixed 50 m accuracy.
pub fn seed_signal_squared(city: &City, scan: &Scan) -> Option<LatLon> {
    if scan.readings.is_empty() {
        return None;
    }
    let equal = scan.readings[0].signal.is_none();
    let (mut wl, mut wn, mut total) = (0.0, 0.0, 0.0);
    for r in &scan.readings {
        let w = if equal {
            1.0
        } else {
            f64::from(r.signal.unwrap_or(0)).powi(2)
        };
        let p = city.aps[r.ap].db;
        wl += p.lat * w;
        wn += p.lon * w;
        total += w;
    }
    (total > 0.0).then(|| LatLon {
        lat: wl / total,
        lon: wn / total,
    })
}

/// The seed's claimed WiFi accuracy, metres.
pub const SEED_ACCURACY_M: f64 = 50.0;

/// One simulated cell tower (omnidirectional LTE).
#[derive(Debug, Clone, Copy)]
pub struct Tower {
    /// Where it really is.
    pub truth: LatLon,
    /// Where the database says it is (the centre of where it was measured from).
    pub db: LatLon,
    /// The database's coverage radius, metres.
    pub range_m: f64,
    /// The database's sample count.
    pub samples: u32,
}

/// A device's cell scan: towers heard (index, signal) strongest first, and the serving cell's
/// timing advance.
#[derive(Debug, Clone)]
pub struct CellScan {
    /// Where the device really is.
    pub truth: LatLon,
    /// Towers heard: index into [`CellCity::towers`] and signal in dBm.
    pub heard: Vec<(usize, i32)>,
    /// LTE timing advance of the serving (strongest) cell.
    pub timing_advance: u8,
}

/// A simulated 12 km × 12 km area of LTE towers on a jittered 1.5 km grid. Signals follow the
/// log-distance model with n = 3.5, 20 dBm at 1 m and 6 dB shadowing; towers are heard above
/// −115 dBm and at most 6 are reported. Database positions are off by σ = 250 m per axis, as
/// crowd-sourced cell positions (centres of measurements) are.
#[derive(Debug, Clone)]
pub struct CellCity {
    /// South-west corner.
    pub origin: LatLon,
    /// Area edge, metres.
    pub size_m: f64,
    /// The towers.
    pub towers: Vec<Tower>,
}

impl CellCity {
    /// Builds the area deterministically from `seed`.
    pub fn new(seed: u64) -> CellCity {
        let mut rng = Rng::new(seed);
        let origin = LatLon::new(52.40, 13.20).expect("valid origin");
        let size_m = 12_000.0;
        let spacing = 1_500.0;
        let mut towers = Vec::new();
        let steps = (size_m / spacing) as usize;
        for i in 0..=steps {
            for j in 0..=steps {
                let truth = origin.offset(
                    i as f64 * spacing + rng.range(-400.0, 400.0),
                    j as f64 * spacing + rng.range(-400.0, 400.0),
                );
                towers.push(Tower {
                    truth,
                    db: truth.offset(250.0 * rng.normal(), 250.0 * rng.normal()),
                    range_m: rng.range(1_500.0, 4_000.0),
                    samples: 5 + rng.below(200) as u32,
                });
            }
        }
        CellCity {
            origin,
            size_m,
            towers,
        }
    }

    /// A device at a random point away from the edges, and what it heard.
    pub fn scan(&self, rng: &mut Rng) -> CellScan {
        let m = self.size_m * 0.2;
        let truth = self
            .origin
            .offset(rng.range(m, self.size_m - m), rng.range(m, self.size_m - m));
        let mut heard: Vec<(usize, f64, f64)> = self
            .towers
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                let d = t.truth.distance_m(truth).max(10.0);
                let s = 20.0 - 35.0 * d.log10() + 6.0 * rng.normal();
                (s >= -115.0).then_some((i, s, d))
            })
            .collect();
        heard.sort_by(|a, b| b.1.total_cmp(&a.1));
        heard.truncate(6);
        let timing_advance = heard
            .first()
            .map_or(0, |h| (h.2 / 78.12).floor().min(63.0) as u8);
        CellScan {
            truth,
            heard: heard
                .into_iter()
                .map(|(i, s, _)| (i, s.round() as i32))
                .collect(),
            timing_advance,
        }
    }
}

/// The seed's cell method: a weighted average with weight `signal²` (1 without a signal).
pub fn seed_cells(city: &CellCity, scan: &CellScan) -> Option<LatLon> {
    let (mut wl, mut wn, mut total) = (0.0, 0.0, 0.0);
    for &(i, s) in &scan.heard {
        let w = if s != 0 { f64::from(s).powi(2) } else { 1.0 };
        wl += city.towers[i].db.lat * w;
        wn += city.towers[i].db.lon * w;
        total += w;
    }
    (total > 0.0).then(|| LatLon {
        lat: wl / total,
        lon: wn / total,
    })
}

/// The seed's claimed cell accuracy, metres.
pub const SEED_CELL_ACCURACY_M: f64 = 500.0;
