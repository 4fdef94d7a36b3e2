//! The IP fallback: where an address is, from a GeoIP city database in MaxMind's MMDB format
//! (GeoLite2-City, DB-IP City Lite, or any database with GeoIP2-City's `location` record).
//!
//! Read with the [`maxminddb`] crate, the reader MaxMind's own documentation lists for Rust.
//! [`GeoDb`](crate::GeoDb) keeps an imported database as `ip-city.mmdb` in its directory and
//! [`Locator::locate_with_ip`](crate::Locator::locate_with_ip) answers from it, with
//! `fallback: "ipf"`, when nothing better is known (Ichnaea's rule).
//!
//! - The accuracy is the database's `location.accuracy_radius` (kilometres, MaxMind's 67 %
//!   radius) in metres; a database without one (DB-IP Lite) gets 25 km, BeaconDB's GeoIP
//!   accuracy.
//! - Addresses that are not globally routable (private, loopback, link-local, CGNAT,
//!   documentation ranges excepted — see [`is_public`]) never get an answer: their position
//!   says nothing about the caller.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::geo::LatLon;

#[cfg(feature = "mmdb-writer")]
pub mod writer;

/// The file name of the imported database inside the offline database directory.
pub const IP_DATABASE_FILE: &str = "ip-city.mmdb";

/// Accuracy given when the database has no `accuracy_radius`, metres.
pub const DEFAULT_IP_ACCURACY_M: f64 = 25_000.0;

/// The marker that starts an MMDB file's metadata section, near its end.
const METADATA_MARKER: &[u8] = b"\xAB\xCD\xEFMaxMind.com";

/// Where an address is, by the database.
#[derive(Debug, Clone, PartialEq)]
pub struct IpLocation {
    /// The position of the address's network.
    pub position: LatLon,
    /// Radius, metres.
    pub accuracy_m: f64,
    /// ISO country code, when the database has one.
    pub country: Option<String>,
}

/// An opened GeoIP city database.
pub struct IpDatabase {
    reader: maxminddb::Reader<Vec<u8>>,
    path: PathBuf,
}

impl std::fmt::Debug for IpDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpDatabase")
            .field("path", &self.path)
            .field("type", &self.reader.metadata().database_type)
            .finish()
    }
}

/// True when `bytes` (a whole file) looks like an MMDB database: its metadata marker is in the
/// last 128 KiB, where the format puts it.
pub fn is_mmdb(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(128 * 1024)..];
    tail.windows(METADATA_MARKER.len())
        .any(|w| w == METADATA_MARKER)
}

/// True when the file at `path` looks like an MMDB database (reads only its tail).
pub fn is_mmdb_file(path: &Path) -> Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    let len = f.metadata().map_err(|e| Error::io("stat", path, e))?.len();
    let start = len.saturating_sub(128 * 1024);
    f.seek(SeekFrom::Start(start))
        .map_err(|e| Error::io("seek", path, e))?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail)
        .map_err(|e| Error::io("read", path, e))?;
    Ok(is_mmdb(&tail))
}

/// True for an address whose position can say where a caller is: not private, loopback,
/// link-local, unspecified, broadcast, multicast, shared (CGNAT, 100.64/10), benchmarking
/// (198.18/15), reserved (240/4), unique-local (fc00::/7) or site-local. The documentation
/// ranges (192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32) count as public, so that
/// examples and tests can use them. IPv4-mapped IPv6 addresses are judged as IPv4.
pub fn is_public(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => public_v4(v4),
            None => public_v6(v6),
        },
    }
}

fn public_v4(a: Ipv4Addr) -> bool {
    let o = a.octets();
    !(a.is_private()
        || a.is_loopback()
        || a.is_link_local()
        || a.is_unspecified()
        || a.is_broadcast()
        || a.is_multicast()
        || o[0] == 0
        || (o[0] == 100 && (64..128).contains(&o[1]))
        || (o[0] == 198 && (18..20).contains(&o[1]))
        || o[0] >= 240
        || (o[0] == 192 && o[1] == 0 && o[2] == 0))
}

