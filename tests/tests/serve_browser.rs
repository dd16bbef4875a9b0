//! `mtp serve` in a real browser: headless Chromium driven through chromedriver (WebDriver). Opens the
//! token URL, logs in to the fakes with the Log in buttons (Mapillary's redirect lands on the server
//! itself; MTPW's through the paste form, by address and by token, with a Log out between; Panoramax's
//! claim in a new tab),
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
    let deadline = Instant::now() + WAIT;
    loop {
        let found = client
            .wait()
            .at_most(deadline.saturating_duration_since(Instant::now()))
            .for_element(Locator::Css(css))
            .await;
        match found {
            // The page went elsewhere while it was looked at (a login's redirects): look again.
            Err(err)
                if err.to_string().contains("aborted by navigation")
                    && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            found => return wait_result(client, css, found).await,
        }
    }
}

async fn wait_result(
    client: &Client,
    css: &str,
    found: Result<fantoccini::elements::Element, fantoccini::error::CmdError>,
) -> fantoccini::elements::Element {
    match found {
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

/// axe-core's script, installed from npm by `.ci/run` into `target/axe` (`npm install --prefix target/axe
/// axe-core@4`); `None` (said once) when it is missing outside CI.
fn axe_source() -> Option<String> {
    let path = target_dir().join("axe/node_modules/axe-core/axe.min.js");
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(err) => {
            let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
            assert!(!in_ci, "CI=true but {} is missing: {err}", path.display());
            eprintln!(
                "no axe-core at {} ({err}): accessibility not checked",
                path.display()
            );
            None
        }
    }
}

/// The serious and critical WCAG 2.1 A/AA violations axe-core finds on the page as it is now.
async fn axe_violations(client: &Client, axe: &str) -> Vec<serde_json::Value> {
    client
        .execute(&format!("{axe}\nreturn true;"), vec![])
        .await
        .expect("inject axe-core");
    let found = client
        .execute_async(
            "var done = arguments[arguments.length - 1];
             axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})
               .then(function (r) { done(r.violations.map(function (v) {
                 return {id: v.id, impact: v.impact, help: v.help,
                         targets: v.nodes.map(function (n) { return n.target.join(' '); })}; })); })
               .catch(function (e) { done([{id: 'axe-error', impact: 'critical', help: String(e)}]); });",
            vec![],
        )
        .await
        .expect("run axe-core");
    serde_json::from_value::<Vec<serde_json::Value>>(found)
        .unwrap_or_default()
        .into_iter()
        .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
        .collect()
}

/// A screenshot of the page as it is now at 1280 and at 420 px (`<name>-1280.png`, `<name>-420.png`),
/// with no serious or critical axe-core violation at either width.
async fn shots(client: &Client, name: &str) {
    shots_of(client, name, ".upload").await;
}

/// [`shots`] with the Upload page scrolled to `css` (the newest upload's panel in [`shots`]).
async fn shots_of(client: &Client, name: &str, css: &str) {
    let axe = axe_source();
    for width in [1280u32, 420] {
        client
            .set_window_size(width, 1400)
            .await
            .expect("resize the window");
        // On Upload, the newest upload's panel is what the picture is about (or `css`).
        client
            .execute(
                "var u = location.hash === '#upload' && document.querySelector(arguments[0]); \
                 if (u) { u.scrollIntoView({block: 'start'}); } return true;",
                vec![serde_json::json!(css)],
            )
            .await
            .expect("scroll to the upload");
        tokio::time::sleep(Duration::from_millis(300)).await;
        screenshot(client, &format!("{name}-{width}.png")).await;
        if width == 420 {
            let wide: i64 = client
                .execute("return document.documentElement.scrollWidth;", vec![])
                .await
                .ok()
                .and_then(|v| v.as_i64())
                .unwrap_or(0);
            assert!(wide <= 420, "{name}: the page is {wide} px wide at 420 px");
        }
        if let Some(axe) = &axe {
            let violations = axe_violations(client, axe).await;
            println!(
                "axe-core {name} at {width}: {} serious/critical",
                violations.len()
            );
            assert!(
                violations.is_empty(),
                "{name} at {width} px: {violations:#?}"
            );
        }
    }
    client
        .set_window_size(1280, 1400)
        .await
        .expect("resize the window");
}

