use super::*;
use crate::cell::Radio;

fn origin() -> LatLon {
    LatLon::new(52.52, 13.405).unwrap()
}

/// Signal of an AP at `d` metres under the log-distance model (P0 −40 dBm, n 3), no noise.
fn rssi(d: f64) -> f64 {
    -40.0 - 30.0 * d.max(1.0).log10()
}

#[test]
fn weight_rises_with_signal_and_is_pinned_at_68x() {
    let n = 3.0;
    let mut prev = 0.0;
    for s in (-100..=-30).step_by(5) {
        let w = signal_weight(f64::from(s), n);
        assert!(w > prev, "weight must rise with signal at {s}");
        prev = w;
    }
    let ratio = signal_weight(-40.0, n) / signal_weight(-95.0, n);
    assert!((ratio - 68.13).abs() < 0.05, "{ratio}");
    // Clamped outside −100..−30.
    assert_eq!(signal_weight(-120.0, n), signal_weight(-100.0, n));
    assert_eq!(signal_weight(-5.0, n), signal_weight(-30.0, n));
}

#[test]
fn strong_near_ap_pulls_harder_than_weak_far_one() {
    // The seed's s² bug would put this fix next to the weak AP.
    let est = Estimator::new(EstimatorConfig {
        refine: false,
        ..Default::default()
    });
    let near = origin();
    let far = origin().offset(300.0, 0.0);
    let e = est
        .locate_beacons(&[
            BeaconInput::at(near, Some(-40.0)),
            BeaconInput::at(far, Some(-95.0)),
        ])
        .unwrap();
    assert!(e.position.distance_m(near) < 10.0, "{e:?}");
}

#[test]
fn one_ap_or_two_far_apart_never_locate() {
    let est = Estimator::default();
    assert!(
        est.locate_beacons(&[BeaconInput::at(origin(), Some(-50.0))])
            .is_none()
    );
    let a = BeaconInput::at(origin(), Some(-50.0));
    let b = BeaconInput::at(origin().offset(1_100.0, 0.0), Some(-50.0));
    assert!(est.locate_beacons(&[a, b]).is_none());
}

#[test]
fn moved_ap_cannot_drag_the_answer() {
    let truth = origin();
    let mut aps: Vec<BeaconInput> = [(40.0, 10.0), (-30.0, 25.0), (5.0, -45.0), (-20.0, -20.0)]
        .iter()
        .map(|&(x, y)| {
            let p = truth.offset(x, y);
            BeaconInput::at(p, Some(rssi(p.distance_m(truth))))
        })
        .collect();
    // This AP moved 3 km; the database still has its old home, and it is heard loudly.
    aps.push(BeaconInput::at(truth.offset(3_000.0, 0.0), Some(-35.0)));
    let e = Estimator::default().locate_beacons(&aps).unwrap();
    assert_eq!(e.used, 4);
    assert!(e.position.distance_m(truth) < 30.0, "{e:?}");
    assert!(e.accuracy_m >= 10.0 && e.accuracy_m <= 500.0);
}

#[test]
fn complete_linkage_splits_chains() {
    // A chain of points 400 m apart: single linkage would join them all, complete linkage
    // keeps pairs whose every member is within 500 m.
    let pts: Vec<LatLon> = (0..4)
        .map(|i| origin().offset(400.0 * f64::from(i), 0.0))
        .collect();
    let clusters = complete_linkage(&pts, 500.0);
    assert!(clusters.iter().all(|c| c.len() <= 2), "{clusters:?}");
    assert_eq!(clusters.iter().map(Vec::len).sum::<usize>(), 4);
}

#[test]
fn least_squares_refines_beyond_the_centroid() {
    // Device outside the APs' hull: a centroid cannot get there, ranges can.
    let truth = origin().offset(-30.0, 0.0);
    let aps: Vec<BeaconInput> = [
        (0.0, 0.0),
        (20.0, 15.0),
        (20.0, -15.0),
        (40.0, 0.0),
        (10.0, 25.0),
    ]
    .iter()
    .map(|&(x, y)| {
        let p = origin().offset(x, y);
        // A different transmit power from the configured reference: the fitted scale absorbs it.
        BeaconInput::at(p, Some(rssi(p.distance_m(truth)) + 6.0))
    })
    .collect();
    let plain = Estimator::new(EstimatorConfig {
        refine: false,
        ..Default::default()
    })
    .locate_beacons(&aps)
    .unwrap();
    // Noise-free ranges: without the prior toward the centroid the fit lands on the truth.
    let refined = Estimator::new(EstimatorConfig {
        refine: true,
        refine_prior_scale: 0.0,
        ..Default::default()
    })
    .locate_beacons(&aps)
    .unwrap();
    let (e_plain, e_ref) = (
        plain.position.distance_m(truth),
        refined.position.distance_m(truth),
    );
    assert!(e_ref < 2.0, "refined error {e_ref}, centroid {e_plain}");
    assert!(e_plain > 15.0, "centroid error {e_plain}");
    assert!(refined.accuracy_m >= e_ref);
    // The default prior keeps the answer between the two: noisy ranges may only nudge it.
    let default = Estimator::new(EstimatorConfig {
        refine: true,
        ..Default::default()
    })
    .locate_beacons(&aps)
    .unwrap();
    let e_def = default.position.distance_m(truth);
    assert!(e_def <= e_plain + 1e-6, "{e_def} vs {e_plain}");
}

