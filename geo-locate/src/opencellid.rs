//! The OpenCellID API client: `cell/get` and `cell/getInArea` (JSON).
//!
//! The key goes in the `key` query parameter. Errors arrive as `{"error": "...", "code": N}`:
//! code 1 ("Cell not found") is a normal, cacheable miss and becomes `Ok(None)`; code 6 (too
//! many requests), 7 (daily limit) or HTTP 429 become [`Error::QuotaExhausted`] (back off);
//! 2 and 4 (bad or not whitelisted key) become [`Error::Unauthorized`]; anything else is
//! [`Error::Provider`] with the provider's code and message.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::instrument;

use crate::cell::{CellKey, Radio};
use crate::error::{Error, Result};
use crate::estimate::Station;
use crate::geo::LatLon;
use crate::http;
use crate::wigle::BoundingBox;

const PROVIDER: &str = "OpenCellID";

/// Configuration of an [`OpenCellIdClient`].
#[derive(Debug, Clone)]
pub struct OpenCellIdConfig {
    /// Base URL. Default `https://opencellid.org`.
    pub base_url: String,
    /// The API key. Required.
    pub api_key: String,
    /// Per-request timeout. Default 20 s.
    pub timeout: Duration,
    /// User-Agent header. Default `vigil-geo-locate/<version>`.
    pub user_agent: String,
}

impl OpenCellIdConfig {
    /// A configuration with the given key and every other field at its default.
    pub fn new(api_key: impl Into<String>) -> Self {
        OpenCellIdConfig {
            base_url: "https://opencellid.org".to_owned(),
            api_key: api_key.into(),
            timeout: http::DEFAULT_TIMEOUT,
            user_agent: http::DEFAULT_USER_AGENT.to_owned(),
        }
    }

    /// The same configuration with another base URL.
    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }
}

/// A cell as OpenCellID describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OcidCell {
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
    /// MCC.
    #[serde(default)]
    pub mcc: Option<i64>,
    /// MNC.
    #[serde(default)]
    pub mnc: Option<i64>,
    /// LAC/TAC.
    #[serde(default)]
    pub lac: Option<i64>,
    /// Cell id; −1 when OpenCellID answered with an area estimate instead of the cell.
    #[serde(default)]
    pub cellid: Option<i64>,
    /// Average signal (dBm; 0 = unknown).
    #[serde(default)]
    pub average_signal_strength: Option<f64>,
    /// Coverage radius, metres.
    #[serde(default)]
    pub range: Option<f64>,
    /// Number of measurements.
    #[serde(default)]
    pub samples: Option<u64>,
    /// 1 computed, 0 exact from the operator.
    #[serde(default)]
    pub changeable: Option<i64>,
    /// `GSM`, `UMTS`, `LTE`, `NR`, `CDMA`.
    #[serde(default)]
    pub radio: Option<String>,
}

impl OcidCell {
    /// The cell as a station, unless it is an area estimate or has no valid position.
    pub fn station(&self) -> Option<Station> {
        if self.cellid == Some(-1) {
            return None;
        }
        let position =
            LatLon::new(self.lat, self.lon).filter(|p| !(p.lat == 0.0 && p.lon == 0.0))?;
        Some(Station {
            position,
            radius_m: self.range.unwrap_or(0.0).max(0.0),
            samples: self
                .samples
                .map_or(0, |s| u32::try_from(s).unwrap_or(u32::MAX)),
        })
    }
}

/// A page of `cell/getInArea`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OcidArea {
    /// Cells in the box (this page).
    #[serde(default)]
    pub count: u64,
    /// The cells.
    #[serde(default)]
    pub cells: Vec<OcidCell>,
}

#[derive(Debug, Deserialize)]
struct Failure {
    error: String,
    #[serde(default)]
    code: Option<i64>,
}

fn radio_param(r: Radio) -> &'static str {
    match r {
        Radio::Gsm => "GSM",
        Radio::Wcdma => "UMTS",
        Radio::Lte => "LTE",
        Radio::Nr => "NR",
        Radio::Cdma => "CDMA",
    }
}

