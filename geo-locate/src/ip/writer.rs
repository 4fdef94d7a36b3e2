//! A small writer of MMDB city databases (MaxMind DB format 2.0), for tests and fixtures: no
//! crate on crates.io writes the format without pulling in a large toolchain, and a test needs
//! only a few networks. Enabled by the `mmdb-writer` feature.
//!
//! It writes an IPv6 tree (IPv4 networks live under `::/96`, where readers look for them) with
//! 24-bit records, and for each network a GeoIP2-City-shaped record:
//! `{location: {latitude, longitude, accuracy_radius?}, country: {iso_code?}}`.
//!
//! ```
//! use geo_locate::ip::IpDatabase;
//! use geo_locate::ip::writer::MmdbWriter;
//!
//! let mut w = MmdbWriter::new("GeoLite2-City");
//! w.insert("203.0.113.0".parse().unwrap(), 24, 52.52, 13.405, Some(20), Some("DE")).unwrap();
//! let db = IpDatabase::from_bytes(w.to_bytes(), "test.mmdb".as_ref()).unwrap();
//! let hit = db.lookup("203.0.113.7".parse().unwrap()).unwrap().unwrap();
//! assert_eq!(hit.accuracy_m, 20_000.0);
//! ```

use std::net::IpAddr;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Child {
    Empty,
    Node(u32),
    Data(u32),
}

/// Builds an MMDB city database in memory.
#[derive(Debug, Clone)]
pub struct MmdbWriter {
    database_type: String,
    nodes: Vec<[Child; 2]>,
    data: Vec<u8>,
}

/// A value of the MMDB data section.
enum Value<'a> {
    Str(&'a str),
    Double(f64),
    U16(u16),
    U32(u32),
    U64(u64),
    Map(Vec<(&'a str, Value<'a>)>),
    Array(Vec<Value<'a>>),
}

fn control(out: &mut Vec<u8>, kind: u8, size: usize) {
    let (first, extra): (u8, Vec<u8>) = if size < 29 {
        (size as u8, Vec::new())
    } else if size < 29 + 256 {
        (29, vec![(size - 29) as u8])
    } else if size < 285 + 65_536 {
        (30, ((size - 285) as u16).to_be_bytes().to_vec())
    } else {
        (31, ((size - 65_821) as u32).to_be_bytes()[1..].to_vec())
    };
    if kind <= 7 {
        out.push((kind << 5) | first);
    } else {
        out.push(first);
        out.push(kind - 7);
    }
    out.extend_from_slice(&extra);
}

fn uint(out: &mut Vec<u8>, kind: u8, v: u64) {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    control(out, kind, 8 - skip);
    out.extend_from_slice(&bytes[skip..]);
}

impl Value<'_> {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Str(s) => {
                control(out, 2, s.len());
                out.extend_from_slice(s.as_bytes());
            }
            Value::Double(v) => {
                control(out, 3, 8);
                out.extend_from_slice(&v.to_be_bytes());
            }
            Value::U16(v) => uint(out, 5, u64::from(*v)),
            Value::U32(v) => uint(out, 6, u64::from(*v)),
            Value::U64(v) => uint(out, 9, *v),
            Value::Map(entries) => {
                control(out, 7, entries.len());
                for (k, v) in entries {
                    Value::Str(k).encode(out);
                    v.encode(out);
                }
            }
            Value::Array(items) => {
                control(out, 11, items.len());
                for v in items {
                    v.encode(out);
                }
            }
        }
    }
}

impl MmdbWriter {
    /// An empty database whose metadata says `database_type` (a city type such as
    /// `GeoLite2-City`, or anything else to test refusals).
    pub fn new(database_type: &str) -> MmdbWriter {
        MmdbWriter {
            database_type: database_type.to_owned(),
            nodes: vec![[Child::Empty; 2]],
            data: Vec::new(),
        }
    }

    /// Adds the network `addr/prefix` (an IPv4 prefix counts in IPv4 bits) at `lat`, `lon`.
    /// Networks must not overlap.
    pub fn insert(
        &mut self,
        addr: IpAddr,
        prefix: u8,
        lat: f64,
        lon: f64,
        accuracy_radius_km: Option<u16>,
        country: Option<&str>,
    ) -> Result<()> {
        let (bits, len) = match addr {
            IpAddr::V4(v4) if prefix <= 32 => (u128::from(u32::from(v4)), 96 + u32::from(prefix)),
            IpAddr::V6(v6) if prefix <= 128 => (u128::from(v6), u32::from(prefix)),
            _ => {
                return Err(Error::InvalidInput(format!(
                    "prefix /{prefix} is too long for {addr}"
                )));
            }
        };
        let mut location = vec![
            ("latitude", Value::Double(lat)),
            ("longitude", Value::Double(lon)),
        ];
        if let Some(r) = accuracy_radius_km {
            location.push(("accuracy_radius", Value::U16(r)));
        }
        let mut record = vec![("location", Value::Map(location))];
        if let Some(c) = country {
            record.push(("country", Value::Map(vec![("iso_code", Value::Str(c))])));
        }
        let offset = self.data.len() as u32;
        Value::Map(record).encode(&mut self.data);
        let mut node = 0usize;
        for depth in 0..len {
            let bit = ((bits >> (127 - depth)) & 1) as usize;
            if depth + 1 == len {
                if self.nodes[node][bit] != Child::Empty {
                    return Err(Error::InvalidInput(format!("{addr}/{prefix} overlaps")));
                }
                self.nodes[node][bit] = Child::Data(offset);
                return Ok(());
            }
            node = match self.nodes[node][bit] {
                Child::Node(n) => n as usize,
                Child::Empty => {
                    self.nodes.push([Child::Empty; 2]);
                    let n = self.nodes.len() - 1;
                    self.nodes[node][bit] = Child::Node(n as u32);
                    n
                }
                Child::Data(_) => {
                    return Err(Error::InvalidInput(format!("{addr}/{prefix} overlaps")));
                }
            };
        }
        Err(Error::InvalidInput("a /0 network cannot be stored".into()))
    }

    /// The database file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let count = self.nodes.len() as u32;
        let record = |c: Child| -> u32 {
            match c {
                Child::Empty => count,
                Child::Node(n) => n,
                Child::Data(off) => count + 16 + off,
            }
        };
        let mut out = Vec::with_capacity(self.nodes.len() * 6 + self.data.len() + 256);
        for n in &self.nodes {
            for c in n {
                out.extend_from_slice(&record(*c).to_be_bytes()[1..]);
            }
        }
        out.extend_from_slice(&[0u8; 16]);
        out.extend_from_slice(&self.data);
        out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
        Value::Map(vec![
            ("binary_format_major_version", Value::U16(2)),
            ("binary_format_minor_version", Value::U16(0)),
            ("build_epoch", Value::U64(1_700_000_000)),
            ("database_type", Value::Str(&self.database_type)),
            (
                "description",
                Value::Map(vec![("en", Value::Str("vigil test database"))]),
            ),
            ("ip_version", Value::U16(6)),
            ("languages", Value::Array(vec![Value::Str("en")])),
            ("node_count", Value::U32(count)),
            ("record_size", Value::U16(24)),
        ])
        .encode(&mut out);
        out
    }
}
