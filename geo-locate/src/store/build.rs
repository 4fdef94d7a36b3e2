//! External sort and merge: bounded-memory construction of sorted tables.
//!
//! Imported records are collected in chunks of a fixed size, each chunk is sorted and spilled to
//! a run file, and the runs are merged with the existing table into a new one. Memory is one
//! chunk plus one buffered reader per run, whatever the input size.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use super::record::Record;
use super::table::{RecordReader, TableWriter};
use crate::error::{Error, Result};

/// How records with the same key are merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Policy {
    /// The newer record replaces the older (a new cell dump supersedes the old one).
    Replace,
    /// The records are sightings of one transmitter: all of one import's are folded into the
    /// stored one at once ([`Record::resolve`]), so outliers can be told from the majority.
    Combine,
}

/// Most sightings of one key held at once while merging; beyond that they are folded into the
/// stored record and collection starts again (bounds memory on a pathological input).
const MAX_GROUP: usize = 1 << 16;

/// Collects records into sorted run files. A full chunk is sorted and written by a background
/// thread while the next one fills, so parsing and sorting overlap; at most two chunks are in
/// memory.
pub(crate) struct Sorter<R: Record> {
    chunk: Vec<R>,
    capacity: usize,
    dir: PathBuf,
    prefix: &'static str,
    runs: Vec<PathBuf>,
    policy: Policy,
    in_flight: Option<std::thread::JoinHandle<Result<()>>>,
}

impl<R: Record> Sorter<R> {
    pub(crate) fn new(dir: PathBuf, prefix: &'static str, capacity: usize, policy: Policy) -> Self {
        Sorter {
            chunk: Vec::with_capacity(capacity.min(1 << 16)),
            capacity: capacity.max(1),
            dir,
            prefix,
            runs: Vec::new(),
            policy,
            in_flight: None,
        }
    }

    pub(crate) fn push(&mut self, r: R) -> Result<()> {
        self.chunk.push(r);
        if self.chunk.len() >= self.capacity {
            self.spill()?;
        }
        Ok(())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.chunk.is_empty() && self.runs.is_empty()
    }

    /// Waits for the chunk being written, if any.
    fn wait(&mut self) -> Result<()> {
        match self.in_flight.take() {
            Some(handle) => handle
                .join()
                .map_err(|_| Error::InvalidInput("the sort thread panicked".into()))?,
            None => Ok(()),
        }
    }

    fn spill(&mut self) -> Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        self.wait()?;
        let chunk = std::mem::replace(
            &mut self.chunk,
            Vec::with_capacity(self.capacity.min(1 << 20)),
        );
        let path = self
            .dir
            .join(format!("{}-{:05}.run", self.prefix, self.runs.len()));
        self.runs.push(path.clone());
        let policy = self.policy;
        self.in_flight = Some(std::thread::spawn(move || write_run(chunk, &path, policy)));
        Ok(())
    }

    /// Spills what is left and returns readers over every run, oldest first.
    pub(crate) fn finish(mut self) -> Result<Vec<RecordReader<R>>> {
        self.spill()?;
        self.wait()?;
        self.runs
            .iter()
            .map(|p| {
                let f = File::open(p).map_err(|e| Error::io("open", p, e))?;
                Ok(RecordReader::new(f, p.clone(), None))
            })
            .collect()
    }
}

impl<R: Record> Drop for Sorter<R> {
    fn drop(&mut self) {
        // Never leave a writer thread behind, even on an early error return.
        let _ = self.wait();
    }
}

/// Sorts a chunk (stably, so among equal keys the later input stays later) and writes it as a
/// run file; with [`Policy::Replace`] only the last record of a key is kept, with
/// [`Policy::Combine`] every sighting is (they are folded when merging).
fn write_run<R: Record>(mut chunk: Vec<R>, path: &std::path::Path, policy: Policy) -> Result<()> {
    chunk.sort_by_key(|r| r.key());
    let file = File::create(path).map_err(|e| Error::io("create", path, e))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut buf = vec![0u8; R::SIZE];
    if policy == Policy::Combine {
        for r in &chunk {
            r.encode(&mut buf);
            out.write_all(&buf)
                .map_err(|e| Error::io("write", path, e))?;
        }
        return out.flush().map_err(|e| Error::io("write", path, e));
    }
    let mut pending: Option<R> = None;
    for r in chunk {
        pending = Some(match pending {
            Some(p) if p.key() == r.key() => r,
            Some(p) => {
                p.encode(&mut buf);
                out.write_all(&buf)
                    .map_err(|e| Error::io("write", path, e))?;
                r
            }
            None => r,
        });
    }
    if let Some(p) = pending {
        p.encode(&mut buf);
        out.write_all(&buf)
            .map_err(|e| Error::io("write", path, e))?;
    }
    out.flush().map_err(|e| Error::io("write", path, e))
}

/// Merges sorted sources (oldest first) into `out`, resolving equal keys with `policy`, and
/// calls `visit` for every record written. With `has_base`, source 0 is the stored table: its
/// record is what [`Record::resolve`] refines. Returns the number of records written.
pub(crate) fn merge<R: Record>(
    mut sources: Vec<RecordReader<R>>,
    policy: Policy,
    has_base: bool,
    out: &mut TableWriter<R>,
    mut visit: impl FnMut(&R) -> Result<()>,
) -> Result<u64> {
    let mut heads: Vec<Option<R>> = Vec::with_capacity(sources.len());
    let mut heap = BinaryHeap::new();
    for (i, s) in sources.iter_mut().enumerate() {
        let head = s.next_record()?;
        if let Some(r) = &head {
            heap.push(Reverse((r.key(), i)));
        }
        heads.push(head);
    }
    let mut written = 0u64;
    // The key being collected, its stored record and the new ones (oldest first).
    let mut key: Option<R::Key> = None;
    let mut base: Option<R> = None;
    let mut group: Vec<R> = Vec::new();
    let mut flush = |base: &mut Option<R>, group: &mut Vec<R>| -> Result<()> {
        let rec = match (policy, group.last()) {
            (_, None) => base.take(),
            (Policy::Replace, Some(last)) => Some(*last),
            (Policy::Combine, Some(_)) => Some(R::resolve(base.as_ref(), group)),
        };
        *base = None;
        group.clear();
        if let Some(r) = rec {
            visit(&r)?;
            out.push(&r)?;
            written += 1;
        }
        Ok(())
    };
    while let Some(Reverse((k, i))) = heap.pop() {
        let rec = heads[i]
            .take()
            .expect("a source in the heap has a head record");
        if let Some(next) = sources[i].next_record()? {
            heap.push(Reverse((next.key(), i)));
            heads[i] = Some(next);
        }
        if key != Some(k) {
            flush(&mut base, &mut group)?;
            key = Some(k);
        }
        if has_base && i == 0 {
            base = Some(rec);
        } else {
            if group.len() >= MAX_GROUP && policy == Policy::Combine {
                base = Some(R::resolve(base.as_ref(), &group));
                group.clear();
            }
            group.push(rec);
        }
    }
    flush(&mut base, &mut group)?;
    Ok(written)
}
