//! Test support for mtp-integrations: local fakes of the HTTP services the bundled plugins talk
//! to, usable from async and synchronous tests, benchmarks and the `mtp-fakes` binary.

pub mod bench;
pub mod fake_mapillary;
pub mod fake_mtpw;
pub mod harness;
