//! Randomised cities for the accuracy harness: every city is drawn from a seed, so a run over
//! many seeds cannot be tuned to one of them.
//!
//! A city is a square of streets and access points somewhere on Earth. What the seed draws:
//!
//! | parameter | range |
//! |---|---|
//! | where | latitude ±5..60° (both hemispheres); one city in four straddles the 0° meridian, one in four the 180° meridian, the rest anywhere |
//! | size | 2.0–3.5 km square |
//! | path-loss exponent n | 2.5–3.8 |
//! | shadowing σ | 4–9 dB |
//! | AP density | ×0.3–×3 of 450 APs/km² (log-uniform) |
//! | transmit power | P0 at 1 m −43..−37 dBm per city, ±4 dB per AP |
//! | wardrive coverage | street spacing 80–200 m, 30–100 % of the streets driven, a scan every 10–25 m, GPS accuracy 3–25 m |
//! | movers | 0–5 % of the APs: half relocated 0.6–4 km after the first wardrive, half mobile hotspots seen wherever they travel |
//! | scans without a signal value | 0–15 % of the readings |
//!
//! The wardrive is what a WiGLE user uploads: one CSV row per AP heard at each scan, with the
//! GPS fix, its accuracy and the RSSI. It comes in two parts (70 % and 30 % of the driven
//! streets), imported one after the other, so the learned positions are refined incrementally
//! as the real importer does. Relocated APs move between the two parts.
//!
//! Devices to locate stand anywhere in the city (indoors too, not only on streets) and report
//! the strongest 25 APs they hear above −95 dBm, some without a signal value.

use std::fmt::Write as _;

use geo_locate::LatLon;

use super::Rng;

/// Parameters of one generated city.
#[derive(Debug, Clone)]
pub struct CityParams {
    /// The seed it was drawn from.
    pub seed: u64,
    /// South-west corner.
    pub origin: LatLon,
    /// Which meridian the city straddles, if any.
    pub meridian: Option<&'static str>,
    /// Edge length, metres.
    pub size_m: f64,
    /// Path-loss exponent.
    pub path_loss_n: f64,
    /// Shadowing standard deviation, dB.
    pub shadowing_db: f64,
    /// AP density factor (×1 = 450 APs/km²).
    pub density: f64,
    /// Mean received power at 1 m, dBm.
    pub p0_dbm: f64,
    /// Distance between parallel streets, metres.
    pub street_spacing_m: f64,
    /// Share of streets driven.
    pub coverage: f64,
    /// Distance between two wardrive scans, metres.
    pub scan_step_m: f64,
    /// Share of APs that move (half relocated, half mobile).
    pub movers: f64,
    /// Share of device readings without a signal value.
    pub missing_signal: f64,
}

impl CityParams {
    /// Draws the parameters of city `seed`.
    pub fn draw(seed: u64) -> CityParams {
        let mut rng = Rng::new(seed ^ 0xc17e_5eed);
        let size_m = rng.range(2_000.0, 3_500.0);
        let lat = rng.range(5.0, 60.0) * if rng.unit() < 0.5 { -1.0 } else { 1.0 };
        let m_per_deg_lon = 111_195.0 * f64::to_radians(lat).cos();
        let half_deg = size_m / 2.0 / m_per_deg_lon;
        let (lon, meridian) = match seed % 4 {
            0 => (-half_deg * rng.range(0.3, 1.7), Some("0°")),
            1 => (180.0 - half_deg * rng.range(0.3, 1.7), Some("180°")),
            _ => (rng.range(-179.0, 178.0), None),
        };
        let lon = if lon > 180.0 { lon - 360.0 } else { lon };
        CityParams {
            seed,
            origin: LatLon::new(lat, lon).expect("drawn in range"),
            meridian,
            size_m,
            path_loss_n: rng.range(2.5, 3.8),
            shadowing_db: rng.range(4.0, 9.0),
            density: (rng.range(0.3f64.ln(), 3.0f64.ln())).exp(),
            p0_dbm: rng.range(-43.0, -37.0),
            street_spacing_m: rng.range(80.0, 200.0),
            coverage: rng.range(0.3, 1.0),
            scan_step_m: rng.range(10.0, 25.0),
            movers: rng.range(0.0, 0.05),
            missing_signal: rng.range(0.0, 0.15),
        }
    }

