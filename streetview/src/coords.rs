//! Coordinates: validation, longitude normalisation, formatting, boxes around a point, distance.
//!
//! Axis order differs between providers and this module is where it is decided once:
//! Google's `location`, `viewpoint` and `center` are **lat,lng**; Mapillary and Panoramax `bbox`,
//! GeoJSON and Panoramax `place_position` are **lon,lat**.

use std::fmt;

use crate::error::{Error, Result};

/// Mean Earth radius used by [`haversine_m`], in metres (IUGG mean radius R₁).
pub const EARTH_MEAN_RADIUS_M: f64 = 6_371_008.8;

/// Equatorial radius (WGS84 `a`) used by [`bbox_around`]: 1° of latitude ≈ 111,319.49 m.
pub const WGS84_A_M: f64 = 6_378_137.0;

/// A validated WGS84 position.
///
/// Latitude is in `-90..=90` (out-of-range values are rejected, never clamped: a latitude of 95
/// is a bug upstream, not a place). Longitude is normalised to `[-180, 180)`, so points clicked
/// on a world copy of a web map (|lng| > 180) land where they belong.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatLng {
    lat: f64,
    lng: f64,
}

impl LatLng {
    /// Validates `lat` and normalises `lng`.
    ///
    /// ```
    /// use streetview::LatLng;
    /// let p = LatLng::new(48.8584, 362.2945)?;
    /// assert!((p.lng() - 2.2945).abs() < 1e-9);
    /// assert!(LatLng::new(90.5, 0.0).is_err());
    /// assert!(LatLng::new(f64::NAN, 0.0).is_err());
    /// # Ok::<(), streetview::Error>(())
    /// ```
    pub fn new(lat: f64, lng: f64) -> Result<Self> {
        let lat = crate::error::check_range("latitude", "-90..=90", lat, -90.0, 90.0)?;
        if !lng.is_finite() {
            return Err(Error::NotFinite {
                parameter: "longitude",
                value: lng,
            });
        }
        Ok(Self {
            lat: if lat == 0.0 { 0.0 } else { lat },
            lng: normalize_lng(lng),
        })
    }

    /// Latitude in degrees, `-90..=90`.
    pub fn lat(&self) -> f64 {
        self.lat
    }

    /// Longitude in degrees, `-180..180`.
    pub fn lng(&self) -> f64 {
        self.lng
    }

    /// `lat,lng` with at most 6 decimals: Google's axis order and precision.
    pub fn to_google(&self) -> String {
        format!("{},{}", fmt6(self.lat), fmt6(self.lng))
    }

    /// `lon,lat` with at most 7 decimals (≈1 cm): GeoJSON, Mapillary and Panoramax order.
    pub fn to_lon_lat(&self) -> String {
        format!("{},{}", fmt7(self.lng), fmt7(self.lat))
    }
}

impl fmt::Display for LatLng {
    /// `lat,lng` as Google wants it (see [`LatLng::to_google`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_google())
    }
}

/// Normalises a longitude to `[-180, 180)`, the half-open range of Leaflet's `LatLng.wrap()`.
///
/// `180 → -180`, `190 → -170`, `-190 → 170`, `540 → -180`, `359.5 → -0.5`, `-0.0 → 0`.
/// Non-finite input comes back unchanged (NaN stays NaN); [`LatLng::new`] rejects it first.
pub fn normalize_lng(lng: f64) -> f64 {
    if !lng.is_finite() {
        return lng;
    }
    if (-180.0..180.0).contains(&lng) {
        // Already in range: return it bit for bit (the arithmetic below would add rounding).
        return if lng == 0.0 { 0.0 } else { lng };
    }
    let mut wrapped = (lng + 180.0).rem_euclid(360.0) - 180.0;
    // rem_euclid can round up to exactly 360 for tiny negative inputs.
    if wrapped >= 180.0 {
        wrapped -= 360.0;
    }
    if wrapped == 0.0 { 0.0 } else { wrapped }
}

