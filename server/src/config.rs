//! Server configuration, with the defaults that protect.

use std::path::PathBuf;
use std::time::Duration;

use event_bus::RoomConfig;
use streetview::{AccessToken, ApiKey, SigningSecret};

use crate::error::{Error, Result};

/// How the server behaves. Every default is the safe one.
///
/// | field | default | meaning |
/// |---|---|---|
/// | `data_dir` | `./vigil-data` | where the SQLite database lives |
/// | `allowed_origins` | none | browser origins allowed besides the server's own (`https://ops.example`) |
/// | `rooms` | `monitoring`, `scans`, `alerts`, `chat`, `admin` | the event rooms and their rules |
/// | `max_message_bytes` | 64 KiB | largest WebSocket message accepted |
/// | `max_body_bytes` | 1 MiB | largest HTTP request body accepted |
/// | `max_connections` | 10 000 | authenticated WebSocket and Socket.IO connections at once |
/// | `max_unauthenticated`, `max_unauthenticated_per_source` | 1 024, 64 | sockets waiting to authenticate, in all and per source address (IPv6: per /64), counted apart from `max_connections`, for `/ws` and Engine.IO each; a client with a session cookie or `Authorization: Bearer` on the upgrade is never counted (the `admission` module's docs) |
/// | `header_read_timeout` | 10 s | how long a client has to send a complete request head; the connection is closed when it has not (slowloris). It runs again while a kept-alive connection waits for its next request |
/// | `keep_alive_timeout` | 5 s | an idle keep-alive connection (no request in flight) is closed after this; at most `header_read_timeout` |
/// | `max_header_bytes` | 16 KiB | largest request head (request line and header fields); a larger one is answered 431 and the connection closed |
/// | `max_headers` | 100 | most header fields in one request; more are answered 431 |
/// | `messages_per_second`, `message_burst` | 20, 50 | inbound WebSocket messages per connection |
/// | `outbound_queue_bytes` | 1 MiB | bytes of events (and replies) waiting for one client beyond what its socket holds before it is closed as too slow (4008) |
/// | `auth_timeout` | 10 s | how long a socket may stay unauthenticated |
/// | `drain_timeout` | 10 s | how long shutdown waits for connections to close |
/// | `session_ttl` | 12 h | lifetime of a dashboard session cookie |
/// | `cookie_secure` | false | the server is reached over HTTPS: the session cookie is `__Host-vigil_session`, `Secure`, and only that name is read |
/// | `event_log_retention` | 100 000 | events kept in the database's event log |
/// | `dashboard` | OpenStreetMap tiles, Leaflet embedded in the binary, no embed key | the dashboard page's map and street-level settings ([`DashboardConfig`]) |
/// | `scope` | empty | what may be scanned (CIDRs, addresses, ranges, host names, `*.domain`); empty refuses every scan |
/// | `local_agent` | on, 4 tasks at once | the in-process scanning agent |
/// | `demo` | false | `vigil serve --demo`: deliberately weak services on 127.0.0.1, scans of them, simulated activity labelled `demo`; adds `127.0.0.1` to the scope |
/// | `agent_lease` | 30 s | how long a remote agent keeps its tasks without a heartbeat |
/// | `max_agents_per_token`, `max_agents` | 256, 10 000 | agent ids one token, and the server, may hold; past either, the agent offline the longest is forgotten (an id belongs to the token that registered it) |
/// | `imagery` | no keys; per-token budgets | provider keys and endpoints for Street View and open imagery, and each token's budget of Static images, Mapillary and Panoramax lookups ([`ImageryConfig`]) |
/// | `geo` | offline only, 10 online lookups per request; per-token budgets; 1 000 000 overlay rows | WiGLE/OpenCellID keys, each token's budget of their lookups and of geosubmits, the overlay's bound ([`GeoConfig`]); the offline database is `<data_dir>/geodb` |
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where the database lives.
    pub data_dir: PathBuf,
    /// Browser origins allowed besides the server's own.
    pub allowed_origins: Vec<String>,
    /// The event rooms.
    pub rooms: Vec<RoomConfig>,
    /// Largest WebSocket message accepted, in bytes.
    pub max_message_bytes: usize,
    /// Largest HTTP request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Authenticated WebSocket and Socket.IO connections at once.
    pub max_connections: usize,
    /// Sockets waiting to authenticate (`/ws` before `auth`, Engine.IO before `CONNECT`), each.
    pub max_unauthenticated: usize,
    /// Of those, from one source address (IPv6: one /64).
    pub max_unauthenticated_per_source: usize,
    /// How long a client has to send a complete request head.
    pub header_read_timeout: Duration,
    /// How long an idle keep-alive connection stays open.
    pub keep_alive_timeout: Duration,
    /// Largest request head (request line and header fields), in bytes.
    pub max_header_bytes: usize,
    /// Most header fields in one request.
    pub max_headers: usize,
    /// Sustained inbound WebSocket messages per second per connection.
    pub messages_per_second: u32,
    /// Inbound WebSocket messages allowed in a burst.
    pub message_burst: u32,
    /// Bytes of events and replies waiting for one client, beyond what its socket holds, before
    /// it is closed as too slow (4008).
    pub outbound_queue_bytes: usize,
    /// How long a socket may stay unauthenticated.
    pub auth_timeout: Duration,
    /// How long shutdown waits for connections to close.
    pub drain_timeout: Duration,
    /// Lifetime of a dashboard session.
    pub session_ttl: Duration,
    /// The server is reached over HTTPS: the session cookie is `Secure` and `__Host-` prefixed.
    pub cookie_secure: bool,
    /// Events kept in the database's event log.
    pub event_log_retention: u64,
    /// The dashboard page's map and street-level settings.
    pub dashboard: DashboardConfig,
    /// Street View and open imagery providers.
    pub imagery: ImageryConfig,
    /// Geolocation providers and limits.
    pub geo: GeoConfig,
    /// What may be scanned.
    pub scope: Vec<String>,
    /// The vulnerability database (`sec_scan::VulnDb`) that `vuln_scan` results are matched
    /// against on the server, whichever agent ran them. `None`: `<data_dir>/cvedb.sqlite` when
    /// that file exists, else no matching (version signatures judge alone). A named file that
    /// does not exist is an error at start.
    pub cvedb: Option<PathBuf>,
    /// Report CVE matches that distribution data cannot decide at their CVSS severity.
    pub paranoid: bool,
    /// Tasks the in-process agent runs at once; `None` turns it off.
    pub local_agent: Option<usize>,
    /// Demo mode: weak loopback services, scans of them and simulated activity (the crate's
    /// "Demo mode" section). Adds `127.0.0.1` to the scope.
    pub demo: bool,
    /// How long a remote agent keeps its tasks without a heartbeat.
    pub agent_lease: Duration,
    /// Agent ids one token may hold.
    pub max_agents_per_token: usize,
    /// Agent ids the server holds.
    pub max_agents: usize,
    /// Several nodes: the shared PostgreSQL database (`postgres://user:password@host/db`) that
    /// holds what `data_dir`'s SQLite file holds on one node. Set together with `redis_url`,
    /// or neither (one node, as by default).
    pub database_url: Option<String>,
    /// Several nodes: the Redis (`redis://…`) that carries the event bus and the nodes' control
    /// channel. Set together with `database_url`. `rediss://` (TLS) is refused: this build has
    /// no TLS for Redis, so keep Redis on a private network.
    pub redis_url: Option<String>,
    /// The name every key and channel of this cluster carries in Redis (a Redis Cluster hash
    /// tag): two clusters on one Redis need two names.
    pub cluster_name: String,
}

