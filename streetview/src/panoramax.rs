//! Panoramax: federated, open street-level imagery behind a STAC API (GeoVisio servers).
//!
//! The default base URL is the meta-catalogue `https://api.panoramax.xyz/api`, which searches
//! every federated instance; any instance works the same (`https://panoramax.ign.fr/api`,
//! `https://panoramax.openstreetmap.fr/api`, your own). Reads need no account or token.
//!
//! - `GET /api/search` (STAC item search) by `bbox` or by **`place_position=lon,lat`**: pictures
//!   *of* a place (360° ones, or flat ones whose heading points at it), with
//!   `place_distance=min-max` metres (default 3-15) and `place_fov_tolerance` 2..180 degrees
//!   (default 30; ignored for 360° pictures). Results are sorted by distance.
//! - `GET /api/collections` (sequences) and `/api/collections/{id}/items`.
//! - Each item carries its own licence (`properties.license`, SPDX): the IGN instance publishes
//!   under etalab-2.0, the OpenStreetMap France one under CC-BY-SA-4.0. Show it with the picture.
//! - Assets: `hd` (full resolution), `sd` (2048 px wide), `thumb` (500 px wide). A 360° thumb
//!   shows the panorama's centre (the direction of travel), not necessarily the target.
//!
//! GeoVisio does not handle boxes that cross the antimeridian: [`PanoramaxClient::items_near`]
//! splits them.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use crate::coords::{BBox, LatLng, bbox_around, fmt7, haversine_m};
use crate::error::{Error, Result};
use crate::http::{self, ClientConfig};
use crate::query::{Query, encode_component};

const PROVIDER: &str = "panoramax";

/// The meta-catalogue's API root, the default base URL.
pub const META_CATALOGUE: &str = "https://api.panoramax.xyz/api";

/// Most items one search returns.
pub const MAX_LIMIT: u32 = 10_000;

/// Default `place_distance`, metres.
pub const DEFAULT_PLACE_DISTANCE: (u32, u32) = (3, 15);

/// Default `place_fov_tolerance`, degrees.
pub const DEFAULT_FOV_TOLERANCE: u32 = 30;

/// Pictures of a place: taken around `position`, looking at it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlaceFilter {
    /// The place to see (sent as `lon,lat`).
    pub position: LatLng,
    /// Camera distance from the place, `(min, max)` metres, `min ≤ max`; default `(3, 15)`.
    pub distance_m: (u32, u32),
    /// How far off the place the camera's heading may be, `2..=180` degrees; default 30.
    pub fov_tolerance: u32,
}

impl PlaceFilter {
    /// Pictures of `position`, with the server's defaults.
    pub fn new(position: LatLng) -> Self {
        Self {
            position,
            distance_m: DEFAULT_PLACE_DISTANCE,
            fov_tolerance: DEFAULT_FOV_TOLERANCE,
        }
    }
}

/// Where to search.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Area {
    /// Pictures inside a box.
    BBox(BBox),
    /// Pictures of a place.
    Place(PlaceFilter),
}

/// A `/search` request.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    /// Box or place.
    pub area: Area,
    /// Most items, `1..=10000`; `None` leaves the server's default (10).
    pub limit: Option<u32>,
    /// RFC 3339 instant or interval (`2023-01-01T00:00:00Z/..`), passed through.
    pub datetime: Option<String>,
    /// Only items of these collections (sequences).
    pub collections: Vec<String>,
}

impl SearchQuery {
    /// A search in `area` with no other filter.
    pub fn new(area: Area) -> Self {
        Self {
            area,
            limit: None,
            datetime: None,
            collections: Vec::new(),
        }
    }

    /// Sets the limit.
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }
}

/// A `/collections` request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CollectionsQuery {
    /// Only collections intersecting this box.
    pub bbox: Option<BBox>,
    /// Most collections, `1..=1000`; `None` leaves the server's default (100).
    pub limit: Option<u32>,
    /// RFC 3339 instant or interval.
    pub datetime: Option<String>,
}

