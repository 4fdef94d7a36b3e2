//! Banner grabbing and light service identification.
//!
//! For each open port: connect and **wait for what the service says first** (SSH, FTP, SMTP,
//! POP3, IMAP, Redis errors, MySQL, VNC, telnet negotiation). If it says nothing, try on fresh
//! connections, in order: a minimal `GET / HTTP/1.0`, a TLS ClientHello, then a bare CRLF. Port
//! 445 ([`BannerConfig::smb_ports`]) gets an SMBv1 negotiate request first (servers that do not
//! speak SMBv1 just close).
//! Every read is capped in bytes ([`BannerConfig::max_bytes`]) and time.
//!
//! An SSH server also gets our identification line, and its `SSH_MSG_KEXINIT` is parsed, so its
//! key-exchange, host-key, cipher and MAC offers become an [`Detail::Ssh`] finding that
//! signatures (weak key exchange) can match field by field.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{Error, Result};
use crate::finding::{Detail, Finding, printable};
use crate::legacy;
use crate::scope::ScanHost;

/// Banner-grab settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BannerConfig {
    /// Connect timeout. Default 2 s.
    pub connect_timeout: Duration,
    /// How long to wait for a service to speak first. Default 3 s (nmap waits up to 5 s).
    pub banner_wait: Duration,
    /// How long to wait for an answer to each probe. Default 2 s.
    pub probe_wait: Duration,
    /// Most bytes kept from any answer. Default 4 096 (SSH key-exchange offers are read up to
    /// 32 KiB, as the protocol allows).
    pub max_bytes: usize,
    /// Ports that get the SMBv1 negotiate probe before anything else. Default `[445]`.
    pub smb_ports: Vec<u16>,
}

impl Default for BannerConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
            banner_wait: Duration::from_secs(3),
            probe_wait: Duration::from_secs(2),
            max_bytes: 4096,
            smb_ports: vec![445],
        }
    }
}

/// Grabs banners.
#[derive(Debug, Clone, Default)]
pub struct BannerGrabber {
    config: BannerConfig,
}

/// After the first bytes arrive, keep reading while more come within this gap.
const IDLE_GAP: Duration = Duration::from_millis(150);
/// SSH packets are at most 35 000 bytes (RFC 4253 §6.1).
const SSH_MAX_PACKET: usize = 35_000;

impl BannerGrabber {
    /// A grabber with `config`.
    pub fn new(config: BannerConfig) -> Self {
        Self { config }
    }

    /// Grabs the banner of `host:port` (a host from a [`ScanPlan`](crate::ScanPlan), so it is
    /// in scope) and returns the findings: a [`Detail::Banner`] when anything answered, plus
    /// [`Detail::Ssh`] or [`Detail::Smb`] when those protocols were recognised.
    pub async fn grab(&self, host: &ScanHost, port: u16) -> Result<Vec<Finding>> {
        let addr = SocketAddr::new(host.addr, port);
        let mut out = Vec::new();
        let make = |detail| Finding {
            host: host.display_name(),
            addr: host.addr,
            port: Some(port),
            detail,
        };
        if self.config.smb_ports.contains(&port)
            && let Some(dialect) = self.smb1(addr).await
        {
            out.push(make(Detail::Smb { dialect }));
            out.push(make(banner(Some("smb"), None, None, b"SMB")));
            return Ok(out);
        }
        let mut stream = self.connect(addr).await?;
        let first = read_some(&mut stream, self.config.banner_wait, self.config.max_bytes).await;
        if !first.is_empty() {
            if first.windows(4).any(|w| w == b"SSH-")
                && let Some(ssh) = self.ssh(&mut stream, first.clone()).await
            {
                out.push(make(ssh));
            }
            let (service, product, version) = identify(&first, port);
            // For SSH the banner is the identification line; the binary key exchange that
            // follows it is reported as the ssh finding.
            let shown = match (service, find_ident_end(&first)) {
                (Some("ssh"), Some((start, end, _))) => &first[start..end],
                _ => &first[..],
            };
            out.push(make(banner(service, product, version, shown)));
            return Ok(out);
        }
        drop(stream);
        let name = host.name.as_deref().unwrap_or("");
        let http = format!(
            "GET / HTTP/1.0\r\nHost: {}\r\nUser-Agent: vigil\r\nAccept: */*\r\n\r\n",
            if name.is_empty() {
                host.addr.to_string()
            } else {
                name.to_owned()
            }
        );
        let probes: [Vec<u8>; 3] = [
            http.into_bytes(),
            legacy::client_hello(0x0303, host.name.as_deref()),
            b"\r\n\r\n".to_vec(),
        ];
        for probe in probes {
            let Ok(mut s) = self.connect(addr).await else {
                break;
            };
            if s.write_all(&probe).await.is_err() {
                continue;
            }
            let answer = read_some(&mut s, self.config.probe_wait, self.config.max_bytes).await;
            if !answer.is_empty() {
                let (service, product, version) = identify(&answer, port);
                out.push(make(banner(service, product, version, &answer)));
                break;
            }
        }
        Ok(out)
    }

