//! Command-line parsing and the commands.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

mod auth;
mod demo;
mod generate;
mod integrations;
mod plugin_new;
mod progress;
mod sequence;
mod serve;
mod session;
mod status;
mod upload;

use anyhow::{Context as _, Result};
use clap::{Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
use mtp_host::authorize::AuthorizeMode;
use mtp_host::env::EnvValues;
use mtp_host::exit::Exit;

/// mtp: upload street-level imagery sequences through integration plugins (Mapillary, Map the Paths Web, ...).
#[derive(Debug, Parser)]
#[command(name = "mtp", version, about)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Flags every command understands (listed apart in each command's help, after its own options).
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub(crate) struct GlobalArgs {
    /// The `.env` file with the integrations' keys (default: ./.env; the process environment overrides it).
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) env_file: Option<PathBuf>,
    /// Where to look for integration plugins (default: $MTP_PLUGINS_DIR, else <prefix>/lib/mtp/plugins
    /// for <prefix>/bin/mtp if it exists, otherwise the mtp executable's directory; then <XDG data>/mtp/plugins).
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) plugins_dir: Option<PathBuf>,
    /// Where state (upload progress, tokens) is kept (default: $MTP_STATE_DIR, else <XDG data>/mtp).
    #[arg(long, global = true, value_name = "DIR", env = "MTP_STATE_DIR")]
    pub(crate) state_dir: Option<PathBuf>,
    /// Print data as JSON (on data commands).
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// More log output (-v info, -vv debug, -vvv trace); RUST_LOG is honoured too.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// Less log output (-q errors only, -qq nothing).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) quiet: u8,
    /// How to get through authorisation pages: `system` (open the browser; catch loopback redirects),
    /// `paste` (print the page, paste the redirect URL back) or `fetch` (follow redirects without a
    /// browser: auto-approving pages such as the local fakes' only).
    #[arg(
        long,
        global = true,
        value_name = "MODE",
        env = "MTP_AUTH_BROWSER",
        default_value = "system"
    )]
    pub(crate) auth_browser: AuthorizeMode,
    /// Read integration keys from the env file only, ignoring the process environment (`mtp demo`).
    #[arg(skip)]
    pub(crate) env_file_only: bool,
    /// `--state-dir` was given on the command line (not through `MTP_STATE_DIR`).
    #[arg(skip)]
    pub(crate) state_dir_flag: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The integrations found, enabled or not and why.
    #[command(subcommand)]
    Integrations(IntegrationsCommand),
    /// Read and check image sequences.
    #[command(subcommand)]
    Sequence(SequenceCommand),
    /// Authorise with an integration (`mtp auth mapillary`), show who is authorised (`mtp auth status`),
    /// or log out (`mtp auth logout mapillary`).
    Auth(AuthArgs),
    /// Upload sequences through every enabled integration that accepts them, in chain order.
    Upload(upload::UploadArgs),
    /// Where every sequence stands with every integration (re-checks those still waiting first).
    Status,
    /// The whole pipeline against the bundled local fakes: auth, upload, publish, key lookup, MTPW sync.
    Demo(demo::DemoArgs),
    /// Plugin author tools.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// The local API and web UI (127.0.0.1 only): prints the URL to open, with a fresh access token.
    Serve(serve::ServeArgs),
    /// Print the shell completion script for SHELL (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write mtp's manual pages (mtp.1, mtp-upload.1, ...) into DIR: for packagers.
    #[command(hide = true)]
    ManPages {
        /// The directory to write them into (created if needed).
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum SequenceCommand {
    /// Show a sequence's metadata, statistics, problems, and which integrations accept it.
    Inspect {
        /// The sequence directory (MTPDU sequence, or a folder of geotagged JPEGs).
        dir: PathBuf,
        #[command(flatten)]
        overrides: sequence::OverrideArgs,
    },
    /// Write a synthetic geotagged sequence (real JPEGs with EXIF), for trying mtp out.
    Generate(sequence::GenerateArgs),
}

#[derive(Debug, Args)]
struct AuthArgs {
    /// The integration id (`mapillary`, `mtpw`), or `status`, or `logout` followed by the id.
    integration: String,
    /// With `logout`: the integration to log out of (its tokens are deleted from mtp's secret store).
    #[arg(value_name = "LOGOUT_INTEGRATION")]
    logout_of: Option<String>,
    /// A token you already have: verified and stored instead of opening the browser.
    #[arg(long)]
    token: Option<String>,
}

#[derive(Debug, Subcommand)]
enum IntegrationsCommand {
    /// List every integration plugin found, with its status.
    List,
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Load a plugin library and report its manifest and whether this host accepts it.
    Check {
        /// The library file (.so, .dylib or .dll).
        path: PathBuf,
    },
    /// Create a new provider crate from the template (a working, tested HTTP uploader to adapt).
    New {
        /// The provider's name (`street-cam`): gives the crate `mtp-street-cam` and the id `street-cam`.
        name: String,
        /// The directory to create it in (default: the current one).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// The command line's definition, with `--version` saying which plugin API this host loads and which
/// target it was built for (what a plugin author or a bug report needs to know).
pub(crate) fn command() -> clap::Command {
    let version = env!("CARGO_PKG_VERSION");
    let target = env!("MTP_BUILD_TARGET");
    let api = plugin_api::manifest::ApiVersion::current();
    Cli::command()
        .version(format!("{version} (plugin API {api}, {target})"))
        .long_version(format!(
            "{version}\nplugin API {api} (loads plugins built for {major}.0 to {major}.{minor})\ntarget {target}",
            major = api.major,
            minor = api.minor,
        ))
}

/// Runs the CLI and maps errors to exit codes (the one mapping: `mtp_host::exit`).
pub fn main() -> ExitCode {
    let matches = command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|err| err.exit());
    cli.global.state_dir_flag = given_on_command_line(&matches, "state_dir");
    init_logging(&cli.global);
    if cli.command.prints_and_exits() {
        quit_quietly_on_broken_pipe();
    }
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            Exit::for_error(&err).into()
        }
    }
}

