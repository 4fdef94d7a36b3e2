//! Mapillary API v4: the REST "Graph API" (not GraphQL), vector tiles and viewer links.
//!
//! - Search: `GET https://graph.mapillary.com/images?fields=…&bbox=minLon,minLat,maxLon,maxLat&…`
//!   answers `{"data":[…]}`. The box must be smaller than **0.01 square degrees**
//!   (`Δlon × Δlat`); [`MapillaryClient::images_in_bbox`] **refuses** a larger box with
//!   [`Error::BboxTooLarge`] rather than tiling behind the caller's back (each tile is a request
//!   against a rate limit). Tile explicitly with [`split_bbox`], or use
//!   [`MapillaryClient::images_near`], which tiles up to a request budget you give it.
//! - Single image: `GET https://graph.mapillary.com/<id>?fields=…`.
//! - Fields must be listed; only `id` comes without asking.
//! - The token goes in the header `Authorization: OAuth <token>` (Mapillary's scheme, not
//!   `Bearer`), never in a Graph API URL, so it stays out of proxy and server logs.
//! - Thumbnail URLs (`thumb_*_url`) are signed CDN links that **expire**: store image ids and
//!   fetch fresh URLs when needed.
//! - There is no public GraphQL `imageSearch`: `graph.mapillary.com/graphql` is the web app's
//!   internal, allow-listed endpoint.
//!
//! Rate limits: treat search as about 10,000 requests a minute and tiles as 50,000 a day.
//! Imagery is licensed CC BY-SA 4.0.

mod tiles;

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize};

pub use tiles::{
    EmbedStyle, Layer, MAX_ZOOM, TILES_BASE, TileSet, embed_url, layers_for_zoom, tile_url,
    tile_url_template, viewer_url,
};

use crate::coords::{BBox, LatLng, bbox_around, haversine_m};
use crate::credentials::AccessToken;
use crate::error::{Error, Result};
use crate::http::{self, ClientConfig};
use crate::query::{Query, encode_component};

const PROVIDER: &str = "mapillary";

/// The Graph API root.
pub const GRAPH_BASE: &str = "https://graph.mapillary.com";

/// `/images` boxes must have `Δlon × Δlat` strictly below this, in square degrees.
pub const MAX_BBOX_AREA: f64 = 0.01;

/// The most images one `/images` request returns (also the API's default `limit`).
pub const MAX_LIMIT: u32 = 2_000;

/// Tiles made by [`split_bbox`] aim 1 % under [`MAX_BBOX_AREA`], so rounding the edges to 7
/// decimals in the URL can never push one over.
const TILE_TARGET_AREA: f64 = 0.0099;

/// An image field to ask for (`fields=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // Each variant is the wire name in CamelCase; see `as_str`.
pub enum ImageField {
    Id,
    Altitude,
    AtomicScale,
    CameraParameters,
    CameraType,
    CapturedAt,
    CompassAngle,
    ComputedAltitude,
    ComputedCompassAngle,
    ComputedGeometry,
    ComputedRotation,
    Creator,
    ExifOrientation,
    Geometry,
    Height,
    Width,
    IsPano,
    Make,
    Model,
    MergeCc,
    Mesh,
    QualityScore,
    Sequence,
    SfmCluster,
    Thumb256Url,
    Thumb1024Url,
    Thumb2048Url,
    ThumbOriginalUrl,
    Detections,
}

impl ImageField {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        use ImageField::*;
        match self {
            Id => "id",
            Altitude => "altitude",
            AtomicScale => "atomic_scale",
            CameraParameters => "camera_parameters",
            CameraType => "camera_type",
            CapturedAt => "captured_at",
            CompassAngle => "compass_angle",
            ComputedAltitude => "computed_altitude",
            ComputedCompassAngle => "computed_compass_angle",
            ComputedGeometry => "computed_geometry",
            ComputedRotation => "computed_rotation",
            Creator => "creator",
            ExifOrientation => "exif_orientation",
            Geometry => "geometry",
            Height => "height",
            Width => "width",
            IsPano => "is_pano",
            Make => "make",
            Model => "model",
            MergeCc => "merge_cc",
            Mesh => "mesh",
            QualityScore => "quality_score",
            Sequence => "sequence",
            SfmCluster => "sfm_cluster",
            Thumb256Url => "thumb_256_url",
            Thumb1024Url => "thumb_1024_url",
            Thumb2048Url => "thumb_2048_url",
            ThumbOriginalUrl => "thumb_original_url",
            Detections => "detections",
        }
    }
}

