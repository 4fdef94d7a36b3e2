//! Position estimation from known transmitter positions: the part that must be right.
//!
//! The estimator works on positions the caller supplies ([`BeaconInput`], [`CellInput`],
//! [`AreaInput`]) and needs no database. The pipeline follows Ichnaea with its known bugs fixed:
//!
//! 1. **Clustering.** WiFi (and BLE) transmitters are grouped by complete linkage: two APs share
//!    a cluster only if *every* pair in it is within 1 km (BLE 100 m; Ichnaea's 500 m split what
//!    a device hears where WiFi carries far, see [`EstimatorConfig::wifi_cluster_m`]). Clusters of fewer than two
//!    APs are dropped (privacy: one AP never locates anyone), so a moved AP ends in a cluster of
//!    its own and cannot drag the answer. The cluster with the largest total score wins.
//! 2. **Weights rise with signal.** `w = q · 10^(s / (10·n))`, the inverse of the range that the
//!    log-distance model predicts (n = 3 for WiFi, 3.5 for cells), with `s` clamped to
//!    −100..−30 dBm and a per-radio default when missing. `q` is the station's score divided by
//!    its radius. The seed's `s²` on negative dBm, which gives weak, far APs the most weight, is
//!    never used: a −40 dBm AP outweighs a −95 dBm one by 10^(55/30) ≈ 68×.
//! 3. **Weighted centroid**, of the strongest 20 APs. An optional refinement (off by default,
//!    [`EstimatorConfig::refine`]): a Levenberg–Marquardt fit minimises `Σ wᵢ (‖x − aᵢ‖ − k·d̂ᵢ)²` over the log-distance ranges
//!    `d̂ᵢ` (a common scale `k` is fitted too, so the unknown transmit power cancels) plus a
//!    Gaussian prior toward the centroid. The fit is kept only if it converges, lowers the cost
//!    and stays near the anchors; otherwise the centroid stands. With 6 dB shadowing ranges are
//!    too noisy to trust alone, and the fit must assume a path-loss exponent: on the
//!    `geo_accuracy` harness's random cities it made most answers worse.
//!
//!    A second option, also off by default ([`EstimatorConfig::likelihood`]): the mean of the
//!    posterior over position under the log-distance model (module `likelihood`), with the
//!    query's power at 1 m integrated out under a Gaussian prior, the path-loss exponent summed
//!    over a range, each AP's position uncertainty added to its reading's variance (a poorly
//!    known AP counts less) and a reading without a signal counting as "heard above −95 dBm".
//!    Told a city's true exponent, shadowing and power, it is the Bayes estimator the harness
//!    uses as the floor (below). Not told them, it lost to the centroid on the tuning cities
//!    (median ratio to the seed 2.2× with an exponent range of 2–4.5, 1.1× with a Gaussian
//!    prior toward the centroid, against the centroid's 0.84×): a handful of weak readings fits
//!    a device far from every AP as well as one among them once the exponent may be low, and
//!    the centroid's "the device is among the APs it hears" is worth more than the ranges.
//! 4. **Accuracy** is a calibrated 95 % radius: 2.45 × the standard error of the weighted mean
//!    (`√(Σ wᵢ² (dᵢ² + rᵢ²)) / Σ wᵢ`, dᵢ the distance from the estimate to AP i and rᵢ its
//!    radius, standing for the uncertainty of a learned position, with Bessel's correction over
//!    the effective sample size), clamped to 10..500 m (BLE 10..50 m). The `geo_accuracy`
//!    harness in `benches/` checks how many truths fall inside it on every city.
//! 5. **Cells.** One estimate per area (radio, MCC, MNC, LAC). A timing advance bounds the range
//!    to `(TA + 1) · step` (GSM 553.5 m, LTE/NR 78.12 m). Accuracy is clamped to 1..50 km. When
//!    no cell is known the area itself answers with `fallback: "lacf"` and 50..500 km.
//! 6. **Hybrid.** Results whose centres lie within 1.5× either accuracy are grouped; the group
//!    with the highest total score wins and its most precise member is returned. Disagreeing
//!    fixes are never averaged.
//!
//! # Where the WiFi error comes from
//!
//! `cargo run --release -p vigil-benches --bin geo_accuracy -- --diagnose` splits each random
//! city's error. On the report cities (seeds 1001–1020; nothing was chosen on them), the median
//! error as a share of the seed's (`signal²` on the plain mean of sightings):
//!
//! | | best city | worst city |
//! |---|---|---|
//! | this estimator on the learned positions (what users get) | 0.53× | 0.97× (1020) |
//! | this estimator on the true AP positions | 0.24× | 0.79× (1003) |
//! | the Bayes posterior mean told the true exponent, shadowing and power, learned positions | 0.49× | 0.88× (1010) |
//! | the same on the true positions: the floor | 0.13× | 0.59× (1020) |
//!
//! So the learned AP positions, not the weighting, hold the answer back: a wardrive sees an AP
//! only from the streets, and one street cannot tell which side the AP is on, so its learned
//! position sits off by about its distance to the street. In the sparse cities, where most
//! scans hear one to three known APs (1007, 1017, 1020), even the floor is at 0.57–0.59×, and
//! on the learned positions the estimator told the true model is at 0.81–0.87×: the issue's
//! ≤ 0.6× on every city is not reachable by estimation. The floor sees only the APs a
//! device heard; APs nearby that it did not hear carry information no estimator here uses.

use std::collections::HashMap;

use crate::api::FallbackKind;
use crate::cell::{AreaKey, CellKey};
use crate::geo::{Frame, LatLon};
use crate::mac::MacAddr;
use crate::query::Query;