/// An OpenCellID client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct OpenCellIdClient {
    http: reqwest::Client,
    config: OpenCellIdConfig,
}

impl OpenCellIdClient {
    /// A client; [`Error::Config`] when the key is empty.
    pub fn new(config: OpenCellIdConfig) -> Result<Self> {
        if config.api_key.trim().is_empty() {
            return Err(Error::Config(
                "OpenCellID needs an API key (opencellid.org → My API keys)".into(),
            ));
        }
        Ok(OpenCellIdClient {
            http: http::client(PROVIDER, config.timeout, &config.user_agent)?,
            config,
        })
    }

    /// GETs an endpoint; `Ok(None)` for the "not found" code 1.
    async fn get(
        &self,
        endpoint: &'static str,
        params: &[(&str, String)],
    ) -> Result<Option<Vec<u8>>> {
        let url = http::join(&self.config.base_url, endpoint);
        let mut query: Vec<(&str, String)> = vec![("key", self.config.api_key.clone())];
        query.extend(params.iter().cloned());
        query.push(("format", "json".to_owned()));
        let req = self.http.get(url).query(&query);
        let answer = http::send(PROVIDER, endpoint, req).await?;
        let failure: Option<Failure> = serde_json::from_slice(&answer.body).ok();
        let (code, message) = match &failure {
            Some(f) => (f.code, f.error.clone()),
            None => (None, http::excerpt(&answer.body)),
        };
        match (answer.status, code) {
            (_, Some(1)) => Ok(None),
            (429, _) | (_, Some(6 | 7)) => Err(Error::QuotaExhausted {
                provider: PROVIDER,
                message,
            }),
            (401 | 403, _) | (_, Some(2 | 4)) => Err(Error::Unauthorized {
                provider: PROVIDER,
                message,
            }),
            (200..=299, None) if failure.is_none() => Ok(Some(answer.body)),
            (status, code) => Err(Error::Provider {
                provider: PROVIDER,
                status,
                code,
                message,
            }),
        }
    }

    /// `cell/get` for one cell; `Ok(None)` when OpenCellID does not know it.
    #[instrument(skip(self), level = "debug", fields(cell = %key))]
    pub async fn cell(&self, key: &CellKey) -> Result<Option<OcidCell>> {
        let params = [
            ("mcc", key.mcc.to_string()),
            ("mnc", key.mnc.to_string()),
            ("lac", key.lac.to_string()),
            ("cellid", key.cid.to_string()),
            ("radio", radio_param(key.radio).to_owned()),
        ];
        let Some(body) = self.get("cell/get", &params).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| Error::Decode {
                provider: PROVIDER,
                message: format!("cell/get: {e}"),
            })
    }

    /// `cell/getInArea`: cells inside a box, one page (`limit`, `offset`).
    #[instrument(skip(self), level = "debug")]
    pub async fn cells_in_area(
        &self,
        bbox: BoundingBox,
        limit: u32,
        offset: u32,
    ) -> Result<OcidArea> {
        let params = [
            (
                "BBOX",
                format!(
                    "{},{},{},{}",
                    bbox.lat_min, bbox.lon_min, bbox.lat_max, bbox.lon_max
                ),
            ),
            ("limit", limit.to_string()),
            ("offset", offset.to_string()),
        ];
        let Some(body) = self.get("cell/getInArea", &params).await? else {
            return Ok(OcidArea {
                count: 0,
                cells: Vec::new(),
            });
        };
        serde_json::from_slice(&body).map_err(|e| Error::Decode {
            provider: PROVIDER,
            message: format!("cell/getInArea: {e}"),
        })
    }

    /// The position of one cell, or `None` when it is unknown (or only its area is).
    pub async fn locate_cell(&self, key: &CellKey) -> Result<Option<Station>> {
        Ok(self.cell(key).await?.and_then(|c| c.station()))
    }
}
