//! Opening inputs: gzip, zip and directories, format detection by content, progress counting.

use std::io::{BufRead, BufReader, Cursor, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::{ImportProgress, ImportReport, VulnDb, VulnDbError, epss, kev, nvd, osv};
use crate::vulndb::error::Result;

/// The input formats, recognised from the content (the file name is not trusted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// NVD CVE JSON 2.0: an API answer or a feed file (yearly, `modified`, `recent`): an
    /// object with `vulnerabilities: [{cve: …}]`.
    Nvd,
    /// One OSV record (an object with `id`, `modified`, `affected`).
    Osv,
    /// A zip of OSV records, as OSV publishes each ecosystem's `all.zip`.
    OsvZip,
    /// A directory of OSV `.json` records (searched recursively).
    OsvDir,
    /// The CISA KEV catalog as JSON (`catalogVersion`, `vulnerabilities: [{cveID, …}]`).
    KevJson,
    /// The CISA KEV catalog as CSV (header `cveID,vendorProject,…`).
    KevCsv,
    /// A FIRST EPSS CSV (`#model_version:…,score_date:…`, then `cve,epss,percentile`).
    Epss,
}

impl Format {
    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Format::Nvd => "NVD CVE JSON 2.0",
            Format::Osv => "OSV record",
            Format::OsvZip => "OSV zip",
            Format::OsvDir => "OSV directory",
            Format::KevJson => "CISA KEV JSON",
            Format::KevCsv => "CISA KEV CSV",
            Format::Epss => "FIRST EPSS CSV",
        }
    }
}

/// How many bytes of (decompressed) content are looked at to recognise the format.
const SNIFF: usize = 64 * 1024;

/// Counts bytes read through it into a shared counter.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// State shared by the importers of one input.
pub(super) struct Ctx<'a> {
    pub report: ImportReport,
    progress: &'a mut dyn FnMut(ImportProgress),
    bytes: Arc<AtomicU64>,
}

