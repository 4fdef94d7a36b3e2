//! Streaming importers: the OpenCellID/MLS cell dump and WiGLE CSV exports.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::build::{Policy, Sorter, merge};
use super::record::{AreaRecord, BeaconKind, BeaconRecord, CellRecord, NO_PSC, Spot};
use super::table::{RecordReader, Table, TableWriter};
use super::{AREAS, BEACONS, CELLS, DbStats, read_stats, write_stats};
use crate::cell::{AreaKey, CellKey, Radio};
use crate::error::{Error, Result};
use crate::geo::{Frame, LatLon};
use crate::learning::{Emitter, LearningConfig, Summary};
use crate::mac::MacAddr;
use crate::query::is_opted_out;

/// The input formats the importer understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InputFormat {
    /// `cell_towers.csv` of OpenCellID or the MLS export:
    /// `radio,mcc,net,area,cell,unit,lon,lat,range,samples,changeable,created,updated,averageSignal`
    /// (header optional; longitude before latitude).
    OpenCellId,
    /// A WiGLE CSV export, version 1.4 or 1.6 (preamble line optional; columns by header name).
    Wigle,
}

/// Options of an import. Every default is documented.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportOptions {
    /// Keep only cells of these MCCs (empty: all). Applied while streaming.
    pub mcc: Vec<u16>,
    /// Keep only cells of these MNCs (empty: all).
    pub mnc: Vec<u16>,
    /// Skip cell-dump rows with fewer samples than this. Default 0 (keep all).
    pub min_samples: u32,
    /// Records per sorted chunk; bounds memory (28 bytes per cell record). Default 1 Mi.
    pub chunk_records: usize,
    /// How many bad lines to keep with their line number and reason. Default 100 (all are
    /// counted).
    pub max_bad_lines: usize,
    /// How WiGLE sightings are weighted when learning positions. Default
    /// [`LearningConfig::default`] (see [`learning`](crate::learning)).
    pub learning: LearningConfig,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            mcc: Vec::new(),
            mnc: Vec::new(),
            min_samples: 0,
            chunk_records: 1 << 20,
            max_bad_lines: 100,
            learning: LearningConfig::default(),
        }
    }
}

/// Progress of a running import.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportProgress {
    /// Bytes read from the input file (compressed bytes for `.gz`).
    pub bytes_read: u64,
    /// Data rows read so far.
    pub rows_read: u64,
    /// Rows accepted so far.
    pub accepted: u64,
    /// True once reading is done and the tables are being merged.
    pub merging: bool,
}

/// Why a row was not imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Not parseable: missing or non-numeric fields.
    Malformed,
    /// A radio/type this importer does not know.
    UnknownRadio,
    /// Cell key out of range (MCC, MNC, LAC or CID).
    InvalidCell,
    /// Coordinates missing, out of range or 0/0.
    InvalidPosition,
    /// A MAC that does not parse, or a placeholder MAC.
    InvalidMac,
    /// Filtered out by the MCC/MNC options.
    Filtered,
    /// Fewer samples than [`ImportOptions::min_samples`].
    TooFewSamples,
    /// SSID or name containing `_nomap` or `_optout`.
    OptedOut,
    /// A WiFi network without an SSID.
    HiddenSsid,
    /// A WiGLE sighting whose GPS accuracy was too poor (WiFi/BLE > 200 m, cell > 1 km).
    PoorFix,
    /// A row type that cannot be stored (WiGLE CDMA rows carry no MCC).
    Unsupported,
}

