//! Google Maps URLs: keyless, free links that open Google Maps (or the app) at a panorama, a
//! search, directions or a map view.
//!
//! Every URL carries `api=1` (without it Google ignores every other parameter and just opens
//! Maps) and goes through the crate's single encoder, so `,` is `%2C`, `|` is `%7C` and a space is
//! `%20`. Ranges are checked, never clamped: Google silently ignores values it does not like,
//! which would make a wrong link look right.
//!
//! ```
//! use streetview::{maps_url::Pano, LatLng};
//! let url = Pano::at(LatLng::new(48.857832, 2.295226)?)
//!     .heading(-90.0)
//!     .pitch(38.0)
//!     .fov(80.0)
//!     .build()?;
//! assert_eq!(
//!     url,
//!     "https://www.google.com/maps/@?api=1&map_action=pano&viewpoint=48.857832%2C2.295226&heading=-90&pitch=38&fov=80"
//! );
//! # Ok::<(), streetview::Error>(())
//! ```

use crate::coords::{LatLng, Place, fmt6};
use crate::credentials::ApiKey;
use crate::error::{Error, Result, check_range};
use crate::query::Query;

const MAPS_AT: &str = "https://www.google.com/maps/@?";
const MAPS_SEARCH: &str = "https://www.google.com/maps/search/?";
const MAPS_DIR: &str = "https://www.google.com/maps/dir/?";
const EMBED_STREETVIEW: &str = "https://www.google.com/maps/embed/v1/streetview?";

/// Most waypoints Google takes in a directions URL (3 on mobile, 9 elsewhere).
pub const MAX_WAYPOINTS: usize = 9;

/// A Street View panorama link (`map_action=pano`).
///
/// Needs a `viewpoint` (a position; Google opens the nearest panorama) or a `pano` id, or both
/// (then the viewpoint is the fallback when the id is no longer found: pano ids drift, so keep
/// coordinates next to any id you store). Defaults, when a field is `None`: heading faces from
/// the viewpoint as Google chooses, pitch 0, fov 90.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pano {
    /// Where to look from.
    pub viewpoint: Option<LatLng>,
    /// A panorama id, preferred over `viewpoint` when both are set.
    pub pano: Option<String>,
    /// Compass heading of the camera, degrees clockwise from north, `-180..=360`.
    pub heading: Option<f64>,
    /// Camera pitch, degrees up from horizontal, `-90..=90`.
    pub pitch: Option<f64>,
    /// Horizontal field of view, degrees, `10..=100` (smaller zooms in).
    pub fov: Option<f64>,
}

impl Pano {
    /// A panorama seen from `viewpoint`.
    pub fn at(viewpoint: LatLng) -> Self {
        Self {
            viewpoint: Some(viewpoint),
            ..Self::default()
        }
    }

    /// A panorama by id.
    pub fn id(pano: impl Into<String>) -> Self {
        Self {
            pano: Some(pano.into()),
            ..Self::default()
        }
    }

    /// Sets the heading (`-180..=360`, checked by [`Pano::build`]).
    pub fn heading(mut self, degrees: f64) -> Self {
        self.heading = Some(degrees);
        self
    }

    /// Sets the pitch (`-90..=90`).
    pub fn pitch(mut self, degrees: f64) -> Self {
        self.pitch = Some(degrees);
        self
    }

    /// Sets the field of view (`10..=100`).
    pub fn fov(mut self, degrees: f64) -> Self {
        self.fov = Some(degrees);
        self
    }

    /// Checks the ranges and returns the URL.
    pub fn build(&self) -> Result<String> {
        let mut q = Query::new();
        q.push("api", "1").push("map_action", "pano");
        self.push_target(&mut q, "viewpoint")?;
        self.push_view(&mut q)?;
        Ok(format!("{MAPS_AT}{}", q.as_str()))
    }

    /// The free Maps Embed API Street View URL for an `<iframe>` (needs a key with the Maps
    /// Embed API enabled; the key is visible to the page's users, so restrict it by referrer).
    ///
    /// Embed takes `location` or `pano`, not both: the id wins when both are set.
    pub fn embed_url(&self, key: &ApiKey) -> Result<String> {
        let mut q = Query::new();
        q.push("key", key.expose());
        match (&self.pano, self.viewpoint) {
            (Some(pano), _) => {
                check_pano_id(pano)?;
                q.push("pano", pano);
            }
            (None, Some(at)) => {
                q.push("location", &at.to_google());
            }
            (None, None) => {
                return Err(Error::Conflict("a panorama needs a viewpoint or a pano id"));
            }
        }
        self.push_view(&mut q)?;
        Ok(format!("{EMBED_STREETVIEW}{}", q.as_str()))
    }