    async fn connect(&self, addr: SocketAddr) -> Result<TcpStream> {
        match tokio::time::timeout(self.config.connect_timeout, TcpStream::connect(addr)).await {
            Err(_) => Err(Error::Timeout {
                what: "connect",
                target: addr.to_string(),
                after: self.config.connect_timeout,
            }),
            Ok(Err(source)) => Err(Error::Io {
                target: addr.to_string(),
                source,
            }),
            Ok(Ok(s)) => Ok(s),
        }
    }

    /// Sends our identification and parses the server's KEXINIT.
    async fn ssh(&self, stream: &mut TcpStream, mut buf: Vec<u8>) -> Option<Detail> {
        let line_end = loop {
            if let Some(p) = find_ident_end(&buf) {
                break p;
            }
            if buf.len() > 8192 {
                return None;
            }
            let more = read_some(stream, self.config.probe_wait, 8192).await;
            if more.is_empty() {
                return None;
            }
            buf.extend_from_slice(&more);
        };
        let (ident_start, ident_end, rest_at) = line_end;
        let version = String::from_utf8_lossy(&buf[ident_start..ident_end]).into_owned();
        stream.write_all(b"SSH-2.0-vigil_scan\r\n").await.ok()?;
        let mut packet = buf[rest_at..].to_vec();
        let deadline = tokio::time::Instant::now() + self.config.probe_wait;
        loop {
            if packet.len() >= 5 {
                let len = u32::from_be_bytes([packet[0], packet[1], packet[2], packet[3]]) as usize;
                if len > SSH_MAX_PACKET {
                    break;
                }
                if packet.len() >= 4 + len {
                    break;
                }
            }
            let mut chunk = vec![0u8; 4096];
            let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
                .await
                .ok()?
                .ok()?;
            if n == 0 || packet.len() > SSH_MAX_PACKET {
                break;
            }
            packet.extend_from_slice(&chunk[..n]);
        }
        let lists = parse_kexinit(&packet).unwrap_or_default();
        let get = |i: usize| lists.get(i).cloned().unwrap_or_default();
        Some(Detail::Ssh {
            version,
            kex: get(0),
            host_key: get(1),
            cipher: get(3),
            mac: get(5),
        })
    }

    async fn smb1(&self, addr: SocketAddr) -> Option<String> {
        let mut s = self.connect(addr).await.ok()?;
        s.write_all(&smb1_negotiate()).await.ok()?;
        let reply = read_some(&mut s, self.config.probe_wait, 512).await;
        parse_smb1_reply(&reply)
    }
}

fn banner(
    service: Option<&str>,
    product: Option<String>,
    version: Option<String>,
    raw: &[u8],
) -> Detail {
    Detail::Banner {
        service: service.map(str::to_owned),
        product,
        version,
        text: printable(&raw[..raw.len().min(1024)]),
    }
}