/// The fields [`ImageQuery::default`] asks for: enough to place, date, orient and link an
/// image, and no thumbnail URL (they expire).
pub const DEFAULT_FIELDS: [ImageField; 7] = [
    ImageField::Id,
    ImageField::CapturedAt,
    ImageField::CompassAngle,
    ImageField::Geometry,
    ImageField::IsPano,
    ImageField::Sequence,
    ImageField::Creator,
];

/// Fields and filters of an `/images` search.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageQuery {
    /// Fields to return; default [`DEFAULT_FIELDS`]. Empty means `id` only.
    pub fields: Vec<ImageField>,
    /// Most images per request, `1..=2000`; `None` (default) leaves the API's default, 2000.
    pub limit: Option<u32>,
    /// Only panoramas (`true`) or only flat images (`false`); `None` for both.
    pub is_pano: Option<bool>,
    /// Captured at or after (`start_captured_at`, sent as RFC 3339 UTC).
    pub start_captured_at: Option<DateTime<Utc>>,
    /// Captured at or before (`end_captured_at`).
    pub end_captured_at: Option<DateTime<Utc>>,
    /// Only images of this organization.
    pub organization_id: Option<String>,
    /// Only images of these sequences.
    pub sequence_ids: Vec<String>,
    /// Only images by this user.
    pub creator_username: Option<String>,
}

impl Default for ImageQuery {
    fn default() -> Self {
        Self {
            fields: DEFAULT_FIELDS.to_vec(),
            limit: None,
            is_pano: None,
            start_captured_at: None,
            end_captured_at: None,
            organization_id: None,
            sequence_ids: Vec::new(),
            creator_username: None,
        }
    }
}

impl ImageQuery {
    fn check(&self) -> Result<()> {
        if let Some(limit) = self.limit.filter(|l| !(1..=MAX_LIMIT).contains(l)) {
            return Err(Error::out_of_range("limit", "1..=2000", limit));
        }
        if let (Some(start), Some(end)) = (self.start_captured_at, self.end_captured_at)
            && start > end
        {
            return Err(Error::Conflict(
                "start_captured_at is after end_captured_at",
            ));
        }
        Ok(())
    }
}

fn fields_param(fields: &[ImageField]) -> String {
    if fields.is_empty() {
        return ImageField::Id.as_str().to_owned();
    }
    fields
        .iter()
        .map(|f| f.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Splits a box into a grid of tiles that Mapillary accepts (each under [`MAX_BBOX_AREA`]).
/// A box that is small enough comes back alone.
///
/// ```
/// use streetview::{mapillary::{split_bbox, MAX_BBOX_AREA}, BBox};
/// let tiles = split_bbox(&BBox::new(2.0, 48.0, 2.1, 48.1)?);
/// assert_eq!(tiles.len(), 4);
/// assert!(tiles.iter().all(|t| t.area_sq_deg() < MAX_BBOX_AREA));
/// # Ok::<(), streetview::Error>(())
/// ```
pub fn split_bbox(bbox: &BBox) -> Vec<BBox> {
    let area = bbox.area_sq_deg();
    if area < TILE_TARGET_AREA {
        return vec![*bbox];
    }
    let mut n = (area / TILE_TARGET_AREA).sqrt().floor() as usize + 1;
    while area / (n * n) as f64 >= TILE_TARGET_AREA {
        n += 1;
    }
    bbox.grid(n)
}

/// A GeoJSON point: `coordinates` are `[lon, lat]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Point {
    /// `[longitude, latitude]`.
    pub coordinates: [f64; 2],
}

impl Point {
    /// The point as a validated position (GeoJSON order turned round).
    pub fn lat_lng(&self) -> Result<LatLng> {
        LatLng::new(self.coordinates[1], self.coordinates[0])
    }
}

/// Who uploaded an image.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Creator {
    /// User id.
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    /// User name.
    #[serde(default)]
    pub username: Option<String>,
}

