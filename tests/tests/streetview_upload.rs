//! Google Street View through the real host and the fake API: `mtp auth streetview`, `mtp upload` of a
//! 360° sequence that meets the daily quota and goes on the next (shortened) quota day, a flat sequence
//! refused with the reason, and `mtp status` with the photos' share links.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use mtp_fakes::fake_streetview::{FakeStreetView, StreetViewConfig};
use mtp_tests::harness::{build_workspace, bundled_plugin, mtp_command, plugins_dir_with};

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn mtp(home: &Path, plugins: &Path, args: &[&str]) -> Output {
    let (home, plugins) = (home.to_path_buf(), plugins.to_path_buf());
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        mtp_command(&home)
            .arg("--plugins-dir")
            .arg(&plugins)
            .args(&args)
            .output()
            .expect("mtp runs")
    })
    .await
    .expect("the command thread")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_360_sequence_goes_over_two_quota_days_and_a_flat_one_is_refused() {
    build_workspace();
    let fake = FakeStreetView::start(StreetViewConfig {
        indexing: Duration::ZERO,
        review: Duration::ZERO,
        ..StreetViewConfig::default()
    })
    .await
    .unwrap();
    let home = tempfile::tempdir().unwrap();
    let config = fake.config();
    // Three-second quota days and 8 requests a day: three photos' worth of requests is 9.
    std::fs::write(
        home.path().join(".env"),
        format!(
            "GOOGLE_CLIENT_ID={}\nGOOGLE_CLIENT_SECRET={}\nGOOGLE_STREETVIEW_API_URL={}\n\
             GOOGLE_OAUTH_AUTH_URL={}\nGOOGLE_OAUTH_TOKEN_URL={}\nGOOGLE_STREETVIEW_POLL_SECS=0\n\
             GOOGLE_STREETVIEW_DAILY_QUOTA=8\nGOOGLE_STREETVIEW_QUOTA_DAY_MS=3000\n",
            config.client_id,
            config.client_secret,
            fake.api_url(),
            fake.auth_url(),
            fake.token_url()
        ),
    )
    .unwrap();
    let plugins = plugins_dir_with(home.path(), &[bundled_plugin("mtp_streetview")]);
    for args in [
        &[
            "sequence",
            "generate",
            "pano",
            "--count",
            "4",
            "--equirectangular",
            "--width",
            "640",
            "--seed",
            "7",
            "--name",
            "Canal 360",
        ][..],
        &[
            "sequence",
            "generate",
            "flat",
            "--count",
            "3",
            "--seed",
            "8",
            "--name",
            "Flat walk",
        ][..],
    ] {
        let out = mtp(home.path(), &plugins, args).await;
        assert!(out.status.success(), "{}", text(&out));
    }

    let auth = mtp(
        home.path(),
        &plugins,
        &["--auth-browser", "fetch", "auth", "streetview"],
    )
    .await;
    assert!(auth.status.success(), "{}", text(&auth));
    assert!(text(&auth).contains("authorised"), "{}", text(&auth));

    let first = mtp(home.path(), &plugins, &["upload", "pano", "flat"]).await;
    let said = text(&first);
    assert!(first.status.success(), "{said}");
    assert!(
        said.contains("not eligible") && said.contains("flat"),
        "{said}"
    );
    assert!(
        said.contains("stopped for today") && said.contains("can go on after"),
        "{said}"
    );
    assert_eq!(fake.stats().photos.len(), 2, "{said}");

    let mut said = String::new();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(3000)).await;
        let next = mtp(home.path(), &plugins, &["upload", "pano"]).await;
        said = text(&next);
        assert!(next.status.success(), "{said}");
        if said.contains("published on Google Street View") {
            break;
        }
    }
    assert!(
        said.contains("published on Google Street View: 4 photos, connected"),
        "{said}"
    );
    let stats = fake.stats();
    assert_eq!(stats.photos.len(), 4);
    assert_eq!(stats.count("POST /v1/photo"), 4, "no photo sent twice");

    let status = mtp(home.path(), &plugins, &["status"]).await;
    let shown = text(&status);
    assert!(status.status.success(), "{shown}");
    assert!(
        shown.contains("streetview") && shown.contains("published"),
        "{shown}"
    );
    assert!(
        shown.contains("map_action=pano"),
        "share links are shown: {shown}"
    );
    // `status --json` hands the share links over as links, one per photo, for the page to show.
    let json = mtp(home.path(), &plugins, &["status", "--json"]).await;
    let rows: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["integration"] == "streetview")
        .unwrap();
    let links = row["links"].as_array().unwrap();
    assert_eq!(links.len(), 4, "{row}");
    assert!(
        links.iter().all(|l| l["url"]
            .as_str()
            .is_some_and(|u| u.contains("map_action=pano"))
            && l["label"]
                .as_str()
                .is_some_and(|t| t.ends_with("on Google Maps"))),
        "{row}"
    );
    fake.shutdown();
}