/// A transmitter whose position is known: what a source (database, cache, WiGLE, OpenCellID)
/// returns for a MAC, a cell or an area.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Station {
    /// Estimated position.
    pub position: LatLon,
    /// How far from `position` it has been observed, in metres (0 when unknown).
    pub radius_m: f64,
    /// How many observations the position rests on (0 when unknown).
    pub samples: u32,
}

impl Station {
    /// The quality score: `clamp(log2(samples), 0.5, 10)`, or 1 when the sample count is
    /// unknown (Ichnaea's sample weight).
    pub fn score(&self) -> f64 {
        if self.samples == 0 {
            1.0
        } else {
            f64::from(self.samples).log2().clamp(0.5, 10.0)
        }
    }
}

/// One WiFi AP or BLE beacon for [`Estimator::locate_beacons`]: where it is and what was heard.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BeaconInput {
    /// Known position of the transmitter.
    pub position: LatLon,
    /// Known radius of the transmitter's observations, metres (`None` if unknown).
    pub radius_m: Option<f64>,
    /// Quality score of the position (1.0 when unknown; see [`Station::score`]).
    pub score: f64,
    /// Signal heard by the device being located, dBm.
    pub signal_dbm: Option<f64>,
    /// Milliseconds since it was heard.
    pub age_ms: Option<i64>,
}

/// One cell for [`Estimator::locate_cells`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellInput {
    /// The cell's key (cells are grouped by its area).
    pub key: CellKey,
    /// Known position of the cell (its coverage centre).
    pub position: LatLon,
    /// Coverage radius in metres (`None` if unknown).
    pub radius_m: Option<f64>,
    /// Quality score (see [`Station::score`]).
    pub score: f64,
    /// Signal heard, dBm.
    pub signal_dbm: Option<f64>,
    /// Timing advance reported by the device.
    pub timing_advance: Option<u8>,
}

/// One location area for the LAC fallback.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AreaInput {
    /// The area.
    pub key: AreaKey,
    /// Centre of its cells.
    pub position: LatLon,
    /// Radius covering its cells, metres.
    pub radius_m: f64,
    /// How many cells it has.
    pub cells: u32,
}

/// What kind of evidence produced an [`Estimate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EstimateKind {
    /// A WiFi cluster.
    Wifi,
    /// A Bluetooth cluster.
    Ble,
    /// Cells of one area.
    Cell,
    /// A whole location area (the `lacf` fallback).
    Area,
    /// The caller's IP address (the `ipf` fallback).
    Ip,
}

/// A position with its 95 % radius and how well it is supported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The position.
    pub position: LatLon,
    /// Radius of the 95 % confidence circle, metres.
    pub accuracy_m: f64,
    /// Total score of the stations used (Ichnaea: ≥ 1 is a satisfying answer).
    pub score: f64,
    /// The kind of evidence.
    pub kind: EstimateKind,
    /// How many stations were used.
    pub used: usize,
    /// Set for fallback answers.
    pub fallback: Option<FallbackKind>,
}

impl Estimate {
    /// Ichnaea's "good enough" test: score ≥ 1 and an accuracy of at most 500 m (WiFi/BLE
    /// class). When the best estimate satisfies, no paid or quota-limited source need be asked.
    pub fn is_precise(&self) -> bool {
        self.score >= 1.0 && self.accuracy_m <= 500.0 && self.fallback.is_none()
    }

    /// The API response for this estimate.
    pub fn to_response(&self) -> crate::GeolocateResponse {
        crate::GeolocateResponse::new(
            self.position.lat,
            self.position.lon,
            self.accuracy_m,
            self.fallback,
        )
    }
}

