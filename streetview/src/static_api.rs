//! Street View Static API requests: image URLs and the metadata request that shares them.
//!
//! [`StaticRequest::builder`] validates everything before a URL exists: `size` at most 640×640
//! (an error, not Google's silent clamp), `location` xor `pano`, heading normalised to
//! `[0, 360)`, `fov` in `(0, 120]`, `pitch` in `-90..=90`. Parameters are written in one fixed
//! order, `key` after them and `signature` last, and the signature covers exactly the path and
//! query that are sent.
//!
//! ```
//! use streetview::{static_api::StaticRequest, ApiKey, LatLng, SigningSecret};
//! let request = StaticRequest::builder()
//!     .location(LatLng::new(46.414382, 10.013988)?)
//!     .size(600, 300)
//!     .heading(151.78)
//!     .pitch(-0.76)
//!     .build()?;
//! let key = ApiKey::new("YOUR_API_KEY")?;
//! let secret = SigningSecret::from_base64("vNIXE0xscrmjlyV-12Nj_BvUPaw=")?;
//! assert_eq!(
//!     request.image_url(&key, Some(&secret))?,
//!     "https://maps.googleapis.com/maps/api/streetview?size=600x300&location=46.414382%2C10.013988\
//!      &heading=151.78&pitch=-0.76&key=YOUR_API_KEY&signature=XscafPjtrcpyZKmclB7aiBr6QEo="
//! );
//! # Ok::<(), streetview::Error>(())
//! ```

use std::fmt;
use std::str::FromStr;

use crate::coords::{Place, fmt6};
use crate::credentials::{ApiKey, SigningSecret};
use crate::error::{Error, Result, check_range};
use crate::maps_url::check_pano_id;
use crate::query::Query;
use crate::signature::sign;

/// Where Google serves the Static and metadata APIs.
pub const GOOGLE_MAPS_API_BASE: &str = "https://maps.googleapis.com";
/// Path of the image endpoint.
pub const IMAGE_PATH: &str = "/maps/api/streetview";
/// Path of the (free) metadata endpoint.
pub const METADATA_PATH: &str = "/maps/api/streetview/metadata";
/// Largest width or height Google serves, in pixels.
pub const MAX_SIDE: u32 = 640;

/// Image size in pixels, each side `1..=640`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    width: u32,
    height: u32,
}

impl Size {
    /// Validates both sides.
    pub fn new(width: u32, height: u32) -> Result<Self> {
        if !(1..=MAX_SIDE).contains(&width) || !(1..=MAX_SIDE).contains(&height) {
            return Err(Error::out_of_range(
                "size",
                "1..=640 pixels per side (at most 640x640)",
                format!("{width}x{height}"),
            ));
        }
        Ok(Self { width, height })
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }
}

impl fmt::Display for Size {
    /// `{width}x{height}`, as Google writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

impl FromStr for Size {
    type Err = Error;

    /// Parses `WxH` (`600x300`; `X` is accepted too).
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(
                "size",
                format!("expected WIDTHxHEIGHT such as 600x300, got {s:?}"),
            )
        };
        let (w, h) = s.trim().split_once(['x', 'X']).ok_or_else(bad)?;
        let w = w.trim().parse::<u32>().map_err(|_| bad())?;
        let h = h.trim().parse::<u32>().map_err(|_| bad())?;
        Size::new(w, h)
    }
}

/// Which panoramas may answer (`source=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Source {
    /// `default`: any panorama, indoor ones and user PhotoSpheres included.
    #[default]
    Default,
    /// `outdoor`: outdoor panoramas only (no indoor or unknown, so no PhotoSpheres).
    Outdoor,
}

impl Source {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::Outdoor => "outdoor",
        }
    }
}

impl FromStr for Source {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "default" => Ok(Source::Default),
            "outdoor" => Ok(Source::Outdoor),
            other => Err(Error::invalid(
                "source",
                format!("expected default or outdoor, got {other:?}"),
            )),
        }
    }
}

