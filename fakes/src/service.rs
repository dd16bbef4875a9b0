//! What every fake shares, so a test suite can drive any of them without knowing which: the `.env`
//! block that points its provider at it, and what it received (the provider conformance suite,
//! `provider-tests/`, reads these to check that a dry run or a re-check sends nothing and that a
//! resumed run sends nothing twice).
//!
//! The counts are test instrumentation of the fakes themselves, not behaviour of the real services.

use std::collections::{BTreeMap, HashSet};

use crate::fake_mapillary::FakeMapillary;
use crate::fake_mtpw::FakeMtpw;
use crate::fake_panoramax::FakePanoramax;
use crate::fake_strava::FakeStrava;
use crate::fake_streetview::FakeStreetView;

/// A running fake of one service.
pub trait FakeService: Send + Sync {
    /// The `.env` entries that point its provider at this fake (the provider's own key names, as
    /// `mtp-fakes` prints them): its URLs and, where the fake checks them, the application's
    /// credentials. Keys that are not the fake's (a redirect URI, retry delays) are the test's.
    fn env(&self) -> Vec<(String, String)>;

    /// Every request received so far, counted per `"METHOD /route"`.
    fn requests(&self) -> BTreeMap<String, u64>;

    /// How many requests were received so far.
    fn request_count(&self) -> u64 {
        self.requests().values().sum()
    }

    /// Requests that changed something on the service (anything but `GET` and `HEAD`): what a dry
    /// run must never send.
    fn writes(&self) -> u64 {
        self.requests()
            .iter()
            .filter(|(route, _)| !route.starts_with("GET ") && !route.starts_with("HEAD "))
            .map(|(_, n)| n)
            .sum()
    }

    /// Requests that carried the user's data (an image, a track, a sequence record): what a re-check
    /// must never send.
    fn uploads(&self) -> u64;

    /// Data sent again after the service had acknowledged it (bytes or items, as the service counts
    /// them): 0 for a client that resumes without re-sending.
    fn resent(&self) -> u64;

    /// Whether it is still taking in a request body a client gave up on (a cancelled run's upload
    /// still streaming in): a resumed run started before it is done races the service's own offset.
    fn busy(&self) -> bool {
        false
    }
}

fn sum_routes(requests: &BTreeMap<String, u64>, routes: &[&str]) -> u64 {
    routes
        .iter()
        .map(|r| requests.get(*r).copied().unwrap_or(0))
        .sum()
}

impl FakeService for FakeMapillary {
    fn env(&self) -> Vec<(String, String)> {
        let config = self.config();
        vec![
            ("MAPILLARY_APP_ID".into(), config.client_id),
            ("MAPILLARY_SECRET".into(), config.client_secret),
            ("MAPILLARY_GRAPH_URL".into(), self.graph_url()),
            ("MAPILLARY_UPLOAD_URL".into(), self.upload_url()),
            ("MAPILLARY_AUTHORIZE_URL".into(), self.authorize_url()),
        ]
    }

    fn requests(&self) -> BTreeMap<String, u64> {
        self.stats().requests
    }

    fn uploads(&self) -> u64 {
        sum_routes(
            &self.stats().requests,
            &["POST /upload/:key", "POST /finish_upload"],
        )
    }

    /// Bytes received for offsets already held, and bytes sent for an entity already complete.
    fn resent(&self) -> u64 {
        let stats = self.stats();
        stats.bytes_resent
            + stats
                .entities
                .values()
                .map(|e| e.bytes_after_complete)
                .sum::<u64>()
    }

    fn busy(&self) -> bool {
        self.stats().uploads_in_flight > 0
    }
}

impl FakeService for FakeMtpw {
    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("MTP_WEB_URL".into(), self.base_url()),
            ("MTP_WEB_AUTH_URL".into(), self.auth_url()),
        ]
    }

    fn requests(&self) -> BTreeMap<String, u64> {
        self.stats().requests
    }

    fn uploads(&self) -> u64 {
        let stats = self.stats();
        stats.create_calls + stats.import_calls
    }

    /// Sequences stored twice for the same Mapillary key (MTPW's unit of data is the sequence record).
    fn resent(&self) -> u64 {
        let stats = self.stats();
        let mut seen = HashSet::new();
        stats
            .sequences
            .iter()
            .filter_map(|s| s.sequence_key.as_ref())
            .filter(|key| !seen.insert(key.to_string()))
            .count() as u64
    }
}

