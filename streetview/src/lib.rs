//! Street-level imagery for any point on the ground: exact, signed Google Street View URLs and
//! metadata, and open imagery from Mapillary and Panoramax.
//!
//! No other Rust crate covers this. Every URL here is built by one encoder in one fixed
//! parameter order, so what is tested is byte for byte what is sent, and what is signed is
//! exactly what Google receives.
//!
//! # Example
//!
//! ```
//! use streetview::{maps_url::Pano, static_api::StaticRequest, ApiKey, LatLng, SigningSecret};
//!
//! let eiffel = LatLng::new(48.857832, 2.295226)?;
//!
//! // A free, keyless link that opens Street View in Google Maps.
//! let link = Pano::at(eiffel).heading(-90.0).pitch(38.0).fov(80.0).build()?;
//! assert!(link.starts_with("https://www.google.com/maps/@?api=1&map_action=pano&viewpoint=48.857832%2C2.295226"));
//!
//! // A signed Street View Static API image URL (key and secret come from your binary's
//! // configuration; this crate never reads the environment).
//! let key = ApiKey::new("YOUR_API_KEY")?;
//! let secret = SigningSecret::from_base64("vNIXE0xscrmjlyV-12Nj_BvUPaw=")?;
//! let image = StaticRequest::builder().location(eiffel).size(640, 400).heading(270.0).build()?;
//! let url = image.image_url(&key, Some(&secret))?;
//! assert!(url.contains("&key=YOUR_API_KEY&signature="));
//! # Ok::<(), streetview::Error>(())
//! ```
//!
//! Finding open imagery near a point (network, so not run here):
//!
//! ```no_run
//! use streetview::{panoramax::{AssetKind, PanoramaxClient}, ClientConfig, LatLng};
//!
//! # async fn run() -> streetview::Result<()> {
//! let panoramax = PanoramaxClient::new(ClientConfig::default())?; // the meta-catalogue
//! for item in panoramax.items_near(LatLng::new(49.0068908, 1.9191859)?, 50.0, 10).await? {
//!     let thumb = item.pick_asset(&[AssetKind::Thumb]).map(|(_, a)| a.href.as_str());
//!     println!("{} {:?} {:?}", panoramax.viewer_url(&item), item.license(), thumb);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # What is here
//!
//! | module | what | network |
//! |---|---|---|
//! | [`coords`] | [`LatLng`] (rejects bad latitudes, normalises longitudes to `[-180, 180)`), [`fmt6`], [`BBox`], [`bbox_around`] (pole clamp, antimeridian split), [`haversine_m`] | no |
//! | [`maps_url`] | Google Maps URLs (`api=1`): panorama, search, directions, map; Embed API Street View | no |
//! | [`static_api`] | Street View Static API request builder: image and metadata URLs | no |
//! | [`signature`] | HMAC-SHA1 URL signing ([`sign`], [`sign_url`]) | no |
//! | [`metadata`] | the free metadata API: typed answer and [`metadata::MetadataClient`] | yes |
//! | [`mapillary`] | Mapillary API v4: `/images` by bbox, single images, vector tiles, viewer links | yes |
//! | [`panoramax`] | Panoramax STAC: search by bbox or place, collections, assets, licences, viewer links | yes |
//! | [`nearby`] | images near a point from Mapillary and Panoramax at once, merged nearest first | yes |
//! | [`cost`] | the 2025 Street View price list with free caps and bands | no |
//! | [`kartaview`] | a KartaView map link (its API is too unstable for a client) | no |
//!
//! # Decisions worth knowing
//!
//! - **Out-of-range input is an error, never clamped**, and the error names the parameter and
//!   its range ([`Error::OutOfRange`]). Latitudes outside ±90 are rejected; longitudes are
//!   wrapped (a click on a world copy of a web map is a real place).
//! - **Coordinates** go to Google as `lat,lng` with at most 6 decimals (Google ignores more), to
//!   Mapillary and Panoramax as `lon,lat` with at most 7; never as `-0`.
//! - **Mapillary boxes**: [`mapillary::MapillaryClient::images_in_bbox`] *refuses* a box of
//!   0.01 square degrees or more; [`mapillary::split_bbox`] tiles one, and
//!   [`mapillary::MapillaryClient::images_near`] tiles up to a request budget you set.
//! - **Credentials** ([`ApiKey`], [`SigningSecret`], [`AccessToken`]) print as `***` in `Debug`;
//!   errors carry request paths, never URLs with keys. The Mapillary token travels in the
//!   `Authorization: OAuth` header, except in vector-tile URLs, where Mapillary wants it in
//!   the query.
//! - **Things that expire**: Mapillary thumbnail URLs are signed CDN links with a lifetime
//!   (store image ids, not URLs); Google pano ids drift (store coordinates next to them, and on
//!   `ZERO_RESULTS` for an id, look up the coordinates again).
//! - **Rate limits** are [`Error::RateLimited`] (HTTP 429, Google's `OVER_QUERY_LIMIT`,
//!   Mapillary's application limit); other provider errors are [`Error::Provider`]. Nothing is
//!   retried behind your back.
//! - Every client takes a [`ClientConfig`] whose base URL can point at a proxy, another
//!   Panoramax instance or a local mock.

pub mod coords;
pub mod cost;
mod credentials;
mod error;
mod http;
pub mod kartaview;
pub mod mapillary;
pub mod maps_url;
pub mod metadata;
pub mod nearby;
pub mod panoramax;
mod query;
pub mod signature;
pub mod static_api;

pub use coords::{BBox, LatLng, Place, bbox_around, fmt6, haversine_m, normalize_lng};
pub use credentials::{AccessToken, ApiKey, SigningSecret};
pub use error::{Error, Result};
pub use http::ClientConfig;
pub use query::encode_component;
pub use signature::{sign, sign_url};

/// Compiles the README's example as a doctest, so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