/// The text of the element `css` finds, found again when the page redrew it meanwhile ("stale").
async fn text_of(client: &Client, css: &str) -> String {
    for attempt in 0.. {
        match wait_for(client, css).await.text().await {
            Ok(text) => return text,
            Err(err) if attempt < 20 && err.to_string().contains("stale") => {}
            Err(err) => panic!("the text of {css}: {err}"),
        }
    }
    unreachable!()
}

async fn click(client: &Client, css: &str) {
    // The page redraws on events (a replaced element is "stale"): find it again then.
    for attempt in 0.. {
        match wait_for(client, css).await.click().await {
            Ok(()) => return,
            Err(err) if attempt < 20 && err.to_string().contains("stale") => {}
            Err(err) => panic!("click {css}: {err}"),
        }
    }
}

async fn inspect(client: &Client, base: &str, dir: &Path) {
    client
        .goto(&format!("{base}/#upload"))
        .await
        .expect("open Upload");
    client.refresh().await.expect("reload the page");
    let path = wait_for(client, "#path").await;
    path.clear().await.expect("clear the path");
    path.send_keys(&dir.to_string_lossy())
        .await
        .expect("type the path");
    click(client, "#inspect").await;
}

/// Inspects the folder `name` of the user's home, picked with Browse….
async fn inspect_by_picker(client: &Client, base: &str, name: &str) {
    client
        .goto(&format!("{base}/#upload"))
        .await
        .expect("open Upload");
    client.refresh().await.expect("reload the page");
    wait_for(client, "#path")
        .await
        .clear()
        .await
        .expect("clear the path");
    click(client, "#browse").await;
    wait_for(client, &format!("#picker button[data-folder=\"{name}\"]")).await;
    shots(client, "upload-folder-picker").await;
    click(client, &format!("#picker button[data-folder=\"{name}\"]")).await;
    wait_for(client, "#picker-up").await;
    let label = wait_for(client, "#picker-use")
        .await
        .text()
        .await
        .unwrap_or_default();
    assert!(
        label.contains("photos"),
        "the picker counts the folder's photos: {label}"
    );
    click(client, "#picker-use").await;
    wait_for(client, "#picker[hidden]").await;
    let path = wait_for(client, "#path")
        .await
        .prop("value")
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    assert!(
        path.ends_with(name),
        "the picked folder fills the path: {path}"
    );
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

/// A 1×1 PNG, the tile every request of [`TileServer`] gets.
const TILE_PNG: [u8; 69] = [
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53,
    0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x38, 0x73, 0xf7, 0x0c,
    0x00, 0x04, 0xee, 0x02, 0x76, 0x47, 0x44, 0x21, 0x06, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e,
    0x44, 0xae, 0x42, 0x60, 0x82,
];

/// A stand-in for a tile server on 127.0.0.1 (tests never reach the internet): every path is a tile
/// while `online`, and 503 otherwise (the page then draws the track alone).
struct TileServer {
    base: String,
    online: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl TileServer {
    fn start() -> TileServer {
        use std::io::{Read as _, Write as _};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the tile server");
        let base = format!("http://{}", listener.local_addr().expect("its address"));
        let online = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let serving = online.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                let _ = if serving.load(std::sync::atomic::Ordering::SeqCst) {
                    stream
                        .write_all(
                            format!(
                                "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                TILE_PNG.len()
                            )
                            .as_bytes(),
                        )
                        .and_then(|()| stream.write_all(&TILE_PNG))
                } else {
                    stream.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                };
            }
        });
        TileServer { base, online }
    }

    fn set_online(&self, online: bool) {
        self.online
            .store(online, std::sync::atomic::Ordering::SeqCst);
    }

    fn template(&self) -> String {
        format!("{}/{{z}}/{{x}}/{{y}}.png", self.base)
    }
}

enum PasteWhat {
    /// The `app.mtp.desktop://...#access_token=...` address MTPW's consent page redirects to.
    Address,
    /// A token the user has.
    Token(String),
}