/// `url` with its password, if any, replaced by `***`: what logs and `vigil config show` print.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Shortest accepted HTTP timeout.
const MIN_TIMEOUT: Duration = Duration::from_millis(100);
/// Longest accepted request-head timeout.
const MAX_TIMEOUT: Duration = Duration::from_secs(600);
/// Largest accepted `max_header_bytes` (hyper's read buffer holds the head; it stops at ~400 KB).
const MAX_HEADER_BYTES: usize = 256 * 1024;

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            data_dir: PathBuf::from("vigil-data"),
            allowed_origins: Vec::new(),
            rooms: RoomConfig::defaults(),
            max_message_bytes: 64 * 1024,
            max_body_bytes: 1024 * 1024,
            max_connections: 10_000,
            max_unauthenticated: 1024,
            max_unauthenticated_per_source: 64,
            header_read_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(5),
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            messages_per_second: 20,
            message_burst: 50,
            outbound_queue_bytes: 1024 * 1024,
            auth_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(10),
            session_ttl: Duration::from_secs(12 * 3600),
            cookie_secure: false,
            event_log_retention: 100_000,
            dashboard: DashboardConfig::default(),
            imagery: ImageryConfig::default(),
            geo: GeoConfig::default(),
            scope: Vec::new(),
            cvedb: None,
            paranoid: false,
            local_agent: Some(4),
            demo: false,
            agent_lease: Duration::from_secs(30),
            max_agents_per_token: 256,
            max_agents: 10_000,
            database_url: None,
            redis_url: None,
            cluster_name: "vigil".to_owned(),
        }
    }
}