    /// One line describing the city.
    pub fn describe(&self) -> String {
        format!(
            "seed {:>3}: {:>7.3},{:>8.3}{} {:.1} km, n {:.2}, σ {:.1} dB, density ×{:.2}, P0 {:.0} dBm, streets {:.0} m {:.0} % driven, movers {:.1} %",
            self.seed,
            self.origin.lat,
            self.origin.lon,
            self.meridian
                .map(|m| format!(" (across {m})"))
                .unwrap_or_default(),
            self.size_m / 1000.0,
            self.path_loss_n,
            self.shadowing_db,
            self.density,
            self.p0_dbm,
            self.street_spacing_m,
            100.0 * self.coverage,
            100.0 * self.movers,
        )
    }
}

/// How an access point behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Motion {
    /// It stays where it is.
    Fixed,
    /// It moved to `to` (metres in the city frame) between the two wardrive parts.
    Relocated {
        /// New x, metres.
        x: f64,
        /// New y, metres.
        y: f64,
    },
    /// A mobile hotspot: it is wherever its owner is.
    Mobile,
}

/// One access point.
#[derive(Debug, Clone, Copy)]
pub struct CityAp {
    /// Position in the city frame (metres east, north of the origin) at the first wardrive.
    pub x: f64,
    /// See `x`.
    pub y: f64,
    /// Received power at 1 m, dBm.
    pub p0_dbm: f64,
    /// How it moves.
    pub motion: Motion,
}

impl CityAp {
    /// Where it is after the relocation (for fixed and mobile APs: where it was).
    pub fn later(&self) -> (f64, f64) {
        match self.motion {
            Motion::Relocated { x, y } => (x, y),
            _ => (self.x, self.y),
        }
    }
}

/// One WiGLE CSV row: an AP heard from a GPS fix.
#[derive(Debug, Clone, Copy)]
pub struct Sighting {
    /// Index into [`GenCity::aps`].
    pub ap: usize,
    /// The reported fix (with its GPS error).
    pub fix: LatLon,
    /// The fix's reported accuracy, metres.
    pub accuracy_m: f64,
    /// RSSI, whole dBm.
    pub rssi: i32,
}

/// A device's reading of one AP.
#[derive(Debug, Clone, Copy)]
pub struct DeviceReading {
    /// Index into [`GenCity::aps`].
    pub ap: usize,
    /// Signal in whole dBm, `None` when not reported.
    pub signal: Option<i32>,
}

/// A device to locate.
#[derive(Debug, Clone)]
pub struct DeviceScan {
    /// Where it really is.
    pub truth: LatLon,
    /// What it reported, strongest first.
    pub readings: Vec<DeviceReading>,
}

/// A generated city: its APs and both parts of the wardrive.
#[derive(Debug, Clone)]
pub struct GenCity {
    /// The parameters.
    pub params: CityParams,
    /// The access points.
    pub aps: Vec<CityAp>,
    /// The first wardrive (before relocations).
    pub first: Vec<Sighting>,
    /// The second wardrive (after relocations).
    pub second: Vec<Sighting>,
    /// Spatial buckets of AP indices (by their later position) for fast hearing.
    grid: Grid,
    /// The same for the first wardrive (positions before relocation).
    grid_before: Grid,
    /// Indices of the mobile hotspots.
    mobiles: Vec<usize>,
}

#[derive(Debug, Clone)]
struct Grid {
    cell_m: f64,
    cols: usize,
    cells: Vec<Vec<usize>>,
}

impl Grid {
    fn new(size_m: f64, cell_m: f64, points: impl Iterator<Item = (usize, f64, f64)>) -> Grid {
        let cols = (size_m / cell_m).ceil() as usize + 1;
        let mut cells = vec![Vec::new(); cols * cols];
        for (i, x, y) in points {
            let cx = (x / cell_m).floor().clamp(0.0, (cols - 1) as f64) as usize;
            let cy = (y / cell_m).floor().clamp(0.0, (cols - 1) as f64) as usize;
            cells[cy * cols + cx].push(i);
        }
        Grid {
            cell_m,
            cols,
            cells,
        }
    }

    fn near(&self, x: f64, y: f64, r: f64, out: &mut Vec<usize>) {
        out.clear();
        let lo = |v: f64| ((v - r) / self.cell_m).floor().max(0.0) as usize;
        let hi = |v: f64| (((v + r) / self.cell_m).floor().max(0.0) as usize).min(self.cols - 1);
        for cy in lo(y)..=hi(y) {
            for cx in lo(x)..=hi(x) {
                out.extend_from_slice(&self.cells[cy * self.cols + cx]);
            }
        }
    }
}

