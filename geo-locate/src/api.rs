//! The JSON types of the Ichnaea/Google `POST /v1/geolocate` API (request, response and the
//! Google-shaped error envelope) and of Ichnaea's `POST /v2/geosubmit`.
//!
//! Field names and optionality follow Ichnaea's and Google's documentation exactly (camelCase,
//! every request field optional, absent fields are not serialised). Parsing is lenient where the
//! APIs are: numbers may be integers or floats, unknown fields are ignored, and an unknown
//! `radioType` does not fail the request (the entry is dropped later by
//! [`Query::from_request`](crate::Query::from_request)).

use serde::{Deserialize, Deserializer, Serialize};

/// The body of `POST /v1/geolocate`. Every field is optional; an empty body `{}` is valid.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GeolocateRequest {
    /// The carrier name (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    /// Whether an IP-based answer is acceptable (default true). `fallbacks.ipf` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consider_ip: Option<bool>,
    /// The MCC of the device's home network.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_int"
    )]
    pub home_mobile_country_code: Option<i64>,
    /// The MNC of the device's home network.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_int"
    )]
    pub home_mobile_network_code: Option<i64>,
    /// The default radio type for cells that do not give their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub radio_type: Option<RadioType>,
    /// Bluetooth beacons seen (Ichnaea extension).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bluetooth_beacons: Vec<BluetoothBeacon>,
    /// Cell towers seen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cell_towers: Vec<CellTower>,
    /// WiFi access points seen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wifi_access_points: Vec<WifiAccessPoint>,
    /// Which fallbacks may answer (Ichnaea extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallbacks: Option<Fallbacks>,
}

/// A radio type as written in requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RadioType {
    /// GSM (Google's default).
    Gsm,
    /// CDMA.
    Cdma,
    /// WCDMA / UMTS (`umts` is accepted as an alias).
    #[serde(alias = "umts")]
    Wcdma,
    /// LTE.
    Lte,
    /// 5G NR (Google; cells then carry `newRadioCellId`).
    Nr,
    /// Any other value: the cells that depend on it are dropped, the request is not rejected.
    #[serde(other)]
    Unknown,
}

impl RadioType {
    /// The crate's radio for this type, `None` for [`RadioType::Unknown`].
    pub fn radio(self) -> Option<crate::Radio> {
        use crate::Radio;
        match self {
            RadioType::Gsm => Some(Radio::Gsm),
            RadioType::Cdma => Some(Radio::Cdma),
            RadioType::Wcdma => Some(Radio::Wcdma),
            RadioType::Lte => Some(Radio::Lte),
            RadioType::Nr => Some(Radio::Nr),
            RadioType::Unknown => None,
        }
    }
}

impl From<crate::Radio> for RadioType {
    fn from(r: crate::Radio) -> Self {
        use crate::Radio;
        match r {
            Radio::Gsm => RadioType::Gsm,
            Radio::Wcdma => RadioType::Wcdma,
            Radio::Lte => RadioType::Lte,
            Radio::Nr => RadioType::Nr,
            Radio::Cdma => RadioType::Cdma,
        }
    }
}

/// `fallbacks`: which coarse answers are acceptable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fallbacks {
    /// Location-area fallback (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lacf: Option<bool>,
    /// IP fallback (default true; overrides `considerIp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipf: Option<bool>,
}

/// One entry of `wifiAccessPoints`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WifiAccessPoint {
    /// The BSSID in any common form. Required; an entry without a valid one is dropped.
    #[serde(default)]
    pub mac_address: String,
    /// Received signal in dBm.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_int"
    )]
    pub signal_strength: Option<i64>,
    /// Milliseconds since the AP was seen.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_int"
    )]
    pub age: Option<i64>,
    /// WiFi channel.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_int"
    )]
    pub channel: Option<i64>,
    /// Frequency in MHz (Ichnaea extension).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_int"
    )]
    pub frequency: Option<i64>,
    /// Signal-to-noise ratio in dB.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_int"
    )]
    pub signal_to_noise_ratio: Option<i64>,
    /// The network name. `_nomap`/`_optout` networks are never used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssid: Option<String>,
}