/// A link of a STAC document (`next` pages, `self`, the collection, ...).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Link {
    /// Relation: `next`, `prev`, `self`, `collection`, ...
    pub rel: String,
    /// Target.
    pub href: String,
    /// Media type.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// A file of an item.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Asset {
    /// Where to download it.
    pub href: String,
    /// Media type (`image/jpeg`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// STAC roles: `data` (hd), `visual` (sd), `thumbnail` (thumb).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// Which picture file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssetKind {
    /// `hd`: full resolution (role `data`).
    Hd,
    /// `sd`: 2048 px wide (role `visual`).
    Sd,
    /// `thumb`: 500 px wide (role `thumbnail`).
    Thumb,
}

impl AssetKind {
    /// The asset key.
    pub fn key(self) -> &'static str {
        match self {
            AssetKind::Hd => "hd",
            AssetKind::Sd => "sd",
            AssetKind::Thumb => "thumb",
        }
    }

    /// The STAC role that stands for it when the key is missing.
    pub fn role(self) -> &'static str {
        match self {
            AssetKind::Hd => "data",
            AssetKind::Sd => "visual",
            AssetKind::Thumb => "thumbnail",
        }
    }
}

/// Camera geometry (`pers:interior_orientation`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
pub struct InteriorOrientation {
    /// Horizontal field of view, degrees (360 for a panorama).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_of_view: Option<f64>,
    /// Camera make.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera_manufacturer: Option<String>,
    /// Camera model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera_model: Option<String>,
}

/// What an item says about its picture.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
pub struct ItemProperties {
    /// Capture time, with the photographer's offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datetime: Option<DateTime<FixedOffset>>,
    /// Heading of the camera, degrees clockwise from north.
    #[serde(
        default,
        rename = "view:azimuth",
        skip_serializing_if = "Option::is_none"
    )]
    pub azimuth: Option<f64>,
    /// Camera geometry.
    #[serde(
        default,
        rename = "pers:interior_orientation",
        skip_serializing_if = "Option::is_none"
    )]
    pub interior_orientation: Option<InteriorOrientation>,
    /// Who took it.
    #[serde(
        default,
        rename = "geovisio:producer",
        skip_serializing_if = "Option::is_none"
    )]
    pub producer: Option<String>,
    /// Licence of the picture (SPDX id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// Every other property.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// A GeoJSON point: `[lon, lat]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Point {
    /// `[longitude, latitude]`.
    pub coordinates: [f64; 2],
}

/// One picture (a STAC item, a GeoJSON Feature).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Item {
    /// Picture id (a UUID).
    pub id: String,
    /// Its collection (sequence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    /// Where it was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geometry: Option<Point>,
    /// What it says about itself.
    #[serde(default)]
    pub properties: ItemProperties,
    /// Its files, by key (`hd`, `sd`, `thumb`).
    #[serde(default)]
    pub assets: BTreeMap<String, Asset>,
    /// Links.
    #[serde(default)]
    pub links: Vec<Link>,
}

impl Item {
    /// Where the picture was taken (`None` without a valid geometry).
    pub fn position(&self) -> Option<LatLng> {
        let [lon, lat] = self.geometry.as_ref()?.coordinates;
        LatLng::new(lat, lon).ok()
    }

    /// The picture's licence (SPDX id), to show next to it.
    pub fn license(&self) -> Option<&str> {
        self.properties.license.as_deref()
    }

    /// Whether it is a 360° panorama.
    pub fn is_360(&self) -> bool {
        self.properties
            .interior_orientation
            .as_ref()
            .and_then(|o| o.field_of_view)
            .is_some_and(|fov| fov >= 360.0)
    }

    /// The asset of `kind`: by key, else by STAC role.
    pub fn asset(&self, kind: AssetKind) -> Option<&Asset> {
        self.assets.get(kind.key()).or_else(|| {
            self.assets
                .values()
                .find(|a| a.roles.iter().any(|r| r == kind.role()))
        })
    }

    /// The first asset available in order of `preference`.
    ///
    /// `&[AssetKind::Sd, AssetKind::Thumb]` suits a screen; `&[AssetKind::Hd]` an archive.
    pub fn pick_asset(&self, preference: &[AssetKind]) -> Option<(AssetKind, &Asset)> {
        preference
            .iter()
            .find_map(|&kind| self.asset(kind).map(|a| (kind, a)))
    }
}