impl ServerConfig {
    /// What may be scanned: [`ServerConfig::scope`], plus `127.0.0.1` in demo mode only.
    pub fn scan_scope(&self) -> Vec<String> {
        let mut scope = self.scope.clone();
        if self.demo && !scope.iter().any(|rule| rule == DEMO_SCOPE) {
            scope.push(DEMO_SCOPE.to_owned());
        }
        scope
    }

    /// Checks the values that could make the server unusable.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::Config(what.to_owned()));
        if self.max_message_bytes < 1024 {
            return bad("max_message_bytes must be at least 1024");
        }
        if self.max_body_bytes < 1024 {
            return bad("max_body_bytes must be at least 1024");
        }
        if self.max_connections == 0 {
            return bad("max_connections must be at least 1");
        }
        if self.max_unauthenticated == 0 || self.max_unauthenticated_per_source == 0 {
            return bad(
                "max_unauthenticated and max_unauthenticated_per_source must be at least 1",
            );
        }
        if self.max_agents_per_token == 0 || self.max_agents < self.max_agents_per_token {
            return bad("max_agents_per_token must be at least 1 and at most max_agents");
        }
        if !(MIN_TIMEOUT..=MAX_TIMEOUT).contains(&self.header_read_timeout) {
            return bad("header_read_timeout must be between 100 ms and 10 min");
        }
        if self.keep_alive_timeout < MIN_TIMEOUT
            || self.keep_alive_timeout > self.header_read_timeout
        {
            return bad(
                "keep_alive_timeout must be at least 100 ms and at most header_read_timeout \
                 (a kept-alive connection waits for its next request head under that timer too)",
            );
        }
        if !(1024..=MAX_HEADER_BYTES).contains(&self.max_header_bytes) {
            return bad("max_header_bytes must be between 1024 and 262144");
        }
        if !(8..=1000).contains(&self.max_headers) {
            return bad("max_headers must be between 8 and 1000");
        }
        if self.messages_per_second == 0 || self.message_burst == 0 {
            return bad("messages_per_second and message_burst must be at least 1");
        }
        if self.outbound_queue_bytes < self.max_message_bytes {
            return bad("outbound_queue_bytes must be at least max_message_bytes");
        }
        match (&self.database_url, &self.redis_url) {
            (None, None) => {}
            (Some(db), Some(redis)) => {
                if !(db.starts_with("postgres://") || db.starts_with("postgresql://")) {
                    return Err(Error::Config(format!(
                        "database_url must be a postgres:// URL, got {}",
                        redact_url(db)
                    )));
                }
                if redis.starts_with("rediss://") {
                    return bad(
                        "redis_url: rediss:// (TLS) is not supported by this build; use redis:// \
                         on a private network (see the README's Known limits)",
                    );
                }
                if !redis.starts_with("redis://") {
                    return Err(Error::Config(format!(
                        "redis_url must be a redis:// URL, got {}",
                        redact_url(redis)
                    )));
                }
            }
            (Some(_), None) | (None, Some(_)) => {
                return bad(
                    "database_url and redis_url go together: several nodes share both \
                     (PostgreSQL for the state, Redis for the event bus), one node uses neither",
                );
            }
        }
        if self.cluster_name.is_empty()
            || self.cluster_name.len() > 64
            || !self
                .cluster_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            return bad("cluster_name must be 1 to 64 letters, digits, '-', '_' or '.'");
        }
        self.imagery.validate()?;
        self.geo.validate()?;
        if let Some(n) = self.local_agent
            && !(1..=64).contains(&n)
        {
            return bad("local_agent concurrency must be in 1..=64");
        }
        for origin in &self.allowed_origins {
            if origin == "*"
                || !(origin.starts_with("http://") || origin.starts_with("https://"))
                || origin.ends_with('/')
            {
                return Err(Error::Config(format!(
                    "allowed origin {origin:?} must be scheme://host[:port], without a trailing slash; `*` is never allowed"
                )));
            }
        }
        Ok(())
    }
}

