//! A synthetic OpenCellID / MLS cell dump with the real column layout.

use std::io::{BufWriter, Write};
use std::path::Path;

use geo_locate::{CellKey, Radio};

use super::Rng;

/// The dump's header line.
pub const HEADER: &str =
    "radio,mcc,net,area,cell,unit,lon,lat,range,samples,changeable,created,updated,averageSignal";

/// Writes `rows` data rows (plus the header) to `path` and returns every `sample_every`-th key
/// written, with its PSC, for lookup benchmarks. The radio mix (GSM 30 %, UMTS 30 %, LTE 35 %,
/// NR 5 %), field widths and value ranges follow the real dump; cells come in areas of about 40
/// cells within 20 km of the area's centre, as in the real dump (≈ 40 M cells, ≈ 1 M areas).
pub fn write_dump(
    path: &Path,
    rows: u64,
    seed: u64,
    sample_every: u64,
) -> std::io::Result<Vec<(CellKey, Option<u16>)>> {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    writeln!(out, "{HEADER}")?;
    let mut rng = Rng::new(seed);
    let mut sample = Vec::new();
    let mut line = String::with_capacity(128);
    let areas = (rows / 40).max(1);
    for i in 0..rows {
        let r = rng.below(100);
        let radio = match r {
            0..30 => Radio::Gsm,
            30..60 => Radio::Wcdma,
            60..95 => Radio::Lte,
            _ => Radio::Nr,
        };
        // The area: a deterministic function of its index, so its cells share MCC/MNC/LAC and
        // a centre.
        let area = rng.below(areas);
        let mut arng = Rng::new(area ^ 0x5eed);
        let mcc = 200 + arng.below(60) as u16 * 10;
        let mnc = 1 + arng.below(20) as u16;
        let lac = 1 + arng.below(65_000) as u32;
        let (clat, clon) = (arng.range(-55.0, 70.0), arng.range(-170.0, 170.0));
        let cid = 1 + rng.below(radio.max_cell_id().min(1 << 32) - 1);
        let psc = (radio != Radio::Gsm).then(|| rng.below(500) as u16);
        let lat = (clat + rng.range(-0.18, 0.18)).clamp(-89.0, 89.0);
        let lon = (clon + rng.range(-0.18, 0.18)).clamp(-179.9, 179.9);
        let name = match radio {
            Radio::Gsm => "GSM",
            Radio::Wcdma => "UMTS",
            Radio::Lte => "LTE",
            Radio::Nr => "NR",
            Radio::Cdma => "CDMA",
        };
        line.clear();
        use std::fmt::Write as _;
        let _ = write!(
            line,
            "{name},{mcc},{mnc},{lac},{cid},{},{lon:.6},{lat:.6},{},{},1,1459692000,{},0\r\n",
            psc.map(|p| p.to_string()).unwrap_or_default(),
            100 + rng.below(20_000),
            1 + rng.below(500),
            1_600_000_000 + rng.below(100_000_000),
        );
        out.write_all(line.as_bytes())?;
        if sample_every > 0 && i % sample_every == 0 {
            sample.push((
                CellKey {
                    radio,
                    mcc,
                    mnc,
                    lac,
                    cid,
                },
                psc,
            ));
        }
    }
    out.flush()?;
    Ok(sample)
}
