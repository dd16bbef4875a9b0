//! PKCE (RFC 7636) for the installed-app login: a random `code_verifier` and its S256 `code_challenge`.
//!
//! Google's installed-app flow asks for PKCE (developers.google.com/identity/protocols/oauth2/native-app,
//! "Create a code verifier and challenge"). Written here rather than through the `oauth2` crate because
//! it is two calls into `ring` (already built for rustls) and the rest of the flow goes through this
//! plugin's own HTTP loop, as Strava's does.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use plugin_api::prelude::*;
use ring::rand::{SecureRandom, SystemRandom};

/// A verifier and its challenge.
#[derive(Debug, Clone)]
pub struct Pkce {
    /// Sent with the code exchange: 43 characters of `[A-Za-z0-9-_]` (32 random bytes, base64url).
    pub verifier: String,
    /// Sent on the consent URL: `BASE64URL(SHA256(verifier))`.
    pub challenge: String,
}

/// 32 random bytes, base64url without padding.
pub fn random_token() -> Result<String, PluginError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| PluginError::other("the system's random source failed"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The S256 challenge of `verifier`.
pub fn challenge_of(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ))
}

impl Pkce {
    /// A fresh pair.
    pub fn new() -> Result<Pkce, PluginError> {
        let verifier = random_token()?;
        Ok(Pkce {
            challenge: challenge_of(&verifier),
            verifier,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_is_rfc_7636_s256() {
        // RFC 7636 Appendix B.
        assert_eq!(
            challenge_of("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let pair = Pkce::new().unwrap();
        assert_eq!(pair.verifier.len(), 43);
        assert_ne!(pair.verifier, Pkce::new().unwrap().verifier);
    }
}
