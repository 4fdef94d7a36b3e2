//! `ProbeFile::parse`: the nmap-service-probes format. Every input is a file or a typed error
//! naming a line of the input; every match line belongs to a probe and has a pattern, which
//! compiles for the `regex` crate or is refused with a reason. Templates fill from any match
//! without panicking, and a compiled probe set identifies the input itself as a reply.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sec_scan::ServiceProbes;
use sec_scan::probes::ProbeFile;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match ProbeFile::parse(text) {
        Ok(file) => {
            let set = ServiceProbes::new(file.clone());
            let report = set.report();
            assert_eq!(report.loaded + report.skipped, report.lines);
            for probe in &file.probes {
                let _ = set.identify(&probe.name, data);
                assert!((1..=9).contains(&probe.rarity));
                for m in &probe.matches {
                    assert!(!m.pattern.is_empty());
                    assert!(m.line > probe.line);
                    // Compiled or refused with a reason; a compiled one never matches "".
                    if let Ok(regex) = m.compile() {
                        assert!(!regex.is_match(b""));
                        if let Some(caps) = regex.captures(data) {
                            let filled = m.templates.fill(&caps);
                            assert_eq!(filled.cpes.len(), m.templates.cpes.len());
                        }
                    }
                }
            }
        }
        Err(e) => assert!(e.line >= 1 && e.line <= text.lines().count()),
    }
});