/// Formats with at most 6 decimals, trailing zeros and point trimmed, never `-0`.
///
/// Google ignores digits past the sixth (≈0.11 m), so more would only lengthen URLs.
/// `1.23456789 → "1.234568"`, `10.0 → "10"`, `-0.0000004 → "0"`.
pub fn fmt6(value: f64) -> String {
    format_decimals(value, 6)
}

/// Formats with at most 7 decimals (≈1 cm), trimmed, never `-0`: Mapillary and Panoramax boxes.
pub fn fmt7(value: f64) -> String {
    format_decimals(value, 7)
}

/// Formats `value` with at most `decimals` decimals, trailing zeros and point trimmed, and
/// without a minus sign on a value that rounds to zero.
pub fn format_decimals(value: f64, decimals: usize) -> String {
    let mut text = format!("{value:.decimals$}");
    if text.contains('.') {
        let trimmed = text.trim_end_matches('0').trim_end_matches('.').len();
        text.truncate(trimmed);
    }
    if text == "-0" { "0".to_owned() } else { text }
}

/// A longitude/latitude box that does not cross the antimeridian: `west ≤ east`, `south ≤ north`.
///
/// Written `west,south,east,north` (`minLon,minLat,maxLon,maxLat`), the order of GeoJSON, STAC,
/// Mapillary and Panoramax. A box that would cross the antimeridian is two `BBox`es; see
/// [`bbox_around`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BBox {
    west: f64,
    south: f64,
    east: f64,
    north: f64,
}

impl BBox {
    /// Validates a box: longitudes in `-180..=180`, latitudes in `-90..=90`, `west ≤ east`,
    /// `south ≤ north`.
    pub fn new(west: f64, south: f64, east: f64, north: f64) -> Result<Self> {
        use crate::error::check_range;
        let west = check_range("bbox west", "-180..=180", west, -180.0, 180.0)?;
        let east = check_range("bbox east", "-180..=180", east, -180.0, 180.0)?;
        let south = check_range("bbox south", "-90..=90", south, -90.0, 90.0)?;
        let north = check_range("bbox north", "-90..=90", north, -90.0, 90.0)?;
        if west > east {
            return Err(Error::invalid(
                "bbox",
                format!(
                    "west ({west}) is east of east ({east}); split a box that crosses the antimeridian in two"
                ),
            ));
        }
        if south > north {
            return Err(Error::invalid(
                "bbox",
                format!("south ({south}) is north of north ({north})"),
            ));
        }
        Ok(Self {
            west,
            south,
            east,
            north,
        })
    }

    /// Western edge (minimum longitude).
    pub fn west(&self) -> f64 {
        self.west
    }

    /// Southern edge (minimum latitude).
    pub fn south(&self) -> f64 {
        self.south
    }

    /// Eastern edge (maximum longitude).
    pub fn east(&self) -> f64 {
        self.east
    }

    /// Northern edge (maximum latitude).
    pub fn north(&self) -> f64 {
        self.north
    }

    /// `Δlon × Δlat` in square degrees: the measure Mapillary limits.
    pub fn area_sq_deg(&self) -> f64 {
        (self.east - self.west) * (self.north - self.south)
    }

    /// Whether `point` is inside the box (edges included).
    pub fn contains(&self, point: LatLng) -> bool {
        (self.west..=self.east).contains(&point.lng())
            && (self.south..=self.north).contains(&point.lat())
    }

    /// Splits the box into an `n × n` grid of equal boxes, row by row from the south-west.
    pub fn grid(&self, n: usize) -> Vec<BBox> {
        let n = n.max(1);
        let dx = (self.east - self.west) / n as f64;
        let dy = (self.north - self.south) / n as f64;
        let edge = |start: f64, step: f64, i: usize, end: f64| {
            if i == n { end } else { start + step * i as f64 }
        };
        let mut tiles = Vec::with_capacity(n * n);
        for row in 0..n {
            for col in 0..n {
                tiles.push(BBox {
                    west: edge(self.west, dx, col, self.east),
                    east: edge(self.west, dx, col + 1, self.east),
                    south: edge(self.south, dy, row, self.north),
                    north: edge(self.south, dy, row + 1, self.north),
                });
            }
        }
        tiles
    }
}

