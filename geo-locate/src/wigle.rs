//! The WiGLE API v2 client: `network/search` and `network/detail`.
//!
//! Authentication is HTTP Basic with the account's **API Name** (`AID…`) as the user and the
//! **API Token** as the password. A search box is four scalar parameters, `latrange1 <
//! latrange2` and `longrange1 < longrange2` (there are no `latrange`/`lonrange` lists, whatever
//! older notes say). Pages are chained with the opaque `searchAfter` cursor.
//!
//! WiGLE's quota is small and dynamic (new accounts get a handful of queries a day): an HTTP 429
//! or a "too many queries today" message becomes [`Error::QuotaExhausted`]; stop asking until
//! tomorrow. 401/403 become [`Error::Unauthorized`]. WiGLE's terms allow non-commercial use by
//! one user and forbid redistribution: cache answers for that user only, never export them.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::instrument;

use crate::error::{Error, Result};
use crate::estimate::Station;
use crate::geo::LatLon;
use crate::http;
use crate::mac::MacAddr;

const PROVIDER: &str = "WiGLE";

/// Configuration of a [`WigleClient`].
#[derive(Debug, Clone)]
pub struct WigleConfig {
    /// Base URL. Default `https://api.wigle.net` (tests point it at a mock server).
    pub base_url: String,
    /// The API Name (Basic-auth user). Required.
    pub api_name: String,
    /// The API Token (Basic-auth password). Required.
    pub api_token: String,
    /// Per-request timeout. Default 20 s.
    pub timeout: Duration,
    /// User-Agent header. Default `vigil-geo-locate/<version>`.
    pub user_agent: String,
}

impl WigleConfig {
    /// A configuration with the given credentials and every other field at its default.
    pub fn new(api_name: impl Into<String>, api_token: impl Into<String>) -> Self {
        WigleConfig {
            base_url: "https://api.wigle.net".to_owned(),
            api_name: api_name.into(),
            api_token: api_token.into(),
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

/// A latitude/longitude box for searches; WiGLE's `latrange1/latrange2/longrange1/longrange2`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoundingBox {
    /// Southern edge (`latrange1`).
    pub lat_min: f64,
    /// Northern edge (`latrange2`).
    pub lat_max: f64,
    /// Western edge (`longrange1`).
    pub lon_min: f64,
    /// Eastern edge (`longrange2`).
    pub lon_max: f64,
}

impl BoundingBox {
    /// A box; `min < max` on both axes and coordinates in range, or an error.
    pub fn new(lat_min: f64, lat_max: f64, lon_min: f64, lon_max: f64) -> Result<Self> {
        let ok = LatLon::new(lat_min, lon_min).is_some()
            && LatLon::new(lat_max, lon_max).is_some()
            && lat_min < lat_max
            && lon_min < lon_max;
        if !ok {
            return Err(Error::InvalidInput(format!(
                "bad box: lat {lat_min}..{lat_max}, lon {lon_min}..{lon_max}"
            )));
        }
        Ok(BoundingBox {
            lat_min,
            lat_max,
            lon_min,
            lon_max,
        })
    }
}

/// Parameters of `network/search`. Unset fields are not sent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WigleSearch {
    /// BSSID (`netid`).
    pub netid: Option<MacAddr>,
    /// Exact SSID.
    pub ssid: Option<String>,
    /// SSID pattern with `%` and `_` wildcards.
    pub ssidlike: Option<String>,
    /// Search box.
    pub bbox: Option<BoundingBox>,
    /// Results per page (API maximum 100).
    pub results_per_page: Option<u32>,
    /// The cursor of the previous page ([`WiglePage::search_after`]).
    pub search_after: Option<String>,
}

impl WigleSearch {
    fn params(&self) -> Vec<(&'static str, String)> {
        let mut p = Vec::new();
        if let Some(m) = self.netid {
            p.push(("netid", m.to_string()));
        }
        if let Some(s) = &self.ssid {
            p.push(("ssid", s.clone()));
        }
        if let Some(s) = &self.ssidlike {
            p.push(("ssidlike", s.clone()));
        }
        if let Some(b) = self.bbox {
            p.push(("latrange1", b.lat_min.to_string()));
            p.push(("latrange2", b.lat_max.to_string()));
            p.push(("longrange1", b.lon_min.to_string()));
            p.push(("longrange2", b.lon_max.to_string()));
        }
        if let Some(n) = self.results_per_page {
            p.push(("resultsPerPage", n.min(100).to_string()));
        }
        if let Some(c) = &self.search_after {
            p.push(("searchAfter", c.clone()));
        }
        p
    }
}

/// One network of a search result. Only the commonly present fields are typed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WigleNetwork {
    /// WiGLE's trilaterated latitude of the AP.
    pub trilat: Option<f64>,
    /// WiGLE's trilaterated longitude of the AP.
    pub trilong: Option<f64>,
    /// SSID.
    #[serde(default)]
    pub ssid: Option<String>,
    /// BSSID as WiGLE writes it.
    pub netid: String,
    /// Channel.
    #[serde(default)]
    pub channel: Option<i64>,
    /// Encryption (`wpa2`, ...).
    #[serde(default)]
    pub encryption: Option<String>,
    /// Quality of service 0..7.
    #[serde(default)]
    pub qos: Option<i64>,
    /// First seen (ISO time).
    #[serde(default)]
    pub firsttime: Option<String>,
    /// Last seen (ISO time).
    #[serde(default)]
    pub lasttime: Option<String>,
    /// Last update (ISO time).
    #[serde(default)]
    pub lastupdt: Option<String>,
    /// Network type (`infra`, ...).
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Country code.
    #[serde(default)]
    pub country: Option<String>,
    /// City.
    #[serde(default)]
    pub city: Option<String>,
}

