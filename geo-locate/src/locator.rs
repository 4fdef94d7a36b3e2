//! The one entry point: a geolocate request in, a position (or not-found) out.
//!
//! A [`Locator`] asks its [`Source`]s in order — the offline database first, then the online
//! providers through the read-through cache — and stops early once the estimate is precise
//! (score ≥ 1 and accuracy ≤ 500 m), so quota is spent only when local data is not enough.
//! When no source knows anything and the request allows it, [`Locator::locate_with_ip`]
//! answers from the caller's address with `fallback: "ipf"` ([`crate::ip`]).

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tracing::{debug, warn};

use crate::api::{FallbackKind, GeolocateRequest, GeolocateResponse};
use crate::cache::{Cache, Cached};
use crate::error::{Error, Result};
use crate::estimate::{Estimate, EstimateKind, Estimator, EstimatorConfig, Known};
use crate::ip::IpDatabase;
use crate::opencellid::OpenCellIdClient;
use crate::query::Query;
use crate::store::GeoDb;
use crate::wigle::WigleClient;

/// Something that knows transmitter positions.
#[async_trait]
pub trait Source: Send + Sync + std::fmt::Debug {
    /// A short name for logs (`offline`, `wigle`, `opencellid`).
    fn name(&self) -> &'static str;

    /// Adds to `known` what this source knows about the query's transmitters that `known` lacks.
    /// `budget` is how many paid/quota-limited requests it may still make; it decrements it.
    /// Before each such request a source asks `enough(known)` and stops when it says the answer
    /// is already precise, so quota is spent only while it can still help.
    async fn lookup(
        &self,
        query: &Query,
        known: &mut Known,
        budget: &mut usize,
        enough: &(dyn for<'k> Fn(&'k Known) -> bool + Send + Sync),
    ) -> Result<()>;
}

#[async_trait]
impl Source for GeoDb {
    fn name(&self) -> &'static str {
        "offline"
    }

    async fn lookup(
        &self,
        query: &Query,
        known: &mut Known,
        _budget: &mut usize,
        _enough: &(dyn for<'k> Fn(&'k Known) -> bool + Send + Sync),
    ) -> Result<()> {
        self.fill(query, known)
    }
}

/// Remembers an exhausted quota so that later lookups do not hammer the provider.
#[derive(Debug, Default)]
struct Backoff {
    until: Mutex<Option<(SystemTime, String)>>,
}

impl Backoff {
    /// The quota error to report while backing off, or `None` when requests may be sent.
    fn active(&self, provider: &'static str) -> Option<Error> {
        let guard = self.until.lock().unwrap_or_else(PoisonError::into_inner);
        match &*guard {
            Some((until, message)) if SystemTime::now() < *until => Some(Error::QuotaExhausted {
                provider,
                message: format!("{message} (not asking again for now)"),
            }),
            _ => None,
        }
    }

    /// Records a quota error and backs off for `delay`.
    fn trip(&self, err: &Error, delay: Duration) {
        if let Error::QuotaExhausted { message, .. } = err {
            *self.until.lock().unwrap_or_else(PoisonError::into_inner) =
                Some((SystemTime::now() + delay, message.clone()));
        }
    }
}

/// Time until the next 00:00 UTC, when WiGLE's daily quota resets.
fn until_utc_midnight() -> Duration {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Duration::from_secs(86_400 - secs % 86_400)
}

/// WiGLE through the cache: cached answers (hits and misses) first, then `network/search`.
/// After WiGLE reports an exhausted quota no request is sent until 00:00 UTC.
#[derive(Debug)]
pub struct WigleSource {
    client: WigleClient,
    cache: Option<Arc<Cache>>,
    backoff: Backoff,
}

impl WigleSource {
    /// A source; without a cache every lookup costs quota.
    pub fn new(client: WigleClient, cache: Option<Arc<Cache>>) -> Self {
        WigleSource {
            client,
            cache,
            backoff: Backoff::default(),
        }
    }
}

