//! Street-level images near a point from every configured open provider, nearest first.
//!
//! The one search both the `vigil imagery` command and the server's `/api/imagery` run: it asks
//! Mapillary and Panoramax at once, merges their answers by distance, and keeps going when one
//! of them fails (its error is returned beside the images of the others).

use serde::Serialize;

use crate::coords::{LatLng, haversine_m};
use crate::error::{Error, Result, check_range};
use crate::mapillary::{ImageQuery, MAX_LIMIT, MapillaryClient};
use crate::panoramax::{AssetKind, PanoramaxClient};

/// The largest search radius, in metres.
pub const MAX_RADIUS_M: f64 = 5_000.0;

/// Mapillary requests one search may make at most (one per tile of its bounding box).
pub const MAX_MAPILLARY_REQUESTS: usize = 16;

/// Mapillary images are licensed CC BY-SA 4.0 (Mapillary's terms); the API does not say it per
/// image.
pub const MAPILLARY_LICENSE: &str = "CC-BY-SA-4.0";

/// Where an image comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Mapillary API v4.
    Mapillary,
    /// A Panoramax instance.
    Panoramax,
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Provider::Mapillary => "Mapillary",
            Provider::Panoramax => "Panoramax",
        })
    }
}

/// One image found near the point.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NearbyImage {
    /// The provider.
    pub provider: Provider,
    /// The provider's id of the image (stable; thumbnail URLs expire, ids do not).
    pub id: String,
    /// Latitude of the camera.
    pub lat: f64,
    /// Longitude of the camera.
    pub lng: f64,
    /// Distance from the searched point, in metres.
    pub distance_m: f64,
    /// When it was taken (RFC 3339), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub captured_at: Option<String>,
    /// Compass heading of the camera, in degrees, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heading: Option<f64>,
    /// Whether it is a 360° panorama, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub panorama: Option<bool>,
    /// Its licence, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub licence: Option<String>,
    /// A link to the provider's viewer.
    pub viewer_url: String,
    /// A small image (Panoramax only: Mapillary's thumbnail URLs expire).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumb_url: Option<String>,
}

/// What a search found, and which providers failed.
#[derive(Debug, Default)]
pub struct Nearby {
    /// The images, nearest first.
    pub images: Vec<NearbyImage>,
    /// Providers that failed, with their errors.
    pub failures: Vec<(Provider, Error)>,
}

/// Searches every given provider around `center`, at once, and merges the answers.
///
/// `radius_m` must be in 1..=5000 and `limit` (per provider) in 1..=2000; those are the only
/// errors returned directly. Provider failures are in [`Nearby::failures`].
pub async fn search(
    mapillary: Option<&MapillaryClient>,
    panoramax: Option<&PanoramaxClient>,
    center: LatLng,
    radius_m: f64,
    limit: u32,
) -> Result<Nearby> {
    check_range("radius", "1..=5000 metres", radius_m, 1.0, MAX_RADIUS_M)?;
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Error::out_of_range("limit", "1..=2000", limit));
    }
    let from_mapillary = async {
        let client = mapillary?;
        let query = ImageQuery {
            limit: Some(limit),
            ..ImageQuery::default()
        };
        let found = client
            .images_near(center, radius_m, &query, MAX_MAPILLARY_REQUESTS)
            .await
            .map(|images| {
                images
                    .into_iter()
                    .filter_map(|image| {
                        let at = image.position()?;
                        Some(NearbyImage {
                            provider: Provider::Mapillary,
                            lat: at.lat(),
                            lng: at.lng(),
                            distance_m: haversine_m(center, at),
                            captured_at: image.captured_at.map(|t| t.to_rfc3339()),
                            heading: image.heading(),
                            panorama: image.is_pano,
                            licence: Some(MAPILLARY_LICENSE.to_owned()),
                            viewer_url: image.viewer_url(),
                            thumb_url: None,
                            id: image.id,
                        })
                    })
                    .collect::<Vec<_>>()
            });
        Some(found)
    };
    let from_panoramax = async {
        let client = panoramax?;
        let found = client
            .items_near(center, radius_m, limit)
            .await
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| {
                        let at = item.position()?;
                        Some(NearbyImage {
                            provider: Provider::Panoramax,
                            id: item.id.clone(),
                            lat: at.lat(),
                            lng: at.lng(),
                            distance_m: haversine_m(center, at),
                            captured_at: item.properties.datetime.map(|t| t.to_rfc3339()),
                            heading: item.properties.azimuth,
                            panorama: Some(item.is_360()),
                            licence: item.license().map(str::to_owned),
                            viewer_url: client.viewer_url(item),
                            thumb_url: item
                                .pick_asset(&[AssetKind::Thumb])
                                .map(|(_, asset)| asset.href.clone()),
                        })
                    })
                    .collect::<Vec<_>>()
            });
        Some(found)
    };
    let (m, p) = futures::future::join(from_mapillary, from_panoramax).await;
    let mut nearby = Nearby::default();
    for (provider, outcome) in [(Provider::Mapillary, m), (Provider::Panoramax, p)] {
        match outcome {
            None => {}
            Some(Ok(images)) => nearby.images.extend(images),
            Some(Err(err)) => nearby.failures.push((provider, err)),
        }
    }
    nearby
        .images
        .sort_by(|a, b| a.distance_m.total_cmp(&b.distance_m));
    Ok(nearby)
}