/// What demo mode adds to the scan scope: the weak services it starts listen there only.
pub(crate) const DEMO_SCOPE: &str = "127.0.0.1";

/// A token bucket: `per_hour` units sustained, `burst` at once (both at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Units that come back per hour.
    pub per_hour: u32,
    /// Units a caller may spend at once (the bucket's size).
    pub burst: u32,
}

impl Budget {
    /// A budget of `per_hour` units an hour, `burst` at once.
    pub const fn new(per_hour: u32, burst: u32) -> Budget {
        Budget { per_hour, burst }
    }

    /// Refuses a zero rate or burst, naming the setting.
    pub(crate) fn check(&self, name: &str) -> Result<()> {
        if self.per_hour == 0 || self.burst == 0 {
            return Err(Error::Config(format!(
                "{name}: per_hour and burst must be at least 1"
            )));
        }
        Ok(())
    }
}

/// The Leaflet release embedded in the binary (the npm package's `dist` files, BSD-2-Clause,
/// under `assets/vendor/leaflet/` with their licence).
pub const LEAFLET_VERSION: &str = "1.9.4";

/// Where the page loads Leaflet from. Every choice is served by this server under
/// `/dashboard/vendor/leaflet/`, so the Content-Security-Policy allows scripts and styles from
/// the server's own origin only.
///
/// There is deliberately no CDN choice: a CDN host in `script-src` would let every script on
/// that host run in the page, whatever the page asked for. Another Leaflet release goes into a
/// directory ([`LeafletSource::Local`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeafletSource {
    /// The copy of Leaflet [`LEAFLET_VERSION`] embedded in the binary (the default).
    #[default]
    Embedded,
    /// A local copy: the `dist` directory of the `leaflet` npm package (holding `leaflet.js`,
    /// `leaflet.css` and `images/`), read from disk on each request.
    Local(PathBuf),
    /// No map library: the map panel says so, the rest of the page works.
    Disabled,
}

/// What the dashboard page needs from the server's configuration.
///
/// | field | default | meaning |
/// |---|---|---|
/// | `tile_url` | `https://tile.openstreetmap.org/{z}/{x}/{y}.png` | the map's tile URL template (OpenStreetMap's standard tiles; heavy use needs your own tile server, see the OSM tile usage policy) |
/// | `tile_attribution` | `© OpenStreetMap contributors` | the credit shown on the map, as text |
/// | `leaflet` | the Leaflet 1.9.4 embedded in the binary | where the page loads Leaflet from ([`LeafletSource`]); always this server, never a CDN |
/// | `image_hosts` | Mapillary's (`https://*.fbcdn.net`) and Panoramax's (`https://api.panoramax.xyz`) | origins street-level thumbnails may load from (the Street View Static preview comes through this server, so Google needs no entry) |
/// | `embed_key` | none | a Google Maps **Embed API browser key**: when set, the street-level panel shows an interactive panorama in an iframe from `https://www.google.com` |
///
/// The embed key ends up in pages, so it must be a separate key from the server's Street View
/// key: restrict it to the Maps Embed API and to your dashboard's HTTP referrers in the Google
/// Cloud console. The server's own API keys never reach a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardConfig {
    /// Tile URL template with `{z}`, `{x}`, `{y}` and optionally `{s}` (subdomain).
    pub tile_url: String,
    /// Attribution shown on the map, as plain text.
    pub tile_attribution: String,
    /// Where Leaflet comes from.
    pub leaflet: LeafletSource,
    /// Origins (`https://host`, `https://*.domain`) street-level images may load from.
    pub image_hosts: Vec<String>,
    /// A referrer-restricted Google Maps Embed API browser key, for the interactive panorama.
    pub embed_key: Option<String>,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            tile_url: "https://tile.openstreetmap.org/{z}/{x}/{y}.png".into(),
            tile_attribution: "© OpenStreetMap contributors".into(),
            leaflet: LeafletSource::Embedded,
            image_hosts: vec![
                "https://*.fbcdn.net".into(),
                "https://api.panoramax.xyz".into(),
            ],
            embed_key: None,
        }
    }
}

