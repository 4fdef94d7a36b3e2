//! FIRST EPSS scores: `#model_version:…,score_date:…`, then `cve,epss,percentile`.

use std::io::{BufRead, Read};

use super::source::Ctx;
use super::{BATCH, VulnDb, VulnDbError};
use crate::vulndb::error::Result;

fn write_batch(db: &mut VulnDb, pending: &mut Vec<(String, f64, f64)>) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let tx = db.conn.transaction()?;
    for (cve, score, pct) in pending.drain(..) {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO epss(cve_id, score, percentile) VALUES(?1, ?2, ?3)",
        )?
        .execute((cve, score, pct))?;
    }
    tx.commit()?;
    Ok(())
}

pub(super) fn import(db: &mut VulnDb, reader: impl BufRead, ctx: &mut Ctx<'_>) -> Result<()> {
    let mut reader = reader;
    let malformed = |detail: String| VulnDbError::Malformed {
        format: "FIRST EPSS CSV",
        detail,
    };
    // The optional comment line with the model version and score date.
    let mut model_version = None;
    let mut score_date = None;
    let starts_with_hash = reader
        .fill_buf()
        .map_err(|e| malformed(e.to_string()))?
        .first()
        == Some(&b'#');
    if starts_with_hash {
        let mut line = String::new();
        (&mut reader)
            .take(4096)
            .read_line(&mut line)
            .map_err(|e| malformed(e.to_string()))?;
        for part in line.trim().trim_start_matches('#').split(',') {
            match part.split_once(':') {
                Some(("model_version", v)) => model_version = Some(v.trim().to_string()),
                Some(("score_date", v)) => score_date = Some(v.trim().to_string()),
                _ => {}
            }
        }
    }
    let mut csv = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
    let headers = csv.headers().map_err(|e| malformed(e.to_string()))?.clone();
    let col = |name: &str| headers.iter().position(|h| h.trim() == name);
    let (Some(c_cve), Some(c_epss), Some(c_pct)) = (col("cve"), col("epss"), col("percentile"))
    else {
        return Err(malformed(format!(
            "the header must name cve, epss and percentile, found {:?}",
            headers.iter().collect::<Vec<_>>()
        )));
    };
    let mut pending = Vec::with_capacity(BATCH);
    let mut record = csv::StringRecord::new();
    loop {
        match csv.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                write_batch(db, &mut pending)?;
                return Err(malformed(e.to_string()));
            }
        }
        ctx.record();
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let cve = record.get(c_cve).unwrap_or("").trim();
        let score = record
            .get(c_epss)
            .and_then(|s| s.trim().parse::<f64>().ok());
        let pct = record.get(c_pct).and_then(|s| s.trim().parse::<f64>().ok());
        match (score, pct) {
            (Some(s), Some(p))
                if cve.starts_with("CVE-")
                    && cve.len() <= 64
                    && (0.0..=1.0).contains(&s)
                    && (0.0..=1.0).contains(&p) =>
            {
                pending.push((cve.to_string(), s, p));
                ctx.report.imported += 1;
            }
            _ => ctx.report.bad(format!(
                "line {line}: not a CVE with a score and percentile in 0..1"
            )),
        }
        if pending.len() >= BATCH {
            write_batch(db, &mut pending)?;
        }
    }
    write_batch(db, &mut pending)?;
    if let Some(v) = model_version {
        db.set_meta("epss_model_version", &v)?;
    }
    if let Some(v) = score_date {
        db.set_meta("epss_score_date", &v)?;
    }
    Ok(())
}
