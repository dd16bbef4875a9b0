//! End-to-end test support: builds the `mtp` binary, the bundled plugins, the fakes and the ABI fixture
//! plugins the tests in `tests/tests/` run, and finds them. The fakes live in `mtp-fakes`, the
//! benchmarks in `mtp-bench`.

pub mod env_docs;
pub mod harness;
pub mod serve;
pub mod world;
