//! What every provider's tests share: the conformance suite ([`conformance::run`]), the in-process
//! test host that logs in through a fake's consent page ([`host::BrowserHost`]), and sequences as the
//! host hands them over ([`sequences`]; generated JPEGs with the `generate` feature).
//!
//! A provider's `tests/conformance.rs` describes the provider under test as a
//! [`conformance::Subject`] (the integration, the fake it talks to, a sequence it accepts) and calls
//! [`conformance::run`]; every case either passes, fails with what it saw, or is skipped with the
//! reason the subject gave. This crate depends on no host crate.

pub mod conformance;
pub mod host;
pub mod sequences;

pub use mtp_fakes;
pub use mtp_fakes::FakeService;
