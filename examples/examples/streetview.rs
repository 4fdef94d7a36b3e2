//! Street-level imagery for one point: a free Google Maps link, a signed Street View Static API
//! URL, the free metadata check, what images would cost, and open imagery from Panoramax (and
//! Mapillary when you have a token), nearest first.
//!
//! Run it with:
//!
//! ```text
//! cargo run -p vigil-examples --example streetview                      # the Eiffel Tower
//! cargo run -p vigil-examples --example streetview -- 49.0068908 1.9191859
//! ```
//!
//! Environment (all optional):
//!
//! | variable | default | what |
//! |---|---|---|
//! | `GOOGLE_MAPS_API_KEY` | `YOUR_API_KEY` (URLs only, no request) | with a real key, the metadata lookup runs too |
//! | `GOOGLE_MAPS_URL_SIGNING_SECRET` | Google's published example secret | signs the Static URL |
//! | `MAPILLARY_ACCESS_TOKEN` | none (Mapillary skipped) | a client token `MLY|…` |
//! | `PANORAMAX_API_URL` | `https://api.panoramax.xyz/api` | any Panoramax instance, proxy or mock |
//! | `MAPILLARY_API_URL` | `https://graph.mapillary.com` | a proxy or mock |

use streetview::cost::{self, Sku};
use streetview::mapillary::{ImageQuery, MapillaryClient};
use streetview::maps_url::Pano;
use streetview::metadata::MetadataClient;
use streetview::panoramax::{AssetKind, PanoramaxClient};
use streetview::static_api::StaticRequest;
use streetview::{AccessToken, ApiKey, ClientConfig, LatLng, SigningSecret, haversine_m};

/// Google's own documentation example secret: signs correctly, authorises nothing.
const EXAMPLE_SECRET: &str = "vNIXE0xscrmjlyV-12Nj_BvUPaw=";

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let point = match args.as_slice() {
        [] => LatLng::new(48.857832, 2.295226)?,
        [lat, lng] => LatLng::new(lat.parse()?, lng.parse()?)?,
        _ => anyhow::bail!("usage: streetview [LAT LNG]"),
    };
    println!("point: {point}\n");

    // 1. Google: a keyless link, then a signed Static API URL.
    println!(
        "Google Maps link (free):\n  {}",
        Pano::at(point).heading(0.0).build()?
    );

    let real_key = std::env::var("GOOGLE_MAPS_API_KEY").ok();
    let key = ApiKey::new(real_key.clone().unwrap_or_else(|| "YOUR_API_KEY".into()))?;
    let secret = SigningSecret::from_base64(
        &std::env::var("GOOGLE_MAPS_URL_SIGNING_SECRET").unwrap_or_else(|_| EXAMPLE_SECRET.into()),
    )?;
    let request = StaticRequest::builder()
        .location(point)
        .size(640, 400)
        .heading(0.0)
        .fov(90.0)
        .build()?;
    println!(
        "Static API image, signed:\n  {}",
        request.image_url(&key, Some(&secret))?
    );

    // 2. The metadata check is free: do it before paying for an image.
    if real_key.is_some() {
        let client = MetadataClient::new(key, Some(secret), ClientConfig::default())?;
        let meta = client.lookup(&request).await?;
        match meta.position() {
            Some(at) => println!(
                "metadata: {} pano {} taken {} at {at} ({:.1} m away)",
                meta.status,
                meta.pano_id.as_deref().unwrap_or("?"),
                meta.date.as_deref().unwrap_or("?"),
                haversine_m(point, at)
            ),
            None => println!("metadata: {} (no panorama here)", meta.status),
        }
    } else {
        println!("metadata: skipped (set GOOGLE_MAPS_API_KEY to look it up; it is free)");
    }

    // 3. What a month of this would cost.
    let bill = cost::estimate(&[
        (Sku::StaticStreetView, 50_000),
        (Sku::StaticStreetViewMetadata, 50_000),
    ]);
    println!(
        "\n50,000 static images + 50,000 metadata checks a month: {} (price list of {})",
        bill.total, bill.price_list_date
    );

    // 4. Open imagery near the point.
    let radius = 50.0;
    println!("\nopen imagery within {radius} m:");
    let config = ClientConfig {
        base_url: std::env::var("PANORAMAX_API_URL").ok(),
        ..ClientConfig::default()
    };
    let panoramax = PanoramaxClient::new(config)?;
    match panoramax.items_near(point, radius, 5).await {
        Ok(items) if items.is_empty() => println!("  panoramax ({}): none", panoramax.base_url()),
        Ok(items) => {
            for item in &items {
                let thumb = item
                    .pick_asset(&[AssetKind::Thumb])
                    .map(|(_, a)| a.href.as_str());
                println!(
                    "  panoramax {} licence {} thumb {}",
                    panoramax.viewer_url(item),
                    item.license().unwrap_or("?"),
                    thumb.unwrap_or("-")
                );
            }
        }
        Err(err) => println!("  panoramax: {err}"),
    }

    match std::env::var("MAPILLARY_ACCESS_TOKEN") {
        Ok(token) => {
            let config = ClientConfig {
                base_url: std::env::var("MAPILLARY_API_URL").ok(),
                ..ClientConfig::default()
            };
            let mapillary = MapillaryClient::new(AccessToken::new(token)?, config)?;
            let query = ImageQuery {
                limit: Some(5),
                ..ImageQuery::default()
            };
            match mapillary.images_near(point, radius, &query, 4).await {
                Ok(images) => {
                    for image in &images {
                        println!("  mapillary {} (CC BY-SA 4.0)", image.viewer_url());
                    }
                    if images.is_empty() {
                        println!("  mapillary: none");
                    }
                }
                Err(err) => println!("  mapillary: {err}"),
            }
        }
        Err(_) => println!("  mapillary: skipped (set MAPILLARY_ACCESS_TOKEN)"),
    }
    Ok(())
}