impl FakeService for FakePanoramax {
    fn env(&self) -> Vec<(String, String)> {
        vec![("PANORAMAX_URL".into(), self.base_url())]
    }

    fn requests(&self) -> BTreeMap<String, u64> {
        self.stats().requests
    }

    fn uploads(&self) -> u64 {
        sum_routes(
            &self.stats().requests,
            &[
                "POST /api/upload_sets",
                "POST /api/upload_sets/:id/files",
                "POST /api/upload_sets/:id/complete",
            ],
        )
    }

    /// Pictures received again (accepted or refused as duplicates) after one with the same bytes was
    /// accepted.
    fn resent(&self) -> u64 {
        let stats = self.stats();
        let mut accepted = HashSet::new();
        let mut again = 0;
        for set in stats.upload_sets.values() {
            for file in &set.files {
                if accepted.contains(&file.md5) {
                    again += 1;
                } else if file.picture_id.is_some() {
                    accepted.insert(file.md5.clone());
                }
            }
        }
        again
    }
}

impl FakeService for FakeStrava {
    fn env(&self) -> Vec<(String, String)> {
        let config = self.config();
        vec![
            ("STRAVA_CLIENT_ID".into(), config.client_id.clone()),
            ("STRAVA_CLIENT_SECRET".into(), config.client_secret.clone()),
            ("STRAVA_API_URL".into(), self.api_url()),
            ("STRAVA_OAUTH_URL".into(), self.oauth_url()),
        ]
    }

    fn requests(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for request in self.stats().requests {
            *counts.entry(request).or_default() += 1;
        }
        counts
    }

    fn uploads(&self) -> u64 {
        self.stats()
            .requests
            .iter()
            .filter(|r| *r == "POST /api/v3/uploads")
            .count() as u64
    }

    /// Uploads of a track whose `external_id` an earlier upload already carried.
    fn resent(&self) -> u64 {
        let mut seen = HashSet::new();
        self.stats()
            .uploads
            .values()
            .filter_map(|u| u.external_id.as_ref())
            .filter(|id| !seen.insert(id.to_string()))
            .count() as u64
    }
}

impl FakeService for FakeStreetView {
    fn env(&self) -> Vec<(String, String)> {
        let config = self.config();
        vec![
            ("GOOGLE_CLIENT_ID".into(), config.client_id.clone()),
            ("GOOGLE_CLIENT_SECRET".into(), config.client_secret.clone()),
            ("GOOGLE_STREETVIEW_API_URL".into(), self.api_url()),
            ("GOOGLE_OAUTH_AUTH_URL".into(), self.auth_url()),
            ("GOOGLE_OAUTH_TOKEN_URL".into(), self.token_url()),
        ]
    }

    /// Each upload URL is its own path; they count as one route.
    fn requests(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for line in self.stats().requests {
            let route = if line.starts_with("POST /media/user/") {
                "POST /media/user/:upload".to_string()
            } else {
                line
            };
            *counts.entry(route).or_default() += 1;
        }
        counts
    }

    /// A photo's bytes, and the photo made of them.
    fn uploads(&self) -> u64 {
        sum_routes(
            &self.requests(),
            &["POST /media/user/:upload", "POST /v1/photo"],
        )
    }

    /// Photos created at the capture time and place of an earlier one: the same photo twice.
    fn resent(&self) -> u64 {
        let mut seen = HashSet::new();
        self.stats()
            .photos
            .values()
            .filter(|p| {
                !seen.insert((
                    p.capture_time.clone(),
                    p.latitude.to_bits(),
                    p.longitude.to_bits(),
                ))
            })
            .count() as u64
    }
}