/// Logs in to MTPW from the Integrations page through the paste form.
async fn mtpw_paste_login(client: &Client, base: &str, what: PasteWhat) {
    client
        .goto(&format!("{base}/#integrations"))
        .await
        .expect("open the Integrations page");
    click(client, "button[data-login=\"mtpw\"]").await;
    let text = text_of(client, "#paste:not([hidden])").await;
    assert!(
        text.contains("app.mtp.desktop") && text.contains("token"),
        "the paste form says what to paste and where it comes from: {text}"
    );
    // The consent page opened in a new tab: this one stays on mtp.
    let here = client.current_url().await.expect("the current URL");
    assert!(here.as_str().starts_with(base), "{here}");
    let pasted = match what {
        PasteWhat::Address => {
            shots(client, "login-mtpw-paste").await;
            // What the user copies: where MTPW's consent page sends the browser.
            let consent = wait_for(client, "#paste-open")
                .await
                .attr("href")
                .await
                .ok()
                .flatten()
                .expect("the paste form links MTPW's page");
            let answer = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("an HTTP client")
                .get(&consent)
                .send()
                .await
                .expect("open MTPW's consent page");
            answer
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .expect("MTPW's consent page redirects")
                .to_string()
        }
        PasteWhat::Token(token) => token,
    };
    let field = wait_for(client, "#paste-url").await;
    field.send_keys(&pasted).await.expect("paste");
    click(client, "#paste button[type=\"submit\"]").await;
    wait_for(client, "#paste[hidden]").await;
    wait_for(client, "article[data-integration=\"mtpw\"] .who strong").await;
}

/// Logs in to Panoramax from the Integrations page: its claim page opens in a new tab while this one
/// waits for the claim, and stays on mtp.
async fn panoramax_claim_login(client: &Client, base: &str) {
    client
        .goto(&format!("{base}/#integrations"))
        .await
        .expect("open the Integrations page");
    let ours = client.window().await.expect("this tab");
    click(client, "button[data-login=\"panoramax\"]").await;
    // The fake claims the token as soon as its claim page is opened, so the page's "log in in the other
    // tab" note may already be gone: the login itself is what is waited for.
    assert_eq!(
        text_of(
            client,
            "article[data-integration=\"panoramax\"] .who strong"
        )
        .await,
        "alice"
    );
    wait_for(client, "#claim[hidden]").await;
    let here = client.current_url().await.expect("the current URL");
    assert!(
        here.as_str().starts_with(base),
        "the claim took the mtp tab away: {here}"
    );
    // Only a browser opening the claim page claims the token (this server does not fetch it: no
    // `--auth-browser fetch`), and this tab stayed on mtp: the claim page opened in a tab of its own.
    let windows = client.windows().await.expect("the browser's windows");
    assert!(windows.len() >= 2 && windows.contains(&ours), "{windows:?}");
}

async fn run(world: &World) {
    let tiles = TileServer::start();
    let template = tiles.template();
    let mut serve = world.serve(&["--tiles", &template, "--tiles-attribution", "Test tiles"]);
    let driver = start_driver();
    let profile = tempfile::tempdir().expect("a browser profile directory");
    let client = connect(&driver, profile.path()).await;
    let (base, url, token) = (serve.base.clone(), serve.url.clone(), serve.token.clone());
    let mut result = drive(world, &tiles, &base, &url, &token, &client).await;
    if result.is_ok() {
        result = restart(world, &mut serve, &client).await;
    }
    let _ = client.close().await;
    drop(driver);
    if let Err(panic) = result {
        eprintln!("mtp serve's stderr:\n{}", serve.stderr_text());
        std::panic::resume_unwind(panic);
    }
}

/// The server stops (the page says it is reconnecting) and starts again on the same port: the page
/// reconnects by itself, with the kept token.
async fn restart(
    world: &World,
    serve: &mut mtp_tests::serve::Serve,
    client: &Client,
) -> Result<(), Box<dyn std::any::Any + Send>> {
    use futures::FutureExt as _;
    std::panic::AssertUnwindSafe(async {
        let token = serve.token.clone();
        // SAFETY: kill(2) on the PID of the child this test started.
        assert_eq!(
            unsafe { libc::kill(serve.pid() as libc::pid_t, libc::SIGTERM) },
            0
        );
        serve
            .wait_exit(Duration::from_secs(60))
            .expect("mtp serve did not stop on SIGTERM");
        wait_for(client, "#live.off").await;
        shots(client, "server-stopped").await;
        *serve = world.serve(&[]);
        assert_eq!(serve.token, token, "the token is kept across a restart");
        let status = wait_for(client, "#live.on").await;
        assert_eq!(status.text().await.unwrap_or_default(), "live");
        shots(client, "server-restarted").await;
    })
    .catch_unwind()
    .await
}

