//! `vigil streetview url|static|metadata|cost`: Google Street View links, signed Static API
//! URLs, the free metadata check, and what it all costs.
//!
//! Credentials come from the environment, read here and nowhere else:
//! `GOOGLE_MAPS_API_KEY` (static, metadata) and `GOOGLE_MAPS_URL_SIGNING_SECRET` (`--sign`).
//! They are never accepted as flags, so they stay out of shell history and `ps`.

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args as ClapArgs, Subcommand, ValueEnum};
use serde::Serialize;
use streetview::cost::{self, Sku};
use streetview::maps_url::Pano;
use streetview::metadata::MetadataClient;
use streetview::static_api::{Size, Source, StaticRequest};
use streetview::{ApiKey, ClientConfig, LatLng, SigningSecret, haversine_m};

/// Environment variable holding the Google Maps Platform API key.
pub const KEY_VAR: &str = "GOOGLE_MAPS_API_KEY";
/// Environment variable holding the URL-signing secret.
pub const SECRET_VAR: &str = "GOOGLE_MAPS_URL_SIGNING_SECRET";

/// Google Street View: links, signed image URLs, metadata, cost.
#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a Google Maps link that opens Street View at a point (free, no key needed).
    #[command(allow_negative_numbers = true)]
    Url(UrlArgs),
    /// Print a Street View Static API image URL (needs GOOGLE_MAPS_API_KEY; --sign also
    /// GOOGLE_MAPS_URL_SIGNING_SECRET).
    #[command(allow_negative_numbers = true)]
    Static(StaticArgs),
    /// Ask Google whether a panorama exists near a point (free, uses no quota; needs
    /// GOOGLE_MAPS_API_KEY).
    #[command(allow_negative_numbers = true)]
    Metadata(MetadataArgs),
    /// Estimate a month's Street View bill from Google's 2025 price list.
    Cost(CostArgs),
}

/// A point on the command line: latitude then longitude, decimal degrees.
#[derive(Debug, ClapArgs)]
pub struct Point {
    /// Latitude, -90..=90.
    lat: f64,
    /// Longitude; any value, wrapped into -180..180.
    lng: f64,
}

impl Point {
    /// The validated position.
    pub fn lat_lng(&self) -> anyhow::Result<LatLng> {
        Ok(LatLng::new(self.lat, self.lng)?)
    }
}

