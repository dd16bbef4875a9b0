//! `mtp serve` in a real browser: headless Chromium driven through chromedriver (WebDriver). Opens the
//! token URL, logs in to both fakes with the Log in buttons (the redirects land on the server itself),
//! inspects a generated sequence, uploads it and waits until the page shows it published on Mapillary
//! with its key and synced to MTPW; saves screenshots in `target/test-artifacts/`.
//!
//! Skips (saying so) when Chromium or chromedriver is missing, except in CI (`CI=true`), where that fails.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use mtp_tests::harness::{mtp_command, target_dir};
use mtp_tests::serve::{free_port, World};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver, killed by PID when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_driver() -> Driver {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver { child, port };
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    driver
}

fn browser_available() -> bool {
    let present = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !present {
        let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(
            !in_ci,
            "CI=true but {CHROMIUM} or {CHROMEDRIVER} is missing (.ci/run installs Debian's chromium and chromium-driver)"
        );
        eprintln!(
            "SKIPPED serve_browser: {CHROMIUM} or {CHROMEDRIVER} is missing (apt-get install chromium chromium-driver)"
        );
    }
    present
}

async fn connect(driver: &Driver, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,1400",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a WebDriver session")
}

const WAIT: Duration = Duration::from_secs(120);

async fn wait_for(client: &Client, css: &str) -> fantoccini::elements::Element {
    match client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
    {
        Ok(element) => element,
        Err(err) => {
            let body = client.find(Locator::Css("main")).await.ok();
            let text = match body {
                Some(b) => b.text().await.unwrap_or_default(),
                None => String::new(),
            };
            panic!("the page never showed {css}: {err}\npage text:\n{text}");
        }
    }
}

async fn screenshot(client: &Client, name: &str) -> PathBuf {
    let dir = target_dir().join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("create target/test-artifacts");
    let path = dir.join(name);
    let png = client.screenshot().await.expect("a screenshot");
    std::fs::write(&path, png).expect("write the screenshot");
    println!("screenshot: {}", path.display());
    path
}

async fn log_in(client: &Client, base: &str, id: &str) {
    client
        .goto(&format!("{base}/#integrations"))
        .await
        .expect("open the Integrations page");
    // The list re-renders when events arrive (a replaced button is "stale"): find it again then.
    let css = format!("button[data-login=\"{id}\"]");
    let mut attempts = 0;
    loop {
        let button = wait_for(client, &css).await;
        match button.click().await {
            Ok(()) => break,
            Err(err) if attempts < 20 && err.to_string().contains("stale") => attempts += 1,
            Err(err) => panic!("click Log in with {id}: {err}"),
        }
    }
    // Consent page (auto-approving fake) → our callback → back to the Integrations page.
    wait_for(
        client,
        &format!("article[data-integration=\"{id}\"] .who strong"),
    )
    .await;
}

async fn run(world: &World) {
    let serve = world.serve(&[]);
    let driver = start_driver();
    let profile = tempfile::tempdir().expect("a browser profile directory");
    let client = connect(&driver, profile.path()).await;
    let result = drive(world, &serve.base, &serve.url, &serve.token, &client).await;
    let _ = client.close().await;
    drop(driver);
    if let Err(panic) = result {
        eprintln!("mtp serve's stderr:\n{}", serve.stderr_text());
        std::panic::resume_unwind(panic);
    }
}

