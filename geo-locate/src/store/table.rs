//! One sorted table file: a header, fixed-width records in key order, and a sparse index.
//!
//! ```text
//! header (32 B): magic[8] | version u32 | record size u32 | count u64 | index stride u32 | 0 u32
//! records:       count × record size, sorted by key, keys unique
//! index:         the raw key bytes of every stride-th record
//! ```
//!
//! A lookup binary-searches the in-memory index (a few MB for 40 M rows), then reads one block
//! of `stride` records with a positioned read. No memory mapping, so no `unsafe`.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use super::record::Record;
use crate::error::{Error, Result};

/// Version 2: 15-byte spots with weight sums and spread, 13-byte cell keys.
const VERSION: u32 = 2;
const HEADER: usize = 32;
/// Records per index entry: one positioned read of `STRIDE × size` bytes per lookup.
pub(crate) const STRIDE: usize = 64;

/// Bytes of the key at the start of each record (the index stores only these).
fn key_len<R: Record>() -> usize {
    R::KEY_LEN
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        let n = file.seek_read(buf, offset)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf = &mut buf[n..];
        offset += n as u64;
    }
    Ok(())
}

/// A read-only, opened table.
pub(crate) struct Table<R: Record> {
    file: File,
    path: PathBuf,
    count: u64,
    index: Vec<R::Key>,
    _record: PhantomData<R>,
}

impl<R: Record> std::fmt::Debug for Table<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("path", &self.path)
            .field("count", &self.count)
            .finish()
    }
}

impl<R: Record> Table<R> {
    /// Opens a table; `Ok(None)` when the file does not exist yet.
    pub(crate) fn open(path: &Path) -> Result<Option<Self>> {
        let mut file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("open", path, e)),
        };
        let corrupt = |reason: String| Error::CorruptDatabase {
            path: path.to_owned(),
            reason,
        };
        let mut header = [0u8; HEADER];
        file.read_exact(&mut header)
            .map_err(|_| corrupt("shorter than its header".into()))?;
        let word =
            |i: usize| u32::from_be_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        if header[0..7] == R::MAGIC[0..7] && word(8) < VERSION {
            return Err(corrupt(format!(
                "made by an older vigil (table version {}); move the directory away and import again",
                word(8)
            )));
        }
        if &header[0..8] != R::MAGIC {
            return Err(corrupt("wrong magic".into()));
        }
        if word(8) != VERSION || word(12) as usize != R::SIZE || word(24) as usize != STRIDE {
            return Err(corrupt("unsupported version or layout".into()));
        }
        let mut c = [0u8; 8];
        c.copy_from_slice(&header[16..24]);
        let count = u64::from_be_bytes(c);
        let entries = count.div_ceil(STRIDE as u64) as usize;
        let expected = HEADER as u64 + count * R::SIZE as u64 + (entries * key_len::<R>()) as u64;
        let actual = file
            .metadata()
            .map_err(|e| Error::io("stat", path, e))?
            .len();
        if actual != expected {
            return Err(corrupt(format!("size {actual} B, expected {expected} B")));
        }
        file.seek(SeekFrom::Start(HEADER as u64 + count * R::SIZE as u64))
            .map_err(|e| Error::io("seek", path, e))?;
        let mut raw = vec![0u8; entries * key_len::<R>()];
        file.read_exact(&mut raw)
            .map_err(|e| Error::io("read index of", path, e))?;
        // Keys are the leading bytes of a record; decode them through a padded record buffer.
        let mut rec = vec![0u8; R::SIZE];
        let index = raw
            .chunks_exact(key_len::<R>())
            .map(|k| {
                rec[..k.len()].copy_from_slice(k);
                R::decode_key(&rec)
            })
            .collect();
        Ok(Some(Table {
            file,
            path: path.to_owned(),
            count,
            index,
            _record: PhantomData,
        }))
    }

    /// Number of records.
    pub(crate) fn len(&self) -> u64 {
        self.count
    }

    /// Size of the file in bytes.
    pub(crate) fn file_size(&self) -> u64 {
        HEADER as u64 + self.count * R::SIZE as u64 + (self.index.len() * key_len::<R>()) as u64
    }

    /// Every record with `lo <= key <= hi`, in key order.
    pub(crate) fn range(&self, lo: R::Key, hi: R::Key) -> Result<Vec<R>> {
        let mut out = Vec::new();
        if self.count == 0 || hi < lo {
            return Ok(out);
        }
        let mut block = self.index.partition_point(|k| *k <= lo).saturating_sub(1);
        let mut buf = vec![0u8; STRIDE * R::SIZE];
        while block < self.index.len() {
            if self.index[block] > hi {
                break;
            }
            let first = (block * STRIDE) as u64;
            let n = (self.count - first).min(STRIDE as u64) as usize;
            let bytes = &mut buf[..n * R::SIZE];
            read_at(&self.file, bytes, HEADER as u64 + first * R::SIZE as u64)
                .map_err(|e| Error::io("read", &self.path, e))?;
            // Binary search the block for the first key >= lo.
            let key_at = |i: usize| R::decode_key(&bytes[i * R::SIZE..(i + 1) * R::SIZE]);
            let (mut a, mut b) = (0usize, n);
            while a < b {
                let m = (a + b) / 2;
                if key_at(m) < lo {
                    a = m + 1;
                } else {
                    b = m;
                }
            }
            for i in a..n {
                if key_at(i) > hi {
                    return Ok(out);
                }
                out.push(R::decode(&bytes[i * R::SIZE..(i + 1) * R::SIZE]));
            }
            block += 1;
        }
        Ok(out)
    }

    /// The record with exactly this key.
    pub(crate) fn get(&self, key: R::Key) -> Result<Option<R>> {
        Ok(self.range(key, key)?.into_iter().next())
    }

    /// A sequential reader over all records (for merging).
    pub(crate) fn reader(&self) -> Result<RecordReader<R>> {
        let mut file = File::open(&self.path).map_err(|e| Error::io("open", &self.path, e))?;
        file.seek(SeekFrom::Start(HEADER as u64))
            .map_err(|e| Error::io("seek", &self.path, e))?;
        Ok(RecordReader::new(file, self.path.clone(), Some(self.count)))
    }
}