/// Tunables of the estimator. Every default is documented and follows DESIGN.md §4.
#[derive(Debug, Clone, PartialEq)]
pub struct EstimatorConfig {
    /// Path-loss exponent for WiFi/BLE weights and ranges. Default 3.0.
    pub wifi_path_loss_exponent: f64,
    /// Path-loss exponent for cell weights. Default 3.5.
    pub cell_path_loss_exponent: f64,
    /// Complete-linkage cut for WiFi clusters, metres. Default 1 000: Ichnaea's 500 m split
    /// the APs a device hears in cities where WiFi carries far (path-loss exponent 2.5–2.8),
    /// and the `geo_accuracy` harness's tuning cities lost 5–25 % of accuracy to it; a moved
    /// AP is still cut off (they move by kilometres).
    pub wifi_cluster_m: f64,
    /// Complete-linkage cut for BLE clusters, metres. Default 100.
    pub ble_cluster_m: f64,
    /// The strongest this many APs of a cluster are used. Default 20.
    pub max_beacons_in_cluster: usize,
    /// Signal assumed for a WiFi/BLE reading without one, dBm. Default −80.
    pub default_wifi_signal_dbm: f64,
    /// Radius assumed for a beacon whose radius is unknown, metres. Default 50.
    pub default_beacon_radius_m: f64,
    /// Radius below which a beacon's radius no longer raises its weight, metres. Default 10.
    pub min_beacon_radius_m: f64,
    /// Signal at 1 m used to turn dBm into a range for the least-squares fit. Default −40 dBm.
    /// Only the ratio between ranges matters much, because a common scale is fitted too.
    pub reference_power_dbm: f64,
    /// Whether to refine the centroid by weighted least squares. Default false: on the
    /// harness's random cities (path-loss exponent 2.5–3.8, learned AP positions) the range
    /// fit, which must assume an exponent, made the median error worse on most cities (up to
    /// ×1.3); it helped only on the fixed city whose exponent it was tuned on.
    pub refine: bool,
    /// Strength of the refinement's pull toward the centroid: the prior's σ as a share of the
    /// APs' weighted RMS distance from the centroid (0 = no prior, larger = weaker pull).
    /// Default 0.1: on the `geo_accuracy` simulated city (σ = 6 dB) an unconstrained range fit
    /// (0) was worse than the centroid (median 33 m against 28 m) and 0.1 was the best tried.
    pub refine_prior_scale: f64,
    /// Radius assumed for a cell whose radius is unknown, metres. Default 5 000.
    pub default_cell_radius_m: f64,
    /// How uncertain a learned AP position is, as a share of its radius (the extent of its
    /// sightings). With a value above 0, a beacon weighs `score / (σ² + d̂²)`: σ this share of
    /// its radius, d̂ the range its signal implies. 0 keeps `q · 10^(s/(10·n))`.
    pub ap_uncertainty_share: f64,
    /// Share of each beacon's radius counted as uncertainty of its position in the 95 %
    /// radius: the standard error sums `w²·(dᵢ² + (share·rᵢ)²)`. Default 1: learned AP
    /// positions are off by about the distance from the AP to the street it was seen from,
    /// and the radius (the farthest sighting) tracks that; without it 65–75 % of truths fell
    /// inside the radius on the harness's tuning cities, with it 93–100 %.
    pub accuracy_radius_share: f64,
    /// Whether WiFi clusters are located by the posterior mean of the log-distance model
    /// (module `likelihood`, see the module docs) instead of the weighted centroid. Default
    /// false: not told the path-loss exponent and power, it lost to the centroid on every
    /// measure of the `geo_accuracy` tuning cities. The fields below configure it; the harness
    /// sets them to each city's true values for its floor.
    pub likelihood: bool,
    /// Range of the path-loss exponent the posterior sums over (uniform prior). Default
    /// 2.0..4.5, the span the literature gives for outdoor-to-indoor WiFi.
    pub exponent_range: (f64, f64),
    /// Standard deviation of the prior on the query's power at 1 m (whose mean is
    /// [`EstimatorConfig::reference_power_dbm`]), dB. Default 6.
    pub reference_power_sd_db: f64,
    /// Shadowing assumed by the posterior, dB (the spread of a reading around the model,
    /// including each AP's own transmit power). Default 8.
    pub shadowing_db: f64,
    /// Weakest signal a device reports, dBm: a reading without a signal value says the AP
    /// was heard above it. Default −95.
    pub sensitivity_dbm: f64,
    /// Uncertainty of a learned AP position for the posterior, as a share of its radius (at
    /// least [`EstimatorConfig::min_beacon_radius_m`]). Default 0.3.
    pub position_sigma_share: f64,
    /// The posterior's 95 % radius is multiplied by this before clamping. Default 1.
    pub likelihood_radius_scale: f64,
    /// How far beyond the APs' box the posterior looks, metres. Default 200.
    pub search_margin_m: f64,
    /// σ of the posterior's Gaussian prior on position around the weighted centroid, as a
    /// share of the APs' weighted RMS distance from it (0: a flat prior over the box).
    pub centroid_prior_share: f64,
}

impl Default for EstimatorConfig {
    fn default() -> Self {
        EstimatorConfig {
            wifi_path_loss_exponent: 3.0,
            cell_path_loss_exponent: 3.5,
            wifi_cluster_m: 1_000.0,
            ble_cluster_m: 100.0,
            max_beacons_in_cluster: 20,
            default_wifi_signal_dbm: -80.0,
            default_beacon_radius_m: 50.0,
            min_beacon_radius_m: 10.0,
            reference_power_dbm: -40.0,
            refine: false,
            refine_prior_scale: 0.1,
            ap_uncertainty_share: 0.0,
            accuracy_radius_share: 1.0,
            default_cell_radius_m: 5_000.0,
            likelihood: false,
            exponent_range: (2.0, 4.5),
            reference_power_sd_db: 6.0,
            shadowing_db: 8.0,
            sensitivity_dbm: -95.0,
            position_sigma_share: 0.3,
            likelihood_radius_scale: 1.0,
            search_margin_m: 200.0,
            centroid_prior_share: 0.0,
        }
    }
}

/// WiFi accuracy bounds, metres.
const WIFI_ACCURACY: (f64, f64) = (10.0, 500.0);
/// BLE accuracy bounds, metres.
const BLE_ACCURACY: (f64, f64) = (10.0, 50.0);
/// Cell accuracy bounds, metres.
const CELL_ACCURACY: (f64, f64) = (1_000.0, 50_000.0);
/// Area (LAC fallback) accuracy bounds, metres.
const AREA_ACCURACY: (f64, f64) = (50_000.0, 500_000.0);
/// Radius of a 95 % circle in units of a 2-D Gaussian's per-axis σ: √(−2·ln 0.05).
const RADIUS_95_2D: f64 = 2.447_746_830_680_816;
/// Never consider more than this many beacons for clustering (complete linkage is O(n³)).
const MAX_BEACONS_CLUSTERED: usize = 100;

/// Clamps a signal to the range where the log-distance model is meaningful.
fn clamp_signal(s: f64) -> f64 {
    s.clamp(-100.0, -30.0)
}

/// The inverse-range signal weight `10^(s / (10·n))` (with `s` clamped to −100..−30 dBm).
///
/// ```
/// use geo_locate::estimate::signal_weight;
/// let ratio = signal_weight(-40.0, 3.0) / signal_weight(-95.0, 3.0);
/// assert!((ratio - 68.1).abs() < 0.1);
/// ```
pub fn signal_weight(signal_dbm: f64, path_loss_exponent: f64) -> f64 {
    10f64.powf(clamp_signal(signal_dbm) / (10.0 * path_loss_exponent))
}

/// Ichnaea's age factor: readings older than 2 s count less.
fn age_factor(age_ms: Option<i64>) -> f64 {
    let age = age_ms.map_or(0, i64::abs).max(1000) as f64;
    (2000.0 / age).sqrt().min(1.0)
}