#[derive(Debug, ClapArgs)]
struct UrlArgs {
    #[command(flatten)]
    point: Point,
    /// Camera heading, degrees clockwise from north, -180..=360.
    #[arg(long)]
    heading: Option<f64>,
    /// Camera pitch, degrees, -90..=90.
    #[arg(long)]
    pitch: Option<f64>,
    /// Field of view, degrees, 10..=100 (smaller zooms in).
    #[arg(long)]
    fov: Option<f64>,
    /// A panorama id to open; the point is the fallback if Google no longer knows it.
    #[arg(long)]
    pano: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SourceArg {
    /// Any panorama, indoor and user PhotoSpheres included.
    Default,
    /// Outdoor panoramas only.
    Outdoor,
}

impl From<SourceArg> for Source {
    fn from(source: SourceArg) -> Self {
        match source {
            SourceArg::Default => Source::Default,
            SourceArg::Outdoor => Source::Outdoor,
        }
    }
}

#[derive(Debug, ClapArgs)]
struct StaticArgs {
    #[command(flatten)]
    point: Point,
    /// Image size, WIDTHxHEIGHT, each side 1..=640.
    #[arg(long, value_parser = parse_size)]
    size: Size,
    /// Camera heading, degrees; any value, normalised to 0..360.
    #[arg(long)]
    heading: Option<f64>,
    /// Camera pitch, degrees, -90..=90.
    #[arg(long)]
    pitch: Option<f64>,
    /// Field of view, degrees, above 0 and at most 120.
    #[arg(long)]
    fov: Option<f64>,
    /// Metres to search for a panorama around the point (Google's default: 50).
    #[arg(long)]
    radius: Option<u32>,
    /// Which panoramas may answer.
    #[arg(long, value_enum)]
    source: Option<SourceArg>,
    /// Make Google answer 404 instead of a grey image when there is no panorama.
    #[arg(long)]
    return_error_code: bool,
    /// Sign the URL with GOOGLE_MAPS_URL_SIGNING_SECRET.
    #[arg(long)]
    sign: bool,
}

#[derive(Debug, ClapArgs)]
struct MetadataArgs {
    #[command(flatten)]
    point: Point,
    /// Metres to search for a panorama around the point (Google's default: 50).
    #[arg(long)]
    radius: Option<u32>,
    /// Which panoramas may answer.
    #[arg(long, value_enum)]
    source: Option<SourceArg>,
    /// Sign the request with GOOGLE_MAPS_URL_SIGNING_SECRET.
    #[arg(long)]
    sign: bool,
    /// Print the answer as JSON.
    #[arg(long)]
    json: bool,
    /// Origin of the Google Maps API (scheme://host[:port]), for a proxy or a local mock.
    #[arg(long, default_value = streetview::static_api::GOOGLE_MAPS_API_BASE)]
    base_url: String,
}

#[derive(Debug, ClapArgs)]
struct CostArgs {
    /// Static API images per month.
    #[arg(long = "static", default_value_t = 0)]
    static_images: u64,
    /// Dynamic (Maps JavaScript) panorama loads per month.
    #[arg(long, default_value_t = 0)]
    dynamic: u64,
    /// Metadata requests per month (always free; shown for completeness).
    #[arg(long, default_value_t = 0)]
    metadata: u64,
    /// Print the estimate as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_size(text: &str) -> Result<Size, String> {
    text.parse::<Size>().map_err(|e| e.to_string())
}

/// Runs `vigil streetview …`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Url(args) => url(args),
        Command::Static(args) => static_url(args),
        Command::Metadata(args) => metadata(args),
        Command::Cost(args) => cost(args),
    }
}

fn url(args: UrlArgs) -> anyhow::Result<ExitCode> {
    let pano = Pano {
        viewpoint: Some(args.point.lat_lng()?),
        pano: args.pano,
        heading: args.heading,
        pitch: args.pitch,
        fov: args.fov,
    };
    println!("{}", pano.build()?);
    Ok(ExitCode::SUCCESS)
}

fn static_url(args: StaticArgs) -> anyhow::Result<ExitCode> {
    let mut builder = StaticRequest::builder()
        .location(args.point.lat_lng()?)
        .size(args.size.width(), args.size.height());
    if let Some(h) = args.heading {
        builder = builder.heading(h);
    }
    if let Some(p) = args.pitch {
        builder = builder.pitch(p);
    }
    if let Some(f) = args.fov {
        builder = builder.fov(f);
    }
    if let Some(r) = args.radius {
        builder = builder.radius(r);
    }
    if let Some(s) = args.source {
        builder = builder.source(s.into());
    }
    if args.return_error_code {
        builder = builder.return_error_code(true);
    }
    let request = builder.build()?;
    let key = api_key()?;
    let secret = if args.sign {
        Some(signing_secret()?)
    } else {
        None
    };
    if secret.is_none() {
        eprintln!(
            "note: unsigned URL; Google limits unsigned Static API use. Set {SECRET_VAR} and add --sign."
        );
    }
    println!("{}", request.image_url(&key, secret.as_ref())?);
    Ok(ExitCode::SUCCESS)
}

