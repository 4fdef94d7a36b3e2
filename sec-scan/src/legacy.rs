//! Hand-built TLS ClientHello probes, for what rustls cannot speak.
//!
//! rustls implements TLS 1.2 and 1.3 only, so it cannot tell whether a server still *accepts*
//! TLS 1.0 or 1.1. These probes send one ClientHello offering exactly one legacy version and
//! read the first record back: a ServerHello with that version means the server accepts it, an
//! alert or a higher version means it does not. No handshake is completed (the same two-message
//! trick testssl.sh uses). SSLv3 and weak cipher-suite enumeration are not probed yet.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::portscan::random_u64;

/// A protocol version in the ClientHello's `client_version` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyVersion {
    /// TLS 1.0 (0x0301).
    Tls10,
    /// TLS 1.1 (0x0302).
    Tls11,
}

impl LegacyVersion {
    /// Wire value.
    pub fn wire(self) -> u16 {
        match self {
            LegacyVersion::Tls10 => 0x0301,
            LegacyVersion::Tls11 => 0x0302,
        }
    }

    /// Display name, as in [`Detail::Tls::offered`](crate::finding::Detail::Tls).
    pub fn name(self) -> &'static str {
        match self {
            LegacyVersion::Tls10 => "TLSv1.0",
            LegacyVersion::Tls11 => "TLSv1.1",
        }
    }
}

/// Cipher suites a TLS 1.0/1.1 server would pick from: ECDHE and RSA key exchange with CBC,
/// plus 3DES and RC4, so that an old server finds something it knows.
const LEGACY_SUITES: [u16; 12] = [
    0xc014, 0xc013, 0xc00a, 0xc009, 0x0039, 0x0033, 0x0035, 0x002f, 0x000a, 0x0005, 0x0004, 0x00ff,
];

/// A ClientHello offering only `version`, with SNI when `server_name` is a DNS name.
pub fn client_hello(version: u16, server_name: Option<&str>) -> Vec<u8> {
    let mut body = Vec::with_capacity(200);
    body.extend_from_slice(&version.to_be_bytes());
    for _ in 0..4 {
        body.extend_from_slice(&random_u64().to_be_bytes());
    }
    body.push(0); // no session id
    let suites: Vec<u8> = LEGACY_SUITES.iter().flat_map(|s| s.to_be_bytes()).collect();
    body.extend_from_slice(&(suites.len() as u16).to_be_bytes());
    body.extend_from_slice(&suites);
    body.extend_from_slice(&[1, 0]); // compression: null only
    let mut ext = Vec::new();
    if let Some(name) = server_name.filter(|n| n.parse::<std::net::IpAddr>().is_err()) {
        let n = name.as_bytes();
        let mut sni = Vec::new();
        sni.extend_from_slice(&((n.len() + 3) as u16).to_be_bytes());
        sni.push(0);
        sni.extend_from_slice(&(n.len() as u16).to_be_bytes());
        sni.extend_from_slice(n);
        push_ext(&mut ext, 0x0000, &sni);
    }
    push_ext(
        &mut ext,
        0x000a,
        &[0, 6, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18],
    ); // groups
    push_ext(&mut ext, 0x000b, &[1, 0]); // point formats: uncompressed
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![1u8];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    record.extend_from_slice(&hs);
    record
}

fn push_ext(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
}

/// What the first record of a server's answer says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelloReply {
    /// A ServerHello choosing this version.
    ServerHello(u16),
    /// A TLS alert (the offer was refused).
    Alert,
    /// Something that is not TLS, or nothing.
    NotTls,
}

/// Parses the first bytes a server sent after a ClientHello.
pub fn parse_reply(bytes: &[u8]) -> HelloReply {
    match bytes {
        [0x15, 0x03, ..] => HelloReply::Alert,
        [0x16, 0x03, _, _, _, 0x02, _, _, _, hi, lo, ..] => {
            HelloReply::ServerHello(u16::from_be_bytes([*hi, *lo]))
        }
        _ => HelloReply::NotTls,
    }
}

/// Whether the server at `addr` accepts `version`. A connection or read failure counts as
/// "not accepted"; `timeout` bounds the whole probe.
pub async fn accepts(
    addr: SocketAddr,
    server_name: Option<&str>,
    version: LegacyVersion,
    timeout: Duration,
) -> bool {
    let probe = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(&client_hello(version.wire(), server_name))
            .await
            .ok()?;
        let mut buf = [0u8; 16];
        let mut got = 0;
        while got < buf.len() {
            let n = s.read(&mut buf[got..]).await.ok()?;
            if n == 0 {
                break;
            }
            got += n;
        }
        Some(parse_reply(&buf[..got]))
    };
    matches!(
        tokio::time::timeout(timeout, probe).await,
        Ok(Some(HelloReply::ServerHello(v))) if v == version.wire()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_hello_is_well_formed() {
        let hello = client_hello(0x0301, Some("example.com"));
        assert_eq!(&hello[..3], &[0x16, 0x03, 0x01]);
        let record_len = u16::from_be_bytes([hello[3], hello[4]]) as usize;
        assert_eq!(record_len, hello.len() - 5);
        assert_eq!(hello[5], 1, "ClientHello");
        let hs_len = u32::from_be_bytes([0, hello[6], hello[7], hello[8]]) as usize;
        assert_eq!(hs_len, record_len - 4);
        assert_eq!(&hello[9..11], &[0x03, 0x01]);
        assert!(hello.windows(11).any(|w| w == b"example.com"));
        // No SNI for an address.
        let bare = client_hello(0x0302, Some("127.0.0.1"));
        assert!(!bare.windows(9).any(|w| w == b"127.0.0.1"));
    }

    #[test]
    fn parses_replies() {
        assert_eq!(
            parse_reply(&[0x15, 0x03, 0x03, 0, 2, 2, 70]),
            HelloReply::Alert
        );
        assert_eq!(
            parse_reply(&[0x16, 0x03, 0x01, 0, 50, 0x02, 0, 0, 46, 0x03, 0x01]),
            HelloReply::ServerHello(0x0301)
        );
        assert_eq!(parse_reply(b"HTTP/1.1 400"), HelloReply::NotTls);
        assert_eq!(parse_reply(&[]), HelloReply::NotTls);
    }
}
