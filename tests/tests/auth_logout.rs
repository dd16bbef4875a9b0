//! `mtp auth logout ID` for the providers beside Mapillary and MTPW (those two are covered with
//! `mtp serve` in `serve_api.rs`): each keeps its tokens in the host's secret store, so deleting them
//! makes `mtp auth status` say "not authorised" with how to log in, whatever account record the
//! provider keeps in its state.

use std::path::Path;
use std::process::Output;

use mtp_fakes::fake_panoramax::{FakePanoramax, PanoramaxConfig};
use mtp_fakes::fake_strava::{FakeStrava, StravaConfig};
use mtp_fakes::fake_streetview::{FakeStreetView, StreetViewConfig};
use mtp_tests::harness::{bundled_plugin, mtp_command, plugins_dir_with};

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn mtp(home: &Path, args: &[&str]) -> Output {
    let home = home.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        mtp_command(&home)
            .arg("--plugins-dir")
            .arg(home.join("plugins"))
            .args(&args)
            .output()
            .expect("mtp runs")
    })
    .await
    .expect("the command thread")
}

/// Logs in to `id` through its (auto-approving) fake, logs out, and checks what `auth status` says.
async fn logs_in_and_out(home: &Path, id: &str) {
    let login = mtp(home, &["--auth-browser", "fetch", "auth", id]).await;
    assert!(login.status.success(), "{id}: {}", text(&login));
    let line = |out: &Output| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_default()
            .to_string()
    };
    let before = mtp(home, &["auth", "status"]).await;
    assert!(
        line(&before).contains("authorised") && !line(&before).contains("not authorised"),
        "{id}: {}",
        text(&before)
    );
    let logout = mtp(home, &["auth", "logout", id]).await;
    assert!(logout.status.success(), "{id}: {}", text(&logout));
    assert!(
        text(&logout).contains(&format!("{id}: logged out")),
        "{id}: {}",
        text(&logout)
    );
    let after = mtp(home, &["auth", "status"]).await;
    let said = line(&after);
    assert!(
        said.contains("not authorised") && said.contains(&format!("mtp auth {id}")),
        "{id}: {}",
        text(&after)
    );
    let json = mtp(home, &["auth", "status", "--json"]).await;
    let rows: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    let row = rows
        .as_array()
        .and_then(|r| r.iter().find(|r| r["integration"] == id))
        .cloned()
        .unwrap_or_default();
    assert_eq!(row["authorised"], false, "{id}: {rows}");
    // Logging out again says it was not logged in, and succeeds.
    let again = mtp(home, &["auth", "logout", id]).await;
    assert!(again.status.success(), "{id}: {}", text(&again));
    assert!(
        text(&again).contains("was not logged in"),
        "{id}: {}",
        text(&again)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panoramax_strava_and_street_view_are_logged_out_by_deleting_their_tokens() {
    let panoramax = FakePanoramax::start(PanoramaxConfig::default())
        .await
        .unwrap();
    let strava = FakeStrava::start(StravaConfig::default()).await.unwrap();
    let streetview = FakeStreetView::start(StreetViewConfig::default())
        .await
        .unwrap();
    let (sc, gc) = (strava.config(), streetview.config());
    let cases = [
        (
            "panoramax",
            "mtp_panoramax",
            format!(
                "PANORAMAX_URL={}\nPANORAMAX_CLAIM_POLL_MS=100\n",
                panoramax.base_url()
            ),
        ),
        (
            "strava",
            "mtp_strava",
            format!(
                "STRAVA_CLIENT_ID={}\nSTRAVA_CLIENT_SECRET={}\n\
                 STRAVA_REDIRECT_URI=http://127.0.0.1:9/strava/callback\n\
                 STRAVA_API_URL={}\nSTRAVA_OAUTH_URL={}\n",
                sc.client_id,
                sc.client_secret,
                strava.api_url(),
                strava.oauth_url()
            ),
        ),
        (
            "streetview",
            "mtp_streetview",
            format!(
                "GOOGLE_CLIENT_ID={}\nGOOGLE_CLIENT_SECRET={}\nGOOGLE_STREETVIEW_API_URL={}\n\
                 GOOGLE_OAUTH_AUTH_URL={}\nGOOGLE_OAUTH_TOKEN_URL={}\n",
                gc.client_id,
                gc.client_secret,
                streetview.api_url(),
                streetview.auth_url(),
                streetview.token_url()
            ),
        ),
    ];
    for (id, library, env) in cases {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join(".env"), env).unwrap();
        plugins_dir_with(home.path(), &[bundled_plugin(library)]);
        logs_in_and_out(home.path(), id).await;
    }
}