#[async_trait]
impl Source for WigleSource {
    fn name(&self) -> &'static str {
        "wigle"
    }

    async fn lookup(
        &self,
        query: &Query,
        known: &mut Known,
        budget: &mut usize,
        enough: &(dyn for<'k> Fn(&'k Known) -> bool + Send + Sync),
    ) -> Result<()> {
        let user = self.client.user().to_owned();
        // Strongest first: they matter most to the estimate.
        let mut wanted: Vec<_> = query
            .wifi
            .iter()
            .filter(|r| !known.wifi.contains_key(&r.mac))
            .collect();
        wanted.sort_by_key(|r| std::cmp::Reverse(r.signal.unwrap_or(-100)));
        for r in wanted {
            if let Some(cache) = &self.cache {
                match cache.wigle(&user, r.mac, SystemTime::now())? {
                    Some(Cached::Hit(s)) => {
                        known.wifi.insert(r.mac, s);
                        continue;
                    }
                    Some(Cached::Miss) => continue,
                    None => {}
                }
            }
            if *budget == 0 || enough(known) {
                continue;
            }
            if let Some(err) = self.backoff.active("WiGLE") {
                return Err(err);
            }
            *budget -= 1;
            let answer = match self.client.locate_bssid(r.mac).await {
                Ok(a) => a,
                Err(e) => {
                    self.backoff.trip(&e, until_utc_midnight());
                    return Err(e);
                }
            };
            if let Some(cache) = &self.cache {
                cache.put_wigle(&user, r.mac, answer, SystemTime::now())?;
            }
            if let Some(s) = answer {
                known.wifi.insert(r.mac, s);
            }
        }
        Ok(())
    }
}

/// OpenCellID through the cache: cached answers first, then `cell/get`. After OpenCellID
/// reports too many requests no request is sent for an hour.
#[derive(Debug)]
pub struct OpenCellIdSource {
    client: OpenCellIdClient,
    cache: Option<Arc<Cache>>,
    backoff: Backoff,
}

impl OpenCellIdSource {
    /// A source; without a cache every lookup costs quota.
    pub fn new(client: OpenCellIdClient, cache: Option<Arc<Cache>>) -> Self {
        OpenCellIdSource {
            client,
            cache,
            backoff: Backoff::default(),
        }
    }
}

#[async_trait]
impl Source for OpenCellIdSource {
    fn name(&self) -> &'static str {
        "opencellid"
    }

    async fn lookup(
        &self,
        query: &Query,
        known: &mut Known,
        budget: &mut usize,
        enough: &(dyn for<'k> Fn(&'k Known) -> bool + Send + Sync),
    ) -> Result<()> {
        for c in &query.cells {
            if known.cells.contains_key(&c.key) {
                continue;
            }
            if let Some(cache) = &self.cache {
                match cache.cell(&c.key, SystemTime::now())? {
                    Some(Cached::Hit(s)) => {
                        known.cells.insert(c.key, s);
                        continue;
                    }
                    Some(Cached::Miss) => continue,
                    None => {}
                }
            }
            if *budget == 0 || enough(known) {
                continue;
            }
            if let Some(err) = self.backoff.active("OpenCellID") {
                return Err(err);
            }
            *budget -= 1;
            let answer = match self.client.locate_cell(&c.key).await {
                Ok(a) => a,
                Err(e) => {
                    self.backoff.trip(&e, Duration::from_secs(3_600));
                    return Err(e);
                }
            };
            if let Some(cache) = &self.cache {
                cache.put_cell(&c.key, answer, SystemTime::now())?;
            }
            if let Some(s) = answer {
                known.cells.insert(c.key, s);
            }
        }
        Ok(())
    }
}

/// Builds a [`Locator`].
#[derive(Debug, Default)]
pub struct LocatorBuilder {
    sources: Vec<Arc<dyn Source>>,
    estimator: EstimatorConfig,
    max_online_lookups: Option<usize>,
    ip: Option<Arc<IpDatabase>>,
}

impl LocatorBuilder {
    /// Adds the offline database (ask it first), and its GeoIP database for the IP fallback
    /// when it has one and none was set.
    pub fn database(mut self, db: Arc<GeoDb>) -> Self {
        if self.ip.is_none() {
            self.ip = db.ip_database().cloned();
        }
        self.sources.push(db);
        self
    }

    /// Sets the GeoIP database of the IP fallback.
    pub fn ip_database(mut self, db: Arc<IpDatabase>) -> Self {
        self.ip = Some(db);
        self
    }

    /// Adds WiGLE, with an optional cache.
    pub fn wigle(mut self, client: WigleClient, cache: Option<Arc<Cache>>) -> Self {
        self.sources.push(Arc::new(WigleSource::new(client, cache)));
        self
    }

    /// Adds OpenCellID, with an optional cache.
    pub fn opencellid(mut self, client: OpenCellIdClient, cache: Option<Arc<Cache>>) -> Self {
        self.sources
            .push(Arc::new(OpenCellIdSource::new(client, cache)));
        self
    }

