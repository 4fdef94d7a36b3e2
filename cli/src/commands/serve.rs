//! `vigil serve`: run the reference server.
//!
//! Provider keys come from the environment: `GOOGLE_MAPS_API_KEY` and
//! `GOOGLE_MAPS_URL_SIGNING_SECRET` (Street View metadata and Static previews, proxied so the key
//! never reaches a browser), `MAPILLARY_ACCESS_TOKEN` (Mapillary images near a point),
//! `WIGLE_API_NAME` + `WIGLE_API_TOKEN` and `OPENCELLID_API_KEY` (online sources of the
//! geolocation endpoints, as for `vigil locate`; without them only `<data-dir>/geodb` answers).
//! `GOOGLE_MAPS_EMBED_KEY` is different: a Maps Embed API *browser* key, restricted to the
//! dashboard's referrers, that the dashboard page uses for the interactive panorama.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use serde::Serialize;
use streetview::{AccessToken, ApiKey, SigningSecret};

use crate::config::{self, Keys, Layers};
use vigil_server::{
    AppState, DashboardConfig, DemoStarted, GeoConfig, ImageryConfig, LeafletSource, ServerConfig,
};

/// Arguments of `vigil serve`. Each flag also comes from its `VIGIL_*` variable or the `[serve]`
/// table of `vigil.toml` (flags win, then the environment, then the file).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    vigil serve\n  \
    vigil serve --demo\n  \
    vigil serve --bind 127.0.0.1:9000 --data-dir /var/lib/vigil --allow-origin https://ops.example\n  \
    vigil config show                                   # the settings in effect, secrets masked")]
pub struct Args {
    /// Address to listen on [default: 127.0.0.1:8000; env VIGIL_BIND]. The default keeps the
    /// server on this machine; expose it deliberately, behind TLS.
    #[arg(long, env = "VIGIL_BIND", hide_env = true)]
    bind: Option<SocketAddr>,

    /// Directory of the SQLite database [default: vigil-data; env VIGIL_DATA_DIR].
    #[arg(long, env = "VIGIL_DATA_DIR", hide_env = true)]
    data_dir: Option<PathBuf>,

    /// A browser origin allowed besides the server's own (repeatable), e.g. https://ops.example
    /// [env VIGIL_ALLOW_ORIGINS, comma-separated].
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    allowed_origins: Vec<String>,

    /// The dashboard is reached over HTTPS (a TLS proxy in front): the session cookie becomes
    /// `__Host-vigil_session` with `Secure`, and only that name is read [env VIGIL_COOKIE_SECURE].
    #[arg(long)]
    cookie_secure: bool,

    /// What may be scanned (repeatable): an address, CIDR, range, host name or `*.domain`. Without
    /// it, every scan is refused. Loopback only when named (127.0.0.1) [env VIGIL_SCOPE,
    /// comma-separated].
    #[arg(long = "scope", value_name = "CIDR|HOST")]
    scope: Vec<String>,

    /// A reverse proxy (address or CIDR, repeatable) whose X-Forwarded-For names the caller for
    /// the IP fallback of /v1/geolocate [env VIGIL_TRUSTED_PROXIES, comma-separated].
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    trusted_proxies: Vec<String>,

    /// Do not run the in-process scanning agent (scans then wait for remote agents)
    /// [env VIGIL_LOCAL_AGENT=false].
    #[arg(long)]
    no_local_agent: bool,

    /// Demo mode: start deliberately weak services on 127.0.0.1 (and add 127.0.0.1 to the
    /// scope), scan them, and publish simulated agent activity labelled `demo` [env VIGIL_DEMO].
    #[arg(long)]
    demo: bool,

    /// Panoramax instance API root for `/api/imagery` (default: the meta-catalogue)
    /// [env VIGIL_PANORAMAX_URL].
    #[arg(long, value_name = "URL", env = "VIGIL_PANORAMAX_URL", hide_env = true)]
    panoramax_url: Option<String>,

    /// Dashboard map tiles: a URL template with {z}, {x}, {y} (default: OpenStreetMap's
    /// standard tiles) [env VIGIL_TILE_URL].
    #[arg(long, value_name = "TEMPLATE", env = "VIGIL_TILE_URL", hide_env = true)]
    tile_url: Option<String>,

