//! NVD CVE JSON 2.0: API answers and feed files, streamed record by record.

use std::io::Read;

use rusqlite::{OptionalExtension as _, Transaction};
use serde::{Deserialize, Serialize};

use super::source::Ctx;
use super::stream::{StreamError, for_each_in_array};
use super::{BATCH, VulnDb, VulnDbError};
use crate::cpe::{Attr, Cpe, Part};
use crate::vulndb::error::Result;

#[derive(Deserialize)]
struct Item {
    cve: NvdCve,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NvdCve {
    id: String,
    #[serde(default)]
    vuln_status: Option<String>,
    #[serde(default)]
    published: Option<String>,
    #[serde(default)]
    last_modified: Option<String>,
    #[serde(default)]
    cisa_exploit_add: Option<String>,
    #[serde(default)]
    cisa_action_due: Option<String>,
    #[serde(default)]
    cisa_vulnerability_name: Option<String>,
    #[serde(default)]
    descriptions: Vec<LangValue>,
    #[serde(default)]
    metrics: Metrics,
    #[serde(default)]
    weaknesses: Vec<Weakness>,
    #[serde(default)]
    references: Vec<Reference>,
    #[serde(default)]
    configurations: Vec<Config>,
}

#[derive(Deserialize)]
struct LangValue {
    #[serde(default)]
    lang: String,
    #[serde(default)]
    value: String,
}

#[derive(Deserialize, Default)]
struct Metrics {
    #[serde(default, rename = "cvssMetricV40")]
    v40: Vec<Metric>,
    #[serde(default, rename = "cvssMetricV31")]
    v31: Vec<Metric>,
    #[serde(default, rename = "cvssMetricV30")]
    v30: Vec<Metric>,
    #[serde(default, rename = "cvssMetricV2")]
    v2: Vec<Metric>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metric {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    cvss_data: CvssData,
    /// v2 keeps the severity next to `cvssData`.
    #[serde(default)]
    base_severity: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CvssData {
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    vector_string: Option<String>,
    base_score: f64,
    #[serde(default)]
    base_severity: Option<String>,
}

#[derive(Deserialize)]
struct Weakness {
    #[serde(default)]
    description: Vec<LangValue>,
}

#[derive(Deserialize)]
struct Reference {
    url: String,
}

/// One configuration, as stored (compact JSON in `cve_config.json`) and as read by the matcher.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub(crate) struct Config {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub negate: bool,
    #[serde(default)]
    pub nodes: Vec<Node>,
}

/// One node: an AND or OR of cpeMatch entries, possibly negated.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub(crate) struct Node {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub negate: bool,
    #[serde(default, rename = "cpeMatch")]
    pub cpe_match: Vec<CpeMatch>,
}

/// One cpeMatch entry.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CpeMatch {
    #[serde(default)]
    pub vulnerable: bool,
    pub criteria: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_start_including: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_start_excluding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_end_including: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_end_excluding: Option<String>,
}