/// A page of items (a GeoJSON FeatureCollection).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ItemCollection {
    /// The items.
    pub features: Vec<Item>,
    /// Paging and other links.
    #[serde(default)]
    pub links: Vec<Link>,
}

impl ItemCollection {
    /// The URL of the next page, if any.
    pub fn next_page(&self) -> Option<&str> {
        self.links
            .iter()
            .find(|l| l.rel == "next")
            .map(|l| l.href.as_str())
    }
}

/// A sequence of pictures (a STAC collection).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Collection {
    /// Collection id.
    pub id: String,
    /// Title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Licence (SPDX id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// STAC extent (spatial box, time interval), as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extent: Option<serde_json::Value>,
    /// Links.
    #[serde(default)]
    pub links: Vec<Link>,
    /// Every other field (`stats:items`, `geovisio:status`, ...).
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// A page of collections.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Collections {
    /// The collections.
    pub collections: Vec<Collection>,
    /// Paging and other links.
    #[serde(default)]
    pub links: Vec<Link>,
}

#[derive(Deserialize)]
struct ErrorBody {
    message: Option<String>,
}

/// A Panoramax (GeoVisio) API client.
#[derive(Debug, Clone)]
pub struct PanoramaxClient {
    http: reqwest::Client,
    base: String,
}

impl PanoramaxClient {
    /// A client; the config's base URL defaults to [`META_CATALOGUE`]. Give an instance's API
    /// root, `/api` included.
    pub fn new(config: ClientConfig) -> Result<Self> {
        let base = http::base_url(
            "base url",
            config.base_url.as_deref().unwrap_or(META_CATALOGUE),
        )?;
        Ok(Self {
            http: config.client()?,
            base,
        })
    }

    /// The API root in use.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The `/search` URL for `query`.
    ///
    /// ```
    /// use streetview::{panoramax::{Area, PanoramaxClient, PlaceFilter, SearchQuery}, ClientConfig, LatLng};
    /// let client = PanoramaxClient::new(ClientConfig::default())?;
    /// let place = PlaceFilter {
    ///     position: LatLng::new(49.0068908, 1.9191859)?,
    ///     distance_m: (5, 20),
    ///     fov_tolerance: 30,
    /// };
    /// assert_eq!(
    ///     client.search_url(&SearchQuery::new(Area::Place(place)).limit(2))?,
    ///     "https://api.panoramax.xyz/api/search?place_position=1.9191859%2C49.0068908&place_distance=5-20&place_fov_tolerance=30&limit=2"
    /// );
    /// # Ok::<(), streetview::Error>(())
    /// ```
    pub fn search_url(&self, query: &SearchQuery) -> Result<String> {
        let mut q = Query::new();
        match &query.area {
            Area::BBox(bbox) => {
                q.push("bbox", &bbox.to_string());
            }
            Area::Place(place) => {
                let (min, max) = place.distance_m;
                if min > max {
                    return Err(Error::out_of_range(
                        "place_distance",
                        "min-max metres with min <= max",
                        format!("{min}-{max}"),
                    ));
                }
                if !(2..=180).contains(&place.fov_tolerance) {
                    return Err(Error::out_of_range(
                        "place_fov_tolerance",
                        "2..=180",
                        place.fov_tolerance,
                    ));
                }
                q.push("place_position", &place.position.to_lon_lat())
                    .push("place_distance", &format!("{min}-{max}"))
                    .push("place_fov_tolerance", &place.fov_tolerance.to_string());
            }
        }
        if let Some(limit) = query.limit {
            if !(1..=MAX_LIMIT).contains(&limit) {
                return Err(Error::out_of_range("limit", "1..=10000", limit));
            }
            q.push("limit", &limit.to_string());
        }
        q.push_opt("datetime", query.datetime.as_deref());
        if !query.collections.is_empty() {
            q.push("collections", &query.collections.join(","));
        }
        Ok(format!("{}/search?{}", self.base, q.as_str()))
    }

    /// Searches pictures.
    #[tracing::instrument(skip(self))]
    pub async fn search(&self, query: &SearchQuery) -> Result<ItemCollection> {
        let url = self.search_url(query)?;
        self.get("/search", &url).await
    }