/// One Mapillary image. Only `id` is always present; the rest are there when asked for in
/// `fields`. Fields without a typed slot here (`mesh`, `sfm_cluster`, `detections`,
/// `camera_parameters`, `computed_rotation`, `merge_cc`, ...) are kept in `extra`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Image {
    /// Image id (the `pKey` of viewer links). Persist this, not thumbnail URLs.
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    /// Capture time (sent by Mapillary as milliseconds since the epoch).
    #[serde(
        default,
        with = "chrono::serde::ts_milliseconds_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub captured_at: Option<DateTime<Utc>>,
    /// Camera heading from the device, degrees clockwise from north.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compass_angle: Option<f64>,
    /// Heading after Mapillary's structure-from-motion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computed_compass_angle: Option<f64>,
    /// Position from the device (GeoJSON, `[lon, lat]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geometry: Option<Point>,
    /// Position after structure-from-motion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computed_geometry: Option<Point>,
    /// Whether the image is a 360° panorama.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_pano: Option<bool>,
    /// `perspective`, `fisheye`, `equirectangular` or `spherical`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera_type: Option<String>,
    /// Sequence id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<String>,
    /// Uploader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator: Option<Creator>,
    /// Original width in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Original height in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Camera make.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub make: Option<String>,
    /// Camera model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Altitude from the device, metres.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub altitude: Option<f64>,
    /// Altitude after structure-from-motion, metres.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computed_altitude: Option<f64>,
    /// Mapillary's quality estimate, 0..1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality_score: Option<f64>,
    /// 256 px thumbnail. **Expires**: use it now, never store it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumb_256_url: Option<String>,
    /// 1024 px thumbnail. **Expires**.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumb_1024_url: Option<String>,
    /// 2048 px thumbnail. **Expires**.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumb_2048_url: Option<String>,
    /// Original resolution. **Expires**.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumb_original_url: Option<String>,
    /// Every other field returned.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Image {
    /// Where the image was taken: the computed position when present (more accurate), else
    /// the device's.
    pub fn position(&self) -> Option<LatLng> {
        self.computed_geometry
            .as_ref()
            .or(self.geometry.as_ref())
            .and_then(|p| p.lat_lng().ok())
    }

    /// The computed heading when present, else the device's.
    pub fn heading(&self) -> Option<f64> {
        self.computed_compass_angle.or(self.compass_angle)
    }

    /// The viewer link for this image.
    pub fn viewer_url(&self) -> String {
        viewer_url(&self.id)
    }
}

fn string_or_number<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(u64),
    }
    Ok(match Id::deserialize(deserializer)? {
        Id::Text(text) => text,
        Id::Number(n) => n.to_string(),
    })
}

#[derive(Deserialize)]
struct ImageList {
    data: Vec<Image>,
}

/// The error object of the Graph API: `{"error":{"message","type","code","fbtrace_id"}}`.
#[derive(Deserialize)]
struct GraphErrorBody {
    error: GraphError,
}

#[derive(Deserialize)]
struct GraphError {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    code: Option<i64>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

/// Graph API codes that mean "too many requests" (application, user, page and custom limits),
/// and the internal endpoint's 1675004.
const RATE_LIMIT_CODES: [i64; 5] = [4, 17, 32, 613, 1_675_004];

/// A Mapillary Graph API client.
#[derive(Debug, Clone)]
pub struct MapillaryClient {
    http: reqwest::Client,
    base: String,
    token: AccessToken,
}

impl MapillaryClient {
    /// A client with `token`; the config's base URL defaults to [`GRAPH_BASE`].
    pub fn new(token: AccessToken, config: ClientConfig) -> Result<Self> {
        let base = http::base_url("base url", config.base_url.as_deref().unwrap_or(GRAPH_BASE))?;
        Ok(Self {
            http: config.client()?,
            base,
            token,
        })
    }

