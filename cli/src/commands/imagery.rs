//! `vigil imagery LAT LNG`: open street-level imagery near a point, from Mapillary and
//! Panoramax, nearest first, with viewer links.
//!
//! Mapillary needs `MAPILLARY_ACCESS_TOKEN` (a client token from
//! mapillary.com/dashboard/developers), read here and nowhere else. Panoramax needs nothing.

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args as ClapArgs, ValueEnum};
use serde::Serialize;
use streetview::mapillary::{ImageQuery, MapillaryClient};
use streetview::maps_url::Pano;
use streetview::panoramax::{AssetKind, PanoramaxClient};
use streetview::{AccessToken, ClientConfig, LatLng, haversine_m};

use super::streetview::{Point, runtime};

/// Environment variable holding the Mapillary access token.
pub const TOKEN_VAR: &str = "MAPILLARY_ACCESS_TOKEN";

/// Largest `--radius`, metres: beyond it a Mapillary search needs too many requests.
const MAX_RADIUS_M: f64 = 5_000.0;

/// Most Mapillary `/images` requests one command may make (the radius is tiled into boxes
/// under 0.01 square degrees).
const MAX_MAPILLARY_REQUESTS: usize = 16;

/// Mapillary's imagery licence.
const MAPILLARY_LICENSE: &str = "CC-BY-SA-4.0";

/// Find Mapillary and Panoramax imagery near a point and print viewer links.
#[derive(Debug, ClapArgs)]
#[command(allow_negative_numbers = true)]
pub struct Args {
    #[command(flatten)]
    point: Point,
    /// Where to look. `all` skips Mapillary (with a note) when MAPILLARY_ACCESS_TOKEN is unset.
    #[arg(long, value_enum, default_value_t = Provider::All)]
    provider: Provider,
    /// Search radius in metres, 1..=5000.
    #[arg(long, default_value_t = 50.0)]
    radius: f64,
    /// Most images per provider, 1..=2000.
    #[arg(long, default_value_t = 20)]
    limit: u32,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Mapillary Graph API root, for a proxy or a local mock.
    #[arg(long, default_value = streetview::mapillary::GRAPH_BASE)]
    mapillary_base_url: String,
    /// Panoramax API root (`/api` included): the meta-catalogue by default, or any instance.
    #[arg(long, default_value = streetview::panoramax::META_CATALOGUE)]
    panoramax_base_url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Provider {
    /// Mapillary only.
    Mapillary,
    /// Panoramax only.
    Panoramax,
    /// Both.
    All,
}

/// One image found, whichever the provider.
#[derive(Debug, Serialize)]
struct Found {
    provider: &'static str,
    id: String,
    lat: f64,
    lng: f64,
    distance_m: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    captured_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    heading: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    panorama: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    license: Option<String>,
    viewer_url: String,
    /// Panoramax thumbnails are stable; Mapillary's expire, so none is given for them.
    #[serde(skip_serializing_if = "Option::is_none")]
    thumbnail_url: Option<String>,
}

/// Runs `vigil imagery …`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let center = args.point.lat_lng()?;
    if !(1.0..=MAX_RADIUS_M).contains(&args.radius) {
        bail!("radius must be in 1..=5000 metres, got {}", args.radius);
    }
    if !(1..=streetview::mapillary::MAX_LIMIT).contains(&args.limit) {
        bail!("limit must be in 1..=2000, got {}", args.limit);
    }

    let token = match std::env::var(TOKEN_VAR) {
        Ok(token) => {
            Some(AccessToken::new(token).with_context(|| format!("{TOKEN_VAR} is empty"))?)
        }
        Err(_) if args.provider == Provider::Mapillary => bail!(
            "{TOKEN_VAR} is not set: create a client token at mapillary.com/dashboard/developers, \
             then `export {TOKEN_VAR}=MLY|...`"
        ),
        Err(_) => {
            if args.provider == Provider::All {
                eprintln!("note: skipping Mapillary: {TOKEN_VAR} is not set");
            }
            None
        }
    };