/// What the request points at.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// `location=`: coordinates (Google snaps to the nearest panorama within `radius`) or text.
    Location(Place),
    /// `pano=`: a panorama id. Ids change over time; persist coordinates, not ids.
    Pano(String),
}

/// A validated Street View request, used for an image URL or a metadata lookup.
///
/// Optional fields left `None` are not sent, so Google's defaults apply: heading faces the
/// location from the camera, `fov` 90, `pitch` 0, `radius` 50 m, `source` default, and a grey
/// placeholder image (HTTP 200) when there is no panorama.
#[derive(Debug, Clone, PartialEq)]
pub struct StaticRequest {
    target: Target,
    size: Option<Size>,
    heading: Option<f64>,
    fov: Option<f64>,
    pitch: Option<f64>,
    radius: Option<u32>,
    source: Option<Source>,
    return_error_code: Option<bool>,
}

/// Builds a [`StaticRequest`]; [`RequestBuilder::build`] validates.
#[derive(Debug, Clone, Default)]
pub struct RequestBuilder {
    location: Option<Place>,
    pano: Option<String>,
    size: Option<(u32, u32)>,
    heading: Option<f64>,
    fov: Option<f64>,
    pitch: Option<f64>,
    radius: Option<u32>,
    source: Option<Source>,
    return_error_code: Option<bool>,
}

impl RequestBuilder {
    /// `location=`: coordinates or text. Excludes [`RequestBuilder::pano`].
    pub fn location(mut self, location: impl Into<Place>) -> Self {
        self.location = Some(location.into());
        self
    }

    /// `pano=`: a panorama id. Excludes [`RequestBuilder::location`].
    pub fn pano(mut self, id: impl Into<String>) -> Self {
        self.pano = Some(id.into());
        self
    }

    /// `size=`: needed for an image, ignored by metadata. Each side `1..=640`.
    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.size = Some((width, height));
        self
    }

    /// `heading=`: compass degrees; any finite value, normalised to `[0, 360)` (`-90` → `270`).
    pub fn heading(mut self, degrees: f64) -> Self {
        self.heading = Some(degrees);
        self
    }

    /// `fov=`: horizontal field of view, `(0, 120]` degrees.
    pub fn fov(mut self, degrees: f64) -> Self {
        self.fov = Some(degrees);
        self
    }

    /// `pitch=`: `-90..=90` degrees, relative to the vehicle.
    pub fn pitch(mut self, degrees: f64) -> Self {
        self.pitch = Some(degrees);
        self
    }

    /// `radius=`: metres to search for a panorama around `location` (Google's default: 50).
    pub fn radius(mut self, metres: u32) -> Self {
        self.radius = Some(metres);
        self
    }

    /// `source=`.
    pub fn source(mut self, source: Source) -> Self {
        self.source = Some(source);
        self
    }

    /// `return_error_code=`: `true` makes Google answer 404 instead of a grey image when there
    /// is no panorama.
    pub fn return_error_code(mut self, yes: bool) -> Self {
        self.return_error_code = Some(yes);
        self
    }

    /// Validates and returns the request.
    pub fn build(self) -> Result<StaticRequest> {
        let target = match (self.location, self.pano) {
            (Some(_), Some(_)) => {
                return Err(Error::Conflict("give a location or a pano id, not both"));
            }
            (None, None) => {
                return Err(Error::Conflict(
                    "a Street View request needs a location or a pano id",
                ));
            }
            (Some(Place::Text(text)), None) if text.trim().is_empty() => {
                return Err(Error::invalid("location", "the location is empty"));
            }
            (Some(location), None) => Target::Location(location),
            (None, Some(pano)) => {
                check_pano_id(&pano)?;
                Target::Pano(pano)
            }
        };
        let size = self.size.map(|(w, h)| Size::new(w, h)).transpose()?;
        let heading = self.heading.map(normalize_heading).transpose()?;
        let fov = self
            .fov
            .map(|f| {
                check_range("fov", "(0, 120]", f, 0.0, 120.0).and_then(|f| {
                    if f > 0.0 {
                        Ok(f)
                    } else {
                        Err(Error::out_of_range("fov", "(0, 120]", f))
                    }
                })
            })
            .transpose()?;
        let pitch = self
            .pitch
            .map(|p| check_range("pitch", "-90..=90", p, -90.0, 90.0))
            .transpose()?;
        Ok(StaticRequest {
            target,
            size,
            heading,
            fov,
            pitch,
            radius: self.radius,
            source: self.source,
            return_error_code: self.return_error_code,
        })
    }
}