    /// The `/images` URL for `bbox` and `query` (it holds no token).
    ///
    /// ```
    /// use streetview::{mapillary::{ImageQuery, MapillaryClient}, AccessToken, BBox, ClientConfig};
    /// let client = MapillaryClient::new(AccessToken::new("MLY|x")?, ClientConfig::default())?;
    /// let query = ImageQuery { limit: Some(10), is_pano: Some(true), ..ImageQuery::default() };
    /// let url = client.images_url(&BBox::new(2.2931346, 48.8575017, 2.2958654, 48.8592983)?, &query)?;
    /// assert_eq!(url, "https://graph.mapillary.com/images?fields=id%2Ccaptured_at%2Ccompass_angle%2Cgeometry%2Cis_pano%2Csequence%2Ccreator&bbox=2.2931346%2C48.8575017%2C2.2958654%2C48.8592983&limit=10&is_pano=true");
    /// # Ok::<(), streetview::Error>(())
    /// ```
    pub fn images_url(&self, bbox: &BBox, query: &ImageQuery) -> Result<String> {
        let area = bbox.area_sq_deg();
        if area >= MAX_BBOX_AREA {
            return Err(Error::BboxTooLarge {
                area,
                max: MAX_BBOX_AREA,
            });
        }
        query.check()?;
        let mut q = Query::new();
        q.push("fields", &fields_param(&query.fields))
            .push("bbox", &bbox.to_string())
            .push_opt("limit", query.limit.map(|l| l.to_string()).as_deref())
            .push_opt(
                "is_pano",
                query.is_pano.map(|p| if p { "true" } else { "false" }),
            )
            .push_opt(
                "start_captured_at",
                query.start_captured_at.map(rfc3339).as_deref(),
            )
            .push_opt(
                "end_captured_at",
                query.end_captured_at.map(rfc3339).as_deref(),
            )
            .push_opt("organization_id", query.organization_id.as_deref());
        if !query.sequence_ids.is_empty() {
            q.push("sequence_ids", &query.sequence_ids.join(","));
        }
        q.push_opt("creator_username", query.creator_username.as_deref());
        Ok(format!("{}/images?{}", self.base, q.as_str()))
    }

    /// The URL of one image (`/<id>?fields=…`).
    pub fn image_url(&self, id: &str, fields: &[ImageField]) -> Result<String> {
        check_image_id(id)?;
        let mut q = Query::new();
        q.push("fields", &fields_param(fields));
        Ok(format!(
            "{}/{}?{}",
            self.base,
            encode_component(id),
            q.as_str()
        ))
    }

    /// Images inside `bbox` (which must be under [`MAX_BBOX_AREA`]; see [`split_bbox`]).
    #[tracing::instrument(skip(self, query), fields(bbox = %bbox))]
    pub async fn images_in_bbox(&self, bbox: &BBox, query: &ImageQuery) -> Result<Vec<Image>> {
        let url = self.images_url(bbox, query)?;
        let list: ImageList = self.get("/images", &url).await?;
        Ok(list.data)
    }

    /// One image by id.
    #[tracing::instrument(skip(self, fields))]
    pub async fn image(&self, id: &str, fields: &[ImageField]) -> Result<Image> {
        let url = self.image_url(id, fields)?;
        self.get("/{id}", &url).await
    }