impl SkipReason {
    /// The snake-case name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Malformed => "malformed",
            SkipReason::UnknownRadio => "unknown_radio",
            SkipReason::InvalidCell => "invalid_cell",
            SkipReason::InvalidPosition => "invalid_position",
            SkipReason::InvalidMac => "invalid_mac",
            SkipReason::Filtered => "filtered",
            SkipReason::TooFewSamples => "too_few_samples",
            SkipReason::OptedOut => "opted_out",
            SkipReason::HiddenSsid => "hidden_ssid",
            SkipReason::PoorFix => "poor_fix",
            SkipReason::Unsupported => "unsupported",
        }
    }

    /// True for reasons that mean the line itself is bad (as opposed to a filter or a privacy
    /// rule); those are listed in [`ImportReport::bad_lines`].
    pub fn is_bad_line(self) -> bool {
        matches!(
            self,
            SkipReason::Malformed
                | SkipReason::UnknownRadio
                | SkipReason::InvalidCell
                | SkipReason::InvalidPosition
                | SkipReason::InvalidMac
        )
    }
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One bad line: where and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadLine {
    /// 1-based line number in the (decompressed) input.
    pub line: u64,
    /// Why it was skipped.
    pub reason: SkipReason,
    /// What was wrong, for a human.
    pub detail: String,
}

/// The outcome of an import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// The detected or given format.
    pub format: InputFormat,
    /// Data rows read (header and preamble not counted).
    pub rows_read: u64,
    /// Rows accepted into the database (before merging equal keys).
    pub imported: u64,
    /// Rows skipped, by reason.
    pub skipped: BTreeMap<SkipReason, u64>,
    /// The first bad lines (see [`ImportOptions::max_bad_lines`]).
    pub bad_lines: Vec<BadLine>,
    /// Set when the input ended early (a truncated `.gz`, a read error): what happened and the
    /// last line read. Everything read before it was imported.
    pub truncated: Option<String>,
    /// Bytes read from the input.
    pub bytes_read: u64,
    /// Counts of the database after the import.
    pub stats: DbStats,
}

/// Counts the bytes pulled from the underlying reader (the compressed file for `.gz`).
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

struct Ctx<'a> {
    options: &'a ImportOptions,
    report: ImportReport,
    cells: Sorter<CellRecord>,
    beacons: Sorter<BeaconRecord>,
}

impl Ctx<'_> {
    fn skip(&mut self, line: u64, reason: SkipReason, detail: impl FnOnce() -> String) {
        *self.report.skipped.entry(reason).or_insert(0) += 1;
        if reason.is_bad_line() && self.report.bad_lines.len() < self.options.max_bad_lines {
            self.report.bad_lines.push(BadLine {
                line,
                reason,
                detail: detail(),
            });
        }
    }

    fn keep_cell(&self, key: &CellKey) -> bool {
        (self.options.mcc.is_empty() || self.options.mcc.contains(&key.mcc))
            && (self.options.mnc.is_empty() || self.options.mnc.contains(&key.mnc))
    }
}