fn public_v6(a: Ipv6Addr) -> bool {
    let s = a.segments();
    !(a.is_loopback()
        || a.is_unspecified()
        || a.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00
        || (s[0] & 0xffc0) == 0xfe80
        || (s[0] & 0xffc0) == 0xfec0
        // NAT64 and the 6to4/Teredo prefixes map other addresses: judge only native ones.
        || (s[0] == 0x64 && s[1] == 0xff9b)
        || s[0] == 0x2002
        || (s[0] == 0x2001 && s[1] == 0))
}

impl IpDatabase {
    /// Opens a database file, checking that it is an MMDB city database.
    pub fn open(path: impl AsRef<Path>) -> Result<IpDatabase> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
        Self::from_bytes(bytes, path)
    }

    /// A database from its bytes; `path` is for messages.
    pub fn from_bytes(bytes: Vec<u8>, path: &Path) -> Result<IpDatabase> {
        let invalid = |why: String| Error::InvalidInput(format!("{}: {why}", path.display()));
        if !is_mmdb(&bytes) {
            return Err(invalid("not a MaxMind DB (MMDB) file".into()));
        }
        let reader = maxminddb::Reader::from_source(bytes)
            .map_err(|e| invalid(format!("not a readable MaxMind DB: {e}")))?;
        let kind = reader.metadata().database_type.to_ascii_lowercase();
        if !kind.contains("city") {
            return Err(invalid(format!(
                "a {:?} database has no positions; import a city database (GeoLite2-City, DB-IP City Lite)",
                reader.metadata().database_type
            )));
        }
        Ok(IpDatabase {
            reader,
            path: path.to_owned(),
        })
    }

    /// The database's type as its metadata says (`GeoLite2-City`, `DBIP-City-Lite`, ...).
    pub fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// When the database was built, seconds since the epoch.
    pub fn build_epoch(&self) -> u64 {
        self.reader.metadata().build_epoch
    }

    /// Where `addr` is. `None` for an address that is not public ([`is_public`]), one the
    /// database does not know, or one whose record has no coordinates.
    pub fn lookup(&self, addr: IpAddr) -> Result<Option<IpLocation>> {
        if !is_public(addr) {
            return Ok(None);
        }
        let corrupt = |e: maxminddb::MaxMindDbError| Error::CorruptDatabase {
            path: self.path.clone(),
            reason: e.to_string(),
        };
        let found = self.reader.lookup(addr).map_err(corrupt)?;
        let Some(city) = found
            .decode::<maxminddb::geoip2::City<'_>>()
            .map_err(corrupt)?
        else {
            return Ok(None);
        };
        let (Some(lat), Some(lon)) = (city.location.latitude, city.location.longitude) else {
            return Ok(None);
        };
        let Some(position) = LatLon::new(lat, lon) else {
            return Ok(None);
        };
        let accuracy_m = city
            .location
            .accuracy_radius
            .filter(|r| *r > 0)
            .map_or(DEFAULT_IP_ACCURACY_M, |km| f64::from(km) * 1000.0);
        Ok(Some(IpLocation {
            position,
            accuracy_m,
            country: city.country.iso_code.map(str::to_owned),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_and_not() {
        for a in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(a.parse().unwrap()), "{a}");
        }
        for a in [
            "203.0.113.7",
            "8.8.8.8",
            "2001:db8::1",
            "2a00:1450::1",
            "::ffff:8.8.4.4",
        ] {
            assert!(is_public(a.parse().unwrap()), "{a}");
        }
    }

    #[test]
    fn not_an_mmdb_is_refused() {
        let err = IpDatabase::from_bytes(b"radio,mcc\n".to_vec(), Path::new("x.csv")).unwrap_err();
        assert!(err.to_string().contains("not a MaxMind DB"), "{err}");
    }
}