    fn push_target(&self, q: &mut Query, viewpoint_name: &str) -> Result<()> {
        if self.viewpoint.is_none() && self.pano.is_none() {
            return Err(Error::Conflict("a panorama needs a viewpoint or a pano id"));
        }
        if let Some(at) = self.viewpoint {
            q.push(viewpoint_name, &at.to_google());
        }
        if let Some(pano) = &self.pano {
            check_pano_id(pano)?;
            q.push("pano", pano);
        }
        Ok(())
    }

    fn push_view(&self, q: &mut Query) -> Result<()> {
        if let Some(h) = self.heading {
            q.push(
                "heading",
                &fmt6(check_range("heading", "-180..=360", h, -180.0, 360.0)?),
            );
        }
        if let Some(p) = self.pitch {
            q.push(
                "pitch",
                &fmt6(check_range("pitch", "-90..=90", p, -90.0, 90.0)?),
            );
        }
        if let Some(f) = self.fov {
            q.push(
                "fov",
                &fmt6(check_range("fov", "10..=100", f, 10.0, 100.0)?),
            );
        }
        Ok(())
    }
}

pub(crate) fn check_pano_id(pano: &str) -> Result<()> {
    if pano.trim().is_empty() {
        return Err(Error::invalid("pano", "the panorama id is empty"));
    }
    Ok(())
}

/// A search link: `query` is text or coordinates.
///
/// ```
/// assert_eq!(
///     streetview::maps_url::search("Z\u{fc}rich"),
///     "https://www.google.com/maps/search/?api=1&query=Z%C3%BCrich"
/// );
/// ```
pub fn search(query: impl Into<Place>) -> String {
    search_inner(&query.into(), None)
}

/// A search link for a Google place id; `query` is the fallback if the id is not found.
pub fn search_place_id(query: impl Into<Place>, place_id: &str) -> String {
    search_inner(&query.into(), Some(place_id))
}

fn search_inner(query: &Place, place_id: Option<&str>) -> String {
    let mut q = Query::new();
    q.push("api", "1")
        .push("query", &query.to_param())
        .push_opt("query_place_id", place_id);
    format!("{MAPS_SEARCH}{}", q.as_str())
}

/// How to travel, for [`Directions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TravelMode {
    /// `driving`
    Driving,
    /// `walking`
    Walking,
    /// `bicycling`
    Bicycling,
    /// `transit`
    Transit,
}

impl TravelMode {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            TravelMode::Driving => "driving",
            TravelMode::Walking => "walking",
            TravelMode::Bicycling => "bicycling",
            TravelMode::Transit => "transit",
        }
    }
}

/// A directions link (`/maps/dir/`). Every field is optional; with no origin Google starts from
/// the user's position.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Directions {
    /// Start.
    pub origin: Option<Place>,
    /// Start as a place id (wins over `origin`).
    pub origin_place_id: Option<String>,
    /// End.
    pub destination: Option<Place>,
    /// End as a place id (wins over `destination`).
    pub destination_place_id: Option<String>,
    /// Mode of travel; Google picks one when unset.
    pub travel_mode: Option<TravelMode>,
    /// `dir_action=navigate`: start turn-by-turn navigation where available.
    pub navigate: bool,
    /// Stops in between, at most [`MAX_WAYPOINTS`].
    pub waypoints: Vec<Place>,
    /// Place ids of the waypoints: empty, or exactly one per waypoint.
    pub waypoint_place_ids: Vec<String>,
}

impl Directions {
    /// Directions from `origin` to `destination`.
    pub fn new(origin: impl Into<Place>, destination: impl Into<Place>) -> Self {
        Self {
            origin: Some(origin.into()),
            destination: Some(destination.into()),
            ..Self::default()
        }
    }

    /// Sets the travel mode.
    pub fn travel_mode(mut self, mode: TravelMode) -> Self {
        self.travel_mode = Some(mode);
        self
    }

    /// Adds a waypoint.
    pub fn waypoint(mut self, stop: impl Into<Place>) -> Self {
        self.waypoints.push(stop.into());
        self
    }

