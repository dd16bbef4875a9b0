//! Logging in from the page. `POST /api/auth/{id}` starts the integration's authorisation; the plugin asks
//! the host's authoriser (below) to show its consent page, and the API answers with that page's URL. The
//! browser comes back to the integration's redirect URI:
//! - on this server (`http://127.0.0.1:<our port>/...`): the fallback route catches it ([`callback`]);
//! - on another loopback port: a one-off listener there does the same;
//! - anywhere else (MTPDU's `app.mtp.desktop//app`): the page asks for the URL the browser was sent to and
//!   posts it to `POST /api/auth/{id}/redirect`;
//! - nowhere (a loopback redirect URI on port 0: Panoramax's claim page, whose outcome the plugin learns by
//!   polling): the page opens the consent page in a new tab and waits for the login's outcome.
//!
//! A token in the URL fragment (implicit grant, MTPW) never reaches a server, so the callback first answers
//! with a small page that sends the fragment back as a query. One login at a time: a new one replaces an
//! unfinished one.

use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use mtp_host::services::Authorizer;
use plugin_api::protocol::AuthorizePrompt;
use tokio::sync::oneshot;

use super::host_adapter;

/// How long a started login waits for the browser to come back.
const LOGIN_WAIT: Duration = Duration::from_secs(300);

/// Where the redirect lands, as the page needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Landing {
    /// On this server: open the consent page in this tab; it comes back here.
    Server,
    /// On a listener of ours on another loopback port, which sends the browser back here.
    Loopback,
    /// Elsewhere: the user pastes the URL they were sent to.
    Paste,
    /// Nowhere: the page only has to be opened (in a new tab, so the mtp tab stays); the plugin learns
    /// the outcome by itself. Plugins ask for it with a loopback redirect URI on port 0, which no
    /// browser can be sent to (Panoramax's token claim, plugins/panoramax/src/auth.rs).
    Claim,
}

impl Landing {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Landing::Server => "server",
            Landing::Loopback => "loopback",
            Landing::Paste => "paste",
            Landing::Claim => "claim",
        }
    }
}

struct Pending {
    /// Which login this is: a replaced login's ending must not end its successor.
    generation: u64,
    integration: String,
    prompt: Option<oneshot::Sender<(AuthorizePrompt, Landing)>>,
    redirect_uri: Option<String>,
    redirect: Option<mpsc::Sender<String>>,
}

/// The login under way, shared by the API, the authoriser and the callbacks.
#[derive(Clone)]
pub(crate) struct Logins {
    pending: Arc<Mutex<Option<Pending>>>,
    generations: Arc<std::sync::atomic::AtomicU64>,
    port: u16,
    runtime: tokio::runtime::Handle,
    /// `--auth-browser fetch`: follow consent pages' redirects with an HTTP client (auto-approving pages).
    fetch: bool,
}

/// `(host, port, path)` of a loopback `http` URL.
fn loopback(uri: &str) -> Option<(String, u16, String)> {
    let rest = uri.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = path.split(['?', '#']).next().unwrap_or("/").to_string();
    let (host, port) = authority.rsplit_once(':')?;
    if !matches!(host, "127.0.0.1" | "localhost") {
        return None;
    }
    Some((host.to_string(), port.parse().ok()?, path))
}

