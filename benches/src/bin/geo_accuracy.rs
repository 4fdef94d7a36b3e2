//! WiFi accuracy harness: geo-locate's estimator against the seed's `signal²` weighted average
//! on the same simulated city (log-distance path loss, 6 dB shadowing, moved APs, missing
//! signals; see `vigil_benches::geo::city`).
//!
//! ```text
//! cargo run --release -p vigil-benches --bin geo_accuracy [-- TRIALS]
//! ```
//!
//! Reports, per method, the share of scans located, the median and 95th-percentile error and
//! the share of truths inside the reported 95 % radius, over the scans both methods located.

use geo_locate::Station;
use geo_locate::estimate::CellInput;
use geo_locate::estimate::{BeaconInput, Estimator, EstimatorConfig};
use geo_locate::{CellKey, Radio};
use vigil_benches::geo::Rng;
use vigil_benches::geo::city::{
    CellCity, City, CityConfig, SEED_ACCURACY_M, SEED_CELL_ACCURACY_M, Scan, seed_cells,
    seed_signal_squared,
};

struct Tally {
    name: &'static str,
    located: usize,
    errors: Vec<f64>,
    inside: usize,
}

impl Tally {
    fn new(name: &'static str) -> Self {
        Tally {
            name,
            located: 0,
            errors: Vec::new(),
            inside: 0,
        }
    }

    fn add(&mut self, err: f64, radius: f64) {
        self.errors.push(err);
        if err <= radius {
            self.inside += 1;
        }
    }

    fn median(&mut self) -> f64 {
        percentile(&mut self.errors, 0.5)
    }
}

fn percentile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn inputs(city: &City, scan: &Scan) -> Vec<BeaconInput> {
    scan.readings
        .iter()
        .map(|r| {
            let ap = &city.aps[r.ap];
            let station = Station {
                position: ap.db,
                radius_m: ap.radius_m,
                samples: ap.samples,
            };
            BeaconInput {
                position: ap.db,
                radius_m: Some(ap.radius_m),
                score: station.score(),
                signal_dbm: r.signal.map(f64::from),
                age_ms: None,
            }
        })
        .collect()
}

fn run_scenario(name: &str, config: CityConfig, trials: usize) {
    let city = City::new(config, 2024);
    let moved = city.aps.iter().filter(|a| a.moved).count();
    println!(
        "\n## {name}: {} APs over {:.1} km², {moved} moved; n = {}, σ = {} dB; {trials} scans",
        city.aps.len(),
        city.config.size_m * city.config.size_m / 1e6,
        city.config.path_loss_n,
        city.config.shadowing_db
    );
    let ours = Estimator::default();
    let centroid_only = Estimator::new(EstimatorConfig {
        refine: false,
        ..Default::default()
    });
    let mut rng = Rng::new(99);
    let mut t_ours = Tally::new("geo-locate (clusters, 10^(s/30) weights, WLS)");
    let mut t_centroid = Tally::new("geo-locate without WLS (weighted centroid)");
    let mut t_seed = Tally::new("seed: signal² weighted average");
    let mut heard = 0usize;
    let mut all = 0usize;
    for _ in 0..trials {
        let scan = city.scan(&mut rng);
        heard += scan.readings.len();
        let inp = inputs(&city, &scan);
        let a = ours.locate_beacons(&inp);
        let b = centroid_only.locate_beacons(&inp);
        let s = seed_signal_squared(&city, &scan);
        t_ours.located += usize::from(a.is_some());
        t_centroid.located += usize::from(b.is_some());
        t_seed.located += usize::from(s.is_some());
        if let (Some(a), Some(b), Some(s)) = (a, b, s) {
            all += 1;
            t_ours.add(a.position.distance_m(scan.truth), a.accuracy_m);
            t_centroid.add(b.position.distance_m(scan.truth), b.accuracy_m);
            t_seed.add(s.distance_m(scan.truth), SEED_ACCURACY_M);
        }
    }
    println!(
        "mean APs reported per scan: {:.1}; scans located by every method: {all}",
        heard as f64 / trials as f64
    );
    println!(
        "| {:<46} | {:>7} | {:>8} | {:>8} | {:>13} |",
        "method", "located", "median m", "p95 m", "in 95% radius"
    );
    let seed_median = t_seed.median();
    for t in [&mut t_ours, &mut t_centroid, &mut t_seed] {
        let median = t.median();
        let p95 = percentile(&mut t.errors, 0.95);
        println!(
            "| {:<46} | {:>6.1}% | {:>8.1} | {:>8.1} | {:>12.1}% |",
            t.name,
            100.0 * t.located as f64 / trials as f64,
            median,
            p95,
            100.0 * t.inside as f64 / t.errors.len().max(1) as f64
        );
    }
    let ours_median = t_ours.median();
    println!(
        "median error geo-locate / seed = {:.3} (target ≤ 0.5); truths inside the 95 % radius: {:.1} % (target ≥ 90 %)",
        ours_median / seed_median,
        100.0 * t_ours.inside as f64 / t_ours.errors.len().max(1) as f64
    );
}