/// Detection threshold of wardrivers and devices, dBm.
const DETECT_DBM: f64 = -95.0;
/// Devices report at most this many APs (the strongest).
const MAX_REPORTED: usize = 25;

impl GenCity {
    /// Generates city `seed`.
    pub fn new(seed: u64) -> GenCity {
        let params = CityParams::draw(seed);
        let mut rng = Rng::new(seed.wrapping_mul(0x9e37_79b9) ^ 0x5eed);
        let size = params.size_m;
        let count = (450.0 * params.density * size * size / 1e6).round() as usize;
        let aps: Vec<CityAp> = (0..count)
            .map(|_| {
                let (x, y) = (rng.range(0.0, size), rng.range(0.0, size));
                let motion = if rng.unit() < params.movers {
                    if rng.unit() < 0.5 {
                        let d = rng.range(600.0, 4_000.0);
                        let a = rng.range(0.0, std::f64::consts::TAU);
                        Motion::Relocated {
                            x: x + d * a.cos(),
                            y: y + d * a.sin(),
                        }
                    } else {
                        Motion::Mobile
                    }
                } else {
                    Motion::Fixed
                };
                CityAp {
                    x,
                    y,
                    p0_dbm: params.p0_dbm + 4.0 * rng.normal(),
                    motion,
                }
            })
            .collect();
        let fixed = |later: bool| {
            aps.iter().enumerate().filter_map(move |(i, a)| {
                let (x, y) = if later { a.later() } else { (a.x, a.y) };
                (a.motion != Motion::Mobile).then_some((i, x, y))
            })
        };
        let grid = Grid::new(size, 150.0, fixed(true));
        let grid_before = Grid::new(size, 150.0, fixed(false));
        let mobiles = (0..aps.len())
            .filter(|&i| aps[i].motion == Motion::Mobile)
            .collect();
        let mut city = GenCity {
            params,
            aps,
            first: Vec::new(),
            second: Vec::new(),
            grid,
            grid_before,
            mobiles,
        };
        city.wardrive(&mut rng);
        city
    }

    /// The farthest an AP can be heard (2.5 σ of luck, at most 1.5 km).
    fn max_range_m(&self) -> f64 {
        let p = &self.params;
        let margin = p.p0_dbm + 8.0 - DETECT_DBM + 2.5 * p.shadowing_db;
        10f64.powf(margin / (10.0 * p.path_loss_n)).min(1_500.0)
    }

    fn rssi(&self, ap: &CityAp, d: f64, rng: &mut Rng) -> f64 {
        let p = &self.params;
        ap.p0_dbm - 10.0 * p.path_loss_n * d.max(1.0).log10() + p.shadowing_db * rng.normal()
    }

    /// The city-frame point as a position.
    pub fn at(&self, x: f64, y: f64) -> LatLon {
        self.params.origin.offset(x, y)
    }

    fn wardrive(&mut self, rng: &mut Rng) {
        let p = self.params.clone();
        let range = self.max_range_m();
        let mobiles = self.mobiles.clone();
        // Streets in both directions; each driven or not; the first 70 % of the driven ones
        // form the first part.
        let mut streets: Vec<(bool, f64)> = Vec::new();
        let mut s = rng.range(0.0, p.street_spacing_m);
        while s < p.size_m {
            for horizontal in [true, false] {
                if rng.unit() < p.coverage {
                    streets.push((horizontal, s));
                }
            }
            s += p.street_spacing_m;
        }
        // Shuffle (Fisher–Yates) so that both parts cover the whole city.
        for i in (1..streets.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            streets.swap(i, j);
        }
        let split = (streets.len() as f64 * 0.7).round() as usize;
        let mut near = Vec::new();
        for (n, &(horizontal, at)) in streets.iter().enumerate() {
            let later = n >= split;
            let mut t = rng.range(0.0, p.scan_step_m);
            while t < p.size_m {
                let lane = at + rng.range(-6.0, 6.0);
                let (x, y) = if horizontal { (t, lane) } else { (lane, t) };
                t += p.scan_step_m;
                let accuracy = rng.range(3.0, 25.0);
                let fix = self.at(
                    x + accuracy / 2.0 * rng.normal(),
                    y + accuracy / 2.0 * rng.normal(),
                );
                let grid = if later { &self.grid } else { &self.grid_before };
                grid.near(x, y, range, &mut near);
                let mut heard: Vec<(usize, f64)> = Vec::new();
                for &i in &near {
                    let ap = &self.aps[i];
                    let (ax, ay) = if later { ap.later() } else { (ap.x, ap.y) };
                    let d = (ax - x).hypot(ay - y);
                    if d > range {
                        continue;
                    }
                    heard.push((i, self.rssi(ap, d, rng)));
                }
                // A mobile hotspot is near the wardriver now and then (a car alongside, a
                // passer-by), on average on one scan in 300 per hotspot.
                for &i in &mobiles {
                    if rng.unit() < 1.0 / 300.0 {
                        let d = rng.range(3.0, 60.0);
                        heard.push((i, self.rssi(&self.aps[i], d, rng)));
                    }
                }
                let out = if later {
                    &mut self.second
                } else {
                    &mut self.first
                };
                for (ap, s) in heard {
                    if s >= DETECT_DBM {
                        out.push(Sighting {
                            ap,
                            fix,
                            accuracy_m: (accuracy * 10.0).round() / 10.0,
                            rssi: s.round().clamp(-100.0, -10.0) as i32,
                        });
                    }
                }
            }
        }
    }

