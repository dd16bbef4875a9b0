//! Running `mtp serve` in tests: against in-process fakes of Mapillary and MTPW, with a `.env` whose
//! redirect URIs land on the server itself, stopped by PID when dropped (even when a test fails).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use mtp_fakes::fake_mapillary::{FakeMapillary, MapillaryConfig};
use mtp_fakes::fake_mtpw::{FakeMtpw, MtpwConfig};

use crate::harness::{build_workspace, mtp_command};

/// A free port on 127.0.0.1 (released before use: a race with other processes is possible but rare).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The fakes, a generated sequence and a `.env` for a server on `port`.
pub struct World {
    /// The scratch home (state, `.env`, the sequence).
    pub home: tempfile::TempDir,
    /// The fake Mapillary.
    pub mapillary: FakeMapillary,
    /// The fake MTPW, linked to the fake Mapillary.
    pub mtpw: FakeMtpw,
    /// The port the server will listen on (the redirect URIs point at it).
    pub port: u16,
    /// The generated sequence's directory.
    pub sequence: PathBuf,
}

impl World {
    /// Fakes, `.env` and a generated sequence of `images` images.
    pub fn new(images: usize) -> World {
        World::with_mapillary(images, MapillaryConfig::default())
    }

    /// The same with the fake Mapillary configured by `config` (faults, publish delay).
    pub fn with_mapillary(images: usize, config: MapillaryConfig) -> World {
        build_workspace();
        let home = tempfile::tempdir().expect("a scratch directory");
        let mapillary = FakeMapillary::spawn_blocking_thread(config).expect("fake Mapillary");
        let mtpw = FakeMtpw::spawn_blocking_thread(MtpwConfig {
            mapillary: Some(mapillary.link()),
            ..MtpwConfig::default()
        })
        .expect("fake MTPW");
        let port = free_port();
        let c = mapillary.config();
        // MTP_WEB_CREATE_SEQUENCES: the user's choice to create MTPW sequences before the server has
        // shown it can import (the fake's import works), as in world.rs.
        std::fs::write(
            home.path().join(".env"),
            format!(
                "MAPILLARY_APP_ID={}\nMAPILLARY_SECRET={}\n\
                 MAPILLARY_REDIRECT_URI=http://127.0.0.1:{port}/mapillary/callback\n\
                 MAPILLARY_GRAPH_URL={}\nMAPILLARY_UPLOAD_URL={}\nMAPILLARY_AUTHORIZE_URL={}\n\
                 MAPILLARY_RETRY_BASE_MS=50\n\
                 MTP_WEB_URL={}\nMTP_WEB_AUTH_URL={}\nMTP_WEB_APP_ID=mtp-test\nMTP_WEB_APP_SECRET=mtp-test-secret\n\
                 MTP_WEB_RETRY_BASE_MS=50\n\
                 MTP_WEB_CREATE_SEQUENCES=true\n",
                c.client_id,
                c.client_secret,
                mapillary.graph_url(),
                mapillary.upload_url(),
                mapillary.authorize_url(),
                mtpw.base_url(),
                mtpw.auth_url(),
            ),
        )
        .expect("write .env");
        let sequence = home.path().join("canal-walk");
        let generated = mtp_command(home.path())
            .args(["sequence", "generate", "--count"])
            .arg(images.to_string())
            .args(["--bytes-per-image", "120000", "--name", "Canal walk"])
            .arg(&sequence)
            .output()
            .expect("run mtp sequence generate");
        assert!(
            generated.status.success(),
            "{}",
            String::from_utf8_lossy(&generated.stderr)
        );
        World {
            home,
            mapillary,
            mtpw,
            port,
            sequence,
        }
    }

    /// Every secret the fakes hand out or the `.env` holds: none may appear in an answer or event.
    pub fn secrets(&self) -> Vec<String> {
        let c = self.mapillary.config();
        vec![
            c.user_token,
            c.client_secret,
            self.mtpw.token(),
            "mtp-test-secret".to_string(),
        ]
    }

    /// Starts `mtp serve --json --port <port>` with `extra` arguments.
    pub fn serve(&self, extra: &[&str]) -> Serve {
        Serve::start(self.home.path(), self.port, extra)
    }

    /// The same with `user_home` as the server's `HOME` (its working directory stays the scratch home).
    pub fn serve_with_home(&self, user_home: &Path, extra: &[&str]) -> Serve {
        Serve::start_with_home(self.home.path(), user_home, self.port, extra)
    }
}

/// A running `mtp serve`; killed (by PID) when dropped.
pub struct Serve {
    child: Option<Child>,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The URL it printed (with the token).
    pub url: String,
    /// The access token.
    pub token: String,
    /// The port.
    pub port: u16,
    stderr: PathBuf,
}

impl Serve {
    fn start(home: &Path, port: u16, extra: &[&str]) -> Serve {
        Serve::start_with_home(home, home, port, extra)
    }

