//! `vigil imagery LAT LNG`: open street-level imagery near a point, from Mapillary and
//! Panoramax, nearest first, with viewer links.
//!
//! Mapillary needs `MAPILLARY_ACCESS_TOKEN` (a client token from
//! mapillary.com/dashboard/developers), read here and nowhere else. Panoramax needs nothing.

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args as ClapArgs, ValueEnum};
use streetview::mapillary::MapillaryClient;
use streetview::maps_url::Pano;
use streetview::nearby::{self, Nearby, NearbyImage};
use streetview::panoramax::PanoramaxClient;
use streetview::{AccessToken, ClientConfig, LatLng};

use super::streetview::{Point, runtime};

/// Environment variable holding the Mapillary access token.
pub const TOKEN_VAR: &str = "MAPILLARY_ACCESS_TOKEN";

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

/// Runs `vigil imagery …`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let center = args.point.lat_lng()?;

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
    let mapillary = match (token, args.provider) {
        (Some(token), Provider::Mapillary | Provider::All) => Some(MapillaryClient::new(
            token,
            ClientConfig::default().with_base_url(&args.mapillary_base_url),
        )?),
        _ => None,
    };
    let panoramax = match args.provider {
        Provider::Panoramax | Provider::All => Some(PanoramaxClient::new(
            ClientConfig::default().with_base_url(&args.panoramax_base_url),
        )?),
        Provider::Mapillary => None,
    };
    let asked = usize::from(mapillary.is_some()) + usize::from(panoramax.is_some());
    let Nearby {
        images: found,
        mut failures,
    } = runtime.block_on(nearby::search(
        mapillary.as_ref(),
        panoramax.as_ref(),
        center,
        args.radius,
        args.limit,
    ))?;

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

    if args.json {
        println!("{}", serde_json::to_string_pretty(&found)?);
        return Ok(ExitCode::SUCCESS);
    }
    print_table(center, args.radius, &found)?;
    Ok(ExitCode::SUCCESS)
}

fn print_table(center: LatLng, radius: f64, found: &[NearbyImage]) -> anyhow::Result<()> {
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
            f.licence.as_deref().unwrap_or("?"),
            f.viewer_url
        );
    }
    println!();
    println!("Google Street View: {}", Pano::at(center).build()?);
    Ok(())
}
