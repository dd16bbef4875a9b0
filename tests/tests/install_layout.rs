//! An installed tree, as the release archive and the Debian package lay it out (issue 29): `<prefix>/bin/mtp`
//! finds the bundled providers in `<prefix>/lib/mtp/plugins` without `--plugins-dir`, says where each was
//! loaded from, and `mtp demo` finds `mtp-fakes` beside it or in `<prefix>/lib/mtp`. The archive and the
//! package themselves are built and installed by `scripts/package-check.sh` (CI, after this test command).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mtp_tests::harness::{build_workspace, bundled_plugin, mtp_binary, mtp_command};
use serde_json::Value;

const BUNDLED: [&str; 4] = ["mtp_archive", "mtp_mapillary", "mtp_mtpw", "mtp_panoramax"];

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `binary` run as [`mtp_command`] runs the built one: the same isolated environment and directory.
fn command_for(binary: &Path, home: &Path) -> Command {
    let isolated = mtp_command(home);
    let mut command = Command::new(binary);
    for (key, value) in isolated.get_envs() {
        match value {
            Some(value) => command.env(key, value),
            None => command.env_remove(key),
        };
    }
    command.current_dir(home);
    command
}

/// `<prefix>/bin/mtp` and the bundled providers in `<prefix>/lib/mtp/plugins`, copied as an installer
/// would; `mtp-fakes` at `fakes_dir` (relative to the prefix) when given.
fn install_prefix(prefix: &Path, fakes_dir: Option<&str>) -> PathBuf {
    let exe = std::env::consts::EXE_SUFFIX;
    let bin = prefix.join("bin");
    let plugins = prefix.join("lib").join("mtp").join("plugins");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(mtp_binary(), bin.join(format!("mtp{exe}"))).unwrap();
    for name in BUNDLED {
        let library = bundled_plugin(name);
        std::fs::copy(&library, plugins.join(library.file_name().unwrap())).unwrap();
    }
    if let Some(dir) = fakes_dir {
        let fakes = format!("mtp-fakes{exe}");
        std::fs::create_dir_all(prefix.join(dir)).unwrap();
        std::fs::copy(
            build_workspace().join(&fakes),
            prefix.join(dir).join(&fakes),
        )
        .unwrap();
    }
    bin.join(format!("mtp{exe}"))
}