/// An attribute in the form kept in `cpe_match.version`/`upd`.
fn stored(a: &Attr) -> &str {
    match a {
        Attr::Any => "*",
        Attr::Na => "-",
        Attr::Value(v) => v,
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The CVSS metric a record is reported with: v4.0 > v3.1 > v3.0 > v2, Primary first.
fn preferred(m: &Metrics) -> Option<(&Metric, &'static str)> {
    for (list, fallback) in [
        (&m.v40, "4.0"),
        (&m.v31, "3.1"),
        (&m.v30, "3.0"),
        (&m.v2, "2.0"),
    ] {
        let primary = list
            .iter()
            .find(|x| x.kind.as_deref() == Some("Primary"))
            .or_else(|| list.first());
        if let Some(p) = primary {
            return Some((p, fallback));
        }
    }
    None
}

pub(super) fn import(db: &mut VulnDb, reader: impl Read, ctx: &mut Ctx<'_>) -> Result<()> {
    let mut pending: Vec<NvdCve> = Vec::with_capacity(BATCH);
    let mut on_item = |item: Item| -> Result<()> {
        ctx.record();
        pending.push(item.cve);
        if pending.len() >= BATCH {
            write_batch(db, &mut pending, ctx)?;
        }
        Ok(())
    };
    let streamed = for_each_in_array(reader, "vulnerabilities", &mut on_item);
    // Whatever was read before a failure is kept.
    let flushed = write_batch(db, &mut pending, ctx);
    match streamed {
        Ok(_) => flushed,
        Err(StreamError::Callback(e)) => Err(e),
        Err(StreamError::Json(e)) => {
            flushed?;
            Err(VulnDbError::Malformed {
                format: "NVD CVE JSON",
                detail: e.to_string(),
            })
        }
        Err(StreamError::MissingKey) => Err(VulnDbError::Malformed {
            format: "NVD CVE JSON",
            detail: "no `vulnerabilities` array".into(),
        }),
    }
}

fn write_batch(db: &mut VulnDb, pending: &mut Vec<NvdCve>, ctx: &mut Ctx<'_>) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let tx = db.conn.transaction()?;
    for cve in pending.drain(..) {
        write_one(&tx, cve, ctx)?;
    }
    tx.commit()?;
    Ok(())
}

fn delete_cve(tx: &Transaction<'_>, id: &str) -> Result<()> {
    tx.prepare_cached("DELETE FROM cpe_match WHERE cve_id = ?1")?
        .execute([id])?;
    tx.prepare_cached("DELETE FROM cve_config WHERE cve_id = ?1")?
        .execute([id])?;
    tx.prepare_cached("DELETE FROM cve WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

fn write_one(tx: &Transaction<'_>, cve: NvdCve, ctx: &mut Ctx<'_>) -> Result<()> {
    let id = cve.id.trim();
    if id.is_empty() || id.len() > 64 {
        ctx.report.bad(format!(
            "record {}: bad CVE id {:?}",
            ctx.report.records, cve.id
        ));
        return Ok(());
    }
    let existing: Option<Option<String>> = tx
        .prepare_cached("SELECT last_modified FROM cve WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    let new_mod = cve.last_modified.as_deref().unwrap_or("");
    if let Some(old) = &existing
        && old.as_deref().unwrap_or("") >= new_mod
        && !new_mod.is_empty()
    {
        ctx.report.skipped_older += 1;
        return Ok(());
    }
    if cve.vuln_status.as_deref() == Some("Rejected") {
        if existing.is_some() {
            delete_cve(tx, id)?;
        }
        ctx.report.skipped_rejected += 1;
        return Ok(());
    }
    if existing.is_some() {
        delete_cve(tx, id)?;
    }
    let description = cve
        .descriptions
        .iter()
        .find(|d| d.lang == "en")
        .map(|d| d.value.as_str());
    let metric = preferred(&cve.metrics);
    let (cvss_version, cvss_score, cvss_vector, cvss_severity) = match metric {
        Some((m, fallback)) => (
            Some(
                m.cvss_data
                    .version
                    .clone()
                    .unwrap_or_else(|| fallback.into()),
            ),
            Some(m.cvss_data.base_score),
            m.cvss_data.vector_string.clone(),
            m.cvss_data
                .base_severity
                .clone()
                .or_else(|| m.base_severity.clone()),
        ),
        None => (None, None, None, None),
    };
    let mut cwes: Vec<&str> = cve
        .weaknesses
        .iter()
        .flat_map(|w| w.description.iter())
        .map(|d| d.value.as_str())
        .filter(|v| v.starts_with("CWE-"))
        .collect();
    cwes.sort_unstable();
    cwes.dedup();
    let refs: Vec<&str> = cve.references.iter().map(|r| r.url.as_str()).collect();
    let refs = serde_json::to_string(&refs).unwrap_or_else(|_| "[]".into());
    tx.prepare_cached(
        "INSERT INTO cve(id, status, published, last_modified, description, cvss_version,
            cvss_score, cvss_vector, cvss_severity, cwes, kev_added, kev_due, kev_name, refs)
         VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?
    .execute(rusqlite::params![
        id,
        cve.vuln_status,
        cve.published,
        cve.last_modified,
        description,
        cvss_version,
        cvss_score,
        cvss_vector,
        cvss_severity,
        cwes.join(","),
        cve.cisa_exploit_add,
        cve.cisa_action_due,
        cve.cisa_vulnerability_name,
        refs,
    ])?;
    for (ci, config) in cve.configurations.iter().enumerate() {
        let json = serde_json::to_string(config).map_err(|e| VulnDbError::Malformed {
            format: "NVD CVE JSON",
            detail: format!("{id}: {e}"),
        })?;
        tx.prepare_cached(
            "INSERT OR REPLACE INTO cve_config(cve_id, idx, json) VALUES(?1, ?2, ?3)",
        )?
        .execute(rusqlite::params![id, ci as i64, json])?;
        let config_simple = config.nodes.len() == 1
            && !config.negate
            && !config.nodes[0].negate
            && (config.nodes[0].operator.as_deref() != Some("AND")
                || config.nodes[0].cpe_match.len() == 1);
        for (ni, node) in config.nodes.iter().enumerate() {
            for (mi, m) in node.cpe_match.iter().enumerate() {
                if !m.vulnerable {
                    continue;
                }
                let Ok(cpe) = Cpe::parse(&m.criteria) else {
                    ctx.report
                        .bad(format!("{id}: bad criteria {:?}", m.criteria));
                    continue;
                };
                if cpe.part() != Some(Part::Application) {
                    continue;
                }
                let (Some(product), Some(vendor)) = (cpe.product().value(), cpe.vendor().value())
                else {
                    continue;
                };
                let simple = (5..11).all(|i| cpe.attr(i) == &Attr::Any);
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO cpe_match(product, vendor, cve_id, config_idx,
                        node_idx, match_idx, criteria, start_incl, start_excl, end_incl, end_excl,
                        version, upd, simple, config_simple)
                     VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                )?
                .execute(rusqlite::params![
                    product,
                    vendor,
                    id,
                    ci as i64,
                    ni as i64,
                    mi as i64,
                    m.criteria,
                    m.version_start_including,
                    m.version_start_excluding,
                    m.version_end_including,
                    m.version_end_excluding,
                    stored(cpe.version()),
                    stored(cpe.update()),
                    simple,
                    config_simple,
                ])?;
                ctx.report.cpe_matches += 1;
            }
        }
    }
    ctx.report.imported += 1;
    Ok(())
}