async fn drive(
    world: &World,
    tiles: &TileServer,
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
        assert_eq!(
            text_of(client, "article[data-integration=\"mapillary\"] .who strong").await,
            world.mapillary.link().username()
        );
        shots(client, "integrations").await;

        // Upload, MTPW not logged in and a folder without a transport type: Mapillary is ready, MTPW
        // needs a login and the transport, the disabled archive says why; Start says what will run.
        let bare = world.home.path().join("bare-walk");
        let generated = mtp_sequence::generate::generate_sequence(
            &bare,
            &mtp_sequence::generate::GenerateOptions {
                count: 3,
                transport: None,
                image_description: false,
                sequence_toml: false,
                seed: 7,
                ..Default::default()
            },
        )
        .expect("generate a folder without transport");
        inspect(client, base, &generated.root).await;
        wait_for(client, "#plan li[data-integration=\"mapillary\"][data-readiness=\"ready\"]").await;
        wait_for(client, "#plan li[data-integration=\"mtpw\"][data-readiness=\"needs_login\"] button").await;
        wait_for(client, "#plan li[data-integration=\"archive\"][data-readiness=\"disabled\"]").await;
        // The track, drawn from the images' positions; the tile server is down: the track alone, saying so.
        wait_for(client, ".inspection svg.track polyline").await;
        let offline = text_of(client, ".track-box[data-tiles=\"offline\"] figcaption").await;
        assert!(
            offline.contains("the track alone"),
            "the offline map says so"
        );
        // These photos have no embedded thumbnail: they say so.
        wait_for(client, ".thumbs .no-thumb").await;
        let start = wait_for(client, "#start").await;
        assert_eq!(start.text().await.unwrap_or_default(), "Upload to Mapillary");
        shots(client, "upload-plan").await;
        // The transport field, checked by the server as the CLI checks it.
        let transport = wait_for(client, "#meta-transport").await;
        transport.send_keys("Earth/Teleport\t").await.expect("type a transport");
        wait_for(client, "#meta-status.error").await;
        assert!(wait_for(client, "#start").await.attr("disabled").await.ok().flatten().is_some());
        shots(client, "upload-bad-transport").await;
        let transport = wait_for(client, "#meta-transport").await;
        transport.clear().await.expect("clear the transport");
        transport.send_keys("Walk\t").await.expect("type a transport");
        // Checked (the message is gone) and Start enabled again before it is clicked.
        wait_for(client, "#meta-status:empty").await;
        wait_for(client, "#start:not([disabled])").await;
        click(client, "#start").await;
        wait_for(client, ".upload[data-status=\"done\"] tr[data-integration=\"mapillary\"][data-state=\"published\"]").await;
        wait_for(client, ".upload[data-status=\"done\"] tr[data-integration=\"mtpw\"][data-state=\"skipped\"]").await;
        shots(client, "upload-mtpw-left-out").await;

        // MTPW redirects only to the app.mtp.desktop scheme (docs/providers/mtpw.md), so its login cannot
        // land on this server: the page opens MTPW's page in a new tab and asks for the address the
        // browser was sent to, or a token. The address first, as a user copies it from the browser.
        mtpw_paste_login(client, base, PasteWhat::Address).await;
        // Log out: the token is gone, the card offers Log in again (and `mtp auth status` agrees).
        click(client, "button[data-logout=\"mtpw\"]").await;
        wait_for(
            client,
            "article[data-integration=\"mtpw\"] button[data-login=\"mtpw\"]:not(.secondary)",
        )
        .await;
        assert!(
            client
                .find_all(Locator::Css("article[data-integration=\"mtpw\"] .who strong"))
                .await
                .expect("look for the login")
                .is_empty(),
            "MTPW still shows as logged in after Log out"
        );
        let status = mtp_command(world.home.path())
            .args(["auth", "status"])
            .output()
            .expect("run mtp auth status");
        let status = String::from_utf8_lossy(&status.stdout).into_owned();
        assert!(
            status
                .lines()
                .any(|l| l.starts_with("mtpw") && l.contains("not authorised")),
            "{status}"
        );
        shots(client, "integrations-mtpw-logged-out").await;
        // Then with a token, the other way the form offers.
        mtpw_paste_login(client, base, PasteWhat::Token(world.mtpw.token())).await;

        // A cancelled upload reads "cancelled" (not failed) with Resume; Resume finishes it. The folder
        // is picked with the folder picker this time (the user's home, one level at a time).
        let folder = world
            .sequence
            .file_name()
            .expect("the sequence's folder name")
            .to_string_lossy()
            .into_owned();
        tiles.set_online(true);
        inspect_by_picker(client, base, &folder).await;
        // The tiles load under the track, with their attribution; the photos show their thumbnails.
        wait_for(client, ".track-box[data-tiles=\"online\"] svg.track g.tiles image").await;
        assert_eq!(text_of(client, ".track-box .attribution").await, "Test tiles");
        wait_for(client, ".thumbs img").await;
        let loaded: bool = client
            .execute(
                "var imgs = document.querySelectorAll('.thumbs img'); \
                 return imgs.length > 0 && Array.prototype.every.call(imgs, function (i) { \
                   return i.complete && i.naturalWidth > 0; });",
                vec![],
            )
            .await
            .ok()
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        assert!(loaded, "the thumbnails did not load");
        shots_of(client, "upload-map-and-thumbnails", ".inspection").await;
        wait_for(client, "#plan li[data-integration=\"mtpw\"][data-readiness=\"ready\"]").await;
        let start = wait_for(client, "#start").await;
        assert_eq!(
            start.text().await.unwrap_or_default(),
            "Upload to Mapillary, Map the Paths Web"
        );
        click(client, "#start").await;
        click(client, ".upload[data-status=\"running\"] button.danger").await;
        wait_for(client, ".upload[data-status=\"cancelled\"]").await;
        let cancelled = wait_for(client, ".upload[data-status=\"cancelled\"]").await;
        let text = cancelled.text().await.unwrap_or_default();
        assert!(
            client
                .find_all(Locator::Css(".upload .state-failed"))
                .await
                .expect("look for failed badges")
                .is_empty(),
            "a cancel shows as failed: {text}"
        );
        assert!(!text.contains("working…"), "{text}");
        shots(client, "upload-cancelled").await;
        client
            .goto(&format!("{base}/#sequences"))
            .await
            .expect("open Sequences");
        wait_for(client, "article.sequence").await;
        shots(client, "sequences-after-cancel").await;
        client
            .goto(&format!("{base}/#upload"))
            .await
            .expect("open Upload");
        click(client, ".upload[data-status=\"cancelled\"] .actions button").await;
        wait_for(
            client,
            ".upload[data-status=\"done\"] tr[data-integration=\"mtpw\"][data-state=\"published\"]",
        )
        .await;
        // Found again now that the upload is over (its panel is redrawn on every event until then).
        let key = wait_for(
            client,
            ".upload[data-status=\"done\"] tr[data-integration=\"mapillary\"][data-state=\"published\"] a.key",
        )
        .await;
        // The link is the outcome's (`links`): the page builds no provider's address.
        let label = key.text().await.unwrap_or_default();
        let key_text = label
            .strip_prefix("sequence ")
            .and_then(|l| l.strip_suffix(" on Mapillary"))
            .unwrap_or_else(|| panic!("a link labelled {label:?}"))
            .to_string();
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
            assert!(
                resource.starts_with(base) || resource.starts_with(&tiles.base),
                "an external request: {resource}"
            );
        }
        shots(client, "upload-done").await;

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
        shots(client, "sequences").await;

        panoramax_claim_login(client, base).await;
        shots(client, "integrations-all-logged-in").await;
    })
    .catch_unwind()
    .await
}

