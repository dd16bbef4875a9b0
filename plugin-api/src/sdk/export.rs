//! What [`crate::export_plugin!`] expands to call. Not a public API: use the macro.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, OnceLock};

use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::std_types::{RResult, RString};
use async_ffi::{FfiFuture, FutureExt as _};
use futures::FutureExt as _;

use super::{plugin_runtime, Context, Images, Integration, RunImages};
use crate::error::{panic_message, ErrorKind, PluginError};
use crate::ffi::{HostServicesBox, PluginModule, PluginModuleRef};
use crate::manifest::PLUGIN_API_VERSION;
use crate::protocol::{AuthRequest, ImageCount, Method, RunRequest};
use crate::sequence::SequenceDescriptor;

type Constructor = fn() -> Box<dyn Integration>;

static CONSTRUCTOR: OnceLock<Constructor> = OnceLock::new();
static API_VERSION: OnceLock<&'static str> = OnceLock::new();
static INSTANCE: OnceLock<Result<Arc<dyn Integration>, PluginError>> = OnceLock::new();
static PANIC_HOOK: OnceLock<()> = OnceLock::new();

thread_local! {
    static LAST_PANIC_LOCATION: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Replaces the plugin's own panic hook (this library has its own copy of std, so the host's hook never
/// sees its panics): instead of printing a backtrace to the user's terminal, remember where it happened so
/// that the error the host receives names the place.
fn install_panic_hook() {
    PANIC_HOOK.get_or_init(|| {
        std::panic::set_hook(Box::new(|info| {
            let location = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()));
            LAST_PANIC_LOCATION.with(|cell| *cell.borrow_mut() = location);
        }));
    });
}

/// Builds the root module for a plugin whose integration `constructor` makes, declaring `api_version`
/// ([`crate::export_plugin!`] passes [`crate::manifest::PLUGIN_API_VERSION`]; ABI test fixtures another).
pub fn root_module_with_api_version(
    constructor: Constructor,
    api_version: &'static str,
) -> PluginModuleRef {
    let _ = CONSTRUCTOR.set(constructor);
    let _ = API_VERSION.set(api_version);
    install_panic_hook();
    PluginModule {
        api_version: ffi_api_version,
        manifest: ffi_manifest,
        call: ffi_call,
    }
    .leak_into_prefix()
}

fn panic_error(payload: &(dyn std::any::Any + Send)) -> PluginError {
    let location = LAST_PANIC_LOCATION
        .with(|cell| cell.borrow_mut().take())
        .map(|l| format!(" (at {l})"))
        .unwrap_or_default();
    PluginError::new(
        ErrorKind::Panic,
        format!("the plugin panicked: {}{location}", panic_message(payload)),
    )
}

fn instance() -> Result<Arc<dyn Integration>, PluginError> {
    INSTANCE
        .get_or_init(|| {
            let constructor = CONSTRUCTOR
                .get()
                .ok_or_else(|| PluginError::other("the plugin was not initialised"))?;
            catch_unwind(constructor)
                .map(Arc::from)
                .map_err(|payload| panic_error(&*payload))
        })
        .clone()
}

extern "C" fn ffi_api_version() -> RString {
    RString::from(*API_VERSION.get().unwrap_or(&PLUGIN_API_VERSION))
}

extern "C" fn ffi_manifest() -> RResult<RString, RString> {
    let result = catch_unwind(|| -> Result<String, PluginError> {
        let mut manifest = instance()?.manifest();
        manifest.api_version = (*API_VERSION.get().unwrap_or(&PLUGIN_API_VERSION)).to_string();
        serde_json::to_string(&manifest)
            .map_err(|err| PluginError::other(format!("cannot encode the manifest: {err}")))
    });
    match result {
        Ok(Ok(json)) => RResult::ROk(json.into()),
        Ok(Err(err)) => RResult::RErr(err.message.into()),
        Err(payload) => RResult::RErr(panic_error(&*payload).message.into()),
    }
}

extern "C" fn ffi_call(
    host: HostServicesBox,
    method: RString,
    payload: RString,
) -> FfiFuture<RResult<RString, RString>> {
    let spawned = catch_unwind(AssertUnwindSafe(|| {
        let integration = instance()?;
        let runtime = plugin_runtime()?;
        let ctx = Context::new(host);
        Ok::<_, PluginError>(runtime.spawn(async move {
            AssertUnwindSafe(dispatch(integration, ctx, method.into_string(), payload))
                .catch_unwind()
                .await
                .unwrap_or_else(|payload| Err(panic_error(&*payload)))
        }))
    }));
    async move {
        let result = match spawned {
            Ok(Ok(handle)) => match handle.await {
                Ok(result) => result,
                Err(err) => Err(PluginError::new(
                    ErrorKind::Panic,
                    format!("the plugin task failed: {err}"),
                )),
            },
            Ok(Err(err)) => Err(err),
            Err(payload) => Err(panic_error(&*payload)),
        };
        match result {
            Ok(json) => RResult::ROk(json.into()),
            Err(err) => RResult::RErr(err.to_wire().into()),
        }
    }
    .into_ffi()
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, PluginError> {
    serde_json::to_string(value)
        .map_err(|err| PluginError::other(format!("cannot encode the answer: {err}")))
}

/// A run request's `sequence`, read for its image count alone.
#[derive(serde::Deserialize)]
struct LentRun {
    #[serde(default)]
    sequence: ImageCount,
}

/// How many images the host lends for `sequence`: the request's count, when the sequence came without
/// its images (plugin API 1.4); `None` when it carries them.
fn lent_count(lent: ImageCount, sequence: &SequenceDescriptor) -> Option<u64> {
    lent.image_count.filter(|_| sequence.images.is_empty())
}

/// The images of `sequence`: lent by the host, or the ones it carries.
fn images_of<'a>(
    ctx: &'a Context,
    sequence: &'a SequenceDescriptor,
    lent: ImageCount,
) -> Images<'a> {
    match lent_count(lent, sequence) {
        Some(count) => Images::lent(ctx, count),
        None => Images::whole(&sequence.images),
    }
}

/// Runs one method of `integration`; shared by the FFI entry point and the in-process test host.
pub async fn dispatch(
    integration: Arc<dyn Integration>,
    ctx: Context,
    method: String,
    payload: RString,
) -> Result<String, PluginError> {
    match Method::parse(&method) {
        Some(Method::Eligibility) => {
            let sequence: SequenceDescriptor = serde_json::from_str(&payload)?;
            let lent: ImageCount = serde_json::from_str(&payload)?;
            let images = images_of(&ctx, &sequence, lent);
            to_json(&integration.eligibility_paged(&sequence, &images)?)
        }
        Some(Method::Authorize) => {
            let request: AuthRequest = serde_json::from_str(&payload)?;
            to_json(&integration.authorize(&ctx, request).await?)
        }
        Some(Method::AuthStatus) => to_json(&integration.auth_status(&ctx).await?),
        Some(Method::Run) => {
            let request: RunRequest = serde_json::from_str(&payload)?;
            let lent: LentRun = serde_json::from_str(&payload)?;
            let images = match lent_count(lent.sequence, &request.sequence) {
                Some(count) => RunImages::lent(count),
                None => RunImages::carried(),
            };
            to_json(&integration.run_paged(&ctx, request, images).await?)
        }
        None => Err(PluginError::unsupported(format!(
            "method {method:?} is not supported by this plugin (built for plugin API {PLUGIN_API_VERSION})"
        ))),
    }
}