/// Normalises a Static API heading to `[0, 360)`; an in-range value is kept bit for bit.
pub fn normalize_heading(degrees: f64) -> Result<f64> {
    if !degrees.is_finite() {
        return Err(Error::NotFinite {
            parameter: "heading",
            value: degrees,
        });
    }
    if (0.0..360.0).contains(&degrees) {
        return Ok(if degrees == 0.0 { 0.0 } else { degrees });
    }
    let wrapped = degrees.rem_euclid(360.0);
    Ok(if wrapped >= 360.0 { 0.0 } else { wrapped })
}

impl StaticRequest {
    /// Starts a request.
    pub fn builder() -> RequestBuilder {
        RequestBuilder::default()
    }

    /// What the request points at.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The image size, if set.
    pub fn size(&self) -> Option<Size> {
        self.size
    }

    /// The normalised heading, if set.
    pub fn heading(&self) -> Option<f64> {
        self.heading
    }

    /// `/maps/api/streetview?…&key=…` without a signature: the exact string [`sign`] covers.
    ///
    /// Order: `size`, `location`|`pano`, `heading`, `fov`, `pitch`, `radius`, `source`,
    /// `return_error_code`, `key`. Fails without a size.
    pub fn image_path_and_query(&self, key: &ApiKey) -> Result<String> {
        let size = self.size.ok_or(Error::Conflict(
            "a Street View image needs a size (WIDTHxHEIGHT, at most 640x640)",
        ))?;
        let mut q = Query::new();
        q.push("size", &size.to_string());
        self.push_target(&mut q);
        q.push_opt("heading", self.heading.map(fmt6).as_deref())
            .push_opt("fov", self.fov.map(fmt6).as_deref())
            .push_opt("pitch", self.pitch.map(fmt6).as_deref());
        self.push_search(&mut q);
        q.push_opt(
            "return_error_code",
            self.return_error_code
                .map(|b| if b { "true" } else { "false" }),
        );
        q.push("key", key.expose());
        Ok(format!("{IMAGE_PATH}?{}", q.as_str()))
    }

    /// `/maps/api/streetview/metadata?…&key=…`: `location`|`pano`, `radius`, `source`, `key`.
    /// Size and view angles do not change the answer, so they are not sent.
    pub fn metadata_path_and_query(&self, key: &ApiKey) -> String {
        let mut q = Query::new();
        self.push_target(&mut q);
        self.push_search(&mut q);
        q.push("key", key.expose());
        format!("{METADATA_PATH}?{}", q.as_str())
    }

    /// The image URL on Google's host, signed when a secret is given.
    pub fn image_url(&self, key: &ApiKey, secret: Option<&SigningSecret>) -> Result<String> {
        self.image_url_with_base(GOOGLE_MAPS_API_BASE, key, secret)
    }

    /// The image URL on another origin (a proxy, a test server). `base` is scheme, host and
    /// port; the signature covers the path and query only, so it is the same as on Google's.
    pub fn image_url_with_base(
        &self,
        base: &str,
        key: &ApiKey,
        secret: Option<&SigningSecret>,
    ) -> Result<String> {
        let base = crate::http::origin("base url", base)?;
        Ok(finish(&base, self.image_path_and_query(key)?, secret))
    }