#[test]
fn refinement_falls_back_on_too_few_anchors() {
    let a = BeaconInput::at(origin(), Some(-50.0));
    let b = BeaconInput::at(origin().offset(100.0, 0.0), Some(-50.0));
    let e = Estimator::default().locate_beacons(&[a, b]).unwrap();
    // Equal weights, no fit with 2 anchors: the midpoint.
    assert!(
        e.position.distance_m(origin().offset(50.0, 0.0)) < 0.5,
        "{e:?}"
    );
}

fn key(radio: Radio, lac: u32, cid: u64) -> CellKey {
    CellKey {
        radio,
        mcc: 262,
        mnc: 1,
        lac,
        cid,
    }
}

#[test]
fn timing_advance_bounds_cell_accuracy() {
    let est = Estimator::default();
    let mut c = CellInput::at(key(Radio::Gsm, 7, 100), origin());
    c.radius_m = Some(10_000.0);
    let without = est.locate_cells(&[c])[0];
    assert!((without.accuracy_m - 10_000.0).abs() < 1.0);
    c.timing_advance = Some(2);
    let with = est.locate_cells(&[c])[0];
    assert!((with.accuracy_m - 1_660.5).abs() < 1.0, "{with:?}");
    c.timing_advance = Some(0);
    assert_eq!(est.locate_cells(&[c])[0].accuracy_m, 1_000.0);
}

#[test]
fn cells_group_by_area_and_lean_to_the_strong_one() {
    let est = Estimator::default();
    let mut a = CellInput::at(key(Radio::Lte, 7, 1), origin());
    a.signal_dbm = Some(-70.0);
    a.radius_m = Some(2_000.0);
    let mut b = CellInput::at(key(Radio::Lte, 7, 2), origin().offset(3_000.0, 0.0));
    b.signal_dbm = Some(-110.0);
    b.radius_m = Some(2_000.0);
    let other = CellInput::at(key(Radio::Lte, 8, 3), origin().offset(0.0, 40_000.0));
    let r = est.locate_cells(&[a, b, other]);
    assert_eq!(r.len(), 2);
    let same_area = r.iter().find(|e| e.used == 2).unwrap();
    assert!(
        same_area.position.distance_m(origin()) < 1_000.0,
        "{same_area:?}"
    );
    assert!(same_area.accuracy_m >= 1_000.0 && same_area.accuracy_m <= 50_000.0);
}

#[test]
fn hybrid_prefers_agreeing_precise_result_and_never_averages() {
    let est = Estimator::default();
    let wifi = Estimate {
        position: origin(),
        accuracy_m: 30.0,
        score: 2.0,
        kind: EstimateKind::Wifi,
        used: 2,
        fallback: None,
    };
    let cell_near = Estimate {
        position: origin().offset(800.0, 0.0),
        accuracy_m: 2_000.0,
        score: 1.0,
        kind: EstimateKind::Cell,
        used: 1,
        fallback: None,
    };
    assert_eq!(est.combine(&[cell_near, wifi]), Some(wifi));
    // Cells far away with more support outvote a lone WiFi cluster; the answer is one of the
    // inputs, never a blend.
    let cell_far = Estimate {
        position: origin().offset(30_000.0, 0.0),
        score: 5.0,
        ..cell_near
    };
    assert_eq!(est.combine(&[wifi, cell_far]), Some(cell_far));
    assert_eq!(est.combine(&[]), None);
}

#[test]
fn pipeline_uses_lac_fallback_only_without_known_cells() {
    let req: crate::GeolocateRequest = serde_json::from_value(serde_json::json!({
        "cellTowers": [{"radioType": "gsm", "mobileCountryCode": 262, "mobileNetworkCode": 1,
                        "locationAreaCode": 7, "cellId": 100}]
    }))
    .unwrap();
    let q = Query::from_request(&req);
    let mut known = Known::default();
    known.areas.insert(
        key(Radio::Gsm, 7, 0).area(),
        Station {
            position: origin(),
            radius_m: 20_000.0,
            samples: 16,
        },
    );
    let e = Estimator::default().locate(&q, &known).unwrap();
    assert_eq!(e.fallback, Some(FallbackKind::Lacf));
    assert_eq!(e.accuracy_m, 50_000.0);
    assert_eq!(e.to_response().fallback, Some(FallbackKind::Lacf));

    known.cells.insert(
        key(Radio::Gsm, 7, 100),
        Station {
            position: origin().offset(1_000.0, 0.0),
            radius_m: 3_000.0,
            samples: 4,
        },
    );
    let e = Estimator::default().locate(&q, &known).unwrap();
    assert_eq!(e.fallback, None);
    assert_eq!(e.kind, EstimateKind::Cell);

    let mut no_lacf = q.clone();
    no_lacf.lacf = false;
    known.cells.clear();
    assert!(Estimator::default().locate(&no_lacf, &known).is_none());
}