    /// The images within `radius_m` metres of `center`, nearest first, at most `query.limit`.
    ///
    /// Covers the circle's bounding box, split at the antimeridian and into Mapillary-sized
    /// tiles, with one request per tile, and refuses with [`Error::TooManyRequests`] when that
    /// needs more than `max_requests`. `geometry` is added to the fields if missing (it is
    /// needed to measure distances); images found twice are kept once.
    pub async fn images_near(
        &self,
        center: LatLng,
        radius_m: f64,
        query: &ImageQuery,
        max_requests: usize,
    ) -> Result<Vec<Image>> {
        let tiles: Vec<BBox> = bbox_around(center, radius_m)?
            .iter()
            .flat_map(split_bbox)
            .collect();
        if tiles.len() > max_requests {
            return Err(Error::TooManyRequests {
                needed: tiles.len(),
                max: max_requests,
            });
        }
        let mut query = query.clone();
        if !query.fields.contains(&ImageField::Geometry) {
            query.fields.push(ImageField::Geometry);
        }
        let mut seen = HashSet::new();
        let mut found: Vec<(f64, Image)> = Vec::new();
        for tile in &tiles {
            for image in self.images_in_bbox(tile, &query).await? {
                let Some(distance) = image.position().map(|p| haversine_m(center, p)) else {
                    continue;
                };
                if distance <= radius_m && seen.insert(image.id.clone()) {
                    found.push((distance, image));
                }
            }
        }
        found.sort_by(|a, b| a.0.total_cmp(&b.0));
        let limit = query.limit.map_or(usize::MAX, |l| l as usize);
        Ok(found
            .into_iter()
            .take(limit)
            .map(|(_, image)| image)
            .collect())
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, endpoint: &str, url: &str) -> Result<T> {
        let answer = http::get(
            &self.http,
            PROVIDER,
            endpoint,
            url,
            Some(&self.token.authorization()),
        )
        .await?;
        if !answer.status.is_success() {
            return Err(graph_error(endpoint, answer.status.as_u16(), &answer.body));
        }
        http::decode(PROVIDER, endpoint, &answer.body)
    }
}

fn graph_error(endpoint: &str, status: u16, body: &[u8]) -> Error {
    match serde_json::from_slice::<GraphErrorBody>(body) {
        Ok(GraphErrorBody { error }) => {
            if error.code.is_some_and(|c| RATE_LIMIT_CODES.contains(&c)) {
                return Error::RateLimited {
                    provider: PROVIDER,
                    retry_after: None,
                };
            }
            let code = match (error.code, error.kind) {
                (Some(code), Some(kind)) => format!("{kind} {code} (HTTP {status})"),
                (Some(code), None) => format!("{code} (HTTP {status})"),
                (None, Some(kind)) => format!("{kind} (HTTP {status})"),
                (None, None) => format!("HTTP {status}"),
            };
            Error::Provider {
                provider: PROVIDER,
                endpoint: endpoint.to_owned(),
                code,
                message: error.message,
            }
        }
        Err(_) => Error::Provider {
            provider: PROVIDER,
            endpoint: endpoint.to_owned(),
            code: format!("HTTP {status}"),
            message: http::body_snippet(body),
        },
    }
}

fn check_image_id(id: &str) -> Result<()> {
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(Error::invalid(
            "image id",
            format!("{id:?} is not a Mapillary image id (digits)"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> MapillaryClient {
        MapillaryClient::new(AccessToken::new("MLY|x").unwrap(), ClientConfig::default()).unwrap()
    }

    #[test]
    fn images_url_reference_box() {
        let bbox = &bbox_around(LatLng::new(48.8584, 2.2945).unwrap(), 100.0).unwrap()[0];
        let query = ImageQuery {
            fields: vec![ImageField::Id, ImageField::Geometry],
            limit: Some(2000),
            is_pano: Some(true),
            start_captured_at: Some("2022-08-16T16:42:46Z".parse().unwrap()),
            ..ImageQuery::default()
        };
        assert_eq!(
            client().images_url(bbox, &query).unwrap(),
            "https://graph.mapillary.com/images?fields=id%2Cgeometry&bbox=2.2931346%2C48.8575017%2C2.2958654%2C48.8592983&limit=2000&is_pano=true&start_captured_at=2022-08-16T16%3A42%3A46Z"
        );
    }

    #[test]
    fn big_boxes_are_refused() {
        let big = BBox::new(2.0, 48.0, 2.1, 48.1).unwrap();
        let err = client()
            .images_url(&big, &ImageQuery::default())
            .unwrap_err();
        assert!(matches!(err, Error::BboxTooLarge { .. }), "{err:?}");
        // Exactly 0.01 is refused too: the rule is strictly less.
        let edge = BBox::new(0.0, 0.0, 0.1, 0.1).unwrap();
        assert!(edge.area_sq_deg() >= MAX_BBOX_AREA);
        assert!(client().images_url(&edge, &ImageQuery::default()).is_err());
    }

    #[test]
    fn limit_and_dates_are_checked() {
        let bbox = BBox::new(0.0, 0.0, 0.01, 0.01).unwrap();
        for bad in [0, 2001] {
            let query = ImageQuery {
                limit: Some(bad),
                ..ImageQuery::default()
            };
            let err = client().images_url(&bbox, &query).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("limit must be in 1..=2000, got {bad}")
            );
        }
        let query = ImageQuery {
            start_captured_at: Some("2023-01-01T00:00:00Z".parse().unwrap()),
            end_captured_at: Some("2022-01-01T00:00:00Z".parse().unwrap()),
            ..ImageQuery::default()
        };
        assert!(client().images_url(&bbox, &query).is_err());
    }

    #[test]
    fn every_filter_in_order() {
        let bbox = BBox::new(0.0, 0.0, 0.01, 0.01).unwrap();
        let query = ImageQuery {
            fields: vec![],
            limit: None,
            is_pano: Some(false),
            start_captured_at: Some("2022-01-01T00:00:00Z".parse().unwrap()),
            end_captured_at: Some("2022-12-31T23:59:59Z".parse().unwrap()),
            organization_id: Some("42".into()),
            sequence_ids: vec!["a".into(), "b".into()],
            creator_username: Some("jo".into()),
        };
        assert_eq!(
            client().images_url(&bbox, &query).unwrap(),
            "https://graph.mapillary.com/images?fields=id&bbox=0%2C0%2C0.01%2C0.01&is_pano=false&start_captured_at=2022-01-01T00%3A00%3A00Z&end_captured_at=2022-12-31T23%3A59%3A59Z&organization_id=42&sequence_ids=a%2Cb&creator_username=jo"
        );
    }

    #[test]
    fn image_url_and_ids() {
        assert_eq!(
            client()
                .image_url(
                    "1933525276802129",
                    &[ImageField::Id, ImageField::Thumb1024Url]
                )
                .unwrap(),
            "https://graph.mapillary.com/1933525276802129?fields=id%2Cthumb_1024_url"
        );
        assert!(client().image_url("", &[]).is_err());
        assert!(client().image_url("../me", &[]).is_err());
        assert!(client().image_url("1?x=1", &[]).is_err());
    }

    #[test]
    fn split_bbox_stays_under_the_limit() {
        for (w, h) in [
            (0.1, 0.1),
            (0.2, 0.05),
            (0.2, 0.2),
            (1.0, 0.3),
            (0.0999, 0.1001),
        ] {
            let bbox = BBox::new(10.0, 40.0, 10.0 + w, 40.0 + h).unwrap();
            let tiles = split_bbox(&bbox);
            assert!(tiles.len() > 1);
            for tile in &tiles {
                assert!(tile.area_sq_deg() < MAX_BBOX_AREA);
                // Even after rounding to the 7 decimals that are sent.
                let sent: Vec<f64> = tile
                    .to_string()
                    .split(',')
                    .map(|v| v.parse().unwrap())
                    .collect();
                assert!((sent[2] - sent[0]) * (sent[3] - sent[1]) < MAX_BBOX_AREA);
            }
        }
        let small = BBox::new(0.0, 0.0, 0.05, 0.05).unwrap();
        assert_eq!(split_bbox(&small), vec![small]);
    }

    #[test]
    fn image_parses_geojson_and_milliseconds() {
        let json = r#"{"id":"123","captured_at":1660668166000,"compass_angle":12.5,
            "geometry":{"type":"Point","coordinates":[2.2945,48.8584]},
            "computed_geometry":{"type":"Point","coordinates":[2.29451,48.85841]},
            "is_pano":true,"creator":{"id":"7","username":"jo"},"sequence":"seqA",
            "mesh":{"id":"m","url":"https://x"}}"#;
        let image: Image = serde_json::from_str(json).unwrap();
        assert_eq!(
            image.captured_at.unwrap().to_rfc3339(),
            "2022-08-16T16:42:46+00:00"
        );
        let at = image.position().unwrap();
        assert_eq!((at.lat(), at.lng()), (48.85841, 2.29451));
        assert_eq!(
            image.geometry.as_ref().unwrap().lat_lng().unwrap().lat(),
            48.8584
        );
        assert_eq!(
            image.creator.as_ref().unwrap().username.as_deref(),
            Some("jo")
        );
        assert!(image.extra.contains_key("mesh"));
        assert_eq!(
            image.viewer_url(),
            "https://www.mapillary.com/app/?pKey=123&focus=photo"
        );
        let numeric: Image = serde_json::from_str(r#"{"id":123}"#).unwrap();
        assert_eq!(numeric.id, "123");
        assert_eq!(numeric.position(), None);
    }

    #[test]
    fn graph_errors() {
        let body = br#"{"error":{"message":"Invalid OAuth access token.","type":"OAuthException","code":190,"fbtrace_id":"x"}}"#;
        match graph_error("/images", 401, body) {
            Error::Provider { code, message, .. } => {
                assert_eq!(code, "OAuthException 190 (HTTP 401)");
                assert_eq!(message.as_deref(), Some("Invalid OAuth access token."));
            }
            other => panic!("{other:?}"),
        }
        let limited = br#"{"error":{"message":"Application request limit reached","code":4}}"#;
        assert!(matches!(
            graph_error("/images", 400, limited),
            Error::RateLimited { .. }
        ));
        assert!(matches!(
            graph_error("/images", 502, b"Bad Gateway"),
            Error::Provider { ref code, .. } if code == "HTTP 502"
        ));
    }
}