/// Linear-interpolated percentile (numpy's default) of unsorted values; `q` in 0..=1.
fn percentile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let pos = q * (values.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    values[lo] + (values[hi] - values[lo]) * (pos - lo as f64)
}

/// Complete-linkage agglomerative clustering with a distance cut. Returns clusters of indices.
fn complete_linkage(points: &[LatLon], cut_m: f64) -> Vec<Vec<usize>> {
    let n = points.len();
    let mut clusters: Vec<Vec<usize>> = (0..n).map(|i| vec![i]).collect();
    // dist[i][j] between clusters i and j; updated by max (Lance–Williams for complete linkage).
    let mut dist = vec![vec![0.0f64; n]; n];
    for i in 0..n {
        for j in (i + 1)..n {
            let d = points[i].distance_m(points[j]);
            dist[i][j] = d;
            dist[j][i] = d;
        }
    }
    let mut alive = vec![true; n];
    loop {
        let mut best: Option<(usize, usize, f64)> = None;
        for i in 0..n {
            if !alive[i] {
                continue;
            }
            for j in (i + 1)..n {
                if alive[j] && dist[i][j] <= cut_m && best.is_none_or(|(_, _, d)| dist[i][j] < d) {
                    best = Some((i, j, dist[i][j]));
                }
            }
        }
        let Some((i, j, _)) = best else { break };
        let moved = std::mem::take(&mut clusters[j]);
        clusters[i].extend(moved);
        alive[j] = false;
        for k in 0..n {
            if alive[k] && k != i {
                let d = dist[i][k].max(dist[j][k]);
                dist[i][k] = d;
                dist[k][i] = d;
            }
        }
    }
    clusters.into_iter().filter(|c| !c.is_empty()).collect()
}

/// The weighted centroid of points in a local frame.
fn centroid(xy: &[(f64, f64)], w: &[f64]) -> (f64, f64) {
    let total: f64 = w.iter().sum();
    let x = xy.iter().zip(w).map(|(p, w)| p.0 * w).sum::<f64>() / total;
    let y = xy.iter().zip(w).map(|(p, w)| p.1 * w).sum::<f64>() / total;
    (x, y)
}

/// Weighted range least squares with a common range scale `k`:
/// minimise `Σ wᵢ (‖x − aᵢ‖ − k·d̂ᵢ)²` by Levenberg–Marquardt.
///
/// A first pass fixes `k = 1` (the configured reference power) and starts from the centroid; a
/// second pass, with at least four anchors, also fits `ln k` from there, so that an unknown
/// transmit power cancels. Starting the joint fit from the centroid directly can fall into the
/// degenerate minimum `k → 0` near the centroid. Returns the point with the lowest cost and its
/// scale, or `None` when no pass converges to something better than the start.
fn refine_ranges(
    anchors: &[(f64, f64)],
    ranges: &[f64],
    weights: &[f64],
    start: (f64, f64),
    prior_sigma_m: f64,
) -> Option<((f64, f64), f64)> {
    if anchors.len() < 3 {
        return None;
    }
    let prior = Prior {
        centre: start,
        weight: if prior_sigma_m > 0.0 {
            1.0 / (prior_sigma_m * prior_sigma_m)
        } else {
            0.0
        },
    };
    let fit = Fit {
        anchors,
        ranges,
        weights,
        prior,
    };
    let fixed = fit.lm(start, 0.0, false);
    let from = fixed.map_or(start, |f| f.0);
    let joint = if anchors.len() >= 4 {
        fit.lm(from, 0.0, true)
    } else {
        None
    };
    let best = match (fixed, joint) {
        (Some(f), Some(j)) => {
            if j.2 < f.2 {
                j
            } else {
                f
            }
        }
        (f, j) => f.or(j)?,
    };
    let start_cost = fit.cost(start, 1.0);
    (best.2 <= start_cost).then_some((best.0, best.1.exp()))
}

/// A Gaussian prior on the position, centred on the weighted centroid: it keeps the range fit
/// from running away on noisy ranges (shadowing of 6 dB is a ×1.6 range error at n = 3).
#[derive(Debug, Clone, Copy)]
struct Prior {
    centre: (f64, f64),
    /// 1/σ², 0 for none.
    weight: f64,
}

struct Fit<'a> {
    anchors: &'a [(f64, f64)],
    ranges: &'a [f64],
    weights: &'a [f64],
    prior: Prior,
}

impl Fit<'_> {
    fn cost(&self, p: (f64, f64), k: f64) -> f64 {
        let c = self.prior.centre;
        range_cost(self.anchors, self.ranges, self.weights, p, k)
            + self.prior.weight * ((p.0 - c.0).powi(2) + (p.1 - c.1).powi(2))
    }

    fn lm(&self, start: (f64, f64), lk0: f64, fit_scale: bool) -> Option<((f64, f64), f64, f64)> {
        lm_fit(self, start, lk0, fit_scale)
    }
}

fn range_cost(
    anchors: &[(f64, f64)],
    ranges: &[f64],
    weights: &[f64],
    p: (f64, f64),
    k: f64,
) -> f64 {
    anchors
        .iter()
        .zip(ranges)
        .zip(weights)
        .map(|((a, d), w)| {
            let r = (p.0 - a.0).hypot(p.1 - a.1) - k * d;
            w * r * r
        })
        .sum()
}

