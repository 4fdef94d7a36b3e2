//! Layered configuration of `vigil serve` and `vigil agent`.
//!
//! Each setting comes from the first of these that has it: command-line flags, `VIGIL_*`
//! environment variables, the configuration file, the built-in default. The file is `vigil.toml`
//! in the working directory when it exists, or the one named by `--config` / `VIGIL_CONFIG` (which
//! must exist). Unknown keys are errors that name the key, so a typo never silently does nothing.
//!
//! ```toml
//! [serve]
//! bind = "127.0.0.1:8000"
//! data_dir = "vigil-data"
//! scope = ["10.0.0.0/24"]
//! allow_origins = ["https://ops.example"]
//!
//! [agent]
//! server = "http://10.0.0.2:8000"
//! scope = ["10.0.0.0/24"]
//! name = "rack-3"
//!
//! [keys]                          # provider keys; the environment variables win
//! google_maps_api_key = "..."
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

/// The default configuration file, read when it exists.
pub const DEFAULT_FILE: &str = "vigil.toml";

/// `[serve]` in the file.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServeFile {
    /// Address to listen on.
    pub bind: Option<SocketAddr>,
    /// Database directory.
    pub data_dir: Option<PathBuf>,
    /// Extra allowed browser origins.
    pub allow_origins: Option<Vec<String>>,
    /// Mark the session cookie Secure.
    pub cookie_secure: Option<bool>,
    /// What may be scanned.
    pub scope: Option<Vec<String>>,
    /// Run the in-process agent.
    pub local_agent: Option<bool>,
    /// Demo mode.
    pub demo: Option<bool>,
    /// Panoramax API root.
    pub panoramax_url: Option<String>,
    /// Map tile URL template.
    pub tile_url: Option<String>,
    /// Map attribution.
    pub tile_attribution: Option<String>,
    /// A local Leaflet `dist` directory.
    pub leaflet_dir: Option<PathBuf>,
    /// The vulnerability database `vuln_scan` results are matched against.
    pub cvedb: Option<PathBuf>,
    /// Report unverified CVE matches at their CVSS severity.
    pub paranoid: Option<bool>,
    /// Join a cluster: the shared PostgreSQL database (with `redis_url`).
    pub database_url: Option<String>,
    /// Join a cluster: the Redis carrying the bus (with `database_url`).
    pub redis_url: Option<String>,
    /// The cluster's name in Redis (two clusters on one Redis need two names).
    pub cluster_name: Option<String>,
    /// Seconds a client has to send a whole request head.
    pub header_read_timeout: Option<f64>,
    /// Seconds an idle keep-alive connection stays open.
    pub keep_alive_timeout: Option<f64>,
    /// Largest request head in bytes.
    pub max_header_bytes: Option<usize>,
}

/// `[agent]` in the file.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgentFile {
    /// The server.
    pub server: Option<String>,
    /// The agent token (a secret).
    pub token: Option<String>,
    /// What the agent may scan.
    pub scope: Option<Vec<String>>,
    /// Tasks at once.
    pub max_concurrent: Option<usize>,
    /// Display name.
    pub name: Option<String>,
    /// Stable id.
    pub agent_id: Option<String>,
    /// Extra signature file.
    pub signatures: Option<PathBuf>,
    /// Result spool file.
    pub spool: Option<PathBuf>,
    /// Seconds to finish running tasks on shutdown.
    pub stop_grace: Option<u64>,
}

/// `[keys]` in the file: provider secrets. Their environment variables win.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Keys {
    /// `GOOGLE_MAPS_API_KEY`.
    pub google_maps_api_key: Option<String>,
    /// `GOOGLE_MAPS_URL_SIGNING_SECRET`.
    pub google_maps_url_signing_secret: Option<String>,
    /// `GOOGLE_MAPS_EMBED_KEY` (a browser key, sent to pages by design).
    pub google_maps_embed_key: Option<String>,
    /// `MAPILLARY_ACCESS_TOKEN`.
    pub mapillary_access_token: Option<String>,
    /// `WIGLE_API_NAME`.
    pub wigle_api_name: Option<String>,
    /// `WIGLE_API_TOKEN`.
    pub wigle_api_token: Option<String>,
    /// `OPENCELLID_API_KEY`.
    pub opencellid_api_key: Option<String>,
}

/// The whole file.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `[serve]`.
    #[serde(default)]
    pub serve: ServeFile,
    /// `[agent]`.
    #[serde(default)]
    pub agent: AgentFile,
    /// `[keys]`.
    #[serde(default)]
    pub keys: Keys,
}

