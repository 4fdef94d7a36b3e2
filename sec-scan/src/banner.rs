//! Banner grabbing, the SSH key-exchange offer and the SMBv1 probe.
//!
//! Service, product and version come from the [probe set](crate::service): the scan pipeline
//! runs [`ServiceProbes::detect`](crate::service::ServiceProbes::detect) on each open port, and
//! this module adds what probes cannot express: the SSH `KEXINIT` offer
//! ([`BannerGrabber::ssh_offer`]) and whether SMBv1 is accepted ([`BannerGrabber::smb1`]).
//! [`BannerGrabber::grab`] is the older one-shot grabber, kept for callers that want a banner
//! without the whole probe engine; it identifies what it read with the built-in probe file.
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
use crate::service::{Detection, ServiceProbes};

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
            && let Some(dialect) = self.smb1_dialect(addr).await
        {
            out.push(make(Detail::Smb { dialect }));
            out.push(make(plain_banner(Some("smb"), b"SMB")));
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
            // For SSH the banner is the identification line; the binary key exchange that
            // follows it is reported as the ssh finding.
            let shown = match find_ident_end(&first) {
                Some((start, end, _)) if first.starts_with(b"SSH-") => &first[start..end],
                _ => &first[..],
            };
            let mut detail = identified("NULL", &first);
            if let Detail::Banner { text, .. } = &mut detail {
                *text = printable(shown);
            }
            out.push(make(detail));
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
        let probes: [(&str, Vec<u8>); 3] = [
            ("GetRequest", http.into_bytes()),
            ("TLS", legacy::client_hello(0x0303, host.name.as_deref())),
            ("NULL", b"\r\n\r\n".to_vec()),
        ];
        for (name, probe) in probes {
            let Ok(mut s) = self.connect(addr).await else {
                break;
            };
            if s.write_all(&probe).await.is_err() {
                continue;
            }
            let answer = read_some(&mut s, self.config.probe_wait, self.config.max_bytes).await;
            if !answer.is_empty() {
                out.push(make(identified(name, &answer)));
                break;
            }
        }
        Ok(out)
    }

    /// The SSH key-exchange offer of `host:port`: reads the server's identification, sends
    /// ours, and parses its `SSH_MSG_KEXINIT` into a [`Detail::Ssh`] finding. `None` when the
    /// port does not speak SSH or the offer could not be read in time.
    pub async fn ssh_offer(&self, host: &ScanHost, port: u16) -> Option<Finding> {
        let addr = SocketAddr::new(host.addr, port);
        let mut stream = self.connect(addr).await.ok()?;
        let first = read_some(&mut stream, self.config.banner_wait, self.config.max_bytes).await;
        let detail = self.ssh(&mut stream, first).await?;
        Some(Finding {
            host: host.display_name(),
            addr: host.addr,
            port: Some(port),
            detail,
        })
    }

    /// Whether `host:port` accepts an SMBv1 NEGOTIATE: a [`Detail::Smb`] finding if it does.
    pub async fn smb1(&self, host: &ScanHost, port: u16) -> Option<Finding> {
        let dialect = self.smb1_dialect(SocketAddr::new(host.addr, port)).await?;
        Some(Finding {
            host: host.display_name(),
            addr: host.addr,
            port: Some(port),
            detail: Detail::Smb { dialect },
        })
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

    async fn smb1_dialect(&self, addr: SocketAddr) -> Option<String> {
        let mut s = self.connect(addr).await.ok()?;
        s.write_all(&smb1_negotiate()).await.ok()?;
        let reply = read_some(&mut s, self.config.probe_wait, 512).await;
        parse_smb1_reply(&reply)
    }
}

/// A banner with only a service name (or none).
fn plain_banner(service: Option<&str>, raw: &[u8]) -> Detail {
    Detection {
        service: service.map(str::to_owned),
        reply: raw.to_vec(),
        ..Detection::default()
    }
    .detail()
}

/// What the built-in probe file makes of `raw` as the answer to `probe`; a TLS record is
/// `tls`; otherwise the banner with no service.
fn identified(probe: &str, raw: &[u8]) -> Detail {
    if let [0x16 | 0x15, 0x03, ..] = raw {
        return plain_banner(Some("tls"), raw);
    }
    match ServiceProbes::builtin().identify(probe, raw) {
        Some(d) => d.detail(),
        None => plain_banner(None, raw),
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
    fn grabbed_banners_are_identified_by_the_builtin_probes() {
        let d = identified("NULL", b"SSH-2.0-OpenSSH_7.4p1 Debian-10+deb9u7\r\n");
        assert!(
            matches!(
                d,
                Detail::Banner { service: Some(ref s), product: Some(ref p), version: Some(ref v), ref package_version, .. }
                    if s == "ssh" && p == "OpenSSH" && v == "7.4p1"
                        && package_version.as_deref() == Some("1:7.4p1-10+deb9u7")
            ),
            "{d:?}"
        );
        let d = identified("TLS", &[0x16, 0x03, 0x03, 0, 1]);
        assert!(matches!(d, Detail::Banner { service: Some(ref s), .. } if s == "tls"));
        let d = identified("NULL", b"hello");
        assert!(matches!(d, Detail::Banner { service: None, .. }));
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
