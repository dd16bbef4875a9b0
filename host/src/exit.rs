//! The exit codes of `mtp`, the contract a desktop app or a script relies on (README, "Exit codes"), and
//! the one place that decides which code an error or a run's results end with.
//!
//! Modelled on the official Mapillary client, whose errors each carry a distinct exit code
//! (mapillary/mapillary_tools `mapillary_tools/exceptions.py`, read by `commands/__main__.py`), with our
//! own numbering: 2 is the usage error (clap's, as in mapillary_tools), the signals keep the shell's
//! convention (128 + the signal's number, `crate::signals`).

use std::process::ExitCode;

use plugin_api::protocol::{RunOutcome, SequenceState};
use plugin_api::{ErrorKind, PluginError};

/// How a command ended. The numbers are documented in README ("Exit codes") and never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exit {
    /// Everything asked for was done.
    Success,
    /// Anything not classified below (a plugin that panicked, an internal error).
    Failure,
    /// A bad command line (clap's code), or an argument refused by the command (`plugin new mapillary`).
    Usage,
    /// The configuration is unusable: the `.env` file, the plugins directory, the state directory, or
    /// no integration is enabled.
    Config,
    /// Not logged in to an integration, or the service refused the token: run `mtp auth <id>`.
    Auth,
    /// The input is wrong: a sequence folder with problems, no images, bad metadata.
    InvalidInput,
    /// The service refused the work for good (retrying as it is cannot help).
    Refused,
    /// The network or the service was unavailable, after the retries: running again later may work.
    Unavailable,
    /// Done, but some sequences are still waiting on the service (Mapillary is processing them, or a
    /// publish's outcome is to be checked): `mtp status` re-checks them.
    Waiting,
    /// Stopped by a signal: 130 (SIGINT, Ctrl-C), 143 (SIGTERM), 129 (SIGHUP).
    Signal(u8),
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::Config => 3,
            Exit::Auth => 4,
            Exit::InvalidInput => 5,
            Exit::Refused => 6,
            Exit::Unavailable => 7,
            Exit::Waiting => 8,
            Exit::Signal(code) => code,
        }
    }

    /// The name `mtp upload --json` reports in its final `summary` line.
    pub fn name(self) -> &'static str {
        match self {
            Exit::Success => "success",
            Exit::Failure => "failure",
            Exit::Usage => "usage",
            Exit::Config => "config",
            Exit::Auth => "auth",
            Exit::InvalidInput => "invalid_input",
            Exit::Refused => "refused",
            Exit::Unavailable => "unavailable",
            Exit::Waiting => "waiting",
            Exit::Signal(_) => "cancelled",
        }
    }

    /// Which of two outcomes a command with several results ends with: a signal first, then what the
    /// user must fix first (configuration, login, input), then the service's answers, then "waiting".
    pub fn worst(self, other: Exit) -> Exit {
        if self.rank() >= other.rank() {
            self
        } else {
            other
        }
    }

    fn rank(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Waiting => 1,
            Exit::Failure => 2,
            Exit::Unavailable => 3,
            Exit::Refused => 4,
            Exit::InvalidInput => 5,
            Exit::Auth => 6,
            Exit::Config => 7,
            Exit::Usage => 8,
            Exit::Signal(_) => 9,
        }
    }

    /// The code for a plugin error's kind.
    pub fn for_plugin_error(err: &PluginError) -> Exit {
        match err.kind {
            ErrorKind::Auth => Exit::Auth,
            ErrorKind::InvalidInput => Exit::InvalidInput,
            ErrorKind::Transient => Exit::Unavailable,
            ErrorKind::Rejected => Exit::Refused,
            ErrorKind::Cancelled => Exit::Signal(130),
            ErrorKind::Unsupported | ErrorKind::Panic | ErrorKind::Other => Exit::Failure,
        }
    }

    /// The code for one integration's run of one sequence (`IntegrationRun`'s error and outcome:
    /// taken apart so that this module, which the runner uses, does not use the runner).
    pub fn for_run(error: Option<&PluginError>, outcome: Option<&RunOutcome>) -> Exit {
        if let Some(err) = error {
            return Exit::for_plugin_error(err);
        }
        match outcome.map(|o| o.state) {
            Some(SequenceState::Failed) => Exit::Refused,
            Some(state) if state.needs_recheck() || state == SequenceState::Uploading => {
                Exit::Waiting
            }
            _ => Exit::Success,
        }
    }

    /// The code an error ends the command with: the first typed error in its chain that says.
    pub fn for_error(err: &anyhow::Error) -> Exit {
        for cause in err.chain() {
            if cause.is::<UsageError>() {
                return Exit::Usage;
            }
            if cause.is::<ConfigError>()
                || cause.is::<crate::env::EnvError>()
                || cause.is::<crate::state::StateError>()
            {
                return Exit::Config;
            }
            if cause.is::<mtp_sequence::SequenceError>() {
                return Exit::InvalidInput;
            }
            if let Some(plugin) = cause.downcast_ref::<PluginError>() {
                return Exit::for_plugin_error(plugin);
            }
        }
        Exit::Failure
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}

/// A configuration problem the host found itself (a plugins directory that does not exist, no state
/// directory, no integration enabled): exit code [`Exit::Config`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// An argument a command refuses (clap accepted it): exit code [`Exit::Usage`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_typed_cause_decides() {
        let err = anyhow::Error::new(crate::env::EnvError::Malformed {
            path: "x/.env".into(),
            line: 3,
            text: "oops".into(),
            why: "expected KEY=value".into(),
        })
        .context("cannot start");
        assert_eq!(Exit::for_error(&err), Exit::Config);
        let err = anyhow::Error::new(PluginError::new(ErrorKind::Transient, "down"));
        assert_eq!(Exit::for_error(&err).code(), 7);
        assert_eq!(Exit::for_error(&anyhow::anyhow!("other")), Exit::Failure);
    }

    #[test]
    fn a_signal_outranks_everything_and_waiting_only_success() {
        assert_eq!(Exit::Waiting.worst(Exit::Success), Exit::Waiting);
        assert_eq!(Exit::Waiting.worst(Exit::Refused), Exit::Refused);
        assert_eq!(Exit::Signal(143).worst(Exit::Config), Exit::Signal(143));
    }
}
