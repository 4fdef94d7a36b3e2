//! The CISA Known Exploited Vulnerabilities catalog, as JSON or CSV.

use std::io::Read;

use serde::Deserialize;

use super::source::Ctx;
use super::stream::{StreamError, for_each_in_array};
use super::{BATCH, VulnDb, VulnDbError};
use crate::vulndb::error::Result;

/// One catalog entry (JSON member names; the CSV header uses the same names).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KevEntry {
    #[serde(rename = "cveID", default)]
    cve_id: String,
    #[serde(default)]
    date_added: Option<String>,
    #[serde(default)]
    due_date: Option<String>,
    #[serde(default)]
    known_ransomware_campaign_use: Option<String>,
    #[serde(default)]
    vulnerability_name: Option<String>,
}

fn write_batch(db: &mut VulnDb, pending: &mut Vec<KevEntry>, ctx: &mut Ctx<'_>) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let tx = db.conn.transaction()?;
    for e in pending.drain(..) {
        let id = e.cve_id.trim();
        if !id.starts_with("CVE-") || id.len() > 64 {
            ctx.report
                .bad(format!("KEV entry with bad cveID {:?}", e.cve_id));
            continue;
        }
        tx.prepare_cached(
            "INSERT OR REPLACE INTO kev(cve_id, date_added, due_date, ransomware, name)
             VALUES(?1, ?2, ?3, ?4, ?5)",
        )?
        .execute((
            id,
            &e.date_added,
            &e.due_date,
            &e.known_ransomware_campaign_use,
            &e.vulnerability_name,
        ))?;
        ctx.report.imported += 1;
    }
    tx.commit()?;
    Ok(())
}

pub(super) fn import_json(db: &mut VulnDb, reader: impl Read, ctx: &mut Ctx<'_>) -> Result<()> {
    let mut pending = Vec::new();
    let mut on_item = |e: KevEntry| -> Result<()> {
        ctx.record();
        pending.push(e);
        if pending.len() >= BATCH {
            write_batch(db, &mut pending, ctx)?;
        }
        Ok(())
    };
    let streamed = for_each_in_array(reader, "vulnerabilities", &mut on_item);
    write_batch(db, &mut pending, ctx)?;
    match streamed {
        Ok(scalars) => {
            if let Some(v) = scalars.get("catalogVersion") {
                db.set_meta("kev_catalog_version", v)?;
            }
            if let Some(v) = scalars.get("dateReleased") {
                db.set_meta("kev_date_released", v)?;
            }
            Ok(())
        }
        Err(StreamError::Callback(e)) => Err(e),
        Err(StreamError::Json(e)) => Err(VulnDbError::Malformed {
            format: "CISA KEV JSON",
            detail: e.to_string(),
        }),
        Err(StreamError::MissingKey) => Err(VulnDbError::Malformed {
            format: "CISA KEV JSON",
            detail: "no `vulnerabilities` array".into(),
        }),
    }
}

pub(super) fn import_csv(db: &mut VulnDb, reader: impl Read, ctx: &mut Ctx<'_>) -> Result<()> {
    let mut csv = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
    let malformed = |e: csv::Error| VulnDbError::Malformed {
        format: "CISA KEV CSV",
        detail: e.to_string(),
    };
    let headers = csv.headers().map_err(malformed)?.clone();
    let col = |name: &str| headers.iter().position(|h| h.trim() == name);
    let Some(c_id) = col("cveID") else {
        return Err(VulnDbError::Malformed {
            format: "CISA KEV CSV",
            detail: "no cveID column".into(),
        });
    };
    let (c_added, c_due, c_rw, c_name) = (
        col("dateAdded"),
        col("dueDate"),
        col("knownRansomwareCampaignUse"),
        col("vulnerabilityName"),
    );
    let mut pending = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match csv.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                write_batch(db, &mut pending, ctx)?;
                return Err(malformed(e));
            }
        }
        ctx.record();
        let get = |c: Option<usize>| c.and_then(|c| record.get(c)).map(str::to_string);
        pending.push(KevEntry {
            cve_id: record.get(c_id).unwrap_or("").to_string(),
            date_added: get(c_added),
            due_date: get(c_due),
            known_ransomware_campaign_use: get(c_rw),
            vulnerability_name: get(c_name),
        });
        if pending.len() >= BATCH {
            write_batch(db, &mut pending, ctx)?;
        }
    }
    write_batch(db, &mut pending, ctx)
}