/// One Levenberg–Marquardt run over `(x, y)` or `(x, y, ln k)`. Returns the point, `ln k` and
/// the final cost when it converges.
fn lm_fit(
    fit: &Fit<'_>,
    start: (f64, f64),
    lk0: f64,
    fit_scale: bool,
) -> Option<((f64, f64), f64, f64)> {
    let (anchors, ranges, weights) = (fit.anchors, fit.ranges, fit.weights);
    let n = anchors.len();
    let mut p = start;
    let mut lk = lk0;
    let mut current = fit.cost(p, lk.exp());
    let mut lambda = 1e-3;
    let mut converged = false;
    for _ in 0..50 {
        // Normal equations (JᵀWJ + λ·diag) δ = JᵀW r for the parameters (x, y, ln k).
        let mut jtj = [[0.0f64; 3]; 3];
        let mut jtr = [0.0f64; 3];
        let k = lk.exp();
        for i in 0..n {
            let dx = p.0 - anchors[i].0;
            let dy = p.1 - anchors[i].1;
            let d = dx.hypot(dy).max(1e-3);
            let r = d - k * ranges[i];
            let j = [dx / d, dy / d, if fit_scale { -k * ranges[i] } else { 0.0 }];
            for a in 0..3 {
                jtr[a] += weights[i] * j[a] * r;
                for b in 0..3 {
                    jtj[a][b] += weights[i] * j[a] * j[b];
                }
            }
        }
        let pw = fit.prior.weight;
        jtj[0][0] += pw;
        jtj[1][1] += pw;
        jtr[0] += pw * (p.0 - fit.prior.centre.0);
        jtr[1] += pw * (p.1 - fit.prior.centre.1);
        let dim = if fit_scale { 3 } else { 2 };
        let mut improved = false;
        for _ in 0..10 {
            let mut m = jtj;
            for (a, row) in m.iter_mut().enumerate().take(dim) {
                row[a] *= 1.0 + lambda;
                row[a] += 1e-12;
            }
            let delta = solve(&m, &jtr, dim)?;
            let cand = (p.0 - delta[0], p.1 - delta[1]);
            let cand_lk = if fit_scale {
                (lk - delta[2]).clamp(-5.0, 5.0)
            } else {
                lk
            };
            let c = fit.cost(cand, cand_lk.exp());
            if c.is_finite() && c < current {
                let step = delta[0].hypot(delta[1]);
                let rel = (current - c) / current.max(1e-300);
                p = cand;
                lk = cand_lk;
                current = c;
                lambda = (lambda / 10.0).max(1e-9);
                improved = true;
                if step < 0.01 || rel < 1e-10 {
                    converged = true;
                }
                break;
            }
            lambda *= 10.0;
        }
        if !improved {
            // No descent direction left: at a minimum.
            converged = true;
        }
        if converged {
            break;
        }
    }
    (converged && p.0.is_finite() && p.1.is_finite()).then_some((p, lk, current))
}

/// Solves a `dim`×`dim` system (dim 2 or 3) by Gaussian elimination with partial pivoting.
fn solve(m: &[[f64; 3]; 3], b: &[f64; 3], dim: usize) -> Option<[f64; 3]> {
    let mut a = *m;
    let mut x = *b;
    for col in 0..dim {
        let pivot = (col..dim).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-15 {
            return None;
        }
        a.swap(col, pivot);
        x.swap(col, pivot);
        for row in (col + 1)..dim {
            let f = a[row][col] / a[col][col];
            let pivot_row = a[col];
            for (dst, src) in a[row][col..dim].iter_mut().zip(&pivot_row[col..dim]) {
                *dst -= f * src;
            }
            x[row] -= f * x[col];
        }
    }
    let mut out = [0.0; 3];
    for row in (0..dim).rev() {
        let s: f64 = ((row + 1)..dim).map(|c| a[row][c] * out[c]).sum();
        out[row] = (x[row] - s) / a[row][row];
    }
    out[..dim].iter().all(|v| v.is_finite()).then_some(out)
}

/// The known stations for a query, as returned by the sources.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// WiFi APs by MAC.
    pub wifi: HashMap<MacAddr, Station>,
    /// Bluetooth beacons by MAC.
    pub ble: HashMap<MacAddr, Station>,
    /// Cells by key.
    pub cells: HashMap<CellKey, Station>,
    /// Areas by key (used for the LAC fallback).
    pub areas: HashMap<AreaKey, Station>,
}

/// The position estimator. Cheap to clone; holds only its configuration.
#[derive(Debug, Clone, Default)]
pub struct Estimator {
    config: EstimatorConfig,
}

impl Estimator {
    /// An estimator with the given configuration.
    pub fn new(config: EstimatorConfig) -> Self {
        Estimator { config }
    }

    /// The configuration.
    pub fn config(&self) -> &EstimatorConfig {
        &self.config
    }

    fn beacon_weight(&self, b: &BeaconInput) -> f64 {
        let radius = b
            .radius_m
            .filter(|r| r.is_finite() && *r > 0.0)
            .unwrap_or(self.config.default_beacon_radius_m)
            .max(self.config.min_beacon_radius_m);
        let s = b.signal_dbm.unwrap_or(self.config.default_wifi_signal_dbm);
        if self.config.ap_uncertainty_share > 0.0 {
            let sigma =
                (radius * self.config.ap_uncertainty_share).max(self.config.min_beacon_radius_m);
            let d = 10f64.powf(
                (self.config.reference_power_dbm - clamp_signal(s))
                    / (10.0 * self.config.wifi_path_loss_exponent),
            );
            return b.score.max(0.0) / (sigma * sigma + d * d) * age_factor(b.age_ms);
        }
        let q = b.score.max(0.0) / radius;
        q * signal_weight(s, self.config.wifi_path_loss_exponent) * age_factor(b.age_ms)
    }

