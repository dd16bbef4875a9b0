//! Local fakes of the HTTP services the bundled providers talk to (Mapillary v4, Map the Paths Web,
//! Panoramax, Strava, Google Street View, and the template's file store),
//! usable from async and synchronous tests, benchmarks, `mtp demo` and the `mtp-fakes` binary.
//!
//! This crate depends on no mtp crate: a provider's tests can use it without building the host.
//! Every behaviour of a fake cites its source (the official client's code, the server's code, the API
//! documentation, collected in `docs/providers/`) or says it is an assumption.

pub mod fake_files;
pub mod fake_mapillary;
pub mod fake_mtpw;
pub mod fake_panoramax;
pub mod fake_strava;
pub mod fake_streetview;
pub mod panoramax_reader;
pub mod service;

pub use service::FakeService;
