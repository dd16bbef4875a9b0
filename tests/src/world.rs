//! A user's machine for the end-to-end tests: a temporary home whose `.env` points at a fake Mapillary
//! and a fake MTPW started in process, and the real `mtp` binary run there. One place for what every
//! end-to-end test used to set up on its own.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mtp_fakes::fake_mapillary::{FakeMapillary, MapillaryConfig};
use mtp_fakes::fake_mtpw::{FakeMtpw, MtpwConfig};

use crate::harness::{build_workspace, mtp_command};

/// The `.env` lines that point Mapillary (and, when given, MTPW) at the fakes. `redirect` is
/// Mapillary's redirect URI (the tests that log in by fetching the consent page use one nothing
/// listens on); `retry_ms` is every integration's first retry delay, short so faults cost little time.
/// With MTPW the user has chosen to create MTPW sequences before the server shows it can import
/// (`MTP_WEB_CREATE_SEQUENCES=true`; the fake's import works): without that choice mtp creates none on a
/// fresh server (plugins/mtpw/tests/create_choice.rs).
pub fn fakes_env(
    mapillary: &FakeMapillary,
    mtpw: Option<&FakeMtpw>,
    redirect: &str,
    retry_ms: u64,
) -> String {
    let c = mapillary.config();
    let mut env = format!(
        "MAPILLARY_APP_ID={}\nMAPILLARY_SECRET={}\nMAPILLARY_REDIRECT_URI={redirect}\n\
         MAPILLARY_GRAPH_URL={}\nMAPILLARY_UPLOAD_URL={}\nMAPILLARY_AUTHORIZE_URL={}\n\
         MAPILLARY_RETRY_BASE_MS={retry_ms}\n",
        c.client_id,
        c.client_secret,
        mapillary.graph_url(),
        mapillary.upload_url(),
        mapillary.authorize_url(),
    );
    if let Some(mtpw) = mtpw {
        env.push_str(&format!(
            "MTP_WEB_URL={}\nMTP_WEB_AUTH_URL={}\nMTP_WEB_APP_ID=app\nMTP_WEB_APP_SECRET=secret\n\
             MTP_WEB_RETRY_BASE_MS={retry_ms}\nMTP_WEB_CREATE_SEQUENCES=true\n",
            mtpw.base_url(),
            mtpw.auth_url(),
        ));
    }
    env
}

/// stdout and stderr of a finished command, for assertion messages.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A home with both fakes running and a `.env` enabling Mapillary and MTPW against them.
pub struct FakesWorld {
    pub home: tempfile::TempDir,
    pub mapillary: FakeMapillary,
    pub mtpw: FakeMtpw,
}

impl FakesWorld {
    /// Builds the workspace, starts the fakes (MTPW linked to the fake Mapillary, as the real MTPW
    /// checks tokens and keys against Mapillary) and writes the `.env`.
    pub fn start(mapillary: MapillaryConfig, mtpw: MtpwConfig) -> FakesWorld {
        build_workspace();
        let home = tempfile::tempdir().expect("temporary home");
        let mapillary = FakeMapillary::spawn_blocking_thread(mapillary).expect("fake Mapillary");
        let mtpw = FakeMtpw::spawn_blocking_thread(MtpwConfig {
            mapillary: Some(mapillary.link()),
            ..mtpw
        })
        .expect("fake MTPW");
        let env = fakes_env(&mapillary, Some(&mtpw), "http://127.0.0.1:9/cb", 20);
        std::fs::write(home.path().join(".env"), env).expect("write .env");
        FakesWorld {
            home,
            mapillary,
            mtpw,
        }
    }

    /// `home/<name>`.
    pub fn dir(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    /// Adds lines to the `.env`.
    pub fn append_env(&self, lines: &str) {
        let path = self.home.path().join(".env");
        let mut env = std::fs::read_to_string(&path).expect("read .env");
        env.push_str(lines);
        std::fs::write(&path, env).expect("write .env");
    }

    /// `mtp` in this home, logging in by fetching the consent page (no browser).
    pub fn mtp(&self) -> Command {
        let mut command = mtp_command(self.home.path());
        command.env("MTP_AUTH_BROWSER", "fetch");
        command
    }

    /// Runs `mtp args` to the end.
    pub fn run(&self, args: &[&str]) -> Output {
        self.mtp().args(args).output().expect("run mtp")
    }

    /// `mtp auth mapillary` and `mtp auth mtpw`, each required to succeed.
    pub fn authorise(&self) {
        for id in ["mapillary", "mtpw"] {
            let out = self.run(&["auth", id]);
            assert!(out.status.success(), "auth {id}: {}", output_text(&out));
        }
    }

    /// The home directory.
    pub fn path(&self) -> &Path {
        self.home.path()
    }
}

/// Declares `struct $name(FakesWorld)` that derefs to [`FakesWorld`], so a suite adds its own helpers
/// (`impl $name { .. }`) on top of the shared ones.
#[macro_export]
macro_rules! suite_world {
    ($name:ident) => {
        /// The fakes' world ([`FakesWorld`](mtp_tests::world::FakesWorld)) with this suite's own helpers.
        struct $name(mtp_tests::world::FakesWorld);

        impl std::ops::Deref for $name {
            type Target = mtp_tests::world::FakesWorld;
            fn deref(&self) -> &mtp_tests::world::FakesWorld {
                &self.0
            }
        }
    };
}