    /// A device at a random point away from the edges, and what it heard. Mobile hotspots are
    /// near it with the same odds as near a wardriver.
    pub fn device(&self, rng: &mut Rng) -> DeviceScan {
        let p = &self.params;
        let margin = p.size_m * 0.15;
        let (x, y) = (
            rng.range(margin, p.size_m - margin),
            rng.range(margin, p.size_m - margin),
        );
        let range = self.max_range_m();
        let mut near = Vec::new();
        self.grid.near(x, y, range, &mut near);
        let mut heard: Vec<(usize, f64)> = Vec::new();
        for &i in &near {
            let ap = &self.aps[i];
            let (ax, ay) = ap.later();
            let d = (ax - x).hypot(ay - y);
            if d <= range {
                let s = self.rssi(ap, d, rng);
                if s >= DETECT_DBM {
                    heard.push((i, s));
                }
            }
        }
        for &i in &self.mobiles {
            if rng.unit() < 1.0 / 300.0 {
                let s = self.rssi(&self.aps[i], rng.range(3.0, 60.0), rng);
                if s >= DETECT_DBM {
                    heard.push((i, s));
                }
            }
        }
        heard.sort_by(|a, b| b.1.total_cmp(&a.1));
        heard.truncate(MAX_REPORTED);
        let readings = heard
            .into_iter()
            .map(|(ap, s)| DeviceReading {
                ap,
                signal: (rng.unit() >= p.missing_signal).then_some(s.round() as i32),
            })
            .collect();
        DeviceScan {
            truth: self.at(x, y),
            readings,
        }
    }

    /// The BSSID of AP `i`: locally administered (bit 0x02 of the first octet), unique per city
    /// seed and index, and never all-zero or broadcast, which the importers drop.
    pub fn mac(&self, i: usize) -> String {
        let v = 0x0200_0000_0000u64 | ((self.params.seed & 0xff) << 32) | (i as u64 + 1);
        let b = v.to_be_bytes();
        format!(
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[2], b[3], b[4], b[5], b[6], b[7]
        )
    }

    /// A WiGLE 1.6 CSV of `sightings`.
    pub fn wigle_csv(&self, sightings: &[Sighting]) -> String {
        let mut out = String::with_capacity(sightings.len() * 110 + 400);
        out.push_str("WigleWifi-1.6,appRelease=harness,model=sim,release=1,device=sim,display=sim,board=sim,brand=sim,star=Sol,body=3,subBody=0\n");
        out.push_str("MAC,SSID,AuthMode,FirstSeen,Channel,Frequency,RSSI,CurrentLatitude,CurrentLongitude,AltitudeMeters,AccuracyMeters,RCOIs,MfgrId,Type\n");
        for s in sightings {
            let _ = writeln!(
                out,
                "{},net{},[WPA2-PSK-CCMP][ESS],2024-05-01 10:00:00,6,2437,{},{:.7},{:.7},40,{},,,WIFI",
                self.mac(s.ap),
                s.ap,
                s.rssi,
                s.fix.lat,
                s.fix.lon,
                s.accuracy_m
            );
        }
        out
    }
}