    /// Attribution shown on the dashboard map for --tile-url [env VIGIL_TILE_ATTRIBUTION].
    #[arg(
        long,
        value_name = "TEXT",
        env = "VIGIL_TILE_ATTRIBUTION",
        hide_env = true
    )]
    tile_attribution: Option<String>,

    /// Serve Leaflet from this directory (the `dist` folder of the `leaflet` npm package, for
    /// another release) instead of the Leaflet 1.9.4 embedded in the binary; either way the
    /// page loads it from this server, never a CDN [env VIGIL_LEAFLET_DIR].
    #[arg(long, value_name = "DIR", env = "VIGIL_LEAFLET_DIR", hide_env = true)]
    leaflet_dir: Option<PathBuf>,

    /// The vulnerability database (`vigil cvedb import`) that `vuln_scan` results are matched
    /// against, on the server, whichever agent ran the scan [default: cvedb.sqlite in the data directory
    /// when it exists; env VIGIL_CVEDB].
    #[arg(long, value_name = "FILE", env = "VIGIL_CVEDB", hide_env = true)]
    cvedb: Option<PathBuf>,

    /// Report CVE matches on distribution builds that the distribution's data cannot decide at
    /// their CVSS severity instead of `info` [env VIGIL_PARANOID].
    #[arg(long)]
    paranoid: bool,

    /// Join a cluster: the shared PostgreSQL database (`postgres://user:password@host/db`) that
    /// holds tokens, scans, tasks, results, alerts and the event log. Give --redis-url too
    /// [env VIGIL_DATABASE_URL].
    #[arg(long, value_name = "URL", env = "VIGIL_DATABASE_URL", hide_env = true)]
    database_url: Option<String>,

    /// Join a cluster: the Redis (`redis://host:6379/`) that carries the event bus and the
    /// nodes' control channel. Give --database-url too [env VIGIL_REDIS_URL].
    #[arg(long, value_name = "URL", env = "VIGIL_REDIS_URL", hide_env = true)]
    redis_url: Option<String>,

    /// Seconds a client has to send a whole request head before its connection is closed
    /// [default: 10; env VIGIL_HEADER_READ_TIMEOUT].
    #[arg(
        long,
        value_name = "SECS",
        env = "VIGIL_HEADER_READ_TIMEOUT",
        hide_env = true
    )]
    header_read_timeout: Option<f64>,

    /// Seconds an idle keep-alive connection stays open, at most --header-read-timeout
    /// [default: 5; env VIGIL_KEEP_ALIVE_TIMEOUT].
    #[arg(
        long,
        value_name = "SECS",
        env = "VIGIL_KEEP_ALIVE_TIMEOUT",
        hide_env = true
    )]
    keep_alive_timeout: Option<f64>,

    /// Largest request head (request line and header fields) in bytes; larger ones are
    /// answered 431 [default: 16384; env VIGIL_MAX_HEADER_BYTES].
    #[arg(
        long,
        value_name = "BYTES",
        env = "VIGIL_MAX_HEADER_BYTES",
        hide_env = true
    )]
    max_header_bytes: Option<usize>,
}

impl Args {
    /// No flags: what `vigil config show` resolves (the environment and the file still apply).
    pub fn none() -> Args {
        Args {
            bind: crate::config::env_parse("VIGIL_BIND").ok().flatten(),
            data_dir: crate::config::env("VIGIL_DATA_DIR").map(PathBuf::from),
            allowed_origins: Vec::new(),
            cookie_secure: false,
            scope: Vec::new(),
            trusted_proxies: Vec::new(),
            no_local_agent: false,
            demo: false,
            panoramax_url: crate::config::env("VIGIL_PANORAMAX_URL"),
            tile_url: crate::config::env("VIGIL_TILE_URL"),
            tile_attribution: crate::config::env("VIGIL_TILE_ATTRIBUTION"),
            leaflet_dir: crate::config::env("VIGIL_LEAFLET_DIR").map(PathBuf::from),
            cvedb: crate::config::env("VIGIL_CVEDB").map(PathBuf::from),
            paranoid: false,
            database_url: crate::config::env("VIGIL_DATABASE_URL"),
            redis_url: crate::config::env("VIGIL_REDIS_URL"),
            header_read_timeout: crate::config::env_parse("VIGIL_HEADER_READ_TIMEOUT")
                .ok()
                .flatten(),
            keep_alive_timeout: crate::config::env_parse("VIGIL_KEEP_ALIVE_TIMEOUT")
                .ok()
                .flatten(),
            max_header_bytes: crate::config::env_parse("VIGIL_MAX_HEADER_BYTES")
                .ok()
                .flatten(),
        }
    }
}