#[test]
fn percentile_matches_numpy() {
    let mut v = vec![1.0, 2.0, 3.0, 4.0];
    assert!((percentile(&mut v, 0.95) - 3.85).abs() < 1e-9);
    assert_eq!(percentile(&mut [], 0.5), 0.0);
}

/// Noise-free readings of APs at `offsets` (metres from the origin) heard from `truth` under
/// `P0 − 10·n·log10(d)`.
fn heard(truth: LatLon, offsets: &[(f64, f64)], p0: f64, n: f64) -> Vec<BeaconInput> {
    offsets
        .iter()
        .map(|&(x, y)| {
            let p = origin().offset(x, y);
            let d = p.distance_m(truth).max(1.0);
            BeaconInput {
                radius_m: Some(30.0),
                ..BeaconInput::at(p, Some(p0 - 10.0 * n * d.log10()))
            }
        })
        .collect()
}

/// The posterior estimator told the path-loss model (as the harness's floor is).
fn posterior(p0: f64, n: f64) -> Estimator {
    Estimator::new(EstimatorConfig {
        likelihood: true,
        exponent_range: (n, n),
        reference_power_dbm: p0,
        reference_power_sd_db: 1.0,
        shadowing_db: 2.0,
        position_sigma_share: 0.1,
        min_beacon_radius_m: 1.0,
        ..Default::default()
    })
}

#[test]
fn posterior_with_the_model_finds_a_device_off_centre() {
    // Six APs around the origin, the device 25 m east of their centroid: a weighted centroid
    // cannot get there, the posterior mean can, for a low and a high exponent, and the truth
    // is inside its 95 % radius.
    let offsets = [
        (-60.0, 0.0),
        (60.0, 0.0),
        (0.0, 60.0),
        (0.0, -60.0),
        (45.0, 45.0),
        (-45.0, -45.0),
    ];
    let truth = origin().offset(25.0, 5.0);
    for (p0, n) in [(-42.0, 2.5), (-30.0, 3.5)] {
        let aps = heard(truth, &offsets, p0, n);
        let fit = posterior(p0, n).locate_beacons(&aps).unwrap();
        let plain = Estimator::default().locate_beacons(&aps).unwrap();
        let (e_fit, e_plain) = (
            fit.position.distance_m(truth),
            plain.position.distance_m(truth),
        );
        assert!(
            e_fit < 5.0,
            "n {n}: posterior {e_fit} m, centroid {e_plain} m"
        );
        assert!(
            e_fit < 0.5 * e_plain,
            "n {n}: posterior {e_fit} m, centroid {e_plain} m"
        );
        assert!(fit.accuracy_m >= e_fit && fit.accuracy_m < 50.0, "{fit:?}");
    }
}

#[test]
fn posterior_leans_to_the_strong_ap_and_uses_unsignalled_readings() {
    // Two APs 200 m apart, the device 30 m from the first: the fix is on its side.
    let truth = origin().offset(30.0, 0.0);
    let aps = heard(truth, &[(0.0, 0.0), (200.0, 0.0)], -40.0, 3.0);
    let est = posterior(-40.0, 3.0);
    let e = est.locate_beacons(&aps).unwrap();
    let frame = Frame::new(origin());
    assert!(frame.to_xy(e.position).0 < 80.0, "{e:?}");
    assert!(e.position.distance_m(truth) < e.accuracy_m, "{e:?}");
    // A third AP without a signal value, 250 m north: it was heard, so the device is not far
    // from it; the fix moves toward it.
    let mut with_north = aps.clone();
    with_north.push(BeaconInput {
        radius_m: Some(30.0),
        ..BeaconInput::at(origin().offset(100.0, 250.0), None)
    });
    let f = est.locate_beacons(&with_north).unwrap();
    assert!(
        frame.to_xy(f.position).1 > frame.to_xy(e.position).1 + 1.0,
        "{e:?} then {f:?}"
    );
}

#[test]
fn posterior_trusts_a_poorly_known_ap_less() {
    // Three APs heard 80 m away; the third is stored 120 m north of where it is. With a
    // small radius it drags the fix north; with a radius of 400 m (its position rests on far
    // sightings) it counts less and the fix is nearer the truth.
    let truth = origin();
    let mut aps = heard(truth, &[(-80.0, 0.0), (80.0, 0.0), (0.0, 80.0)], -40.0, 3.0);
    aps[2].position = origin().offset(0.0, 200.0);
    let est = posterior(-40.0, 3.0);
    let sharp = est.locate_beacons(&aps).unwrap();
    aps[2].radius_m = Some(400.0);
    let vague = est.locate_beacons(&aps).unwrap();
    let (e_sharp, e_vague) = (
        sharp.position.distance_m(truth),
        vague.position.distance_m(truth),
    );
    assert!(e_vague < 0.8 * e_sharp, "{e_sharp} m then {e_vague} m");
}
