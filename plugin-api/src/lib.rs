//! The one crate an mtp integration provider depends on.
//!
//! Two layers:
//! - [`ffi`]: the stable ABI (an `abi_stable` root module plus host services), which only the host and the
//!   [`export_plugin!`] macro touch;
//! - [`sdk`]: the ergonomic layer a provider author writes against: a plain async [`sdk::Integration`] trait.
//!
//! Structured data crosses the boundary as JSON documents of the serde types in [`manifest`], [`sequence`] and
//! [`protocol`], so new fields never change the binary layout.
#![deny(missing_docs)]

pub mod error;
pub mod ffi;
#[cfg(feature = "http")]
pub mod http;
pub mod jpeg;
pub mod manifest;
pub mod protocol;
pub mod sdk;
pub mod sequence;
pub mod time;
pub mod transport;

pub use async_trait::async_trait;
pub use error::{ErrorKind, PluginError};
/// serde_json, as the SDK uses it (for `json!` in tests and for structured state).
pub use serde_json;
/// tokio, the runtime every plugin call runs on (each plugin owns one: see [`sdk::plugin_runtime`]).
pub use tokio;

/// Everything a provider author usually needs, in one import.
pub mod prelude {
    pub use crate::error::{ErrorKind, PluginError};
    pub use crate::manifest::{EnvKeyHelp, Manifest, OptionKind, RunOptionSpec};
    pub use crate::protocol::{
        AuthOutcome, AuthRequest, AuthStatus, AuthorizePrompt, Eligibility, Exports, Link,
        Progress, ProgressEvent, RunMode, RunOutcome, RunRequest, SequenceState,
    };
    pub use crate::sdk::{Context, Images, Integration, RunImages};
    pub use crate::sequence::{ImageInfo, Projection, SequenceDescriptor};
    pub use crate::transport::TransportType;
}

/// Exports an [`sdk::Integration`] as this library's plugin root module.
///
/// Use it once, at the top level of a `cdylib` crate, with an expression that builds the integration
/// (it is evaluated lazily, on the host's first call):
///
/// ```ignore
/// plugin_api::export_plugin!(MyIntegration::new());
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($constructor:expr) => {
        $crate::__export_plugin_with_api_version!(
            $constructor,
            $crate::manifest::PLUGIN_API_VERSION
        );
    };
}

/// Like [`export_plugin!`] but declaring another plugin-API version. For ABI test fixtures only.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_plugin_with_api_version {
    ($constructor:expr, $api_version:expr) => {
        /// The plugin's root module, in the form abi_stable's loader looks up.
        #[unsafe(no_mangle)]
        pub static _1as_0lib_1header_0root_bmodule_bloader:
            $crate::ffi::abi_stable::library::LibHeader = {
            extern "C" fn __mtp_erased_root_module(
            ) -> $crate::ffi::abi_stable::library::RootModuleResult {
                $crate::ffi::abi_stable::library::__call_root_module_loader(__mtp_root_module)
            }
            unsafe {
                $crate::ffi::abi_stable::library::LibHeader::from_constructor::<
                    $crate::ffi::PluginModuleRef,
                >(
                    __mtp_erased_root_module,
                    $crate::ffi::abi_stable::library::CheckTypeLayout::Yes,
                )
            }
        };

        fn __mtp_root_module() -> $crate::ffi::PluginModuleRef {
            fn construct() -> ::std::boxed::Box<dyn $crate::sdk::Integration> {
                ::std::boxed::Box::new($constructor)
            }
            $crate::sdk::export::root_module_with_api_version(construct, $api_version)
        }
    };
}