    /// `user_home` is the server's `HOME` (what the folder picker browses; the scratch home by default,
    /// never the tester's).
    fn start_with_home(home: &Path, user_home: &Path, port: u16, extra: &[&str]) -> Serve {
        let stderr = home.join(format!("serve-{port}.stderr"));
        let mut child = mtp_command(home)
            .env("HOME", user_home)
            // No map tiles from the internet in tests (a test passes `--tiles` of its own).
            .env("MTP_TILES", "none")
            .args(["serve", "--json", "--port"])
            .arg(port.to_string())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("create the stderr file"))
            .spawn()
            .expect("start mtp serve");
        let stdout = child.stdout.take().expect("mtp serve's stdout");
        let mut guard = Serve {
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
            url: String::new(),
            token: String::new(),
            port,
            stderr,
        };
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let first: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|err| {
            panic!(
                "mtp serve's first line is not JSON ({err}): {line:?}\n{}",
                guard.stderr_text()
            )
        });
        guard.url = first["url"].as_str().unwrap_or_default().to_string();
        guard.token = first["token"].as_str().unwrap_or_default().to_string();
        assert_eq!(first["port"], port, "{first}");
        assert_eq!(
            guard.url,
            format!("http://127.0.0.1:{port}/?token={}", guard.token)
        );
        guard
    }

    /// What the server wrote on stderr so far.
    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or_default()
    }

    /// Waits (polling, at most `limit`) for the process to exit; its status.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Some(status);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A plain HTTP/1.1 answer.
#[derive(Debug)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Header lines, lower-cased names.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: String,
}

impl Answer {
    /// The first header called `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {}", self.body))
    }
}

impl Serve {
    /// Sends one request as the page does: to its own `Host`, with the access token.
    pub fn call(&self, method: &str, path: &str, body: &str) -> Answer {
        let host = format!("127.0.0.1:{}", self.port);
        let bearer = format!("Bearer {}", self.token);
        request(
            self.port,
            method,
            path,
            &[("Host", &host), ("Authorization", &bearer)],
            body,
        )
    }
}

/// Sends one request over a fresh connection with exactly `headers` (the `Host` header too, so tests
/// can send a foreign one) and reads the whole answer.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to mtp serve");
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let mut text = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        text.push_str("Content-Type: application/json\r\n");
    }
    text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(text.as_bytes()).expect("send the request");
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    parse_answer(&raw)
}

fn parse_answer(raw: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// Decodes a chunked body (sizes are byte counts; the fakes' and our bodies are ASCII JSON).
pub fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            out.push_str(&rest[..size.min(rest.len())]);
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// Reads `/api/events` (with `Last-Event-ID: last` when given) until `done` says so for the events read
/// so far, or `limit` passes; the `(id, event)` pairs read.
pub fn read_events(
    serve: &Serve,
    last: Option<u64>,
    limit: Duration,
    mut done: impl FnMut(&[(u64, serde_json::Value)]) -> bool,
) -> Vec<(u64, serde_json::Value)> {
    let mut stream = TcpStream::connect(("127.0.0.1", serve.port)).expect("connect to mtp serve");
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut text = format!(
        "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {}\r\nAccept: text/event-stream\r\n",
        serve.port, serve.token
    );
    if let Some(last) = last {
        text.push_str(&format!("Last-Event-ID: {last}\r\n"));
    }
    text.push_str("\r\n");
    stream.write_all(text.as_bytes()).expect("send the request");
    let deadline = Instant::now() + limit;
    let mut raw = Vec::new();
    let mut events = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
        events = parse_events(&raw);
        if done(&events) {
            break;
        }
    }
    events
}

fn parse_events(raw: &[u8]) -> Vec<(u64, serde_json::Value)> {
    let text = String::from_utf8_lossy(raw);
    let Some((_, body)) = text.split_once("\r\n\r\n") else {
        return Vec::new();
    };
    let body = dechunk(body);
    let mut events = Vec::new();
    for block in body.split("\n\n") {
        let mut id = None;
        let mut data = String::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("id:") {
                id = v.trim().parse().ok();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
        if let (Some(id), Ok(value)) = (id, serde_json::from_str(&data)) {
            events.push((id, value));
        }
    }
    events
}

/// Gives the JPEG at `path` an EXIF thumbnail (IFD1), as cameras embed one: a small JPEG of its own,
/// written with kamadak-exif's writer beside every field the photo had. Answers the thumbnail's bytes.
pub fn add_exif_thumbnail(path: &Path) -> Vec<u8> {
    use plugin_api::jpeg::{exif_segment, marker, read_segments, EXIF_ID};
    let dir = tempfile::tempdir().expect("a scratch directory");
    let small = dir.path().join("thumb.jpg");
    mtp_sequence::generate::write_image(
        &small,
        &mtp_sequence::generate::ImageSpec {
            width: 96,
            height: 72,
            latitude: None,
            longitude: None,
            ..Default::default()
        },
    )
    .expect("write a thumbnail");
    let thumbnail = std::fs::read(&small).expect("read the thumbnail");
    let photo = std::fs::read(path).expect("read the photo");
    let segments = read_segments(std::io::Cursor::new(&photo)).expect("the photo's segments");
    let app1 = segments
        .iter()
        .find(|s| {
            s.marker == marker::APP1 && photo[s.payload_offset() as usize..].starts_with(EXIF_ID)
        })
        .expect("the photo has EXIF");
    let tiff = photo[app1.payload_offset() as usize + EXIF_ID.len()..app1.end() as usize].to_vec();
    let exif = exif::Reader::new()
        .read_raw(tiff)
        .expect("the photo's EXIF");
    let mut writer = exif::experimental::Writer::new();
    for field in exif.fields() {
        writer.push_field(field);
    }
    writer.set_jpeg(&thumbnail, exif::In::THUMBNAIL);
    let mut tiff = std::io::Cursor::new(Vec::new());
    writer.write(&mut tiff, false).expect("write the EXIF");
    let mut out = photo[..app1.offset as usize].to_vec();
    out.extend(exif_segment(tiff.get_ref()).expect("an EXIF segment"));
    out.extend(&photo[app1.end() as usize..]);
    std::fs::write(path, out).expect("write the photo");
    thumbnail
}
