//! OSV records (one file, a directory, an ecosystem's `all.zip`).
//!
//! Kept per record: its id and `modified`; per affected package (ecosystem, name) and CVE the
//! record covers, the `ECOSYSTEM` ranges (events introduced / fixed / last_affected / limit)
//! and the `versions` list. CVE ids come from the id itself (`CVE-…`, `DEBIAN-CVE-…`,
//! `UBUNTU-CVE-…`), `aliases` and `upstream`; a record naming no CVE is stored under its own
//! id. Withdrawn records are skipped (and remove an older stored copy).

use std::io::{Read, Seek};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::OptionalExtension as _;
use serde::{Deserialize, Serialize};

use super::source::Ctx;
use super::{BATCH, VulnDb, VulnDbError};
use crate::vulndb::error::Result;

/// The largest single record read from a zip or directory (bytes).
const MAX_RECORD: u64 = 64 << 20;

#[derive(Deserialize)]
pub(super) struct OsvRecord {
    id: String,
    #[serde(default)]
    modified: Option<String>,
    #[serde(default)]
    withdrawn: Option<String>,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    upstream: Vec<String>,
    #[serde(default)]
    affected: Vec<Affected>,
}

#[derive(Deserialize)]
struct Affected {
    #[serde(default)]
    package: Option<Package>,
    #[serde(default)]
    ranges: Vec<Range>,
    #[serde(default)]
    versions: Vec<String>,
}

#[derive(Deserialize)]
struct Package {
    #[serde(default)]
    ecosystem: String,
    #[serde(default)]
    name: String,
}

/// A range, as stored (only `ECOSYSTEM` ranges are kept) and read by the matcher.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub(crate) struct Range {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub events: Vec<Event>,
}

/// One range event; exactly one field is set in valid data.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub(crate) struct Event {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introduced: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_affected: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

pub(super) fn parse(reader: impl Read) -> std::result::Result<OsvRecord, serde_json::Error> {
    serde_json::from_reader(reader)
}

/// One record from a stream: malformed input is an error.
pub(super) fn import_one(db: &mut VulnDb, reader: impl Read, ctx: &mut Ctx<'_>) -> Result<()> {
    let rec = parse(reader).map_err(|e| VulnDbError::Malformed {
        format: "OSV",
        detail: e.to_string(),
    })?;
    ctx.record();
    write_batch(db, &mut vec![rec], ctx)
}

/// Reads a zip of records; a malformed record is counted in the report and skipped.
pub(super) fn import_zip<R: Read + Seek>(
    db: &mut VulnDb,
    reader: R,
    bytes: &Arc<AtomicU64>,
    ctx: &mut Ctx<'_>,
) -> Result<()> {
    let mut archive = zip::ZipArchive::new(reader).map_err(|e| VulnDbError::Zip(e.to_string()))?;
    let mut pending = Vec::with_capacity(BATCH);
    for i in 0..archive.len() {
        let mut entry = match archive.by_index(i) {
            Ok(e) => e,
            Err(e) => {
                write_batch(db, &mut pending, ctx)?;
                return Err(VulnDbError::Zip(format!("entry {i}: {e}")));
            }
        };
        bytes.fetch_add(entry.compressed_size(), Ordering::Relaxed);
        let name = entry.name().map(|n| n.to_string()).unwrap_or_default();
        if entry.is_dir() || !name.to_ascii_lowercase().ends_with(".json") {
            continue;
        }
        let mut buf = Vec::new();
        if let Err(e) = (&mut entry).take(MAX_RECORD).read_to_end(&mut buf) {
            ctx.report.bad(format!("{name}: {e}"));
            continue;
        }
        drop(entry);
        push_lenient(db, &buf[..], &name, &mut pending, ctx)?;
    }
    write_batch(db, &mut pending, ctx)
}

/// Parses one record of a collection; a malformed one is counted and skipped.
pub(super) fn push_lenient(
    db: &mut VulnDb,
    reader: impl Read,
    name: &str,
    pending: &mut Vec<OsvRecord>,
    ctx: &mut Ctx<'_>,
) -> Result<()> {
    match parse(reader.take(MAX_RECORD)) {
        Ok(rec) => {
            ctx.record();
            pending.push(rec);
            if pending.len() >= BATCH {
                write_batch(db, pending, ctx)?;
            }
        }
        Err(e) => ctx.report.bad(format!("{name}: {e}")),
    }
    Ok(())
}

/// The CVE ids a record covers.
fn cve_ids(rec: &OsvRecord) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    let own = rec
        .id
        .strip_prefix("DEBIAN-")
        .or_else(|| rec.id.strip_prefix("UBUNTU-"))
        .unwrap_or(&rec.id);
    for cand in std::iter::once(own)
        .chain(rec.aliases.iter().map(String::as_str))
        .chain(rec.upstream.iter().map(String::as_str))
    {
        if cand.starts_with("CVE-") && cand.len() <= 64 && !ids.iter().any(|i| i == cand) {
            ids.push(cand.to_string());
        }
    }
    if ids.is_empty() {
        ids.push(rec.id.clone());
    }
    ids
}

pub(super) fn write_batch(
    db: &mut VulnDb,
    pending: &mut Vec<OsvRecord>,
    ctx: &mut Ctx<'_>,
) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let tx = db.conn.transaction()?;
    for rec in pending.drain(..) {
        if rec.id.is_empty() || rec.id.len() > 128 {
            ctx.report
                .bad(format!("OSV record with bad id {:?}", rec.id));
            continue;
        }
        let existing: Option<Option<String>> = tx
            .prepare_cached("SELECT modified FROM osv WHERE id = ?1")?
            .query_row([&rec.id], |r| r.get(0))
            .optional()?;
        let new_mod = rec.modified.as_deref().unwrap_or("");
        if let Some(old) = &existing
            && old.as_deref().unwrap_or("") >= new_mod
            && !new_mod.is_empty()
        {
            ctx.report.skipped_older += 1;
            continue;
        }
        if existing.is_some() {
            tx.prepare_cached("DELETE FROM osv_affected WHERE osv_id = ?1")?
                .execute([&rec.id])?;
            tx.prepare_cached("DELETE FROM osv WHERE id = ?1")?
                .execute([&rec.id])?;
        }
        if rec.withdrawn.is_some() {
            ctx.report.skipped_rejected += 1;
            continue;
        }
        tx.prepare_cached("INSERT INTO osv(id, modified) VALUES(?1, ?2)")?
            .execute((&rec.id, &rec.modified))?;
        let cves = cve_ids(&rec);
        for a in &rec.affected {
            let Some(pkg) = &a.package else { continue };
            if pkg.ecosystem.is_empty() || pkg.name.is_empty() {
                continue;
            }
            let ranges: Vec<&Range> = a.ranges.iter().filter(|r| r.kind == "ECOSYSTEM").collect();
            let ranges = serde_json::to_string(&ranges).unwrap_or_else(|_| "[]".into());
            let versions = serde_json::to_string(&a.versions).unwrap_or_else(|_| "[]".into());
            for cve in &cves {
                tx.prepare_cached(
                    "INSERT INTO osv_affected(ecosystem, package, cve_id, osv_id, ranges, versions)
                     VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute((
                    &pkg.ecosystem,
                    &pkg.name,
                    cve,
                    &rec.id,
                    &ranges,
                    &versions,
                ))?;
            }
        }
        ctx.report.imported += 1;
    }
    tx.commit()?;
    Ok(())
}
