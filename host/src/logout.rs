//! Logging out of an integration (`mtp auth logout ID`, `POST /api/auth/ID/logout` of `mtp serve`).
//!
//! Every bundled integration keeps its tokens in the secret store the host gives it (`secret_put`) and
//! answers `auth status` as not authorised when that store holds no token, so deleting the integration's
//! secrets is a complete logout: nothing is asked of the plugin (no ABI change), and an integration
//! disabled in `.env` can be logged out too. Its state (resumable uploads, the account name shown by
//! `mtp auth status` after the next login) is kept. The provider is not told: revoking the token there
//! would need each plugin's help through the ABI, so it stays valid at the provider until it expires or
//! the user removes the app's access in their account settings (docs/api.md says so).

use crate::runner::Runner;
use crate::state::StateError;

/// Why a logout did not happen.
#[derive(Debug, thiserror::Error)]
pub enum LogoutError {
    /// No installed integration has this id.
    #[error("no integration {0} is installed (see mtp integrations list)")]
    Unknown(String),
    /// The secret store could not be written.
    #[error(transparent)]
    State(#[from] StateError),
}

/// What a logout did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoggedOut {
    /// Its tokens were deleted.
    TokensDeleted,
    /// It held no token: it was not logged in.
    WasNotLoggedIn,
}

/// Deletes the tokens integration `id` keeps in the host's secret store.
pub fn logout(runner: &Runner, id: &str) -> Result<LoggedOut, LogoutError> {
    if runner.registry.get(id).is_none() {
        return Err(LogoutError::Unknown(id.to_string()));
    }
    Ok(match runner.store().delete_secrets(id)? {
        0 => LoggedOut::WasNotLoggedIn,
        _ => LoggedOut::TokensDeleted,
    })
}