#[test]
fn the_page_logs_in_inspects_uploads_and_shows_the_sequence_published_and_synced() {
    if !browser_available() {
        return;
    }
    // Slow enough that Cancel lands mid-upload.
    let world = World::with_mapillary(
        8,
        mtp_fakes::fake_mapillary::MapillaryConfig {
            faults: mtp_fakes::fake_mapillary::MapillaryFaults {
                throttle_bytes_per_sec: Some(300_000),
                ..Default::default()
            },
            ..Default::default()
        },
    );
    // The photos of the sequence carry a thumbnail, as a camera's do.
    for entry in std::fs::read_dir(&world.sequence).expect("list the sequence") {
        let path = entry.expect("an entry").path();
        if path.extension().is_some_and(|e| e == "jpg") {
            mtp_tests::serve::add_exif_thumbnail(&path);
        }
    }
    // Panoramax too, for its claim login (logged in at the end, so it is left out of the uploads).
    let panoramax = mtp_fakes::fake_panoramax::FakePanoramax::spawn_blocking_thread(
        mtp_fakes::fake_panoramax::PanoramaxConfig::default(),
    )
    .expect("fake Panoramax");
    let env_path = world.home.path().join(".env");
    let mut env = std::fs::read_to_string(&env_path).expect("read .env");
    env.push_str(&format!(
        "PANORAMAX_URL={}\nPANORAMAX_CLAIM_POLL_MS=200\nPANORAMAX_RETRY_BASE_MS=50\n",
        panoramax.base_url()
    ));
    std::fs::write(&env_path, env).expect("write .env");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(run(&world));
}