    /// Checks the waypoint counts and returns the URL.
    pub fn build(&self) -> Result<String> {
        if self.waypoints.len() > MAX_WAYPOINTS {
            return Err(Error::out_of_range(
                "waypoints",
                "0..=9 stops",
                self.waypoints.len(),
            ));
        }
        if !self.waypoint_place_ids.is_empty()
            && self.waypoint_place_ids.len() != self.waypoints.len()
        {
            return Err(Error::Conflict(
                "waypoint_place_ids needs exactly one id per waypoint",
            ));
        }
        let join = |items: &mut dyn Iterator<Item = String>| items.collect::<Vec<_>>().join("|");
        let mut q = Query::new();
        q.push("api", "1")
            .push_opt(
                "origin",
                self.origin.as_ref().map(Place::to_param).as_deref(),
            )
            .push_opt("origin_place_id", self.origin_place_id.as_deref())
            .push_opt(
                "destination",
                self.destination.as_ref().map(Place::to_param).as_deref(),
            )
            .push_opt("destination_place_id", self.destination_place_id.as_deref())
            .push_opt("travelmode", self.travel_mode.map(TravelMode::as_str))
            .push_opt("dir_action", self.navigate.then_some("navigate"));
        if !self.waypoints.is_empty() {
            q.push(
                "waypoints",
                &join(&mut self.waypoints.iter().map(Place::to_param)),
            );
        }
        if !self.waypoint_place_ids.is_empty() {
            q.push(
                "waypoint_place_ids",
                &join(&mut self.waypoint_place_ids.iter().cloned()),
            );
        }
        Ok(format!("{MAPS_DIR}{}", q.as_str()))
    }
}

/// The base map of a [`MapView`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basemap {
    /// `roadmap` (Google's default)
    Roadmap,
    /// `satellite`
    Satellite,
    /// `terrain`
    Terrain,
}

/// An extra layer on a [`MapView`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// `none`
    None,
    /// `transit`
    Transit,
    /// `traffic`
    Traffic,
    /// `bicycling`
    Bicycling,
}

/// A map link (`map_action=map`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MapView {
    /// Map centre; Google uses the user's position when unset.
    pub center: Option<LatLng>,
    /// Zoom level, `0..=21`.
    pub zoom: Option<u8>,
    /// Base map.
    pub basemap: Option<Basemap>,
    /// Extra layer.
    pub layer: Option<Layer>,
}

impl MapView {
    /// A map centred on `center` at `zoom`.
    pub fn new(center: LatLng, zoom: u8) -> Self {
        Self {
            center: Some(center),
            zoom: Some(zoom),
            ..Self::default()
        }
    }

