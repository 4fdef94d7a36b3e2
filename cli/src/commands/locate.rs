//! `vigil locate`: where is a device, from the WiFi APs and cells it sees.
//!
//! Sources: the offline database in `<data-dir>/geodb` (fill it with `vigil geodb import`), then
//! WiGLE and OpenCellID when their keys are set, through a cache in `<data-dir>/geo-cache.sqlite`
//! so that no BSSID or cell costs quota twice within 30 days. Keys come from `WIGLE_API_NAME` +
//! `WIGLE_API_TOKEN` and `OPENCELLID_API_KEY`, read here and nowhere else.
//!
//! `--ip ADDR` adds the IP fallback: when nothing else answers, where `ADDR` is by the GeoIP
//! city database imported with `vigil geodb import GeoLite2-City.mmdb` (`"fallback": "ipf"`).
//!
//! Exit codes: 0 found, 3 not found, 1 error (bad request file, missing key, provider error),
//! 2 bad arguments.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Args as ClapArgs, ValueEnum};
use geo_locate::api::{CellTower, RadioType, WifiAccessPoint};
use geo_locate::cache::{Cache, CacheConfig};
use geo_locate::opencellid::{OpenCellIdClient, OpenCellIdConfig};
use geo_locate::wigle::{WigleClient, WigleConfig};
use geo_locate::{CellKey, ErrorEnvelope, GeoDb, GeolocateRequest, Locator, MacAddr};

/// Environment variable holding the WiGLE API name (`AID…`).
pub const WIGLE_NAME_VAR: &str = "WIGLE_API_NAME";
/// Environment variable holding the WiGLE API token.
pub const WIGLE_TOKEN_VAR: &str = "WIGLE_API_TOKEN";
/// Environment variable holding the OpenCellID API key.
pub const OPENCELLID_KEY_VAR: &str = "OPENCELLID_API_KEY";

/// Exit code for "no position could be estimated".
const NOT_FOUND: u8 = 3;

/// Locate a device from WiFi access points and cell towers.
#[derive(Debug, ClapArgs)]
#[command(allow_negative_numbers = true)]
pub struct Args {
    /// A WiFi access point seen: `MAC[@dBm]`, e.g. `aa:bb:cc:dd:ee:ff@-65`. Repeat for each.
    #[arg(long = "wifi", value_name = "MAC[@dBm]", value_parser = parse_wifi)]
    wifi: Vec<WifiAccessPoint>,
    /// A cell seen: `RADIO:MCC:MNC:LAC:CID[@dBm]`, RADIO one of gsm, wcdma, lte, nr. Repeat.
    #[arg(long = "cell", value_name = "RADIO:MCC:MNC:LAC:CID[@dBm]", value_parser = parse_cell)]
    cell: Vec<CellTower>,
    /// A geolocate request body (Ichnaea/Google JSON) instead of --wifi/--cell; `-` for stdin.
    #[arg(long, value_name = "FILE.json", conflicts_with_all = ["wifi", "cell"])]
    request: Option<PathBuf>,
    /// The caller's IP address, for the IP fallback (GeoIP city database in the offline
    /// database; `considerIp` in a `--request` body still applies).
    #[arg(long, value_name = "ADDR")]
    ip: Option<IpAddr>,
    /// Where to look up transmitters.
    #[arg(long, value_enum, default_value_t = SourceChoice::Auto)]
    source: SourceChoice,
    /// Data directory shared with `vigil serve` (offline database and cache).
    #[arg(long, default_value = "./vigil-data", env = "VIGIL_DATA_DIR")]
    data_dir: PathBuf,
    /// Most WiGLE/OpenCellID requests for this lookup (cache hits are free).
    #[arg(long, default_value_t = 10)]
    max_online: usize,
    /// Print the geolocate response JSON (or the not-found error envelope).
    #[arg(long)]
    json: bool,
    /// WiGLE API root, for a proxy or a local mock.
    #[arg(long, default_value = "https://api.wigle.net", hide = true)]
    wigle_base_url: String,
    /// OpenCellID API root, for a proxy or a local mock.
    #[arg(long, default_value = "https://opencellid.org", hide = true)]
    opencellid_base_url: String,
}

/// Which sources `vigil locate` asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SourceChoice {
    /// The offline database, then WiGLE/OpenCellID for what it lacks, if their keys are set.
    Auto,
    /// Only the offline database.
    Offline,
    /// Only WiGLE (needs WIGLE_API_NAME and WIGLE_API_TOKEN).
    Wigle,
    /// Only OpenCellID (needs OPENCELLID_API_KEY).
    Opencellid,
}

