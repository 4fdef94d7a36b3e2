//! geo-locate hot paths with criterion: offline cell and AP lookups on a generated 1 M-row
//! database, and the estimator on a typical 12-AP scan against the seed's `signal²` average.
//!
//! Run with `cargo bench -p vigil-benches --bench geo_lookup`. The 10 M-row import and lookup
//! figures (targets: ≥ 1 M rows/s, ≤ 32 B per cell, p50 ≤ 5 µs) come from the bounded program
//! `cargo run --release -p vigil-benches --bin geo_db`; the accuracy figures from `geo_accuracy`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use geo_locate::estimate::{BeaconInput, Estimator};
use geo_locate::{GeoDb, ImportOptions, Station};
use vigil_benches::geo::Rng;
use vigil_benches::geo::city::{City, CityConfig, seed_signal_squared};
use vigil_benches::geo::dump::write_dump;

fn lookups(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dump = tmp.path().join("cells.csv");
    let sample = write_dump(&dump, 1_000_000, 1, 101).expect("generate dump");
    let dir = tmp.path().join("db");
    GeoDb::import_file(&dir, &dump, &ImportOptions::default(), &mut |_| {}).expect("import");
    let db = GeoDb::open(&dir).expect("open");
    let mut group = c.benchmark_group("geodb_lookup_1M");
    let mut i = 0usize;
    group.bench_function("cell_hit", |b| {
        b.iter(|| {
            i = (i + 1) % sample.len();
            let (k, psc) = &sample[i];
            black_box(db.cell(black_box(k), *psc).expect("lookup"))
        })
    });
    let mut rng = Rng::new(5);
    group.bench_function("cell_miss", |b| {
        b.iter(|| {
            let mut k = sample[rng.below(sample.len() as u64) as usize].0;
            k.cid = 1 + rng.below(60_000);
            black_box(db.cell(black_box(&k), None).expect("lookup"))
        })
    });
    group.finish();
}

fn estimator(c: &mut Criterion) {
    let city = City::new(CityConfig::default(), 7);
    let mut rng = Rng::new(8);
    let scans: Vec<_> = (0..256).map(|_| city.scan(&mut rng)).collect();
    let inputs: Vec<Vec<BeaconInput>> = scans
        .iter()
        .map(|s| {
            s.readings
                .iter()
                .map(|r| {
                    let ap = &city.aps[r.ap];
                    BeaconInput {
                        position: ap.db,
                        radius_m: Some(ap.radius_m),
                        score: Station {
                            position: ap.db,
                            radius_m: ap.radius_m,
                            samples: ap.samples,
                        }
                        .score(),
                        signal_dbm: r.signal.map(f64::from),
                        age_ms: None,
                    }
                })
                .collect()
        })
        .collect();
    let est = Estimator::default();
    let mut group = c.benchmark_group("wifi_estimate");
    let mut i = 0usize;
    group.bench_function("geo_locate", |b| {
        b.iter(|| {
            i = (i + 1) % inputs.len();
            black_box(est.locate_beacons(black_box(&inputs[i])))
        })
    });
    group.bench_function("seed_signal_squared", |b| {
        b.iter(|| {
            i = (i + 1) % scans.len();
            black_box(seed_signal_squared(&city, black_box(&scans[i])))
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    targets = lookups, estimator
}
criterion_main!(benches);
