//! WiFi accuracy harness: geo-locate's whole pipeline (WiGLE CSV import that learns AP
//! positions, offline lookups, estimator) against the seed's method, on many randomised cities
//! (see `vigil_benches::geo::cities`), plus the fixed city and the LTE cells of earlier runs.
//!
//! ```text
//! cargo run --release -p vigil-benches --bin geo_accuracy -- [--set report|tuning] [--cities 20] [--scans 1500]
//! cargo run --release -p vigil-benches --bin geo_accuracy -- --fixed   # the fixed city and the cells
//! cargo run --release -p vigil-benches --bin geo_accuracy -- --diagnose  # where the error comes from
//! ```
//!
//! Two sets of seeds: the **tuning** set (seeds 1..) is the one parameters were chosen on; the
//! **report** set (seeds 1001..) is what README quotes. Each city's seed is printed, so any row
//! can be reproduced with `--first-seed S --cities 1`.
//!
//! **The seed's method** has no learning of its own: it takes each AP's position as handed to
//! it (the unweighted mean of the places the AP was heard, what a weight-1 importer stores) and
//! locates a device by the `signal²` weighted average of the APs it hears, claiming 50 m. Both
//! averages are taken in a local metric frame, so the seed is not penalised at the 180°
//! meridian. geo-locate imports the same WiGLE rows through `GeoDb::import_reader` (two
//! imports: the second refines the first) and answers through `GeoDb::known` and
//! `Estimator::locate`. Errors are compared over the scans both methods located.

use std::collections::HashMap;
use std::time::Instant;

use clap::Parser;
use geo_locate::api::WifiAccessPoint;
use geo_locate::estimate::{BeaconInput, CellInput, Estimator, EstimatorConfig};
use geo_locate::store::InputFormat;
use geo_locate::{CellKey, GeoDb, GeolocateRequest, ImportOptions, LatLon, Query, Radio, Station};
use vigil_benches::geo::Rng;
use vigil_benches::geo::cities::{DeviceScan, GenCity};
use vigil_benches::geo::city::{
    CellCity, City, CityConfig, SEED_ACCURACY_M, SEED_CELL_ACCURACY_M, Scan, seed_cells,
    seed_signal_squared,
};

/// Accuracy of geo-locate against the seed's `signal²` method on random cities.
#[derive(Debug, Parser)]
struct Args {
    /// Which seeds: `report` (1001..) or `tuning` (1..).
    #[arg(long, default_value = "report")]
    set: String,
    /// How many cities.
    #[arg(long, default_value_t = 20)]
    cities: u64,
    /// Start at this seed instead of the set's first.
    #[arg(long)]
    first_seed: Option<u64>,
    /// Devices located per city.
    #[arg(long, default_value_t = 1500)]
    scans: usize,
    /// Run the fixed city, the sparse suburb and the LTE cells instead.
    #[arg(long)]
    fixed: bool,
    /// Learning model for WiFi sightings: `p0,n,power` (default: the library's).
    #[arg(long)]
    learn: Option<String>,
    /// Also print diagnostics (slow: about 20 s per city): how many known APs the scans hear,
    /// geo-locate's estimator and the seed's `signal²` on the true AP positions, `signal²` on
    /// geo-locate's learned positions, and the floor: the Bayes posterior mean told the city's
    /// true path-loss exponent, shadowing and power, on the learned and on the true positions.
    #[arg(long)]
    diagnose: bool,
    /// Also score estimator variants (`name:field=value,...`, fields of `EstimatorConfig`:
    /// `n`, `cut`, `max`, `refine`, `prior`), for choosing parameters on the tuning set.
    #[arg(long = "variant")]
    variants: Vec<String>,
}