fn split_signal(s: &str) -> Result<(&str, Option<i64>), String> {
    match s.split_once('@') {
        Some((id, dbm)) => {
            let v: i64 = dbm
                .trim()
                .parse()
                .map_err(|_| format!("signal {dbm:?} is not a whole number of dBm"))?;
            if !(-150..=0).contains(&v) {
                return Err(format!("signal {v} dBm is out of range (-150..0)"));
            }
            Ok((id, Some(v)))
        }
        None => Ok((s, None)),
    }
}

fn parse_wifi(s: &str) -> Result<WifiAccessPoint, String> {
    let (mac, signal) = split_signal(s)?;
    let mac = MacAddr::parse_station(mac).map_err(|e| e.to_string())?;
    Ok(WifiAccessPoint {
        mac_address: mac.to_string(),
        signal_strength: signal,
        ..Default::default()
    })
}

fn parse_cell(s: &str) -> Result<CellTower, String> {
    let (id, signal) = split_signal(s)?;
    let key: CellKey = id.parse().map_err(|e: geo_locate::Error| e.to_string())?;
    let nr = key.radio == geo_locate::Radio::Nr;
    Ok(CellTower {
        radio_type: Some(RadioType::from(key.radio)),
        mobile_country_code: Some(i64::from(key.mcc)),
        mobile_network_code: Some(i64::from(key.mnc)),
        location_area_code: Some(i64::from(key.lac)),
        cell_id: (!nr).then_some(key.cid as i64),
        new_radio_cell_id: nr.then_some(key.cid as i64),
        signal_strength: signal,
        ..Default::default()
    })
}

fn read_request(path: &Path) -> anyhow::Result<GeolocateRequest> {
    let bytes = if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf).context("cannot read stdin")?;
        buf
    } else {
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(GeolocateRequest::default());
    }
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a geolocate request", path.display()))
}

fn wigle_client(base: &str) -> anyhow::Result<Option<WigleClient>> {
    match (
        std::env::var(WIGLE_NAME_VAR),
        std::env::var(WIGLE_TOKEN_VAR),
    ) {
        (Ok(name), Ok(token)) if !name.is_empty() && !token.is_empty() => Ok(Some(
            WigleClient::new(WigleConfig::new(name, token).with_base_url(base))?,
        )),
        _ => Ok(None),
    }
}

fn opencellid_client(base: &str) -> anyhow::Result<Option<OpenCellIdClient>> {
    match std::env::var(OPENCELLID_KEY_VAR) {
        Ok(key) if !key.is_empty() => Ok(Some(OpenCellIdClient::new(
            OpenCellIdConfig::new(key).with_base_url(base),
        )?)),
        _ => Ok(None),
    }
}

fn build_locator(args: &Args) -> anyhow::Result<Locator> {
    let db_dir = args.data_dir.join("geodb");
    let mut builder = Locator::builder().max_online_lookups(args.max_online);
    let open_cache = || -> anyhow::Result<Arc<Cache>> {
        let path = args.data_dir.join("geo-cache.sqlite");
        Ok(Arc::new(
            Cache::open(&path, CacheConfig::default())
                .with_context(|| format!("cannot open the cache {}", path.display()))?,
        ))
    };
    let mut any = false;
    if matches!(args.source, SourceChoice::Auto | SourceChoice::Offline) {
        let db = GeoDb::open(&db_dir)
            .with_context(|| format!("cannot open the offline database {}", db_dir.display()))?;
        let stats = db.stats()?;
        if stats.cells + stats.wifi + stats.ble > 0 || stats.ip_database.is_some() {
            builder = builder.database(Arc::new(db));
            any = true;
        } else if args.source == SourceChoice::Offline {
            bail!(
                "the offline database {} is empty: import data first with `vigil geodb import FILE`",
                db_dir.display()
            );
        }
    }
    let want_wigle = matches!(args.source, SourceChoice::Auto | SourceChoice::Wigle);
    let want_ocid = matches!(args.source, SourceChoice::Auto | SourceChoice::Opencellid);
    let wigle = if want_wigle {
        wigle_client(&args.wigle_base_url)?
    } else {
        None
    };
    let ocid = if want_ocid {
        opencellid_client(&args.opencellid_base_url)?
    } else {
        None
    };
    if args.source == SourceChoice::Wigle && wigle.is_none() {
        bail!("--source wigle needs {WIGLE_NAME_VAR} and {WIGLE_TOKEN_VAR} to be set");
    }
    if args.source == SourceChoice::Opencellid && ocid.is_none() {
        bail!("--source opencellid needs {OPENCELLID_KEY_VAR} to be set");
    }
    if wigle.is_some() || ocid.is_some() {
        let cache = open_cache()?;
        if let Some(c) = ocid {
            builder = builder.opencellid(c, Some(Arc::clone(&cache)));
        }
        if let Some(c) = wigle {
            builder = builder.wigle(c, Some(cache));
        }
        any = true;
    }
    if !any {
        bail!(
            "nothing to locate from: import data with `vigil geodb import FILE` (into {}) or set \
             {WIGLE_NAME_VAR}/{WIGLE_TOKEN_VAR} or {OPENCELLID_KEY_VAR}",
            db_dir.display()
        );
    }
    Ok(builder.build()?)
}

