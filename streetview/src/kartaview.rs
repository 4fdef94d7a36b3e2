//! KartaView (formerly OpenStreetCam): a deep link only.
//!
//! Its public API has been unstable since 2023 (v1 endpoints gone, image storage redirects
//! broken, 502s), so this crate builds no client, just a link to its map.

use crate::coords::{LatLng, fmt6};
use crate::error::{Error, Result};

/// The KartaView map at `at`, zoom `0..=20`: `https://kartaview.org/map/@lat,lng,{zoom}z`.
///
/// ```
/// use streetview::{kartaview, LatLng};
/// assert_eq!(
///     kartaview::map_url(LatLng::new(46.770439, 23.591423)?, 17)?,
///     "https://kartaview.org/map/@46.770439,23.591423,17z"
/// );
/// # Ok::<(), streetview::Error>(())
/// ```
pub fn map_url(at: LatLng, zoom: u8) -> Result<String> {
    if zoom > 20 {
        return Err(Error::out_of_range("zoom", "0..=20", zoom));
    }
    Ok(format!(
        "https://kartaview.org/map/@{},{},{zoom}z",
        fmt6(at.lat()),
        fmt6(at.lng())
    ))
}