/// Provider credentials and endpoints. Secrets never leave the server: they are not logged
/// (their `Debug` is masked) and never sent to a browser.
///
/// | field | default | meaning |
/// |---|---|---|
/// | `google_api_key` | none | Street View Static and metadata key; without it, only Maps links |
/// | `google_signing_secret` | none | URL-signing secret; Static requests are signed when set |
/// | `google_base_url` | Google | origin of the Static API (tests point it at a mock) |
/// | `mapillary_token` | none | Mapillary client token; without it, Mapillary is skipped |
/// | `mapillary_base_url` | `https://graph.mapillary.com` | Mapillary Graph API root |
/// | `panoramax_base_url` | the meta-catalogue | a Panoramax instance's `/api` root |
/// | `streetview_static_budget` | 120 an hour, 20 at once | Static API images per token through `/api/streetview/image` (each is billed) |
/// | `mapillary_budget` | 600 an hour, 60 at once | Mapillary lookups per token through `/api/imagery` (one lookup pages through at most a few requests) |
/// | `panoramax_budget` | 600 an hour, 60 at once | Panoramax lookups per token through `/api/imagery` |
///
/// A token whose budget is spent gets 429 `budget_exceeded` with `Retry-After`; from
/// `/api/imagery` only when every provider it asked for is over budget (otherwise the others
/// answer and the spent one is listed in `errors` with `code: "budget_exceeded"`). Only requests
/// that reach a provider count: the Maps link and a provider without a key cost nothing.
#[derive(Debug, Clone)]
pub struct ImageryConfig {
    /// Google Maps Platform key.
    pub google_api_key: Option<ApiKey>,
    /// Google URL-signing secret.
    pub google_signing_secret: Option<SigningSecret>,
    /// Origin of Google's API, for tests.
    pub google_base_url: Option<String>,
    /// Mapillary client token.
    pub mapillary_token: Option<AccessToken>,
    /// Mapillary Graph API root.
    pub mapillary_base_url: Option<String>,
    /// Panoramax API root.
    pub panoramax_base_url: Option<String>,
    /// Per-token budget of Static API images.
    pub streetview_static_budget: Budget,
    /// Per-token budget of Mapillary lookups.
    pub mapillary_budget: Budget,
    /// Per-token budget of Panoramax lookups.
    pub panoramax_budget: Budget,
}

impl Default for ImageryConfig {
    fn default() -> Self {
        ImageryConfig {
            google_api_key: None,
            google_signing_secret: None,
            google_base_url: None,
            mapillary_token: None,
            mapillary_base_url: None,
            panoramax_base_url: None,
            streetview_static_budget: Budget::new(120, 20),
            mapillary_budget: Budget::new(600, 60),
            panoramax_budget: Budget::new(600, 60),
        }
    }
}

impl ImageryConfig {
    /// Checks the budgets.
    pub(crate) fn validate(&self) -> Result<()> {
        self.streetview_static_budget
            .check("imagery.streetview_static_budget")?;
        self.mapillary_budget.check("imagery.mapillary_budget")?;
        self.panoramax_budget.check("imagery.panoramax_budget")
    }
}

/// Geolocation providers and limits. The offline database needs no setting: it is
/// `<data_dir>/geodb`. Keys are masked in `Debug` and never leave the server.
///
/// | field | default | meaning |
/// |---|---|---|
/// | `wigle_api_name`, `wigle_api_token` | none | WiGLE API name (`AID…`) and token; both or neither |
/// | `opencellid_api_key` | none | OpenCellID API key |
/// | `wigle_base_url` | `https://api.wigle.net` | WiGLE API root (tests point it at a mock) |
/// | `opencellid_base_url` | `https://opencellid.org` | OpenCellID API root |
/// | `max_online_lookups` | 10 | WiGLE/OpenCellID requests per located request (cache hits are free) |
/// | `wigle_budget` | 60 an hour, 20 at once | WiGLE requests per token |
/// | `opencellid_budget` | 200 an hour, 20 at once | OpenCellID requests per token |
/// | `geosubmit_budget` | 600 an hour, 60 at once | `/v2/geosubmit` requests per token |
/// | `max_overlay_rows` | 1 000 000 | transmitters the geosubmit overlay keeps (about 100 MB); when full, new ones are refused |
/// | `trusted_proxies` | none | addresses or CIDRs (`10.0.0.0/8`, `::1`) of reverse proxies whose `X-Forwarded-For` names the caller, for the IP fallback and for the per-source budget of unauthenticated sockets |
#[derive(Clone)]
pub struct GeoConfig {
    /// WiGLE API name.
    pub wigle_api_name: Option<String>,
    /// WiGLE API token.
    pub wigle_api_token: Option<String>,
    /// OpenCellID API key.
    pub opencellid_api_key: Option<String>,
    /// WiGLE API root; `None` for WiGLE's.
    pub wigle_base_url: Option<String>,
    /// OpenCellID API root; `None` for OpenCellID's.
    pub opencellid_base_url: Option<String>,
    /// Most provider requests per located request.
    pub max_online_lookups: usize,
    /// Per-token budget of WiGLE requests.
    pub wigle_budget: Budget,
    /// Per-token budget of OpenCellID requests.
    pub opencellid_budget: Budget,
    /// Per-token budget of `/v2/geosubmit` requests.
    pub geosubmit_budget: Budget,
    /// Most transmitters the geosubmit overlay keeps.
    pub max_overlay_rows: u64,
    /// Reverse proxies trusted to say who the caller is in `X-Forwarded-For`.
    pub trusted_proxies: Vec<String>,
}

