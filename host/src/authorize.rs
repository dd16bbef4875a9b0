//! Getting the user through a provider's authorisation page and back with the redirect URL.
//!
//! Three ways, chosen by [`AuthorizeMode`]:
//! - `system`: open the page in the user's browser (or print it) and catch the redirect on a loopback
//!   listener when the redirect URI is `http://127.0.0.1:<port>/...` / `http://localhost:<port>/...`;
//!   a token in the URL fragment (implicit grant) is carried back by a tiny page that posts it to us.
//! - `paste` (and `system` with any other redirect URI, such as MTPDU's `app.mtp.desktop//app`): print the
//!   page and ask the user to paste the URL they were sent to.
//! - `fetch`: follow the page's redirects ourselves, for consent pages that approve without a human
//!   (the local fakes in the demo and tests; headless automation).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use plugin_api::protocol::AuthorizePrompt;

/// How to get the user through an authorisation page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizeMode {
    /// Open the system browser and listen on loopback redirect URIs; else ask to paste.
    System,
    /// Print the URL and ask the user to paste the redirect URL.
    Paste,
    /// Follow redirects with an HTTP client (auto-approving consent pages only).
    Fetch,
}

impl std::str::FromStr for AuthorizeMode {
    type Err = String;

    /// `system`, `paste` or `fetch` (the CLI's `--auth-browser` / `MTP_AUTH_BROWSER`).
    fn from_str(text: &str) -> Result<AuthorizeMode, String> {
        match text.trim() {
            "system" | "" => Ok(AuthorizeMode::System),
            "paste" => Ok(AuthorizeMode::Paste),
            "fetch" => Ok(AuthorizeMode::Fetch),
            other => Err(format!(
                "unknown authorisation mode {other:?} (expected system, paste or fetch)"
            )),
        }
    }
}

/// How long a loopback listener waits for the browser to come back.
const LOOPBACK_WAIT: Duration = Duration::from_secs(300);

/// Runs the prompt and returns the full redirect URL (query and fragment included).
pub fn authorize(prompt: &AuthorizePrompt, mode: AuthorizeMode) -> Result<String, String> {
    match mode {
        AuthorizeMode::Fetch => follow_redirects(&prompt.url, &prompt.redirect_uri),
        AuthorizeMode::Paste => paste(prompt),
        AuthorizeMode::System => match loopback_port(&prompt.redirect_uri) {
            Some((host, port, path)) => {
                let listener = TcpListener::bind((host.as_str(), port)).map_err(|err| {
                    format!("cannot listen on {host}:{port} for the redirect ({err}); is another mtp waiting?")
                })?;
                announce(prompt);
                open_browser(&prompt.url);
                wait_for_redirect(&listener, &host, port, &path)
            }
            None => paste(prompt),
        },
    }
}

fn announce(prompt: &AuthorizePrompt) {
    eprintln!(
        "Authorise mtp with {} by visiting:\n\n  {}\n",
        prompt.provider, prompt.url
    );
}

fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else {
        "xdg-open"
    };
    let _ = std::process::Command::new(opener)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}

fn paste(prompt: &AuthorizePrompt) -> Result<String, String> {
    announce(prompt);
    eprintln!(
        "After approving, your browser is sent to {}...\nPaste that whole URL here and press Enter:",
        prompt.redirect_uri
    );
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|err| format!("cannot read the pasted URL: {err}"))?;
    let line = line.trim().to_string();
    if line.is_empty() {
        return Err("no redirect URL was pasted".to_string());
    }
    Ok(line)
}

/// `(host, port, path)` when `uri` is a loopback `http` URL we can listen on.
fn loopback_port(uri: &str) -> Option<(String, u16, String)> {
    let rest = uri.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    let (host, port) = authority.rsplit_once(':')?;
    if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
        return None;
    }
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    Some((
        host.trim_matches(['[', ']']).to_string(),
        port.parse().ok()?,
        path,
    ))
}

/// The page served on the redirect: it sends a fragment (implicit-grant token) back as a query.
const FRAGMENT_PAGE: &str = "<!doctype html><title>mtp</title><p id=m>Finishing authorisation…</p><script>\
if (location.hash.length > 1) { fetch('?mtp_fragment=' + encodeURIComponent(location.hash.substring(1)))\
.then(function(){document.getElementById('m').textContent='Done: you can close this window.';}); }\
else { document.getElementById('m').textContent='Done: you can close this window.'; }</script>";

