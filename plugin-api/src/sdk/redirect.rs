//! Building authorisation URLs and reading what a provider's redirect carries.
//!
//! Redirect URIs are not always URLs a parser accepts (MTPDU's `app.mtp.desktop//app?code=..`), and the
//! implicit grant puts its answer in the fragment, so these work on the text: parameters are read from the
//! query and the fragment alike.
//!
//! ```
//! use plugin_api::sdk::redirect::{redirect_params, with_query};
//! let url = with_query("https://example.org/connect", &[("client_id", "42"), ("scope", "a b")]);
//! assert_eq!(url, "https://example.org/connect?client_id=42&scope=a+b");
//! let params = redirect_params("app.mtp.desktop//app#access_token=t%2B1&state=s");
//! assert_eq!(params, [("access_token".to_string(), "t+1".to_string()), ("state".to_string(), "s".to_string())]);
//! ```

/// `base` with `pairs` appended as an `application/x-www-form-urlencoded` query (after `?`, or `&` when
/// `base` already has a query).
pub fn with_query(base: &str, pairs: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        query.append_pair(key, value);
    }
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}{}", query.finish())
}

/// Every parameter in the query and the fragment of `redirect`, in order, decoded.
pub fn redirect_params(redirect: &str) -> Vec<(String, String)> {
    let redirect = redirect.trim();
    let text = match redirect.split_once('?') {
        Some((_, rest)) => rest.replace('#', "&"),
        None => redirect
            .split_once('#')
            .map(|(_, fragment)| fragment.to_string())
            .unwrap_or_default(),
    };
    form_urlencoded::parse(text.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The first non-empty value of `name` among `params`.
pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// Decodes one form-encoded component (`a%3Db+c` → `a=b c`).
pub fn decode_component(text: &str) -> String {
    form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// A random hex string for OAuth `state` (not for keys: it only has to be unguessable by a page).
pub fn random_state() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    let first = hasher.finish();
    hasher.write_u64(first);
    format!("{first:016x}{:016x}", hasher.finish())
}
