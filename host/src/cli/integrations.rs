//! `mtp integrations list` and `mtp plugin check`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use mtp_host::loader::{load_library, load_timeout};
use mtp_host::registry::{PluginDirs, Registry};
use mtp_host::table;

use super::{load_env, print_json, GlobalArgs};

pub(super) fn integrations_list(global: &GlobalArgs) -> Result<ExitCode> {
    let env = load_env(global)?;
    let dirs = PluginDirs::resolve_checked(global.plugins_dir.as_deref())?;
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
                info.path
                    .parent()
                    .map(|dir| dir.display().to_string())
                    .unwrap_or_default(),
                info.status_text(),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(&["ID", "NAME", "VERSION", "FROM", "STATUS"], &rows)
    );
    let chain: Vec<&str> = registry.chain().map(|i| i.id()).collect();
    if !chain.is_empty() {
        println!("\nchain: {}", chain.join(" → "));
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn plugin_check(global: &GlobalArgs, path: &Path) -> Result<ExitCode> {
    // A path that names no library is a refused argument: usage (exit code 2).
    if !path.exists() {
        return Err(mtp_host::exit::UsageError(format!("no such file: {}", path.display())).into());
    }
    if !path.is_file() {
        return Err(mtp_host::exit::UsageError(format!(
            "{} is not a file (give the path of a plugin library)",
            path.display()
        ))
        .into());
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
        if !manifest.secret_exports.is_empty() {
            println!("  secret exports: {}", manifest.secret_exports.join(", "));
        }
        for option in &manifest.options {
            let default = option.default.as_deref().unwrap_or("none");
            println!(
                "  option:       {}.{} (default {default}): {}",
                manifest.id, option.name, option.help
            );
        }
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
