//! The WiGLE CSV export importer, fed through a reader exactly as `vigil geodb import` feeds a
//! file, into a fresh database directory ([`geo_fuzz::import`]).
#![no_main]

use geo_locate::store::InputFormat;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| geo_fuzz::import("wigle", InputFormat::Wigle, data));