pub(super) fn import_reader(
    dir: &Path,
    input: &Path,
    reader: impl Read,
    format: Option<InputFormat>,
    options: &ImportOptions,
    progress: &mut dyn FnMut(&ImportProgress),
) -> Result<ImportReport> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
    let tmp = dir.join("import.tmp");
    // Leftovers of an interrupted import.
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io("remove", &tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
    let result = run_import(dir, input, &tmp, reader, format, options, progress);
    // Best effort: the runs are scratch data and the next import removes them anyway.
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

fn run_import<'a>(
    dir: &Path,
    input_name: &Path,
    tmp: &Path,
    reader: impl Read + 'a,
    format: Option<InputFormat>,
    options: &ImportOptions,
    progress: &mut dyn FnMut(&ImportProgress),
) -> Result<ImportReport> {
    let count = Arc::new(AtomicU64::new(0));
    let counting = Counting {
        inner: reader,
        count: Arc::clone(&count),
    };
    let mut buffered = BufReader::with_capacity(1 << 16, counting);
    let head = buffered
        .fill_buf()
        .map_err(|e| Error::io("read", input_name, e))?
        .to_vec();
    let input: Box<dyn Read + 'a> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(BufReader::with_capacity(
            1 << 16,
            flate2::bufread::MultiGzDecoder::new(buffered),
        ))
    } else {
        Box::new(buffered)
    };
    let mut input = BufReader::with_capacity(1 << 16, input);
    let format = match format {
        Some(f) => f,
        None => detect(
            input
                .fill_buf()
                .map_err(|e| Error::io("read", input_name, e))?,
        ),
    };
    // Chunk memory is shared by the two sorters; WiGLE files are mostly beacons.
    let chunk = options.chunk_records.max(1024);
    let (cell_policy, cell_chunk, beacon_chunk) = match format {
        InputFormat::OpenCellId => (Policy::Replace, chunk, 1024),
        InputFormat::Wigle => (Policy::Combine, chunk / 4, chunk),
    };
    let mut ctx = Ctx {
        options,
        report: ImportReport {
            format,
            rows_read: 0,
            imported: 0,
            skipped: BTreeMap::new(),
            bad_lines: Vec::new(),
            truncated: None,
            bytes_read: 0,
            stats: DbStats::default(),
        },
        cells: Sorter::new(tmp.to_owned(), "cells", cell_chunk, cell_policy),
        beacons: Sorter::new(tmp.to_owned(), "beacons", beacon_chunk, Policy::Combine),
    };
    let mut tick = |ctx: &Ctx<'_>, merging: bool| {
        progress(&ImportProgress {
            bytes_read: count.load(Ordering::Relaxed),
            rows_read: ctx.report.rows_read,
            accepted: ctx.report.imported,
            merging,
        });
    };
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        // Split on '\n' only: with the default CRLF handling the csv crate reports the line of
        // a record after a CRLF one too low. Fields are trimmed, so a trailing '\r' is harmless.
        .terminator(csv::Terminator::Any(b'\n'))
        .buffer_capacity(1 << 16)
        .from_reader(input);
    match format {
        InputFormat::OpenCellId => parse_ocid(&mut csv, &mut ctx, &mut tick)?,
        InputFormat::Wigle => parse_wigle(&mut csv, &mut ctx, &mut tick)?,
    }
    ctx.report.bytes_read = count.load(Ordering::Relaxed);
    tick(&ctx, true);

    let mut stats = read_stats(dir)?;
    if !ctx.cells.is_empty() {
        rebuild_cells(dir, ctx.cells, cell_policy, &mut stats)?;
    }
    if !ctx.beacons.is_empty() {
        rebuild_beacons(dir, ctx.beacons, &mut stats)?;
    }
    write_stats(dir, &stats)?;
    let db = super::GeoDb::open(dir)?;
    ctx.report.stats = db.stats()?;
    Ok(ctx.report)
}

fn detect(head: &[u8]) -> InputFormat {
    let text = String::from_utf8_lossy(&head[..head.len().min(4096)]);
    let first = text
        .lines()
        .next()
        .unwrap_or("")
        .trim_start_matches('\u{feff}');
    if first.starts_with("WigleWifi") || first.starts_with("MAC,") {
        InputFormat::Wigle
    } else {
        InputFormat::OpenCellId
    }
}

type CsvReader<'a> = csv::Reader<BufReader<Box<dyn Read + 'a>>>;

/// Reads the next record; a read error ends the input (recorded as truncation).
fn next_record(
    csv: &mut CsvReader<'_>,
    rec: &mut csv::ByteRecord,
    ctx: &mut Ctx<'_>,
) -> Option<u64> {
    loop {
        match csv.read_byte_record(rec) {
            Ok(true) => return Some(rec.position().map_or(0, csv::Position::line)),
            Ok(false) => return None,
            Err(e) => {
                let line = e.position().map_or(0, csv::Position::line);
                if let csv::ErrorKind::Io(io) = e.kind() {
                    ctx.report.truncated = Some(format!(
                        "input ended early after line {}: {io}",
                        csv.position().line()
                    ));
                    return None;
                }
                ctx.report.rows_read += 1;
                ctx.skip(line, SkipReason::Malformed, || e.to_string());
            }
        }
    }
}