impl Logins {
    pub(crate) fn new(port: u16, runtime: tokio::runtime::Handle, fetch: bool) -> Logins {
        Logins {
            pending: Arc::default(),
            generations: Arc::default(),
            port,
            runtime,
            fetch,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Pending>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a login with `integration`: its generation (for [`Logins::end`]), and the receiver that gets
    /// the consent page once the plugin asks for it. An unfinished earlier login is abandoned (its plugin
    /// call gets an error).
    pub(crate) fn begin(
        &self,
        integration: &str,
    ) -> (u64, oneshot::Receiver<(AuthorizePrompt, Landing)>) {
        let (tx, rx) = oneshot::channel();
        let generation = self
            .generations
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        *self.lock() = Some(Pending {
            generation,
            integration: integration.to_string(),
            prompt: Some(tx),
            redirect_uri: None,
            redirect: None,
        });
        (generation, rx)
    }

    /// Ends login `generation` (it finished, well or not), unless a newer one replaced it; answers
    /// whether it was still the current login (a replaced one's failure is no news: the newer one reports).
    pub(crate) fn end(&self, generation: u64) -> bool {
        let mut pending = self.lock();
        let current = pending.as_ref().is_some_and(|p| p.generation == generation);
        if current {
            *pending = None;
        }
        current
    }

    /// Hands a redirect URL pasted by the user to the waiting login with `integration`.
    pub(crate) fn paste(&self, integration: &str, url: &str) -> Result<(), String> {
        let pending = self.lock();
        match pending.as_ref() {
            Some(p) if p.integration == integration => match &p.redirect {
                Some(tx) => tx
                    .send(url.to_string())
                    .map_err(|_| "the login is no longer waiting".to_string()),
                None => Err("the login has not asked for its page yet".to_string()),
            },
            _ => Err(format!("no login with {integration} is waiting")),
        }
    }

    fn landing(&self, redirect_uri: &str) -> Landing {
        match loopback(redirect_uri) {
            Some((_, 0, _)) => Landing::Claim,
            Some((_, port, _)) if port == self.port => Landing::Server,
            Some(_) => Landing::Loopback,
            None => Landing::Paste,
        }
    }

    /// The authoriser handed to the runner: called by a plugin (on a blocking thread of its own runtime)
    /// when it needs the user on its consent page; returns the URL the browser was sent back to.
    pub(crate) fn authorizer(&self) -> Authorizer {
        let logins = self.clone();
        Arc::new(move |prompt: &AuthorizePrompt| logins.wait_for_redirect(prompt))
    }

    fn wait_for_redirect(&self, prompt: &AuthorizePrompt) -> Result<String, String> {
        if self.fetch {
            return host_adapter::authorize_by_fetch(prompt);
        }
        let landing = self.landing(&prompt.redirect_uri);
        if landing == Landing::Loopback {
            // Listening before the page is announced, so the browser never finds the port closed.
            self.listen_elsewhere(&prompt.redirect_uri)?;
        }
        let (tx, rx) = mpsc::channel();
        {
            let mut pending = self.lock();
            let Some(p) = pending.as_mut() else {
                return Err("no login was started from the page".to_string());
            };
            p.redirect = Some(tx);
            p.redirect_uri = Some(prompt.redirect_uri.clone());
            if let Some(announce) = p.prompt.take() {
                let _ = announce.send((prompt.clone(), landing));
            }
        }
        rx.recv_timeout(LOGIN_WAIT)
            .map_err(|_| "the login was not completed in the browser".to_string())
    }

    /// Serves the callback on the redirect URI's own loopback port until the login ends.
    fn listen_elsewhere(&self, redirect_uri: &str) -> Result<(), String> {
        let Some((_, port, _)) = loopback(redirect_uri) else {
            return Ok(());
        };
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|err| format!("cannot listen on 127.0.0.1:{port} for the redirect: {err}"))?;
        let logins = self.clone();
        self.runtime.spawn(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                return;
            };
            // The same Host check as the server's own port (DNS rebinding), for this port.
            let guard = super::security::Guard {
                port,
                token: String::new(),
            };
            let app = Router::new()
                .fallback(get(callback))
                .with_state(logins.clone())
                .layer(axum::middleware::from_fn_with_state(
                    guard,
                    super::security::check_host_and_origin,
                ));
            let done = async move {
                while logins.lock().is_some() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            };
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(done)
                .await;
        });
        Ok(())
    }

    /// Whether `path` is where the waiting login's browser comes back, and that URL's base.
    fn waiting_at(&self, path: &str) -> Option<String> {
        let pending = self.lock();
        let uri = pending.as_ref()?.redirect_uri.as_ref()?;
        let (_, _, redirect_path) = loopback(uri)?;
        (redirect_path == path).then(|| uri.split(['?', '#']).next().unwrap_or(uri).to_string())
    }

    fn deliver(&self, url: String) -> bool {
        let pending = self.lock();
        pending
            .as_ref()
            .and_then(|p| p.redirect.as_ref())
            .is_some_and(|tx| tx.send(url).is_ok())
    }

    fn home(&self) -> String {
        format!("http://127.0.0.1:{}/#integrations", self.port)
    }
}

/// The page that carries a fragment back as a query (the token never shows in the server's answers).
const FRAGMENT_PAGE: &str = r#"<!doctype html><meta charset="utf-8"><title>mtp: logging in</title>
<p id="m">Finishing the login…</p><script>
var h = location.hash.substring(1);
if (h) { location.replace(location.pathname + '?mtp_fragment=' + encodeURIComponent(h)); }
else { document.getElementById('m').textContent = 'Nothing came back from the login page.'; }
</script>"#;

fn done_page(home: &str) -> Response {
    Html(format!(
        "<!doctype html><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"0; url={home}\">\
         <title>mtp: logged in</title><p>Login finished. <a href=\"{home}\">Back to mtp</a>.</p>"
    ))
    .into_response()
}

/// The browser coming back from a consent page (on this server's fallback route, or on a one-off
/// listener). Needs no access token: it only completes a login started with one, and the plugin checks
/// the OAuth `state` it carries.
pub(crate) async fn callback(State(logins): State<Logins>, request: Request) -> Response {
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or("").to_string();
    let Some(base) = logins.waiting_at(&path) else {
        return (axum::http::StatusCode::NOT_FOUND, "not found").into_response();
    };
    let fragment = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("mtp_fragment="))
        .map(plugin_api::sdk::redirect::decode_component);
    let url = match fragment {
        Some(fragment) => format!("{base}#{fragment}"),
        None if query.contains("code=") || query.contains("error=") => format!("{base}?{query}"),
        None => {
            // Its one inline script is all it runs; it loads nothing.
            return (
                [(
                    axum::http::header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; script-src 'unsafe-inline'",
                )],
                Html(FRAGMENT_PAGE),
            )
                .into_response();
        }
    };
    if logins.deliver(url) {
        done_page(&logins.home())
    } else {
        (
            axum::http::StatusCode::CONFLICT,
            "this login is no longer waiting",
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_redirects_are_recognised_with_their_path() {
        assert_eq!(
            loopback("http://127.0.0.1:8765/mapillary/callback"),
            Some(("127.0.0.1".into(), 8765, "/mapillary/callback".into()))
        );
        assert_eq!(
            loopback("http://localhost:9"),
            Some(("localhost".into(), 9, "/".into()))
        );
        assert_eq!(loopback("app.mtp.desktop//app"), None);
        let logins = Logins::new(
            8770,
            tokio::runtime::Runtime::new().unwrap().handle().clone(),
            false,
        );
        assert_eq!(
            logins.landing("http://127.0.0.1:0/mtp-panoramax-claimed"),
            Landing::Claim
        );
        assert_eq!(logins.landing("http://127.0.0.1:8770/cb"), Landing::Server);
        assert_eq!(logins.landing("http://127.0.0.1:9/cb"), Landing::Loopback);
        assert_eq!(logins.landing("app.mtp.desktop://oauth"), Landing::Paste);
        assert_eq!(loopback("https://example.org:443/cb"), None);
    }
}