/// Reads fixed-width records one by one from a table body or a sorted run file.
pub(crate) struct RecordReader<R: Record> {
    inner: std::io::BufReader<File>,
    path: PathBuf,
    remaining: Option<u64>,
    buf: Vec<u8>,
    _record: PhantomData<R>,
}

impl<R: Record> RecordReader<R> {
    pub(crate) fn new(file: File, path: PathBuf, limit: Option<u64>) -> Self {
        RecordReader {
            inner: std::io::BufReader::with_capacity(1 << 16, file),
            path,
            remaining: limit,
            buf: vec![0u8; R::SIZE],
            _record: PhantomData,
        }
    }

    pub(crate) fn next_record(&mut self) -> Result<Option<R>> {
        if self.remaining == Some(0) {
            return Ok(None);
        }
        match self.inner.read_exact(&mut self.buf) {
            Ok(()) => {
                if let Some(r) = self.remaining.as_mut() {
                    *r -= 1;
                }
                Ok(Some(R::decode(&self.buf)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && self.remaining.is_none() => {
                Ok(None)
            }
            Err(e) => Err(Error::io("read", &self.path, e)),
        }
    }
}

/// Writes a table: records must arrive in strictly increasing key order. The file is written
/// under a temporary name and renamed into place by [`TableWriter::finish`], so an interrupted
/// build never leaves a half-written table behind.
pub(crate) struct TableWriter<R: Record> {
    out: BufWriter<File>,
    tmp: PathBuf,
    path: PathBuf,
    count: u64,
    index: Vec<u8>,
    buf: Vec<u8>,
    last: Option<R::Key>,
}

impl<R: Record> TableWriter<R> {
    pub(crate) fn create(path: &Path) -> Result<Self> {
        let tmp = path.with_extension("bin.tmp");
        let file = File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(&[0u8; HEADER])
            .map_err(|e| Error::io("write", &tmp, e))?;
        Ok(TableWriter {
            out,
            tmp,
            path: path.to_owned(),
            count: 0,
            index: Vec::new(),
            buf: vec![0u8; R::SIZE],
            last: None,
        })
    }

    pub(crate) fn push(&mut self, r: &R) -> Result<()> {
        let key = r.key();
        debug_assert!(self.last.is_none_or(|l| l < key), "records out of order");
        self.last = Some(key);
        r.encode(&mut self.buf);
        if self.count.is_multiple_of(STRIDE as u64) {
            self.index.extend_from_slice(&self.buf[..key_len::<R>()]);
        }
        self.out
            .write_all(&self.buf)
            .map_err(|e| Error::io("write", &self.tmp, e))?;
        self.count += 1;
        Ok(())
    }

    pub(crate) fn finish(mut self) -> Result<u64> {
        let io = |e| Error::io("write", &self.tmp, e);
        self.out.write_all(&self.index).map_err(io)?;
        let mut header = [0u8; HEADER];
        header[0..8].copy_from_slice(R::MAGIC);
        header[8..12].copy_from_slice(&VERSION.to_be_bytes());
        header[12..16].copy_from_slice(&(R::SIZE as u32).to_be_bytes());
        header[16..24].copy_from_slice(&self.count.to_be_bytes());
        header[24..28].copy_from_slice(&(STRIDE as u32).to_be_bytes());
        self.out.seek(SeekFrom::Start(0)).map_err(io)?;
        self.out.write_all(&header).map_err(io)?;
        let file = self.out.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path).map_err(|e| Error::io("rename", &self.path, e))?;
        Ok(self.count)
    }
}