impl WigleNetwork {
    /// WiGLE's position of this AP, if it has a valid one.
    pub fn position(&self) -> Option<LatLon> {
        LatLon::new(self.trilat?, self.trilong?).filter(|p| !(p.lat == 0.0 && p.lon == 0.0))
    }
}

/// One page of `network/search`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WiglePage {
    /// Always true on success.
    pub success: bool,
    /// Total matches over all pages.
    #[serde(default)]
    pub total_results: u64,
    /// Index of the first result of this page.
    #[serde(default)]
    pub first: u64,
    /// Index of the last result of this page.
    #[serde(default)]
    pub last: u64,
    /// Results on this page.
    #[serde(default)]
    pub result_count: u64,
    /// The networks.
    #[serde(default)]
    pub results: Vec<WigleNetwork>,
    /// Cursor for the next page; `None` on the last page.
    #[serde(default)]
    pub search_after: Option<String>,
}

/// One observation in a `network/detail` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WigleObservation {
    /// Latitude.
    pub latitude: f64,
    /// Longitude.
    pub longitude: f64,
    /// GPS accuracy, metres.
    #[serde(default)]
    pub accuracy: Option<f64>,
    /// Signal, dBm.
    #[serde(default)]
    pub signal: Option<f64>,
    /// When (ISO time).
    #[serde(default)]
    pub time: Option<String>,
}

/// One network of a `network/detail` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WigleDetail {
    /// WiGLE's trilaterated latitude.
    pub trilat: Option<f64>,
    /// WiGLE's trilaterated longitude.
    pub trilong: Option<f64>,
    /// SSID.
    #[serde(default)]
    pub ssid: Option<String>,
    /// BSSID.
    #[serde(default)]
    pub netid: Option<String>,
    /// The individual observations.
    #[serde(default)]
    pub location_data: Vec<WigleObservation>,
}

#[derive(Debug, Deserialize)]
struct DetailBody {
    #[serde(default)]
    results: Vec<WigleDetail>,
}

#[derive(Debug, Deserialize)]
struct Failure {
    #[serde(default)]
    success: Option<bool>,
    #[serde(default)]
    message: Option<String>,
}

/// A WiGLE API client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WigleClient {
    http: reqwest::Client,
    config: WigleConfig,
}

impl WigleClient {
    /// A client; [`Error::Config`] when the API name or token is empty.
    pub fn new(config: WigleConfig) -> Result<Self> {
        if config.api_name.trim().is_empty() || config.api_token.trim().is_empty() {
            return Err(Error::Config(
                "WiGLE needs an API name and an API token (wigle.net → Account → API Token)".into(),
            ));
        }
        Ok(WigleClient {
            http: http::client(PROVIDER, config.timeout, &config.user_agent)?,
            config,
        })
    }

    /// The account's API name: the cache keeps WiGLE answers per user under it.
    pub fn user(&self) -> &str {
        &self.config.api_name
    }