/// The file layer, once read.
#[derive(Debug, Default, Clone)]
pub struct Layers {
    /// The file that was read, if any.
    pub path: Option<PathBuf>,
    /// Its content (empty without a file).
    pub file: FileConfig,
}

impl Layers {
    /// Reads `explicit` (which must exist), else `vigil.toml` when it exists, else nothing.
    pub fn load(explicit: Option<&Path>) -> anyhow::Result<Layers> {
        let path = match explicit {
            Some(path) => {
                if !path.exists() {
                    bail!("configuration file {} does not exist", path.display());
                }
                path.to_owned()
            }
            None if Path::new(DEFAULT_FILE).exists() => PathBuf::from(DEFAULT_FILE),
            None => return Ok(Layers::default()),
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let file: FileConfig = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.to_string().trim()))?;
        Ok(Layers {
            path: Some(path),
            file,
        })
    }
}

/// A `VIGIL_*` (or provider) variable, when set and not blank.
pub fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A comma-separated list variable.
pub fn env_list(name: &str) -> Option<Vec<String>> {
    env(name).map(|v| {
        v.split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    })
}

/// A boolean variable: `1|true|yes|on` or `0|false|no|off`; anything else is an error naming it.
pub fn env_bool(name: &str) -> anyhow::Result<Option<bool>> {
    match env(name).as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => Ok(None),
        Some("1" | "true" | "yes" | "on") => Ok(Some(true)),
        Some("0" | "false" | "no" | "off") => Ok(Some(false)),
        Some(other) => bail!("{name} must be true or false, got {other:?}"),
    }
}

/// A parsed variable; a bad value is an error naming it.
pub fn env_parse<T: std::str::FromStr>(name: &str) -> anyhow::Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    env(name)
        .map(|v| v.parse::<T>().map_err(|e| anyhow::anyhow!("{name}: {e}")))
        .transpose()
}

impl Keys {
    /// Provider keys: each environment variable over the file's value.
    pub fn effective(&self) -> Keys {
        let pick = |var: &str, file: &Option<String>| env(var).or_else(|| file.clone());
        Keys {
            google_maps_api_key: pick("GOOGLE_MAPS_API_KEY", &self.google_maps_api_key),
            google_maps_url_signing_secret: pick(
                "GOOGLE_MAPS_URL_SIGNING_SECRET",
                &self.google_maps_url_signing_secret,
            ),
            google_maps_embed_key: pick("GOOGLE_MAPS_EMBED_KEY", &self.google_maps_embed_key),
            mapillary_access_token: pick("MAPILLARY_ACCESS_TOKEN", &self.mapillary_access_token),
            wigle_api_name: pick("WIGLE_API_NAME", &self.wigle_api_name),
            wigle_api_token: pick("WIGLE_API_TOKEN", &self.wigle_api_token),
            opencellid_api_key: pick("OPENCELLID_API_KEY", &self.opencellid_api_key),
        }
    }

    /// The same keys with every secret replaced by a mask, for printing.
    pub fn masked(&self) -> Keys {
        let mask = |v: &Option<String>| v.as_ref().map(|_| MASK.to_owned());
        Keys {
            google_maps_api_key: mask(&self.google_maps_api_key),
            google_maps_url_signing_secret: mask(&self.google_maps_url_signing_secret),
            google_maps_embed_key: mask(&self.google_maps_embed_key),
            mapillary_access_token: mask(&self.mapillary_access_token),
            // The WiGLE API name is an account id, not a secret.
            wigle_api_name: self.wigle_api_name.clone(),
            wigle_api_token: mask(&self.wigle_api_token),
            opencellid_api_key: mask(&self.opencellid_api_key),
        }
    }
}

/// What a secret prints as.
pub const MASK: &str = "*** (set)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_named() {
        let err = toml::from_str::<FileConfig>("[serve]\nbnd = \"127.0.0.1:1\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("bnd"), "{err}");
        let err = toml::from_str::<FileConfig>("[servr]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("servr"), "{err}");
        let ok: FileConfig =
            toml::from_str("[serve]\nbind = \"127.0.0.1:9\"\nscope = [\"10.0.0.0/24\"]\n").unwrap();
        assert_eq!(ok.serve.scope.unwrap(), ["10.0.0.0/24"]);
    }

    #[test]
    fn masking_hides_secrets_but_not_their_presence() {
        let keys = Keys {
            google_maps_api_key: Some("AIza-secret".into()),
            wigle_api_name: Some("AIDabc".into()),
            ..Keys::default()
        };
        let shown = toml::to_string(&keys.masked()).unwrap();
        assert!(!shown.contains("AIza-secret") && shown.contains(MASK) && shown.contains("AIDabc"));
    }
}