/// The settings `vigil serve` runs with, after flags, environment and file.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// Address to listen on.
    pub bind: SocketAddr,
    /// Database directory.
    pub data_dir: PathBuf,
    /// Extra allowed browser origins.
    pub allow_origins: Vec<String>,
    /// Mark the session cookie Secure.
    pub cookie_secure: bool,
    /// What may be scanned.
    pub scope: Vec<String>,
    /// Reverse proxies trusted for X-Forwarded-For (the IP fallback).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<String>,
    /// Run the in-process agent.
    pub local_agent: bool,
    /// Demo mode.
    pub demo: bool,
    /// Panoramax API root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub panoramax_url: Option<String>,
    /// Map tile URL template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tile_url: Option<String>,
    /// Map attribution.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tile_attribution: Option<String>,
    /// A local Leaflet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaflet_dir: Option<PathBuf>,
    /// The vulnerability database named for `vuln_scan` matching.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cvedb: Option<PathBuf>,
    /// Unverified CVE matches at their CVSS severity.
    pub paranoid: bool,
    /// The cluster's shared database (password shown as `***`).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "redacted")]
    pub database_url: Option<String>,
    /// The cluster's Redis (password shown as `***`).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "redacted")]
    pub redis_url: Option<String>,
    /// The cluster's name in Redis.
    pub cluster_name: String,
    /// Seconds a client has to send a whole request head.
    pub header_read_timeout: f64,
    /// Seconds an idle keep-alive connection stays open.
    pub keep_alive_timeout: f64,
    /// Largest request head in bytes.
    pub max_header_bytes: usize,
    /// Provider keys (environment over file).
    #[serde(skip)]
    pub keys: Keys,
}

/// Resolves flags over `VIGIL_*` over the file over the defaults.
pub fn settings(args: Args, layers: &Layers) -> anyhow::Result<Settings> {
    let file = &layers.file.serve;
    let defaults = ServerConfig::default();
    let list = |flags: Vec<String>, var: &str, file: &Option<Vec<String>>| {
        if !flags.is_empty() {
            flags
        } else {
            config::env_list(var)
                .or_else(|| file.clone())
                .unwrap_or_default()
        }
    };
    let switch = |flag: bool, var: &str, file: Option<bool>| -> anyhow::Result<bool> {
        Ok(flag || config::env_bool(var)?.or(file).unwrap_or(false))
    };
    let local_agent = if args.no_local_agent {
        false
    } else {
        config::env_bool("VIGIL_LOCAL_AGENT")?
            .or(file.local_agent)
            .unwrap_or(true)
    };
    Ok(Settings {
        bind: args
            .bind
            .or(file.bind)
            .unwrap_or_else(|| "127.0.0.1:8000".parse().expect("a valid address")),
        data_dir: args
            .data_dir
            .or_else(|| file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from("vigil-data")),
        allow_origins: list(
            args.allowed_origins,
            "VIGIL_ALLOW_ORIGINS",
            &file.allow_origins,
        ),
        cookie_secure: switch(
            args.cookie_secure,
            "VIGIL_COOKIE_SECURE",
            file.cookie_secure,
        )?,
        scope: list(args.scope, "VIGIL_SCOPE", &file.scope),
        trusted_proxies: list(args.trusted_proxies, "VIGIL_TRUSTED_PROXIES", &None),
        local_agent,
        demo: switch(args.demo, "VIGIL_DEMO", file.demo)?,
        panoramax_url: args.panoramax_url.or_else(|| file.panoramax_url.clone()),
        tile_url: args.tile_url.or_else(|| file.tile_url.clone()),
        tile_attribution: args
            .tile_attribution
            .or_else(|| file.tile_attribution.clone()),
        leaflet_dir: args.leaflet_dir.or_else(|| file.leaflet_dir.clone()),
        cvedb: args.cvedb.or_else(|| file.cvedb.clone()),
        paranoid: switch(args.paranoid, "VIGIL_PARANOID", file.paranoid)?,
        database_url: args.database_url.or_else(|| file.database_url.clone()),
        redis_url: args.redis_url.or_else(|| file.redis_url.clone()),
        cluster_name: config::env("VIGIL_CLUSTER_NAME")
            .or_else(|| file.cluster_name.clone())
            .unwrap_or(defaults.cluster_name.clone()),
        header_read_timeout: args
            .header_read_timeout
            .or(file.header_read_timeout)
            .unwrap_or(defaults.header_read_timeout.as_secs_f64()),
        keep_alive_timeout: args
            .keep_alive_timeout
            .or(file.keep_alive_timeout)
            .unwrap_or(defaults.keep_alive_timeout.as_secs_f64()),
        max_header_bytes: args
            .max_header_bytes
            .or(file.max_header_bytes)
            .unwrap_or(defaults.max_header_bytes),
        keys: layers.file.keys.effective(),
    })
}