/// Whether the argument `id` came from the command line (at the top or in a subcommand), not from
/// its environment variable or default.
fn given_on_command_line(matches: &clap::ArgMatches, id: &str) -> bool {
    let here = matches!(
        matches
            .try_get_raw(id)
            .ok()
            .flatten()
            .and(matches.value_source(id)),
        Some(clap::parser::ValueSource::CommandLine)
    );
    here || matches
        .subcommand()
        .is_some_and(|(_, sub)| given_on_command_line(sub, id))
}

impl Command {
    /// A command that only prints (no upload, no server): when its reader goes away (`| head -1`) it can
    /// end at once without recording anything.
    fn prints_and_exits(&self) -> bool {
        !matches!(
            self,
            Command::Upload(_) | Command::Demo(_) | Command::Serve(_) | Command::Auth(_)
        )
    }
}

/// Restores the default action of SIGPIPE (end the process, silently), as other Unix tools have it:
/// Rust ignores it, so a `println!` to a closed pipe panics instead.
fn quit_quietly_on_broken_pipe() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to the default action, before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn init_logging(global: &GlobalArgs) {
    let default = match (global.quiet, global.verbose) {
        (q, _) if q >= 2 => "off",
        (1, _) => "error",
        (0, 0) => "warn",
        (0, 1) => "info",
        (0, 2) => "debug",
        _ => "trace",
    };
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Integrations(IntegrationsCommand::List) => {
            integrations::integrations_list(&cli.global)
        }
        Command::Plugin(PluginCommand::Check { path }) => {
            integrations::plugin_check(&cli.global, &path)
        }
        Command::Plugin(PluginCommand::New { name, dir }) => {
            plugin_new::new_plugin(&cli.global, &name, dir.as_deref())
        }
        Command::Sequence(SequenceCommand::Inspect { dir, overrides }) => {
            sequence::inspect(&cli.global, &dir, &overrides)
        }
        Command::Sequence(SequenceCommand::Generate(args)) => {
            sequence::generate(&cli.global, &args)
        }
        Command::Auth(args) => auth::run(&cli.global, args),
        Command::Upload(args) => upload::upload(&cli.global, &args),
        Command::Status => status::status(&cli.global),
        Command::Demo(args) => demo::demo(&cli.global, &args),
        Command::Serve(args) => serve::serve(&cli.global, &args),
        Command::Completions { shell } => generate::completions(shell),
        Command::ManPages { dir } => generate::man_pages(&dir),
    }
}

pub(crate) fn load_env(global: &GlobalArgs) -> Result<EnvValues> {
    match (&global.env_file, global.env_file_only) {
        (Some(path), true) => Ok(EnvValues::load_file_only(path)?),
        (path, _) => Ok(EnvValues::load(path.as_deref())?),
    }
}

pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(value).context("cannot encode the output as JSON")?
    );
    Ok(())
}