    /// The pictures within `radius_m` metres of `center`, nearest first, at most `limit`.
    ///
    /// One bbox search (two across the antimeridian), each asking for up to `limit` items,
    /// then filtered to the circle.
    pub async fn items_near(&self, center: LatLng, radius_m: f64, limit: u32) -> Result<Vec<Item>> {
        let mut seen = HashSet::new();
        let mut found: Vec<(f64, Item)> = Vec::new();
        for bbox in bbox_around(center, radius_m)? {
            let page = self
                .search(&SearchQuery::new(Area::BBox(bbox)).limit(limit))
                .await?;
            for item in page.features {
                let Some(distance) = item.position().map(|p| haversine_m(center, p)) else {
                    continue;
                };
                if distance <= radius_m && seen.insert(item.id.clone()) {
                    found.push((distance, item));
                }
            }
        }
        found.sort_by(|a, b| a.0.total_cmp(&b.0));
        Ok(found
            .into_iter()
            .take(limit as usize)
            .map(|(_, item)| item)
            .collect())
    }

    /// Lists collections (sequences).
    #[tracing::instrument(skip(self))]
    pub async fn collections(&self, query: &CollectionsQuery) -> Result<Collections> {
        let mut q = Query::new();
        q.push_opt("bbox", query.bbox.map(|b| b.to_string()).as_deref());
        if let Some(limit) = query.limit {
            if !(1..=1000).contains(&limit) {
                return Err(Error::out_of_range("limit", "1..=1000", limit));
            }
            q.push("limit", &limit.to_string());
        }
        q.push_opt("datetime", query.datetime.as_deref());
        let url = format!("{}/collections?{}", self.base, q.as_str());
        self.get("/collections", &url).await
    }

    /// The items of one collection.
    #[tracing::instrument(skip(self))]
    pub async fn collection_items(
        &self,
        collection_id: &str,
        limit: Option<u32>,
    ) -> Result<ItemCollection> {
        if collection_id.trim().is_empty() {
            return Err(Error::invalid("collection id", "the id is empty"));
        }
        let mut q = Query::new();
        q.push_opt("limit", limit.map(|l| l.to_string()).as_deref());
        let url = format!(
            "{}/collections/{}/items?{}",
            self.base,
            encode_component(collection_id),
            q.as_str()
        );
        self.get("/collections/{id}/items", &url).await
    }

