//! The CLI papercuts found by trying `mtp` as a new user, each as the user meets it (through the real
//! binary): `.env` reading, `plugin check` / `plugin new`, `mtp demo` run twice, error texts, state and
//! plugins directories, broken pipes, `mtp status` width, colour codes, generated and future dates.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use mtp_tests::harness::{build_workspace, bundled_plugin, mtp_command};
use serde_json::Value;

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn mtp(home: &Path, args: &[&str]) -> Output {
    mtp_command(home).args(args).output().expect("run mtp")
}

fn integrations(home: &Path, args: &[&str]) -> Vec<Value> {
    let out = mtp_command(home)
        .args(args)
        .args(["integrations", "list", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn archive_of(list: &[Value]) -> Value {
    list.iter().find(|i| i["id"] == "archive").unwrap().clone()
}

fn generate(home: &Path, dir: &str, extra: &[&str]) {
    let out = mtp_command(home)
        .args(["sequence", "generate", dir, "--count", "3"])
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_misspelt_key_is_pointed_out() {
    build_workspace();
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join(".env"),
        "MAPILARY_APP_ID=1\nMAPILLARY_SECRET=s\nMAPILLARY_REDIRECT_URI=http://127.0.0.1:9/cb\n",
    )
    .unwrap();
    let out = mtp(home.path(), &["integrations", "list"]);
    let all = text(&out);
    assert!(
        stderr(&out).contains(".env: unknown key MAPILARY_APP_ID: did you mean MAPILLARY_APP_ID?"),
        "{all}"
    );
    assert!(
        all.contains("missing MAPILLARY_APP_ID in .env (MAPILARY_APP_ID is set: did you mean MAPILLARY_APP_ID?)"),
        "{all}"
    );
}

#[test]
fn an_env_file_with_a_byte_order_mark_is_read() {
    build_workspace();
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join(".env"), "\u{feff}ARCHIVE_DIR=/tmp/x\n").unwrap();
    let archive = archive_of(&integrations(home.path(), &[]));
    assert_eq!(archive["enabled"], true, "{archive}");
}

#[test]
fn an_unterminated_quote_names_its_line_and_an_empty_value_reads_empty() {
    build_workspace();
    let home = tempfile::tempdir().unwrap();
    let env = home.path().join(".env");
    std::fs::write(&env, "A=1\nB=\"abc\nC=3\nD=4\n").unwrap();
    let out = mtp(home.path(), &["integrations", "list"]);
    let err = stderr(&out);
    assert!(err.contains(".env:2: malformed line"), "{err}");
    assert!(err.contains("quote is not closed"), "{err}");
    assert!(
        !err.contains("D=4"),
        "the rest of the file is not quoted: {err}"
    );
    std::fs::write(&env, "ARCHIVE_DIR=\n").unwrap();
    let archive = archive_of(&integrations(home.path(), &[]));
    assert_eq!(
        archive["reason"], "ARCHIVE_DIR is empty in .env",
        "{archive}"
    );
}

#[test]
fn verbose_says_when_the_default_env_file_is_absent_and_logs_have_no_colour_codes() {
    build_workspace();
    let home = tempfile::tempdir().unwrap();
    let out = mtp(home.path(), &["-v", "integrations", "list"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stderr(&out).contains("no .env in the current directory"),
        "{}",
        text(&out)
    );
    let out = mtp(home.path(), &["-vvv", "status"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!stderr(&out).is_empty());
    assert!(!stderr(&out).contains('\u{1b}'), "{}", text(&out));
}

#[test]
fn path_values_expand_home_and_resolve_against_the_env_files_directory() {
    build_workspace();
    let home = tempfile::tempdir().unwrap();
    generate(home.path(), "walk", &[]);
    let config = home.path().join("config");
    std::fs::create_dir(&config).unwrap();
    std::fs::write(config.join("my.env"), "ARCHIVE_DIR=archive\n").unwrap();
    // Run from elsewhere: the relative value is relative to the .env file, not to the current dir.
    let elsewhere = home.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let out = mtp_command(home.path())
        .current_dir(&elsewhere)
        .arg("--env-file")
        .arg(config.join("my.env"))
        .arg("upload")
        .arg(home.path().join("walk"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(config.join("archive").is_dir(), "{}", text(&out));
    assert!(!elsewhere.join("archive").exists());
    // `~` is the home directory.
    std::fs::write(config.join("my.env"), "ARCHIVE_DIR=~/tilde-archive\n").unwrap();
    generate(home.path(), "other", &["--seed", "2"]);
    let out = mtp_command(home.path())
        .env("HOME", home.path())
        .arg("--env-file")
        .arg(config.join("my.env"))
        .arg("upload")
        .arg(home.path().join("other"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(home.path().join("tilde-archive").is_dir(), "{}", text(&out));
    assert!(!home.path().join("~").exists());
}

#[test]
fn an_io_error_is_printed_once() {
    build_workspace();
    let home = tempfile::tempdir().unwrap();
    let out = mtp(home.path(), &["--env-file", "nope.env", "status"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_eq!(
        stderr(&out).matches("os error 2").count(),
        1,
        "{}",
        text(&out)
    );
}

/// A sequence folder that cannot be read is named once, whether `upload` names it first or not.
#[test]
fn an_unreadable_sequence_folder_is_named_once() {
    build_workspace();
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join(".env"), "ARCHIVE_DIR=archive\n").unwrap();
    std::fs::create_dir(home.path().join("empty-walk")).unwrap();
    for args in [
        &["upload", "missing-walk"][..],
        &["sequence", "inspect", "missing-walk"],
        &["upload", "empty-walk"],
        &["sequence", "inspect", "empty-walk"],
    ] {
        let out = mtp(home.path(), args);
        assert_eq!(out.status.code(), Some(5), "{args:?}: {}", text(&out));
        let said = stderr(&out);
        let name = args[args.len() - 1];
        assert_eq!(said.matches(name).count(), 1, "{args:?}: {said}");
        assert!(
            said.contains("cannot read the sequence"),
            "{args:?}: {said}"
        );
    }
}

#[test]
fn plugin_check_with_a_bare_name_checks_the_file_in_the_current_directory() {
    build_workspace();
    let home = tempfile::tempdir().unwrap();
    // The name of a system library, but this file is not one: the loader's search path must not be used.
    std::fs::write(home.path().join("libz.so.1"), b"not a library").unwrap();
    let out = mtp(home.path(), &["plugin", "check", "--json", "libz.so.1"]);
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["accepted"], false, "{answer}");
    let reason = answer["reason"].as_str().unwrap();
    assert!(
        reason.contains(&home.path().join("libz.so.1").display().to_string()),
        "{reason}"
    );
    // A real plugin by bare name is accepted.
    let archive = bundled_plugin("mtp_archive");
    let name = archive.file_name().unwrap().to_str().unwrap().to_string();
    std::fs::copy(&archive, home.path().join(&name)).unwrap();
    let out = mtp(home.path(), &["plugin", "check", &name]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn plugin_new_refuses_a_bundled_id() {
    build_workspace();
    let home = tempfile::tempdir().unwrap();
    for id in [
        "mapillary",
        "archive",
        "mtpw",
        "panoramax",
        "strava",
        "streetview",
    ] {
        let out = mtp(home.path(), &["plugin", "new", id]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(stderr(&out).contains("bundled"), "{}", text(&out));
        assert!(!home.path().join(format!("mtp-{id}")).exists());
    }
    let out = mtp(home.path(), &["plugin", "new", "street-cam"]);
    assert!(out.status.success(), "{}", text(&out));
    // Again: the directory exists now, a refused argument as well (README's exit codes).
    let again = mtp(home.path(), &["plugin", "new", "street-cam"]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        text(&again)
    );
    // `plugin check` on a file that is not there: usage, and said as such.
    let missing = mtp(home.path(), &["plugin", "check", "libnothing.so"]);
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
    assert!(
        stderr(&missing).contains("no such file: libnothing.so"),
        "{}",
        text(&missing)
    );
    let cargo = std::fs::read_to_string(home.path().join("mtp-street-cam/Cargo.toml")).unwrap();
    let dependency = cargo
        .lines()
        .find(|l| l.starts_with("mtp-plugin-api"))
        .unwrap();
    // From a checkout (as here) the path is this checkout's plugin-api, and it exists.
    let path = dependency.split('"').nth(1).unwrap();
    assert!(Path::new(path).join("Cargo.toml").is_file(), "{dependency}");
}

#[test]
fn the_demo_without_a_dir_leaves_nothing_in_the_temp_directory() {
    build_workspace();
    let home = tempfile::tempdir().unwrap();
    let tmp = home.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let out = mtp_command(home.path())
        .env("TMPDIR", &tmp)
        .args(["demo", "--images", "3", "--bytes-per-image", "30000"])
        .args(["--processing-secs", "1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("(removed at the end; pass --dir DIR to keep one)"),
        "{}",
        text(&out)
    );
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn the_demo_runs_twice_in_one_directory_and_refuses_flags_it_cannot_honour() {
    build_workspace();
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("demo");
    let demo = |extra: &[&str]| {
        mtp_command(home.path())
            .args(extra)
            .args([
                "demo",
                "--images",
                "3",
                "--bytes-per-image",
                "30000",
                "--processing-secs",
                "1",
                "--dir",
            ])
            .arg(&dir)
            .output()
            .unwrap()
    };
    for run in 0..2 {
        let out = demo(&[]);
        assert!(out.status.success(), "run {run}: {}", text(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains("demo complete"));
    }
    for flag in [
        &["--json"][..],
        &["--state-dir", "elsewhere"][..],
        &["--env-file", "x.env"][..],
    ] {
        let out = demo(flag);
        assert_eq!(out.status.code(), Some(2), "{flag:?}: {}", text(&out));
        assert!(stderr(&out).contains(flag[0]), "{}", text(&out));
    }
}

#[test]
fn plugins_dir_entries_that_are_not_libraries_are_skipped_with_a_reason() {
    build_workspace();
    let home = tempfile::tempdir().unwrap();
    let plugins = home.path().join("plugins");
    std::fs::create_dir_all(plugins.join("dir.so")).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink("/nonexistent/libgone.so", plugins.join("gone.so")).unwrap();
    let out = mtp_command(home.path())
        .arg("--plugins-dir")
        .arg(&plugins)
        .args(["integrations", "list"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let err = stderr(&out);
    assert!(err.contains("dir.so: a directory"), "{err}");
    #[cfg(unix)]
    assert!(
        err.contains("gone.so: a symbolic link to /nonexistent/libgone.so"),
        "{err}"
    );
}

#[test]
fn a_closed_pipe_ends_a_printing_command_quietly() {
    build_workspace();
    let home = tempfile::tempdir().unwrap();
    generate(home.path(), "walk", &[]);
    for _ in 0..3 {
        let mut child = mtp_command(home.path())
            .args(["sequence", "inspect", "walk"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before mtp writes anything (`| head -0`): every write meets EPIPE.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "{err}");
        assert_ne!(out.status.code(), Some(101), "{err}");
    }
}

#[test]
fn a_dot_relative_archive_dir_prints_clean_and_a_vanished_folder_is_said_to_be_gone() {
    build_workspace();
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join(".env"), "ARCHIVE_DIR=./archive\n").unwrap();
    generate(home.path(), "a", &["--seed", "1"]);
    let out = mtp(home.path(), &["upload", "a"]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("/archive/"), "{all}");
    assert!(!all.contains("/./"), "a path with /./ in it: {all}");

    std::fs::rename(home.path().join("a"), home.path().join("moved")).unwrap();
    let out = mtp(home.path(), &["status", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let said = rows[0]["folder_changed"].as_str().unwrap_or_default();
    assert!(
        said.starts_with("the folder was not found (moved or deleted?)"),
        "{rows:?}"
    );
}

#[test]
fn status_fits_the_terminal_and_tells_same_name_sequences_apart() {
    build_workspace();
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join(".env"), "ARCHIVE_DIR=archive\n").unwrap();
    generate(home.path(), "a", &["--name", "Same name", "--seed", "1"]);
    generate(home.path(), "b", &["--name", "Same name", "--seed", "2"]);
    // A result line longer than the terminal is folded under an indent, not cut.
    let out = mtp_command(home.path())
        .env("COLUMNS", "40")
        .args(["upload", "a", "b"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let results: Vec<&str> = said
        .lines()
        .filter(|l| l.starts_with("Same name / archive:"))
        .collect();
    assert_eq!(results.len(), 2, "{said}");
    assert!(said.lines().all(|l| l.chars().count() <= 40), "{said}");
    assert!(said.lines().any(|l| l.starts_with("    ")), "{said}");
    let out = mtp_command(home.path())
        .env("COLUMNS", "100")
        .arg("status")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    for line in table.lines() {
        assert!(line.chars().count() <= 100, "{table}");
    }
    let ids: std::collections::BTreeSet<&str> = table
        .lines()
        .filter(|l| l.starts_with("Same name"))
        .filter_map(|l| l["Same name".len()..].split_whitespace().next())
        .collect();
    assert_eq!(ids.len(), 2, "two short ids: {table}");
}

#[test]
fn a_read_only_state_dir_still_lets_status_and_inspect_read() {
    build_workspace();
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join(".env"), "ARCHIVE_DIR=archive\n").unwrap();
    generate(home.path(), "walk", &[]);
    let out = mtp(home.path(), &["upload", "walk"]);
    assert!(out.status.success(), "{}", text(&out));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: &Path, mode: u32| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
        };
        mode(home.path(), 0o755);
        let state = home.path().join("state");
        for entry in std::fs::read_dir(&state).unwrap() {
            let path = entry.unwrap().path();
            mode(&path, if path.is_dir() { 0o555 } else { 0o444 });
        }
        mode(&state, 0o555);
        // Root ignores permission bits: run as nobody then (setpriv, util-linux), else as ourselves.
        // SAFETY: geteuid(2) has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let run = |args: &[&str]| -> Output {
            let probe = mtp_command(home.path());
            let mut command = if root {
                let mut c = Command::new("setpriv");
                c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                    .arg(probe.get_program());
                c
            } else {
                Command::new(probe.get_program())
            };
            command
                .env("MTP_STATE_DIR", &state)
                .env_remove("MTP_PLUGINS_DIR")
                .current_dir(home.path())
                .args(args)
                .output()
                .unwrap()
        };
        let out = run(&["status"]);
        assert!(out.status.success(), "{}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("published"),
            "{}",
            text(&out)
        );
        assert!(stderr(&out).contains("cannot be written"), "{}", text(&out));
        let out = run(&["sequence", "inspect", "walk"]);
        assert!(out.status.success(), "{}", text(&out));
        mode(&state, 0o700);
    }
}

#[test]
fn generated_dates_stay_sane_and_future_capture_times_are_refused() {
    build_workspace();
    let home = tempfile::tempdir().unwrap();
    generate(home.path(), "seeded", &["--seed", "20261125"]);
    let out = mtp(home.path(), &["sequence", "inspect", "--json", "seeded"]);
    assert!(out.status.success(), "{}", text(&out));
    let inspected: Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = inspected["first_capture"].as_str().unwrap();
    let year: i32 = first[..4].parse().unwrap();
    assert!((2020..=2026).contains(&year), "{first}");

    // A camera whose clock is years ahead.
    let future = home.path().join("future");
    let options = mtp_sequence::generate::GenerateOptions {
        count: 3,
        start_time_ms: chrono::Utc::now().timestamp_millis() + 3 * 365 * 86_400_000,
        ..Default::default()
    };
    mtp_sequence::generate::generate_sequence(&future, &options).unwrap();
    let out = mtp(home.path(), &["sequence", "inspect", "future"]);
    let all = text(&out);
    assert!(all.contains("is in the future"), "{all}");
    std::fs::write(home.path().join(".env"), "ARCHIVE_DIR=archive\n").unwrap();
    let out = mtp(home.path(), &["upload", "future"]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let all = text(&out);
    assert!(all.contains("is in the future"), "{all}");
    assert!(all.contains(".jpg"), "the problem names the file: {all}");
}
