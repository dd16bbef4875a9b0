//! The integration's internal error, and how each case maps onto a [`PluginError`] kind (which tells the
//! host whether to keep the previous record, store a failure, or ask for re-authorisation).

use plugin_api::{ErrorKind, PluginError};

/// What `mtp auth mapillary` is, in every message that asks for it.
pub const REAUTHORISE: &str = "re-authorise with `mtp auth mapillary`";

/// Everything that can go wrong inside the integration. Messages never contain a token.
#[derive(Debug, thiserror::Error)]
pub enum MlyError {
    /// No token is stored.
    #[error("not authorised with Mapillary: run `mtp auth mapillary`")]
    NotAuthorised,
    /// Mapillary refused the stored token (401/403/`NotAuthorizedError`/OAuth code 190).
    #[error("Mapillary refused the token during {what} ({detail}): {REAUTHORISE}")]
    TokenRefused {
        /// The step (`upload of IMG_1.jpg`).
        what: String,
        /// Mapillary's own message.
        detail: String,
    },
    /// The token was refused or ran out, and the refresh grant did not give a new one: only a new login
    /// helps. Everything acknowledged stays in the state store.
    #[error(
        "the Mapillary token was refused or ran out ({what}) and refreshing it failed ({detail}): log in \
         again with `mtp auth mapillary`; everything uploaded so far is kept, and mtp upload resumes \
         from there"
    )]
    RefreshFailed {
        /// What happened to the token (`refused during upload of IMG_1.jpg`, `expired 2026-..`).
        what: String,
        /// Why the refresh failed.
        detail: String,
    },
    /// The interactive authorisation did not complete (denied, state mismatch, bad redirect).
    #[error("{0}")]
    Authorisation(String),
    /// Mapillary refused the request for good (a 4xx that is not retriable).
    #[error("{what}: Mapillary answered HTTP {status}: {message}")]
    Rejected {
        /// The step.
        what: String,
        /// HTTP status.
        status: u16,
        /// Mapillary's message.
        message: String,
    },
    /// A network or server fault (or a rate limit) outlasted the retry budget. Nothing acknowledged is
    /// lost: the next run resumes.
    #[error(
        "{what}: {why} (gave up after {attempts} retries in {waited}; everything Mapillary acknowledged \
         is kept: run mtp upload again later to resume)"
    )]
    GaveUp {
        /// The step.
        what: String,
        /// The last failure.
        why: String,
        /// Retries made since the last progress.
        attempts: u32,
        /// How long they took (`3.2 s`, `14 min`).
        waited: String,
    },
    /// A single-attempt request failed on the network or with a server error.
    #[error("{what}: {why}")]
    Unavailable {
        /// The step.
        what: String,
        /// The failure.
        why: String,
    },
    /// Mapillary answered something we cannot read.
    #[error("{what}: unexpected answer from Mapillary: {why}")]
    BadAnswer {
        /// The step.
        what: String,
        /// What was wrong with it.
        why: String,
    },
    /// A local file could not be read.
    #[error("cannot read {path}: {cause}")]
    File {
        /// The file.
        path: String,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// A file is not a JPEG we can rewrite.
    #[error("{path} is not a usable JPEG: {why}")]
    Jpeg {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// The sequence or configuration is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The user asked to stop.
    #[error("cancelled by the user")]
    Cancelled,
    /// An error from the host (its state store).
    #[error(transparent)]
    Host(#[from] PluginError),
}

impl From<MlyError> for PluginError {
    fn from(err: MlyError) -> PluginError {
        let kind = match &err {
            MlyError::NotAuthorised
            | MlyError::TokenRefused { .. }
            | MlyError::RefreshFailed { .. }
            | MlyError::Authorisation(_) => ErrorKind::Auth,
            MlyError::Rejected { .. } => ErrorKind::Rejected,
            MlyError::GaveUp { .. } | MlyError::Unavailable { .. } | MlyError::BadAnswer { .. } => {
                ErrorKind::Transient
            }
            MlyError::File { .. } | MlyError::Jpeg { .. } | MlyError::Invalid(_) => {
                ErrorKind::InvalidInput
            }
            MlyError::Cancelled => ErrorKind::Cancelled,
            MlyError::Host(inner) => return inner.clone(),
        };
        PluginError::new(kind, err.to_string())
    }
}

/// Result with [`MlyError`].
pub type Result<T, E = MlyError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        let auth: PluginError = MlyError::TokenRefused {
            what: "upload".into(),
            detail: "Invalid OAuth access token".into(),
        }
        .into();
        assert_eq!(auth.kind, ErrorKind::Auth);
        assert!(auth.message.contains("mtp auth mapillary"), "{auth}");
        let gave_up: PluginError = MlyError::GaveUp {
            what: "upload of a.jpg".into(),
            why: "HTTP 503".into(),
            attempts: 3,
            waited: "7.5 s".into(),
        }
        .into();
        assert_eq!(gave_up.kind, ErrorKind::Transient);
        assert!(gave_up.message.contains("is kept"), "{gave_up}");
        let host = PluginError::other("disk full");
        assert_eq!(PluginError::from(MlyError::Host(host.clone())), host);
    }
}
