//! Positions on the sphere, great-circle distances and a local flat frame for fitting.

use serde::{Deserialize, Serialize};

/// Mean Earth radius in metres.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// A WGS-84 position in degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatLon {
    /// Latitude, −90..=90.
    pub lat: f64,
    /// Longitude, −180..=180.
    pub lon: f64,
}

impl LatLon {
    /// A position; `None` when a coordinate is not finite or out of range.
    pub fn new(lat: f64, lon: f64) -> Option<LatLon> {
        let ok = lat.is_finite() && lon.is_finite() && lat.abs() <= 90.0 && lon.abs() <= 180.0;
        ok.then_some(LatLon { lat, lon })
    }

    /// Great-circle (haversine) distance in metres.
    pub fn distance_m(self, other: LatLon) -> f64 {
        let (p1, p2) = (self.lat.to_radians(), other.lat.to_radians());
        let dp = p2 - p1;
        let dl = (other.lon - self.lon).to_radians();
        let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
    }

    /// The point `east_m`/`north_m` metres away in a local flat frame (good to a few km).
    pub fn offset(self, east_m: f64, north_m: f64) -> LatLon {
        Frame::new(self).to_latlon(east_m, north_m)
    }
}

/// A local east/north frame in metres around an origin (equirectangular; fine within tens of
/// kilometres, safe across the antimeridian).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame {
    origin: LatLon,
    m_per_deg_lat: f64,
    m_per_deg_lon: f64,
}

impl Frame {
    pub(crate) fn new(origin: LatLon) -> Frame {
        let m_per_deg_lat = EARTH_RADIUS_M.to_radians();
        Frame {
            origin,
            m_per_deg_lat,
            m_per_deg_lon: m_per_deg_lat * origin.lat.to_radians().cos().max(1e-6),
        }
    }

    pub(crate) fn to_xy(self, p: LatLon) -> (f64, f64) {
        let mut dlon = p.lon - self.origin.lon;
        if dlon > 180.0 {
            dlon -= 360.0;
        } else if dlon < -180.0 {
            dlon += 360.0;
        }
        (
            dlon * self.m_per_deg_lon,
            (p.lat - self.origin.lat) * self.m_per_deg_lat,
        )
    }

    pub(crate) fn to_latlon(self, x: f64, y: f64) -> LatLon {
        let lat = (self.origin.lat + y / self.m_per_deg_lat).clamp(-90.0, 90.0);
        let mut lon = self.origin.lon + x / self.m_per_deg_lon;
        if lon > 180.0 {
            lon -= 360.0;
        } else if lon < -180.0 {
            lon += 360.0;
        }
        LatLon { lat, lon }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haversine_known_distance() {
        // Berlin TV tower to Brandenburg Gate: about 2.2 km.
        let a = LatLon::new(52.520_8, 13.409_4).unwrap();
        let b = LatLon::new(52.516_3, 13.377_7).unwrap();
        let d = a.distance_m(b);
        assert!((d - 2_200.0).abs() < 50.0, "{d}");
        assert!(LatLon::new(91.0, 0.0).is_none());
        assert!(LatLon::new(0.0, f64::NAN).is_none());
    }

    #[test]
    fn frame_round_trip_and_antimeridian() {
        let o = LatLon::new(10.0, 179.999).unwrap();
        let p = o.offset(500.0, -300.0);
        assert!(p.lon < -179.0, "wrapped: {p:?}");
        assert!((o.distance_m(p) - (500f64.hypot(300.0))).abs() < 1.0);
        let (x, y) = Frame::new(o).to_xy(p);
        assert!((x - 500.0).abs() < 0.01 && (y + 300.0).abs() < 0.01);
    }
}