    async fn get(&self, endpoint: &'static str, params: &[(&str, String)]) -> Result<Vec<u8>> {
        let url = http::join(&self.config.base_url, &format!("api/v2/{endpoint}"));
        let req = self
            .http
            .get(url)
            .basic_auth(&self.config.api_name, Some(&self.config.api_token))
            .header(reqwest::header::ACCEPT, "application/json")
            .query(params);
        let answer = http::send(PROVIDER, endpoint, req).await?;
        let failure: Option<Failure> = serde_json::from_slice(&answer.body).ok();
        let message = failure
            .as_ref()
            .and_then(|f| f.message.clone())
            .unwrap_or_else(|| http::excerpt(&answer.body));
        let quota = message.to_ascii_lowercase().contains("too many queries");
        match answer.status {
            429 => Err(Error::QuotaExhausted {
                provider: PROVIDER,
                message,
            }),
            401 | 403 => Err(Error::Unauthorized {
                provider: PROVIDER,
                message,
            }),
            200..=299 if failure.as_ref().and_then(|f| f.success) == Some(false) => {
                if quota {
                    Err(Error::QuotaExhausted {
                        provider: PROVIDER,
                        message,
                    })
                } else {
                    Err(Error::Provider {
                        provider: PROVIDER,
                        status: answer.status,
                        code: None,
                        message,
                    })
                }
            }
            200..=299 => Ok(answer.body),
            status if quota => Err(Error::QuotaExhausted {
                provider: PROVIDER,
                message: format!("{message} (HTTP {status})"),
            }),
            status => Err(Error::Provider {
                provider: PROVIDER,
                status,
                code: None,
                message,
            }),
        }
    }

    /// One page of `network/search`.
    #[instrument(skip(self), level = "debug")]
    pub async fn search(&self, search: &WigleSearch) -> Result<WiglePage> {
        let body = self.get("network/search", &search.params()).await?;
        serde_json::from_slice(&body).map_err(|e| Error::Decode {
            provider: PROVIDER,
            message: format!("network/search: {e}"),
        })
    }

    /// Follows `searchAfter` from page to page and returns every network, reading at most
    /// `max_pages` pages (each page costs one query of the daily quota).
    pub async fn search_all(
        &self,
        search: &WigleSearch,
        max_pages: usize,
    ) -> Result<Vec<WigleNetwork>> {
        let mut search = search.clone();
        let mut all = Vec::new();
        for _ in 0..max_pages {
            let page = self.search(&search).await?;
            all.extend(page.results);
            match page.search_after {
                Some(cursor) if !cursor.is_empty() => search.search_after = Some(cursor),
                _ => break,
            }
        }
        Ok(all)
    }

    /// `network/detail` for one BSSID: WiGLE's estimate and its observations.
    #[instrument(skip(self), level = "debug")]
    pub async fn detail(&self, netid: MacAddr) -> Result<Option<WigleDetail>> {
        let body = self
            .get("network/detail", &[("netid", netid.to_string())])
            .await?;
        let d: DetailBody = serde_json::from_slice(&body).map_err(|e| Error::Decode {
            provider: PROVIDER,
            message: format!("network/detail: {e}"),
        })?;
        Ok(d.results.into_iter().next())
    }

    /// Looks one BSSID up with a single `network/search?netid=` query and returns WiGLE's
    /// position for it, or `None` when WiGLE does not know it. The radius and sample count are
    /// unknown (0).
    pub async fn locate_bssid(&self, mac: MacAddr) -> Result<Option<Station>> {
        let page = self
            .search(&WigleSearch {
                netid: Some(mac),
                results_per_page: Some(10),
                ..Default::default()
            })
            .await?;
        Ok(page
            .results
            .iter()
            .filter(|n| n.netid.parse::<MacAddr>().is_ok_and(|m| m == mac))
            .find_map(WigleNetwork::position)
            .map(|position| Station {
                position,
                radius_m: 0.0,
                samples: 0,
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_is_four_scalars() {
        let s = WigleSearch {
            bbox: Some(BoundingBox::new(52.0, 52.1, 13.0, 13.2).unwrap()),
            ..Default::default()
        };
        let p = s.params();
        let names: Vec<&str> = p.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            names,
            ["latrange1", "latrange2", "longrange1", "longrange2"]
        );
        assert!(BoundingBox::new(52.1, 52.0, 13.0, 13.2).is_err());
        assert!(BoundingBox::new(52.0, 95.0, 13.0, 13.2).is_err());
    }

    #[test]
    fn empty_credentials_are_a_config_error() {
        let err = WigleClient::new(WigleConfig::new("", "x")).unwrap_err();
        assert!(matches!(err, Error::Config(_)));
    }
}