fn redacted<S: serde::Serializer>(url: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match url {
        Some(url) => s.serialize_str(&vigil_server::redact_url(url)),
        None => s.serialize_none(),
    }
}

/// Seconds as a duration; the server's validation then checks the range.
fn seconds(name: &str, secs: f64) -> anyhow::Result<std::time::Duration> {
    std::time::Duration::try_from_secs_f64(secs)
        .with_context(|| format!("{name} must be a non-negative number of seconds, got {secs}"))
}

/// Provider keys. They stay on the server.
fn imagery_config(keys: &Keys) -> anyhow::Result<ImageryConfig> {
    Ok(ImageryConfig {
        google_api_key: keys
            .google_maps_api_key
            .clone()
            .map(ApiKey::new)
            .transpose()
            .context("GOOGLE_MAPS_API_KEY")?,
        google_signing_secret: keys
            .google_maps_url_signing_secret
            .as_deref()
            .map(SigningSecret::from_base64)
            .transpose()
            .context("GOOGLE_MAPS_URL_SIGNING_SECRET")?,
        mapillary_token: keys
            .mapillary_access_token
            .clone()
            .map(AccessToken::new)
            .transpose()
            .context("MAPILLARY_ACCESS_TOKEN")?,
        ..ImageryConfig::default()
    })
}

/// Geolocation provider keys (the same variables as `vigil locate`).
fn geo_config(keys: &Keys) -> GeoConfig {
    GeoConfig {
        wigle_api_name: keys.wigle_api_name.clone(),
        wigle_api_token: keys.wigle_api_token.clone(),
        opencellid_api_key: keys.opencellid_api_key.clone(),
        ..GeoConfig::default()
    }
}

/// The dashboard's map settings. `GOOGLE_MAPS_EMBED_KEY` is a separate, referrer-restricted
/// Maps Embed API browser key: unlike the keys above it is sent to the page, by design.
fn dashboard_config(settings: &Settings) -> DashboardConfig {
    let defaults = DashboardConfig::default();
    DashboardConfig {
        tile_attribution: match (&settings.tile_url, settings.tile_attribution.clone()) {
            (_, Some(text)) => text,
            (Some(_), None) => String::new(),
            (None, None) => defaults.tile_attribution,
        },
        tile_url: settings.tile_url.clone().unwrap_or(defaults.tile_url),
        leaflet: settings
            .leaflet_dir
            .clone()
            .map_or(defaults.leaflet, LeafletSource::Local),
        embed_key: settings.keys.google_maps_embed_key.clone(),
        ..defaults
    }
}