impl GeoConfig {
    /// Checks the budgets.
    pub(crate) fn validate(&self) -> Result<()> {
        self.wigle_budget.check("geo.wigle_budget")?;
        self.opencellid_budget.check("geo.opencellid_budget")?;
        self.geosubmit_budget.check("geo.geosubmit_budget")
    }
}

impl Default for GeoConfig {
    fn default() -> Self {
        GeoConfig {
            wigle_api_name: None,
            wigle_api_token: None,
            opencellid_api_key: None,
            wigle_base_url: None,
            opencellid_base_url: None,
            max_online_lookups: 10,
            wigle_budget: Budget::new(60, 20),
            opencellid_budget: Budget::new(200, 20),
            geosubmit_budget: Budget::new(600, 60),
            max_overlay_rows: geo_locate::store::overlay::DEFAULT_MAX_ROWS,
            trusted_proxies: Vec::new(),
        }
    }
}

impl std::fmt::Debug for GeoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mask = |v: &Option<String>| v.as_ref().map(|_| "***");
        f.debug_struct("GeoConfig")
            .field("wigle_api_name", &mask(&self.wigle_api_name))
            .field("wigle_api_token", &mask(&self.wigle_api_token))
            .field("opencellid_api_key", &mask(&self.opencellid_api_key))
            .field("wigle_base_url", &self.wigle_base_url)
            .field("opencellid_base_url", &self.opencellid_base_url)
            .field("max_online_lookups", &self.max_online_lookups)
            .field("wigle_budget", &self.wigle_budget)
            .field("opencellid_budget", &self.opencellid_budget)
            .field("geosubmit_budget", &self.geosubmit_budget)
            .field("max_overlay_rows", &self.max_overlay_rows)
            .field("trusted_proxies", &self.trusted_proxies)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact_url("postgres://vigil:s3cret@db.example:5432/vigil"),
            "postgres://vigil:***@db.example:5432/vigil"
        );
        assert_eq!(
            redact_url("redis://:pw@127.0.0.1:6379/0"),
            "redis://:***@127.0.0.1:6379/0"
        );
        assert_eq!(redact_url("redis://127.0.0.1/"), "redis://127.0.0.1/");
        assert_eq!(redact_url("postgres://vigil@h/db"), "postgres://vigil@h/db");
        assert_eq!(redact_url("not a url"), "not a url");
    }

    #[test]
    fn the_database_and_redis_go_together() {
        let one = |db: Option<&str>, redis: Option<&str>| {
            ServerConfig {
                database_url: db.map(str::to_owned),
                redis_url: redis.map(str::to_owned),
                ..ServerConfig::default()
            }
            .validate()
        };
        assert!(one(None, None).is_ok());
        assert!(one(Some("postgres://h/db"), Some("redis://h/")).is_ok());
        let err = one(Some("postgres://u:pw@h/db"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("go together"), "{err}");
        assert!(one(None, Some("redis://h/")).is_err());
        let err = one(Some("mysql://u:pw@h/db"), Some("redis://h/"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("postgres://") && !err.contains("pw"), "{err}");
        assert!(one(Some("postgres://h/db"), Some("http://h/")).is_err());
        let err = one(Some("postgres://h/db"), Some("rediss://h/"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not supported"), "{err}");
    }
}
