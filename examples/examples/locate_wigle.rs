//! Locate a device through WiGLE: look each access point up online, then estimate.
//!
//! ```text
//! WIGLE_API_NAME=AID... WIGLE_API_TOKEN=... cargo run -p vigil-examples --example locate_wigle -- \
//!     aa:bb:cc:dd:ee:01@-55 aa:bb:cc:dd:ee:02@-70
//! ```
//!
//! `WIGLE_BASE_URL` points the client elsewhere (a proxy, or a local mock for a dry run). Each
//! access point costs one WiGLE query; WiGLE's free quota is small, so `vigil locate` keeps
//! answers in a cache — this example deliberately does not, to stay short.

use geo_locate::wigle::{WigleClient, WigleConfig};
use geo_locate::{GeolocateRequest, Locator};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (Ok(name), Ok(token)) = (
        std::env::var("WIGLE_API_NAME"),
        std::env::var("WIGLE_API_TOKEN"),
    ) else {
        eprintln!(
            "set WIGLE_API_NAME and WIGLE_API_TOKEN (wigle.net → Account → API Token) and run again"
        );
        return Ok(());
    };
    let mut config = WigleConfig::new(name, token);
    if let Ok(base) = std::env::var("WIGLE_BASE_URL") {
        config = config.with_base_url(base);
    }
    let locator = Locator::builder()
        .wigle(WigleClient::new(config)?, None)
        .build()?;

    // `MAC@dBm` arguments become a geolocate request, as a phone would send it.
    let access_points: Vec<serde_json::Value> = std::env::args()
        .skip(1)
        .map(|arg| {
            let (mac, signal) = arg.split_once('@').unwrap_or((arg.as_str(), "-70"));
            serde_json::json!({"macAddress": mac, "signalStrength": signal.parse::<i32>().unwrap_or(-70)})
        })
        .collect();
    if access_points.len() < 2 {
        eprintln!(
            "name at least two access points as MAC@dBm (one AP is never enough: a privacy rule)"
        );
        return Ok(());
    }
    let request: GeolocateRequest =
        serde_json::from_value(serde_json::json!({ "wifiAccessPoints": access_points }))?;
    match locator.locate(&request).await? {
        Some(found) => println!("{}", serde_json::to_string_pretty(&found)?),
        None => println!("not found: WiGLE does not know enough of these access points"),
    }
    Ok(())
}
