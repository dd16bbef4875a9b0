//! The ergonomic layer: implement [`Integration`] with plain async Rust, export it with
//! [`crate::export_plugin!`], and never touch an R-type.
//!
//! ```
//! use plugin_api::prelude::*;
//!
//! struct Hello;
//!
//! #[plugin_api::async_trait]
//! impl Integration for Hello {
//!     fn manifest(&self) -> Manifest {
//!         Manifest {
//!             id: "hello".into(),
//!             name: "Hello".into(),
//!             version: "0.1.0".into(),
//!             description: "Says hello to every sequence".into(),
//!             api_version: String::new(),
//!             required_env: vec!["HELLO_NAME".into()],
//!             optional_env: vec![],
//!             after: vec![],
//!             exports: vec![],
//!             consumes: vec![],
//!             ..Default::default()
//!         }
//!     }
//!
//!     async fn run(&self, ctx: &Context, request: RunRequest) -> Result<RunOutcome, PluginError> {
//!         let name = ctx.require_env("HELLO_NAME")?;
//!         ctx.info(format!("hello {name}, {} images", request.sequence.images.len()));
//!         Ok(RunOutcome::new(SequenceState::Published, "said hello"))
//!     }
//! }
//!
//! // In a cdylib crate: plugin_api::export_plugin!(Hello);
//! ```

mod context;
#[doc(hidden)]
pub mod export;
pub mod images;
pub mod rate_limit;
pub mod redirect;
pub mod refusals;
pub mod retry;
mod runtime;
pub mod settings;
pub mod testing;

pub use context::{Context, State};
pub use images::{Images, RunImages};
pub use runtime::plugin_runtime;

use crate::error::PluginError;
use crate::manifest::Manifest;
use crate::protocol::{AuthOutcome, AuthRequest, AuthStatus, Eligibility, RunOutcome, RunRequest};
use crate::sequence::SequenceDescriptor;

/// An integration: what a provider author implements.
///
/// Only [`Integration::manifest`] and [`Integration::run`] are required. Every method runs on the plugin's
/// own tokio runtime, so `tokio::spawn`, timers and `reqwest` work inside them.
#[async_trait::async_trait]
pub trait Integration: Send + Sync + 'static {
    /// Describes the integration. Called once when the host loads the library; keep it cheap and pure.
    fn manifest(&self) -> Manifest;

    /// Whether this integration accepts `sequence` (projection, transport type, size...). Default: yes.
    fn eligibility(&self, sequence: &SequenceDescriptor) -> Eligibility {
        let _ = sequence;
        Eligibility::eligible()
    }

    /// [`Integration::eligibility`] reading the images a page at a time ([`Images`]): what the host asks.
    /// `sequence` carries no images of its own when the host lends them. Override it so that a long
    /// sequence costs one page of memory; the default reads every image into one list and asks
    /// [`Integration::eligibility`].
    fn eligibility_paged(
        &self,
        sequence: &SequenceDescriptor,
        images: &Images<'_>,
    ) -> Result<Eligibility, PluginError> {
        if sequence.images.len() as u64 == images.len() {
            return Ok(self.eligibility(sequence));
        }
        let mut whole = sequence.header();
        whole.images = images.collect()?;
        Ok(self.eligibility(&whole))
    }

    /// Authorises the user (`mtp auth <id>`). Default: the integration needs no authorisation.
    async fn authorize(
        &self,
        ctx: &Context,
        request: AuthRequest,
    ) -> Result<AuthOutcome, PluginError> {
        let _ = (ctx, request);
        Err(PluginError::unsupported(
            "this integration needs no authorisation",
        ))
    }

    /// Who is authorised (`mtp auth status`), from stored state only. Default: no authorisation needed.
    async fn auth_status(&self, ctx: &Context) -> Result<AuthStatus, PluginError> {
        let _ = ctx;
        Err(PluginError::unsupported(
            "this integration needs no authorisation",
        ))
    }

    /// Does the integration's work for one sequence, or re-checks it ([`crate::protocol::RunMode`]).
    ///
    /// Persist progress through [`Context::state`] as it is acknowledged, so that a crash or Ctrl-C loses
    /// nothing; the returned outcome becomes the sequence's record for this integration.
    async fn run(&self, ctx: &Context, request: RunRequest) -> Result<RunOutcome, PluginError>;

    /// [`Integration::run`] reading the images a page at a time: what the host asks. When the host
    /// lends the images, `request.sequence` carries none and `images` reads them
    /// ([`RunImages::read`]). Override it so that a long sequence costs a page of memory, not a copy of
    /// every image; the default reads every image into the request and calls [`Integration::run`].
    async fn run_paged(
        &self,
        ctx: &Context,
        mut request: RunRequest,
        images: RunImages,
    ) -> Result<RunOutcome, PluginError> {
        if images.is_lent() {
            request.sequence.images = images.read(ctx, &request.sequence).collect()?;
        }
        self.run(ctx, request).await
    }
}
