//! Time in the fake: a clock tests can move forward, tokens that expire, upload handles that expire.
//!
//! Kept apart from the rest of [`State`] so that day-scale behaviour (a token that lives two months, a
//! handle cached for two days, processing that takes longer than 72 h) is tested in seconds: the tests
//! move this clock (and the plugin's, `MTP_TEST_NOW`) instead of waiting.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::State;
use crate::fake_mapillary::AgingConfig;

/// The fake's clock offset and what ages by it.
#[derive(Debug, Default)]
pub(crate) struct Aging {
    /// How far tests moved the clock forward.
    offset: Duration,
    config: AgingConfig,
    /// When each token issued (or configured) stops working.
    token_expiry: HashMap<String, Instant>,
    /// When each handle was first handed out.
    handle_born: HashMap<String, Instant>,
}

impl Aging {
    pub fn new(config: &AgingConfig, user_token: &str) -> Aging {
        let mut aging = Aging {
            config: config.clone(),
            ..Aging::default()
        };
        aging.note_token(user_token);
        aging
    }

    /// The fake's "now": real time plus what tests moved the clock by.
    pub fn now(&self) -> Instant {
        Instant::now() + self.offset
    }

    pub fn advance(&mut self, by: Duration) {
        self.offset += by;
    }

    /// The `expires_in` (seconds) a `/token` answer carries: the TTL when one is configured.
    pub fn expires_in(&self, default_secs: u64) -> u64 {
        self.config
            .token_ttl
            .map(|ttl| ttl.as_secs())
            .unwrap_or(default_secs)
    }

    /// Starts the life of a token (no-op without a TTL). A token keeps its first expiry: issuing the
    /// configured user token again (`issue_fresh_tokens = false`) does not extend it.
    pub fn note_token(&mut self, token: &str) {
        if let Some(ttl) = self.config.token_ttl {
            let expiry = self.now() + ttl;
            self.token_expiry.entry(token.to_string()).or_insert(expiry);
        }
    }

    /// Whether `token` is past its expiry. Assumption: Mapillary answers an expired token like an
    /// invalid one (OAuth code 190, "an invalid, expired or revoked access token", the graph API's
    /// error convention quoted in `docs/providers/mapillary.md`).
    pub fn token_expired(&self, token: &str) -> bool {
        self.token_expiry
            .get(token)
            .is_some_and(|expiry| self.now() >= *expiry)
    }

    pub fn note_handle(&mut self, handle: &str) {
        if self.config.handle_ttl.is_some() {
            let now = self.now();
            self.handle_born.entry(handle.to_string()).or_insert(now);
        }
    }

    /// Handles older than the TTL. Assumption: the upload service's retention of entities is not
    /// documented; mapillary/mapillary_tools `mapillary_tools/history.py` (`PersistentCache.set`,
    /// `expires_in = 3600 * 24 * 2`) trusts a handle for 2 days only, so the fake can be told to forget
    /// an entity after a TTL to prove that a client does not rely on older handles.
    fn expired_handles(&self) -> Vec<String> {
        let Some(ttl) = self.config.handle_ttl else {
            return Vec::new();
        };
        let now = self.now();
        self.handle_born
            .iter()
            .filter(|(_, born)| now.saturating_duration_since(**born) >= ttl)
            .map(|(h, _)| h.clone())
            .collect()
    }
}

impl State {
    /// Forgets the entities whose handles expired: their offset reads 0 again and `finish_upload`
    /// refuses their handles as unknown.
    pub fn expire_aged_handles(&mut self) {
        for handle in self.aging.expired_handles() {
            let Some(key) = self.handles.get(&handle).cloned() else {
                self.aging.handle_born.remove(&handle);
                continue;
            };
            // An entity being written to stays until its upload ends.
            if self.entities.get(&key).is_some_and(|e| e.busy) {
                continue;
            }
            self.aging.handle_born.remove(&handle);
            self.handles.remove(&handle);
            self.entities.remove(&key);
        }
    }
}