    /// Checks the zoom and returns the URL.
    pub fn build(&self) -> Result<String> {
        if let Some(zoom) = self.zoom.filter(|z| *z > 21) {
            return Err(Error::out_of_range("zoom", "0..=21", zoom));
        }
        let basemap = self.basemap.map(|b| match b {
            Basemap::Roadmap => "roadmap",
            Basemap::Satellite => "satellite",
            Basemap::Terrain => "terrain",
        });
        let layer = self.layer.map(|l| match l {
            Layer::None => "none",
            Layer::Transit => "transit",
            Layer::Traffic => "traffic",
            Layer::Bicycling => "bicycling",
        });
        let mut q = Query::new();
        q.push("api", "1")
            .push("map_action", "map")
            .push_opt("center", self.center.map(|c| c.to_google()).as_deref())
            .push_opt("zoom", self.zoom.map(|z| z.to_string()).as_deref())
            .push_opt("basemap", basemap)
            .push_opt("layer", layer);
        Ok(format!("{MAPS_AT}{}", q.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(lat: f64, lng: f64) -> LatLng {
        LatLng::new(lat, lng).expect("valid")
    }

    #[test]
    fn pano_reference_vector() {
        let url = Pano::at(p(48.857832, 2.295226))
            .heading(-90.0)
            .pitch(38.0)
            .fov(80.0)
            .build()
            .unwrap();
        assert_eq!(
            url,
            "https://www.google.com/maps/@?api=1&map_action=pano&viewpoint=48.857832%2C2.295226&heading=-90&pitch=38&fov=80"
        );
    }

    #[test]
    fn pano_by_id_has_no_viewpoint() {
        let url = Pano::id("4U-oRQCNsC6u7r8gp02sLA").build().unwrap();
        assert_eq!(
            url,
            "https://www.google.com/maps/@?api=1&map_action=pano&pano=4U-oRQCNsC6u7r8gp02sLA"
        );
        assert!(!url.contains("viewpoint"));
    }

    #[test]
    fn pano_with_both_keeps_viewpoint_as_fallback() {
        let mut pano = Pano::id("abc");
        pano.viewpoint = Some(p(1.0, 2.0));
        assert_eq!(
            pano.build().unwrap(),
            "https://www.google.com/maps/@?api=1&map_action=pano&viewpoint=1%2C2&pano=abc"
        );
    }

    #[test]
    fn pano_needs_a_target() {
        assert!(matches!(Pano::default().build(), Err(Error::Conflict(_))));
        assert!(Pano::id("  ").build().is_err());
    }

    #[test]
    fn pano_ranges_are_checked() {
        let at = Pano::at(p(0.0, 0.0));
        let err = at.clone().fov(5.0).build().unwrap_err();
        assert!(matches!(
            err,
            Error::OutOfRange {
                parameter: "fov",
                ..
            }
        ));
        assert_eq!(err.to_string(), "fov must be in 10..=100, got 5");
        assert!(at.clone().fov(100.5).build().is_err());
        assert!(at.clone().fov(10.0).build().is_ok());
        assert!(at.clone().heading(-180.5).build().is_err());
        assert!(at.clone().heading(360.5).build().is_err());
        assert!(at.clone().heading(-180.0).build().is_ok());
        assert!(at.clone().heading(360.0).build().is_ok());
        assert!(at.clone().pitch(90.1).build().is_err());
        assert!(at.clone().pitch(f64::NAN).build().is_err());
        assert!(at.pitch(-90.0).build().is_ok());
    }

    #[test]
    fn embed_url() {
        let key = ApiKey::new("K").unwrap();
        assert_eq!(
            Pano::at(p(1.5, 2.0)).heading(10.0).embed_url(&key).unwrap(),
            "https://www.google.com/maps/embed/v1/streetview?key=K&location=1.5%2C2&heading=10"
        );
        assert_eq!(
            Pano::id("xyz").embed_url(&key).unwrap(),
            "https://www.google.com/maps/embed/v1/streetview?key=K&pano=xyz"
        );
    }

    #[test]
    fn search_vectors() {
        assert_eq!(
            search("Z\u{fc}rich"),
            "https://www.google.com/maps/search/?api=1&query=Z%C3%BCrich"
        );
        assert_eq!(
            search(p(47.5951518, -122.3316393)),
            "https://www.google.com/maps/search/?api=1&query=47.595152%2C-122.331639"
        );
        assert_eq!(
            search_place_id("Pike Place Market", "ChIJKxjxuaNqkFQR3CK6O1HNNqY"),
            "https://www.google.com/maps/search/?api=1&query=Pike%20Place%20Market&query_place_id=ChIJKxjxuaNqkFQR3CK6O1HNNqY"
        );
    }

    #[test]
    fn directions() {
        let url = Directions::new("Paris, France", "Cherbourg, France")
            .travel_mode(TravelMode::Driving)
            .waypoint("Versailles")
            .waypoint("Chartres")
            .build()
            .unwrap();
        assert_eq!(
            url,
            "https://www.google.com/maps/dir/?api=1&origin=Paris%2C%20France&destination=Cherbourg%2C%20France&travelmode=driving&waypoints=Versailles%7CChartres"
        );
        let too_many = Directions {
            waypoints: vec![Place::from("x"); 10],
            ..Directions::default()
        };
        let err = too_many.build().unwrap_err();
        assert!(err.to_string().contains("waypoints"), "{err}");
        let mut mismatch = Directions::new("a", "b").waypoint("c");
        mismatch.waypoint_place_ids = vec!["1".into(), "2".into()];
        assert!(mismatch.build().is_err());
        let nav = Directions {
            navigate: true,
            ..Directions::default()
        };
        assert_eq!(
            nav.build().unwrap(),
            "https://www.google.com/maps/dir/?api=1&dir_action=navigate"
        );
    }

    #[test]
    fn map_view() {
        let mut view = MapView::new(p(-33.712206, 150.311941), 12);
        view.basemap = Some(Basemap::Terrain);
        assert_eq!(
            view.build().unwrap(),
            "https://www.google.com/maps/@?api=1&map_action=map&center=-33.712206%2C150.311941&zoom=12&basemap=terrain"
        );
        let err = MapView::new(p(0.0, 0.0), 22).build().unwrap_err();
        assert_eq!(err.to_string(), "zoom must be in 0..=21, got 22");
    }
}