/// One entry of `cellTowers`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CellTower {
    /// The radio of this cell (overrides the request's `radioType`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub radio_type: Option<RadioType>,
    /// Mobile country code.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_int"
    )]
    pub mobile_country_code: Option<i64>,
    /// Mobile network code.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_int"
    )]
    pub mobile_network_code: Option<i64>,
    /// LAC or TAC.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_int"
    )]
    pub location_area_code: Option<i64>,
    /// Cell id (not for NR on Google).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_int"
    )]
    pub cell_id: Option<i64>,
    /// 36-bit NR cell id (Google; required for `nr`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_int"
    )]
    pub new_radio_cell_id: Option<i64>,
    /// Primary scrambling code / physical cell id (Ichnaea extension).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_int"
    )]
    pub psc: Option<i64>,
    /// Milliseconds since the cell was seen.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_int"
    )]
    pub age: Option<i64>,
    /// Received signal in dBm.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_int"
    )]
    pub signal_strength: Option<i64>,
    /// Timing advance.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_int"
    )]
    pub timing_advance: Option<i64>,
}

/// One entry of `bluetoothBeacons` (Ichnaea extension).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BluetoothBeacon {
    /// The beacon's address. Required.
    #[serde(default)]
    pub mac_address: String,
    /// The advertised name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Milliseconds since the beacon was seen.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_int"
    )]
    pub age: Option<i64>,
    /// Received signal in dBm.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_int"
    )]
    pub signal_strength: Option<i64>,
}

/// Accepts an integer, a float (rounded) or null. Values beyond `i64` saturate, and are then
/// dropped by range validation.
fn lenient_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let v: Option<serde_json::Number> = Option::deserialize(d)?;
    Ok(v.and_then(|n| {
        n.as_i64()
            .or_else(|| n.as_u64().map(|u| i64::try_from(u).unwrap_or(i64::MAX)))
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite())
                    .map(|f| f.round() as i64)
            })
    }))
}

/// A latitude/longitude pair as written in responses.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatLng {
    /// Latitude in degrees.
    pub lat: f64,
    /// Longitude in degrees.
    pub lng: f64,
}

/// Which fallback produced an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FallbackKind {
    /// The location-area (LAC/TAC) fallback.
    Lacf,
    /// The IP fallback.
    Ipf,
}

/// The 200 answer of `POST /v1/geolocate`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GeolocateResponse {
    /// The position, rounded to 7 decimals.
    pub location: LatLng,
    /// Radius in metres of the 95 % confidence circle.
    pub accuracy: f64,
    /// Present only when a fallback answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<FallbackKind>,
}

impl GeolocateResponse {
    /// Builds a response, rounding coordinates to 7 decimals and accuracy to 0.1 m as Ichnaea does.
    pub fn new(lat: f64, lng: f64, accuracy: f64, fallback: Option<FallbackKind>) -> Self {
        let r7 = |v: f64| (v * 1e7).round() / 1e7;
        GeolocateResponse {
            location: LatLng {
                lat: r7(lat),
                lng: r7(lng),
            },
            accuracy: (accuracy * 10.0).round() / 10.0,
            fallback,
        }
    }
}

/// The Google-shaped error envelope: `{"error":{"errors":[...],"code":N,"message":...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    /// The error.
    pub error: ErrorBody,
}

/// The body of [`ErrorEnvelope`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The individual errors (always one here).
    pub errors: Vec<ErrorItem>,
    /// The HTTP status code.
    pub code: u16,
    /// The message.
    pub message: String,
    /// Parse/validation details (400 `parseError`), inside `error` as the docs show.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// One entry of [`ErrorBody::errors`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorItem {
    /// `geolocation`, `global` or `usageLimits`.
    pub domain: String,
    /// `notFound`, `parseError`, `keyInvalid`, `dailyLimitExceeded`, `serviceUnavailable`, ...
    pub reason: String,
    /// The message.
    pub message: String,
}

impl ErrorEnvelope {
    fn new(code: u16, domain: &str, reason: &str, message: &str) -> Self {
        ErrorEnvelope {
            error: ErrorBody {
                errors: vec![ErrorItem {
                    domain: domain.to_owned(),
                    reason: reason.to_owned(),
                    message: message.to_owned(),
                }],
                code,
                message: message.to_owned(),
                details: None,
            },
        }
    }

    /// 404 `geolocation/notFound` "Not found".
    pub fn not_found() -> Self {
        Self::new(404, "geolocation", "notFound", "Not found")
    }