fn listed(mtp: &Path, home: &Path) -> Vec<Value> {
    let out = command_for(mtp, home)
        .args(["integrations", "list", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn assert_all_bundled_from(list: &[Value], plugins: &Path) {
    let mut ids: Vec<&str> = list.iter().map(|e| e["id"].as_str().unwrap()).collect();
    ids.sort();
    assert_eq!(
        ids,
        ["archive", "mapillary", "mtpw", "panoramax"],
        "{list:#?}"
    );
    for entry in list {
        assert_eq!(entry["loaded"], true, "{entry}");
        let path = Path::new(entry["path"].as_str().unwrap());
        assert_eq!(path.parent(), Some(plugins), "{entry}");
    }
}

#[test]
fn an_unpacked_prefix_finds_its_plugins_in_lib_mtp_plugins_and_says_so() {
    let home = tempfile::tempdir().unwrap();
    let prefix = home.path().join("opt").join("mtp-0.1.0");
    let mtp = install_prefix(&prefix, None);
    let plugins = prefix.join("lib/mtp/plugins").canonicalize().unwrap();
    assert_all_bundled_from(&listed(&mtp, home.path()), &plugins);

    let out = command_for(&mtp, home.path())
        .args(["integrations", "list"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    let header = table.lines().next().unwrap_or_default();
    assert!(header.contains("FROM"), "{table}");
    let mapillary = table
        .lines()
        .find(|l| l.starts_with("mapillary "))
        .unwrap_or_else(|| panic!("no mapillary row in {table}"));
    assert!(
        mapillary.contains(&plugins.display().to_string()),
        "{table}"
    );
}

#[cfg(unix)]
#[test]
fn a_symbolic_link_to_mtp_finds_the_plugins_of_the_tree_it_points_into() {
    let home = tempfile::tempdir().unwrap();
    let prefix = home.path().join("cellar").join("mtp").join("0.1.0");
    let mtp = install_prefix(&prefix, None);
    let links = home.path().join("homebrew").join("bin");
    std::fs::create_dir_all(&links).unwrap();
    std::os::unix::fs::symlink(&mtp, links.join("mtp")).unwrap();
    let plugins = prefix.join("lib/mtp/plugins").canonicalize().unwrap();
    assert_all_bundled_from(&listed(&links.join("mtp"), home.path()), &plugins);
}

#[test]
fn version_names_the_plugin_api_it_hosts_and_the_build_target() {
    let home = tempfile::tempdir().unwrap();
    let out = mtp_command(home.path()).arg("--version").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert_eq!(lines[0], format!("mtp {}", env!("CARGO_PKG_VERSION")));
    assert!(
        lines[1].starts_with(&format!(
            "plugin API {} (loads plugins built for ",
            plugin_api::manifest::PLUGIN_API_VERSION
        )),
        "{stdout}"
    );
    let target = lines[2].strip_prefix("target ").expect("a target line");
    assert!(
        target.starts_with(std::env::consts::ARCH) && target.contains(std::env::consts::OS),
        "{stdout}"
    );
    let short = mtp_command(home.path()).arg("-V").output().unwrap();
    let short = String::from_utf8_lossy(&short.stdout);
    assert!(
        short.contains(target) && short.lines().count() == 1,
        "{short}"
    );
}

#[test]
fn the_demo_finds_mtp_fakes_in_lib_mtp_as_the_debian_package_installs_it() {
    let home = tempfile::tempdir().unwrap();
    let prefix = home.path().join("usr");
    let mtp = install_prefix(&prefix, Some("lib/mtp"));
    let out = command_for(&mtp, home.path())
        .args(["demo", "--images", "3", "--bytes-per-image", "20000"])
        .args(["--processing-secs", "1", "--dir"])
        .arg(home.path().join("demo"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("demo complete"),
        "{}",
        text(&out)
    );
    // Neither beside mtp nor in <prefix>/lib/mtp: the error names both places.
    std::fs::remove_file(
        prefix
            .join("lib/mtp")
            .join(format!("mtp-fakes{}", std::env::consts::EXE_SUFFIX)),
    )
    .unwrap();
    let out = command_for(&mtp, home.path())
        .args(["demo", "--dir"])
        .arg(home.path().join("demo2"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&prefix.join("bin").join("mtp-fakes").display().to_string())
            && stderr.contains(&prefix.join("lib/mtp/mtp-fakes").display().to_string()),
        "{stderr}"
    );
}

#[test]
fn completions_and_man_pages_are_generated_from_the_command_definitions() {
    let home = tempfile::tempdir().unwrap();
    let out = mtp_command(home.path())
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let bash = String::from_utf8_lossy(&out.stdout);
    for word in ["_mtp()", "integrations", "--plugins-dir", "completions"] {
        assert!(bash.contains(word), "no {word} in the bash completion");
    }
    let pages = home.path().join("man1");
    let out = mtp_command(home.path())
        .arg("man-pages")
        .arg(&pages)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    for page in ["mtp.1", "mtp-upload.1", "mtp-plugin-check.1"] {
        let roff = std::fs::read_to_string(pages.join(page)).unwrap();
        assert!(roff.contains(".TH "), "{page} is not a manual page");
    }
    let top = std::fs::read_to_string(pages.join("mtp.1")).unwrap();
    assert!(top.contains("plugins\\-dir"), "{top}");
    // The packagers' command stays out of the help.
    let help = mtp_command(home.path()).arg("--help").output().unwrap();
    assert!(!String::from_utf8_lossy(&help.stdout).contains("man-pages"));
}