/// Starts the server and runs it until Ctrl-C or SIGTERM.
pub fn run(args: Args, layers: &Layers) -> anyhow::Result<ExitCode> {
    let settings = settings(args, layers)?;
    let config = ServerConfig {
        data_dir: settings.data_dir.clone(),
        allowed_origins: settings.allow_origins.clone(),
        cookie_secure: settings.cookie_secure,
        scope: settings.scope.clone(),
        demo: settings.demo,
        cvedb: settings.cvedb.clone(),
        paranoid: settings.paranoid,
        database_url: settings.database_url.clone(),
        redis_url: settings.redis_url.clone(),
        cluster_name: settings.cluster_name.clone(),
        local_agent: if settings.local_agent {
            ServerConfig::default().local_agent
        } else {
            None
        },
        imagery: ImageryConfig {
            panoramax_base_url: settings.panoramax_url.clone(),
            ..imagery_config(&settings.keys)?
        },
        dashboard: dashboard_config(&settings),
        geo: GeoConfig {
            trusted_proxies: settings.trusted_proxies.clone(),
            ..geo_config(&settings.keys)
        },
        header_read_timeout: seconds("header_read_timeout", settings.header_read_timeout)?,
        keep_alive_timeout: seconds("keep_alive_timeout", settings.keep_alive_timeout)?,
        max_header_bytes: settings.max_header_bytes,
        ..ServerConfig::default()
    };
    let args = &settings;
    // Every connection is a descriptor: take the hard limit, as servers do (10 000 connection
    // slots and the unauthenticated budgets need more than the usual soft limit of 1 024).
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!(limit = n, "open-file limit"),
        Err(err) => tracing::warn!(error = %err, "the open-file limit could not be raised"),
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let data = match &args.database_url {
            Some(url) => format!("cluster node: data in {}", vigil_server::redact_url(url)),
            None => format!("data in {}", args.data_dir.display()),
        };
        let (state, first) = AppState::open(config)
            .await
            .with_context(|| format!("opening the database ({data})"))?;
        let listener = listen(args.bind).with_context(|| format!("binding {}", args.bind))?;
        let local = listener.local_addr().context("reading the bound address")?;
        eprintln!("vigil server listening on http://{local}  ({data})");
        if let Some(first) = first {
            // Shown once: only its hash is stored.
            eprintln!();
            eprintln!("First start: an admin token was created. It is shown only this once:");
            eprintln!();
            eprintln!("    {}", first.admin_token);
            eprintln!();
            eprintln!("Open the dashboard (the token stays in the URL fragment, never sent to the server):");
            eprintln!();
            eprintln!("    http://{local}/dashboard#token={}", first.admin_token);
            eprintln!();
            eprintln!(
                "Use it as `Authorization: Bearer TOKEN`, or trade it for a browser session with"
            );
            eprintln!(
                "POST http://{local}/api/session. Mint more with `vigil token create --role ROLE`."
            );
        }
        let announce = if args.demo {
            eprintln!();
            eprintln!("Demo mode is on: 127.0.0.1 is added to the scan scope, and the simulated activity is labelled `demo`.");
            Some(announce_demo(&state)?)
        } else {
            None
        };
        let served = vigil_server::serve(listener, state, shutdown_signal()).await;
        if let Some(announce) = announce {
            announce.abort();
        }
        served?;
        eprintln!("vigil server stopped");
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

/// Prints where the demo's weak services listen once the server announces them.
fn announce_demo(state: &AppState) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use event_bus::{Delivery, Filter, Payload as _};
    let filter = Filter::rooms([DemoStarted::ROOM])?.kinds([DemoStarted::KIND])?;
    let mut subscription = state.bus().subscribe(filter)?;
    Ok(tokio::spawn(async move {
        while let Some(delivery) = subscription.recv().await {
            let Delivery::Event(event) = delivery else {
                continue;
            };
            let Ok(started) = event.decode::<DemoStarted>() else {
                continue;
            };
            eprintln!(
                "Deliberately weak services (scanned now and every {} s):",
                started.rescan_seconds
            );
            for service in &started.services {
                eprintln!(
                    "    {:<5} {:<21} {}",
                    service.name, service.address, service.weakness
                );
            }
            eprintln!();
            return;
        }
    }))
}

/// A listening socket with a deep accept queue: tokio's default backlog of 128 overflows when a
/// thousand dashboards or agents reconnect at once, and each overflow costs a client a 1 s retry.
fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Ctrl-C, or SIGTERM on Unix.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FileConfig;

    fn layers(toml_text: &str) -> Layers {
        Layers {
            path: None,
            file: toml::from_str::<FileConfig>(toml_text).unwrap(),
        }
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let file = layers(
            "[serve]\nbind = \"127.0.0.1:9100\"\nscope = [\"10.0.0.0/24\"]\ndemo = true\nlocal_agent = false\n",
        );
        // Only values no test environment sets are checked against the environment layer.
        let from_file = settings(
            Args {
                tile_url: None,
                ..Args::none()
            },
            &file,
        )
        .unwrap();
        assert_eq!(from_file.bind.to_string(), "127.0.0.1:9100");
        assert!(from_file.demo && !from_file.local_agent);
        let flags = Args {
            bind: Some("127.0.0.1:9200".parse().unwrap()),
            scope: vec!["192.0.2.0/24".into()],
            ..Args::none()
        };
        let from_flags = settings(flags, &file).unwrap();
        assert_eq!(from_flags.bind.to_string(), "127.0.0.1:9200");
        assert_eq!(from_flags.scope, ["192.0.2.0/24"]);
        let defaults = settings(Args::none(), &Layers::default()).unwrap();
        assert!(defaults.local_agent && !defaults.demo);
    }
}