impl Ctx<'_> {
    /// Counts one record read and reports progress now and then.
    pub fn record(&mut self) {
        self.report.records += 1;
        if self.report.records.is_multiple_of(512) {
            self.tick();
        }
    }

    pub fn tick(&mut self) {
        (self.progress)(ImportProgress {
            bytes_read: self.bytes.load(Ordering::Relaxed),
            records: self.report.records,
        });
    }

    fn finish(mut self) -> ImportReport {
        self.report.bytes = self.bytes.load(Ordering::Relaxed);
        self.tick();
        self.report
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> VulnDbError + '_ {
    move |source| VulnDbError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(super) fn import_path(
    db: &mut VulnDb,
    path: &Path,
    progress: &mut dyn FnMut(ImportProgress),
) -> Result<ImportReport> {
    let meta = std::fs::metadata(path).map_err(io_err(path))?;
    let bytes = Arc::new(AtomicU64::new(0));
    let mut ctx = Ctx {
        report: ImportReport::default(),
        progress,
        bytes: bytes.clone(),
    };
    if meta.is_dir() {
        ctx.report.format = Some(Format::OsvDir);
        let mut files = Vec::new();
        collect_json(path, &mut files, 0)?;
        files.sort();
        let mut pending = Vec::new();
        for file in files {
            let f = std::fs::File::open(&file).map_err(io_err(&file))?;
            let reader = Counting {
                inner: f,
                count: bytes.clone(),
            };
            let name = file
                .strip_prefix(path)
                .unwrap_or(&file)
                .display()
                .to_string();
            osv::push_lenient(db, BufReader::new(reader), &name, &mut pending, &mut ctx)?;
        }
        osv::write_batch(db, &mut pending, &mut ctx)?;
        return Ok(ctx.finish());
    }
    let mut file = std::fs::File::open(path).map_err(io_err(path))?;
    let mut magic = [0u8; 4];
    let n = read_up_to(&mut file, &mut magic).map_err(io_err(path))?;
    if n == 4 && magic == *b"PK\x03\x04" {
        drop(file);
        let f = std::fs::File::open(path).map_err(io_err(path))?;
        ctx.report.format = Some(Format::OsvZip);
        osv::import_zip(db, f, &bytes, &mut ctx)?;
        return Ok(ctx.finish());
    }
    let f = std::fs::File::open(path).map_err(io_err(path))?;
    let reader = Counting {
        inner: f,
        count: bytes.clone(),
    };
    import_stream(db, Box::new(reader), None, &mut ctx)?;
    Ok(ctx.finish())
}

fn collect_json(dir: &Path, out: &mut Vec<std::path::PathBuf>, depth: usize) -> Result<()> {
    if depth > 8 {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let p = entry.path();
        let ft = entry.file_type().map_err(io_err(&p))?;
        if ft.is_dir() {
            collect_json(&p, out, depth + 1)?;
        } else if p
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        {
            out.push(p);
        }
    }
    Ok(())
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

pub(super) fn import_reader(
    db: &mut VulnDb,
    reader: Box<dyn Read + '_>,
    progress: &mut dyn FnMut(ImportProgress),
) -> Result<ImportReport> {
    let bytes = Arc::new(AtomicU64::new(0));
    let mut ctx = Ctx {
        report: ImportReport::default(),
        progress,
        bytes: bytes.clone(),
    };
    let mut reader = Counting {
        inner: reader,
        count: bytes.clone(),
    };
    let mut magic = [0u8; 4];
    let n = read_up_to(&mut reader, &mut magic).map_err(|e| VulnDbError::Malformed {
        format: "input",
        detail: e.to_string(),
    })?;
    if n == 4 && magic == *b"PK\x03\x04" {
        // A zip needs seeking: buffer it (capped at 4 GiB).
        let mut buf = magic.to_vec();
        reader
            .take(4 << 30)
            .read_to_end(&mut buf)
            .map_err(|e| VulnDbError::Zip(e.to_string()))?;
        ctx.report.format = Some(Format::OsvZip);
        let local = Arc::new(AtomicU64::new(0));
        osv::import_zip(db, Cursor::new(buf), &local, &mut ctx)?;
        return Ok(ctx.finish());
    }
    let chained: Box<dyn Read + '_> = Box::new(Cursor::new(magic[..n].to_vec()).chain(reader));
    import_stream(db, chained, None, &mut ctx)?;
    Ok(ctx.finish())
}

pub(super) fn import_reader_as(
    db: &mut VulnDb,
    reader: Box<dyn Read + '_>,
    format: Format,
    progress: &mut dyn FnMut(ImportProgress),
) -> Result<ImportReport> {
    let bytes = Arc::new(AtomicU64::new(0));
    let mut ctx = Ctx {
        report: ImportReport::default(),
        progress,
        bytes: bytes.clone(),
    };
    let mut reader = Counting {
        inner: reader,
        count: bytes.clone(),
    };
    match format {
        Format::OsvDir => Err(VulnDbError::UnknownFormat {
            detail: "an OSV directory cannot be read from a stream".into(),
        }),
        Format::OsvZip => {
            let mut buf = Vec::new();
            (&mut reader)
                .take(4 << 30)
                .read_to_end(&mut buf)
                .map_err(|e| VulnDbError::Zip(e.to_string()))?;
            ctx.report.format = Some(Format::OsvZip);
            let local = Arc::new(AtomicU64::new(0));
            osv::import_zip(db, Cursor::new(buf), &local, &mut ctx)?;
            Ok(ctx.finish())
        }
        _ => {
            import_stream(db, Box::new(reader), Some(format), &mut ctx)?;
            Ok(ctx.finish())
        }
    }
}

/// Decompresses gzip when the magic says so, recognises the format and runs its importer.
fn import_stream(
    db: &mut VulnDb,
    raw: Box<dyn Read + '_>,
    forced: Option<Format>,
    ctx: &mut Ctx<'_>,
) -> Result<()> {
    let mut raw = BufReader::with_capacity(256 * 1024, raw);
    let head = raw.fill_buf().map_err(|e| VulnDbError::Malformed {
        format: "input",
        detail: e.to_string(),
    })?;
    let gz = head.starts_with(&[0x1f, 0x8b]);
    let inner: Box<dyn Read + '_> = if gz {
        Box::new(flate2::read::MultiGzDecoder::new(raw))
    } else {
        Box::new(raw)
    };
    let mut inner = BufReader::with_capacity(256 * 1024, inner);
    // Read a prefix to recognise the format, then put it back in front.
    let mut prefix = vec![0u8; SNIFF];
    let n = read_up_to(&mut inner, &mut prefix).map_err(|e| VulnDbError::Malformed {
        format: if gz { "gzip" } else { "input" },
        detail: e.to_string(),
    })?;
    prefix.truncate(n);
    let format = match forced {
        Some(f) => f,
        None => detect(&prefix)?,
    };
    ctx.report.format = Some(format);
    let reader = BufReader::with_capacity(256 * 1024, Cursor::new(prefix).chain(inner));
    match format {
        Format::Nvd => nvd::import(db, reader, ctx),
        Format::Osv => osv::import_one(db, reader, ctx),
        Format::KevJson => kev::import_json(db, reader, ctx),
        Format::KevCsv => kev::import_csv(db, reader, ctx),
        Format::Epss => epss::import(db, reader, ctx),
        Format::OsvZip | Format::OsvDir => Err(VulnDbError::UnknownFormat {
            detail: "a zip inside gzip is not supported".into(),
        }),
    }
}

/// Recognises the format from the first bytes of the (decompressed) content.
pub(super) fn detect(prefix: &[u8]) -> Result<Format> {
    let text = String::from_utf8_lossy(prefix);
    let t = text.trim_start_matches('\u{feff}').trim_start();
    if t.starts_with('{') {
        let has = |s: &str| t.contains(s);
        if has("\"catalogVersion\"") || (has("\"vulnerabilities\"") && has("\"cveID\"")) {
            return Ok(Format::KevJson);
        }
        if has("\"vulnerabilities\"") && (has("\"cve\"") || has("\"NVD_CVE\"")) {
            return Ok(Format::Nvd);
        }
        if has("\"id\"") && (has("\"modified\"") || has("\"affected\"")) {
            return Ok(Format::Osv);
        }
        return Err(VulnDbError::UnknownFormat {
            detail: "a JSON object without `vulnerabilities` (NVD, KEV) or `id`/`modified` (OSV)"
                .into(),
        });
    }
    let first_line = t.lines().next().unwrap_or("").to_ascii_lowercase();
    if first_line.starts_with("#model_version") || first_line.starts_with("cve,epss") {
        return Ok(Format::Epss);
    }
    if first_line.contains("cveid") && first_line.contains("vendorproject") {
        return Ok(Format::KevCsv);
    }
    let shown: String = t.chars().take(40).collect();
    Err(VulnDbError::UnknownFormat {
        detail: format!("it starts with {shown:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_by_content() {
        assert_eq!(
            detect(br#"{"resultsPerPage":1,"format":"NVD_CVE","vulnerabilities":[{"cve":{}}]}"#)
                .unwrap(),
            Format::Nvd
        );
        assert_eq!(
            detect(br#"{"title":"x","catalogVersion":"2026.01.01","vulnerabilities":[]}"#).unwrap(),
            Format::KevJson
        );
        assert_eq!(
            detect(br#" {"id":"DSA-1","modified":"x"}"#).unwrap(),
            Format::Osv
        );
        assert_eq!(
            detect(b"#model_version:v1,score_date:x\ncve,epss,percentile\n").unwrap(),
            Format::Epss
        );
        assert_eq!(
            detect(b"cveID,vendorProject,product\n").unwrap(),
            Format::KevCsv
        );
        assert!(detect(b"hello").is_err());
        assert!(detect(b"{\"a\":1}").is_err());
    }
}
