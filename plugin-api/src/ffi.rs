//! The stable ABI between the host and a plugin library.
//!
//! Provider authors never use this module: [`crate::export_plugin!`] builds the root module and
//! [`crate::sdk::Context`] wraps the host services. It is public for the host and for ABI tests.
//!
//! The surface is deliberately tiny — one root module with three functions and one host-services trait — and
//! everything structured travels as JSON (see [`crate::protocol`]). Growing a prefix type breaks old plugins
//! on new hosts (abi_stable refuses a module with fewer fields than the host expects), so within a major
//! version the root module never changes; new host services are appended to [`HostServices`] *with default
//! bodies*, which abi_stable permits.

// abi_stable's `#[sabi_trait]` expands to impls the `non_local_definitions` lint flags; they are its own.
#![allow(non_local_definitions)]

pub use abi_stable;
pub use async_ffi;

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RBox, ROption, RResult, RStr, RString, RVec, Tuple2},
    StableAbi,
};
use async_ffi::FfiFuture;

/// The plugin's root module: what the host finds in the library.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModuleRef)))]
#[sabi(missing_field(panic))]
pub struct PluginModule {
    /// The plugin-API semver the plugin was built against (see [`crate::manifest::check_api_compatibility`]).
    pub api_version: extern "C" fn() -> RString,
    /// The manifest as JSON ([`crate::manifest::Manifest`]), or an error message.
    pub manifest: extern "C" fn() -> RResult<RString, RString>,
    /// Runs `method` with a JSON `payload`; the error is a JSON [`crate::PluginError`].
    #[sabi(last_prefix_field)]
    pub call: extern "C" fn(
        host: HostServicesBox,
        method: RString,
        payload: RString,
    ) -> FfiFuture<RResult<RString, RString>>,
}

/// The ABI version abi_stable checks at load time.
///
/// Fixed for the whole 1.x series on purpose: abi_stable refuses a library whose *minor* is older than the
/// host's, which would reject every old plugin after a minor host upgrade. Our own semver
/// ([`crate::manifest::PLUGIN_API_VERSION`]) carries the minor, and the host applies its own rule to it.
pub const ABI_VERSION: &str = "1.0.0";

impl RootModule for PluginModuleRef {
    declare_root_module_statics! {PluginModuleRef}
    const BASE_NAME: &'static str = "mtp_plugin";
    const NAME: &'static str = "mtp integration plugin";
    const VERSION_STRINGS: VersionStrings = VersionStrings::new(ABI_VERSION);
}

// Keep `package_version_strings` referenced so a future ABI bump can switch back to it deliberately.
#[allow(dead_code)]
const _PACKAGE_VERSION: VersionStrings = package_version_strings!();

/// Services the host lends a plugin for the duration of one call.
///
/// Methods are only ever appended, each with a default body, so that a plugin built against an older
/// minor version can still be handed a newer host's services (and the reverse).
#[sabi_trait]
pub trait HostServices: Send + Sync + Clone {
    /// Forwards a log record into the host's `tracing` output (`level`: [`crate::protocol::LogLevel`]).
    fn log(&self, level: u8, target: RStr<'_>, message: RStr<'_>);

    /// Reports a [`crate::protocol::ProgressEvent`] as JSON.
    fn progress(&self, event: RStr<'_>);

    /// The value of an `.env` key the plugin declared; `None` for a missing key or one it did not declare.
    fn env(&self, key: RStr<'_>) -> ROption<RString>;

    /// Reads the plugin's persisted state value at `key`.
    fn state_get(&self, key: RStr<'_>) -> RResult<ROption<RString>, RString>;

    /// Writes the plugin's persisted state value at `key` (committed before it returns).
    fn state_put(&self, key: RStr<'_>, value: RStr<'_>) -> RResult<(), RString>;

    /// Deletes the plugin's persisted state value at `key`.
    fn state_delete(&self, key: RStr<'_>) -> RResult<(), RString>;

    /// Lists the plugin's persisted state entries whose key starts with `prefix`.
    fn state_list(&self, prefix: RStr<'_>) -> RResult<RVec<Tuple2<RString, RString>>, RString>;

    /// Reads a secret (token) of the plugin's.
    fn secret_get(&self, key: RStr<'_>) -> RResult<ROption<RString>, RString>;

    /// Stores a secret of the plugin's, readable by the user only and never logged.
    fn secret_put(&self, key: RStr<'_>, value: RStr<'_>) -> RResult<(), RString>;

    /// Deletes a secret of the plugin's.
    fn secret_delete(&self, key: RStr<'_>) -> RResult<(), RString>;

    /// `true` once the user asked to stop (Ctrl-C); long work should stop at the next safe point.
    fn is_cancelled(&self) -> bool;

    /// Asks the user to authorise at an [`crate::protocol::AuthorizePrompt`] (JSON) and returns the URL the
    /// provider redirected to. Blocks until the user is done: call it from a blocking-friendly thread.
    fn authorize(&self, prompt: RStr<'_>) -> RResult<RString, RString>;

    /// An extension point for services added later without a layout change: `method` + JSON payload.
    #[sabi(last_prefix_field)]
    fn extension(&self, method: RStr<'_>, payload: RStr<'_>) -> RResult<RString, RString> {
        let _ = payload;
        RResult::RErr(RString::from(format!(
            "{} {method}",
            crate::protocol::UNKNOWN_SERVICE_ERROR
        )))
    }
}

/// The host-services trait object handed to a plugin.
pub type HostServicesBox = HostServices_TO<'static, RBox<()>>;

/// The symbol abi_stable looks up in a library; [`crate::export_plugin!`] must define exactly this name.
#[doc(hidden)]
pub const ROOT_MODULE_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

#[cfg(test)]
mod tests {
    #[test]
    fn export_macro_uses_abi_stables_symbol_name() {
        assert_eq!(
            super::ROOT_MODULE_SYMBOL,
            abi_stable::library::ROOT_MODULE_LOADER_NAME
        );
    }
}