fn run_cells(trials: usize) {
    let city = CellCity::new(11);
    println!(
        "\n## cells: {} LTE towers over {:.0} km², n = 3.5, σ = 6 dB, database positions off by σ = 250 m; {trials} scans",
        city.towers.len(),
        city.size_m * city.size_m / 1e6
    );
    let est = Estimator::default();
    let mut rng = Rng::new(3);
    let mut ours = Tally::new("geo-locate (10^(s/35)/radius weights, TA bound)");
    let mut seed = Tally::new("seed: signal² weighted average");
    for _ in 0..trials {
        let scan = city.scan(&mut rng);
        let inputs: Vec<CellInput> = scan
            .heard
            .iter()
            .enumerate()
            .map(|(n, &(i, s))| {
                let t = &city.towers[i];
                CellInput {
                    key: CellKey {
                        radio: Radio::Lte,
                        mcc: 262,
                        mnc: 1,
                        lac: 1,
                        cid: i as u64 + 1,
                    },
                    position: t.db,
                    radius_m: Some(t.range_m),
                    score: f64::from(t.samples).log2().clamp(0.5, 10.0),
                    signal_dbm: Some(f64::from(s)),
                    // Only the serving cell reports a timing advance.
                    timing_advance: (n == 0).then_some(scan.timing_advance),
                }
            })
            .collect();
        let a = est.locate_cells(&inputs).into_iter().next();
        let b = seed_cells(&city, &scan);
        ours.located += usize::from(a.is_some());
        seed.located += usize::from(b.is_some());
        if let (Some(a), Some(b)) = (a, b) {
            ours.add(a.position.distance_m(scan.truth), a.accuracy_m);
            seed.add(b.distance_m(scan.truth), SEED_CELL_ACCURACY_M);
        }
    }
    println!(
        "| {:<46} | {:>7} | {:>8} | {:>8} | {:>13} |",
        "method", "located", "median m", "p95 m", "in 95% radius"
    );
    let seed_median = seed.median();
    for t in [&mut ours, &mut seed] {
        let median = t.median();
        let p95 = percentile(&mut t.errors, 0.95);
        println!(
            "| {:<46} | {:>6.1}% | {:>8.1} | {:>8.1} | {:>12.1}% |",
            t.name,
            100.0 * t.located as f64 / trials as f64,
            median,
            p95,
            100.0 * t.inside as f64 / t.errors.len().max(1) as f64
        );
    }
    println!(
        "median error geo-locate / seed = {:.3}",
        ours.median() / seed_median
    );
}

fn main() -> anyhow::Result<()> {
    let trials: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(5_000);
    run_scenario("dense city", CityConfig::default(), trials);
    run_scenario(
        "sparse suburb",
        CityConfig {
            aps: 800,
            shadowing_db: 8.0,
            ..CityConfig::default()
        },
        trials,
    );
    run_cells(trials);
    Ok(())
}