    /// The metadata URL on Google's host, signed when a secret is given.
    pub fn metadata_url(&self, key: &ApiKey, secret: Option<&SigningSecret>) -> String {
        finish(
            GOOGLE_MAPS_API_BASE,
            self.metadata_path_and_query(key),
            secret,
        )
    }

    /// The metadata URL on another origin (see [`StaticRequest::image_url_with_base`]).
    pub fn metadata_url_with_base(
        &self,
        base: &str,
        key: &ApiKey,
        secret: Option<&SigningSecret>,
    ) -> Result<String> {
        let base = crate::http::origin("base url", base)?;
        Ok(finish(&base, self.metadata_path_and_query(key), secret))
    }

    fn push_target(&self, q: &mut Query) {
        match &self.target {
            Target::Location(place) => q.push("location", &place.to_param()),
            Target::Pano(id) => q.push("pano", id),
        };
    }

    fn push_search(&self, q: &mut Query) {
        q.push_opt("radius", self.radius.map(|r| r.to_string()).as_deref())
            .push_opt("source", self.source.map(Source::as_str));
    }
}

fn finish(base: &str, path_and_query: String, secret: Option<&SigningSecret>) -> String {
    match secret {
        Some(secret) => {
            let signature = sign(&path_and_query, secret);
            format!("{base}{path_and_query}&signature={signature}")
        }
        None => format!("{base}{path_and_query}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coords::LatLng;

    fn key() -> ApiKey {
        ApiKey::new("YOUR_API_KEY").unwrap()
    }

    fn doc_secret() -> SigningSecret {
        SigningSecret::from_base64("vNIXE0xscrmjlyV-12Nj_BvUPaw=").unwrap()
    }

    #[test]
    fn builder_reproduces_the_signed_reference_url() {
        let request = StaticRequest::builder()
            .location(LatLng::new(46.414382, 10.013988).unwrap())
            .size(600, 300)
            .heading(151.78)
            .pitch(-0.76)
            .build()
            .unwrap();
        assert_eq!(
            request.image_path_and_query(&key()).unwrap(),
            "/maps/api/streetview?size=600x300&location=46.414382%2C10.013988&heading=151.78&pitch=-0.76&key=YOUR_API_KEY"
        );
        assert_eq!(
            request.image_url(&key(), Some(&doc_secret())).unwrap(),
            "https://maps.googleapis.com/maps/api/streetview?size=600x300&location=46.414382%2C10.013988&heading=151.78&pitch=-0.76&key=YOUR_API_KEY&signature=XscafPjtrcpyZKmclB7aiBr6QEo="
        );
        assert_eq!(
            request.image_url(&key(), None).unwrap(),
            "https://maps.googleapis.com/maps/api/streetview?size=600x300&location=46.414382%2C10.013988&heading=151.78&pitch=-0.76&key=YOUR_API_KEY"
        );
    }

    #[test]
    fn text_location_is_encoded_once() {
        let request = StaticRequest::builder()
            .location("Z\u{fc}rich")
            .size(400, 400)
            .build()
            .unwrap();
        assert_eq!(
            request.image_path_and_query(&key()).unwrap(),
            "/maps/api/streetview?size=400x400&location=Z%C3%BCrich&key=YOUR_API_KEY"
        );
    }

    #[test]
    fn every_parameter_in_fixed_order() {
        let request = StaticRequest::builder()
            .pano("abc_D-1")
            .size(640, 640)
            .heading(-90.0)
            .fov(120.0)
            .pitch(90.0)
            .radius(100)
            .source(Source::Outdoor)
            .return_error_code(true)
            .build()
            .unwrap();
        assert_eq!(
            request.image_path_and_query(&key()).unwrap(),
            "/maps/api/streetview?size=640x640&pano=abc_D-1&heading=270&fov=120&pitch=90&radius=100&source=outdoor&return_error_code=true&key=YOUR_API_KEY"
        );
        assert_eq!(
            request.metadata_path_and_query(&key()),
            "/maps/api/streetview/metadata?pano=abc_D-1&radius=100&source=outdoor&key=YOUR_API_KEY"
        );
    }

    #[test]
    fn metadata_url_is_signed_over_what_is_sent() {
        let request = StaticRequest::builder()
            .location(LatLng::new(46.414382, 10.013988).unwrap())
            .build()
            .unwrap();
        let url = request.metadata_url(&key(), Some(&doc_secret()));
        let expected_pq =
            "/maps/api/streetview/metadata?location=46.414382%2C10.013988&key=YOUR_API_KEY";
        assert_eq!(
            url,
            format!(
                "https://maps.googleapis.com{expected_pq}&signature={}",
                sign(expected_pq, &doc_secret())
            )
        );
        let local = request
            .metadata_url_with_base("http://127.0.0.1:9/", &key(), Some(&doc_secret()))
            .unwrap();
        assert!(local.starts_with("http://127.0.0.1:9/maps/api/streetview/metadata?"));
        assert_eq!(
            local.rsplit_once('&').unwrap().1,
            url.rsplit_once('&').unwrap().1
        );
    }

    #[test]
    fn size_is_refused_not_clamped() {
        for (w, h) in [(641, 100), (100, 641), (0, 100), (100, 0)] {
            let err = StaticRequest::builder()
                .location("x")
                .size(w, h)
                .build()
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::OutOfRange {
                        parameter: "size",
                        ..
                    }
                ),
                "{err}"
            );
            assert!(err.to_string().contains("640"), "{err}");
        }
        assert!(
            StaticRequest::builder()
                .location("x")
                .size(640, 1)
                .build()
                .is_ok()
        );
        assert_eq!(
            "600x300".parse::<Size>().unwrap(),
            Size::new(600, 300).unwrap()
        );
        assert!("600".parse::<Size>().is_err());
        assert!("700x300".parse::<Size>().is_err());
        assert!("axb".parse::<Size>().is_err());
    }

    #[test]
    fn location_xor_pano() {
        let both = StaticRequest::builder().location("x").pano("y").build();
        assert!(matches!(both, Err(Error::Conflict(_))));
        let neither = StaticRequest::builder().size(1, 1).build();
        assert!(matches!(neither, Err(Error::Conflict(_))));
        assert!(StaticRequest::builder().location("  ").build().is_err());
        assert!(StaticRequest::builder().pano("").build().is_err());
    }

    #[test]
    fn image_needs_a_size_metadata_does_not() {
        let request = StaticRequest::builder().location("x").build().unwrap();
        assert!(request.image_url(&key(), None).is_err());
        assert_eq!(
            request.metadata_url(&key(), None),
            "https://maps.googleapis.com/maps/api/streetview/metadata?location=x&key=YOUR_API_KEY"
        );
    }

    #[test]
    fn angles() {
        assert_eq!(normalize_heading(-90.0).unwrap(), 270.0);
        assert_eq!(normalize_heading(360.0).unwrap(), 0.0);
        assert_eq!(normalize_heading(725.5).unwrap(), 5.5);
        assert_eq!(normalize_heading(151.78).unwrap(), 151.78);
        assert!(normalize_heading(-1e-20).unwrap() < 360.0);
        assert!(normalize_heading(f64::NAN).is_err());
        let b = || StaticRequest::builder().location("x");
        for bad in [0.0, -1.0, 120.01, f64::INFINITY] {
            let err = b().fov(bad).build().unwrap_err();
            assert!(err.to_string().contains("fov"), "{err}");
        }
        assert!(b().fov(0.5).build().is_ok());
        let err = b().pitch(-91.0).build().unwrap_err();
        assert_eq!(err.to_string(), "pitch must be in -90..=90, got -91");
    }
}