fn field(rec: &csv::ByteRecord, i: Option<usize>) -> &[u8] {
    i.and_then(|i| rec.get(i)).unwrap_or(b"").trim_ascii()
}

fn parse_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 19 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(c - b'0');
    }
    Some(v)
}

fn parse_f64(b: &[u8]) -> Option<f64> {
    std::str::from_utf8(b)
        .ok()?
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Column positions of the cell dump, found by header name or the standard order.
struct OcidColumns {
    radio: Option<usize>,
    mcc: Option<usize>,
    net: Option<usize>,
    area: Option<usize>,
    cell: Option<usize>,
    unit: Option<usize>,
    lon: Option<usize>,
    lat: Option<usize>,
    range: Option<usize>,
    samples: Option<usize>,
}

impl OcidColumns {
    fn standard() -> Self {
        OcidColumns {
            radio: Some(0),
            mcc: Some(1),
            net: Some(2),
            area: Some(3),
            cell: Some(4),
            unit: Some(5),
            lon: Some(6),
            lat: Some(7),
            range: Some(8),
            samples: Some(9),
        }
    }

    fn from_header(rec: &csv::ByteRecord) -> Self {
        let find = |names: &[&str]| {
            rec.iter().position(|f| {
                let f = String::from_utf8_lossy(f.trim_ascii()).to_ascii_lowercase();
                names.iter().any(|n| f.trim_start_matches('\u{feff}') == *n)
            })
        };
        OcidColumns {
            radio: find(&["radio"]),
            mcc: find(&["mcc"]),
            net: find(&["net", "mnc"]),
            area: find(&["area", "lac", "tac"]),
            cell: find(&["cell", "cid", "cellid"]),
            unit: find(&["unit", "psc", "pci"]),
            lon: find(&["lon", "longitude"]),
            lat: find(&["lat", "latitude"]),
            range: find(&["range"]),
            samples: find(&["samples"]),
        }
    }
}

fn parse_radio(b: &[u8]) -> Option<Radio> {
    Some(match b {
        b"GSM" | b"gsm" => Radio::Gsm,
        b"UMTS" | b"umts" | b"WCDMA" | b"wcdma" => Radio::Wcdma,
        b"LTE" | b"lte" => Radio::Lte,
        b"NR" | b"nr" => Radio::Nr,
        b"CDMA" | b"cdma" => Radio::Cdma,
        _ => return None,
    })
}

fn parse_ocid(
    csv: &mut CsvReader<'_>,
    ctx: &mut Ctx<'_>,
    tick: &mut dyn FnMut(&Ctx<'_>, bool),
) -> Result<()> {
    let mut rec = csv::ByteRecord::new();
    let mut cols = OcidColumns::standard();
    let mut first = true;
    while let Some(line) = next_record(csv, &mut rec, ctx) {
        if first {
            first = false;
            let f0 = rec.get(0).unwrap_or(b"").trim_ascii();
            let f0 = f0.strip_prefix("\u{feff}".as_bytes()).unwrap_or(f0);
            if f0.eq_ignore_ascii_case(b"radio") {
                cols = OcidColumns::from_header(&rec);
                if cols.radio.is_none() || cols.lat.is_none() || cols.lon.is_none() {
                    return Err(Error::InvalidInput(
                        "cell dump header lacks radio, lat or lon".into(),
                    ));
                }
                continue;
            }
        }
        ctx.report.rows_read += 1;
        if ctx.report.rows_read.is_multiple_of(65_536) {
            tick(ctx, false);
        }
        if let Some(r) = ocid_row(&rec, &cols, line, ctx) {
            ctx.report.imported += 1;
            ctx.cells.push(r)?;
        }
    }
    Ok(())
}

fn ocid_row(
    rec: &csv::ByteRecord,
    cols: &OcidColumns,
    line: u64,
    ctx: &mut Ctx<'_>,
) -> Option<CellRecord> {
    let radio_f = field(rec, cols.radio);
    let Some(radio) = parse_radio(radio_f) else {
        let reason = if radio_f.is_empty() {
            SkipReason::Malformed
        } else {
            SkipReason::UnknownRadio
        };
        ctx.skip(line, reason, || format!("radio {:?}", text(radio_f)));
        return None;
    };
    let nums = (
        parse_u64(field(rec, cols.mcc)),
        parse_u64(field(rec, cols.net)),
        parse_u64(field(rec, cols.area)),
        parse_u64(field(rec, cols.cell)),
    );
    let (Some(mcc), Some(mnc), Some(lac), Some(cid)) = nums else {
        ctx.skip(line, SkipReason::Malformed, || {
            "mcc, net, area or cell is not a number".into()
        });
        return None;
    };
    let key = CellKey {
        radio,
        mcc: u16::try_from(mcc).unwrap_or(u16::MAX),
        mnc: u16::try_from(mnc).unwrap_or(u16::MAX),
        lac: u32::try_from(lac).unwrap_or(u32::MAX),
        cid,
    };
    if let Err(e) = key.validate() {
        ctx.skip(line, SkipReason::InvalidCell, || e.to_string());
        return None;
    }
    if !ctx.keep_cell(&key) {
        ctx.skip(line, SkipReason::Filtered, String::new);
        return None;
    }
    let (lon, lat) = (
        parse_f64(field(rec, cols.lon)),
        parse_f64(field(rec, cols.lat)),
    );
    let Some(pos) = lat.zip(lon).and_then(|(lat, lon)| LatLon::new(lat, lon)) else {
        ctx.skip(line, SkipReason::InvalidPosition, || {
            format!(
                "lon {:?} lat {:?}",
                text(field(rec, cols.lon)),
                text(field(rec, cols.lat))
            )
        });
        return None;
    };
    if pos.lat == 0.0 && pos.lon == 0.0 {
        ctx.skip(line, SkipReason::InvalidPosition, || "position 0/0".into());
        return None;
    }
    let samples = parse_u64(field(rec, cols.samples)).unwrap_or(0);
    if samples < u64::from(ctx.options.min_samples) {
        ctx.skip(line, SkipReason::TooFewSamples, String::new);
        return None;
    }
    let range = parse_f64(field(rec, cols.range)).unwrap_or(0.0).max(0.0);
    let psc = parse_u64(field(rec, cols.unit))
        .filter(|p| *p < u64::from(NO_PSC))
        .map_or(NO_PSC, |p| p as u16);
    Some(CellRecord {
        key,
        psc,
        spot: Spot::new(pos, range, u32::try_from(samples).unwrap_or(u32::MAX)),
    })
}

/// Column positions of a WiGLE CSV, by header name.
struct WigleColumns {
    mac: usize,
    ssid: Option<usize>,
    lat: usize,
    lon: usize,
    accuracy: Option<usize>,
    rssi: Option<usize>,
    kind: Option<usize>,
}

fn parse_wigle(
    csv: &mut CsvReader<'_>,
    ctx: &mut Ctx<'_>,
    tick: &mut dyn FnMut(&Ctx<'_>, bool),
) -> Result<()> {
    let mut rec = csv::ByteRecord::new();
    let mut cols: Option<WigleColumns> = None;
    while let Some(line) = next_record(csv, &mut rec, ctx) {
        let Some(c) = &cols else {
            let f0 = String::from_utf8_lossy(rec.get(0).unwrap_or(b"")).into_owned();
            if f0.trim_start_matches('\u{feff}').starts_with("WigleWifi") {
                continue; // the preamble
            }
            let find = |name: &str| {
                rec.iter().position(|f| {
                    String::from_utf8_lossy(f.trim_ascii())
                        .trim_start_matches('\u{feff}')
                        .eq_ignore_ascii_case(name)
                })
            };
            let (Some(mac), Some(lat), Some(lon)) = (
                find("MAC"),
                find("CurrentLatitude"),
                find("CurrentLongitude"),
            ) else {
                return Err(Error::InvalidInput(format!(
                    "line {line}: WiGLE header lacks MAC, CurrentLatitude or CurrentLongitude"
                )));
            };
            cols = Some(WigleColumns {
                mac,
                ssid: find("SSID"),
                lat,
                lon,
                accuracy: find("AccuracyMeters"),
                rssi: find("RSSI"),
                kind: find("Type"),
            });
            continue;
        };
        ctx.report.rows_read += 1;
        if ctx.report.rows_read.is_multiple_of(65_536) {
            tick(ctx, false);
        }
        wigle_row(&rec, c, line, ctx)?;
    }
    Ok(())
}

fn wigle_row(rec: &csv::ByteRecord, c: &WigleColumns, line: u64, ctx: &mut Ctx<'_>) -> Result<()> {
    let kind = text(field(rec, c.kind));
    let kind = if kind.is_empty() {
        "WIFI".to_owned()
    } else {
        kind.to_ascii_uppercase()
    };
    let name = text(field(rec, c.ssid));
    let (lat, lon) = (
        parse_f64(field(rec, Some(c.lat))),
        parse_f64(field(rec, Some(c.lon))),
    );
    let pos = lat.zip(lon).and_then(|(lat, lon)| LatLon::new(lat, lon));
    let Some(pos) = pos.filter(|p| !(p.lat == 0.0 && p.lon == 0.0)) else {
        ctx.skip(line, SkipReason::InvalidPosition, || {
            format!(
                "CurrentLatitude {:?} CurrentLongitude {:?}",
                text(field(rec, Some(c.lat))),
                text(field(rec, Some(c.lon)))
            )
        });
        return Ok(());
    };
    let accuracy_field = parse_f64(field(rec, c.accuracy));
    let accuracy = accuracy_field.unwrap_or(0.0);
    // What the row says about distance (see `learning`): WiGLE writes 0 for an unknown RSSI.
    let rssi = parse_f64(field(rec, c.rssi)).filter(|s| *s < 0.0);
    let sighting = |emitter: Emitter| {
        let w = ctx
            .options
            .learning
            .weight(emitter, rssi, accuracy_field.filter(|a| *a > 0.0));
        Spot::from_summary(&Summary::sighting(pos, w))
    };
    let mac_text = text(field(rec, Some(c.mac)));
    match kind.as_str() {
        "WIFI" | "BT" | "BLE" => {
            let beacon = if kind == "WIFI" {
                BeaconKind::Wifi
            } else {
                BeaconKind::Ble
            };
            if is_opted_out(&name) {
                ctx.skip(line, SkipReason::OptedOut, String::new);
                return Ok(());
            }
            if beacon == BeaconKind::Wifi && name.trim().is_empty() {
                ctx.skip(line, SkipReason::HiddenSsid, String::new);
                return Ok(());
            }
            let Ok(mac) = MacAddr::parse_station(&mac_text) else {
                ctx.skip(line, SkipReason::InvalidMac, || format!("MAC {mac_text:?}"));
                return Ok(());
            };
            if accuracy > 200.0 {
                ctx.skip(line, SkipReason::PoorFix, String::new);
                return Ok(());
            }
            ctx.report.imported += 1;
            ctx.beacons.push(BeaconRecord {
                kind: beacon,
                mac,
                spot: sighting(if beacon == BeaconKind::Wifi {
                    Emitter::Wifi
                } else {
                    Emitter::Ble
                }),
            })
        }
        "GSM" | "LTE" | "WCDMA" | "NR" => {
            let radio = match kind.as_str() {
                "GSM" => Radio::Gsm,
                "LTE" => Radio::Lte,
                "WCDMA" => Radio::Wcdma,
                _ => Radio::Nr,
            };
            let Some(key) = wigle_cell_key(radio, &mac_text) else {
                ctx.skip(line, SkipReason::InvalidCell, || {
                    format!("cell id {mac_text:?} is not MCCMNC_LAC_CID")
                });
                return Ok(());
            };
            if let Err(e) = key.validate() {
                ctx.skip(line, SkipReason::InvalidCell, || e.to_string());
                return Ok(());
            }
            if !ctx.keep_cell(&key) {
                ctx.skip(line, SkipReason::Filtered, String::new);
                return Ok(());
            }
            if accuracy > 1_000.0 {
                ctx.skip(line, SkipReason::PoorFix, String::new);
                return Ok(());
            }
            ctx.report.imported += 1;
            ctx.cells.push(CellRecord {
                key,
                psc: NO_PSC,
                spot: sighting(Emitter::Cell(radio)),
            })
        }
        "CDMA" => {
            ctx.skip(line, SkipReason::Unsupported, String::new);
            Ok(())
        }
        _ => {
            ctx.skip(line, SkipReason::UnknownRadio, || format!("Type {kind:?}"));
            Ok(())
        }
    }
}

/// Decodes WiGLE's `MCCMNC_LAC_CID` cell identifier (MCC is the first three digits).
fn wigle_cell_key(radio: Radio, s: &str) -> Option<CellKey> {
    let mut parts = s.split('_');
    let (mccmnc, lac, cid) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || mccmnc.len() < 5 || !mccmnc.is_ascii() {
        return None;
    }
    Some(CellKey {
        radio,
        mcc: mccmnc[..3].parse().ok()?,
        mnc: mccmnc[3..].parse().ok()?,
        lac: lac.parse().ok()?,
        cid: cid.parse().ok()?,
    })
}

/// The area being built: its key, the frame of its first cell, sums of east/north metres,
/// their box, and the cell count. Computed in a local frame, so an area across the 180°
/// meridian gets its centre there, not at 0°.
struct AreaAcc {
    key: AreaKey,
    frame: Frame,
    sx: f64,
    sy: f64,
    min: (f64, f64),
    max: (f64, f64),
    n: u32,
}

/// Folds consecutive cells (sorted, so grouped by area) into area records.
struct AreaBuilder {
    current: Option<AreaAcc>,
}

impl AreaBuilder {
    fn add(&mut self, cell: &CellRecord, out: &mut TableWriter<AreaRecord>) -> Result<()> {
        let area = cell.key.area();
        let p = cell.spot.position();
        match &mut self.current {
            Some(cur) if cur.key == area => {
                let (x, y) = cur.frame.to_xy(p);
                cur.sx += x;
                cur.sy += y;
                cur.min = (cur.min.0.min(x), cur.min.1.min(y));
                cur.max = (cur.max.0.max(x), cur.max.1.max(y));
                cur.n += 1;
            }
            _ => {
                self.flush(out)?;
                self.current = Some(AreaAcc {
                    key: area,
                    frame: Frame::new(p),
                    sx: 0.0,
                    sy: 0.0,
                    min: (0.0, 0.0),
                    max: (0.0, 0.0),
                    n: 1,
                });
            }
        }
        Ok(())
    }

    fn flush(&mut self, out: &mut TableWriter<AreaRecord>) -> Result<()> {
        if let Some(a) = self.current.take() {
            let n = f64::from(a.n);
            let (cx, cy) = (a.sx / n, a.sy / n);
            // Ichnaea's area radius: distance to the farthest corner of the cells' box.
            let radius = [
                (a.min.0, a.min.1),
                (a.min.0, a.max.1),
                (a.max.0, a.min.1),
                (a.max.0, a.max.1),
            ]
            .iter()
            .map(|&(x, y)| (x - cx).hypot(y - cy))
            .fold(0.0, f64::max);
            out.push(&AreaRecord {
                key: a.key,
                spot: Spot::new(a.frame.to_latlon(cx, cy), radius, a.n),
            })?;
        }
        Ok(())
    }
}

fn rebuild_cells(
    dir: &Path,
    sorter: Sorter<CellRecord>,
    policy: Policy,
    stats: &mut DbStats,
) -> Result<()> {
    let cells_path = dir.join(CELLS);
    let mut sources: Vec<RecordReader<CellRecord>> = Vec::new();
    if let Some(base) = Table::<CellRecord>::open(&cells_path)? {
        sources.push(base.reader()?);
    }
    let has_base = !sources.is_empty();
    sources.extend(sorter.finish()?);
    let mut cells_out = TableWriter::<CellRecord>::create(&cells_path)?;
    let mut areas_out = TableWriter::<AreaRecord>::create(&dir.join(AREAS))?;
    let mut areas = AreaBuilder { current: None };
    let mut by_radio: BTreeMap<String, u64> = BTreeMap::new();
    merge(sources, policy, has_base, &mut cells_out, |c| {
        *by_radio.entry(c.key.radio.as_str().to_owned()).or_insert(0) += 1;
        areas.add(c, &mut areas_out)
    })?;
    areas.flush(&mut areas_out)?;
    stats.cells = cells_out.finish()?;
    stats.areas = areas_out.finish()?;
    stats.cells_by_radio = by_radio;
    Ok(())
}

fn rebuild_beacons(dir: &Path, sorter: Sorter<BeaconRecord>, stats: &mut DbStats) -> Result<()> {
    let path = dir.join(BEACONS);
    let mut sources: Vec<RecordReader<BeaconRecord>> = Vec::new();
    if let Some(base) = Table::<BeaconRecord>::open(&path)? {
        sources.push(base.reader()?);
    }
    let has_base = !sources.is_empty();
    sources.extend(sorter.finish()?);
    let mut out = TableWriter::<BeaconRecord>::create(&path)?;
    let (mut wifi, mut ble) = (0u64, 0u64);
    merge(sources, Policy::Combine, has_base, &mut out, |b| {
        match b.kind {
            BeaconKind::Wifi => wifi += 1,
            BeaconKind::Ble => ble += 1,
        }
        Ok(())
    })?;
    out.finish()?;
    stats.wifi = wifi;
    stats.ble = ble;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wigle_cell_ids_decode() {
        let k = wigle_cell_key(Radio::Lte, "310410_7943_2102").unwrap();
        assert_eq!((k.mcc, k.mnc, k.lac, k.cid), (310, 410, 7943, 2102));
        let k = wigle_cell_key(Radio::Gsm, "26201_5_77").unwrap();
        assert_eq!((k.mcc, k.mnc), (262, 1));
        assert!(wigle_cell_key(Radio::Gsm, "2620_5_77").is_none());
        assert!(wigle_cell_key(Radio::Gsm, "26201_5").is_none());
    }

    #[test]
    fn detects_formats() {
        assert_eq!(
            detect(b"WigleWifi-1.6,appRelease=2.70\n"),
            InputFormat::Wigle
        );
        assert_eq!(detect(b"MAC,SSID,AuthMode\n"), InputFormat::Wigle);
        assert_eq!(detect(b"radio,mcc,net\n"), InputFormat::OpenCellId);
        assert_eq!(
            detect(b"GSM,262,1,5,6,,13.1,52.1,1000,3,1,0,0,0\n"),
            InputFormat::OpenCellId
        );
    }

    #[test]
    fn integers_parse_strictly() {
        assert_eq!(parse_u64(b"262"), Some(262));
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"-1"), None);
        assert_eq!(parse_u64(b"99999999999999999999"), None);
    }
}
