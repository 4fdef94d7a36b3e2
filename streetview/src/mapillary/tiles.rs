//! Mapillary vector tiles (Mapbox Vector Tile spec) and viewer links.
//!
//! Tiles are for a map client (Leaflet, MapLibre) to draw coverage; this crate builds their
//! URLs and does not fetch them. Unlike Graph API calls, tile URLs carry the token as
//! `access_token=` (Mapillary's documented way for tiles), so treat a tile URL as a secret and
//! use a client token, never a user token.

use crate::credentials::AccessToken;
use crate::error::{Error, Result};
use crate::query::encode_component;

/// Tile root.
pub const TILES_BASE: &str = "https://tiles.mapillary.com";

/// Highest zoom the coverage tiles have.
pub const MAX_ZOOM: u8 = 14;

/// Which coverage tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TileSet {
    /// `mly1_public`: positions as uploaded.
    Public,
    /// `mly1_computed_public`: positions after structure-from-motion (same schema).
    Computed,
}

impl TileSet {
    /// The tileset name in the URL.
    pub fn as_str(self) -> &'static str {
        match self {
            TileSet::Public => "mly1_public",
            TileSet::Computed => "mly1_computed_public",
        }
    }
}

/// A layer inside a coverage tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// `overview`, zoom 0–5: points (`captured_at, id, sequence_id, is_pano`).
    Overview,
    /// `sequence`, zoom 6–14: line strings (`captured_at, id` (sequence), `image_id,
    /// organization_id, is_pano`).
    Sequence,
    /// `image`, zoom 14: points (`captured_at, compass_angle, id, sequence_id,
    /// organization_id, is_pano`).
    Image,
}

impl Layer {
    /// The layer name inside the tile.
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Overview => "overview",
            Layer::Sequence => "sequence",
            Layer::Image => "image",
        }
    }
}

/// The layers a coverage tile has at zoom `z`: 0–5 `overview`, 6–13 `sequence`, 14
/// `sequence` and `image`. Above 14 there are no tiles (over-zoom the 14 ones).
pub fn layers_for_zoom(z: u8) -> Result<&'static [Layer]> {
    match z {
        0..=5 => Ok(&[Layer::Overview]),
        6..=13 => Ok(&[Layer::Sequence]),
        14 => Ok(&[Layer::Sequence, Layer::Image]),
        _ => Err(Error::out_of_range("zoom", "0..=14", z)),
    }
}

/// The URL of one coverage tile.
///
/// ```
/// use streetview::{mapillary::{tile_url, TileSet}, AccessToken};
/// let token = AccessToken::new("MLY|x")?;
/// assert_eq!(
///     tile_url(TileSet::Public, 14, 8294, 5634, &token)?,
///     "https://tiles.mapillary.com/maps/vtp/mly1_public/2/14/8294/5634?access_token=MLY%7Cx"
/// );
/// # Ok::<(), streetview::Error>(())
/// ```
pub fn tile_url(set: TileSet, z: u8, x: u32, y: u32, token: &AccessToken) -> Result<String> {
    layers_for_zoom(z)?;
    let side = 1u32 << z;
    if x >= side {
        return Err(Error::out_of_range("x", "0..2^zoom", x));
    }
    if y >= side {
        return Err(Error::out_of_range("y", "0..2^zoom", y));
    }
    Ok(format!(
        "{TILES_BASE}/maps/vtp/{}/2/{z}/{x}/{y}?access_token={}",
        set.as_str(),
        encode_component(token.expose())
    ))
}

/// The `{z}/{x}/{y}` template for a map library (set its max native zoom to [`MAX_ZOOM`]).
pub fn tile_url_template(set: TileSet, token: &AccessToken) -> String {
    format!(
        "{TILES_BASE}/maps/vtp/{}/2/{{z}}/{{x}}/{{y}}?access_token={}",
        set.as_str(),
        encode_component(token.expose())
    )
}

/// The Mapillary web viewer on one image.
///
/// ```
/// assert_eq!(
///     streetview::mapillary::viewer_url("498763468214164"),
///     "https://www.mapillary.com/app/?pKey=498763468214164&focus=photo"
/// );
/// ```
pub fn viewer_url(image_id: &str) -> String {
    format!(
        "https://www.mapillary.com/app/?pKey={}&focus=photo",
        encode_component(image_id)
    )
}

/// How the embedded viewer shows an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedStyle {
    /// The photo alone.
    Photo,
    /// Photo and map side by side.
    Split,
    /// The classic viewer.
    Classic,
}

/// An `<iframe>` URL of the viewer on one image.
pub fn embed_url(image_id: &str, style: EmbedStyle) -> String {
    let style = match style {
        EmbedStyle::Photo => "photo",
        EmbedStyle::Split => "split",
        EmbedStyle::Classic => "classic",
    };
    format!(
        "https://www.mapillary.com/embed?image_key={}&style={style}",
        encode_component(image_id)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_by_zoom() {
        assert_eq!(layers_for_zoom(0).unwrap(), &[Layer::Overview]);
        assert_eq!(layers_for_zoom(5).unwrap(), &[Layer::Overview]);
        assert_eq!(layers_for_zoom(6).unwrap(), &[Layer::Sequence]);
        assert_eq!(layers_for_zoom(13).unwrap(), &[Layer::Sequence]);
        assert_eq!(
            layers_for_zoom(14).unwrap(),
            &[Layer::Sequence, Layer::Image]
        );
        let err = layers_for_zoom(15).unwrap_err();
        assert_eq!(err.to_string(), "zoom must be in 0..=14, got 15");
    }

    #[test]
    fn tile_urls() {
        let token = AccessToken::new("MLY|x").unwrap();
        assert_eq!(
            tile_url(TileSet::Computed, 0, 0, 0, &token).unwrap(),
            "https://tiles.mapillary.com/maps/vtp/mly1_computed_public/2/0/0/0?access_token=MLY%7Cx"
        );
        assert_eq!(
            tile_url_template(TileSet::Public, &token),
            "https://tiles.mapillary.com/maps/vtp/mly1_public/2/{z}/{x}/{y}?access_token=MLY%7Cx"
        );
        assert!(tile_url(TileSet::Public, 15, 0, 0, &token).is_err());
        assert!(tile_url(TileSet::Public, 1, 2, 0, &token).is_err());
        assert!(tile_url(TileSet::Public, 1, 1, 2, &token).is_err());
        assert!(tile_url(TileSet::Public, 14, 16383, 16383, &token).is_ok());
    }

    #[test]
    fn links() {
        assert_eq!(
            embed_url("1", EmbedStyle::Split),
            "https://www.mapillary.com/embed?image_key=1&style=split"
        );
    }
}
