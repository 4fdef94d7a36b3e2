//! Find where a device is from the WiFi access points and cell towers it sees: online through
//! WiGLE and OpenCellID, or offline from the OpenCellID/MLS cell dump and WiGLE CSV exports, with
//! an estimator that is correct (weights rise with signal, moved APs are outvoted) and an honest
//! 95 % accuracy radius.
//!
//! # Example
//!
//! Import a cell dump or a WiGLE export once, then locate Ichnaea/Google-shaped requests:
//!
//! ```no_run
//! use std::sync::Arc;
//! use geo_locate::{GeoDb, GeolocateRequest, ImportOptions, Locator};
//!
//! # async fn run() -> geo_locate::Result<()> {
//! let report = GeoDb::import_file("vigil-data/geodb", "cell_towers.csv.gz",
//!     &ImportOptions { mcc: vec![262], ..Default::default() }, &mut |_| {})?;
//! println!("{} rows imported, {:?} skipped", report.imported, report.skipped);
//!
//! let db = Arc::new(GeoDb::open("vigil-data/geodb")?);
//! let locator = Locator::builder().database(db).build()?;
//! let request: GeolocateRequest = serde_json::from_str(r#"{"cellTowers": [{"radioType": "lte",
//!     "mobileCountryCode": 262, "mobileNetworkCode": 1, "locationAreaCode": 12345,
//!     "cellId": 26877953, "signalStrength": -80}]}"#).expect("valid JSON");
//! match locator.locate(&request).await? {
//!     Some(r) => println!("{}, {} ± {} m", r.location.lat, r.location.lng, r.accuracy),
//!     None => println!("not found"),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The estimator also works on its own, with positions you supply:
//!
//! ```
//! use geo_locate::estimate::{BeaconInput, Estimator};
//! use geo_locate::LatLon;
//!
//! let here = LatLon::new(52.52, 13.405).unwrap();
//! let aps = [
//!     BeaconInput::at(here.offset(10.0, 5.0), Some(-45.0)),
//!     BeaconInput::at(here.offset(-40.0, 30.0), Some(-70.0)),
//!     BeaconInput::at(here.offset(30.0, -60.0), Some(-78.0)),
//! ];
//! let fix = Estimator::default().locate_beacons(&aps).expect("two or more APs in one cluster");
//! assert!(fix.position.distance_m(here) < fix.accuracy_m);
//! ```
//!
//! # What is in here
//!
//! | module | what |
//! |---|---|
//! | [`api`] | `/v1/geolocate` request, response and Google-shaped error envelope, serde-exact |
//! | [`Query`] | per-entry validation with Ichnaea's ranges; bad entries dropped one by one |
//! | [`estimate`] | clustering, inverse-range weights, least-squares refinement, 95 % radius, cells with timing advance, LAC fallback, Ichnaea's hybrid rule |
//! | [`store`] | the offline database and its streaming importers |
//! | [`learning`] | how positions are learned from sightings: weights by implied range and fix accuracy, exact running sums, outliers and movers |
//! | [`store::overlay`] | what `/v2/geosubmit` reports taught, combined with the imported data by [`GeoDb::fill`] |
//! | [`ip`] | the IP fallback: GeoIP city databases in MaxMind's MMDB format (`fallback: "ipf"`) |
//! | [`wigle`], [`opencellid`] | API clients with typed errors (quota, credentials, provider messages) |
//! | [`cache`] | read-through cache of provider answers, hits and misses, with a TTL |
//! | [`locator`] | the async entry point over all sources |
//!
//! # Decisions
//!
//! - Weights are `q · 10^(s/(10·n))` (inverse estimated range), never the seed's `s²` on negative
//!   dBm, which gave weak, far APs the most weight.
//! - The WiFi answer is a weighted centroid, not a range fit: a posterior fit under the
//!   log-distance model ([`EstimatorConfig::likelihood`], off) wins only when told the
//!   path-loss exponent and power, and the error left is the learned AP positions' (see
//!   [`estimate`], "Where the WiFi error comes from").
//! - A WiFi answer needs two known APs within one 1 km complete-linkage cluster (privacy, and a
//!   moved AP cannot drag the answer). Ichnaea cuts at 500 m; vigil departs from that (and from
//!   DESIGN §4) because 500 m split what a device hears where WiFi carries far (see
//!   `EstimatorConfig::wifi_cluster_m`).
//! - Hybrid answers pick the best-supported group's most precise member; disagreeing fixes are
//!   never averaged.
//! - Transmitter positions are learned from sightings weighted by what each says about
//!   distance, `1 / (d̂² + acc²)` with `d̂` the range the signal implies and `acc` the fix
//!   accuracy ([`learning`]); a plain mean let far, weak sightings pull positions.
//! - When nothing else answers and the request allows it (`considerIp`, `fallbacks.ipf`), the
//!   caller's address answers from an imported GeoIP city database ([`ip`]).
//! - The offline store is a set of sorted fixed-width files, not SQLite: 28 B per cell and about
//!   1 µs per lookup (see the `geo_db` bench in `benches/`).
//!
//! # Features
//!
//! | feature | what |
//! |---|---|
//! | `mmdb-writer` | `ip::writer`: writes small MMDB city databases, for tests and fixtures |
//! - The library reads no environment variables: callers pass keys in [`wigle::WigleConfig`] and
//!   [`opencellid::OpenCellIdConfig`].

pub mod api;
pub mod cache;
mod cell;
mod error;
pub mod estimate;
pub mod geo;
mod http;
pub mod ip;
pub mod learning;
pub mod locator;
mod mac;
pub mod opencellid;
mod query;
pub mod store;
pub mod wigle;

pub use api::{ErrorEnvelope, FallbackKind, GeolocateRequest, GeolocateResponse};
pub use cell::{AreaKey, CellKey, Radio};
pub use error::{Error, Result};
pub use estimate::{Estimate, EstimateKind, Estimator, EstimatorConfig, Known, Station};
pub use geo::LatLon;
pub use http::{DEFAULT_TIMEOUT, DEFAULT_USER_AGENT};
pub use locator::{Locator, LocatorBuilder, Source};
pub use mac::MacAddr;
pub use query::{BeaconReading, CellReading, Dropped, MIN_BEACONS_IN_QUERY, Query, is_opted_out};
pub use store::overlay::{ObservationFilter, SubmitReport};
pub use store::{DbStats, GeoDb, ImportOptions, ImportProgress, ImportReport, IpImportReport};