    /// 400 `global/parseError` "Parse Error", with optional details.
    pub fn parse_error(details: Option<serde_json::Value>) -> Self {
        let mut e = Self::new(400, "global", "parseError", "Parse Error");
        e.error.details = details;
        e
    }

    /// 400 `usageLimits/keyInvalid`.
    pub fn key_invalid() -> Self {
        Self::new(
            400,
            "usageLimits",
            "keyInvalid",
            "Missing or invalid API key.",
        )
    }

    /// 403 `usageLimits/dailyLimitExceeded`.
    pub fn daily_limit_exceeded() -> Self {
        Self::new(
            403,
            "usageLimits",
            "dailyLimitExceeded",
            "You have exceeded your daily limit.",
        )
    }

    /// 503 `global/serviceUnavailable`.
    pub fn service_unavailable() -> Self {
        Self::new(503, "global", "serviceUnavailable", "Service Unavailable")
    }
}

/// The body of `POST /v2/geosubmit`: reports of what was seen where. The answer is 200 `{}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GeosubmitRequest {
    /// The reports.
    #[serde(default)]
    pub items: Vec<GeosubmitItem>,
}

/// One geosubmit report. Ichnaea keeps it only with ≥ 1 cell or beacon, or ≥ 2 WiFi.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GeosubmitItem {
    /// When, in milliseconds since the epoch.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_int"
    )]
    pub timestamp: Option<i64>,
    /// Where the device was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<GeosubmitPosition>,
    /// Bluetooth beacons seen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bluetooth_beacons: Vec<BluetoothBeacon>,
    /// Cells seen (with the geosubmit extras).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cell_towers: Vec<GeosubmitCell>,
    /// WiFi access points seen (with the geosubmit extras).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wifi_access_points: Vec<GeosubmitWifi>,
}

/// The position of a geosubmit report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GeosubmitPosition {
    /// Latitude, degrees.
    pub latitude: f64,
    /// Longitude, degrees.
    pub longitude: f64,
    /// Horizontal accuracy, metres.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// Altitude, metres.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub altitude: Option<f64>,
    /// Altitude accuracy, metres.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub altitude_accuracy: Option<f64>,
    /// Milliseconds between the fix and the report timestamp.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_int"
    )]
    pub age: Option<i64>,
    /// Heading, degrees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heading: Option<f64>,
    /// Air pressure, hPa.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pressure: Option<f64>,
    /// Speed, m/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<f64>,
    /// `gps`, `manual` or `fused`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// A cell in a geosubmit report: the geolocate fields plus `primaryScramblingCode`, `asu` and
/// `serving`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GeosubmitCell {
    /// The geolocate fields.
    #[serde(flatten)]
    pub cell: CellTower,
    /// PSC (geosubmit's name for `psc`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_int"
    )]
    pub primary_scrambling_code: Option<i64>,
    /// Arbitrary strength unit.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_int"
    )]
    pub asu: Option<i64>,
    /// 1 for the serving cell, 0 for a neighbour.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_int"
    )]
    pub serving: Option<i64>,
}

