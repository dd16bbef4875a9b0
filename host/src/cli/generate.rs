//! `mtp completions SHELL` and `mtp man-pages DIR`: shell completions and manual pages generated from
//! this binary's own clap definitions (clap_complete, clap_mangen), so they never drift from the
//! commands. The release archive and the Debian package are built with them (`scripts/package.sh`).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap_complete::Shell;

/// Prints the completion script for `shell` on stdout.
pub(super) fn completions(shell: Shell) -> Result<ExitCode> {
    let mut command = super::command();
    let name = command.get_name().to_string();
    let mut stdout = std::io::stdout().lock();
    clap_complete::generate(shell, &mut command, name, &mut stdout);
    Ok(ExitCode::SUCCESS)
}

/// Writes `mtp.1` and one page per subcommand (`mtp-upload.1`, `mtp-plugin-check.1`, ...) into `dir`.
pub(super) fn man_pages(dir: &Path) -> Result<ExitCode> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the directory {}", dir.display()))?;
    clap_mangen::generate_to(super::command(), dir)
        .with_context(|| format!("cannot write the manual pages into {}", dir.display()))?;
    Ok(ExitCode::SUCCESS)
}