/// Runs `vigil locate`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let request = match &args.request {
        Some(path) => read_request(path)?,
        None => {
            if args.wifi.is_empty() && args.cell.is_empty() && args.ip.is_none() {
                bail!(
                    "give at least two --wifi, or a --cell, or --ip ADDR, or --request FILE.json"
                );
            }
            GeolocateRequest {
                wifi_access_points: args.wifi.clone(),
                cell_towers: args.cell.clone(),
                ..Default::default()
            }
        }
    };
    let query = geo_locate::Query::from_request(&request);
    let dropped = query.dropped;
    if dropped.wifi + dropped.cells + dropped.ble > 0 {
        eprintln!(
            "note: ignored {} invalid WiFi, {} invalid cell and {} invalid Bluetooth entries",
            dropped.wifi, dropped.cells, dropped.ble
        );
    }
    if !request.wifi_access_points.is_empty() && query.wifi.is_empty() {
        eprintln!("note: WiFi needs at least two distinct valid access points; WiFi was ignored");
    }
    let locator = build_locator(&args)?;
    if args.ip.is_some() && !locator.has_ip_database() {
        eprintln!(
            "note: no GeoIP database to look --ip up in: import one with `vigil geodb import GeoLite2-City.mmdb`"
        );
    }
    let estimate =
        super::streetview::runtime()?.block_on(locator.locate_with_ip(&query, args.ip))?;
    match estimate {
        Some(e) => {
            let response = e.to_response();
            if args.json {
                println!("{}", serde_json::to_string(&response)?);
            } else {
                let kind = match e.kind {
                    geo_locate::EstimateKind::Wifi => "WiFi",
                    geo_locate::EstimateKind::Ble => "Bluetooth",
                    geo_locate::EstimateKind::Cell => "cells",
                    geo_locate::EstimateKind::Area => "location area (fallback)",
                    geo_locate::EstimateKind::Ip => "IP address (fallback)",
                };
                println!(
                    "{:.7}, {:.7} ± {:.0} m (95 %), from {} {kind}",
                    response.location.lat, response.location.lng, response.accuracy, e.used
                );
                println!(
                    "https://www.openstreetmap.org/?mlat={0:.7}&mlon={1:.7}#map=17/{0:.7}/{1:.7}",
                    response.location.lat, response.location.lng
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        None => {
            if args.json {
                println!("{}", serde_json::to_string(&ErrorEnvelope::not_found())?);
            }
            eprintln!(
                "not found: no known access point cluster or cell among what was given \
                 (WiFi needs two known APs within 500 m of each other)"
            );
            Ok(ExitCode::from(NOT_FOUND))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wifi_and_cell_arguments_parse() {
        let w = parse_wifi("AA-BB-CC-00-11-22@-65").unwrap();
        assert_eq!(w.mac_address, "aa:bb:cc:00:11:22");
        assert_eq!(w.signal_strength, Some(-65));
        assert!(parse_wifi("00:00:00:00:00:00").is_err());
        assert!(parse_wifi("aa:bb:cc:00:11:22@loud").is_err());
        let c = parse_cell("nr:262:1:70000:68719476734@-90").unwrap();
        assert_eq!(c.new_radio_cell_id, Some(68_719_476_734));
        assert_eq!(c.cell_id, None);
        assert!(parse_cell("gsm:262:1:0:5").is_err());
    }
}
