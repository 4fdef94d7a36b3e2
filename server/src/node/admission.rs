//! Admission before authentication: a small budget of unauthenticated sockets, per server and
//! per source, apart from `max_connections`.
//!
//! A socket that has not proven who it is (a `/ws` connection before its `auth` message, an
//! Engine.IO session before a Socket.IO `CONNECT` with a valid token) holds a [`Ticket`] from an
//! [`Admission`] until it authenticates or goes away. Clients that bring credentials to the
//! upgrade (a session cookie, `Authorization: Bearer`) never take one, so a flood of anonymous
//! sockets cannot keep them out.
//!
//! When a budget is full, a newcomer on `/ws` still gets its turn: the oldest unauthenticated
//! `/ws` socket (of the same source when that source is over its own budget) is told to make
//! room and closes with 4001. A legitimate client authenticates with its first message, within
//! a round trip, so only sockets that sit idle are ever pushed out. Engine.IO sessions cannot be
//! closed from outside socketioxide before their `CONNECT`, so past their budget a new handshake
//! without credentials is refused (HTTP 503) until a slot frees — at the latest after
//! `auth_timeout`, when socketioxide drops sessions that never connected.
//!
//! Sources are IPv4 addresses and IPv6 /64 networks (one host often holds a whole /64).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

/// One budget of unauthenticated sockets.
#[derive(Debug)]
pub(crate) struct Admission {
    inner: Mutex<Inner>,
    total: usize,
    per_source: usize,
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    /// Waiting sockets, oldest first.
    pending: BTreeMap<u64, Pending>,
    /// Waiting sockets per source; no entry at zero, so at most `total` entries.
    by_source: HashMap<IpAddr, usize>,
}

#[derive(Debug)]
struct Pending {
    source: IpAddr,
    /// `Some` when the socket can be asked to make room.
    evict: Option<CancellationToken>,
}

/// Why a socket was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// The server's budget is full of sockets that cannot be pushed out.
    Server,
    /// This source's budget is full of sockets that cannot be pushed out.
    Source,
}

/// The key a source is counted under: the address, or the /64 of an IPv6 address.
pub(crate) fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
    }
}

impl Admission {
    /// A budget of `total` sockets, at most `per_source` of them from one source.
    pub(crate) fn new(total: usize, per_source: usize) -> Arc<Admission> {
        Arc::new(Admission {
            inner: Mutex::new(Inner::default()),
            total: total.max(1),
            per_source: per_source.max(1).min(total.max(1)),
        })
    }

    /// Sockets waiting now.
    pub(crate) fn pending(&self) -> usize {
        self.inner.lock().pending.len()
    }

    /// Admits a socket from `source`. An `evictable` socket can later be asked to make room
    /// (its ticket's [`Ticket::evicted`] fires) and may push out the oldest evictable one when
    /// a budget is full; a socket that is not evictable is refused when no room can be made.
    pub(crate) fn admit(self: &Arc<Self>, source: IpAddr, evictable: bool) -> Result<Ticket, Full> {
        let source = source_key(source);
        let mut inner = self.inner.lock();
        if inner.by_source.get(&source).copied().unwrap_or(0) >= self.per_source
            && !inner.evict_oldest(Some(source))
        {
            return Err(Full::Source);
        }
        if inner.pending.len() >= self.total && !inner.evict_oldest(None) {
            return Err(Full::Server);
        }
        let id = inner.next;
        inner.next += 1;
        let evicted = CancellationToken::new();
        inner.pending.insert(
            id,
            Pending {
                source,
                evict: evictable.then(|| evicted.clone()),
            },
        );
        *inner.by_source.entry(source).or_default() += 1;
        Ok(Ticket {
            admission: Arc::clone(self),
            id,
            evicted,
        })
    }

    fn release(&self, id: u64) {
        let mut inner = self.inner.lock();
        inner.remove(id);
    }
}