/// An estimator configuration from `name:field=value,...`.
fn variant(spec: &str) -> anyhow::Result<(String, EstimatorConfig)> {
    let (name, fields) = spec.split_once(':').unwrap_or((spec, ""));
    let mut c = EstimatorConfig::default();
    for kv in fields.split(',').filter(|f| !f.is_empty()) {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("{kv:?} is not field=value"))?;
        match k {
            "n" => c.wifi_path_loss_exponent = v.parse()?,
            "cut" => c.wifi_cluster_m = v.parse()?,
            "max" => c.max_beacons_in_cluster = v.parse()?,
            "refine" => c.refine = v.parse()?,
            "prior" => c.refine_prior_scale = v.parse()?,
            "unc" => c.ap_uncertainty_share = v.parse()?,
            "acc" => c.accuracy_radius_share = v.parse()?,
            "p0" => c.reference_power_dbm = v.parse()?,
            "ml" => c.likelihood = v.parse()?,
            "nlo" => c.exponent_range.0 = v.parse()?,
            "nhi" => c.exponent_range.1 = v.parse()?,
            "psd" => c.reference_power_sd_db = v.parse()?,
            "sh" => c.shadowing_db = v.parse()?,
            "sens" => c.sensitivity_dbm = v.parse()?,
            "pos" => c.position_sigma_share = v.parse()?,
            "rad" => c.likelihood_radius_scale = v.parse()?,
            "margin" => c.search_margin_m = v.parse()?,
            "cp" => c.centroid_prior_share = v.parse()?,
            other => anyhow::bail!("unknown field {other:?}"),
        }
    }
    Ok((name.to_owned(), c))
}

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

    fn inside_share(&self) -> f64 {
        self.inside as f64 / self.errors.len().max(1) as f64
    }
}

fn percentile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// East/north metres of `p` from `o` (wrapping the longitude difference).
fn local_xy(o: LatLon, p: LatLon) -> (f64, f64) {
    let m_per_deg = 111_195.08;
    let mut dlon = p.lon - o.lon;
    if dlon > 180.0 {
        dlon -= 360.0;
    } else if dlon < -180.0 {
        dlon += 360.0;
    }
    (
        dlon * m_per_deg * o.lat.to_radians().cos(),
        (p.lat - o.lat) * m_per_deg,
    )
}

/// The seed's database: the unweighted mean of every sighting of each AP.
fn seed_positions(city: &GenCity) -> HashMap<usize, (f64, f64)> {
    let o = city.params.origin;
    let mut sums: HashMap<usize, (f64, f64, f64)> = HashMap::new();
    for s in city.first.iter().chain(&city.second) {
        let (x, y) = local_xy(o, s.fix);
        let e = sums.entry(s.ap).or_insert((0.0, 0.0, 0.0));
        e.0 += x;
        e.1 += y;
        e.2 += 1.0;
    }
    sums.into_iter()
        .map(|(k, (x, y, n))| (k, (x / n, y / n)))
        .collect()
}

/// The seed's locate: `signal²` weighted average (a missing signal weighs 0; if the first has
/// none, all weigh the same).
fn seed_locate(
    city: &GenCity,
    db: &HashMap<usize, (f64, f64)>,
    scan: &DeviceScan,
) -> Option<LatLon> {
    let known: Vec<_> = scan
        .readings
        .iter()
        .filter_map(|r| db.get(&r.ap).map(|p| (r, *p)))
        .collect();
    let equal = known.first()?.0.signal.is_none();
    let (mut x, mut y, mut total) = (0.0, 0.0, 0.0);
    for (r, p) in &known {
        let w = if equal {
            1.0
        } else {
            f64::from(r.signal.unwrap_or(0)).powi(2)
        };
        x += p.0 * w;
        y += p.1 * w;
        total += w;
    }
    (total > 0.0).then(|| city.at(x / total, y / total))
}