    let runtime = runtime()?;
    let mut found = Vec::new();
    let mut failures = Vec::new();
    let mut asked = 0;

    if let (Some(token), Provider::Mapillary | Provider::All) = (token, args.provider) {
        asked += 1;
        let client = MapillaryClient::new(
            token,
            ClientConfig::default().with_base_url(&args.mapillary_base_url),
        )?;
        let query = ImageQuery {
            limit: Some(args.limit),
            ..ImageQuery::default()
        };
        match runtime.block_on(client.images_near(
            center,
            args.radius,
            &query,
            MAX_MAPILLARY_REQUESTS,
        )) {
            Ok(images) => found.extend(images.into_iter().filter_map(|image| {
                let at = image.position()?;
                Some(Found {
                    provider: "mapillary",
                    lat: at.lat(),
                    lng: at.lng(),
                    distance_m: haversine_m(center, at),
                    captured_at: image.captured_at.map(|t| t.to_rfc3339()),
                    heading: image.heading(),
                    panorama: image.is_pano,
                    license: Some(MAPILLARY_LICENSE.to_owned()),
                    viewer_url: image.viewer_url(),
                    thumbnail_url: None,
                    id: image.id,
                })
            })),
            Err(err) => failures.push(("Mapillary", err)),
        }
    }

    if matches!(args.provider, Provider::Panoramax | Provider::All) {
        asked += 1;
        let client =
            PanoramaxClient::new(ClientConfig::default().with_base_url(&args.panoramax_base_url))?;
        match runtime.block_on(client.items_near(center, args.radius, args.limit)) {
            Ok(items) => found.extend(items.iter().filter_map(|item| {
                let at = item.position()?;
                Some(Found {
                    provider: "panoramax",
                    id: item.id.clone(),
                    lat: at.lat(),
                    lng: at.lng(),
                    distance_m: haversine_m(center, at),
                    captured_at: item.properties.datetime.map(|t| t.to_rfc3339()),
                    heading: item.properties.azimuth,
                    panorama: Some(item.is_360()),
                    license: item.license().map(str::to_owned),
                    viewer_url: client.viewer_url(item),
                    thumbnail_url: item
                        .pick_asset(&[AssetKind::Thumb])
                        .map(|(_, asset)| asset.href.clone()),
                })
            })),
            Err(err) => failures.push(("Panoramax", err)),
        }
    }

    if asked > 0 && failures.len() == asked {
        let (name, err) = failures.remove(0);
        for (other, err) in &failures {
            eprintln!("error: {other}: {err}");
        }
        return Err(anyhow::Error::new(err).context(format!("{name} search failed")));
    }
    for (name, err) in &failures {
        eprintln!("warning: {name}: {err}");
    }
    found.sort_by(|a, b| a.distance_m.total_cmp(&b.distance_m));

    if args.json {
        println!("{}", serde_json::to_string_pretty(&found)?);
        return Ok(ExitCode::SUCCESS);
    }
    print_table(center, args.radius, &found)?;
    Ok(ExitCode::SUCCESS)
}

fn print_table(center: LatLng, radius: f64, found: &[Found]) -> anyhow::Result<()> {
    println!("{} images within {radius} m of {center}", found.len());
    for f in found {
        let date = f
            .captured_at
            .as_deref()
            .and_then(|t| t.get(..10))
            .unwrap_or("?");
        let heading = f.heading.map_or("-".to_owned(), |h| format!("{h:.0}°"));
        let kind = match f.panorama {
            Some(true) => "360",
            Some(false) => "flat",
            None => "?",
        };
        println!(
            "{:<9} {:>7.1} m  {date:<10}  {heading:>5}  {kind:<4}  {:<12}  {}",
            f.provider,
            f.distance_m,
            f.license.as_deref().unwrap_or("?"),
            f.viewer_url
        );
    }
    println!();
    println!("Google Street View: {}", Pano::at(center).build()?);
    Ok(())
}