/// Reads until `wait` passes with nothing, then keeps reading while data comes within a short
/// gap, up to `cap` bytes.
async fn read_some(stream: &mut TcpStream, wait: Duration, cap: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 2048];
    let mut limit = wait;
    while buf.len() < cap {
        match tokio::time::timeout(limit, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => {
                buf.extend_from_slice(&chunk[..n.min(cap - buf.len())]);
                limit = IDLE_GAP;
            }
            _ => break,
        }
    }
    buf
}

/// Finds the `SSH-` identification line: (start, end without CR LF, first byte after it).
fn find_ident_end(buf: &[u8]) -> Option<(usize, usize, usize)> {
    let mut start = 0;
    while start < buf.len() {
        let nl = buf[start..].iter().position(|&b| b == b'\n')? + start;
        if buf[start..].starts_with(b"SSH-") {
            let end = if nl > start && buf[nl - 1] == b'\r' {
                nl - 1
            } else {
                nl
            };
            return Some((start, end, nl + 1));
        }
        start = nl + 1;
    }
    None
}

/// Parses an SSH binary packet holding `SSH_MSG_KEXINIT` into its ten name-lists.
pub(crate) fn parse_kexinit(packet: &[u8]) -> Option<Vec<Vec<String>>> {
    let len = u32::from_be_bytes(packet.get(0..4)?.try_into().ok()?) as usize;
    let padding = *packet.get(4)? as usize;
    let payload = packet
        .get(5..4 + len)?
        .get(..len.checked_sub(padding + 1)?)?;
    if *payload.first()? != 20 {
        return None;
    }
    let mut at = 1 + 16; // message number, cookie
    let mut lists = Vec::with_capacity(10);
    for _ in 0..10 {
        let n = u32::from_be_bytes(payload.get(at..at + 4)?.try_into().ok()?) as usize;
        at += 4;
        let raw = payload.get(at..at + n)?;
        at += n;
        let text = std::str::from_utf8(raw).ok()?;
        lists.push(
            text.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        );
    }
    Some(lists)
}