    /// Adds any other source, asked after those added before it.
    pub fn source(mut self, source: Arc<dyn Source>) -> Self {
        self.sources.push(source);
        self
    }

    /// Sets the estimator's configuration. Default [`EstimatorConfig::default`].
    pub fn estimator(mut self, config: EstimatorConfig) -> Self {
        self.estimator = config;
        self
    }

    /// At most this many provider requests per located request (cache hits are free).
    /// Default 10.
    pub fn max_online_lookups(mut self, n: usize) -> Self {
        self.max_online_lookups = Some(n);
        self
    }

    /// The locator; [`Error::Config`] without any source or GeoIP database.
    pub fn build(self) -> Result<Locator> {
        if self.sources.is_empty() && self.ip.is_none() {
            return Err(Error::Config(
                "the locator has no source: add an offline database or a provider".into(),
            ));
        }
        Ok(Locator {
            sources: self.sources,
            estimator: Estimator::new(self.estimator),
            max_online_lookups: self.max_online_lookups.unwrap_or(10),
            ip: self.ip,
        })
    }
}

/// Locates requests from its sources. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Locator {
    sources: Vec<Arc<dyn Source>>,
    estimator: Estimator,
    max_online_lookups: usize,
    ip: Option<Arc<IpDatabase>>,
}

impl Locator {
    /// A builder.
    pub fn builder() -> LocatorBuilder {
        LocatorBuilder::default()
    }

    /// Locates a geolocate request: `Ok(None)` is not-found (including an empty request).
    pub async fn locate(&self, request: &GeolocateRequest) -> Result<Option<GeolocateResponse>> {
        let query = Query::from_request(request);
        Ok(self.locate_query(&query).await?.map(|e| e.to_response()))
    }

    /// Locates a validated query and returns the full estimate.
    ///
    /// A source that fails (quota exhausted, network down) is logged and skipped; its error is
    /// returned only if no source could give an answer.
    pub async fn locate_query(&self, query: &Query) -> Result<Option<Estimate>> {
        if query.is_empty() {
            return Ok(None);
        }
        let mut known = Known::default();
        let mut budget = self.max_online_lookups;
        let mut first_error = None;
        let mut best = None;
        let enough = |k: &Known| {
            self.estimator
                .locate(query, k)
                .as_ref()
                .is_some_and(Estimate::is_precise)
        };
        for source in &self.sources {
            if let Err(e) = source.lookup(query, &mut known, &mut budget, &enough).await {
                warn!(source = source.name(), error = %e, "source failed");
                first_error.get_or_insert(e);
            }
            best = self.estimator.locate(query, &known);
            if best.as_ref().is_some_and(Estimate::is_precise) {
                debug!(
                    source = source.name(),
                    "precise enough, not asking further sources"
                );
                break;
            }
        }
        match (best, first_error) {
            (Some(e), _) => Ok(Some(e)),
            (None, Some(err)) => Err(err),
            (None, None) => Ok(None),
        }
    }

    /// Like [`Locator::locate_query`], then, when that found nothing (or every source failed)
    /// and the query allows it ([`Query::ipf`]: `considerIp` / `fallbacks.ipf`, default true),
    /// the IP fallback: where `caller` is by the GeoIP database, with `fallback: "ipf"` and the
    /// database's accuracy radius. An address that is not public gets no IP answer.
    pub async fn locate_with_ip(
        &self,
        query: &Query,
        caller: Option<IpAddr>,
    ) -> Result<Option<Estimate>> {
        let found = self.locate_query(query).await;
        if let Ok(Some(e)) = &found {
            return Ok(Some(*e));
        }
        match (query.ipf, caller) {
            (true, Some(addr)) => match self.locate_ip(addr)? {
                Some(e) => Ok(Some(e)),
                None => found,
            },
            _ => found,
        }
    }

    /// Where `addr` is by the GeoIP database, as an `ipf` estimate; `None` without a
    /// database, for an address that is not public or one the database does not know.
    pub fn locate_ip(&self, addr: IpAddr) -> Result<Option<Estimate>> {
        let Some(db) = &self.ip else {
            return Ok(None);
        };
        Ok(db.lookup(addr)?.map(|hit| Estimate {
            position: hit.position,
            accuracy_m: hit.accuracy_m,
            score: 1.0,
            kind: EstimateKind::Ip,
            used: 1,
            fallback: Some(FallbackKind::Ipf),
        }))
    }

    /// True when a GeoIP database is there for the IP fallback.
    pub fn has_ip_database(&self) -> bool {
        self.ip.is_some()
    }
}