/// A WiFi AP in a geosubmit report: the geolocate fields plus `radioType` (`802.11a/b/g/n/ac`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GeosubmitWifi {
    /// The geolocate fields.
    #[serde(flatten)]
    pub wifi: WifiAccessPoint,
    /// The 802.11 variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub radio_type: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_round_trips_with_exact_names() {
        let body = json!({
            "carrier": "Telekom",
            "considerIp": false,
            "homeMobileCountryCode": 262,
            "homeMobileNetworkCode": 1,
            "radioType": "lte",
            "bluetoothBeacons": [{"macAddress": "ff:74:27:89:5a:77", "name": "beacon", "age": 2000, "signalStrength": -110}],
            "cellTowers": [
                {"radioType": "lte", "mobileCountryCode": 262, "mobileNetworkCode": 1, "locationAreaCode": 12345,
                 "cellId": 26877953, "psc": 120, "age": 1000, "signalStrength": -70, "timingAdvance": 3},
                {"radioType": "nr", "mobileCountryCode": 262, "mobileNetworkCode": 1, "locationAreaCode": 70000,
                 "newRadioCellId": 68719476734_i64}
            ],
            "wifiAccessPoints": [{"macAddress": "01:23:45:67:89:ab", "signalStrength": -51, "age": 0,
                "channel": 11, "frequency": 2462, "signalToNoiseRatio": 40, "ssid": "cafe"}],
            "fallbacks": {"lacf": true, "ipf": false}
        });
        let req: GeolocateRequest = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(req.cell_towers[1].radio_type, Some(RadioType::Nr));
        assert_eq!(req.cell_towers[1].new_radio_cell_id, Some(68_719_476_734));
        assert_eq!(serde_json::to_value(&req).unwrap(), body);
    }

    #[test]
    fn lenient_where_the_api_is() {
        let req: GeolocateRequest = serde_json::from_str(
            r#"{"cellTowers":[{"radioType":"umts","cellId":1.0},{"radioType":"6g"}],
                "wifiAccessPoints":[{"macAddress":"x","signalStrength":-65.6,"extra":1}]}"#,
        )
        .unwrap();
        assert_eq!(req.cell_towers[0].radio_type, Some(RadioType::Wcdma));
        assert_eq!(req.cell_towers[1].radio_type, Some(RadioType::Unknown));
        assert_eq!(req.wifi_access_points[0].signal_strength, Some(-66));
        let empty: GeolocateRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, GeolocateRequest::default());
    }

    #[test]
    fn response_shape() {
        let r = GeolocateResponse::new(52.123456789, 13.1, 43.21, None);
        assert_eq!(
            serde_json::to_value(r).unwrap(),
            json!({"location": {"lat": 52.1234568, "lng": 13.1}, "accuracy": 43.2})
        );
        let f = GeolocateResponse::new(1.0, 2.0, 50_000.0, Some(FallbackKind::Lacf));
        assert_eq!(serde_json::to_value(f).unwrap()["fallback"], "lacf");
    }

    #[test]
    fn geosubmit_round_trips() {
        let body = json!({"items": [{
            "timestamp": 1405602028568_i64,
            "position": {"latitude": -22.7539192, "longitude": -43.4371081, "accuracy": 10.0,
                         "altitude": 100.0, "altitudeAccuracy": 50.0, "age": 1000, "heading": 45.0,
                         "pressure": 1013.25, "speed": 3.6, "source": "gps"},
            "bluetoothBeacons": [{"macAddress": "ff:74:27:89:5a:77", "age": 2000, "name": "beacon", "signalStrength": -110}],
            "cellTowers": [{"radioType": "lte", "mobileCountryCode": 208, "mobileNetworkCode": 1,
                            "locationAreaCode": 2, "cellId": 1234567, "age": 3000, "asu": 31,
                            "primaryScramblingCode": 5, "serving": 1, "signalStrength": -51, "timingAdvance": 1}],
            "wifiAccessPoints": [{"macAddress": "01:23:45:67:89:ab", "age": 5000, "channel": 6, "frequency": 2437,
                                  "radioType": "802.11n", "signalToNoiseRatio": 13, "signalStrength": -77}]
        }]});
        let req: GeosubmitRequest = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(req.items[0].cell_towers[0].primary_scrambling_code, Some(5));
        assert_eq!(req.items[0].cell_towers[0].cell.cell_id, Some(1_234_567));
        assert_eq!(req.items[0].wifi_access_points[0].wifi.channel, Some(6));
        assert_eq!(serde_json::to_value(&req).unwrap(), body);
    }

    #[test]
    fn error_envelopes() {
        assert_eq!(
            serde_json::to_value(ErrorEnvelope::not_found()).unwrap(),
            json!({"error": {"errors": [{"domain": "geolocation", "reason": "notFound", "message": "Not found"}],
                   "code": 404, "message": "Not found"}})
        );
        let p = ErrorEnvelope::parse_error(Some(json!({"decode": "expected value"})));
        let v = serde_json::to_value(p).unwrap();
        assert_eq!(v["error"]["code"], 400);
        assert_eq!(v["error"]["errors"][0]["reason"], "parseError");
        assert_eq!(v["error"]["details"]["decode"], "expected value");
        assert_eq!(ErrorEnvelope::daily_limit_exceeded().error.code, 403);
        assert_eq!(
            ErrorEnvelope::key_invalid().error.errors[0].reason,
            "keyInvalid"
        );
        assert_eq!(ErrorEnvelope::service_unavailable().error.code, 503);
    }
}