impl Inner {
    fn remove(&mut self, id: u64) -> Option<Pending> {
        let pending = self.pending.remove(&id)?;
        if let Some(n) = self.by_source.get_mut(&pending.source) {
            *n -= 1;
            if *n == 0 {
                self.by_source.remove(&pending.source);
            }
        }
        Some(pending)
    }

    /// Pushes out the oldest evictable socket (of `source`, when given); `false` when there is
    /// none.
    fn evict_oldest(&mut self, source: Option<IpAddr>) -> bool {
        let victim = self
            .pending
            .iter()
            .find(|(_, p)| p.evict.is_some() && source.is_none_or(|s| p.source == s))
            .map(|(id, _)| *id);
        let Some(id) = victim else {
            return false;
        };
        if let Some(Pending {
            evict: Some(signal),
            ..
        }) = self.remove(id)
        {
            signal.cancel();
        }
        true
    }
}

/// A socket's place in an [`Admission`] budget, given back when the socket authenticates
/// ([`Ticket::release`]) or is dropped.
#[derive(Debug)]
pub(crate) struct Ticket {
    admission: Arc<Admission>,
    id: u64,
    evicted: CancellationToken,
}

impl Ticket {
    /// Fires when the socket was pushed out to make room for a newer one.
    pub(crate) fn evicted(&self) -> &CancellationToken {
        &self.evicted
    }

    /// Gives the place back (the socket authenticated). Calling it again does nothing.
    pub(crate) fn release(&self) {
        self.admission.release(self.id);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_full_budget_pushes_out_its_oldest_evictable_socket() {
        let admission = Admission::new(3, 3);
        let a = admission.admit(ip("192.0.2.1"), true).unwrap();
        let b = admission.admit(ip("192.0.2.2"), true).unwrap();
        let c = admission.admit(ip("192.0.2.3"), true).unwrap();
        let d = admission.admit(ip("192.0.2.4"), true).unwrap();
        assert!(a.evicted().is_cancelled(), "the oldest made room");
        assert!(!b.evicted().is_cancelled() && !c.evicted().is_cancelled());
        assert_eq!(admission.pending(), 3);
        drop(a);
        assert_eq!(
            admission.pending(),
            3,
            "a pushed-out ticket is not counted twice"
        );
        d.release();
        d.release();
        assert_eq!(admission.pending(), 2);
        drop((b, c, d));
        assert_eq!(admission.pending(), 0);
        assert!(admission.inner.lock().by_source.is_empty());
    }

    #[test]
    fn a_source_over_its_budget_pushes_out_its_own_oldest() {
        let admission = Admission::new(10, 2);
        let other = admission.admit(ip("198.51.100.7"), true).unwrap();
        let a = admission.admit(ip("192.0.2.1"), true).unwrap();
        let b = admission.admit(ip("192.0.2.1"), true).unwrap();
        let c = admission.admit(ip("192.0.2.1"), true).unwrap();
        assert!(a.evicted().is_cancelled());
        assert!(!other.evicted().is_cancelled() && !b.evicted().is_cancelled());
        assert!(!c.evicted().is_cancelled());
    }

    #[test]
    fn sockets_that_cannot_be_pushed_out_are_refused_when_full() {
        let admission = Admission::new(2, 1);
        let _a = admission.admit(ip("192.0.2.1"), false).unwrap();
        assert_eq!(
            admission.admit(ip("192.0.2.1"), false).unwrap_err(),
            Full::Source
        );
        let _b = admission.admit(ip("192.0.2.2"), false).unwrap();
        assert_eq!(
            admission.admit(ip("192.0.2.3"), false).unwrap_err(),
            Full::Server
        );
    }

    #[test]
    fn ipv6_sources_count_by_their_64() {
        assert_eq!(
            source_key(ip("2001:db8:1:2:aaaa::1")),
            source_key(ip("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            source_key(ip("2001:db8:1:2::1")),
            source_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(source_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
    }
}