/// An SMB1 NEGOTIATE offering only the `NT LM 0.12` dialect.
fn smb1_negotiate() -> Vec<u8> {
    let dialects = b"\x02NT LM 0.12\x00";
    let mut smb = Vec::new();
    smb.extend_from_slice(b"\xffSMB");
    smb.push(0x72); // negotiate
    smb.extend_from_slice(&[0, 0, 0, 0]); // status
    smb.push(0x18); // flags
    smb.extend_from_slice(&[0x01, 0xc8]); // flags2: long names, unicode, NT status
    smb.extend_from_slice(&[0; 12]); // pid high, signature, reserved
    smb.extend_from_slice(&[0xff, 0xff, 0xfe, 0xff, 0, 0, 0, 0]); // tid, pid, uid, mid
    smb.push(0); // word count
    smb.extend_from_slice(&(dialects.len() as u16).to_le_bytes());
    smb.extend_from_slice(dialects);
    let mut out = vec![0u8];
    out.extend_from_slice(&(smb.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(&smb);
    out
}

/// `Some("NT LM 0.12")` when the reply is an SMB1 NEGOTIATE response choosing our dialect.
fn parse_smb1_reply(reply: &[u8]) -> Option<String> {
    let smb = reply.get(4..)?;
    if !smb.starts_with(b"\xffSMB") || *smb.get(4)? != 0x72 || smb.get(5..9)? != [0, 0, 0, 0] {
        return None;
    }
    let word_count = *smb.get(32)?;
    let index = u16::from_le_bytes([*smb.get(33)?, *smb.get(34)?]);
    (word_count > 0 && index == 0).then(|| "NT LM 0.12".to_owned())
}

/// Service, product and version from what a service said.
pub(crate) fn identify(
    data: &[u8],
    port: u16,
) -> (Option<&'static str>, Option<String>, Option<String>) {
    let text = String::from_utf8_lossy(&data[..data.len().min(512)]);
    let lower = text.to_ascii_lowercase();
    let split_product = |s: &str, sep: char| -> (Option<String>, Option<String>) {
        let token = s.split_whitespace().next().unwrap_or("");
        match token.split_once(sep) {
            Some((p, v)) if !p.is_empty() => (Some(p.to_owned()), Some(v.to_owned())),
            _ if !token.is_empty() => (Some(token.to_owned()), None),
            _ => (None, None),
        }
    };
    if let Some(p) = text.find("SSH-") {
        let line = text[p..].lines().next().unwrap_or("");
        let software = line.splitn(3, '-').nth(2).unwrap_or("");
        let (product, version) = split_product(software, '_');
        return (Some("ssh"), product, version);
    }
    if text.starts_with("HTTP/") {
        let server = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("Server:")
                    .or_else(|| l.strip_prefix("server:"))
            })
            .map(str::trim);
        let (product, version) = server.map_or((None, None), |s| split_product(s, '/'));
        return (Some("http"), product, version);
    }
    match data {
        [0x16, 0x03, ..] | [0x15, 0x03, ..] => return (Some("tls"), None, None),
        [0xff, 0xfb..=0xfe, ..] => return (Some("telnet"), None, None),
        [_, _, _, 0, 0x0a, rest @ ..] => {
            let end = rest.iter().position(|&b| b == 0).unwrap_or(0);
            if end > 0 {
                let v = String::from_utf8_lossy(&rest[..end]).into_owned();
                let product = if v.to_ascii_lowercase().contains("mariadb") {
                    "MariaDB"
                } else {
                    "MySQL"
                };
                return (Some("mysql"), Some(product.into()), Some(v));
            }
        }
        _ => {}
    }
    if let Some(version) = text.strip_prefix("RFB ") {
        return (Some("vnc"), None, Some(version.trim().to_owned()));
    }
    if text.starts_with("+OK") {
        return (Some("pop3"), None, None);
    }
    if text.starts_with("* OK") {
        return (Some("imap"), None, None);
    }
    if text.starts_with("-ERR")
        || text.starts_with("-NOAUTH")
        || text.starts_with("+PONG")
        || text.starts_with("-DENIED")
    {
        return (Some("redis"), None, None);
    }
    if text.starts_with("220") || text.starts_with("421") {
        let service =
            if lower.contains("smtp") || lower.contains("mail") || matches!(port, 25 | 465 | 587) {
                "smtp"
            } else {
                "ftp"
            };
        let product = [
            "vsFTPd",
            "ProFTPD",
            "Pure-FTPd",
            "FileZilla",
            "Postfix",
            "Exim",
            "Sendmail",
        ]
        .into_iter()
        .find(|p| lower.contains(&p.to_ascii_lowercase()))
        .map(str::to_owned);
        let version = product.as_ref().and_then(|p| {
            let at = lower.find(&p.to_ascii_lowercase())? + p.len();
            let v: String = text
                .get(at..)
                .unwrap_or("")
                .trim_start_matches([' ', '/'])
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '.')
                .collect();
            (!v.is_empty() && v.starts_with(|c: char| c.is_ascii_digit())).then_some(v)
        });
        return (Some(service), product, version);
    }
    (None, None, None)
}

