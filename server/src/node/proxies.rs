//! Who the caller is, behind reverse proxies: [`TrustedProxies`] turns a socket peer and its
//! `X-Forwarded-For` header into the client's address, for the IP fallback of geolocation and
//! for the per-source budget of unauthenticated sockets.
//!
//! The peer is the caller unless it is one of
//! [`GeoConfig::trusted_proxies`](crate::config::GeoConfig::trusted_proxies); then the rightmost `X-Forwarded-For` entry that is not a trusted
//! proxy itself is (entries to its left are whatever the client claimed).

use std::net::IpAddr;

use axum::http::HeaderMap;

use crate::error::{Error, Result};

/// Where a request comes from, for the per-source budget: the socket peer, or — when the peer
/// is one of the trusted reverse proxies (`vigil serve --trusted-proxy`,
/// [`crate::GeoConfig::trusted_proxies`]) — the rightmost `X-Forwarded-For` entry that is not a
/// trusted proxy itself, the same rule as the IP fallback of `/v1/geolocate`. Without trusted
/// proxies every client behind a proxy would share the proxy's budget; with them a client
/// cannot pick its own source, since entries left of what the proxy appended are ignored. The
/// unspecified address when the server runs without connect info (the router driven in
/// process).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub IpAddr);

impl Peer {
    /// The source of a request, from its extensions and headers.
    pub(crate) fn of(
        proxies: &TrustedProxies,
        extensions: &axum::http::Extensions,
        headers: &axum::http::HeaderMap,
    ) -> Peer {
        let socket = extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        Peer(
            proxies
                .caller_ip(socket, headers)
                .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
        )
    }
}

/// The reverse proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    blocks: Vec<Cidr>,
}

impl TrustedProxies {
    /// Parses addresses and CIDR blocks (`10.0.0.0/8`, `::1`); a bad one is a config error.
    pub fn parse(proxies: &[String]) -> Result<TrustedProxies> {
        let blocks = proxies
            .iter()
            .map(|p| {
                Cidr::parse(p).ok_or_else(|| {
                    Error::Config(format!(
                        "trusted proxy {p:?} is not an address or a CIDR block"
                    ))
                })
            })
            .collect::<Result<_>>()?;
        Ok(TrustedProxies { blocks })
    }

    /// The caller's address: the socket peer, or — when the peer is a
    /// trusted proxy — the rightmost `X-Forwarded-For` entry that is not a trusted proxy
    /// itself (entries to its left are whatever the client claimed). `None` without a peer
    /// address.
    pub(crate) fn caller_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?;
        let trusted = |ip: IpAddr| self.blocks.iter().any(|c| c.contains(ip));
        if !trusted(peer) {
            return Some(peer);
        }
        let hops: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|h| h.trim().parse::<IpAddr>().ok())
            .collect::<Option<Vec<_>>>()
            .unwrap_or_default();
        hops.into_iter()
            .rev()
            .find(|ip| !trusted(*ip))
            .or(Some(peer))
    }
}

/// An address block: `addr/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.parse().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(Cidr { addr, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let bits = |a: IpAddr| -> (u128, u32) {
            match a {
                IpAddr::V4(v) => (u128::from(u32::from(v)) << 96, 32),
                IpAddr::V6(v) => (u128::from(v), 128),
            }
        };
        let ((net, width), (x, w)) = (bits(self.addr), bits(ip));
        if width != w {
            return false;
        }
        let mask = if self.prefix == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(self.prefix))
        };
        net & mask == x & mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value.parse().unwrap());
        headers
    }

    #[test]
    fn only_a_trusted_peer_is_looked_through() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8".into(), "::1".into()]).unwrap();
        let client: IpAddr = "198.51.100.7".parse().unwrap();
        let headers = forwarded("203.0.113.9, 198.51.100.7, 10.1.2.3");
        // An untrusted peer is the caller, whatever it claims.
        assert_eq!(proxies.caller_ip(Some(client), &headers), Some(client));
        // A trusted peer: the rightmost entry that is not a trusted proxy.
        let proxy: IpAddr = "10.9.9.9".parse().unwrap();
        assert_eq!(proxies.caller_ip(Some(proxy), &headers), Some(client));
        // IPv4-mapped IPv6 peers match IPv4 blocks.
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(proxies.caller_ip(Some(mapped), &headers), Some(client));
        // A garbled header: the proxy itself.
        assert_eq!(
            proxies.caller_ip(Some(proxy), &forwarded("not-an-address")),
            Some(proxy)
        );
        assert_eq!(proxies.caller_ip(None, &headers), None);
    }

    #[test]
    fn bad_blocks_are_config_errors() {
        for bad in ["10.0.0.0/33", "::1/129", "example.org", ""] {
            assert!(TrustedProxies::parse(&[bad.into()]).is_err(), "{bad}");
        }
        assert!(TrustedProxies::parse(&["0.0.0.0/0".into()]).is_ok());
    }
}