impl fmt::Display for BBox {
    /// `west,south,east,north` with at most 7 decimals each.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{},{},{},{}",
            fmt7(self.west),
            fmt7(self.south),
            fmt7(self.east),
            fmt7(self.north)
        )
    }
}

/// The box around `center` reaching `radius_m` metres north, south, east and west.
///
/// Spherical WGS84 (`a` = 6,378,137 m): `dLat = deg(r / a)`, `dLng = dLat / cos(lat)`.
/// Latitude edges are clamped to ±90; when the box reaches a pole, or `dLng ≥ 180`, it spans all
/// longitudes. A box that crosses the antimeridian comes back as **two** boxes, the one that
/// holds `center` first: STAC allows `west > east`, but Panoramax and Mapillary are not known to
/// honour it.
///
/// ```
/// use streetview::{bbox_around, LatLng};
/// let boxes = bbox_around(LatLng::new(0.0, 179.9995)?, 100.0)?;
/// assert_eq!(boxes.len(), 2);
/// assert_eq!(boxes[0].to_string(), "179.9986017,-0.0008983,180,0.0008983");
/// assert_eq!(boxes[1].to_string(), "-180,-0.0008983,-179.9996017,0.0008983");
/// # Ok::<(), streetview::Error>(())
/// ```
pub fn bbox_around(center: LatLng, radius_m: f64) -> Result<Vec<BBox>> {
    let radius_m =
        crate::error::check_range("radius", "0..=20000000 metres", radius_m, 0.0, 2.0e7)?;
    let d_lat = (radius_m / WGS84_A_M).to_degrees();
    let south = center.lat() - d_lat;
    let north = center.lat() + d_lat;
    if south <= -90.0 || north >= 90.0 {
        return Ok(vec![BBox {
            west: -180.0,
            east: 180.0,
            south: south.max(-90.0),
            north: north.min(90.0),
        }]);
    }
    let d_lng = d_lat / center.lat().to_radians().cos();
    // Only reachable with a box that also touches a pole (dLng < 57.3° otherwise), kept so that
    // the rule does not depend on that geometry.
    if d_lng >= 180.0 {
        return Ok(vec![BBox {
            west: -180.0,
            east: 180.0,
            south,
            north,
        }]);
    }
    let west = center.lng() - d_lng;
    let east = center.lng() + d_lng;
    let part = |west: f64, east: f64| BBox {
        west,
        east,
        south,
        north,
    };
    Ok(if west < -180.0 {
        vec![part(-180.0, east), part(west + 360.0, 180.0)]
    } else if east > 180.0 {
        vec![part(west, 180.0), part(-180.0, east - 360.0)]
    } else {
        vec![part(west, east)]
    })
}

