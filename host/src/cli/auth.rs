//! `mtp auth <integration> [--token T]`, `mtp auth status` and `mtp auth logout <integration>`.

use std::process::ExitCode;

use anyhow::Result;

use super::session::Session;
use super::{print_json, AuthArgs, GlobalArgs};
use mtp_host::exit::UsageError;
use mtp_host::logout::{logout, LoggedOut, LogoutError};
use mtp_host::table;
use plugin_api::protocol::AuthStatus;
use plugin_api::PluginError;

/// `mtp auth ...`: `status`, `logout ID`, or a login.
pub(crate) fn run(global: &GlobalArgs, args: AuthArgs) -> Result<ExitCode> {
    let usage = |message: String| Err(UsageError(message).into());
    match (args.integration.as_str(), args.logout_of, args.token) {
        ("logout", Some(id), None) => log_out(global, &id),
        ("logout", None, _) => usage(
            "mtp auth logout needs the integration to log out of (mtp auth status lists them)"
                .into(),
        ),
        ("status", None, None) => status(global),
        (word @ ("status" | "logout"), _, Some(_)) => {
            usage(format!("--token is for a login, not for mtp auth {word}"))
        }
        (_, Some(extra), _) => usage(format!(
            "unexpected argument {extra:?}: mtp auth takes one integration, or status, or logout ID"
        )),
        (id, None, token) => authorize(global, id, token),
    }
}

/// `mtp auth logout ID`: deletes the integration's tokens from mtp's secret store (host/src/logout.rs).
fn log_out(global: &GlobalArgs, id: &str) -> Result<ExitCode> {
    let session = Session::open_for_data(global)?;
    let done = match logout(&session.runner, id) {
        Ok(done) => done,
        Err(err @ LogoutError::Unknown(_)) => return Err(UsageError(err.to_string()).into()),
        Err(LogoutError::State(err)) => return Err(err.into()),
    };
    if global.json {
        print_json(&serde_json::json!({"integration": id, "logged_out": true,
            "was_logged_in": done == LoggedOut::TokensDeleted}))?;
    } else {
        match done {
            LoggedOut::TokensDeleted => println!(
                "{id}: logged out (its token is deleted from mtp's secret store); log in again with `mtp auth {id}`"
            ),
            LoggedOut::WasNotLoggedIn => {
                println!("{id}: was not logged in; log in with `mtp auth {id}`")
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn authorize(global: &GlobalArgs, id: &str, token: Option<String>) -> Result<ExitCode> {
    let session = Session::open_for_data(global)?;
    let result = session
        .runtime
        .block_on(session.runner.authorize(id, token));
    match result {
        Ok(outcome) => {
            if global.json {
                print_json(
                    &serde_json::json!({"integration": id, "authorised": true, "account": outcome.account}),
                )?;
            } else {
                println!("{id}: authorised as {}", outcome.account);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            if global.json {
                print_json(
                    &serde_json::json!({"integration": id, "authorised": false, "error": err}),
                )?;
            } else {
                eprintln!("error: {id}: {err}");
            }
            Ok(mtp_host::exit::Exit::for_plugin_error(&err).into())
        }
    }
}

/// The rows of `mtp auth status --json` (also `GET /api/auth` of `mtp serve`). Accounts only, never tokens.
pub(crate) fn auth_status_json(
    statuses: &[(String, Result<Option<AuthStatus>, PluginError>)],
) -> Vec<serde_json::Value> {
    statuses
        .iter()
        .map(|(id, answer)| match answer {
            Ok(Some(s)) => serde_json::json!({"integration": id, "needs_auth": true,
                "authorised": s.authorised, "account": s.account, "detail": s.detail}),
            Ok(None) => {
                serde_json::json!({"integration": id, "needs_auth": false, "authorised": true})
            }
            Err(err) => serde_json::json!({"integration": id, "error": err}),
        })
        .collect()
}

pub(crate) fn status(global: &GlobalArgs) -> Result<ExitCode> {
    let session = Session::open_for_data(global)?;
    let statuses = session.runtime.block_on(session.runner.auth_statuses());
    if global.json {
        let rows = auth_status_json(&statuses);
        print_json(&rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = statuses
        .iter()
        .map(|(id, answer)| {
            // The integration's own words: who, and when the token expires.
            let detail = match answer {
                Ok(Some(s)) => s.detail.clone().unwrap_or_default(),
                _ => String::new(),
            };
            let (state, account) = match answer {
                Ok(Some(s)) if s.authorised => (
                    "authorised".to_string(),
                    s.account.clone().unwrap_or_default(),
                ),
                // The detail may already say how to log in again: said once, in DETAIL.
                Ok(Some(s)) if detail.contains(&format!("mtp auth {id}")) => (
                    "not authorised".to_string(),
                    s.account.clone().unwrap_or_default(),
                ),
                Ok(Some(_)) => (format!("not authorised: run mtp auth {id}"), String::new()),
                Ok(None) => ("no authorisation needed".to_string(), String::new()),
                Err(err) => (format!("unknown: {err}"), String::new()),
            };
            vec![id.clone(), state, account, detail]
        })
        .collect();
    if rows.is_empty() {
        println!("no enabled integrations (see mtp integrations list)");
    } else {
        print!(
            "{}",
            table::render(&["INTEGRATION", "STATUS", "ACCOUNT", "DETAIL"], &rows)
        );
    }
    Ok(ExitCode::SUCCESS)
}