fn request(city: &GenCity, scan: &DeviceScan) -> GeolocateRequest {
    GeolocateRequest {
        wifi_access_points: scan
            .readings
            .iter()
            .map(|r| WifiAccessPoint {
                mac_address: city.mac(r.ap),
                signal_strength: r.signal.map(i64::from),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

struct CityResult {
    seed: u64,
    /// Median error and share inside the radius of each `--variant`.
    variants: Vec<(f64, f64)>,
    ours_median: f64,
    seed_median: f64,
    ours_p95: f64,
    inside: f64,
    located_ours: f64,
    located_seed: f64,
    ap_error_ours: f64,
    ap_error_seed: f64,
    /// With `--diagnose`, the median error over the seed's of the Bayes posterior mean given
    /// the true path-loss model: on the learned positions, and on the true ones (the floor).
    floor: Option<(f64, f64)>,
}

/// Median distance between learned and true positions over fixed APs seen at least once.
fn ap_errors(
    city: &GenCity,
    db: &GeoDb,
    seed_db: &HashMap<usize, (f64, f64)>,
) -> anyhow::Result<(f64, f64)> {
    let mut ours = Vec::new();
    let mut seed = Vec::new();
    for (i, ap) in city.aps.iter().enumerate() {
        if ap.motion != vigil_benches::geo::cities::Motion::Fixed {
            continue;
        }
        let Some(s) = seed_db.get(&i) else { continue };
        let truth = city.at(ap.x, ap.y);
        seed.push(city.at(s.0, s.1).distance_m(truth));
        let mac = geo_locate::MacAddr::parse_station(&city.mac(i))?;
        if let Some(st) = db.wifi(mac)? {
            ours.push(st.position.distance_m(truth));
        }
    }
    Ok((percentile(&mut ours, 0.5), percentile(&mut seed, 0.5)))
}

fn run_city(
    seed: u64,
    scans: usize,
    variants: &[(String, EstimatorConfig)],
    diagnose: bool,
    options: &ImportOptions,
) -> anyhow::Result<CityResult> {
    let city = GenCity::new(seed);
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("geodb");
    for part in [&city.first, &city.second] {
        let csv = city.wigle_csv(part);
        GeoDb::import_reader(
            &dir,
            std::io::Cursor::new(csv.into_bytes()),
            Some(InputFormat::Wigle),
            options,
            &mut |_| {},
        )?;
    }
    let db = GeoDb::open(&dir)?;
    let seed_db = seed_positions(&city);
    let (ap_error_ours, ap_error_seed) = ap_errors(&city, &db, &seed_db)?;
    let est = Estimator::default();
    let mut rng = Rng::new(seed ^ 0x00de_71ce);
    let mut ours = Tally::new("geo-locate");
    let mut theirs = Tally::new("seed");
    let others: Vec<Estimator> = variants
        .iter()
        .map(|(_, c)| Estimator::new(c.clone()))
        .collect();
    let mut tallies: Vec<Tally> = variants.iter().map(|_| Tally::new("variant")).collect();
    let mut oracle = Tally::new("estimator on true positions");
    // The Bayes posterior mean given the true AP positions and the city's true path-loss
    // exponent, mean power at 1 m and shadowing: what no method that only sees the heard APs
    // can beat on average. Each AP's own power (±4 dB around the city's) counts as shadowing.
    let mut bayes = Tally::new("posterior mean, true positions and model");
    // The same on the learned positions, each known to ±0.3 of its radius.
    let mut bayes_learned = Tally::new("posterior mean, learned positions, true model");
    let bayes_est = Estimator::new(EstimatorConfig {
        likelihood: true,
        exponent_range: (city.params.path_loss_n, city.params.path_loss_n),
        reference_power_dbm: city.params.p0_dbm,
        reference_power_sd_db: 0.5,
        shadowing_db: city.params.shadowing_db.hypot(4.0),
        position_sigma_share: 0.0,
        min_beacon_radius_m: 1.0,
        centroid_prior_share: 0.0,
        search_margin_m: 400.0,
        ..EstimatorConfig::default()
    });
    let bayes_learned_est = Estimator::new(EstimatorConfig {
        position_sigma_share: 0.3,
        min_beacon_radius_m: 10.0,
        ..bayes_est.config().clone()
    });
    let mut seed_on_ours = Tally::new("signal² on learned positions");
    let mut seed_on_truth = Tally::new("signal² on true positions");
    // Known APs per located scan.
    let mut heard_known: Vec<f64> = Vec::new();
    for _ in 0..scans {
        let scan = city.device(&mut rng);
        let query = Query::from_request(&request(&city, &scan));
        let known = db.known(&query)?;
        let a = est.locate(&query, &known);
        let b = seed_locate(&city, &seed_db, &scan);
        ours.located += usize::from(a.is_some());
        theirs.located += usize::from(b.is_some());
        if let (Some(a), Some(b)) = (a, b) {
            ours.add(a.position.distance_m(scan.truth), a.accuracy_m);
            theirs.add(b.distance_m(scan.truth), SEED_ACCURACY_M);
            let mut truth = known.clone();
            if diagnose {
                for r in &scan.readings {
                    let mac = geo_locate::MacAddr::parse_station(&city.mac(r.ap))?;
                    let (x, y) = city.aps[r.ap].later();
                    truth.wifi.insert(
                        mac,
                        Station {
                            position: city.at(x, y),
                            radius_m: 50.0,
                            samples: 10,
                        },
                    );
                }
                if let Some(o) = est.locate(&query, &truth) {
                    oracle.add(o.position.distance_m(scan.truth), o.accuracy_m);
                }
                if let Some(o) = bayes_est.locate(&query, &truth) {
                    bayes.add(o.position.distance_m(scan.truth), o.accuracy_m);
                }
                if let Some(o) = bayes_learned_est.locate(&query, &known) {
                    bayes_learned.add(o.position.distance_m(scan.truth), o.accuracy_m);
                }
                let learned: HashMap<usize, (f64, f64)> = scan
                    .readings
                    .iter()
                    .filter_map(|r| {
                        let mac = geo_locate::MacAddr::parse_station(&city.mac(r.ap)).ok()?;
                        let st = known.wifi.get(&mac)?;
                        Some((r.ap, local_xy(city.params.origin, st.position)))
                    })
                    .collect();
                if let Some(p) = seed_locate(&city, &learned, &scan) {
                    seed_on_ours.add(p.distance_m(scan.truth), SEED_ACCURACY_M);
                }
                let true_xy: HashMap<usize, (f64, f64)> = scan
                    .readings
                    .iter()
                    .filter(|r| learned.contains_key(&r.ap))
                    .map(|r| (r.ap, city.aps[r.ap].later()))
                    .collect();
                if let Some(p) = seed_locate(&city, &true_xy, &scan) {
                    seed_on_truth.add(p.distance_m(scan.truth), SEED_ACCURACY_M);
                }
                heard_known.push(learned.len() as f64);
            }
            for (e, t) in others.iter().zip(&mut tallies) {
                // Scored on the same scans (with --diagnose, on the true positions); a variant
                // that finds nothing counts as 1 km off.
                match e.locate(&query, if diagnose { &truth } else { &known }) {
                    Some(v) => t.add(v.position.distance_m(scan.truth), v.accuracy_m),
                    None => t.add(1_000.0, 0.0),
                }
            }
        }
    }
    let mut floor = None;
    if diagnose {
        let seed_median = theirs.median();
        floor = Some((
            bayes_learned.median() / seed_median,
            bayes.median() / seed_median,
        ));
        let few = heard_known.iter().filter(|&&k| k <= 2.0).count() as f64
            / heard_known.len().max(1) as f64;
        println!(
            "|   diagnose: known APs per scan median {:.0}, ≤ 2 in {:.0} %; on true positions: estimator {:.1} m ({:.3}×, {:.1} % inside), signal² {:.1} m ({:.3}×); signal² on learned positions {:.1} m ({:.3}×); posterior mean with the true n, σ, P0 on learned positions {:.1} m ({:.3}×), on true positions (the floor) {:.1} m ({:.3}×, {:.1} % inside) |",
            percentile(&mut heard_known, 0.5),
            100.0 * few,
            oracle.median(),
            oracle.median() / seed_median,
            100.0 * oracle.inside_share(),
            seed_on_truth.median(),
            seed_on_truth.median() / seed_median,
            seed_on_ours.median(),
            seed_on_ours.median() / seed_median,
            bayes_learned.median(),
            bayes_learned.median() / seed_median,
            bayes.median(),
            bayes.median() / seed_median,
            100.0 * bayes.inside_share(),
        );
    }
    let variants = tallies
        .iter_mut()
        .map(|t| (t.median(), t.inside_share()))
        .collect();
    let ours_p95 = percentile(&mut ours.errors.clone(), 0.95);
    Ok(CityResult {
        seed,
        variants,
        ours_median: ours.median(),
        seed_median: theirs.median(),
        ours_p95,
        inside: ours.inside_share(),
        located_ours: ours.located as f64 / scans as f64,
        located_seed: theirs.located as f64 / scans as f64,
        ap_error_ours,
        ap_error_seed,
        floor,
    })
}

fn run_cities(args: &Args) -> anyhow::Result<()> {
    let first = args.first_seed.unwrap_or(match args.set.as_str() {
        "tuning" => 1,
        "report" => 1001,
        other => anyhow::bail!("--set must be report or tuning, not {other:?}"),
    });
    println!(
        "## {} random cities, seeds {first}..{}, {} devices each",
        args.cities,
        first + args.cities - 1,
        args.scans
    );
    let started = Instant::now();
    let variants: Vec<(String, EstimatorConfig)> = args
        .variants
        .iter()
        .map(|v| variant(v))
        .collect::<anyhow::Result<_>>()?;
    let mut options = ImportOptions::default();
    if let Some(spec) = &args.learn {
        let v: Vec<f64> = spec.split(',').map(str::parse).collect::<Result<_, _>>()?;
        anyhow::ensure!(v.len() == 3, "--learn takes p0,n,power");
        options.learning.wifi = geo_locate::learning::SignalModel {
            reference_dbm: v[0],
            path_loss_n: v[1],
            power: v[2],
        };
    }
    let mut results = Vec::new();
    println!(
        "| seed | located ours / seed | median ours m | median seed m | ratio | p95 ours m | in 95 % radius | AP error ours / seed m |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for seed in first..first + args.cities {
        eprintln!(
            "{}",
            vigil_benches::geo::cities::CityParams::draw(seed).describe()
        );
        let r = run_city(seed, args.scans, &variants, args.diagnose, &options)?;
        println!(
            "| {} | {:.0} % / {:.0} % | {:.1} | {:.1} | {:.3} | {:.1} | {:.1} % | {:.1} / {:.1} |",
            r.seed,
            100.0 * r.located_ours,
            100.0 * r.located_seed,
            r.ours_median,
            r.seed_median,
            r.ours_median / r.seed_median,
            r.ours_p95,
            100.0 * r.inside,
            r.ap_error_ours,
            r.ap_error_seed
        );
        for ((name, _), (median, inside)) in variants.iter().zip(&r.variants) {
            println!(
                "|   {name} | | {median:.1} | | {:.3} | | {:.1} % | |",
                median / r.seed_median,
                100.0 * inside
            );
        }
        results.push(r);
    }
    for (i, (name, _)) in variants.iter().enumerate() {
        let mut ratios: Vec<f64> = results
            .iter()
            .map(|r| r.variants[i].0 / r.seed_median)
            .collect();
        let worst = ratios.iter().copied().fold(0.0, f64::max);
        let inside = results
            .iter()
            .map(|r| r.variants[i].1)
            .fold(f64::INFINITY, f64::min);
        println!(
            "variant {name}: median ratio {:.3}, worst {worst:.3}, lowest inside {:.1} %",
            percentile(&mut ratios, 0.5),
            100.0 * inside
        );
    }
    let mut ratios: Vec<f64> = results
        .iter()
        .map(|r| r.ours_median / r.seed_median)
        .collect();
    let worst = results
        .iter()
        .max_by(|a, b| (a.ours_median / a.seed_median).total_cmp(&(b.ours_median / b.seed_median)))
        .map_or(0, |r| r.seed);
    let min_inside = results
        .iter()
        .min_by(|a, b| a.inside.total_cmp(&b.inside))
        .map_or((0, 0.0), |r| (r.seed, r.inside));
    let median_ratio = percentile(&mut ratios, 0.5);
    let worst_ratio = ratios.iter().copied().fold(0.0, f64::max);
    let best_ratio = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "\nmedian-error ratio geo-locate / seed over {} cities: median {median_ratio:.3}, best {best_ratio:.3}, worst {worst_ratio:.3} (seed {worst}; target ≤ 0.6 on every city)",
        results.len()
    );
    println!(
        "truths inside the 95 % radius: lowest {:.1} % (seed {}; target ≥ 90 % on every city)",
        100.0 * min_inside.1,
        min_inside.0
    );
    let floors: Vec<(u64, f64, f64)> = results
        .iter()
        .filter_map(|r| r.floor.map(|(l, t)| (r.seed, l, t)))
        .collect();
    if !floors.is_empty() {
        let worst = |pick: fn(&(u64, f64, f64)) -> f64| {
            floors
                .iter()
                .max_by(|a, b| pick(a).total_cmp(&pick(b)))
                .map_or((0, f64::NAN), |f| (f.0, pick(f)))
        };
        let (ls, lv) = worst(|f| f.1);
        let (ts, tv) = worst(|f| f.2);
        println!(
            "Bayes posterior mean told each city's true n, σ and P0, median error over the seed's: worst {lv:.3} on the learned positions (seed {ls}), worst {tv:.3} on the true positions (seed {ts}) (the posterior mean has the least mean squared error of any estimator that sees only the heard APs)"
        );
    }
    println!("({:.0} s)", started.elapsed().as_secs_f64());
    Ok(())
}

// ---- The fixed city of earlier runs (database positions given, not learned) and the cells.

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

fn print_tallies(trials: usize, tallies: &mut [&mut Tally]) {
    println!(
        "| {:<46} | {:>7} | {:>8} | {:>8} | {:>13} |",
        "method", "located", "median m", "p95 m", "in 95% radius"
    );
    for t in tallies.iter_mut() {
        let median = t.median();
        let p95 = percentile(&mut t.errors, 0.95);
        println!(
            "| {:<46} | {:>6.1}% | {:>8.1} | {:>8.1} | {:>12.1}% |",
            t.name,
            100.0 * t.located as f64 / trials as f64,
            median,
            p95,
            100.0 * t.inside_share()
        );
    }
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
    let with_wls = Estimator::new(EstimatorConfig {
        refine: true,
        ..Default::default()
    });
    let mut rng = Rng::new(99);
    let mut t_ours = Tally::new("geo-locate (1 km clusters, 10^(s/30) weights)");
    let mut t_centroid = Tally::new("geo-locate with the WLS refinement");
    let mut t_seed = Tally::new("seed: signal² weighted average");
    for _ in 0..trials {
        let scan = city.scan(&mut rng);
        let inp = inputs(&city, &scan);
        let a = ours.locate_beacons(&inp);
        let b = with_wls.locate_beacons(&inp);
        let s = seed_signal_squared(&city, &scan);
        t_ours.located += usize::from(a.is_some());
        t_centroid.located += usize::from(b.is_some());
        t_seed.located += usize::from(s.is_some());
        if let (Some(a), Some(b), Some(s)) = (a, b, s) {
            t_ours.add(a.position.distance_m(scan.truth), a.accuracy_m);
            t_centroid.add(b.position.distance_m(scan.truth), b.accuracy_m);
            t_seed.add(s.distance_m(scan.truth), SEED_ACCURACY_M);
        }
    }
    let seed_median = t_seed.median();
    let ours_median = t_ours.median();
    print_tallies(trials, &mut [&mut t_ours, &mut t_centroid, &mut t_seed]);
    println!(
        "median error geo-locate / seed = {:.3}; truths inside the 95 % radius: {:.1} %",
        ours_median / seed_median,
        100.0 * t_ours.inside_share()
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
    let seed_median = seed.median();
    let ours_median = ours.median();
    print_tallies(trials, &mut [&mut ours, &mut seed]);
    println!(
        "median error geo-locate / seed = {:.3}",
        ours_median / seed_median
    );
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.fixed {
        let trials = 5_000;
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
        return Ok(());
    }
    run_cities(&args)
}
