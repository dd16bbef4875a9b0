//! Who may talk to the server. It listens on 127.0.0.1 only, and still:
//! - every `/api/` request carries the access token printed at start (`Authorization: Bearer T`, or the
//!   cookie set when the token URL is opened), else 401: other local users and other local programs'
//!   pages cannot use it;
//! - the `Host` header must be `127.0.0.1:P` or `localhost:P`, else 403: a page on a hostile domain that
//!   re-resolves its name to 127.0.0.1 (DNS rebinding) is refused even before the token is looked at;
//! - a state-changing request (anything but GET/HEAD/OPTIONS) with an `Origin` other than the server's own
//!   gets 403 (CSRF), even with the cookie. Programs that send no `Origin` use the bearer token.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::RngCore;

/// What the checks need to know about this server.
#[derive(Clone)]
pub(crate) struct Guard {
    pub(crate) port: u16,
    pub(crate) token: String,
}

/// The access token kept in `dir` (the state directory, which holds the logins' secrets too), made
/// there on first use: a page left open reconnects after the server restarts on the same port.
pub(crate) fn stored_token(dir: &std::path::Path) -> anyhow::Result<String> {
    use anyhow::Context as _;
    use std::io::Write as _;
    let path = dir.join("serve-token");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let token = text.trim();
        if token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(token.to_string());
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let token = new_token();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(token.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(token)
}

/// A fresh random access token: 32 bytes from the OS generator, hex.
pub(crate) fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Guard {
    /// The cookie's name: per port, since browsers share cookies between ports of one host.
    pub(crate) fn cookie_name(&self) -> String {
        format!("mtp_token_{}", self.port)
    }

    /// The `Set-Cookie` value the token URL answers with.
    pub(crate) fn set_cookie(&self) -> String {
        format!(
            "{}={}; Path=/; HttpOnly; SameSite=Strict",
            self.cookie_name(),
            self.token
        )
    }

    fn host_is_ours(&self, headers: &HeaderMap) -> bool {
        let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
            return false;
        };
        host == format!("127.0.0.1:{}", self.port) || host == format!("localhost:{}", self.port)
    }

    fn origin_is_ours(&self, origin: &str) -> bool {
        origin == format!("http://127.0.0.1:{}", self.port)
            || origin == format!("http://localhost:{}", self.port)
    }

    /// Whether `candidate` is the token (compared in constant time).
    pub(crate) fn is_token(&self, candidate: &str) -> bool {
        let (a, b) = (candidate.as_bytes(), self.token.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// Whether the request carries the token, as a bearer token or as our cookie.
    pub(crate) fn has_token(&self, headers: &HeaderMap) -> bool {
        if let Some(auth) = headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
        {
            if let Some(token) = auth.strip_prefix("Bearer ") {
                return self.is_token(token.trim());
            }
        }
        let name = self.cookie_name();
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|h| h.to_str().ok())
            .flat_map(|h| h.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .any(|(k, v)| k == name && self.is_token(v))
    }
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

/// Host and Origin checks, for every route (pages, assets, the login callback and the API).
pub(crate) async fn check_host_and_origin(
    State(guard): State<Guard>,
    request: Request<Body>,
    next: Next,
) -> Response {
    if !guard.host_is_ours(request.headers()) {
        return refuse(
            StatusCode::FORBIDDEN,
            "this server answers only to Host 127.0.0.1 or localhost with its port",
        );
    }
    let changes_state = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if changes_state {
        if let Some(origin) = request.headers().get(header::ORIGIN) {
            let ours = origin.to_str().is_ok_and(|o| guard.origin_is_ours(o));
            if !ours {
                return refuse(
                    StatusCode::FORBIDDEN,
                    "requests that change something must come from this server's own pages",
                );
            }
        }
    }
    next.run(request).await
}

/// The token check, for `/api/`.
pub(crate) async fn require_token(
    State(guard): State<Guard>,
    request: Request<Body>,
    next: Next,
) -> Response {
    if !guard.has_token(request.headers()) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "missing or wrong access token: open the URL mtp serve printed, or send Authorization: Bearer <token>",
        );
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> Guard {
        Guard {
            port: 4321,
            token: "abc".into(),
        }
    }

    #[test]
    fn the_token_is_taken_from_the_bearer_header_or_our_cookie_only() {
        let g = guard();
        let mut h = HeaderMap::new();
        assert!(!g.has_token(&h));
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert!(g.has_token(&h));
        h.insert(header::AUTHORIZATION, "Bearer abd".parse().unwrap());
        assert!(!g.has_token(&h));
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "mtp_token_9=abc; x=1".parse().unwrap());
        assert!(!g.has_token(&h), "another port's cookie");
        h.insert(header::COOKIE, "x=1; mtp_token_4321=abc".parse().unwrap());
        assert!(g.has_token(&h));
    }

    #[test]
    fn tokens_are_fresh_and_long() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