fn metadata(args: MetadataArgs) -> anyhow::Result<ExitCode> {
    let at = args.point.lat_lng()?;
    let mut builder = StaticRequest::builder().location(at);
    if let Some(r) = args.radius {
        builder = builder.radius(r);
    }
    if let Some(s) = args.source {
        builder = builder.source(s.into());
    }
    let request = builder.build()?;
    let secret = if args.sign {
        Some(signing_secret()?)
    } else {
        None
    };
    let client = MetadataClient::new(
        api_key()?,
        secret,
        ClientConfig::default().with_base_url(args.base_url),
    )?;
    let answer = runtime()?.block_on(client.lookup(&request))?;

    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("status     {}", answer.status);
    if let Some(id) = &answer.pano_id {
        println!("pano id    {id}");
    }
    if let Some(pos) = answer.position() {
        println!("position   {pos} ({:.1} m from {at})", haversine_m(at, pos));
    }
    if let Some(date) = &answer.date {
        println!("captured   {date}");
    }
    if let Some(copyright) = &answer.copyright {
        println!("copyright  {copyright}");
    }
    if answer.has_panorama() {
        let link = Pano {
            viewpoint: Some(answer.position().unwrap_or(at)),
            pano: answer.pano_id.clone(),
            ..Pano::default()
        };
        println!("link       {}", link.build()?);
    } else {
        println!("no panorama near {at}");
    }
    println!("cost       free (metadata requests use no quota)");
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct CostLine {
    sku: &'static str,
    events: u64,
    free: u64,
    billable: u64,
    cost_usd: f64,
    cost_micro_usd: u128,
}

#[derive(Serialize)]
struct CostReport {
    price_list_date: &'static str,
    lines: Vec<CostLine>,
    total_usd: f64,
    total_micro_usd: u128,
    note: &'static str,
}

fn cost(args: CostArgs) -> anyhow::Result<ExitCode> {
    let bill = cost::estimate(&[
        (Sku::StaticStreetView, args.static_images),
        (Sku::DynamicStreetView, args.dynamic),
        (Sku::StaticStreetViewMetadata, args.metadata),
    ]);
    if args.json {
        let report = CostReport {
            price_list_date: bill.price_list_date,
            lines: bill
                .lines
                .iter()
                .map(|l| CostLine {
                    sku: l.sku.name(),
                    events: l.events,
                    free: l.free,
                    billable: l.billable,
                    cost_usd: l.cost.dollars(),
                    cost_micro_usd: l.cost.micros(),
                })
                .collect(),
            total_usd: bill.total.dollars(),
            total_micro_usd: bill.total.micros(),
            note: cost::PRICE_LIST_NOTE,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "Street View, one month, Google price list of {} (USD)",
        bill.price_list_date
    );
    println!(
        "{:<28} {:>12} {:>12} {:>12} {:>14}",
        "SKU", "events", "free", "billable", "cost"
    );
    for line in &bill.lines {
        println!(
            "{:<28} {:>12} {:>12} {:>12} {:>14}",
            line.sku.name(),
            group(line.events),
            group(line.free),
            group(line.billable),
            line.cost.to_string()
        );
    }
    println!("{:<28} {:>53}", "total", bill.total.to_string());
    println!();
    println!("note: {}", cost::PRICE_LIST_NOTE);
    Ok(ExitCode::SUCCESS)
}

/// `1234567` → `1,234,567`.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn api_key() -> anyhow::Result<ApiKey> {
    let Ok(key) = std::env::var(KEY_VAR) else {
        bail!(
            "{KEY_VAR} is not set: create an API key with the Street View Static API enabled \
             (Google Cloud console → Google Maps Platform → Keys & Credentials), then \
             `export {KEY_VAR}=...`"
        );
    };
    ApiKey::new(key).with_context(|| format!("{KEY_VAR} is empty"))
}

fn signing_secret() -> anyhow::Result<SigningSecret> {
    let Ok(secret) = std::env::var(SECRET_VAR) else {
        bail!(
            "--sign needs {SECRET_VAR}: copy the URL signing secret from the Google Cloud console \
             (Google Maps Platform → Street View Static API → URL signing secret), then \
             `export {SECRET_VAR}=...`"
        );
    };
    SigningSecret::from_base64(&secret)
        .with_context(|| format!("{SECRET_VAR} is not a valid secret"))
}

/// A small runtime for one command's requests.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_thousands() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1_000), "1,000");
        assert_eq!(group(6_000_000), "6,000,000");
    }
}