/// An outage: Mapillary's upload service does not answer (nothing listens at its address) while its
/// graph API works. The page says so in plain words while the plugin retries, with Cancel, then Resume
/// once cancelled; never the raw `tcp connect error … os error 111`, on Upload or on Sequences.
#[test]
fn an_outage_reads_in_plain_words_with_the_next_step_as_a_button() {
    if !browser_available() {
        return;
    }
    let world = World::new(3);
    let dead = format!("http://127.0.0.1:{}/upload", free_port());
    let env_path = world.home.path().join(".env");
    let env = std::fs::read_to_string(&env_path).expect("read .env");
    let env = env
        .lines()
        .map(|l| {
            if l.starts_with("MAPILLARY_UPLOAD_URL=") {
                format!("MAPILLARY_UPLOAD_URL={dead}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&env_path, env + "\n").expect("write .env");
    let login = mtp_command(world.home.path())
        .args([
            "auth",
            "mapillary",
            "--token",
            &world.mapillary.config().user_token,
        ])
        .output()
        .expect("run mtp auth mapillary");
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(async {
            let serve = world.serve(&[]);
            let driver = start_driver();
            let profile = tempfile::tempdir().expect("a browser profile directory");
            let client = connect(&driver, profile.path()).await;
            let result = {
                use futures::FutureExt as _;
                std::panic::AssertUnwindSafe(outage(&world, &serve, &client))
                    .catch_unwind()
                    .await
            };
            let _ = client.close().await;
            drop(driver);
            if let Err(panic) = result {
                eprintln!("mtp serve's stderr:\n{}", serve.stderr_text());
                std::panic::resume_unwind(panic);
            }
        });
}

async fn outage(world: &World, serve: &mtp_tests::serve::Serve, client: &Client) {
    const RAW: [&str; 3] = ["os error", "tcp connect", "error sending request"];
    client.goto(&serve.url).await.expect("open the token URL");
    inspect(client, &serve.base, &world.sequence).await;
    wait_for(
        client,
        "#plan li[data-integration=\"mapillary\"][data-readiness=\"ready\"]",
    )
    .await;
    click(client, "#start").await;
    // While the plugin retries by itself (for hours, on a flaky uplink): a plain sentence, and Cancel.
    let running = ".upload[data-status=\"running\"]";
    wait_for(client, running).await;
    let deadline = Instant::now() + WAIT;
    let text = loop {
        let text = wait_for(client, running)
            .await
            .text()
            .await
            .unwrap_or_default();
        if text.contains("cannot be reached") || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(
        text.contains("the service cannot be reached; retrying by itself"),
        "{text}"
    );
    assert!(text.contains("Cancel"), "{text}");
    for raw in RAW {
        assert!(!text.contains(raw), "the raw error shows: {text}");
    }
    shots(client, "upload-outage-retrying").await;
    // Cancelled: Resume is the next step, nothing reads "failed" or "working…".
    click(client, &format!("{running} button.danger")).await;
    wait_for(client, ".upload[data-status=\"cancelled\"] .actions button").await;
    let text = wait_for(client, ".upload[data-status=\"cancelled\"]")
        .await
        .text()
        .await
        .unwrap_or_default();
    assert!(text.contains("Resume"), "{text}");
    assert!(
        !text.contains("working…") && !text.contains("Failed"),
        "{text}"
    );
    for raw in RAW {
        assert!(!text.contains(raw), "the raw error shows: {text}");
    }
    shots(client, "upload-outage-cancelled").await;
    client
        .goto(&format!("{}/#sequences", serve.base))
        .await
        .expect("open Sequences");
    let card = wait_for(client, "article.sequence").await;
    let text = card.text().await.unwrap_or_default();
    for raw in RAW {
        assert!(
            !text.contains(raw),
            "the raw error shows on Sequences: {text}"
        );
    }
    shots(client, "sequences-outage").await;
}