    /// The web viewer on `item`, at map zoom 18 on its position (when known).
    ///
    /// The viewer is served at the instance's root (the API base without `/api`).
    pub fn viewer_url(&self, item: &Item) -> String {
        let root = self.base.strip_suffix("/api").unwrap_or(&self.base);
        let mut url = format!("{root}/?focus=pic&pic={}", encode_component(&item.id));
        if let Some(at) = item.position() {
            url.push_str(&format!("&map=18/{}/{}", fmt7(at.lat()), fmt7(at.lng())));
        }
        url
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, endpoint: &str, url: &str) -> Result<T> {
        let answer = http::get(&self.http, PROVIDER, endpoint, url, None).await?;
        if !answer.status.is_success() {
            let message = serde_json::from_slice::<ErrorBody>(&answer.body)
                .ok()
                .and_then(|b| b.message)
                .or_else(|| http::body_snippet(&answer.body));
            return Err(Error::Provider {
                provider: PROVIDER,
                endpoint: endpoint.to_owned(),
                code: format!("HTTP {}", answer.status.as_u16()),
                message,
            });
        }
        http::decode(PROVIDER, endpoint, &answer.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> PanoramaxClient {
        PanoramaxClient::new(ClientConfig::default()).unwrap()
    }

    fn place() -> PlaceFilter {
        PlaceFilter {
            position: LatLng::new(49.0068908, 1.9191859).unwrap(),
            distance_m: (5, 20),
            fov_tolerance: 30,
        }
    }

    #[test]
    fn place_reference_vector() {
        let url = client()
            .search_url(&SearchQuery::new(Area::Place(place())).limit(2))
            .unwrap();
        assert_eq!(
            url,
            "https://api.panoramax.xyz/api/search?place_position=1.9191859%2C49.0068908&place_distance=5-20&place_fov_tolerance=30&limit=2"
        );
    }

    #[test]
    fn place_defaults() {
        let p = PlaceFilter::new(LatLng::new(1.0, 2.0).unwrap());
        let url = client()
            .search_url(&SearchQuery::new(Area::Place(p)))
            .unwrap();
        assert!(
            url.ends_with("search?place_position=2%2C1&place_distance=3-15&place_fov_tolerance=30"),
            "{url}"
        );
    }

    #[test]
    fn place_ranges() {
        let mut p = place();
        p.fov_tolerance = 1;
        let err = client()
            .search_url(&SearchQuery::new(Area::Place(p)))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "place_fov_tolerance must be in 2..=180, got 1"
        );
        p.fov_tolerance = 181;
        assert!(
            client()
                .search_url(&SearchQuery::new(Area::Place(p)))
                .is_err()
        );
        p.fov_tolerance = 180;
        assert!(
            client()
                .search_url(&SearchQuery::new(Area::Place(p)))
                .is_ok()
        );
        p.distance_m = (20, 5);
        let err = client()
            .search_url(&SearchQuery::new(Area::Place(p)))
            .unwrap_err();
        assert!(err.to_string().contains("place_distance"), "{err}");
    }

    #[test]
    fn bbox_search_and_limits() {
        let bbox = BBox::new(1.9, 49.0, 1.95, 49.01).unwrap();
        let mut query = SearchQuery::new(Area::BBox(bbox)).limit(10_000);
        query.datetime = Some("2023-01-01T00:00:00Z/..".into());
        query.collections = vec!["c1".into(), "c2".into()];
        assert_eq!(
            client().search_url(&query).unwrap(),
            "https://api.panoramax.xyz/api/search?bbox=1.9%2C49%2C1.95%2C49.01&limit=10000&datetime=2023-01-01T00%3A00%3A00Z%2F..&collections=c1%2Cc2"
        );
        for bad in [0, 10_001] {
            let err = client()
                .search_url(&SearchQuery::new(Area::BBox(bbox)).limit(bad))
                .unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("limit must be in 1..=10000, got {bad}")
            );
        }
    }

    #[test]
    fn configurable_instance_and_viewer() {
        let ign = PanoramaxClient::new(
            ClientConfig::default().with_base_url("https://panoramax.ign.fr/api/"),
        )
        .unwrap();
        assert_eq!(ign.base_url(), "https://panoramax.ign.fr/api");
        let item: Item = serde_json::from_str(
            r#"{"id":"0a1b","geometry":{"type":"Point","coordinates":[1.9191859,49.0068908]}}"#,
        )
        .unwrap();
        assert_eq!(
            ign.viewer_url(&item),
            "https://panoramax.ign.fr/?focus=pic&pic=0a1b&map=18/49.0068908/1.9191859"
        );
        assert_eq!(
            client().viewer_url(&item),
            "https://api.panoramax.xyz/?focus=pic&pic=0a1b&map=18/49.0068908/1.9191859"
        );
    }

    #[test]
    fn asset_picker_falls_back_to_roles() {
        let item: Item = serde_json::from_str(
            r#"{"id":"x","assets":{
                "full":{"href":"https://i/api/pictures/x/hd.jpg","type":"image/jpeg","roles":["data"]},
                "thumb":{"href":"https://i/api/pictures/x/thumb.jpg","type":"image/jpeg","roles":["thumbnail"]}}}"#,
        )
        .unwrap();
        assert!(
            item.asset(AssetKind::Thumb)
                .unwrap()
                .href
                .ends_with("/thumb.jpg")
        );
        assert!(item.asset(AssetKind::Hd).unwrap().href.ends_with("/hd.jpg"));
        assert!(item.asset(AssetKind::Sd).is_none());
        let (kind, asset) = item.pick_asset(&[AssetKind::Sd, AssetKind::Thumb]).unwrap();
        assert_eq!(kind, AssetKind::Thumb);
        assert!(asset.href.ends_with("/thumb.jpg"));
        assert!(item.pick_asset(&[AssetKind::Sd]).is_none());
        assert_eq!(item.license(), None);
        assert!(!item.is_360());
    }
}