async fn drive(
    world: &World,
    base: &str,
    url: &str,
    token: &str,
    client: &Client,
) -> Result<(), Box<dyn std::any::Any + Send>> {
    use futures::FutureExt as _;
    std::panic::AssertUnwindSafe(async {
        client.goto(url).await.expect("open the token URL");
        // The token leaves the address bar once the cookie is set.
        let here = client.current_url().await.expect("the current URL");
        assert!(!here.as_str().contains(token), "{here}");

        // Integrations: every one found, with why the archive is disabled; log in to both.
        client
            .goto(&format!("{base}/#integrations"))
            .await
            .expect("open Integrations");
        let archive = wait_for(client, "article[data-integration=\"archive\"] .reason").await;
        assert!(
            archive
                .text()
                .await
                .unwrap_or_default()
                .contains("ARCHIVE_DIR"),
            "the archive's reason names its missing key"
        );
        log_in(client, base, "mapillary").await;
        // MTPW redirects only to the app.mtp.desktop scheme (docs/providers/mtpw.md), so its login cannot
        // land on this server: log in with a token, as a user would, and the page shows it.
        let mtpw_login = mtp_command(world.home.path())
            .args(["auth", "mtpw", "--token", &world.mtpw.token()])
            .output()
            .expect("run mtp auth mtpw");
        assert!(
            mtpw_login.status.success(),
            "{}",
            String::from_utf8_lossy(&mtpw_login.stderr)
        );
        // Only the hash changes, so the browser would not load the page again: reload it, as a user who
        // logged in elsewhere would (the page learns of logins made outside it only when it loads).
        client
            .goto(&format!("{base}/#integrations"))
            .await
            .expect("open Integrations again");
        client.refresh().await.expect("reload the page");
        wait_for(client, "article[data-integration=\"mtpw\"] .who strong").await;
        let who = wait_for(
            client,
            "article[data-integration=\"mapillary\"] .who strong",
        )
        .await;
        assert_eq!(
            who.text().await.unwrap_or_default(),
            world.mapillary.link().username()
        );
        screenshot(client, "serve-integrations.png").await;

        // Upload: inspect, check eligibility, start, watch.
        client
            .goto(&format!("{base}/#upload"))
            .await
            .expect("open Upload");
        let path = wait_for(client, "#path").await;
        path.send_keys(&world.sequence.to_string_lossy())
            .await
            .expect("type the path");
        wait_for(client, "#inspect")
            .await
            .click()
            .await
            .expect("click Inspect");
        wait_for(
            client,
            ".inspection li[data-integration=\"mapillary\"][data-eligible=\"true\"]",
        )
        .await;
        wait_for(
            client,
            ".inspection li[data-integration=\"mtpw\"][data-eligible=\"true\"]",
        )
        .await;
        wait_for(client, "#start")
            .await
            .click()
            .await
            .expect("click Start upload");
        wait_for(
            client,
            ".upload tr[data-integration=\"mapillary\"][data-state=\"published\"] a.key",
        )
        .await;
        wait_for(
            client,
            ".upload tr[data-integration=\"mtpw\"][data-state=\"published\"]",
        )
        .await;
        wait_for(client, ".upload[data-status=\"done\"]").await;
        // Found again now that the upload is over (its panel is redrawn on every event until then).
        let key = wait_for(
            client,
            ".upload[data-status=\"done\"] tr[data-integration=\"mapillary\"][data-state=\"published\"] a.key",
        )
        .await;
        let key_text = key.text().await.unwrap_or_default();
        let href = key.attr("href").await.ok().flatten().unwrap_or_default();
        assert_eq!(
            href,
            format!("https://www.mapillary.com/app/?pKey={key_text}"),
            "the key links to its public Mapillary page"
        );
        // The key shown is the one the fake Mapillary published, and MTPW got it.
        let published: Vec<String> = world
            .mapillary
            .stats()
            .uploaded_sequences()
            .iter()
            .map(|s| s.key.clone())
            .collect();
        assert!(
            published.contains(&key_text),
            "{key_text} not in {published:?}"
        );
        assert!(
            world.mtpw.stats().sequence_by_key(&key_text).is_some(),
            "MTPW has no sequence for {key_text}"
        );
        // Nothing was fetched from anywhere but this server (fonts and scripts are local).
        let resources = client
            .execute(
                "return performance.getEntriesByType('resource').map(function (e) { return e.name; });",
                vec![],
            )
            .await
            .expect("list the page's requests");
        let resources: Vec<String> = serde_json::from_value(resources).unwrap_or_default();
        assert!(!resources.is_empty());
        for resource in &resources {
            assert!(resource.starts_with(base), "an external request: {resource}");
        }
        let shot = screenshot(client, "serve.png").await;
        assert!(shot.exists());

        // Sequences: the same sequence, published on both.
        client
            .goto(&format!("{base}/#sequences"))
            .await
            .expect("open Sequences");
        wait_for(
            client,
            "article.sequence tr[data-integration=\"mapillary\"][data-state=\"published\"] a.key",
        )
        .await;
        wait_for(
            client,
            "article.sequence tr[data-integration=\"mtpw\"][data-state=\"published\"]",
        )
        .await;
        screenshot(client, "serve-sequences.png").await;
    })
    .catch_unwind()
    .await
}

#[test]
fn the_page_logs_in_inspects_uploads_and_shows_the_sequence_published_and_synced() {
    if !browser_available() {
        return;
    }
    let world = World::new(5);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(run(&world));
}