    /// Every WiFi cluster of at least two APs, each as an estimate (best first).
    pub fn wifi_clusters(&self, beacons: &[BeaconInput]) -> Vec<Estimate> {
        self.clusters(
            beacons,
            self.config.wifi_cluster_m,
            WIFI_ACCURACY,
            EstimateKind::Wifi,
        )
    }

    /// Locates from WiFi APs with known positions: the best cluster's estimate, or `None` when
    /// no cluster has two APs.
    pub fn locate_beacons(&self, beacons: &[BeaconInput]) -> Option<Estimate> {
        self.wifi_clusters(beacons).into_iter().next()
    }

    /// Locates from Bluetooth beacons (100 m clusters, accuracy 10..50 m).
    pub fn locate_ble(&self, beacons: &[BeaconInput]) -> Option<Estimate> {
        self.clusters(
            beacons,
            self.config.ble_cluster_m,
            BLE_ACCURACY,
            EstimateKind::Ble,
        )
        .into_iter()
        .next()
    }

    fn clusters(
        &self,
        beacons: &[BeaconInput],
        cut_m: f64,
        bounds: (f64, f64),
        kind: EstimateKind,
    ) -> Vec<Estimate> {
        let mut items: Vec<(BeaconInput, f64)> = beacons
            .iter()
            .filter(|b| b.score > 0.0)
            .map(|b| (*b, self.beacon_weight(b)))
            .filter(|(_, w)| w.is_finite() && *w > 0.0)
            .collect();
        if items.len() < 2 {
            return Vec::new();
        }
        items.sort_by(|a, b| b.1.total_cmp(&a.1));
        items.truncate(MAX_BEACONS_CLUSTERED);
        let points: Vec<LatLon> = items.iter().map(|(b, _)| b.position).collect();
        let mut out: Vec<Estimate> = complete_linkage(&points, cut_m)
            .into_iter()
            .filter(|c| c.len() >= 2)
            .filter_map(|mut c| {
                // Strongest first (Ichnaea kept the weakest 20 by mistake).
                c.sort_by(|&a, &b| items[b].1.total_cmp(&items[a].1));
                c.truncate(self.config.max_beacons_in_cluster);
                let members: Vec<(BeaconInput, f64)> = c.iter().map(|&i| items[i]).collect();
                self.cluster_estimate(&members, bounds, kind)
            })
            .collect();
        out.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(b.used.cmp(&a.used))
                .then(a.accuracy_m.total_cmp(&b.accuracy_m))
        });
        out
    }

    fn cluster_estimate(
        &self,
        members: &[(BeaconInput, f64)],
        bounds: (f64, f64),
        kind: EstimateKind,
    ) -> Option<Estimate> {
        let frame = Frame::new(members[0].0.position);
        let xy: Vec<(f64, f64)> = members
            .iter()
            .map(|(b, _)| frame.to_xy(b.position))
            .collect();
        let w: Vec<f64> = members.iter().map(|(_, w)| *w).collect();
        let mut p = centroid(&xy, &w);
        if self.config.refine {
            let n = self.config.wifi_path_loss_exponent;
            let ranges: Vec<f64> = members
                .iter()
                .map(|(b, _)| {
                    let s =
                        clamp_signal(b.signal_dbm.unwrap_or(self.config.default_wifi_signal_dbm));
                    10f64
                        .powf((self.config.reference_power_dbm - s) / (10.0 * n))
                        .max(1.0)
                })
                .collect();
            // σᵢ ∝ d̂ᵢ (range error grows with range), so the fit weight is 1/d̂ᵢ²; readings
            // without a signal carry little information about range.
            let fit_w: Vec<f64> = members
                .iter()
                .zip(&ranges)
                .map(|((b, _), d)| {
                    let conf = if b.signal_dbm.is_some() { 1.0 } else { 0.1 };
                    conf * b.score.max(0.1) / (d * d)
                })
                .collect();
            // The prior's σ: a share of the weighted RMS distance of the APs from the centroid.
            let spread = (xy
                .iter()
                .zip(&w)
                .map(|(a, w)| w * ((a.0 - p.0).powi(2) + (a.1 - p.1).powi(2)))
                .sum::<f64>()
                / w.iter().sum::<f64>())
            .sqrt()
            .max(1.0);
            let refined = refine_ranges(
                &xy,
                &ranges,
                &fit_w,
                p,
                self.config.refine_prior_scale * spread,
            );
            if let Some((r, k)) = refined {
                // Keep the fit only near the anchors: within the cluster's box grown by the
                // largest anchor radius or twice the shortest fitted range (at most half the
                // cluster cut), never a wild extrapolation.
                let (mut minx, mut maxx, mut miny, mut maxy) =
                    (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
                for &(x, y) in &xy {
                    minx = minx.min(x);
                    maxx = maxx.max(x);
                    miny = miny.min(y);
                    maxy = maxy.max(y);
                }
                let margin = members
                    .iter()
                    .map(|(b, _)| b.radius_m.unwrap_or(self.config.default_beacon_radius_m))
                    .fold(self.config.default_beacon_radius_m, f64::max)
                    .max(
                        (2.0 * k * ranges.iter().copied().fold(f64::INFINITY, f64::min)).min(250.0),
                    );
                if r.0 >= minx - margin
                    && r.0 <= maxx + margin
                    && r.1 >= miny - margin
                    && r.1 <= maxy + margin
                {
                    p = r;
                }
            }
        }
        if self.config.likelihood
            && kind == EstimateKind::Wifi
            && let Some(e) = self.likelihood_estimate(members, &frame, &xy, &w, p, bounds)
        {
            return Some(e);
        }
        let position = frame.to_latlon(p.0, p.1);
        // The standard error of a weighted mean whose inputs scatter around the device by their
        // distance from it, with Bessel's small-sample correction over Kish's effective sample
        // size n_eff = (Σw)²/Σw², times 2.45 for a 95 % circle in 2-D. On the simulated city this
        // holds 98 % of truths (91 % in the sparse suburb); Ichnaea's p95 distance to the APs
        // held 99.8 % with radii 2.4× larger, which is safe but not informative.
        let total_w: f64 = w.iter().sum();
        let n_eff = total_w * total_w / w.iter().map(|x| x * x).sum::<f64>();
        let bessel = (n_eff / (n_eff - 1.0).max(0.25)).sqrt();
        let spread = bessel
            * members
                .iter()
                .zip(&w)
                .map(|((b, _), w)| {
                    let r = b.radius_m.unwrap_or(self.config.default_beacon_radius_m)
                        * self.config.accuracy_radius_share;
                    w * w * (b.position.distance_m(position).powi(2) + r * r)
                })
                .sum::<f64>()
                .sqrt()
            / total_w;
        let accuracy = (RADIUS_95_2D * spread).clamp(bounds.0, bounds.1);
        Some(Estimate {
            position,
            accuracy_m: accuracy,
            score: members.iter().map(|(b, _)| b.score).sum(),
            kind,
            used: members.len(),
            fallback: None,
        })
    }

    /// The posterior-mean fix of a WiFi cluster (module `likelihood`), `None` on numeric failure.
    fn likelihood_estimate(
        &self,
        members: &[(BeaconInput, f64)],
        frame: &Frame,
        xy: &[(f64, f64)],
        w: &[f64],
        centre: (f64, f64),
        bounds: (f64, f64),
    ) -> Option<Estimate> {
        let c = &self.config;
        let spread = (xy
            .iter()
            .zip(w)
            .map(|(a, w)| w * ((a.0 - centre.0).powi(2) + (a.1 - centre.1).powi(2)))
            .sum::<f64>()
            / w.iter().sum::<f64>())
        .sqrt()
        .max(c.min_beacon_radius_m);
        let anchors: Vec<likelihood::Anchor> = members
            .iter()
            .zip(xy)
            .map(|((b, _), &xy)| {
                let radius = b
                    .radius_m
                    .filter(|r| r.is_finite() && *r > 0.0)
                    .unwrap_or(c.default_beacon_radius_m);
                likelihood::Anchor {
                    xy,
                    signal: b.signal_dbm.map(clamp_signal),
                    sigma_m: (c.position_sigma_share * radius).max(c.min_beacon_radius_m),
                }
            })
            .collect();
        let model = likelihood::Model {
            exponent_lo: c.exponent_range.0,
            exponent_hi: c.exponent_range.1,
            power_mean_dbm: c.reference_power_dbm,
            power_sd_db: c.reference_power_sd_db,
            shadowing_db: c.shadowing_db,
            sensitivity_dbm: c.sensitivity_dbm,
            margin_m: c.search_margin_m,
            prior_centre: centre,
            prior_sigma_m: if c.centroid_prior_share > 0.0 {
                c.centroid_prior_share * spread
            } else {
                f64::INFINITY
            },
        };
        let post = model.posterior(&anchors)?;
        Some(Estimate {
            position: frame.to_latlon(post.mean.0, post.mean.1),
            accuracy_m: (c.likelihood_radius_scale * post.radius95_m).clamp(bounds.0, bounds.1),
            score: members.iter().map(|(b, _)| b.score).sum(),
            kind: EstimateKind::Wifi,
            used: members.len(),
            fallback: None,
        })
    }

    /// Locates from cells with known positions: one estimate per area (radio, MCC, MNC, LAC),
    /// best first.
    pub fn locate_cells(&self, cells: &[CellInput]) -> Vec<Estimate> {
        let mut by_area: HashMap<AreaKey, Vec<&CellInput>> = HashMap::new();
        for c in cells {
            by_area.entry(c.key.area()).or_default().push(c);
        }
        let mut areas: Vec<(AreaKey, Vec<&CellInput>)> = by_area.into_iter().collect();
        areas.sort_by_key(|(k, _)| *k);
        let mut out: Vec<Estimate> = areas
            .into_iter()
            .filter_map(|(_, cells)| self.cell_estimate(&cells))
            .collect();
        out.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(a.accuracy_m.total_cmp(&b.accuracy_m))
        });
        out
    }

    /// The effective radius of a cell: its coverage radius, bounded by the timing advance.
    fn cell_radius(&self, c: &CellInput) -> f64 {
        let mut r = c
            .radius_m
            .filter(|r| r.is_finite() && *r > 0.0)
            .unwrap_or(self.config.default_cell_radius_m);
        if let (Some(ta), Some(step)) = (c.timing_advance, c.key.radio.timing_advance_step()) {
            r = r.min((f64::from(ta) + 1.0) * step);
        }
        r.max(50.0)
    }

    fn cell_estimate(&self, cells: &[&CellInput]) -> Option<Estimate> {
        if cells.is_empty() {
            return None;
        }
        let radii: Vec<f64> = cells.iter().map(|c| self.cell_radius(c)).collect();
        let w: Vec<f64> = cells
            .iter()
            .zip(&radii)
            .map(|(c, r)| {
                let s = c.signal_dbm.unwrap_or(c.key.radio.default_signal());
                c.score.max(0.01) / r * signal_weight(s, self.config.cell_path_loss_exponent)
            })
            .collect();
        let frame = Frame::new(cells[0].position);
        let xy: Vec<(f64, f64)> = cells.iter().map(|c| frame.to_xy(c.position)).collect();
        let (x, y) = centroid(&xy, &w);
        let position = frame.to_latlon(x, y);
        let dist: Vec<f64> = cells
            .iter()
            .map(|c| c.position.distance_m(position))
            .collect();
        // The device is within rᵢ of every cell i, so within dᵢ + rᵢ of the estimate.
        let bound = dist
            .iter()
            .zip(&radii)
            .map(|(d, r)| d + r)
            .fold(f64::INFINITY, f64::min);
        let total_w: f64 = w.iter().sum();
        let weighted_radius = radii.iter().zip(&w).map(|(r, w)| r * w).sum::<f64>() / total_w;
        let mut d = dist.clone();
        let p95 = percentile(&mut d, 0.95);
        let accuracy = p95
            .max(weighted_radius)
            .min(bound)
            .clamp(CELL_ACCURACY.0, CELL_ACCURACY.1);
        Some(Estimate {
            position,
            accuracy_m: accuracy,
            score: cells.iter().map(|c| c.score).sum(),
            kind: EstimateKind::Cell,
            used: cells.len(),
            fallback: None,
        })
    }

    /// The LAC fallback: one estimate per known area, accuracy 50..500 km, `fallback: "lacf"`.
    pub fn locate_areas(&self, areas: &[AreaInput]) -> Vec<Estimate> {
        let mut out: Vec<Estimate> = areas
            .iter()
            .map(|a| Estimate {
                position: a.position,
                accuracy_m: a.radius_m.clamp(AREA_ACCURACY.0, AREA_ACCURACY.1),
                score: f64::from(a.cells.max(1)).sqrt().min(10.0),
                kind: EstimateKind::Area,
                used: 1,
                fallback: Some(FallbackKind::Lacf),
            })
            .collect();
        out.sort_by(|a, b| b.score.total_cmp(&a.score));
        out
    }

    /// Ichnaea's hybrid rule: group results whose centres are within 1.5× either accuracy of
    /// the group's first (most precise) member, take the group with the highest total score
    /// (ties: highest single score) and return its most precise member.
    pub fn combine(&self, results: &[Estimate]) -> Option<Estimate> {
        let mut sorted: Vec<Estimate> = results.to_vec();
        sorted.sort_by(|a, b| a.accuracy_m.total_cmp(&b.accuracy_m));
        let mut groups: Vec<Vec<Estimate>> = Vec::new();
        for r in sorted {
            let home = groups.iter_mut().find(|g| {
                let first = g[0];
                first.position.distance_m(r.position)
                    <= (1.5 * first.accuracy_m).max(1.5 * r.accuracy_m)
            });
            match home {
                Some(g) => g.push(r),
                None => groups.push(vec![r]),
            }
        }
        let key = |g: &Vec<Estimate>| {
            (
                g.iter().map(|e| e.score).sum::<f64>(),
                g.iter().map(|e| e.score).fold(0.0, f64::max),
            )
        };
        groups
            .into_iter()
            .max_by(|a, b| {
                let (ka, kb) = (key(a), key(b));
                ka.0.total_cmp(&kb.0).then(ka.1.total_cmp(&kb.1))
            })
            .map(|g| g[0])
    }

    /// The whole pipeline for a validated query and the stations the sources found:
    /// BLE, WiFi and cell estimates, the LAC fallback when no cell is known, then
    /// [`Estimator::combine`].
    pub fn locate(&self, query: &Query, known: &Known) -> Option<Estimate> {
        let mut results = Vec::new();
        let beacons = |readings: &[crate::query::BeaconReading],
                       table: &HashMap<MacAddr, Station>| {
            readings
                .iter()
                .filter_map(|r| {
                    table.get(&r.mac).map(|s| BeaconInput {
                        position: s.position,
                        radius_m: (s.radius_m > 0.0).then_some(s.radius_m),
                        score: s.score(),
                        signal_dbm: r.signal.map(f64::from),
                        age_ms: r.age_ms,
                    })
                })
                .collect::<Vec<_>>()
        };
        results.extend(self.locate_ble(&beacons(&query.ble, &known.ble)));
        results.extend(self.locate_beacons(&beacons(&query.wifi, &known.wifi)));
        let cells: Vec<CellInput> = query
            .cells
            .iter()
            .filter_map(|c| {
                known.cells.get(&c.key).map(|s| CellInput {
                    key: c.key,
                    position: s.position,
                    radius_m: (s.radius_m > 0.0).then_some(s.radius_m),
                    score: s.score(),
                    signal_dbm: c.signal.map(f64::from),
                    timing_advance: c.timing_advance,
                })
            })
            .collect();
        let cell_results = self.locate_cells(&cells);
        if cell_results.is_empty() && query.lacf {
            let mut seen = Vec::new();
            let areas: Vec<AreaInput> = query
                .cells
                .iter()
                .filter_map(|c| {
                    let k = c.key.area();
                    if seen.contains(&k) {
                        return None;
                    }
                    seen.push(k);
                    known.areas.get(&k).map(|s| AreaInput {
                        key: k,
                        position: s.position,
                        radius_m: s.radius_m,
                        cells: s.samples,
                    })
                })
                .collect();
            results.extend(self.locate_areas(&areas));
        }
        results.extend(cell_results);
        self.combine(&results)
    }
}

impl CellInput {
    /// A cell input with unknown radius, score 1 and no signal or timing advance.
    pub fn at(key: CellKey, position: LatLon) -> Self {
        CellInput {
            key,
            position,
            radius_m: None,
            score: 1.0,
            signal_dbm: None,
            timing_advance: None,
        }
    }
}

impl BeaconInput {
    /// A beacon input with unknown radius, score 1 and the given signal.
    pub fn at(position: LatLon, signal_dbm: Option<f64>) -> Self {
        BeaconInput {
            position,
            radius_m: None,
            score: 1.0,
            signal_dbm,
            age_ms: None,
        }
    }
}

mod likelihood;

#[cfg(test)]
mod tests;