/// The usual service on a port, for open ports whose banner was not grabbed.
pub fn service_by_port(port: u16) -> Option<&'static str> {
    Some(match port {
        21 => "ftp",
        22 => "ssh",
        23 => "telnet",
        25 | 465 | 587 => "smtp",
        53 => "domain",
        80 | 8080 | 8000 | 8008 => "http",
        110 => "pop3",
        139 | 445 => "smb",
        143 => "imap",
        443 | 8443 => "https",
        993 => "imaps",
        995 => "pop3s",
        1433 => "mssql",
        3306 => "mysql",
        3389 => "rdp",
        5432 => "postgresql",
        5900 => "vnc",
        6379 => "redis",
        9200 => "elasticsearch",
        27017 => "mongodb",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds an SSH KEXINIT packet offering `kex` (tests and fixtures share this shape).
    fn kexinit(kex: &str) -> Vec<u8> {
        let mut payload = vec![20u8];
        payload.extend_from_slice(&[7; 16]);
        for list in [
            kex,
            "ssh-rsa",
            "aes128-ctr,3des-cbc",
            "aes128-ctr,3des-cbc",
            "hmac-sha1",
            "hmac-sha1",
            "none",
            "none",
            "",
            "",
        ] {
            payload.extend_from_slice(&(list.len() as u32).to_be_bytes());
            payload.extend_from_slice(list.as_bytes());
        }
        payload.extend_from_slice(&[0, 0, 0, 0, 0]);
        let padding = 8 - (payload.len() + 5) % 8 + 4;
        let mut p = Vec::new();
        p.extend_from_slice(&((payload.len() + padding + 1) as u32).to_be_bytes());
        p.push(padding as u8);
        p.extend_from_slice(&payload);
        p.extend(std::iter::repeat_n(0u8, padding));
        p
    }

    #[test]
    fn parses_a_kexinit() {
        let lists =
            parse_kexinit(&kexinit("curve25519-sha256,diffie-hellman-group1-sha1")).unwrap();
        assert_eq!(
            lists[0],
            ["curve25519-sha256", "diffie-hellman-group1-sha1"]
        );
        assert_eq!(lists[2], ["aes128-ctr", "3des-cbc"]);
        assert!(parse_kexinit(&[0, 0, 0, 1]).is_none());
        assert!(parse_kexinit(&[]).is_none());
    }

    #[test]
    fn identifies_services() {
        let ssh = identify(b"SSH-2.0-OpenSSH_7.4p1 Debian\r\n", 22);
        assert_eq!(
            ssh,
            (Some("ssh"), Some("OpenSSH".into()), Some("7.4p1".into()))
        );
        let http = identify(b"HTTP/1.1 200 OK\r\nServer: nginx/1.18.0\r\n\r\n", 80);
        assert_eq!(
            http,
            (Some("http"), Some("nginx".into()), Some("1.18.0".into()))
        );
        assert_eq!(identify(b"220 (vsFTPd 3.0.3)\r\n", 21).0, Some("ftp"));
        assert_eq!(
            identify(b"220 (vsFTPd 3.0.3)\r\n", 21).1.as_deref(),
            Some("vsFTPd")
        );
        assert_eq!(identify(b"220 mx ESMTP Postfix\r\n", 25).0, Some("smtp"));
        assert_eq!(
            identify(b"-NOAUTH Authentication required.\r\n", 6379).0,
            Some("redis")
        );
        assert_eq!(identify(&[0xff, 0xfd, 0x18], 23).0, Some("telnet"));
        assert_eq!(identify(&[0x16, 0x03, 0x03, 0, 1], 443).0, Some("tls"));
        assert_eq!(
            identify(b"\x4a\x00\x00\x00\x0a8.0.36\x00rest", 3306)
                .2
                .as_deref(),
            Some("8.0.36")
        );
        assert_eq!(identify(b"hello", 9999), (None, None, None));
    }

    #[test]
    fn smb1_round_trip() {
        let req = smb1_negotiate();
        assert_eq!(&req[4..8], b"\xffSMB");
        assert_eq!(
            u32::from_be_bytes([0, req[1], req[2], req[3]]) as usize,
            req.len() - 4
        );
        // A minimal SMB1 negotiate response choosing dialect 0.
        let mut reply = vec![0, 0, 0, 40];
        reply.extend_from_slice(b"\xffSMB\x72\0\0\0\0");
        reply.resize(4 + 32, 0);
        reply.extend_from_slice(&[17, 0, 0]);
        assert_eq!(parse_smb1_reply(&reply).as_deref(), Some("NT LM 0.12"));
        assert_eq!(parse_smb1_reply(b"\0\0\0\x04\xfeSMB"), None);
    }
}
