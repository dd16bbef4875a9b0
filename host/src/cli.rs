//! Command-line parsing and the commands.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand};
use mtp_host::env::EnvValues;
use mtp_host::loader::{load_library, load_timeout};
use mtp_host::registry::{PluginDirs, Registry};
use mtp_host::table;

/// mtp: upload street-level imagery sequences through integration plugins (Mapillary, Map the Paths Web, ...).
#[derive(Debug, Parser)]
#[command(name = "mtp", version, about)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Flags every command understands.
#[derive(Debug, Args)]
struct GlobalArgs {
    /// The `.env` file with the integrations' keys (default: ./.env; the process environment overrides it).
    #[arg(long, global = true, value_name = "PATH")]
    env_file: Option<PathBuf>,
    /// Where to look for integration plugins (default: $MTP_PLUGINS_DIR, else the mtp executable's
    /// directory, then <XDG data>/mtp/plugins).
    #[arg(long, global = true, value_name = "DIR")]
    plugins_dir: Option<PathBuf>,
    /// Where state (upload progress, tokens) is kept (default: $MTP_STATE_DIR, else <XDG data>/mtp).
    #[arg(long, global = true, value_name = "DIR", env = "MTP_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Print data as JSON (on data commands).
    #[arg(long, global = true)]
    json: bool,
    /// More log output (-v info, -vv debug, -vvv trace); RUST_LOG is honoured too.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Less log output (-q errors only, -qq nothing).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    quiet: u8,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The integrations found, enabled or not and why.
    #[command(subcommand)]
    Integrations(IntegrationsCommand),
    /// Plugin author tools.
    #[command(subcommand)]
    Plugin(PluginCommand),
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
}

/// Runs the CLI and maps errors to exit codes.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.global);
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
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
        .with_target(false)
        .try_init();
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Integrations(IntegrationsCommand::List) => integrations_list(&cli.global),
        Command::Plugin(PluginCommand::Check { path }) => plugin_check(&cli.global, &path),
    }
}

fn load_env(global: &GlobalArgs) -> Result<EnvValues> {
    Ok(EnvValues::load(global.env_file.as_deref())?)
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(value).context("cannot encode the output as JSON")?
    );
    Ok(())
}

fn integrations_list(global: &GlobalArgs) -> Result<ExitCode> {
    let env = load_env(global)?;
    let dirs = PluginDirs::resolve(global.plugins_dir.as_deref());
    let registry = Registry::discover(&dirs, &env);
    if global.json {
        print_json(&registry.infos())?;
        return Ok(ExitCode::SUCCESS);
    }
    if registry.infos().is_empty() {
        let searched: Vec<String> = dirs.0.iter().map(|d| d.display().to_string()).collect();
        println!(
            "no integration plugins found (searched: {})",
            searched.join(", ")
        );
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = registry
        .infos()
        .iter()
        .map(|info| {
            vec![
                info.id.clone(),
                if info.loaded {
                    info.name.clone()
                } else {
                    String::new()
                },
                info.version.clone(),
                info.status_text(),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(&["ID", "NAME", "VERSION", "STATUS"], &rows)
    );
    let chain: Vec<&str> = registry.chain().map(|i| i.id()).collect();
    if !chain.is_empty() {
        println!("\nchain: {}", chain.join(" → "));
    }
    Ok(ExitCode::SUCCESS)
}

fn plugin_check(global: &GlobalArgs, path: &Path) -> Result<ExitCode> {
    if !path.is_file() {
        anyhow::bail!("{} is not a file", path.display());
    }
    let result = load_library(path, load_timeout());
    let (accepted, manifest, reason) = match &result {
        Ok(library) => (true, Some(&library.manifest), None),
        Err(reason) => (false, None, Some(reason.clone())),
    };
    if global.json {
        print_json(&serde_json::json!({
            "path": path,
            "accepted": accepted,
            "reason": reason,
            "manifest": manifest,
            "host_plugin_api": plugin_api::manifest::PLUGIN_API_VERSION,
        }))?;
    } else if let Some(manifest) = manifest {
        println!(
            "{}: accepted by this host (plugin API {})",
            path.display(),
            plugin_api::manifest::PLUGIN_API_VERSION
        );
        println!("  id:           {}", manifest.id);
        println!("  name:         {}", manifest.name);
        println!("  version:      {}", manifest.version);
        println!("  built for:    plugin API {}", manifest.api_version);
        println!("  description:  {}", manifest.description);
        println!("  required env: {}", manifest.required_env.join(", "));
        println!("  optional env: {}", manifest.optional_env.join(", "));
        println!("  after:        {}", manifest.after.join(", "));
        println!("  exports:      {}", manifest.exports.join(", "));
        println!("  consumes:     {}", manifest.consumes.join(", "));
    } else {
        println!(
            "{}: not accepted: {}",
            path.display(),
            reason.unwrap_or_default()
        );
    }
    Ok(if accepted {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
