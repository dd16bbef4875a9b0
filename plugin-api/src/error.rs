//! The error a plugin returns, and how it crosses the boundary.

use serde::{Deserialize, Serialize};

/// The kind of failure, which tells the host (and the user) what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The user must (re-)authorise: the message says with which command.
    Auth,
    /// The input (sequence, configuration, request) is wrong; retrying will not help.
    InvalidInput,
    /// A network or server fault that outlasted the retries; running again later may succeed.
    Transient,
    /// The provider refused the work for good.
    Rejected,
    /// The plugin does not implement this method (an older plugin, or a feature not built yet).
    Unsupported,
    /// The user cancelled.
    Cancelled,
    /// The plugin panicked; the host turned the panic into this error.
    Panic,
    /// Anything else.
    Other,
}

/// An error from a plugin call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct PluginError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// A sentence for the user, naming the file, key or field at fault.
    pub message: String,
}

impl PluginError {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> PluginError {
        PluginError {
            kind,
            message: message.into(),
        }
    }

    /// [`ErrorKind::Auth`].
    pub fn auth(message: impl Into<String>) -> PluginError {
        PluginError::new(ErrorKind::Auth, message)
    }

    /// [`ErrorKind::InvalidInput`].
    pub fn invalid_input(message: impl Into<String>) -> PluginError {
        PluginError::new(ErrorKind::InvalidInput, message)
    }

    /// [`ErrorKind::Transient`].
    pub fn transient(message: impl Into<String>) -> PluginError {
        PluginError::new(ErrorKind::Transient, message)
    }

    /// [`ErrorKind::Unsupported`].
    pub fn unsupported(message: impl Into<String>) -> PluginError {
        PluginError::new(ErrorKind::Unsupported, message)
    }

    /// [`ErrorKind::Other`].
    pub fn other(message: impl Into<String>) -> PluginError {
        PluginError::new(ErrorKind::Other, message)
    }

    /// The JSON form sent across the boundary.
    pub fn to_wire(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| self.message.clone())
    }

    /// Reads the JSON form; text that is not one (an older or foreign plugin) becomes [`ErrorKind::Other`].
    pub fn from_wire(text: &str) -> PluginError {
        serde_json::from_str(text).unwrap_or_else(|_| PluginError::other(text))
    }
}

impl From<serde_json::Error> for PluginError {
    fn from(err: serde_json::Error) -> PluginError {
        PluginError::invalid_input(format!("malformed JSON document: {err}"))
    }
}

/// Turns a caught panic payload into a message.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic with a non-text payload".to_string()
    }
}