/// Great-circle distance in metres (haversine, R = [`EARTH_MEAN_RADIUS_M`]).
///
/// ```
/// use streetview::{haversine_m, LatLng};
/// let d = haversine_m(LatLng::new(48.8584, 2.2945)?, LatLng::new(48.8606, 2.3376)?);
/// assert!((d - 3162.50).abs() < 0.01);
/// # Ok::<(), streetview::Error>(())
/// ```
pub fn haversine_m(a: LatLng, b: LatLng) -> f64 {
    let (lat1, lat2) = (a.lat().to_radians(), b.lat().to_radians());
    let d_lat = lat2 - lat1;
    let d_lng = (b.lng() - a.lng()).to_radians();
    let h = (d_lat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (d_lng / 2.0).sin().powi(2);
    2.0 * EARTH_MEAN_RADIUS_M * h.sqrt().min(1.0).asin()
}

/// A place as Google takes it: coordinates, or text (an address, a name, `place_id:…`).
#[derive(Debug, Clone, PartialEq)]
pub enum Place {
    /// A position, sent as `lat,lng` with 6 decimals.
    Coords(LatLng),
    /// Free text, sent URL-encoded.
    Text(String),
}

impl Place {
    /// The value as sent (before URL encoding).
    pub fn to_param(&self) -> String {
        match self {
            Place::Coords(p) => p.to_google(),
            Place::Text(text) => text.clone(),
        }
    }
}

impl From<LatLng> for Place {
    fn from(p: LatLng) -> Self {
        Place::Coords(p)
    }
}

impl From<&str> for Place {
    fn from(text: &str) -> Self {
        Place::Text(text.to_owned())
    }
}

impl From<String> for Place {
    fn from(text: String) -> Self {
        Place::Text(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(lat: f64, lng: f64) -> LatLng {
        LatLng::new(lat, lng).expect("test coordinates are valid")
    }

    #[test]
    fn normalize_vectors() {
        assert_eq!(normalize_lng(180.0), -180.0);
        assert_eq!(normalize_lng(190.0), -170.0);
        assert_eq!(normalize_lng(-190.0), 170.0);
        assert_eq!(normalize_lng(540.0), -180.0);
        assert_eq!(normalize_lng(359.5), -0.5);
        let zero = normalize_lng(-0.0);
        assert_eq!(zero, 0.0);
        assert!(zero.is_sign_positive());
        assert_eq!(normalize_lng(-180.0), -180.0);
        assert_eq!(normalize_lng(179.999), 179.999);
        // A value just below -180 must not round to +180.
        let tiny = normalize_lng(-180.0 - 1e-14);
        assert!((-180.0..180.0).contains(&tiny), "{tiny}");
    }

    #[test]
    fn latitude_is_rejected_never_clamped() {
        for lat in [90.000001, -90.5, 180.0] {
            let err = LatLng::new(lat, 0.0).unwrap_err();
            assert!(matches!(
                err,
                Error::OutOfRange {
                    parameter: "latitude",
                    ..
                }
            ));
            assert!(err.to_string().contains("-90..=90"), "{err}");
        }
        assert_eq!(p(90.0, 0.0).lat(), 90.0);
        assert_eq!(p(-90.0, 0.0).lat(), -90.0);
    }

    #[test]
    fn non_finite_is_rejected() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(matches!(
                LatLng::new(bad, 0.0),
                Err(Error::NotFinite {
                    parameter: "latitude",
                    ..
                })
            ));
            assert!(matches!(
                LatLng::new(0.0, bad),
                Err(Error::NotFinite {
                    parameter: "longitude",
                    ..
                })
            ));
        }
    }

    #[test]
    fn fmt6_vectors() {
        assert_eq!(fmt6(1.23456789), "1.234568");
        assert_eq!(fmt6(10.0), "10");
        assert_eq!(fmt6(-0.0000004), "0");
        assert_eq!(fmt6(-0.0), "0");
        assert_eq!(fmt6(-90.0), "-90");
        assert_eq!(fmt6(151.78), "151.78");
        assert_eq!(fmt6(100.0), "100");
        assert_eq!(fmt6(0.5), "0.5");
    }

    #[test]
    fn google_and_geojson_order() {
        let x = p(46.414382, 10.013988);
        assert_eq!(x.to_google(), "46.414382,10.013988");
        assert_eq!(x.to_string(), "46.414382,10.013988");
        assert_eq!(x.to_lon_lat(), "10.013988,46.414382");
    }

    #[test]
    fn bbox_around_paris_is_mapillary_sized() {
        let boxes = bbox_around(p(48.8584, 2.2945), 100.0).unwrap();
        assert_eq!(boxes.len(), 1);
        assert_eq!(
            boxes[0].to_string(),
            "2.2931346,48.8575017,2.2958654,48.8592983"
        );
        let area = boxes[0].area_sq_deg();
        assert!((area - 4.906e-6).abs() < 0.001e-6, "{area}");
    }

    #[test]
    fn bbox_around_splits_at_the_antimeridian() {
        let boxes = bbox_around(p(0.0, 179.9995), 100.0).unwrap();
        assert_eq!(boxes.len(), 2);
        assert_eq!(fmt7(boxes[0].west()), "179.9986017");
        assert_eq!(boxes[0].east(), 180.0);
        assert_eq!(boxes[1].west(), -180.0);
        assert_eq!(fmt7(boxes[1].east()), "-179.9996017");
        assert!(boxes[0].contains(p(0.0, 179.9995)));

        // The mirror case: the box holding the centre still comes first.
        let boxes = bbox_around(p(0.0, -179.9995), 100.0).unwrap();
        assert_eq!(boxes.len(), 2);
        assert_eq!(boxes[0].west(), -180.0);
        assert_eq!(fmt7(boxes[0].east()), "-179.9986017");
        assert_eq!(fmt7(boxes[1].west()), "179.9996017");
        assert_eq!(boxes[1].east(), 180.0);
    }

    #[test]
    fn bbox_around_clamps_at_the_poles() {
        let boxes = bbox_around(p(89.9995, 10.0), 1000.0).unwrap();
        assert_eq!(boxes.len(), 1);
        assert_eq!(boxes[0].north(), 90.0);
        assert_eq!((boxes[0].west(), boxes[0].east()), (-180.0, 180.0));

        let boxes = bbox_around(p(-89.9999, 10.0), 100.0).unwrap();
        assert_eq!(boxes[0].south(), -90.0);

        // Near (not at) the pole the box is wide but still a box.
        let boxes = bbox_around(p(89.9, 0.0), 10_000.0).unwrap();
        assert!(boxes[0].north() < 90.0);
        assert!(boxes[0].east() > 51.0 && boxes[0].east() < 52.0);
    }

    #[test]
    fn bbox_around_rejects_bad_radius() {
        for r in [-1.0, f64::NAN, 3.0e7] {
            let err = bbox_around(p(0.0, 0.0), r).unwrap_err();
            assert!(err.to_string().contains("radius"), "{err}");
        }
        let boxes = bbox_around(p(1.0, 1.0), 0.0).unwrap();
        assert_eq!(boxes[0].area_sq_deg(), 0.0);
    }

    #[test]
    fn bbox_new_validates() {
        assert!(BBox::new(1.0, 1.0, 0.0, 2.0).is_err());
        assert!(BBox::new(0.0, 2.0, 1.0, 1.0).is_err());
        assert!(BBox::new(-181.0, 0.0, 1.0, 1.0).is_err());
        assert!(BBox::new(0.0, -91.0, 1.0, 1.0).is_err());
        assert!(BBox::new(0.0, 0.0, f64::NAN, 1.0).is_err());
        assert_eq!(
            BBox::new(0.0, 0.0, 0.1, 0.1).unwrap().to_string(),
            "0,0,0.1,0.1"
        );
    }

    #[test]
    fn grid_covers_the_box_exactly() {
        let b = BBox::new(0.0, 0.0, 0.3, 0.3).unwrap();
        let tiles = b.grid(3);
        assert_eq!(tiles.len(), 9);
        assert_eq!(tiles[0].west(), 0.0);
        assert_eq!(tiles[8].east(), 0.3);
        assert_eq!(tiles[8].north(), 0.3);
        let total: f64 = tiles.iter().map(BBox::area_sq_deg).sum();
        assert!((total - b.area_sq_deg()).abs() < 1e-12);
    }

    #[test]
    fn haversine_vectors() {
        let d = haversine_m(p(48.8584, 2.2945), p(48.8606, 2.3376));
        assert!((d - 3162.50).abs() <= 0.01, "{d}");
        let d = haversine_m(p(0.0, 179.9), p(0.0, -179.9));
        assert!((d - 22239.02).abs() <= 0.01, "{d}");
        assert_eq!(haversine_m(p(10.0, 10.0), p(10.0, 10.0)), 0.0);
    }

    #[test]
    fn place_params() {
        assert_eq!(Place::from(p(1.0, 2.5)).to_param(), "1,2.5");
        assert_eq!(Place::from("City Hall").to_param(), "City Hall");
    }
}