fn wait_for_redirect(
    listener: &TcpListener,
    host: &str,
    port: u16,
    path: &str,
) -> Result<String, String> {
    let deadline = Instant::now() + LOOPBACK_WAIT;
    listener
        .set_nonblocking(true)
        .map_err(|err| format!("loopback listener: {err}"))?;
    let mut first_query: Option<String> = None;
    while Instant::now() < deadline {
        let (stream, _) = match listener.accept() {
            Ok(conn) => conn,
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            Err(err) => return Err(format!("loopback listener: {err}")),
        };
        let Some(target) = read_request_target(&stream) else {
            continue;
        };
        let (req_path, query) = target.split_once('?').unwrap_or((&target, ""));
        if req_path != path {
            respond(&stream, "404 Not Found", "not the redirect path");
            continue;
        }
        let base = format!("http://{host}:{port}{path}");
        if let Some(fragment) = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("mtp_fragment="))
        {
            respond(&stream, "200 OK", "ok");
            let fragment = plugin_api::sdk::redirect::decode_component(fragment);
            let query = first_query.unwrap_or_default();
            let sep = if query.is_empty() { "" } else { "?" };
            return Ok(format!("{base}{sep}{query}#{fragment}"));
        }
        if query.contains("code=") || query.contains("error=") {
            respond(&stream, "200 OK", "Done: you can close this window.");
            return Ok(format!("{base}?{query}"));
        }
        // No query: the token may be in the fragment, which only the page's script can send back.
        respond_html(&stream, FRAGMENT_PAGE);
        first_query = Some(query.to_string());
    }
    Err("timed out waiting for the browser to come back".to_string())
}

fn read_request_target(stream: &TcpStream) -> Option<String> {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream.take(16 * 1024));
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    // Drain the headers so the browser sees a clean response.
    let mut line = String::new();
    while reader.read_line(&mut line).ok()? > 2 {
        line.clear();
    }
    let mut parts = request_line.split_whitespace();
    let _method = parts.next()?;
    parts.next().map(str::to_string)
}

fn respond(mut stream: &TcpStream, status: &str, body: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn respond_html(mut stream: &TcpStream, body: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Follows `url`'s redirects (at most 10) until one points at `redirect_uri`, and returns that location.
fn follow_redirects(url: &str, redirect_uri: &str) -> Result<String, String> {
    let mut current = url.to_string();
    for _ in 0..10 {
        if current.starts_with(redirect_uri) {
            return Ok(current);
        }
        let (status, location) = http_get_location(&current)?;
        match location {
            Some(next) if (300..400).contains(&status) => current = resolve(&current, &next),
            _ => {
                return Err(format!(
                    "the authorisation page {current} answered HTTP {status} without redirecting back (it needs a person: use MTP_AUTH_BROWSER=system or paste)"
                ))
            }
        }
    }
    if current.starts_with(redirect_uri) {
        Ok(current)
    } else {
        Err("too many redirects on the authorisation page".to_string())
    }
}

fn resolve(base: &str, location: &str) -> String {
    if location.contains("://") || !location.starts_with('/') {
        return location.to_string();
    }
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    format!("{}{}", &base[..host_end], location)
}

/// A minimal HTTP/1.1 GET over plain TCP: enough for loopback consent pages, which is all `fetch` is for.
fn http_get_location(url: &str) -> Result<(u16, Option<String>), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("fetch mode only follows http:// pages, not {url}"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let address = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let mut stream =
        TcpStream::connect(&address).map_err(|err| format!("cannot reach {address}: {err}"))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nAccept: text/html\r\n\r\n"
    )
    .map_err(|err| format!("cannot send to {address}: {err}"))?;
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader
        .read_line(&mut status_line)
        .map_err(|err| format!("no answer from {address}: {err}"))?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{address} did not answer HTTP: {status_line:?}"))?;
    let mut location = None;
    let mut line = String::new();
    while reader.read_line(&mut line).map_err(|e| e.to_string())? > 2 {
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("location") {
                location = Some(value.trim().to_string());
            }
        }
        line.clear();
    }
    Ok((status, location))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_loopback_redirects_only() {
        assert_eq!(
            loopback_port("http://127.0.0.1:8765/cb"),
            Some(("127.0.0.1".into(), 8765, "/cb".into()))
        );
        assert_eq!(
            loopback_port("http://localhost:9/"),
            Some(("127.0.0.1".into(), 9, "/".into()))
        );
        assert_eq!(loopback_port("app.mtp.desktop//app"), None);
        assert_eq!(loopback_port("https://example.org:443/cb"), None);
    }

    #[test]
    fn resolves_relative_locations_and_decodes_fragments() {
        assert_eq!(resolve("http://h:1/a/b?x", "/c?d"), "http://h:1/c?d");
        assert_eq!(resolve("http://h:1/a", "app://x?y"), "app://x?y");
        assert_eq!(
            plugin_api::sdk::redirect::decode_component("a%3Db+c"),
            "a=b c"
        );
    }

    #[test]
    fn a_loopback_redirect_with_a_fragment_comes_back_whole() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let browser = std::thread::spawn(move || {
            let get = |target: &str| {
                let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                write!(s, "GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
                let mut answer = String::new();
                let _ = s.read_to_string(&mut answer);
                answer
            };
            let page = get("/cb");
            assert!(page.contains("mtp_fragment"));
            get("/cb?mtp_fragment=access_token%3Dabc%26state%3Ds1");
        });
        let url = wait_for_redirect(&listener, "127.0.0.1", port, "/cb").unwrap();
        browser.join().unwrap();
        assert_eq!(
            url,
            format!("http://127.0.0.1:{port}/cb#access_token=abc&state=s1")
        );
    }
}
